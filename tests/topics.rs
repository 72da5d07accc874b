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
    for f in ["scored.jsonl", "embeddings.f32"] {
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
