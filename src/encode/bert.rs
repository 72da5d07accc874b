//! The packed BERT forward pass: config + weights ([`PackedBert::load`]) and a forward function
//! ([`PackedBert::embed`]) that runs the real tokens of a batch as one matrix, with no padding.
//!
//! The linear layers (about 97% of the FLOPs) see all tokens of the batch packed row after row;
//! attention runs per sequence on its own rows, so no pad token is ever computed and no mask is
//! needed. Weights are packed once at load time into the kernel's panel layout, the three
//! attention projections concatenated into one (QKV in one matmul); bias + GELU and bias +
//! residual are fused into the last pass of their matmul. Same numbers as candle's
//! `BertModel` (cosine >= 0.99999, tested), mean pooling and L2 normalisation included.

use super::kernels::{self, AttnScratch, Bf16Linear, Epilogue, PackedLinear, QLinear, OUTLIERS};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::Config;
use rayon::prelude::*;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Mutex;

/// The number format of the linear layers' weights (and the products they run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights, f32 FMAs (the exact engine).
    F32,
    /// 8-bit weights, 7-bit activations, exact integer sums ([`QLinear`], each row's
    /// [`OUTLIERS`] largest inputs in f32).
    Int8,
    /// bf16 weights and activations, f32 sums (`vdpbf16ps`; needs AVX512-BF16).
    Bf16,
}

/// One linear layer in f32, int8 or bf16.
enum Linear {
    F32(PackedLinear),
    I8(QLinear),
    Bf16(Bf16Linear),
}

impl Linear {
    /// The layer in `precision`.
    fn new(w: &[f32], n: usize, k: usize, bias: Vec<f32>, precision: Precision) -> Linear {
        match precision {
            Precision::F32 => Linear::F32(match kernels::half_panels() {
                true => PackedLinear::pack_half(w, n, k, bias.clone())
                    .unwrap_or_else(|| PackedLinear::pack(w, n, k, bias)),
                false => PackedLinear::pack(w, n, k, bias),
            }),
            Precision::Int8 => Linear::I8(QLinear::quantize(w, n, k, bias, OUTLIERS)),
            Precision::Bf16 => Linear::Bf16(Bf16Linear::pack(w, n, k, bias)),
        }
    }

    fn k(&self) -> usize {
        match self {
            Linear::F32(l) => l.k,
            Linear::I8(l) => l.k,
            Linear::Bf16(l) => l.k,
        }
    }

    fn n(&self) -> usize {
        match self {
            Linear::F32(l) => l.n,
            Linear::I8(l) => l.n,
            Linear::Bf16(l) => l.n,
        }
    }

    /// Whether a product of few rows on several threads is split by output columns (f32, and
    /// int8 on tiles other than AMX's; see [`par_linear`]).
    fn splits_by_columns(&self) -> bool {
        match self {
            Linear::F32(_) => true,
            Linear::I8(_) => kernels::int8_tiles() != kernels::Tiles::Amx,
            Linear::Bf16(_) => false,
        }
    }

    fn run(&self, x: &[f32], m: usize, out: &mut [f32], ep: Epilogue) {
        match self {
            Linear::F32(l) => kernels::linear(x, m, l, out, ep),
            Linear::I8(l) => kernels::qlinear(x, m, l, out, ep),
            Linear::Bf16(l) => kernels::linear_bf16(x, m, l, out, ep),
        }
    }
}

struct Layer {
    qkv: Linear,
    out: Linear,
    ln1: (Vec<f32>, Vec<f32>),
    ffn_in: Linear,
    ffn_out: Linear,
    ln2: (Vec<f32>, Vec<f32>),
}

/// A BERT encoder held in the packed kernels' layout.
pub struct PackedBert {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    max_pos: usize,
    word: Vec<f32>,
    vocab: usize,
    pos: Vec<f32>,
    token_type0: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
}

/// Buffers of one forward pass, kept per thread and reused across batches.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    a: Vec<f32>,
    inter: Vec<f32>,
    attn: AttnScratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl PackedBert {
    /// Loads `model.safetensors` (any float type, converted to f32) with `config`; the tensors
    /// of `overlay` (fine-tuned layers) replace the base's of the same name. The linear
    /// layers' weights are held in `precision`: with [`Precision::Int8`] they are quantized to
    /// 8-bit integers (`kernels::QLinear`) and their inputs to u8 per row at run time; with
    /// [`Precision::Bf16`] both are rounded to bf16 (the CPU must have AVX512-BF16: an error
    /// otherwise). Embeddings, layer norms and attention stay f32.
    pub fn load(
        weights: &Path,
        overlay: Option<&Path>,
        config: &Config,
        precision: Precision,
    ) -> Result<PackedBert> {
        if precision == Precision::Bf16 && !kernels::has_avx512_bf16() {
            return Err(Error::model(
                weights,
                "the bf16 engine needs a CPU with AVX512-BF16 (avx512_bf16 in /proc/cpuinfo); \
                 use --engine packed (f32) on this one",
            ));
        }
        let mut tensors = candle_core::safetensors::load(weights, &Device::Cpu)?;
        if let Some(o) = overlay {
            for (name, t) in candle_core::safetensors::load(o, &Device::Cpu)? {
                if !tensors.contains_key(&name) {
                    return Err(Error::model(
                        o,
                        format!("overlay tensor {name} is not in the base model"),
                    ));
                }
                tensors.insert(name, t);
            }
        }
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t: &Tensor = tensors
                .get(name)
                .ok_or_else(|| Error::model(weights, format!("tensor {name} is missing")))?;
            if t.dims() != shape {
                return Err(Error::model(
                    weights,
                    format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims()),
                ));
            }
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let heads = config.num_attention_heads;
        if !h.is_multiple_of(16)
            || !i.is_multiple_of(16)
            || !h.is_multiple_of(heads)
            || !(h / heads).is_multiple_of(16)
        {
            return Err(Error::model(
                weights,
                format!("hidden {h} / intermediate {i} / heads {heads}: the packed engine needs multiples of 16 and head widths of 16k"),
            ));
        }
        let lin = |p: &str, n: usize, k: usize| -> Result<Linear> {
            Ok(Linear::new(
                &get(&format!("{p}.weight"), &[n, k])?,
                n,
                k,
                get(&format!("{p}.bias"), &[n])?,
                precision,
            ))
        };
        let ln = |p: &str| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((
                get(&format!("{p}.weight"), &[h])?,
                get(&format!("{p}.bias"), &[h])?,
            ))
        };
        let prefix = if tensors.contains_key("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let e = format!("{prefix}embeddings");
        let emb_ln = ln(&format!("{e}.LayerNorm"))?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("{prefix}encoder.layer.{l}");
            let mut w = Vec::with_capacity(3 * h * h);
            let mut b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                w.extend(get(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
                b.extend(get(&format!("{p}.attention.self.{part}.bias"), &[h])?);
            }
            let ln1 = ln(&format!("{p}.attention.output.LayerNorm"))?;
            let ln2 = ln(&format!("{p}.output.LayerNorm"))?;
            layers.push(Layer {
                qkv: Linear::new(&w, 3 * h, h, b, precision),
                out: lin(&format!("{p}.attention.output.dense"), h, h)?,
                ffn_in: lin(&format!("{p}.intermediate.dense"), i, h)?,
                ffn_out: lin(&format!("{p}.output.dense"), h, i)?,
                ln1,
                ln2,
            });
        }
        let vocab = config.vocab_size;
        Ok(PackedBert {
            hidden: h,
            heads,
            inter: i,
            eps: config.layer_norm_eps as f32,
            max_pos: config.max_position_embeddings,
            word: get(&format!("{e}.word_embeddings.weight"), &[vocab, h])?,
            vocab,
            pos: get(
                &format!("{e}.position_embeddings.weight"),
                &[config.max_position_embeddings, h],
            )?,
            token_type0: get(
                &format!("{e}.token_type_embeddings.weight"),
                &[config.type_vocab_size, h],
            )?[..h]
                .to_vec(),
            emb_ln,
            layers,
        })
    }

    /// Embedding width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Mean-pooled, L2-normalised embeddings of token sequences (ids with special tokens),
    /// all run as one packed matrix. `threads > 1` splits each matmul's rows and the
    /// sequences' attention over the current rayon pool.
    pub fn embed(&self, batch: &[&[u32]], threads: usize) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        self.run(batch, self.layers.len(), None, threads, |x, _, offsets| {
            offsets
                .windows(2)
                .map(|w| pool(&x[w[0] * h..w[1] * h], h))
                .collect()
        })
    }

    /// The hidden states after the first `layers` layers, one `len x hidden` block per
    /// sequence (`layers` above the model's depth runs all of them).
    pub fn hidden_states(
        &self,
        batch: &[&[u32]],
        layers: usize,
        threads: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        self.run(
            batch,
            layers.min(self.layers.len()),
            None,
            threads,
            |x, _, offsets| {
                offsets
                    .windows(2)
                    .map(|w| x[w[0] * h..w[1] * h].to_vec())
                    .collect()
            },
        )
    }

    /// `hidden_states(batch, layers)` and `embed(batch)` in one pass over all the layers: per
    /// sequence, its `len x hidden` states after the first `layers` layers followed by its
    /// `hidden` embedding floats. The same bits as the two calls.
    pub fn states_and_embed(
        &self,
        batch: &[&[u32]],
        layers: usize,
        threads: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let keep = layers.min(self.layers.len());
        self.run(
            batch,
            self.layers.len(),
            Some(keep),
            threads,
            |x, kept, offsets| {
                offsets
                    .windows(2)
                    .map(|w| {
                        let mut row = kept[w[0] * h..w[1] * h].to_vec();
                        row.extend(pool(&x[w[0] * h..w[1] * h], h));
                        row
                    })
                    .collect()
            },
        )
    }

    /// Runs the embedding layer and the first `depth` layers, then hands the packed hidden
    /// states, a copy of them after the first `keep` layers (empty without `keep`) and the
    /// sequences' row offsets to `finish`.
    fn run<R>(
        &self,
        batch: &[&[u32]],
        depth: usize,
        keep: Option<usize>,
        threads: usize,
        finish: impl FnOnce(&[f32], &[f32], &[usize]) -> R,
    ) -> Result<R> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(batch.len() + 1);
        offsets.push(0usize);
        for s in batch {
            if s.is_empty() {
                return Err(Error::Invalid("an empty token sequence".into()));
            }
            if s.len() > self.max_pos {
                return Err(Error::Invalid(format!(
                    "a sequence of {} tokens (the model takes {})",
                    s.len(),
                    self.max_pos
                )));
            }
            if let Some(&bad) = s.iter().find(|&&t| t as usize >= self.vocab) {
                return Err(Error::Invalid(format!(
                    "token id {bad} outside the vocabulary ({})",
                    self.vocab
                )));
            }
            offsets.push(offsets[offsets.len() - 1] + s.len());
        }
        let t = offsets[batch.len()];
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            grow(&mut s.x, t * h);
            grow(&mut s.qkv, t * 3 * h);
            grow(&mut s.ctx, t * h);
            grow(&mut s.a, t * h);
            grow(&mut s.inter, t * self.inter);
            let x = &mut s.x[..t * h];
            // embeddings: word + position + token type 0, then layer norm
            for (seq, &start) in batch.iter().zip(&offsets) {
                for (p, &id) in seq.iter().enumerate() {
                    let row = &mut x[(start + p) * h..(start + p + 1) * h];
                    let w = &self.word[id as usize * h..(id as usize + 1) * h];
                    let ps = &self.pos[p * h..(p + 1) * h];
                    for j in 0..h {
                        row[j] = w[j] + ps[j] + self.token_type0[j];
                    }
                }
            }
            kernels::layer_norm(x, h, &self.emb_ln.0, &self.emb_ln.1, self.eps);
            let qkv = &mut s.qkv[..t * 3 * h];
            let ctx = &mut s.ctx[..t * h];
            let a = &mut s.a[..t * h];
            let inter = &mut s.inter[..t * self.inter];
            let mut kept = Vec::new();
            if keep == Some(0) {
                kept = x.to_vec();
            }
            // few rows: the products are split by columns, on a team of threads that spin
            // between them for the whole pass (`kernels::with_team`)
            let columns = self
                .layers
                .first()
                .is_some_and(|l| l.qkv.splits_by_columns());
            let helpers = if threads > 1 && t < COLUMNS_BELOW && columns {
                threads - 1
            } else {
                0
            };
            let attn = &mut s.attn;
            let offs = &offsets;
            kernels::with_team(helpers, || {
                for (l, layer) in self.layers[..depth].iter().enumerate() {
                    par_linear(x, t, &layer.qkv, qkv, Epilogue::Bias, threads);
                    self.attention(qkv, ctx, offs, attn, threads);
                    par_linear(ctx, t, &layer.out, a, Epilogue::BiasResidual(x), threads);
                    kernels::layer_norm(a, h, &layer.ln1.0, &layer.ln1.1, self.eps);
                    par_linear(a, t, &layer.ffn_in, inter, Epilogue::BiasGelu, threads);
                    par_linear(
                        inter,
                        t,
                        &layer.ffn_out,
                        x,
                        Epilogue::BiasResidual(a),
                        threads,
                    );
                    kernels::layer_norm(x, h, &layer.ln2.0, &layer.ln2.1, self.eps);
                    if keep == Some(l + 1) {
                        kept = x.to_vec();
                    }
                }
            });
            Ok(finish(x, &kept, &offsets))
        })
    }

    fn attention(
        &self,
        qkv: &[f32],
        ctx: &mut [f32],
        offsets: &[usize],
        scratch: &mut AttnScratch,
        threads: usize,
    ) {
        let h = self.hidden;
        let one = |(w, c): (&[usize], &mut [f32]), s: &mut AttnScratch| {
            let len = w[1] - w[0];
            kernels::attention(&qkv[w[0] * 3 * h..w[1] * 3 * h], len, h, self.heads, c, s);
        };
        let mut parts: Vec<(&[usize], &mut [f32])> = Vec::with_capacity(offsets.len());
        let mut rest = ctx;
        for w in offsets.windows(2) {
            let (c, r) = rest.split_at_mut((w[1] - w[0]) * h);
            parts.push((w, c));
            rest = r;
        }
        if threads > 1 && parts.len() > 1 {
            // on the spinning team when one runs (sequences dealt round-robin), else rayon's
            let cells: Vec<Mutex<(&[usize], &mut [f32])>> =
                parts.into_iter().map(Mutex::new).collect();
            let job = |j: usize| {
                TEAM_ATTN.with(|s| {
                    let s = &mut *s.borrow_mut();
                    for cell in cells.iter().skip(j).step_by(threads) {
                        let mut p = cell.lock().unwrap_or_else(|e| e.into_inner());
                        let (w, c) = &mut *p;
                        one((*w, &mut **c), s);
                    }
                })
            };
            if !kernels::on_team(threads, &job) {
                cells
                    .into_par_iter()
                    .for_each_init(AttnScratch::default, |s, cell| {
                        let p = cell.into_inner().unwrap_or_else(|e| e.into_inner());
                        one(p, s)
                    });
            }
        } else {
            for p in parts {
                one(p, scratch);
            }
        }
    }
}

thread_local! {
    /// The attention scratch of each thread of a spinning team (kept across layers and passes).
    static TEAM_ATTN: RefCell<AttnScratch> = RefCell::new(AttnScratch::default());
}

/// Below this many token rows an f32 or int8 layer on several threads is split by output
/// columns: each thread reads only its columns' weights, and a product of few rows (one
/// comment's tokens) is bound by reading them. One comment: 1.35-1.5x faster on 2 threads; a batch of 8
/// (200-400 rows) the same as by rows; batches of 32 (1,600 rows) 2-4% slower by columns, so
/// they keep the rows (benches/results/serve_columns_20261207.md).
const COLUMNS_BELOW: usize = 512;

/// One linear layer on `threads` threads of the current rayon pool: split by output columns
/// (f32 and int8, fewer than [`COLUMNS_BELOW`] rows) or by rows.
fn par_linear(x: &[f32], m: usize, w: &Linear, out: &mut [f32], ep: Epilogue, threads: usize) {
    if threads > 1 && m < COLUMNS_BELOW {
        match w {
            Linear::F32(l) => return kernels::linear_cols(x, m, l, out, ep, threads),
            Linear::I8(l) => return kernels::qlinear_cols(x, m, l, out, ep, threads),
            Linear::Bf16(_) => {}
        }
    }
    let rows = m.div_ceil(threads.max(1)).div_ceil(kernels::MR) * kernels::MR;
    if threads <= 1 || m < 2 * kernels::MR * 4 {
        w.run(x, m, out, ep);
        return;
    }
    let (k, n) = (w.k(), w.n());
    let jobs: Vec<(usize, &mut [f32])> = out.chunks_mut(rows * n).enumerate().collect();
    jobs.into_par_iter().for_each(|(j, o)| {
        let r0 = j * rows;
        let r = o.len() / n;
        let e = match ep {
            Epilogue::BiasResidual(res) => Epilogue::BiasResidual(&res[r0 * n..(r0 + r) * n]),
            other => other,
        };
        w.run(&x[r0 * k..(r0 + r) * k], r, o, e);
    });
}

/// Mean pooling of one sequence's `len x h` rows, then L2 normalisation.
fn pool(rows: &[f32], h: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; h];
    for row in rows.chunks_exact(h) {
        for (o, &val) in v.iter_mut().zip(row) {
            *o += val;
        }
    }
    let n = (rows.len() / h) as f32;
    v.iter_mut().for_each(|o| *o /= n);
    let norm = v.iter().map(|o| o * o).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|o| *o /= norm);
    v
}
