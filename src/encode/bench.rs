//! `vocmine bench`: encoder throughput (texts/s, tokens/s, achieved GFLOP/s) on text files,
//! the CPU's peak measured right after, and a check against reference embeddings.

use super::{cosine, forward_flops, read_npy_f32, Encoder, Engine};
use crate::corpus::read_labelled;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// JSONL/CSV files; their texts are encoded in file order, raw.
    pub inputs: Vec<PathBuf>,
    /// The text field.
    pub text_field: String,
    /// Encode at most this many texts.
    pub limit: Option<usize>,
    /// Compare every embedding with this float32 `.npy` (same texts, same order).
    pub reference: Option<PathBuf>,
    /// Lowest cosine to the reference accepted.
    pub min_cosine: f32,
    /// Write the embeddings here (little-endian f32 rows) when the reference check passes.
    pub dump: Option<PathBuf>,
}

/// The comparison with reference embeddings.
#[derive(Debug, Clone)]
pub struct ReferenceCheck {
    /// The reference file.
    pub path: PathBuf,
    /// Embeddings compared.
    pub n: usize,
    /// Lowest cosine and the text it belongs to.
    pub worst: (f32, usize),
    /// Mean cosine.
    pub mean: f64,
    /// Embeddings below `min_cosine`.
    pub below: usize,
    /// The threshold.
    pub min_cosine: f32,
}

/// What [`bench`] measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Texts encoded.
    pub texts: usize,
    /// Real tokens (no padding).
    pub real_tokens: usize,
    /// Engine, batch size, threads and workers of the encoder.
    pub engine: Engine,
    /// Texts per batch.
    pub batch: usize,
    /// Threads in all.
    pub threads: usize,
    /// Batches encoded at once.
    pub workers: usize,
    /// Tokenizing seconds.
    pub tokenize_seconds: f64,
    /// Encoding seconds.
    pub encode_seconds: f64,
    /// Useful floating-point operations of the pass.
    pub flops: f64,
    /// The CPU's f32 FMA peak (GFLOP/s) and int8 peak (GOP/s) on as many threads, measured
    /// right after the pass (0 where it cannot be measured).
    pub peak: (f64, f64),
    /// The CPU's bf16 peak (GFLOP/s of `vdpbf16ps`) on as many threads, measured after a
    /// bf16 pass (0 for the other engines or where it cannot be measured).
    pub bf16_peak: f64,
    /// The kernels in use.
    pub kernels: String,
    /// The reference check, when asked for.
    pub reference: Option<ReferenceCheck>,
}

/// Reads the texts, encodes them once after a warm-up, measures the peak, then compares with
/// the reference and writes the embeddings as asked (not when the reference check fails).
pub fn bench(encoder: &Encoder, cfg: &BenchConfig) -> Result<BenchReport> {
    let mut texts = Vec::new();
    for f in &cfg.inputs {
        let (l, _) = read_labelled(f, &cfg.text_field, &cfg.text_field)?;
        texts.extend(l.texts);
    }
    if let Some(n) = cfg.limit {
        texts.truncate(n);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.encode(&refs[..refs.len().min(64)])?; // warm-up
    let t0 = Instant::now();
    let toks = encoder.tokenize(&refs)?;
    let tokenize_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let embs = encoder.encode_ids(&toks)?;
    let encode_seconds = t1.elapsed().as_secs_f64();
    let ecfg = encoder.config();
    // e5-small / BERT-small: 12 layers of 4 h^2 + 2 h i linear weights
    let (h, layers, inter) = (encoder.dim(), 12usize, 4 * encoder.dim());
    let linear = (layers * (4 * h * h + 2 * h * inter)) as f64;
    let flops = (toks
        .iter()
        .map(|t| forward_flops(t.len(), linear, h, layers)))
    .sum();
    // the machine's peak at its clock now, on as many threads, right after the pass
    let peak = (
        super::peak::f32_gflops(ecfg.threads, 1000),
        super::peak::int8_gops(ecfg.threads, 1000),
    );
    let bf16_peak = if ecfg.engine == Engine::Bf16 {
        super::peak::bf16_gflops(ecfg.threads, 1000)
    } else {
        0.0
    };
    let kernels = format!(
        "{}{}; the int8 layers run on {:?} tiles",
        if super::kernels::use_avx512() {
            "AVX-512, int8 vpdpbusd"
        } else {
            "AVX2, int8 vpmaddubsw"
        },
        if ecfg.engine == Engine::Bf16 {
            ", bf16 vdpbf16ps"
        } else {
            ""
        },
        super::kernels::int8_tiles()
    );
    let reference = match &cfg.reference {
        Some(r) => Some(check_reference(&embs, encoder.dim(), r, cfg.min_cosine)?),
        None => None,
    };
    if let Some(p) = cfg
        .dump
        .as_ref()
        .filter(|_| reference.as_ref().is_none_or(|r| r.below == 0))
    {
        write_f32_rows(p, &embs)?;
    }
    Ok(BenchReport {
        texts: texts.len(),
        real_tokens: toks.iter().map(Vec::len).sum(),
        engine: ecfg.engine,
        batch: ecfg.batch_size,
        threads: ecfg.threads,
        workers: ecfg.workers,
        tokenize_seconds,
        encode_seconds,
        flops,
        peak,
        bf16_peak,
        kernels,
        reference,
    })
}

/// Compares each embedding with the same row of the float32 `.npy` at `path`.
pub fn check_reference(
    embs: &[Vec<f32>],
    dim: usize,
    path: &Path,
    min_cosine: f32,
) -> Result<ReferenceCheck> {
    let (shape, reference) = read_npy_f32(path)?;
    if shape.len() != 2 || shape[1] != dim || shape[0] < embs.len() {
        return Err(Error::input(
            path,
            format!("shape {shape:?}, expected at least [{}, {dim}]", embs.len()),
        ));
    }
    let cos: Vec<f32> = (embs.iter().enumerate())
        .map(|(i, e)| cosine(e, &reference[i * dim..(i + 1) * dim]))
        .collect();
    let (worst_i, worst) = (cos.iter().enumerate())
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or((0, 1.0), |(i, &c)| (i, c));
    Ok(ReferenceCheck {
        path: path.to_path_buf(),
        n: cos.len(),
        worst: (worst, worst_i),
        mean: cos.iter().map(|&c| c as f64).sum::<f64>() / cos.len().max(1) as f64,
        below: cos.iter().filter(|&&c| c < min_cosine).count(),
        min_cosine,
    })
}

/// Writes rows of floats as little-endian f32, row after row.
pub fn write_f32_rows(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let mut bytes = Vec::with_capacity(rows.len() * rows.first().map_or(0, Vec::len) * 4);
    for r in rows {
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

impl BenchReport {
    /// The lines `vocmine bench` prints: the pass, the peak and the share of it reached, the
    /// reference check. Every line ends with a newline.
    pub fn to_text(&self) -> String {
        let (enc_s, tok_s, n) = (
            self.encode_seconds,
            self.tokenize_seconds,
            self.texts as f64,
        );
        let gflops = self.flops / enc_s / 1e9;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bench: {} texts, {} real tokens, engine {:?}, batch {}, threads {}, workers {}: tokenize {:.2}s; encode {:.2}s = {:.1} texts/s, {:.0} tokens/s, {:.1} GFLOP/s useful (tokenize+encode {:.1} texts/s)",
            self.texts, self.real_tokens, self.engine, self.batch, self.threads, self.workers,
            tok_s, enc_s, n / enc_s, self.real_tokens as f64 / enc_s, gflops, n / (enc_s + tok_s)
        );
        let (f32_peak, int8_peak) = self.peak;
        if f32_peak > 0.0 {
            let int8 = if self.engine == Engine::Int8 {
                format!(", {:.0}% of the int8 peak", 100.0 * gflops / int8_peak)
            } else if self.bf16_peak > 0.0 {
                format!(
                    ", {:.0}% of the bf16 peak ({:.1} GFLOP/s)",
                    100.0 * gflops / self.bf16_peak,
                    self.bf16_peak
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "peak measured now on {} threads ({}): f32 FMA {f32_peak:.1} GFLOP/s, int8 {int8_peak:.1} GOP/s; this pass: {:.0}% of the f32 peak{int8}",
                self.threads, self.kernels, 100.0 * gflops / f32_peak
            );
        }
        if let Some(r) = &self.reference {
            let _ =
                writeln!(
                s,
                "reference {}: {} embeddings, cosine min {:.7} (text {}), mean {:.7}, {} below {}",
                r.path.display(), r.n, r.worst.0, r.worst.1, r.mean, r.below, r.min_cosine
            );
        }
        s
    }
}
