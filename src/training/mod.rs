//! Training jobs, callable without the command line: a classification head from labelled files
//! on the frozen encoder ([`heads::train_head_job`], the few-shot head [`heads::few_shot_job`])
//! and a fine-tuning run from a spec file that ends in a model bundle ([`finetune`]).
//!
//! The algorithms live elsewhere ([`crate::classify`] trains heads on embeddings,
//! [`crate::finetune`] tunes the encoder's top layers); this module turns files and settings
//! into their inputs, and their results into files on disk. Long steps report to a
//! [`Progress`] (the CLI draws bars from it; [`Silent`] ignores it).

pub mod finetune;
pub mod heads;

use crate::corpus::{read_labelled, Labelled, Relabel};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// What a long training step tells its caller as it goes.
pub trait Progress {
    /// A step of `total` items begins, described by `what`.
    fn start(&self, what: &str, total: usize);
    /// `done` items of the current step are done.
    fn set(&self, done: usize);
    /// The current step is over.
    fn finish(&self);
    /// A message for the user: what was skipped, relabelled or chosen.
    fn note(&self, message: &str);
}

/// A [`Progress`] that ignores everything (tests, library callers with no user to tell).
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: usize) {}
    fn set(&self, _: usize) {}
    fn finish(&self) {}
    fn note(&self, _: &str) {}
}

/// How labelled files are read into one training set.
#[derive(Debug, Clone)]
pub struct LabelledFiles {
    /// The files (JSONL or CSV).
    pub files: Vec<PathBuf>,
    /// Text field.
    pub text_field: String,
    /// Label field: one for every file, or one per file in order.
    pub label_field: Vec<String>,
    /// At most this many rows of each file (seeded sample, after relabelling): none, one for
    /// every file, or one per file.
    pub max_per_file: Vec<usize>,
    /// Seed of the samples.
    pub seed: u64,
}

/// Reads `spec`'s files into one set, each file relabelled by `relabel` (keeping `keep`) and
/// capped by `max_per_file`; skipped and relabelled rows are told to `progress`.
pub fn read_labelled_files(
    spec: &LabelledFiles,
    relabel: &Relabel,
    keep: &[String],
    progress: &dyn Progress,
) -> Result<Labelled> {
    let (files, label, max) = (&spec.files, &spec.label_field, &spec.max_per_file);
    if max.len() > 1 && max.len() != files.len() {
        return Err(Error::Invalid(format!(
            "--max-per-file has {} values for {} --data files: give one value, or one per file",
            max.len(),
            files.len()
        )));
    }
    if label.len() > 1 && label.len() != files.len() {
        return Err(Error::Invalid(format!(
            "--label-field has {} values for {} --data files: give one value, or one per file",
            label.len(),
            files.len()
        )));
    }
    let mut all = Labelled::default();
    for (i, f) in files.iter().enumerate() {
        let label = label
            .get(i)
            .or(label.first())
            .map_or("label", String::as_str);
        let (l, skipped) = read_labelled(f, &spec.text_field, label)?;
        if skipped > 0 {
            progress.note(&format!(
                "{}: {skipped} rows without {label:?} skipped",
                f.display()
            ));
        }
        let (l, changed, dropped) = relabel.apply(l, keep);
        if changed + dropped > 0 {
            progress.note(&format!(
                "{}: --relabel changed {changed} rows and dropped {dropped}",
                f.display()
            ));
        }
        all.extend(match max.get(i).or(max.first()) {
            Some(&n) => l.sample(n, spec.seed),
            None => l,
        });
    }
    Ok(all)
}
