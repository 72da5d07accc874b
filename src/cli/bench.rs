//! `vocmine bench`: encoder throughput (texts/s, tokens/s, achieved GFLOP/s) on text files,
//! optionally checked against reference embeddings.

use super::EncoderArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::corpus::read_labelled;
use vocmine::encode::{cosine, forward_flops, read_npy_f32};

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
    let mut texts = Vec::new();
    for f in &a.inputs {
        let (l, _) = read_labelled(f, &a.text_field, &a.text_field)?;
        texts.extend(l.texts);
    }
    if let Some(n) = a.limit {
        texts.truncate(n);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // warm-up
    encoder.encode(&refs[..refs.len().min(64)])?;
    let t0 = Instant::now();
    let toks = encoder.tokenize(&refs)?;
    let tok_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let embs = encoder.encode_ids(&toks)?;
    let enc_s = t1.elapsed().as_secs_f64();
    let real: usize = toks.iter().map(Vec::len).sum();
    let cfg = encoder.config();
    // e5-small / BERT-small: 12 layers of 4 h^2 + 2 h i linear weights
    let (h, layers, inter) = (encoder.dim(), 12usize, 4 * encoder.dim());
    let linear = (layers * (4 * h * h + 2 * h * inter)) as f64;
    let flops: f64 = toks
        .iter()
        .map(|t| forward_flops(t.len(), linear, h, layers))
        .sum();
    println!(
        "bench: {} texts, {} real tokens, engine {:?}, batch {}, threads {}, workers {}: tokenize {:.2}s; encode {:.2}s = {:.1} texts/s, {:.0} tokens/s, {:.1} GFLOP/s useful (tokenize+encode {:.1} texts/s)",
        texts.len(),
        real,
        cfg.engine,
        cfg.batch_size,
        cfg.threads,
        cfg.workers,
        tok_s,
        enc_s,
        texts.len() as f64 / enc_s,
        real as f64 / enc_s,
        flops / enc_s / 1e9,
        texts.len() as f64 / (enc_s + tok_s)
    );
    // the machine's peak at its clock now, on as many threads, right after the pass
    let (f32_peak, int8_peak) = (
        vocmine::encode::peak::f32_gflops(cfg.threads, 1000),
        vocmine::encode::peak::int8_gops(cfg.threads, 1000),
    );
    let kernels = format!(
        "{}; the int8 layers run on {:?} tiles",
        if vocmine::encode::kernels::use_avx512() {
            "AVX-512, int8 vpdpbusd"
        } else {
            "AVX2, int8 vpmaddubsw"
        },
        vocmine::encode::kernels::int8_tiles()
    );
    if f32_peak > 0.0 {
        println!(
            "peak measured now on {} threads ({}): f32 FMA {f32_peak:.1} GFLOP/s, int8 {int8_peak:.1} GOP/s; this pass: {:.0}% of the f32 peak{}",
            cfg.threads,
            kernels,
            100.0 * flops / enc_s / 1e9 / f32_peak,
            if cfg.engine == vocmine::encode::Engine::Int8 {
                format!(", {:.0}% of the int8 peak", 100.0 * flops / enc_s / 1e9 / int8_peak)
            } else {
                String::new()
            }
        );
    }
    if let Some(r) = &a.reference {
        let (shape, reference) = read_npy_f32(r)?;
        let dim = encoder.dim();
        if shape.len() != 2 || shape[1] != dim || shape[0] < embs.len() {
            bail!(
                "{}: shape {shape:?}, expected at least [{}, {dim}]",
                r.display(),
                embs.len()
            );
        }
        let cos: Vec<f32> = embs
            .iter()
            .enumerate()
            .map(|(i, e)| cosine(e, &reference[i * dim..(i + 1) * dim]))
            .collect();
        let (worst_i, worst) = cos
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or((0, 1.0), |(i, &c)| (i, c));
        let below = cos.iter().filter(|&&c| c < a.min_cosine).count();
        let mean = cos.iter().map(|&c| c as f64).sum::<f64>() / cos.len().max(1) as f64;
        println!(
            "reference {}: {} embeddings, cosine min {worst:.7} (text {worst_i}), mean {mean:.7}, {below} below {}",
            r.display(),
            cos.len(),
            a.min_cosine
        );
        if below > 0 {
            bail!(
                "{below} embeddings below cosine {} to the reference",
                a.min_cosine
            );
        }
    }
    if let Some(p) = &a.dump {
        write_f32(p, &embs)?;
    }
    Ok(())
}

fn write_f32(p: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let mut bytes = Vec::with_capacity(rows.len() * rows.first().map_or(0, Vec::len) * 4);
    for r in rows {
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
}
