//! Routing rules (parsing, errors naming the key, first match, majority and any), the
//! backoff, event ids, and the delivery log's handling of a line cut by a crash.

use super::*;
use std::path::Path;

fn attrs(pairs: &[(&str, &[(&str, usize)])]) -> Attributes {
    pairs
        .iter()
        .map(|(f, vs)| {
            (
                f.to_string(),
                vs.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
            )
        })
        .collect()
}

const ROUTES: &str = r#"
[[route]]
name = "vip negative"
sentiment = "Negative"
tier = ["vip", "platinum"]
queue = "vip-negative"

[[route]]
pain_point = ["delivery", "waiting"]
match = "any"
webhook = "http://127.0.0.1:9/logistics"

[default]
webhook = "http://127.0.0.1:9/all"
"#;

#[test]
fn the_first_matching_rule_decides_on_the_majority_or_any() {
    let r = Routes::parse(ROUTES, Path::new("routes.toml")).unwrap();
    assert_eq!(r.rules.len(), 2);
    assert_eq!(r.rules[1].name, "route 2");
    // Mostly negative and mostly VIP: the first rule, though the pain point matches the second.
    let a = attrs(&[
        ("sentiment", &[("negative", 3), ("positive", 1)]),
        ("tier", &[("vip", 2), ("normal", 1)]),
        ("pain_point", &[("delivery", 4)]),
    ]);
    let (name, d) = r.route(&a).unwrap();
    assert_eq!(name, "vip negative");
    assert_eq!(d, &Destination::Queue("vip-negative".into()));
    // VIP but not the majority tier: on to the second rule, where one delivery comment is enough.
    let a = attrs(&[
        ("sentiment", &[("negative", 3)]),
        ("tier", &[("vip", 1), ("normal", 2)]),
        ("pain_point", &[("price", 3), ("delivery", 1)]),
    ]);
    assert_eq!(r.route(&a).unwrap().0, "route 2");
    // A tie counts each tied value as the majority.
    let a = attrs(&[
        ("sentiment", &[("negative", 2), ("neutral", 2)]),
        ("tier", &[("vip", 1), ("normal", 1)]),
    ]);
    assert_eq!(r.route(&a).unwrap().0, "vip negative");
    // Nothing matches: the default; a field the comments lack matches no condition on it.
    let (name, d) = r
        .route(&attrs(&[("sentiment", &[("negative", 5)])]))
        .unwrap();
    assert_eq!(name, "default");
    assert_eq!(d, &Destination::Webhook("http://127.0.0.1:9/all".into()));
    let no_default = Routes::parse(
        "[[route]]\nchannel = \"app\"\nqueue = \"q\"\n",
        Path::new("r.toml"),
    )
    .unwrap();
    assert!(no_default
        .route(&attrs(&[("channel", &[("email", 1)])]))
        .is_none());
}

#[test]
fn a_bad_routes_file_names_the_file_and_the_key() {
    let cases = [
        (
            "[[route]]\ntier = 3\nqueue = \"q\"\n",
            "route 1: key `tier`",
        ),
        (
            "[[route]]\nteir = \"vip\"\nqueue = \"q\"\n",
            "unknown key `teir`",
        ),
        ("[[route]]\ntier = \"vip\"\n", "route 1: no destination"),
        (
            "[[route]]\nqueue = \"q\"\n[[route]]\nwebhook = \"https://x.org/\"\n",
            "route 2: key `webhook`: https is not supported",
        ),
        ("[[route]]\nqueue = \"../etc\"\n", "key `queue`"),
        (
            "[[route]]\nqueue = \"q\"\nwebhook = \"http://h/\"\n",
            "not both",
        ),
        (
            "[[route]]\nmatch = \"most\"\nqueue = \"q\"\n",
            "key `match`",
        ),
        (
            "[[route]]\nintent = []\nqueue = \"q\"\n",
            "key `intent`: the list is empty",
        ),
        (
            "[default]\nurl = \"http://h/\"\n",
            "[default]: unknown key `url`",
        ),
        ("routes = 1\n", "unknown key `routes`"),
        ("[[route]\n", "not valid TOML"),
    ];
    for (text, want) in cases {
        let e = Routes::parse(text, Path::new("my-routes.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("my-routes.toml: "), "{e}");
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

#[test]
fn options_need_somewhere_to_deliver_and_check_the_webhook() {
    let e = AlertOptions::default()
        .load_routes()
        .unwrap_err()
        .to_string();
    assert!(e.contains("--webhook URL or --routes FILE"), "{e}");
    let o = AlertOptions {
        webhook: Some("https://hooks.example/x".into()),
        ..AlertOptions::default()
    };
    let e = o.load_routes().unwrap_err().to_string();
    assert!(e.contains("--webhook") && e.contains("https"), "{e}");
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let p = RetryPolicy {
        attempts: 5,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(350),
        timeout: Duration::from_secs(1),
    };
    let d: Vec<u128> = (1..=4).map(|n| p.delay(n).as_millis()).collect();
    assert_eq!(d, [100, 200, 350, 350]);
    assert_eq!(p.delay(u32::MAX), Duration::from_millis(350));
}

#[test]
fn event_ids_are_stable_and_distinct() {
    let a = event_id("pain_point", "delivery", "volume", "2026-10-12");
    assert_eq!(a.len(), 16);
    assert_eq!(
        a,
        event_id("pain_point", "delivery", "volume", "2026-10-12")
    );
    assert_ne!(
        a,
        event_id("pain_point", "delivery", "volume", "2026-10-19")
    );
    assert_ne!(a, event_id("topic", "delivery", "volume", "2026-10-12"));
    assert_ne!(
        a,
        event_id("pain_point", "delivery", "negative_share", "2026-10-12")
    );
}

fn entry(event: &str, status: Status) -> Entry {
    Entry {
        event: event.into(),
        dest: "d".into(),
        target: "http://127.0.0.1:9".into(),
        route: "default".into(),
        status,
        attempts: 1,
        http: Some(200),
        error: None,
        at: 0,
        kind: "pain_point".into(),
        key: "delivery".into(),
        metric: "volume".into(),
        period: "2026-10-12".into(),
    }
}

#[test]
fn the_log_keeps_the_last_state_and_drops_a_line_cut_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.jsonl");
    let mut log = DeliveryLog::open(&p, true).unwrap();
    log.append(entry("e1", Status::Failed)).unwrap();
    log.append(entry("e1", Status::Delivered)).unwrap();
    log.append(entry("e2", Status::Failed)).unwrap();
    drop(log);
    // A crash in the middle of a line: the cut line was never acknowledged.
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(br#"{"event":"e2","dest":"d","sta"#).unwrap();
    drop(f);
    let read_only = DeliveryLog::open(&p, false).unwrap();
    assert_eq!(read_only.get("e1", "d").unwrap().status, Status::Delivered);
    assert_eq!(read_only.get("e2", "d").unwrap().status, Status::Failed);
    assert!(read_only.get("e3", "d").is_none());
    let mut log = DeliveryLog::open(&p, true).unwrap();
    log.append(entry("e2", Status::Delivered)).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.ends_with('\n') && !text.contains("\"sta{"));
    // A complete line that is not a record is an error naming the file and the line.
    std::fs::write(&p, "{\"oops\":1}\n").unwrap();
    let e = DeliveryLog::open(&p, false).err().unwrap().to_string();
    assert!(e.contains("log.jsonl") && e.contains("line 1"), "{e}");
}

#[test]
fn a_queue_line_is_appended_once_and_a_cut_line_removed() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queue/q.jsonl");
    enqueue(&q, r#"{"event":"e1","x":1}"#, "e1").unwrap();
    enqueue(&q, r#"{"event":"e1","x":1}"#, "e1").unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&q).unwrap();
    f.write_all(br#"{"event":"e2","#).unwrap();
    drop(f);
    enqueue(&q, r#"{"event":"e2"}"#, "e2").unwrap();
    let text = std::fs::read_to_string(&q).unwrap();
    assert_eq!(text, "{\"event\":\"e1\",\"x\":1}\n{\"event\":\"e2\"}\n");
}
