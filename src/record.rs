//! The record types that flow through the pipeline: what ingest reads, what is rejected,
//! and what scoring writes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One customer comment as read from the input, before normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// The input's id, or one derived from the text when the input has none.
    pub id: String,
    /// The comment text exactly as read (already valid UTF-8).
    pub text: String,
    /// Time of the comment as given (ISO 8601 recommended), if mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Channel (app review, email, ...), if mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Numeric rating (stars, NPS, ...), if mapped and numeric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Customer tier (VIP, gold, ...), if mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Product, if mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Where it came from: file and 1-based line (CSV: record start line).
    #[serde(skip)]
    pub source: SourcePos,
}

/// Position of a record in its input file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePos {
    /// The input file as given on the command line.
    pub file: String,
    /// 1-based line number where the record starts.
    pub line: u64,
}

/// A record that could not be scored, with the reason. Every input record ends either in the
/// scored output or here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// The record's id when one could be read, else `null`.
    pub id: Option<String>,
    /// The input file.
    pub file: String,
    /// 1-based line number of the record.
    pub line: u64,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why it was rejected.
    pub reason: String,
}

/// One task's answer for one comment (sentiment, intent, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The predicted label.
    pub label: String,
    /// The probability of the predicted label.
    pub confidence: f32,
    /// Probability of every label, in the head's label order.
    pub probs: BTreeMap<String, f32>,
    /// For sentiment: P(positive) - P(negative), in [-1, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The category's type where the taxonomy gives one (pain points).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    /// Multi-label heads: every label at probability >= 0.5, most probable first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub labels: Vec<String>,
    /// The best labels after the first, with their probabilities (up to 3).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub alternatives: Vec<(String, f32)>,
}

/// One line of `scored.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The input id.
    pub id: String,
    /// The comment text with personal data masked (unless masking was turned off).
    pub text: String,
    /// Detected language: `zh`, `zh-Hant`, `en`, `mixed` or `other`.
    pub lang: String,
    /// Time, channel, rating, tier, product as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Channel as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Rating as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Tier as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Product as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Kinds of personal data that were masked (`PHONE`, `EMAIL`, ...), if any.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub masked: Vec<String>,
    /// Segmented tokens (simplified Chinese words, lower-cased English), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    /// Number of encoder tokens actually read (after truncation).
    pub n_tokens: usize,
    /// Hash of the masked text (first 16 hex digits of SHA-256): a changed text is rescored.
    #[serde(default)]
    pub text_hash: String,
    /// Version of the model that scored this line (encoder and heads).
    #[serde(default)]
    pub model: String,
    /// Aspect, opinion and polarity found in the text, when the aspect heads ran (spans are
    /// character offsets into `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspects: Option<Vec<Aspect>>,
    /// Each task's result under the task's name.
    #[serde(flatten)]
    pub tasks: BTreeMap<String, TaskResult>,
}

/// One aspect found in a comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aspect {
    /// The aspect's words as they stand in the text.
    pub aspect: String,
    /// The opinion words paired with it (the nearest opinion span), if any.
    pub opinion: Option<String>,
    /// `negative`, `neutral` or `positive`.
    pub polarity: String,
    /// Mean tag probability of the span's tokens times the polarity's probability.
    pub confidence: f32,
    /// Character offsets `[from, to)` of the aspect in the text.
    pub span: [usize; 2],
    /// Its category (`delivery`, `battery`, ... or `other`) when the model has a category
    /// list (`aspect_categories` in its manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// Parses a comment time to Unix seconds (UTC): `YYYY-MM-DD`, optionally followed by `T` or a
/// space and `HH:MM[:SS[.fraction]]`, optionally followed by `Z` or an offset `±HH:MM` /
/// `±HHMM`. A time without an offset is read as UTC. Returns `None` for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&mo) {
        return None;
    }
    if d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let mut i = 10;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b' ' {
            return None;
        }
        let (h, mi) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || mi > 59 {
            return None;
        }
        secs += h * 3600 + mi * 60;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            secs += sec;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                let om = if b.get(i + 3) == Some(&b':') {
                    num(i + 4, 2)?
                } else {
                    num(i + 3, 2)?
                };
                let used = if b.get(i + 3) == Some(&b':') { 6 } else { 5 };
                if i + used != b.len() || oh > 23 || om > 59 {
                    return None;
                }
                let off = oh * 3600 + om * 60;
                secs -= if sign == b'+' { off } else { -off };
            }
            _ => return None,
        }
    }
    Some(secs)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `YYYY-MM-DD` date (UTC) of Unix seconds.
pub fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn parses_iso_times() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2026-09-01T18:00:26+08:00"), Some(1_788_256_826));
        assert_eq!(parse_time("2026-09-01T10:00:26Z"), Some(1_788_256_826));
        assert_eq!(parse_time("2026-09-01 10:00:26"), Some(1_788_256_826));
        assert_eq!(parse_time("2026-09-01T10:00:26.250Z"), Some(1_788_256_826));
        assert_eq!(parse_time("2026-09-01T12:00:26+0200"), Some(1_788_256_826));
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_time("2023-02-29"), None);
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-09-01T25:00"), None);
        assert_eq!(civil_date(1_788_256_826), "2026-09-01");
        assert_eq!(civil_date(1_709_164_800), "2024-02-29");
    }
}
