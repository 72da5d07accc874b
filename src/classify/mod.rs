//! Classify: small heads over pooled embeddings (linear or one hidden layer), their training
//! with early stopping and temperature calibration (`train`), and prediction.
//!
//! A head is two files: `NAME.safetensors` (weights) and `NAME.json` ([`HeadMeta`]: labels,
//! shape, temperature, the encoder fingerprint it was trained on, and how it was trained).

use crate::error::{Error, Result};
use crate::record::TaskResult;
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod train;
pub(crate) use train::init;
pub use train::{
    fit_scale, fit_temperature, nll, train_head, train_head_on, train_prototype_head, ClassWeight,
    Split, Targets, TrainConfig, TrainReport, PROTOTYPE_REFINE,
};

/// Description of a trained head, stored as JSON beside its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadMeta {
    /// Task name (`sentiment`, `intent`, ...): the key of its result in the output.
    pub task: String,
    /// Labels in output order.
    pub labels: Vec<String>,
    /// Input width (the encoder's embedding width).
    pub input_dim: usize,
    /// Hidden width; 0 for a linear head.
    pub hidden: usize,
    /// Softmax temperature fitted on the dev split (1.0 = none).
    pub temperature: f32,
    /// Fingerprint of the encoder the head was trained on.
    pub encoder: String,
    /// Below this confidence the answer is `unknown` (few-shot heads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_below: Option<f32>,
    /// Independent sigmoid per label (aspect sets) instead of one softmax.
    #[serde(default)]
    pub multi_label: bool,
    /// Per-label category type (pain points: process, product_or_service, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    /// How it was trained: data, seed, settings, dev metrics.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// A loaded head.
pub struct Head {
    /// Its description.
    pub meta: HeadMeta,
    pub(crate) w1: Tensor,
    pub(crate) b1: Tensor,
    pub(crate) w2: Option<Tensor>,
    pub(crate) b2: Option<Tensor>,
    /// Heads that answer instead of this one for the comments of a language (the code
    /// `normalise` detects: `en`, `zh`, `zh-Hant`, `mixed`, `other`), with the same labels.
    /// Empty for most heads; the model bundle's `by_language` fills it.
    pub routes: Vec<(String, Head)>,
}

fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (
        stem.with_extension("json"),
        stem.with_extension("safetensors"),
    )
}

impl Head {
    /// A linear head from its weights `(labels, input_dim)` and bias `(labels)`.
    pub fn linear(meta: HeadMeta, w: Tensor, b: Tensor) -> Head {
        Head {
            meta,
            w1: w,
            b1: b,
            w2: None,
            b2: None,
            routes: Vec::new(),
        }
    }

    /// The weight and bias of a linear head (`None` for an MLP head).
    pub fn linear_parts(&self) -> Option<(&Tensor, &Tensor)> {
        match self.w2 {
            None => Some((&self.w1, &self.b1)),
            Some(_) => None,
        }
    }

    /// Loads `STEM.json` and `STEM.safetensors`.
    pub fn load(stem: &Path) -> Result<Head> {
        let (jp, wp) = paths(stem);
        let meta: HeadMeta =
            serde_json::from_str(&std::fs::read_to_string(&jp).map_err(|e| Error::io(&jp, e))?)
                .map_err(|e| Error::model(&jp, e.to_string()))?;
        let t = candle_core::safetensors::load(&wp, &Device::Cpu)?;
        let get = |k: &str| -> Result<Tensor> {
            t.get(k)
                .cloned()
                .ok_or_else(|| Error::model(&wp, format!("tensor {k} missing")))?
                .to_dtype(DType::F32)
                .map_err(Error::from)
        };
        let (w2, b2) = if meta.hidden > 0 {
            (Some(get("w2")?), Some(get("b2")?))
        } else {
            (None, None)
        };
        let head = Head {
            w1: get("w1")?,
            b1: get("b1")?,
            w2,
            b2,
            meta,
            routes: Vec::new(),
        };
        let out = head.w2.as_ref().unwrap_or(&head.w1).dim(0)?;
        if out != head.meta.labels.len() || head.w1.dim(1)? != head.meta.input_dim {
            return Err(Error::model(
                &wp,
                "weight shapes do not match the labels / input width",
            ));
        }
        Ok(head)
    }

    /// Writes `STEM.json` and `STEM.safetensors`.
    pub fn save(&self, stem: &Path) -> Result<()> {
        let (jp, wp) = paths(stem);
        if let Some(dir) = stem.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut t: HashMap<String, Tensor> = HashMap::new();
        t.insert("w1".into(), self.w1.clone());
        t.insert("b1".into(), self.b1.clone());
        if let (Some(w2), Some(b2)) = (&self.w2, &self.b2) {
            t.insert("w2".into(), w2.clone());
            t.insert("b2".into(), b2.clone());
        }
        candle_core::safetensors::save(&t, &wp)?;
        let json = serde_json::to_string_pretty(&self.meta)?;
        std::fs::write(&jp, json + "\n").map_err(|e| Error::io(&jp, e))?;
        Ok(())
    }

    /// Raw logits for a batch of embeddings `(n, input_dim)`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        head_forward(x, &self.w1, &self.b1, self.w2.as_ref(), self.b2.as_ref())
    }

    /// Calibrated probabilities, one row per embedding.
    pub fn predict(&self, embs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.predict_at(embs, self.meta.temperature)
    }

    /// Probabilities at softmax temperature `t` (1.0 = uncalibrated).
    ///
    /// Each embedding is computed on its own (a one-row matmul): a batched matmul may sum in
    /// an order that depends on the number of rows, and a last-bit difference can move a
    /// probability rounded to 4 places by 1e-4, so a comment's probabilities would depend on
    /// which comments shared its batch (a Spark partition, a `POST /score` batch, a chunk).
    pub fn predict_at(&self, embs: &[Vec<f32>], t: f32) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(embs.len());
        for e in embs {
            let x = to_tensor(std::slice::from_ref(e))?;
            let logits = (self.logits(&x)? / t as f64)?;
            let p = if self.meta.multi_label {
                candle_nn::ops::sigmoid(&logits)?
            } else {
                candle_nn::ops::softmax(&logits, D::Minus1)?
            };
            out.extend(p.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Adds `head` as this head's answer for comments in language `lang`. It must have the same
    /// labels, input width and kind (single- or multi-label); `lang` may be routed once.
    pub fn route(&mut self, lang: &str, head: Head) -> Result<()> {
        let (a, b) = (&self.meta, &head.meta);
        if a.labels != b.labels || a.input_dim != b.input_dim || a.multi_label != b.multi_label {
            return Err(Error::Invalid(format!(
                "task {}: the head for language {lang:?} ({}) must have the same labels and input width as the task's head",
                a.task, b.task
            )));
        }
        if self.routes.iter().any(|(l, _)| l == lang) {
            return Err(Error::Invalid(format!(
                "task {}: language {lang:?} is routed twice",
                a.task
            )));
        }
        self.routes.push((lang.to_string(), head));
        Ok(())
    }

    /// Calibrated probabilities with each row answered by the head of its language
    /// (`langs[i]` is row i's), or by this head where no route names the language.
    pub fn predict_routed(&self, embs: &[Vec<f32>], langs: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.routed(embs, langs, None)
    }

    /// [`Head::predict_routed`] at softmax temperature `t` for every head.
    pub fn predict_routed_at(
        &self,
        embs: &[Vec<f32>],
        langs: &[&str],
        t: f32,
    ) -> Result<Vec<Vec<f32>>> {
        self.routed(embs, langs, Some(t))
    }

    fn routed(&self, embs: &[Vec<f32>], langs: &[&str], t: Option<f32>) -> Result<Vec<Vec<f32>>> {
        if langs.len() != embs.len() {
            return Err(Error::Invalid(format!(
                "{} embeddings but {} languages",
                embs.len(),
                langs.len()
            )));
        }
        let run = |h: &Head, rows: &[Vec<f32>]| h.predict_at(rows, t.unwrap_or(h.meta.temperature));
        if self.routes.is_empty() {
            return run(self, embs);
        }
        // rows grouped by the head that answers them (index 0 = this head), order kept
        let pick = |lang: &str| {
            self.routes
                .iter()
                .position(|(l, _)| l == lang)
                .map_or(0, |i| i + 1)
        };
        let who: Vec<usize> = langs.iter().map(|l| pick(l)).collect();
        let mut out = vec![Vec::new(); embs.len()];
        for k in 0..=self.routes.len() {
            let idx: Vec<usize> = (0..embs.len()).filter(|&i| who[i] == k).collect();
            if idx.is_empty() {
                continue;
            }
            let rows: Vec<Vec<f32>> = idx.iter().map(|&i| embs[i].clone()).collect();
            let head = if k == 0 { self } else { &self.routes[k - 1].1 };
            for (i, p) in idx.into_iter().zip(run(head, &rows)?) {
                out[i] = p;
            }
        }
        Ok(out)
    }

    /// Turns one probability row into a task result (label, confidence, top alternatives,
    /// and for sentiment the score P(positive) - P(negative)); `unknown` below the head's
    /// threshold.
    pub fn result(&self, probs: &[f32]) -> TaskResult {
        if self.meta.multi_label {
            return multi_label_result(&self.meta.labels, probs);
        }
        let mut r = to_result(
            &self.meta.task,
            &self.meta.labels,
            probs,
            self.meta.unknown_below,
        );
        if let Some(kinds) = &self.meta.kinds {
            r.kind = self
                .meta
                .labels
                .iter()
                .position(|l| *l == r.label)
                .map(|i| kinds[i].clone());
        }
        r
    }
}

/// The label written when a few-shot head is not confident enough.
pub const UNKNOWN: &str = "unknown";

/// Builds the output record of one task from its probabilities. Below `unknown_below` the
/// label is [`UNKNOWN`] and the best category leads the alternatives.
pub fn to_result(
    task: &str,
    labels: &[String],
    probs: &[f32],
    unknown_below: Option<f32>,
) -> TaskResult {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let best = order.first().copied().unwrap_or(0);
    let unknown = unknown_below.is_some_and(|t| probs.get(best).copied().unwrap_or(0.0) < t);
    let p = |name: &str| labels.iter().position(|l| l == name).map(|i| probs[i]);
    let score = if task == "sentiment" {
        match (p("positive"), p("negative")) {
            (Some(pos), Some(neg)) => Some(round4(pos - neg)),
            _ => None,
        }
    } else {
        None
    };
    TaskResult {
        label: if unknown {
            UNKNOWN.to_string()
        } else {
            labels.get(best).cloned().unwrap_or_default()
        },
        confidence: round4(probs.get(best).copied().unwrap_or(0.0)),
        probs: labels
            .iter()
            .cloned()
            .zip(probs.iter().map(|&x| round4(x)))
            .collect::<BTreeMap<_, _>>(),
        score,
        kind: None,
        labels: Vec::new(),
        alternatives: order
            .iter()
            .skip(usize::from(!unknown))
            .take(3)
            .map(|&i| (labels[i].clone(), round4(probs[i])))
            .collect(),
    }
}

/// The result of a multi-label head: every label with probability >= 0.5 in `labels` (most
/// probable first), `label` the most probable of them or `none`.
pub fn multi_label_result(labels: &[String], probs: &[f32]) -> TaskResult {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let on: Vec<String> = order
        .iter()
        .filter(|&&i| probs[i] >= 0.5)
        .map(|&i| labels[i].clone())
        .collect();
    let best = order.first().copied().unwrap_or(0);
    TaskResult {
        label: on.first().cloned().unwrap_or_else(|| "none".into()),
        confidence: round4(probs.get(best).copied().unwrap_or(0.0)),
        probs: labels
            .iter()
            .cloned()
            .zip(probs.iter().map(|&x| round4(x)))
            .collect(),
        score: None,
        kind: None,
        alternatives: Vec::new(),
        labels: on,
    }
}

fn round4(x: f32) -> f32 {
    (x * 10_000.0).round() / 10_000.0
}

/// Stacks embeddings into an `(n, d)` tensor.
pub fn to_tensor(embs: &[Vec<f32>]) -> Result<Tensor> {
    let d = embs.first().map_or(0, Vec::len);
    let flat: Vec<f32> = embs.iter().flat_map(|e| e.iter().copied()).collect();
    Ok(Tensor::from_vec(flat, (embs.len(), d), &Device::Cpu)?)
}

/// A head's logits: linear, or linear-GELU-linear.
pub(crate) fn head_forward(
    x: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: Option<&Tensor>,
    b2: Option<&Tensor>,
) -> Result<Tensor> {
    let h = x.matmul(&w1.t()?)?.broadcast_add(b1)?;
    match (w2, b2) {
        (Some(w2), Some(b2)) => Ok(h.gelu_erf()?.matmul(&w2.t()?)?.broadcast_add(b2)?),
        _ => Ok(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn toy(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        // three well-separated clusters in 8 dimensions with noise
        let mut rng = Rng::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            let v: Vec<f32> = (0..8)
                .map(|j| if j == c { 1.0 } else { 0.0 } + (rng.next_f64() as f32 - 0.5) * 0.6)
                .collect();
            x.push(v);
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn routes_rows_by_language_and_keeps_their_order() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let meta = |task: &str, labels: &[String]| HeadMeta {
            task: task.into(),
            labels: labels.to_vec(),
            input_dim: 8,
            hidden: 0,
            temperature: 1.0,
            encoder: String::new(),
            unknown_below: None,
            multi_label: false,
            kinds: None,
            training: serde_json::Value::Null,
        };
        // the main head follows the input's largest coordinate, the English one reverses it
        let eye: Vec<f32> = (0..3)
            .flat_map(|i| (0..8).map(move |j| if i == j { 10.0 } else { 0.0 }))
            .collect();
        let rev: Vec<f32> = (0..3)
            .flat_map(|i| (0..8).map(move |j| if 2 - i == j { 10.0 } else { 0.0 }))
            .collect();
        let w = |v: Vec<f32>| Tensor::from_vec(v, (3, 8), &Device::Cpu).unwrap();
        let b = || Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let mut head = Head::linear(meta("t", &labels), w(eye.clone()), b());
        let en = Head::linear(meta("t", &labels), w(rev.clone()), b());
        head.route("en", en).unwrap();
        let (x, _) = toy(6, 3); // rows 0..6 belong to clusters 0, 1, 2, 0, 1, 2
        let langs = ["zh", "en", "zh", "en", "mixed", "en"];
        let p = head.predict_routed(&x, &langs).unwrap();
        let top: Vec<usize> = p
            .iter()
            .map(|r| (0..3).max_by(|&i, &j| r[i].total_cmp(&r[j])).unwrap())
            .collect();
        assert_eq!(top, vec![0, 1, 2, 2, 1, 0]);
        // rows of an unrouted language get exactly the main head's answer
        let plain = head.predict(&x).unwrap();
        assert_eq!(p[0], plain[0]);
        assert_eq!(p[4], plain[4]);
        assert_ne!(p[3], plain[3]);
        // a route must have the task's labels, and a language is routed once
        let other: Vec<String> = ["a", "b", "x"].iter().map(|s| s.to_string()).collect();
        let bad = Head::linear(meta("t", &other), w(rev.clone()), b());
        let e = head.route("zh", bad).unwrap_err().to_string();
        assert!(e.contains("same labels"), "{e}");
        let again = Head::linear(meta("t", &labels), w(rev), b());
        let e = head.route("en", again).unwrap_err().to_string();
        assert!(e.contains("routed twice"), "{e}");
        assert!(head.predict_routed(&x, &langs[..2]).is_err());
    }

    #[test]
    fn a_rows_probabilities_do_not_depend_on_its_batch() {
        // the shipped heads' shapes: 384 inputs, an MLP of 256, 12 labels; random weights
        let mut rng = Rng::new(7);
        let mut t = |r: usize, c: usize| {
            let v: Vec<f32> = (0..r * c).map(|_| rng.next_f64() as f32 - 0.5).collect();
            Tensor::from_vec(v, (r, c), &Device::Cpu).unwrap()
        };
        let (w1, w2) = (t(256, 384), t(12, 256));
        let (b1, b2) = (t(1, 256).squeeze(0).unwrap(), t(1, 12).squeeze(0).unwrap());
        let meta = HeadMeta {
            task: "t".into(),
            labels: (0..12).map(|i| format!("l{i}")).collect(),
            input_dim: 384,
            hidden: 256,
            temperature: 0.7,
            encoder: String::new(),
            unknown_below: None,
            multi_label: false,
            kinds: None,
            training: serde_json::Value::Null,
        };
        let mut head = Head::linear(meta, w1, b1);
        head.w2 = Some(w2);
        head.b2 = Some(b2);
        let x: Vec<Vec<f32>> = (0..70)
            .map(|_| (0..384).map(|_| rng.next_f64() as f32 - 0.5).collect())
            .collect();
        let all = head.predict(&x).unwrap();
        // bit for bit: alone, in batches of 7 and 32, and in another order
        for (i, e) in x.iter().enumerate() {
            assert_eq!(head.predict(std::slice::from_ref(e)).unwrap()[0], all[i]);
        }
        for size in [7, 32] {
            let parts: Vec<Vec<f32>> = x
                .chunks(size)
                .flat_map(|c| head.predict(c).unwrap())
                .collect();
            assert_eq!(parts, all);
        }
        let rev: Vec<Vec<f32>> = x.iter().rev().cloned().collect();
        let mut back = head.predict(&rev).unwrap();
        back.reverse();
        assert_eq!(back, all);
        assert!(head.predict(&[]).unwrap().is_empty());
    }

    #[test]
    fn trains_saves_loads_and_predicts_deterministically() {
        let labels: Vec<String> = ["negative", "neutral", "positive"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (xt, yt) = toy(300, 1);
        let (xd, yd) = toy(90, 2);
        let cfg = TrainConfig {
            hidden: 16,
            epochs: 30,
            ..TrainConfig::default()
        };
        let (yt, yd) = (Targets::Single(&yt), Targets::Single(&yd));
        let (head, rep) = train_head("sentiment", &labels, &xt, yt, &xd, yd, &cfg).unwrap();
        assert!(rep.dev_accuracy > 0.95, "{rep:?}");
        assert!(rep.dev_nll_calibrated <= rep.dev_nll_raw + 1e-12);
        let (head2, _) = train_head("sentiment", &labels, &xt, yt, &xd, yd, &cfg).unwrap();
        let p1 = head.predict(&xd).unwrap();
        assert_eq!(p1, head2.predict(&xd).unwrap(), "same seed, same head");
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("heads/sentiment");
        head.save(&stem).unwrap();
        let loaded = Head::load(&stem).unwrap();
        assert_eq!(loaded.predict(&xd).unwrap(), p1);
        let r = loaded.result(&p1[2]);
        assert_eq!(r.label, "positive");
        let s = r.score.unwrap();
        assert!((s - (r.probs["positive"] - r.probs["negative"])).abs() < 2e-4);
        assert_eq!(r.alternatives.len(), 2);
    }

    #[test]
    fn multi_label_head_learns_label_sets() {
        let labels: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let mut rng = Rng::new(3);
        let mut make = |n: usize| {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for i in 0..n {
                let set: Vec<usize> = (0..3).filter(|j| (i >> j) & 1 == 1).collect();
                let v: Vec<f32> = (0..6)
                    .map(|j| if j < 3 && set.contains(&j) { 1.0 } else { 0.0 } + (rng.next_f64() as f32 - 0.5) * 0.4)
                    .collect();
                xs.push(v);
                ys.push(set);
            }
            (xs, ys)
        };
        let (xt, yt) = make(400);
        let (xd, yd) = make(80);
        let cfg = TrainConfig {
            hidden: 0,
            epochs: 80,
            lr: 0.01,
            ..TrainConfig::default()
        };
        let (head, rep) = train_head(
            "aspects",
            &labels,
            &xt,
            Targets::Multi(&yt),
            &xd,
            Targets::Multi(&yd),
            &cfg,
        )
        .unwrap();
        assert!(rep.dev_accuracy > 0.95, "micro-F1 {rep:?}");
        assert!(head.meta.multi_label);
        let p = head
            .predict(&[vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0], vec![0.0; 6]])
            .unwrap();
        let mut on = head.result(&p[0]).labels;
        on.sort();
        assert_eq!(on, vec!["x", "z"]);
        assert_eq!(head.result(&p[1]).label, "none");
    }
}
