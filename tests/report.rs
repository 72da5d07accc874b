//! `vocmine report` on the sample corpus: figures recomputed from the scored JSONL and the CSV,
//! the planted delivery spike flagged, byte-identical reruns, and the HTML rendered by headless
//! Chromium (required under CI; skipped with a message elsewhere when it is not installed).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

fn csat(ratings: &[f64]) -> f64 {
    100.0 * ratings.iter().filter(|&&r| r >= 4.0).count() as f64 / ratings.len() as f64
}

#[test]
fn report_figures_spikes_determinism_and_html() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = d.join("run");
    let run_s = run.to_str().unwrap();
    let sample = common::root().join("corpora/sample/comments.csv");
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
    common::vocmine_in(d, &["topics", run_s, "--min-topic-size", "5"]);
    common::vocmine_in(d, &["report", run_s]);
    let bytes = std::fs::read(run.join("report.json")).unwrap();
    let r: serde_json::Value = serde_json::from_slice(&bytes).unwrap();

    // Same input, same seed: byte-identical topic model and report from a fresh copy.
    let again = d.join("again");
    std::fs::create_dir_all(&again).unwrap();
    for f in ["scored.jsonl", "embeddings.f32", "embeddings.json"] {
        std::fs::copy(run.join(f), again.join(f)).unwrap();
    }
    common::vocmine_in(
        d,
        &["topics", again.to_str().unwrap(), "--min-topic-size", "5"],
    );
    common::vocmine_in(d, &["report", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(again.join("report.json")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(again.join("topics/model.json")).unwrap(),
        std::fs::read(run.join("topics/model.json")).unwrap()
    );

    // CSAT from the CSV's ratings (1-5, % of 4-5).
    let mut rd = csv::Reader::from_path(&sample).unwrap();
    let ratings: Vec<f64> = rd
        .records()
        .filter_map(|rec| rec.unwrap().get(4).and_then(|x| x.parse().ok()))
        .collect();
    assert_eq!(r["rating"]["scale"], "csat");
    assert_eq!(r["rating"]["n"].as_u64().unwrap() as usize, ratings.len());
    assert!((r["rating"]["value"].as_f64().unwrap() - csat(&ratings)).abs() < 1e-9);

    // Pain points: volume and priority (sum of -score x tier weight) from the scored JSONL,
    // ranked by priority.
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    let weight = |t: Option<&str>| match t.map(str::to_lowercase).as_deref() {
        Some("vip") | Some("platinum") => 1.3,
        Some("gold") => 1.15,
        _ => 1.0,
    };
    let mut want: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for s in &scored {
        let p = s["pain_point"]["label"].as_str().unwrap();
        if p == "none" || p == "unknown" {
            continue;
        }
        let neg = (-s["sentiment"]["score"].as_f64().unwrap()).max(0.0);
        let e = want.entry(p.to_string()).or_default();
        e.0 += 1;
        e.1 += neg * weight(s["tier"].as_str());
    }
    let pps = r["pain_points"].as_array().unwrap();
    assert_eq!(pps.len(), want.len());
    for w in pps.windows(2) {
        assert!(w[0]["priority"].as_f64().unwrap() >= w[1]["priority"].as_f64().unwrap());
    }
    for p in pps {
        let (n, prio) = want[p["key"].as_str().unwrap()];
        assert_eq!(p["volume"].as_u64().unwrap(), n);
        assert!((p["priority"].as_f64().unwrap() - prio).abs() < 1e-3, "{p}");
    }

    // The planted spike: delivery complaints in the week of 2026-10-12.
    let alerts = r["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["kind"] == "pain_point"
            && a["key"] == "delivery"
            && a["period"] == "2026-10-12"
            && a["metric"] == "volume"),
        "{alerts:?}"
    );
    // No delivery volume alert before the spike week.
    assert!(!alerts.iter().any(|a| a["key"] == "delivery"
        && a["metric"] == "volume"
        && a["period"].as_str().unwrap() < "2026-10-12"));

    // A topic's impact: overall CSAT minus CSAT without its comments.
    let topic_of: HashMap<String, i64> = common::read_jsonl(&run.join("topics/assignments.jsonl"))
        .into_iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["topic"].as_i64().unwrap(),
            )
        })
        .collect();
    let t = &r["topics"].as_array().unwrap()[0];
    let tid: i64 = t["key"].as_str().unwrap().parse().unwrap();
    let rest: Vec<f64> = scored
        .iter()
        .filter(|s| topic_of[s["id"].as_str().unwrap()] != tid)
        .filter_map(|s| s["rating"].as_f64())
        .collect();
    let impact = csat(&ratings) - csat(&rest);
    assert!(
        (t["rating"]["impact"].as_f64().unwrap() - impact).abs() < 1e-9,
        "{t}"
    );

    // The page renders its tables in a real browser, without script errors.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must be self-contained"
    );
    let tables = html.matches("<table").count();
    assert!(tables >= 3);
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
        eprintln!("SKIP: no chromium here; the HTML was not rendered");
        return;
    };
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", d.join("chrome").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", run.join("report.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let rows = html.matches("<tr").count();
    let marker = format!("rendered {tables} tables, {rows} rows");
    assert!(
        dom.contains(&marker),
        "want {marker:?} in the rendered page; got {}",
        &dom[dom.len().saturating_sub(400)..]
    );
}
