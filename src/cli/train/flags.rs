//! The flags of `vocmine train`, and the [`HeadJob`] they describe.

use super::{few_shot, finetune};
use crate::cli::args::EncoderArgs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vocmine::classify::ClassWeight;
use vocmine::training::heads::HeadJob;
use vocmine::training::LabelledFiles;

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Task name (the key of its result in the output), e.g. sentiment
    #[arg(long, required_unless_present = "finetune", default_value = "")]
    pub(super) task: String,
    /// Training files (JSONL or CSV), repeatable
    #[arg(long, required_unless_present = "finetune")]
    pub(super) data: Vec<PathBuf>,
    /// Dev files for early stopping and calibration, repeatable [default: hold out
    /// --dev-fraction of the training data]
    #[arg(long)]
    dev: Vec<PathBuf>,
    /// Share of the training data held out as dev when no --dev is given (seeded)
    #[arg(long, default_value_t = 0.1)]
    pub(super) dev_fraction: f64,
    /// Test files to report accuracy on after training, repeatable
    #[arg(long)]
    test: Vec<PathBuf>,
    /// Label field; one for every file, or comma-separated, one per --data file in order
    /// (--dev and --test files use the first). `FIELD.SUB` takes the `SUB` value that every
    /// object of the array FIELD shares, e.g. `aspects.polarity` for the SemEval sentences
    /// whose aspects agree (the others are skipped)
    #[arg(
        long,
        default_value = "label",
        value_delimiter = ',',
        value_name = "FIELD"
    )]
    label_field: Vec<String>,
    /// Text field
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Label order, comma-separated [default: sorted labels of the training data]
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Use at most this many examples of each training file (seeded sample, after
    /// --relabel); one value for every file, or comma-separated, one per --data file in order
    #[arg(long, value_delimiter = ',', value_name = "N")]
    max_per_file: Vec<usize>,
    /// Map labels of the training and dev files before training, FROM=TO, comma-separated or
    /// repeated: merges fine labels into coarse ones (e.g. an intent corpus's requests into
    /// `neutral`); TO = - drops the rows; FROM = * maps every label neither named nor in
    /// --labels
    #[arg(long, value_delimiter = ',', value_name = "FROM=TO")]
    relabel: Vec<String>,
    #[command(flatten)]
    pub(super) few: few_shot::FewShotArgs,
    /// How to train: `mlp` (minibatch AdamW, early stopping on dev), `prototype` (the nearest-
    /// prototype head of all training rows refined by logistic regression, the refinement step
    /// chosen on dev; single-label only), or `auto`: `prototype` for a small single-label set
    /// (under 2,000 rows or under 50 rows per label) unless --hidden, --epochs or --lr is
    /// given, else `mlp`
    #[arg(long, default_value = "auto", value_parser = ["auto", "mlp", "prototype"])]
    method: String,
    /// Hidden width of the MLP head (0 = linear) [default: 256]
    #[arg(long)]
    pub(super) hidden: Option<usize>,
    /// Maximum epochs of the MLP head [default: 60]
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// Learning rate of the MLP head [default: 0.001]
    #[arg(long)]
    pub(super) lr: Option<f64>,
    /// With --task aspects: weight of each --data file's aspects in the polarity head's loss
    /// and dev accuracy, comma-separated, one per --data file in order (files past the list
    /// count 1), e.g. 1,1,1,0.3 to let weak silver labels teach less [default: all 1]
    #[arg(long, value_delimiter = ',', value_name = "W")]
    pub(super) polarity_weight: Vec<f32>,
    /// With --task aspects: the same for the dev rows' share of the dev accuracy that picks
    /// the polarity head's epoch [default: --polarity-weight]
    #[arg(long, value_delimiter = ',', value_name = "W")]
    pub(super) polarity_dev_weight: Option<Vec<f32>>,
    /// With --task aspects: class weighting of the polarity head's loss
    #[arg(long, default_value = "sqrt", value_parser = ["none", "sqrt", "balanced"])]
    pub(super) polarity_class_weight: String,
    /// With --task aspects: train this many polarity MLPs (seeds SEED, SEED+1, ...) and ship
    /// their mean as one wider MLP
    #[arg(long, default_value_t = 1)]
    pub(super) polarity_ensemble: usize,
    /// With --task aspects: what the polarity head reads of an aspect: `mean` (span, proximity
    /// context, sentence) or `clause` (those and the aspect's clause)
    #[arg(long, default_value = "mean", value_parser = ["mean", "clause"])]
    pub(super) polarity_features: String,
    /// With --task aspects: width of the polarity head's aspect-queried attention over the
    /// context tokens (0: none)
    #[arg(long, default_value_t = 0)]
    pub(super) polarity_attention: usize,
    /// Class weighting for imbalanced labels
    #[arg(long, default_value = "sqrt", value_parser = ["none", "sqrt", "balanced"])]
    class_weight: String,
    /// Seed for sampling, initialisation and shuffling
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Output head stem (writes STEM.json and STEM.safetensors); with --finetune, a folder
    #[arg(long)]
    pub(super) out: PathBuf,
    /// Also name the head as --task's head in this bundle manifest (a vocmine.toml, or its
    /// folder), which must be the bundle of --model (the head only fits that encoder); the rest
    /// of the file is kept. Without it, the lines to add are printed
    #[arg(long, value_name = "VOCMINE_TOML")]
    pub(super) into: Option<PathBuf>,
    /// Embedding cache folder [default: $VOCMINE_CACHE or .cache/vocmine]
    #[arg(long)]
    pub(super) cache: Option<PathBuf>,
    #[command(flatten)]
    pub(super) ft: finetune::FinetuneArgs,
    #[command(flatten)]
    pub(super) enc: EncoderArgs,
}

impl TrainArgs {
    pub(super) fn job(&self) -> Result<HeadJob> {
        Ok(HeadJob {
            task: self.task.clone(),
            data: LabelledFiles {
                files: self.data.clone(),
                text_field: self.text_field.clone(),
                label_field: self.label_field.clone(),
                max_per_file: self.max_per_file.clone(),
                seed: self.seed,
            },
            dev: self.dev.clone(),
            dev_fraction: self.dev_fraction,
            test: self.test.clone(),
            labels: self.labels.clone(),
            relabel: self.relabel.clone(),
            method: self.method.parse()?,
            hidden: self.hidden,
            epochs: self.epochs,
            lr: self.lr,
            class_weight: match self.class_weight.as_str() {
                "none" => ClassWeight::None,
                "balanced" => ClassWeight::Balanced,
                _ => ClassWeight::Sqrt,
            },
            out: self.out.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }
}
