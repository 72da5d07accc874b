//! Nightly runs: killed runs resume to the same output, reruns are no-ops, new model versions
//! and changed texts are rescored, and a second run on a busy workspace is refused.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vocmine::rng::Rng;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    c.current_dir(common::root());
    c
}

/// ~5,000 distinct realistic comments: the sample's texts with order references.
fn write_comments(path: &Path, n: usize) {
    let mut rdr =
        csv::Reader::from_path(common::root().join("corpora/sample/comments.csv")).unwrap();
    let texts: Vec<String> = rdr.records().map(|r| r.unwrap()[1].to_string()).collect();
    let mut out = String::new();
    for i in 0..n {
        let t = &texts[i % texts.len()];
        let channel = ["app", "email", "hotline"][i % 3];
        let line = serde_json::json!({
            "id": format!("n{i:05}"),
            "text": format!("{} (order #{})", t, 100_000 + i),
            "channel": channel,
        });
        out += &line.to_string();
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn score_args<'a>(input: &'a str, ws: &'a str, tasks: &'a str) -> Vec<&'a str> {
    vec![
        "score",
        input,
        "--out",
        ws,
        "--tasks",
        tasks,
        "--chunk",
        "256",
        "--checkpoint-every",
        "1",
    ]
}

fn run_ok(args: &[&str]) -> String {
    let o = bin().args(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn summary(ws: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(ws.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("night.jsonl");
    write_comments(&input, 5000);
    let input_s = input.to_str().unwrap();

    let reference = dir.path().join("reference");
    let t0 = Instant::now();
    run_ok(&score_args(
        input_s,
        reference.to_str().unwrap(),
        "sentiment",
    ));
    let full = t0.elapsed();

    let ws = dir.path().join("killed");
    let ws_s = ws.to_str().unwrap();
    let mut rng = Rng::new(2026);
    let mut kills = 0;
    for _ in 0..4 {
        let mut child = bin()
            .args(score_args(input_s, ws_s, "sentiment"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // somewhere between 10% and 60% of a full run
        let wait = full.mul_f64(0.1 + 0.5 * rng.next_f64());
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
            child.wait().unwrap();
        } else {
            break; // it finished on its own
        }
    }
    assert!(
        kills >= 2,
        "the runs should have been killed mid-way ({kills})"
    );
    run_ok(&score_args(input_s, ws_s, "sentiment"));
    let s = summary(&ws);
    // the first run to finish came after a kill: it resumed from the committed checkpoints
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("state/manifest.json")).unwrap())
            .unwrap();
    let first = &manifest["runs"][0];
    assert!(
        first["unchanged"].as_u64().unwrap() > 0 && first["scored"].as_u64().unwrap() < 5000,
        "the run after the kills resumed, it did not start over: {first}"
    );
    assert_eq!(s["total_scored"], 5000);
    let a = std::fs::read(reference.join("scored.jsonl")).unwrap();
    let b = std::fs::read(ws.join("scored.jsonl")).unwrap();
    assert_eq!(
        a.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count(),
        5000
    );
    assert!(
        a == b,
        "scored.jsonl after kills differs from the uninterrupted run"
    );
    assert_eq!(
        std::fs::read(reference.join("rejects.jsonl")).unwrap(),
        std::fs::read(ws.join("rejects.jsonl")).unwrap()
    );
}

#[test]
fn reruns_skip_what_is_scored_and_rescore_changes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("day1.jsonl");
    write_comments(&input, 300);
    let ws = dir.path().join("ws");
    let (i, w) = (input.to_str().unwrap(), ws.to_str().unwrap());
    run_ok(&score_args(i, w, "sentiment"));
    let first = summary(&ws);
    assert_eq!(first["new"], 300);
    // the workspace's totals: every comment's label and language, counted in scored.jsonl
    let sum_of = |v: &serde_json::Value| {
        v.as_object()
            .unwrap()
            .values()
            .map(|x| x.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(first["total_labels"], first["labels"]);
    assert_eq!(sum_of(&first["total_labels"]["sentiment"]), 300);
    assert_eq!(sum_of(&first["total_languages"]), 300);

    // the same night again: a no-op, which keeps the run's totals
    let out = run_ok(&score_args(i, w, "sentiment"));
    let s = summary(&ws);
    assert_eq!(s["scored"], 0, "{out}");
    assert_eq!(s["files_skipped"].as_array().unwrap().len(), 1);
    assert_eq!(s["total_scored"], 300);
    assert_eq!(s["total_labels"], first["labels"], "{out}");
    assert_eq!(s["total_languages"], first["languages"]);
    assert!(out.contains("in the whole workspace:"), "{out}");

    // a second file: one changed text, one new comment, the rest the same
    let day2 = dir.path().join("day2.jsonl");
    let mut body = std::fs::read_to_string(&input).unwrap();
    body = body.replacen(
        "(order #100000)",
        "(order #100000) update: still not delivered",
        1,
    );
    body += "{\"id\": \"n99999\", \"text\": \"新来的评论：物流太慢\"}\n";
    std::fs::write(&day2, body).unwrap();
    run_ok(&score_args(day2.to_str().unwrap(), w, "sentiment"));
    let s = summary(&ws);
    assert_eq!(
        (
            s["new"].as_u64(),
            s["changed_text"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(1), Some(1), Some(299))
    );
    assert_eq!(s["total_scored"], 301);
    assert_eq!(sum_of(&s["total_labels"]["sentiment"]), 301);
    let scored = std::fs::read_to_string(ws.join("scored.jsonl")).unwrap();
    let n0: Vec<&str> = scored
        .lines()
        .filter(|l| l.contains("\"id\":\"n00000\""))
        .collect();
    assert_eq!(n0.len(), 1, "a rescored comment appears once");
    assert!(
        n0[0].contains("still not delivered"),
        "with its latest text"
    );

    // a new model version (another task set) rescores everything
    let out = run_ok(&score_args(day2.to_str().unwrap(), w, "sentiment,intent"));
    let s = summary(&ws);
    assert_eq!(s["older_model"], 301, "{out}");
    assert_eq!(s["total_scored"], 301);
    assert!(std::fs::read_to_string(ws.join("scored.jsonl"))
        .unwrap()
        .lines()
        .all(|l| l.contains("\"intent\":")));

    // status tells what a run would do now
    let st = run_ok(&[
        "status",
        w,
        day2.to_str().unwrap(),
        "--tasks",
        "sentiment,intent",
    ]);
    assert!(
        st.contains("would score 0") && st.contains("skip 0 unchanged and 1 whole files"),
        "{st}"
    );
    let st = run_ok(&["status", w, input.to_str().unwrap(), "--tasks", "sentiment"]);
    assert!(
        st.contains("300 older model") || st.contains("would score 300"),
        "{st}"
    );
}

#[test]
fn a_second_run_on_a_busy_workspace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_comments(&input, 10);
    let ws_dir = dir.path().join("ws");
    let _held = vocmine::workspace::Workspace::open(&ws_dir).unwrap();
    let mut cmd = bin();
    cmd.args(score_args(
        input.to_str().unwrap(),
        ws_dir.to_str().unwrap(),
        "sentiment",
    ));
    let err = common::stderr_of_failure(cmd);
    assert!(
        err.contains("another vocmine run is using this workspace"),
        "{err}"
    );
    assert!(
        !ws_dir.join("scored.jsonl").exists(),
        "nothing written by the refused run"
    );
    let _ = Duration::from_secs(0);
}
