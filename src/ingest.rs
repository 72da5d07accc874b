//! Ingest: stream comments out of CSV or JSONL files with a column mapping.
//!
//! Records are read one at a time (a 2 GB file is never held in memory). Every record
//! becomes either a [`Comment`] or a [`Reject`] naming file, line, field and reason.

use crate::error::{Error, Result};
use crate::record::{Comment, Reject, SourcePos};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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
}

impl Format {
    /// Guesses the format from the file extension (`.csv`, `.tsv`, `.jsonl`, `.ndjson`, `.json`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// How to read one input file.
#[derive(Debug, Clone, Default)]
pub struct IngestConfig {
    /// Column mapping.
    pub columns: ColumnMap,
    /// Format; guessed from the extension when `None`.
    pub format: Option<Format>,
    /// CSV delimiter; `None` means `,` (or tab for `.tsv`).
    pub delimiter: Option<u8>,
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

/// Keeps ids unique within one read: duplicate explicit ids are rejected, duplicate generated
/// ids (same text twice) get a `-2`, `-3`, ... suffix in input order.
#[derive(Default)]
struct IdRegistry {
    seen: HashMap<u128, u64>,
}

impl IdRegistry {
    fn key(id: &str) -> u128 {
        let d = Sha256::digest(id.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        u128::from_le_bytes(k)
    }

    /// Registers an explicit id; returns the line it was first seen on if it is a duplicate.
    fn explicit(&mut self, id: &str, line: u64) -> Option<u64> {
        match self.seen.entry(Self::key(id)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(line);
                None
            }
        }
    }

    fn generated(&mut self, text: &str, line: u64) -> String {
        let base = content_id(text);
        let mut id = base.clone();
        let mut n = 1;
        while self.explicit(&id, line).is_some() {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }
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
    inner: Inner,
    ids: IdRegistry,
}

enum Inner {
    Csv {
        rdr: Box<csv::Reader<Box<dyn Read + Send>>>,
        idx: CsvIndex,
        n_fields: usize,
        record: csv::ByteRecord,
    },
    Jsonl {
        rdr: BufReader<File>,
        line: u64,
        buf: Vec<u8>,
        columns: ColumnMap,
    },
}

/// Column positions in a CSV header.
#[derive(Debug, Default)]
struct CsvIndex {
    id: Option<usize>,
    text: usize,
    time: Option<usize>,
    channel: Option<usize>,
    rating: Option<usize>,
    tier: Option<usize>,
    product: Option<usize>,
    names: Vec<String>,
}

impl Reader {
    /// Opens `path` for reading with `cfg`. Fails when the file cannot be opened, or when a
    /// CSV header lacks the text column or a column the user named explicitly.
    pub fn open(path: &Path, cfg: &IngestConfig) -> Result<Reader> {
        let format = cfg
            .format
            .or_else(|| Format::from_path(path))
            .ok_or_else(|| {
                Error::input(
                    path,
                    "cannot tell the format from the extension: name it with --format csv|jsonl",
                )
            })?;
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let inner = match format {
            Format::Jsonl => Inner::Jsonl {
                rdr: BufReader::with_capacity(1 << 20, f),
                line: 0,
                buf: Vec::new(),
                columns: cfg.columns.clone(),
            },
            Format::Csv => {
                let tsv = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
                let delim = cfg.delimiter.unwrap_or(if tsv { b'\t' } else { b',' });
                let rd: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 20, f));
                let mut rdr = csv::ReaderBuilder::new()
                    .delimiter(delim)
                    .flexible(true)
                    .has_headers(true)
                    .from_reader(rd);
                let header = rdr
                    .byte_headers()
                    .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?
                    .clone();
                let idx = csv_index(path, &header, &cfg.columns)?;
                let n_fields = header.len();
                Inner::Csv {
                    rdr: Box::new(rdr),
                    idx,
                    n_fields,
                    record: csv::ByteRecord::new(),
                }
            }
        };
        Ok(Reader {
            file: path.display().to_string(),
            inner,
            ids: IdRegistry::default(),
        })
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
        let rating = match raw.rating.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => match r.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
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
                if let Some(first) = self.ids.explicit(&id, line) {
                    return self.reject(
                        Some(id),
                        line,
                        Some("id"),
                        format!("duplicate id (first seen at line {first})"),
                    );
                }
                id
            }
            None => self.ids.generated(&text, line),
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

    fn next_csv(&mut self) -> Option<Result<Item>> {
        let Inner::Csv {
            rdr,
            idx,
            n_fields,
            record,
        } = &mut self.inner
        else {
            return None;
        };
        match rdr.read_byte_record(record) {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Some(Err(Error::input(&self.file, format!("line {line}: {e}"))));
                }
                let item = self.reject(None, line, None, format!("malformed CSV record: {e}"));
                Some(Ok(item))
            }
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let get = |i: Option<usize>| -> std::result::Result<Option<String>, usize> {
                    match i.and_then(|i| record.get(i).map(|b| (i, b))) {
                        None => Ok(None),
                        Some((i, b)) => String::from_utf8(b.to_vec()).map(Some).map_err(|_| i),
                    }
                };
                let id_guess = get(idx.id).ok().flatten();
                if record.len() != *n_fields {
                    let reason = format!(
                        "malformed CSV record: expected {} fields as in the header, found {}",
                        n_fields,
                        record.len()
                    );
                    return Some(Ok(self.reject(id_guess, line, None, reason)));
                }
                let mut raw = RawFields::default();
                let cols = [
                    idx.id,
                    Some(idx.text),
                    idx.time,
                    idx.channel,
                    idx.rating,
                    idx.tier,
                    idx.product,
                ];
                let mut vals: Vec<Option<String>> = Vec::with_capacity(cols.len());
                for c in cols {
                    match get(c) {
                        Ok(v) => vals.push(v),
                        Err(i) => {
                            let field = idx.names[i].clone();
                            let reason = "invalid UTF-8".to_string();
                            return Some(Ok(self.reject(id_guess, line, Some(&field), reason)));
                        }
                    }
                }
                let mut it = vals.into_iter();
                raw.id = it.next().flatten();
                raw.text = it.next().flatten();
                raw.time = it.next().flatten();
                raw.channel = it.next().flatten();
                raw.rating = it.next().flatten();
                raw.tier = it.next().flatten();
                raw.product = it.next().flatten();
                Some(Ok(self.finish(raw, line)))
            }
        }
    }

    fn next_jsonl(&mut self) -> Option<Result<Item>> {
        loop {
            let Inner::Jsonl {
                rdr,
                line,
                buf,
                columns,
            } = &mut self.inner
            else {
                return None;
            };
            buf.clear();
            match rdr.read_until(b'\n', buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(Error::input(
                        &self.file,
                        format!("line {}: {e}", *line + 1),
                    )))
                }
            }
            *line += 1;
            let ln = *line;
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let columns = columns.clone();
            let (value, utf8_ok) = match std::str::from_utf8(buf) {
                Ok(s) => (serde_json::from_str::<serde_json::Value>(s), true),
                Err(_) => (
                    serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(buf)),
                    false,
                ),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    let reason = if utf8_ok {
                        format!("invalid JSON: {e}")
                    } else {
                        "invalid UTF-8".to_string()
                    };
                    return Some(Ok(self.reject(None, ln, None, reason)));
                }
            };
            let id_guess = value.get(&columns.id).and_then(scalar_string);
            if !utf8_ok {
                return Some(Ok(self.reject(id_guess, ln, None, "invalid UTF-8".into())));
            }
            let Some(obj) = value.as_object() else {
                let reason = "expected a JSON object".to_string();
                return Some(Ok(self.reject(None, ln, None, reason)));
            };
            let mut raw = RawFields {
                id: id_guess.clone(),
                ..RawFields::default()
            };
            match obj.get(&columns.text) {
                None | Some(serde_json::Value::Null) => raw.text = None,
                Some(serde_json::Value::String(s)) => raw.text = Some(s.clone()),
                Some(_) => {
                    let reason = "text is not a string".to_string();
                    return Some(Ok(self.reject(id_guess, ln, Some(&columns.text), reason)));
                }
            }
            raw.time = obj.get(&columns.time).and_then(scalar_string);
            raw.channel = obj.get(&columns.channel).and_then(scalar_string);
            raw.rating = obj.get(&columns.rating).and_then(scalar_string);
            raw.tier = obj.get(&columns.tier).and_then(scalar_string);
            raw.product = obj.get(&columns.product).and_then(scalar_string);
            return Some(Ok(self.finish(raw, ln)));
        }
    }
}

fn scalar_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn csv_index(path: &Path, header: &csv::ByteRecord, cols: &ColumnMap) -> Result<CsvIndex> {
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let s = String::from_utf8_lossy(b).trim().to_string();
            if i == 0 {
                s.trim_start_matches('\u{feff}').to_string()
            } else {
                s
            }
        })
        .collect();
    let find = |name: &str| names.iter().position(|n| n == name);
    let text = find(&cols.text).ok_or_else(|| {
        Error::input(
            path,
            format!(
                "the header has no text column {:?} (columns: {}); name it with --text-col or a --columns file",
                cols.text,
                names.join(", ")
            ),
        )
    })?;
    Ok(CsvIndex {
        id: find(&cols.id),
        text,
        time: find(&cols.time),
        channel: find(&cols.channel),
        rating: find(&cols.rating),
        tier: find(&cols.tier),
        product: find(&cols.product),
        names,
    })
}

impl Iterator for Reader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner {
            Inner::Csv { .. } => self.next_csv(),
            Inner::Jsonl { .. } => self.next_jsonl(),
        }
    }
}

/// Expands the inputs named on the command line: files as they are, directories to the
/// `.csv`/`.tsv`/`.jsonl`/`.ndjson` files inside them, sorted by name.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && Format::from_path(f).is_some())
                .collect();
            v.sort();
            out.extend(v);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::input(p, "no such file or directory"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path, cfg: &IngestConfig) -> Vec<Item> {
        Reader::open(path, cfg)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn csv_with_bom_semicolons_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        let mut f = File::create(&p).unwrap();
        f.write_all("\u{feff}ticket;body;stars\n".as_bytes())
            .unwrap();
        f.write_all("t1;物流太慢了;1\n".as_bytes()).unwrap();
        f.write_all(b"t2;bad \xff utf8;2\n").unwrap();
        f.write_all("t3;too;many;fields\n".as_bytes()).unwrap();
        f.write_all("t1;dup id;3\n".as_bytes()).unwrap();
        f.write_all("t5;nice;five\n".as_bytes()).unwrap();
        f.write_all(";no id here;4\n".as_bytes()).unwrap();
        drop(f);
        let cfg = IngestConfig {
            columns: ColumnMap {
                id: "ticket".into(),
                text: "body".into(),
                rating: "stars".into(),
                ..ColumnMap::default()
            },
            format: None,
            delimiter: Some(b';'),
        };
        let items = read_all(&p, &cfg);
        assert_eq!(items.len(), 6);
        let Item::Comment(c) = &items[0] else {
            panic!()
        };
        assert_eq!(
            (c.id.as_str(), c.text.as_str(), c.rating),
            ("t1", "物流太慢了", Some(1.0))
        );
        assert_eq!(c.source.line, 2);
        let reasons: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Reject(r) => Some((r.line, r.field.clone(), r.reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(reasons[0], (3, Some("body".into()), "invalid UTF-8".into()));
        assert_eq!(reasons[1].0, 4);
        assert!(reasons[1].2.contains("expected 3 fields"));
        assert_eq!(reasons[2].2, "duplicate id (first seen at line 2)");
        assert_eq!(reasons[3].1, Some("rating".into()));
        let Item::Comment(c) = &items[5] else {
            panic!()
        };
        assert_eq!(c.id, content_id("no id here"));
    }

    #[test]
    fn jsonl_with_errors_and_generated_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        let mut f = File::create(&p).unwrap();
        writeln!(f, r#"{{"id": 7, "text": "hello", "channel": "email"}}"#).unwrap();
        writeln!(f, r#"{{"text": "same"}}"#).unwrap();
        writeln!(f).unwrap();
        writeln!(f, r#"{{"text": "same"}}"#).unwrap();
        writeln!(f, r#"{{"id": "x", "text": 3}}"#).unwrap();
        writeln!(f, r#"{{"id": "y", "text": "#).unwrap();
        f.write_all(b"{\"id\": \"z\", \"text\": \"\xfe\"}\n")
            .unwrap();
        drop(f);
        let items = read_all(&p, &IngestConfig::default());
        assert_eq!(items.len(), 6);
        let ids: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Comment(c) => c.id.clone(),
                Item::Reject(r) => format!("R{}:{}", r.line, r.id.clone().unwrap_or_default()),
            })
            .collect();
        let h = content_id("same");
        assert_eq!(
            ids,
            vec![
                "7".to_string(),
                h.clone(),
                format!("{h}-2"),
                "R5:x".into(),
                "R6:".into(),
                "R7:z".into()
            ]
        );
    }

    #[test]
    fn missing_text_column_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, "id,body\n1,x\n").unwrap();
        let err = Reader::open(&p, &IngestConfig::default()).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("no text column") && msg.contains("--text-col"),
            "{msg}"
        );
    }
}
