//! `vocmine bench`: encoder throughput (texts/s, tokens/s, achieved GFLOP/s) on text files,
//! optionally checked against reference embeddings.

use super::args::EncoderArgs;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use vocmine::encode::bench::{bench, BenchConfig};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// JSONL/CSV files with a text field; texts are encoded in file order, raw (as the peer
    /// benchmark does)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text field
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Encode at most this many texts
    #[arg(long)]
    limit: Option<usize>,
    /// Write the embeddings here (little-endian f32 rows) to compare with a reference
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Compare every embedding with this float32 .npy of reference embeddings (same texts,
    /// same order; e.g. the peer benchmark's ONNX Runtime fp32 output): prints the worst cosine
    /// and fails if any is below --min-cosine
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Lowest cosine to the reference accepted
    #[arg(long, default_value_t = 0.999)]
    min_cosine: f32,
    #[command(flatten)]
    enc: EncoderArgs,
}

pub(crate) fn cmd_bench(a: BenchArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let cfg = BenchConfig {
        inputs: a.inputs,
        text_field: a.text_field,
        limit: a.limit,
        reference: a.reference,
        min_cosine: a.min_cosine,
        dump: a.dump,
    };
    let r = bench(&encoder, &cfg)?;
    out!("{}", r.to_text())?;
    if let Some(below) = r.reference.map(|c| c.below).filter(|&b| b > 0) {
        bail!(
            "{below} embeddings below cosine {} to the reference",
            a.min_cosine
        );
    }
    Ok(())
}
