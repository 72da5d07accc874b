//! The exported tables: headers in the report's language, the week-over-week columns, CSV
//! bytes (byte-order mark, formulas defused) and the workbook read back with calamine.

use super::*;
use crate::record::{Scored, TaskResult};
use crate::report::{build, Names, ReportConfig};
use calamine::{Data, Reader as _};
use std::collections::{BTreeMap, HashMap};

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

fn comment(id: &str, pain: &str, day: &str) -> Scored {
    let mut tasks = BTreeMap::new();
    tasks.insert("sentiment".into(), task("negative", Some(-0.5)));
    tasks.insert("journey_stage".into(), task("delivery", None));
    tasks.insert("pain_point".into(), task(pain, None));
    Scored {
        id: id.into(),
        text: format!("{id} 快递太慢 电话 <PHONE>"),
        lang: "zh".into(),
        time: Some(format!("{day}T10:00:00+08:00")),
        channel: Some("app".into()),
        rating: Some(2.0),
        tier: None,
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

/// delivery: 5 comments in the week of 2026-09-28, 7 in the week of 2026-10-05; price: 2
/// then none; waiting: none then 3; "=cmd" (a name a spreadsheet would run): 1 then 1.
fn report(lang: &str) -> Report {
    let mut scored = Vec::new();
    let mut add = |pain: &str, day: &str, n: usize| {
        for _ in 0..n {
            let id = format!("c{}", scored.len());
            scored.push(comment(&id, pain, day));
        }
    };
    add("delivery", "2026-09-29", 5);
    add("delivery", "2026-10-06", 7);
    add("price", "2026-09-30", 2);
    add("waiting", "2026-10-07", 3);
    add("=cmd", "2026-09-30", 1);
    add("=cmd", "2026-10-08", 1);
    let cfg = ReportConfig {
        names: Names::ids(lang),
        ..ReportConfig::default()
    };
    build(&scored, &HashMap::new(), &cfg)
}

fn change_of(r: &Report, key: &str) -> Option<PeriodChange> {
    let g = r.pain_points.iter().find(|g| g.key == key).unwrap();
    g.change.clone()
}

#[test]
fn week_over_week_is_the_last_period_against_the_one_before() {
    let r = report("en");
    let d = change_of(&r, "delivery").unwrap();
    assert_eq!((d.last, d.previous, d.delta), (7, 5, 2));
    assert!((d.percent.unwrap() - 0.4).abs() < 1e-12);
    assert_eq!(d.to_text(), "+2 (+40%)");
    let p = change_of(&r, "price").unwrap();
    assert_eq!((p.last, p.previous, p.delta), (0, 2, -2));
    assert_eq!(p.to_text(), "-2 (-100%)");
    let w = change_of(&r, "waiting").unwrap();
    assert_eq!((w.last, w.previous, w.percent), (3, 0, None));
    assert_eq!(w.to_text(), "+3 (–)");
    assert_eq!(change_of(&r, "=cmd").unwrap().to_text(), "0 (0%)");
    // One period: no earlier week.
    assert_eq!(PeriodChange::of(&[4]), None);
    assert_eq!(PeriodChange::text_of(None), "–");
    // In report.json and in the page, with its note.
    let json = serde_json::to_value(&r).unwrap();
    let dj = json["pain_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "delivery")
        .unwrap();
    assert_eq!(dj["change"]["delta"], 2);
    assert_eq!(dj["change"]["previous"], 5);
    let html = crate::report::to_html(&r);
    assert!(html.contains("<th>week-over-week</th>"));
    assert!(html.contains("<td>+2 (+40%)</td>") && html.contains("<td>+3 (–)</td>"));
    assert!(html.contains("<dt>week-over-week</dt>"));
}

#[test]
fn every_table_is_exported_with_headers_in_the_report_language() {
    let en = report_tables(&report("en"));
    let zh = report_tables(&report("zh"));
    let stems: Vec<&str> = en.iter().map(|t| t.stem).collect();
    // every table but `aspects`, which only a run scored with --aspects has
    assert_eq!(stems, TABLES[..7]);
    assert_eq!(TABLES[7], "aspects");
    let pain = |ts: &[Table]| ts.iter().find(|t| t.stem == "pain_points").unwrap().clone();
    let (pe, pz) = (pain(&en), pain(&zh));
    assert_eq!(pe.headers.len(), pz.headers.len());
    assert!(pe.headers.contains(&"week-over-week change".to_string()));
    assert!(pz.headers.contains(&"周环比 变化".to_string()));
    assert!(pz.headers.contains(&"负面占比 (0-1)".to_string()) && pz.title == "痛点");
    for t in en.iter().chain(&zh) {
        assert!(
            t.rows.iter().all(|r| r.len() == t.headers.len()),
            "{}",
            t.stem
        );
    }
    // The delivery row: the change columns and the masked examples.
    let col = |name: &str| pe.headers.iter().position(|h| h == name).unwrap();
    let row = pe
        .rows
        .iter()
        .find(|r| r[1] == Value::Text("delivery".into()))
        .unwrap();
    assert_eq!(row[col("comments")], Value::Int(12));
    assert_eq!(row[col("last period")], Value::Int(7));
    assert_eq!(row[col("previous period")], Value::Int(5));
    assert_eq!(row[col("week-over-week change")], Value::Int(2));
    assert_eq!(row[col("week-over-week change (share)")], Value::Num(0.4));
    let Value::Text(ex) = &row[col("examples (masked)")] else {
        panic!("examples")
    };
    assert!(ex.contains("<PHONE>") && ex.lines().count() == 3, "{ex}");
    // The timeline: one row per week.
    let tl = en.iter().find(|t| t.stem == "timeline").unwrap();
    assert_eq!(tl.rows.len(), 2);
    assert_eq!(tl.rows[1][1], Value::Int(11));
}

#[test]
fn csv_has_a_bom_the_headers_and_defused_formulas() {
    let t = report_tables(&report("zh"));
    let pain = t.iter().find(|t| t.stem == "pain_points").unwrap();
    let bytes = pain.to_csv().unwrap();
    assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF]);
    let mut rd = csv::Reader::from_reader(&bytes[3..]);
    let headers: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers, pain.headers);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), pain.rows.len());
    let d = rows.iter().find(|r| &r[1] == "delivery").unwrap();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&d[col("评论数")], "12");
    assert_eq!(&d[col("周环比 变化")], "2");
    assert_eq!(&d[col("周环比 变化率")], "0.4");
    assert_eq!(&d[col("负面占比 (0-1)")], "1");
    assert_eq!(&d[col("情感均值 (-1..1)")], "-0.5");
    let w = rows.iter().find(|r| &r[1] == "waiting").unwrap();
    assert_eq!(
        &w[col("周环比 变化率")],
        "",
        "no share without a previous week"
    );
    // A name a spreadsheet would evaluate is quoted as text.
    let f = rows.iter().find(|r| &r[1] == "'=cmd").unwrap();
    assert_eq!(&f[2], "'=cmd");
}

#[test]
fn the_workbook_has_a_sheet_per_table_read_back_by_calamine() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path());
    let r = report("zh");
    write_tables(&run, &r).unwrap();
    let tables = report_tables(&r);
    for t in &tables {
        let bytes = std::fs::read(run.report_table(t.stem)).unwrap();
        assert_eq!(bytes, t.to_csv().unwrap(), "{}", t.stem);
    }
    // the same report gives the same workbook bytes (no clock in the file)
    let first = std::fs::read(run.report_xlsx()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        to_xlsx(&tables).unwrap(),
        first,
        "the workbook changed on a rerun"
    );
    let mut wb = calamine::open_workbook_auto(run.report_xlsx()).unwrap();
    let titles: Vec<String> = tables.iter().map(|t| t.title.clone()).collect();
    assert_eq!(wb.sheet_names(), titles);
    let range = wb.worksheet_range("痛点").unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    let pain = tables.iter().find(|t| t.stem == "pain_points").unwrap();
    let headers: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(headers, pain.headers);
    assert_eq!(rows.len(), pain.rows.len() + 1);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let d = rows
        .iter()
        .find(|r| r[1] == Data::String("delivery".into()))
        .unwrap();
    assert_eq!(d[col("评论数")], Data::Float(12.0));
    assert_eq!(d[col("上期评论数")], Data::Float(5.0));
    assert_eq!(d[col("周环比 变化")], Data::Float(2.0));
    assert_eq!(d[col("周环比 变化率")], Data::Float(0.4));
    assert!(matches!(&d[col("示例 (已脱敏)")], Data::String(s) if s.contains("<PHONE>")));
    let w = rows
        .iter()
        .find(|r| r[1] == Data::String("waiting".into()))
        .unwrap();
    assert_eq!(w[col("周环比 变化率")], Data::Empty);
    // In the workbook a name is a string cell, never a formula.
    assert!(rows.iter().any(|r| r[2] == Data::String("=cmd".into())));
    let tl = wb.worksheet_range("情感走势").unwrap();
    assert_eq!(tl.rows().count(), 3);
}
