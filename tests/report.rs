//! `vocmine report` on the sample corpus: figures recomputed from the scored JSONL and the CSV,
//! the planted delivery spike flagged once, the journey map, quoted examples with personal data
//! masked, names in `--lang`, byte-identical reruns, and the HTML rendered by headless Chromium
//! (required under CI; skipped with a message elsewhere when it is not installed), its journey
//! filters run in the page and its missing-font notice agreeing with `fc-list`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

const STAGES: [&str; 7] = [
    "pre_purchase",
    "purchase_payment",
    "delivery",
    "use",
    "after_sales_returns",
    "customer_service",
    "account_membership",
];

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The DOM of `url` after its scripts ran, in headless Chromium.
fn dump_dom(chromium: &str, profile: &Path, url: &str) -> String {
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
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM.
fn cell<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

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

    // The planted spike: delivery complaints in the week of 2026-10-12, alerted once.
    let alerts = r["alerts"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for a in alerts {
        let k = (
            a["period"].to_string(),
            a["key"].to_string(),
            a["kind"].to_string(),
        );
        assert!(seen.insert(k), "two alerts for one group and period: {a}");
    }
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

    // The journey map: the stages in journey order, each with its volume, mean sentiment,
    // CSAT and top pain points recomputed from the scored JSONL.
    let journey = r["journey"].as_array().unwrap();
    let keys: Vec<&str> = journey.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, STAGES);
    let text_of: HashMap<&str, &str> = scored
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["text"].as_str().unwrap()))
        .collect();
    for st in journey {
        let key = st["key"].as_str().unwrap();
        let members: Vec<&serde_json::Value> = scored
            .iter()
            .filter(|s| s["journey_stage"]["label"] == key)
            .collect();
        assert_eq!(
            st["volume"].as_u64().unwrap() as usize,
            members.len(),
            "{key}"
        );
        assert!(!members.is_empty(), "{key}");
        let mean = members
            .iter()
            .map(|s| s["sentiment"]["score"].as_f64().unwrap())
            .sum::<f64>()
            / members.len() as f64;
        assert!(
            (st["mean_sentiment"].as_f64().unwrap() - mean).abs() < 1e-6,
            "{st}"
        );
        let rated: Vec<f64> = members
            .iter()
            .filter_map(|s| s["rating"].as_f64())
            .collect();
        if rated.is_empty() {
            assert!(st["rating"].is_null());
        } else {
            assert_eq!(st["rating"]["n"].as_u64().unwrap() as usize, rated.len());
            assert!((st["rating"]["value"].as_f64().unwrap() - csat(&rated)).abs() < 1e-9);
        }
        let mut pains: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &members {
            let p = s["pain_point"]["label"].as_str().unwrap();
            if p != "none" && p != "unknown" {
                *pains.entry(p).or_default() += 1;
            }
        }
        let top = &st["top_pain_points"].as_array().unwrap()[0];
        assert_eq!(top["count"].as_u64(), pains.values().max().copied(), "{st}");
        assert_eq!(
            pains[top["key"].as_str().unwrap()],
            top["count"].as_u64().unwrap()
        );
        // Examples are the stage's own comments, quoted as scored (masked).
        for e in st["examples"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            assert!(members.iter().any(|s| s["id"] == id), "{key}: {e}");
            let t = e["text"].as_str().unwrap().trim_end_matches('…');
            assert!(text_of[id].trim().starts_with(t), "{e}");
        }
    }
    // Names in English by default, from the taxonomies.
    assert_eq!(journey[0]["name"], "Pre-purchase");
    let delivery = pps.iter().find(|p| p["key"] == "delivery").unwrap();
    assert_eq!(delivery["name"], "Delivery");
    // Pain-point examples are quoted texts, not bare ids.
    for e in delivery["examples"].as_array().unwrap() {
        assert!(e["text"].as_str().unwrap().chars().count() > 5, "{e}");
    }

    // No personal data of the sample (README: planted PII) in the report or the page.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let json = String::from_utf8_lossy(&bytes);
    for pii in [
        "13812345678",
        "13912345678",
        "15800001234",
        "110105199003071239",
        "6222 0212 3456 7894",
        "4111 1111 1111 1111",
        "chen.meiling@example.com",
        "li.na88@example.com",
    ] {
        assert!(!html.contains(pii) && !json.contains(pii), "{pii} leaked");
    }
    // The masked rows that are quoted show their masks (s0151's card number, here).
    let kinds_of: HashMap<&str, Vec<String>> = scored
        .iter()
        .filter_map(|s| {
            let k: Vec<String> = s["masked"]
                .as_array()?
                .iter()
                .map(|k| format!("<{}>", k.as_str().unwrap()))
                .collect();
            (!k.is_empty()).then(|| (s["id"].as_str().unwrap(), k))
        })
        .collect();
    let mut quoted_masked = 0;
    for g in pps.iter().chain(journey) {
        for e in g["examples"].as_array().unwrap() {
            let (id, t) = (e["id"].as_str().unwrap(), e["text"].as_str().unwrap());
            if let Some(kinds) = kinds_of.get(id).filter(|_| !t.ends_with('…')) {
                assert!(kinds.iter().any(|k| t.contains(k.as_str())), "{e}");
                quoted_masked += 1;
            }
        }
    }
    assert!(quoted_masked > 0, "no masked comment among the examples");

    // The page: self-contained, every column explained, no debug footer, named fonts.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must be self-contained"
    );
    assert!(html.matches("<table").count() >= 4);
    assert!(html.contains("as Thematic defines it") && html.contains("<dt>trend</dt>"));
    assert!(!html.contains("render-check") && !html.contains("rendered "));
    assert!(html.contains("'Noto Sans CJK SC'") && html.contains("Fonts: "));
    assert!(html.contains("<q>") && html.contains("lang=\"en\""));

    // --lang zh: the taxonomies' Chinese names, in report.json and the page.
    common::vocmine_in(d, &["report", again.to_str().unwrap(), "--lang", "zh"]);
    let zh: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("report.json")).unwrap()).unwrap();
    let names: Vec<&str> = zh["journey"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "售前咨询",
            "下单支付",
            "物流配送",
            "使用体验",
            "售后退换",
            "客服服务",
            "账户会员"
        ]
    );
    let zh_delivery = zh["pain_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "delivery")
        .unwrap();
    assert_eq!(zh_delivery["name"], "物流配送");
    assert_eq!(zh["lang"], "zh");
    let zh_html = std::fs::read_to_string(again.join("report.html")).unwrap();
    assert!(zh_html.contains("lang=\"zh-CN\"") && zh_html.contains("售后退换"));

    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
        eprintln!("SKIP: no chromium here; the HTML was not rendered");
        return;
    };
    // The journey script ran (it marks the table with the filters it drew) and its figures
    // for all comments are the report's.
    let url = format!("file://{}", run.join("report.html").display());
    let dom = dump_dom(chromium, &d.join("chrome"), &url);
    assert!(
        dom.contains("data-filtered=\"-1,-1,-1\""),
        "the journey script did not run"
    );
    for (i, st) in journey.iter().enumerate() {
        assert_eq!(cell(&dom, &format!("jn{i}")), st["volume"].to_string());
    }
    // Filtered in the page (a link that preselects channel and tier): the counts of those
    // comments only.
    let dom = dump_dom(
        chromium,
        &d.join("chrome"),
        &format!("{url}#channel=wechat&tier=regular"),
    );
    assert!(!dom.contains("data-filtered=\"-1,-1,-1\""));
    let mut filtered = 0;
    for (i, key) in STAGES.iter().enumerate() {
        let n = scored
            .iter()
            .filter(|s| {
                s["journey_stage"]["label"] == *key
                    && s["channel"] == "wechat"
                    && s["tier"].as_str().map(str::to_lowercase).as_deref() == Some("regular")
            })
            .count();
        assert_eq!(cell(&dom, &format!("jn{i}")), n.to_string(), "{key}");
        filtered += n;
    }
    assert!(filtered > 0 && filtered < scored.len());
    // The font notice says what this machine has.
    let has_cjk = Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let want = if has_cjk { "present" } else { "missing" };
    assert!(
        dom.contains(&format!("data-cjk-font=\"{want}\"")),
        "font notice should say {want}"
    );
}

/// A small fixture, one unmistakable comment or more per stage, scored by the shipped model:
/// the journey map counts each stage's comments.
#[test]
fn journey_stage_counts_on_a_small_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows = [
        ("pre_purchase", "请问这款电饭煲有没有现货？想下周买"),
        (
            "pre_purchase",
            "Does this vacuum come in white? Thinking of ordering one.",
        ),
        (
            "purchase_payment",
            "付款的时候一直提示支付失败，换了两张卡都不行",
        ),
        ("delivery", "快递一个星期了还没到，物流信息也不更新"),
        (
            "delivery",
            "The courier left my parcel outside in the rain.",
        ),
        ("delivery", "外卖骑手迟到了一个小时，饭都凉了"),
        ("use", "耳机用了两周左边就没声音了，质量太差"),
        ("after_sales_returns", "退货寄回去三个星期了，退款还没到账"),
        ("customer_service", "客服热线打了一个小时都没人接"),
        ("account_membership", "收不到验证码，一直登录不了账号"),
    ];
    let mut csv = String::from("id,text,time,channel\n");
    for (i, (_, t)) in rows.iter().enumerate() {
        csv += &format!("f{i},\"{t}\",2026-10-0{}T10:00:00+08:00,app\n", 1 + i % 5);
    }
    let input = d.join("fixture.csv");
    std::fs::write(&input, csv).unwrap();
    let run = d.join("run");
    common::vocmine_in(
        d,
        &[
            "score",
            input.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
    );
    common::vocmine_in(d, &["report", run.to_str().unwrap()]);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    let got: Vec<(String, u64)> = r["journey"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_string(),
                s["volume"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = STAGES
        .iter()
        .map(|k| {
            (
                k.to_string(),
                rows.iter().filter(|r| r.0 == *k).count() as u64,
            )
        })
        .collect();
    assert_eq!(got, want);
}
