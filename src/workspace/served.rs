//! `RUN/served.jsonl`: the comments `vocmine serve --score --index RUN` scored, one
//! `scored.jsonl` record per line (masked text, as `score` writes it), appended by the server
//! after each encoder batch and fsynced with each index commit. [`RunDir`] reads them with the
//! run's other records, so `report`, `alerts` and `topics` see them; for an id in both files
//! the served record wins (the latest line of it).
//!
//! Crash safety: every batch is one `write` of whole lines to a file opened for appending; a
//! last line a crash cut (no newline at the end) was never acknowledged as durable: readers
//! skip it, and the next writer cuts it before appending, so the next line starts clean.

use super::RunDir;
use crate::error::{Error, Result};
use crate::record::Scored;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `RUN/served.jsonl` open for appending (one writer: the server that holds the run's index
/// writer).
pub struct ServedWriter {
    path: PathBuf,
    file: File,
}

impl ServedWriter {
    /// Opens (creating it and the run folder) the served-records file of `run`, first cutting a
    /// last line a crash left without its newline.
    pub fn open(run: &RunDir) -> Result<ServedWriter> {
        let path = run.served();
        std::fs::create_dir_all(run.path()).map_err(|e| Error::io(run.path(), e))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        Ok(ServedWriter { path, file })
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
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Syncs what was appended to disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// The records of a served-records file (absent: none): the latest line of each id, in the
/// order of each id's first line. A last line without its newline (a crash, or a batch being
/// appended right now) is skipped; any other line that is not a record is an error naming it.
pub(super) fn read_served(path: &Path) -> Result<Vec<Scored>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out: Vec<Scored> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, line) in bytes[..whole].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let s: Scored = serde_json::from_slice(line)
            .map_err(|e| Error::input(path, format!("line {}: not a scored record: {e}", i + 1)))?;
        match at.get(&s.id) {
            Some(&k) => out[k] = s,
            None => {
                at.insert(s.id.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(id: &str, text: &str) -> Scored {
        Scored {
            id: id.into(),
            text: text.into(),
            lang: "en".into(),
            time: None,
            channel: None,
            rating: None,
            tier: None,
            product: None,
            masked: Vec::new(),
            tokens: None,
            n_tokens: 1,
            text_hash: String::new(),
            model: "m".into(),
            tasks: BTreeMap::new(),
        }
    }

    #[test]
    fn the_latest_line_of_an_id_wins_and_a_line_cut_by_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        assert!(read_served(&run.served()).unwrap().is_empty());
        let mut w = ServedWriter::open(&run).unwrap();
        w.append(&[rec("a", "one"), rec("b", "two")]).unwrap();
        w.append(&[rec("a", "three")]).unwrap();
        w.sync().unwrap();
        drop(w);
        // a crash in the middle of a line
        let mut f = OpenOptions::new().append(true).open(run.served()).unwrap();
        f.write_all(br#"{"id":"c","te"#).unwrap();
        let texts = |v: Vec<Scored>| {
            v.into_iter()
                .map(|s| s.id + "=" + &s.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            texts(read_served(&run.served()).unwrap()),
            ["a=three", "b=two"]
        );
        // the next writer cuts it, so its first line starts clean
        let mut w = ServedWriter::open(&run).unwrap();
        w.append(&[rec("c", "four")]).unwrap();
        assert_eq!(
            texts(read_served(&run.served()).unwrap()),
            ["a=three", "b=two", "c=four"]
        );
        std::fs::write(run.served(), "{oops}\n").unwrap();
        let e = read_served(&run.served()).unwrap_err().to_string();
        assert!(e.contains("served.jsonl") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn the_runs_records_are_the_scored_ones_then_the_served_ones_a_served_id_replacing_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        assert!(run.read_scored().is_err());
        // a run that only served comments
        let mut w = ServedWriter::open(&run).unwrap();
        assert!(
            run.read_scored().is_err(),
            "an empty served file is no records"
        );
        w.append(&[rec("b", "served b"), rec("c", "served c")])
            .unwrap();
        let ids = |run: &RunDir| {
            run.read_scored()
                .unwrap()
                .into_iter()
                .map(|s| s.id + "=" + &s.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&run), ["b=served b", "c=served c"]);
        // scored by `vocmine score` too: its records first, less the ids served since
        let lines: String = [rec("a", "scored a"), rec("b", "scored b")]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(run.scored(), lines).unwrap();
        assert_eq!(ids(&run), ["a=scored a", "b=served b", "c=served c"]);
        let mut n = 0;
        run.each_scored(|_| n += 1).unwrap();
        assert_eq!(n, 3);
    }
}
