//! Finetune: tunes the top transformer layers of the encoder together with one head per task
//! (multi-task), on the project's own training engine ([`engine`]: packed kernels, the
//! default on a CPU with AVX2 + FMA) or candle's autograd (the reference, and the GPU path).
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

mod checkpoint;
pub mod engine;
mod model;

use crate::classify::{fit_temperature, Head, HeadMeta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor, D};
use candle_transformers::models::bert::Config;
use checkpoint::CheckpointState;
pub use engine::{Engine, EngineOptions};
use model::{epoch_batches, Model, Params};
use serde::{Deserialize, Serialize};
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
    /// Weight of the anchor term for this task's training texts (0 = off): the spec's
    /// per-task `anchor` where it sets one, else [`FinetuneConfig::anchor`].
    pub anchor: f64,
    /// Per-label anchor weights in label order, overriding `anchor` for the texts of each
    /// label; empty when the spec sets none (every text then has `anchor`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_anchor: Vec<f64>,
    /// Anchor the relations between the texts (their pairwise cosine similarities within a
    /// batch) instead of each text's position; a pair weighs sqrt(w_i * w_j).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anchor_relations: bool,
}

impl TaskSpec {
    /// The anchor weight of a training text with gold label `label`.
    pub fn anchor_of(&self, label: usize) -> f64 {
        self.label_anchor.get(label).copied().unwrap_or(self.anchor)
    }

    /// Whether any of this task's texts has an anchor term (so their base embeddings are needed).
    pub fn anchored(&self) -> bool {
        self.anchor > 0.0 || self.label_anchor.iter().any(|&a| a > 0.0)
    }
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
    /// Seconds of training (all invocations) after which the run ends as if its last epoch
    /// were done: the best evaluation's weights are kept and the bundle is written, the report
    /// saying where it stopped; 0 = no limit. For a lease of fixed length (a borrowed GPU):
    /// where it stops depends on the machine's speed, so it is not part of the run's identity.
    pub time_budget: f64,
    /// Weight of the anchor term: the mean squared distance between each training text's
    /// tuned embedding and the base encoder's (0 = off). It keeps the embedding geometry that
    /// the few-shot taxonomy heads and topic clustering rely on.
    pub anchor: f64,
}

impl FinetuneConfig {
    /// The settings that define the result (`stop_after` and `time_budget` only split or cut
    /// the work).
    pub fn clone_without_stop(&self) -> FinetuneConfig {
        FinetuneConfig {
            stop_after: 0,
            time_budget: 0.0,
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
            (
                "time_budget",
                self.time_budget,
                non_neg(self.time_budget),
                ">= 0 seconds (0 = no limit)",
            ),
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
            time_budget: 0.0,
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
    /// Training texts per second of the training steps (forward, backward, optimiser;
    /// evaluations and checkpoints excluded), this invocation.
    pub texts_per_second: f64,
    /// Fitted softmax temperature of each head on dev.
    pub temperatures: Vec<f64>,
    /// True when the run ended at `time_budget` before its last epoch.
    #[serde(default)]
    pub stopped_by_budget: bool,
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
    /// Which engine runs the steps (the own engine runs on the CPU only; candle elsewhere).
    pub engine: EngineOptions,
}

/// Checks a task's anchor weight (finite, >= 0); the error names the task.
pub fn check_task_anchor(task: &str, anchor: f64) -> Result<()> {
    if anchor.is_finite() && anchor >= 0.0 {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "task {task}: anchor = {anchor} must be >= 0 (0 turns its anchor term off)"
    )))
}

/// The anchor term of one batch (all of one task): each text's weight is its label's. By
/// position, the weighted mean squared distance of the tuned embeddings to the base ones; by
/// relations (`anchor_relations`), the squared change of every pair's cosine similarity, a pair
/// weighing sqrt(w_i * w_j), summed and divided by the batch size.
fn anchor_term(spec: &TaskSpec, ex: &[&Example], pooled: &Tensor) -> Result<Tensor> {
    let (n, h) = pooled.dims2()?;
    let dev = pooled.device();
    let mut a = Vec::with_capacity(n * h);
    for e in ex {
        if e.anchor.len() != h {
            return Err(Error::Invalid(
                "anchor > 0 needs the base embedding of every training text".into(),
            ));
        }
        a.extend_from_slice(&e.anchor);
    }
    let a = Tensor::from_vec(a, (n, h), dev)?;
    let weights = |f: fn(f64) -> f64| -> Result<Tensor> {
        let w: Vec<f32> = ex
            .iter()
            .map(|e| f(spec.anchor_of(e.label)) as f32)
            .collect();
        Ok(Tensor::from_vec(w, (n, 1), dev)?)
    };
    Ok(if spec.anchor_relations {
        let w = weights(f64::sqrt)?;
        let pairs = w.matmul(&w.t()?)?;
        let change = (pooled.matmul(&pooled.t()?)? - a.matmul(&a.t()?)?)?;
        ((change.sqr()? * pairs)?.sum_all()? / n as f64)?
    } else if spec.label_anchor.is_empty() {
        // one weight for the task (the same arithmetic as before per-label weights)
        (((pooled - a)?.sqr()?.sum_all()? / n as f64)? * spec.anchor)?
    } else {
        let w = weights(|x| x)?;
        ((pooled - a)?.sqr()?.broadcast_mul(&w)?.sum_all()? / n as f64)?
    })
}

/// The loss of one batch (all of one task) on candle's autograd: cross-entropy plus the anchor
/// term, dropout `p` drawn from `drng`.
fn candle_loss(
    model: &Model,
    spec: &TaskSpec,
    ex: &[&Example],
    p: f64,
    drng: &mut Rng,
) -> Result<Tensor> {
    let task = ex[0].task;
    let (x, mask) = model.batch(ex)?;
    let pooled = model.pooled(&x, &mask, Some((p, drng)))?;
    let logits = model.logits(task, &pooled)?;
    let y: Vec<u32> = ex.iter().map(|e| e.label as u32).collect();
    let y = Tensor::from_vec(y, ex.len(), &model.device)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let mut loss = (logp.gather(&y.unsqueeze(1)?, 1)?.sum_all()? / -(ex.len() as f64))?;
    if spec.anchored() {
        loss = (loss + anchor_term(spec, ex, &pooled)?)?;
    }
    Ok(loss)
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
    for t in input.tasks {
        check_task_anchor(&t.name, t.anchor)?;
        if !t.label_anchor.is_empty() && t.label_anchor.len() != t.labels.len() {
            return Err(Error::Invalid(format!(
                "task {}: {} per-label anchor weights for {} labels",
                t.name,
                t.label_anchor.len(),
                t.labels.len()
            )));
        }
        for (l, &a) in t.labels.iter().zip(&t.label_anchor) {
            check_task_anchor(&format!("{} (label {l})", t.name), a)?;
        }
    }
    let dev = &input.device;
    let mut model = Model {
        cfg: bert,
        tasks: input.tasks,
        device: dev.clone(),
        p: Params::new(input, cfg)?,
    };
    let heads_from = model.p.heads_from;

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
    let mut best = model.p.snapshot()?;
    let ck = &input.checkpoint_dir;
    if let Some(old) = checkpoint::resume(ck, &input.key, &mut model.p, &mut best, dev, &mut log)? {
        log(&format!(
            "resuming from the checkpoint at step {} of {total}",
            old.step
        ));
        st = old;
    }
    let mut own = own_engine(input, &model.p, &mut log)?;

    let started = Instant::now();
    let seconds_before = st.seconds;
    let steps_before = st.step;
    let mut texts = 0usize;
    // seconds spent in training steps (forward, backward, optimiser), evaluation excluded
    let mut step_secs = 0f64;
    let mut stopped_by_budget = false;
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
        evaluate_point(
            &mut st,
            &model,
            own.as_ref(),
            input,
            cfg,
            &mut best,
            &mut log,
        )?;
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
        let mut drng =
            Rng::new(cfg.seed ^ 0xd40f ^ (st.step as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let spec = &input.tasks[task];
        let (lr, head_lr) = (lr_at(st.step, cfg.lr), lr_at(st.step, cfg.head_lr));
        let step_started = Instant::now();
        st.loss_sum += if let Some(e) = own.as_mut() {
            let micro = input.engine.micro_batch;
            let grads = e.loss_and_grads(&ex, task, spec, cfg.dropout, &mut drng, micro)?;
            e.adamw(&grads, st.step, cfg, lr, head_lr);
            grads.loss
        } else {
            let loss = candle_loss(&model, spec, &ex, cfg.dropout, &mut drng)?;
            let grads = loss.backward()?;
            model.p.adamw_step(&grads, st.step, cfg, lr, head_lr)?;
            loss.to_dtype(DType::F64)?.to_scalar::<f64>()?
        };
        step_secs += step_started.elapsed().as_secs_f64();
        st.loss_n += 1;
        st.step += 1;
        texts += ex.len();
        let now = seconds_before + started.elapsed().as_secs_f64();
        if st.step.is_multiple_of(50) {
            log(&format!(
                "step {}/{total} loss {:.4} ({:.1} texts/s)",
                st.step,
                st.loss_sum / st.loss_n.max(1) as f64,
                texts as f64 / step_secs.max(1e-9)
            ));
        }
        let eval_now = st.step.is_multiple_of(eval_every) || st.step == total;
        let budget_out = cfg.time_budget > 0.0 && now >= cfg.time_budget;
        let save_now = cfg.checkpoint_every > 0 && st.step.is_multiple_of(cfg.checkpoint_every);
        if let Some(e) = own.as_ref().filter(|_| eval_now || budget_out || save_now) {
            // evaluation, the kept weights and checkpoints read the candle parameters
            e.write_back(&mut model.p)?;
        }
        if eval_now {
            st.seconds = now;
            evaluate_point(
                &mut st,
                &model,
                own.as_ref(),
                input,
                cfg,
                &mut best,
                &mut log,
            )?;
        }
        if st.step == total {
            st.finished = true;
        }
        if !st.finished && cfg.time_budget > 0.0 && now >= cfg.time_budget {
            log(&format!(
                "time budget of {:.0} s reached at step {} of {total}",
                cfg.time_budget, st.step
            ));
            if !eval_now {
                st.seconds = now;
                evaluate_point(
                    &mut st,
                    &model,
                    own.as_ref(),
                    input,
                    cfg,
                    &mut best,
                    &mut log,
                )?;
            }
            st.finished = true;
            stopped_by_budget = true;
        }
        if eval_now
            || st.finished
            || (cfg.checkpoint_every > 0 && st.step.is_multiple_of(cfg.checkpoint_every))
        {
            st.seconds = now;
            checkpoint::save(ck, &st, &model.p, &best)?;
        }
    }
    if let Some(e) = &own {
        e.write_back(&mut model.p)?;
    }
    st.seconds = seconds_before + started.elapsed().as_secs_f64();
    checkpoint::save(ck, &st, &model.p, &best)?;
    let texts_per_second = texts as f64 / step_secs.max(1e-9);

    // the kept weights: the best evaluation's
    for (var, t) in model.p.vars.iter().zip(&best) {
        var.set(t)?;
    }
    let (_, dev_logits) = match own.as_mut() {
        Some(e) => {
            e.read_weights(&model.p)?;
            e.evaluate(input.dev, input.tasks)?
        }
        None => model.evaluate(input.dev)?,
    };
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
            routes: Vec::new(),
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
            stopped_by_budget,
        },
    })
}

/// The own engine over `p` when the input asks for it and it can run here (a CPU with AVX2 +
/// FMA, widths that are multiples of 16); `None` (candle's autograd runs the steps) otherwise.
fn own_engine(
    input: &FinetuneInput,
    p: &Params,
    log: &mut impl FnMut(&str),
) -> Result<Option<engine::OwnEngine>> {
    if !input.engine.engine.is_own() {
        return Ok(None);
    }
    let c = input.config;
    let fits = c.hidden_size.is_multiple_of(16)
        && c.intermediate_size.is_multiple_of(16)
        && c.hidden_size.is_multiple_of(c.num_attention_heads);
    if !input.device.is_cpu() || !crate::encode::kernels::available() || !fits {
        log("the own training engine runs on a CPU with AVX2 + FMA only; candle's autograd runs the steps");
        return Ok(None);
    }
    let shape = engine::layer::Shape {
        h: c.hidden_size,
        heads: c.num_attention_heads,
        inter: c.intermediate_size,
        eps: c.layer_norm_eps as f32,
    };
    let products = match input.engine.engine {
        Engine::Bf16 => engine::ops::Products::Bf16,
        _ => engine::ops::Products::F32,
    };
    Ok(Some(engine::OwnEngine::new(
        p,
        shape,
        input.tasks,
        products,
    )?))
}

/// Evaluates on dev, records the point, keeps the weights when they are the best so far, and
/// counts evaluations without improvement (early stopping).
fn evaluate_point(
    st: &mut CheckpointState,
    model: &Model,
    own: Option<&engine::OwnEngine>,
    input: &FinetuneInput,
    cfg: &FinetuneConfig,
    best: &mut Vec<Tensor>,
    log: &mut impl FnMut(&str),
) -> Result<()> {
    // the own engine evaluates on its packed kernels (its weights are the model's: written
    // back before every evaluation); candle otherwise
    let (acc, _) = match own {
        Some(e) => e.evaluate(input.dev, input.tasks)?,
        None => model.evaluate(input.dev)?,
    };
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
        *best = model.p.snapshot()?;
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
