//! The run folder remembers how it was scored: the tier weights of `score --tier-weight` hold
//! through `topics` (which re-indexes) and in the report, and `status` on a `--no-mask`
//! workspace decides comments with the masking they were scored with. Real binary, real model.

mod common;

use std::path::Path;

fn vip_negative_severities(dir: &Path, run: &Path) -> Vec<(String, f64, f64)> {
    let out = common::vocmine_in(
        dir,
        &[
            "search",
            run.to_str().unwrap(),
            "",
            "--tier",
            "vip",
            "--sentiment",
            "negative",
            "--sort",
            "severity",
            "--limit",
            "100",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut hits: Vec<(String, f64, f64)> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["sentiment_score"].as_f64().unwrap(),
                h["severity"].as_f64().unwrap(),
            )
        })
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits
}

#[test]
fn tier_weights_of_score_survive_topics_and_reach_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let sample = common::root().join("corpora/sample/comments.csv");
    common::vocmine_in(
        dir.path(),
        &[
            "score",
            sample.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--tier-weight",
            "vip=3",
        ],
    );
    let before = vip_negative_severities(dir.path(), &run);
    assert!(before.len() >= 5, "{before:?}");
    for (id, score, sev) in &before {
        assert!(
            (sev - 3.0 * (-score).max(0.0)).abs() < 1e-4,
            "{id}: {score} {sev}"
        );
    }
    common::vocmine_in(dir.path(), &["topics", run.to_str().unwrap()]);
    let after = vip_negative_severities(dir.path(), &run);
    assert_eq!(before, after, "topics re-indexed with other tier weights");
    // the report ranks with the run's weights unless told otherwise
    common::vocmine_in(dir.path(), &["report", run.to_str().unwrap()]);
    let with_run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    common::vocmine_in(
        dir.path(),
        &["report", run.to_str().unwrap(), "--tier-weight", "vip=1"],
    );
    let with_one: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let priority = |r: &serde_json::Value| -> f64 {
        r["pain_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["priority"].as_f64().unwrap())
            .sum()
    };
    let (p3, p1) = (priority(&with_run), priority(&with_one));
    // every vip negative comment adds 2 x its negativity more with vip=3 than with vip=1
    let extra: f64 = before.iter().map(|(_, s, _)| 2.0 * (-s).max(0.0)).sum();
    assert!(
        p3 > p1 + 0.5 * extra,
        "priority {p3} vs {p1} (vip extra {extra})"
    );
}

#[test]
fn status_on_a_no_mask_workspace_decides_with_its_masking() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("day1.jsonl");
    let lines = [
        r#"{"id":"a","text":"请回电 13812345678 退款还没到"}"#,
        r#"{"id":"b","text":"发货太慢了"}"#,
        r#"{"id":"c","text":"邮箱 zhang.san@example.com 收不到验证码"}"#,
    ];
    std::fs::write(&first, lines.join("\n") + "\n").unwrap();
    let second = dir.path().join("day2.jsonl");
    std::fs::write(
        &second,
        lines.join("\n") + "\n" + r#"{"id":"d","text":"客服态度很好"}"# + "\n",
    )
    .unwrap();
    let ws = dir.path().join("ws");
    let ws_s = ws.to_str().unwrap();
    common::vocmine_in(
        dir.path(),
        &["score", first.to_str().unwrap(), "--out", ws_s, "--no-mask"],
    );
    let out = common::vocmine_in(dir.path(), &["status", ws_s, second.to_str().unwrap()]);
    assert!(
        out.contains("would score 1 (1 new, 0 changed text, 0 older model), skip 3 unchanged"),
        "{out}"
    );
    // and the run it predicts is the run that happens
    let out = common::vocmine_in(
        dir.path(),
        &[
            "score",
            second.to_str().unwrap(),
            "--out",
            ws_s,
            "--no-mask",
        ],
    );
    assert!(
        out.contains("scored 1 of 4 records (0 rejected, 3 unchanged"),
        "{out}"
    );
}
