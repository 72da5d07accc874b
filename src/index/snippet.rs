//! Highlighted snippets: the best window of a comment with the query's words in `<b>` tags.
//!
//! tantivy's own snippet generator assumes tokens never overlap and come in text order;
//! jieba's search mode emits overlapping sub-words (物有, 物有所值), so the window and the
//! highlights are computed here from the same analyzer, with overlapping matches merged.

use std::collections::BTreeSet;

/// HTML-escapes `s` (`& < > " '`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The best window of `max_chars` characters of `text` with every token whose analyzed form is
/// in `terms` wrapped in `<b>` (overlapping search-mode tokens merged), HTML-escaped, with `…`
/// where the text is cut. The window starts a little before the densest run of matches.
pub fn snippet_html(
    analyzer: &mut tantivy::tokenizer::TextAnalyzer,
    text: &str,
    terms: &BTreeSet<String>,
    max_chars: usize,
) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    if !terms.is_empty() {
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            let t = stream.token();
            if terms.contains(&t.text) {
                ranges.push((t.offset_from, t.offset_to));
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    // Byte offset of every char start, and the end.
    let starts: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let n_chars = starts.len() - 1;
    let char_at = |byte: usize| starts.partition_point(|&s| s < byte);
    let (mut lo, mut hi) = (0usize, n_chars.min(max_chars));
    if n_chars > max_chars && !merged.is_empty() {
        // Window start (in chars) that covers the most matches, starting 10 chars before one.
        let mut best = (0usize, 0usize);
        for &(a, _) in &merged {
            let start = char_at(a).saturating_sub(10);
            let end = start + max_chars;
            let covered = merged
                .iter()
                .filter(|&&(x, y)| char_at(x) >= start && char_at(y) <= end)
                .count();
            if covered > best.0 {
                best = (covered, start);
            }
        }
        lo = best.1.min(n_chars.saturating_sub(max_chars));
        hi = (lo + max_chars).min(n_chars);
    }
    let (lo_b, hi_b) = (starts[lo], starts[hi]);
    let mut html = String::new();
    if lo > 0 {
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
    if hi < n_chars {
        html.push('…');
    }
    html
}

#[cfg(test)]
mod snippet_tests {
    use super::*;

    fn terms(q: &[&str]) -> BTreeSet<String> {
        q.iter()
            .flat_map(|w| crate::index::tokenizer::tokens(w))
            .collect()
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
        let s = snippet_html(&mut a, &text, &BTreeSet::new(), 10);
        assert_eq!(s, format!("{}…", "很好".repeat(5)));
    }
}
