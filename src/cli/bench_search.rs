//! `bench-search`: indexing throughput and query latency on labelled corpora.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vocmine::index::bench::{bench_search, BenchSearchConfig};
use vocmine::workspace::write_json_file;

#[derive(Args)]
pub(crate) struct BenchSearchArgs {
    /// Labelled JSONL corpora to index (text; label -> sentiment; category/airline -> product)
    #[arg(long = "data", required = true)]
    data: Vec<PathBuf>,
    /// Queries to time
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Index folder to build [default: a temporary folder]
    #[arg(long)]
    index: Option<PathBuf>,
    /// Seed for the query sample
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Write the measurements as JSON here
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the sampled queries here (one per line, for load generators)
    #[arg(long)]
    queries_out: Option<PathBuf>,
}

pub(crate) fn cmd_bench_search(a: BenchSearchArgs) -> Result<()> {
    let cfg = BenchSearchConfig {
        data: a.data,
        queries: a.queries,
        index: a.index,
        seed: a.seed,
        queries_out: a.queries_out,
    };
    let report = bench_search(&cfg, |note| eprintln!("{note}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(p) = &a.out {
        write_json_file(p, &report)?;
    }
    Ok(())
}
