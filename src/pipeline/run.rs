//! A whole `vocmine score`: the scoring run, then `scored.parquet` and the run's index, and
//! the lines that describe it.

use super::{run_segmenter, score, ScoreConfig, Summary};
use crate::classify::Head;
use crate::encode::Encoder;
use crate::index::{index_run, UpdateStats};
use crate::workspace::parquet::update_run_parquet;
use crate::workspace::RunDir;
use crate::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// What [`score_run`] does besides scoring.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// jieba user dictionary, kept as the run's (see [`run_segmenter`]).
    pub user_dict: Option<PathBuf>,
    /// Write `scored.parquet` (it is rewritten anyway when the run folder has one).
    pub parquet: bool,
    /// Build or update the run's search index.
    pub index: bool,
}

/// The stage a progress report of [`score_run`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Records read by the scoring run.
    Scoring,
    /// Records read by the indexer.
    Indexing,
}

/// What [`score_run`] did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run folder.
    pub run: RunDir,
    /// The scoring run's summary (as in `summary.json`).
    pub summary: Summary,
    /// Records written to `scored.parquet`, when it was written.
    pub parquet: Option<u64>,
    /// The index update, unless the index was left alone.
    pub index: Option<UpdateStats>,
}

/// Scores `cfg.inputs` into the run folder `cfg.out_dir` with the run's segmenter, rewrites
/// `scored.parquet` when asked or present, then updates the run's index unless told not to.
/// `progress(stage, records_done)` follows both stages. All the work is done before it
/// returns, so a caller that prints afterwards cannot cut it short.
pub fn score_run(
    cfg: &ScoreConfig,
    encoder: &Encoder,
    heads: &[Head],
    aspects: Option<&crate::aspects::AspectModel>,
    opts: &RunOptions,
    mut progress: impl FnMut(Stage, u64),
) -> Result<RunOutcome> {
    let run = RunDir::new(&cfg.out_dir);
    let segmenter = run_segmenter(&run, opts.user_dict.as_deref())?;
    let summary = score(cfg, encoder, heads, aspects, &segmenter, |n| {
        progress(Stage::Scoring, n)
    })?;
    let parquet = update_run_parquet(&run, opts.parquet)?;
    let index = match opts.index {
        true => Some(index_run(&run, |s| progress(Stage::Indexing, s.read))?),
        false => None,
    };
    Ok(RunOutcome {
        run,
        summary,
        parquet,
        index,
    })
}

fn fmt_counts(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl RunOutcome {
    /// The lines `vocmine score` prints: counts and speed, what was scored and skipped,
    /// languages and labels (of the workspace too when they differ), masking, the workspace's
    /// totals, the Parquet file and the index. Every line ends with a newline.
    pub fn to_text(&self) -> String {
        let (sum, mut s) = (&self.summary, String::new());
        let _ = writeln!(
            s,
            "scored {} of {} records ({} rejected, {} unchanged and skipped) in {:.1}s: {:.1} comments/s, {} encoder tokens ({:.0} tokens/s in the encoder)",
            sum.scored,
            sum.records,
            sum.rejected,
            sum.unchanged,
            sum.seconds,
            sum.texts_per_second,
            sum.tokens,
            sum.tokens as f64 / sum.encode_seconds.max(1e-9)
        );
        if sum.scored > 0 {
            let _ = writeln!(
                s,
                "scored: {} new, {} with changed text, {} scored before by another model version",
                sum.new, sum.changed_text, sum.older_model
            );
        }
        if !sum.files_skipped.is_empty() {
            let _ = writeln!(
                s,
                "skipped {} input file(s) already scored to the end by this model: {}",
                sum.files_skipped.len(),
                sum.files_skipped.join(", ")
            );
        }
        if !sum.languages.is_empty() {
            let _ = writeln!(s, "languages: {}", fmt_counts(&sum.languages));
        }
        for (task, counts) in &sum.labels {
            let _ = writeln!(s, "{task}: {}", fmt_counts(counts));
        }
        if sum.total_labels != sum.labels {
            s.push_str("in the whole workspace:\n");
            for (task, counts) in &sum.total_labels {
                let _ = writeln!(s, "  {task}: {}", fmt_counts(counts));
            }
        }
        if sum.masked_comments > 0 {
            let _ = writeln!(
                s,
                "personal data masked in {} comments",
                sum.masked_comments
            );
        }
        let _ = writeln!(
            s,
            "workspace {}: {} comments in scored.jsonl, {} in rejects.jsonl (model {}, {} checkpoints this run)",
            self.run.path().display(),
            sum.total_scored,
            sum.total_rejected,
            sum.model,
            sum.checkpoints
        );
        if let Some(n) = self.parquet {
            let _ = writeln!(
                s,
                "wrote {n} comments to {}",
                self.run.scored_parquet().display()
            );
        }
        if let Some(stats) = &self.index {
            let _ = writeln!(s, "{}", stats.summary(&self.run.index()));
        }
        s
    }
}

impl Summary {
    /// The line `vocmine status` prints for a [`plan`](super::plan): what a run would score,
    /// skip and reject now.
    pub fn plan_text(&self) -> String {
        format!(
            "a run now (model {}) would score {} ({} new, {} changed text, {} older model), skip {} unchanged and {} whole files, reject {}",
            self.model,
            self.new + self.changed_text + self.older_model,
            self.new,
            self.changed_text,
            self.older_model,
            self.unchanged,
            self.files_skipped.len(),
            self.rejected
        )
    }
}
