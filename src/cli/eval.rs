//! `vocmine eval`: one evaluation, a comparison of two reports, or a whole suite.

use super::args::{bar, ColumnArgs, EncoderArgs};
use anyhow::{bail, Result};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;
use vocmine::eval::{compare_files, default_errors_path, evaluate_aspects, evaluate_task};
use vocmine::eval::{run_suite, write_errors, EvalEvent, EvalOptions};
use vocmine::workspace::write_json_file;

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
    /// With --task aspects: the aspect heads' stem [default: the bundle's finetuned/aspects, else its aspects]
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
        let c = compare_files(&files[0], &files[1], a.bootstrap, a.seed)?;
        out!("{}", c.to_text())?;
        return Ok(());
    }
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let text_field = a.cols.config()?.columns.text;
    let mut pb = None;
    if let Some(suite) = &a.suite {
        let (rounds, md) = (a.bootstrap, a.md.as_deref());
        let on = |e: EvalEvent| progress(&mut pb, e);
        let md_text = run_suite(&spec, &encoder, suite, &text_field, rounds, a.seed, md, on)?;
        outln!("\n{md_text}")?;
        if let Some(p) = md {
            outln!("wrote {}", p.display())?;
        }
        return Ok(());
    }
    let (Some(task), Some(data)) = (&a.task, &a.data) else {
        bail!("eval needs --task and --data (or --compare / --suite)");
    };
    if task == "aspects" {
        let (stem, cats) = (a.aspects_head.as_deref(), a.aspect_categories.as_deref());
        let r = evaluate_aspects(&spec, &encoder, stem, data, cats, a.bootstrap, a.seed)?;
        out!("{}", r.to_text())?;
        if let Some(o) = &a.out {
            write_json_file(o, &r)?;
        }
        return Ok(());
    }
    let opts = EvalOptions {
        bootstrap_rounds: a.bootstrap,
        seed: a.seed,
        oos_label: a.oos_label.clone(),
        errors: a.errors,
    };
    let (lf, on) = (&a.label_field, |e: EvalEvent| progress(&mut pb, e));
    let report = evaluate_task(&spec, &encoder, task, data, &text_field, lf, &opts, on)?;
    pb.take().inspect(ProgressBar::finish_and_clear);
    out!("{}", report.to_text())?;
    if let Some(out) = &a.out {
        write_json_file(out, &report)?;
        outln!("wrote {}", out.display())?;
    }
    if a.errors > 0 {
        let path = (a.errors_out.clone()).unwrap_or_else(|| default_errors_path(a.out.as_deref()));
        write_errors(&path, &report.errors)?;
        let (n, p) = (report.errors.len(), path.display());
        outln!("wrote the {n} most confident mistakes to {p}")?;
    }
    Ok(())
}

/// A bar while a labelled file is evaluated; a suite's line when one of its runs is done.
fn progress(pb: &mut Option<ProgressBar>, e: EvalEvent) {
    match e {
        EvalEvent::Read {
            task,
            data,
            label_field,
            rows,
            skipped,
        } => {
            if skipped > 0 {
                let lf = label_field;
                eprintln!("{}: {skipped} rows without {lf:?} left out", data.display());
            }
            let msg = format!("evaluating {task} on {}", data.display());
            *pb = Some(bar(rows, &msg));
        }
        EvalEvent::Done { name, task, report } => {
            pb.take().inspect(ProgressBar::finish_and_clear);
            println!(
                "{name}: {task} accuracy {:.2}%, macro-F1 {:.2}%, ECE {:.3}",
                report.accuracy * 100.0,
                report.macro_f1 * 100.0,
                report.ece
            );
        }
    }
}
