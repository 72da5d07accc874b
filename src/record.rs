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
    /// Each task's result under the task's name.
    #[serde(flatten)]
    pub tasks: BTreeMap<String, TaskResult>,
}
