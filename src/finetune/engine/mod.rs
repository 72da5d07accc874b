//! The training engine on the project's own kernels: forward with saved activations and
//! backward of the tuned BERT layers on the packed real tokens of a batch (no padding), mean
//! pooling, the heads with cross-entropy and the anchor term, dropout with the same seeded masks
//! as the candle path, gradient accumulation over micro-batches, and AdamW fused over all
//! parameters with global-norm clipping.
//!
//! The parameters are the candle path's ([`Params`]) in the same order and layout, copied in at
//! the start and written back for evaluation, checkpoints and the outputs, so checkpoints,
//! overlays and heads are the same files whichever engine ran the steps.

pub(super) mod layer;
pub(super) mod ops;

#[cfg(test)]
mod tests;

use super::model::{Params, TaskLogits, PARTS};
use super::{Example, FinetuneConfig, TaskSpec};
use crate::encode::kernels::train::{adamw_update, dropout_scales, sum_squares, AdamW};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::Tensor;
use layer::Shape;
use rayon::prelude::*;

/// Which engine runs the training steps of `vocmine train --finetune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The project's own kernels (CPU with AVX2 + FMA), the default.
    #[default]
    Own,
    /// The own engine with the linear layers' products on bf16 operands and f32 sums
    /// (AVX512-BF16 only): faster where the CPU runs `vdpbf16ps` at full width (AMD Zen 4/5),
    /// not where it runs it at half (Intel without AMX); an option, never the default.
    Bf16,
    /// candle's autograd (the reference; also the engine on a GPU).
    Candle,
}

impl Engine {
    /// Whether the steps run on the own kernels (f32 or bf16 products).
    pub fn is_own(self) -> bool {
        matches!(self, Engine::Own | Engine::Bf16)
    }
}

impl std::str::FromStr for Engine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Engine> {
        match s {
            "own" => Ok(Engine::Own),
            "bf16" => Ok(Engine::Bf16),
            "candle" => Ok(Engine::Candle),
            _ => Err(Error::Invalid(format!(
                "engine {s:?}: expected \"own\", \"bf16\" or \"candle\""
            ))),
        }
    }
}

/// How the own engine runs: texts per forward/backward pass (a larger batch accumulates the
/// gradients of several passes before the optimiser step; 0 = the whole batch at once).
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineOptions {
    /// The engine.
    pub engine: Engine,
    /// Texts per pass (gradient accumulation above it); 0 = the whole batch.
    pub micro_batch: usize,
}

/// The own engine's state: every parameter, AdamW's moments, in [`Params`] order.
pub(super) struct OwnEngine {
    shape: Shape,
    products: ops::Products,
    layers: usize,
    heads_from: usize,
    w: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    dims: Vec<Vec<usize>>,
    /// Per task: index of its first head parameter and whether it has a hidden layer.
    head_at: Vec<(usize, bool)>,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

/// One batch's loss and the gradients of the parameters it touches (`None`: untouched).
pub(super) struct Grads {
    pub(super) loss: f64,
    pub(super) g: Vec<Option<Vec<f32>>>,
}

/// Keeps freed buffers in glibc's heap: a step allocates and frees hundreds of MB of activations,
/// which glibc would otherwise return to the kernel and fault back in (zeroed) on every step, a
/// fifth of the step's time. Buffers up to 32 MiB (every activation of a batch of 32 texts of
/// 128 tokens) then come from the heap, and the heap is never trimmed.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only sets two of glibc's allocation thresholds (valid values).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

impl OwnEngine {
    /// Copies the parameters and moments of `p` in; the linear layers' products as `products`
    /// says (bf16: an error on a CPU without AVX512-BF16).
    pub(super) fn new(
        p: &Params,
        shape: Shape,
        tasks: &[TaskSpec],
        products: ops::Products,
    ) -> Result<OwnEngine> {
        if products == ops::Products::Bf16 && !crate::encode::kernels::has_avx512_bf16() {
            return Err(Error::Invalid(
                "--engine bf16 needs a CPU with AVX512-BF16 (this one has none): use --engine own"
                    .into(),
            ));
        }
        keep_freed_memory();
        let mut w = Vec::new();
        let mut m = Vec::new();
        let mut v = Vec::new();
        let mut dims = Vec::new();
        for (i, var) in p.vars.iter().enumerate() {
            w.push(to_vec(var.as_tensor())?);
            m.push(to_vec(&p.m[i])?);
            v.push(to_vec(&p.v[i])?);
            dims.push(var.as_tensor().dims().to_vec());
        }
        let mut head_at = Vec::new();
        let mut i = p.heads_from;
        for t in tasks {
            head_at.push((i, t.hidden > 0));
            i += if t.hidden > 0 { 4 } else { 2 };
        }
        if i != w.len() || !p.heads_from.is_multiple_of(PARTS.len()) {
            return Err(Error::Invalid(
                "the parameters do not match the tasks' heads".into(),
            ));
        }
        Ok(OwnEngine {
            shape,
            products,
            layers: p.heads_from / PARTS.len(),
            heads_from: p.heads_from,
            w,
            m,
            v,
            dims,
            head_at,
        })
    }

    /// Writes the parameters and moments back into `p` (on its device).
    pub(super) fn write_back(&self, p: &mut Params) -> Result<()> {
        for i in 0..self.w.len() {
            let dev = p.vars[i].as_tensor().device().clone();
            let mk = |x: &[f32]| Tensor::from_slice(x, self.dims[i].as_slice(), &dev);
            p.vars[i].set(&mk(&self.w[i])?)?;
            p.m[i] = mk(&self.m[i])?;
            p.v[i] = mk(&self.v[i])?;
        }
        Ok(())
    }

    /// Copies the parameters of `p` in (the moments stay): the kept weights, to evaluate them.
    pub(super) fn read_weights(&mut self, p: &Params) -> Result<()> {
        for (w, var) in self.w.iter_mut().zip(&p.vars) {
            *w = to_vec(var.as_tensor())?;
        }
        Ok(())
    }

    /// The dropout scales of a batch: per layer, the attention output's then the feed-forward
    /// output's, drawn over the padded `(texts, longest, hidden)` layout in the candle path's
    /// order and kept for the real tokens (packed rows).
    fn masks(&self, lens: &[usize], p: f64, rng: &mut Rng) -> Vec<Option<Vec<f32>>> {
        let n = 2 * self.layers;
        if p <= 0.0 {
            return vec![None; n];
        }
        let h = self.shape.h;
        let keep = 1.0 - p;
        let scale = (1.0 / keep) as f32;
        let longest = lens.iter().copied().max().unwrap_or(0);
        let total: usize = lens.iter().sum();
        // each text's block of the stream is drawn on its own (SplitMix64 skips ahead), only its
        // real positions: the same values as one draw after another over the padded layout
        let start = rng.clone();
        let padded = (longest * h) as u64;
        let masks: Vec<Option<Vec<f32>>> = (0..n)
            .into_par_iter()
            .map(|l| {
                let mut m = vec![0f32; total * h];
                let mut parts = Vec::with_capacity(lens.len());
                let mut rest = &mut m[..];
                for &len in lens {
                    let (a, b) = std::mem::take(&mut rest).split_at_mut(len * h);
                    parts.push(a);
                    rest = b;
                }
                parts.into_par_iter().enumerate().for_each(|(i, part)| {
                    let r = start.skip((l * lens.len() + i) as u64 * padded);
                    dropout_scales(&r, part, keep, scale);
                });
                Some(m)
            })
            .collect();
        *rng = start.skip((n * lens.len()) as u64 * padded);
        masks
    }

    /// Loss and gradients of one batch (all of task `task`), the forward/backward passes run
    /// on micro-batches of at most `micro` texts (0 = all) whose gradients are summed.
    pub(super) fn loss_and_grads(
        &self,
        ex: &[&Example],
        task: usize,
        spec: &TaskSpec,
        dropout: f64,
        rng: &mut Rng,
        micro: usize,
    ) -> Result<Grads> {
        let h = self.shape.h;
        let lens: Vec<usize> = ex.iter().map(|e| e.len(h)).collect();
        if lens.contains(&0) {
            return Err(Error::Invalid("an example without tokens".into()));
        }
        let masks = self.masks(&lens, dropout, rng);
        let packed: Vec<_> = (0..self.layers)
            .into_par_iter()
            .map(|l| {
                layer::Packed::new(
                    &self.w[l * PARTS.len()..(l + 1) * PARTS.len()],
                    self.shape,
                    self.products,
                )
            })
            .collect();
        let mut g: Vec<Option<Vec<f32>>> = vec![None; self.w.len()];
        for (i, gi) in g.iter_mut().enumerate().take(self.heads_from) {
            *gi = Some(vec![0f32; self.w[i].len()]);
        }
        let (hs, hidden) = self.head_at[task];
        for (i, gi) in g
            .iter_mut()
            .enumerate()
            .skip(hs)
            .take(if hidden { 4 } else { 2 })
        {
            *gi = Some(vec![0f32; self.w[i].len()]);
        }
        // the relation anchor couples the texts of a batch: no accumulation then
        let micro = if micro == 0 || (spec.anchored() && spec.anchor_relations) {
            ex.len()
        } else {
            micro
        };
        let n = ex.len();
        let mut loss = 0f64;
        if micro >= n {
            // one micro-batch: the masks as they are
            loss = self.pass(ex, &lens, task, spec, n, &packed, masks, &mut g)?;
            return Ok(Grads { loss, g });
        }
        let mut row0 = 0;
        for (c, chunk) in ex.chunks(micro).enumerate() {
            let clens = &lens[c * micro..c * micro + chunk.len()];
            let rows: usize = clens.iter().sum();
            let cm: Vec<_> = masks
                .iter()
                .map(|m| m.as_ref().map(|m| m[row0 * h..(row0 + rows) * h].to_vec()))
                .collect();
            loss += self.pass(chunk, clens, task, spec, n, &packed, cm, &mut g)?;
            row0 += rows;
        }
        Ok(Grads { loss, g })
    }

    /// Forward and backward of one micro-batch; the loss terms are divided by `n` (the whole
    /// batch's size). Returns this micro-batch's share of the loss.
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        ex: &[&Example],
        lens: &[usize],
        task: usize,
        spec: &TaskSpec,
        n: usize,
        packed: &[layer::Packed],
        masks: Vec<Option<Vec<f32>>>,
        g: &mut [Option<Vec<f32>>],
    ) -> Result<f64> {
        let h = self.shape.h;
        let mut offsets = vec![0usize];
        for l in lens {
            offsets.push(offsets[offsets.len() - 1] + l);
        }
        let mut x = Vec::with_capacity(offsets[offsets.len() - 1] * h);
        for e in ex {
            x.extend_from_slice(&e.states);
        }
        let mut saved = Vec::with_capacity(self.layers);
        let mut masks = masks.into_iter();
        for (l, pk) in packed.iter().enumerate() {
            let p = &self.w[l * PARTS.len()..(l + 1) * PARTS.len()];
            let ms = (masks.next().flatten(), masks.next().flatten());
            let (out, sv) = layer::forward(x, pk, p, self.shape, &offsets, ms);
            saved.push(sv);
            x = out;
        }
        let b = ex.len();
        let (pooled, norms) = mean_pool(&x, &offsets, h);
        let (loss, dp) = self.head_loss(ex, task, spec, n, &pooled, g)?;
        // back through the pooling: every real token of text i gets du_i / len_i
        let mut d = vec![0f32; x.len()];
        for i in 0..b {
            let pr = &pooled[i * h..(i + 1) * h];
            let dpi = &dp[i * h..(i + 1) * h];
            let dot: f32 = pr.iter().zip(dpi).map(|(a, b)| a * b).sum();
            let s = 1.0 / (norms[i] * lens[i] as f32);
            let du: Vec<f32> = if norms[i] > 1e-12 {
                pr.iter().zip(dpi).map(|(p, d)| (d - p * dot) * s).collect()
            } else {
                dpi.iter().map(|d| d * s).collect()
            };
            for row in d[offsets[i] * h..offsets[i + 1] * h].chunks_mut(h) {
                row.copy_from_slice(&du);
            }
        }
        drop(x);
        for l in (0..self.layers).rev() {
            let sv = saved
                .pop()
                .ok_or_else(|| Error::Invalid("no saved layer".into()))?;
            let p = &self.w[l * PARTS.len()..(l + 1) * PARTS.len()];
            let mut lg: Vec<Vec<f32>> = g[l * PARTS.len()..(l + 1) * PARTS.len()]
                .iter_mut()
                .map(|x| x.take().unwrap_or_default())
                .collect();
            let dx = layer::backward(
                d,
                sv,
                p,
                self.shape,
                self.products,
                &offsets,
                &mut lg,
                l > 0,
            );
            for (slot, v) in g[l * PARTS.len()..(l + 1) * PARTS.len()].iter_mut().zip(lg) {
                *slot = Some(v);
            }
            match dx {
                Some(dx) => d = dx,
                None => break,
            }
        }
        Ok(loss)
    }

    /// The head of `task` on `pooled` (b x h): the logits and (for
    /// a hidden layer) the GELU's outputs and derivatives for the backward pass.
    #[allow(clippy::type_complexity)]
    fn head_logits(&self, task: usize, pooled: &[f32]) -> (Vec<f32>, Option<(Vec<f32>, Vec<f32>)>) {
        let h = self.shape.h;
        let (hs, hidden) = self.head_at[task];
        let z1 = dense(pooled, &self.w[hs], &self.w[hs + 1], h);
        if !hidden {
            return (z1, None);
        }
        let k1 = self.w[hs + 1].len();
        let mut a = vec![0f32; z1.len()];
        let mut c = vec![0f32; z1.len()];
        ops::gelu(&z1, &mut a, &mut c);
        let logits = dense(&a, &self.w[hs + 2], &self.w[hs + 3], k1);
        (logits, Some((a, c)))
    }

    /// Dev accuracy and logits of every task, as the candle path's `Model::evaluate` computes
    /// them (each task's texts sorted by length, 64 at a time, no dropout), on the packed f32
    /// kernels whatever the steps' products: at 12 tuned layers candle's padded forward made
    /// each evaluation of a multi-task dev set take minutes.
    pub(super) fn evaluate(
        &self,
        dev: &[Example],
        tasks: &[TaskSpec],
    ) -> Result<(Vec<f64>, Vec<TaskLogits>)> {
        let h = self.shape.h;
        let packed: Vec<_> = (0..self.layers)
            .into_par_iter()
            .map(|l| {
                let p = &self.w[l * PARTS.len()..(l + 1) * PARTS.len()];
                layer::Packed::new(p, self.shape, ops::Products::F32)
            })
            .collect();
        let mut acc = Vec::new();
        let mut out = Vec::new();
        for (t, spec) in tasks.iter().enumerate() {
            let mut idx: Vec<usize> = (0..dev.len()).filter(|&i| dev[i].task == t).collect();
            if idx.is_empty() {
                return Err(Error::Invalid(format!(
                    "task {}: no dev examples",
                    spec.name
                )));
            }
            idx.sort_by_key(|&i| (dev[i].len(h), i));
            let k = spec.labels.len();
            let mut logits = Vec::with_capacity(idx.len() * k);
            let mut labels = Vec::with_capacity(idx.len());
            for chunk in idx.chunks(64) {
                let ex: Vec<&Example> = chunk.iter().map(|&i| &dev[i]).collect();
                let mut offsets = vec![0usize];
                for e in &ex {
                    offsets.push(offsets[offsets.len() - 1] + e.len(h));
                }
                if offsets.windows(2).any(|w| w[0] == w[1]) {
                    return Err(Error::Invalid("an example without tokens".into()));
                }
                let mut x = Vec::with_capacity(offsets[offsets.len() - 1] * h);
                for e in &ex {
                    x.extend_from_slice(&e.states);
                }
                for (l, pk) in packed.iter().enumerate() {
                    let p = &self.w[l * PARTS.len()..(l + 1) * PARTS.len()];
                    x = layer::forward(x, pk, p, self.shape, &offsets, (None, None)).0;
                }
                let (pooled, _) = mean_pool(&x, &offsets, h);
                logits.extend(self.head_logits(t, &pooled).0);
                labels.extend(ex.iter().map(|e| e.label));
            }
            let hits = logits
                .chunks(k)
                .zip(&labels)
                .filter(|(row, &y)| {
                    // the first largest, as candle's argmax
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
                    best == y
                })
                .count();
            acc.push(hits as f64 / labels.len() as f64);
            let n = labels.len();
            let tensor = Tensor::from_vec(logits, (n, k), &candle_core::Device::Cpu)?;
            out.push((tensor, labels));
        }
        Ok((acc, out))
    }

    /// The head of `task` on `pooled` (b x h): cross-entropy (mean over the whole batch of `n`)
    /// plus the anchor term; adds the head's gradients to `g` and returns the loss share and
    /// the gradient of `pooled`.
    fn head_loss(
        &self,
        ex: &[&Example],
        task: usize,
        spec: &TaskSpec,
        n: usize,
        pooled: &[f32],
        g: &mut [Option<Vec<f32>>],
    ) -> Result<(f64, Vec<f32>)> {
        let h = self.shape.h;
        let hs = self.head_at[task].0;
        // backward of a linear layer: adds dW, db; returns dx
        let lin_back =
            |dy: &[f32], x: &[f32], w: &[f32], k: usize, gw: &mut [f32], gb: &mut [f32]| {
                let out = gb.len();
                let mut dx = vec![0f32; x.len()];
                for ((dyr, xr), dxr) in dy.chunks(out).zip(x.chunks(k)).zip(dx.chunks_mut(k)) {
                    for o in 0..out {
                        gb[o] += dyr[o];
                        let gwr = &mut gw[o * k..(o + 1) * k];
                        gwr.iter_mut().zip(xr).for_each(|(a, x)| *a += dyr[o] * x);
                        let wr = &w[o * k..(o + 1) * k];
                        dxr.iter_mut().zip(wr).for_each(|(a, w)| *a += dyr[o] * w);
                    }
                }
                dx
            };
        let (logits, act) = self.head_logits(task, pooled);
        let k1 = self.w[hs + 1].len();
        let k = spec.labels.len();
        let mut loss = 0f64;
        let mut dl = vec![0f32; logits.len()];
        for (i, e) in ex.iter().enumerate() {
            let row = &logits[i * k..(i + 1) * k];
            if e.label >= k {
                return Err(Error::Invalid(format!(
                    "label index {} outside the task's {k} labels",
                    e.label
                )));
            }
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            let lse = max + sum.ln();
            loss -= (row[e.label] - lse) as f64 / n as f64;
            for j in 0..k {
                let p = (row[j] - lse).exp();
                dl[i * k + j] = (p - if j == e.label { 1.0 } else { 0.0 }) / n as f32;
            }
        }
        let dz1 = if let Some((a, c)) = act {
            let mut gw2 = g[hs + 2].take().unwrap_or_default();
            let mut gb2 = g[hs + 3].take().unwrap_or_default();
            let mut da = lin_back(&dl, &a, &self.w[hs + 2], k1, &mut gw2, &mut gb2);
            g[hs + 2] = Some(gw2);
            g[hs + 3] = Some(gb2);
            ops::gelu_back(&mut da, &c);
            da
        } else {
            dl
        };
        let mut gw1 = g[hs].take().unwrap_or_default();
        let mut gb1 = g[hs + 1].take().unwrap_or_default();
        let mut dp = lin_back(&dz1, pooled, &self.w[hs], h, &mut gw1, &mut gb1);
        g[hs] = Some(gw1);
        g[hs + 1] = Some(gb1);
        if spec.anchored() {
            loss += anchor(spec, ex, pooled, h, n, &mut dp)?;
        }
        Ok((loss, dp))
    }

    /// One AdamW step (0-based `step`) from `grads`, fused over every parameter that has a
    /// gradient: global-norm clipping to `cfg.clip`, `lr` for the layers and `head_lr` for the
    /// heads, decoupled weight decay on matrices. The same arithmetic as the candle path.
    pub(super) fn adamw(
        &mut self,
        grads: &Grads,
        step: usize,
        cfg: &FinetuneConfig,
        lr: f64,
        head_lr: f64,
    ) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f32);
        // per-parameter sums in parallel, added in a fixed order (the same bits every run)
        let sums: Vec<f64> = grads
            .g
            .par_iter()
            .flatten()
            .map(|g| sum_squares(g))
            .collect();
        let sq: f64 = sums.iter().sum();
        let scale = if cfg.clip > 0.0 {
            (cfg.clip / (sq.sqrt() + 1e-6)).min(1.0)
        } else {
            1.0
        } as f32;
        let t = (step + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let (ic1, ic2) = ((1.0 / c1) as f32, (1.0 / c2) as f32);
        let (b1f, b2f, o1, o2) = (b1 as f32, b2 as f32, (1.0 - b1) as f32, (1.0 - b2) as f32);
        let heads_from = self.heads_from;
        let wd = cfg.weight_decay;
        self.w
            .par_iter_mut()
            .zip(self.m.par_iter_mut())
            .zip(self.v.par_iter_mut())
            .zip(grads.g.par_iter())
            .zip(self.dims.par_iter())
            .enumerate()
            .for_each(|(i, ((((w, m), v), g), dims))| {
                let Some(g) = g else { return };
                let lr = if i < heads_from { lr } else { head_lr };
                let decay = if dims.len() >= 2 && wd > 0.0 {
                    (1.0 - lr * wd) as f32
                } else {
                    1.0
                };
                let a = AdamW {
                    scale,
                    b1: b1f,
                    b2: b2f,
                    o1,
                    o2,
                    ic1,
                    ic2,
                    eps,
                    decay,
                    lr: lr as f32,
                };
                // in chunks of 64k values, so that the threads share a large matrix
                w.par_chunks_mut(1 << 16)
                    .zip(m.par_chunks_mut(1 << 16))
                    .zip(v.par_chunks_mut(1 << 16))
                    .zip(g.par_chunks(1 << 16))
                    .for_each(|(((w, m), v), g)| adamw_update(w, m, v, g, &a));
            });
    }
}

/// The anchor term on `pooled` (b x h) with the whole batch's size `n`: adds its gradient to
/// `dp` and returns its value (see [`super::anchor_term`]).
/// `y = x W^T + b` for the small head layers: `x` rows of `k`, `w` row-major `bias.len() x k`.
fn dense(x: &[f32], w: &[f32], bias: &[f32], k: usize) -> Vec<f32> {
    let out = bias.len();
    let mut y = vec![0f32; x.len() / k * out];
    for (xr, yr) in x.chunks(k).zip(y.chunks_mut(out)) {
        for o in 0..out {
            let wr = &w[o * k..(o + 1) * k];
            yr[o] = bias[o] + xr.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>();
        }
    }
    y
}

/// Mean pooling of each text's rows (`offsets`) then L2 normalisation: the pooled rows and
/// each text's norm before normalising (for the backward pass).
fn mean_pool(x: &[f32], offsets: &[usize], h: usize) -> (Vec<f32>, Vec<f32>) {
    let b = offsets.len() - 1;
    let mut pooled = vec![0f32; b * h];
    let mut norms = vec![0f32; b];
    for i in 0..b {
        let pr = &mut pooled[i * h..(i + 1) * h];
        for row in x[offsets[i] * h..offsets[i + 1] * h].chunks(h) {
            pr.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
        let len = (offsets[i + 1] - offsets[i]) as f32;
        pr.iter_mut().for_each(|a| *a /= len);
        let norm = pr.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
        pr.iter_mut().for_each(|a| *a /= norm);
        norms[i] = norm;
    }
    (pooled, norms)
}

fn anchor(
    spec: &TaskSpec,
    ex: &[&Example],
    pooled: &[f32],
    h: usize,
    n: usize,
    dp: &mut [f32],
) -> Result<f64> {
    for e in ex {
        if e.anchor.len() != h {
            return Err(Error::Invalid(
                "anchor > 0 needs the base embedding of every training text".into(),
            ));
        }
    }
    let nf = n as f32;
    if spec.anchor_relations {
        let w: Vec<f32> = ex
            .iter()
            .map(|e| spec.anchor_of(e.label).sqrt() as f32)
            .collect();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let mut loss = 0f64;
        let b = ex.len();
        let mut cw = vec![0f32; b * b];
        for i in 0..b {
            for j in 0..b {
                let pi = &pooled[i * h..(i + 1) * h];
                let pj = &pooled[j * h..(j + 1) * h];
                let c = dot(pi, pj) - dot(&ex[i].anchor, &ex[j].anchor);
                let wij = w[i] * w[j];
                loss += (c * c * wij) as f64;
                cw[i * b + j] = c * wij;
            }
        }
        for i in 0..b {
            for j in 0..b {
                let s = 4.0 * cw[i * b + j] / nf;
                let pj = &pooled[j * h..(j + 1) * h];
                dp[i * h..(i + 1) * h]
                    .iter_mut()
                    .zip(pj)
                    .for_each(|(d, p)| *d += s * p);
            }
        }
        return Ok(loss / n as f64);
    }
    let mut loss = 0f64;
    for (i, e) in ex.iter().enumerate() {
        let w = spec.anchor_of(e.label) as f32;
        let pr = &pooled[i * h..(i + 1) * h];
        let mut s = 0f32;
        for j in 0..h {
            let diff = pr[j] - e.anchor[j];
            s += diff * diff;
            dp[i * h + j] += 2.0 * w * diff / nf;
        }
        loss += (w * s) as f64 / n as f64;
    }
    Ok(loss)
}
