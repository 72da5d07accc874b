//! The native half of the `vocmine` Python package: a scorer over the vocmine library.
//!
//! Comments come in as JSONL bytes (one object a line, read exactly as `POST /score` items
//! are, so validation and rejects are the CLI's) and go out as a JSON array with one object
//! per comment in input order: the `scored.jsonl` record, or `{"id", "line", "field",
//! "reject"}` for a comment that cannot be scored; or, for `score_arrow`, as one Arrow batch
//! with the columns of `scored.parquet` (`vocmine::workspace::parquet`) and `line`, `field`, `reject`,
//! handed to pyarrow through Arrow's C data interface. The GIL is released while scoring.

use arrow_array::ffi::{to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::types::Float32Type;
use arrow_array::{
    Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use arrow_select::take::take;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use vocmine::cluster::{TopicConfig, TopicModel};
use vocmine::encode::{set_intra_op_threads, EncoderConfig};
use vocmine::ingest::{ColumnMap, Item, Reader};
use vocmine::model::ModelSpec;
use vocmine::pipeline::{empty_text_reject, ScoreStages};
use vocmine::record::{Reject, Scored};
use vocmine::text::normalise::NormaliseConfig;
use vocmine::text::segment::Segmenter;
use vocmine::topics::{assign_embeddings, assign_texts, fit_sample, fit_texts};
use vocmine::workspace::parquet::{scored_batch_with, TaskShape};

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

/// Each input line's outcome: its record, or its reject.
enum Outcome {
    /// The record and the pooled embedding its labels were computed from.
    Scored(Box<Scored>, Vec<f32>),
    Rejected(Reject),
}

impl Outcome {
    fn json(&self) -> vocmine::error::Result<Value> {
        Ok(match self {
            Outcome::Scored(s, _) => serde_json::to_value(s)?,
            Outcome::Rejected(r) => reject_json(r),
        })
    }
}

/// An Arrow batch exported through the C data interface, kept alive until pyarrow has moved
/// it out (its addresses are read by `pyarrow.RecordBatch._import_from_c`); the structs are
/// freed, and released if pyarrow never took them, when this is dropped. Unsendable: the
/// schema struct holds raw pointers, and the object lives on its thread for one import.
#[pyclass(module = "vocmine._native", unsendable)]
struct Exported {
    array: Box<FFI_ArrowArray>,
    schema: Box<FFI_ArrowSchema>,
}

#[pymethods]
impl Exported {
    /// The address of the `ArrowArray` struct.
    #[getter]
    fn array_ptr(&mut self) -> usize {
        &mut *self.array as *mut FFI_ArrowArray as usize
    }

    /// The address of the `ArrowSchema` struct.
    #[getter]
    fn schema_ptr(&mut self) -> usize {
        &mut *self.schema as *mut FFI_ArrowSchema as usize
    }
}

/// The outcomes as one batch: the `scored.parquet` columns (null in a rejected row but for
/// `id`), then `line`, `field` and `reject` (null in a scored row). Every head's task and
/// labels have their columns, so the schema does not depend on which rows were scored.
fn outcomes_batch(
    outs: &[Outcome],
    heads: &[vocmine::classify::Head],
    embeddings: bool,
) -> vocmine::error::Result<RecordBatch> {
    let bad = |e: arrow_schema::ArrowError| vocmine::error::Error::Invalid(e.to_string());
    let scored: Vec<Scored> = outs
        .iter()
        .filter_map(|o| match o {
            Outcome::Scored(s, _) => Some((**s).clone()),
            Outcome::Rejected(_) => None,
        })
        .collect();
    let mut shape = TaskShape::default();
    for h in heads {
        let labels = shape.tasks.entry(h.meta.task.clone()).or_default();
        labels.extend(h.meta.labels.iter().cloned());
    }
    for s in &scored {
        shape.add(s);
    }
    let batch = scored_batch_with(&scored, &shape)?;
    let mut k = 0u32;
    let idx: UInt32Array = outs
        .iter()
        .map(|o| match o {
            Outcome::Scored(..) => {
                k += 1;
                Some(k - 1)
            }
            Outcome::Rejected(_) => None,
        })
        .collect();
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.name() == "id" {
            let ids: StringArray = outs
                .iter()
                .map(|o| match o {
                    Outcome::Scored(s, _) => Some(s.id.clone()),
                    Outcome::Rejected(r) => r.id.clone(),
                })
                .collect();
            cols.push(Arc::new(ids));
        } else {
            cols.push(take(c.as_ref(), &idx, None).map_err(bad)?);
        }
        fields.push(f.as_ref().clone().with_nullable(true));
    }
    let rej = |f: fn(&Reject) -> Option<String>| -> ArrayRef {
        Arc::new(
            outs.iter()
                .map(|o| match o {
                    Outcome::Scored(..) => None,
                    Outcome::Rejected(r) => f(r),
                })
                .collect::<StringArray>(),
        )
    };
    let lines: UInt64Array = outs
        .iter()
        .map(|o| match o {
            Outcome::Scored(..) => None,
            Outcome::Rejected(r) => Some(r.line),
        })
        .collect();
    cols.push(Arc::new(lines));
    fields.push(Field::new("line", DataType::UInt64, true));
    cols.push(rej(|r| r.field.clone()));
    fields.push(Field::new("field", DataType::Utf8, true));
    cols.push(rej(|r| Some(r.reason.clone())));
    fields.push(Field::new("reject", DataType::Utf8, true));
    if embeddings {
        let rows = outs.iter().map(|o| match o {
            Outcome::Scored(_, e) => Some(e.iter().map(|&x| Some(x)).collect::<Vec<_>>()),
            Outcome::Rejected(_) => None,
        });
        let list = ListArray::from_iter_primitive::<Float32Type, _, _>(rows);
        fields.push(Field::new("embedding", list.data_type().clone(), true));
        cols.push(Arc::new(list));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(bad)
}

impl NativeScorer {
    fn run(&self, jsonl: Vec<u8>) -> vocmine::error::Result<Vec<Outcome>> {
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
            aspects: None,
        };
        let mut out: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
        let mut comments = Vec::new();
        let mut slots = Vec::new();
        for it in items {
            match it {
                Item::Reject(r) => out.push(Some(Outcome::Rejected(r))),
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
                out[slot] = Some(Outcome::Rejected(empty_text_reject(&c)));
            } else {
                keep_slots.push(slot);
                keep.push((c, n, h));
            }
        }
        let batch = stages.score(keep)?;
        for (slot, (s, e)) in keep_slots.into_iter().zip(batch.records) {
            out[slot] = Some(Outcome::Scored(Box::new(s), e));
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
        let out = py
            .detach(|| {
                self.run(jsonl)?
                    .iter()
                    .map(Outcome::json)
                    .collect::<vocmine::error::Result<Vec<Value>>>()
            })
            .map_err(err)?;
        serde_json::to_string(&out).map_err(err)
    }

    /// Scores JSONL bytes into one Arrow batch (see the module's docs), exported through the
    /// C data interface; with `embeddings`, an `embedding` column (list of float32, null for
    /// a reject) holds each comment's pooled embedding, for topics without a second encoding.
    #[pyo3(signature = (jsonl, embeddings=false))]
    fn score_jsonl_arrow(
        &self,
        py: Python<'_>,
        jsonl: Vec<u8>,
        embeddings: bool,
    ) -> PyResult<Exported> {
        let batch = py
            .detach(|| outcomes_batch(&self.run(jsonl)?, &self.heads, embeddings))
            .map_err(err)?;
        let data = StructArray::from(batch).into_data();
        let (array, schema) = to_ffi(&data).map_err(err)?;
        Ok(Exported {
            array: Box::new(array),
            schema: Box::new(schema),
        })
    }

    /// Fits topics on `texts` (in this order; `ids` name them in the model's
    /// representatives) as `vocmine topics` does: returns the topic model as JSON (the
    /// `topics/model.json` of a run folder) and each text's topic (-1: none). `embeddings`,
    /// when given, are the texts' embeddings (little-endian f32, one row per text, as
    /// `score_jsonl_arrow` gives them), so the texts are not encoded again. `sentiment`, when
    /// given, holds each text's predicted sentiment label (the `sentiment.label` column):
    /// its directions are removed with the language's before clustering, as `vocmine topics`
    /// removes them, so topics follow subjects rather than tone.
    #[pyo3(signature = (ids, texts, seed=42, min_cluster_size=0, embeddings=None, sentiment=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit_topics(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        texts: Vec<String>,
        seed: u64,
        min_cluster_size: usize,
        embeddings: Option<Vec<u8>>,
        sentiment: Option<Vec<String>>,
    ) -> PyResult<(String, Vec<i64>)> {
        let sentiment = sentiment.unwrap_or_default();
        let cfg = TopicConfig {
            seed,
            min_cluster_size,
            ..TopicConfig::default()
        };
        let embs = embeddings
            .map(|b| rows_of(&b, texts.len(), self.encoder.dim()))
            .transpose()?;
        let (model, labels) = py
            .detach(|| match embs {
                Some(e) => fit_sample(&ids, &texts, &sentiment, &e, &cfg),
                None => fit_texts(&self.encoder, &ids, &texts, &sentiment, &cfg),
            })
            .map_err(err)?;
        Ok((
            serde_json::to_string_pretty(&model).map_err(err)? + "\n",
            labels,
        ))
    }

    /// Each text's topic (-1: none) in the topic model `model_json` (from `fit_topics` or a
    /// run folder's `topics/model.json`); `embeddings` as for `fit_topics`.
    #[pyo3(signature = (model_json, texts, embeddings=None))]
    fn assign_topics(
        &self,
        py: Python<'_>,
        model_json: &str,
        texts: Vec<String>,
        embeddings: Option<Vec<u8>>,
    ) -> PyResult<Vec<i64>> {
        let model: TopicModel = serde_json::from_str(model_json)
            .map_err(|e| PyValueError::new_err(format!("not a topic model: {e}")))?;
        match embeddings {
            Some(b) => Ok(assign_embeddings(
                &model,
                &rows_of(&b, texts.len(), self.encoder.dim())?,
            )),
            None => py
                .detach(|| assign_texts(&self.encoder, &model, &texts))
                .map_err(err),
        }
    }
}

/// `n` rows of `dim` little-endian f32 from `bytes`, or an error saying what does not fit.
fn rows_of(bytes: &[u8], n: usize, dim: usize) -> PyResult<Vec<Vec<f32>>> {
    if bytes.len() != n * dim * 4 {
        return Err(PyValueError::new_err(format!(
            "embeddings: {} bytes for {n} rows of {dim} float32 (expected {})",
            bytes.len(),
            n * dim * 4
        )));
    }
    Ok(bytes
        .chunks_exact(dim * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeScorer>()?;
    m.add_class::<Exported>()?;
    Ok(())
}
