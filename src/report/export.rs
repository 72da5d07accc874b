//! The report's tables as files a spreadsheet opens: one CSV per table under
//! `RUN/report_tables/` (UTF-8 with a byte-order mark, so Excel reads Chinese right) and
//! `RUN/report.xlsx` with one sheet per table. Headers are in the report's language; texts are
//! the masked ones the report quotes; numbers stay numbers (shares as fractions 0-1).

use super::strings::{
    Words, ALERTS, ALERT_COUNT, BASELINE_MEAN, BASELINE_SD, CHANGE, CHANGE_SHARE, COMMENTS,
    COMMENTS_TIMED, EXAMPLES_MASKED, FROM, IMPACT_POINTS, JOURNEY, KEY, KIND, LAST_PERIOD,
    MEAN_SENTIMENT_11, MEAN_SEVERITY, MEASURE, METRIC, NAME, NEGATIVE_SHARE_01, PAIN_POINTS,
    PERIOD, PERIOD_DAYS, PERIOD_START, PREVIOUS_PERIOD, PRIORITY, RANK, RATED_COMMENTS, SAME_EVENT,
    SENTIMENT, SENTIMENT_OVER_TIME, SHARE_01, STAGE, STAGE_KEY, SUMMARY, THEMES, TO, TOPICS,
    TOP_PAIN_POINTS, TREND_RATIO, VALUE, VIP_GOLD_COMMENTS, WHAT,
};
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
pub const TABLES: [&str; 8] = [
    "summary",
    "alerts",
    "journey",
    "pain_points",
    "themes",
    "topics",
    "timeline",
    "aspects",
];

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

/// The headers of the change columns: the last period, the one before, the change and the
/// change as a share (`week-over-week change` with weekly periods).
fn change_headers(w: Words, period_days: i64) -> [String; 4] {
    let period = w.change_header(period_days);
    [
        w.s(LAST_PERIOD),
        w.s(PREVIOUS_PERIOD),
        format!("{period} {}", w.get(CHANGE)),
        format!("{period} {}", w.get(CHANGE_SHARE)),
    ]
}

/// The cells of [`change_headers`]' columns.
fn change_cells(ch: Option<&PeriodChange>) -> [Value; 4] {
    [
        ch.map_or(Value::Empty, |c| Value::Int(c.last as i64)),
        ch.map_or(Value::Empty, |c| Value::Int(c.previous as i64)),
        ch.map_or(Value::Empty, |c| Value::Int(c.delta)),
        opt(ch.and_then(|c| c.percent)),
    ]
}

fn group(stem: &'static str, title: String, r: &Report, groups: &[GroupStats]) -> Table {
    let w = Words::new(&r.lang);
    let scale = r.rating.as_ref().map(|x| x.scale.to_uppercase());
    let mut headers = vec![
        w.s(RANK),
        w.s(KEY),
        w.s(NAME),
        w.s(COMMENTS),
        w.s(NEGATIVE_SHARE_01),
        w.s(MEAN_SENTIMENT_11),
        w.s(PRIORITY),
        w.s(MEAN_SEVERITY),
        w.s(VIP_GOLD_COMMENTS),
        w.s(TREND_RATIO),
    ];
    headers.extend(change_headers(w, r.period_days));
    if let Some(sc) = &scale {
        headers.push(sc.clone());
        headers.push(w.s(RATED_COMMENTS));
        headers.push(w.s(IMPACT_POINTS));
    }
    headers.push(w.s(EXAMPLES_MASKED));
    let rows = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
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
            ];
            row.extend(change_cells(g.change.as_ref()));
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
/// has its headers only, and `aspects` is there only for a run scored with `--aspects`).
pub fn report_tables(r: &Report) -> Vec<Table> {
    let w = Words::new(&r.lang);
    let scale = r.rating.as_ref().map(|x| x.scale.to_uppercase());
    let mut summary = vec![
        vec![text(&w.s(COMMENTS)), Value::Int(r.comments as i64)],
        vec![text(&w.s(COMMENTS_TIMED)), Value::Int(r.timed as i64)],
        vec![text(&w.s(FROM)), text(r.from.as_deref().unwrap_or(""))],
        vec![text(&w.s(TO)), text(r.to.as_deref().unwrap_or(""))],
        vec![text(&w.s(PERIOD_DAYS)), Value::Int(r.period_days)],
    ];
    for (label, n) in &r.sentiment {
        summary.push(vec![
            Value::Text(format!("{} {}", w.get(SENTIMENT), w.sentiment(label))),
            Value::Int(*n as i64),
        ]);
    }
    if let Some(rt) = &r.rating {
        summary.push(vec![text(&rt.scale.to_uppercase()), Value::Num(rt.value)]);
        summary.push(vec![text(&w.s(RATED_COMMENTS)), Value::Int(rt.n as i64)]);
    }
    summary.push(vec![
        text(&w.s(ALERT_COUNT)),
        Value::Int(r.alerts.len() as i64),
    ]);
    let alerts = r
        .alerts
        .iter()
        .map(|a| {
            let related: Vec<String> = a
                .related_spikes()
                .iter()
                .map(|x| format!("{} {} ({})", w.kind(&x.kind), x.name, w.metric(&x.metric)))
                .collect();
            vec![
                text(&a.period),
                text(w.kind(&a.kind)),
                text(&a.key),
                text(&a.name),
                text(w.metric(&a.metric)),
                Value::Num(a.value),
                Value::Num(a.baseline_mean),
                Value::Num(a.baseline_sd),
                Value::Num(a.z),
                Value::Text(related.join("; ")),
            ]
        })
        .collect();
    let mut journey_headers = vec![
        w.s(STAGE_KEY),
        w.s(STAGE),
        w.s(COMMENTS),
        w.s(SHARE_01),
        w.s(MEAN_SENTIMENT_11),
        w.s(NEGATIVE_SHARE_01),
    ];
    if let Some(sc) = &scale {
        journey_headers.push(sc.clone());
        journey_headers.push(w.s(RATED_COMMENTS));
    }
    journey_headers.extend(change_headers(w, r.period_days));
    journey_headers.push(w.s(TOP_PAIN_POINTS));
    journey_headers.push(w.s(EXAMPLES_MASKED));
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
            row.extend(change_cells(st.change.as_ref()));
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
            title: w.s(SUMMARY),
            headers: vec![w.s(MEASURE), w.s(VALUE)],
            rows: summary,
        },
        Table {
            stem: TABLES[1],
            title: w.s(ALERTS),
            headers: vec![
                w.s(PERIOD),
                w.s(KIND),
                w.s(KEY),
                w.s(WHAT),
                w.s(METRIC),
                w.s(VALUE),
                w.s(BASELINE_MEAN),
                w.s(BASELINE_SD),
                "z".to_string(),
                w.s(SAME_EVENT),
            ],
            rows: alerts,
        },
        Table {
            stem: TABLES[2],
            title: w.s(JOURNEY),
            headers: journey_headers,
            rows: journey,
        },
        group(TABLES[3], w.s(PAIN_POINTS), r, &r.pain_points),
        group(TABLES[4], w.s(THEMES), r, &r.themes),
        group(TABLES[5], w.s(TOPICS), r, &r.topics),
        Table {
            stem: TABLES[6],
            title: w.s(SENTIMENT_OVER_TIME),
            headers: vec![
                w.s(PERIOD_START),
                w.s(COMMENTS),
                w.s(NEGATIVE_SHARE_01),
                w.s(MEAN_SENTIMENT_11),
            ],
            rows: timeline,
        },
    ]
    .into_iter()
    .chain((!r.aspects.is_empty()).then(|| super::aspects::table(w, TABLES[7], &r.aspects)))
    .collect()
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
    // a table this report does not have (aspects, after a run scored without them) is not
    // left from an earlier report
    for stem in TABLES
        .iter()
        .filter(|s| !tables.iter().any(|t| t.stem == **s))
    {
        let p = run.report_table(stem);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    write_atomic(&run.report_xlsx(), &to_xlsx(&tables)?)
}

#[cfg(test)]
mod tests;
