//! The report's figures on hand-made scored comments: the journey table, its segments, names
//! in both languages and one alert per event.

use super::*;
use crate::record::TaskResult;
use crate::taxonomy::Taxonomy;
use std::path::Path;

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

fn comment(id: &str, stage: &str, pain: &str, score: f32, rating: Option<f64>) -> Scored {
    let mut tasks = BTreeMap::new();
    let sent = if score < 0.0 { "negative" } else { "positive" };
    tasks.insert("sentiment".into(), task(sent, Some(score)));
    tasks.insert("journey_stage".into(), task(stage, None));
    tasks.insert("pain_point".into(), task(pain, None));
    Scored {
        id: id.into(),
        text: format!("comment {id}: 电话 <PHONE>"),
        lang: "zh".into(),
        time: Some("2026-10-05T10:00:00+08:00".into()),
        channel: Some(if id.ends_with('1') { "email" } else { "app" }.into()),
        rating,
        tier: Some("VIP".into()),
        product: None,
        masked: vec!["PHONE".into()],
        tokens: None,
        n_tokens: 5,
        text_hash: String::new(),
        model: String::new(),
        aspects: None,
        tasks,
    }
}

fn shipped_names(lang: &str) -> Names {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/taxonomies");
    let t: Vec<Taxonomy> = ["intent", "pain_point", "journey_stage"]
        .iter()
        .map(|t| Taxonomy::load(&root.join(format!("{t}.toml"))).unwrap())
        .collect();
    Names::from_taxonomies(&t, lang)
}

#[test]
fn the_journey_table_counts_each_stage_in_order() {
    let scored = vec![
        comment("a1", "delivery", "delivery", -0.8, Some(1.0)),
        comment("a2", "delivery", "delivery", -0.4, Some(5.0)),
        comment("a3", "delivery", "waiting", 0.6, None),
        comment("a4", "use", "none", 0.9, Some(4.0)),
        comment("a5", "pre_purchase", "price", -0.2, Some(2.0)),
        comment("a6", "other", "none", 0.0, None),
    ];
    let cfg = ReportConfig {
        names: shipped_names("zh"),
        ..ReportConfig::default()
    };
    let r = build(&scored, &HashMap::new(), &cfg);
    let keys: Vec<&str> = r.journey.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, DEFAULT_STAGES);
    let vol: Vec<u64> = r.journey.iter().map(|s| s.volume).collect();
    assert_eq!(vol, [1, 0, 3, 1, 0, 0, 0]);
    let d = &r.journey[2];
    assert_eq!(d.name, "物流配送");
    assert!((d.share - 0.5).abs() < 1e-9);
    assert!((d.mean_sentiment - (-0.8 - 0.4 + 0.6) / 3.0).abs() < 1e-6);
    assert!((d.negative_share - 2.0 / 3.0).abs() < 1e-9);
    // CSAT over the two rated delivery comments: one of them 4-5.
    assert_eq!(d.rating, Some(StageRating { value: 50.0, n: 2 }));
    assert_eq!(d.top_pain_points[0].key, "delivery");
    assert_eq!(d.top_pain_points[0].name, "物流配送");
    assert_eq!(d.top_pain_points[0].count, 2);
    assert_eq!(d.top_pain_points[1].count, 1);
    // Most severe first, quoted as scored.
    assert_eq!(d.examples[0].id, "a1");
    assert_eq!(d.examples[0].text, "comment a1: 电话 <PHONE>");
    assert!(r.journey[1].rating.is_none() && r.journey[1].examples.is_empty());
    // The page's segments add up to the table: one cell per (stage, channel, product, tier).
    let g = &r.segments;
    let delivery_n: u64 = g.cells.iter().filter(|c| c.at[0] == 2).map(|c| c.n).sum();
    assert_eq!(delivery_n, 3);
    assert_eq!(g.channels, ["email", "app"]);
    assert_eq!(g.tiers, ["vip"]);
    let email: Vec<&Cell> = g.cells.iter().filter(|c| c.at[1] == 0).collect();
    assert_eq!(email.len(), 1);
    assert_eq!(email[0].rated, [1.0, 1.0, 0.0, 0.0, 1.0]);
    // The `other` comment is in no stage and no segment.
    assert_eq!(g.cells.iter().map(|c| c.n).sum::<u64>(), 5);
}

#[test]
fn names_follow_the_language_and_fall_back_to_ids() {
    let en = shipped_names("en");
    assert_eq!(
        en.name("journey_stage", "after_sales_returns"),
        "After-sales & returns"
    );
    assert_eq!(shipped_names("zh").name("intent", "complaint"), "投诉");
    assert_eq!(en.name("pain_point", "not_in_taxonomy"), "not_in_taxonomy");
    assert_eq!(Names::ids("en").name("pain_point", "delivery"), "delivery");
    assert_eq!(en.stages(), DEFAULT_STAGES);
}

fn alert(kind: &str, key: &str, metric: &str, z: f64, ids: &[&str]) -> Alert {
    Alert {
        kind: kind.into(),
        key: key.into(),
        name: key.into(),
        period: "2026-10-12".into(),
        metric: metric.into(),
        value: 10.0,
        baseline_mean: 1.0,
        baseline_sd: 1.0,
        z,
        related: Vec::new(),
        related_spikes: Vec::new(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn one_alert_per_event() {
    let a = fold_alerts(vec![
        alert("topic", "3", "volume", 9.0, &["a", "b", "c"]),
        alert(
            "pain_point",
            "delivery",
            "volume",
            5.0,
            &["a", "b", "c", "d"],
        ),
        alert(
            "pain_point",
            "delivery",
            "negative_share",
            4.0,
            &["a", "b", "c", "d"],
        ),
        alert("topic", "7", "volume", 3.0, &["d", "x", "y"]),
        alert("pain_point", "price", "volume", 3.5, &["p", "q"]),
    ]);
    // The delivery spike, once, with the topic of the same comments and its other metric;
    // topic 7 shares one comment of three: another event. So does price.
    assert_eq!(a.len(), 3, "{a:?}");
    let d = a.iter().find(|x| x.key == "delivery").unwrap();
    assert_eq!(d.metric, "volume");
    assert_eq!(
        d.related,
        ["pain_point delivery (negative_share)", "topic 3 (volume)"]
    );
    assert!(a.iter().any(|x| x.key == "7") && a.iter().any(|x| x.key == "price"));
}

#[test]
fn themes_of_two_or_more_topics_get_a_table_and_no_alerts() {
    let scored: Vec<Scored> = (0..9)
        .map(|i| comment(&format!("c{i}"), "use", "quality", -0.5, None))
        .collect();
    let tag = |topic: i64, theme: i64, label: &str| TopicTag {
        topic,
        label: format!("t{topic}"),
        found: None,
        theme: Some((theme, label.to_string())),
    };
    // Topics 0 and 1 form theme 0; topic 2 is a theme of its own.
    let topics: HashMap<String, TopicTag> = (0..9)
        .map(|i| {
            let t = match i % 3 {
                0 => tag(0, 0, "屏幕 / 电池"),
                1 => tag(1, 0, "屏幕 / 电池"),
                _ => tag(2, 2, "酒店"),
            };
            (format!("c{i}"), t)
        })
        .collect();
    let r = build(&scored, &topics, &ReportConfig::default());
    assert_eq!(r.topics.len(), 3);
    assert_eq!(r.themes.len(), 1, "{:?}", r.themes);
    assert_eq!(r.themes[0].key, "0");
    assert_eq!(r.themes[0].name, "屏幕 / 电池 (topics 0, 1)");
    assert_eq!(r.themes[0].volume, 6);
    assert!(r.alerts.iter().all(|a| a.kind != "theme"), "{:?}", r.alerts);
    let html = to_html(&r);
    assert!(html.contains("<h2>Themes</h2>") && html.contains("屏幕 / 电池 (topics 0, 1)"));
}

mod page;
