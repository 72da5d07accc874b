//! The report's aspect table (issue 33): for a run scored with `--aspects`, each aspect
//! category (or, for aspects without one, each aspect) with the words it was found as, its
//! mentions by polarity, the comments that mention it and those that do not ("not mentioned"),
//! the net polarity and quoted examples (the negative ones first).

use super::export::{Table, Value};
use super::html::{downloads, pct, quotes, user};
use super::names::Names;
use super::strings::{
    Words, ASPECT, ASPECTS_NOTE, ASPECT_WORDS, COMMENTS_MENTIONING, EXAMPLES_MASKED, H_ASPECTS,
    MENTIONS, NET, NOT_MENTIONED,
};
use super::Example;
use crate::record::Scored;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Rows kept in the table, most negative mentions first.
pub const MAX_ASPECTS: usize = 50;

/// Words listed per row, most mentioned first.
const MAX_WORDS: usize = 6;

/// One aspect category (or one aspect without a category) over the run's comments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AspectStats {
    /// The category id (`delivery`), or for aspects without a category the aspect's words
    /// (lower-cased, one space between words): what mentions are grouped by.
    pub aspect: String,
    /// The category's name in the report's language (the words themselves without one).
    pub name: String,
    /// The words the aspects were found as, with their mentions, most first.
    pub words: Vec<(String, u64)>,
    /// Mentions (an aspect found twice in a comment counts twice).
    pub mentions: u64,
    /// Comments that mention it at least once.
    pub comments: u64,
    /// Comments of the run that do not mention it (the category's "not mentioned").
    pub not_mentioned: u64,
    /// Mentions with negative polarity.
    pub negative: u64,
    /// Mentions with neutral polarity.
    pub neutral: u64,
    /// Mentions with positive polarity.
    pub positive: u64,
    /// (positive - negative) / mentions, in [-1, 1].
    pub net: f64,
    /// Up to three comments that mention it, negative mentions first (masked text).
    pub examples: Vec<Example>,
}

/// The aspects of `scored` by category (empty when no record has aspects), ranked by
/// negative mentions, then mentions, then key, with `other` last; category names from
/// `names`.
pub fn build(scored: &[Scored], names: &Names) -> Vec<AspectStats> {
    // key -> (counts by polarity, examples as (polarity rank, confidence order, record), words)
    type Mentions = ([u64; 3], Vec<(u8, u32, usize)>, BTreeMap<String, u64>);
    let mut by: BTreeMap<(bool, String), Mentions> = BTreeMap::new();
    for (i, s) in scored.iter().enumerate() {
        for a in s.aspects.iter().flatten() {
            let word = a
                .aspect
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if word.is_empty() {
                continue;
            }
            let key = match &a.category {
                Some(c) => (true, c.clone()),
                None => (false, word.clone()),
            };
            let e = by.entry(key).or_default();
            *e.2.entry(word).or_default() += 1;
            let k = match a.polarity.as_str() {
                "negative" => 0,
                "neutral" => 1,
                _ => 2,
            };
            e.0[k] += 1;
            // negative first, then the surest; ties by record order
            let order = (u32::MAX as f32 * (1.0 - a.confidence.clamp(0.0, 1.0))) as u32;
            e.1.push((k as u8, order, i));
        }
    }
    let mut out: Vec<AspectStats> = by
        .into_iter()
        .map(|((is_category, aspect), (c, mut ex, w))| {
            ex.sort_unstable();
            ex.dedup_by_key(|e| e.2);
            let mentions = c.iter().sum::<u64>();
            let comments = ex.iter().map(|e| e.2).collect::<BTreeSet<_>>().len() as u64;
            let mut words: Vec<(String, u64)> = w.into_iter().collect();
            words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            words.truncate(MAX_WORDS);
            AspectStats {
                name: match is_category {
                    true => names.name("aspect_category", &aspect),
                    false => aspect.clone(),
                },
                words,
                aspect,
                mentions,
                comments,
                not_mentioned: scored.len() as u64 - comments,
                negative: c[0],
                neutral: c[1],
                positive: c[2],
                net: (c[2] as f64 - c[0] as f64) / mentions.max(1) as f64,
                examples: ex
                    .iter()
                    .take(3)
                    .map(|e| Example::of(&scored[e.2]))
                    .collect(),
            }
        })
        .collect();
    // the catch-all category last: it is what no listed word names
    let other = |a: &AspectStats| a.aspect == crate::aspects::category_map::OTHER;
    out.sort_by(|a, b| {
        (other(a), b.negative, b.mentions)
            .cmp(&(other(b), a.negative, a.mentions))
            .then_with(|| a.aspect.cmp(&b.aspect))
    });
    out.truncate(MAX_ASPECTS);
    out
}

/// The exported table (headers only when the run has no aspects).
pub(super) fn table(w: Words, stem: &'static str, rows: &[AspectStats]) -> Table {
    Table {
        stem,
        title: w.s(H_ASPECTS),
        headers: vec![
            w.s(ASPECT),
            w.s(ASPECT_WORDS),
            w.s(MENTIONS),
            w.s(COMMENTS_MENTIONING),
            w.s(NOT_MENTIONED),
            w.sentiment("negative").to_string(),
            w.sentiment("neutral").to_string(),
            w.sentiment("positive").to_string(),
            w.s(NET),
            w.s(EXAMPLES_MASKED),
        ],
        rows: rows
            .iter()
            .map(|a| {
                let ex: Vec<String> = (a.examples.iter())
                    .map(|e| format!("{}: {}", e.id, e.text))
                    .collect();
                vec![
                    Value::Text(a.name.clone()),
                    Value::Text(word_list(&a.words)),
                    Value::Int(a.mentions as i64),
                    Value::Int(a.comments as i64),
                    Value::Int(a.not_mentioned as i64),
                    Value::Int(a.negative as i64),
                    Value::Int(a.neutral as i64),
                    Value::Int(a.positive as i64),
                    Value::Num(a.net),
                    Value::Text(ex.join("\n")),
                ]
            })
            .collect(),
    }
}

/// The page's section (nothing when the run has no aspects).
pub(super) fn section(w: Words, rows: &[AspectStats]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "<h2>{}</h2><p class=\"help\">{}</p><table data-table=\"aspects\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        w.get(H_ASPECTS),
        w.get(ASPECTS_NOTE),
        w.get(ASPECT),
        w.get(ASPECT_WORDS),
        w.get(MENTIONS),
        w.get(COMMENTS_MENTIONING),
        w.get(NOT_MENTIONED),
        w.sentiment("negative"),
        w.sentiment("neutral"),
        w.sentiment("positive"),
        w.get(NET),
        w.get(EXAMPLES_MASKED)
    );
    for a in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{:+.2}</td><td>{}</td></tr>",
            user(&a.name),
            user(&word_list(&a.words)),
            a.mentions,
            a.comments,
            a.not_mentioned,
            a.negative,
            pct(a.negative as f64 / a.mentions.max(1) as f64),
            a.neutral,
            a.positive,
            a.net,
            quotes(w, &a.examples)
        );
    }
    s += "</table>";
    s += &downloads(w, "aspects", true);
    s
}

/// `快递 12, 物流 11`.
fn word_list(words: &[(String, u64)]) -> String {
    let parts: Vec<String> = words.iter().map(|(w, n)| format!("{w} {n}")).collect();
    parts.join(", ")
}
