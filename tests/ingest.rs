//! Ingest and command-line behaviour through the real binary: unbalanced CSV quotes, input
//! folders (gzip, BOMs, notes, duplicates across files), a closed stdout, help texts and the
//! default model folder.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    c.env_remove("VOCMINE_MODEL");
    c
}

fn output(mut cmd: Command) -> (String, String) {
    let o = cmd.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{cmd:?}\n{out}\n{err}");
    (out, err)
}

fn ids(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = common::read_jsonl(path)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn an_unbalanced_quote_costs_one_record_in_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.csv");
    std::fs::write(
        &q,
        "id,text\nr1,ok\nq1,\"open quote\nr2,物流太慢\nr3,退款没到\n",
    )
    .unwrap();
    let w = dir.path().join("W");
    let mut cmd = bin();
    cmd.arg("score").arg(&q).arg("--out").arg(&w);
    cmd.args(["--tasks", "sentiment", "--no-index"]);
    let (out, _) = output(cmd);
    assert!(out.contains("scored 3 of 4 records (1 rejected"), "{out}");
    assert_eq!(ids(&w.join("scored.jsonl")), ["r1", "r2", "r3"]);
    let rej = common::read_jsonl(&w.join("rejects.jsonl"));
    assert_eq!(rej.len(), 1);
    assert_eq!(
        (&rej[0]["id"], &rej[0]["line"], &rej[0]["field"]),
        (
            &serde_json::json!("q1"),
            &serde_json::json!(3),
            &serde_json::json!("text")
        )
    );
}

#[test]
fn a_folder_run_reads_gzip_and_bom_files_notes_the_rest_and_rejects_duplicates_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(
        input.join("a.csv"),
        "id,text\nd1,物流太慢了\nd2,客服态度很好\nd3,退款没到\n",
    )
    .unwrap();
    std::fs::write(
        input.join("b.jsonl"),
        "\u{feff}{\"id\": \"d4\", \"text\": \"great app\"}\n{\"id\": \"d1\", \"text\": \"the same id again\"}\n",
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(input.join("c.csv.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all("id,text\nd5,包装破损\nd6,\"送货很快\n点赞\"\n".as_bytes())
        .unwrap();
    gz.finish().unwrap();
    std::fs::write(
        input.join("README.txt"),
        "exported from the CRM on Monday\n",
    )
    .unwrap();
    let w = dir.path().join("W");
    let mut cmd = bin();
    cmd.arg("score").arg(&input).arg("--out").arg(&w);
    cmd.args(["--tasks", "sentiment", "--no-index"]);
    let (out, err) = output(cmd);
    assert!(
        err.contains("note: skipped") && err.contains("README.txt"),
        "{err}"
    );
    assert!(out.contains("scored 6 of 7 records (1 rejected"), "{out}");
    assert_eq!(
        ids(&w.join("scored.jsonl")),
        ["d1", "d2", "d3", "d4", "d5", "d6"]
    );
    let rej = common::read_jsonl(&w.join("rejects.jsonl"));
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert!(rej[0]["file"].as_str().unwrap().ends_with("b.jsonl"));
    assert_eq!(rej[0]["line"], 2);
    assert_eq!(rej[0]["field"], "id");
    let reason = rej[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("duplicate id (first seen in") && reason.contains("a.csv, line 2"),
        "{reason}"
    );
}

/// What users export first: an Excel workbook and a GB18030 CSV from Excel on Chinese Windows
/// (semicolon-delimited), read from one folder; every id ends in scored.jsonl or rejects.jsonl,
/// and the Chinese text comes out as written.
#[test]
fn a_folder_run_reads_an_excel_workbook_and_a_gb18030_semicolon_csv() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let csv = "id;text;rating\ng1;物流太慢了，等了一个星期;1\ng2;质量很好，下次还来;5\n";
    let mut bytes = encoding_rs::GB18030.encode(csv).0.into_owned();
    bytes.extend_from_slice(b"g3;bad \x81\x20 bytes;2\n");
    std::fs::write(input.join("export.csv"), bytes).unwrap();
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["id", "text", "tier"].iter().enumerate() {
        ws.write(0, c as u16, *h).unwrap();
    }
    ws.write(1, 0, 7001).unwrap();
    ws.write(1, 1, "請問可以退貨嗎？").unwrap();
    ws.write(1, 2, "vip").unwrap();
    ws.write(2, 0, 7002).unwrap();
    ws.write(2, 2, "gold").unwrap();
    wb.save(input.join("tickets.xlsx")).unwrap();
    let w = dir.path().join("W");
    let mut cmd = bin();
    cmd.arg("score").arg(&input).arg("--out").arg(&w);
    cmd.args(["--tasks", "sentiment", "--no-index"]);
    let (out, _) = output(cmd);
    assert!(out.contains("scored 3 of 5 records (2 rejected"), "{out}");
    let scored = common::read_jsonl(&w.join("scored.jsonl"));
    let text = |id: &str| {
        scored
            .iter()
            .find(|l| l["id"] == id)
            .map(|l| l["text"].as_str().unwrap().to_string())
    };
    assert_eq!(text("g1").as_deref(), Some("物流太慢了，等了一个星期"));
    assert_eq!(text("7001").as_deref(), Some("請問可以退貨嗎？"));
    let mut rej: Vec<(String, u64, String)> = common::read_jsonl(&w.join("rejects.jsonl"))
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rej.sort();
    assert_eq!(rej.len(), 2, "{rej:?}");
    assert_eq!((rej[0].0.as_str(), rej[0].1), ("7002", 3));
    assert_eq!((rej[1].0.as_str(), rej[1].1), ("g3", 4));
    assert!(
        rej[1]
            .2
            .starts_with("bytes that are not valid gb18030 (the file's encoding was detected"),
        "{}",
        rej[1].2
    );
}

/// Runs `cmd` with its stdout closed before it writes anything (as `| head -1` does once it
/// has its line); returns stderr after checking that the command succeeded.
fn run_with_closed_stdout(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{cmd:?}: {:?}\n{err}", o.status);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_closed_stdout_ends_score_and_search_quietly_with_their_work_done() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("c.csv");
    std::fs::write(
        &csv,
        "id,text\np1,物流太慢了\np2,退款一直没到\np3,great service\n",
    )
    .unwrap();
    let w = dir.path().join("W");
    let mut cmd = bin();
    cmd.arg("score").arg(&csv).arg("--out").arg(&w);
    cmd.args(["--tasks", "sentiment"]);
    run_with_closed_stdout(cmd);
    assert_eq!(ids(&w.join("scored.jsonl")), ["p1", "p2", "p3"]);
    // the index was built although nothing could be printed
    assert!(w.join("index").join("meta.json").is_file());
    let mut cmd = bin();
    cmd.arg("search").arg(&w).arg("退款");
    run_with_closed_stdout(cmd);
    // and the index answers
    let mut cmd = bin();
    cmd.arg("search").arg(&w).arg("退款");
    let (out, _) = output(cmd);
    assert!(out.starts_with("1 comments match"), "{out}");
}

#[test]
fn help_shows_one_default_per_option_and_max_share_as_a_soft_target() {
    for sub in [
        "score",
        "train",
        "bench",
        "eval",
        "status",
        "index",
        "search",
        "serve",
        "bench-search",
        "topics",
        "topics-eval",
        "report",
    ] {
        let mut cmd = bin();
        cmd.args([sub, "--help"]);
        let (help, _) = output(cmd);
        // an option's block: its name line and the more-indented lines under it
        let mut blocks: Vec<String> = Vec::new();
        for line in help.lines() {
            let indent = line.len() - line.trim_start().len();
            let t = line.trim_start();
            if indent < 8 && (t.starts_with('-') || t.starts_with('<') || t.starts_with('[')) {
                blocks.push(String::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(line);
                b.push('\n');
            }
        }
        for b in &blocks {
            assert!(b.matches("[default:").count() <= 1, "{sub} --help:\n{b}");
        }
        if sub == "topics" {
            assert!(help.contains("soft target"), "{help}");
        }
    }
}

#[test]
fn a_copied_binary_looks_beside_itself_for_models_and_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("bin")).unwrap();
    let copy = d.join("bin").join("vocmine");
    std::fs::copy(env!("CARGO_BIN_EXE_vocmine"), &copy).unwrap();
    // a broken bundle one folder above the binary: found before the build-time models/
    std::fs::create_dir(d.join("models")).unwrap();
    std::fs::write(d.join("models").join("vocmine.toml"), "this is [not toml").unwrap();
    std::fs::write(d.join("c.csv"), "id,text\nm1,ok\n").unwrap();
    let run = |env: Option<&Path>| {
        let mut cmd = Command::new(&copy);
        cmd.current_dir(d).env_remove("VOCMINE_MODEL");
        if let Some(e) = env {
            cmd.env("VOCMINE_MODEL", e);
        }
        cmd.args(["score", "c.csv", "--out", "W", "--no-index"]);
        common::stderr_of_failure(cmd)
    };
    let err = run(None);
    let beside = d.join("bin").join("..").join("models");
    assert!(
        err.contains(&format!("cannot open model folder {}", beside.display())),
        "{err}"
    );
    // $VOCMINE_MODEL comes first
    let err = run(Some(&d.join("no-such-model")));
    assert!(err.contains("no-such-model"), "{err}");
}
