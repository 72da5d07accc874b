//! vocmine: voice-of-customer text mining.
//!
//! The pipeline, one module per stage: [`ingest`] -> [`text::normalise`] -> [`encode`] ->
//! [`classify`] (and [`aspects`]) -> [`pipeline`] (scoring runs) -> [`workspace`] (the run
//! folder, [`workspace::RunDir`]) -> [`topics`] (over [`cluster`]) and [`report`];
//! [`alerts`] delivers the report's spikes to the people who own them;
//! [`text::segment`] splits words for [`index`] (tantivy search), topic labels and `--tokens`;
//! [`serve`] answers search and scoring over HTTP. [`record`] holds the types that flow,
//! [`severity`] the ranking rule, [`model`] the bundle (encoder + heads), [`taxonomy`] the
//! few-shot tasks as data. [`corpus`] reads labelled corpora and caches their embeddings for
//! training ([`training`]: the jobs, from files and spec files to heads and bundles, over
//! [`classify`] and [`finetune`]) and evaluation ([`eval`], [`metrics`]); [`rng`] makes
//! seeds reproducible and [`error`] is the library's error type.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::missing_safety_doc)]

pub mod alerts;
pub mod aspects;
pub mod classify;
pub mod cluster;
pub mod corpus;
pub mod encode;
pub mod error;
pub mod eval;
pub mod finetune;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod rng;
pub mod serve;
pub mod severity;
pub mod taxonomy;
pub mod text;
pub mod topics;
pub mod training;
pub mod workspace;

pub use error::{Error, Result};
