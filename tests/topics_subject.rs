//! Topics by subject, on real comments from ../shared scored by the shipped model: the same
//! subjects written in Chinese and in English land in the same topic, labels are subject words,
//! a dense group of new complaints opens a new topic on a later night, and the user's names
//! and merges (`RUN/topics/edits.toml`) hold across nights.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Up to `n` rows of `corpus/file` that `keep` accepts, evenly spread over the file, as
/// `{"id", "text"}` lines with ids `prefix0000...`, each paired with `subject`.
fn rows(
    file: &str,
    keep: impl Fn(&serde_json::Value) -> bool,
    n: usize,
    prefix: &str,
) -> Option<Vec<(String, String)>> {
    let p = common::shared(&format!("corpora/{file}"))?;
    let all: Vec<serde_json::Value> = common::read_jsonl(&p).into_iter().filter(keep).collect();
    let step = (all.len() / n).max(1);
    Some(
        all.iter()
            .step_by(step)
            .take(n)
            .enumerate()
            .map(|(i, v)| {
                (
                    format!("{prefix}{i:04}"),
                    v["text"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

fn category(c: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["category"] == c
}

fn write_jsonl(path: &Path, rows: &[(String, String)]) {
    let body: String = rows
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string() + "\n")
        .collect();
    std::fs::write(path, body).unwrap();
}

fn assignments(run: &Path) -> BTreeMap<String, serde_json::Value> {
    common::read_jsonl(&run.join("topics/assignments.jsonl"))
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap().to_string(), v))
        .collect()
}

fn model(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("topics/model.json")).unwrap()).unwrap()
}

/// The most common topic of the comments whose id starts with `prefix`, and its share.
fn dominant(a: &BTreeMap<String, serde_json::Value>, prefix: &str) -> (i64, f64) {
    let mut n: BTreeMap<i64, usize> = BTreeMap::new();
    let mut total = 0;
    for (id, v) in a {
        if id.starts_with(prefix) {
            *n.entry(v["topic"].as_i64().unwrap()).or_default() += 1;
            total += 1;
        }
    }
    let (t, c) = n.into_iter().max_by_key(|&(t, c)| (c, -t)).unwrap();
    (t, c as f64 / total as f64)
}

#[test]
fn the_same_subjects_in_chinese_and_english_share_a_topic() {
    let parts = [
        rows(
            "semeval2014_absa/laptops_test.jsonl",
            |_| true,
            120,
            "laptop-en-",
        ),
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("计算机"),
            120,
            "laptop-zh-",
        ),
        rows(
            "semeval2014_absa/restaurants_test.jsonl",
            |_| true,
            120,
            "food-en-",
        ),
        rows("waimai_10k/test.jsonl", |_| true, 120, "food-zh-"),
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("酒店"),
            120,
            "hotel-zh-",
        ),
        rows("twitter_airline/test.jsonl", |_| true, 120, "airline-en-"),
    ];
    let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() else {
        return;
    };
    let all: Vec<(String, String)> = parts.into_iter().flatten().collect();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_jsonl(&d.join("in.jsonl"), &all);
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    common::vocmine_in(
        d,
        &[
            "score",
            "in.jsonl",
            "--out",
            run_s,
            "--embeddings",
            "--no-index",
        ],
    );
    let out = common::vocmine_in(d, &["topics", run_s]);
    let a = assignments(&run);
    assert_eq!(a.len(), all.len());
    let m = model(&run);
    let factors: Vec<&str> = m["subject"]["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(factors, ["sentiment", "lang"], "{m}");
    for subject in ["laptop", "food"] {
        let (zh, zh_share) = dominant(&a, &format!("{subject}-zh-"));
        let (en, en_share) = dominant(&a, &format!("{subject}-en-"));
        assert_eq!(
            zh, en,
            "{subject}: Chinese comments are mostly in topic {zh}, English ones in {en}\n{out}"
        );
        assert!(zh >= 0, "{subject}: mostly unassigned\n{out}");
        assert!(
            zh_share >= 0.4 && en_share >= 0.4,
            "{subject}: topic {zh} holds {zh_share:.2} of the Chinese and {en_share:.2} of the English comments\n{out}"
        );
    }
    // The hotel and airline comments have topics of their own, apart from laptops and food.
    let laptop = dominant(&a, "laptop-zh-").0;
    let food = dominant(&a, "food-zh-").0;
    for other in ["hotel-zh-", "airline-en-"] {
        let (t, _) = dominant(&a, other);
        assert!(
            t >= 0 && t != laptop && t != food,
            "{other}: topic {t}\n{out}"
        );
    }
    // Labels name subjects: no tone words, no shop names.
    for t in m["topics"].as_array().unwrap() {
        for w in t["label"].as_str().unwrap().split(" / ") {
            assert!(
                !vocmine::topics::is_label_stop_word(w),
                "label {:?} has {w:?}",
                t["label"]
            );
        }
    }
    let unassigned = a.values().filter(|v| v["topic"] == -1).count();
    assert!(
        unassigned * 4 < all.len(),
        "{unassigned} of {} unassigned\n{out}",
        all.len()
    );
}

#[test]
fn new_complaints_open_a_new_topic_and_the_users_edits_hold_across_nights() {
    let parts = [
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("酒店"),
            100,
            "hotel-",
        ),
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("计算机"),
            100,
            "laptop-",
        ),
        rows("waimai_10k/test.jsonl", |_| true, 100, "food-"),
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("洗发水"),
            100,
            "shampoo-",
        ),
        // The new problem of night 2: a boycott of one dairy brand.
        rows(
            "online_shopping_10_cats/test.jsonl",
            category("蒙牛"),
            30,
            "milk-",
        ),
    ];
    let Some(mut parts) = parts.into_iter().collect::<Option<Vec<_>>>() else {
        return;
    };
    let planted = parts.pop().unwrap();
    let night1: Vec<(String, String)> = parts.into_iter().flatten().collect();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    write_jsonl(&d.join("n1.jsonl"), &night1);
    common::vocmine_in(d, &["score", "n1.jsonl", "--out", run_s, "--embeddings"]);
    let out1 = common::vocmine_in(d, &["topics", run_s]);
    let m1 = model(&run);
    let a1 = assignments(&run);
    let next_id = m1["next_id"].as_i64().unwrap();
    let (hotel, _) = dominant(&a1, "hotel-");
    let (laptop, _) = dominant(&a1, "laptop-");
    let (food, _) = dominant(&a1, "food-");
    assert!(
        BTreeSet::from([hotel, laptop, food]).len() == 3 && hotel >= 0 && laptop >= 0,
        "{out1}"
    );

    // The user names the hotel topic and merges the food topic into the laptop one.
    std::fs::write(
        run.join("topics/edits.toml"),
        format!("[names]\n{hotel} = \"住宿\"\n\n[merge]\n{food} = {laptop}\n"),
    )
    .unwrap();

    // Night 2: the same comments plus 30 about a new problem.
    let mut night2 = night1.clone();
    night2.extend(planted.iter().cloned());
    write_jsonl(&d.join("n2.jsonl"), &night2);
    common::vocmine_in(d, &["score", "n2.jsonl", "--out", run_s, "--embeddings"]);
    let out2 = common::vocmine_in(d, &["topics", run_s]);
    assert!(out2.contains("住宿"), "{out2}");
    assert!(out2.contains("1 names, 1 merges"), "{out2}");
    let a2 = assignments(&run);
    let m2 = model(&run);
    // A new topic holds most of the new complaints, and nothing from night 1.
    let (milk, share) = dominant(&a2, "milk-");
    assert!(
        milk >= next_id,
        "the new complaints went to topic {milk}\n{out2}"
    );
    assert!(
        share >= 0.6,
        "only {share:.2} of them in topic {milk}\n{out2}"
    );
    for (id, v) in &a2 {
        if !id.starts_with("milk-") {
            assert_ne!(v["topic"].as_i64().unwrap(), milk, "{id}");
        }
    }
    // Night-1 comments keep their topic (as the model found it), shown through the edits.
    for (id, v1) in &a1 {
        let v2 = &a2[id];
        let found = v2["found"]
            .as_i64()
            .unwrap_or(v2["topic"].as_i64().unwrap());
        assert_eq!(found, v1["topic"].as_i64().unwrap(), "{id} moved");
        if found == food {
            assert_eq!(v2["topic"].as_i64().unwrap(), laptop, "{id}: not merged");
        }
        if found == hotel {
            assert_eq!(v2["label"], "住宿", "{id}");
        }
    }
    // Labels of the topics that did not change stay as they were.
    let label = |m: &serde_json::Value, id: i64| {
        m["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["label"].clone())
            .unwrap()
    };
    for t in [hotel, laptop, food] {
        assert_eq!(label(&m1, t), label(&m2, t), "topic {t}");
    }
    // The index shows the merged topic: its filter finds the food comments too.
    let json = common::vocmine_in(
        d,
        &[
            "search",
            run_s,
            "--topic",
            &laptop.to_string(),
            "--limit",
            "1000",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let want = a2.values().filter(|v| v["topic"] == laptop).count() as u64;
    assert_eq!(v["total"].as_u64().unwrap(), want);
    assert!(v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["id"].as_str().unwrap().starts_with("food-")));

    // A bad edit is an error naming the file, and nothing is written.
    std::fs::write(run.join("topics/edits.toml"), "[merge]\n999 = 0\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(d)
        .env("VOCMINE_CACHE", d.join("cache"))
        .args(["topics", run_s]);
    let err = common::stderr_of_failure(cmd);
    assert!(
        err.contains("edits.toml") && err.contains("no topic 999"),
        "{err}"
    );
}
