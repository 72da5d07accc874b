//! The run's pooled embeddings beside `scored.jsonl`, and how a reader checks that they line up.
//!
//! `embeddings.f32` holds row i of the embeddings for line i of `scored.jsonl` (little-endian
//! f32). Compaction replaces `scored.jsonl`, `embeddings.f32` and `embeddings.json` with three
//! renames, so a crash between them leaves files from two compactions side by side: same
//! length, other rows. `embeddings.json` therefore records the width, the row count and a hash
//! of every row's key (id, text hash, model version) in order; [`load_aligned`] uses the file
//! only when that hash matches the `scored.jsonl` it is given, and otherwise takes each row from
//! the committed checkpoint part that scored the same (id, text hash, model), which holds the
//! very embedding the encoder produced. Rows no part has are left to the caller to encode.

use super::{part_path, read_manifest, StateLine};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// File name of the alignment record beside `embeddings.f32`.
pub const META_FILE: &str = "embeddings.json";
/// File name of the row-aligned embeddings.
pub const DATA_FILE: &str = "embeddings.f32";

/// What `embeddings.json` says about `embeddings.f32`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingsMeta {
    /// Format version.
    pub version: u32,
    /// Floats per row.
    pub dim: usize,
    /// Rows (= lines of the `scored.jsonl` written with it).
    pub rows: u64,
    /// [`KeyHasher`] hash of those lines' (id, text hash, model), in order.
    pub key: String,
}

/// The key of one line of `scored.jsonl`: what its embedding depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct RowKey {
    /// Comment id.
    pub id: String,
    /// Hash of the (masked) text.
    #[serde(default)]
    pub text_hash: String,
    /// Model version that scored it.
    #[serde(default)]
    pub model: String,
}

/// Hashes row keys in order (SHA-256 over `id \t text_hash \t model \n`).
#[derive(Default)]
pub struct KeyHasher {
    h: Sha256,
    rows: u64,
}

impl KeyHasher {
    /// Adds the next row.
    pub fn add(&mut self, id: &str, text_hash: &str, model: &str) {
        for part in [id, "\t", text_hash, "\t", model, "\n"] {
            self.h.update(part.as_bytes());
        }
        self.rows += 1;
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The hash, hex.
    pub fn finish(self) -> String {
        self.h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The key hash of `rows`, as [`EmbeddingsMeta::key`] records it.
pub fn rows_key(rows: &[RowKey]) -> String {
    let mut h = KeyHasher::default();
    for r in rows {
        h.add(&r.id, &r.text_hash, &r.model);
    }
    h.finish()
}

/// Where [`load_aligned`] found the embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `embeddings.f32`, its record matching `scored.jsonl`.
    Compacted,
    /// `embeddings.f32` was absent or did not match (`stale` says which): rows were taken from
    /// the checkpoint parts; `missing` rows are in no part (the caller encodes them).
    Parts {
        /// True when `embeddings.f32` existed but did not line up with `scored.jsonl`.
        stale: bool,
        /// Rows found in the parts.
        found: usize,
        /// Rows not found.
        missing: usize,
    },
}

fn read_rows(path: &Path, dim: usize, expect: usize) -> Result<Option<Vec<Vec<f32>>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if dim == 0 || len != (expect * dim * 4) as u64 {
        return Ok(None);
    }
    // Row by row: the file's bytes are never held beside the rows made from them.
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut row = vec![0u8; dim * 4];
    let mut out = Vec::with_capacity(expect);
    for _ in 0..expect {
        r.read_exact(&mut row).map_err(|e| Error::io(path, e))?;
        out.push(
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Ok(Some(out))
}

/// The embeddings of `rows` (the lines of the run's `scored.jsonl`, in order) with width `dim`:
/// `embeddings.f32` when `embeddings.json` shows it was written with these very rows, else
/// each row from the committed checkpoint part that scored the same id, text and model (`None`
/// where no part has it). Reads only; takes no lock.
pub fn load_aligned(
    dir: &Path,
    rows: &[RowKey],
    dim: usize,
) -> Result<(Vec<Option<Vec<f32>>>, Found)> {
    let data = dir.join(DATA_FILE);
    let meta: Option<EmbeddingsMeta> = std::fs::read_to_string(dir.join(META_FILE))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let exists = data.exists();
    if let Some(m) = &meta {
        if m.dim == dim && m.rows == rows.len() as u64 && m.key == rows_key(rows) {
            if let Some(v) = read_rows(&data, dim, rows.len())? {
                return Ok((v.into_iter().map(Some).collect(), Found::Compacted));
            }
        }
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; rows.len()];
    let at: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let manifest = read_manifest(dir)?;
    for part in manifest.parts.iter().filter(|p| p.embeddings) {
        let jp = part_path(dir, part.id, "jsonl");
        let ep = part_path(dir, part.id, "f32");
        let (Ok(jf), Ok(ef)) = (File::open(&jp), File::open(&ep)) else {
            continue;
        };
        let len = ef.metadata().map_err(|e| Error::io(&ep, e))?.len();
        if len != part.scored * dim as u64 * 4 {
            continue; // written with another width
        }
        let mut er = BufReader::new(ef);
        let mut row = vec![0u8; dim * 4];
        for line in BufReader::new(jf).lines() {
            let line = line.map_err(|e| Error::io(&jp, e))?;
            er.read_exact(&mut row).map_err(|e| Error::io(&ep, e))?;
            let Ok(s) = serde_json::from_str::<StateLine>(&line) else {
                continue;
            };
            if let Some(&i) = at.get(s.id.as_str()) {
                if rows[i].text_hash == s.text_hash && rows[i].model == s.model {
                    out[i] = Some(
                        row.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    );
                }
            }
        }
    }
    let found = out.iter().filter(|r| r.is_some()).count();
    Ok((
        out,
        Found::Parts {
            stale: exists,
            found,
            missing: rows.len() - found,
        },
    ))
}
