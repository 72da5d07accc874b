//! The page's tables of groups (pain points, themes, topics) and of alerts, each with the
//! notes that say what its columns mean.

use super::html::{help, pct, quotes};
use super::{Alert, GroupStats, PeriodChange};
use crate::text::escape_html;
use std::fmt::Write;

/// The header of the change column: week over week with weekly periods.
pub(super) fn change_header(period_days: i64) -> &'static str {
    if period_days == 7 {
        "week-over-week"
    } else {
        "period-over-period"
    }
}

/// A table of groups (pain points, themes or topics) with its column notes; `stem` names its
/// exported table.
pub(super) fn group_table(
    stem: &str,
    title: &str,
    groups: &[GroupStats],
    rating_scale: Option<&str>,
    period_days: i64,
) -> String {
    let change = change_header(period_days);
    let mut s = format!(
        "<table data-table=\"{stem}\"><tr><th>#</th><th class=\"l\">{title}</th><th>comments</th><th>negative</th><th>mean sentiment</th><th>priority</th><th>VIP/gold</th><th>trend</th><th>{change}</th>"
    );
    if let Some(sc) = rating_scale {
        let _ = write!(s, "<th>{}</th><th>impact</th>", sc.to_uppercase());
    }
    s += "<th class=\"l\">examples (most severe first)</th></tr>";
    for (i, g) in groups.iter().enumerate() {
        let cls = if g.mean_sentiment < 0.0 { "neg" } else { "pos" };
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{:+.2}</td><td>{:.1}</td><td>{}</td><td>{}</td>",
            i + 1,
            escape_html(&g.name),
            g.volume,
            pct(g.negative_share),
            g.mean_sentiment,
            g.priority,
            g.weighted_tier_comments,
            g.trend.map_or("–".to_string(), |t| format!("{t:.2}x"))
        );
        let _ = write!(s, "<td>{}</td>", PeriodChange::text_of(g.change.as_ref()));
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
        let _ = write!(s, "<td class=\"l\">{}</td></tr>", quotes(&g.examples));
    }
    s += "</table>";
    let mut items = vec![
        ("comments", "comments in the group."),
        ("negative", "share with negative sentiment."),
        ("mean sentiment", "mean of P(positive) - P(negative), -1 to +1."),
        ("priority", "the ranking key: sum over the group's comments of negativity (how negative, 0-1) x customer-tier weight, so volume, negativity and tier all count."),
        ("VIP/gold", "comments from tiers weighted above 1."),
        ("trend", "comments in the last period divided by the mean of the periods before it (2.00x: twice the usual volume; – : no earlier periods)."),
        (change, if period_days == 7 {
            "comments in the last week minus those in the week before it, and that change as a share of the week before (+12 (+40%): 12 more, 40% up; – : no earlier week, or none the week before for the share)."
        } else {
            "comments in the last period minus those in the period before it, and that change as a share of the period before (+12 (+40%): 12 more, 40% up; – : no earlier period, or none in it for the share)."
        }),
    ];
    if let Some(sc) = rating_scale {
        items.push((
            if sc == "nps" {
                "NPS"
            } else if sc == "ces" {
                "CES"
            } else {
                "CSAT"
            },
            "the rating metric over the group's rated comments (n: rated comments).",
        ));
        items.push(("impact", "as Thematic defines it: the overall score minus the score without this group's comments, in points; negative: the group pulls the score down by that much."));
    }
    items.push(("examples", "quoted as scored: personal data masked."));
    s + &help(&items)
}

/// The alerts table with its column notes.
pub(super) fn alerts(list: &[Alert]) -> String {
    if list.is_empty() {
        return "<p>No spikes.</p>".into();
    }
    let mut s = String::from("<table data-table=\"alerts\"><tr><th class=\"l\">period</th><th class=\"l\">kind</th><th class=\"l\">what</th><th class=\"l\">metric</th><th>value</th><th>baseline</th><th>z</th><th class=\"l\">same event</th></tr>");
    for a in list {
        let fmt = |v: f64| {
            if a.metric == "negative_share" {
                pct(v)
            } else {
                format!("{v:.1}")
            }
        };
        let _ = write!(
            s,
            "<tr class=\"alert\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{} ± {}</td><td>{:.1}</td><td class=\"l\">{}</td></tr>",
            a.period,
            a.kind,
            escape_html(&a.name),
            a.metric,
            fmt(a.value),
            fmt(a.baseline_mean),
            fmt(a.baseline_sd),
            a.z,
            escape_html(&a.related.join("; "))
        );
    }
    s += "</table>";
    s + &help(&[
        ("period", "first day of the period flagged."),
        ("metric", "volume (comments in the period) or negative_share (share of them negative)."),
        ("baseline", "mean ± standard deviation of the same metric over the periods before it."),
        ("z", "how many standard deviations above the baseline (counts use at least the Poisson noise, √mean)."),
        ("same event", "other spikes of the same period made of the same comments (a topic of the same complaints, the other metric), folded into this alert."),
    ])
}
