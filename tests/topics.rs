//! `vocmine topics` on the sample corpus scored by the shipped model: every comment gets a
//! topic line, the same seed gives byte-identical output, a second night keeps every topic id
//! and every earlier assignment, and the index can filter by topic.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The first `n` records of the sample corpus as a CSV file.
fn sample_head(n: usize, out: &Path) {
    let mut r = csv::Reader::from_path(common::root().join("corpora/sample/comments.csv")).unwrap();
    let mut w = csv::Writer::from_path(out).unwrap();
    w.write_record(r.headers().unwrap()).unwrap();
    for rec in r.records().take(n) {
        w.write_record(&rec.unwrap()).unwrap();
    }
    w.flush().unwrap();
}

fn assignments(run: &Path) -> BTreeMap<String, i64> {
    common::read_jsonl(&run.join("topics/assignments.jsonl"))
        .into_iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["topic"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn topics_are_complete_deterministic_stable_and_searchable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sample = common::root().join("corpora/sample/comments.csv");
    let head = d.join("head.csv");
    sample_head(200, &head);

    // Night 1: 200 comments.
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    common::vocmine_in(
        d,
        &[
            "score",
            head.to_str().unwrap(),
            "--out",
            run_s,
            "--embeddings",
        ],
    );
    let out = common::vocmine_in(d, &["topics", run_s, "--min-topic-size", "5"]);
    assert!(out.contains("200 comments"), "{out}");
    let first = assignments(&run);
    assert_eq!(first.len(), 200);
    let model1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap())
            .unwrap();
    let topics1 = model1["topics"].as_array().unwrap().clone();
    assert!(topics1.len() >= 2, "{out}");
    for t in &topics1 {
        assert!(!t["label"].as_str().unwrap().is_empty());
        let id = t["id"].as_i64().unwrap();
        // Representatives are members of their topic.
        for r in t["representatives"].as_array().unwrap() {
            assert_eq!(first[r.as_str().unwrap()], id);
        }
        assert_eq!(
            t["size"].as_u64().unwrap() as usize,
            first.values().filter(|&&x| x == id).count()
        );
    }

    // Same seed, same input: byte-identical model and assignments.
    let again = d.join("again");
    std::fs::create_dir_all(again.join("topics")).unwrap();
    for f in ["scored.jsonl", "embeddings.f32", "embeddings.json"] {
        std::fs::copy(run.join(f), again.join(f)).unwrap();
    }
    common::vocmine_in(
        d,
        &["topics", again.to_str().unwrap(), "--min-topic-size", "5"],
    );
    for f in ["topics/model.json", "topics/assignments.jsonl"] {
        assert_eq!(
            std::fs::read(run.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }

    // Night 2: all 300 (100 new). Old comments keep their topic, old topics keep id and centroid.
    common::vocmine_in(
        d,
        &[
            "score",
            sample.to_str().unwrap(),
            "--out",
            run_s,
            "--embeddings",
        ],
    );
    let out = common::vocmine_in(d, &["topics", run_s, "--min-topic-size", "5"]);
    assert!(out.contains("200 kept their earlier topic"), "{out}");
    let second = assignments(&run);
    assert_eq!(second.len(), 300);
    for (id, t) in &first {
        assert_eq!(second[id], *t, "{id} moved");
    }
    let model2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap())
            .unwrap();
    let by_id: BTreeMap<i64, &serde_json::Value> = model2["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_i64().unwrap(), t))
        .collect();
    for t in &topics1 {
        let now = by_id[&t["id"].as_i64().unwrap()];
        assert_eq!(now["centroid"], t["centroid"]);
    }
    let new_ids: BTreeSet<i64> = by_id
        .keys()
        .copied()
        .filter(|&i| i >= topics1.len() as i64)
        .collect();
    assert!(new_ids
        .iter()
        .all(|&i| i == model1["next_id"].as_i64().unwrap() + (i - topics1.len() as i64)));

    // The index carries the topics: a topic filter returns exactly its comments.
    let (&topic, _) = by_id
        .iter()
        .max_by_key(|(_, t)| t["size"].as_u64().unwrap())
        .unwrap();
    let json = common::vocmine_in(
        d,
        &[
            "search",
            run_s,
            "--topic",
            &topic.to_string(),
            "--limit",
            "1000",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let want = second.values().filter(|&&t| t == topic).count() as u64;
    assert_eq!(v["total"].as_u64().unwrap(), want);
    assert_eq!(
        v["facets"]["topic"][topic.to_string()].as_u64().unwrap(),
        want
    );
    assert!(v["hits"][0]["topic_label"]
        .as_str()
        .is_some_and(|l| !l.is_empty()));
}

/// Runs vocmine in `dir` (its embedding cache there), with `env` set; panics unless it
/// succeeds, else returns (stdout, stderr).
fn vocmine_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .current_dir(dir)
        .env("VOCMINE_CACHE", dir.join("cache"))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{args:?}\n{out}\n{err}");
    (out, err)
}

/// Starts vocmine with `VOCMINE_PAUSE_AT=point`, waits until it stops there, and kills it with
/// SIGKILL: the state a crash at exactly that moment leaves.
fn kill_at(dir: &Path, args: &[&str], point: &str) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .current_dir(dir)
        .env("VOCMINE_CACHE", dir.join("cache"))
        .env("VOCMINE_PAUSE_AT", point)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains(&format!("paused at {point}")) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!(
        "{args:?} ended ({status}) without reaching {point}:\n{}",
        seen.join("\n")
    );
}

/// `n` comments of a ../shared corpus (every `step`-th line of its train.jsonl, ids prefixed)
/// as JSONL.
fn shared_rows(corpus: &str, prefix: &str, n: usize, step: usize) -> Option<String> {
    let p = common::shared(&format!("corpora/{corpus}/train.jsonl"))?;
    let body = std::fs::read_to_string(p).unwrap();
    let mut out = String::new();
    for (i, l) in body.lines().enumerate().step_by(step).take(n) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        out += &serde_json::json!({"id": format!("{prefix}{i:05}"), "text": v["text"]}).to_string();
        out.push('\n');
    }
    Some(out)
}

/// What a topic id means must hold in a run folder: every assignment names a topic of
/// model.json, and every member lies within its topic's radius of the topic's centroid (ids
/// are never reused for other comments). Returns the number of assigned comments.
fn check_topic_meaning(run: &Path) -> usize {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("embeddings.json")).unwrap())
            .unwrap();
    let dim = meta["dim"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(run.join("embeddings.f32")).unwrap();
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    assert_eq!(bytes.len(), scored.len() * dim * 4);
    let emb: BTreeMap<String, Vec<f64>> = scored
        .iter()
        .zip(bytes.chunks_exact(dim * 4))
        .map(|(v, r)| {
            let e: Vec<f64> = r
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            let n = e.iter().map(|x| x * x).sum::<f64>().sqrt();
            (
                v["id"].as_str().unwrap().to_string(),
                e.iter().map(|x| x / n).collect(),
            )
        })
        .collect();
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap())
            .unwrap();
    // Centroids live in the subject view: the model's removed directions taken out.
    let removed: Vec<Vec<f64>> = model["subject"]["removed"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    d.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let emb: BTreeMap<String, Vec<f64>> = emb
        .into_iter()
        .map(|(id, mut e)| {
            for d in &removed {
                let p: f64 = e.iter().zip(d).map(|(a, b)| a * b).sum();
                e.iter_mut().zip(d).for_each(|(a, b)| *a -= p * b);
            }
            let n = e.iter().map(|x| x * x).sum::<f64>().sqrt();
            (id, e.iter().map(|x| x / n).collect())
        })
        .collect();
    let topics: BTreeMap<i64, (Vec<f64>, f64)> = model["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let c = t["centroid"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (
                t["id"].as_i64().unwrap(),
                (c, t["radius"].as_f64().unwrap()),
            )
        })
        .collect();
    let mut n = 0;
    for (id, topic) in assignments(run) {
        if topic < 0 {
            continue;
        }
        let (c, radius) = topics
            .get(&topic)
            .unwrap_or_else(|| panic!("{id}: topic {topic} is not in model.json"));
        let cos: f64 = c.iter().zip(&emb[&id]).map(|(a, b)| a * b).sum();
        assert!(
            cos >= radius - 1e-3,
            "{id} is in topic {topic} but far from it (cosine {cos:.3}, radius {radius:.3})"
        );
        n += 1;
    }
    n
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if e.file_name() != "lock" {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Issue 29.6: `topics` killed between writing its two files, then run again on more data
/// (needs ../shared: waimai_10k and ccf2018_car_aspect).
/// The model is now written first (a SIGKILL there leaves the new model with the old
/// assignments, whose ids it all knows), and assignments to ids the model does not know (what
/// the old order left: new assignments, old model) are discarded, not kept under an id that the
/// next topic then reuses.
#[test]
fn a_crash_between_the_topic_files_never_reuses_a_topic_id() {
    let (Some(food), Some(cars)) = (
        shared_rows("waimai_10k", "w", 200, 40),
        shared_rows("ccf2018_car_aspect", "a", 200, 30),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    let sample = common::root().join("corpora/sample/comments.csv");
    let topics = ["topics", run_s, "--min-topic-size", "5"];
    let score = |input: &Path| {
        vocmine_env(
            d,
            &[
                "score",
                input.to_str().unwrap(),
                "--out",
                run_s,
                "--no-index",
            ],
            &[],
        )
    };
    // Night 1: the sample.
    score(&sample);
    vocmine_env(d, &topics, &[]);
    let model1 = std::fs::read(run.join("topics/model.json")).unwrap();
    let assign1 = std::fs::read(run.join("topics/assignments.jsonl")).unwrap();
    let next1 = serde_json::from_slice::<serde_json::Value>(&model1).unwrap()["next_id"]
        .as_i64()
        .unwrap();

    // Night 2: food-delivery reviews open a new topic; killed between the two files.
    let night2 = d.join("night2.jsonl");
    std::fs::write(&night2, food).unwrap();
    score(&night2);
    kill_at(d, &topics, "topics:model-written");
    let model2 = std::fs::read(run.join("topics/model.json")).unwrap();
    assert_ne!(model2, model1, "the model is written first");
    assert_eq!(
        std::fs::read(run.join("topics/assignments.jsonl")).unwrap(),
        assign1
    );
    let next2 = serde_json::from_slice::<serde_json::Value>(&model2).unwrap()["next_id"]
        .as_i64()
        .unwrap();
    assert!(
        next2 > next1,
        "night 2 should open topics ({next1} -> {next2})"
    );

    // What the old order left after the same kill: night 2's assignments beside night 1's
    // model (copied: the state of a workspace killed under the old order).
    let old = d.join("old");
    copy_dir(&run, &old);
    let old_s = old.to_str().unwrap();
    vocmine_env(d, &["topics", old_s, "--min-topic-size", "5"], &[]);
    std::fs::write(old.join("topics/model.json"), &model1).unwrap();
    let stale: BTreeSet<i64> = assignments(&old)
        .into_values()
        .filter(|&t| t >= next1)
        .collect();
    assert!(
        !stale.is_empty(),
        "night 2 assigned comments to its new topics"
    );

    // Night 3: car-forum posts, which open a topic of their own (under the old order, at the
    // id night 2's stale assignments hold), in both folders.
    let night3 = d.join("night3.jsonl");
    std::fs::write(&night3, cars).unwrap();
    score(&night3);
    for f in ["scored.jsonl", "embeddings.f32", "embeddings.json"] {
        std::fs::copy(run.join(f), old.join(f)).unwrap();
    }

    let (out, _) = vocmine_env(d, &topics, &[]);
    assert!(out.contains("300 kept their earlier topic"), "{out}");
    assert!(check_topic_meaning(&run) > 300);

    let (out, err) = vocmine_env(d, &["topics", old_s, "--min-topic-size", "5"], &[]);
    assert!(
        err.contains("discarded") && err.contains("does not know"),
        "stale ids {stale:?}\n{out}\n{err}"
    );
    assert!(check_topic_meaning(&old) > 300);
}

/// Issue 29.7: a SIGKILL during compaction, between replacing scored.jsonl and
/// embeddings.f32, leaves them misaligned (every changed row); `topics` must notice and use
/// the right embeddings (from the checkpoint parts), giving what an intact run gives.
/// Also issue 29.13: `score` keeps the embeddings without being asked.
#[test]
fn topics_notices_embeddings_misaligned_by_a_crash_in_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let head = d.join("head.csv");
    sample_head(120, &head);
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    let (out, _) = vocmine_env(
        d,
        &[
            "score",
            head.to_str().unwrap(),
            "--out",
            run_s,
            "--no-index",
        ],
        &[],
    );
    assert!(out.contains("scored 120"), "{out}");
    // kept by default: 384 floats per comment, with the record of which rows they are
    assert_eq!(
        std::fs::metadata(run.join("embeddings.f32")).unwrap().len(),
        120 * 384 * 4
    );
    assert!(run.join("embeddings.json").exists());

    // Night 2: every text changed (same ids, same order), killed mid-compaction.
    let body = std::fs::read_to_string(&head).unwrap();
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let changed = d.join("changed.csv");
    let mut w = csv::Writer::from_path(&changed).unwrap();
    w.write_record(r.headers().unwrap()).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let mut f: Vec<String> = rec.iter().map(str::to_string).collect();
        f[1] = format!("{} 更新：还是没解决 (follow-up)", f[1]);
        w.write_record(&f).unwrap();
    }
    w.flush().unwrap();
    kill_at(
        d,
        &[
            "score",
            changed.to_str().unwrap(),
            "--out",
            run_s,
            "--no-index",
        ],
        "compact:scored-renamed",
    );
    let scored = std::fs::read_to_string(run.join("scored.jsonl")).unwrap();
    assert!(scored.contains("follow-up"), "scored.jsonl was replaced");
    assert_eq!(
        std::fs::metadata(run.join("embeddings.f32")).unwrap().len(),
        120 * 384 * 4,
        "the old embeddings: same size, other rows"
    );

    // Reference: the same folder after a rerun (a no-op that compacts again).
    let reference = d.join("reference");
    copy_dir(&run, &reference);
    let ref_s = reference.to_str().unwrap();
    let (out, _) = vocmine_env(
        d,
        &[
            "score",
            changed.to_str().unwrap(),
            "--out",
            ref_s,
            "--no-index",
        ],
        &[],
    );
    assert!(out.contains("scored 0"), "{out}");
    let (_, err) = vocmine_env(d, &["topics", ref_s, "--min-topic-size", "5"], &[]);
    assert!(
        !err.contains("encoding"),
        "embeddings kept and aligned: {err}"
    );

    let (_, err) = vocmine_env(d, &["topics", run_s, "--min-topic-size", "5"], &[]);
    assert!(err.contains("does not line up"), "{err}");
    assert!(err.contains("took 120 embeddings"), "{err}");
    for f in ["topics/model.json", "topics/assignments.jsonl"] {
        assert_eq!(
            std::fs::read(run.join(f)).unwrap(),
            std::fs::read(reference.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// `[labels] leave_out` in `RUN/topics/edits.toml` keeps the shop's own name out of every label
/// and term, on an update of an existing model (ids and assignments kept) and on a refit.
/// The 300-comment sample with the default settings: a handful of topics a CX manager can
/// read (min_samples follows the comments clustered; a fixed 5 gave two topics here), each
/// labelled with subject words, the sample's main complaints among them.
#[test]
fn the_sample_gets_a_handful_of_readable_topics() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sample = common::root().join("corpora/sample/comments.csv");
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    common::vocmine_in(
        d,
        &[
            "score",
            sample.to_str().unwrap(),
            "--out",
            run_s,
            "--embeddings",
            "--no-index",
        ],
    );
    let out = common::vocmine_in(d, &["topics", run_s]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap())
            .unwrap();
    assert_eq!(m["config"]["min_samples"], 0, "{m}");
    let labels: Vec<&str> = m["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert!((4..=12).contains(&labels.len()), "{labels:?}\n{out}");
    for l in &labels {
        let words: Vec<&str> = l.split(" / ").collect();
        assert_eq!(words.len(), 3, "{l:?}");
        assert!(
            words
                .iter()
                .all(|w| !vocmine::topics::is_label_stop_word(w)),
            "{l:?}"
        );
    }
    for subject in [["物流", "delivery"], ["退款", "refund"], ["客服", "态度"]] {
        assert!(
            labels.iter().any(|l| subject.iter().any(|w| l.contains(w))),
            "no topic on {subject:?}: {labels:?}"
        );
    }
    let unassigned = assignments(&run).values().filter(|&&t| t < 0).count();
    assert!(unassigned * 10 < 300, "{unassigned} unassigned\n{out}");
}

#[test]
fn a_shop_name_left_out_never_names_a_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sample = common::root().join("corpora/sample/comments.csv");
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    common::vocmine_in(
        d,
        &[
            "score",
            sample.to_str().unwrap(),
            "--out",
            run_s,
            "--embeddings",
        ],
    );
    common::vocmine_in(d, &["topics", run_s]);
    let model = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap())
            .unwrap()
    };
    let has_shop = |m: &serde_json::Value| -> bool {
        m["topics"].as_array().unwrap().iter().any(|t| {
            t["label"].as_str().unwrap().contains("优选")
                || t["terms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w[0].as_str().unwrap() == "优选")
        })
    };
    // The sample's shop, 优选 (YouXuan), is among the words of its topics until left out.
    let before = model(&run);
    assert!(has_shop(&before), "{before}");
    let first = assignments(&run);
    std::fs::write(
        run.join("topics/edits.toml"),
        "[labels]\nleave_out = [\"优选\", \"YouXuan\"]\n",
    )
    .unwrap();
    let out = common::vocmine_in(d, &["topics", run_s]);
    assert!(out.contains("300 kept their earlier topic"), "{out}");
    let after = model(&run);
    assert!(!has_shop(&after), "{after}");
    assert_eq!(assignments(&run), first);
    let ids = |m: &serde_json::Value| -> Vec<i64> {
        m["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    let text = std::fs::read_to_string(run.join("topics/assignments.jsonl")).unwrap();
    assert!(!text.contains("优选"), "{text}");
    common::vocmine_in(d, &["topics", run_s, "--refit"]);
    assert!(!has_shop(&model(&run)));
    // A bad leave_out list names the file and the key.
    std::fs::write(
        run.join("topics/edits.toml"),
        "[labels]\nleave_out = [\" \"]\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(d)
        .env("VOCMINE_CACHE", d.join("cache"))
        .args(["topics", run_s]);
    let err = common::stderr_of_failure(cmd);
    assert!(
        err.contains("edits.toml") && err.contains("leave_out"),
        "{err}"
    );
}

/// A run with comments `serve` scored (`RUN/served.jsonl`): re-indexing by `topics` (and
/// `index RUN`) keeps the served version of an id that `scored.jsonl` also holds, and the
/// served comments get their topics in the index.
#[test]
fn reindexing_a_served_run_keeps_the_served_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let head = d.join("head.csv");
    sample_head(60, &head);
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    common::vocmine_in(
        d,
        &[
            "score",
            head.to_str().unwrap(),
            "--out",
            run_s,
            "--embeddings",
        ],
    );
    // What serve --score --index RUN appends: whole scored records, here one id of
    // scored.jsonl with a new text and one new id.
    let lines = common::read_jsonl(&run.join("scored.jsonl"));
    let mut changed = lines[0].clone();
    changed["text"] = "zebrafloss 扫地机器人 的 电池 坏了".into();
    changed["text_hash"] = "0123456789abcdef".into();
    let mut new = lines[1].clone();
    new["id"] = "served-1".into();
    new["text"] = "quokkaberry 物流 太慢".into();
    new["text_hash"] = "fedcba9876543210".into();
    std::fs::write(run.join("served.jsonl"), format!("{changed}\n{new}\n")).unwrap();
    let hits = |q: &str| -> serde_json::Value {
        let out = common::vocmine_in(d, &["search", run_s, q, "--json"]);
        serde_json::from_str(&out).unwrap()
    };
    let out = common::vocmine_in(d, &["topics", run_s, "--min-topic-size", "5"]);
    assert!(out.contains("61 comments"), "{out}");
    for (q, id) in [
        ("zebrafloss", lines[0]["id"].as_str().unwrap()),
        ("quokkaberry", "served-1"),
    ] {
        let h = hits(q);
        assert_eq!(h["total"], 1, "{q}: {h}");
        assert_eq!(h["hits"][0]["id"], id, "{h}");
    }
    // One document per id: the served version replaced the scored one.
    let all = hits("");
    assert_eq!(all["total"], 61, "{all}");
    let tagged = common::vocmine_in(d, &["search", run_s, "quokkaberry", "--json"]);
    let topic = common::read_jsonl(&run.join("topics/assignments.jsonl"))
        .into_iter()
        .find(|v| v["id"] == "served-1")
        .unwrap()["topic"]
        .as_i64()
        .unwrap();
    if topic >= 0 {
        let h = common::vocmine_in(
            d,
            &[
                "search",
                run_s,
                "quokkaberry",
                "--topic",
                &topic.to_string(),
                "--json",
            ],
        );
        let h: serde_json::Value = serde_json::from_str(&h).unwrap();
        assert_eq!(h["total"], 1, "{tagged}");
    }
    let again = common::vocmine_in(d, &["index", run_s]);
    assert!(again.contains("61 documents"), "{again}");
    assert_eq!(hits("zebrafloss")["total"], 1);
}
