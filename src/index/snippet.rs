//! Highlighted snippets: the best window of a comment with the query's words in `<b>` tags.
//!
//! tantivy's own snippet generator assumes tokens never overlap and come in text order;
//! jieba's search mode emits overlapping sub-words (物有, 物有所值), so the window and the
//! highlights are computed here: a query's Chinese runs (its characters in a row, as the
//! phrase query matched them) are found in the folded text, its other words among the
//! analyzer's tokens; overlapping matches are merged.

use super::tokenizer::{fold, Folded};
use crate::text::escape_html;
use std::collections::BTreeSet;
use tantivy::tokenizer::TextAnalyzer;

/// What a snippet highlights, from the query text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Highlight {
    /// Folded runs of Chinese characters (each matched as a whole).
    pub runs: Vec<String>,
    /// Other analyzed words (English stems, numbers).
    pub words: BTreeSet<String>,
}

impl Highlight {
    /// The highlights of `query`, cut by the query analyzer (Chinese characters in a row at
    /// consecutive positions form one run).
    pub fn from_query(query_analyzer: &mut TextAnalyzer, query: &str) -> Highlight {
        let mut h = Highlight::default();
        // tantivy's operators are not words of the text.
        let query: Vec<&str> = query
            .split_whitespace()
            .filter(|w| !matches!(*w, "OR" | "AND" | "NOT"))
            .collect();
        let query = query.join(" ");
        let mut stream = query_analyzer.token_stream(&query);
        let mut run = String::new();
        let mut last: Option<(usize, usize)> = None; // (position, offset_to)
        while stream.advance() {
            let t = stream.token();
            let han = t.text.chars().count() == 1 && t.text.chars().all(super::tokenizer::is_han);
            if !han {
                h.words.insert(t.text.clone());
                continue;
            }
            let follows = last.is_some_and(|(p, to)| t.position == p + 1 && t.offset_from == to);
            if !follows && !run.is_empty() {
                h.runs.push(std::mem::take(&mut run));
            }
            run.push_str(&t.text);
            last = Some((t.position, t.offset_to));
        }
        if !run.is_empty() {
            h.runs.push(run);
        }
        h.runs.sort();
        h.runs.dedup();
        h
    }

    /// True when there is nothing to highlight.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.words.is_empty()
    }
}

/// Original byte ranges of the matches of `h` in `text` (its folded form `folded`).
fn matches(
    analyzer: &mut TextAnalyzer,
    text: &str,
    folded: &Folded,
    h: &Highlight,
    max: usize,
) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for run in &h.runs {
        for (i, m) in folded.text.match_indices(run.as_str()) {
            if ranges.len() >= max {
                return ranges;
            }
            ranges.push(folded.original_range(i, i + m.len()));
        }
    }
    if !h.words.is_empty() {
        let mut stream = analyzer.token_stream(text);
        while ranges.len() < max && stream.advance() {
            let t = stream.token();
            if h.words.contains(&t.text) && t.offset_from < t.offset_to {
                ranges.push((t.offset_from, t.offset_to));
            }
        }
    }
    ranges
}

/// Most bytes at the start of a text that are cut into words for a snippet: the work per hit
/// stays bounded however long the comment is (a match further in is not highlighted).
pub const SNIPPET_SCAN_BYTES: usize = 64 * 1024;
/// Most matches considered for a snippet's window.
pub const SNIPPET_MAX_MATCHES: usize = 1_000;

/// The best window of `max_chars` characters of `text` with every match of `h` wrapped in
/// `<b>` (overlapping matches merged), HTML-escaped, with `…`
/// where the text is cut. The window starts a little before the densest run of matches.
/// Only the first [`SNIPPET_SCAN_BYTES`] of the text are searched for matches, and only the
/// first [`SNIPPET_MAX_MATCHES`] of them are used: the work is linear in those, not in the
/// text.
pub fn snippet_html(
    analyzer: &mut TextAnalyzer,
    text: &str,
    h: &Highlight,
    max_chars: usize,
) -> String {
    let mut cut = text.len().min(SNIPPET_SCAN_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let scan = &text[..cut];
    let mut ranges = if h.is_empty() {
        Vec::new()
    } else {
        matches(analyzer, scan, &fold(scan), h, SNIPPET_MAX_MATCHES)
    };
    ranges.retain(|&(a, b)| a < b && b <= cut);
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    // Window start (in chars of the scanned part) that covers the most matches, starting a
    // few chars (at most 10) before one; two pointers over the sorted matches.
    let mut lo_chars = 0;
    if !merged.is_empty() {
        let starts: Vec<usize> = scan
            .char_indices()
            .map(|(i, _)| i)
            .chain([scan.len()])
            .collect();
        let char_at = |byte: usize| starts.partition_point(|&s| s < byte);
        let spans: Vec<(usize, usize)> = merged
            .iter()
            .map(|&(a, b)| (char_at(a), char_at(b)))
            .collect();
        let lead = (max_chars / 4).min(10);
        let (mut best, mut j) = ((0usize, 0usize), 0usize);
        for (i, &(a, _)) in spans.iter().enumerate() {
            let start = a.saturating_sub(lead);
            let end = start.saturating_add(max_chars);
            j = j.max(i);
            while j < spans.len() && spans[j].1 <= end {
                j += 1;
            }
            if j - i > best.0 {
                best = (j - i, start);
            }
        }
        lo_chars = best.1;
    }
    let mut lo_b = scan
        .char_indices()
        .nth(lo_chars)
        .map_or(scan.len(), |(i, _)| i);
    let mut hi_b = text[lo_b..]
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| lo_b + i);
    if hi_b == text.len() {
        // Near the end: show the last `max_chars` characters.
        lo_b = if max_chars == 0 {
            text.len()
        } else {
            text.char_indices()
                .rev()
                .nth(max_chars - 1)
                .map_or(0, |(i, _)| i)
        };
        hi_b = text.len();
    }
    let mut html = String::new();
    if lo_b > 0 {
        html.push('…');
    }
    let mut at = lo_b;
    for &(a, b) in &merged {
        let (a, b) = (a.max(lo_b), b.min(hi_b));
        if a >= b || a < at {
            continue;
        }
        html.push_str(&escape_html(&text[at..a]));
        html.push_str("<b>");
        html.push_str(&escape_html(&text[a..b]));
        html.push_str("</b>");
        at = b;
    }
    html.push_str(&escape_html(&text[at..hi_b]));
    if hi_b < text.len() {
        html.push('…');
    }
    html
}

#[cfg(test)]
mod snippet_tests {
    use super::*;

    fn terms(q: &[&str]) -> Highlight {
        Highlight::from_query(&mut crate::index::tokenizer::query_analyzer(), &q.join(" "))
    }

    #[test]
    fn highlights_merge_and_escape() {
        let mut a = crate::index::tokenizer::analyzer();
        let s = snippet_html(
            &mut a,
            "不错，物有所值 <ok> & 退款申请",
            &terms(&["物有所值", "退款"]),
            100,
        );
        assert_eq!(s, "不错，<b>物有所值</b> &lt;ok&gt; &amp; <b>退款</b>申请");
        let s = snippet_html(
            &mut a,
            "Refunds were DELAYED again",
            &terms(&["delay"]),
            100,
        );
        assert_eq!(s, "Refunds were <b>DELAYED</b> again");
    }

    #[test]
    fn window_moves_to_the_matches() {
        let mut a = crate::index::tokenizer::analyzer();
        let text = format!("{}退款太慢了{}", "很好".repeat(40), "呵呵".repeat(40));
        let s = snippet_html(&mut a, &text, &terms(&["退款"]), 30);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("<b>退款</b>"), "{s}");
        assert_eq!(
            s.trim_matches('…')
                .replace("<b>", "")
                .replace("</b>", "")
                .chars()
                .count(),
            30
        );
        let s = snippet_html(&mut a, &text, &Highlight::default(), 10);
        assert_eq!(s, format!("{}…", "很好".repeat(5)));
        // Matches at the end: the window ends with the text.
        let text = format!("{}退款", "很好".repeat(40));
        let s = snippet_html(&mut a, &text, &terms(&["退款"]), 10);
        assert_eq!(s, "…很好很好很好很好<b>退款</b>");
    }

    #[test]
    fn work_per_snippet_is_bounded() {
        // 100k matches in 500k characters: linear work on the first 64 KiB only.
        let mut a = crate::index::tokenizer::analyzer();
        let text = "退款太慢了".repeat(100_000);
        let t = std::time::Instant::now();
        let s = snippet_html(&mut a, &text, &terms(&["退款"]), 30);
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
        assert!(s.starts_with("<b>退款</b>太慢了<b>退款</b>"), "{s}");
        assert!(s.ends_with('…'));
    }
}
