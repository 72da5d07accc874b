//! `vocmine alerts` (and `report --webhook`) against receivers this test runs on 127.0.0.1: one
//! POST per event with its figures and 3 masked examples, nothing sent twice (the delivery
//! log), retries on 500, a receiver that is down leaving the event pending for the next run, a
//! 404 refused for good, routing rules sending the VIP complaints to a queue file, errors in a
//! routes file naming the file and the key, and no personal data in any payload, queue or log.
//!
//! The run folder is written directly: scored records (with a planted spike of delivery
//! complaints in the week of 2026-10-05 and a price spike of other comments in the same
//! week) and topic assignments (the delivery comments are topic 3), as `score` and `topics`
//! write them; a run scored with `--no-mask`, so that the alerts must mask the examples.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use vocmine::record::{Scored, TaskResult};
use vocmine::workspace::{RunDir, RunSettings};

const EMAIL: &str = "li.wei@example.com";
const PHONE: &str = "13812345678";

fn task(label: &str, score: Option<f32>) -> TaskResult {
    TaskResult {
        label: label.into(),
        confidence: 0.9,
        probs: BTreeMap::new(),
        score,
        kind: None,
        labels: Vec::new(),
        alternatives: Vec::new(),
    }
}

fn scored(id: &str, day: &str, text: &str, pain: &str, sent: f32, tier: &str) -> Scored {
    let mut tasks = BTreeMap::new();
    let label = if sent < 0.0 { "negative" } else { "positive" };
    tasks.insert("sentiment".into(), task(label, Some(sent)));
    tasks.insert("pain_point".into(), task(pain, None));
    tasks.insert("intent".into(), task("complaint", None));
    Scored {
        id: id.into(),
        text: text.into(),
        lang: "en".into(),
        time: Some(format!("{day}T10:00:00Z")),
        channel: Some("app".into()),
        rating: None,
        tier: Some(tier.into()),
        product: None,
        masked: Vec::new(),
        tokens: None,
        n_tokens: 10,
        text_hash: String::new(),
        model: "m1".into(),
        aspects: None,
        tasks,
    }
}

/// A run folder `DIR/NAME` with four quiet weeks and a spike week (2026-10-05): 8 delivery
/// complaints, mostly from VIPs, one quoting an e-mail address and a phone number, and 6 price
/// comments (positive, normal tier).
fn make_run(dir: &Path, name: &str) -> RunDir {
    let run = RunDir::new(dir.join(name));
    std::fs::create_dir_all(run.topics_dir()).unwrap();
    let mut rows = Vec::new();
    for (w, day) in ["2026-09-07", "2026-09-14", "2026-09-21", "2026-09-28"]
        .iter()
        .enumerate()
    {
        rows.push(scored(
            &format!("d{w}"),
            day,
            "parcel late again",
            "delivery",
            -0.5,
            "normal",
        ));
        rows.push(scored(
            &format!("p{w}"),
            day,
            "price is fine",
            "price",
            0.5,
            "normal",
        ));
    }
    for i in 0..8 {
        let text = if i == 0 {
            format!("Courier lost my parcel, call me at {PHONE} or mail {EMAIL} now")
        } else {
            format!("parcel {i} is two weeks late")
        };
        let tier = if i < 6 { "VIP" } else { "normal" };
        let sent = if i == 0 {
            -0.99
        } else {
            -0.6 - 0.01 * i as f32
        };
        rows.push(scored(
            &format!("s{i}"),
            "2026-10-06",
            &text,
            "delivery",
            sent,
            tier,
        ));
    }
    for i in 0..6 {
        rows.push(scored(
            &format!("q{i}"),
            "2026-10-07",
            "good price this week",
            "price",
            0.4,
            "normal",
        ));
    }
    let lines: String = rows
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(run.scored(), lines).unwrap();
    let topics: String = rows
        .iter()
        .filter(|r| r.id.starts_with('d') || r.id.starts_with('s'))
        .map(|r| {
            format!(
                "{{\"id\":\"{}\",\"topic\":3,\"label\":\"late parcels\"}}\n",
                r.id
            )
        })
        .collect();
    std::fs::write(run.assignments(), topics).unwrap();
    run.save_settings(&RunSettings {
        mask_pii: false,
        ..RunSettings::default()
    })
    .unwrap();
    run
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: String,
    body: serde_json::Value,
}

/// A receiver on `addr` (a free port when `127.0.0.1:0`) that answers the statuses of
/// `script` in turn, then 200, and records every request.
fn receiver(addr: &str, script: &[u16]) -> (String, Arc<Mutex<Vec<Got>>>) {
    let l = TcpListener::bind(addr).unwrap();
    let url = format!("http://{}/hooks/secret-token", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let mut script = script.to_vec();
    script.reverse();
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
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            g.lock().unwrap().push(Got {
                headers,
                body: serde_json::from_slice(&body).unwrap(),
            });
            let code = script.pop().unwrap_or(200);
            let _ = write!(
                s,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

fn alerts_cmd(run: &RunDir, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    c.arg("alerts")
        .arg(run.path())
        .args(["--backoff-ms", "20", "--timeout-ms", "3000", "--model"])
        .arg(common::model_dir())
        .args(extra);
    c
}

fn alerts(run: &RunDir, extra: &[&str]) -> String {
    common::run_checked(alerts_cmd(run, &[]), extra)
}

fn log_lines(run: &RunDir) -> Vec<serde_json::Value> {
    common::read_jsonl(&run.delivery_log())
}

fn assert_no_pii(what: &str, text: &str) {
    assert!(
        !text.contains(EMAIL) && !text.contains(PHONE),
        "{what}: {text}"
    );
    assert!(
        !text.contains("secret-token"),
        "{what} shows a hook's path: {text}"
    );
}

fn delivery_id() -> String {
    vocmine::alerts::event_id("pain_point", "delivery", "volume", "2026-10-05")
}

fn price_id() -> String {
    vocmine::alerts::event_id("pain_point", "price", "volume", "2026-10-05")
}

#[test]
fn one_post_per_event_with_masked_examples_and_nothing_sent_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "shop-run");
    let (url, got) = receiver("127.0.0.1:0", &[]);

    // A dry run says what it would send and sends, queues and logs nothing.
    let out = alerts(&run, &["--webhook", &url, "--dry-run"]);
    assert_eq!(out.matches("would send").count(), 2, "{out}");
    assert!(got.lock().unwrap().is_empty() && !run.delivery_log().exists());

    let out = alerts(&run, &["--webhook", &url]);
    assert!(out.contains("2 events: 2 sent"), "{out}");
    assert_no_pii("output", &out);
    let bodies: Vec<Got> = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one POST per event: {bodies:?}");
    let d = &bodies.iter().find(|g| g.body["key"] == "delivery").unwrap();
    let b = &d.body;
    assert_eq!(b["event"], delivery_id());
    assert!(
        d.headers
            .contains(&format!("Idempotency-Key: {}", delivery_id())),
        "{}",
        d.headers
    );
    assert_eq!(
        (b["kind"].as_str(), b["name"].as_str()),
        (Some("pain_point"), Some("Delivery"))
    );
    assert_eq!(
        (b["metric"].as_str(), b["period"].as_str()),
        (Some("volume"), Some("2026-10-05"))
    );
    assert_eq!(b["value"], 8.0);
    assert_eq!(
        (b["baseline_mean"].as_f64(), b["baseline_sd"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    assert!((b["z"].as_f64().unwrap() - 7.0).abs() < 1e-9, "{b}");
    // The topic of the same complaints is this event, not another POST.
    assert_eq!(
        b["related"],
        serde_json::json!(["topic late parcels (volume)"])
    );
    assert_eq!(b["comments"], 8);
    assert_eq!(b["attributes"]["tier"], "vip");
    assert_eq!(b["attributes"]["sentiment"], "negative");
    assert_eq!(
        (b["run"].as_str(), b["model"].as_str()),
        (Some("shop-run"), Some("m1"))
    );
    // 3 examples, most severe first, personal data masked (the run was scored unmasked).
    let ex = b["examples"].as_array().unwrap();
    let ids: Vec<&str> = ex.iter().map(|e| e["id"].as_str().unwrap()).collect();
    // s0 is the most negative; then the VIPs (tier weight 1.3) before the more negative others.
    assert_eq!(ids, ["s0", "s5", "s4"]);
    let first = ex[0]["text"].as_str().unwrap();
    assert!(
        first.contains("<PHONE>") && first.contains("<EMAIL>"),
        "{first}"
    );
    assert_eq!(ex[1]["text"], "parcel 5 is two weeks late");
    let p = &bodies
        .iter()
        .find(|g| g.body["key"] == "price")
        .unwrap()
        .body;
    assert_eq!(p["event"], price_id());
    assert_eq!(p["related"], serde_json::json!([]));
    for g in &bodies {
        assert_no_pii("payload", &g.body.to_string());
    }

    // The log: one delivered line per event; a rerun sends nothing.
    let log = log_lines(&run);
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|l| l["status"] == "delivered" && l["attempts"] == 1));
    assert_no_pii("log", &std::fs::read_to_string(run.delivery_log()).unwrap());
    let out = alerts(&run, &["--webhook", &url]);
    assert!(
        out.contains("2 events: 0 sent, 0 queued, 2 already done"),
        "{out}"
    );
    assert_eq!(got.lock().unwrap().len(), 2);
    assert_eq!(log_lines(&run).len(), 2);

    // `report --webhook` shares the log: the same events are not sent again.
    let out = report_with_webhook(&run, &url);
    assert!(
        out.contains("2 already done") && run.report_json().exists(),
        "{out}"
    );
    assert_eq!(got.lock().unwrap().len(), 2);
}

/// `vocmine report RUN --webhook URL`, checked to succeed; its output.
fn report_with_webhook(run: &RunDir, url: &str) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    c.arg("report")
        .arg(run.path())
        .arg("--model")
        .arg(common::model_dir());
    common::run_checked(c, &["--webhook", url])
}

#[test]
fn report_webhook_sends_after_writing_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "run");
    let (url, got) = receiver("127.0.0.1:0", &[]);
    let out = report_with_webhook(&run, &url);
    assert!(
        out.contains("2 sent") && run.report_json().exists(),
        "{out}"
    );
    assert_eq!(got.lock().unwrap().len(), 2);
}

#[test]
fn a_500_is_retried_with_backoff_and_a_404_refused_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "run");
    let (url, got) = receiver("127.0.0.1:0", &[500, 500]);
    let t = std::time::Instant::now();
    let out = alerts(&run, &["--webhook", &url, "--attempts", "3"]);
    // Waits of 20 then 40 ms between the tries.
    assert!(t.elapsed() >= std::time::Duration::from_millis(60));
    assert!(out.contains("2 sent"), "{out}");
    let g = got.lock().unwrap().clone();
    let first = g[0].body["event"].clone();
    assert_eq!(g.len(), 4, "{g:?}");
    assert!(g[..3].iter().all(|x| x.body["event"] == first));
    let log = log_lines(&run);
    let e = log.iter().find(|l| l["event"] == first).unwrap();
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_u64()),
        (Some("delivered"), Some(3))
    );

    // 404: refused, logged, not retried (and the command says it failed).
    let run = make_run(tmp.path(), "run404");
    let (url, got) = receiver("127.0.0.1:0", &[404, 404]);
    let err = common::stderr_of_failure(alerts_cmd(&run, &["--webhook", &url]));
    assert!(err.contains("2 refused for good"), "{err}");
    assert_eq!(got.lock().unwrap().len(), 2);
    assert!(log_lines(&run)
        .iter()
        .all(|l| l["status"] == "rejected" && l["http"] == 404));
    let out = alerts(&run, &["--webhook", &url]);
    assert!(out.contains("2 already done"), "{out}");
    assert_eq!(got.lock().unwrap().len(), 2);
}

#[test]
fn a_receiver_that_is_down_leaves_the_events_pending_for_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "run");
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let url = format!("http://{addr}/hooks/secret-token");
    let err = common::stderr_of_failure(alerts_cmd(&run, &["--webhook", &url, "--attempts", "2"]));
    assert!(err.contains("2 pending"), "{err}");
    let log = log_lines(&run);
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|l| l["status"] == "failed" && l["attempts"] == 2),
        "{log:?}"
    );
    assert_eq!(log[0]["target"], format!("http://{addr}"));

    // The receiver comes up on the same port: the next run delivers both, the one after nothing.
    let (_, got) = receiver(&addr, &[]);
    let out = alerts(&run, &["--webhook", &url]);
    assert!(out.contains("2 sent"), "{out}");
    assert_eq!(got.lock().unwrap().len(), 2);
    alerts(&run, &["--webhook", &url]);
    assert_eq!(got.lock().unwrap().len(), 2);
    let states: Vec<String> = log_lines(&run)
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["failed", "failed", "delivered", "delivered"]);
}

fn write_routes(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("routes.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn routes_send_the_vip_complaints_to_a_queue_and_the_rest_to_the_webhook() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "run");
    let (url, got) = receiver("127.0.0.1:0", &[]);
    let routes = write_routes(
        tmp.path(),
        "[[route]]\nname = \"vip complaints\"\nsentiment = \"negative\"\ntier = \"vip\"\nqueue = \"vip-negative\"\n",
    );
    let routes = routes.to_str().unwrap();
    let out = alerts(&run, &["--routes", routes, "--webhook", &url]);
    assert!(out.contains("1 sent, 1 queued"), "{out}");
    let g = got.lock().unwrap().clone();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].body["event"], price_id());
    let queue = run.alert_queue("vip-negative");
    let q = common::read_jsonl(&queue);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["event"], delivery_id());
    assert_eq!(q[0]["examples"].as_array().unwrap().len(), 3);
    assert_no_pii("queue", &std::fs::read_to_string(&queue).unwrap());
    let log = log_lines(&run);
    let routed: Vec<(&str, &str)> = log
        .iter()
        .map(|l| (l["route"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert!(
        routed.contains(&("vip complaints", "queued"))
            && routed.contains(&("default", "delivered")),
        "{routed:?}"
    );
    // A rerun queues and sends nothing more.
    let out = alerts(&run, &["--routes", routes, "--webhook", &url]);
    assert!(out.contains("2 already done"), "{out}");
    assert_eq!(common::read_jsonl(&queue).len(), 1);
    assert_eq!(got.lock().unwrap().len(), 1);

    // Without a default route, the event no rule takes is skipped, not logged.
    let run = make_run(tmp.path(), "run2");
    let out = alerts(&run, &["--routes", routes]);
    assert!(
        out.contains("1 queued") && out.contains("1 without a route"),
        "{out}"
    );
    assert_eq!(log_lines(&run).len(), 1);
}

#[test]
fn a_bad_routes_file_is_an_error_naming_the_file_and_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(tmp.path(), "run");
    let routes = write_routes(tmp.path(), "[[route]]\ntier = 3\nqueue = \"q\"\n");
    let err = common::stderr_of_failure(alerts_cmd(&run, &["--routes", routes.to_str().unwrap()]));
    assert!(
        err.contains("routes.toml") && err.contains("route 1: key `tier`"),
        "{err}"
    );
    let routes = write_routes(
        tmp.path(),
        "[[route]]\nwebhook = \"https://hooks.example/x\"\n",
    );
    let err = common::stderr_of_failure(alerts_cmd(&run, &["--routes", routes.to_str().unwrap()]));
    assert!(
        err.contains("routes.toml") && err.contains("key `webhook`: https is not supported"),
        "{err}"
    );
    let err = common::stderr_of_failure(alerts_cmd(&run, &[]));
    assert!(err.contains("--webhook URL or --routes FILE"), "{err}");
    assert!(!run.delivery_log().exists());
}
