//! Searching the index: a full-text query plus tag, topic and date filters, ranked by BM25
//! (optionally boosted by severity), with total counts, facet counts of all hits and
//! highlighted snippets.
//!
//! Every request is checked against fixed limits ([`SearchRequest::validate`]) before any
//! work: query length and nesting, the page window, filter sizes. The date histogram widens
//! its buckets so that no index, whatever its dates, gives more than [`MAX_DATE_BUCKETS`].

pub use super::request::{
    parse_since, parse_until, SearchRequest, Sort, MAX_BOOST, MAX_FILTER_VALUES, MAX_HITS_WINDOW,
    MAX_QUERY_CHARS, MAX_QUERY_DEPTH, MAX_SNIPPET_CHARS,
};
use super::{index_time, SearchIndex, TAG_FIELDS};
use crate::record::civil_date;
use crate::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::Bound;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Searcher, TantivyDocument, Term};

/// Most bars of the date histogram: wider buckets than asked for are used beyond it.
pub const MAX_DATE_BUCKETS: i64 = 2_000;

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
    /// Counts per value of each tag field (sentiment, intent, pain_point, journey_stage, channel, tier, lang, aspect, aspect_category).
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
    /// Width in days of the date histogram's buckets: the request's `interval_days`, or wider
    /// where the dates span more than [`MAX_DATE_BUCKETS`] of those.
    pub interval_days: i64,
}

/// Tag fields that get facet counts.
pub const FACET_FIELDS: &[&str] = &[
    "sentiment",
    "intent",
    "pain_point",
    "journey_stage",
    "channel",
    "tier",
    "lang",
    "aspect",
    "aspect_category",
];
/// Builds the text part of a query (no filters): plain words that must all match, or with
/// `syntax` tantivy's query syntax (words, "phrases", -exclusions, OR), falling back to the
/// plain words where it is not valid syntax. Empty text matches everything. The text must pass
/// [`SearchRequest::validate`]'s limits (checked here too).
pub fn text_query(index: &SearchIndex, text: &str, syntax: bool) -> Result<Box<dyn Query>> {
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    SearchRequest {
        query: text.to_string(),
        ..SearchRequest::default()
    }
    .validate()?;
    let mut parser = index.query_parser();
    parser.set_conjunction_by_default();
    if !syntax {
        return parser
            .parse_query(&plain_query(text))
            .map_err(|e| Error::Query(format!("cannot search for {text:?}: {e}")));
    }
    match parser.parse_query(text) {
        Ok(q) => Ok(q),
        // Not valid query syntax (`order: late`, an unbalanced quote, a stray bracket): the
        // words are searched as plain text rather than failing.
        Err(_) => parser
            .parse_query(&plain_query(text))
            .map_err(|e| Error::Query(format!("cannot parse query {text:?}: {e}"))),
    }
}

/// `text` as plain words for the query parser: each whitespace-separated word quoted (so
/// `-`, `:`, `OR` or brackets are only text, and `2599.00` stays one word as the index cut
/// it), quotes and backslashes dropped, words without a letter or digit left out; all must
/// match.
pub fn plain_query(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| *c != '"' && *c != '\\')
                .collect::<String>()
        })
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" ")
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
        let date = |s: i64| Term::from_field_date(f.time, index_time(s));
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

/// Width of the date histogram's buckets in days: `asked`, or wider where the dates the
/// search can meet (the index's earliest and latest, within `since`/`until`) span more than
/// [`MAX_DATE_BUCKETS`] of them.
fn histogram_days(searcher: &Searcher, req: &SearchRequest) -> i64 {
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for seg in searcher.segment_readers() {
        if let Ok(col) = seg.fast_fields().date("time") {
            if col.values.num_vals() > 0 {
                lo = lo.min(col.min_value().into_timestamp_secs());
                hi = hi.max(col.max_value().into_timestamp_secs());
            }
        }
    }
    let asked = i64::from(req.interval_days.max(1));
    if let Some(s) = req.since {
        lo = lo.max(s);
    }
    if let Some(u) = req.until {
        hi = hi.min(u);
    }
    if lo > hi {
        return asked;
    }
    let span_days = (hi / 86_400).saturating_sub(lo / 86_400).saturating_add(2);
    asked.max(span_days.div_euclid(MAX_DATE_BUCKETS).saturating_add(1))
}

fn facet_request(interval_days: i64) -> Result<Aggregations> {
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

/// The values a tag filter may take: those of a closed list (languages, sentiment labels,
/// journey stages) and every value the index holds for the field (its terms, over all
/// segments), sorted.
pub fn tag_values(index: &SearchIndex, searcher: &Searcher, field: &str) -> Result<Vec<String>> {
    // Lists the project already keeps: language codes, sentiment labels, journey stages.
    let closed: Vec<String> = match field {
        "lang" => crate::text::normalise::Lang::ALL
            .iter()
            .map(|l| l.as_str().to_lowercase())
            .collect(),
        "sentiment" => crate::aspects::POLARITIES.map(String::from).into(),
        "journey_stage" => (crate::taxonomy::JOURNEY_STAGES.iter().chain(&["other"]))
            .map(|s| s.to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut out: std::collections::BTreeSet<String> = closed.into_iter().collect();
    let Some(&f) = index.fields().tags.get(field) else {
        return Ok(out.into_iter().collect());
    };
    let ierr = |e: std::io::Error| Error::Index(format!("{}: {e}", index.dir().display()));
    for segment in searcher.segment_readers() {
        let inverted = segment
            .inverted_index(f)
            .map_err(|e| Error::Index(format!("{}: {e}", index.dir().display())))?;
        let mut terms = inverted.terms().stream().map_err(ierr)?;
        while terms.advance() {
            if let Ok(v) = std::str::from_utf8(terms.key()) {
                out.insert(v.to_string());
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// A tag filter value the index cannot hold (see [`tag_values`]) is a query error that lists
/// the values it can: a typo must not pass for "no comments".
fn check_tag_values(index: &SearchIndex, searcher: &Searcher, req: &SearchRequest) -> Result<()> {
    for (name, values) in &req.tags {
        if values.is_empty() || !index.fields().tags.contains_key(name.as_str()) {
            continue;
        }
        let allowed = tag_values(index, searcher, name)?;
        if let Some(bad) = values.iter().find(|v| !allowed.contains(&v.to_lowercase())) {
            let shown = if name == "journey_stage" {
                "stage"
            } else {
                name.as_str()
            };
            let list = if allowed.is_empty() {
                "none: the index has no comment with this field".to_string()
            } else {
                let mut l: Vec<&str> = allowed.iter().take(50).map(String::as_str).collect();
                if allowed.len() > 50 {
                    l.push("...");
                }
                l.join(", ")
            };
            return Err(Error::Query(format!(
                "{shown}: {bad:?} is not a value of this index (values: {list})"
            )));
        }
    }
    Ok(())
}

/// Runs a search on `searcher` (from [`SearchIndex::reader`]). A tag filter value the index
/// cannot hold is an error listing the ones it can ([`tag_values`]).
pub fn search(
    index: &SearchIndex,
    searcher: &Searcher,
    req: &SearchRequest,
) -> Result<SearchResponse> {
    req.validate()?;
    check_tag_values(index, searcher, req)?;
    let ierr = |e: tantivy::TantivyError| Error::Index(format!("{}: {e}", index.dir().display()));
    let query = build_query(index, text_query(index, &req.query, req.syntax)?, req)?;
    let limit = req.limit.max(1);
    let interval_days = histogram_days(searcher, req);
    let agg = AggregationCollector::from_aggs(
        facet_request(interval_days)?,
        AggContextParams::new(
            AggregationLimitsGuard::default(),
            index.index().tokenizers().clone(),
        ),
    );
    // Every order breaks ties by the document's revision (a hash of its id and content), so
    // the same documents come back in the same order whatever the segments and threads that
    // indexed them; the first element is the score shown (relevance, seconds or severity).
    let sort = req.sort;
    let boost = if sort == Sort::Relevance {
        req.severity_boost
    } else {
        0.0
    };
    let top = TopDocs::with_limit(limit)
        .and_offset(req.offset)
        .tweak_score(move |seg: &tantivy::SegmentReader| {
            let ff = seg.fast_fields();
            let rev = ff.u64("rev").map(|c| c.first_or_default_col(0)).ok();
            let sev = ff.f64("severity").map(|c| c.first_or_default_col(0.0)).ok();
            let time = ff.date("time").ok();
            move |doc: tantivy::DocId, score: tantivy::Score| {
                let tie = rev.as_ref().map_or(0, |c| c.get_val(doc));
                let severity = sev.as_ref().map_or(0.0, |c| c.get_val(doc));
                let key = match sort {
                    Sort::Relevance => (f64::from(score * (1.0 + boost * severity as f32)), 0),
                    Sort::Newest => match time.as_ref().and_then(|c| c.first(doc)) {
                        Some(t) => (t.into_timestamp_secs() as f64, 1),
                        None => (0.0, 0),
                    },
                    Sort::Severity => (severity, 0),
                };
                (key.1, key.0, tie)
            }
        });
    let (docs, total, aggs) = searcher.search(&query, &(top, Count, agg)).map_err(ierr)?;
    let page: Vec<(f32, DocAddress)> = docs
        .into_iter()
        .map(|((_, key, _), d)| (key as f32, d))
        .collect();
    let page = if req.limit == 0 { Vec::new() } else { page };
    let highlight = super::snippet::Highlight::from_query(&mut index.query_analyzer(), &req.query);
    let mut analyzer = index.analyzer();
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
        let snippet =
            super::snippet::snippet_html(&mut analyzer, &text, &highlight, req.snippet_chars);
        let mut tags = BTreeMap::new();
        for (&name, &field) in &f.tags {
            // `aspect` has a value per aspect: all of them, comma-separated
            let all: Vec<&str> = doc.get_all(field).filter_map(|v| v.as_str()).collect();
            if !all.is_empty() {
                tags.insert(name.to_string(), all.join(", "));
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
        interval_days,
    })
}
