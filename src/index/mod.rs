//! The search index: every scored comment in a tantivy index on disk.
//!
//! - [`tokenizer`]: the analyzer for Chinese (jieba search-mode cuts, traditional folded to
//!   simplified), English (lower case, stemmed) and mixed text.
//! - this module: the schema, opening, and the incremental [`update`] (upsert by comment id).
//! - [`query`]: searches with filters, facet counts and highlighted snippets.
//!
//! Invariants: one document per comment id (an update deletes the id's old document in the
//! same commit that adds the new one); a commit is atomic (tantivy's `meta.json` rename), so a
//! crash leaves the last commit readable; readers see a commit once it lands, and can search
//! while a writer works. Each commit carries a payload saying how many input records it
//! covers, so an interrupted build can be checked and resumed.

pub mod query;
pub mod snippet;
pub mod tokenizer;

use crate::record::{parse_time, Scored};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::{DateTime, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokenizer::{TAG_TOKENIZER, TEXT_TOKENIZER};

/// Tag fields: one lower-cased value each, indexed for filters, fast for facets, stored.
pub const TAG_FIELDS: &[&str] = &[
    "lang",
    "sentiment",
    "intent",
    "pain_point",
    "pain_type",
    "channel",
    "tier",
    "product",
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

/// A topic assignment for one comment (from `vocmine topics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicTag {
    /// Topic id; -1 for comments that fit no topic.
    pub topic: i64,
    /// The topic's readable label.
    #[serde(default)]
    pub label: String,
}

/// Weights of customer tiers in the severity score (lower-cased tier -> weight; others 1).
pub fn default_tier_weights() -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("vip".to_string(), 1.3),
        ("platinum".to_string(), 1.3),
        ("gold".to_string(), 1.15),
    ])
}

/// Severity of one comment: its negativity (`-score` of sentiment, floored at 0, or
/// P(negative) where there is no score) times its customer tier's weight.
pub fn severity(s: &Scored, tier_weights: &BTreeMap<String, f64>) -> f64 {
    let neg = s.tasks.get("sentiment").map_or(0.0, |t| match t.score {
        Some(score) => f64::from(-score).max(0.0),
        None => f64::from(t.probs.get("negative").copied().unwrap_or(0.0)),
    });
    let w = s
        .tier
        .as_deref()
        .and_then(|t| tier_weights.get(&t.to_lowercase()))
        .copied()
        .unwrap_or(1.0);
    neg * w
}

/// A vocmine index on disk.
pub struct SearchIndex {
    index: Index,
    fields: Fields,
    dir: PathBuf,
}

fn tantivy_err(dir: &Path, e: tantivy::TantivyError) -> Error {
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

    /// Opens an existing index; a clear error if `dir` holds none.
    pub fn open(dir: &Path) -> Result<SearchIndex> {
        if !dir.join("meta.json").exists() {
            let hint = if dir.join("index").join("meta.json").exists() {
                format!(" (did you mean {}?)", dir.join("index").display())
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
        index
            .tokenizers()
            .register(TEXT_TOKENIZER, tokenizer::analyzer());
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
        })
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
        for task in ["sentiment", "intent", "pain_point"] {
            put(task, s.tasks.get(task).map(|t| t.label.as_str()));
        }
        put(
            "pain_type",
            s.tasks.get("pain_point").and_then(|t| t.kind.as_deref()),
        );
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
                d.add_date(f.time, DateTime::from_timestamp_secs(secs));
            }
        }
        d.add_f64(f.severity, severity(s, tier_weights));
        d.add_u64(f.rev, revision(s, topic, tier_weights));
        d
    }
}

/// Revision of what a document holds: changes when the scored line, its topic or the tier
/// weights change.
pub fn revision(s: &Scored, topic: Option<&TopicTag>, tier_weights: &BTreeMap<String, f64>) -> u64 {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(s).unwrap_or_default());
    h.update(serde_json::to_vec(&topic).unwrap_or_default());
    h.update(serde_json::to_vec(tier_weights).unwrap_or_default());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// What each commit records in the index's `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitPayload {
    /// Input records read and applied up to this commit (in input order).
    pub records: u64,
    /// The input the records came from.
    pub source: String,
    /// Whether this commit finished the input.
    pub complete: bool,
}

/// Settings of an index update.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Commit after this many changed documents (0: only at the end).
    pub commit_every: usize,
    /// Writer memory budget in bytes.
    pub memory_bytes: usize,
    /// Indexing threads (0: tantivy's choice).
    pub threads: usize,
    /// Tier weights for the severity score.
    pub tier_weights: BTreeMap<String, f64>,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            commit_every: 50_000,
            memory_bytes: 200_000_000,
            threads: 0,
            tier_weights: default_tier_weights(),
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateStats {
    /// Records read from the input.
    pub read: u64,
    /// Documents added for ids not in the index.
    pub added: u64,
    /// Documents replaced because the record changed.
    pub replaced: u64,
    /// Records whose document was already up to date.
    pub unchanged: u64,
    /// Commits made.
    pub commits: u64,
    /// Live documents after the update.
    pub docs: u64,
}

/// Upserts `records` into the index: new ids are added, changed ones replaced (delete by id +
/// add, in one commit), unchanged ones skipped. Commits every `commit_every` changes and at
/// the end; each commit's payload says how many input records it covers.
pub fn update<I>(
    index: &SearchIndex,
    records: I,
    source: &str,
    opts: &UpdateOptions,
    mut progress: impl FnMut(&UpdateStats),
) -> Result<UpdateStats>
where
    I: IntoIterator<Item = Result<(Scored, Option<TopicTag>)>>,
{
    let dir = index.dir().to_path_buf();
    let known = index.revisions()?;
    let mut writer: IndexWriter = if opts.threads > 0 {
        index
            .index
            .writer_with_num_threads(opts.threads, opts.memory_bytes)
    } else {
        index.index.writer(opts.memory_bytes)
    }
    .map_err(|e| match e {
        tantivy::TantivyError::LockFailure(..) => Error::Index(format!(
            "{}: another process is writing this index; wait for it to finish",
            dir.display()
        )),
        e => tantivy_err(&dir, e),
    })?;
    let mut stats = UpdateStats::default();
    let mut pending = 0usize;
    let commit = |writer: &mut IndexWriter, stats: &mut UpdateStats, complete: bool| {
        let payload = CommitPayload {
            records: stats.read,
            source: source.to_string(),
            complete,
        };
        let mut prepared = writer.prepare_commit().map_err(|e| tantivy_err(&dir, e))?;
        prepared.set_payload(&serde_json::to_string(&payload)?);
        prepared.commit().map_err(|e| tantivy_err(&dir, e))?;
        stats.commits += 1;
        Ok::<(), Error>(())
    };
    for rec in records {
        let (s, topic) = rec?;
        stats.read += 1;
        let rev = revision(&s, topic.as_ref(), &opts.tier_weights);
        match known.get(&s.id) {
            Some(&r) if r == rev => {
                stats.unchanged += 1;
                continue;
            }
            Some(_) => {
                writer.delete_term(Term::from_field_text(index.fields.id, &s.id));
                stats.replaced += 1;
            }
            None => stats.added += 1,
        }
        let doc = index.document(&s, topic.as_ref(), &opts.tier_weights);
        writer
            .add_document(doc)
            .map_err(|e| tantivy_err(index.dir(), e))?;
        pending += 1;
        if opts.commit_every > 0 && pending >= opts.commit_every {
            commit(&mut writer, &mut stats, false)?;
            pending = 0;
            progress(&stats);
        }
    }
    commit(&mut writer, &mut stats, true)?;
    writer
        .wait_merging_threads()
        .map_err(|e| tantivy_err(index.dir(), e))?;
    let reader = index.reader()?;
    reader.reload().map_err(|e| tantivy_err(index.dir(), e))?;
    stats.docs = reader.searcher().num_docs();
    progress(&stats);
    Ok(stats)
}

/// Reads topic assignments (`{"id", "topic", "label"}` lines) into a map by id.
pub fn read_topic_assignments(path: &Path) -> Result<HashMap<String, TopicTag>> {
    #[derive(Deserialize)]
    struct Line {
        id: String,
        topic: i64,
        #[serde(default)]
        label: String,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line)
            .map_err(|e| Error::input(path, format!("line {}: {e}", i + 1)))?;
        out.insert(
            l.id,
            TopicTag {
                topic: l.topic,
                label: l.label,
            },
        );
    }
    Ok(out)
}

/// Streams `scored.jsonl` (or any file of [`Scored`] lines) with topic tags joined by id.
pub fn read_scored<'a>(
    path: &'a Path,
    topics: &'a HashMap<String, TopicTag>,
) -> Result<impl Iterator<Item = Result<(Scored, Option<TopicTag>)>> + 'a> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let lines = std::io::BufReader::new(f).lines().enumerate();
    Ok(lines.filter_map(move |(i, line)| {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(Error::io(path, e))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str::<Scored>(&line)
                .map_err(|e| {
                    Error::input(path, format!("line {}: not a scored record: {e}", i + 1))
                })
                .map(|s| {
                    let t = topics.get(&s.id).cloned();
                    (s, t)
                }),
        )
    }))
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
