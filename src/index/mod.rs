//! The search index: every scored comment in a tantivy index on disk.
//!
//! - [`fold`]: folding for search (NFKC, lower case, OpenCC traditional to simplified by
//!   phrase) with a map back to the original offsets.
//! - [`tokenizer`]: the analyzers for Chinese (jieba cuts with the index's user dictionary,
//!   every sub-word of a longer word indexed), English (lower case, stemmed) and mixed text.
//! - this module: the schema, opening, the index's user dictionary, documents.
//! - [`update`]: the incremental [`update()`] (upsert by comment id), readers of its input.
//! - [`request`]: a search request, its parameters and the limits it is checked against.
//! - [`query`]: searches with filters, facet counts and highlighted snippets.
//! - [`snippet`]: highlighted snippets (bounded work per hit).
//! - [`render`]: a search's answer as plain text.
//! - [`bench`]: indexing throughput and query latency (`vocmine bench-search`).
//!
//! Invariants: one document per comment id (an update deletes the id's old document in the
//! same commit that adds the new one); a commit is atomic (tantivy's `meta.json` rename), so a
//! crash leaves the last commit readable; readers see a commit once it lands, and can search
//! while a writer works. Each commit carries a payload saying how many input records it
//! covers, so an interrupted build can be checked and resumed.

pub mod bench;
pub mod fold;
pub mod query;
pub mod render;
pub mod request;
pub mod snippet;
pub mod tokenizer;
pub mod update;

pub use update::{
    index_input, index_run, index_scored, resolve_index_dir, update, CommitPayload, IndexInput,
    UpdateOptions, UpdateStats,
};

use crate::record::{parse_time, Scored};
use crate::severity::severity;
use crate::workspace::TopicTag;
use crate::{Error, Result};
use jieba_rs::Jieba;

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tantivy::query::QueryParser;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};
use tantivy::{DateTime, Index, IndexReader, ReloadPolicy, TantivyDocument};
use tokenizer::{Mode, TAG_TOKENIZER, TEXT_TOKENIZER};

/// The index's copy of its jieba user dictionary (`word [freq] [tag]` a line), in the index
/// folder. Indexing, queries and snippets all cut with it.
pub const USER_DICT_FILE: &str = "user_dict.txt";

/// Earliest and latest times the index can hold (tantivy keeps nanoseconds in an i64, about
/// 1677 to 2262); times outside are clamped to these.
pub const TIME_RANGE_SECS: (i64, i64) = (-9_200_000_000, 9_200_000_000);

/// A time in Unix seconds as an index date, clamped to [`TIME_RANGE_SECS`].
pub fn index_time(secs: i64) -> DateTime {
    DateTime::from_timestamp_secs(secs.clamp(TIME_RANGE_SECS.0, TIME_RANGE_SECS.1))
}

/// jieba with its default dictionary plus the user dictionary `text` (read from `path`).
pub fn jieba_with_user_dict(text: &str, path: &Path) -> Result<Jieba> {
    let mut jieba = Jieba::new();
    jieba
        .load_dict(&mut text.as_bytes())
        .map_err(|e| Error::input(path, format!("bad user dictionary: {e}")))?;
    Ok(jieba)
}

/// Tag fields: one lower-cased value each (`aspect`: one `aspect:polarity` value per aspect
/// found, e.g. `电池:negative`; `aspect_category` likewise with its category,
/// `battery:negative`), indexed for filters, fast for facets, stored.
pub const TAG_FIELDS: &[&str] = &[
    "lang",
    "sentiment",
    "intent",
    "pain_point",
    "pain_type",
    "journey_stage",
    "channel",
    "tier",
    "product",
    "aspect",
    "aspect_category",
];

/// Handles of the schema's fields.
#[derive(Debug, Clone)]
pub struct Fields {
    /// Comment id (exact, fast, stored): the upsert key.
    pub id: Field,
    /// The comment text as scored (personal data masked), analyzed and stored.
    pub text: Field,
    /// Tag fields by name (see [`TAG_FIELDS`]).
    pub tags: BTreeMap<&'static str, Field>,
    /// Sentiment score P(positive) - P(negative), in [-1, 1].
    pub sentiment_score: Field,
    /// Confidence of each task's label (JSON object, stored only).
    pub confidence: Field,
    /// Topic id (-1: unassigned).
    pub topic: Field,
    /// Topic label.
    pub topic_label: Field,
    /// Rating as given.
    pub rating: Field,
    /// Comment time (seconds precision).
    pub time: Field,
    /// The time string as given.
    pub time_raw: Field,
    /// Severity: negativity x customer-tier weight.
    pub severity: Field,
    /// Revision: hash of the indexed content, to skip unchanged comments on update.
    pub rev: Field,
}

fn build_schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_text_field("id", tantivy::schema::STRING | tantivy::schema::STORED);
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(TEXT_TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = b.add_text_field(
        "text",
        TextOptions::default()
            .set_indexing_options(text_indexing)
            .set_stored(),
    );
    let tag_opts = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TAG_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        )
        .set_fast(TAG_TOKENIZER)
        .set_stored();
    let mut tags = BTreeMap::new();
    for &name in TAG_FIELDS {
        tags.insert(name, b.add_text_field(name, tag_opts.clone()));
    }
    let num = NumericOptions::default().set_fast().set_stored();
    let sentiment_score = b.add_f64_field("sentiment_score", num.clone());
    let confidence = b.add_json_field("confidence", tantivy::schema::STORED);
    let topic = b.add_i64_field(
        "topic",
        NumericOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored(),
    );
    let topic_label = b.add_text_field("topic_label", tantivy::schema::STORED);
    let rating = b.add_f64_field("rating", num.clone());
    let time = b.add_date_field(
        "time",
        DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored()
            .set_precision(DateTimePrecision::Seconds),
    );
    let time_raw = b.add_text_field("time_raw", tantivy::schema::STORED);
    let severity = b.add_f64_field("severity", num);
    let rev = b.add_u64_field("rev", NumericOptions::default().set_fast());
    let fields = Fields {
        id,
        text,
        tags,
        sentiment_score,
        confidence,
        topic,
        topic_label,
        rating,
        time,
        time_raw,
        severity,
        rev,
    };
    (b.build(), fields)
}

/// A vocmine index on disk.
pub struct SearchIndex {
    index: Index,
    fields: Fields,
    dir: PathBuf,
    /// jieba with the index's user dictionary.
    jieba: Arc<Jieba>,
    /// Hash of the analysis (analyzer version and user dictionary): part of every revision.
    analysis: u64,
}

pub(crate) fn tantivy_err(dir: &Path, e: tantivy::TantivyError) -> Error {
    Error::Index(format!("{}: {e}", dir.display()))
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (and the folder) when there is none.
    pub fn open_or_create(dir: &Path) -> Result<SearchIndex> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (schema, _) = build_schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(format!("{}: {e}", dir.display())))?;
        let index = Index::open_or_create(mmap, schema).map_err(|e| tantivy_err(dir, e))?;
        Self::wrap(index, dir)
    }

    /// Opens or creates the index in `dir` with the jieba user dictionary `user_dict`: a copy
    /// is kept in the index folder ([`USER_DICT_FILE`]), so later searches and servers cut
    /// with it too. A changed dictionary changes every document's revision, so the next
    /// [`update()`] re-indexes them all. `None` keeps the dictionary the index has, if any.
    pub fn open_or_create_with(dir: &Path, user_dict: Option<&Path>) -> Result<SearchIndex> {
        if let Some(p) = user_dict {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            jieba_with_user_dict(&text, p)?;
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let dest = dir.join(USER_DICT_FILE);
            if std::fs::read_to_string(&dest).ok().as_deref() != Some(text.as_str()) {
                let tmp = dir.join(format!("{USER_DICT_FILE}.tmp"));
                std::fs::write(&tmp, &text).map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
            }
        }
        Self::open_or_create(dir)
    }

    /// Opens an existing index; a clear error if `dir` holds none.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        if !dir.join("meta.json").exists() {
            let hint = if crate::workspace::RunDir::new(dir)
                .index()
                .join("meta.json")
                .exists()
            {
                format!(
                    " (did you mean {}?)",
                    crate::workspace::RunDir::new(dir).index().display()
                )
            } else {
                " (build one with `vocmine index RUN_DIR`, or `vocmine score ... --out RUN_DIR`)"
                    .to_string()
            };
            return Err(Error::Index(format!(
                "{}: no search index here{hint}",
                dir.display()
            )));
        }
        let index = Index::open_in_dir(dir).map_err(|e| tantivy_err(dir, e))?;
        Self::wrap(index, dir)
    }

    fn wrap(index: Index, dir: &Path) -> Result<SearchIndex> {
        let (expected, fields) = build_schema();
        if index.schema() != expected {
            return Err(Error::Index(format!(
                "{}: the index was built by another vocmine version; delete it and run \
                 `vocmine index` again",
                dir.display()
            )));
        }
        let dict_path = dir.join(USER_DICT_FILE);
        let dict = match std::fs::read_to_string(&dict_path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&dict_path, e)),
        };
        let jieba = match &dict {
            Some(t) => Arc::new(jieba_with_user_dict(t, &dict_path)?),
            None => tokenizer::default_jieba(),
        };
        let mut h = Sha256::new();
        h.update(tokenizer::ANALYZER_VERSION.to_le_bytes());
        h.update(dict.as_deref().unwrap_or_default());
        let d = h.finalize();
        let analysis = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        index.tokenizers().register(
            TEXT_TOKENIZER,
            tokenizer::analyzer_with(jieba.clone(), Mode::Index),
        );
        index
            .tokenizers()
            .register(TAG_TOKENIZER, tokenizer::tag_analyzer());
        index
            .fast_field_tokenizer()
            .register(TAG_TOKENIZER, tokenizer::tag_analyzer());
        Ok(SearchIndex {
            index,
            fields,
            dir: dir.to_path_buf(),
            jieba,
            analysis,
        })
    }

    /// The analyzer documents are indexed with (snippets cut the text with it too).
    pub fn analyzer(&self) -> TextAnalyzer {
        tokenizer::analyzer_with(self.jieba.clone(), Mode::Index)
    }

    /// The analyzer queries are cut with.
    pub fn query_analyzer(&self) -> TextAnalyzer {
        tokenizer::analyzer_with(self.jieba.clone(), Mode::Query)
    }

    /// A query parser over the text field that cuts queries with the query analyzer.
    pub fn query_parser(&self) -> QueryParser {
        let tokenizers = TokenizerManager::default();
        tokenizers.register(
            TEXT_TOKENIZER,
            tokenizer::analyzer_with(self.jieba.clone(), Mode::Query),
        );
        tokenizers.register(TAG_TOKENIZER, tokenizer::tag_analyzer());
        QueryParser::new(self.index.schema(), vec![self.fields.text], tokenizers)
    }

    /// Hash of the analysis (analyzer version and user dictionary).
    pub fn analysis_id(&self) -> u64 {
        self.analysis
    }

    /// The tantivy index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The schema's field handles.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The index folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A reader that picks up new commits shortly after they land.
    pub fn reader(&self) -> Result<IndexReader> {
        self.index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(|e| tantivy_err(&self.dir, e))
    }

    /// The payload of the last commit (see [`CommitPayload`]), if any.
    pub fn last_commit(&self) -> Result<Option<CommitPayload>> {
        let meta = self
            .index
            .load_metas()
            .map_err(|e| tantivy_err(&self.dir, e))?;
        Ok(meta
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()))
    }

    /// Every live document's id and revision.
    pub fn revisions(&self) -> Result<HashMap<String, u64>> {
        let reader = self.reader()?;
        let searcher = reader.searcher();
        let mut out = HashMap::new();
        for seg in searcher.segment_readers() {
            let ff = seg.fast_fields();
            let rev = ff
                .u64("rev")
                .map_err(|e| tantivy_err(&self.dir, e))?
                .first_or_default_col(0);
            let store = seg
                .get_store_reader(64)
                .map_err(|e| Error::io(&self.dir, e))?;
            for doc in seg.doc_ids_alive() {
                let d: TantivyDocument = store.get(doc).map_err(|e| tantivy_err(&self.dir, e))?;
                if let Some(id) = d.get_first(self.fields.id).and_then(|v| v.as_str()) {
                    out.insert(id.to_string(), rev.get_val(doc));
                }
            }
        }
        Ok(out)
    }

    /// Builds the document for one scored comment.
    pub fn document(
        &self,
        s: &Scored,
        topic: Option<&TopicTag>,
        tier_weights: &BTreeMap<String, f64>,
    ) -> TantivyDocument {
        let f = &self.fields;
        let mut d = TantivyDocument::default();
        d.add_text(f.id, &s.id);
        d.add_text(f.text, &s.text);
        let mut put = |name: &str, v: Option<&str>| {
            if let (Some(v), Some(&field)) = (v, f.tags.get(name)) {
                if !v.is_empty() {
                    d.add_text(field, v);
                }
            }
        };
        put("lang", Some(&s.lang));
        put("channel", s.channel.as_deref());
        put("tier", s.tier.as_deref());
        put("product", s.product.as_deref());
        for task in ["sentiment", "intent", "pain_point", "journey_stage"] {
            put(task, s.tasks.get(task).map(|t| t.label.as_str()));
        }
        put(
            "pain_type",
            s.tasks.get("pain_point").and_then(|t| t.kind.as_deref()),
        );
        for a in s.aspects.iter().flatten() {
            put("aspect", Some(&aspect_tag(&a.aspect, &a.polarity)));
            if let Some(c) = &a.category {
                put("aspect_category", Some(&aspect_tag(c, &a.polarity)));
            }
        }
        let mut conf = BTreeMap::new();
        for (task, r) in &s.tasks {
            conf.insert(task.clone(), serde_json::json!(r.confidence));
        }
        let conf: tantivy::schema::document::OwnedValue =
            serde_json::Value::Object(conf.into_iter().collect()).into();
        d.add_field_value(f.confidence, &conf);
        if let Some(score) = s.tasks.get("sentiment").and_then(|t| t.score) {
            d.add_f64(f.sentiment_score, f64::from(score));
        }
        d.add_i64(f.topic, topic.map_or(-1, |t| t.topic));
        if let Some(t) = topic.filter(|t| !t.label.is_empty()) {
            d.add_text(f.topic_label, &t.label);
        }
        if let Some(r) = s.rating {
            d.add_f64(f.rating, r);
        }
        if let Some(t) = &s.time {
            d.add_text(f.time_raw, t);
            if let Some(secs) = parse_time(t) {
                d.add_date(f.time, index_time(secs));
            }
        }
        d.add_f64(f.severity, severity(s, tier_weights));
        d.add_u64(f.rev, revision(s, topic, tier_weights, self.analysis));
        d
    }
}

/// The `aspect` tag of an aspect: its words (whitespace runs as one space) and its polarity,
/// `电池:negative`.
pub fn aspect_tag(aspect: &str, polarity: &str) -> String {
    let words: Vec<&str> = aspect.split_whitespace().collect();
    format!("{}:{polarity}", words.join(" "))
}

/// True when the index in `dir` has this version's schema (or there is none yet): an index
/// built before a field was added has to be built again.
pub fn schema_is_current(dir: &Path) -> Result<bool> {
    if !dir.join("meta.json").exists() {
        return Ok(true);
    }
    let index = Index::open_in_dir(dir).map_err(|e| tantivy_err(dir, e))?;
    Ok(index.schema() == build_schema().0)
}

/// Revision of what a document holds: changes when the scored line, its topic, the tier
/// weights or the analysis ([`SearchIndex::analysis_id`]) change.
pub fn revision(
    s: &Scored,
    topic: Option<&TopicTag>,
    tier_weights: &BTreeMap<String, f64>,
    analysis: u64,
) -> u64 {
    let mut h = Sha256::new();
    h.update(analysis.to_le_bytes());
    h.update(serde_json::to_vec(s).unwrap_or_default());
    h.update(serde_json::to_vec(&topic).unwrap_or_default());
    h.update(serde_json::to_vec(tier_weights).unwrap_or_default());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::query::{search, SearchRequest};

    fn scored(id: &str, text: &str) -> Scored {
        serde_json::from_value(serde_json::json!({
            "id": id, "text": text, "lang": "zh", "n_tokens": 0,
            "sentiment": {"label": "negative", "confidence": 0.9,
                          "probs": {"negative": 0.9}, "score": -0.8},
        }))
        .unwrap()
    }

    #[test]
    fn long_words_and_their_sub_words_highlight_without_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let idx = SearchIndex::open_or_create(&dir.path().join("i")).unwrap();
        let text = "餐厅晚餐，也优哉游哉的度过了一个搏鳌凯宾斯基假期。中华人民共和国的退款申请";
        let recs = vec![
            Ok((scored("a", text), None)),
            Ok((scored("b", "发货太慢"), None)),
        ];
        let st = update(&idx, recs, "t", &UpdateOptions::default(), |_| {}).unwrap();
        assert_eq!((st.added, st.docs), (2, 2));
        let reader = idx.reader().unwrap();
        for q in [
            "凯宾斯基",
            "共和国",
            "中华人民共和国 退款",
            "优哉游哉 假期",
            "\"退款申请\"",
        ] {
            let req = SearchRequest {
                query: q.into(),
                ..SearchRequest::default()
            };
            let r = search(&idx, &reader.searcher(), &req).unwrap();
            assert_eq!(r.total, 1, "{q}");
            assert!(
                r.hits[0].snippet.contains("<b>"),
                "{q}: {}",
                r.hits[0].snippet
            );
        }
        // Severity: -score x tier weight (no tier: 1).
        assert!((r_severity(&idx, &reader) - 0.8).abs() < 1e-6);
    }

    fn r_severity(idx: &SearchIndex, reader: &IndexReader) -> f64 {
        let req = SearchRequest {
            query: "发货".into(),
            ..SearchRequest::default()
        };
        search(idx, &reader.searcher(), &req).unwrap().hits[0].severity
    }
}
