//! Parquet files read with the `parquet` crate's Arrow reader.
//!
//! Only the mapped columns are read (a projection), one batch of rows at a time, so memory
//! stays bounded by the batch size whatever the file's size. Columns are mapped by name as a
//! CSV header is. A record's `line` is its 1-based row number in the file (across row groups).
//!
//! Cells become text as a CSV export would show them: strings as they are (also binary
//! columns, which must hold UTF-8), integers and decimals in full, floats without a trailing
//! `.0` when whole, booleans as `true`/`false`, dates as `YYYY-MM-DD`, timestamps as
//! `YYYY-MM-DDTHH:MM:SS[.fraction]` with `Z` when the column is in UTC, dictionary-encoded
//! (categorical) columns as their values. A mapped column of another type (a list, a struct,
//! ...) stops the file with an error naming the column and its type, since no row of it could
//! be read; a null or empty text, a rating that is not a number and bytes that are not UTF-8
//! reject that row, naming file, row and column.

use super::{ColumnMap, Inner, Item, RawFields, Reader};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::fs::File;
use std::path::Path;

/// Rows decoded per batch.
const BATCH_ROWS: usize = 4096;

/// The comment fields in the order of [`RawFields`]: id, text, time, channel, rating, tier,
/// product.
const N_FIELDS: usize = 7;

/// One cell of a mapped column.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell {
    /// A null, or an unmapped column.
    Null,
    /// The cell as text.
    Text(String),
    /// Bytes of a binary column that are not UTF-8.
    NotUtf8,
}

/// The rows of a Parquet file, one batch decoded at a time.
pub(super) struct Rows {
    reader: ParquetRecordBatchReader,
    /// Per comment field: (position in the projected batch, column name), when mapped.
    cols: [Option<(usize, String)>; N_FIELDS],
    /// The current batch's mapped columns as cells (column-major).
    cells: [Vec<Cell>; N_FIELDS],
    /// Rows in the current batch, and the next one to hand out.
    len: usize,
    pos: usize,
    /// Rows handed out before the current batch.
    before: u64,
}

/// Whether cells of this type can be read as text.
fn supported(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, v) => supported(v),
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(..)
        | DataType::Null => true,
        _ => false,
    }
}

/// Opens the Parquet file at `path` and maps its columns by name.
pub(super) fn open(path: &Path, cols: &ColumnMap) -> Result<Rows> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::input(path, format!("cannot read the Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let wanted = [
        &cols.id,
        &cols.text,
        &cols.time,
        &cols.channel,
        &cols.rating,
        &cols.tier,
        &cols.product,
    ];
    let found: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| names.iter().position(|n| n == w))
        .collect();
    if found[1].is_none() {
        return Err(Error::input(
            path,
            format!(
                "the Parquet file has no text column {:?} (columns: {}); name it with --text-col \
                 or a --columns file",
                cols.text,
                names.join(", ")
            ),
        ));
    }
    for i in found.iter().flatten() {
        let field = &schema.fields()[*i];
        if !supported(field.data_type()) {
            return Err(Error::input(
                path,
                format!(
                    "column {:?} is of type {}: a mapped column must hold strings, numbers, \
                     booleans, dates or timestamps",
                    field.name(),
                    field.data_type()
                ),
            ));
        }
    }
    let mut roots: Vec<usize> = found.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| Error::input(path, format!("cannot read the Parquet file: {e}")))?;
    let cols = std::array::from_fn(|k| {
        found[k].map(|i| {
            let pos = roots.binary_search(&i).unwrap_or(0);
            (pos, names[i].to_string())
        })
    });
    Ok(Rows {
        reader,
        cols,
        cells: Default::default(),
        len: 0,
        pos: 0,
        before: 0,
    })
}

impl Rows {
    /// The next row: its 1-based number and its cells (id, text, time, channel, rating, tier,
    /// product); an error message when the file cannot be decoded.
    fn next_row(&mut self) -> Option<std::result::Result<(u64, [Cell; N_FIELDS]), String>> {
        while self.pos == self.len {
            self.before += self.len as u64;
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => {
                    return Some(Err(format!(
                        "row {}: cannot decode the Parquet file: {e}",
                        self.before + 1
                    )))
                }
            };
            self.load(&batch);
        }
        let i = self.pos;
        self.pos += 1;
        let row = std::array::from_fn(|k| std::mem::replace(&mut self.cells[k][i], Cell::Null));
        Some(Ok((self.before + i as u64 + 1, row)))
    }

    fn load(&mut self, batch: &RecordBatch) {
        self.len = batch.num_rows();
        self.pos = 0;
        for k in 0..N_FIELDS {
            self.cells[k] = match &self.cols[k] {
                Some((pos, _)) => cells(batch.column(*pos).as_ref()),
                None => vec![Cell::Null; self.len],
            };
        }
    }

    /// The name of the column mapped to field `k`.
    fn name(&self, k: usize) -> Option<&str> {
        self.cols[k].as_ref().map(|(_, n)| n.as_str())
    }
}

/// A column's cells as text.
fn cells(col: &dyn Array) -> Vec<Cell> {
    let n = col.len();
    if let Some(d) = col.as_any_dictionary_opt() {
        let values = cells(d.values().as_ref());
        let keys = d.normalized_keys();
        return (0..n)
            .map(|i| {
                if col.is_null(i) {
                    Cell::Null
                } else {
                    values.get(keys[i]).cloned().unwrap_or(Cell::Null)
                }
            })
            .collect();
    }
    let each = |f: &dyn Fn(usize) -> Cell| -> Vec<Cell> {
        (0..n)
            .map(|i| if col.is_null(i) { Cell::Null } else { f(i) })
            .collect()
    };
    let text = |s: String| Cell::Text(s);
    let bytes = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(s) => Cell::Text(s.to_string()),
        Err(_) => Cell::NotUtf8,
    };
    fn int<T: ArrowPrimitiveType>(col: &dyn Array, i: usize) -> String
    where
        T::Native: ToString,
    {
        col.as_primitive::<T>().value(i).to_string()
    }
    match col.data_type() {
        DataType::Utf8 => each(&|i| text(col.as_string::<i32>().value(i).to_string())),
        DataType::LargeUtf8 => each(&|i| text(col.as_string::<i64>().value(i).to_string())),
        DataType::Utf8View => each(&|i| text(col.as_string_view().value(i).to_string())),
        DataType::Binary => each(&|i| bytes(col.as_binary::<i32>().value(i))),
        DataType::LargeBinary => each(&|i| bytes(col.as_binary::<i64>().value(i))),
        DataType::BinaryView => each(&|i| bytes(col.as_binary_view().value(i))),
        DataType::Boolean => each(&|i| text(col.as_boolean().value(i).to_string())),
        DataType::Int8 => each(&|i| text(int::<Int8Type>(col, i))),
        DataType::Int16 => each(&|i| text(int::<Int16Type>(col, i))),
        DataType::Int32 => each(&|i| text(int::<Int32Type>(col, i))),
        DataType::Int64 => each(&|i| text(int::<Int64Type>(col, i))),
        DataType::UInt8 => each(&|i| text(int::<UInt8Type>(col, i))),
        DataType::UInt16 => each(&|i| text(int::<UInt16Type>(col, i))),
        DataType::UInt32 => each(&|i| text(int::<UInt32Type>(col, i))),
        DataType::UInt64 => each(&|i| text(int::<UInt64Type>(col, i))),
        DataType::Float32 => each(&|i| {
            let v = col.as_primitive::<Float32Type>().value(i);
            // f32 -> f64 widens exactly, but its shortest text is f32's (0.1f32, not 0.10000000149)
            text(if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                v.to_string()
            })
        }),
        DataType::Float64 => {
            each(&|i| text(number_text(col.as_primitive::<Float64Type>().value(i))))
        }
        DataType::Decimal128(..) => each(&|i| {
            text(
                col.as_primitive::<arrow_array::types::Decimal128Type>()
                    .value_as_string(i),
            )
        }),
        DataType::Decimal256(..) => each(&|i| {
            text(
                col.as_primitive::<arrow_array::types::Decimal256Type>()
                    .value_as_string(i),
            )
        }),
        DataType::Date32 => each(&|i| {
            let days = i64::from(col.as_primitive::<Date32Type>().value(i));
            text(crate::record::civil_date(days * 86_400))
        }),
        DataType::Date64 => each(&|i| {
            let ms = col.as_primitive::<Date64Type>().value(i);
            text(crate::record::civil_date(ms.div_euclid(1000)))
        }),
        DataType::Timestamp(unit, tz) => {
            let per_sec: i64 = match unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let utc = tz.is_some();
            each(&|i| {
                let v = match unit {
                    TimeUnit::Second => col.as_primitive::<TimestampSecondType>().value(i),
                    TimeUnit::Millisecond => {
                        col.as_primitive::<TimestampMillisecondType>().value(i)
                    }
                    TimeUnit::Microsecond => {
                        col.as_primitive::<TimestampMicrosecondType>().value(i)
                    }
                    TimeUnit::Nanosecond => col.as_primitive::<TimestampNanosecondType>().value(i),
                };
                text(timestamp_text(v, per_sec, utc))
            })
        }
        _ => vec![Cell::Null; n],
    }
}

/// A number without a trailing `.0` when it is whole (and small enough to be exact).
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z]` of a timestamp of `per_sec` ticks a second.
fn timestamp_text(v: i64, per_sec: i64, utc: bool) -> String {
    let secs = v.div_euclid(per_sec);
    let ticks = v.rem_euclid(per_sec);
    let day = secs.rem_euclid(86_400);
    let mut s = format!(
        "{}T{:02}:{:02}:{:02}",
        crate::record::civil_date(secs),
        day / 3600,
        day / 60 % 60,
        day % 60
    );
    if ticks != 0 {
        let width = per_sec.ilog10() as usize;
        let frac = format!("{ticks:0width$}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if utc {
        s.push('Z');
    }
    s
}

impl Reader {
    /// Opens a Parquet file's reader state.
    pub(super) fn parquet_inner(path: &Path, cols: &ColumnMap) -> Result<Inner> {
        Ok(Inner::Parquet {
            rows: Box::new(open(path, cols)?),
        })
    }

    pub(super) fn next_parquet(&mut self) -> Option<Result<Item>> {
        let Inner::Parquet { rows } = &mut self.inner else {
            return None;
        };
        let (row, cells) = match rows.next_row()? {
            Ok(r) => r,
            Err(msg) => return Some(Err(Error::input(&self.file, msg))),
        };
        let names: [Option<String>; N_FIELDS] =
            std::array::from_fn(|k| rows.name(k).map(str::to_string));
        let [id, text, time, channel, rating, tier, product] = cells.map(|c| match c {
            Cell::Text(s) => Ok(Some(s)),
            Cell::Null => Ok(None),
            Cell::NotUtf8 => Err(()),
        });
        let id_guess = id.clone().ok().flatten();
        let fields = [&id, &text, &time, &channel, &rating, &tier, &product];
        if let Some(k) = fields.iter().position(|f| f.is_err()) {
            let reason = "bytes that are not valid UTF-8 in a binary column (Parquet text must be \
                          UTF-8)"
                .to_string();
            return Some(Ok(self.reject(id_guess, row, names[k].as_deref(), reason)));
        }
        let text = text.ok().flatten();
        if text.is_none() {
            let reason = "text is null".to_string();
            return Some(Ok(self.reject(id_guess, row, names[1].as_deref(), reason)));
        }
        let raw = RawFields {
            id: id_guess,
            text,
            time: time.ok().flatten(),
            channel: channel.ok().flatten(),
            rating: rating.ok().flatten(),
            tier: tier.ok().flatten(),
            product: product.ok().flatten(),
        };
        Some(Ok(self.finish(raw, row)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::IngestConfig;
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder, StringDictionaryBuilder};
    use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;

    fn write(path: &Path, cols: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let f = File::create(path).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn read(path: &Path, columns: ColumnMap) -> Vec<Item> {
        let cfg = IngestConfig {
            columns,
            ..Default::default()
        };
        Reader::open(path, &cfg)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn columns_map_by_name_and_bad_rows_are_rejected_by_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("comments.parquet");
        let mut tier = StringDictionaryBuilder::<arrow_array::types::Int32Type>::new();
        for t in [Some("vip"), None, Some("gold"), Some("vip"), Some("gold")] {
            tier.append_option(t);
        }
        let mut tags = ListBuilder::new(StringBuilder::new());
        for _ in 0..5 {
            tags.values().append_value("x");
            tags.append(true);
        }
        let ts = TimestampMillisecondArray::from(vec![
            Some(1_788_256_826_250),
            None,
            Some(0),
            Some(86_400_000),
            None,
        ])
        .with_timezone("UTC");
        write(
            &path,
            vec![
                (
                    "ticket",
                    Arc::new(Int64Array::from(vec![101, 102, 103, 104, 105])) as ArrayRef,
                ),
                (
                    "body",
                    Arc::new(StringArray::from(vec![
                        Some("物流太慢了"),
                        Some("great"),
                        None,
                        Some("ok"),
                        Some(" \u{200b} "),
                    ])),
                ),
                ("created", Arc::new(ts)),
                (
                    "rating",
                    Arc::new(StringArray::from(vec![
                        Some("1"),
                        Some("five"),
                        Some("3"),
                        None,
                        None,
                    ])),
                ),
                ("tier", Arc::new(tier.finish())),
                ("tags", Arc::new(tags.finish())),
            ],
        );
        let cols = ColumnMap {
            id: "ticket".into(),
            text: "body".into(),
            time: "created".into(),
            ..Default::default()
        };
        let items = read(&path, cols);
        assert_eq!(items.len(), 5, "every row is a comment or a reject");
        let file = path.display().to_string();
        let Item::Comment(c) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(
            (c.id.as_str(), c.text.as_str(), c.rating, c.tier.as_deref()),
            ("101", "物流太慢了", Some(1.0), Some("vip"))
        );
        assert_eq!(c.time.as_deref(), Some("2026-09-01T10:00:26.25Z"));
        assert_eq!((c.source.file.as_str(), c.source.line), (file.as_str(), 1));
        let Item::Reject(r) = &items[1] else {
            panic!("{:?}", items[1])
        };
        assert_eq!(
            (
                r.id.as_deref(),
                r.line,
                r.field.as_deref(),
                r.reason.as_str()
            ),
            (
                Some("102"),
                2,
                Some("rating"),
                "rating \"five\" is not a number"
            )
        );
        let Item::Reject(r) = &items[2] else {
            panic!("{:?}", items[2])
        };
        assert_eq!(
            (
                r.file.as_str(),
                r.id.as_deref(),
                r.line,
                r.field.as_deref(),
                r.reason.as_str()
            ),
            (file.as_str(), Some("103"), 3, Some("body"), "text is null")
        );
        let Item::Comment(c) = &items[3] else {
            panic!("{:?}", items[3])
        };
        assert_eq!(
            (c.id.as_str(), c.time.as_deref()),
            ("104", Some("1970-01-02T00:00:00Z"))
        );
        let Item::Reject(r) = &items[4] else {
            panic!("{:?}", items[4])
        };
        assert_eq!((r.line, r.field.as_deref()), (5, Some("text")));
        assert!(r.reason.starts_with("empty text"), "{}", r.reason);
    }

    #[test]
    fn a_mapped_column_of_another_type_or_a_missing_text_column_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.parquet");
        let mut tags = ListBuilder::new(StringBuilder::new());
        tags.values().append_value("x");
        tags.append(true);
        write(&path, vec![("text", Arc::new(tags.finish()) as ArrayRef)]);
        let cfg = IngestConfig::default();
        let e = Reader::open(&path, &cfg).err().unwrap().to_string();
        assert!(
            e.contains("lists.parquet") && e.contains("column \"text\" is of type List"),
            "{e}"
        );
        let cfg = IngestConfig {
            columns: ColumnMap {
                text: "body".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = Reader::open(&path, &cfg).err().unwrap().to_string();
        assert!(e.contains("no text column \"body\" (columns: text)"), "{e}");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let e = Reader::open(&path, &IngestConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot read the Parquet file"), "{e}");
    }

    #[test]
    fn timestamps_read_as_iso_8601() {
        assert_eq!(timestamp_text(0, 1, true), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp_text(1_788_256_826_250, 1000, true),
            "2026-09-01T10:00:26.25Z"
        );
        assert_eq!(timestamp_text(-1, 1, false), "1969-12-31T23:59:59");
        assert_eq!(number_text(10023.0), "10023");
        assert_eq!(number_text(4.5), "4.5");
    }
}
