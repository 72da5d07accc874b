//! `vocmine train --finetune SPEC`: the flags of a fine-tuning run, handed to
//! [`vocmine::training::finetune::FinetunePlan`], and what it did, printed.

use super::super::args::{Bars, EncoderArgs};
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use vocmine::training::finetune::{FinetuneJob, FinetuneOutcome, FinetunePlan};

/// The flags of `train --finetune`.
#[derive(Args)]
pub(crate) struct FinetuneArgs {
    /// Fine-tune the encoder's top layers and the heads of several tasks jointly, as the spec
    /// file says (tasks, data, settings; see models/finetune.toml); --out is then a folder that
    /// receives a model bundle. Resumes from its checkpoint when interrupted
    #[arg(long, value_name = "SPEC")]
    pub finetune: Option<PathBuf>,
    /// With --finetune: how many top layers to tune [default: the spec's]
    #[arg(long)]
    layers: Option<usize>,
    /// With --finetune: stop after this many steps (a checkpoint keeps the rest; run again to
    /// resume)
    #[arg(long, default_value_t = 0)]
    stop_after: usize,
    /// With --finetune: end training after this many seconds (all invocations), keeping the
    /// best dev weights and writing the bundle (for a machine lent for a fixed time)
    #[arg(long, value_name = "SECONDS")]
    time_budget: Option<f64>,
    /// With --finetune: where training steps run (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    device: String,
    /// With --finetune: the training engine: own (the project's kernels, CPU, exact f32), bf16
    /// (the own kernels with bf16 products and f32 sums; AVX512-BF16 CPUs, faster on AMD Zen
    /// 4/5) or candle (candle's autograd, the reference; always on a GPU)
    #[arg(long, default_value = "own", value_parser = ["own", "bf16", "candle"])]
    engine: String,
}

/// Runs `vocmine train --finetune SPEC --out OUT`.
pub(crate) fn run(a: &FinetuneArgs, spec: &Path, out: &Path, enc: &EncoderArgs) -> Result<()> {
    let plan = FinetunePlan::read(FinetuneJob {
        spec: spec.to_path_buf(),
        out: out.to_path_buf(),
        layers: a.layers,
        stop_after: a.stop_after,
        time_budget: a.time_budget,
        device: a.device.clone(),
        engine: a.engine.parse()?,
    })?;
    let model = enc.spec()?;
    let encoder = enc.load(&model)?;
    match plan.run(&model, &encoder, &Bars::default())? {
        FinetuneOutcome::Stopped(rep) => eprintln!(
            "stopped at step {} of {} (--stop-after; {:.1} texts/s training); run the same command again to resume",
            rep.steps, rep.total_steps, rep.texts_per_second
        ),
        FinetuneOutcome::Done {
            report: rep,
            manifest,
            not_carried,
            seconds,
        } => {
            eprintln!(
                "done in {seconds:.0} s ({} steps, {:.1} texts/s training); best dev mean {:.4}; wrote {}",
                rep.steps,
                rep.texts_per_second,
                rep.best.as_ref().map_or(f64::NAN, |b| b.score),
                manifest.display()
            );
            if !not_carried.is_empty() {
                eprintln!(
                    "note: heads trained on the frozen encoder are not carried over (retrain them with --model {}): {}",
                    out.display(),
                    not_carried.join(", ")
                );
            }
        }
    }
    Ok(())
}
