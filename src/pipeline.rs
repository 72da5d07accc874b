//! Scoring runs: stream the inputs in chunks through normalise -> segment -> encode ->
//! classify, into a [`Workspace`] that commits checkpoints and compacts the outputs
//! (`scored.jsonl`, `rejects.jsonl`, `summary.json`, optionally `embeddings.f32`).
//!
//! Memory stays bounded by the chunk size whatever the input size. Chunks are cut by input
//! position (every `chunk_size` records), and checkpoints fall on chunk boundaries, so a run
//! resumed after a crash re-reads exactly the chunks that were not committed and scores them
//! with the same batches as an uninterrupted run would. A rerun skips every comment whose id,
//! text and model version are already in the workspace.

mod run;
pub use run::{score_run, RunOptions, RunOutcome, Stage};

use crate::aspects::{Aspect, AspectModel};
use crate::classify::Head;
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::ingest::{IngestConfig, Item, Reader, SeenIds};
use crate::record::{Comment, Reject, Scored};
use crate::text::normalise::{fold_origins, normalise, NormaliseConfig, Normalised};
use crate::text::segment::Segmenter;
use crate::workspace::{file_sha256, Decision, FileRecord, RunDir, RunSettings, Workspace};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Settings of one scoring run.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// Input files, read in this order.
    pub inputs: Vec<PathBuf>,
    /// Workspace (run folder) for the state and outputs.
    pub out_dir: PathBuf,
    /// How to read the inputs.
    pub ingest: IngestConfig,
    /// Normalisation (PII masking).
    pub normalise: NormaliseConfig,
    /// Records per chunk (the unit of streaming and of checkpoints).
    pub chunk_size: usize,
    /// Chunks per checkpoint (0: only at the end of each input file).
    pub checkpoint_every: usize,
    /// Write the segmented tokens into each output line.
    pub keep_tokens: bool,
    /// Keep the pooled embeddings: in the checkpoint parts and, when every part has them, in
    /// `embeddings.f32` (row i = line i of scored.jsonl, little-endian f32; 4 x dim bytes per
    /// comment in each place).
    pub save_embeddings: bool,
    /// Version of the model (encoder + heads); comments scored by another version are rescored.
    pub model_version: String,
    /// Tier weights of the severity score, saved in the run's settings for its index, topics
    /// and report.
    pub tier_weights: BTreeMap<String, f64>,
}

/// What a run did, written as `summary.json` and printed at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Input files.
    pub files: Vec<String>,
    /// Input files skipped whole: the same bytes were scored to the end by this model before.
    pub files_skipped: Vec<String>,
    /// Records read in this run (scored + skipped + rejected).
    pub records: u64,
    /// Comments scored in this run.
    pub scored: u64,
    /// Of those: not seen before.
    pub new: u64,
    /// Of those: seen with another text.
    pub changed_text: u64,
    /// Of those: scored before by another model version.
    pub older_model: u64,
    /// Comments skipped: same id, text and model already in the workspace.
    pub unchanged: u64,
    /// Records rejected in this run.
    pub rejected: u64,
    /// Checkpoints committed in this run.
    pub checkpoints: u64,
    /// Comments in the workspace's scored.jsonl after the run.
    pub total_scored: u64,
    /// Distinct rejects in the workspace's rejects.jsonl after the run.
    pub total_rejected: u64,
    /// Per task, comments per label in the workspace's scored.jsonl after the run (all runs,
    /// so a rerun that scores nothing still reports them).
    pub total_labels: BTreeMap<String, BTreeMap<String, u64>>,
    /// Comments per detected language in scored.jsonl after the run.
    pub total_languages: BTreeMap<String, u64>,
    /// Model version.
    pub model: String,
    /// Encoder tokens read (after truncation, special tokens included).
    pub tokens: u64,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// Seconds spent in the encoder.
    pub encode_seconds: f64,
    /// Scored comments per second of wall time.
    pub texts_per_second: f64,
    /// Comments per detected language (this run).
    pub languages: BTreeMap<String, u64>,
    /// Per task, comments per predicted label (this run).
    pub labels: BTreeMap<String, BTreeMap<String, u64>>,
    /// Comments in which personal data was masked (this run).
    pub masked_comments: u64,
    /// Width of the rows of embeddings.f32, when the workspace has it after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<usize>,
}

/// Hash of a (masked) text: the first 16 hex digits of its SHA-256.
pub fn text_hash(display: &str) -> String {
    Sha256::digest(display.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The stages a chunk goes through, borrowed for the run.
struct Stages<'a> {
    cfg: &'a ScoreConfig,
    encoder: &'a Encoder,
    heads: &'a [Head],
    aspects: Option<&'a AspectModel>,
    segmenter: &'a Segmenter,
}

/// Scores every input into the workspace `cfg.out_dir` with `heads` and, when given, the
/// aspect heads. `progress(records_done)` is called after each chunk.
pub fn score(
    cfg: &ScoreConfig,
    encoder: &Encoder,
    heads: &[Head],
    aspects: Option<&AspectModel>,
    segmenter: &Segmenter,
    mut progress: impl FnMut(u64),
) -> Result<Summary> {
    let t0 = Instant::now();
    let mut ws = Workspace::open(&cfg.out_dir)?;
    ws.set_embeddings(cfg.save_embeddings);
    let run = RunDir::new(&cfg.out_dir);
    run.save_settings(&RunSettings {
        mask_pii: cfg.normalise.mask_pii,
        tier_weights: cfg.tier_weights.clone(),
    })?;
    let st = Stages {
        cfg,
        encoder,
        heads,
        aspects,
        segmenter,
    };
    let mut sum = Summary {
        model: cfg.model_version.clone(),
        ..Summary::default()
    };
    let mut ids = SeenIds::default();
    for input in &cfg.inputs {
        let path = input.display().to_string();
        sum.files.push(path.clone());
        let sha = file_sha256(input)?;
        if ws.file_done(&sha, &cfg.model_version) {
            sum.files_skipped.push(path);
            ids = register_ids(input, &cfg.ingest, ids)?;
            continue;
        }
        let mut reader = Reader::open(input, &cfg.ingest)?.with_ids(std::mem::take(&mut ids));
        let mut chunk: Vec<Comment> = Vec::with_capacity(cfg.chunk_size);
        let (mut in_chunk, mut since_commit, mut records) = (0usize, 0usize, 0u64);
        for item in &mut reader {
            sum.records += 1;
            records += 1;
            in_chunk += 1;
            match item? {
                Item::Comment(c) => chunk.push(c),
                Item::Reject(r) => {
                    sum.rejected += 1;
                    ws.add_reject(&serde_json::to_string(&r)?)?;
                }
            }
            if in_chunk >= cfg.chunk_size.max(1) {
                score_chunk(&st, std::mem::take(&mut chunk), &mut ws, &mut sum)?;
                in_chunk = 0;
                since_commit += 1;
                if cfg.checkpoint_every > 0 && since_commit >= cfg.checkpoint_every {
                    ws.commit(None)?;
                    sum.checkpoints += 1;
                    since_commit = 0;
                }
                progress(sum.records);
            }
        }
        ids = reader.into_ids();
        score_chunk(&st, chunk, &mut ws, &mut sum)?;
        ws.commit(Some(FileRecord {
            path,
            sha256: sha,
            records,
            model: cfg.model_version.clone(),
            finished: unix_now(),
        }))?;
        sum.checkpoints += 1;
        progress(sum.records);
    }
    // embeddings.f32 is written whenever every part has embeddings (of this width), also
    // when this run kept none: it lines up with the scored.jsonl written now
    let c = ws.compact(Some(encoder.dim()))?;
    sum.total_scored = c.scored;
    sum.total_rejected = c.rejected;
    sum.total_labels = c.labels;
    sum.total_languages = c.languages;
    sum.embedding_dim = c.embedding_dim;
    sum.seconds = t0.elapsed().as_secs_f64();
    sum.texts_per_second = sum.scored as f64 / sum.seconds.max(1e-9);
    let json = serde_json::to_value(&sum)?;
    ws.record_run(json.clone())?;
    crate::workspace::write_atomic(
        &run.summary(),
        (serde_json::to_string_pretty(&json)? + "\n").as_bytes(),
    )?;
    Ok(sum)
}

/// The segmenter of the run at `run`: with `user_dict` when given (kept as the run's
/// `user_dict.txt`, so later runs and its index cut words the same way), else with the run's
/// kept dictionary, else jieba's own.
pub fn run_segmenter(run: &RunDir, user_dict: Option<&std::path::Path>) -> Result<Segmenter> {
    let kept = run.user_dict();
    match user_dict {
        Some(p) => {
            let segmenter = Segmenter::with_user_dict(p)?;
            std::fs::create_dir_all(run.path()).map_err(|e| Error::io(run.path(), e))?;
            let text = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            if std::fs::read(&kept).ok().as_deref() != Some(text.as_slice()) {
                std::fs::write(&kept, &text).map_err(|e| Error::io(&kept, e))?;
            }
            Ok(segmenter)
        }
        None if kept.exists() => Segmenter::with_user_dict(&kept),
        None => Ok(Segmenter::default()),
    }
}

/// Reads a file that is skipped (scored to the end before) for its ids alone, so that the files
/// after it see the same ids as in a run that read it: a resumed run rejects and numbers ids
/// exactly as an uninterrupted one.
fn register_ids(input: &std::path::Path, ingest: &IngestConfig, ids: SeenIds) -> Result<SeenIds> {
    let mut reader = Reader::open(input, ingest)?.with_ids(ids);
    for item in &mut reader {
        item?;
    }
    Ok(reader.into_ids())
}

/// The per-batch stages shared by scoring runs and the HTTP server (`POST /score`): mask PII,
/// normalise, encode, classify. Both call [`ScoreStages::normalise`] then
/// [`ScoreStages::score`], so a comment gets the same record either way.
pub struct ScoreStages<'a> {
    /// The encoder.
    pub encoder: &'a Encoder,
    /// The task heads, in output order.
    pub heads: &'a [Head],
    /// The segmenter (for `tokens`).
    pub segmenter: &'a Segmenter,
    /// Normalisation (PII masking).
    pub normalise: NormaliseConfig,
    /// Write the segmented tokens into each record.
    pub keep_tokens: bool,
    /// Model version written into each record.
    pub model_version: &'a str,
    /// The aspect heads, when they run: they read the per-token states of the same encoder
    /// pass, and each record gets its `aspects`.
    pub aspects: Option<&'a AspectModel>,
}

/// What [`ScoreStages::score`] returns: one record and pooled embedding per comment, in input
/// order, and the seconds spent in the encoder.
pub struct ScoredBatch {
    /// The records with their embeddings.
    pub records: Vec<(Scored, Vec<f32>)>,
    /// Seconds in the encoder.
    pub encode_seconds: f64,
}

/// The reject of a comment with nothing left to score after normalisation.
pub fn empty_text_reject(c: &Comment) -> Reject {
    Reject {
        id: Some(c.id.clone()),
        file: c.source.file.clone(),
        line: c.source.line,
        field: Some("text".into()),
        reason: "empty text (nothing left after removing whitespace and control characters)".into(),
    }
}

impl ScoreStages<'_> {
    /// Normalises (masks) each comment and hashes its masked text, in parallel on the
    /// encoder's pool. A comment whose normalised text is empty must be rejected with
    /// [`empty_text_reject`], not scored.
    pub fn normalise(&self, comments: &[Comment]) -> Vec<(Normalised, String)> {
        self.encoder.pool().install(|| {
            comments
                .par_iter()
                .map(|c| {
                    let n = normalise(&c.text, self.normalise);
                    let h = text_hash(&n.display);
                    (n, h)
                })
                .collect()
        })
    }

    /// Encodes and classifies normalised comments (`(comment, normalised, text hash)`, none
    /// empty) into their `scored.jsonl` records.
    pub fn score(&self, keep: Vec<(Comment, Normalised, String)>) -> Result<ScoredBatch> {
        if keep.is_empty() {
            return Ok(ScoredBatch {
                records: Vec::new(),
                encode_seconds: 0.0,
            });
        }
        let toks: Vec<Option<Vec<String>>> = if self.keep_tokens {
            self.encoder.pool().install(|| {
                keep.par_iter()
                    .map(|(_, n, _)| Some(self.segmenter.tokens(n)))
                    .collect()
            })
        } else {
            vec![None; keep.len()]
        };
        let texts: Vec<&str> = keep.iter().map(|(_, n, _)| n.text.as_str()).collect();
        let te = Instant::now();
        let (embs, lens, mut found) = match self.aspects {
            None => {
                let (embs, lens) = self.encoder.encode(&texts)?;
                (embs, lens, vec![None; texts.len()])
            }
            Some(m) => {
                let shown: Vec<&str> = keep.iter().map(|(_, n, _)| n.display.as_str()).collect();
                self.encode_with_aspects(m, &texts, &shown)?
            }
        };
        let encode_seconds = te.elapsed().as_secs_f64();
        let langs: Vec<&str> = keep.iter().map(|(_, n, _)| n.lang.as_str()).collect();
        let probs: Vec<Vec<Vec<f32>>> = self
            .heads
            .iter()
            .map(|h| h.predict_routed(&embs, &langs))
            .collect::<Result<_>>()?;
        let mut records = Vec::with_capacity(keep.len());
        for (i, (((c, n, h), tokens), emb)) in keep.into_iter().zip(toks).zip(embs).enumerate() {
            let mut tasks = BTreeMap::new();
            for (head, p) in self.heads.iter().zip(&probs) {
                tasks.insert(head.meta.task.clone(), head.result(&p[i]));
            }
            let line = Scored {
                id: c.id,
                text: n.display,
                lang: n.lang.as_str().to_string(),
                time: c.time,
                channel: c.channel,
                rating: c.rating,
                tier: c.tier,
                product: c.product,
                masked: n.masked,
                tokens,
                n_tokens: lens[i],
                text_hash: h,
                model: self.model_version.to_string(),
                aspects: found[i].take(),
                tasks,
            };
            records.push((line, emb));
        }
        Ok(ScoredBatch {
            records,
            encode_seconds,
        })
    }
}

impl ScoreStages<'_> {
    /// Embeddings, token counts and aspects of `texts` (what the encoder reads) in one encoder
    /// pass: the pooled embedding (the same bits as [`Encoder::encode`]) and the last per-token
    /// states the aspect heads read, batch by batch. Spans are moved from `texts` into `shown`
    /// (the records' text).
    #[allow(clippy::type_complexity)]
    fn encode_with_aspects(
        &self,
        m: &AspectModel,
        texts: &[&str],
        shown: &[&str],
    ) -> Result<(Vec<Vec<f32>>, Vec<usize>, Vec<Option<Vec<Aspect>>>)> {
        let tok = self.encoder.tokenize_with_offsets(texts)?;
        let ids: Vec<Vec<u32>> = tok.iter().map(|(ids, _)| ids.clone()).collect();
        let lens = ids.iter().map(Vec::len).collect();
        let rows = self.encoder.embed_with_states(&ids, |i, states| {
            Ok(shown_spans(
                m.extract(texts[i], states, &tok[i].1)?,
                shown[i],
            ))
        })?;
        let (embs, found) = rows.into_iter().map(|(e, a)| (e, Some(a))).unzip();
        Ok((embs, lens, found))
    }
}

/// `found` (spans in `fold(shown)`, what the encoder read) with their spans in `shown`. An
/// aspect whose characters cannot be placed that way (a composing sequence folded) is looked
/// up by its words in `shown`, and left out if they are not there.
fn shown_spans(found: Vec<Aspect>, shown: &str) -> Vec<Aspect> {
    let origins = fold_origins(shown);
    let chars: Vec<char> = shown.chars().collect();
    found
        .into_iter()
        .filter_map(|mut a| {
            let [from, to] = a.span;
            let placed = origins
                .as_ref()
                .filter(|o| from < to && to <= o.len())
                .map(|o| [o[from], o[to - 1] + 1]);
            let span = placed.or_else(|| {
                let want: Vec<char> = a.aspect.chars().collect();
                (0..chars.len().saturating_sub(want.len()) + 1)
                    .find(|&i| chars[i..].starts_with(&want))
                    .map(|i| [i, i + want.len()])
            })?;
            a.aspect = chars[span[0]..span[1]].iter().collect();
            a.span = span;
            Some(a)
        })
        .collect()
}

fn score_chunk(
    st: &Stages,
    chunk: Vec<Comment>,
    ws: &mut Workspace,
    sum: &mut Summary,
) -> Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let cfg = st.cfg;
    let stages = ScoreStages {
        encoder: st.encoder,
        heads: st.heads,
        segmenter: st.segmenter,
        normalise: cfg.normalise,
        keep_tokens: cfg.keep_tokens,
        model_version: &cfg.model_version,
        aspects: st.aspects,
    };
    let normed = stages.normalise(&chunk);
    let mut keep = Vec::with_capacity(chunk.len());
    for (c, (n, h)) in chunk.into_iter().zip(normed) {
        match triage(ws, &c.id, &n, &h, &cfg.model_version, sum) {
            Triage::Empty => ws.add_reject(&serde_json::to_string(&empty_text_reject(&c))?)?,
            Triage::Skip => {}
            Triage::Score => keep.push((c, n, h)),
        }
    }
    let batch = stages.score(keep)?;
    sum.encode_seconds += batch.encode_seconds;
    for (line, emb) in batch.records {
        for (task, r) in &line.tasks {
            *sum.labels
                .entry(task.clone())
                .or_default()
                .entry(r.label.clone())
                .or_default() += 1;
        }
        *sum.languages.entry(line.lang.clone()).or_default() += 1;
        sum.masked_comments += u64::from(!line.masked.is_empty());
        sum.tokens += line.n_tokens as u64;
        sum.scored += 1;
        let json = serde_json::to_string(&line)?;
        let emb = cfg.save_embeddings.then_some(emb.as_slice());
        ws.add_scored(&line.id, &line.text_hash, &line.model, &json, emb)?;
    }
    Ok(())
}

/// What a run does with one normalised comment, counted into `sum`.
enum Triage {
    /// Nothing left to score after normalisation: a reject.
    Empty,
    /// Scored before with the same text and model.
    Skip,
    /// To score (new, changed text, or an older model).
    Score,
}

/// The one decision a scoring run and [`plan`] both make for a comment, given what the
/// workspace holds.
fn triage(
    ws: &Workspace,
    id: &str,
    n: &Normalised,
    hash: &str,
    model: &str,
    sum: &mut Summary,
) -> Triage {
    if n.text.is_empty() {
        sum.rejected += 1;
        return Triage::Empty;
    }
    match ws.decide(id, hash, model) {
        Decision::Unchanged => {
            sum.unchanged += 1;
            return Triage::Skip;
        }
        Decision::New => sum.new += 1,
        Decision::ChangedText => sum.changed_text += 1,
        Decision::OlderModel => sum.older_model += 1,
    }
    Triage::Score
}

/// What a run on `inputs` would do to the workspace at `dir` now, without scoring or writing:
/// the counts of a [`Summary`] (new, changed, older model, unchanged, rejected, files skipped).
pub fn plan(
    dir: &std::path::Path,
    inputs: &[PathBuf],
    ingest: &IngestConfig,
    model: &str,
) -> Result<Summary> {
    let ws = Workspace::open_read_only(dir)?;
    // the text hashes depend on the masking the workspace was scored with
    let norm = NormaliseConfig {
        mask_pii: RunDir::new(dir).settings()?.mask_pii,
    };
    let mut sum = Summary {
        model: model.to_string(),
        ..Summary::default()
    };
    let mut ids = SeenIds::default();
    for input in inputs {
        let path = input.display().to_string();
        sum.files.push(path.clone());
        if ws.file_done(&file_sha256(input)?, model) {
            sum.files_skipped.push(path);
            ids = register_ids(input, ingest, ids)?;
            continue;
        }
        let mut reader = Reader::open(input, ingest)?.with_ids(std::mem::take(&mut ids));
        for item in &mut reader {
            sum.records += 1;
            match item? {
                Item::Reject(_) => sum.rejected += 1,
                Item::Comment(c) => {
                    let n = normalise(&c.text, norm);
                    triage(&ws, &c.id, &n, &text_hash(&n.display), model, &mut sum);
                }
            }
        }
        ids = reader.into_ids();
    }
    Ok(sum)
}
