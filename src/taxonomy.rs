//! Taxonomies as data: a task's categories with names, descriptions and seed examples in a
//! TOML file the user edits, and the few-shot classifier built from the seeds alone.
//!
//! The few-shot classifier is a nearest-prototype model: each category's prototype is the
//! normalised mean embedding of its seed examples, a comment's logits are its cosine
//! similarities to the prototypes times a scale, and the scale is fitted by leave-one-out on
//! the seeds (each seed classified against prototypes built without it) to minimise NLL, so
//! the confidence is calibrated. Below `unknown_below` confidence the answer is `unknown`.
//! The result is an ordinary linear [`Head`] (weights = scaled prototypes).

use crate::classify::{fit_scale, Head, HeadMeta};
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use serde::Deserialize;
use std::path::Path;

/// The journey stages of the shipped `journey_stage` taxonomy, in journey order (its `other`
/// left out): the report's order when no taxonomy is at hand, and the values a stage filter
/// may take.
pub const JOURNEY_STAGES: &[&str] = &[
    "pre_purchase",
    "purchase_payment",
    "delivery",
    "use",
    "after_sales_returns",
    "customer_service",
    "account_membership",
];

/// One category of a taxonomy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Stable id, the label written to outputs.
    pub id: String,
    /// English display name.
    pub name_en: String,
    /// Chinese display name.
    pub name_zh: String,
    /// One-line description.
    pub description: String,
    /// Pain-point type (process, product_or_service, emotional, support, none), if any.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Seed examples (both languages).
    pub examples: Vec<String>,
}

/// A task's taxonomy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// Task name.
    pub task: String,
    /// What the task decides.
    pub description: String,
    /// Confidence below which the few-shot answer is `unknown` (default 0.3).
    #[serde(default = "default_unknown")]
    pub unknown_below: f32,
    /// Categories in output order.
    #[serde(rename = "category")]
    pub categories: Vec<Category>,
}

fn default_unknown() -> f32 {
    0.3
}

impl Taxonomy {
    /// Reads and checks a taxonomy file (unique ids, at least one example per category).
    pub fn load(path: &Path) -> Result<Taxonomy> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let t: Taxonomy = toml::from_str(&s).map_err(|e| Error::input(path, e.to_string()))?;
        if t.categories.len() < 2 {
            return Err(Error::input(
                path,
                "a taxonomy needs at least two categories",
            ));
        }
        for (i, c) in t.categories.iter().enumerate() {
            if t.categories[..i].iter().any(|d| d.id == c.id) {
                return Err(Error::input(
                    path,
                    format!("category id {:?} appears twice", c.id),
                ));
            }
            if c.examples.iter().all(|e| e.trim().is_empty()) {
                return Err(Error::input(
                    path,
                    format!("category {:?} has no seed example", c.id),
                ));
            }
        }
        Ok(t)
    }

    /// Category ids in order.
    pub fn labels(&self) -> Vec<String> {
        self.categories.iter().map(|c| c.id.clone()).collect()
    }

    /// All seed examples with their category index.
    pub fn seeds(&self) -> (Vec<String>, Vec<usize>) {
        let mut texts = Vec::new();
        let mut ys = Vec::new();
        for (i, c) in self.categories.iter().enumerate() {
            for e in c.examples.iter().filter(|e| !e.trim().is_empty()) {
                texts.push(e.clone());
                ys.push(i);
            }
        }
        (texts, ys)
    }
}

fn normalised_mean(rows: &[&Vec<f32>], dim: usize) -> Vec<f32> {
    let mut m = vec![0f32; dim];
    for r in rows {
        for (a, b) in m.iter_mut().zip(r.iter()) {
            *a += b;
        }
    }
    let n = m.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    m.iter().map(|x| x / n).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Builds the nearest-prototype head from labelled embeddings (`y[i]` in `0..labels.len()`),
/// with the scale fitted by leave-one-out. `unknown_below` is stored in the head.
pub fn prototype_head(
    task: &str,
    labels: &[String],
    embs: &[Vec<f32>],
    y: &[usize],
    unknown_below: f32,
) -> Result<Head> {
    let k = labels.len();
    let dim = embs.first().map_or(0, Vec::len);
    if let Some(c) = (0..k).find(|c| !y.contains(c)) {
        return Err(Error::Invalid(format!(
            "category {:?} has no example",
            labels[c]
        )));
    }
    // Centre on the mean of all examples: e5 embeddings share a large common direction, and
    // prototypes of the centred vectors separate the categories better.
    let centre: Vec<f32> = (0..dim)
        .map(|j| embs.iter().map(|e| e[j]).sum::<f32>() / embs.len().max(1) as f32)
        .collect();
    let centred: Vec<Vec<f32>> = embs
        .iter()
        .map(|e| e.iter().zip(&centre).map(|(x, c)| x - c).collect())
        .collect();
    let embs = &centred;
    let members: Vec<Vec<&Vec<f32>>> = (0..k)
        .map(|c| {
            embs.iter()
                .zip(y)
                .filter(|(_, &l)| l == c)
                .map(|(e, _)| e)
                .collect()
        })
        .collect();
    let protos: Vec<Vec<f32>> = members.iter().map(|m| normalised_mean(m, dim)).collect();
    // leave-one-out similarities for the scale
    let sums: Vec<Vec<f32>> = members
        .iter()
        .map(|m| (0..dim).map(|j| m.iter().map(|r| r[j]).sum()).collect())
        .collect();
    let mut sims = Vec::with_capacity(embs.len() * k);
    let mut loo_y = Vec::new();
    for (e, &c) in embs.iter().zip(y) {
        if members[c].len() < 2 {
            continue;
        }
        for (j, p) in protos.iter().enumerate() {
            if j == c {
                let held: Vec<f32> = sums[c].iter().zip(e).map(|(s, x)| s - x).collect();
                let n = held.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                sims.push(dot(e, &held) / n);
            } else {
                sims.push(dot(e, p));
            }
        }
        loo_y.push(c);
    }
    let scale = if loo_y.is_empty() {
        20.0
    } else {
        let t = Tensor::from_vec(sims, (loo_y.len(), k), &Device::Cpu)?;
        fit_scale(&t, &loo_y)?
    };
    // logits = scale * (x - centre) . p  =  (scale p) . x  -  scale (centre . p)
    let w: Vec<f32> = protos.iter().flatten().map(|x| x * scale as f32).collect();
    let bias: Vec<f32> = protos
        .iter()
        .map(|p| -(scale as f32) * dot(&centre, p))
        .collect();
    let w = Tensor::from_vec(w, (k, dim), &Device::Cpu)?;
    let b = Tensor::from_vec(bias, k, &Device::Cpu)?;
    Ok(Head::linear(
        HeadMeta {
            task: task.to_string(),
            labels: labels.to_vec(),
            input_dim: dim,
            hidden: 0,
            temperature: 1.0,
            encoder: String::new(),
            unknown_below: (unknown_below > 0.0).then_some(unknown_below),
            multi_label: false,
            kinds: None,
            training: serde_json::json!({"method": "nearest prototype (few-shot)", "scale": scale, "examples": embs.len()}),
        },
        w,
        b,
    ))
}

/// Settings of [`refine_head`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefineConfig {
    /// Full-batch AdamW steps.
    pub steps: usize,
    /// Learning rate.
    pub lr: f64,
    /// Weight of the L2 pull towards the prototype weights (per weight, summed).
    pub anchor: f64,
}

/// Refines a linear few-shot head on its own examples: full-batch cross-entropy plus an L2 pull
/// towards the starting (prototype) weights, i.e. logistic regression anchored at the nearest-
/// prototype solution. Deterministic (no sampling).
pub fn refine_head(head: &Head, embs: &[Vec<f32>], y: &[usize], cfg: RefineConfig) -> Result<Head> {
    Ok(refine_head_dev(head, embs, y, cfg, None)?.0)
}

/// A dev set for [`refine_head_dev`]: embeddings, their labels, and how many steps apart the
/// dev accuracy is checked.
pub type RefineDev<'a> = (&'a [Vec<f32>], &'a [usize], usize);

/// [`refine_head`], and with a dev set `(embs, labels, every)`: the dev accuracy is measured at
/// step 0 and every `every` steps, and the weights of the best (earliest on ties) are kept.
/// Returns the head, the step kept and its dev accuracy (NaN without a dev set).
pub fn refine_head_dev(
    head: &Head,
    embs: &[Vec<f32>],
    y: &[usize],
    cfg: RefineConfig,
    dev: Option<RefineDev>,
) -> Result<(Head, usize, f64)> {
    use candle_core::Var;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};
    let (w0, b0) = head
        .linear_parts()
        .ok_or_else(|| Error::Invalid("only a linear head can be refined".into()))?;
    let dim = embs.first().map_or(0, Vec::len);
    let rows = |e: &[Vec<f32>]| {
        Tensor::from_vec(
            e.iter().flatten().copied().collect(),
            (e.len(), dim),
            &Device::Cpu,
        )
    };
    let x = rows(embs)?;
    let yt = Tensor::from_vec(y.iter().map(|&c| c as u32).collect(), y.len(), &Device::Cpu)?;
    let w = Var::from_tensor(w0)?;
    let b = Var::from_tensor(b0)?;
    let mut opt = AdamW::new(
        vec![w.clone(), b.clone()],
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let dev = match dev {
        Some((e, l, every)) if !e.is_empty() && e.len() == l.len() => {
            Some((rows(e)?, l, every.max(1)))
        }
        _ => None,
    };
    let accuracy = |w: &Tensor, b: &Tensor| -> Result<f64> {
        let Some((xd, yd, _)) = &dev else {
            return Ok(f64::NAN);
        };
        let pred: Vec<u32> = xd
            .matmul(&w.t()?)?
            .broadcast_add(b)?
            .argmax(candle_core::D::Minus1)?
            .to_vec1()?;
        let hits = pred
            .iter()
            .zip(yd.iter())
            .filter(|(p, y)| **p as usize == **y);
        Ok(hits.count() as f64 / yd.len().max(1) as f64)
    };
    let mut best = (accuracy(w0, b0)?, 0usize, w0.copy()?, b0.copy()?);
    for step in 1..=cfg.steps {
        let logits = x
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(b.as_tensor())?;
        let ce = candle_nn::loss::cross_entropy(&logits, &yt)?;
        let reg = (w.as_tensor() - w0)?
            .sqr()?
            .sum_all()?
            .affine(cfg.anchor, 0.0)?;
        opt.backward_step(&(ce + reg)?)?;
        let check = dev.as_ref().map_or(step == cfg.steps, |d| step % d.2 == 0);
        if check {
            let acc = accuracy(w.as_tensor(), b.as_tensor())?;
            if dev.is_none() || acc > best.0 {
                best = (acc, step, w.as_tensor().copy()?, b.as_tensor().copy()?);
            }
        }
    }
    let mut meta = head.meta.clone();
    meta.training = serde_json::json!({
        "method": "nearest prototype, refined (anchored logistic regression)",
        "prototype": head.meta.training,
        "refine": {"steps": cfg.steps, "lr": cfg.lr, "anchor": cfg.anchor, "kept_step": best.1},
    });
    Ok((Head::linear(meta, best.2, best.3), best.1, best.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_shipped_taxonomies() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/taxonomies");
        let intent = Taxonomy::load(&root.join("intent.toml")).unwrap();
        assert_eq!(
            intent.labels(),
            [
                "complaint",
                "question",
                "request",
                "praise",
                "suggestion",
                "other"
            ]
        );
        let pain = Taxonomy::load(&root.join("pain_point.toml")).unwrap();
        assert!(pain.labels().contains(&"none".to_string()) && pain.labels().len() >= 11);
        for c in &pain.categories {
            assert!(c.kind.is_some(), "{} lacks its pain-point type", c.id);
            assert!(c.examples.len() >= 5);
        }
        let stage = Taxonomy::load(&root.join("journey_stage.toml")).unwrap();
        // JOURNEY_STAGES is the shipped taxonomy's stages, in order, then `other`.
        let mut want: Vec<&str> = JOURNEY_STAGES.to_vec();
        want.push("other");
        assert_eq!(stage.labels(), want);
        for c in &stage.categories {
            // Seeds in simplified and traditional Chinese and in English.
            let has = |f: fn(char) -> bool| c.examples.iter().any(|e| e.chars().any(f));
            assert!(has(|ch| ch.is_ascii_alphabetic()), "{}", c.id);
            assert!(
                has(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
                "{}",
                c.id
            );
            assert!(!c.name_zh.is_empty() && !c.name_en.is_empty());
        }
    }

    #[test]
    fn bad_taxonomies_are_rejected_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        let cat = |id: &str| {
            format!("[[category]]\nid = \"{id}\"\nname_en = \"A\"\nname_zh = \"甲\"\ndescription = \"d\"\nexamples = [\"x\"]\n")
        };
        std::fs::write(
            &p,
            format!(
                "task = \"t\"\ndescription = \"d\"\n{}{}",
                cat("a"),
                cat("a")
            ),
        )
        .unwrap();
        let e = Taxonomy::load(&p).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn prototypes_classify_and_say_unknown() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let e = |x: f32, y: f32| {
            let n = (x * x + y * y).sqrt();
            vec![x / n, y / n]
        };
        let embs = vec![
            e(1.0, 0.1),
            e(1.0, -0.1),
            e(0.9, 0.2),
            e(0.1, 1.0),
            e(-0.1, 1.0),
            e(0.2, 0.9),
        ];
        let y = vec![0, 0, 0, 1, 1, 1];
        let head = prototype_head("t", &labels, &embs, &y, 0.6).unwrap();
        let p = head
            .predict(&[e(1.0, 0.0), e(0.0, 1.0), e(1.0, 1.0)])
            .unwrap();
        assert!(p[0][0] > 0.9 && p[1][1] > 0.9, "{p:?}");
        assert_eq!(head.result(&p[0]).label, "a");
        // equidistant: about 50/50, below the threshold
        assert_eq!(head.result(&p[2]).label, "unknown");
        assert_eq!(head.result(&p[2]).alternatives.len(), 2);
    }
}

#[cfg(test)]
mod refine_tests {
    use super::*;
    use crate::rng::Rng;

    fn loss_and_acc(head: &Head, x: &[Vec<f32>], y: &[usize]) -> (f64, f64) {
        let probs = head.predict(x).unwrap();
        let mut loss = 0.0;
        let mut right = 0;
        for (p, &c) in probs.iter().zip(y) {
            loss -= f64::from(p[c].max(1e-9)).ln();
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            right += usize::from(best == c);
        }
        (loss / y.len() as f64, right as f64 / y.len() as f64)
    }

    #[test]
    fn refining_fits_the_shots_better_and_is_deterministic() {
        // Three overlapping, anisotropic classes in 8 dimensions.
        let mut rng = Rng::new(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..90 {
            let c = i % 3;
            let v: Vec<f32> = (0..8)
                .map(|j| {
                    let noise = (rng.next_f64() as f32 - 0.5) * if j == 0 { 6.0 } else { 1.0 };
                    noise + if j == c + 1 { 0.8 } else { 0.0 }
                })
                .collect();
            x.push(v);
            y.push(c);
        }
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let proto = prototype_head("t", &labels, &x, &y, 0.0).unwrap();
        let cfg = RefineConfig {
            steps: 300,
            lr: 3e-2,
            anchor: 0.0,
        };
        let refined = refine_head(&proto, &x, &y, cfg).unwrap();
        let (l0, a0) = loss_and_acc(&proto, &x, &y);
        let (l1, a1) = loss_and_acc(&refined, &x, &y);
        assert!(l1 < l0 * 0.9, "loss {l0} -> {l1}");
        assert!(a1 >= a0, "accuracy {a0} -> {a1}");
        let again = refine_head(&proto, &x, &y, cfg).unwrap();
        assert_eq!(refined.predict(&x).unwrap(), again.predict(&x).unwrap());
        assert_eq!(refined.meta.labels, labels);
    }
}
