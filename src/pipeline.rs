//! Scoring runs: stream the inputs in chunks through normalise -> segment -> encode ->
//! classify and write `scored.jsonl`, `rejects.jsonl` and `summary.json` into the run folder.
//!
//! Memory stays bounded by the chunk size whatever the input size. Outputs are written to
//! `*.partial` files and renamed at the end, so a finished-looking file is a finished one.

use crate::classify::Head;
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::ingest::{IngestConfig, Item, Reader};
use crate::normalise::{normalise, NormaliseConfig};
use crate::record::{Comment, Reject, Scored};
use crate::segment::Segmenter;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of one scoring run.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// Input files, read in this order.
    pub inputs: Vec<PathBuf>,
    /// Run folder for the outputs.
    pub out_dir: PathBuf,
    /// How to read the inputs.
    pub ingest: IngestConfig,
    /// Normalisation (PII masking).
    pub normalise: NormaliseConfig,
    /// Comments per chunk (the unit of streaming).
    pub chunk_size: usize,
    /// Write the segmented tokens into each output line.
    pub keep_tokens: bool,
    /// Write `embeddings.f32` (row i = line i of scored.jsonl, little-endian f32).
    pub save_embeddings: bool,
}

/// What a run did, written as `summary.json` and printed at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Input files.
    pub files: Vec<String>,
    /// Records read (scored + rejected).
    pub records: u64,
    /// Comments scored.
    pub scored: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Encoder tokens read (after truncation, special tokens included).
    pub tokens: u64,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// Seconds spent in the encoder.
    pub encode_seconds: f64,
    /// Scored comments per second of wall time.
    pub texts_per_second: f64,
    /// Comments per detected language.
    pub languages: BTreeMap<String, u64>,
    /// Per task, comments per predicted label.
    pub labels: BTreeMap<String, BTreeMap<String, u64>>,
    /// Comments in which personal data was masked.
    pub masked_comments: u64,
    /// Embedding width when embeddings were saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<usize>,
}

struct Outputs {
    scored: BufWriter<File>,
    rejects: BufWriter<File>,
    embeddings: Option<BufWriter<File>>,
    dir: PathBuf,
}

const FILES: [&str; 3] = ["scored.jsonl", "rejects.jsonl", "embeddings.f32"];

fn partial(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.partial"))
}

impl Outputs {
    fn create(dir: &Path, embeddings: bool) -> Result<Outputs> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let open = |name: &str| -> Result<BufWriter<File>> {
            let p = partial(dir, name);
            Ok(BufWriter::with_capacity(
                1 << 20,
                File::create(&p).map_err(|e| Error::io(&p, e))?,
            ))
        };
        Ok(Outputs {
            scored: open(FILES[0])?,
            rejects: open(FILES[1])?,
            embeddings: if embeddings {
                Some(open(FILES[2])?)
            } else {
                None
            },
            dir: dir.to_path_buf(),
        })
    }

    fn reject(&mut self, r: &Reject) -> Result<()> {
        let p = partial(&self.dir, FILES[1]);
        serde_json::to_writer(&mut self.rejects, r)?;
        self.rejects.write_all(b"\n").map_err(|e| Error::io(&p, e))
    }

    fn finish(self) -> Result<()> {
        let mut ws = vec![(FILES[0], self.scored), (FILES[1], self.rejects)];
        if let Some(e) = self.embeddings {
            ws.push((FILES[2], e));
        }
        for (name, w) in ws {
            let p = partial(&self.dir, name);
            let f = w.into_inner().map_err(|e| Error::io(&p, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io(&p, e))?;
            std::fs::rename(&p, self.dir.join(name)).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }
}

/// Scores every input into `cfg.out_dir`. `progress(records_done)` is called after each chunk.
pub fn score(
    cfg: &ScoreConfig,
    encoder: &Encoder,
    heads: &[Head],
    segmenter: &Segmenter,
    mut progress: impl FnMut(u64),
) -> Result<Summary> {
    let t0 = Instant::now();
    let mut out = Outputs::create(&cfg.out_dir, cfg.save_embeddings)?;
    let mut sum = Summary {
        embedding_dim: cfg.save_embeddings.then(|| encoder.dim()),
        ..Summary::default()
    };
    for input in &cfg.inputs {
        sum.files.push(input.display().to_string());
        let reader = Reader::open(input, &cfg.ingest)?;
        let mut chunk: Vec<Comment> = Vec::with_capacity(cfg.chunk_size);
        for item in reader {
            sum.records += 1;
            match item? {
                Item::Comment(c) => chunk.push(c),
                Item::Reject(r) => {
                    sum.rejected += 1;
                    out.reject(&r)?;
                }
            }
            if chunk.len() >= cfg.chunk_size.max(1) {
                score_chunk(
                    cfg,
                    encoder,
                    heads,
                    segmenter,
                    std::mem::take(&mut chunk),
                    &mut out,
                    &mut sum,
                )?;
                progress(sum.records);
            }
        }
        score_chunk(cfg, encoder, heads, segmenter, chunk, &mut out, &mut sum)?;
        progress(sum.records);
    }
    out.finish()?;
    sum.seconds = t0.elapsed().as_secs_f64();
    sum.texts_per_second = sum.scored as f64 / sum.seconds.max(1e-9);
    let sp = cfg.out_dir.join("summary.json");
    std::fs::write(&sp, serde_json::to_string_pretty(&sum)? + "\n")
        .map_err(|e| Error::io(&sp, e))?;
    Ok(sum)
}

fn score_chunk(
    cfg: &ScoreConfig,
    encoder: &Encoder,
    heads: &[Head],
    segmenter: &Segmenter,
    chunk: Vec<Comment>,
    out: &mut Outputs,
    sum: &mut Summary,
) -> Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let normed: Vec<_> = encoder.pool().install(|| {
        chunk
            .par_iter()
            .map(|c| {
                let n = normalise(&c.text, cfg.normalise);
                let toks = if cfg.keep_tokens {
                    Some(segmenter.tokens(&n))
                } else {
                    None
                };
                (n, toks)
            })
            .collect()
    });
    let mut keep = Vec::with_capacity(chunk.len());
    for (c, (n, toks)) in chunk.into_iter().zip(normed) {
        if n.text.is_empty() {
            sum.rejected += 1;
            out.reject(&Reject {
                id: Some(c.id),
                file: c.source.file,
                line: c.source.line,
                field: Some("text".into()),
                reason:
                    "empty text (nothing left after removing whitespace and control characters)"
                        .into(),
            })?;
        } else {
            keep.push((c, n, toks));
        }
    }
    if keep.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = keep.iter().map(|(_, n, _)| n.text.as_str()).collect();
    let te = Instant::now();
    let (embs, lens) = encoder.encode(&texts)?;
    sum.encode_seconds += te.elapsed().as_secs_f64();
    let probs: Vec<Vec<Vec<f32>>> = heads
        .iter()
        .map(|h| h.predict(&embs))
        .collect::<Result<_>>()?;
    let sp = partial(&out.dir, FILES[0]);
    for (i, (c, n, toks)) in keep.into_iter().enumerate() {
        let mut tasks = BTreeMap::new();
        for (h, p) in heads.iter().zip(&probs) {
            let r = h.result(&p[i]);
            *sum.labels
                .entry(h.meta.task.clone())
                .or_default()
                .entry(r.label.clone())
                .or_default() += 1;
            tasks.insert(h.meta.task.clone(), r);
        }
        *sum.languages
            .entry(n.lang.as_str().to_string())
            .or_default() += 1;
        sum.masked_comments += u64::from(!n.masked.is_empty());
        sum.tokens += lens[i] as u64;
        sum.scored += 1;
        let line = Scored {
            id: c.id,
            text: n.display,
            lang: n.lang.as_str().to_string(),
            time: c.time,
            channel: c.channel,
            rating: c.rating,
            tier: c.tier,
            product: c.product,
            masked: n.masked,
            tokens: toks,
            n_tokens: lens[i],
            tasks,
        };
        serde_json::to_writer(&mut out.scored, &line)?;
        out.scored.write_all(b"\n").map_err(|e| Error::io(&sp, e))?;
        if let Some(w) = out.embeddings.as_mut() {
            let ep = partial(&out.dir, FILES[2]);
            for x in &embs[i] {
                w.write_all(&x.to_le_bytes())
                    .map_err(|e| Error::io(&ep, e))?;
            }
        }
    }
    Ok(())
}
