//! What `vocmine train` prints: the test results and the summary of a head, the bundle lines
//! that make it a task's head (written with `--into`), and the aspect model's report.

use anyhow::Result;
use std::path::Path;
use std::time::Instant;
use vocmine::aspects::{AspectSet, AspectTrainReport};
use vocmine::model::{head_entry, set_task_head, ModelSpec, MANIFEST};
use vocmine::training::heads::{HeadJob, HeadOutcome, TestScore};

/// Prints a trained head's test results and summary.
pub(crate) fn print(job: &HeadJob, o: &HeadOutcome, t0: Instant) -> Result<()> {
    for t in &o.tests {
        match t.score {
            TestScore::Multi {
                micro_f1,
                macro_f1,
                exact_match,
            } => println!(
                "{}: micro-F1 {:.2}%, macro-F1 {:.2}%, exact match {:.2}%, n={}",
                t.file.display(),
                micro_f1 * 100.0,
                macro_f1 * 100.0,
                exact_match * 100.0,
                t.n
            ),
            TestScore::Single {
                accuracy,
                restricted,
            } => println!(
                "{}: accuracy {:.2}% (argmax over the corpus's own labels: {:.2}%), n={}",
                t.file.display(),
                accuracy * 100.0,
                restricted * 100.0,
                t.n
            ),
        }
    }
    let rep = &o.report;
    println!(
        "trained {} {} head on {} examples ({} dev): dev accuracy {:.2}% at {} {}/{}, temperature {:.2}, {:.1}s training, {:.1}s in all",
        rep.method,
        job.task,
        o.n_train,
        o.n_dev,
        rep.dev_accuracy * 100.0,
        if o.prototype { "step" } else { "epoch" },
        rep.best_epoch,
        rep.epochs_run,
        rep.temperature,
        o.train_seconds,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "wrote {}.json and {}.safetensors",
        job.out.display(),
        job.out.display()
    );
    Ok(())
}

/// After a head is written: names it in the `--into` bundle, or prints the lines to add.
pub(crate) fn install(job: &HeadJob, spec: &ModelSpec, into: Option<&Path>) -> Result<()> {
    match into {
        Some(m) => {
            let lines = set_task_head(m, &job.task, &job.out)?;
            println!(
                "{}: task {} now uses this head:\n{lines}",
                m.display(),
                job.task
            );
        }
        None => {
            let m = spec.dir.join(MANIFEST);
            if m.is_file() {
                println!(
                    "to score with it, add to {} (or train with --into {}):\n{}",
                    m.display(),
                    m.display(),
                    head_entry(&m, &job.task, &job.out)?
                );
            }
        }
    }
    Ok(())
}

/// Prints what `train --task aspects` did.
pub(crate) fn print_aspects(r: &AspectTrainReport, set: &AspectSet, out: &Path) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(r)?);
    println!(
        "{} sentences, {} aspects ({} without offsets, {} placed), opinions {} ({} placed); wrote {}.json and .safetensors",
        set.examples.len(),
        set.aspects,
        set.searched,
        set.placed,
        set.opinions.0,
        set.opinions.1,
        out.display()
    );
    Ok(())
}
