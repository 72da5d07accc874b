//! `vocmine bench-search`: indexing throughput and query latency on labelled corpora, with a
//! linear scan over the same folded texts as the baseline in the same run.

use super::query::{search, SearchRequest};
use super::tokenizer::fold;
use super::{update, SearchIndex, UpdateOptions};
use crate::record::{Scored, TaskResult};
use crate::rng::Rng;
use crate::text::normalise::{normalise, NormaliseConfig};
use crate::{Error, Result};
use jieba_rs::{Jieba, KeywordExtract, TfIdf};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSearchConfig {
    /// Labelled JSONL corpora (text; label -> sentiment; reason -> pain point;
    /// category/airline -> product).
    pub data: Vec<PathBuf>,
    /// Queries to time.
    pub queries: usize,
    /// Index folder to build (cleared first) [default: a temporary folder, removed after].
    pub index: Option<PathBuf>,
    /// Seed of the query sample, the times and the tiers.
    pub seed: u64,
    /// Write the sampled queries here, one per line (for load generators).
    pub queries_out: Option<PathBuf>,
}

/// The measurements (field names are the JSON's).
#[derive(Debug, Clone, Serialize)]
pub struct BenchSearchReport {
    /// Comments indexed.
    pub docs: usize,
    /// Indexing.
    pub index: IndexTiming,
    /// Query latency through the index.
    pub queries: QueryTiming,
    /// The linear-scan baseline on the same queries.
    pub scan_baseline: ScanTiming,
    /// Megabytes of text indexed.
    pub text_mb: f64,
}

/// Indexing figures.
#[derive(Debug, Clone, Serialize)]
pub struct IndexTiming {
    /// Commits made.
    pub commits: u64,
    /// Comments indexed per second.
    pub docs_per_s: f64,
    /// Size of the index folder, MB.
    pub index_mb: f64,
    /// Indexing time.
    pub seconds: f64,
}

/// Query figures (one thread, after 50 warm-up queries).
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    /// Slowest query, ms.
    pub max_ms: f64,
    /// Mean matching comments per query.
    pub mean_hits: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Queries timed.
    pub n: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Queries per second on one thread.
    pub qps_one_thread: f64,
    /// What each query computes.
    pub with: String,
    /// Queries that matched nothing.
    pub zero_hit_queries: usize,
}

/// Linear-scan figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScanTiming {
    /// Mean matches per query.
    pub mean_hits: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// Median scan latency over median index latency.
    pub p50_ratio_scan_over_index: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// What the scan computes.
    pub what: String,
}

/// Turns one labelled corpus row into a scored record: the gold label stands in for the
/// sentiment head's answer (indexing cost does not depend on where the labels came from).
fn row_to_scored(v: &serde_json::Value, n: usize, corpus: &str, rng: &mut Rng) -> Option<Scored> {
    let text = v.get("text")?.as_str()?.to_string();
    let id = (v.get("id").and_then(|i| i.as_str()))
        .map_or_else(|| format!("{corpus}-{n}"), str::to_string);
    let norm = normalise(&text, NormaliseConfig { mask_pii: true });
    let gold = |label: &str, score: Option<f32>| TaskResult {
        label: label.to_string(),
        confidence: 1.0,
        probs: BTreeMap::from([(label.to_string(), 1.0)]),
        score,
        kind: None,
        labels: Vec::new(),
        alternatives: Vec::new(),
    };
    let mut tasks = BTreeMap::new();
    if let Some(label) = v.get("label").and_then(|l| l.as_str()) {
        let score = match label {
            "positive" => 1.0,
            "negative" => -1.0,
            _ => 0.0,
        };
        tasks.insert("sentiment".to_string(), gold(label, Some(score)));
    }
    if let Some(reason) = v.get("reason").and_then(|l| l.as_str()) {
        tasks.insert("pain_point".to_string(), gold(reason, None));
    }
    let product = ["category", "airline"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|c| c.as_str()).map(str::to_string));
    // Times spread over 90 days so that the date histogram has work to do.
    let secs = 1_767_225_600 + (rng.next_u64() % (90 * 86_400)) as i64;
    Some(Scored {
        id,
        text: norm.display.clone(),
        lang: norm.lang.as_str().to_string(),
        time: Some(format!("{}T00:00:00Z", crate::record::civil_date(secs))),
        channel: Some(corpus.to_string()),
        rating: None,
        tier: Some(if rng.below(10) == 0 { "vip" } else { "regular" }.to_string()),
        product,
        masked: norm.masked.clone(),
        tokens: None,
        n_tokens: 0,
        text_hash: String::new(),
        model: "gold".to_string(),
        aspects: None,
        tasks,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn english_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 4 && !crate::text::segment::is_stop_word(&w.to_lowercase()))
        .map(str::to_lowercase)
        .collect()
}

/// Reads the corpora into scored records (the folder holding each file names its channel).
fn read_corpora(paths: &[PathBuf], rng: &mut Rng) -> Result<Vec<Scored>> {
    let mut docs = Vec::new();
    for path in paths {
        let corpus = path.parent().and_then(|p| p.file_name()).map_or_else(
            || "corpus".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            let v: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| Error::input(path, format!("line {}: invalid JSON: {e}", i + 1)))?;
            match row_to_scored(&v, i, &corpus, rng) {
                Some(s) => docs.push(s),
                None => {
                    return Err(Error::input(
                        path,
                        format!("line {}: no \"text\" field", i + 1),
                    ))
                }
            }
        }
    }
    Ok(docs)
}

/// Queries: keywords of sampled comments (jieba TF-IDF for Chinese, content words for
/// English), one or two words; every third query also filters on sentiment.
fn sample_queries(docs: &[Scored], n: usize, rng: &mut Rng) -> Vec<SearchRequest> {
    let jieba = Jieba::new();
    let tfidf = TfIdf::default();
    let mut queries: Vec<SearchRequest> = Vec::new();
    let mut attempts = 0;
    while queries.len() < n && attempts < n * 20 && !docs.is_empty() {
        attempts += 1;
        let d = &docs[rng.below(docs.len())];
        let want = 1 + rng.below(2);
        let words: Vec<String> = if d.lang.starts_with("zh") {
            (tfidf
                .extract_keywords(&jieba, &fold(&d.text).text, 3, vec![])
                .into_iter())
            .map(|k| k.keyword)
            .filter(|k| k.chars().count() >= 2)
            .collect()
        } else {
            english_words(&d.text)
        };
        if words.is_empty() {
            continue;
        }
        let start = rng.below(words.len());
        let q: Vec<String> = (words.iter().cycle().skip(start))
            .take(want.min(words.len()))
            .cloned()
            .collect();
        let mut r = SearchRequest {
            query: q.join(" "),
            ..SearchRequest::default()
        };
        if queries.len() % 3 == 2 {
            r.add_tag("sentiment", "negative");
        }
        queries.push(r);
    }
    queries
}

/// The linear-scan baseline: substring match of every query word over the folded texts,
/// counting matches. Returns the sorted latencies (ms) and the total matches.
fn scan(docs: &[Scored], queries: &[SearchRequest]) -> (Vec<f64>, u64) {
    let folded: Vec<(String, bool)> = (docs.iter())
        .map(|d| {
            let neg = (d.tasks.get("sentiment")).is_some_and(|t| t.label == "negative");
            (fold(&d.text).text, neg)
        })
        .collect();
    let mut lat = Vec::with_capacity(queries.len());
    let mut hits = 0u64;
    for q in queries {
        let words: Vec<String> = q.query.split_whitespace().map(|w| fold(w).text).collect();
        let neg_only = q.tags.contains_key("sentiment");
        let t = Instant::now();
        let n = (folded.iter())
            .filter(|(text, neg)| {
                (!neg_only || *neg) && words.iter().all(|w| text.contains(w.as_str()))
            })
            .count();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        hits += n as u64;
    }
    lat.sort_by(f64::total_cmp);
    (lat, hits)
}

fn dir_mb(dir: &Path) -> Result<f64> {
    let bytes: u64 = (std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?)
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(bytes as f64 / 1e6)
}

/// Indexes the corpora, times `cfg.queries` sampled queries through the index and through a
/// linear scan. `note` receives a line saying what is indexed where.
pub fn bench_search(cfg: &BenchSearchConfig, note: impl FnOnce(&str)) -> Result<BenchSearchReport> {
    let mut rng = Rng::new(cfg.seed);
    let docs = read_corpora(&cfg.data, &mut rng)?;
    let dir = (cfg.index.clone()).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("vocmine-bench-index-{}", std::process::id()))
    });
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let n_docs = docs.len();
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let text_mb = bytes as f64 / 1e6;
    note(&format!(
        "indexing {n_docs} comments ({text_mb:.1} MB of text) into {}",
        dir.display()
    ));
    let idx = SearchIndex::open_or_create(&dir)?;
    let t = Instant::now();
    let records = docs.iter().cloned().map(|d| Ok((d, None)));
    let stats = update(&idx, records, "bench", &UpdateOptions::default(), |_| {})?;
    let index_s = t.elapsed().as_secs_f64();
    let index_mb = dir_mb(&dir)?;
    let queries = sample_queries(&docs, cfg.queries, &mut rng);
    if let Some(p) = &cfg.queries_out {
        let lines: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
        std::fs::write(p, lines.join("\n") + "\n").map_err(|e| Error::io(p, e))?;
    }
    let reader = idx.reader()?;
    let searcher = reader.searcher();
    for q in queries.iter().take(50) {
        search(&idx, &searcher, q)?;
    }
    let (mut lat, mut total_hits, mut zero) = (Vec::with_capacity(queries.len()), 0u64, 0);
    let tq = Instant::now();
    for q in &queries {
        let t = Instant::now();
        let r = search(&idx, &searcher, q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        total_hits += r.total;
        zero += usize::from(r.total == 0);
    }
    let query_s = tq.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let (scan_lat, scan_hits) = scan(&docs, &queries);
    let (p50, scan_p50) = (percentile(&lat, 0.5), percentile(&scan_lat, 0.5));
    let report = BenchSearchReport {
        docs: n_docs,
        index: IndexTiming {
            commits: stats.commits,
            docs_per_s: n_docs as f64 / index_s,
            index_mb,
            seconds: index_s,
        },
        queries: QueryTiming {
            max_ms: lat.last().copied().unwrap_or(0.0),
            mean_hits: total_hits as f64 / lat.len().max(1) as f64,
            mean_ms: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
            n: lat.len(),
            p50_ms: p50,
            p90_ms: percentile(&lat, 0.9),
            p99_ms: percentile(&lat, 0.99),
            qps_one_thread: lat.len() as f64 / query_s,
            with: "facets (6 terms + topic + date histogram), top 20, snippets".into(),
            zero_hit_queries: zero,
        },
        scan_baseline: ScanTiming {
            mean_hits: scan_hits as f64 / scan_lat.len().max(1) as f64,
            p50_ms: scan_p50,
            p50_ratio_scan_over_index: scan_p50 / p50.max(1e-9),
            p99_ms: percentile(&scan_lat, 0.99),
            what: "substring match of every query word over the folded texts, count only".into(),
        },
        text_mb,
    };
    if cfg.index.is_none() {
        drop(searcher);
        drop(reader);
        drop(idx);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}
