//! `RUN/served.jsonl`: the comments `vocmine serve --score --index RUN` scored, one
//! `scored.jsonl` record per line (masked text, as `score` writes it), appended by the server
//! after each encoder batch and fsynced with each index commit. [`RunDir`] reads them with the
//! run's other records, so `report`, `alerts` and `topics` see them; for an id in both files
//! the served record wins (the latest line of it).
//!
//! Crash safety: every batch is one `write` of whole lines to a file opened for appending; a
//! last line a crash cut (no newline at the end) was never acknowledged as durable: readers
//! skip it, and the next writer cuts it before appending, so the next line starts clean.
//!
//! Compaction: the same id scored again appends another line, so the writer rewrites the file
//! with only the latest line of each id (in the order of each id's first line, the order
//! readers give, so compaction changes nothing they see) when it opens it, and the server
//! again whenever superseded lines outnumber the live ones in a file of more than
//! [`COMPACT_MIN_LINES`] lines ([`ServedWriter::compact_if_large`], after the sync of an index
//! commit). The new file is written as `served.jsonl.tmp`, fsynced, renamed over the old one
//! and the folder fsynced; a crash at any step leaves the old file whole (a leftover `.tmp` is
//! deleted at the next open).
//!
//! Reading streams: a first pass keeps the byte offset of the latest line of each id (and the
//! ids, to skip them in `scored.jsonl`), a second pass parses only those lines.

use super::{sync_dir, tmp_of, RunDir};
use crate::error::{Error, Result};
use crate::record::Scored;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Lines the file must have before the server compacts it during operation (with more
/// superseded lines than live ones).
pub const COMPACT_MIN_LINES: usize = 4096;

/// `RUN/served.jsonl` open for appending (one writer: the server that holds the run's index
/// writer).
pub struct ServedWriter {
    path: PathBuf,
    file: File,
    /// The ids in the file, and its record lines (more than the ids by the superseded ones).
    ids: HashSet<String>,
    lines: usize,
}

/// What one compaction of `served.jsonl` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedCompaction {
    /// Record lines before.
    pub lines_before: usize,
    /// Record lines after: the ids.
    pub lines_after: usize,
    /// File size before, in bytes.
    pub bytes_before: u64,
    /// File size after, in bytes.
    pub bytes_after: u64,
}

impl ServedWriter {
    /// Opens (creating it and the run folder) the served-records file of `run`: deletes a
    /// `served.jsonl.tmp` a crashed compaction left, compacts the file when an id has more
    /// than one line, else cuts a last line a crash left without its newline.
    pub fn open(run: &RunDir) -> Result<ServedWriter> {
        let path = run.served();
        std::fs::create_dir_all(run.path()).map_err(|e| Error::io(run.path(), e))?;
        let tmp = tmp_of(&path);
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&tmp, e)),
            _ => {}
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let scan = Scan::of(File::open(&path).map_err(|e| Error::io(&path, e))?, &path)?;
        let mut w = ServedWriter {
            path,
            file,
            ids: HashSet::new(),
            lines: scan.lines,
        };
        if scan.lines > scan.latest.len() {
            w.rewrite(scan)?;
        } else {
            if scan.whole < scan.consumed {
                w.file
                    .set_len(scan.whole)
                    .and_then(|()| w.file.sync_all())
                    .map_err(|e| Error::io(&w.path, e))?;
            }
            w.ids = scan.ids.into_keys().collect();
        }
        Ok(w)
    }

    /// Appends `records`, one line each, in one write (not yet fsynced: see
    /// [`ServedWriter::sync`]).
    pub fn append(&mut self, records: &[Scored]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for s in records {
            serde_json::to_writer(&mut buf, s)?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .map_err(|e| Error::io(&self.path, e))?;
        self.lines += records.len();
        for s in records {
            if !self.ids.contains(&s.id) {
                self.ids.insert(s.id.clone());
            }
        }
        Ok(())
    }

    /// Syncs what was appended to disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Record lines in the file (superseded ones included).
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Distinct ids in the file (its lines after a compaction).
    pub fn ids(&self) -> usize {
        self.ids.len()
    }

    /// Compacts the file ([`ServedWriter::compact`]) when superseded lines outnumber the live
    /// ones and it has more than [`COMPACT_MIN_LINES`] lines; `None` when it did not. The
    /// server calls it after the sync of an index commit, holding the index writer and this
    /// writer, so no batch is appended meanwhile; on an error it logs it and goes on (the old
    /// file is whole and the writer still appends to it).
    pub fn compact_if_large(&mut self) -> Result<Option<ServedCompaction>> {
        if self.lines > 2 * self.ids.len() && self.lines > COMPACT_MIN_LINES {
            self.compact().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Rewrites the file with only the latest line of each id, in the order of each id's
    /// first line (crash-safe: see the module doc); appends go to the new file after it. The
    /// caller holds the writer, so nothing is appended meanwhile. On an error the old file
    /// and the writer are as they were.
    pub fn compact(&mut self) -> Result<ServedCompaction> {
        let scan = Scan::of(
            File::open(&self.path).map_err(|e| Error::io(&self.path, e))?,
            &self.path,
        )?;
        self.rewrite(scan)
    }

    fn rewrite(&mut self, scan: Scan) -> Result<ServedCompaction> {
        let tmp = tmp_of(&self.path);
        let written = write_latest(scan.reader, scan.consumed, &scan.latest, &self.path, &tmp)
            .and_then(|bytes| {
                // the handle for later appends, opened before the rename so that a failure
                // leaves the writer on the old file
                let file = OpenOptions::new()
                    .append(true)
                    .read(true)
                    .open(&tmp)
                    .map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
                Ok((bytes, file))
            });
        let (bytes_after, file) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.file = file;
        let done = ServedCompaction {
            lines_before: scan.lines,
            lines_after: scan.latest.len(),
            bytes_before: scan.consumed,
            bytes_after,
        };
        self.lines = scan.latest.len();
        self.ids = scan.ids.into_keys().collect();
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(done)
    }
}

/// Copies the lines `latest` of `src` (read up to `pos`) to `tmp`, fsynced; returns its size.
fn write_latest(
    src: BufReader<File>,
    pos: u64,
    latest: &[Latest],
    path: &Path,
    tmp: &Path,
) -> Result<u64> {
    let mut lines = LineReader {
        reader: src,
        pos,
        path: path.to_path_buf(),
    };
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(|e| Error::io(tmp, e))?);
    let mut buf = Vec::new();
    let mut bytes = 0;
    for l in latest {
        lines.read(l, &mut buf)?;
        out.write_all(&buf).map_err(|e| Error::io(tmp, e))?;
        bytes += buf.len() as u64;
    }
    out.into_inner()
        .map_err(|e| Error::io(tmp, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(tmp, e))?;
    Ok(bytes)
}

/// Where the latest line of an id is.
#[derive(Debug, Clone, Copy)]
struct Latest {
    /// Byte offset and length (with its newline).
    at: u64,
    len: u64,
    /// Line number, from 1 (for errors).
    line: usize,
}

/// The first pass over a served-records file: the latest line of each id.
struct Scan {
    /// The file, read up to `consumed`.
    reader: BufReader<File>,
    /// The latest line of each id, in the order of each id's first line.
    latest: Vec<Latest>,
    /// Id -> its index in `latest`.
    ids: HashMap<String, usize>,
    /// Record lines (not blank).
    lines: usize,
    /// Bytes of whole lines, and bytes read (more by a last line without its newline).
    whole: u64,
    consumed: u64,
}

impl Scan {
    fn of(file: File, path: &Path) -> Result<Scan> {
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let (mut latest, mut ids) = (Vec::new(), HashMap::new());
        let (mut at, mut line, mut lines, mut consumed) = (0u64, 0usize, 0usize, 0u64);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(path, e))? as u64;
            consumed += n;
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            line += 1;
            let here = Latest { at, len: n, line };
            at += n;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let id = serde_json::from_slice::<Id>(&buf)
                .map_err(|e| Error::input(path, format!("line {line}: not a scored record: {e}")))?
                .id;
            lines += 1;
            match ids.get(&id) {
                Some(&k) => latest[k] = here,
                None => {
                    ids.insert(id, latest.len());
                    latest.push(here);
                }
            }
        }
        Ok(Scan {
            reader,
            latest,
            ids,
            lines,
            whole: at,
            consumed,
        })
    }
}

/// Reads the lines a [`Scan`] found: through the buffer where the next line is the one after
/// (or further on in the buffer), else one seek and one read of exactly the line, so the
/// latest lines of a file never compacted, scattered across it, cost no buffer refill each.
struct LineReader {
    reader: BufReader<File>,
    pos: u64,
    path: PathBuf,
}

impl LineReader {
    fn read(&mut self, l: &Latest, buf: &mut Vec<u8>) -> Result<()> {
        buf.resize(l.len as usize, 0);
        let ahead = l.at.checked_sub(self.pos);
        let read = match ahead {
            Some(by) if by <= self.reader.buffer().len() as u64 => self
                .reader
                .seek_relative(by as i64)
                .and_then(|()| self.reader.read_exact(buf)),
            // the buffer is empty after the seek, so reading past it keeps the two in step
            _ => (self.reader.seek(SeekFrom::Start(l.at)))
                .and_then(|_| self.reader.get_mut().read_exact(buf)),
        };
        read.map_err(|e| Error::io(&self.path, e))?;
        self.pos = l.at + l.len;
        Ok(())
    }
}

/// The records of a served-records file, streamed: the ids it has (known before any record is
/// read), and an iterator over the latest line of each id, in the order of each id's first
/// line. A last line without its newline (a crash, or a batch being appended right now) is
/// skipped; any other line that is not a record is an error naming file and line. Both
/// passes read one open file, so a compaction renaming a new file over it meanwhile changes
/// nothing.
pub(super) struct ServedRecords {
    /// Each id of the file -> its rank in the records.
    pub ids: HashMap<String, usize>,
    lines: Option<LineReader>,
    latest: std::vec::IntoIter<Latest>,
    buf: Vec<u8>,
}

impl ServedRecords {
    /// Scans the served-records file at `path` (absent: no records).
    pub fn open(path: &Path) -> Result<ServedRecords> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ServedRecords {
                    ids: HashMap::new(),
                    lines: None,
                    latest: Vec::new().into_iter(),
                    buf: Vec::new(),
                })
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let scan = Scan::of(file, path)?;
        Ok(ServedRecords {
            ids: scan.ids,
            lines: Some(LineReader {
                reader: scan.reader,
                pos: scan.consumed,
                path: path.to_path_buf(),
            }),
            latest: scan.latest.into_iter(),
            buf: Vec::new(),
        })
    }

    /// Whether the file has no records.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Iterator for ServedRecords {
    type Item = Result<Scored>;

    fn next(&mut self) -> Option<Result<Scored>> {
        let l = self.latest.next()?;
        let lines = self.lines.as_mut()?;
        Some(lines.read(&l, &mut self.buf).and_then(|()| {
            serde_json::from_slice(&self.buf).map_err(|e| {
                Error::input(
                    &lines.path,
                    format!("line {}: not a scored record: {e}", l.line),
                )
            })
        }))
    }
}

/// The records of a served-records file, all in memory (tests).
#[cfg(test)]
pub(super) fn read_served(path: &Path) -> Result<Vec<Scored>> {
    ServedRecords::open(path)?.collect()
}

#[cfg(test)]
mod tests;
