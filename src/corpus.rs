//! Labelled corpora for training and evaluation, and an on-disk cache of their embeddings so
//! that retraining a head takes seconds.

use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::text::normalise::{normalise, NormaliseConfig};
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
///
/// In JSONL, `label_field` may be `FIELD.SUB`: the label is the `SUB` value that every object
/// of the array `FIELD` shares (a SemEval sentence whose aspects all have one polarity,
/// `aspects.polarity`); rows whose objects disagree, or that have none, are skipped.
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
        if let Some((field, sub)) = label_field.split_once('.') {
            match shared_value(&v, field, sub) {
                Some(label) => {
                    out.ids.push(row_id(&v, &src, i));
                    out.texts.push(text.to_string());
                    out.label_sets.push(vec![label.clone()]);
                    out.labels.push(label);
                    out.sources.push(src.clone());
                }
                None => skipped += 1,
            }
            continue;
        }
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
        out.ids.push(row_id(&v, &src, i));
        out.texts.push(text.to_string());
        out.labels.push(label);
        out.label_sets.push(set);
        out.sources.push(src.clone());
    }
    Ok((out, skipped))
}

/// A row's `id`, or `FILE:LINE` (line `i + 1`).
fn row_id(v: &serde_json::Value, src: &str, i: usize) -> String {
    v.get("id")
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x.to_string())
        })
        .unwrap_or_else(|| format!("{}:{}", src, i + 1))
}

/// The string value of `sub` shared by every object of the array `field` of `v`; `None` when
/// the array is missing or empty, or its objects disagree or lack `sub`.
fn shared_value(v: &serde_json::Value, field: &str, sub: &str) -> Option<String> {
    let items = v.get(field)?.as_array()?;
    let mut values = items.iter().map(|o| o.get(sub).and_then(|x| x.as_str()));
    let first = values.next()??;
    values.all(|x| x == Some(first)).then(|| first.to_string())
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

/// A label mapping applied to training data as it is read (`vocmine train --relabel FROM=TO`):
/// it merges fine labels into coarse ones (an intent corpus's questions and requests into
/// `neutral`, star ratings into sentiment), drops a label's rows (`FROM=-`), and `*=TO` maps
/// every label that is neither named nor in the head's label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relabel {
    /// (from, to); `None` drops the rows.
    pairs: Vec<(String, Option<String>)>,
    /// What `*` maps to, when given (`Some(None)` drops).
    other: Option<Option<String>>,
}

impl Relabel {
    /// Parses `FROM=TO` items (`TO` = `-` drops the rows; `FROM` = `*` stands for every label
    /// that is neither named nor kept).
    pub fn parse(items: &[String]) -> Result<Relabel> {
        let mut r = Relabel::default();
        for item in items {
            let bad = |why: &str| {
                Error::Invalid(format!(
                    "--relabel {item:?}: {why} (expected FROM=TO; TO may be - to drop the rows, FROM may be * for every other label)"
                ))
            };
            let (from, to) = item.split_once('=').ok_or_else(|| bad("no '='"))?;
            let (from, to) = (from.trim(), to.trim());
            if from.is_empty() || to.is_empty() {
                return Err(bad("empty label"));
            }
            let to = (to != "-").then(|| to.to_string());
            if from == "*" {
                if r.other.is_some() {
                    return Err(bad("'*' is given twice"));
                }
                r.other = Some(to);
            } else if r.pairs.iter().any(|(f, _)| f == from) {
                return Err(bad("this label is mapped twice"));
            } else {
                r.pairs.push((from.to_string(), to));
            }
        }
        Ok(r)
    }

    /// True when the mapping changes nothing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.other.is_none()
    }

    /// The new label of `label` (`None`: drop it); labels in `keep` are left alone unless named.
    fn map(&self, label: &str, keep: &[String]) -> Option<String> {
        if let Some((_, to)) = self.pairs.iter().find(|(f, _)| f == label) {
            return to.clone();
        }
        match &self.other {
            Some(to) if !keep.iter().any(|k| k == label) => to.clone(),
            _ => Some(label.to_string()),
        }
    }

    /// Applies the mapping to every row of `set`. Returns the new set (file order kept), the
    /// number of rows whose label changed and the number dropped (a multi-label row is dropped
    /// when none of its labels is left).
    pub fn apply(&self, set: Labelled, keep: &[String]) -> (Labelled, usize, usize) {
        if self.is_empty() {
            return (set, 0, 0);
        }
        let mut kept = Vec::with_capacity(set.len());
        let mut sets = Vec::with_capacity(set.len());
        for (i, old) in set.label_sets.iter().enumerate() {
            let mut ls: Vec<String> = old.iter().filter_map(|l| self.map(l, keep)).collect();
            ls.sort();
            ls.dedup();
            if !ls.is_empty() {
                kept.push(i);
                sets.push(ls);
            }
        }
        let changed = kept
            .iter()
            .zip(&sets)
            .filter(|(&i, ls)| **ls != set.label_sets[i])
            .count();
        let dropped = set.len() - kept.len();
        let mut out = set.pick(&kept);
        out.labels = sets.iter().map(|ls| ls.join("|")).collect();
        out.label_sets = sets;
        (out, changed, dropped)
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

    /// Embeddings of a labelled set, file by file (each source file's rows are cached on
    /// their own, so adding a file to a training set reuses the others' embeddings), with
    /// `progress(rows_done)`.
    pub fn embed_set(
        &self,
        encoder: &Encoder,
        fingerprint: &str,
        set: &Labelled,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(set.len());
        let mut start = 0;
        while start < set.len() {
            let end = (start..set.len())
                .find(|&i| set.sources[i] != set.sources[start])
                .unwrap_or(set.len());
            let done = out.len();
            let v = self.embed(encoder, fingerprint, &set.texts[start..end], |d, _| {
                progress(done + d)
            })?;
            out.extend(v);
            start = end;
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
    fn a_dotted_label_field_takes_the_value_every_element_shares() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absa.jsonl");
        let rows = [
            r#"{"id": "one", "text": "staff was rude", "aspects": [{"term": "staff", "polarity": "negative"}]}"#,
            r#"{"id": "agree", "text": "food and wine great", "aspects": [{"polarity": "positive"}, {"polarity": "positive"}]}"#,
            r#"{"id": "mixed", "text": "good food, slow staff", "aspects": [{"polarity": "positive"}, {"polarity": "negative"}]}"#,
            r#"{"id": "none", "text": "we went on a Sunday", "aspects": []}"#,
            r#"{"id": "lacks", "text": "x", "aspects": [{"term": "x"}]}"#,
            r#"{"text": "no id", "aspects": [{"polarity": "neutral"}]}"#,
        ];
        std::fs::write(&p, rows.join("\n")).unwrap();
        let (l, skipped) = read_labelled(&p, "text", "aspects.polarity").unwrap();
        assert_eq!(skipped, 3, "mixed, empty and lacking rows are skipped");
        assert!(!l.multi);
        assert_eq!(l.labels, ["negative", "positive", "neutral"]);
        assert_eq!(&l.ids[..2], ["one", "agree"]);
        assert!(l.ids[2].ends_with("absa.jsonl:6"), "{}", l.ids[2]);
    }

    #[test]
    fn relabel_maps_drops_and_keeps() {
        let l = set(); // labels a, b, c in turn, 10 rows each
        let keep = ["a".to_string()];
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = Relabel::parse(&items(&["b=-", "*=z"])).unwrap();
        let (m, changed, dropped) = r.apply(l.clone(), &keep);
        assert_eq!((m.len(), changed, dropped), (20, 10, 10));
        // a is kept (in the label set), b dropped, c mapped by '*'; order and ids kept
        assert_eq!(&m.labels[..4], ["a", "z", "a", "z"]);
        assert_eq!(&m.ids[..4], ["r0", "r2", "r3", "r5"]);
        assert_eq!(m.label_sets[1], vec!["z".to_string()]);
        // a named label wins over the label set; without '*' other labels stay
        let r = Relabel::parse(&items(&["a=c"])).unwrap();
        let (m, changed, dropped) = r.apply(l.clone(), &keep);
        assert_eq!((m.len(), changed, dropped), (30, 10, 0));
        assert_eq!(m.labels.iter().filter(|x| *x == "c").count(), 20);
        // an empty mapping is the identity
        let (m, changed, dropped) = Relabel::default().apply(l.clone(), &keep);
        assert_eq!((m.labels, changed, dropped), (l.labels, 0, 0));
        for bad in ["nolabel", "=x", "a=", "a=b,a=c"] {
            let err = Relabel::parse(&items(&bad.split(',').collect::<Vec<_>>())).unwrap_err();
            assert!(err.to_string().contains("--relabel"), "{bad}: {err}");
        }
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
