//! Measuring the aspect heads on labelled sentences: aspect span extraction (exact character
//! match, micro precision / recall / F1 over the sentences whose aspects all have spans) and
//! polarity accuracy and macro-F1 on the gold aspects, each with a 95% bootstrap interval
//! over sentences (`metrics::bootstrap_by`, percentile method).

use super::data::AspectSet;
use super::train::Encoded;
use super::{token_range, AspectModel, POLARITIES};
use crate::error::{Error, Result};
use crate::metrics::{bootstrap, bootstrap_by, single_label, Interval};
use serde::Serialize;
use std::collections::BTreeSet;

/// Span extraction figures.
#[derive(Debug, Clone, Serialize)]
pub struct Extraction {
    /// Sentences scored (those whose aspects all have spans).
    pub sentences: usize,
    /// Gold and predicted aspect spans.
    pub gold: usize,
    /// Predicted spans.
    pub predicted: usize,
    /// Exact matches.
    pub correct: usize,
    /// Micro precision.
    pub precision: f64,
    /// Micro recall.
    pub recall: f64,
    /// Micro F1.
    pub f1: f64,
    /// 95% bootstrap interval of F1.
    pub f1_ci: Interval,
}

/// Polarity on gold aspects.
#[derive(Debug, Clone, Serialize)]
pub struct Polarity {
    /// Aspects scored (a span and a polarity in [`POLARITIES`]).
    pub aspects: usize,
    /// Gold aspects left out: no span (their words are not in the text) or another polarity
    /// (`conflict`).
    pub skipped: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// 95% bootstrap interval of accuracy.
    pub accuracy_ci: Interval,
    /// Macro-F1 over [`POLARITIES`].
    pub macro_f1: f64,
    /// 95% bootstrap interval of macro-F1.
    pub macro_f1_ci: Interval,
    /// Confusion matrix, rows gold, columns predicted, in [`POLARITIES`] order.
    pub confusion: Vec<Vec<usize>>,
}

/// An evaluation of the aspect heads on one labelled set.
#[derive(Debug, Clone, Serialize)]
pub struct AspectEvalReport {
    /// The files.
    pub data: Vec<String>,
    /// Sentences.
    pub sentences: usize,
    /// Gold aspects; of those given without offsets, how many were placed by search.
    pub aspects: usize,
    /// Aspects given without offsets, and how many of them were found in the text.
    pub searched: (usize, usize),
    /// Span extraction.
    pub extraction: Extraction,
    /// Polarity on gold aspects.
    pub polarity: Polarity,
    /// (category, polarity) pairs against a category head, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<super::categories::CategoryReport>,
}

fn f1(c: usize, p: usize, g: usize) -> (f64, f64, f64) {
    let pr = if p > 0 { c as f64 / p as f64 } else { 0.0 };
    let re = if g > 0 { c as f64 / g as f64 } else { 0.0 };
    let f = if pr + re > 0.0 {
        2.0 * pr * re / (pr + re)
    } else {
        0.0
    };
    (pr, re, f)
}

/// Evaluates `model` on `set` with its encoder states (`encoded[i]` is example i's).
pub fn evaluate_aspects(
    model: &AspectModel,
    set: &AspectSet,
    encoded: &[Encoded],
    rounds: usize,
    seed: u64,
) -> Result<AspectEvalReport> {
    if set.examples.len() != encoded.len() {
        return Err(Error::Invalid(
            "one encoded row per sentence expected".into(),
        ));
    }
    // extraction: per complete sentence (correct, predicted, gold)
    let mut counts: Vec<(usize, usize, usize)> = Vec::new();
    let (mut gold_pol, mut pred_pol, mut pol_sentence) = (Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    for (si, (ex, enc)) in set.examples.iter().zip(encoded).enumerate() {
        if ex.complete() {
            let found = model.extract(&ex.text, &enc.states, &enc.spans)?;
            let pred: BTreeSet<(usize, usize)> =
                found.iter().map(|a| (a.span[0], a.span[1])).collect();
            let gold: BTreeSet<(usize, usize)> = ex.aspects.iter().filter_map(|a| a.span).collect();
            counts.push((pred.intersection(&gold).count(), pred.len(), gold.len()));
        }
        let mut ranges = Vec::new();
        for a in &ex.aspects {
            let k = POLARITIES.iter().position(|p| *p == a.polarity);
            match (k, a.span.and_then(|(f, t)| token_range(&enc.spans, f, t))) {
                (Some(k), Some(r)) => {
                    gold_pol.push(k);
                    ranges.push(r);
                    pol_sentence.push(si);
                }
                _ => skipped += 1,
            }
        }
        for p in model.polarity_probs(&enc.states, &ex.text, &enc.spans, &ranges)? {
            pred_pol.push(super::argmax(&p).0);
        }
    }
    let sum = |idx: &mut dyn Iterator<Item = usize>| {
        idx.fold((0, 0, 0), |s, i| {
            let c = counts[i];
            (s.0 + c.0, s.1 + c.1, s.2 + c.2)
        })
    };
    let (c, p, g) = sum(&mut (0..counts.len()));
    let (precision, recall, f) = f1(c, p, g);
    let (f1_ci, _) = bootstrap_by(counts.len(), rounds, seed, |idx| {
        let (c, p, g) = sum(&mut idx.iter().copied());
        let f = f1(c, p, g).2;
        (f, f)
    });
    let labels: Vec<String> = POLARITIES.iter().map(|s| s.to_string()).collect();
    let m = single_label(&labels, &gold_pol, &pred_pol);
    let (accuracy_ci, macro_f1_ci) = bootstrap(&labels, &gold_pol, &pred_pol, rounds, seed);
    Ok(AspectEvalReport {
        data: set
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        sentences: set.examples.len(),
        aspects: set.aspects,
        searched: (set.searched, set.placed),
        extraction: Extraction {
            sentences: counts.len(),
            gold: g,
            predicted: p,
            correct: c,
            precision,
            recall,
            f1: f,
            f1_ci,
        },
        polarity: Polarity {
            aspects: gold_pol.len(),
            skipped,
            accuracy: m.accuracy,
            accuracy_ci,
            macro_f1: m.macro_f1,
            macro_f1_ci,
            confusion: m.confusion,
        },
        categories: None,
    })
}

impl AspectEvalReport {
    /// A few lines for the terminal.
    pub fn to_text(&self) -> String {
        let e = &self.extraction;
        let p = &self.polarity;
        let pct = |x: f64| 100.0 * x;
        let mut s = format!(
            "data: {}\nsentences: {}, gold aspects: {}",
            self.data.join(", "),
            self.sentences,
            self.aspects
        );
        if self.searched.0 > 0 {
            s += &format!(
                " ({} without offsets, {} of them found in the text)",
                self.searched.0, self.searched.1
            );
        }
        s += &format!(
            "\naspect spans (exact match, {} sentences): P {:.1} R {:.1} F1 {:.1} [{:.1}, {:.1}] ({} gold, {} predicted, {} correct)\n",
            e.sentences,
            pct(e.precision),
            pct(e.recall),
            pct(e.f1),
            pct(e.f1_ci.lo),
            pct(e.f1_ci.hi),
            e.gold,
            e.predicted,
            e.correct
        );
        s += &format!(
            "polarity on gold aspects ({} scored, {} left out: no span or conflict): accuracy {:.1} [{:.1}, {:.1}], macro-F1 {:.1} [{:.1}, {:.1}]\n",
            p.aspects,
            p.skipped,
            pct(p.accuracy),
            pct(p.accuracy_ci.lo),
            pct(p.accuracy_ci.hi),
            pct(p.macro_f1),
            pct(p.macro_f1_ci.lo),
            pct(p.macro_f1_ci.hi)
        );
        let rows: Vec<String> = (POLARITIES.iter().zip(&p.confusion))
            .map(|(g, row)| format!("{g} {row:?}"))
            .collect();
        s += &format!(
            "polarity confusion (rows gold, columns predicted; {}): {}\n",
            POLARITIES.join(", "),
            rows.join("; ")
        );
        if let Some(c) = &self.categories {
            s += &c.to_text();
        }
        s
    }
}

/// `vocmine eval --task aspects`: loads the heads at `stem`, reads `data`, encodes it (states
/// cached under `cache` when given) and evaluates; with `categories` (the bundle and a
/// multi-label category task) also scores (category, polarity) pairs
/// ([`super::categories::category_pairs`]).
pub fn evaluate_file(
    encoder: &crate::encode::Encoder,
    stem: &std::path::Path,
    data: &std::path::Path,
    cache: Option<&std::path::Path>,
    categories: Option<(&crate::model::ModelSpec, &str)>,
    rounds: usize,
    seed: u64,
) -> Result<AspectEvalReport> {
    let model = AspectModel::load(stem)?;
    model.check_encoder(encoder)?;
    let set = super::read_aspect_set(data)?;
    let fp = encoder.fingerprint()?;
    let texts: Vec<&str> = set.examples.iter().map(|e| e.text.as_str()).collect();
    let enc = super::encode_examples(encoder, &fp, &texts, cache)?;
    let mut r = evaluate_aspects(&model, &set, &enc, rounds, seed)?;
    if let Some((spec, task)) = categories {
        r.categories = Some(super::categories::category_pairs(
            encoder, spec, &model, &set, &enc, task, rounds, seed,
        )?);
    }
    Ok(r)
}
