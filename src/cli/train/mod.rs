//! `vocmine train`: the flags of a head's training, handed to [`vocmine::training::heads`]
//! (`--few-shot` to [`few_shot`], `--finetune` to [`finetune`], `--task aspects`
//! to [`vocmine::aspects::train_files`]), and what it did, printed.

mod few_shot;
mod finetune;
mod flags;
mod summary;

pub(crate) use flags::TrainArgs;

use super::args::Bars;
use anyhow::Result;
use std::time::Instant;
use vocmine::corpus::EmbeddingCache;
use vocmine::model::{bundle_manifest_of, ModelSpec};
use vocmine::training::heads::{few_shot_job, train_head_job, Embedder};

pub(crate) fn cmd_train(a: TrainArgs) -> Result<()> {
    if let Some(spec) = &a.ft.finetune {
        return finetune::run(&a.ft, spec, &a.out, &a.enc);
    }
    let t0 = Instant::now();
    let spec = a.enc.spec()?;
    if a.task == "aspects" {
        return train_aspects(&a, &spec);
    }
    let into = a
        .into
        .as_deref()
        .map(|p| bundle_manifest_of(p, &spec))
        .transpose()?;
    let encoder = a.enc.load(&spec)?;
    let cache = EmbeddingCache::new(a.cache.clone().unwrap_or_else(EmbeddingCache::default_dir));
    let emb = Embedder::new(&encoder, &cache)?;
    let job = a.job()?;
    match a.few.config() {
        Some(shots) => {
            let o = few_shot_job(&job, &shots, &emb, &Bars::default())?;
            few_shot::print(&job, shots.k, &o, t0)?;
        }
        None => {
            let o = train_head_job(&job, &emb, &Bars::default())?;
            summary::print(&job, &o, t0)?;
        }
    }
    summary::install(&job, &spec, into.as_deref())
}

/// `train --task aspects`: the aspect tagger and polarity heads on the labelled spans.
fn train_aspects(a: &TrainArgs, spec: &ModelSpec) -> Result<()> {
    let encoder = a.enc.load(spec)?;
    let root = a.cache.clone().unwrap_or_else(EmbeddingCache::default_dir);
    let d = vocmine::aspects::AspectTrainConfig::default();
    let cfg = vocmine::aspects::AspectTrainConfig {
        tag_hidden: a.hidden.unwrap_or(d.tag_hidden),
        polarity_hidden: a.hidden.unwrap_or(d.polarity_hidden),
        epochs: a.epochs.unwrap_or(d.epochs),
        lr: a.lr.unwrap_or(d.lr),
        dev_fraction: a.dev_fraction,
        seed: a.seed,
        polarity_weights: a.polarity_weight.clone(),
        polarity_attention: a.polarity_attention,
        polarity_dev_weights: a.polarity_dev_weight.clone(),
        polarity_ensemble: a.polarity_ensemble,
        polarity_class_weight: match a.polarity_class_weight.as_str() {
            "none" => vocmine::classify::ClassWeight::None,
            "balanced" => vocmine::classify::ClassWeight::Balanced,
            _ => vocmine::classify::ClassWeight::Sqrt,
        },
        polarity_features: match a.polarity_features.as_str() {
            "clause" => vocmine::aspects::PolarityFeatures::Clause,
            _ => vocmine::aspects::PolarityFeatures::Mean,
        },
        ..d
    };
    let cache = vocmine::aspects::cache_dir(&root);
    let (r, set) = vocmine::aspects::train_files(&encoder, &a.data, Some(&cache), &cfg, &a.out)?;
    summary::print_aspects(&r, &set, &a.out)
}
