//! Finetune: tunes the top transformer layers of the encoder together with one head per task
//! (multi-task), with candle's autograd.
//!
//! The lower layers stay frozen: their output for every training and dev text is computed
//! once by the packed engine ([`crate::encode::Encoder::hidden_states`]) and kept in memory,
//! so each step runs only the top `layers` layers forward and backward. The tuned layers are
//! saved under the base model's tensor names, as an overlay that the encoder merges over the
//! base weights at load time (scoring costs exactly what it cost before).
//!
//! Training: single-task batches of similar length (tasks mixed in proportion to their data),
//! AdamW with decoupled weight decay on matrices only, linear warm-up then linear decay,
//! global gradient-norm clipping, dropout on the layers' outputs, evaluation on dev (mean of the
//! tasks' accuracies) with early stopping, and checkpoints from which an interrupted run
//! resumes where it stopped, with the same result as an uninterrupted one.

use crate::classify::{self, fit_temperature, Head, HeadMeta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_transformers::models::bert::Config;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One labelled text, as the frozen lower layers left it.
pub struct Example {
    /// Index of its task in the task list.
    pub task: usize,
    /// Gold label index.
    pub label: usize,
    /// Hidden states after the frozen layers: `len x hidden`, row-major.
    pub states: Vec<f32>,
    /// The base (untuned) encoder's pooled, L2-normalised embedding of the text, which the
    /// anchor term holds the tuned embedding near; empty when `anchor` is 0.
    pub anchor: Vec<f32>,
}

impl Example {
    fn len(&self, h: usize) -> usize {
        self.states.len() / h
    }
}

/// A task to tune for: its name, labels and head width.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name (the head's name in the model).
    pub name: String,
    /// Labels in head order.
    pub labels: Vec<String>,
    /// Hidden width of the head (0 = linear).
    pub hidden: usize,
    /// Weight of the anchor term for this task's texts, where it differs from
    /// [`FinetuneConfig::anchor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<f64>,
}

/// Settings of a fine-tuning run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// How many top layers are tuned (the rest are frozen and cached).
    pub layers: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Texts per step.
    pub batch_size: usize,
    /// Peak learning rate of the encoder layers.
    pub lr: f64,
    /// Peak learning rate of the heads.
    pub head_lr: f64,
    /// Decoupled weight decay (matrices only).
    pub weight_decay: f64,
    /// Share of the steps spent warming the learning rate up from 0.
    pub warmup: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    /// Dropout on each layer's attention and feed-forward outputs.
    pub dropout: f64,
    /// Evaluate on dev every this many steps (0: once per epoch).
    pub eval_every: usize,
    /// Evaluations without dev improvement before stopping.
    pub patience: usize,
    /// Write a checkpoint every this many steps (and at every evaluation).
    pub checkpoint_every: usize,
    /// Seed of initialisation, batching and dropout.
    pub seed: u64,
    /// Stop after this many steps in this invocation (the checkpoint keeps the rest for a
    /// later resume); 0 = no limit.
    pub stop_after: usize,
    /// Weight of the anchor term: the mean squared distance between each training text's
    /// tuned embedding and the base encoder's (0 = off). It keeps the embedding geometry that
    /// the few-shot taxonomy heads and topic clustering rely on.
    pub anchor: f64,
}

impl FinetuneConfig {
    /// The settings that define the result (`stop_after` only splits the work).
    pub fn clone_without_stop(&self) -> FinetuneConfig {
        FinetuneConfig {
            stop_after: 0,
            ..self.clone()
        }
    }

    /// Checks the settings that need no model: each error names the spec setting
    /// (`settings.NAME = value`) and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let non_neg = |v: f64| v.is_finite() && v >= 0.0;
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let unit = |v: f64| (0.0..1.0).contains(&v);
        let (a, c, e, b) = (self.anchor, self.clip, self.epochs, self.batch_size);
        let checks = [
            (
                "anchor",
                a,
                non_neg(a),
                ">= 0 (0 turns the anchor term off)",
            ),
            ("lr", self.lr, pos(self.lr), "> 0"),
            ("head_lr", self.head_lr, pos(self.head_lr), "> 0"),
            ("warmup", self.warmup, unit(self.warmup), "in [0, 1)"),
            ("dropout", self.dropout, unit(self.dropout), "in [0, 1)"),
            (
                "weight_decay",
                self.weight_decay,
                unit(self.weight_decay),
                "in [0, 1)",
            ),
            ("clip", c, non_neg(c), ">= 0 (0 = off)"),
            ("epochs", e as f64, e > 0, "at least 1"),
            ("batch_size", b as f64, b > 0, "at least 1"),
        ];
        if let Some((name, v, _, want)) = checks.iter().find(|c| !c.2) {
            return Err(Error::Invalid(format!(
                "settings.{name} = {v} must be {want}"
            )));
        }
        Ok(())
    }
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            layers: 4,
            epochs: 3,
            batch_size: 32,
            lr: 1e-4,
            head_lr: 1e-3,
            weight_decay: 0.01,
            warmup: 0.06,
            clip: 1.0,
            dropout: 0.1,
            eval_every: 0,
            patience: 2,
            checkpoint_every: 200,
            seed: 42,
            stop_after: 0,
            anchor: 0.0,
        }
    }
}

/// One dev evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Dev accuracy per task, in task order.
    pub dev_accuracy: Vec<f64>,
    /// Mean of the tasks' dev accuracies (the early-stopping score).
    pub score: f64,
    /// Seconds of training so far (all invocations).
    pub seconds: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneReport {
    /// Steps done.
    pub steps: usize,
    /// Steps a full run has (epochs x batches per epoch).
    pub total_steps: usize,
    /// True when training ended (all epochs or early stop); false when stopped by
    /// `stop_after` (resume to go on).
    pub finished: bool,
    /// The evaluation whose weights were kept.
    pub best: Option<EvalPoint>,
    /// All evaluations.
    pub history: Vec<EvalPoint>,
    /// Seconds of training (all invocations, evaluation included).
    pub seconds: f64,
    /// Training texts per second (forward + backward), this invocation.
    pub texts_per_second: f64,
    /// Fitted softmax temperature of each head on dev.
    pub temperatures: Vec<f64>,
}

/// The result: the tuned layers under the base's tensor names, the heads, and the report.
pub struct Finetuned {
    /// Tuned tensors, named as in the base model (f32).
    pub overlay: Vec<(String, Tensor)>,
    /// One head per task (temperature fitted on dev).
    pub heads: Vec<Head>,
    /// What happened.
    pub report: FinetuneReport,
}

const PARTS: [&str; 16] = [
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
struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
    /// Index of the first head parameter in `vars`.
    heads_from: usize,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

fn lin(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(&w.t()?)?.broadcast_add(b)
}

/// Inverted dropout with a mask from our own seeded generator (candle's CPU RNG cannot be
/// seeded), so runs and resumes are reproducible.
fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
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
type TaskLogits = (Tensor, Vec<usize>);

/// The tuned top of the encoder plus the heads, as candle tensors on `device`.
struct Model<'a> {
    cfg: &'a Config,
    tasks: &'a [TaskSpec],
    device: Device,
    p: Params,
}

impl Model<'_> {
    fn layer_count(&self) -> usize {
        self.p.heads_from / PARTS.len()
    }

    fn var(&self, layer: usize, part: usize) -> &Tensor {
        self.p.vars[layer * PARTS.len() + part].as_tensor()
    }

    /// Head parameters of task `t`: (w1, b1, w2, b2).
    fn head(&self, t: usize) -> (Tensor, Tensor, Option<Tensor>, Option<Tensor>) {
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
    /// `mask` (b, t) of 1 for real tokens.
    fn pooled(&self, x: &Tensor, mask: &Tensor, drop: Option<(f64, &mut Rng)>) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let d = h / heads;
        let eps = self.cfg.layer_norm_eps as f32;
        let add_mask = ((mask.ones_like()? - mask)? * -1e9)?.reshape((b, 1, 1, t))?;
        let mut drop = drop;
        let mut x2 = x.reshape((b * t, h))?;
        for l in 0..self.layer_count() {
            let w = |i: usize| self.var(l, i);
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

    fn logits(&self, task: usize, pooled: &Tensor) -> Result<Tensor> {
        let (w1, b1, w2, b2) = self.head(task);
        classify::head_forward(pooled, &w1, &b1, w2.as_ref(), b2.as_ref())
    }

    /// Pads a batch of examples into (b, t, h) states and a (b, t) mask.
    fn batch(&self, ex: &[&Example]) -> Result<(Tensor, Tensor)> {
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
    fn evaluate(&self, dev: &[Example]) -> Result<(Vec<f64>, Vec<TaskLogits>)> {
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
fn epoch_batches(
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

/// The run's checkpoint: `checkpoint.safetensors` (parameters, moments, best parameters)
/// plus `checkpoint.json` (progress and the run's key).
#[derive(Serialize, Deserialize)]
struct CheckpointState {
    key: String,
    step: usize,
    seconds: f64,
    loss_sum: f64,
    loss_n: usize,
    bad_evals: usize,
    finished: bool,
    history: Vec<EvalPoint>,
    best: Option<EvalPoint>,
}

fn save_checkpoint(dir: &Path, st: &CheckpointState, p: &Params, best: &[Tensor]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (i, v) in p.vars.iter().enumerate() {
        map.insert(format!("p.{i}"), v.as_tensor().to_device(&Device::Cpu)?);
        map.insert(format!("m.{i}"), p.m[i].to_device(&Device::Cpu)?);
        map.insert(format!("v.{i}"), p.v[i].to_device(&Device::Cpu)?);
    }
    for (i, t) in best.iter().enumerate() {
        map.insert(format!("best.{i}"), t.to_device(&Device::Cpu)?);
    }
    let w = dir.join("checkpoint.safetensors");
    let tmp = dir.join("checkpoint.safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, &w).map_err(|e| Error::io(&w, e))?;
    // the JSON is written last: it names the step the weights file belongs to
    let j = dir.join("checkpoint.json");
    let tmp = dir.join("checkpoint.json.tmp");
    let s = serde_json::to_string_pretty(st).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&tmp, s).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &j).map_err(|e| Error::io(&j, e))
}

/// Everything a fine-tuning run needs.
pub struct FinetuneInput<'a> {
    /// The base weights (safetensors) the tuned layers start from.
    pub weights: &'a Path,
    /// Tuned weights of an earlier run, merged over `weights` (start from them).
    pub overlay: Option<&'a Path>,
    /// The encoder's config.
    pub config: &'a Config,
    /// Tasks, in the order of [`Example::task`].
    pub tasks: &'a [TaskSpec],
    /// Per task, a trained head to start from (same labels and width), or `None` for a
    /// random start.
    pub init_heads: &'a [Option<Head>],
    /// Training examples (frozen-layer states).
    pub train: &'a [Example],
    /// Dev examples, for early stopping and temperature fitting.
    pub dev: &'a [Example],
    /// Where checkpoints go (resumed from when their key matches).
    pub checkpoint_dir: PathBuf,
    /// Identifies the run (data, tasks, settings): a checkpoint with another key is not resumed.
    pub key: String,
    /// Where the steps run (CPU, or a CUDA GPU).
    pub device: Device,
}

/// Fine-tunes: resumes from the checkpoint when one of the same run exists, trains, and returns
/// the best weights seen on dev. `log` receives progress lines.
pub fn finetune(
    input: &FinetuneInput,
    cfg: &FinetuneConfig,
    mut log: impl FnMut(&str),
) -> Result<Finetuned> {
    let bert = input.config;
    let h = bert.hidden_size;
    let depth = bert.num_hidden_layers;
    if cfg.layers == 0 || cfg.layers > depth {
        return Err(Error::Invalid(format!(
            "--layers must be 1..={depth} (the encoder's depth), not {}",
            cfg.layers
        )));
    }
    cfg.validate()?;
    if input.train.is_empty() || input.dev.is_empty() {
        return Err(Error::Invalid(
            "fine-tuning needs train and dev examples".into(),
        ));
    }
    let dev = &input.device;
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
            let t = base
                .get(&name)
                .ok_or_else(|| Error::model(input.weights, format!("tensor {name} is missing")))?;
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
    let mut model = Model {
        cfg: bert,
        tasks: input.tasks,
        device: dev.clone(),
        p: Params {
            names,
            vars,
            heads_from,
            m,
            v,
        },
    };

    let plan = |epoch: usize| {
        epoch_batches(
            input.train,
            input.tasks.len(),
            cfg.batch_size.max(1),
            h,
            cfg.seed,
            epoch,
        )
    };
    // every epoch has the same number of batches; the plan is rebuilt when the epoch changes
    let mut epoch = 0;
    let mut batches = plan(0);
    let per_epoch = batches.len();
    let total = per_epoch * cfg.epochs.max(1);
    let eval_every = if cfg.eval_every == 0 {
        per_epoch
    } else {
        cfg.eval_every
    };
    let mut st = CheckpointState {
        key: input.key.clone(),
        step: 0,
        seconds: 0.0,
        loss_sum: 0.0,
        loss_n: 0,
        bad_evals: 0,
        finished: false,
        history: Vec::new(),
        best: None,
    };
    let mut best: Vec<Tensor> = model
        .p
        .vars
        .iter()
        .map(|v| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?;
    let ck = &input.checkpoint_dir;
    let ck_json = ck.join("checkpoint.json");
    if let Ok(s) = std::fs::read_to_string(&ck_json) {
        match serde_json::from_str::<CheckpointState>(&s) {
            Ok(old) if old.key == input.key => {
                let w = ck.join("checkpoint.safetensors");
                let saved = candle_core::safetensors::load(&w, dev)?;
                let get = |n: String| -> Result<Tensor> {
                    saved
                        .get(&n)
                        .cloned()
                        .ok_or_else(|| Error::model(&w, format!("{n} is missing")))
                };
                for (i, kept) in best.iter_mut().enumerate() {
                    model.p.vars[i].set(&get(format!("p.{i}"))?)?;
                    model.p.m[i] = get(format!("m.{i}"))?;
                    model.p.v[i] = get(format!("v.{i}"))?;
                    *kept = get(format!("best.{i}"))?;
                }
                log(&format!(
                    "resuming from the checkpoint at step {} of {total}",
                    old.step
                ));
                st = old;
            }
            Ok(_) => {
                log("a checkpoint of another run is here; starting afresh (it will be replaced)")
            }
            Err(e) => log(&format!("unreadable checkpoint ({e}); starting afresh")),
        }
    }

    let started = Instant::now();
    let seconds_before = st.seconds;
    let steps_before = st.step;
    let mut texts = 0usize;
    let (b1, b2, adam_eps) = (0.9f64, 0.999f64, 1e-8f64);
    let lr_at = |step: usize, peak: f64| -> f64 {
        let warm = ((total as f64 * cfg.warmup).round() as usize).max(1);
        if step < warm {
            peak * (step + 1) as f64 / warm as f64
        } else {
            peak * ((total - step) as f64 / (total - warm).max(1) as f64).max(0.0)
        }
    };
    if st.history.is_empty() {
        // the starting point (warm-started heads on the base encoder) is a candidate too
        evaluate_point(&mut st, &model, input, cfg, &mut best, &mut log)?;
    }
    while !st.finished && st.step < total {
        if cfg.stop_after > 0 && st.step - steps_before >= cfg.stop_after {
            break;
        }
        if st.step / per_epoch != epoch {
            epoch = st.step / per_epoch;
            batches = plan(epoch);
        }
        let idx = &batches[st.step % per_epoch];
        let ex: Vec<&Example> = idx.iter().map(|&i| &input.train[i]).collect();
        let task = ex[0].task;
        let (x, mask) = model.batch(&ex)?;
        let mut drng =
            Rng::new(cfg.seed ^ 0xd40f ^ (st.step as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let pooled = model.pooled(&x, &mask, Some((cfg.dropout, &mut drng)))?;
        let logits = model.logits(task, &pooled)?;
        let y: Vec<u32> = ex.iter().map(|e| e.label as u32).collect();
        let y = Tensor::from_vec(y, ex.len(), dev)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let mut loss = (logp.gather(&y.unsqueeze(1)?, 1)?.sum_all()? / -(ex.len() as f64))?;
        let anchor = input.tasks[task].anchor.unwrap_or(cfg.anchor);
        if anchor > 0.0 {
            let h = pooled.dim(1)?;
            let mut a = Vec::with_capacity(ex.len() * h);
            for e in &ex {
                if e.anchor.len() != h {
                    return Err(Error::Invalid(
                        "anchor > 0 needs the base embedding of every training text".into(),
                    ));
                }
                a.extend_from_slice(&e.anchor);
            }
            let a = Tensor::from_vec(a, (ex.len(), h), dev)?;
            let dist = ((&pooled - a)?.sqr()?.sum_all()? / ex.len() as f64)?;
            loss = (loss + (dist * anchor)?)?;
        }
        let grads = loss.backward()?;
        // global gradient norm over every parameter that has a gradient
        let mut sq = 0f64;
        let gs: Vec<Option<Tensor>> = model
            .p
            .vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).cloned())
            .collect();
        for g in gs.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        let scale = if cfg.clip > 0.0 {
            (cfg.clip / (sq.sqrt() + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let t = (st.step + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (i, g) in gs.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let g = (g * scale)?;
            let peak = if i < model.p.heads_from {
                cfg.lr
            } else {
                cfg.head_lr
            };
            let lr = lr_at(st.step, peak);
            let m = ((&model.p.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((&model.p.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&m / c1)? / ((&v / c2)?.sqrt()? + adam_eps)?)?;
            let w = model.p.vars[i].as_tensor();
            let decayed = if w.rank() >= 2 && cfg.weight_decay > 0.0 {
                (w * (1.0 - lr * cfg.weight_decay))?
            } else {
                w.clone()
            };
            model.p.vars[i].set(&(decayed - (upd * lr)?)?)?;
            model.p.m[i] = m;
            model.p.v[i] = v;
        }
        st.loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        st.loss_n += 1;
        st.step += 1;
        texts += ex.len();
        let now = seconds_before + started.elapsed().as_secs_f64();
        if st.step.is_multiple_of(50) {
            log(&format!(
                "step {}/{total} loss {:.4} ({:.1} texts/s)",
                st.step,
                st.loss_sum / st.loss_n.max(1) as f64,
                texts as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        let eval_now = st.step.is_multiple_of(eval_every) || st.step == total;
        if eval_now {
            st.seconds = now;
            evaluate_point(&mut st, &model, input, cfg, &mut best, &mut log)?;
        }
        if st.step == total {
            st.finished = true;
        }
        if eval_now
            || st.finished
            || (cfg.checkpoint_every > 0 && st.step.is_multiple_of(cfg.checkpoint_every))
        {
            st.seconds = now;
            save_checkpoint(ck, &st, &model.p, &best)?;
        }
    }
    st.seconds = seconds_before + started.elapsed().as_secs_f64();
    save_checkpoint(ck, &st, &model.p, &best)?;
    let texts_per_second = texts as f64 / started.elapsed().as_secs_f64().max(1e-9);

    // the kept weights: the best evaluation's
    for (var, t) in model.p.vars.iter().zip(&best) {
        var.set(t)?;
    }
    let (_, dev_logits) = model.evaluate(input.dev)?;
    let mut temperatures = Vec::new();
    let mut heads = Vec::new();
    for (t, spec) in input.tasks.iter().enumerate() {
        let (logits, labels) = &dev_logits[t];
        let (temp, _, _) = fit_temperature(logits, labels)?;
        temperatures.push(temp);
        let (w1, b1, w2, b2) = model.head(t);
        let cpu = |x: &Tensor| x.to_device(&Device::Cpu);
        heads.push(Head {
            meta: HeadMeta {
                task: spec.name.clone(),
                labels: spec.labels.clone(),
                input_dim: h,
                hidden: spec.hidden,
                temperature: temp as f32,
                encoder: String::new(),
                unknown_below: None,
                multi_label: false,
                kinds: None,
                training: serde_json::Value::Null,
            },
            w1: cpu(&w1)?,
            b1: cpu(&b1)?,
            w2: w2.as_ref().map(cpu).transpose()?,
            b2: b2.as_ref().map(cpu).transpose()?,
        });
    }
    let overlay = model.p.names[..heads_from]
        .iter()
        .zip(&model.p.vars[..heads_from])
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_device(&Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Finetuned {
        overlay,
        heads,
        report: FinetuneReport {
            steps: st.step,
            total_steps: total,
            finished: st.finished,
            best: st.best.clone(),
            history: st.history.clone(),
            seconds: st.seconds,
            texts_per_second,
            temperatures,
        },
    })
}

/// Evaluates on dev, records the point, keeps the weights when they are the best so far, and
/// counts evaluations without improvement (early stopping).
fn evaluate_point(
    st: &mut CheckpointState,
    model: &Model,
    input: &FinetuneInput,
    cfg: &FinetuneConfig,
    best: &mut Vec<Tensor>,
    log: &mut impl FnMut(&str),
) -> Result<()> {
    let (acc, _) = model.evaluate(input.dev)?;
    let score = acc.iter().sum::<f64>() / acc.len() as f64;
    let point = EvalPoint {
        step: st.step,
        train_loss: st.loss_sum / st.loss_n.max(1) as f64,
        dev_accuracy: acc,
        score,
        seconds: st.seconds,
    };
    log(&format!(
        "eval at step {}: dev {} mean {:.4}",
        st.step,
        input
            .tasks
            .iter()
            .zip(&point.dev_accuracy)
            .map(|(t, a)| format!("{} {:.4}", t.name, a))
            .collect::<Vec<_>>()
            .join(", "),
        score
    ));
    st.loss_sum = 0.0;
    st.loss_n = 0;
    if st.best.as_ref().is_none_or(|b| score > b.score) {
        st.best = Some(point.clone());
        st.bad_evals = 0;
        *best = model
            .p
            .vars
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?;
    } else {
        st.bad_evals += 1;
        if st.bad_evals >= cfg.patience.max(1) {
            log(&format!(
                "early stop: {} evaluations without dev improvement",
                st.bad_evals
            ));
            st.finished = true;
        }
    }
    st.history.push(point);
    Ok(())
}
