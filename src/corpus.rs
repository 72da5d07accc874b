//! Labelled corpora for training and evaluation, and an on-disk cache of their embeddings so
//! that retraining a head takes seconds.

use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::normalise::{normalise, NormaliseConfig};
use crate::rng::Rng;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Texts with one label each, in file order.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    /// Ids as in the file.
    pub ids: Vec<String>,
    /// Texts as in the file.
    pub texts: Vec<String>,
    /// Gold labels (multi-label rows: the set joined with `|`).
    pub labels: Vec<String>,
    /// Gold label sets: one label each for single-label data; the set for multi-label data
    /// (a label field holding an array).
    pub label_sets: Vec<Vec<String>>,
    /// True when the label field held arrays (multi-label data).
    pub multi: bool,
    /// Where each row came from (file name), for per-corpus reports.
    pub sources: Vec<String>,
}

impl Labelled {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Appends another set.
    pub fn extend(&mut self, other: Labelled) {
        self.ids.extend(other.ids);
        self.texts.extend(other.texts);
        self.labels.extend(other.labels);
        self.label_sets.extend(other.label_sets);
        self.multi |= other.multi;
        self.sources.extend(other.sources);
    }

    /// Splits off a held-out share (`fraction` of the examples, chosen with `seed`): returns
    /// (rest, held out), both in file order.
    pub fn split(self, fraction: f64, seed: u64) -> (Labelled, Labelled) {
        let n_out = ((self.len() as f64 * fraction).round() as usize)
            .clamp(1, self.len().saturating_sub(1).max(1));
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed ^ 0x5eed).shuffle(&mut idx);
        let mut out_idx = idx[..n_out].to_vec();
        let mut in_idx = idx[n_out..].to_vec();
        out_idx.sort_unstable();
        in_idx.sort_unstable();
        (self.pick(&in_idx), self.pick(&out_idx))
    }

    fn pick(&self, keep: &[usize]) -> Labelled {
        let pick = |v: &Vec<String>| keep.iter().map(|&i| v[i].clone()).collect();
        Labelled {
            ids: pick(&self.ids),
            texts: pick(&self.texts),
            labels: pick(&self.labels),
            label_sets: keep.iter().map(|&i| self.label_sets[i].clone()).collect(),
            multi: self.multi,
            sources: pick(&self.sources),
        }
    }

    /// Keeps at most `k` examples of each label, chosen with `seed` (order preserved).
    pub fn per_label_sample(&self, k: usize, seed: u64) -> Labelled {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut idx);
        let mut taken: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut keep: Vec<usize> = idx
            .into_iter()
            .filter(|&i| {
                let c = taken.entry(self.labels[i].as_str()).or_insert(0);
                *c += 1;
                *c <= k
            })
            .collect();
        keep.sort_unstable();
        self.pick(&keep)
    }

    /// Keeps at most `n` examples, chosen with `seed` (order preserved).
    pub fn sample(self, n: usize, seed: u64) -> Labelled {
        if self.len() <= n {
            return self;
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut idx);
        let mut keep = idx[..n].to_vec();
        keep.sort_unstable();
        self.pick(&keep)
    }
}

/// Reads a labelled JSONL (or CSV) file: `text_field` and `label_field` on every row. Rows
/// without a label (e.g. the complaint `reason` of a non-negative tweet) are skipped and
/// counted; any other bad row is an error naming file and line.
pub fn read_labelled(
    path: &Path,
    text_field: &str,
    label_field: &str,
) -> Result<(Labelled, usize)> {
    let mut out = Labelled::default();
    let mut skipped = 0;
    let src = path.display().to_string();
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("tsv"));
    if is_csv {
        let delim = if src.ends_with(".tsv") { b'\t' } else { b',' };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delim)
            .from_path(path)
            .map_err(|e| Error::input(path, e.to_string()))?;
        let headers = rdr
            .headers()
            .map_err(|e| Error::input(path, e.to_string()))?
            .clone();
        let col = |name: &str, flag: &str| {
            headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
                .ok_or_else(|| {
                    Error::input(
                        path,
                        format!("no column {name:?} in the header; name it with {flag}"),
                    )
                })
        };
        let (ti, li) = (
            col(text_field, "--text-col")?,
            col(label_field, "--label-field")?,
        );
        let ii = headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == "id");
        for rec in rdr.records() {
            let rec = rec.map_err(|e| Error::input(path, e.to_string()))?;
            let line = rec.position().map_or(0, |p| p.line());
            let label = rec.get(li).unwrap_or("").trim().to_string();
            if label.is_empty() {
                skipped += 1;
                continue;
            }
            let text = rec.get(ti).ok_or_else(|| {
                Error::input(path, format!("line {line}: field {text_field:?} missing"))
            })?;
            out.ids.push(
                ii.and_then(|i| rec.get(i))
                    .map_or_else(|| format!("{src}:{line}"), str::to_string),
            );
            out.texts.push(text.to_string());
            out.label_sets.push(vec![label.clone()]);
            out.labels.push(label);
            out.sources.push(src.clone());
        }
        return Ok((out, skipped));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::input(path, format!("line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Error::input(path, format!("line {}: invalid JSON: {e}", i + 1)))?;
        let text = v.get(text_field).and_then(|t| t.as_str()).ok_or_else(|| {
            Error::input(
                path,
                format!(
                    "line {}: field {text_field:?} missing or not a string",
                    i + 1
                ),
            )
        })?;
        let set = match v.get(label_field) {
            None | Some(serde_json::Value::Null) => {
                skipped += 1;
                continue;
            }
            Some(serde_json::Value::Array(items)) => {
                out.multi = true;
                let mut set: Vec<String> = items.iter().filter_map(label_of).collect();
                set.sort();
                set.dedup();
                set
            }
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(other) => vec![other.to_string()],
        };
        let label = set.join("|");
        let id = v
            .get("id")
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_else(|| format!("{}:{}", src, i + 1));
        out.ids.push(id);
        out.texts.push(text.to_string());
        out.labels.push(label);
        out.label_sets.push(set);
        out.sources.push(src.clone());
    }
    Ok((out, skipped))
}

/// The label of one element of a label array: a string, or an object's `aspect`, `category`
/// or `label` field (ccf2018 aspects, SemEval categories).
fn label_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => ["aspect", "category", "label"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|x| x.as_str()).map(str::to_string)),
        _ => None,
    }
}

/// Caches embeddings of text lists on disk, keyed by the encoder fingerprint and the texts.
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddingCache { dir: dir.into() }
    }

    /// The default place: `$VOCMINE_CACHE`, else `.cache/vocmine` under the current folder.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("VOCMINE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".cache/vocmine"))
    }

    fn key(fingerprint: &str, texts: &[String]) -> String {
        let mut h = Sha256::new();
        h.update(fingerprint.as_bytes());
        for t in texts {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Embeddings of `texts` as the scoring pipeline sees them (normalised, PII-masked),
    /// from the cache or computed in chunks with `progress(done, total)` and stored.
    pub fn embed(
        &self,
        encoder: &Encoder,
        fingerprint: &str,
        texts: &[String],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<f32>>> {
        let dim = encoder.dim();
        let path = self
            .dir
            .join(format!("{}.f32", Self::key(fingerprint, texts)));
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.len() == texts.len() * dim * 4 {
                progress(texts.len(), texts.len());
                return Ok(bytes
                    .chunks_exact(dim * 4)
                    .map(|row| {
                        row.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect()
                    })
                    .collect());
            }
        }
        let norm: Vec<String> = texts
            .iter()
            .map(|t| normalise(t, NormaliseConfig::default()).text)
            .collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in norm.chunks(2048) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            out.extend(encoder.encode(&refs)?.0);
            progress(out.len(), texts.len());
        }
        // Caching is best-effort: a read-only place must not fail the run.
        if let Err(e) = self.store(&path, &out) {
            eprintln!("note: embedding cache not written ({e})");
        }
        Ok(out)
    }

    /// Stores embeddings computed elsewhere for `texts` under `fingerprint`.
    pub fn put(&self, fingerprint: &str, texts: &[String], rows: &[Vec<f32>]) -> Result<()> {
        if texts.len() != rows.len() {
            return Err(Error::Invalid("put: one embedding per text".into()));
        }
        let path = self
            .dir
            .join(format!("{}.f32", Self::key(fingerprint, texts)));
        self.store(&path, rows)
    }

    fn store(&self, path: &Path, rows: &[Vec<f32>]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        // a unique temporary name: concurrent writers of one key must not interleave
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        for row in rows {
            for x in row {
                f.write_all(&x.to_le_bytes())
                    .map_err(|e| Error::io(&tmp, e))?;
            }
        }
        f.flush().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Labelled {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let mut body = String::new();
        for i in 0..30 {
            let l = ["a", "b", "c"][i % 3];
            body += &format!("{{\"id\": \"r{i}\", \"text\": \"t{i}\", \"label\": \"{l}\"}}\n");
        }
        body += "{\"id\": \"m\", \"text\": \"multi\", \"aspects\": [{\"aspect\": \"动力\"}, {\"aspect\": \"价格\"}]}\n";
        body += "{\"id\": \"n\", \"text\": \"no label\"}\n";
        std::fs::write(&p, body).unwrap();
        let (l, skipped) = read_labelled(&p, "text", "label").unwrap();
        assert_eq!((l.len(), skipped), (30, 2));
        let (m, skipped) = read_labelled(&p, "text", "aspects").unwrap();
        assert_eq!((m.len(), skipped), (1, 31));
        assert!(m.multi);
        assert_eq!(
            m.label_sets[0],
            vec!["价格".to_string(), "动力".to_string()]
        );
        l
    }

    #[test]
    fn seeded_splits_and_samples() {
        let l = set();
        let (rest, dev) = l.clone().split(0.2, 7);
        assert_eq!((rest.len(), dev.len()), (24, 6));
        let (_, dev2) = l.clone().split(0.2, 7);
        assert_eq!(dev.ids, dev2.ids, "same seed, same split");
        assert!(dev.ids.iter().all(|i| !rest.ids.contains(i)));
        let k = l.per_label_sample(2, 1);
        assert_eq!(k.len(), 6);
        for lab in ["a", "b", "c"] {
            assert_eq!(k.labels.iter().filter(|x| *x == lab).count(), 2);
        }
        assert_eq!(l.clone().sample(5, 3).ids, l.sample(5, 3).ids);
    }
}
