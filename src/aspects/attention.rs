//! Aspect-queried attention pooling for the polarity head (IAN / ATAE-style, on the same
//! cached last hidden states): the aspect span's mean state, projected, is the query; each
//! other text token of the sentence, projected, is a key, plus a learned bias per distance
//! bucket; the softmax-weighted mean of those tokens' states is appended to the fixed pooled
//! features ([`super::PolarityFeatures`]) before the polarity MLP. Trained jointly with the
//! MLP (AdamW, class- and row-weighted cross-entropy, early stopping on dev accuracy, a
//! dev-fitted temperature), seeded.

use crate::classify::{fit_temperature, head_forward, init, TrainReport};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

/// Distance buckets of the attention's position bias (distance in tokens from the span).
pub(crate) const DIST_BUCKETS: usize = 8;

fn bucket(d: usize) -> u32 {
    match d {
        0 | 1 => 0,
        2 => 1,
        3 => 2,
        4..=5 => 3,
        6..=8 => 4,
        9..=12 => 5,
        13..=20 => 6,
        _ => 7,
    }
}

/// One aspect as the attention reads it: its sentence's states and its context tokens
/// (every text token outside the span) with their distance buckets.
pub(crate) struct AttnRow<'a> {
    pub(crate) states: &'a [f32],
    pub(crate) ctx: Vec<(usize, u32)>,
}

impl<'a> AttnRow<'a> {
    /// The aspect at tokens `[a, b)` of a sequence with `states` and text-token mask `valid`.
    pub(crate) fn new(states: &'a [f32], valid: &[bool], a: usize, b: usize) -> AttnRow<'a> {
        let ctx = (0..valid.len())
            .filter(|&i| valid[i] && (i < a || i >= b))
            .map(|i| (i, bucket(if i < a { a - i } else { i + 1 - b })))
            .collect();
        AttnRow { states, ctx }
    }
}

/// The attention's weights: query and key projections (`dim x hidden`) and the distance bias.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub(crate) wq: Tensor,
    pub(crate) wk: Tensor,
    pub(crate) dist: Tensor,
}

/// A padded batch: context states `B x L x h`, bucket ids `B*L`, additive mask `B x L`.
fn batch(rows: &[&AttnRow], h: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let l = rows.iter().map(|r| r.ctx.len()).max().unwrap_or(0).max(1);
    let n = rows.len();
    let mut c = vec![0f32; n * l * h];
    let mut ids = vec![0u32; n * l];
    let mut mask = vec![-1e4f32; n * l];
    for (r, row) in rows.iter().enumerate() {
        for (j, &(t, bk)) in row.ctx.iter().enumerate() {
            let at = (r * l + j) * h;
            c[at..at + h].copy_from_slice(&row.states[t * h..(t + 1) * h]);
            ids[r * l + j] = bk;
            mask[r * l + j] = 0.0;
        }
    }
    let cpu = &Device::Cpu;
    Ok((
        Tensor::from_vec(c, (n, l, h), cpu)?,
        Tensor::from_vec(ids, n * l, cpu)?,
        Tensor::from_vec(mask, (n, l), cpu)?,
    ))
}

/// The attention-pooled context (`B x h`) of a batch whose fixed features `x` start with the
/// span's mean state.
fn pool(
    att: (&Tensor, &Tensor, &Tensor),
    x: &Tensor,
    rows: &[&AttnRow],
    h: usize,
) -> Result<Tensor> {
    let (wq, wk, dist) = att;
    let (c, ids, mask) = batch(rows, h)?;
    let (n, l, _) = c.dims3()?;
    let dim = wq.dim(0)?;
    let q = x.narrow(1, 0, h)?.matmul(&wq.t()?)?; // B x d
    let k = c
        .reshape((n * l, h))?
        .matmul(&wk.t()?)?
        .reshape((n, l, dim))?;
    let s = k.matmul(&q.unsqueeze(2)?)?.squeeze(2)?; // B x L
    let s = ((s / (dim as f64).sqrt())? + dist.index_select(&ids, 0)?.reshape((n, l))?)?;
    let a = candle_nn::ops::softmax(&(s + mask)?, D::Minus1)?;
    Ok(a.unsqueeze(1)?.matmul(&c)?.squeeze(1)?)
}

/// Logits of the attention + MLP head over fixed features `x` (`B x F`) and their rows.
pub(crate) fn forward(
    att: &Attention,
    mlp: (&Tensor, &Tensor, Option<&Tensor>, Option<&Tensor>),
    x: &Tensor,
    rows: &[&AttnRow],
    h: usize,
) -> Result<Tensor> {
    let p = pool((&att.wq, &att.wk, &att.dist), x, rows, h)?;
    let z = Tensor::cat(&[x, &p], 1)?;
    head_forward(&z, mlp.0, mlp.1, mlp.2, mlp.3)
}

/// Training data of one side (train or dev).
pub(crate) struct AttnSplit<'a> {
    pub(crate) x: &'a [Vec<f32>],
    pub(crate) rows: &'a [AttnRow<'a>],
    pub(crate) y: &'a [usize],
    pub(crate) w: &'a [f32],
}

/// Settings of [`train`].
pub(crate) struct AttnConfig {
    pub(crate) dim: usize,
    pub(crate) hidden: usize,
    pub(crate) epochs: usize,
    pub(crate) lr: f64,
    pub(crate) patience: usize,
    pub(crate) seed: u64,
    pub(crate) batch: usize,
}

/// The trained head: attention, MLP (`w1`, `b1`, `w2`, `b2`) and its report.
pub(crate) type Trained = (Attention, [Tensor; 4], TrainReport);

/// The logits of the rows `c` of `split` under the current variables (attention, then the MLP).
fn logits_of(vars: &[Var], split: &AttnSplit, c: &[usize], h: usize) -> Result<Tensor> {
    let x = Tensor::from_vec(
        c.iter().flat_map(|&i| split.x[i].iter().copied()).collect(),
        (c.len(), split.x[0].len()),
        &Device::Cpu,
    )?;
    let rows: Vec<&AttnRow> = c.iter().map(|&i| &split.rows[i]).collect();
    let att = Attention {
        wq: vars[0].as_tensor().clone(),
        wk: vars[1].as_tensor().clone(),
        dist: vars[2].as_tensor().clone(),
    };
    let mlp = (
        vars[3].as_tensor(),
        vars[4].as_tensor(),
        Some(vars[5].as_tensor()),
        Some(vars[6].as_tensor()),
    );
    forward(&att, mlp, &x, &rows, h)
}

fn logits_in_chunks(vars: &[Var], split: &AttnSplit, h: usize, chunk: usize) -> Result<Tensor> {
    let mut out = Vec::new();
    let idx: Vec<usize> = (0..split.x.len()).collect();
    for c in idx.chunks(chunk) {
        out.push(logits_of(vars, split, c, h)?);
    }
    Ok(Tensor::cat(&out, 0)?)
}

fn weighted_accuracy(logits: &Tensor, y: &[usize], w: &[f32]) -> Result<f64> {
    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let (mut hit, mut all) = (0f64, 0f64);
    for ((p, y), w) in pred.iter().zip(y).zip(w) {
        all += *w as f64;
        if *p as usize == *y {
            hit += *w as f64;
        }
    }
    Ok(hit / all.max(1e-9))
}

/// Trains the attention and a one-hidden-layer MLP over `[x, pooled]` with AdamW on
/// row-weighted, square-root class-weighted cross-entropy; keeps the epoch with the best
/// weighted dev accuracy and fits a temperature on dev.
pub(crate) fn train(
    labels: &[String],
    train: &AttnSplit,
    dev: &AttnSplit,
    h: usize,
    cfg: &AttnConfig,
) -> Result<Trained> {
    if train.x.is_empty() || dev.x.is_empty() || cfg.hidden == 0 {
        return Err(Error::Invalid(
            "attention polarity needs train and dev rows and a hidden layer".into(),
        ));
    }
    let k = labels.len();
    let f = train.x[0].len();
    let cpu = &Device::Cpu;
    // square-root class weights over the row-weighted counts, mean weight 1
    let mut counts = vec![0f64; k];
    let mut raw_counts = vec![0usize; k];
    for (&y, &w) in train.y.iter().zip(train.w) {
        counts[y] += w as f64;
        raw_counts[y] += 1;
    }
    let cw: Vec<f64> = counts
        .iter()
        .map(|&c| 1.0 / if c > 0.0 { c } else { 1.0 }.sqrt())
        .collect();
    let total: f64 = train.w.iter().map(|&w| w as f64).sum::<f64>().max(1e-9);
    let mean = train
        .y
        .iter()
        .zip(train.w)
        .map(|(&y, &w)| cw[y] * w as f64)
        .sum::<f64>()
        / total;
    let row_w: Vec<f32> = train
        .y
        .iter()
        .zip(train.w)
        .map(|(&y, &w)| (cw[y] / mean) as f32 * w)
        .collect();

    let mut rng = Rng::new(cfg.seed);
    let (wq, _) = init(&mut rng, cfg.dim, h)?;
    let (wk, _) = init(&mut rng, cfg.dim, h)?;
    let dist = Var::from_tensor(&Tensor::zeros(DIST_BUCKETS, DType::F32, cpu)?)?;
    let (w1, b1) = init(&mut rng, cfg.hidden, f + h)?;
    let (w2, b2) = init(&mut rng, k, cfg.hidden)?;
    let vars = vec![wq, wk, dist, w1, b1, w2, b2];
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let snapshot = |vars: &[Var]| -> Result<Vec<Tensor>> {
        vars.iter()
            .map(|v| v.as_tensor().copy().map_err(Error::from))
            .collect()
    };
    let mut best = (f64::NEG_INFINITY, 0usize, snapshot(&vars)?);
    let mut order: Vec<usize> = (0..train.x.len()).collect();
    let mut epochs_run = 0;
    for epoch in 1..=cfg.epochs {
        epochs_run = epoch;
        rng.shuffle(&mut order);
        for c in order.chunks(cfg.batch.max(1)) {
            let logits = logits_of(&vars, train, c, h)?;
            let y = Tensor::from_vec(c.iter().map(|&i| train.y[i] as u32).collect(), c.len(), cpu)?;
            let w = Tensor::from_vec(c.iter().map(|&i| row_w[i]).collect(), c.len(), cpu)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let picked = logp.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
            let loss = (picked.mul(&w)?.sum_all()? / -(c.len() as f64))?;
            opt.backward_step(&loss)?;
        }
        let dl = logits_in_chunks(&vars, dev, h, 256)?;
        let score = weighted_accuracy(&dl, dev.y, dev.w)?;
        if score > best.0 {
            best = (score, epoch, snapshot(&vars)?);
        } else if epoch - best.1 >= cfg.patience {
            break;
        }
    }
    let kept: Vec<Var> = best
        .2
        .iter()
        .map(Var::from_tensor)
        .collect::<std::result::Result<_, _>>()?;
    let dl = logits_in_chunks(&kept, dev, h, 256)?;
    let (temperature, nll_raw, nll_cal) = fit_temperature(&dl, dev.y)?;
    let mut t = best.2.into_iter();
    let mut next = || {
        t.next()
            .ok_or_else(|| Error::Invalid("lost a weight snapshot".into()))
    };
    let att = Attention {
        wq: next()?,
        wk: next()?,
        dist: next()?,
    };
    let mlp = [next()?, next()?, next()?, next()?];
    let report = TrainReport {
        method: "attention+mlp".into(),
        epochs_run,
        best_epoch: best.1,
        dev_accuracy: best.0,
        dev_nll_raw: nll_raw,
        dev_nll_calibrated: nll_cal,
        temperature,
        train_counts: labels.iter().cloned().zip(raw_counts).collect(),
    };
    Ok((att, mlp, report))
}
