//! Alerts after `/score` batches (issue 36 item 5): a real `vocmine serve --score --index RUN
//! --webhook URL` with the shipped model, and a receiver this test runs on 127.0.0.1. Four
//! quiet weeks and a planted spike of delivery complaints are posted to `/score` with their
//! times: the receiver gets exactly one alert for the spike, with its metric and no personal
//! data, and nothing twice after more batches or a restart; a SIGTERM right after the spike
//! still delivers it (the last evaluation at shutdown); `vocmine report RUN` and
//! `vocmine alerts RUN` see the served comments.

mod common;

use common::{http, sigterm};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vocmine::workspace::RunDir;

const COMPLAINT: &str = "快递太慢了，等了一个星期还没到，物流信息也不更新";
const PRAISE: &str = "Great product, works perfectly, very happy with it";
const PHONE: &str = "13812345678";

/// One request the receiver got: its headers and JSON body.
type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A receiver on a free loopback port answering 200 to every POST; its URL and what it got.
fn receiver() -> (String, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/team", l.local_addr().unwrap());
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut headers = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push_str(&line);
            }
            let len: usize = headers
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")?.trim().parse().ok()
                })
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            g.lock().unwrap().push((headers, body));
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

/// A server that is killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vocmine serve --score --index RUN --webhook URL` with `extra` flags.
fn start(run: &Path, url: &str, extra: &[&str]) -> (Server, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["--addr".into(), "127.0.0.1:0".into()];
    args.extend(["--model".into(), common::model_dir().into_os_string()]);
    args.extend(["--score".into(), "--index".into(), run.as_os_str().into()]);
    for a in [
        "--webhook",
        url,
        "--backoff-ms",
        "20",
        "--timeout-ms",
        "5000",
    ]
    .iter()
    .chain(extra)
    {
        args.push(a.into());
    }
    let (child, addr) = common::start_serve(args);
    (Server(child), addr)
}

/// `n` complaints and `praise` happy comments on `day`, ids prefixed with `tag`.
fn week(tag: &str, day: &str, n: usize, praise: usize) -> Vec<Value> {
    let time = format!("{day}T09:30:00Z");
    let mut v: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{tag}-c{i}"), "text": COMPLAINT, "time": time, "channel": "app", "tier": "VIP"}))
        .collect();
    v.extend((0..praise).map(
        |i| json!({"id": format!("{tag}-p{i}"), "text": PRAISE, "time": time, "channel": "web"}),
    ));
    v
}

fn quiet_weeks() -> Vec<Value> {
    ["2026-09-08", "2026-09-15", "2026-09-22", "2026-09-29"]
        .iter()
        .enumerate()
        .flat_map(|(i, d)| week(&format!("w{i}"), d, 1, 2))
        .collect()
}

/// The spike week (2026-10-05): 8 complaints, one quoting a phone number.
fn spike() -> Vec<Value> {
    let mut v = week("spike", "2026-10-07", 8, 2);
    v[0]["id"] = json!("spike-phone");
    v[0]["text"] = json!(format!("{COMPLAINT}，打我电话{PHONE}"));
    v
}

/// Posts `comments` to `/score`; asserts they were all scored and returns the records.
fn score(addr: &str, comments: &[Value]) -> Vec<Value> {
    let body = json!({ "comments": comments }).to_string();
    let (st, _, resp) = http(addr, "POST", "/score", &[], &body);
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    let scored = v["scored"].as_array().unwrap().clone();
    assert_eq!(scored.len(), comments.len(), "{v}");
    scored
}

/// A counter of the server's `/metrics`.
fn counter(addr: &str, name: &str) -> f64 {
    let (st, _, text) = http(addr, "GET", "/metrics", &[], "");
    assert_eq!(st, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

/// Waits (at most 60 s) until `ok()`.
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for an evaluation of the alerts that ends after this call.
fn wait_for_evaluation(addr: &str, after: f64) {
    wait_for("an evaluation of the alerts", || {
        counter(addr, "vocmine_alert_evaluations_total") > after
    });
}

#[test]
fn one_alert_per_event_after_score_batches_and_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("shop");
    let (url, got) = receiver();
    let fast = ["--commit-every", "0.2", "--alert-every", "0.3"];
    let (mut child, addr) = start(&run, &url, &fast);

    // Four quiet weeks: an evaluation, no alert.
    let quiet = score(&addr, &quiet_weeks());
    wait_for_evaluation(&addr, 0.0);
    assert!(got.lock().unwrap().is_empty(), "{:?}", got.lock().unwrap());

    // The spike: one alert, for the complaints' pain point, its volume in the week of 10-05.
    let spiked = score(&addr, &spike());
    let label = |r: &Value| r["pain_point"]["label"].as_str().unwrap().to_string();
    let pain = label(&spiked[0]);
    let complaints = quiet
        .iter()
        .chain(&spiked)
        .filter(|r| r["id"].as_str().unwrap().contains("-c") || r["id"] == "spike-phone");
    for r in complaints {
        assert_eq!(label(r), pain, "{r}");
        assert_eq!(r["sentiment"]["label"], "negative", "{r}");
    }
    wait_for("the alert", || !got.lock().unwrap().is_empty());
    wait_for("its count", || {
        counter(&addr, "vocmine_alerts_delivered_total") == 1.0
    });
    let evaluations = counter(&addr, "vocmine_alert_evaluations_total");
    let (headers, b) = got.lock().unwrap()[0].clone();
    let event = vocmine::alerts::event_id("pain_point", &pain, "volume", "2026-10-05");
    assert_eq!(b["event"], event.as_str(), "{b}");
    assert!(
        headers.contains(&format!("Idempotency-Key: {event}")),
        "{headers}"
    );
    assert_eq!(
        (b["kind"].as_str(), b["key"].as_str()),
        (Some("pain_point"), Some(pain.as_str()))
    );
    assert_eq!(
        (b["metric"].as_str(), b["period"].as_str()),
        (Some("volume"), Some("2026-10-05"))
    );
    assert_eq!(
        (b["value"].as_f64(), b["baseline_mean"].as_f64()),
        (Some(8.0), Some(1.0))
    );
    assert_eq!(
        (b["comments"].as_u64(), b["run"].as_str()),
        (Some(8), Some("shop"))
    );
    assert_eq!(b["model"], spiked[0]["model"]);
    assert_eq!(b["examples"].as_array().unwrap().len(), 3);
    assert!(!b.to_string().contains(PHONE), "PII in the payload: {b}");

    // More batches (a quiet week after): evaluated, nothing sent again.
    score(&addr, &week("after", "2026-10-14", 1, 2));
    wait_for_evaluation(&addr, evaluations);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert!(sigterm(&mut child.0).success());
    assert_eq!(got.lock().unwrap().len(), 1);

    // A restart evaluates the run at start and after a batch: still nothing twice.
    let (mut child, addr) = start(&run, &url, &fast);
    wait_for_evaluation(&addr, 0.0);
    score(&addr, &week("later", "2026-10-21", 1, 2));
    wait_for_evaluation(&addr, 1.0);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(counter(&addr, "vocmine_alerts_delivered_total"), 0.0);
    assert!(sigterm(&mut child.0).success());
    assert_eq!(got.lock().unwrap().len(), 1);
    let log = common::read_jsonl(&RunDir::new(&run).delivery_log());
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0]["event"].as_str(), log[0]["status"].as_str()),
        (Some(event.as_str()), Some("delivered"))
    );

    // `vocmine alerts` and `vocmine report` see the served comments: the same event, already
    // delivered; every comment in the report, none of its text unmasked.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.arg("alerts")
        .arg(&run)
        .args(["--webhook", &url, "--model"])
        .arg(common::model_dir());
    let out = common::run_checked(cmd, &[]);
    assert!(
        out.contains("1 events: 0 sent, 0 queued, 1 already done"),
        "{out}"
    );
    assert!(out.contains(&event), "{out}");
    assert_eq!(got.lock().unwrap().len(), 1);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.arg("report")
        .arg(&run)
        .arg("--model")
        .arg(common::model_dir());
    common::run_checked(cmd, &[]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(RunDir::new(&run).report_json()).unwrap())
            .unwrap();
    assert_eq!(report["comments"], 12 + 10 + 3 + 3);
    let p = report["pain_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == pain.as_str())
        .unwrap();
    assert_eq!(p["volume"], 4 + 8 + 1 + 1);
    assert_eq!(report["alerts"].as_array().unwrap().len(), 1);
    assert!(!std::fs::read_to_string(RunDir::new(&run).report_json())
        .unwrap()
        .contains(PHONE));
}

#[test]
fn sigterm_right_after_a_spike_still_delivers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("late");
    let (url, got) = receiver();
    // Nothing is committed (so nothing evaluated) before the shutdown.
    let slow = ["--commit-every", "600", "--alert-every", "600"];
    let (mut child, addr) = start(&run, &url, &slow);
    let mut all = quiet_weeks();
    all.extend(spike());
    score(&addr, &all);
    assert!(got.lock().unwrap().is_empty());
    assert!(sigterm(&mut child.0).success());
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].1["metric"].as_str(), got[0].1["run"].as_str()),
        (Some("volume"), Some("late"))
    );
    assert!(!got[0].1.to_string().contains(PHONE));
    // every served comment was synced before the exit
    let served = common::read_jsonl(&RunDir::new(&run).served());
    assert_eq!(served.len(), all.len());
    assert!(served.iter().all(|r| !r.to_string().contains(PHONE)));
}
