//! vocmine: voice-of-customer text mining.
//!
//! The pipeline, one module per stage: [`ingest`] -> [`normalise`] -> [`segment`] ->
//! [`encode`] -> [`classify`] -> [`pipeline`] (scoring runs that write the outputs).
//! [`corpus`] reads labelled corpora and caches their embeddings for training and evaluation.
#![warn(missing_docs)]

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
pub mod normalise;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod rng;
pub mod segment;
pub mod serve;
pub mod taxonomy;
pub mod workspace;

pub use error::{Error, Result};
