//! Evaluation runs: a model's head on a labelled set, with the figures people compare
//! (accuracy, F1s, confusion, calibration, bootstrap intervals, throughput), error listings,
//! paired comparisons of two reports, and suites of runs rendered as one Markdown table.

mod files;
pub use files::{
    compare_files, default_errors_path, evaluate_aspects, evaluate_task, read_report, run_suite,
    write_errors, EvalEvent, ReportComparison,
};

use crate::classify::Head;
use crate::corpus::Labelled;
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::metrics::{self, Bin, ClassMetrics, Interval, OosMetrics};
use crate::rng::Rng;
use crate::text::normalise::{normalise, NormaliseConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Bootstrap resamples for the 95% intervals.
    pub bootstrap_rounds: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Label treated as out-of-scope (clinc150 `oos`), if any.
    pub oos_label: Option<String>,
    /// How many of the most confident mistakes to keep.
    pub errors: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            bootstrap_rounds: 1000,
            seed: 42,
            oos_label: None,
            errors: 0,
        }
    }
}

/// Speed and memory of the evaluated pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Texts per second (normalise + tokenise + encode + head).
    pub texts_per_s: f64,
    /// Encoder tokens per second.
    pub tokens_per_s: f64,
    /// Seconds of the pass.
    pub seconds: f64,
    /// Peak resident memory of the process so far, MiB (VmHWM).
    pub peak_rss_mib: f64,
}

/// One of the most confident mistakes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorCase {
    /// Example id.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Gold label.
    pub gold: String,
    /// Predicted label.
    pub predicted: String,
    /// Confidence of the prediction.
    pub confidence: f32,
}

/// One prediction, kept so that two reports can be compared example by example.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prediction {
    /// Example id.
    pub id: String,
    /// Gold label.
    pub gold: String,
    /// Predicted label.
    pub pred: String,
    /// Confidence of the prediction.
    pub conf: f32,
}

/// The result of one evaluation, written as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Task (head) evaluated.
    pub task: String,
    /// Data file.
    pub data: String,
    /// Examples.
    pub n: usize,
    /// Labels in confusion-matrix order (the head's, then gold labels the head lacks).
    pub labels: Vec<String>,
    /// Accuracy.
    pub accuracy: f64,
    /// Accuracy with the argmax restricted to the labels present in the gold data (a 3-way head
    /// on a 2-way corpus).
    pub accuracy_gold_labels_only: f64,
    /// Macro-F1.
    pub macro_f1: f64,
    /// Weighted F1.
    pub weighted_f1: f64,
    /// Bootstrap 95% interval of accuracy.
    pub accuracy_ci: Interval,
    /// Bootstrap 95% interval of macro-F1.
    pub macro_f1_ci: Interval,
    /// Expected calibration error (10 bins) with the head's temperature.
    pub ece: f64,
    /// ECE without temperature scaling (temperature 1).
    pub ece_uncalibrated: f64,
    /// The head's temperature.
    pub temperature: f32,
    /// Reliability table (10 bins).
    pub reliability: Vec<Bin>,
    /// Per-class figures.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Confusion matrix, rows gold, columns predicted, in `labels` order.
    pub confusion: Vec<Vec<usize>>,
    /// Multi-label heads: micro-F1 over all (example, label) decisions; `accuracy` is then the
    /// exact-match rate and `weighted_f1` the support-weighted label F1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub micro_f1: Option<f64>,
    /// Bootstrap 95% interval of micro-F1 (multi-label heads).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub micro_f1_ci: Option<Interval>,
    /// Out-of-scope figures when an out-of-scope label was named.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oos: Option<OosMetrics>,
    /// Heads with a `neutral` label: neutral recall and the share of polar gold answered
    /// neutral.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub neutral: Option<metrics::NeutralMetrics>,
    /// Speed and memory.
    pub throughput: Throughput,
    /// The most confident mistakes.
    #[serde(default)]
    pub errors: Vec<ErrorCase>,
    /// Every prediction (for paired comparisons).
    #[serde(default)]
    pub predictions: Vec<Prediction>,
}

/// Peak resident set size of this process in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Calibrated probabilities, uncalibrated probabilities, encoder tokens and seconds.
pub type SetPredictions = (Vec<Vec<f32>>, Vec<Vec<f32>>, usize, f64);

/// Encodes the set exactly as `score` does (normalise with masking, encode, the head of each
/// text's language) and returns
/// calibrated and uncalibrated probabilities, token counts and seconds.
pub fn predict_set(encoder: &Encoder, head: &Head, texts: &[String]) -> Result<SetPredictions> {
    let t0 = Instant::now();
    let norm: Vec<_> = encoder.pool().install(|| {
        use rayon::prelude::*;
        texts
            .par_iter()
            .map(|t| normalise(t, NormaliseConfig::default()))
            .collect()
    });
    let refs: Vec<&str> = norm.iter().map(|n| n.text.as_str()).collect();
    let langs: Vec<&str> = norm.iter().map(|n| n.lang.as_str()).collect();
    let (embs, lens) = encoder.encode(&refs)?;
    let probs = head.predict_routed(&embs, &langs)?;
    let secs = t0.elapsed().as_secs_f64();
    let raw = head.predict_routed_at(&embs, &langs, 1.0)?;
    Ok((probs, raw, lens.iter().sum(), secs))
}

/// Evaluates `head` on `set`.
pub fn evaluate(
    encoder: &Encoder,
    head: &Head,
    set: &Labelled,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    if set.is_empty() {
        return Err(Error::Invalid(
            "nothing to evaluate: the data set is empty".into(),
        ));
    }
    if head.meta.multi_label {
        return evaluate_multi(encoder, head, set, opts);
    }
    let (probs, raw, tokens, secs) = predict_set(encoder, head, &set.texts)?;
    // the labels `score` would write (few-shot heads may answer `unknown`)
    let answers: Vec<String> = probs.iter().map(|p| head.result(p).label).collect();
    let mut labels = head.meta.labels.clone();
    for g in set.labels.iter().chain(&answers) {
        if !labels.contains(g) {
            labels.push(g.clone());
        }
    }
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let gold: Vec<usize> = set.labels.iter().map(|g| index[g.as_str()]).collect();
    let pred: Vec<usize> = answers.iter().map(|a| index[a.as_str()]).collect();
    let m = metrics::single_label(&labels, &gold, &pred);
    let acc_r = metrics::accuracy_and_restricted(&probs, &head.meta.labels, &set.labels).1;
    let conf: Vec<f32> = probs.iter().map(|p| p[metrics::argmax(p, None)]).collect();
    let correct: Vec<bool> = gold.iter().zip(&pred).map(|(g, p)| g == p).collect();
    let (ece, reliability) = metrics::ece(&conf, &correct, 10);
    let raw_conf: Vec<f32> = raw.iter().map(|p| p[metrics::argmax(p, None)]).collect();
    let raw_correct: Vec<bool> = raw
        .iter()
        .zip(&gold)
        .map(|(p, &g)| metrics::argmax(p, None) == g)
        .collect();
    let (ece_uncalibrated, _) = metrics::ece(&raw_conf, &raw_correct, 10);
    let (accuracy_ci, macro_f1_ci) =
        metrics::bootstrap(&labels, &gold, &pred, opts.bootstrap_rounds, opts.seed);
    let oos = opts
        .oos_label
        .as_ref()
        .and_then(|o| index.get(o.as_str()))
        .map(|&o| metrics::out_of_scope(&gold, &pred, o));
    let neutral = head
        .meta
        .labels
        .iter()
        .position(|l| l == "neutral")
        .map(|n| metrics::neutral(&gold, &pred, n));
    let mut wrong: Vec<usize> = (0..gold.len()).filter(|&i| !correct[i]).collect();
    wrong.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]).then(a.cmp(&b)));
    let errors = wrong
        .iter()
        .take(opts.errors)
        .map(|&i| ErrorCase {
            id: set.ids[i].clone(),
            text: set.texts[i].clone(),
            gold: set.labels[i].clone(),
            predicted: labels[pred[i]].clone(),
            confidence: conf[i],
        })
        .collect();
    let predictions = (0..gold.len())
        .map(|i| Prediction {
            id: set.ids[i].clone(),
            gold: set.labels[i].clone(),
            pred: labels[pred[i]].clone(),
            conf: (conf[i] * 1e4).round() / 1e4,
        })
        .collect();
    Ok(EvalReport {
        task: head.meta.task.clone(),
        data: set.sources.first().cloned().unwrap_or_default(),
        n: gold.len(),
        labels,
        accuracy: m.accuracy,
        accuracy_gold_labels_only: acc_r,
        macro_f1: m.macro_f1,
        weighted_f1: m.weighted_f1,
        accuracy_ci,
        macro_f1_ci,
        ece,
        ece_uncalibrated,
        temperature: head.meta.temperature,
        reliability,
        per_class: m.per_class,
        confusion: m.confusion,
        micro_f1: None,
        micro_f1_ci: None,
        oos,
        neutral,
        throughput: Throughput {
            texts_per_s: gold.len() as f64 / secs.max(1e-9),
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            seconds: secs,
            peak_rss_mib: peak_rss_mib(),
        },
        errors,
        predictions,
    })
}

/// Evaluates a multi-label head: micro/macro-F1 and exact match with bootstrap intervals, and
/// calibration over every (example, label) decision.
fn evaluate_multi(
    encoder: &Encoder,
    head: &Head,
    set: &Labelled,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let (probs, _raw, tokens, secs) = predict_set(encoder, head, &set.texts)?;
    let mut labels = head.meta.labels.clone();
    for g in set.label_sets.iter().flatten() {
        if !labels.contains(g) {
            labels.push(g.clone());
        }
    }
    let ix: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let gold: Vec<Vec<usize>> = set
        .label_sets
        .iter()
        .map(|s| s.iter().map(|l| ix[l.as_str()]).collect())
        .collect();
    let pred: Vec<Vec<usize>> = probs
        .iter()
        .map(|p| (0..p.len()).filter(|&j| p[j] >= 0.5).collect())
        .collect();
    let m = metrics::multi_label(&labels, &gold, &pred);
    let (mut conf, mut correct) = (Vec::new(), Vec::new());
    for (p, g) in probs.iter().zip(&gold) {
        for (j, &x) in p.iter().enumerate() {
            conf.push(x.max(1.0 - x));
            correct.push((x >= 0.5) == g.contains(&j));
        }
    }
    let (ece, reliability) = metrics::ece(&conf, &correct, 10);
    let stat = |idx: &[usize]| {
        let g: Vec<Vec<usize>> = idx.iter().map(|&i| gold[i].clone()).collect();
        let p: Vec<Vec<usize>> = idx.iter().map(|&i| pred[i].clone()).collect();
        let r = metrics::multi_label(&labels, &g, &p);
        (r.exact_match, r.macro_f1)
    };
    let (accuracy_ci, macro_f1_ci) =
        metrics::bootstrap_by(gold.len(), opts.bootstrap_rounds, opts.seed, stat);
    let (micro_ci, _) =
        metrics::bootstrap_by(gold.len(), opts.bootstrap_rounds, opts.seed, |idx| {
            let g: Vec<Vec<usize>> = idx.iter().map(|&i| gold[i].clone()).collect();
            let p: Vec<Vec<usize>> = idx.iter().map(|&i| pred[i].clone()).collect();
            (metrics::multi_label(&labels, &g, &p).micro_f1, 0.0)
        });
    let total_support: usize = m.per_label.values().map(|c| c.support).sum();
    let weighted = m
        .per_label
        .values()
        .map(|c| c.f1 * c.support as f64)
        .sum::<f64>()
        / total_support.max(1) as f64;
    let join = |v: &[usize]| {
        v.iter()
            .map(|&i| labels[i].clone())
            .collect::<Vec<_>>()
            .join("|")
    };
    let predictions = (0..gold.len())
        .map(|i| Prediction {
            id: set.ids[i].clone(),
            gold: join(&gold[i]),
            pred: join(&pred[i]),
            conf: 0.0,
        })
        .collect();
    Ok(EvalReport {
        task: head.meta.task.clone(),
        data: set.sources.first().cloned().unwrap_or_default(),
        n: gold.len(),
        accuracy: m.exact_match,
        accuracy_gold_labels_only: m.exact_match,
        macro_f1: m.macro_f1,
        weighted_f1: weighted,
        accuracy_ci,
        macro_f1_ci,
        ece,
        ece_uncalibrated: ece,
        temperature: head.meta.temperature,
        reliability,
        per_class: m.per_label,
        confusion: Vec::new(),
        micro_f1: Some(m.micro_f1),
        micro_f1_ci: Some(micro_ci),
        oos: None,
        neutral: None,
        throughput: Throughput {
            texts_per_s: gold.len() as f64 / secs.max(1e-9),
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            seconds: secs,
            peak_rss_mib: peak_rss_mib(),
        },
        errors: Vec::new(),
        predictions,
        labels,
    })
}

impl EvalReport {
    /// A readable multi-line summary: headline figures, per-class table, confusion matrix and
    /// reliability table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.2}", x * 100.0);
        s += &format!("{} on {} (n = {})\n", self.task, self.data, self.n);
        let ci = |i: &Interval| {
            if i.lo == 0.0 && i.hi == 0.0 {
                String::new()
            } else {
                format!(" [95% CI {}-{}]", pct(i.lo), pct(i.hi))
            }
        };
        s += &format!(
            "accuracy {}%{}   macro-F1 {}%{}   weighted-F1 {}%\n",
            pct(self.accuracy),
            ci(&self.accuracy_ci),
            pct(self.macro_f1),
            ci(&self.macro_f1_ci),
            pct(self.weighted_f1)
        );
        if (self.accuracy_gold_labels_only - self.accuracy).abs() > 1e-12 {
            s += &format!(
                "accuracy with the argmax over the corpus's own labels: {}%\n",
                pct(self.accuracy_gold_labels_only)
            );
        }
        if let (Some(m), Some(ci)) = (self.micro_f1, self.micro_f1_ci) {
            s += &format!(
                "multi-label: micro-F1 {}% [{}-{}]; accuracy above is exact match, weighted-F1 is support-weighted label F1\n",
                pct(m),
                pct(ci.lo),
                pct(ci.hi)
            );
        }
        if let Some(o) = &self.oos {
            s += &format!(
                "in-scope accuracy {}% (n = {}), out-of-scope recall {}% (n = {})\n",
                pct(o.in_scope_accuracy),
                o.n_in_scope,
                pct(o.oos_recall),
                o.n_oos
            );
        }
        if let Some(n) = &self.neutral {
            s += &format!(
                "neutral recall {} (n = {}); polar answered neutral {}% (n = {})\n",
                n.neutral_recall
                    .map_or("n/a".to_string(), |r| format!("{}%", pct(r))),
                n.n_neutral,
                pct(n.polar_called_neutral),
                n.n_polar
            );
        }
        s += &format!(
            "ECE {:.4} (temperature {:.2}; {:.4} uncalibrated)\nthroughput {:.1} texts/s, {:.0} tokens/s, peak RSS {:.0} MiB\n\n",
            self.ece, self.temperature, self.ece_uncalibrated, self.throughput.texts_per_s,
            self.throughput.tokens_per_s, self.throughput.peak_rss_mib
        );
        let w = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 28);
        s += &format!("{:<w$}  precision  recall      f1  support\n", "class");
        for (l, c) in &self.per_class {
            s += &format!(
                "{:<w$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}\n",
                l, c.precision, c.recall, c.f1, c.support
            );
        }
        if self.labels.len() <= 12 {
            s += "\nconfusion (rows gold, columns predicted)\n";
            s += &format!("{:<w$}", "");
            for l in &self.labels {
                s += &format!(" {:>9}", truncate(l, 9));
            }
            s += "\n";
            for (l, row) in self.labels.iter().zip(&self.confusion) {
                s += &format!("{:<w$}", truncate(l, w));
                for v in row {
                    s += &format!(" {v:>9}");
                }
                s += "\n";
            }
        }
        s += "\nreliability (confidence bin: count, mean confidence, accuracy)\n";
        for b in self.reliability.iter().filter(|b| b.count > 0) {
            s += &format!(
                "  ({:.1}, {:.1}]: {:>6}  {:.3}  {:.3}\n",
                b.lo, b.hi, b.count, b.confidence, b.accuracy
            );
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Differences between two reports on the same data, with a paired bootstrap interval.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Examples present in both reports.
    pub n_common: usize,
    /// Accuracy of A and B on the common examples.
    pub accuracy: (f64, f64),
    /// Macro-F1 of A and B on the common examples.
    pub macro_f1: (f64, f64),
    /// 95% paired-bootstrap interval of accuracy(B) - accuracy(A).
    pub accuracy_diff_ci: Interval,
    /// 95% paired-bootstrap interval of macroF1(B) - macroF1(A).
    pub macro_f1_diff_ci: Interval,
}

impl Comparison {
    /// True when the accuracy interval excludes zero.
    pub fn accuracy_significant(&self) -> bool {
        self.accuracy_diff_ci.lo > 0.0 || self.accuracy_diff_ci.hi < 0.0
    }

    /// True when the macro-F1 interval excludes zero.
    pub fn macro_f1_significant(&self) -> bool {
        self.macro_f1_diff_ci.lo > 0.0 || self.macro_f1_diff_ci.hi < 0.0
    }
}

/// Compares two reports example by example (matched on id), with a paired bootstrap.
pub fn compare(a: &EvalReport, b: &EvalReport, rounds: usize, seed: u64) -> Result<Comparison> {
    let bmap: HashMap<&str, &Prediction> =
        b.predictions.iter().map(|p| (p.id.as_str(), p)).collect();
    let pairs: Vec<(&Prediction, &Prediction)> = a
        .predictions
        .iter()
        .filter_map(|p| bmap.get(p.id.as_str()).map(|q| (p, *q)))
        .collect();
    if pairs.is_empty() {
        return Err(Error::Invalid(
            "the two reports share no example id: were they run on the same data?".into(),
        ));
    }
    let mut labels: Vec<String> = pairs
        .iter()
        .flat_map(|(p, q)| [p.gold.clone(), p.pred.clone(), q.pred.clone()])
        .collect();
    labels.sort();
    labels.dedup();
    let ix: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let gold: Vec<usize> = pairs.iter().map(|(p, _)| ix[p.gold.as_str()]).collect();
    let pa: Vec<usize> = pairs.iter().map(|(p, _)| ix[p.pred.as_str()]).collect();
    let pb: Vec<usize> = pairs.iter().map(|(_, q)| ix[q.pred.as_str()]).collect();
    let ma = metrics::single_label(&labels, &gold, &pa);
    let mb = metrics::single_label(&labels, &gold, &pb);
    let n = gold.len();
    let mut rng = Rng::new(seed);
    let (mut da, mut df) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let (mut g, mut x, mut y) = (vec![0; n], vec![0; n], vec![0; n]);
    for _ in 0..rounds {
        for j in 0..n {
            let i = rng.below(n);
            g[j] = gold[i];
            x[j] = pa[i];
            y[j] = pb[i];
        }
        let (ra, rb) = (
            metrics::single_label(&labels, &g, &x),
            metrics::single_label(&labels, &g, &y),
        );
        da.push(rb.accuracy - ra.accuracy);
        df.push(rb.macro_f1 - ra.macro_f1);
    }
    let ci = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        Interval {
            lo: at(0.025),
            hi: at(0.975),
        }
    };
    Ok(Comparison {
        n_common: n,
        accuracy: (ma.accuracy, mb.accuracy),
        macro_f1: (ma.macro_f1, mb.macro_f1),
        accuracy_diff_ci: ci(da),
        macro_f1_diff_ci: ci(df),
    })
}

/// One run of a suite.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteRun {
    /// Row name in the table.
    pub name: String,
    /// Data file, relative to the suite's `corpora` folder.
    pub data: String,
    /// Task (head) to evaluate.
    pub task: String,
    /// Label field.
    #[serde(default = "default_label_field")]
    pub label_field: String,
    /// Out-of-scope label, if the corpus has one.
    #[serde(default)]
    pub oos_label: Option<String>,
}

fn default_label_field() -> String {
    "label".into()
}

/// A suite file: corpora folder and runs.
#[derive(Debug, Clone, Deserialize)]
pub struct Suite {
    /// Folder the runs' `data` paths are relative to (relative paths: to the current folder;
    /// `$VOCMINE_SHARED/corpora` replaces the default `../shared/corpora`).
    pub corpora: String,
    /// The runs.
    #[serde(rename = "run")]
    pub runs: Vec<SuiteRun>,
}

impl Suite {
    /// Reads a suite TOML file.
    pub fn load(path: &Path) -> Result<Suite> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&s).map_err(|e| Error::input(path, e.to_string()))
    }

    /// The folder the data paths resolve against.
    pub fn corpora_dir(&self) -> PathBuf {
        if self.corpora == "../shared/corpora" {
            if let Some(s) = std::env::var_os("VOCMINE_SHARED") {
                return PathBuf::from(s).join("corpora");
            }
        }
        PathBuf::from(&self.corpora)
    }
}

/// A row of the suite table: a report, or why the run could not be made.
pub enum SuiteRow {
    /// The run's report.
    Done(Box<EvalReport>),
    /// Why it was skipped.
    Skipped(String),
}

/// Renders a suite's results as one Markdown table.
pub fn suite_markdown(rows: &[(SuiteRun, SuiteRow)], total_seconds: f64) -> String {
    let mut s = String::from(
        "| corpus | task | n | accuracy % [95% CI] | macro-F1 % [95% CI] | ECE (uncal.) | texts/s |\n|---|---|---|---|---|---|---|\n",
    );
    for (run, row) in rows {
        match row {
            SuiteRow::Done(r) => {
                let mut acc = format!(
                    "{:.2} [{:.2}-{:.2}]",
                    r.accuracy * 100.0,
                    r.accuracy_ci.lo * 100.0,
                    r.accuracy_ci.hi * 100.0
                );
                if (r.accuracy_gold_labels_only - r.accuracy).abs() > 1e-12 {
                    acc += &format!(" (own labels {:.2})", r.accuracy_gold_labels_only * 100.0);
                }
                if let Some(m) = r.micro_f1 {
                    acc = format!("micro-F1 {:.2}, exact match {acc}", m * 100.0);
                }
                if let Some(o) = &r.oos {
                    acc += &format!(
                        " (in-scope {:.2}, oos recall {:.2})",
                        o.in_scope_accuracy * 100.0,
                        o.oos_recall * 100.0
                    );
                }
                if let Some(n) = &r.neutral {
                    if let Some(rec) = n.neutral_recall {
                        acc += &format!(" (neutral recall {:.2}", rec * 100.0);
                    } else {
                        acc += " (";
                    }
                    acc += &format!(
                        "{}polar as neutral {:.2})",
                        if n.neutral_recall.is_some() { ", " } else { "" },
                        n.polar_called_neutral * 100.0
                    );
                }
                s += &format!(
                    "| {} | {} | {} | {} | {:.2} [{:.2}-{:.2}] | {:.3} ({:.3}) | {:.1} |\n",
                    run.name,
                    run.task,
                    r.n,
                    acc,
                    r.macro_f1 * 100.0,
                    r.macro_f1_ci.lo * 100.0,
                    r.macro_f1_ci.hi * 100.0,
                    r.ece,
                    r.ece_uncalibrated,
                    r.throughput.texts_per_s
                );
            }
            SuiteRow::Skipped(why) => {
                s += &format!(
                    "| {} | {} | | not run: {} | | | |\n",
                    run.name, run.task, why
                );
            }
        }
    }
    s += &format!("\nWhole suite: {total_seconds:.0} s.\n");
    s
}
