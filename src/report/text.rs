//! A report's headline as plain text: what `vocmine report` prints.

use super::Report;
use std::fmt::Write as _;

impl Report {
    /// The headline: comments and dates, the rating score, the five top pain points by
    /// priority and up to ten alerts. Every line ends with a newline.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} comments, {} to {}",
            self.comments,
            self.from.as_deref().unwrap_or("?"),
            self.to.as_deref().unwrap_or("?")
        );
        if let Some(rt) = &self.rating {
            let scale = rt.scale.to_uppercase();
            let _ = writeln!(s, "{scale} {:.1} over {} rated comments", rt.value, rt.n);
        }
        s.push_str("top pain points by priority:\n");
        for g in self.pain_points.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:<22} {:>4} comments, {:>3.0}% negative, priority {:.1}",
                g.name,
                g.volume,
                g.negative_share * 100.0,
                g.priority
            );
        }
        if !self.aspects.is_empty() {
            s.push_str("aspects by negative mentions:\n");
        }
        for a in self.aspects.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:<22} {:>4} mentions: {} negative, {} neutral, {} positive",
                a.name, a.mentions, a.negative, a.neutral, a.positive
            );
        }
        for al in self.alerts.iter().take(10) {
            let _ = writeln!(
                s,
                "ALERT {} {} {:?}: {} {:.2} (baseline {:.2} ± {:.2}, z {:.1})",
                al.period,
                al.kind,
                al.name,
                al.metric,
                al.value,
                al.baseline_mean,
                al.baseline_sd,
                al.z
            );
        }
        s
    }
}
