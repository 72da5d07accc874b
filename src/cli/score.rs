//! `score`: comments into a run folder, then its Parquet file and index.

use super::args::{input_files, spinner, ColumnArgs, EncoderArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use vocmine::pipeline::{score_run, RunOptions, ScoreConfig, Stage};
use vocmine::severity::parse_tier_weights;
use vocmine::text::normalise::NormaliseConfig;

#[derive(Args)]
pub(crate) struct ScoreArgs {
    /// Input files or folders (CSV with a header, or JSONL)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Run folder for the outputs
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    enc: EncoderArgs,
    #[command(flatten)]
    cols: ColumnArgs,
    /// Tasks to run, comma-separated [default: the default tasks of the model]
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
    /// Also find aspects, opinions and their polarity in each comment (`aspects` in every
    /// record and in the index; the same as adding `aspects` to --tasks)
    #[arg(long)]
    aspects: bool,
    /// Do not mask phone numbers, emails, ID-card and bank-card numbers
    #[arg(long)]
    no_mask: bool,
    /// Write segmented tokens into each output line
    #[arg(long)]
    tokens: bool,
    /// Keep the pooled embeddings (the default), so that `topics` does not encode every
    /// comment again: 384 floats = 1.5 KB per comment in RUN/embeddings.f32 and as much again
    /// in the checkpoint parts (state/parts), i.e. about 3 KB per comment, 3 GB per million
    #[arg(long, overrides_with = "no_embeddings")]
    embeddings: bool,
    /// Do not keep the embeddings (saves ~3 KB per comment; `topics` then encodes every comment
    /// again, which takes about as long as scoring)
    #[arg(long, overrides_with = "embeddings")]
    no_embeddings: bool,
    /// jieba user dictionary (word [freq] [tag] per line) for product names and domain terms
    #[arg(long)]
    user_dict: Option<PathBuf>,
    /// Do not build or update the search index (RUN/index)
    #[arg(long)]
    no_index: bool,
    /// Severity weight of a customer tier in the index, e.g. vip=1.3 (repeatable)
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Records read per chunk (memory stays bounded by this)
    #[arg(long, default_value_t = 2048)]
    chunk: usize,
    /// Commit a checkpoint every N chunks (0: only at the end of each input file)
    #[arg(long, default_value_t = 1)]
    checkpoint_every: usize,
    /// jsonl: RUN/scored.jsonl; parquet: also RUN/scored.parquet with typed columns (kept up
    /// to date by every later run; rejects stay JSONL)
    #[arg(long, value_parser = ["jsonl", "parquet"], default_value = "jsonl")]
    output_format: String,
}

pub(crate) fn cmd_score(a: ScoreArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let inputs = input_files(&a.inputs)?;
    if inputs.is_empty() {
        bail!("no input files found in {:?}", a.inputs);
    }
    let encoder = a.enc.load(&spec)?;
    let tasks = match a.aspects {
        true => Some(spec.with_aspects(a.tasks.as_deref())),
        false => a.tasks.clone(),
    };
    let (heads, model_version) = spec.heads_and_version(tasks.as_deref(), &encoder)?;
    let aspects = spec.load_aspects(tasks.as_deref(), &encoder)?;
    let cfg = ScoreConfig {
        inputs,
        out_dir: a.out.clone(),
        ingest: a.cols.config()?,
        normalise: NormaliseConfig {
            mask_pii: !a.no_mask,
        },
        chunk_size: a.chunk,
        checkpoint_every: a.checkpoint_every,
        keep_tokens: a.tokens,
        save_embeddings: a.embeddings || !a.no_embeddings,
        model_version,
        tier_weights: parse_tier_weights(&a.tier_weights)?,
    };
    let opts = RunOptions {
        user_dict: a.user_dict.clone(),
        parquet: a.output_format == "parquet",
        index: !a.no_index,
    };
    let (mut pb, mut stage) = (spinner("scoring"), Stage::Scoring);
    let outcome = score_run(&cfg, &encoder, &heads, aspects.as_ref(), &opts, |s, n| {
        if s != stage {
            pb.finish_and_clear();
            (pb, stage) = (spinner("indexing"), s);
        }
        pb.set_position(n)
    })?;
    pb.finish_and_clear();
    // All the work (the index included) is done before anything is printed, so a closed stdout
    // (`| head -1`) cannot cut it short.
    out!("{}", outcome.to_text())?;
    Ok(())
}
