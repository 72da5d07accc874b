//! The flag groups and helpers every command shares: the encoder's flags, the input columns'
//! flags, the clustering flags, progress bars, input folders and seconds.

mod alerting;
mod cluster;
mod columns;
mod progress;
mod serve_alerts;

pub(crate) use alerting::{print_deliveries, DeliveryArgs, SpikeArgs};
pub(crate) use cluster::ClusterArgs;
pub(crate) use columns::ColumnArgs;
pub(crate) use progress::Bars;
pub(crate) use serve_alerts::ServeAlertArgs;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use vocmine::encode::{set_intra_op_threads, Encoder, EncoderConfig, Engine};
use vocmine::ingest::expand_inputs;
use vocmine::model::{default_model_dir, ModelSpec};

#[derive(Args, Clone)]
pub(crate) struct EncoderArgs {
    /// Model folder: a vocmine.toml bundle or a bare encoder folder [default: $VOCMINE_MODEL,
    /// else models/ beside the binary or one or two folders above it, else the models/ of the
    /// source tree it was built from]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Texts per encoder batch
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Threads in all [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Batches encoded at once; threads are split evenly between them [default: = threads,
    /// single-threaded matmuls, the fastest split measured here]
    #[arg(long)]
    workers: Option<usize>,
    /// Forward pass: packed (real tokens only, fused AVX2 / AVX-512 kernels; set
    /// VOCMINE_NO_AVX512=1 to keep to AVX2), int8 (the packed engine
    /// with int8 linear layers: faster, embeddings within cosine ~0.9999 of f32), bf16 (the
    /// packed engine with bf16 linear layers, f32 sums; needs AVX512-BF16, an error on other
    /// CPUs; embeddings within cosine 0.999 of f32) or candle (candle's BertModel on padded
    /// batches) [default: packed where the CPU has AVX2 + FMA]
    #[arg(long, value_parser = ["packed", "int8", "bf16", "candle"])]
    engine: Option<String>,
}

impl EncoderArgs {
    /// The model bundle named by --model, else the default one.
    pub(crate) fn spec(&self) -> Result<ModelSpec> {
        let (dir, from) = match &self.model {
            Some(d) => (d.clone(), ""),
            None => (default_model_dir()?, " (the default model folder)"),
        };
        ModelSpec::open(&dir)
            .with_context(|| format!("cannot open model folder {}{from}", dir.display()))
    }

    /// Sets the thread split and loads the encoder.
    pub(crate) fn load(&self, spec: &ModelSpec) -> Result<Encoder> {
        let mut cfg = EncoderConfig {
            batch_size: self.batch,
            ..EncoderConfig::default()
        };
        if let Some(t) = self.threads {
            cfg.threads = t.max(1);
        }
        cfg.workers = self.workers.unwrap_or(cfg.threads).clamp(1, cfg.threads);
        match self.engine.as_deref() {
            Some("candle") => cfg.engine = Engine::Candle,
            Some("int8") => cfg.engine = Engine::Int8,
            Some("bf16") => cfg.engine = Engine::Bf16,
            Some(_) => cfg.engine = Engine::Packed,
            None => {}
        }
        set_intra_op_threads(cfg.threads / cfg.workers);
        spec.load_encoder(cfg).with_context(|| {
            format!(
                "cannot load the encoder from {}",
                spec.encoder_dir.display()
            )
        })
    }
}

/// A spinner counting records.
pub(crate) fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} records [{elapsed_precise}] {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb
}

/// A bar to `total`.
pub(crate) fn bar(total: usize, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// The files to read from the inputs named, with a note on stderr for each entry of an input
/// folder that is not read.
pub(crate) fn input_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let found = expand_inputs(inputs)?;
    for (path, why) in &found.skipped {
        eprintln!("note: skipped {}: {why}", path.display());
    }
    Ok(found.files)
}

/// The value of the flag --`name` as a duration: a positive number of seconds.
pub(crate) fn seconds(name: &str, v: f64) -> Result<std::time::Duration> {
    if !(v.is_finite() && v > 0.0 && v < 1e6) {
        bail!("--{name} {v}: expected a positive number of seconds");
    }
    Ok(std::time::Duration::from_secs_f64(v))
}
