//! `index`: build or update the search index of a run folder or a scored file.

use super::args::spinner;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use vocmine::index::{index_input, IndexInput};
use vocmine::severity::parse_tier_weights;

#[derive(Args)]
pub(crate) struct IndexArgs {
    /// A run folder (indexes its scored.jsonl into RUN/index) or a scored JSONL file
    input: PathBuf,
    /// Index folder [default: RUN/index for a run folder]
    #[arg(long)]
    index: Option<PathBuf>,
    /// Topic assignments JSONL ({"id","topic","label"}) [default: RUN/topics/assignments.jsonl
    /// when present]
    #[arg(long)]
    topics: Option<PathBuf>,
    /// Commit after this many changed documents (each commit is a safe restart point)
    #[arg(long, default_value_t = 50_000)]
    commit_every: usize,
    /// Severity weight of a customer tier, e.g. vip=1.3 (repeatable; others weigh 1)
    /// [default: the run's, saved by `score --tier-weight`]; given for a run folder, they are
    /// saved as the run's, so `topics` re-indexes with them too
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Indexing threads [default: tantivy's choice]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
    /// jieba user dictionary for the index (word [freq] [tag] per line) [default: the run's
    /// RUN/user_dict.txt, recorded by `score --user-dict`; else the index's own]
    #[arg(long)]
    user_dict: Option<PathBuf>,
}

pub(crate) fn cmd_index(a: IndexArgs) -> Result<()> {
    let tier_weights = match a.tier_weights.is_empty() {
        true => None,
        false => Some(parse_tier_weights(&a.tier_weights)?),
    };
    let input = IndexInput {
        input: a.input,
        index: a.index,
        topics: a.topics,
        user_dict: a.user_dict,
        tier_weights,
        commit_every: a.commit_every,
        threads: a.threads,
    };
    let t = Instant::now();
    let pb = spinner("indexing");
    let (stats, dir) = index_input(&input, |s| pb.set_position(s.read))?;
    pb.finish_and_clear();
    outln!("{}", stats.summary(&dir))?;
    eprintln!(
        "{:.2}s, {:.0} records/s",
        t.elapsed().as_secs_f64(),
        stats.read as f64 / t.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(())
}
