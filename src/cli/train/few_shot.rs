//! `vocmine train --few-shot K`: the flags of a few-shot head and what it prints.

use anyhow::Result;
use clap::Args;
use std::time::Instant;
use vocmine::taxonomy::RefineConfig;
use vocmine::training::heads::{FewShotConfig, FewShotOutcome, HeadJob, TestScore};

/// The flags of `train --few-shot`.
#[derive(Args)]
pub(crate) struct FewShotArgs {
    /// Few-shot: build a nearest-prototype head from K examples per label of the training data
    /// (seeded sample); no dev set or gradient training
    #[arg(long, value_name = "K")]
    few_shot: Option<usize>,
    /// With --few-shot: answer `unknown` below this confidence
    #[arg(long, default_value_t = 0.0)]
    unknown_below: f32,
    /// With --few-shot: add each label's name (underscores as spaces) as one more example of
    /// it, as a taxonomy's category names are
    #[arg(long)]
    with_label_names: bool,
    /// With --few-shot: refine the prototype head for this many full-batch steps of
    /// cross-entropy on the shots, anchored at the prototypes (0: plain prototypes)
    #[arg(long, default_value_t = 0)]
    refine_steps: usize,
    /// With --refine-steps: learning rate
    #[arg(long, default_value_t = 1e-3)]
    refine_lr: f64,
    /// With --refine-steps: weight of the L2 pull towards the prototype weights
    #[arg(long, default_value_t = 1e-3)]
    refine_anchor: f64,
}

impl FewShotArgs {
    /// The few-shot settings, when `--few-shot` is given.
    pub(crate) fn config(&self) -> Option<FewShotConfig> {
        self.few_shot.map(|k| FewShotConfig {
            k,
            unknown_below: self.unknown_below,
            with_label_names: self.with_label_names,
            refine: RefineConfig {
                steps: self.refine_steps,
                lr: self.refine_lr,
                anchor: self.refine_anchor,
            },
        })
    }
}

/// Prints the test results and the summary of a few-shot head.
pub(crate) fn print(job: &HeadJob, k: usize, o: &FewShotOutcome, t0: Instant) -> Result<()> {
    for t in &o.tests {
        if let TestScore::Single { accuracy, .. } = t.score {
            println!(
                "{}: accuracy {:.2}% ({k}-shot, {} labels), n={}",
                t.file.display(),
                accuracy * 100.0,
                o.labels,
                t.n
            );
        }
    }
    println!(
        "built a {k}-shot {} head ({} labels, {} examples) in {:.1}s; wrote {}.json/.safetensors",
        job.task,
        o.labels,
        o.examples,
        t0.elapsed().as_secs_f64(),
        job.out.display()
    );
    Ok(())
}
