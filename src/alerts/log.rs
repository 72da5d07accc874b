//! The delivery log (`RUN/alerts/delivered.jsonl`): one JSON line per delivery outcome of an
//! event to a destination, appended and fsynced before the next delivery starts. The last
//! line of a (event, destination) pair is its state. A line cut by a crash (no newline at the
//! end) was never acknowledged: it is dropped when the log is next opened. The log holds ids,
//! keys, figures and the destination's origin, never comment text.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A delivery's outcome as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The receiver answered 2xx.
    Delivered,
    /// The payload was appended to a queue file.
    Queued,
    /// The receiver refused it for good (4xx other than 408 and 429, or a redirect): not
    /// retried.
    Rejected,
    /// Every attempt failed (5xx, 408, 429, timeouts, connection errors): still pending,
    /// retried on the next run.
    Failed,
}

impl Status {
    /// Whether the event is done with at this destination (not retried).
    pub fn is_final(self) -> bool {
        self != Status::Failed
    }
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The event id.
    pub event: String,
    /// The destination's id (hash of the URL or queue name).
    pub dest: String,
    /// The destination as shown: a webhook's origin (no path) or `queue:NAME`.
    pub target: String,
    /// The rule that routed it (`default` for the default route).
    pub route: String,
    /// The outcome.
    pub status: Status,
    /// HTTP attempts made this time (0 for a queue).
    pub attempts: u32,
    /// The last HTTP status, when there was an answer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http: Option<u16>,
    /// The last error, when the delivery failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// Event kind, key, metric and period (for people reading the log).
    pub kind: String,
    /// The group's key.
    pub key: String,
    /// The spiking metric.
    pub metric: String,
    /// The period.
    pub period: String,
}

/// The whole lines of the JSONL file at `path` (absent: none; a last line a crash left
/// without its newline is not one) and, with `append`, the file open for appending (created
/// with its folder), that cut line removed first so the next line starts clean.
pub(super) fn whole_lines(path: &Path, append: bool) -> Result<(Vec<u8>, Option<File>)> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let file = if append {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if whole < bytes.len() {
            f.set_len(whole as u64).map_err(|e| Error::io(path, e))?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
        }
        Some(f)
    } else {
        None
    };
    bytes.truncate(whole);
    Ok((bytes, file))
}

/// The delivery log, open for appending.
pub struct DeliveryLog {
    path: PathBuf,
    file: Option<File>,
    state: HashMap<(String, String), Entry>,
}

impl DeliveryLog {
    /// Reads the log at `path` (absent: empty). With `write`, opens it for appending, first
    /// cutting a last line a crash left without its newline.
    pub fn open(path: &Path, write: bool) -> Result<DeliveryLog> {
        let (lines, file) = whole_lines(path, write)?;
        let mut state = HashMap::new();
        for (i, line) in lines.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let e: Entry = serde_json::from_slice(line).map_err(|e| {
                Error::input(path, format!("line {}: not a delivery record: {e}", i + 1))
            })?;
            state.insert((e.event.clone(), e.dest.clone()), e);
        }
        Ok(DeliveryLog {
            path: path.to_path_buf(),
            file,
            state,
        })
    }

    /// The latest entry for `event` at `dest`.
    pub fn get(&self, event: &str, dest: &str) -> Option<&Entry> {
        self.state.get(&(event.to_string(), dest.to_string()))
    }

    /// Appends `e` as one line in one write and syncs it to disk.
    pub fn append(&mut self, e: Entry) -> Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(Error::Invalid("the delivery log is open read-only".into()));
        };
        let line = serde_json::to_string(&e)? + "\n";
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|err| Error::io(&self.path, err))?;
        self.state.insert((e.event.clone(), e.dest.clone()), e);
        Ok(())
    }
}
