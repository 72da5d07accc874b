//! The real-time service (issue 36): a real `vocmine serve --score` process with the shipped
//! model on a free loopback port. Its records equal those of `vocmine score` on the same
//! input, personal data is masked, the limits and the Host check answer, scored comments reach
//! the index, and SIGTERM loses nothing.

mod common;

use common::{http, sigterm};

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts `vocmine serve` with `args` on a free loopback port; the child and its address.
fn start(args: &[&str]) -> (Child, String) {
    let mut all: Vec<std::ffi::OsString> = vec!["--addr".into(), "127.0.0.1:0".into()];
    all.push("--model".into());
    all.push(common::model_dir().into());
    all.extend(args.iter().map(Into::into));
    common::start_serve(all)
}

fn post_score(addr: &str, comments: &[Value]) -> (u16, Value) {
    let (st, _, body) = http(
        addr,
        "POST",
        "/score",
        &[("Content-Type", "application/json")],
        &json!({ "comments": comments }).to_string(),
    );
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn comments() -> Vec<Value> {
    vec![
        json!({"id": "c1", "text": "物流太慢了，等了一个星期还没到", "time": "2026-10-01", "channel": "app_review", "rating": 1, "tier": "VIP", "product": "X5"}),
        json!({"id": "c2", "text": "Great service, thanks! 😀👍", "channel": "twitter", "rating": "5"}),
        json!({"id": "c3", "text": "退貨流程太麻煩了"}),
        json!({"id": "c4", "text": "call me on 13812345678 or mail zhang.wei@example.com"}),
        json!({"text": "App 一直 crash，登录不了"}),
        json!({"id": "c6", "text": " \u{200b} "}),
        json!({"id": "c7", "text": "bad rating", "rating": "lots"}),
        json!({"id": "c1", "text": "a duplicate id"}),
        json!({"id": "c9", "text": 42}),
        json!({"id": "c10", "text": "客服电话一直打不通，退款申请提交三次都没反应"}),
        json!({"id": "c11", "text": "The refund took three weeks and nobody answered my emails"}),
        json!({"id": "c12", "text": "包装很好，下次还会买"}),
    ]
}

/// Asserts two scored records are the same: every field equal, probabilities within 1e-6.
fn assert_same_record(a: &Value, b: &Value) {
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{a:?}\n{b:?}"
    );
    for (k, va) in a {
        let vb = &b[k];
        if va.get("probs").is_some() {
            assert_eq!(va["label"], vb["label"], "{k} of {}", a["id"]);
            for (l, p) in va["probs"].as_object().unwrap() {
                let d = (p.as_f64().unwrap() - vb["probs"][l].as_f64().unwrap()).abs();
                assert!(
                    d <= 1e-6,
                    "{k}.{l} of {}: {p} vs {}",
                    a["id"],
                    vb["probs"][l]
                );
            }
        } else {
            assert_eq!(va, vb, "{k} of {}", a["id"]);
        }
    }
}

#[test]
fn score_answers_the_records_of_vocmine_score_with_pii_masked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = comments().iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run = dir.path().join("run");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.env("VOCMINE_CACHE", dir.path().join("cache"));
    common::run_checked(
        cmd,
        &[
            "score",
            input.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--no-index",
            "--model",
            common::model_dir().to_str().unwrap(),
        ],
    );
    let cli = common::read_jsonl(&run.join("scored.jsonl"));
    let cli_rejects = common::read_jsonl(&run.join("rejects.jsonl"));
    assert_eq!(cli.len(), 8);

    let (mut child, addr) = start(&["--score"]);
    let (st, resp) = post_score(&addr, &comments());
    assert_eq!(st, 200, "{resp}");
    let scored = resp["scored"].as_array().unwrap();
    let rejected = resp["rejected"].as_array().unwrap();
    assert_eq!(scored.len(), cli.len(), "{resp}");
    for (a, b) in scored.iter().zip(&cli) {
        assert_same_record(a, b);
    }
    // the same rejects, with the item's position as the line
    let key = |r: &Value| {
        (
            r["line"].as_u64(),
            r["id"].clone(),
            r["field"].clone(),
            r["reason"].clone(),
        )
    };
    let mut want: Vec<_> = cli_rejects.iter().map(key).collect();
    want.sort_by_key(|k| k.0);
    assert_eq!(rejected.iter().map(key).collect::<Vec<_>>(), want);
    assert_eq!(rejected.len(), 4);
    assert!(rejected.iter().all(|r| r["file"] == "request"));
    let text = resp.to_string();
    assert!(
        !text.contains("13812345678") && !text.contains("@example.com"),
        "PII leaked"
    );
    assert_eq!(scored[3]["masked"], json!(["PHONE", "EMAIL"]));

    // one comment a request from 8 clients at once: batched together, the same records
    let singles: Vec<Value> = comments().into_iter().filter(|c| c["id"] != "c1").collect();
    let handles: Vec<_> = singles
        .iter()
        .cloned()
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || post_score(&addr, &[c]))
        })
        .collect();
    for h in handles {
        let (st, r) = h.join().unwrap();
        assert_eq!(st, 200, "{r}");
        for s in r["scored"].as_array().unwrap() {
            let b = cli.iter().find(|b| b["id"] == s["id"]).unwrap();
            assert_same_record(s, b);
        }
    }
    let (st, _, metrics) = http(&addr, "GET", "/metrics", &[], "");
    assert_eq!(st, 200);
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{metrics}"))
    };
    // 8 + 7 scored, 4 + 3 rejected (the two c1 items are not sent alone); 1 + 10 requests
    assert_eq!(counter("vocmine_comments_scored_total "), 15.0);
    assert_eq!(counter("vocmine_comments_rejected_total "), 7.0);
    assert!(counter("vocmine_batch_size_count ") >= 2.0);
    assert_eq!(counter("vocmine_batch_size_sum "), 15.0);
    assert!(
        metrics.contains("vocmine_http_requests_total{endpoint=\"/score\",status=\"200\"} 11"),
        "{metrics}"
    );
    let (st, _, health) = http(&addr, "GET", "/health", &[], "");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(st, 200);
    assert_eq!(health["model"], cli[0]["model"]);
    assert!(metrics.contains(&format!(
        "vocmine_model_info{{version=\"{}\"}} 1",
        health["model"].as_str().unwrap()
    )));
    assert!(sigterm(&mut child).success());
}

fn search_ids(addr: &str, q: &str) -> Vec<String> {
    let (st, _, body) = http(addr, "GET", &format!("/search?q={q}"), &[], "");
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scored_comments_are_searchable_seconds_later_and_sigterm_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (mut child, addr) = start(&[
        "--score",
        "--index",
        run.to_str().unwrap(),
        "--commit-every",
        "0.5",
    ]);
    let (st, r) = post_score(
        &addr,
        &[json!({"id": "r1", "text": "refund never arrived"})],
    );
    assert_eq!((st, r["scored"].as_array().unwrap().len()), (200, 1));
    let t0 = Instant::now();
    while search_ids(&addr, "refund") != ["r1"] {
        assert!(t0.elapsed() < Duration::from_secs(15), "r1 not searchable");
        std::thread::sleep(Duration::from_millis(100));
    }
    // an upsert by id replaces the document
    post_score(&addr, &[json!({"id": "r1", "text": "delivery was late"})]);
    let t0 = Instant::now();
    while search_ids(&addr, "late") != ["r1"] {
        assert!(t0.elapsed() < Duration::from_secs(15), "r1 not replaced");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(search_ids(&addr, "refund").is_empty());
    assert!(sigterm(&mut child).success());

    // in flight at SIGTERM: answered in full and committed before the exit
    let (mut child, addr) = start(&[
        "--score",
        "--index",
        run.to_str().unwrap(),
        "--commit-every",
        "600",
    ]);
    let batch: Vec<Value> = (0..120)
        .map(|i| json!({"id": format!("t{i}"), "text": format!("ticket {i}: the courier lost parcel number {i}")}))
        .collect();
    let a2 = addr.clone();
    let inflight = std::thread::spawn(move || post_score(&a2, &batch));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sigterm(&mut child).success());
    let (st, r) = inflight.join().unwrap();
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["scored"].as_array().unwrap().len(), 120);
    let idx = vocmine::index::SearchIndex::open(&run.join("index")).unwrap();
    let reader = idx.reader().unwrap();
    assert_eq!(reader.searcher().num_docs(), 121);
}

#[test]
fn limits_token_host_cors_and_the_api_description() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let (mut child, addr) = start(&[
        "--score",
        "--index",
        index.to_str().unwrap(),
        "--token",
        "s3cret",
        "--max-body",
        "4000",
        "--max-comments",
        "3",
        "--max-in-flight",
        "1",
        "--read-timeout",
        "1",
        "--cors-origin",
        "https://dash.example.com",
    ]);
    let auth = ("Authorization", "Bearer s3cret");
    let body = |n: usize| json!({"comments": vec![json!({"text": "slow refund"}); n]}).to_string();
    // the token: required everywhere but /health
    assert_eq!(http(&addr, "POST", "/score", &[], &body(1)).0, 401);
    assert_eq!(
        http(
            &addr,
            "POST",
            "/score",
            &[("Authorization", "Bearer nope")],
            &body(1)
        )
        .0,
        401
    );
    assert_eq!(http(&addr, "GET", "/metrics", &[], "").0, 401);
    assert_eq!(http(&addr, "GET", "/health", &[], "").0, 200);
    assert_eq!(http(&addr, "POST", "/score", &[auth], &body(1)).0, 200);
    // malformed requests: 400 naming the field; too large: 413
    let (st, _, b) = http(&addr, "POST", "/score", &[auth], "{\"comment\": []}");
    assert_eq!(st, 400);
    assert!(b.contains("comment: unknown field"), "{b}");
    let (st, _, b) = http(&addr, "POST", "/score", &[auth], "{\"comments\": 3}");
    assert!(st == 400 && b.contains("comments:"), "{b}");
    let (st, _, b) = http(&addr, "POST", "/score", &[auth], &body(4));
    assert!(st == 413 && b.contains("at most 3"), "{b}");
    let big = json!({"comments": [{"text": "x".repeat(5000)}]}).to_string();
    assert_eq!(http(&addr, "POST", "/score", &[auth], &big).0, 413);
    // DNS rebinding: a Host that is not this server
    let (st, _, b) = http(&addr, "GET", "/health", &[("Host", "evil.example:80")], "");
    assert!(st == 421 && b.contains("does not name this server"), "{b}");
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(
        http(
            &addr,
            "GET",
            "/health",
            &[("Host", &format!("localhost:{port}"))],
            ""
        )
        .0,
        200
    );
    // CORS for the named origin only
    let (st, head, _) = http(
        &addr,
        "OPTIONS",
        "/score",
        &[("Origin", "https://dash.example.com")],
        "",
    );
    assert_eq!(st, 204);
    assert!(
        head.contains("access-control-allow-origin: https://dash.example.com"),
        "{head}"
    );
    assert_eq!(
        http(
            &addr,
            "OPTIONS",
            "/score",
            &[("Origin", "https://evil.example")],
            ""
        )
        .0,
        403
    );
    let (_, head, _) = http(
        &addr,
        "GET",
        "/health",
        &[("Origin", "https://evil.example")],
        "",
    );
    assert!(!head.contains("access-control-allow-origin"));
    // every described endpoint answers, and no route is left undescribed
    let (st, _, spec) = http(&addr, "GET", "/openapi.json", &[auth], "");
    assert_eq!(st, 200);
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let st = http(&addr, &method.to_uppercase(), path, &[auth], &body(1)).0;
            assert!(st == 200, "{method} {path}: {st}");
        }
    }
    assert_eq!(paths.len(), 5);
    assert_eq!(http(&addr, "GET", "/nope", &[auth], "").0, 404);
    // a silent connection is closed after the read timeout
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let n = s.read(&mut [0u8; 64]).unwrap_or(0);
    assert_eq!(n, 0, "the server answered a connection that sent nothing");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // requests in flight beyond the limit (1): 429. A client that sent half its body holds
    // the one place until it sends the rest.
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    let full = body(1);
    write!(
        held,
        "POST /score HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{}",
        full.len(),
        &full[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (st, head, b) = http(&addr, "GET", "/search?q=refund", &[auth], "");
    assert!(st == 429 && head.contains("retry-after"), "{st} {b}");
    held.write_all(&full.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(http(&addr, "GET", "/search?q=refund", &[auth], "").0, 200);
    assert!(sigterm(&mut child).success());
}

#[test]
fn binding_beyond_loopback_needs_a_token() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.args(["serve", "--score", "--addr", "0.0.0.0:0"])
        .env_remove("VOCMINE_TOKEN");
    let err = common::stderr_of_failure(cmd);
    assert!(err.contains("needs a bearer token"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.args(["serve"]).arg(dir.path().join("none"));
    let err = common::stderr_of_failure(cmd);
    assert!(err.contains("none"), "{err}");
}
