//! The page in the report's language: with `--lang zh` no English word of the page's own is
//! left in its visible text; with `--lang en` the headers are as they were; and the journey
//! table's week-over-week change on a run with known periods, in the report, the page, its
//! filters' counts and the exported table.

use super::*;
// The same check runs on the sample's page in tests/report.rs.
#[path = "../../../tests/report_support/visible.rs"]
mod visible;
use visible::{english_words, own_text};

/// A comment of `comment` at noon of `day` (`2026-10-05`), on `channel`.
fn on(id: &str, stage: &str, pain: &str, score: f32, day: &str, channel: &str) -> Scored {
    let mut s = comment(
        id,
        stage,
        pain,
        score,
        Some(if score < 0.0 { 2.0 } else { 5.0 }),
    );
    s.time = Some(format!("{day}T12:00:00+08:00"));
    s.channel = Some(channel.into());
    s.text = format!("评论 {id}：快递太慢了");
    s
}

/// Six weeks from 2026-09-07 (Mondays): one delivery complaint a week, then eight in the last
/// week (a spike); purchase-payment comments 4 then 1 in the last two weeks; pre-purchase 2
/// in the last week only; topics 0 and 1 in one theme.
fn run(lang: &str) -> Report {
    let weeks = [
        "2026-09-07",
        "2026-09-14",
        "2026-09-21",
        "2026-09-28",
        "2026-10-05",
        "2026-10-12",
    ];
    let mut scored = Vec::new();
    for (w, day) in weeks.iter().enumerate() {
        let n = if w == 5 { 8 } else { 1 };
        for k in 0..n {
            let id = format!("d{w}{k}");
            scored.push(on(&id, "delivery", "delivery", -0.7, day, "微信"));
        }
    }
    for k in 0..4 {
        let id = format!("p4{k}");
        scored.push(on(&id, "purchase_payment", "price", 0.4, weeks[4], "电话"));
    }
    scored.push(on(
        "p50",
        "purchase_payment",
        "price",
        -0.2,
        weeks[5],
        "微信",
    ));
    scored.push(on("q50", "pre_purchase", "none", 0.6, weeks[5], "电话"));
    scored.push(on("q51", "pre_purchase", "none", 0.5, weeks[5], "微信"));
    let topics: HashMap<String, TopicTag> = scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = (i % 3) as i64;
            let theme = if t < 2 {
                (0, "快递 / 物流")
            } else {
                (2, "价格")
            };
            let tag = TopicTag {
                topic: t,
                label: format!("话题标签{t}"),
                found: None,
                theme: Some((theme.0, theme.1.to_string())),
            };
            (s.id.clone(), tag)
        })
        .collect();
    let cfg = ReportConfig {
        names: shipped_names(lang),
        ..ReportConfig::default()
    };
    build(&scored, &topics, &cfg)
}

#[test]
fn the_zh_page_says_nothing_in_english() {
    let r = run("zh");
    // Every section is on the page: alerts, journey with CSAT, themes, topics.
    assert!(!r.alerts.is_empty() && !r.themes.is_empty() && r.rating.is_some());
    let html = to_html(&r);
    let text = own_text(&html);
    assert!(
        text.contains("客户旅程") && text.contains("周环比"),
        "{text}"
    );
    let english = english_words(&text);
    assert!(
        english.is_empty(),
        "English left on the zh page: {english:?}"
    );
    // The check finds English: the en page is full of it, and a stray word in the zh page.
    let en = english_words(&own_text(&to_html(&run("en"))));
    for w in ["comments", "priority", "Download", "journey", "negative"] {
        assert!(en.iter().any(|x| x == w), "{w} not found in {en:?}");
    }
    let stray = html.replacen("<h2>客户旅程</h2>", "<h2>客户旅程 journey</h2>", 1);
    assert_eq!(english_words(&own_text(&stray)), ["journey"]);
    // Alerts and examples in Chinese: kinds, metrics, sentiment labels.
    assert!(
        html.contains("<td class=\"l\">痛点</td>") && html.contains("<td class=\"l\">评论量</td>")
    );
    assert!(html.contains(" · 负面</span>") && !html.contains(" · negative</span>"));
    assert!(
        html.contains("快递 / 物流（话题 0、1）"),
        "the theme's name"
    );
}

/// The texts of the page's elements `tag` (`th`, `h2`), in order.
fn texts_of(html: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    html.match_indices(&open)
        .filter(|(i, _)| matches!(html.as_bytes().get(i + open.len()), Some(b' ' | b'>')))
        .map(|(i, _)| {
            let start = i + html[i..].find('>').unwrap() + 1;
            let end = start + html[start..].find(&close).unwrap();
            html[start..end].to_string()
        })
        .collect()
}

#[test]
fn the_en_page_keeps_its_headers_and_the_zh_page_has_them_in_chinese() {
    let en = to_html(&run("en"));
    assert_eq!(
        texts_of(&en, "h2"),
        [
            "Alerts",
            "Customer journey",
            "Pain points, ranked by priority",
            "Sentiment over time",
            "Themes",
            "Topics"
        ]
    );
    let group = [
        "#",
        "pain point",
        "comments",
        "negative",
        "mean sentiment",
        "priority",
        "VIP/gold",
        "trend",
        "week-over-week",
        "CSAT",
        "impact",
        "examples (most severe first)",
    ];
    let alerts = [
        "period",
        "kind",
        "what",
        "metric",
        "value",
        "baseline",
        "z",
        "same event",
    ];
    let journey = [
        "stage",
        "comments",
        "share",
        "mean sentiment",
        "negative",
        "CSAT",
        "week-over-week",
        "top pain points",
        "examples (most severe first)",
    ];
    let th = texts_of(&en, "th");
    let mut want: Vec<&str> = alerts
        .iter()
        .chain(&journey)
        .chain(&group)
        .copied()
        .collect();
    for name in ["theme", "topic"] {
        want.extend(
            group
                .iter()
                .map(|h| if *h == "pain point" { name } else { *h }),
        );
    }
    assert_eq!(th, want);
    assert!(en.contains("<dt>week-over-week</dt>") && en.contains("as Thematic defines it"));
    assert!(en.contains("<title>vocmine report</title>") && en.contains(">Download: <a"));
    let zh = to_html(&run("zh"));
    assert_eq!(
        texts_of(&zh, "h2"),
        [
            "预警",
            "客户旅程",
            "痛点（按优先级排序）",
            "情感走势",
            "主题组",
            "话题"
        ]
    );
    let th = texts_of(&zh, "th");
    assert_eq!(th.len(), want.len());
    assert_eq!(
        th[alerts.len()..alerts.len() + journey.len()],
        [
            "阶段",
            "评论数",
            "占比",
            "情感均值",
            "负面占比",
            "CSAT",
            "周环比",
            "主要痛点",
            "示例（最严重的在前）"
        ]
    );
}

#[test]
fn the_journey_table_has_the_change_from_the_last_week_but_one() {
    let r = run("en");
    let change = |key: &str| {
        let st = r.journey.iter().find(|s| s.key == key).unwrap();
        st.change.clone().unwrap()
    };
    // delivery: 1 in the week of 10-05, 8 in the week of 10-12.
    let d = change("delivery");
    assert_eq!((d.previous, d.last, d.delta), (1, 8, 7));
    assert_eq!(d.to_text(), "+7 (+700%)");
    // purchase and payment: 4 then 1; pre-purchase: none then 2; use: none at all.
    assert_eq!(change("purchase_payment").to_text(), "-3 (-75%)");
    let p = change("pre_purchase");
    assert_eq!((p.previous, p.last, p.percent), (0, 2, None));
    assert_eq!(change("use").to_text(), "0 (–)");
    // The page's filters count the same two weeks per segment.
    let recent = |stage: usize| -> [u64; 2] {
        let cells = r.segments.cells.iter().filter(|c| c.at[0] == stage);
        cells.fold([0, 0], |a, c| [a[0] + c.recent[0], a[1] + c.recent[1]])
    };
    assert_eq!(recent(2), [1, 8]);
    assert_eq!(recent(1), [4, 1]);
    // In the page (with its note), report.json and the exported journey table.
    let html = to_html(&r);
    assert!(html.contains("<td id=\"jw2\">+7 (+700%)</td>"), "{html}");
    assert!(html.contains("<td id=\"jw1\">-3 (-75%)</td>"));
    assert!(html.contains("<dt>week-over-week</dt><dd>the stage&#39;s comments"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["journey"][2]["change"]["delta"], 7);
    assert_eq!(
        json["journey"][0]["change"]["percent"],
        serde_json::Value::Null
    );
    let t = report_tables(&r);
    let j = t.iter().find(|t| t.stem == "journey").unwrap();
    let col = |h: &str| j.headers.iter().position(|x| x == h).unwrap();
    let row = &j.rows[2];
    assert_eq!(row[col("last period")], Value::Int(8));
    assert_eq!(row[col("previous period")], Value::Int(1));
    assert_eq!(row[col("week-over-week change")], Value::Int(7));
    assert_eq!(row[col("week-over-week change (share)")], Value::Num(7.0));
    let zh = report_tables(&run("zh"));
    let jz = zh.iter().find(|t| t.stem == "journey").unwrap();
    assert!(
        jz.headers.contains(&"周环比 变化".to_string()),
        "{:?}",
        jz.headers
    );
    // One week only: no change, "–" on the page.
    let one = vec![comment("a1", "delivery", "delivery", -0.8, None)];
    let r1 = build(&one, &HashMap::new(), &ReportConfig::default());
    assert!(r1.journey.iter().all(|s| s.change.is_none()));
    assert!(to_html(&r1).contains("<td id=\"jw2\">–</td>"));
}
