//! The visible text of a report page that is the page's own words, and the English words in
//! it: the check that a `--lang zh` page says nothing in English (used by `tests/report.rs`
//! and by the report's unit tests in `src/report/tests/page.rs`).

/// The page's visible text less what is not the page's own words: scripts, styles, quoted
/// comments (`<q>`), commands and font names (`<code>`), and the values of the comments and
/// taxonomies (elements marked `data-user`), tags removed and entities decoded.
pub fn own_text(html: &str) -> String {
    let mut s = html.to_string();
    for tag in ["script", "style", "q", "code"] {
        s = drop_elements(&s, &format!("<{tag}"), tag);
    }
    // Elements marked data-user (no element inside one has the same tag).
    while let Some(at) = s.find(" data-user>") {
        let open = s[..at].rfind('<').unwrap();
        let tag: String = s[open + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let close = format!("</{tag}>");
        let end = at + s[at..].find(&close).unwrap() + close.len();
        s.replace_range(open..end, " ");
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn drop_elements(s: &str, open: &str, tag: &str) -> String {
    let close = format!("</{tag}>");
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest
        .match_indices(open)
        .map(|(i, _)| i)
        .find(|&i| matches!(rest.as_bytes().get(i + open.len()), Some(b' ' | b'>')))
    {
        out += &rest[..i];
        let end = i + rest[i..].find(&close).unwrap() + close.len();
        rest = &rest[end..];
    }
    out + rest
}

/// The ASCII words (runs of letters, digits, `_`, `.`, `-`) of `text` that are English:
/// with a letter and no digit (ids, dates and numbers have digits), not a file name, and not
/// in the allow-list (the rating metrics' names, CSV, VIP, n and z of the statistics, the
/// product's name, and Thematic, whose definition of impact the page cites).
pub fn english_words(text: &str) -> Vec<String> {
    const ALLOW: [&str; 9] = [
        "NPS", "CSAT", "CES", "CSV", "VIP", "n", "z", "vocmine", "Thematic",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || "_.-".contains(c) {
            cur.push(c);
            continue;
        }
        let w = cur.trim_matches(|c: char| c == '.' || c == '-');
        let english = w.chars().any(|c| c.is_ascii_alphabetic())
            && !w.chars().any(|c| c.is_ascii_digit())
            && !w.ends_with(".csv")
            && !w.ends_with(".xlsx")
            && !ALLOW.contains(&w);
        if english && !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
        cur.clear();
    }
    words
}
