//! `report.html`: one self-contained page (inline CSS, SVG and script, no network), with the
//! tables and charts of a [`Report`]: alerts, the journey map (filterable by channel, product
//! and tier in the page, [`super::journey_page`]), pain points, sentiment over time and
//! topics, in the report's language ([`super::strings`]: every word the page itself says is
//! Chinese with `--lang zh`; the comments' own values, names and quotes are marked
//! `data-user`, quotes are `<q>`, commands and font names `<code>`). Every chart has axes;
//! every table says what its columns mean and links to its CSV file and the workbook
//! (`report_tables/`, `report.xlsx`, [`super::write_tables`]), with a button that makes the CSV
//! from the table in the page (the journey table as filtered). Text is drawn in the embedded
//! CJK font (cut to the page's characters, [`super::font_face`]), then the system fonts.

use super::font::{font_face, font_stack};
use super::journey_page::journey_section;
use super::strings::{
    self, Words, ALERTS, COMMENTS, CSV_AS_SHOWN, DOWNLOAD, H_ALERTS, H_PAIN_POINTS, H_THEMES,
    H_TIMELINE, H_TOPICS, PAGE_TITLE, PAIN_POINT, PRIORITY_AXIS, SPIKES_FLAGGED, THEME,
    THEMES_NOTE, TIMELINE_AXES, TOPIC,
};
use super::tables::{alerts, group_table};
use super::{Example, GroupStats, Report};
use crate::text::escape_html;
use crate::workspace::RunDir;
use std::fmt::Write;

/// The system fonts after the embedded one: system UI fonts, then the common Chinese fonts of
/// macOS, Windows and Linux.
pub const FONT_STACK: &str = "system-ui,-apple-system,'Segoe UI','PingFang SC','Hiragino Sans GB','Microsoft YaHei','Noto Sans CJK SC','Source Han Sans SC','WenQuanYi Micro Hei',sans-serif";

const CSS: &str = "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
body{margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4;white-space:nowrap}td{white-space:nowrap}td.l,th.l{text-align:left;white-space:normal}.neg{color:#b00020}.pos{color:#1b7f3b}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.alert{background:#fff3f3}svg text{font-size:11px;fill:#333}
.help{font-size:12px;color:#555;max-width:1000px}.help dt{font-weight:bold;display:inline}.help dd{display:inline;margin:0 12px 0 4px}
q{quotes:'“' '”';display:block;margin:2px 0;max-width:460px;text-align:left}.id{color:#888;font-size:11px}
#font-warning{background:#fff8e1;border:1px solid #e0c060;padding:6px 10px;display:none}
.filters label{margin-right:14px;font-size:13px}.dl{font-size:12px;margin:2px 0 8px}.dl button{font-size:11px}
button,select{font-family:inherit}";

/// The download line under a table: its CSV file, the workbook, and (`button`) the CSV made
/// from the table as the page shows it.
pub(super) fn downloads(w: Words, stem: &str, button: bool) -> String {
    let mut s = format!(
        "<p class=\"dl\">{}<a href=\"{}\" download>{stem}.csv</a> · <a href=\"{}\" download>{}</a>",
        w.get(DOWNLOAD),
        RunDir::report_table_href(stem),
        RunDir::report_xlsx_href(),
        RunDir::report_xlsx_href()
    );
    if button {
        let _ = write!(
            s,
            " · <button type=\"button\" data-csv=\"{stem}\">{}</button>",
            w.get(CSV_AS_SHOWN)
        );
    }
    s + "</p>"
}

/// The buttons of [`downloads`]: the table's cells as CSV (UTF-8 with a byte-order mark, a
/// text that would read as a formula prefixed with `'`), saved without a network.
const CSV_JS: &str = r#"(function(){function csv(t){var rows=[];t.querySelectorAll('tr').forEach(function(tr){var r=[];
tr.querySelectorAll('th,td').forEach(function(c){var v=c.innerText.trim();if(/^[=@]/.test(v)||(/^[+-]/.test(v)&&isNaN(parseFloat(v))))v="'"+v;r.push('"'+v.replace(/"/g,'""')+'"');});
rows.push(r.join(','));});return '\ufeff'+rows.join('\r\n')+'\r\n';}
document.querySelectorAll('button[data-csv]').forEach(function(b){b.addEventListener('click',function(){var k=b.getAttribute('data-csv'),t=document.querySelector('table[data-table="'+k+'"]');if(!t)return;
var a=document.createElement('a');a.href=URL.createObjectURL(new Blob([csv(t)],{type:'text/csv;charset=utf-8'}));a.download=k+'.csv';document.body.appendChild(a);a.click();a.remove();});});})();"#;

/// Marks the page with whether Chinese characters get real glyphs (`data-cjk-font`:
/// `present`/`missing`: '中' drawn in the page's font stack against an unassigned code point,
/// always the missing-glyph box) and whether the embedded face loaded (`data-embedded-font`),
/// once the embedded face has loaded; the notice shows when they would be boxes.
const FONT_JS: &str = r#"(function(){function check(){try{var c=document.createElement('canvas');c.width=40;c.height=40;var x=c.getContext('2d');
var ff=getComputedStyle(document.body).fontFamily;function img(t){x.clearRect(0,0,40,40);x.font='24px '+ff;x.fillText(t,4,30);return x.getImageData(0,0,40,40).data.join(',');}
var none=img('中')===img('\u0378'),w=document.getElementById('font-warning'),h=document.documentElement;w.style.display=none?'block':'none';
h.setAttribute('data-cjk-font',none?'missing':'present');h.setAttribute('data-embedded-font',document.fonts&&document.fonts.check('24px "vocmine CJK"','中')?'loaded':'not-loaded');}catch(e){}}
if(document.fonts&&document.fonts.load){document.fonts.load('24px "vocmine CJK"','中').then(check,check);}else{check();}})();"#;

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn help(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<dl class=\"help\">");
    for (k, v) in items {
        let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", escape_html(k), escape_html(v));
    }
    s + "</dl>"
}

/// Quoted examples: the text (`<q>`), then its id and sentiment.
pub(super) fn quotes(w: Words, ex: &[Example]) -> String {
    ex.iter()
        .map(|e| {
            format!(
                "<q>{}</q><span class=\"id\">{} · {}</span>",
                escape_html(&e.text),
                escape_html(&e.id),
                escape_html(w.sentiment(&e.sentiment))
            )
        })
        .collect()
}

/// A value of the comments or the taxonomies (a name, a label), escaped and marked
/// `data-user`: data, not the page's own words.
pub(super) fn user(t: &str) -> String {
    format!("<span data-user>{}</span>", escape_html(t))
}

/// A horizontal bar chart of (label, value) pairs, with a value axis.
fn bars(items: &[(String, f64)], colour: &str, axis: &str) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-9);
    let h = 20 * items.len() + 50;
    let base = 20 * items.len() + 8;
    let mut s = format!("<svg width=\"740\" height=\"{h}\" role=\"img\">");
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 5 + 20 * i;
        let w = (v / max * 480.0).max(1.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" data-user>{}</text><rect x=\"200\" y=\"{y}\" width=\"{w:.1}\" height=\"14\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{}\">{v:.1}</text>",
            y + 11,
            escape_html(&label.chars().take(28).collect::<String>()),
            205.0 + w,
            y + 11
        );
    }
    let _ = write!(
        s,
        "<line x1=\"200\" y1=\"{base}\" x2=\"680\" y2=\"{base}\" stroke=\"#333\"/><line x1=\"200\" y1=\"0\" x2=\"200\" y2=\"{base}\" stroke=\"#333\"/>"
    );
    for k in 0..=4 {
        let x = 200.0 + 480.0 * k as f64 / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{base}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{:.1}</text>",
            base + 4,
            base + 16,
            max * k as f64 / 4.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"440\" y=\"{}\" text-anchor=\"middle\">{}</text></svg>",
        base + 32,
        escape_html(axis)
    );
    s
}

/// Columns over time (comment counts, left axis) with the negative share as a line (right
/// axis, 0-100%), dates along the bottom.
fn timeline(w: Words, r: &Report) -> String {
    let n = r.timeline.len().max(1);
    let max = r.timeline.iter().map(|p| p.count).max().unwrap_or(1).max(1) as f64;
    let cw = (840 / n).clamp(8, 60);
    let (left, top, bottom) = (50usize, 20.0, 190.0);
    let width = left + cw * n + 60;
    let mut s = format!("<svg width=\"{width}\" height=\"250\" role=\"img\">");
    let right = left + cw * n;
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{right}\" y1=\"{top}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#b00020\"/>"
    );
    for k in 0..=4 {
        let y = bottom - (bottom - top) * k as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text><text x=\"{}\" y=\"{:.1}\">{}%</text><line x1=\"{}\" y1=\"{y:.1}\" x2=\"{left}\" y2=\"{y:.1}\" stroke=\"#333\"/>",
            left - 6,
            y + 4.0,
            max * k as f64 / 4.0,
            right + 4,
            y + 4.0,
            25 * k,
            left - 3
        );
    }
    let mut line = String::new();
    for (i, p) in r.timeline.iter().enumerate() {
        let x = left + i * cw;
        let bh = p.count as f64 / max * (bottom - top);
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{bh:.1}\" fill=\"#8fb3d9\"><title>{}</title></rect>",
            bottom - bh,
            cw.saturating_sub(2).max(1),
            strings::period_tooltip(w, &p.period, p.count, &pct(p.negative_share))
        );
        let _ = write!(
            line,
            "{:.1},{:.1} ",
            x as f64 + cw as f64 / 2.0,
            bottom - p.negative_share * (bottom - top)
        );
        if i % ((n / 8).max(1)) == 0 {
            let _ = write!(
                s,
                "<text x=\"{x}\" y=\"{}\">{}</text>",
                bottom + 16.0,
                p.period.get(5..).unwrap_or(&p.period)
            );
        }
    }
    let _ = write!(
        s,
        "<polyline points=\"{line}\" fill=\"none\" stroke=\"#b00020\" stroke-width=\"2\"/><text x=\"{left}\" y=\"228\">{}</text></svg>",
        w.get(TIMELINE_AXES)
    );
    s
}

/// Renders the report as one HTML page, in the report's language.
pub fn to_html(r: &Report) -> String {
    let w = Words::new(&r.lang);
    let mut s = String::from(strings::font_warning(w));
    let _ = write!(
        s,
        "<h1>{}</h1><div class=\"cards\">",
        strings::heading(
            w,
            r.comments,
            r.from.as_deref().unwrap_or("?"),
            r.to.as_deref().unwrap_or("?")
        )
    );
    for (label, n) in &r.sentiment {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{n}</b>{}</div>",
            escape_html(w.sentiment(label)),
            pct(*n as f64 / r.comments.max(1) as f64)
        );
    }
    if let Some(rt) = &r.rating {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{:.1}</b>{}</div>",
            strings::scale_name(&rt.scale),
            rt.value,
            strings::rated_caption(w, rt.n)
        );
    }
    let _ = write!(
        s,
        "<div class=\"card\">{}<b>{}</b>{}</div></div>",
        w.get(ALERTS),
        r.alerts.len(),
        w.get(SPIKES_FLAGGED)
    );
    s += &downloads(w, "summary", false);
    let _ = write!(s, "<h2>{}</h2>", w.get(H_ALERTS));
    s += &alerts(w, &r.alerts);
    s += &downloads(w, "alerts", !r.alerts.is_empty());
    if !r.journey.is_empty() {
        s += &journey_section(w, r);
    }
    let scale = r.rating.as_ref().map(|x| x.scale.as_str());
    let _ = write!(s, "<h2>{}</h2>", w.get(H_PAIN_POINTS));
    let items: Vec<(String, f64)> = r
        .pain_points
        .iter()
        .map(|g| (g.name.clone(), g.priority))
        .collect();
    s += &bars(&items, "#d9534f", w.get(PRIORITY_AXIS));
    let days = r.period_days;
    let pain = w.get(PAIN_POINT);
    s += &group_table(w, "pain_points", pain, &r.pain_points, scale, days);
    s += &downloads(w, "pain_points", true);
    s += &super::aspects::section(w, &r.aspects);
    let _ = write!(s, "<h2>{}</h2>", w.get(H_TIMELINE));
    s += &timeline(w, r);
    s += &downloads(w, "timeline", false);
    if !r.themes.is_empty() {
        let _ = write!(
            s,
            "<h2>{}</h2><p class=\"help\">{}</p>",
            w.get(H_THEMES),
            w.get(THEMES_NOTE)
        );
        s += &group_table(w, "themes", w.get(THEME), &r.themes, scale, days);
        s += &downloads(w, "themes", true);
    }
    let _ = write!(s, "<h2>{}</h2>", w.get(H_TOPICS));
    if r.topics.is_empty() {
        s += strings::no_topics(w);
    } else {
        let mut by_volume: Vec<&GroupStats> = r.topics.iter().collect();
        by_volume.sort_by(|a, b| b.volume.cmp(&a.volume).then(a.key.cmp(&b.key)));
        let items: Vec<(String, f64)> = by_volume
            .iter()
            .take(25)
            .map(|g| (format!("{} {}", g.key, g.name), g.volume as f64))
            .collect();
        s += &bars(&items, "#5b8fc7", w.get(COMMENTS));
        s += &group_table(w, "topics", w.get(TOPIC), &r.topics, scale, days);
        s += &downloads(w, "topics", true);
    }
    s += &strings::fonts_line(w, super::FONT_FAMILY, &escape_html(FONT_STACK));
    let _ = write!(s, "<script>{FONT_JS}{CSV_JS}</script></body></html>");
    // The embedded face holds exactly the characters of the page (its script's strings too).
    s.push('\n');
    let face = font_face(&format!("{s}{CSS}")).unwrap_or_default();
    let lang = if w.zh() { "zh-CN" } else { "en" };
    let stack = font_stack(FONT_STACK);
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title><style>{face}body{{font-family:{stack}}}{CSS}</style></head><body>{s}",
        w.get(PAGE_TITLE)
    )
}
