//! Category-polarity pairs (ccf2018: a comment's subjects, each with a polarity), scored two
//! ways on the same predicted categories (a multi-label category head such as `car_aspect`;
//! labels at probability >= 0.5, else the top one):
//! - **baseline**: every category gets the comment's sentence-level sentiment (`sentiment`);
//! - **aspects**: a category whose name occurs in the text gets the aspect polarity head's
//!   answer on that occurrence; the others keep the sentence-level sentiment.
//!
//! Scores: micro-F1 over (category, polarity) pairs and macro-F1 over the polarities (pair F1
//! per polarity, averaged), with 95% bootstrap intervals over comments.

use super::train::Encoded;
use super::{argmax, token_range, AspectModel, AspectSet, POLARITIES};
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::metrics::{bootstrap_by, Interval};
use crate::model::ModelSpec;
use serde::Serialize;
use std::collections::BTreeSet;

/// One way's pair scores.
#[derive(Debug, Clone, Serialize)]
pub struct PairScores {
    /// Micro-F1 over (category, polarity) pairs.
    pub micro_f1: f64,
    /// Macro-F1 over the polarities.
    pub macro_f1: f64,
    /// 95% bootstrap interval of the macro-F1.
    pub macro_f1_ci: Interval,
}

/// Both ways on one set.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryReport {
    /// The category head's task.
    pub category_task: String,
    /// Gold (category, polarity) pairs.
    pub gold_pairs: usize,
    /// Predicted categories, and how many of them the aspect head answered (name in text).
    pub predicted: (usize, usize),
    /// Categories with the sentence's sentiment.
    pub baseline: PairScores,
    /// Categories with the aspect polarity where their name occurs.
    pub aspects: PairScores,
}

type Pairs = BTreeSet<(String, usize)>;

/// Per polarity (true positives, predicted, gold), summed over `idx`.
fn counts(
    gold: &[Pairs],
    pred: &[Pairs],
    idx: &mut dyn Iterator<Item = usize>,
) -> [(usize, usize, usize); 3] {
    let mut c = [(0, 0, 0); 3];
    for i in idx {
        for p in &pred[i] {
            c[p.1].1 += 1;
            c[p.1].0 += gold[i].contains(p) as usize;
        }
        for g in &gold[i] {
            c[g.1].2 += 1;
        }
    }
    c
}

fn f1((t, p, g): (usize, usize, usize)) -> f64 {
    if p + g == 0 {
        0.0
    } else {
        2.0 * t as f64 / (p + g) as f64
    }
}

fn scores(c: &[(usize, usize, usize); 3]) -> (f64, f64) {
    let all = c
        .iter()
        .fold((0, 0, 0), |s, x| (s.0 + x.0, s.1 + x.1, s.2 + x.2));
    (f1(all), c.iter().map(|&x| f1(x)).sum::<f64>() / 3.0)
}

/// Scores both ways on `set` (its aspects are categories with polarities; `encoded[i]` is
/// sentence i's states) with `category_task`'s head and the `sentiment` head of `spec`.
#[allow(clippy::too_many_arguments)]
pub fn category_pairs(
    encoder: &Encoder,
    spec: &ModelSpec,
    model: &AspectModel,
    set: &AspectSet,
    encoded: &[Encoded],
    category_task: &str,
    rounds: usize,
    seed: u64,
) -> Result<CategoryReport> {
    let tasks = [category_task.to_string(), "sentiment".to_string()];
    let heads = spec.load_heads(Some(&tasks), encoder)?;
    let (cat, sent) = (&heads[0], &heads[1]);
    if !cat.meta.multi_label || sent.meta.labels != POLARITIES {
        return Err(Error::Invalid(format!(
            "{category_task} must be a multi-label head and sentiment's labels {POLARITIES:?}"
        )));
    }
    let texts: Vec<&str> = set.examples.iter().map(|e| e.text.as_str()).collect();
    let (embs, _) = encoder.encode(&texts)?;
    let cat_p = cat.predict(&embs)?;
    let sent_p = sent.predict(&embs)?;
    let mut gold = Vec::new();
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    let (mut predicted, mut answered) = (0, 0);
    for (i, ex) in set.examples.iter().enumerate() {
        gold.push(
            ex.aspects
                .iter()
                .filter_map(|a| {
                    let k = POLARITIES.iter().position(|p| *p == a.polarity)?;
                    Some((a.term.clone(), k))
                })
                .collect::<Pairs>(),
        );
        let mut on: Vec<usize> = (0..cat_p[i].len())
            .filter(|&k| cat_p[i][k] >= 0.5)
            .collect();
        if on.is_empty() {
            on.push(argmax(&cat_p[i]).0);
        }
        let s = argmax(&sent_p[i]).0;
        let chars: Vec<char> = ex.text.chars().collect();
        let enc = &encoded[i];
        let (mut b, mut o) = (Pairs::new(), Pairs::new());
        for k in on {
            let name = &cat.meta.labels[k];
            predicted += 1;
            b.insert((name.clone(), s));
            let nc: Vec<char> = name.chars().collect();
            let at = (0..=chars.len().saturating_sub(nc.len()))
                .find(|&j| chars.get(j..j + nc.len()) == Some(&nc[..]));
            let range = at.and_then(|j| token_range(&enc.spans, j, j + nc.len()));
            let pol = match range {
                Some(r) => {
                    answered += 1;
                    argmax(&model.polarity_probs(&enc.states, &ex.text, &enc.spans, &[r])?[0]).0
                }
                None => s,
            };
            o.insert((name.clone(), pol));
        }
        base.push(b);
        ours.push(o);
    }
    let n = set.examples.len();
    let (bs, os) = (
        scores(&counts(&gold, &base, &mut (0..n))),
        scores(&counts(&gold, &ours, &mut (0..n))),
    );
    let (bci, oci) = bootstrap_by(n, rounds, seed, |idx| {
        (
            scores(&counts(&gold, &base, &mut idx.iter().copied())).1,
            scores(&counts(&gold, &ours, &mut idx.iter().copied())).1,
        )
    });
    Ok(CategoryReport {
        category_task: category_task.to_string(),
        gold_pairs: gold.iter().map(BTreeSet::len).sum(),
        predicted: (predicted, answered),
        baseline: PairScores {
            micro_f1: bs.0,
            macro_f1: bs.1,
            macro_f1_ci: bci,
        },
        aspects: PairScores {
            micro_f1: os.0,
            macro_f1: os.1,
            macro_f1_ci: oci,
        },
    })
}

impl CategoryReport {
    /// Lines for the terminal.
    pub fn to_text(&self) -> String {
        let line = |w: &str, s: &PairScores| {
            format!(
                "  {w}: pair micro-F1 {:.1}, macro-F1 {:.1} [{:.1}, {:.1}]\n",
                100.0 * s.micro_f1,
                100.0 * s.macro_f1,
                100.0 * s.macro_f1_ci.lo,
                100.0 * s.macro_f1_ci.hi
            )
        };
        format!(
            "(category, polarity) pairs with {} categories ({} gold pairs; {} predicted categories, {} named in the text and answered by the aspect head):\n",
            self.category_task, self.gold_pairs, self.predicted.0, self.predicted.1
        ) + &line("sentence sentiment (baseline)", &self.baseline)
            + &line("aspect polarity where named", &self.aspects)
    }
}
