//! The report's tables as files a spreadsheet opens: one CSV per table under
//! `RUN/report_tables/` (UTF-8 with a byte-order mark, so Excel reads Chinese right) and
//! `RUN/report.xlsx` with one sheet per table. Headers are in the report's language; texts are
//! the masked ones the report quotes; numbers stay numbers (shares as fractions 0-1).

use super::{GroupStats, PeriodChange, Report};
use crate::error::{Error, Result};
use crate::workspace::{write_atomic, RunDir};

/// One cell of an exported table.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Num(f64),
    /// No value (a blank cell).
    Empty,
}

/// One table of the report, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem and HTML anchor (`pain_points`, ...).
    pub stem: &'static str,
    /// Sheet name, in the report's language.
    pub title: String,
    /// Column headers, in the report's language.
    pub headers: Vec<String>,
    /// The rows, each as long as `headers`.
    pub rows: Vec<Vec<Value>>,
}

/// The stems of the tables [`report_tables`] makes, in order.
pub const TABLES: [&str; 7] = [
    "summary",
    "alerts",
    "journey",
    "pain_points",
    "themes",
    "topics",
    "timeline",
];

fn t(zh: bool, en: &str, zh_text: &str) -> String {
    if zh { zh_text } else { en }.to_string()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Empty, Value::Num)
}

fn examples(ex: &[super::Example]) -> Value {
    let lines: Vec<String> = ex.iter().map(|e| format!("{}: {}", e.id, e.text)).collect();
    Value::Text(lines.join("\n"))
}

fn group(stem: &'static str, title: String, r: &Report, groups: &[GroupStats]) -> Table {
    let zh = r.lang == "zh";
    let scale = r.rating.as_ref().map(|x| x.scale.to_uppercase());
    let period = if r.period_days == 7 {
        t(zh, "week-over-week", "周环比")
    } else {
        t(zh, "period-over-period", "环比")
    };
    let mut headers = vec![
        t(zh, "rank", "排名"),
        t(zh, "key", "编号"),
        t(zh, "name", "名称"),
        t(zh, "comments", "评论数"),
        t(zh, "negative share (0-1)", "负面占比 (0-1)"),
        t(zh, "mean sentiment (-1..1)", "平均情感 (-1..1)"),
        t(zh, "priority", "优先级"),
        t(zh, "mean severity", "平均严重度"),
        t(zh, "VIP/gold comments", "VIP/金卡评论数"),
        t(zh, "trend (last / earlier mean)", "趋势 (末期 / 此前均值)"),
        t(zh, "last period", "末期评论数"),
        t(zh, "previous period", "上期评论数"),
        format!("{period} {}", t(zh, "change", "变化")),
        format!("{period} {}", t(zh, "change (share)", "变化率")),
    ];
    if let Some(sc) = &scale {
        headers.push(sc.clone());
        headers.push(t(zh, "rated comments", "有评分评论数"));
        headers.push(t(zh, "impact (points)", "影响 (分)"));
    }
    headers.push(t(zh, "examples (masked)", "示例 (已脱敏)"));
    let rows = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let ch: Option<&PeriodChange> = g.change.as_ref();
            let mut row = vec![
                Value::Int(i as i64 + 1),
                text(&g.key),
                text(&g.name),
                Value::Int(g.volume as i64),
                Value::Num(g.negative_share),
                Value::Num(g.mean_sentiment),
                Value::Num(g.priority),
                Value::Num(g.mean_severity),
                Value::Int(g.weighted_tier_comments as i64),
                opt(g.trend),
                ch.map_or(Value::Empty, |c| Value::Int(c.last as i64)),
                ch.map_or(Value::Empty, |c| Value::Int(c.previous as i64)),
                ch.map_or(Value::Empty, |c| Value::Int(c.delta)),
                opt(ch.and_then(|c| c.percent)),
            ];
            if scale.is_some() {
                row.push(opt(g.rating.as_ref().map(|x| x.value)));
                row.push(
                    g.rating
                        .as_ref()
                        .map_or(Value::Empty, |x| Value::Int(x.n as i64)),
                );
                row.push(opt(g.rating.as_ref().map(|x| x.impact)));
            }
            row.push(examples(&g.examples));
            row
        })
        .collect();
    Table {
        stem,
        title,
        headers,
        rows,
    }
}

/// Every table of the report (those of [`TABLES`], in that order; a table with nothing to show
/// has its headers only).
pub fn report_tables(r: &Report) -> Vec<Table> {
    let zh = r.lang == "zh";
    let scale = r.rating.as_ref().map(|x| x.scale.to_uppercase());
    let mut summary = vec![
        vec![
            text(&t(zh, "comments", "评论数")),
            Value::Int(r.comments as i64),
        ],
        vec![
            text(&t(zh, "comments with a time", "有时间的评论数")),
            Value::Int(r.timed as i64),
        ],
        vec![
            text(&t(zh, "from", "起始日期")),
            text(r.from.as_deref().unwrap_or("")),
        ],
        vec![
            text(&t(zh, "to", "结束日期")),
            text(r.to.as_deref().unwrap_or("")),
        ],
        vec![
            text(&t(zh, "period (days)", "周期 (天)")),
            Value::Int(r.period_days),
        ],
    ];
    for (label, n) in &r.sentiment {
        summary.push(vec![
            Value::Text(format!("{} {label}", t(zh, "sentiment", "情感"))),
            Value::Int(*n as i64),
        ]);
    }
    if let Some(rt) = &r.rating {
        summary.push(vec![text(&rt.scale.to_uppercase()), Value::Num(rt.value)]);
        summary.push(vec![
            text(&t(zh, "rated comments", "有评分评论数")),
            Value::Int(rt.n as i64),
        ]);
    }
    summary.push(vec![
        text(&t(zh, "alerts", "预警数")),
        Value::Int(r.alerts.len() as i64),
    ]);
    let alerts = r
        .alerts
        .iter()
        .map(|a| {
            vec![
                text(&a.period),
                text(&a.kind),
                text(&a.key),
                text(&a.name),
                text(&a.metric),
                Value::Num(a.value),
                Value::Num(a.baseline_mean),
                Value::Num(a.baseline_sd),
                Value::Num(a.z),
                Value::Text(a.related.join("; ")),
            ]
        })
        .collect();
    let mut journey_headers = vec![
        t(zh, "stage key", "阶段编号"),
        t(zh, "stage", "阶段"),
        t(zh, "comments", "评论数"),
        t(zh, "share (0-1)", "占比 (0-1)"),
        t(zh, "mean sentiment (-1..1)", "平均情感 (-1..1)"),
        t(zh, "negative share (0-1)", "负面占比 (0-1)"),
    ];
    if let Some(sc) = &scale {
        journey_headers.push(sc.clone());
        journey_headers.push(t(zh, "rated comments", "有评分评论数"));
    }
    journey_headers.push(t(zh, "top pain points", "主要痛点"));
    journey_headers.push(t(zh, "examples (masked)", "示例 (已脱敏)"));
    let journey = r
        .journey
        .iter()
        .map(|st| {
            let mut row = vec![
                text(&st.key),
                text(&st.name),
                Value::Int(st.volume as i64),
                Value::Num(st.share),
                Value::Num(st.mean_sentiment),
                Value::Num(st.negative_share),
            ];
            if scale.is_some() {
                row.push(opt(st.rating.as_ref().map(|x| x.value)));
                row.push(
                    st.rating
                        .as_ref()
                        .map_or(Value::Empty, |x| Value::Int(x.n as i64)),
                );
            }
            let pains: Vec<String> = st
                .top_pain_points
                .iter()
                .map(|p| format!("{} ({})", p.name, p.count))
                .collect();
            row.push(Value::Text(pains.join("; ")));
            row.push(examples(&st.examples));
            row
        })
        .collect();
    let timeline = r
        .timeline
        .iter()
        .map(|p| {
            vec![
                text(&p.period),
                Value::Int(p.count as i64),
                Value::Num(p.negative_share),
                Value::Num(p.mean_sentiment),
            ]
        })
        .collect();
    vec![
        Table {
            stem: TABLES[0],
            title: t(zh, "summary", "概览"),
            headers: vec![t(zh, "measure", "指标"), t(zh, "value", "数值")],
            rows: summary,
        },
        Table {
            stem: TABLES[1],
            title: t(zh, "alerts", "预警"),
            headers: vec![
                t(zh, "period", "周期"),
                t(zh, "kind", "类型"),
                t(zh, "key", "编号"),
                t(zh, "what", "对象"),
                t(zh, "metric", "指标"),
                t(zh, "value", "数值"),
                t(zh, "baseline mean", "基线均值"),
                t(zh, "baseline sd", "基线标准差"),
                "z".to_string(),
                t(zh, "same event", "同一事件"),
            ],
            rows: alerts,
        },
        Table {
            stem: TABLES[2],
            title: t(zh, "journey", "客户旅程"),
            headers: journey_headers,
            rows: journey,
        },
        group(TABLES[3], t(zh, "pain points", "痛点"), r, &r.pain_points),
        group(TABLES[4], t(zh, "themes", "主题组"), r, &r.themes),
        group(TABLES[5], t(zh, "topics", "话题"), r, &r.topics),
        Table {
            stem: TABLES[6],
            title: t(zh, "sentiment over time", "情感走势"),
            headers: vec![
                t(zh, "period start", "周期起始"),
                t(zh, "comments", "评论数"),
                t(zh, "negative share (0-1)", "负面占比 (0-1)"),
                t(zh, "mean sentiment (-1..1)", "平均情感 (-1..1)"),
            ],
            rows: timeline,
        },
    ]
}

/// A number as the CSV writes it: whole numbers without a decimal point, others to 4 places.
fn number(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    let s = format!("{:.4}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Table {
    /// The table as CSV: a UTF-8 byte-order mark, the headers, then the rows. A text that a
    /// spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
        let err = |e: csv::Error| Error::Invalid(format!("csv: {e}"));
        w.write_record(&self.headers).map_err(err)?;
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                        format!("'{s}")
                    }
                    Value::Text(s) => s.clone(),
                    Value::Int(n) => n.to_string(),
                    Value::Num(x) => number(*x),
                    Value::Empty => String::new(),
                })
                .collect();
            w.write_record(&cells).map_err(err)?;
        }
        w.into_inner()
            .map_err(|e| Error::Invalid(format!("csv: {}", e.error())))
    }
}

/// The tables as one workbook, a sheet per table named by its title.
pub fn to_xlsx(tables: &[Table]) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| Error::Invalid(format!("xlsx: {e}"));
    let mut wb = Workbook::new();
    // a fixed creation time (the zip format's first day), so the same report gives the same bytes
    let epoch = ExcelDateTime::from_ymd(1980, 1, 1).map_err(err)?;
    wb.set_properties(&DocProperties::new().set_creation_datetime(&epoch));
    let bold = Format::new().set_bold();
    let wrap = Format::new().set_text_wrap();
    for t in tables {
        let ws = wb.add_worksheet();
        let name: String = t
            .title
            .chars()
            .filter(|c| !"[]:*?/\\".contains(*c))
            .take(31)
            .collect();
        ws.set_name(name).map_err(err)?;
        for (c, h) in t.headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)
                .map_err(err)?;
        }
        for (i, row) in t.rows.iter().enumerate() {
            let r = i as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                match v {
                    Value::Text(s) if s.contains('\n') => {
                        ws.write_string_with_format(r, c, s, &wrap).map_err(err)?;
                    }
                    Value::Text(s) => {
                        ws.write_string(r, c, s).map_err(err)?;
                    }
                    Value::Int(n) => {
                        ws.write_number(r, c, *n as f64).map_err(err)?;
                    }
                    Value::Num(x) if x.is_finite() => {
                        ws.write_number(r, c, *x).map_err(err)?;
                    }
                    Value::Num(_) | Value::Empty => {}
                }
            }
        }
    }
    wb.save_to_buffer().map_err(err)
}

/// Writes the report's tables: `RUN/report_tables/TABLE.csv` for each and `RUN/report.xlsx`.
pub fn write_tables(run: &RunDir, r: &Report) -> Result<()> {
    let tables = report_tables(r);
    let dir = run.report_tables_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for t in &tables {
        write_atomic(&run.report_table(t.stem), &t.to_csv()?)?;
    }
    write_atomic(&run.report_xlsx(), &to_xlsx(&tables)?)
}

#[cfg(test)]
mod tests;
