//! Training heads: AdamW with early stopping on dev, class weights, and temperature / scale
//! calibration.

use super::{head_forward, to_tensor, Head, HeadMeta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How classes are weighted in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every example counts the same.
    None,
    /// Weight 1/sqrt(frequency): a mild correction for imbalance.
    Sqrt,
    /// Weight 1/frequency: every class counts the same in total.
    Balanced,
}

/// Settings for [`train_head`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// Hidden width (0 = linear head).
    pub hidden: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Epochs without dev improvement before stopping.
    pub patience: usize,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
    /// Class weighting in the loss.
    pub class_weight: ClassWeight,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: 256,
            epochs: 60,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 1e-4,
            patience: 6,
            seed: 42,
            class_weight: ClassWeight::Sqrt,
        }
    }
}

/// What training did, for the head's metadata and the model card.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// How the head was trained: `mlp`, `linear`, or `prototype+lr` (nearest prototype refined
    /// by anchored logistic regression, [`train_prototype_head`]).
    pub method: String,
    /// Epochs run (refinement steps for `prototype+lr`).
    pub epochs_run: usize,
    /// The epoch whose weights were kept (1-based; for `prototype+lr` the step, 0 = the plain
    /// prototypes).
    pub best_epoch: usize,
    /// Dev score of the kept weights: accuracy, or micro-F1 for multi-label heads.
    pub dev_accuracy: f64,
    /// Dev negative log-likelihood before calibration.
    pub dev_nll_raw: f64,
    /// Dev negative log-likelihood after temperature scaling.
    pub dev_nll_calibrated: f64,
    /// The fitted temperature.
    pub temperature: f64,
    /// Training examples per label.
    pub train_counts: BTreeMap<String, usize>,
}

pub(crate) fn init(rng: &mut Rng, out: usize, inp: usize) -> Result<(Var, Var)> {
    let a = (6.0 / (inp + out) as f64).sqrt();
    let w: Vec<f32> = (0..out * inp)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * a) as f32)
        .collect();
    let w = Var::from_tensor(&Tensor::from_vec(w, (out, inp), &Device::Cpu)?)?;
    let b = Var::from_tensor(&Tensor::zeros(out, DType::F32, &Device::Cpu)?)?;
    Ok((w, b))
}

/// Training targets: one label index per example, or a set of label indices (multi-label).
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Single-label: softmax and cross-entropy.
    Single(&'a [usize]),
    /// Multi-label: a sigmoid per label and binary cross-entropy.
    Multi(&'a [Vec<usize>]),
}

impl Targets<'_> {
    fn len(&self) -> usize {
        match self {
            Targets::Single(y) => y.len(),
            Targets::Multi(y) => y.len(),
        }
    }
}

/// One side (train or dev) of [`train_head_on`]'s data.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// The rows' inputs.
    pub x: &'a [Vec<f32>],
    /// Their targets.
    pub y: Targets<'a>,
    /// Optional per-row weights (single-label targets only): a row's loss (train) or its
    /// share of the accuracy (dev, early stopping) is scaled by its weight, and the class
    /// weights count each row by it. `None`: every row counts 1.
    pub weights: Option<&'a [f32]>,
}

/// Per-label weights: for single-label heads they weight each example's loss by its class;
/// for multi-label heads they weight the positive term of each label (negatives count 1).
/// `rows`: single-label rows' own weights (class frequencies count each row by it).
fn class_weights(
    targets: Targets,
    k: usize,
    scheme: ClassWeight,
    rows: Option<&[f32]>,
) -> Vec<f32> {
    let row = |i: usize| rows.map_or(1.0, |w| w[i] as f64);
    let n = match (targets, rows) {
        (Targets::Single(_), Some(w)) => w.iter().map(|&x| x as f64).sum::<f64>().max(1e-9),
        _ => targets.len().max(1) as f64,
    };
    let mut counts = vec![0f64; k];
    match targets {
        Targets::Single(y) => y.iter().enumerate().for_each(|(i, &c)| counts[c] += row(i)),
        Targets::Multi(y) => y.iter().flatten().for_each(|&c| counts[c] += 1.0),
    }
    let raw: Vec<f64> = counts
        .iter()
        .map(|&c| {
            let c = if c > 0.0 { c } else { 1.0 };
            let ratio = match targets {
                Targets::Single(_) => 1.0 / c,
                Targets::Multi(_) => (n - c).max(1.0) / c,
            };
            match scheme {
                ClassWeight::None => 1.0,
                ClassWeight::Sqrt => ratio.sqrt(),
                ClassWeight::Balanced => ratio,
            }
        })
        .collect();
    match targets {
        Targets::Single(y) => {
            // normalise so the mean weight per example is 1
            let mean = y
                .iter()
                .enumerate()
                .map(|(i, &c)| raw[c] * row(i))
                .sum::<f64>()
                / n;
            raw.iter().map(|w| (w / mean) as f32).collect()
        }
        Targets::Multi(_) => raw.iter().map(|&w| w as f32).collect(),
    }
}

fn multi_hot(y: &[Vec<usize>], k: usize) -> Vec<f32> {
    let mut v = vec![0f32; y.len() * k];
    for (i, set) in y.iter().enumerate() {
        for &c in set {
            v[i * k + c] = 1.0;
        }
    }
    v
}

/// Dev score used for early stopping: accuracy (single-label; weighted by `rows` when given)
/// or micro-F1 at 0.5 (multi-label).
fn dev_score(logits: &Tensor, y: Targets, rows: Option<&[f32]>) -> Result<f64> {
    match y {
        Targets::Single(y) => {
            let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
            if let Some(w) = rows {
                let total: f64 = w.iter().map(|&x| x as f64).sum();
                let hits: f64 = pred
                    .iter()
                    .zip(y)
                    .zip(w)
                    .filter(|((p, y), _)| **p as usize == **y)
                    .map(|(_, &w)| w as f64)
                    .sum();
                return Ok(hits / total.max(1e-9));
            }
            let hits = pred
                .iter()
                .zip(y)
                .filter(|(p, y)| **p as usize == **y)
                .count();
            Ok(hits as f64 / y.len().max(1) as f64)
        }
        Targets::Multi(y) => {
            let rows: Vec<Vec<f32>> = logits.to_vec2()?;
            let pred: Vec<Vec<usize>> = rows
                .iter()
                .map(|r| (0..r.len()).filter(|&j| r[j] > 0.0).collect())
                .collect();
            let names: Vec<String> = (0..rows.first().map_or(0, Vec::len))
                .map(|i| i.to_string())
                .collect();
            Ok(crate::metrics::multi_label(&names, y, &pred).micro_f1)
        }
    }
}

/// Trains a head on embeddings with AdamW: softmax + weighted cross-entropy for single-label
/// targets, sigmoids + binary cross-entropy (positive terms weighted) for multi-label ones.
/// Keeps the epoch with the best dev score (early stopping) and, for single-label heads, fits
/// a softmax temperature on dev.
pub fn train_head(
    task: &str,
    labels: &[String],
    x_train: &[Vec<f32>],
    y_train: Targets,
    x_dev: &[Vec<f32>],
    y_dev: Targets,
    cfg: &TrainConfig,
) -> Result<(Head, TrainReport)> {
    let split = |x, y| Split {
        x,
        y,
        weights: None,
    };
    train_head_on(
        task,
        labels,
        split(x_train, y_train),
        split(x_dev, y_dev),
        cfg,
    )
}

/// [`train_head`] with optional per-row weights on either side (see [`Split`]): e.g. weak
/// labels from one source that should count less than the gold ones.
pub fn train_head_on(
    task: &str,
    labels: &[String],
    train: Split,
    dev: Split,
    cfg: &TrainConfig,
) -> Result<(Head, TrainReport)> {
    let (x_train, y_train, x_dev, y_dev) = (train.x, train.y, dev.x, dev.y);
    if x_train.is_empty() || x_dev.is_empty() {
        return Err(Error::Invalid(
            "training needs a non-empty train and dev set".into(),
        ));
    }
    for s in [&train, &dev] {
        if let Some(w) = s.weights {
            if w.len() != s.x.len() || matches!(s.y, Targets::Multi(_)) {
                return Err(Error::Invalid(format!(
                    "{} row weights for {} rows (row weights need single-label targets)",
                    w.len(),
                    s.x.len()
                )));
            }
        }
    }
    let k = labels.len();
    let d = x_train[0].len();
    let cpu = &Device::Cpu;
    let cw = class_weights(y_train, k, cfg.class_weight, train.weights);
    let wt = Tensor::from_vec(cw, k, cpu)?;
    let row_w = train
        .weights
        .map(|w| Tensor::from_slice(w, w.len(), cpu))
        .transpose()?;
    let mut counts = vec![0usize; k];
    match y_train {
        Targets::Single(y) => y.iter().for_each(|&c| counts[c] += 1),
        Targets::Multi(y) => y.iter().flatten().for_each(|&c| counts[c] += 1),
    }

    let mut rng = Rng::new(cfg.seed);
    let mut vars = Vec::new();
    let (w1, b1) = init(&mut rng, if cfg.hidden > 0 { cfg.hidden } else { k }, d)?;
    vars.push(w1.clone());
    vars.push(b1.clone());
    let second = if cfg.hidden > 0 {
        let (w2, b2) = init(&mut rng, k, cfg.hidden)?;
        vars.push(w2.clone());
        vars.push(b2.clone());
        Some((w2, b2))
    } else {
        None
    };
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let xt = to_tensor(x_train)?;
    let yt = match y_train {
        Targets::Single(y) => {
            Tensor::from_vec(y.iter().map(|&c| c as u32).collect(), y.len(), cpu)?
        }
        Targets::Multi(y) => Tensor::from_vec(multi_hot(y, k), (y.len(), k), cpu)?,
    };
    let xd = to_tensor(x_dev)?;
    let snapshot = |vars: &[Var]| -> Result<Vec<Tensor>> {
        vars.iter()
            .map(|v| v.as_tensor().copy().map_err(Error::from))
            .collect()
    };
    let run = |x: &Tensor| {
        head_forward(
            x,
            w1.as_tensor(),
            b1.as_tensor(),
            second.as_ref().map(|s| s.0.as_tensor()),
            second.as_ref().map(|s| s.1.as_tensor()),
        )
    };
    let mut best = (f64::NEG_INFINITY, 0usize, snapshot(&vars)?);
    let mut order: Vec<u32> = (0..y_train.len() as u32).collect();
    let mut epochs_run = 0;
    for epoch in 1..=cfg.epochs {
        epochs_run = epoch;
        rng.shuffle(&mut order);
        for chunk in order.chunks(cfg.batch_size.max(1)) {
            let idx = Tensor::from_slice(chunk, chunk.len(), cpu)?;
            let xb = xt.index_select(&idx, 0)?;
            let yb = yt.index_select(&idx, 0)?;
            let logits = run(&xb)?;
            let loss = match y_train {
                Targets::Single(_) => {
                    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                    let picked = logp.gather(&yb.unsqueeze(1)?, 1)?.squeeze(1)?;
                    let mut wb = wt.index_select(&yb, 0)?;
                    if let Some(rw) = &row_w {
                        wb = wb.mul(&rw.index_select(&idx, 0)?)?;
                    }
                    (picked.mul(&wb)?.sum_all()? / -(chunk.len() as f64))?
                }
                Targets::Multi(_) => {
                    // BCE with logits: softplus(z) - y*z, positives weighted: w*y*softplus(-z) + (1-y)*softplus(z)
                    let sp_pos = softplus(&logits.neg()?)?; // -log sigmoid(z)
                    let sp_neg = softplus(&logits)?; // -log (1 - sigmoid(z))
                    let pos = yb.broadcast_mul(&wt)?.mul(&sp_pos)?;
                    let neg = (yb.ones_like()? - &yb)?.mul(&sp_neg)?;
                    ((pos + neg)?.sum_all()? / (chunk.len() * k) as f64)?
                }
            };
            opt.backward_step(&loss)?;
        }
        let score = dev_score(&run(&xd)?, y_dev, dev.weights)?;
        if score > best.0 {
            best = (score, epoch, snapshot(&vars)?);
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    let mut it = best.2.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| Error::Invalid("lost a weight snapshot".into()))
    };
    let (w1, b1) = (next()?, next()?);
    let (w2, b2) = if cfg.hidden > 0 {
        (Some(next()?), Some(next()?))
    } else {
        (None, None)
    };
    let dev_logits = head_forward(&xd, &w1, &b1, w2.as_ref(), b2.as_ref())?;
    let (temperature, nll_raw, nll_cal) = match y_dev {
        Targets::Single(y) => fit_temperature(&dev_logits, y)?,
        Targets::Multi(_) => (1.0, f64::NAN, f64::NAN),
    };
    let report = TrainReport {
        method: if cfg.hidden > 0 { "mlp" } else { "linear" }.into(),
        epochs_run,
        best_epoch: best.1,
        dev_accuracy: best.0,
        dev_nll_raw: nll_raw,
        dev_nll_calibrated: nll_cal,
        temperature,
        train_counts: labels.iter().cloned().zip(counts).collect(),
    };
    let head = Head {
        meta: HeadMeta {
            task: task.to_string(),
            labels: labels.to_vec(),
            input_dim: d,
            hidden: cfg.hidden,
            temperature: temperature as f32,
            encoder: String::new(),
            unknown_below: None,
            multi_label: matches!(y_train, Targets::Multi(_)),
            kinds: None,
            training: serde_json::Value::Null,
        },
        w1,
        b1,
        w2,
        b2,
        routes: Vec::new(),
    };
    Ok((head, report))
}

/// log(1 + exp(x)), computed stably as max(x, 0) + log(1 + exp(-|x|)).
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// Mean negative log-likelihood of `labels` under `softmax(logits / t)`.
pub fn nll(logits: &Tensor, labels: &[usize], t: f64) -> Result<f64> {
    let logp = candle_nn::ops::log_softmax(&(logits / t)?, D::Minus1)?;
    let rows: Vec<Vec<f32>> = logp.to_vec2()?;
    let s: f64 = rows.iter().zip(labels).map(|(r, &y)| -(r[y] as f64)).sum();
    Ok(s / labels.len().max(1) as f64)
}

/// Temperature scaling: the temperature in [0.25, 5] minimising dev NLL (grid, then refined).
/// Returns (temperature, nll at 1, nll at the temperature).
pub fn fit_temperature(logits: &Tensor, labels: &[usize]) -> Result<(f64, f64, f64)> {
    let raw = nll(logits, labels, 1.0)?;
    let mut best = (1.0, raw);
    for i in 5..=100 {
        let t = i as f64 * 0.05;
        let v = nll(logits, labels, t)?;
        if v < best.1 {
            best = (t, v);
        }
    }
    let centre = best.0;
    for i in -10..=10 {
        let t = centre + i as f64 * 0.005;
        if t > 0.0 {
            let v = nll(logits, labels, t)?;
            if v < best.1 {
                best = (t, v);
            }
        }
    }
    Ok((best.0, raw, best.1))
}

/// The logit scale in [0.5, 500] (log-spaced grid, then refined) minimising the NLL of
/// `labels` under `softmax(scale * logits)`: calibrates cosine-similarity logits.
pub fn fit_scale(logits: &Tensor, labels: &[usize]) -> Result<f64> {
    let mut best = (1.0, f64::INFINITY);
    for i in 0..=60 {
        let s = 0.5 * 1000f64.powf(i as f64 / 60.0);
        let v = nll(logits, labels, 1.0 / s)?;
        if v < best.1 {
            best = (s, v);
        }
    }
    let centre = best.0;
    for i in -10..=10 {
        let s = centre * 1.12f64.powf(i as f64 / 10.0);
        let v = nll(logits, labels, 1.0 / s)?;
        if v < best.1 {
            best = (s, v);
        }
    }
    Ok(best.0)
}

/// Settings of [`train_prototype_head`]: refinement steps and learning rate, the pull towards
/// the prototypes, and how often the dev accuracy is checked.
pub const PROTOTYPE_REFINE: crate::taxonomy::RefineConfig = crate::taxonomy::RefineConfig {
    steps: 300,
    lr: 1e-2,
    anchor: 1e-4,
};

/// A head for small labelled sets (single-label): the nearest-prototype head of every training
/// example ([`crate::taxonomy::prototype_head`], its scale fitted leave-one-out), refined by
/// logistic regression anchored at the prototypes, keeping the refinement step with the best
/// dev accuracy (checked every `every` steps, step 0 = plain prototypes), and a softmax
/// temperature fitted on dev. An MLP trained by minibatches barely moves in the few steps a
/// few hundred examples give it; this starts from a good solution instead.
pub fn train_prototype_head(
    task: &str,
    labels: &[String],
    (x_train, y_train): (&[Vec<f32>], &[usize]),
    (x_dev, y_dev): (&[Vec<f32>], &[usize]),
    refine: crate::taxonomy::RefineConfig,
    every: usize,
) -> Result<(Head, TrainReport)> {
    if x_train.is_empty() || x_dev.is_empty() || y_dev.len() != x_dev.len() {
        return Err(Error::Invalid(
            "training needs a non-empty train and dev set".into(),
        ));
    }
    let proto = crate::taxonomy::prototype_head(task, labels, x_train, y_train, 0.0)?;
    let (mut head, step, acc) = crate::taxonomy::refine_head_dev(
        &proto,
        x_train,
        y_train,
        refine,
        Some((x_dev, y_dev, every)),
    )?;
    let (w, b) = head
        .linear_parts()
        .ok_or_else(|| Error::Invalid("the prototype head is not linear".into()))?;
    let logits = to_tensor(x_dev)?.matmul(&w.t()?)?.broadcast_add(b)?;
    let (temperature, nll_raw, nll_cal) = fit_temperature(&logits, y_dev)?;
    head.meta.temperature = temperature as f32;
    let mut counts = vec![0usize; labels.len()];
    for &c in y_train {
        if let Some(n) = counts.get_mut(c) {
            *n += 1;
        }
    }
    let report = TrainReport {
        method: "prototype+lr".into(),
        epochs_run: refine.steps,
        best_epoch: step,
        dev_accuracy: acc,
        dev_nll_raw: nll_raw,
        dev_nll_calibrated: nll_cal,
        temperature,
        train_counts: labels.iter().cloned().zip(counts).collect(),
    };
    Ok((head, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_weights_silence_rows_and_weight_the_dev_score() {
        // label = (x > 0), a third of the rows flipped and weighted 0
        let mut rng = Rng::new(1);
        let (mut x, mut y, mut w) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..300 {
            let v = rng.next_f64() as f32 * 2.0 - 1.0;
            let flip = i % 3 == 0;
            x.push(vec![v, 1.0]);
            y.push(((v > 0.0) != flip) as usize);
            w.push(if flip { 0.0 } else { 1.0 });
        }
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let cfg = TrainConfig {
            hidden: 0,
            epochs: 40,
            lr: 0.05,
            ..TrainConfig::default()
        };
        let split = |weights| Split {
            x: &x,
            y: Targets::Single(&y),
            weights,
        };
        let (_, rep) = train_head_on("t", &labels, split(Some(&w)), split(Some(&w)), &cfg).unwrap();
        // the weighted dev accuracy counts the clean rows only
        assert!(rep.dev_accuracy > 0.95, "{rep:?}");
        let (_, plain) = train_head_on("t", &labels, split(None), split(None), &cfg).unwrap();
        assert!(plain.dev_accuracy < 0.8, "{plain:?}");
        let bad = train_head_on("t", &labels, split(Some(&w[..10])), split(None), &cfg);
        let e = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("row weights"), "{e}");
    }
}
