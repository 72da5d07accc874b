//! The page's tables of groups (pain points, themes, topics) and of alerts, each with the
//! notes that say what its columns mean ([`super::notes`]), in the report's language.

use super::html::{help, pct, quotes, user};
use super::notes::{alert_notes, group_notes};
use super::strings::{
    scale_name, Words, BASELINE, COMMENTS, EXAMPLES_SEVERE, IMPACT, KIND, MEAN_SENTIMENT, METRIC,
    NEGATIVE, NO_SPIKES, PERIOD, PRIORITY, SAME_EVENT, TREND, VALUE, VIP_GOLD, WHAT,
};
use super::{Alert, GroupStats, PeriodChange};
use std::fmt::Write;

/// A table of groups (pain points, themes or topics) with its column notes; `stem` names its
/// exported table, `title` heads its name column.
pub(super) fn group_table(
    w: Words,
    stem: &str,
    title: &str,
    groups: &[GroupStats],
    rating_scale: Option<&str>,
    period_days: i64,
) -> String {
    let change = w.change_header(period_days);
    let mut s = format!(
        "<table data-table=\"{stem}\"><tr><th>#</th><th class=\"l\">{title}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{change}</th>",
        w.get(COMMENTS),
        w.get(NEGATIVE),
        w.get(MEAN_SENTIMENT),
        w.get(PRIORITY),
        w.get(VIP_GOLD),
        w.get(TREND),
    );
    if let Some(sc) = rating_scale {
        let _ = write!(s, "<th>{}</th><th>{}</th>", scale_name(sc), w.get(IMPACT));
    }
    let _ = write!(s, "<th class=\"l\">{}</th></tr>", w.get(EXAMPLES_SEVERE));
    for (i, g) in groups.iter().enumerate() {
        let cls = if g.mean_sentiment < 0.0 { "neg" } else { "pos" };
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{:+.2}</td><td>{:.1}</td><td>{}</td><td>{}</td>",
            i + 1,
            user(&g.name),
            g.volume,
            pct(g.negative_share),
            g.mean_sentiment,
            g.priority,
            g.weighted_tier_comments,
            g.trend.map_or("–".to_string(), |t| w.times(t))
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
        let _ = write!(s, "<td class=\"l\">{}</td></tr>", quotes(w, &g.examples));
    }
    s += "</table>";
    s + &help(&group_notes(w, rating_scale, period_days))
}

/// The alerts table with its column notes.
pub(super) fn alerts(w: Words, list: &[Alert]) -> String {
    if list.is_empty() {
        return format!("<p>{}</p>", w.get(NO_SPIKES));
    }
    let mut s = String::from("<table data-table=\"alerts\"><tr>");
    for h in [PERIOD, KIND, WHAT, METRIC] {
        let _ = write!(s, "<th class=\"l\">{}</th>", w.get(h));
    }
    let _ = write!(
        s,
        "<th>{}</th><th>{}</th><th>z</th><th class=\"l\">{}</th></tr>",
        w.get(VALUE),
        w.get(BASELINE),
        w.get(SAME_EVENT)
    );
    for a in list {
        let fmt = |v: f64| {
            if a.metric == "negative_share" {
                pct(v)
            } else {
                format!("{v:.1}")
            }
        };
        let related: Vec<String> = a
            .related_spikes()
            .iter()
            .map(|r| {
                format!(
                    "{} {} ({})",
                    w.kind(&r.kind),
                    user(&r.name),
                    w.metric(&r.metric)
                )
            })
            .collect();
        let _ = write!(
            s,
            "<tr class=\"alert\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{} ± {}</td><td>{:.1}</td><td class=\"l\">{}</td></tr>",
            a.period,
            w.kind(&a.kind),
            user(&a.name),
            w.metric(&a.metric),
            fmt(a.value),
            fmt(a.baseline_mean),
            fmt(a.baseline_sd),
            a.z,
            related.join("; ")
        );
    }
    s += "</table>";
    s + &help(&alert_notes(w))
}
