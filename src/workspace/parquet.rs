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
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
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
const BASE: [&str; 13] = [
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
];

/// The tasks of a set of records and each task's labels (the keys of its probabilities): the
/// shape of the task columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskShape {
    /// Task name -> every label found in its `probs`.
    pub tasks: BTreeMap<String, BTreeSet<String>>,
}

impl TaskShape {
    /// Adds a record's tasks and labels.
    pub fn add(&mut self, r: &Scored) {
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

/// A column of `batch` by name, or an error naming it.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Invalid(format!("scored Parquet: no column {name:?}")))
}

fn wrong(name: &str, a: &dyn Array, want: &str) -> Error {
    Error::Invalid(format!(
        "scored Parquet: column {name:?} is of type {}, expected {want}",
        a.data_type()
    ))
}

fn str_col<'a>(name: &str, a: &'a ArrayRef) -> Result<&'a StringArray> {
    a.as_string_opt::<i32>()
        .ok_or_else(|| wrong(name, a.as_ref(), "string"))
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

fn list_strings(name: &str, a: &ArrayRef, i: usize) -> Result<Option<Vec<String>>> {
    let l = a
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong(name, a.as_ref(), "list of string"))?;
    if l.is_null(i) {
        return Ok(None);
    }
    let v = l.value(i);
    let s = str_col(name, &v)?;
    Ok(Some((0..s.len()).map(|j| s.value(j).to_string()).collect()))
}

fn f32_col<'a>(name: &str, a: &'a ArrayRef) -> Result<&'a arrow_array::Float32Array> {
    a.as_primitive_opt::<Float32Type>()
        .ok_or_else(|| wrong(name, a.as_ref(), "float32"))
}

/// Row `i` of a task's struct column, `None` where the task did not score it.
fn task_at(name: &str, st: &StructArray, i: usize) -> Result<Option<TaskResult>> {
    if st.is_null(i) {
        return Ok(None);
    }
    let child = |c: &str| {
        st.column_by_name(c)
            .ok_or_else(|| Error::Invalid(format!("scored Parquet: task {name:?} has no {c:?}")))
    };
    let label = str_col(name, child("label")?)?.value(i).to_string();
    let confidence = f32_col(name, child("confidence")?)?.value(i);
    let mut probs = BTreeMap::new();
    if let Some(p) = st.column_by_name("probs") {
        let p = p
            .as_struct_opt()
            .ok_or_else(|| wrong(name, p.as_ref(), "struct of float32"))?;
        for (f, a) in p.fields().iter().zip(p.columns()) {
            let a = f32_col(name, a)?;
            if a.is_valid(i) {
                probs.insert(f.name().clone(), a.value(i));
            }
        }
    }
    let score = f32_col(name, child("score")?)?;
    let kind = str_col(name, child("type")?)?;
    let labels = list_strings(name, child("labels")?, i)?.unwrap_or_default();
    let alts = child("alternatives")?
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong(name, st, "list of struct"))?;
    let mut alternatives = Vec::new();
    if alts.is_valid(i) {
        let v = alts.value(i);
        let s = v
            .as_struct_opt()
            .ok_or_else(|| wrong(name, v.as_ref(), "struct"))?;
        let (l, p) = (s.column(0), s.column(1));
        let (l, p) = (str_col(name, l)?, f32_col(name, p)?);
        for j in 0..s.len() {
            alternatives.push((l.value(j).to_string(), p.value(j)));
        }
    }
    Ok(Some(TaskResult {
        label,
        confidence,
        probs,
        score: score.is_valid(i).then(|| score.value(i)),
        kind: opt_str(kind, i),
        labels,
        alternatives,
    }))
}

/// The records of one batch written by [`scored_batch`] (or read from `scored.parquet`).
pub fn records_from_batch(batch: &RecordBatch) -> Result<Vec<Scored>> {
    let sc = |n: &str| column(batch, n).and_then(|a| str_col(n, a));
    let (id, text, lang) = (sc("id")?, sc("text")?, sc("lang")?);
    let (time, channel, tier, product) = (sc("time")?, sc("channel")?, sc("tier")?, sc("product")?);
    let (text_hash, model) = (sc("text_hash")?, sc("model")?);
    let rating = column(batch, "rating")?;
    let rating = rating
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong("rating", rating.as_ref(), "float64"))?;
    let n_tokens = column(batch, "n_tokens")?;
    let n_tokens = n_tokens
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| wrong("n_tokens", n_tokens.as_ref(), "uint64"))?;
    let (masked, tokens) = (column(batch, "masked")?, column(batch, "tokens")?);
    let mut tasks = Vec::new();
    for (f, a) in batch.schema().fields().iter().zip(batch.columns()) {
        if BASE.contains(&f.name().as_str()) {
            continue;
        }
        let st = a
            .as_struct_opt()
            .ok_or_else(|| wrong(f.name(), a.as_ref(), "a task struct"))?;
        tasks.push((f.name().clone(), st));
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut t = BTreeMap::new();
        for (name, st) in &tasks {
            if let Some(r) = task_at(name, st, i)? {
                t.insert(name.clone(), r);
            }
        }
        out.push(Scored {
            id: id.value(i).to_string(),
            text: text.value(i).to_string(),
            lang: lang.value(i).to_string(),
            time: opt_str(time, i),
            channel: opt_str(channel, i),
            rating: rating.is_valid(i).then(|| rating.value(i)),
            tier: opt_str(tier, i),
            product: opt_str(product, i),
            masked: list_strings("masked", masked, i)?.unwrap_or_default(),
            tokens: list_strings("tokens", tokens, i)?,
            n_tokens: n_tokens.value(i) as usize,
            text_hash: text_hash.value(i).to_string(),
            model: model.value(i).to_string(),
            tasks: t,
        });
    }
    Ok(out)
}

/// Streams the records of a `scored.parquet` file, one batch at a time.
pub struct ScoredParquetReader {
    path: std::path::PathBuf,
    inner: ParquetRecordBatchReader,
}

impl ScoredParquetReader {
    /// Opens `path`, a file written by [`write_scored_parquet`].
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let inner = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(BATCH).build())
            .map_err(|e| Error::input(path, format!("cannot read the Parquet file: {e}")))?;
        Ok(ScoredParquetReader {
            path: path.to_path_buf(),
            inner,
        })
    }
}

impl Iterator for ScoredParquetReader {
    type Item = Result<Vec<Scored>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.inner.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(Error::input(&self.path, e.to_string()))),
        };
        Some(records_from_batch(&batch).map_err(|e| Error::input(&self.path, e.to_string())))
    }
}

/// Every record of a `scored.parquet` file, in file order.
pub fn read_scored_parquet(path: &Path) -> Result<Vec<Scored>> {
    let mut out = Vec::new();
    for batch in ScoredParquetReader::open(path)? {
        out.extend(batch?);
    }
    Ok(out)
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

#[cfg(test)]
mod tests;
