//! Reading scored records back from Parquet: a `scored.parquet` file written by
//! [`super::write_scored_parquet`], or a folder of part files with the same columns as a
//! distributed job writes them (`vocmine.spark.write_run`: `n_tokens` as int64, the rows a job
//! rejected carrying a `reject` reason, topics in `topic` and `topic_label`).

use super::{BASE, BATCH};
use crate::error::{Error, Result};
use crate::record::{Scored, TaskResult};
use crate::workspace::TopicTag;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, StructArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// Columns beside a record's that a distributed job adds (the Python package's rejects,
/// topics and embeddings); they are not tasks.
const EXTRA: [&str; 6] = [
    "line",
    "field",
    "reject",
    "topic",
    "topic_label",
    "embedding",
];

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

/// The records of one batch written by [`super::scored_batch`] (or read from
/// `scored.parquet`); rows that carry a `reject` reason are not records and are left out.
pub fn records_from_batch(batch: &RecordBatch) -> Result<Vec<Scored>> {
    Ok(records_and_topics(batch)?
        .into_iter()
        .map(|(s, _)| s)
        .collect())
}

/// An integer column as i64 values (uint64, int64 or int32: Spark has no unsigned types).
fn int_at<'a>(name: &str, a: &'a ArrayRef) -> Result<Box<dyn Fn(usize) -> Option<i64> + 'a>> {
    if let Some(c) = a.as_primitive_opt::<UInt64Type>() {
        return Ok(Box::new(move |i| c.is_valid(i).then(|| c.value(i) as i64)));
    }
    if let Some(c) = a.as_primitive_opt::<Int64Type>() {
        return Ok(Box::new(move |i| c.is_valid(i).then(|| c.value(i))));
    }
    if let Some(c) = a.as_primitive_opt::<Int32Type>() {
        return Ok(Box::new(move |i| {
            c.is_valid(i).then(|| i64::from(c.value(i)))
        }));
    }
    Err(wrong(name, a.as_ref(), "an integer"))
}

/// The records of one batch with the topic each row carries (`topic` and `topic_label`
/// columns, where the batch has them); rows with a `reject` reason are left out.
pub fn records_and_topics(batch: &RecordBatch) -> Result<Vec<(Scored, Option<TopicTag>)>> {
    let sc = |n: &str| column(batch, n).and_then(|a| str_col(n, a));
    let (id, text, lang) = (sc("id")?, sc("text")?, sc("lang")?);
    let (time, channel, tier, product) = (sc("time")?, sc("channel")?, sc("tier")?, sc("product")?);
    let (text_hash, model) = (sc("text_hash")?, sc("model")?);
    let rating = column(batch, "rating")?;
    let rating = rating
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong("rating", rating.as_ref(), "float64"))?;
    let n_tokens = int_at("n_tokens", column(batch, "n_tokens")?)?;
    let (masked, tokens) = (column(batch, "masked")?, column(batch, "tokens")?);
    let reject = match batch.column_by_name("reject") {
        Some(a) => Some(str_col("reject", a)?),
        None => None,
    };
    let topic = match batch.column_by_name("topic") {
        Some(a) => Some(int_at("topic", a)?),
        None => None,
    };
    let topic_label = match batch.column_by_name("topic_label") {
        Some(a) => Some(str_col("topic_label", a)?),
        None => None,
    };
    let aspects = match batch.column_by_name("aspects") {
        Some(a) => Some(
            a.as_list_opt::<i32>()
                .ok_or_else(|| wrong("aspects", a.as_ref(), "list of struct"))?,
        ),
        None => None,
    };
    let mut tasks = Vec::new();
    for (f, a) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = f.name().as_str();
        if BASE.contains(&name) || EXTRA.contains(&name) {
            continue;
        }
        let st = a
            .as_struct_opt()
            .ok_or_else(|| wrong(f.name(), a.as_ref(), "a task struct"))?;
        tasks.push((f.name().clone(), st));
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        if reject.is_some_and(|r| r.is_valid(i)) {
            continue;
        }
        let mut t = BTreeMap::new();
        for (name, st) in &tasks {
            if let Some(r) = task_at(name, st, i)? {
                t.insert(name.clone(), r);
            }
        }
        let tag = topic.as_ref().and_then(|f| f(i)).map(|topic| TopicTag {
            topic,
            label: topic_label.and_then(|l| opt_str(l, i)).unwrap_or_default(),
            found: None,
            theme: None,
        });
        let s = Scored {
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
            n_tokens: n_tokens(i).unwrap_or(0).max(0) as usize,
            text_hash: text_hash.value(i).to_string(),
            model: model.value(i).to_string(),
            aspects: match aspects {
                Some(l) if l.is_valid(i) => Some(aspects_at(&l.value(i))?),
                _ => None,
            },
            tasks: t,
        };
        out.push((s, tag));
    }
    Ok(out)
}

/// The aspects of one record's `aspects` list (see [`super::aspects_column`]).
fn aspects_at(a: &ArrayRef) -> Result<Vec<crate::aspects::Aspect>> {
    let st = a
        .as_struct_opt()
        .ok_or_else(|| wrong("aspects", a.as_ref(), "list of struct"))?;
    let field = |n: &str| -> Result<&ArrayRef> {
        st.column_by_name(n)
            .ok_or_else(|| Error::Invalid(format!("scored Parquet: aspects without {n:?}")))
    };
    let (asp, op, pol) = (
        str_col("aspects.aspect", field("aspect")?)?,
        str_col("aspects.opinion", field("opinion")?)?,
        str_col("aspects.polarity", field("polarity")?)?,
    );
    let conf = field("confidence")?;
    let conf = conf
        .as_primitive_opt::<Float32Type>()
        .ok_or_else(|| wrong("aspects.confidence", conf.as_ref(), "float32"))?;
    let (from, to) = (field("from")?, field("to")?);
    let (from, to) = (
        from.as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| wrong("aspects.from", from.as_ref(), "uint64"))?,
        to.as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| wrong("aspects.to", to.as_ref(), "uint64"))?,
    );
    // absent in files written before categories
    let cat = match st.column_by_name("category") {
        Some(a) => Some(str_col("aspects.category", a)?),
        None => None,
    };
    Ok((0..st.len())
        .map(|j| crate::aspects::Aspect {
            category: cat.and_then(|c| opt_str(c, j)),
            aspect: asp.value(j).to_string(),
            opinion: opt_str(op, j),
            polarity: pol.value(j).to_string(),
            confidence: conf.value(j),
            span: [from.value(j) as usize, to.value(j) as usize],
        })
        .collect())
}

/// The Parquet files `path` stands for: itself, or for a folder (the part files a
/// distributed job writes) every `*.parquet` file in it, in name order, leaving out hidden
/// files and Spark's `_SUCCESS` markers and checksums.
fn parquet_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let p = e.map_err(|e| Error::io(path, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file()
            && !name.starts_with(['.', '_'])
            && p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("parquet"))
        {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(Error::input(path, "a folder with no .parquet files"));
    }
    files.sort();
    Ok(files)
}

/// Streams the records of a `scored.parquet` file, or of a folder of part files, one batch at
/// a time, each record with the topic its row carries.
pub struct ScoredParquetReader {
    files: VecDeque<PathBuf>,
    path: PathBuf,
    inner: Option<ParquetRecordBatchReader>,
}

impl ScoredParquetReader {
    /// Opens `path`, a file written by [`super::write_scored_parquet`] or a folder of part
    /// files with its columns.
    pub fn open(path: &Path) -> Result<Self> {
        let mut files: VecDeque<PathBuf> = parquet_files(path)?.into();
        let first = files.pop_front().unwrap_or_else(|| path.to_path_buf());
        let inner = Some(Self::open_file(&first)?);
        Ok(ScoredParquetReader {
            files,
            path: first,
            inner,
        })
    }

    fn open_file(path: &Path) -> Result<ParquetRecordBatchReader> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.with_batch_size(BATCH).build())
            .map_err(|e| Error::input(path, format!("cannot read the Parquet file: {e}")))
    }
}

impl Iterator for ScoredParquetReader {
    type Item = Result<Vec<(Scored, Option<TopicTag>)>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let inner = self.inner.as_mut()?;
            match inner.next() {
                Some(Ok(b)) => {
                    return Some(
                        records_and_topics(&b).map_err(|e| Error::input(&self.path, e.to_string())),
                    )
                }
                Some(Err(e)) => {
                    self.inner = None;
                    return Some(Err(Error::input(&self.path, e.to_string())));
                }
                None => {
                    let next = self.files.pop_front()?;
                    match Self::open_file(&next) {
                        Ok(r) => {
                            self.inner = Some(r);
                            self.path = next;
                        }
                        Err(e) => {
                            self.inner = None;
                            return Some(Err(e));
                        }
                    }
                }
            }
        }
    }
}

/// Every record of a `scored.parquet` file (or folder of part files), in file order.
pub fn read_scored_parquet(path: &Path) -> Result<Vec<Scored>> {
    let mut out = Vec::new();
    for batch in ScoredParquetReader::open(path)? {
        out.extend(batch?.into_iter().map(|(s, _)| s));
    }
    Ok(out)
}

/// The topics the rows of a scored Parquet file or folder carry, by id (empty when it has no
/// `topic` column).
pub fn read_parquet_topics(path: &Path) -> Result<HashMap<String, TopicTag>> {
    let mut out = HashMap::new();
    for batch in ScoredParquetReader::open(path)? {
        for (s, t) in batch? {
            if let Some(t) = t {
                out.insert(s.id, t);
            }
        }
    }
    Ok(out)
}
