//! The run folder as a workspace for nightly runs: incremental, resumable, idempotent.
//!
//! ```text
//! WORKSPACE/
//!   lock                      held (OS file lock) by the one `score` running here
//!   state/manifest.json       committed checkpoints, input files done, runs; replaced atomically
//!   state/parts/000001.jsonl  scored lines of checkpoint 1 (+ .rejects.jsonl, + .f32 embeddings)
//!   scored.jsonl              the compacted output: the latest line of every comment, once
//!   embeddings.f32            row i = the pooled embedding of line i of scored.jsonl
//!   embeddings.json           width, rows and a hash of the rows' ids it was written for
//!   rejects.jsonl             every rejected record, once
//!   summary.json              what the last run did, and the totals of scored.jsonl
//! ```
//!
//! A checkpoint writes its part files under temporary names, fsyncs them, renames them into
//! place, then replaces the manifest (write, fsync, rename, fsync the folder). The manifest is
//! the commit: part files it does not list are leftovers of a killed run and are deleted at
//! the next open. A run killed at any moment therefore resumes from its last checkpoint, and
//! compaction writes every comment exactly once (its most recent scoring).
//!
//! Why atomic renames and not an embedded database: the outputs are JSONL files that people
//! read and other tools load, and they must be committed together with the state; with the
//! state inside the part files themselves (each line carries its id, text hash and model
//! version) one rename of the manifest commits both, with no second store to keep in step.

mod compact;
pub mod embeddings;
pub mod parquet;
mod run_dir;
pub mod served;

pub use compact::Compacted;
pub use run_dir::{read_scored_file, read_topic_assignments, RunDir, RunSettings, TopicTag};
pub use served::ServedWriter;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One committed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartInfo {
    /// Sequence number (file name).
    pub id: u64,
    /// Scored lines in the part.
    pub scored: u64,
    /// Rejects in the part.
    pub rejected: u64,
    /// Whether the part has an embeddings file.
    pub embeddings: bool,
}

/// An input file scored to its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path as given.
    pub path: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Records read.
    pub records: u64,
    /// Model version that scored it.
    pub model: String,
    /// Unix time it was finished.
    pub finished: u64,
}

/// The committed state of a workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Committed parts in order.
    pub parts: Vec<PartInfo>,
    /// Input files scored to their end.
    pub files: Vec<FileRecord>,
    /// Summaries of finished runs (JSON of `pipeline::Summary`).
    pub runs: Vec<serde_json::Value>,
}

/// What a run does with one comment, given what the workspace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not seen before: score.
    New,
    /// Seen with the same text and model: skip.
    Unchanged,
    /// Seen with another text: score again.
    ChangedText,
    /// Seen, scored by another model version: score again.
    OlderModel,
}

/// What the state remembers of a scored comment.
#[derive(Debug, Clone)]
struct Seen {
    text_hash: String,
    model: u32,
}

/// The fields of a part line the state needs.
#[derive(Deserialize)]
struct StateLine {
    id: String,
    #[serde(default)]
    text_hash: String,
    #[serde(default)]
    model: String,
}

/// An open workspace, locked for this process.
pub struct Workspace {
    dir: PathBuf,
    _lock: Option<File>,
    manifest: Manifest,
    seen: HashMap<String, Seen>,
    models: Vec<String>,
    pending: Option<Pending>,
    embeddings: bool,
}

/// The part being written (not yet committed).
struct Pending {
    id: u64,
    scored: BufWriter<File>,
    rejects: BufWriter<File>,
    embeddings: Option<BufWriter<File>>,
    n_scored: u64,
    n_rejected: u64,
    lines: Vec<(String, String, String)>,
}

fn part_path(dir: &Path, id: u64, ext: &str) -> PathBuf {
    dir.join("state/parts").join(format!("{id:06}.{ext}"))
}

fn tmp_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Fault injection for crash tests: when the environment variable `VOCMINE_PAUSE_AT` names
/// this point, prints `vocmine: paused at NAME` to stderr and sleeps for ever, so that a test
/// can SIGKILL the process exactly between two steps of a commit. A no-op otherwise.
#[doc(hidden)]
pub fn pause_point(name: &str) {
    if std::env::var_os("VOCMINE_PAUSE_AT").is_some_and(|v| v == name) {
        eprintln!("vocmine: paused at {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

pub(crate) fn remove_if_present(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_of(path);
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads a workspace's manifest without locking it (for `status`); empty when there is none.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("state/manifest.json");
    match std::fs::read_to_string(&p) {
        Ok(s) => {
            serde_json::from_str(&s).map_err(|e| Error::input(&p, format!("corrupt manifest: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
            version: 1,
            ..Manifest::default()
        }),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// Writes `value` as pretty JSON with a trailing newline to `path`, creating its folder: the
/// reports and measurements the commands write with `--out`.
pub fn write_json_file(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// What `vocmine status` says of the workspace at `dir`, from its manifest: checkpoints,
/// scored lines, runs, the last run's counts and totals, and each input file done. Every line
/// ends with a newline.
pub fn status_text(dir: &Path) -> Result<String> {
    use std::fmt::Write as _;
    let m = read_manifest(dir)?;
    let mut s = String::new();
    if m.parts.is_empty() && m.runs.is_empty() {
        let _ = writeln!(s, "{}: no scoring run yet", dir.display());
    }
    let scored: u64 = m.parts.iter().map(|p| p.scored).sum();
    let _ = writeln!(
        s,
        "{}: {} checkpoints, {} scored lines (before compaction), {} runs, {} input files done",
        dir.display(),
        m.parts.len(),
        scored,
        m.runs.len(),
        m.files.len()
    );
    if let Some(last) = m.runs.last() {
        let _ = writeln!(
            s,
            "last run: {} scored ({} new, {} changed, {} older model), {} unchanged, {} rejected, model {}, {:.1}s",
            last["scored"], last["new"], last["changed_text"], last["older_model"], last["unchanged"],
            last["rejected"], last["model"].as_str().unwrap_or("?"), last["seconds"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(
            s,
            "in scored.jsonl: {} comments; rejects.jsonl: {}",
            last["total_scored"], last["total_rejected"]
        );
    }
    for f in &m.files {
        let _ = writeln!(
            s,
            "  done: {} (sha256 {}…, {} records, model {})",
            f.path,
            f.sha256.get(..12).unwrap_or(&f.sha256),
            f.records,
            f.model
        );
    }
    Ok(s)
}

impl Workspace {
    /// Opens (or creates) the workspace at `dir`, taking its lock; refuses with a clear message
    /// when another process holds it. Deletes uncommitted part files and loads the state.
    pub fn open(dir: &Path) -> Result<Workspace> {
        std::fs::create_dir_all(dir.join("state/parts")).map_err(|e| Error::io(dir, e))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = std::fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(Error::input(
                    dir,
                    format!(
                        "another vocmine run is using this workspace ({}); wait for it to finish (the lock is released when it exits)",
                        who.trim()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let mut l = &lock;
        let _ = l.set_len(0);
        let _ = writeln!(l, "pid {}", std::process::id());
        let manifest = read_manifest(dir)?;
        let committed: HashSet<u64> = manifest.parts.iter().map(|p| p.id).collect();
        let parts_dir = dir.join("state/parts");
        for entry in std::fs::read_dir(&parts_dir).map_err(|e| Error::io(&parts_dir, e))? {
            let p = entry.map_err(|e| Error::io(&parts_dir, e))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let id = name.split('.').next().and_then(|s| s.parse::<u64>().ok());
            if name.ends_with(".tmp") || id.is_none_or(|id| !committed.contains(&id)) {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Self::load(dir, Some(lock), manifest)
    }

    fn load(dir: &Path, lock: Option<File>, manifest: Manifest) -> Result<Workspace> {
        let mut ws = Workspace {
            dir: dir.to_path_buf(),
            _lock: lock,
            manifest,
            seen: HashMap::new(),
            models: Vec::new(),
            pending: None,
            embeddings: false,
        };
        ws.load_state()?;
        Ok(ws)
    }

    /// Opens a workspace to look at it (no lock, nothing written or deleted): the committed
    /// state only.
    pub fn open_read_only(dir: &Path) -> Result<Workspace> {
        Self::load(dir, None, read_manifest(dir)?)
    }

    fn model_index(&mut self, m: &str) -> u32 {
        match self.models.iter().position(|x| x == m) {
            Some(i) => i as u32,
            None => {
                self.models.push(m.to_string());
                (self.models.len() - 1) as u32
            }
        }
    }

    fn load_state(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.manifest.parts.iter().map(|p| p.id).collect();
        for id in ids {
            let p = part_path(&self.dir, id, "jsonl");
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| Error::io(&p, e))?;
                let s: StateLine = serde_json::from_str(&line)
                    .map_err(|e| Error::input(&p, format!("line {}: {e}", n + 1)))?;
                let model = self.model_index(&s.model);
                self.seen.insert(
                    s.id,
                    Seen {
                        text_hash: s.text_hash,
                        model,
                    },
                );
            }
        }
        Ok(())
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Comments the state knows.
    pub fn known(&self) -> usize {
        self.seen.len()
    }

    /// What to do with comment `id` whose text hashes to `text_hash`, under model `model`.
    pub fn decide(&self, id: &str, text_hash: &str, model: &str) -> Decision {
        match self.seen.get(id) {
            None => Decision::New,
            Some(s) if s.text_hash != text_hash => Decision::ChangedText,
            Some(s) if self.models.get(s.model as usize).map(String::as_str) != Some(model) => {
                Decision::OlderModel
            }
            Some(_) => Decision::Unchanged,
        }
    }

    /// True when the file with this content was already scored to its end by `model`.
    pub fn file_done(&self, sha256: &str, model: &str) -> bool {
        self.manifest
            .files
            .iter()
            .any(|f| f.sha256 == sha256 && f.model == model)
    }

    /// Whether checkpoints carry embeddings (`embeddings.f32`); set before the first line.
    pub fn set_embeddings(&mut self, on: bool) {
        self.embeddings = on;
    }

    fn pending(&mut self) -> Result<&mut Pending> {
        let embeddings = self.embeddings;
        if self.pending.is_none() {
            let id = self.manifest.parts.last().map_or(1, |p| p.id + 1);
            let open = |ext: &str| -> Result<BufWriter<File>> {
                let p = tmp_of(&part_path(&self.dir, id, ext));
                Ok(BufWriter::new(
                    File::create(&p).map_err(|e| Error::io(&p, e))?,
                ))
            };
            self.pending = Some(Pending {
                id,
                scored: open("jsonl")?,
                rejects: open("rejects.jsonl")?,
                embeddings: if embeddings { Some(open("f32")?) } else { None },
                n_scored: 0,
                n_rejected: 0,
                lines: Vec::new(),
            });
        }
        self.pending
            .as_mut()
            .ok_or_else(|| Error::Invalid("no pending part".into()))
    }

    /// Adds one scored line (already JSON, carrying `id`, `text_hash`, `model`) and its
    /// embedding to the pending checkpoint.
    pub fn add_scored(
        &mut self,
        id: &str,
        text_hash: &str,
        model: &str,
        json: &str,
        embedding: Option<&[f32]>,
    ) -> Result<()> {
        let dir = self.dir.clone();
        let p = self.pending()?;
        let path = tmp_of(&part_path(&dir, p.id, "jsonl"));
        let err = |e| Error::io(&path, e);
        p.scored.write_all(json.as_bytes()).map_err(err)?;
        p.scored.write_all(b"\n").map_err(err)?;
        if let (Some(w), Some(e)) = (p.embeddings.as_mut(), embedding) {
            for x in e {
                w.write_all(&x.to_le_bytes()).map_err(err)?;
            }
        }
        p.n_scored += 1;
        p.lines
            .push((id.to_string(), text_hash.to_string(), model.to_string()));
        Ok(())
    }

    /// Adds one reject (JSON) to the pending checkpoint.
    pub fn add_reject(&mut self, json: &str) -> Result<()> {
        let dir = self.dir.clone();
        let p = self.pending()?;
        let path = tmp_of(&part_path(&dir, p.id, "rejects.jsonl"));
        let err = |e| Error::io(&path, e);
        p.rejects.write_all(json.as_bytes()).map_err(err)?;
        p.rejects.write_all(b"\n").map_err(err)?;
        p.n_rejected += 1;
        Ok(())
    }

    /// Commits the pending checkpoint (if any) and, when given, records a finished input file,
    /// in one manifest replacement.
    pub fn commit(&mut self, finished_file: Option<FileRecord>) -> Result<()> {
        if let Some(p) = self.pending.take() {
            let mut ws = vec![("jsonl", p.scored), ("rejects.jsonl", p.rejects)];
            if let Some(e) = p.embeddings {
                ws.push(("f32", e));
            }
            let has_emb = ws.len() == 3;
            for (ext, w) in ws {
                let fin = part_path(&self.dir, p.id, ext);
                let tmp = tmp_of(&fin);
                let f = w
                    .into_inner()
                    .map_err(|e| Error::io(&tmp, e.into_error()))?;
                f.sync_all().map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
            }
            sync_dir(&self.dir.join("state/parts"))?;
            self.manifest.parts.push(PartInfo {
                id: p.id,
                scored: p.n_scored,
                rejected: p.n_rejected,
                embeddings: has_emb,
            });
            for (id, hash, model) in p.lines {
                let m = self.model_index(&model);
                self.seen.insert(
                    id,
                    Seen {
                        text_hash: hash,
                        model: m,
                    },
                );
            }
        }
        if let Some(f) = finished_file {
            // files finished under another model version may no longer match the state
            self.manifest
                .files
                .retain(|x| x.model == f.model && !(x.sha256 == f.sha256 && x.path == f.path));
            self.manifest.files.push(f);
        }
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.manifest)?;
        write_atomic(&self.dir.join("state/manifest.json"), &json)
    }

    /// Records a finished run's summary.
    pub fn record_run(&mut self, summary: serde_json::Value) -> Result<()> {
        self.manifest.runs.push(summary);
        self.write_manifest()
    }
}
