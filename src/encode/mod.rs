//! Encode: the multilingual e5 encoder (BERT) through candle, with the e5 input conventions.
//!
//! A model is config + weights + tokenizer; [`Encoder::load`] reads them, [`Encoder::encode`]
//! runs them. Texts are prefixed with `"query: "`, truncated to `max_len` tokens (special
//! tokens included), cut into batches of similar length (sorted by token count, so padding
//! stays small), run through the encoder, mean-pooled over real tokens and L2-normalised.
//!
//! Two engines run the same model: [`Engine::Packed`] (the default where the CPU has AVX2 +
//! FMA: [`bert::PackedBert`], no padding, fused kernels in [`kernels`]; with int8 or bf16
//! linear layers as [`Engine::Int8`] / [`Engine::Bf16`]) and [`Engine::Candle`]
//! (candle-transformers' `BertModel` on padded batches, the reference, and the path on other
//! CPUs).

pub mod bench;
pub mod bert;
pub mod kernels;
pub mod peak;

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use tokenizers::{Tokenizer, TruncationParams};

/// One `Vec<f32>` per sequence (a block of hidden states or an embedding), in input order.
pub type Rows = Vec<Vec<f32>>;

/// Which implementation runs the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The packed engine ([`bert::PackedBert`]): real tokens only, fused AVX2 + FMA kernels.
    Packed,
    /// The packed engine with int8 linear layers ([`kernels`]): 7-bit weights per output
    /// column, u8 activations per row. Faster, and its embeddings differ slightly from f32.
    Int8,
    /// The packed engine with bf16 linear layers: weights and activations rounded to bf16,
    /// f32 sums (`vdpbf16ps`). Needs AVX512-BF16: [`Encoder::load`] refuses it on other CPUs
    /// (no silent fall-back to f32). Optional, never the default; embeddings within cosine
    /// 0.999 of f32 (see benches/results/bf16_*.md for its speed).
    Bf16,
    /// candle-transformers' `BertModel` on padded batches.
    Candle,
}

impl Engine {
    /// The packed engine where the CPU supports it, else candle.
    pub fn best() -> Engine {
        if kernels::available() {
            Engine::Packed
        } else {
            Engine::Candle
        }
    }
}

/// How the encoder reads text and spreads its work.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// Maximum tokens a text is truncated to, special tokens included (default 128).
    pub max_len: usize,
    /// Texts per forward pass (default 32).
    pub batch_size: usize,
    /// Prefix added to every text (e5: `"query: "`).
    pub prefix: String,
    /// Total threads (default: all cores).
    pub threads: usize,
    /// Batches run at once. `1` runs one batch at a time with all `threads` inside the matmuls;
    /// `threads` (the default, fastest here) runs one batch per thread with single-threaded
    /// matmuls; a call with fewer batches than workers runs them in turn with all `threads`
    /// in the matmuls. Set [`set_intra_op_threads`] to `threads / workers` before the first
    /// forward.
    pub workers: usize,
    /// Forward-pass implementation (default [`Engine::best`]).
    pub engine: Engine,
    /// A safetensors file whose tensors replace the base weights of the same name (the
    /// fine-tuned top layers of `vocmine train --finetune`), merged at load time.
    pub overlay: Option<PathBuf>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        EncoderConfig {
            max_len: 128,
            batch_size: 32,
            prefix: "query: ".into(),
            threads,
            workers: threads,
            engine: Engine::best(),
            overlay: None,
        }
    }
}

/// Sets how many threads candle uses inside one operation (matmul). candle reads the
/// `RAYON_NUM_THREADS` variable at every matmul; call this once, early, before other threads
/// start.
pub fn set_intra_op_threads(n: usize) {
    // Safe in edition 2021; called from `main` before any worker thread exists.
    std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
}

/// A loaded sentence encoder.
pub struct Encoder {
    model: Model,
    tokenizer: Tokenizer,
    device: Device,
    cfg: EncoderConfig,
    hidden: usize,
    pad_id: u32,
    dir: PathBuf,
    pool: rayon::ThreadPool,
    bert: Config,
    /// The fingerprint, computed on first use: hashing 100 MB of files took a quarter of a
    /// one-comment `score` run when the heads, the taxonomies and the version each asked for it.
    fingerprint: std::sync::OnceLock<String>,
}

enum Model {
    Packed(bert::PackedBert),
    Candle(BertModel),
}

/// Token ids of one text after prefixing and truncation.
pub type TokenIds = Vec<u32>;

/// Per token, its character range `[from, to)` in the text, or `None` (special or prefix token).
pub type TokenSpans = Vec<Option<(usize, usize)>>;

impl Encoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir` (weights are
    /// converted to f32 on load).
    pub fn load(dir: &Path, cfg: EncoderConfig) -> Result<Encoder> {
        let need = |f: &str| -> Result<PathBuf> {
            let p = dir.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::model(
                    dir,
                    format!(
                        "{f} is missing (expected config.json, model.safetensors, tokenizer.json)"
                    ),
                ))
            }
        };
        let config_path = need("config.json")?;
        let weights = need("model.safetensors")?;
        let tok_path = need("tokenizer.json")?;
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?,
        )
        .map_err(|e| Error::model(&config_path, e.to_string()))?;
        let device = Device::Cpu;
        if let Some(o) = &cfg.overlay {
            if !o.is_file() {
                return Err(Error::model(o, "the encoder overlay file is missing"));
            }
        }
        let model = match cfg.engine {
            Engine::Packed | Engine::Int8 | Engine::Bf16 if kernels::available() => {
                let precision = match cfg.engine {
                    Engine::Int8 => bert::Precision::Int8,
                    Engine::Bf16 => bert::Precision::Bf16,
                    _ => bert::Precision::F32,
                };
                Model::Packed(bert::PackedBert::load(
                    &weights,
                    cfg.overlay.as_deref(),
                    &config,
                    precision,
                )?)
            }
            Engine::Packed | Engine::Int8 | Engine::Bf16 => {
                return Err(Error::model(
                    dir,
                    "the packed engine needs a CPU with AVX2 and FMA; use the candle engine",
                ))
            }
            Engine::Candle => {
                // Later files win: the overlay's tensors replace the base's of the same name.
                let mut files = vec![weights.clone()];
                files.extend(cfg.overlay.clone());
                // SAFETY: the weights files are mapped read-only and not modified while mapped.
                let vb =
                    unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device)? };
                Model::Candle(BertModel::load(vb, &config)?)
            }
        };
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| Error::model(&tok_path, e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: cfg.max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let threads = cfg.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vocmine-encode-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
        Ok(Encoder {
            model,
            tokenizer,
            device,
            hidden: config.hidden_size,
            pad_id: config.pad_token_id as u32,
            cfg,
            dir: dir.to_path_buf(),
            pool,
            bert: config,
            fingerprint: std::sync::OnceLock::new(),
        })
    }

    /// The BERT configuration read from the encoder's `config.json` (depth, widths).
    pub fn bert_config(&self) -> &Config {
        &self.bert
    }

    /// Embedding width (384 for e5-small).
    pub fn dim(&self) -> usize {
        self.hidden
    }

    /// The configuration in use.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// The thread pool the encoder runs in; run other parallel stages inside it too
    /// (`encoder.pool().install(..)`) so the process keeps one set of worker threads.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fingerprint of the weights and tokenizer (SHA-256 prefix) plus the input settings, so
    /// that caches and run states notice a different model.
    pub fn fingerprint(&self) -> Result<String> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f.clone());
        }
        let f = self.compute_fingerprint()?;
        Ok(self.fingerprint.get_or_init(|| f).clone())
    }

    /// [`fingerprint`](Self::fingerprint), read from the files.
    fn compute_fingerprint(&self) -> Result<String> {
        let mut h = Sha256::new();
        let mut files: Vec<PathBuf> = ["config.json", "model.safetensors", "tokenizer.json"]
            .iter()
            .map(|f| self.dir.join(f))
            .collect();
        files.extend(self.cfg.overlay.clone());
        for p in files {
            let mut file = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(|e| Error::io(&p, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update(format!("max_len={};prefix={}", self.cfg.max_len, self.cfg.prefix).as_bytes());
        if self.cfg.engine == Engine::Int8 {
            // int8 embeddings differ from f32 ones: caches must not mix them
            h.update(format!(";engine=int8-w8a7;outliers={}", kernels::OUTLIERS).as_bytes());
        }
        if self.cfg.engine == Engine::Bf16 {
            // bf16 embeddings differ from f32 ones too
            h.update(b";engine=bf16");
        }
        // (an overlay's bytes are hashed above; without one the fingerprint is unchanged)
        let d = h.finalize();
        Ok(d[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Tokenises texts with the prefix and truncation (special tokens included). Very long
    /// texts are cut to `8 * max_len` characters first; truncation keeps the start anyway.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<TokenIds>> {
        let cap = self.cfg.max_len * 8;
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| {
                let cut = match t.char_indices().nth(cap) {
                    Some((i, _)) => &t[..i],
                    None => t,
                };
                format!("{}{}", self.cfg.prefix, cut)
            })
            .collect();
        let enc = self
            .pool
            .install(|| self.tokenizer.encode_batch(inputs, true))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// [`Encoder::tokenize`] with each token's character range in its text (prefix taken off):
    /// `None` for the special tokens and the prefix's tokens. Token-level heads (aspects) map
    /// their tags back to the text with these.
    pub fn tokenize_with_offsets(&self, texts: &[&str]) -> Result<Vec<(TokenIds, TokenSpans)>> {
        let cap = self.cfg.max_len * 8;
        let skip = self.cfg.prefix.chars().count();
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| {
                let cut = match t.char_indices().nth(cap) {
                    Some((i, _)) => &t[..i],
                    None => t,
                };
                format!("{}{}", self.cfg.prefix, cut)
            })
            .collect();
        let enc = self
            .pool
            .install(|| self.tokenizer.encode_batch_char_offsets(inputs, true))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc
            .into_iter()
            .map(|e| {
                let spans = e
                    .get_offsets()
                    .iter()
                    .zip(e.get_special_tokens_mask())
                    .map(|(&(s, t), &special)| {
                        (special == 0 && t > skip).then(|| (s.max(skip) - skip, t - skip))
                    })
                    .collect();
                (e.get_ids().to_vec(), spans)
            })
            .collect())
    }

    /// Runs one batch: returns L2-normalised mean-pooled embeddings, one per input.
    pub fn forward_batch(&self, batch: &[&TokenIds]) -> Result<Vec<Vec<f32>>> {
        let intra = (self.cfg.threads / self.cfg.workers.max(1)).max(1);
        self.forward_batch_on(batch, intra)
    }

    /// [`forward_batch`](Self::forward_batch) with `intra` threads in the packed engine's
    /// matmuls (its output bits do not depend on them).
    fn forward_batch_on(&self, batch: &[&TokenIds], intra: usize) -> Result<Vec<Vec<f32>>> {
        let b = batch.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let model = match &self.model {
            Model::Packed(m) => {
                let seqs: Vec<&[u32]> = batch.iter().map(|t| t.as_slice()).collect();
                return m.embed(&seqs, intra);
            }
            Model::Candle(m) => m,
        };
        let l = batch.iter().map(|t| t.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![self.pad_id; b * l];
        let mut mask = vec![0u32; b * l];
        for (i, t) in batch.iter().enumerate() {
            ids[i * l..i * l + t.len()].copy_from_slice(t);
            mask[i * l..i * l + t.len()].iter_mut().for_each(|m| *m = 1);
        }
        let ids = Tensor::from_vec(ids, (b, l), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, l), &self.device)?;
        let types = ids.zeros_like()?;
        let out = model.forward(&ids, &types, Some(&mask))?; // (b, l, h)
        let maskf = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, l, 1)
        let summed = out.broadcast_mul(&maskf)?.sum(1)?; // (b, h)
        let counts = maskf.sum(1)?; // (b, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let pooled = mean.broadcast_div(&norm)?;
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Encodes token sequences: sorts them by length, cuts batches, runs them (one at a time,
    /// or `workers` at once), and returns embeddings in input order.
    pub fn encode_ids(&self, toks: &[TokenIds]) -> Result<Vec<Vec<f32>>> {
        let batches = toks.len().div_ceil(self.cfg.batch_size.max(1));
        if self.cfg.workers > 1 && batches < self.cfg.workers {
            // Fewer batches than workers (one comment posted to `serve`, a small file): each
            // batch in turn gets every thread in its matmuls instead of one, so a lone comment
            // does not wait on a single core while the others idle.
            let intra = self.cfg.threads.max(1);
            return self.by_length(toks, false, |idx| {
                let batch: Vec<&TokenIds> = idx.iter().map(|&i| &toks[i]).collect();
                self.forward_batch_on(&batch, intra)
            });
        }
        self.by_length(toks, self.cfg.workers > 1, |idx| {
            let batch: Vec<&TokenIds> = idx.iter().map(|&i| &toks[i]).collect();
            self.forward_batch(&batch)
        })
    }

    /// Sorts sequences by length, cuts batches of `batch_size`, runs `run` on each batch's
    /// indices (in parallel on the pool, one batch per thread, or one after another), and
    /// returns one row per sequence in input order.
    fn by_length<T: Send>(
        &self,
        toks: &[TokenIds],
        parallel: bool,
        run: impl Fn(&[usize]) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        let mut order: Vec<usize> = (0..toks.len()).collect();
        order.sort_by_key(|&i| (toks[i].len(), i));
        let batches: Vec<&[usize]> = order.chunks(self.cfg.batch_size.max(1)).collect();
        let results: Vec<Vec<T>> = self.pool.install(|| {
            if parallel {
                batches
                    .par_iter()
                    .with_max_len(1)
                    .map(|b| run(b))
                    .collect::<Result<_>>()
            } else {
                batches.iter().map(|b| run(b)).collect::<Result<_>>()
            }
        })?;
        let mut out: Vec<Option<T>> = (0..toks.len()).map(|_| None).collect();
        for (idx, rows) in batches.iter().zip(results) {
            for (&i, r) in idx.iter().zip(rows) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| Error::Invalid("a batch returned too few rows".into())))
            .collect()
    }

    /// The embeddings of `toks` (the bits of [`encode_ids`](Self::encode_ids)) and, for each
    /// sequence, `per_text(i, states)` of its last per-token hidden states (`len x hidden`),
    /// in one pass; the states of a batch are dropped once it is read, so memory stays that of
    /// a batch. Needs the packed engine.
    pub fn embed_with_states<T: Send>(
        &self,
        toks: &[TokenIds],
        per_text: impl Fn(usize, &[f32]) -> Result<T> + Sync,
    ) -> Result<Vec<(Vec<f32>, T)>> {
        let Model::Packed(m) = &self.model else {
            return Err(Error::model(
                &self.dir,
                "per-token states need the packed engine (a CPU with AVX2 and FMA)",
            ));
        };
        let batches = toks.len().div_ceil(self.cfg.batch_size.max(1));
        // as encode_ids: one batch per worker, or all threads on each when batches are few
        let (parallel, intra) = if self.cfg.workers > 1 && batches >= self.cfg.workers {
            (true, (self.cfg.threads / self.cfg.workers).max(1))
        } else {
            (false, self.cfg.threads.max(1))
        };
        let h = self.dim();
        self.by_length(toks, parallel, |idx| {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| toks[i].as_slice()).collect();
            let rows = m.states_and_embed(&seqs, usize::MAX, intra)?;
            idx.iter()
                .zip(rows)
                .map(|(&i, mut r)| {
                    let e = r.split_off(r.len() - h);
                    Ok((e, per_text(i, &r)?))
                })
                .collect()
        })
    }

    /// The per-token hidden states after the first `layers` transformer layers (0: the
    /// embedding layer's output), one `len x hidden` row-major block per sequence, in input
    /// order. Needs the packed engine. `vocmine train --finetune` caches these once and trains
    /// only the layers above.
    pub fn hidden_states(&self, toks: &[TokenIds], layers: usize) -> Result<Vec<Vec<f32>>> {
        let Model::Packed(m) = &self.model else {
            return Err(Error::model(
                &self.dir,
                "caching hidden states needs the packed engine (a CPU with AVX2 and FMA)",
            ));
        };
        let intra = (self.cfg.threads / self.cfg.workers.max(1)).max(1);
        self.by_length(toks, true, |idx| {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| toks[i].as_slice()).collect();
            m.hidden_states(&seqs, layers, intra)
        })
    }

    /// `hidden_states(toks, layers)` and `encode_ids(toks)` in one pass over the layers (the
    /// same bits as the two calls, for the cost of the second): `vocmine train --finetune`
    /// with an anchor needs both. Needs the packed engine.
    pub fn hidden_states_and_embeddings(
        &self,
        toks: &[TokenIds],
        layers: usize,
    ) -> Result<(Rows, Rows)> {
        let Model::Packed(m) = &self.model else {
            return Err(Error::model(
                &self.dir,
                "caching hidden states needs the packed engine (a CPU with AVX2 and FMA)",
            ));
        };
        let intra = (self.cfg.threads / self.cfg.workers.max(1)).max(1);
        let h = self.dim();
        let rows = self.by_length(toks, true, |idx| {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| toks[i].as_slice()).collect();
            m.states_and_embed(&seqs, layers, intra)
        })?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let e = r.split_off(r.len() - h);
                (r, e)
            })
            .unzip())
    }

    /// True when the packed engine runs this encoder (per-token states, aspects).
    pub fn is_packed(&self) -> bool {
        matches!(self.model, Model::Packed(_))
    }

    /// Tokenises and encodes texts; returns the embeddings and each text's token count.
    pub fn encode(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
        let toks = self.tokenize(texts)?;
        let lens = toks.iter().map(Vec::len).collect();
        Ok((self.encode_ids(&toks)?, lens))
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Reads a little-endian float32 C-order `.npy` array (the peer benchmark's reference
/// embeddings): its shape and values.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |m: &str| Error::Invalid(format!("{}: {m}", path.display()));
    let d = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if d.len() < 10 || &d[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let hl = u16::from_le_bytes([d[8], d[9]]) as usize;
    let header = d
        .get(10..10 + hl)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("expected a little-endian float32 C-order array"));
    }
    let shape: Vec<usize> = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header"))?
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let data: Vec<f32> = d[10 + hl..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad("data length does not match the shape"));
    }
    Ok((shape, data))
}

/// FLOPs of one forward pass over a sequence of `len` tokens of a BERT with `linear_params`
/// weights in its linear layers, `hidden` width and `layers` layers: 2 per weight per token
/// plus 4 x len x hidden per token per layer for attention (the peer benchmark's count).
pub fn forward_flops(len: usize, linear_params: f64, hidden: usize, layers: usize) -> f64 {
    let l = len as f64;
    l * (2.0 * linear_params + 4.0 * l * hidden as f64 * layers as f64)
}
