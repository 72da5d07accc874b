//! `vocmine report` on the sample corpus: figures recomputed from the scored JSONL and the CSV,
//! the planted delivery spike flagged once, the journey map, quoted examples with personal data
//! masked, names in `--lang`, byte-identical reruns, and the HTML rendered by headless Chromium
//! (required under CI; skipped with a message elsewhere when it is not installed), its journey
//! filters run in the page, its Chinese labels drawn with real glyphs from the embedded font
//! under a fontconfig with no Chinese font, every table exported as CSV and XLSX (headers in
//! `--lang`, no personal data), and the page under 1 MB.

mod common;
mod report_support;

use report_support::visible::{english_words, own_text};
use report_support::{
    cell, chromium, dump_dom, dump_dom_with, latin_only_fontconfig, GLYPH_CHECK, PII,
};

use std::collections::{BTreeMap, HashMap};

const STAGES: [&str; 7] = [
    "pre_purchase",
    "purchase_payment",
    "delivery",
    "use",
    "after_sales_returns",
    "customer_service",
    "account_membership",
];

/// A `change` of report.json as the page shows it (`+12 (+40%)`, `–` for none).
fn change_text(c: &serde_json::Value) -> String {
    if c.is_null() {
        return "–".into();
    }
    let sign = |x: f64| if x > 0.0 { "+" } else { "" };
    let d = c["delta"].as_i64().unwrap();
    let pct = match c["percent"].as_f64() {
        Some(p) => format!("{}{:.0}%", sign(p), p * 100.0),
        None => "–".into(),
    };
    format!("{}{d} ({pct})", sign(d as f64))
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
    for pii in PII {
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
    assert!(html.contains("body{font-family:'vocmine CJK',system-ui") && html.contains("base64,"));
    assert!(html.contains("<dt>week-over-week</dt>") && html.contains("<th>week-over-week</th>"));
    // Self-contained and small: the embedded font is cut to the page's characters.
    assert!(
        html.len() < 1_000_000,
        "report.html is {} bytes",
        html.len()
    );
    eprintln!("sample report.html (en): {} bytes", html.len());
    // Every table as CSV (BOM, headers) and one sheet each in report.xlsx, linked from the
    // page; no personal data in them either.
    let tables = [
        "summary",
        "alerts",
        "journey",
        "pain_points",
        "themes",
        "topics",
        "timeline",
    ];
    for t in tables {
        let b = std::fs::read(run.join(format!("report_tables/{t}.csv"))).unwrap();
        assert_eq!(&b[..3], b"\xEF\xBB\xBF", "{t}");
        // Linked from the page wherever the page shows the table (themes: when there are).
        let shown = t != "themes" || html.contains("<h2>Themes</h2>");
        assert_eq!(
            html.contains(&format!("href=\"report_tables/{t}.csv\"")),
            shown,
            "{t}"
        );
        let text = String::from_utf8(b).unwrap();
        for pii in PII {
            assert!(!text.contains(pii), "{pii} leaked into {t}.csv");
        }
    }
    assert!(html.contains("href=\"report.xlsx\"") && html.contains("data-csv=\"pain_points\""));
    let pain_csv = std::fs::read_to_string(run.join("report_tables/pain_points.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(pain_csv.trim_start_matches('\u{feff}').as_bytes());
    assert_eq!(&rd.headers().unwrap()[2], "name");
    let keys: Vec<String> = rd.records().map(|r| r.unwrap()[1].to_string()).collect();
    let want_keys: Vec<&str> = pps.iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, want_keys);
    {
        use calamine::Reader as _;
        let mut wb = calamine::open_workbook_auto(run.join("report.xlsx")).unwrap();
        assert_eq!(wb.sheet_names().len(), tables.len());
        for name in wb.sheet_names() {
            let range = wb.worksheet_range(&name).unwrap();
            for c in range.used_cells() {
                let v = c.2.to_string();
                for pii in PII {
                    assert!(!v.contains(pii), "{pii} leaked into report.xlsx {name}");
                }
            }
        }
        let pains = wb.worksheet_range("pain points").unwrap();
        assert_eq!(pains.rows().count(), pps.len() + 1);
    }
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
    // The page's own words all Chinese: no English word in its visible text but for the
    // allow-list (quoted comments, the comments' values and commands left out).
    let english = english_words(&own_text(&zh_html));
    assert!(
        english.is_empty(),
        "English left on the zh page: {english:?}"
    );
    assert!(zh_html.contains("<h2>客户旅程</h2>") && zh_html.contains("<th>周环比</th>"));
    assert!(!zh_html.contains("Customer journey") && !zh_html.contains("<th>comments</th>"));
    assert!(
        zh_html.len() < 1_000_000,
        "report.html is {} bytes",
        zh_html.len()
    );
    eprintln!("sample report.html (zh): {} bytes", zh_html.len());
    // The exported tables' headers in the report's language.
    let zh_csv = std::fs::read_to_string(again.join("report_tables/pain_points.csv")).unwrap();
    assert!(
        zh_csv.starts_with("\u{feff}排名,编号,名称,评论数"),
        "{zh_csv}"
    );
    assert!(zh_csv.contains("周环比 变化") && zh_csv.contains("物流配送"));

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
        // The week-over-week change the script draws is the report's.
        assert_eq!(cell(&dom, &format!("jw{i}")), change_text(&st["change"]));
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
    // Chinese labels drawn with real glyphs on a machine with no Chinese font: Chromium
    // under a fontconfig that holds one Latin font only, the --lang zh page, each character
    // of the journey stages' and pain points' names drawn in the page's font stack.
    let Some(conf) = latin_only_fontconfig(&d.join("fc")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Latin font"
        );
        eprintln!("SKIP: no Latin font to build a fontconfig without Chinese fonts");
        return;
    };
    let mut chars: Vec<String> = Vec::new();
    for g in zh["journey"]
        .as_array()
        .unwrap()
        .iter()
        .chain(zh["pain_points"].as_array().unwrap())
    {
        for c in g["name"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| *c > '\u{2e80}')
        {
            if !chars.contains(&c.to_string()) {
                chars.push(c.to_string());
            }
        }
    }
    assert!(chars.len() > 20, "{chars:?}");
    let page = zh_html.replacen(
        "</body>",
        &format!(
            "<script type=\"application/json\" id=\"vm-test-chars\">{}</script>{GLYPH_CHECK}</body>",
            serde_json::to_string(&chars).unwrap()
        ),
        1,
    );
    let checked = d.join("glyph_check.html");
    std::fs::write(&checked, page).unwrap();
    let dom = dump_dom_with(
        chromium,
        &d.join("chrome-fc"),
        &format!("file://{}", checked.display()),
        Some(&conf),
    );
    assert!(
        dom.contains("data-tofu=\"none\""),
        "Chinese labels drawn as empty boxes: {:?}",
        dom.split("data-tofu=\"")
            .nth(1)
            .map(|s| &s[..s.find('"').unwrap_or(0)])
    );
    // The page's own check agrees: Chinese has glyphs, from the embedded face; no notice.
    assert!(
        dom.contains("data-cjk-font=\"present\"") && dom.contains("data-embedded-font=\"loaded\"")
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
    // Week over week: 2026-10-05 is a Monday, so the comments of that day (rows 4 and 9) are
    // the last week and the others (10-01 to 10-04) the week before.
    for st in r["journey"].as_array().unwrap() {
        let key = st["key"].as_str().unwrap();
        let of = |last: bool| {
            (0..rows.len())
                .filter(|i| rows[*i].0 == key && (i % 5 == 4) == last)
                .count() as u64
        };
        let c = &st["change"];
        assert_eq!(c["last"].as_u64(), Some(of(true)), "{key}");
        assert_eq!(c["previous"].as_u64(), Some(of(false)), "{key}");
    }
    let csv = std::fs::read_to_string(run.join("report_tables/journey.csv")).unwrap();
    assert!(csv.contains(",week-over-week change,"), "{csv}");
}
