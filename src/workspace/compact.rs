//! Compaction: the committed parts into `scored.jsonl`, `rejects.jsonl` and the row-aligned
//! `embeddings.f32` (+ `embeddings.json`), with the workspace's totals.

use super::RunDir;
use super::{
    embeddings, part_path, pause_point, remove_if_present, sync_dir, tmp_of, write_atomic,
    StateLine, Workspace,
};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};

/// What a compaction wrote: counts over the whole workspace, whatever this run scored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compacted {
    /// Comments in `scored.jsonl`.
    pub scored: u64,
    /// Distinct rejects in `rejects.jsonl`.
    pub rejected: u64,
    /// Per task, comments of `scored.jsonl` per label.
    pub labels: BTreeMap<String, BTreeMap<String, u64>>,
    /// Comments of `scored.jsonl` per detected language.
    pub languages: BTreeMap<String, u64>,
    /// Width of the embeddings written to `embeddings.f32` (None: no such file).
    pub embedding_dim: Option<usize>,
}

/// Adds one scored line's language and task labels to the totals (a task is any top-level
/// object with a string `label`).
fn count_line(v: &serde_json::Value, c: &mut Compacted) {
    let Some(m) = v.as_object() else {
        return;
    };
    if let Some(l) = m.get("lang").and_then(|v| v.as_str()) {
        *c.languages.entry(l.to_string()).or_default() += 1;
    }
    for (task, v) in m {
        if let Some(label) = v.get("label").and_then(|l| l.as_str()) {
            *c.labels
                .entry(task.clone())
                .or_default()
                .entry(label.to_string())
                .or_default() += 1;
        }
    }
}

impl Workspace {
    /// Writes `scored.jsonl` (the latest line of every comment, in the order of their latest
    /// scoring), `rejects.jsonl` (each distinct reject once) and, when every part has them,
    /// `embeddings.f32` row-aligned with `scored.jsonl` and `embeddings.json` recording which
    /// rows it holds (see [`embeddings`]); a stale `embeddings.f32` is removed when the parts do
    /// not all have embeddings. Returns the counts over the whole workspace.
    pub fn compact(&self, dim: Option<usize>) -> Result<Compacted> {
        // latest occurrence of each id: (part index, line index)
        let mut c = Compacted::default();
        let mut latest: HashMap<String, (usize, usize)> = HashMap::new();
        let mut lines_of: Vec<Vec<String>> = Vec::new();
        for (pi, part) in self.manifest.parts.iter().enumerate() {
            let p = part_path(&self.dir, part.id, "jsonl");
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            let mut ids = Vec::new();
            for (li, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| Error::io(&p, e))?;
                let s: StateLine =
                    serde_json::from_str(&line).map_err(|e| Error::input(&p, e.to_string()))?;
                latest.insert(s.id.clone(), (pi, li));
                ids.push(s.id);
            }
            lines_of.push(ids);
        }
        // every part must hold one row of this width per line, else no embeddings.f32
        let dim = dim.filter(|&d| {
            self.manifest.parts.iter().all(|p| {
                p.embeddings
                    && std::fs::metadata(part_path(&self.dir, p.id, "f32"))
                        .is_ok_and(|m| m.len() == p.scored * d as u64 * 4)
            })
        });
        c.embedding_dim = dim;
        let out = RunDir::new(&self.dir).scored();
        let tmp = tmp_of(&out);
        let mut w = BufWriter::new(File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        let emb_out = self.dir.join(embeddings::DATA_FILE);
        let meta_out = self.dir.join(embeddings::META_FILE);
        let emb_tmp = tmp_of(&emb_out);
        let mut ew = match dim {
            Some(_) => Some(BufWriter::new(
                File::create(&emb_tmp).map_err(|e| Error::io(&emb_tmp, e))?,
            )),
            None => None,
        };
        let mut key = embeddings::KeyHasher::default();
        for (pi, part) in self.manifest.parts.iter().enumerate() {
            let p = part_path(&self.dir, part.id, "jsonl");
            let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
            let mut er = match dim {
                Some(_) => {
                    let ep = part_path(&self.dir, part.id, "f32");
                    Some(BufReader::new(
                        File::open(&ep).map_err(|e| Error::io(&ep, e))?,
                    ))
                }
                None => None,
            };
            let mut row = vec![0u8; dim.unwrap_or(0) * 4];
            for (li, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| Error::io(&p, e))?;
                if let Some(r) = er.as_mut() {
                    r.read_exact(&mut row).map_err(|e| Error::io(&p, e))?;
                }
                if latest.get(&lines_of[pi][li]) != Some(&(pi, li)) {
                    continue;
                }
                w.write_all(line.as_bytes())
                    .map_err(|e| Error::io(&tmp, e))?;
                w.write_all(b"\n").map_err(|e| Error::io(&tmp, e))?;
                if let Some(ew) = ew.as_mut() {
                    ew.write_all(&row).map_err(|e| Error::io(&emb_tmp, e))?;
                }
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| Error::input(&p, e.to_string()))?;
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
                key.add(field("id"), field("text_hash"), field("model"));
                count_line(&v, &mut c);
            }
        }
        c.scored = key.rows();
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
        pause_point("compact:scored-renamed");
        match (ew, dim) {
            (Some(ew), Some(dim)) => {
                let f = ew
                    .into_inner()
                    .map_err(|e| Error::io(&emb_tmp, e.into_error()))?;
                f.sync_all().map_err(|e| Error::io(&emb_tmp, e))?;
                std::fs::rename(&emb_tmp, &emb_out).map_err(|e| Error::io(&emb_out, e))?;
                let meta = embeddings::EmbeddingsMeta {
                    version: 1,
                    dim,
                    rows: c.scored,
                    key: key.finish(),
                };
                write_atomic(&meta_out, &serde_json::to_vec_pretty(&meta)?)?;
            }
            _ => {
                // embeddings from an earlier compaction no longer describe scored.jsonl
                remove_if_present(&meta_out)?;
                remove_if_present(&emb_out)?;
            }
        }
        // rejects: each distinct one once, in order
        let mut seen = HashSet::new();
        let mut rej = Vec::new();
        for part in &self.manifest.parts {
            let p = part_path(&self.dir, part.id, "rejects.jsonl");
            let s = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            for line in s.lines() {
                if seen.insert(line.to_string()) {
                    rej.extend_from_slice(line.as_bytes());
                    rej.push(b'\n');
                }
            }
        }
        write_atomic(&RunDir::new(&self.dir).rejects(), &rej)?;
        sync_dir(&self.dir)?;
        c.rejected = seen.len() as u64;
        Ok(c)
    }
}
