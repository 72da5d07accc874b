//! The native half of the `vocmine` Python package: a scorer over the vocmine library.
//!
//! Comments come in as JSONL bytes (one object a line, read exactly as `POST /score` items
//! are, so validation and rejects are the CLI's) and go out as a JSON array with one object
//! per comment in input order: the `scored.jsonl` record, or `{"id", "line", "field",
//! "reject"}` for a comment that cannot be scored. The GIL is released while scoring.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use vocmine::encode::{set_intra_op_threads, EncoderConfig};
use vocmine::ingest::{ColumnMap, Item, Reader};
use vocmine::model::ModelSpec;
use vocmine::normalise::NormaliseConfig;
use vocmine::pipeline::{empty_text_reject, ScoreStages};
use vocmine::record::Reject;
use vocmine::segment::Segmenter;

/// The model shipped in the checkout this package was built from.
const SHIPPED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

fn err(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// A loaded model: encoder, heads, segmenter.
#[pyclass(module = "vocmine._native", frozen)]
struct NativeScorer {
    encoder: vocmine::encode::Encoder,
    heads: Vec<vocmine::classify::Head>,
    segmenter: Segmenter,
    version: String,
    mask: bool,
}

fn reject_json(r: &Reject) -> Value {
    serde_json::json!({"id": r.id, "line": r.line, "field": r.field, "reject": r.reason})
}

impl NativeScorer {
    fn run(&self, jsonl: Vec<u8>) -> vocmine::error::Result<Vec<Value>> {
        let items: Vec<Item> = Reader::from_jsonl("input", jsonl, ColumnMap::default())
            .collect::<vocmine::error::Result<_>>()?;
        let stages = ScoreStages {
            encoder: &self.encoder,
            heads: &self.heads,
            segmenter: &self.segmenter,
            normalise: NormaliseConfig {
                mask_pii: self.mask,
            },
            keep_tokens: false,
            model_version: &self.version,
        };
        let mut out: Vec<Option<Value>> = Vec::with_capacity(items.len());
        let mut comments = Vec::new();
        let mut slots = Vec::new();
        for it in items {
            match it {
                Item::Reject(r) => out.push(Some(reject_json(&r))),
                Item::Comment(c) => {
                    slots.push(out.len());
                    out.push(None);
                    comments.push(c);
                }
            }
        }
        let normed = stages.normalise(&comments);
        let mut keep = Vec::new();
        let mut keep_slots = Vec::new();
        for ((c, (n, h)), slot) in comments.into_iter().zip(normed).zip(slots) {
            if n.text.is_empty() {
                out[slot] = Some(reject_json(&empty_text_reject(&c)));
            } else {
                keep_slots.push(slot);
                keep.push((c, n, h));
            }
        }
        let batch = stages.score(keep)?;
        for (slot, (s, _)) in keep_slots.into_iter().zip(batch.records) {
            out[slot] = Some(serde_json::to_value(&s)?);
        }
        Ok(out.into_iter().flatten().collect())
    }
}

#[pymethods]
impl NativeScorer {
    /// Loads the model folder `model` (the shipped model when None) with `threads` threads
    /// (all cores when None); `mask=False` keeps personal data in the text.
    #[new]
    #[pyo3(signature = (model=None, threads=None, mask=true))]
    fn new(
        py: Python<'_>,
        model: Option<PathBuf>,
        threads: Option<usize>,
        mask: bool,
    ) -> PyResult<Self> {
        let dir = model.unwrap_or_else(|| PathBuf::from(SHIPPED_MODEL));
        py.detach(|| {
            let spec = ModelSpec::open(&dir).map_err(err)?;
            let mut cfg = EncoderConfig::default();
            if let Some(t) = threads {
                if t == 0 {
                    return Err(PyValueError::new_err("threads must be at least 1"));
                }
                cfg.threads = t;
            }
            cfg.workers = cfg.threads;
            set_intra_op_threads(1);
            let encoder = spec.load_encoder(cfg).map_err(err)?;
            let heads = spec.load_heads(None, &encoder).map_err(err)?;
            let tasks: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
            let version = spec
                .version(&encoder.fingerprint().map_err(err)?, &tasks)
                .map_err(err)?;
            Ok(NativeScorer {
                encoder,
                heads,
                segmenter: Segmenter::new(),
                version,
                mask,
            })
        })
    }

    /// The model version written into each record.
    #[getter]
    fn model(&self) -> String {
        self.version.clone()
    }

    /// Scores JSONL bytes; returns a JSON array (one object per input line).
    fn score_jsonl(&self, py: Python<'_>, jsonl: Vec<u8>) -> PyResult<String> {
        let out = py.detach(|| self.run(jsonl)).map_err(err)?;
        serde_json::to_string(&out).map_err(err)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeScorer>()?;
    Ok(())
}
