//! A search's answer as plain text, for a terminal or any other front end without HTML.

use super::query::SearchResponse;
use std::fmt::Write as _;

/// A snippet (HTML-escaped, matches in `<b>` tags) as plain text, each match between `on` and
/// `off` (e.g. terminal colour codes, or `[` and `]`).
pub fn snippet_text(html: &str, on: &str, off: &str) -> String {
    html.replace("<b>", on)
        .replace("</b>", off)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

impl SearchResponse {
    /// The answer as text: the count, each hit (id, score, tags, time, then its snippet with
    /// matches between `on` and `off`), then the facet counts and the non-empty date buckets.
    /// Every line ends with a newline.
    pub fn to_text(&self, on: &str, off: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} comments match", self.total);
        for h in &self.hits {
            let tag = |k: &str| h.tags.get(k).map(String::as_str).unwrap_or("-");
            let _ = writeln!(
                s,
                "\n{}  score {:.2}  {} {} {} {}  {} {}  {}",
                h.id,
                h.score,
                tag("sentiment"),
                tag("intent"),
                tag("pain_point"),
                tag("journey_stage"),
                tag("channel"),
                tag("tier"),
                h.time.as_deref().unwrap_or("")
            );
            let _ = writeln!(s, "  {}", snippet_text(&h.snippet, on, off));
        }
        s.push('\n');
        let counts = |c: Vec<String>| c.join(", ");
        for (name, c) in &self.facets.tags {
            if !c.is_empty() {
                let parts = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(s, "{name}: {}", counts(parts));
            }
        }
        if !self.facets.topic.is_empty() {
            let parts = (self.facets.topic.iter())
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "topic: {}", counts(parts));
        }
        let days: Vec<String> = (self.facets.date.iter())
            .filter(|b| b.count > 0)
            .map(|b| format!("{} {}", b.date, b.count))
            .collect();
        if !days.is_empty() {
            let _ = writeln!(s, "date: {}", days.join(", "));
        }
        s
    }
}
