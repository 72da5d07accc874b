//! `bench-search`: indexing throughput and query latency on labelled corpora, with a linear
//! scan over the same folded texts as the baseline in the same run.

use crate::cli::search::BenchSearchArgs;
use anyhow::{Context, Result};
use jieba_rs::{Jieba, KeywordExtract, TfIdf};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Instant;
use vocmine::index::query::{search, SearchRequest};
use vocmine::index::tokenizer::fold;
use vocmine::index::{update, SearchIndex, UpdateOptions};
use vocmine::record::{Scored, TaskResult};
use vocmine::rng::Rng as SplitMix64;
use vocmine::text::normalise::{normalise, NormaliseConfig};

/// Turns one labelled corpus row into a scored record: the gold label stands in for the
/// sentiment head's answer (indexing cost does not depend on where the labels came from).
fn row_to_scored(
    v: &serde_json::Value,
    n: usize,
    corpus: &str,
    rng: &mut SplitMix64,
) -> Option<Scored> {
    let text = v.get("text")?.as_str()?.to_string();
    let id = v
        .get("id")
        .and_then(|i| i.as_str())
        .map_or_else(|| format!("{corpus}-{n}"), str::to_string);
    let norm = normalise(&text, NormaliseConfig { mask_pii: true });
    let mut tasks = BTreeMap::new();
    if let Some(label) = v.get("label").and_then(|l| l.as_str()) {
        let score = match label {
            "positive" => 1.0,
            "negative" => -1.0,
            _ => 0.0,
        };
        tasks.insert(
            "sentiment".to_string(),
            TaskResult {
                label: label.to_string(),
                confidence: 1.0,
                probs: BTreeMap::from([(label.to_string(), 1.0)]),
                score: Some(score),
                kind: None,
                labels: Vec::new(),
                alternatives: Vec::new(),
            },
        );
    }
    if let Some(reason) = v.get("reason").and_then(|l| l.as_str()) {
        tasks.insert(
            "pain_point".to_string(),
            TaskResult {
                label: reason.to_string(),
                confidence: 1.0,
                probs: BTreeMap::from([(reason.to_string(), 1.0)]),
                score: None,
                kind: None,
                labels: Vec::new(),
                alternatives: Vec::new(),
            },
        );
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
        time: Some(format!("{}T00:00:00Z", vocmine::record::civil_date(secs))),
        channel: Some(corpus.to_string()),
        rating: None,
        tier: Some(if rng.below(10) == 0 { "vip" } else { "regular" }.to_string()),
        product,
        masked: norm.masked.clone(),
        tokens: None,
        n_tokens: 0,
        text_hash: String::new(),
        model: "gold".to_string(),
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
        .filter(|w| w.len() >= 4 && !vocmine::text::segment::is_stop_word(&w.to_lowercase()))
        .map(str::to_lowercase)
        .collect()
}

pub(crate) fn cmd_bench_search(a: BenchSearchArgs) -> Result<()> {
    let mut rng = SplitMix64::new(a.seed);
    let mut docs = Vec::new();
    for path in &a.data {
        let corpus = path.parent().and_then(|p| p.file_name()).map_or_else(
            || "corpus".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            let v: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("{}: line {}: invalid JSON", path.display(), i + 1))?;
            match row_to_scored(&v, i, &corpus, &mut rng) {
                Some(s) => docs.push(s),
                None => anyhow::bail!("{}: line {}: no \"text\" field", path.display(), i + 1),
            }
        }
    }
    let dir = match &a.index {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("vocmine-bench-index-{}", std::process::id())),
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let n_docs = docs.len();
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    eprintln!(
        "indexing {n_docs} comments ({:.1} MB of text) into {}",
        bytes as f64 / 1e6,
        dir.display()
    );
    let idx = SearchIndex::open_or_create(&dir)?;
    let t = Instant::now();
    let stats = update(
        &idx,
        docs.iter().cloned().map(|d| Ok((d, None))),
        "bench",
        &UpdateOptions::default(),
        |_| {},
    )?;
    let index_s = t.elapsed().as_secs_f64();
    let index_bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    // Queries: keywords of sampled comments (jieba TF-IDF for Chinese, content words for
    // English), one or two words; every third query also filters on sentiment.
    let jieba = Jieba::new();
    let tfidf = TfIdf::default();
    let mut queries: Vec<SearchRequest> = Vec::new();
    let mut attempts = 0;
    while queries.len() < a.queries && attempts < a.queries * 20 {
        attempts += 1;
        let d = &docs[rng.below(n_docs)];
        let want = 1 + rng.below(2);
        let words: Vec<String> = if d.lang.starts_with("zh") {
            tfidf
                .extract_keywords(&jieba, &fold(&d.text).text, 3, vec![])
                .into_iter()
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
        let q: Vec<String> = words
            .iter()
            .cycle()
            .skip(start)
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
    if let Some(p) = &a.queries_out {
        let lines: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
        std::fs::write(p, lines.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let reader = idx.reader()?;
    let searcher = reader.searcher();
    for q in queries.iter().take(50) {
        search(&idx, &searcher, q)?;
    }
    let mut lat = Vec::with_capacity(queries.len());
    let mut total_hits = 0u64;
    let mut zero = 0usize;
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

    // Baseline: a linear scan of the folded texts (substring match of every query word),
    // counting matches, on the same queries.
    let folded: Vec<(String, bool)> = docs
        .iter()
        .map(|d| {
            (
                fold(&d.text).text,
                d.tasks
                    .get("sentiment")
                    .is_some_and(|t| t.label == "negative"),
            )
        })
        .collect();
    let mut scan_lat = Vec::with_capacity(queries.len());
    let mut scan_hits = 0u64;
    for q in &queries {
        let words: Vec<String> = q.query.split_whitespace().map(|w| fold(w).text).collect();
        let neg_only = q.tags.contains_key("sentiment");
        let t = Instant::now();
        let n = folded
            .iter()
            .filter(|(text, neg)| {
                (!neg_only || *neg) && words.iter().all(|w| text.contains(w.as_str()))
            })
            .count();
        scan_lat.push(t.elapsed().as_secs_f64() * 1e3);
        scan_hits += n as u64;
    }
    scan_lat.sort_by(f64::total_cmp);
    let p50 = percentile(&lat, 0.5);
    let scan_p50 = percentile(&scan_lat, 0.5);
    let report = serde_json::json!({
        "docs": n_docs,
        "text_mb": bytes as f64 / 1e6,
        "index": {
            "seconds": index_s,
            "docs_per_s": n_docs as f64 / index_s,
            "commits": stats.commits,
            "index_mb": index_bytes as f64 / 1e6,
        },
        "queries": {
            "n": lat.len(),
            "p50_ms": p50,
            "p90_ms": percentile(&lat, 0.9),
            "p99_ms": percentile(&lat, 0.99),
            "max_ms": lat.last().copied().unwrap_or(0.0),
            "mean_ms": lat.iter().sum::<f64>() / lat.len().max(1) as f64,
            "qps_one_thread": lat.len() as f64 / query_s,
            "mean_hits": total_hits as f64 / lat.len().max(1) as f64,
            "zero_hit_queries": zero,
            "with": "facets (6 terms + topic + date histogram), top 20, snippets",
        },
        "scan_baseline": {
            "p50_ms": scan_p50,
            "p99_ms": percentile(&scan_lat, 0.99),
            "mean_hits": scan_hits as f64 / scan_lat.len().max(1) as f64,
            "p50_ratio_scan_over_index": scan_p50 / p50.max(1e-9),
            "what": "substring match of every query word over the folded texts, count only",
        },
    });
    if a.index.is_none() {
        drop(searcher);
        drop(reader);
        drop(idx);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(p) = &a.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
