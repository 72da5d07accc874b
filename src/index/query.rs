//! Searching the index: a full-text query plus tag, topic and date filters, ranked by BM25
//! (optionally boosted by severity), with total counts, facet counts of all hits and
//! highlighted snippets.

use super::{SearchIndex, TAG_FIELDS};
use crate::record::{civil_date, parse_time};
use crate::{Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DateTime, DocAddress, Order, Searcher, TantivyDocument, Term};

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
    /// Query text (tantivy query syntax: words, "phrases", -exclusions, OR). Empty: all.
    pub query: String,
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
    /// keys: `q`, the tag names (`sentiment`, `intent`, `pain_point`, `channel`, `tier`,
    /// `product`, `lang`, `pain_type`; comma-separated values), `topic`, `since`, `until`,
    /// `limit`, `offset`, `sort`, `boost`, `interval_days`. Unknown keys are errors.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut r = SearchRequest::default();
        for (k, v) in params {
            let bad = |what: &str| Error::Query(format!("{k}: {v:?} is not {what}"));
            match k {
                "q" => r.query = v.to_string(),
                "topic" => {
                    for t in v.split(',').filter(|t| !t.trim().is_empty()) {
                        r.topics
                            .push(t.trim().parse().map_err(|_| bad("a topic id (integer)"))?);
                    }
                }
                "since" => r.since = Some(parse_since(v)?),
                "until" => r.until = Some(parse_until(v)?),
                "limit" => r.limit = v.parse().map_err(|_| bad("a count"))?,
                "offset" => r.offset = v.parse().map_err(|_| bad("a count"))?,
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
                _ if TAG_FIELDS.contains(&k) => {
                    r.add_tag(k, v);
                }
                _ => {
                    return Err(Error::Query(format!(
                        "unknown parameter {k:?} (known: q, {}, topic, since, until, limit, \
                         offset, sort, boost, interval_days)",
                        TAG_FIELDS.join(", ")
                    )))
                }
            }
        }
        if r.limit > 10_000 {
            return Err(Error::Query("limit: at most 10000 hits a page".into()));
        }
        Ok(r)
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

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Comment id.
    pub id: String,
    /// Ranking score (BM25, boosted; or the severity / time for those orders).
    pub score: f32,
    /// Best fragment of the text, HTML-escaped, matches in `<b>` tags.
    pub snippet: String,
    /// The whole comment text (masked).
    pub text: String,
    /// Tag values by field.
    #[serde(flatten)]
    pub tags: BTreeMap<String, String>,
    /// Sentiment score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment_score: Option<f64>,
    /// Severity.
    pub severity: f64,
    /// Topic id (-1: none).
    pub topic: i64,
    /// Topic label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_label: Option<String>,
    /// Rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Time as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Confidence of each task's label.
    pub confidence: serde_json::Value,
}

/// One bar of the date histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateBucket {
    /// First day of the bucket (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// Hits in the bucket.
    pub count: u64,
}

/// Facet counts over all hits (not just the returned page).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facets {
    /// Counts per value of each tag field (sentiment, intent, pain_point, channel, tier, lang).
    #[serde(flatten)]
    pub tags: BTreeMap<String, BTreeMap<String, u64>>,
    /// Counts per topic id.
    pub topic: BTreeMap<i64, u64>,
    /// Hits per date bucket (hits with a time only).
    pub date: Vec<DateBucket>,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse {
    /// Number of matching comments.
    pub total: u64,
    /// The requested page of hits.
    pub hits: Vec<Hit>,
    /// Facet counts of all matching comments.
    pub facets: Facets,
}

/// Tag fields that get facet counts.
pub const FACET_FIELDS: &[&str] = &[
    "sentiment",
    "intent",
    "pain_point",
    "channel",
    "tier",
    "lang",
];

/// Builds the text part of a query (no filters). Empty text matches everything.
pub fn text_query(index: &SearchIndex, text: &str) -> Result<Box<dyn Query>> {
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    let mut parser = QueryParser::for_index(index.index(), vec![index.fields().text]);
    parser.set_conjunction_by_default();
    parser
        .parse_query(text)
        .map_err(|e| Error::Query(format!("cannot parse query {text:?}: {e}")))
}

/// Builds the whole query: the text query (from [`text_query`]) AND every filter.
pub fn build_query(
    index: &SearchIndex,
    text: Box<dyn Query>,
    req: &SearchRequest,
) -> Result<Box<dyn Query>> {
    let f = index.fields();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
    for (name, values) in &req.tags {
        let field = *f.tags.get(name.as_str()).ok_or_else(|| {
            Error::Query(format!(
                "{name}: not a filter field (use {})",
                TAG_FIELDS.join(", ")
            ))
        })?;
        if values.is_empty() {
            continue;
        }
        let any: Vec<(Occur, Box<dyn Query>)> = values
            .iter()
            .map(|v| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(field, &v.to_lowercase()),
                    IndexRecordOption::Basic,
                ));
                (Occur::Should, q)
            })
            .collect();
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
    }
    if !req.topics.is_empty() {
        let any = req
            .topics
            .iter()
            .map(|&t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_i64(f.topic, t),
                    IndexRecordOption::Basic,
                ));
                (Occur::Should, q)
            })
            .collect();
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
    }
    if req.since.is_some() || req.until.is_some() {
        let date = |s: i64| Term::from_field_date(f.time, DateTime::from_timestamp_secs(s));
        let lo = req
            .since
            .map_or(Bound::Unbounded, |s| Bound::Included(date(s)));
        let hi = req
            .until
            .map_or(Bound::Unbounded, |s| Bound::Excluded(date(s)));
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lo, hi))));
    }
    if clauses.len() == 1 {
        return Ok(clauses
            .pop()
            .map(|(_, q)| q)
            .unwrap_or_else(|| Box::new(AllQuery)));
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

fn facet_request(interval_days: u32) -> Result<Aggregations> {
    let mut req = serde_json::Map::new();
    for &name in FACET_FIELDS {
        req.insert(
            name.to_string(),
            serde_json::json!({"terms": {"field": name, "size": 65000, "segment_size": 65000}}),
        );
    }
    req.insert(
        "topic".into(),
        serde_json::json!({"terms": {"field": "topic", "size": 65000, "segment_size": 65000}}),
    );
    req.insert(
        "date".into(),
        serde_json::json!({"date_histogram": {"field": "time",
            "fixed_interval": format!("{interval_days}d"), "min_doc_count": 0}}),
    );
    serde_json::from_value(serde_json::Value::Object(req))
        .map_err(|e| Error::Query(format!("facet request: {e}")))
}

fn read_facets(res: &AggregationResults) -> Result<Facets> {
    let v = serde_json::to_value(res)?;
    let mut facets = Facets::default();
    let buckets = |name: &str| -> Vec<serde_json::Value> {
        v.get(name)
            .and_then(|a| a.get("buckets"))
            .and_then(|b| b.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for &name in FACET_FIELDS {
        let mut counts = BTreeMap::new();
        for b in buckets(name) {
            if let (Some(k), Some(c)) = (b["key"].as_str(), b["doc_count"].as_u64()) {
                counts.insert(k.to_string(), c);
            }
        }
        facets.tags.insert(name.to_string(), counts);
    }
    for b in buckets("topic") {
        if let (Some(k), Some(c)) = (b["key"].as_f64(), b["doc_count"].as_u64()) {
            facets.topic.insert(k as i64, c);
        }
    }
    for b in buckets("date") {
        if let (Some(k), Some(c)) = (b["key"].as_f64(), b["doc_count"].as_u64()) {
            facets.date.push(DateBucket {
                date: civil_date((k / 1000.0).floor() as i64),
                count: c,
            });
        }
    }
    Ok(facets)
}

/// Runs a search on `searcher` (from [`SearchIndex::reader`]).
pub fn search(
    index: &SearchIndex,
    searcher: &Searcher,
    req: &SearchRequest,
) -> Result<SearchResponse> {
    let ierr = |e: tantivy::TantivyError| Error::Index(format!("{}: {e}", index.dir().display()));
    // Parsed once: the text part also gives the terms that snippets highlight.
    let text_q = text_query(index, &req.query)?;
    let query = build_query(index, text_q.box_clone(), req)?;
    let limit = req.limit.max(1);
    let agg = AggregationCollector::from_aggs(
        facet_request(req.interval_days)?,
        AggContextParams::new(
            AggregationLimitsGuard::default(),
            index.index().tokenizers().clone(),
        ),
    );
    let (page, total, aggs): (Vec<(f32, DocAddress)>, usize, AggregationResults) = match req.sort {
        Sort::Relevance if req.severity_boost > 0.0 => {
            let boost = req.severity_boost;
            let top = TopDocs::with_limit(limit)
                .and_offset(req.offset)
                .tweak_score(move |seg: &tantivy::SegmentReader| {
                    let sev = seg
                        .fast_fields()
                        .f64("severity")
                        .map(|c| c.first_or_default_col(0.0))
                        .ok();
                    move |doc: tantivy::DocId, score: tantivy::Score| {
                        let s = sev.as_ref().map_or(0.0, |c| c.get_val(doc)) as f32;
                        score * (1.0 + boost * s)
                    }
                });
            searcher.search(&query, &(top, Count, agg)).map_err(ierr)?
        }
        Sort::Relevance => {
            let top = TopDocs::with_limit(limit)
                .and_offset(req.offset)
                .order_by_score();
            searcher.search(&query, &(top, Count, agg)).map_err(ierr)?
        }
        Sort::Newest => {
            let top = TopDocs::with_limit(limit)
                .and_offset(req.offset)
                .order_by_fast_field::<DateTime>("time", Order::Desc);
            let (docs, n, a) = searcher.search(&query, &(top, Count, agg)).map_err(ierr)?;
            let docs = docs
                .into_iter()
                .map(|(t, d)| (t.map_or(0.0, |t| t.into_timestamp_secs() as f32), d))
                .collect();
            (docs, n, a)
        }
        Sort::Severity => {
            let top = TopDocs::with_limit(limit)
                .and_offset(req.offset)
                .order_by_fast_field::<f64>("severity", Order::Desc);
            let (docs, n, a) = searcher.search(&query, &(top, Count, agg)).map_err(ierr)?;
            let docs = docs
                .into_iter()
                .map(|(s, d)| (s.unwrap_or(0.0) as f32, d))
                .collect();
            (docs, n, a)
        }
    };
    let page = if req.limit == 0 { Vec::new() } else { page };
    let mut terms = BTreeSet::new();
    text_q.query_terms(&mut |term, _| {
        if term.field() == index.fields().text {
            if let Some(t) = term.value().as_str() {
                terms.insert(t.to_string());
            }
        }
    });
    let mut analyzer = super::tokenizer::analyzer();
    let f = index.fields();
    let mut hits = Vec::with_capacity(page.len());
    for (score, addr) in page {
        let doc: TantivyDocument = searcher.doc(addr).map_err(ierr)?;
        let get_str = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let get_f64 = |field| doc.get_first(field).and_then(|v| v.as_f64());
        let text = get_str(f.text).unwrap_or_default();
        let snippet = super::snippet::snippet_html(&mut analyzer, &text, &terms, req.snippet_chars);
        let mut tags = BTreeMap::new();
        for (&name, &field) in &f.tags {
            if let Some(v) = get_str(field) {
                tags.insert(name.to_string(), v);
            }
        }
        let confidence = doc
            .get_first(f.confidence)
            .map(|v| serde_json::to_value(tantivy::schema::document::OwnedValue::from(v)))
            .transpose()?
            .unwrap_or(serde_json::Value::Null);
        hits.push(Hit {
            id: get_str(f.id).unwrap_or_default(),
            score,
            snippet,
            text,
            tags,
            sentiment_score: get_f64(f.sentiment_score),
            severity: get_f64(f.severity).unwrap_or(0.0),
            topic: doc
                .get_first(f.topic)
                .and_then(|v| v.as_i64())
                .unwrap_or(-1),
            topic_label: get_str(f.topic_label),
            rating: get_f64(f.rating),
            time: get_str(f.time_raw),
            confidence,
        });
    }
    Ok(SearchResponse {
        total: total as u64,
        hits,
        facets: read_facets(&aggs)?,
    })
}
