//! `vocmine eval`: one evaluation, a comparison of two reports, or a whole suite.

use super::{bar, ColumnArgs, EncoderArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::corpus::read_labelled;
use vocmine::encode::Encoder;
use vocmine::eval::{compare, evaluate, suite_markdown, EvalOptions, EvalReport, Suite, SuiteRow};
use vocmine::model::ModelSpec;

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Task (head) to evaluate, e.g. sentiment
    #[arg(long, required_unless_present_any = ["compare", "suite"])]
    task: Option<String>,
    /// Labelled data (JSONL or CSV)
    #[arg(long, required_unless_present_any = ["compare", "suite"])]
    data: Option<PathBuf>,
    /// Label field
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Label meaning out-of-scope (clinc150: oos): reports in-scope accuracy and oos recall
    #[arg(long)]
    oos_label: Option<String>,
    /// Write the report as JSON here
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the N most confident mistakes (JSONL) to --errors-out
    #[arg(long, default_value_t = 0)]
    errors: usize,
    /// Where --errors go [default: errors.jsonl beside --out, or ./errors.jsonl]
    #[arg(long)]
    errors_out: Option<PathBuf>,
    /// Bootstrap resamples for the 95% intervals
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// With --task aspects: the aspect heads' stem [default: the bundle's finetuned/aspects]
    #[arg(long, value_name = "STEM")]
    aspects_head: Option<PathBuf>,
    /// With --task aspects: also score (category, polarity) pairs with this multi-label
    /// category task (e.g. car_aspect), against its categories with the sentence sentiment
    #[arg(long, value_name = "TASK")]
    aspect_categories: Option<String>,
    /// Compare two reports written by --out (paired bootstrap on their common examples)
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"], conflicts_with_all = ["task", "data", "suite"])]
    compare: Option<Vec<PathBuf>>,
    /// Run every entry of a suite file and write one Markdown table
    #[arg(long, conflicts_with_all = ["task", "data"])]
    suite: Option<PathBuf>,
    /// With --suite: where the Markdown table goes [default: print only]
    #[arg(long)]
    md: Option<PathBuf>,
    #[command(flatten)]
    enc: EncoderArgs,
    #[command(flatten)]
    cols: ColumnArgs,
}

pub(crate) fn cmd_eval(a: EvalArgs) -> Result<()> {
    if let Some(files) = &a.compare {
        return cmd_compare(&files[0], &files[1], a.bootstrap, a.seed);
    }
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let text_field = a.cols.config()?.columns.text;
    if let Some(suite) = &a.suite {
        return run_suite(&a, &spec, &encoder, suite, &text_field);
    }
    let (Some(task), Some(data)) = (&a.task, &a.data) else {
        bail!("eval needs --task and --data (or --compare / --suite)");
    };
    if task == "aspects" {
        let stem = (a.aspects_head.clone())
            .unwrap_or_else(|| spec.dir.join(vocmine::aspects::SHIPPED_STEM));
        let cache = vocmine::aspects::cache_dir(&vocmine::corpus::EmbeddingCache::default_dir());
        let cats = a.aspect_categories.as_deref().map(|t| (&spec, t));
        let r = vocmine::aspects::evaluate_file(
            &encoder,
            &stem,
            data,
            Some(&cache),
            cats,
            a.bootstrap,
            a.seed,
        )?;
        print!("{}", r.to_text());
        return a.out.as_ref().map_or(Ok(()), |o| write_json(o, &r));
    }
    let opts = EvalOptions {
        bootstrap_rounds: a.bootstrap,
        seed: a.seed,
        oos_label: a.oos_label.clone(),
        errors: a.errors,
    };
    let report = eval_one(
        &spec,
        &encoder,
        task,
        data,
        &text_field,
        &a.label_field,
        &opts,
    )?;
    print!("{}", report.to_text());
    if let Some(out) = &a.out {
        write_json(out, &report)?;
        println!("wrote {}", out.display());
    }
    if a.errors > 0 {
        let path = a.errors_out.clone().unwrap_or_else(|| {
            a.out
                .as_ref()
                .and_then(|o| o.parent())
                .unwrap_or(Path::new("."))
                .join("errors.jsonl")
        });
        let mut f = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        for e in &report.errors {
            serde_json::to_writer(&mut f, e)?;
            f.write_all(b"\n")?;
        }
        println!(
            "wrote the {} most confident mistakes to {}",
            report.errors.len(),
            path.display()
        );
    }
    Ok(())
}

fn eval_one(
    spec: &ModelSpec,
    encoder: &Encoder,
    task: &str,
    data: &Path,
    text_field: &str,
    label_field: &str,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let heads = spec.load_heads(Some(&[task.to_string()]), encoder)?;
    let (set, skipped) = read_labelled(data, text_field, label_field)?;
    if skipped > 0 {
        eprintln!(
            "{}: {skipped} rows without {label_field:?} left out",
            data.display()
        );
    }
    let pb = bar(
        set.len(),
        &format!("evaluating {task} on {}", data.display()),
    );
    let report = evaluate(encoder, &heads[0], &set, opts)?;
    pb.finish_and_clear();
    Ok(report)
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

fn cmd_compare(a: &Path, b: &Path, rounds: usize, seed: u64) -> Result<()> {
    let read = |p: &Path| -> Result<EvalReport> {
        let s =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_str(&s).with_context(|| format!("{} is not an eval report", p.display()))
    };
    let (ra, rb) = (read(a)?, read(b)?);
    let c = compare(&ra, &rb, rounds, seed)?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "A = {} ({} on {})\nB = {} ({} on {})",
        a.display(),
        ra.task,
        ra.data,
        b.display(),
        rb.task,
        rb.data
    );
    println!(
        "{} common examples; paired bootstrap, {rounds} resamples, seed {seed}",
        c.n_common
    );
    println!("metric        A        B     B-A   95% CI of B-A        significant");
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
        println!(
            "{name:<10} {:>7.2}  {:>7.2}  {:>+6.2}   [{:+.2}, {:+.2}]   {}",
            x * 100.0,
            y * 100.0,
            (y - x) * 100.0,
            ci.lo * 100.0,
            ci.hi * 100.0,
            yes(sig)
        );
    }
    Ok(())
}

fn run_suite(
    a: &EvalArgs,
    spec: &ModelSpec,
    encoder: &Encoder,
    path: &Path,
    text_field: &str,
) -> Result<()> {
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
                bootstrap_rounds: a.bootstrap,
                seed: a.seed,
                oos_label: run.oos_label.clone(),
                errors: 0,
            };
            let r = eval_one(
                spec,
                encoder,
                &run.task,
                &data,
                text_field,
                &run.label_field,
                &opts,
            )?;
            println!(
                "{}: {} accuracy {:.2}%, macro-F1 {:.2}%, ECE {:.3}",
                run.name,
                run.task,
                r.accuracy * 100.0,
                r.macro_f1 * 100.0,
                r.ece
            );
            SuiteRow::Done(Box::new(r))
        };
        rows.push((run.clone(), row));
    }
    let md = suite_markdown(&rows, t0.elapsed().as_secs_f64());
    println!("\n{md}");
    if let Some(p) = &a.md {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
