//! Text helpers every stage shares, below the pipeline: [`normalise`] (PII masking, NFKC,
//! display text), [`segment`] (jieba words for search, topic labels and `--tokens`) and
//! [`escape_html`] (for snippets and the report page). Nothing here imports a pipeline stage.

pub mod normalise;
pub mod segment;

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
