//! The trainable part of a fine-tuning run: the top encoder layers and the heads as candle
//! variables, their forward pass from the cached frozen-layer states, one AdamW step, and the
//! batching plan of an epoch.

use super::{Example, FinetuneConfig, FinetuneInput, TaskSpec};
use crate::classify;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var, D};
use candle_transformers::models::bert::Config;

pub(super) const PARTS: [&str; 16] = [
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
];

/// The trainable state: tuned layers, heads, and AdamW's moments.
pub(super) struct Params {
    /// Parameter names: the base's tensor names for the layers, `head.TASK.*` for the heads.
    pub(super) names: Vec<String>,
    pub(super) vars: Vec<Var>,
    /// Index of the first head parameter in `vars`.
    pub(super) heads_from: usize,
    /// AdamW's first moments, one per parameter.
    pub(super) m: Vec<Tensor>,
    /// AdamW's second moments.
    pub(super) v: Vec<Tensor>,
}

impl Params {
    /// The starting point: the top `cfg.layers` layers of the base weights (with the overlay
    /// merged over them), then per task its initial head or a seeded random one; moments zero.
    pub(super) fn new(input: &FinetuneInput, cfg: &FinetuneConfig) -> Result<Params> {
        let dev = &input.device;
        let h = input.config.hidden_size;
        let depth = input.config.num_hidden_layers;
        let first = depth - cfg.layers;
        let mut base = candle_core::safetensors::load(input.weights, &Device::Cpu)?;
        if let Some(o) = input.overlay {
            base.extend(candle_core::safetensors::load(o, &Device::Cpu)?);
        }
        let prefix = if base.contains_key("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let mut names = Vec::new();
        let mut vars = Vec::new();
        for l in first..depth {
            for part in PARTS {
                let name = format!("{prefix}encoder.layer.{l}.{part}");
                let t = base.get(&name).ok_or_else(|| {
                    Error::model(input.weights, format!("tensor {name} is missing"))
                })?;
                vars.push(Var::from_tensor(&t.to_dtype(DType::F32)?.to_device(dev)?)?);
                names.push(name);
            }
        }
        drop(base);
        let heads_from = vars.len();
        let mut rng = Rng::new(cfg.seed);
        for (ti, spec) in input.tasks.iter().enumerate() {
            if let Some(Some(head)) = input.init_heads.get(ti) {
                if head.meta.labels != spec.labels || head.meta.hidden != spec.hidden {
                    return Err(Error::Invalid(format!(
                        "task {}: the initial head's labels or width differ from the task's",
                        spec.name
                    )));
                }
                let mut parts = vec![head.w1.clone(), head.b1.clone()];
                parts.extend(head.w2.clone());
                parts.extend(head.b2.clone());
                for (j, t) in parts.iter().enumerate() {
                    vars.push(Var::from_tensor(&t.to_dtype(DType::F32)?.to_device(dev)?)?);
                    names.push(format!("head.{}.{j}", spec.name));
                }
                continue;
            }
            let k = spec.labels.len();
            let dims: Vec<(usize, usize)> = if spec.hidden > 0 {
                vec![(spec.hidden, h), (k, spec.hidden)]
            } else {
                vec![(k, h)]
            };
            for (j, (out, inp)) in dims.into_iter().enumerate() {
                let (w, b) = classify::init(&mut rng, out, inp)?;
                vars.push(Var::from_tensor(&w.as_tensor().to_device(dev)?)?);
                vars.push(Var::from_tensor(&b.as_tensor().to_device(dev)?)?);
                names.push(format!("head.{}.w{}", spec.name, j + 1));
                names.push(format!("head.{}.b{}", spec.name, j + 1));
            }
        }
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let m = vars
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = vars
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Params {
            names,
            vars,
            heads_from,
            m,
            v,
        })
    }

    /// A copy of every parameter's current value (the kept "best" weights).
    pub(super) fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self
            .vars
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    /// One AdamW step (step `step`, 0-based) from `grads`: the gradients are clipped to a
    /// global norm of `cfg.clip`, the layers move at `lr` and the heads at `head_lr`, and
    /// matrices decay by `lr * weight_decay` (decoupled).
    pub(super) fn adamw_step(
        &mut self,
        grads: &GradStore,
        step: usize,
        cfg: &FinetuneConfig,
        lr: f64,
        head_lr: f64,
    ) -> Result<()> {
        let (b1, b2, adam_eps) = (0.9f64, 0.999f64, 1e-8f64);
        // global gradient norm over every parameter that has a gradient
        let gs: Vec<Option<Tensor>> = self
            .vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        // one read-back per step, not one per parameter (each is a device sync on a GPU)
        let sums = gs
            .iter()
            .flatten()
            .map(|g| g.sqr()?.sum_all()?.to_dtype(DType::F64))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let sq = if sums.is_empty() {
            0.0
        } else {
            Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f64>()?
        };
        let scale = if cfg.clip > 0.0 {
            (cfg.clip / (sq.sqrt() + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let t = (step + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (i, g) in gs.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let g = (g * scale)?;
            let lr = if i < self.heads_from { lr } else { head_lr };
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&m / c1)? / ((&v / c2)?.sqrt()? + adam_eps)?)?;
            let w = self.vars[i].as_tensor();
            let decayed = if w.rank() >= 2 && cfg.weight_decay > 0.0 {
                (w * (1.0 - lr * cfg.weight_decay))?
            } else {
                w.clone()
            };
            self.vars[i].set(&(decayed - (upd * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

fn lin(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(&w.t()?)?.broadcast_add(b)
}

/// Inverted dropout with a seeded mask, so runs and resumes are reproducible. On the CPU the mask
/// comes from our own generator (candle's CPU RNG cannot be seeded); on a GPU it is drawn on the
/// device from the device generator, which `Model::pooled` seeds from `rng` once per batch
/// (drawing tens of millions of numbers on the host and copying them over would cost more than
/// the step itself).
fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    if !x.device().is_cpu() {
        let u = Tensor::rand(0f32, 1f32, x.shape(), x.device())?;
        let mask = (u.ge(p)?.to_dtype(DType::F32)? * (1.0 / keep))?;
        return Ok(x.mul(&mask)?);
    }
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.next_f64() < keep {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    Ok(x.mul(&mask)?)
}

/// One task's dev logits and gold labels.
pub(super) type TaskLogits = (Tensor, Vec<usize>);

/// The tuned top of the encoder plus the heads, as candle tensors on `device`.
pub(super) struct Model<'a> {
    pub(super) cfg: &'a Config,
    pub(super) tasks: &'a [TaskSpec],
    pub(super) device: Device,
    pub(super) p: Params,
}

impl Model<'_> {
    fn layer_count(&self) -> usize {
        self.p.heads_from / PARTS.len()
    }

    fn var(&self, layer: usize, part: usize) -> &Tensor {
        self.p.vars[layer * PARTS.len() + part].as_tensor()
    }

    /// Head parameters of task `t`: (w1, b1, w2, b2).
    pub(super) fn head(&self, t: usize) -> (Tensor, Tensor, Option<Tensor>, Option<Tensor>) {
        let mut i = self.p.heads_from;
        for (k, spec) in self.tasks.iter().enumerate() {
            let n = if spec.hidden > 0 { 4 } else { 2 };
            if k == t {
                let g = |j: usize| self.p.vars[i + j].as_tensor().clone();
                return if n == 4 {
                    (g(0), g(1), Some(g(2)), Some(g(3)))
                } else {
                    (g(0), g(1), None, None)
                };
            }
            i += n;
        }
        unreachable!("task index out of range")
    }

    /// Pooled, L2-normalised embeddings of a batch: `x` (b, t, h) after the frozen layers,
    /// `mask` (b, t) of 1 for real tokens. Without `drop` (evaluation) the layers run on
    /// detached weights, so no autograd graph holds every layer's intermediates (gigabytes at
    /// full depth).
    pub(super) fn pooled(
        &self,
        x: &Tensor,
        mask: &Tensor,
        drop: Option<(f64, &mut Rng)>,
    ) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let d = h / heads;
        let eps = self.cfg.layer_norm_eps as f32;
        let add_mask = ((mask.ones_like()? - mask)? * -1e9)?.reshape((b, 1, 1, t))?;
        let mut drop = drop;
        if let Some((_, rng)) = drop.as_mut() {
            if !self.device.is_cpu() {
                self.device.set_seed(rng.next_u64())?;
            }
        }
        let mut x2 = x.reshape((b * t, h))?;
        let track = drop.is_some();
        for l in 0..self.layer_count() {
            let weights: Vec<Tensor> = (0..PARTS.len())
                .map(|i| {
                    let v = self.var(l, i);
                    if track {
                        v.clone()
                    } else {
                        v.detach()
                    }
                })
                .collect();
            let w = |i: usize| &weights[i];
            let split = |y: Tensor| -> candle_core::Result<Tensor> {
                y.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
            };
            let q = split(lin(&x2, w(0), w(1))?)?;
            let k = split(lin(&x2, w(2), w(3))?)?;
            let v = split(lin(&x2, w(4), w(5))?)?;
            let s = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(&add_mask)?;
            let p = candle_nn::ops::softmax(&s, D::Minus1)?;
            let c = p
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, h))?;
            let mut o = lin(&c, w(6), w(7))?;
            if let Some((pd, rng)) = drop.as_mut() {
                o = dropout(&o, *pd, rng)?;
            }
            let a = candle_nn::ops::layer_norm_slow(&(o + &x2)?, w(8), w(9), eps)?;
            let i = lin(&a, w(10), w(11))?.gelu_erf()?;
            let mut f = lin(&i, w(12), w(13))?;
            if let Some((pd, rng)) = drop.as_mut() {
                f = dropout(&f, *pd, rng)?;
            }
            x2 = candle_nn::ops::layer_norm_slow(&(f + a)?, w(14), w(15), eps)?;
        }
        let m = mask.reshape((b, t, 1))?;
        let summed = x2.reshape((b, t, h))?.broadcast_mul(&m)?.sum(1)?;
        let mean = summed.broadcast_div(&m.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?)
    }

    pub(super) fn logits(&self, task: usize, pooled: &Tensor) -> Result<Tensor> {
        let (w1, b1, w2, b2) = self.head(task);
        classify::head_forward(pooled, &w1, &b1, w2.as_ref(), b2.as_ref())
    }

    /// Pads a batch of examples into (b, t, h) states and a (b, t) mask.
    pub(super) fn batch(&self, ex: &[&Example]) -> Result<(Tensor, Tensor)> {
        let h = self.cfg.hidden_size;
        let t = ex.iter().map(|e| e.len(h)).max().unwrap_or(1).max(1);
        let mut x = vec![0f32; ex.len() * t * h];
        let mut m = vec![0f32; ex.len() * t];
        for (i, e) in ex.iter().enumerate() {
            x[i * t * h..i * t * h + e.states.len()].copy_from_slice(&e.states);
            m[i * t..i * t + e.len(h)].iter_mut().for_each(|v| *v = 1.0);
        }
        Ok((
            Tensor::from_vec(x, (ex.len(), t, h), &self.device)?,
            Tensor::from_vec(m, (ex.len(), t), &self.device)?,
        ))
    }

    /// Dev accuracy per task and each task's dev logits (rows in dev order of that task).
    pub(super) fn evaluate(&self, dev: &[Example]) -> Result<(Vec<f64>, Vec<TaskLogits>)> {
        let h = self.cfg.hidden_size;
        let mut out = Vec::new();
        let mut acc = Vec::new();
        for t in 0..self.tasks.len() {
            let mut idx: Vec<usize> = (0..dev.len()).filter(|&i| dev[i].task == t).collect();
            idx.sort_by_key(|&i| (dev[i].len(h), i));
            let mut rows = Vec::new();
            let mut labels = Vec::new();
            for chunk in idx.chunks(64) {
                let ex: Vec<&Example> = chunk.iter().map(|&i| &dev[i]).collect();
                let (x, m) = self.batch(&ex)?;
                let pooled = self.pooled(&x, &m, None)?;
                rows.push(self.logits(t, &pooled)?.detach());
                labels.extend(ex.iter().map(|e| e.label));
            }
            if rows.is_empty() {
                return Err(Error::Invalid(format!(
                    "task {}: no dev examples",
                    self.tasks[t].name
                )));
            }
            let logits = Tensor::cat(&rows, 0)?;
            let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            let hits = pred
                .iter()
                .zip(&labels)
                .filter(|(p, y)| **p as usize == **y)
                .count();
            acc.push(hits as f64 / labels.len() as f64);
            out.push((logits.to_device(&Device::Cpu)?, labels));
        }
        Ok((acc, out))
    }
}

/// Single-task batches of one epoch: each task's examples shuffled, cut into windows of 50
/// batches, sorted by length inside a window (little padding), cut into batches; then the
/// batches of all tasks shuffled together. Depends only on the seed and the epoch.
pub(super) fn epoch_batches(
    train: &[Example],
    tasks: usize,
    bs: usize,
    h: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(epoch as u64 + 1)));
    let mut batches = Vec::new();
    for t in 0..tasks {
        let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train[i].task == t).collect();
        rng.shuffle(&mut idx);
        for window in idx.chunks_mut(bs * 50) {
            window.sort_by_key(|&i| train[i].len(h));
            batches.extend(window.chunks(bs).map(<[usize]>::to_vec));
        }
    }
    rng.shuffle(&mut batches);
    batches
}
