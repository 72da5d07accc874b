//! `report.html`: one self-contained page (inline CSS and SVG, no network), with the tables
//! and charts of a [`Report`].

use super::{GroupStats, Report};
use crate::index::snippet::escape_html;
use std::fmt::Write;

const CSS: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.neg{color:#b00020}.pos{color:#1b7f3b}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.alert{background:#fff3f3}svg text{font-size:11px;fill:#333}";

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A horizontal bar chart of (label, value) pairs.
fn bars(items: &[(String, f64)], colour: &str) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-9);
    let h = 20 * items.len() + 10;
    let mut s = format!("<svg width=\"720\" height=\"{h}\" role=\"img\">");
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 5 + 20 * i;
        let w = (v / max * 480.0).max(1.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{w:.1}\" height=\"14\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{}\">{v:.1}</text>",
            y + 11,
            escape_html(&label.chars().take(28).collect::<String>()),
            205.0 + w,
            y + 11
        );
    }
    s + "</svg>"
}

/// Columns over time: comment counts, with the negative share as a line.
fn timeline(r: &Report) -> String {
    let n = r.timeline.len().max(1);
    let max = r.timeline.iter().map(|p| p.count).max().unwrap_or(1).max(1) as f64;
    let w = (900 / n).clamp(8, 60);
    let width = w * n + 60;
    let mut s = format!("<svg width=\"{width}\" height=\"240\" role=\"img\">");
    let mut line = String::new();
    for (i, p) in r.timeline.iter().enumerate() {
        let x = 40 + i * w;
        let bh = p.count as f64 / max * 160.0;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{bh:.1}\" fill=\"#8fb3d9\"><title>{}: {} comments, {} negative</title></rect>",
            190.0 - bh,
            w.saturating_sub(2).max(1),
            p.period,
            p.count,
            pct(p.negative_share)
        );
        let _ = write!(
            line,
            "{:.1},{:.1} ",
            x as f64 + w as f64 / 2.0,
            190.0 - p.negative_share * 160.0
        );
        if i % ((n / 8).max(1)) == 0 {
            let _ = write!(s, "<text x=\"{x}\" y=\"210\">{}</text>", &p.period[5..]);
        }
    }
    let _ = write!(
        s,
        "<polyline points=\"{line}\" fill=\"none\" stroke=\"#b00020\" stroke-width=\"2\"/><text x=\"40\" y=\"230\">bars: comments per period (max {max}); red line: negative share (top = 100%)</text></svg>"
    );
    s
}

fn group_table(title: &str, groups: &[GroupStats], rating_scale: Option<&str>) -> String {
    let mut s = format!(
        "<table><tr><th>#</th><th class=\"l\">{title}</th><th>comments</th><th>negative</th><th>mean sentiment</th><th>priority</th><th>VIP/gold</th><th>trend</th>"
    );
    if let Some(sc) = rating_scale {
        let _ = write!(s, "<th>{}</th><th>impact</th>", sc.to_uppercase());
    }
    s += "<th class=\"l\">examples</th></tr>";
    for (i, g) in groups.iter().enumerate() {
        let cls = if g.mean_sentiment < 0.0 { "neg" } else { "pos" };
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{:.2}</td><td>{:.1}</td><td>{}</td><td>{}</td>",
            i + 1,
            escape_html(&g.name),
            g.volume,
            pct(g.negative_share),
            g.mean_sentiment,
            g.priority,
            g.weighted_tier_comments,
            g.trend.map_or("–".to_string(), |t| format!("{t:.2}x"))
        );
        if rating_scale.is_some() {
            match &g.rating {
                Some(r) => {
                    let _ = write!(
                        s,
                        "<td>{:.1} (n={})</td><td>{:+.1}</td>",
                        r.value, r.n, r.impact
                    );
                }
                None => s += "<td>–</td><td>–</td>",
            }
        }
        let _ = write!(
            s,
            "<td class=\"l\">{}</td></tr>",
            escape_html(&g.examples.join(", "))
        );
    }
    s + "</table>"
}

/// Renders the report as one HTML page.
pub fn to_html(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vocmine report</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(
        s,
        "<h1>Voice of the customer: {} comments, {} to {}</h1><div class=\"cards\">",
        r.comments,
        r.from.as_deref().unwrap_or("?"),
        r.to.as_deref().unwrap_or("?")
    );
    for (label, n) in &r.sentiment {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{n}</b>{}</div>",
            escape_html(label),
            pct(*n as f64 / r.comments.max(1) as f64)
        );
    }
    if let Some(rt) = &r.rating {
        let _ = write!(
            s,
            "<div class=\"card\">{}<b>{:.1}</b>{} rated comments</div>",
            rt.scale.to_uppercase(),
            rt.value,
            rt.n
        );
    }
    let _ = write!(
        s,
        "<div class=\"card\">alerts<b>{}</b>spikes flagged</div></div>",
        r.alerts.len()
    );

    s += "<h2>Alerts</h2>";
    if r.alerts.is_empty() {
        s += "<p>No spikes.</p>";
    } else {
        s += "<table><tr><th class=\"l\">period</th><th class=\"l\">kind</th><th class=\"l\">what</th><th class=\"l\">metric</th><th>value</th><th>baseline</th><th>z</th></tr>";
        for a in &r.alerts {
            let fmt = |v: f64| {
                if a.metric == "negative_share" {
                    pct(v)
                } else {
                    format!("{v:.1}")
                }
            };
            let _ = write!(
                s,
                "<tr class=\"alert\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{} ± {}</td><td>{:.1}</td></tr>",
                a.period,
                a.kind,
                escape_html(&a.name),
                a.metric,
                fmt(a.value),
                fmt(a.baseline_mean),
                fmt(a.baseline_sd),
                a.z
            );
        }
        s += "</table>";
    }
    let scale = r.rating.as_ref().map(|x| x.scale.as_str());
    s += "<h2>Pain points, ranked by priority (sum of negativity x tier weight)</h2>";
    let items: Vec<(String, f64)> = r
        .pain_points
        .iter()
        .map(|g| (g.name.clone(), g.priority))
        .collect();
    s += &bars(&items, "#d9534f");
    s += &group_table("pain point", &r.pain_points, scale);
    s += "<h2>Sentiment over time</h2>";
    s += &timeline(r);
    s += "<h2>Topics</h2>";
    if r.topics.is_empty() {
        s += "<p>No topics yet: run <code>vocmine topics RUN</code>.</p>";
    } else {
        let mut by_volume: Vec<&GroupStats> = r.topics.iter().collect();
        by_volume.sort_by(|a, b| b.volume.cmp(&a.volume).then(a.key.cmp(&b.key)));
        let items: Vec<(String, f64)> = by_volume
            .iter()
            .take(25)
            .map(|g| (format!("{} {}", g.key, g.name), g.volume as f64))
            .collect();
        s += &bars(&items, "#5b8fc7");
        s += &group_table("topic", &r.topics, scale);
    }
    // A render check: the tables the browser built, written into the page.
    s += "<p id=\"render-check\"></p><script>(function(){var t=document.querySelectorAll('table');var n=0;t.forEach(function(x){n+=x.rows.length});document.getElementById('render-check').textContent='rendered '+t.length+' tables, '+n+' rows';})();</script>";
    s + "</body></html>\n"
}
