//! Ingest: stream comments out of CSV, JSONL, spreadsheet or Parquet files with a column
//! mapping.
//!
//! Records are read one at a time (a 2 GB file is never held in memory); `.gz` files are
//! decompressed as they are read, and files in another encoding than UTF-8 (GB18030/GBK,
//! Big5, UTF-16, detected or named) are transcoded as they are read. Every record becomes
//! either a [`Comment`] or a [`Reject`] naming file, line, field and reason. The CSV reader is
//! in `csv.rs`, the JSONL reader in `jsonl.rs`, spreadsheets in `sheet.rs`, encodings in
//! `decode.rs`, Parquet in `parquet.rs`.

mod csv;
mod decode;
mod jsonl;
mod parquet;
mod sheet;

pub use self::decode::TextEncoding;

pub use self::csv::{MAX_QUOTED_BYTES, MAX_QUOTED_LINES};

use crate::error::{Error, Result};
use crate::record::{Comment, Reject, SourcePos};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Ratings outside this range are rejected: it holds every scale the report reads (CSAT 1-5,
/// CES 1-7, NPS 0-10) and percentages (0-100).
pub const RATING_RANGE: std::ops::RangeInclusive<f64> = 0.0..=100.0;

/// Which input field holds which attribute of a comment. Only `text` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnMap {
    /// Field holding the comment id; ids are derived from the text when absent.
    pub id: String,
    /// Field holding the comment text (required).
    pub text: String,
    /// Field holding the time.
    pub time: String,
    /// Field holding the channel.
    pub channel: String,
    /// Field holding the numeric rating.
    pub rating: String,
    /// Field holding the customer tier.
    pub tier: String,
    /// Field holding the product.
    pub product: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        ColumnMap {
            id: "id".into(),
            text: "text".into(),
            time: "time".into(),
            channel: "channel".into(),
            rating: "rating".into(),
            tier: "tier".into(),
            product: "product".into(),
        }
    }
}

/// The `[columns]` table of a TOML mapping file.
#[derive(Debug, Deserialize)]
struct MappingFile {
    columns: ColumnMap,
}

impl ColumnMap {
    /// Reads a TOML file with a `[columns]` table (`text = "body"`, `id = "ticket_id"`, ...).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: MappingFile = toml::from_str(&s).map_err(|e| Error::input(path, e.to_string()))?;
        Ok(m.columns)
    }
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma- (or other delimiter-) separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// A spreadsheet (`.xlsx`, `.xlsm`, `.xls`, `.ods`): one sheet, header in its first row.
    Sheet,
    /// An Apache Parquet file (columns mapped by name, as a CSV header is).
    Parquet,
}

/// The extension of a file's data, looking through a `.gz` suffix, lower-cased.
fn data_extension(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_string())
}

/// Whether the file is gzip-compressed (its name ends in `.gz`).
fn is_gzip(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

impl Format {
    /// Guesses the format from the file extension (`.csv`, `.tsv`, `.txt`, `.jsonl`, `.ndjson`,
    /// `.json`, each also with `.gz` after it; `.xlsx`, `.xlsm`, `.xls`, `.ods`, `.parquet`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match data_extension(path)?.as_str() {
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "xlsx" | "xlsm" | "xls" | "ods" if !is_gzip(path) => Some(Format::Sheet),
            "parquet" if !is_gzip(path) => Some(Format::Parquet),
            _ => None,
        }
    }

    /// Whether a file found in an input folder is read as data: `.csv`, `.tsv`, `.jsonl`,
    /// `.ndjson`, `.json` (each also with `.gz`), `.xlsx`, `.xlsm`, `.xls`, `.ods`,
    /// `.parquet`. `.txt` files are read only when named.
    pub fn is_data_file(path: &Path) -> bool {
        data_extension(path)
            .is_some_and(|e| matches!(e.as_str(), "csv" | "tsv" | "jsonl" | "ndjson" | "json"))
            || matches!(
                Format::from_path(path),
                Some(Format::Sheet | Format::Parquet)
            )
    }
}

/// How to read one input file.
#[derive(Debug, Clone, Default)]
pub struct IngestConfig {
    /// Column mapping.
    pub columns: ColumnMap,
    /// Format; guessed from the extension when `None`.
    pub format: Option<Format>,
    /// CSV delimiter; `None` means tab for `.tsv`, else the one of `,` `;` tab `|` that the
    /// header line holds most often outside quotes (`,` on a tie or when it holds none).
    pub delimiter: Option<u8>,
    /// Text encoding as a WHATWG label (`gb18030`, `big5`, `utf-16le`, ...); `None` or `auto`
    /// detects it (UTF-16 by its byte-order mark, UTF-8, else GB18030).
    pub encoding: Option<String>,
    /// The sheet of a spreadsheet to read; `None` reads the first.
    pub sheet: Option<String>,
}

/// One item read from the input: a comment, or a record that was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A well-formed comment.
    Comment(Comment),
    /// A record that cannot be scored, with its reason.
    Reject(Reject),
}

/// Derives a stable id from a comment's text: `h` + 16 hex digits of its SHA-256.
pub fn content_id(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    let mut s = String::with_capacity(17);
    s.push('h');
    for b in &d[..8] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The ids seen so far in a run, shared by the readers of its files ([`Reader::with_ids`]):
/// a duplicate explicit id is rejected, in the same file or another; a duplicate generated id
/// (the same text twice) gets a `-2`, `-3`, ... suffix in input order.
#[derive(Debug, Default)]
pub struct SeenIds {
    /// id hash -> (file number, line) where it was first seen.
    seen: HashMap<u128, (u32, u64)>,
    files: Vec<String>,
}

impl SeenIds {
    fn key(id: &str) -> u128 {
        let d = Sha256::digest(id.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        u128::from_le_bytes(k)
    }

    /// Ids seen so far.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id was seen yet.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn add_file(&mut self, file: &str) -> u32 {
        self.files.push(file.to_string());
        (self.files.len() - 1) as u32
    }

    /// Registers an explicit id; returns where it was first seen if it is a duplicate.
    fn explicit(&mut self, id: &str, file: u32, line: u64) -> Option<(u32, u64)> {
        match self.seen.entry(Self::key(id)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((file, line));
                None
            }
        }
    }

    fn generated(&mut self, text: &str, file: u32, line: u64) -> String {
        let base = content_id(text);
        let mut id = base.clone();
        let mut n = 1;
        while self.explicit(&id, file, line).is_some() {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }
}

/// Whether a character shows nothing: whitespace, a control character, or a default-ignorable
/// one (zero-width spaces and joiners, byte-order marks, bidi and variation marks, fillers).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x2800 | 0x3164
            | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// Raw field values of one record, before validation.
#[derive(Default)]
struct RawFields {
    id: Option<String>,
    text: Option<String>,
    time: Option<String>,
    channel: Option<String>,
    rating: Option<String>,
    tier: Option<String>,
    product: Option<String>,
}

/// A streaming reader over one input file.
pub struct Reader {
    file: String,
    file_no: u32,
    inner: Inner,
    ids: SeenIds,
    encoding: TextEncoding,
}

enum Inner {
    Csv {
        records: csv::Records,
        idx: csv::CsvIndex,
    },
    Jsonl {
        rdr: Box<dyn BufRead + Send>,
        line: u64,
        buf: Vec<u8>,
        columns: ColumnMap,
    },
    Sheet {
        rows: sheet::Rows,
        idx: csv::CsvIndex,
    },
    Parquet {
        rows: Box<parquet::Rows>,
    },
}

impl Reader {
    /// Opens `path` for reading with `cfg` (a `.gz` file is decompressed as it is read). Fails
    /// when the file cannot be opened, or when a CSV header lacks the text column.
    pub fn open(path: &Path, cfg: &IngestConfig) -> Result<Reader> {
        let format = cfg
            .format
            .or_else(|| Format::from_path(path))
            .ok_or_else(|| {
                Error::input(
                    path,
                    "cannot tell the format from the extension: name it with --format \
                     csv|jsonl|xlsx|parquet",
                )
            })?;
        if format == Format::Sheet {
            let (rows, idx) = sheet::open(path, cfg.sheet.as_deref(), &cfg.columns)?;
            return Ok(Reader::new(
                path,
                Inner::Sheet { rows, idx },
                TextEncoding::utf8(),
            ));
        }
        if format == Format::Parquet {
            let inner = Reader::parquet_inner(path, &cfg.columns)?;
            return Ok(Reader::new(path, inner, TextEncoding::utf8()));
        }
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut src: Box<dyn BufRead + Send> = if is_gzip(path) {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, f));
            Box::new(BufReader::with_capacity(1 << 20, gz))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, f))
        };
        let encoding = decode::resolve(path, cfg.encoding.as_deref(), &mut src)?;
        if !encoding.is_utf8() {
            let t = decode::Transcode::new(src, encoding.encoding);
            src = Box::new(BufReader::with_capacity(1 << 20, t));
        }
        let inner = match format {
            Format::Jsonl => Inner::Jsonl {
                rdr: src,
                line: 0,
                buf: Vec::new(),
                columns: cfg.columns.clone(),
            },
            Format::Csv => {
                let tsv = data_extension(path).is_some_and(|e| e == "tsv");
                let delim = match cfg.delimiter {
                    Some(d) => d,
                    None if tsv => b'\t',
                    None => csv::sniff_delimiter(&mut src).map_err(|e| Error::io(path, e))?,
                };
                let mut records = csv::Records::new(src, delim);
                let idx = csv::read_header(path, &mut records, &cfg.columns)?;
                Inner::Csv { records, idx }
            }
            // opened above, before the byte stream
            Format::Sheet | Format::Parquet => {
                return Err(Error::input(path, "a binary file read as text"))
            }
        };
        Ok(Reader::new(path, inner, encoding))
    }

    fn new(path: &Path, inner: Inner, encoding: TextEncoding) -> Reader {
        let file = path.display().to_string();
        let mut ids = SeenIds::default();
        let file_no = ids.add_file(&file);
        Reader {
            file,
            file_no,
            inner,
            ids,
            encoding,
        }
    }

    /// The text encoding the file is read in (detected or named).
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// A reader over JSONL records held in memory (one JSON object per line), validated exactly
    /// as a `.jsonl` input file named `name` is: the HTTP server reads a request's comments
    /// with it, so they are accepted or rejected as `vocmine score` would.
    pub fn from_jsonl(name: &str, data: Vec<u8>, columns: ColumnMap) -> Reader {
        let inner = Inner::Jsonl {
            rdr: Box::new(std::io::Cursor::new(data)),
            line: 0,
            buf: Vec::new(),
            columns,
        };
        Reader::new(Path::new(name), inner, TextEncoding::utf8())
    }

    /// Checks ids against `ids` (those of the files read before in the run) instead of this
    /// file's alone; [`Reader::into_ids`] gives them back with this file's added.
    pub fn with_ids(mut self, mut ids: SeenIds) -> Reader {
        self.file_no = ids.add_file(&self.file);
        self.ids = ids;
        self
    }

    /// The ids seen so far, this file's included.
    pub fn into_ids(self) -> SeenIds {
        self.ids
    }

    fn reject(&self, id: Option<String>, line: u64, field: Option<&str>, reason: String) -> Item {
        Item::Reject(Reject {
            id,
            file: self.file.clone(),
            line,
            field: field.map(str::to_string),
            reason,
        })
    }

    /// Validates raw fields into a comment or a reject.
    fn finish(&mut self, raw: RawFields, line: u64) -> Item {
        let explicit_id = raw
            .id
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string());
        let Some(text) = raw.text else {
            return self.reject(explicit_id, line, Some("text"), "missing text field".into());
        };
        if text.chars().all(is_invisible) {
            let reason = "empty text (only whitespace, control or invisible characters such as \
                          zero-width spaces)";
            return self.reject(explicit_id, line, Some("text"), reason.into());
        }
        let rating = match raw.rating.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => match r.parse::<f64>() {
                Ok(v) if RATING_RANGE.contains(&v) => Some(v),
                Ok(v) if v.is_finite() => {
                    let reason = format!(
                        "rating {r} is out of range: ratings must lie within {}..={} (CSAT 1-5, \
                         CES 1-7, NPS 0-10, percentages)",
                        RATING_RANGE.start(),
                        RATING_RANGE.end()
                    );
                    return self.reject(explicit_id, line, Some("rating"), reason);
                }
                _ => {
                    return self.reject(
                        explicit_id,
                        line,
                        Some("rating"),
                        format!("rating {r:?} is not a number"),
                    )
                }
            },
        };
        let id = match explicit_id {
            Some(id) => {
                if let Some((file, first)) = self.ids.explicit(&id, self.file_no, line) {
                    let reason = if file == self.file_no {
                        format!("duplicate id (first seen at line {first})")
                    } else {
                        format!(
                            "duplicate id (first seen in {}, line {first})",
                            self.ids.files[file as usize]
                        )
                    };
                    return self.reject(Some(id), line, Some("id"), reason);
                }
                id
            }
            None => self.ids.generated(&text, self.file_no, line),
        };
        let opt = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Item::Comment(Comment {
            id,
            text,
            time: opt(raw.time),
            channel: opt(raw.channel),
            rating,
            tier: opt(raw.tier),
            product: opt(raw.product),
            source: SourcePos {
                file: self.file.clone(),
                line,
            },
        })
    }
}

impl Iterator for Reader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner {
            Inner::Csv { .. } => self.next_csv(),
            Inner::Jsonl { .. } => self.next_jsonl(),
            Inner::Sheet { ref mut rows, .. } => {
                let (line, fields) = rows.next()?;
                Some(Ok(self.fields_item(line, fields)))
            }
            Inner::Parquet { .. } => self.next_parquet(),
        }
    }
}

/// The input files of a run, expanded from what was named on the command line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inputs {
    /// Files to read, in order.
    pub files: Vec<PathBuf>,
    /// Entries of input folders that are not read, with the reason (for a printed note).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Expands the inputs named on the command line: files as they are, folders to the data files
/// inside them ([`Format::is_data_file`]), sorted by name; every other entry of a folder is
/// listed in [`Inputs::skipped`].
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Inputs> {
    let mut out = Inputs::default();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            v.sort();
            for f in v {
                if f.is_dir() {
                    let why = "a folder (input folders are not read recursively)";
                    out.skipped.push((f, why.into()));
                } else if !Format::is_data_file(&f) {
                    let why = "not a data file (.csv, .tsv, .jsonl, .ndjson, .json, or one of \
                               them .gz, .xlsx, .xls, .ods, .parquet); name it on the command line to \
                               read it";
                    out.skipped.push((f, why.into()));
                } else {
                    out.files.push(f);
                }
            }
        } else if p.exists() {
            out.files.push(p.clone());
        } else {
            return Err(Error::input(p, "no such file or directory"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_formats;
