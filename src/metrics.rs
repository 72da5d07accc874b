//! Metrics for evaluation: accuracy, per-class precision / recall / F1, macro and weighted F1,
//! confusion matrix, expected calibration error with a reliability table, bootstrap
//! confidence intervals, multi-label micro/macro F1, and out-of-scope figures.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// TP / (TP + FP); 0 when nothing was predicted as the class.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class has no gold example.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Gold examples of the class.
    pub support: usize,
}

/// Single-label classification metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Unweighted mean F1 over the classes that have gold support (as reported for these
    /// corpora): a 3-way head's `neutral` answers on a 2-label corpus count against the gold
    /// classes' recall, not as a third class of F1 0.
    pub macro_f1: f64,
    /// Support-weighted mean F1.
    pub weighted_f1: f64,
    /// Per-class figures by label.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// `confusion[g][p]`: gold label index g predicted as p (label order as given).
    pub confusion: Vec<Vec<usize>>,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// The index of the largest of `p` (the first on ties), among the `allowed` ones when given.
pub fn argmax(p: &[f32], allowed: Option<&[bool]>) -> usize {
    (0..p.len())
        .filter(|&i| allowed.is_none_or(|a| a[i]))
        .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// Accuracy of `probs` (columns named by `labels`) against gold label names: with the argmax
/// over every label, and with the argmax restricted to the labels that occur in `gold` (how a
/// 3-way head is read on a 2-way corpus). `evaluate` and `train --test` both report these.
pub fn accuracy_and_restricted(
    probs: &[Vec<f32>],
    labels: &[String],
    gold: &[String],
) -> (f64, f64) {
    let present: Vec<bool> = labels.iter().map(|l| gold.contains(l)).collect();
    let (mut hit, mut hit_r) = (0usize, 0usize);
    for (p, g) in probs.iter().zip(gold) {
        hit += usize::from(labels.get(argmax(p, None)) == Some(g));
        hit_r += usize::from(labels.get(argmax(p, Some(&present))) == Some(g));
    }
    let n = gold.len().max(1) as f64;
    (hit as f64 / n, hit_r as f64 / n)
}

/// Computes [`Metrics`] for gold and predicted label indices over `labels`.
pub fn single_label(labels: &[String], gold: &[usize], pred: &[usize]) -> Metrics {
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&g, &p) in gold.iter().zip(pred) {
        confusion[g][p] += 1;
    }
    let n = gold.len().max(1) as f64;
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let mut per_class = BTreeMap::new();
    let (mut macro_sum, mut macro_n, mut weighted) = (0.0, 0usize, 0.0);
    for (i, label) in labels.iter().enumerate() {
        let tp = confusion[i][i] as f64;
        let support: usize = confusion[i].iter().sum();
        let predicted: usize = (0..k).map(|g| confusion[g][i]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f = f1(precision, recall);
        if support > 0 {
            macro_sum += f;
            macro_n += 1;
        }
        weighted += f * support as f64;
        per_class.insert(
            label.clone(),
            ClassMetrics {
                precision,
                recall,
                f1: f,
                support,
            },
        );
    }
    Metrics {
        accuracy: correct as f64 / n,
        macro_f1: macro_sum / macro_n.max(1) as f64,
        weighted_f1: weighted / n,
        per_class,
        confusion,
    }
}

/// One bin of a reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower confidence bound (inclusive, except the first bin which includes 0).
    pub lo: f64,
    /// Upper confidence bound (inclusive).
    pub hi: f64,
    /// Predictions whose confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence.
    pub confidence: f64,
    /// Their accuracy.
    pub accuracy: f64,
}

/// Expected calibration error over `bins` equal-width confidence bins (confidence of the
/// predicted label; bin b holds (b/B, (b+1)/B]) and the reliability table.
pub fn ece(confidence: &[f32], correct: &[bool], bins: usize) -> (f64, Vec<Bin>) {
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        // f32 confidences sit a hair off decimal bounds (0.6f32 > 0.6): allow 1e-6
        let b = ((c as f64 * bins as f64 - 1e-6).ceil() as usize).clamp(1, bins) - 1;
        sums[b].0 += 1;
        sums[b].1 += c as f64;
        sums[b].2 += usize::from(ok);
    }
    let n = confidence.len().max(1) as f64;
    let mut e = 0.0;
    let table = sums
        .iter()
        .enumerate()
        .map(|(b, &(count, conf, hits))| {
            let (mc, acc) = if count > 0 {
                (conf / count as f64, hits as f64 / count as f64)
            } else {
                (0.0, 0.0)
            };
            e += count as f64 / n * (mc - acc).abs();
            Bin {
                lo: b as f64 / bins as f64,
                hi: (b + 1) as f64 / bins as f64,
                count,
                confidence: mc,
                accuracy: acc,
            }
        })
        .collect();
    (e, table)
}

/// A 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// 2.5th percentile.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

/// Bootstrap 95% intervals of accuracy and macro-F1: `rounds` resamples of the examples with
/// replacement, drawn with `seed` (the percentile method).
pub fn bootstrap(
    labels: &[String],
    gold: &[usize],
    pred: &[usize],
    rounds: usize,
    seed: u64,
) -> (Interval, Interval) {
    let mut g = vec![0usize; gold.len()];
    let mut p = vec![0usize; gold.len()];
    bootstrap_by(gold.len(), rounds, seed, |idx| {
        for (j, &i) in idx.iter().enumerate() {
            g[j] = gold[i];
            p[j] = pred[i];
        }
        let m = single_label(labels, &g, &p);
        (m.accuracy, m.macro_f1)
    })
}

/// Bootstrap 95% intervals of two statistics: `stat` gets the resampled example indices
/// (`n` of them, drawn with replacement with `seed`) and returns the two values.
pub fn bootstrap_by(
    n: usize,
    rounds: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> (f64, f64),
) -> (Interval, Interval) {
    let mut rng = Rng::new(seed);
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut idx = vec![0usize; n];
    for _ in 0..rounds {
        for x in idx.iter_mut() {
            *x = rng.below(n);
        }
        let (x, y) = stat(&idx);
        a.push(x);
        b.push(y);
    }
    (percentiles(a), percentiles(b))
}

/// The 2.5th and 97.5th percentiles of `v`.
pub fn percentiles(mut v: Vec<f64>) -> Interval {
    if v.is_empty() {
        return Interval { lo: 0.0, hi: 0.0 };
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Interval {
        lo: at(0.025),
        hi: at(0.975),
    }
}

/// Multi-label figures: micro-F1 over all (example, label) decisions, macro-F1 over labels,
/// and per-label figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLabelMetrics {
    /// Micro-averaged precision.
    pub micro_precision: f64,
    /// Micro-averaged recall.
    pub micro_recall: f64,
    /// Micro-averaged F1.
    pub micro_f1: f64,
    /// Mean F1 over labels.
    pub macro_f1: f64,
    /// Share of examples whose predicted set equals the gold set.
    pub exact_match: f64,
    /// Per-label figures.
    pub per_label: BTreeMap<String, ClassMetrics>,
}

/// Computes [`MultiLabelMetrics`]; `gold[i]` and `pred[i]` are the label-index sets of example i.
pub fn multi_label(
    labels: &[String],
    gold: &[Vec<usize>],
    pred: &[Vec<usize>],
) -> MultiLabelMetrics {
    let k = labels.len();
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    let mut exact = 0;
    for (g, p) in gold.iter().zip(pred) {
        let mut gs = g.clone();
        let mut ps = p.clone();
        gs.sort_unstable();
        gs.dedup();
        ps.sort_unstable();
        ps.dedup();
        exact += usize::from(gs == ps);
        for &l in &ps {
            if gs.contains(&l) {
                tp[l] += 1;
            } else {
                fp[l] += 1;
            }
        }
        for &l in &gs {
            if !ps.contains(&l) {
                fn_[l] += 1;
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (stp, sfp, sfn): (usize, usize, usize) =
        (tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
    let micro_precision = ratio(stp, stp + sfp);
    let micro_recall = ratio(stp, stp + sfn);
    let mut per_label = BTreeMap::new();
    let mut macro_sum = 0.0;
    for i in 0..k {
        let p = ratio(tp[i], tp[i] + fp[i]);
        let r = ratio(tp[i], tp[i] + fn_[i]);
        macro_sum += f1(p, r);
        per_label.insert(
            labels[i].clone(),
            ClassMetrics {
                precision: p,
                recall: r,
                f1: f1(p, r),
                support: tp[i] + fn_[i],
            },
        );
    }
    MultiLabelMetrics {
        micro_precision,
        micro_recall,
        micro_f1: f1(micro_precision, micro_recall),
        macro_f1: macro_sum / k.max(1) as f64,
        exact_match: ratio(exact, gold.len()),
        per_label,
    }
}

/// Out-of-scope figures (clinc150): accuracy over in-scope gold examples, and recall of the
/// out-of-scope label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OosMetrics {
    /// Accuracy over examples whose gold label is not out-of-scope.
    pub in_scope_accuracy: f64,
    /// Share of out-of-scope examples predicted as out-of-scope.
    pub oos_recall: f64,
    /// In-scope examples.
    pub n_in_scope: usize,
    /// Out-of-scope examples.
    pub n_oos: usize,
}

/// Computes [`OosMetrics`] with `oos` the index of the out-of-scope label.
pub fn out_of_scope(gold: &[usize], pred: &[usize], oos: usize) -> OosMetrics {
    let (mut ins, mut ins_ok, mut out, mut out_ok) = (0, 0, 0, 0);
    for (&g, &p) in gold.iter().zip(pred) {
        if g == oos {
            out += 1;
            out_ok += usize::from(p == oos);
        } else {
            ins += 1;
            ins_ok += usize::from(p == g);
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    OosMetrics {
        in_scope_accuracy: ratio(ins_ok, ins),
        oos_recall: ratio(out_ok, out),
        n_in_scope: ins,
        n_oos: out,
    }
}

/// How a sentiment head treats its `neutral` class: whether neutral comments are found, and
/// how often a clearly polar comment is answered neutral (the failure that hides complaints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NeutralMetrics {
    /// Share of gold-neutral examples predicted neutral (None when the data has none).
    pub neutral_recall: Option<f64>,
    /// Share of gold-polar (not neutral) examples predicted neutral.
    pub polar_called_neutral: f64,
    /// Gold-neutral examples.
    pub n_neutral: usize,
    /// Gold-polar examples.
    pub n_polar: usize,
}

/// Computes [`NeutralMetrics`] with `neutral` the index of the neutral label.
pub fn neutral(gold: &[usize], pred: &[usize], neutral: usize) -> NeutralMetrics {
    let (mut n, mut n_ok, mut polar, mut polar_neutral) = (0, 0, 0, 0);
    for (&g, &p) in gold.iter().zip(pred) {
        if g == neutral {
            n += 1;
            n_ok += usize::from(p == neutral);
        } else {
            polar += 1;
            polar_neutral += usize::from(p == neutral);
        }
    }
    NeutralMetrics {
        neutral_recall: (n > 0).then(|| n_ok as f64 / n as f64),
        polar_called_neutral: if polar == 0 {
            0.0
        } else {
            polar_neutral as f64 / polar as f64
        },
        n_neutral: n,
        n_polar: polar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_accuracy_reads_a_three_way_head_on_a_two_way_corpus() {
        let labels: Vec<String> = ["negative", "neutral", "positive"].map(String::from).into();
        let probs = vec![
            vec![0.2, 0.5, 0.3], // neutral wins; restricted: positive (right)
            vec![0.6, 0.3, 0.1], // negative (right)
            vec![0.4, 0.4, 0.2], // a tie: the first label, negative (wrong)
        ];
        let gold: Vec<String> = ["positive", "negative", "positive"]
            .map(String::from)
            .into();
        let (acc, acc_r) = accuracy_and_restricted(&probs, &labels, &gold);
        assert!((acc - 1.0 / 3.0).abs() < 1e-12, "{acc}");
        assert!((acc_r - 2.0 / 3.0).abs() < 1e-12, "{acc_r}");
        assert_eq!(argmax(&[0.4, 0.4, 0.2], None), 0);
    }

    #[test]
    fn neutral_recall_and_polar_answered_neutral() {
        // labels: 0 negative, 1 neutral, 2 positive
        let gold = [0, 0, 2, 2, 1, 1, 1, 0];
        let pred = [0, 1, 2, 1, 1, 0, 1, 0];
        let m = neutral(&gold, &pred, 1);
        assert_eq!((m.n_neutral, m.n_polar), (3, 5));
        assert_eq!(m.neutral_recall, Some(2.0 / 3.0));
        assert_eq!(m.polar_called_neutral, 2.0 / 5.0);
        let none = neutral(&[0, 2], &[1, 2], 1);
        assert_eq!(none.neutral_recall, None);
        assert_eq!(none.polar_called_neutral, 0.5);
    }

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_three_classes() {
        // gold: a a a b b c ; pred: a a b b c c
        let labels = l(&["a", "b", "c"]);
        let m = single_label(&labels, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2]);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // a: P=2/2 R=2/3 F=0.8 ; b: P=1/2 R=1/2 F=0.5 ; c: P=1/2 R=1 F=2/3
        let a = m.per_class["a"];
        assert!((a.precision - 1.0).abs() < 1e-12 && (a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.f1 - 0.8).abs() < 1e-12);
        assert!((m.per_class["c"].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((m.weighted_f1 - (3.0 * 0.8 + 2.0 * 0.5 + 2.0 / 3.0) / 6.0).abs() < 1e-12);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
    }

    #[test]
    fn skewed_classes_accuracy_and_macro_f1_differ() {
        // 9 of class "maj", 1 of "min"; a model that always says "maj"
        let labels = l(&["maj", "min"]);
        let gold = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let pred = [0; 10];
        let m = single_label(&labels, &gold, &pred);
        assert!((m.accuracy - 0.9).abs() < 1e-12);
        // maj: P=0.9 R=1 F=18/19 ; min: F=0 -> macro = 9/19
        assert!((m.macro_f1 - 9.0 / 19.0).abs() < 1e-12);
        assert!((m.weighted_f1 - 0.9 * 18.0 / 19.0).abs() < 1e-12);
    }

    #[test]
    fn macro_f1_averages_the_gold_classes_only() {
        // a 3-way head on a 2-label corpus: gold a a b b ; pred a n b b
        let labels = l(&["a", "b", "n"]);
        let m = single_label(&labels, &[0, 0, 1, 1], &[0, 2, 1, 1]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        // a: P=1 R=1/2 F=2/3 ; b: P=1 R=1 F=1 ; n has no gold row and is left out
        assert!((m.macro_f1 - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(m.per_class["n"].support, 0);
        assert!((m.per_class["a"].recall - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ece_by_hand() {
        // bin (0.8,0.9]: conf 0.9,0.9 one right -> |0.9-0.5| ; bin (0.5,0.6]: 0.6 right -> |0.6-1|
        let (e, t) = ece(&[0.9, 0.9, 0.6, 1.0], &[true, false, true, true], 10);
        let want = 2.0 / 4.0 * 0.4 + 1.0 / 4.0 * 0.4 + 1.0 / 4.0 * 0.0;
        assert!((e - want).abs() < 1e-6, "{e} vs {want}");
        assert_eq!(t[8].count, 2);
        assert_eq!(t[5].count, 1);
        assert_eq!(t[9].count, 1);
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_point_estimate() {
        let labels = l(&["a", "b"]);
        let gold: Vec<usize> = (0..200).map(|i| i % 2).collect();
        let pred: Vec<usize> = (0..200)
            .map(|i| if i % 5 == 0 { 1 - i % 2 } else { i % 2 })
            .collect();
        let (a1, f1a) = bootstrap(&labels, &gold, &pred, 500, 7);
        let (a2, _) = bootstrap(&labels, &gold, &pred, 500, 7);
        assert_eq!(a1, a2);
        assert!(a1.lo < 0.8 && 0.8 < a1.hi, "{a1:?}");
        assert!(a1.hi - a1.lo < 0.15 && a1.hi - a1.lo > 0.03, "{a1:?}");
        assert!(f1a.lo < 0.8 && 0.8 < f1a.hi);
    }

    #[test]
    fn multi_label_by_hand() {
        let labels = l(&["x", "y", "z"]);
        let gold = vec![vec![0, 1], vec![2], vec![]];
        let pred = vec![vec![0], vec![2, 1], vec![1]];
        let m = multi_label(&labels, &gold, &pred);
        // tp: x1 z1 ; fp: y2 ; fn: y1
        assert!((m.micro_precision - 0.5).abs() < 1e-12);
        assert!((m.micro_recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.micro_f1 - f1(0.5, 2.0 / 3.0)).abs() < 1e-12);
        assert!((m.macro_f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.exact_match - 0.0).abs() < 1e-12);
    }

    #[test]
    fn out_of_scope_by_hand() {
        let m = out_of_scope(&[0, 1, 2, 2, 2], &[0, 2, 2, 0, 2], 2);
        assert!((m.in_scope_accuracy - 0.5).abs() < 1e-12);
        assert!((m.oos_recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((m.n_in_scope, m.n_oos), (2, 3));
    }
}

/// Contingency counts of two labelings.
type Counts<'a> = BTreeMap<&'a str, f64>;

type Joint<'a> = BTreeMap<(&'a str, &'a str), f64>;

fn contingency<'a>(a: &'a [String], b: &'a [String]) -> (Joint<'a>, Counts<'a>, Counts<'a>) {
    let mut joint = BTreeMap::new();
    let mut ma = BTreeMap::new();
    let mut mb = BTreeMap::new();
    for (x, y) in a.iter().zip(b) {
        *joint.entry((x.as_str(), y.as_str())).or_insert(0.0) += 1.0;
        *ma.entry(x.as_str()).or_insert(0.0) += 1.0;
        *mb.entry(y.as_str()).or_insert(0.0) += 1.0;
    }
    (joint, ma, mb)
}

/// Normalised mutual information (arithmetic-mean normalisation, as scikit-learn's default)
/// between two labelings of the same items; 1 when one labeling is the other renamed.
pub fn nmi(a: &[String], b: &[String]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (joint, ma, mb) = contingency(a, b);
    let h =
        |m: &BTreeMap<&str, f64>| -> f64 { -m.values().map(|c| c / n * (c / n).ln()).sum::<f64>() };
    let (ha, hb) = (h(&ma), h(&mb));
    let mi: f64 = joint
        .iter()
        .map(|((x, y), c)| c / n * ((c * n) / (ma[x] * mb[y])).ln())
        .sum();
    let denom = (ha + hb) / 2.0;
    if denom <= 0.0 {
        1.0
    } else {
        (mi / denom).clamp(0.0, 1.0)
    }
}

/// Adjusted Rand index between two labelings (1: identical partitions, ~0: chance).
pub fn ari(a: &[String], b: &[String]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (joint, ma, mb) = contingency(a, b);
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let index: f64 = joint.values().map(|&c| c2(c)).sum();
    let sa: f64 = ma.values().map(|&c| c2(c)).sum();
    let sb: f64 = mb.values().map(|&c| c2(c)).sum();
    let expected = sa * sb / c2(n).max(1e-12);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < 1e-12 {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

#[cfg(test)]
mod cluster_metric_tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn nmi_and_ari_by_hand() {
        let a = s(&["x", "x", "y", "y"]);
        assert!((nmi(&a, &s(&["1", "1", "2", "2"])) - 1.0).abs() < 1e-12);
        assert!((ari(&a, &s(&["1", "1", "2", "2"])) - 1.0).abs() < 1e-12);
        // Independent split: MI 0.
        assert!(nmi(&a, &s(&["1", "2", "1", "2"])).abs() < 1e-12);
        // scikit-learn: adjusted_rand_score([0,0,1,1],[0,1,0,1]) = -0.5
        assert!((ari(&a, &s(&["1", "2", "1", "2"])) + 0.5).abs() < 1e-12);
        // sklearn: normalized_mutual_info_score([0,0,0,1,1,1],[0,0,1,1,2,2]) = 0.5158037429793889
        let b = s(&["a", "a", "a", "b", "b", "b"]);
        let c = s(&["0", "0", "1", "1", "2", "2"]);
        assert!(
            (nmi(&b, &c) - 0.515_803_742_979_388_9).abs() < 1e-9,
            "{}",
            nmi(&b, &c)
        );
        // sklearn: adjusted_rand_score([0,0,0,1,1,1],[0,0,1,1,2,2]) = 0.24242424242424246
        assert!(
            (ari(&b, &c) - 0.242_424_242_424_242_46).abs() < 1e-9,
            "{}",
            ari(&b, &c)
        );
    }
}
