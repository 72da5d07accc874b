//! `scored.parquet`: the scored records as a typed Parquet file, written and read back.
//!
//! One row per [`Scored`] record, the columns typed:
//!
//! | column | type |
//! | --- | --- |
//! | `id`, `text`, `lang`, `time`, `channel`, `tier`, `product`, `text_hash`, `model` | string |
//! | `rating` | float64 |
//! | `masked`, `tokens` | list of string (`tokens` null when not kept) |
//! | `n_tokens` | uint64 |
//! | one column per task (`sentiment`, `intent`, `pain_point`, ...) | struct, null for a record the task did not score |
//! | `aspects` (when the aspect heads ran) | list of struct `{aspect, opinion, polarity, confidence, from, to, category}` (`opinion`, `category` null when none; `from`, `to` uint64 character offsets into `text`), null for a record they did not read |
//!
//! A task's struct holds `label` (string), `confidence` (float32), `probs` (a struct with one
//! float32 field per label, sorted by name, so `sentiment.probs.negative` is a column),
//! `score` (float32, sentiment only), `type` (string, the pain point's type), `labels` (list of
//! string, multi-label heads) and `alternatives` (list of struct `{label, prob}`). Every column
//! but `id` is nullable. Reading the file back ([`read_scored_parquet`]) gives records equal to
//! the `scored.jsonl` lines they were written from; [`scored_batch`] and [`records_from_batch`]
//! do the same for one Arrow batch in memory.

use super::RunDir;
use crate::error::{Error, Result};
use crate::record::{Scored, TaskResult};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

/// The file name of the Parquet output in a run folder.
pub const SCORED_PARQUET: &str = "scored.parquet";

/// Records per batch (and so per row group at most) when a file is written or read.
const BATCH: usize = 8192;

/// The columns of a record that are not tasks.
const BASE: [&str; 14] = [
    "id",
    "text",
    "lang",
    "time",
    "channel",
    "rating",
    "tier",
    "product",
    "masked",
    "tokens",
    "n_tokens",
    "text_hash",
    "model",
    "aspects",
];

/// The tasks of a set of records and each task's labels (the keys of its probabilities): the
/// shape of the task columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskShape {
    /// Task name -> every label found in its `probs`.
    pub tasks: BTreeMap<String, BTreeSet<String>>,
    /// Some record has aspects: the batch has an `aspects` column.
    pub aspects: bool,
}

impl TaskShape {
    /// Adds a record's tasks and labels.
    pub fn add(&mut self, r: &Scored) {
        self.aspects |= r.aspects.is_some();
        for (task, t) in &r.tasks {
            let labels = self.tasks.entry(task.clone()).or_default();
            labels.extend(t.probs.keys().cloned());
        }
    }

    /// The shape of `records`.
    pub fn of(records: &[Scored]) -> TaskShape {
        let mut s = TaskShape::default();
        for r in records {
            s.add(r);
        }
        s
    }
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("building a Parquet batch: {e}"))
}

fn strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

/// A list-of-string column: `None` rows are null lists.
fn string_lists<'a>(rows: impl Iterator<Item = Option<&'a [String]>>) -> Result<ArrayRef> {
    let mut lens = Vec::new();
    let mut valid = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    for r in rows {
        valid.push(r.is_some());
        let r = r.unwrap_or(&[]);
        lens.push(r.len());
        values.extend(r.iter().map(String::as_str));
    }
    let field = Arc::new(Field::new_list_field(DataType::Utf8, true));
    let nulls = NullBuffer::from(valid);
    let values: ArrayRef = Arc::new(StringArray::from(values));
    let list = ListArray::try_new(field, OffsetBuffer::from_lengths(lens), values, Some(nulls))
        .map_err(invalid)?;
    Ok(Arc::new(list))
}

/// A struct array from named children, null where `valid` is false.
fn struct_of(children: Vec<(&str, ArrayRef)>, valid: Option<Vec<bool>>) -> Result<StructArray> {
    let fields: Fields = children
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    StructArray::try_new(fields, arrays, valid.map(NullBuffer::from)).map_err(invalid)
}

/// One task's column over `records`.
fn task_column(records: &[Scored], task: &str, labels: &BTreeSet<String>) -> Result<ArrayRef> {
    let ts: Vec<Option<&TaskResult>> = records.iter().map(|r| r.tasks.get(task)).collect();
    let valid: Vec<bool> = ts.iter().map(Option::is_some).collect();
    let label = strings(ts.iter().map(|t| t.map(|t| t.label.as_str())));
    let conf: ArrayRef = Arc::new(Float32Array::from_iter(
        ts.iter().map(|t| t.map(|t| t.confidence)),
    ));
    let mut children = vec![("label", label), ("confidence", conf)];
    if !labels.is_empty() {
        let probs: Vec<(&str, ArrayRef)> = labels
            .iter()
            .map(|l| {
                let a: ArrayRef = Arc::new(Float32Array::from_iter(
                    ts.iter().map(|t| t.and_then(|t| t.probs.get(l).copied())),
                ));
                (l.as_str(), a)
            })
            .collect();
        children.push(("probs", Arc::new(struct_of(probs, Some(valid.clone()))?)));
    }
    let score: ArrayRef = Arc::new(Float32Array::from_iter(
        ts.iter().map(|t| t.and_then(|t| t.score)),
    ));
    children.push(("score", score));
    children.push((
        "type",
        strings(ts.iter().map(|t| t.and_then(|t| t.kind.as_deref()))),
    ));
    children.push((
        "labels",
        string_lists(ts.iter().map(|t| t.map(|t| t.labels.as_slice())))?,
    ));
    // alternatives: list<struct<label, prob>>
    let mut lens = Vec::with_capacity(ts.len());
    let (mut alt_labels, mut alt_probs) = (Vec::new(), Vec::new());
    for t in &ts {
        let alts = t.map_or(&[][..], |t| t.alternatives.as_slice());
        lens.push(alts.len());
        for (l, p) in alts {
            alt_labels.push(l.as_str());
            alt_probs.push(*p);
        }
    }
    let alt = struct_of(
        vec![
            ("label", Arc::new(StringArray::from(alt_labels)) as ArrayRef),
            ("prob", Arc::new(Float32Array::from(alt_probs)) as ArrayRef),
        ],
        None,
    )?;
    let item = Arc::new(Field::new_list_field(alt.data_type().clone(), true));
    let alts = ListArray::try_new(
        item,
        OffsetBuffer::from_lengths(lens),
        Arc::new(alt),
        Some(NullBuffer::from(valid.clone())),
    )
    .map_err(invalid)?;
    children.push(("alternatives", Arc::new(alts)));
    Ok(Arc::new(struct_of(children, Some(valid))?))
}

/// The `aspects` column: one list per record, null where the aspect heads did not run.
fn aspects_column(records: &[Scored]) -> Result<ArrayRef> {
    let (mut lens, mut valid) = (Vec::new(), Vec::new());
    let (mut asp, mut op, mut pol) = (Vec::new(), Vec::new(), Vec::new());
    let (mut conf, mut from, mut to) = (Vec::new(), Vec::new(), Vec::new());
    let mut cat = Vec::new();
    for r in records {
        valid.push(r.aspects.is_some());
        let a = r.aspects.as_deref().unwrap_or(&[]);
        lens.push(a.len());
        for x in a {
            asp.push(x.aspect.as_str());
            op.push(x.opinion.as_deref());
            pol.push(x.polarity.as_str());
            conf.push(x.confidence);
            from.push(x.span[0] as u64);
            to.push(x.span[1] as u64);
            cat.push(x.category.as_deref());
        }
    }
    let item = struct_of(
        vec![
            ("aspect", Arc::new(StringArray::from(asp)) as ArrayRef),
            ("opinion", strings(op.into_iter())),
            ("polarity", Arc::new(StringArray::from(pol))),
            ("confidence", Arc::new(Float32Array::from(conf))),
            ("from", Arc::new(UInt64Array::from(from))),
            ("to", Arc::new(UInt64Array::from(to))),
            ("category", strings(cat.into_iter())),
        ],
        None,
    )?;
    let field = Arc::new(Field::new_list_field(item.data_type().clone(), true));
    let list = ListArray::try_new(
        field,
        OffsetBuffer::from_lengths(lens),
        Arc::new(item),
        Some(NullBuffer::from(valid)),
    )
    .map_err(invalid)?;
    Ok(Arc::new(list))
}

/// The records as one Arrow batch, with task columns of the given shape (which must hold every
/// task and label of the records: [`TaskShape::of`]).
pub fn scored_batch_with(records: &[Scored], shape: &TaskShape) -> Result<RecordBatch> {
    let s = |f: fn(&Scored) -> Option<&str>| strings(records.iter().map(f));
    let mut cols: Vec<(String, ArrayRef)> = vec![
        ("id".into(), s(|r| Some(r.id.as_str()))),
        ("text".into(), s(|r| Some(r.text.as_str()))),
        ("lang".into(), s(|r| Some(r.lang.as_str()))),
        ("time".into(), s(|r| r.time.as_deref())),
        ("channel".into(), s(|r| r.channel.as_deref())),
        (
            "rating".into(),
            Arc::new(Float64Array::from_iter(records.iter().map(|r| r.rating))),
        ),
        ("tier".into(), s(|r| r.tier.as_deref())),
        ("product".into(), s(|r| r.product.as_deref())),
        (
            "masked".into(),
            string_lists(records.iter().map(|r| Some(r.masked.as_slice())))?,
        ),
        (
            "tokens".into(),
            string_lists(records.iter().map(|r| r.tokens.as_deref()))?,
        ),
        (
            "n_tokens".into(),
            Arc::new(UInt64Array::from_iter_values(
                records.iter().map(|r| r.n_tokens as u64),
            )),
        ),
        ("text_hash".into(), s(|r| Some(r.text_hash.as_str()))),
        ("model".into(), s(|r| Some(r.model.as_str()))),
    ];
    if shape.aspects {
        cols.push(("aspects".into(), aspects_column(records)?));
    }
    for (task, labels) in &shape.tasks {
        if BASE.contains(&task.as_str()) {
            return Err(Error::Invalid(format!(
                "a task named {task:?} cannot be a Parquet column: the name is a record field's"
            )));
        }
        cols.push((task.clone(), task_column(records, task, labels)?));
    }
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(n, a.data_type().clone(), n != "id"))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, cols.into_iter().map(|(_, a)| a).collect()).map_err(invalid)
}

/// The records as one Arrow batch (task columns from the records' own tasks and labels).
pub fn scored_batch(records: &[Scored]) -> Result<RecordBatch> {
    scored_batch_with(records, &TaskShape::of(records))
}

/// Reads `scored.jsonl` one record at a time; `f` gets each record.
fn each_jsonl(path: &Path, mut f: impl FnMut(Scored) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Scored = serde_json::from_str(&line)
            .map_err(|e| Error::input(path, format!("line {}: {e}", i + 1)))?;
        f(r)?;
    }
    Ok(())
}

/// Writes the records of `scored_jsonl` to the Parquet file `out` (zstd-compressed), in two
/// streaming passes (the first finds the tasks and labels), so memory stays bounded by one
/// batch. The file is written beside `out` and renamed over it, so a reader never sees half of
/// it. Returns the number of records.
pub fn write_scored_parquet(scored_jsonl: &Path, out: &Path) -> Result<u64> {
    let mut shape = TaskShape::default();
    each_jsonl(scored_jsonl, |r| {
        shape.add(&r);
        Ok(())
    })?;
    let schema = scored_batch_with(&[], &shape)?.schema();
    let tmp = out.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(BATCH * 16))
        .build();
    let perr = |e: parquet::errors::ParquetError| Error::input(&tmp, e.to_string());
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(perr)?;
    let mut buf = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    let flush = |buf: &mut Vec<Scored>, w: &mut ArrowWriter<std::fs::File>| -> Result<()> {
        let batch = scored_batch_with(buf, &shape)?;
        w.write(&batch).map_err(perr)?;
        buf.clear();
        Ok(())
    };
    each_jsonl(scored_jsonl, |r| {
        buf.push(r);
        n += 1;
        if buf.len() == BATCH {
            flush(&mut buf, &mut w)?;
        }
        Ok(())
    })?;
    if !buf.is_empty() {
        flush(&mut buf, &mut w)?;
    }
    w.close().map_err(perr)?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(n)
}

/// Writes `RUN/scored.parquet` from `RUN/scored.jsonl` when `asked`, or when the run folder
/// already has one (so it never lags behind scored.jsonl). Returns the records written, or
/// `None` when nothing was written.
pub fn update_run_parquet(run: &RunDir, asked: bool) -> Result<Option<u64>> {
    let out = run.scored_parquet();
    if !asked && !out.exists() {
        return Ok(None);
    }
    write_scored_parquet(&run.scored(), &out).map(Some)
}

mod read;
pub use read::{
    read_parquet_topics, read_scored_parquet, records_and_topics, records_from_batch,
    ScoredParquetReader,
};

#[cfg(test)]
mod tests;
