//! Evaluations as `vocmine eval` runs them, from files: a task's head on a labelled file, the
//! aspect model on a span file, two saved reports compared, a whole suite, the mistakes
//! written out.

use super::{compare, evaluate, suite_markdown, Comparison, ErrorCase, EvalOptions, EvalReport};
use super::{Suite, SuiteRow};
use crate::aspects::AspectEvalReport;
use crate::corpus::{read_labelled, EmbeddingCache};
use crate::encode::Encoder;
use crate::model::ModelSpec;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an evaluation from files reports while it runs.
#[derive(Debug)]
pub enum EvalEvent<'a> {
    /// The labelled file is read (`skipped`: rows without the label field); the evaluation
    /// of `rows` texts starts.
    Read {
        /// The task evaluated.
        task: &'a str,
        /// The file read.
        data: &'a Path,
        /// The label field.
        label_field: &'a str,
        /// Rows evaluated.
        rows: usize,
        /// Rows left out for want of a label.
        skipped: usize,
    },
    /// A run of a suite is done.
    Done {
        /// The run's name in the suite.
        name: &'a str,
        /// The task evaluated.
        task: &'a str,
        /// Its report.
        report: &'a EvalReport,
    },
}

/// Evaluates the head of `task` on the labelled file `data` (fields `text_field` and
/// `label_field`), calling `on` with [`EvalEvent::Read`] before the evaluation starts.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_task(
    spec: &ModelSpec,
    encoder: &Encoder,
    task: &str,
    data: &Path,
    text_field: &str,
    label_field: &str,
    opts: &EvalOptions,
    mut on: impl FnMut(EvalEvent),
) -> Result<EvalReport> {
    let heads = spec.load_heads(Some(&[task.to_string()]), encoder)?;
    let head = heads
        .first()
        .ok_or_else(|| Error::Invalid(format!("no head for task {task:?}")))?;
    let (set, skipped) = read_labelled(data, text_field, label_field)?;
    on(EvalEvent::Read {
        task,
        data,
        label_field,
        rows: set.len(),
        skipped,
    });
    evaluate(encoder, head, &set, opts)
}

/// Evaluates the aspect model at `stem` (default: the bundle's shipped one) on the span file
/// `data`, with embeddings cached under the default cache; with `categories`, also scores
/// (category, polarity) pairs against that multi-label task.
pub fn evaluate_aspects(
    spec: &ModelSpec,
    encoder: &Encoder,
    stem: Option<&Path>,
    data: &Path,
    categories: Option<&str>,
    rounds: usize,
    seed: u64,
) -> Result<AspectEvalReport> {
    let stem = stem.map_or_else(|| crate::aspects::bundle_stem(&spec.dir), Path::to_path_buf);
    let cache = crate::aspects::cache_dir(&EmbeddingCache::default_dir());
    let cats = categories.map(|t| (spec, t));
    crate::aspects::evaluate_file(encoder, &stem, data, Some(&cache), cats, rounds, seed)
}

/// Where `--errors` go by default: `errors.jsonl` beside the report `out`, else in the
/// current folder.
pub fn default_errors_path(out: Option<&Path>) -> PathBuf {
    (out.and_then(Path::parent))
        .unwrap_or(Path::new("."))
        .join("errors.jsonl")
}

/// Writes the mistakes as JSONL, one per line.
pub fn write_errors(path: &Path, errors: &[ErrorCase]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    for e in errors {
        serde_json::to_writer(&mut f, e)?;
        f.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Reads a report written by `eval --out`.
pub fn read_report(path: &Path) -> Result<EvalReport> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::input(path, format!("not an eval report: {e}")))
}

/// Two saved reports and their paired comparison.
#[derive(Debug, Clone)]
pub struct ReportComparison {
    /// The first report's file and the report.
    pub a: (PathBuf, EvalReport),
    /// The second report's file and the report.
    pub b: (PathBuf, EvalReport),
    /// The comparison on their common examples.
    pub comparison: Comparison,
    /// Bootstrap resamples.
    pub rounds: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

/// Compares the reports saved at `a` and `b` (paired bootstrap on their common examples).
pub fn compare_files(a: &Path, b: &Path, rounds: usize, seed: u64) -> Result<ReportComparison> {
    let (ra, rb) = (read_report(a)?, read_report(b)?);
    let comparison = compare(&ra, &rb, rounds, seed)?;
    Ok(ReportComparison {
        a: (a.to_path_buf(), ra),
        b: (b.to_path_buf(), rb),
        comparison,
        rounds,
        seed,
    })
}

impl ReportComparison {
    /// The comparison as a table: A and B, the common examples, then accuracy and macro-F1
    /// of each with B-A, its 95% interval and whether it is significant.
    pub fn to_text(&self) -> String {
        let ((pa, ra), (pb, rb), c) = (&self.a, &self.b, &self.comparison);
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "A = {} ({} on {})\nB = {} ({} on {})",
            pa.display(),
            ra.task,
            ra.data,
            pb.display(),
            rb.task,
            rb.data
        );
        let _ = writeln!(
            s,
            "{} common examples; paired bootstrap, {} resamples, seed {}",
            c.n_common, self.rounds, self.seed
        );
        s.push_str("metric        A        B     B-A   95% CI of B-A        significant\n");
        for (name, (x, y), ci, sig) in [
            (
                "accuracy",
                c.accuracy,
                c.accuracy_diff_ci,
                c.accuracy_significant(),
            ),
            (
                "macro-F1",
                c.macro_f1,
                c.macro_f1_diff_ci,
                c.macro_f1_significant(),
            ),
        ] {
            let _ = writeln!(
                s,
                "{name:<10} {:>7.2}  {:>7.2}  {:>+6.2}   [{:+.2}, {:+.2}]   {}",
                x * 100.0,
                y * 100.0,
                (y - x) * 100.0,
                ci.lo * 100.0,
                ci.hi * 100.0,
                yes(sig)
            );
        }
        s
    }
}

/// Runs every entry of the suite file `path` (entries whose data file or head is missing are
/// skipped with the reason), calling `on` as each run is read and done, and returns the
/// Markdown table, also written to `md` when given.
#[allow(clippy::too_many_arguments)]
pub fn run_suite(
    spec: &ModelSpec,
    encoder: &Encoder,
    path: &Path,
    text_field: &str,
    rounds: usize,
    seed: u64,
    md: Option<&Path>,
    mut on: impl FnMut(EvalEvent),
) -> Result<String> {
    let t0 = Instant::now();
    let suite = Suite::load(path)?;
    let dir = suite.corpora_dir();
    let mut rows = Vec::new();
    for run in &suite.runs {
        let data = dir.join(&run.data);
        let row = if !data.is_file() {
            SuiteRow::Skipped(format!("{} not found", data.display()))
        } else if !spec.heads.contains_key(&run.task) {
            SuiteRow::Skipped(format!("the model has no `{}` head", run.task))
        } else {
            let opts = EvalOptions {
                bootstrap_rounds: rounds,
                seed,
                oos_label: run.oos_label.clone(),
                errors: 0,
            };
            let (task, label) = (&run.task, &run.label_field);
            let r = evaluate_task(
                spec, encoder, task, &data, text_field, label, &opts, &mut on,
            )?;
            on(EvalEvent::Done {
                name: &run.name,
                task,
                report: &r,
            });
            SuiteRow::Done(Box::new(r))
        };
        rows.push((run.clone(), row));
    }
    let text = suite_markdown(&rows, t0.elapsed().as_secs_f64());
    if let Some(p) = md {
        std::fs::write(p, &text).map_err(|e| Error::io(p, e))?;
    }
    Ok(text)
}
