//! A search request: the query text and its filters, parsed from the HTTP API's parameters or
//! built by the CLI, and the fixed limits every request is checked against before any work
//! ([`SearchRequest::validate`]): query length and nesting (tantivy's parser recurses on each
//! level of parentheses), the page window (tantivy allocates `offset + limit` hits up front),
//! filter sizes. A violation is an [`Error::Query`] that names the parameter.

use super::TAG_FIELDS;
use crate::record::parse_time;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Deepest nesting of parentheses in a query (tantivy's parser recurses on each level).
pub const MAX_QUERY_DEPTH: usize = 16;
/// Largest `offset + limit`: the hits a search collects before it cuts the page.
pub const MAX_HITS_WINDOW: usize = 10_000;
/// Most values of one filter (tag values or topic ids).
pub const MAX_FILTER_VALUES: usize = 1_000;
/// Largest severity boost.
pub const MAX_BOOST: f32 = 1_000.0;
/// Longest snippet, in characters.
pub const MAX_SNIPPET_CHARS: usize = 10_000;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// BM25 (times `1 + boost x severity` when a severity boost is set).
    #[default]
    Relevance,
    /// Newest comment first.
    Newest,
    /// Most severe first.
    Severity,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Sort> {
        match s {
            "relevance" => Ok(Sort::Relevance),
            "newest" => Ok(Sort::Newest),
            "severity" => Ok(Sort::Severity),
            _ => Err(Error::Query(format!(
                "sort: unknown order {s:?} (use relevance, newest or severity)"
            ))),
        }
    }
}

/// One search: the query text and its filters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Query text: plain words, all of which must match (the default), or with `syntax` the
    /// query syntax (words, "phrases", -exclusions, OR, field:value). Empty: all.
    pub query: String,
    /// Read `query` as query syntax rather than plain words (opt-in: plain text never fails
    /// and never means more than its words; invalid syntax still falls back to the words).
    pub syntax: bool,
    /// Tag filters: field -> accepted values (any of them).
    pub tags: BTreeMap<String, Vec<String>>,
    /// Topic ids accepted (any of them).
    pub topics: Vec<i64>,
    /// Comments at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Comments before this time (Unix seconds, exclusive).
    pub until: Option<i64>,
    /// Hits to return.
    pub limit: usize,
    /// Hits to skip (paging).
    pub offset: usize,
    /// Hit order.
    pub sort: Sort,
    /// Severity boost for relevance order (0: plain BM25).
    pub severity_boost: f32,
    /// Width of the date histogram's buckets in days.
    pub interval_days: u32,
    /// Longest snippet in characters.
    pub snippet_chars: usize,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            query: String::new(),
            syntax: false,
            tags: BTreeMap::new(),
            topics: Vec::new(),
            since: None,
            until: None,
            limit: 20,
            offset: 0,
            sort: Sort::Relevance,
            severity_boost: 0.0,
            interval_days: 1,
            snippet_chars: 160,
        }
    }
}

/// Parses a `--since` value: a date or a full time.
pub fn parse_since(s: &str) -> Result<i64> {
    parse_time(s).ok_or_else(|| {
        Error::Query(format!(
            "since: {s:?} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+08:00])"
        ))
    })
}

/// Parses an `--until` value; a bare date includes that whole day.
pub fn parse_until(s: &str) -> Result<i64> {
    let t = parse_time(s).ok_or_else(|| {
        Error::Query(format!(
            "until: {s:?} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+08:00])"
        ))
    })?;
    Ok(if s.trim().len() == 10 { t + 86_400 } else { t })
}

impl SearchRequest {
    /// Builds a request from key/value parameters (the HTTP API's query string). Accepted
    /// keys: `q`, `syntax` (1/true: `q` is query syntax), the tag names (`sentiment`, `intent`, `pain_point`, `journey_stage` (or its
    /// short name `stage`), `channel`, `tier`, `product`, `lang`, `pain_type`; comma-separated
    /// values), `topic`, `since`, `until`,
    /// `limit`, `offset`, `sort`, `boost`, `interval_days`. Unknown keys are errors.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut r = SearchRequest::default();
        for (k, v) in params {
            let bad = |what: &str| Error::Query(format!("{k}: {v:?} is not {what}"));
            match k {
                "q" => r.query = v.to_string(),
                "syntax" => {
                    r.syntax = match v {
                        "1" | "true" | "yes" => true,
                        "0" | "false" | "no" | "" => false,
                        _ => return Err(bad("a yes/no flag (1, true, 0 or false)")),
                    }
                }
                "topic" => {
                    for t in v.split(',').filter(|t| !t.trim().is_empty()) {
                        r.topics
                            .push(t.trim().parse().map_err(|_| bad("a topic id (integer)"))?);
                    }
                }
                "since" => r.since = Some(parse_since(v)?),
                "until" => r.until = Some(parse_until(v)?),
                "limit" => {
                    r.limit = v
                        .parse()
                        .map_err(|_| bad(&format!("a count (0 to {MAX_HITS_WINDOW})")))?
                }
                "offset" => {
                    r.offset = v
                        .parse()
                        .map_err(|_| bad(&format!("a count (0 to {MAX_HITS_WINDOW})")))?
                }
                "sort" => r.sort = v.parse()?,
                "boost" => {
                    r.severity_boost = v
                        .parse::<f32>()
                        .ok()
                        .filter(|b| b.is_finite() && *b >= 0.0)
                        .ok_or_else(|| bad("a non-negative number"))?
                }
                "interval_days" => {
                    r.interval_days = v
                        .parse()
                        .ok()
                        .filter(|d| *d > 0)
                        .ok_or_else(|| bad("a positive number of days"))?
                }
                // `stage` is the short name of the journey-stage filter (the CLI's --stage).
                "stage" => r.add_tag("journey_stage", v),
                _ if TAG_FIELDS.contains(&k) => {
                    r.add_tag(k, v);
                }
                _ => {
                    return Err(Error::Query(format!(
                        "unknown parameter {k:?} (known: q, {}, stage, topic, since, until, limit, \
                         offset, sort, boost, interval_days)",
                        TAG_FIELDS.join(", ")
                    )))
                }
            }
        }
        r.validate()?;
        Ok(r)
    }

    /// Checks the request against the limits that keep one search's work bounded
    /// ([`MAX_QUERY_CHARS`], [`MAX_QUERY_DEPTH`], [`MAX_HITS_WINDOW`], [`MAX_FILTER_VALUES`],
    /// [`MAX_BOOST`], [`MAX_SNIPPET_CHARS`]); the error names the parameter. [`search`] calls
    /// it first, so no caller can skip it.
    pub fn validate(&self) -> Result<()> {
        let chars = self.query.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(Error::Query(format!(
                "q: the query has {chars} characters; at most {MAX_QUERY_CHARS}"
            )));
        }
        let depth = query_depth(&self.query);
        if depth > MAX_QUERY_DEPTH {
            return Err(Error::Query(format!(
                "q: parentheses nested {depth} deep; at most {MAX_QUERY_DEPTH}"
            )));
        }
        if self.limit > MAX_HITS_WINDOW {
            return Err(Error::Query(format!(
                "limit: {} is more than {MAX_HITS_WINDOW} hits a page",
                self.limit
            )));
        }
        if self.offset.saturating_add(self.limit) > MAX_HITS_WINDOW {
            return Err(Error::Query(format!(
                "offset: offset + limit ({} + {}) must be at most {MAX_HITS_WINDOW}; narrow the \
                 search with filters (since, until, tags) to reach later hits",
                self.offset, self.limit
            )));
        }
        for (name, values) in &self.tags {
            if values.len() > MAX_FILTER_VALUES {
                return Err(Error::Query(format!(
                    "{name}: {} values; at most {MAX_FILTER_VALUES}",
                    values.len()
                )));
            }
        }
        if self.topics.len() > MAX_FILTER_VALUES {
            return Err(Error::Query(format!(
                "topic: {} values; at most {MAX_FILTER_VALUES}",
                self.topics.len()
            )));
        }
        if !(0.0..=MAX_BOOST).contains(&self.severity_boost) {
            return Err(Error::Query(format!(
                "boost: {} is not a number from 0 to {MAX_BOOST}",
                self.severity_boost
            )));
        }
        if self.interval_days == 0 {
            return Err(Error::Query(
                "interval_days: 0 is not a positive number of days".into(),
            ));
        }
        if self.snippet_chars > MAX_SNIPPET_CHARS {
            return Err(Error::Query(format!(
                "snippet_chars: {} is more than {MAX_SNIPPET_CHARS}",
                self.snippet_chars
            )));
        }
        Ok(())
    }

    /// Adds accepted values (comma-separated) for a tag field.
    pub fn add_tag(&mut self, field: &str, values: &str) {
        let e = self.tags.entry(field.to_string()).or_default();
        e.extend(
            values
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty()),
        );
    }
}

/// Deepest nesting of parentheses in `q` (quotes not considered, so never less than what
/// tantivy's parser sees).
fn query_depth(q: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in q.chars() {
        match c {
            '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
