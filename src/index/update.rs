//! Incremental updates of the index: upsert by comment id with revisions, commits with
//! payloads, and the indexing of a run folder's (or any file's) scored records.

use super::{revision, tantivy_err, SearchIndex};
use crate::record::Scored;
use crate::workspace::{read_scored_file, read_topic_assignments, RunDir, TopicTag};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tantivy::{IndexWriter, Term};

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
            tier_weights: crate::severity::default_tier_weights(),
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
        let rev = revision(&s, topic.as_ref(), &opts.tier_weights, index.analysis_id());
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

/// Indexes the scored records of `scored` (a run's `scored.jsonl`, any file of scored lines, or
/// a `scored.parquet`)
/// into the index at `index_dir`, with the topic assignments of `topics` joined by id. The
/// index cuts words with `user_dict` when given (a copy is kept in the index), else with the
/// dictionary it has.
pub fn index_scored(
    scored: &Path,
    index_dir: &Path,
    topics: Option<&Path>,
    user_dict: Option<&Path>,
    opts: &UpdateOptions,
    progress: impl FnMut(&UpdateStats),
) -> Result<UpdateStats> {
    if !scored.exists() {
        return Err(Error::input(
            scored,
            "no scored comments here (run `vocmine score INPUT --out DIR` first)",
        ));
    }
    let topics = match topics {
        Some(p) => read_topic_assignments(p)?,
        None => HashMap::new(),
    };
    let idx = SearchIndex::open_or_create_with(index_dir, user_dict)?;
    let source = scored.display().to_string();
    if scored
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        // a scored.parquet (score --output-format parquet) or a folder of part files,
        // read batch by batch
        let batches = crate::workspace::parquet::ScoredParquetReader::open(scored)?;
        let records = batches.flat_map(|b| match b {
            // the topics of --topics (or the run's assignments) first, else the row's own
            // (a distributed job's `topic` column)
            Ok(rs) => rs
                .into_iter()
                .map(|(s, own)| {
                    let t = topics.get(&s.id).cloned().or(own);
                    Ok((s, t))
                })
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        return update(&idx, records, &source, opts, progress);
    }
    let records = read_scored_file(scored, &topics)?;
    update(&idx, records, &source, opts, progress)
}

/// Indexes a run folder into `RUN/index`, as its scoring did: its topic assignments, its jieba
/// user dictionary and the tier weights saved in its settings.
pub fn index_run(run: &RunDir, progress: impl FnMut(&UpdateStats)) -> Result<UpdateStats> {
    let settings = run.settings()?;
    let opts = UpdateOptions {
        tier_weights: settings.tier_weights,
        ..UpdateOptions::default()
    };
    let topics = run.assignments();
    let dict = run.user_dict();
    drop_outdated_run_index(&run.index())?;
    if !run.served().exists() {
        run.require_scored()?;
        return index_scored(
            &run.scored_records(),
            &run.index(),
            topics.exists().then_some(topics.as_path()),
            dict.exists().then_some(dict.as_path()),
            &opts,
            progress,
        );
    }
    index_served_run(
        run,
        &run.index(),
        topics.exists().then_some(topics.as_path()),
        dict.exists().then_some(dict.as_path()),
        &opts,
        progress,
    )
}

/// Indexes a run folder that has comments `serve` scored too (`RUN/served.jsonl`): its records
/// as [`RunDir::iter_scored`] streams them, a served record in place of the scored one of its
/// id, so re-indexing never puts an older scored version back over a served one and served
/// comments get their topics (`topics`, else the run's assignments).
fn index_served_run(
    run: &RunDir,
    dir: &Path,
    topics: Option<&Path>,
    user_dict: Option<&Path>,
    opts: &UpdateOptions,
    progress: impl FnMut(&UpdateStats),
) -> Result<UpdateStats> {
    let records = run.iter_scored()?;
    let tags = match topics {
        Some(p) => read_topic_assignments(p)?,
        None => run.read_assignments()?,
    };
    let idx = SearchIndex::open_or_create_with(dir, user_dict)?;
    let source = run.served().display().to_string();
    update(
        &idx,
        records.map(|r| {
            r.map(|s| {
                let t = tags.get(&s.id).cloned();
                (s, t)
            })
        }),
        &source,
        opts,
        progress,
    )
}

impl UpdateStats {
    /// The one line the command line prints after indexing into `dir`.
    pub fn summary(&self, dir: &Path) -> String {
        format!(
            "index {}: {} documents ({} read: {} added, {} replaced, {} unchanged; {} commits)",
            dir.display(),
            self.docs,
            self.read,
            self.added,
            self.replaced,
            self.unchanged,
            self.commits
        )
    }
}

/// What [`index_input`] indexes and how; `None` fields take the run folder's.
#[derive(Debug, Clone, Default)]
pub struct IndexInput {
    /// A run folder (its scored records, index, topics, user dictionary and settings) or a
    /// file of scored records.
    pub input: std::path::PathBuf,
    /// The index folder [default: `RUN/index`; required for a file].
    pub index: Option<std::path::PathBuf>,
    /// Topic assignments [default: the run's, when present].
    pub topics: Option<std::path::PathBuf>,
    /// jieba user dictionary [default: the run's, when present].
    pub user_dict: Option<std::path::PathBuf>,
    /// Tier weights [default: the run's settings]; given for a run folder, they are saved as
    /// the run's.
    pub tier_weights: Option<BTreeMap<String, f64>>,
    /// Commit after this many changed documents.
    pub commit_every: usize,
    /// Indexing threads (0: tantivy's choice).
    pub threads: usize,
}

/// A run folder's own index holds nothing but what the run's records give: one built by an
/// earlier version with another schema is removed, to be built again from them.
fn drop_outdated_run_index(dir: &Path) -> Result<()> {
    if !super::schema_is_current(dir)? {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Indexes a run folder or a scored file as `vocmine index` does: a run folder supplies its
/// scored records, index folder, topics, user dictionary and tier weights unless `input`
/// names them. Returns the statistics and the index folder written.
pub fn index_input(
    input: &IndexInput,
    progress: impl FnMut(&UpdateStats),
) -> Result<(UpdateStats, std::path::PathBuf)> {
    // a folder is a run folder, unless it is a folder of Parquet part files (`X.parquet/`)
    let parquet_parts = input
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let run = (input.input.is_dir() && !parquet_parts).then(|| RunDir::new(&input.input));
    let mut settings = match &run {
        Some(r) => r.settings()?,
        None => crate::workspace::RunSettings::default(),
    };
    if let Some(w) = &input.tier_weights {
        settings.tier_weights = w.clone();
        if let Some(r) = &run {
            r.save_settings(&settings)?;
        }
    }
    let scored = run
        .as_ref()
        .map_or(input.input.clone(), RunDir::scored_records);
    let dir = (input.index.clone())
        .or(run.as_ref().map(RunDir::index))
        .ok_or_else(|| Error::Invalid("--index DIR is needed when the input is a file".into()))?;
    if let Some(r) = run.as_ref().filter(|r| r.index() == dir) {
        drop_outdated_run_index(&r.index())?;
    }
    let topics =
        (input.topics.clone()).or(run.as_ref().map(RunDir::assignments).filter(|p| p.exists()));
    let dict =
        (input.user_dict.clone()).or(run.as_ref().map(RunDir::user_dict).filter(|p| p.exists()));
    let opts = UpdateOptions {
        commit_every: input.commit_every,
        threads: input.threads,
        tier_weights: settings.tier_weights,
        ..UpdateOptions::default()
    };
    if let Some(r) = run.as_ref().filter(|r| r.served().exists()) {
        let stats = index_served_run(r, &dir, topics.as_deref(), dict.as_deref(), &opts, progress)?;
        return Ok((stats, dir));
    }
    let stats = index_scored(
        &scored,
        &dir,
        topics.as_deref(),
        dict.as_deref(),
        &opts,
        progress,
    )?;
    Ok((stats, dir))
}

/// The index folder meant by `p`: `p` itself when it is an index, else the index of the run
/// folder `p` when it has one (`search` and `serve` accept either), else `p`.
pub fn resolve_index_dir(p: &Path) -> std::path::PathBuf {
    let run = RunDir::new(p);
    if !p.join("meta.json").exists() && run.has_index() {
        run.index()
    } else {
        p.to_path_buf()
    }
}
