//! The search index on real data: the sample corpus scored by the shipped model, and
//! twitter_airline's test split. Counts are checked against the scored JSONL.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use vocmine::index::query::{search, SearchRequest, SearchResponse};
use vocmine::index::tokenizer::fold;
use vocmine::index::SearchIndex;

fn vocmine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vocmine"))
}

/// The sample corpus scored once (with its index) for every test in this file.
fn sample_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let o = vocmine()
            .args(["score", "corpora/sample/comments.csv", "--out"])
            .arg(&run)
            .current_dir(common::root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("index "),
            "score must build the index: {stdout}"
        );
        (dir, run)
    });
    p
}

fn open(run: &Path) -> SearchIndex {
    SearchIndex::open(&run.join("index")).unwrap()
}

fn run_search(idx: &SearchIndex, req: &SearchRequest) -> SearchResponse {
    let reader = idx.reader().unwrap();
    search(idx, &reader.searcher(), req).unwrap()
}

fn q(text: &str) -> SearchRequest {
    SearchRequest {
        query: text.to_string(),
        limit: 1000,
        ..SearchRequest::default()
    }
}

fn ids(r: &SearchResponse) -> BTreeSet<String> {
    r.hits.iter().map(|h| h.id.clone()).collect()
}

#[test]
fn chinese_word_inside_longer_words_is_found() {
    let run = sample_run();
    let idx = open(run);
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    let r = run_search(&idx, &q("退款"));
    let containing: BTreeSet<String> = scored
        .iter()
        .filter(|s| fold(s["text"].as_str().unwrap()).text.contains("退款"))
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(r.total as usize, r.hits.len());
    // Every comment that has 退款 anywhere (申请退款, 退款申请, traditional 退款...) is found,
    // and nothing else.
    assert_eq!(ids(&r), containing);
    assert!(containing.len() >= 8, "{containing:?}");
    let texts: Vec<&str> = r.hits.iter().map(|h| h.text.as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("申请退款")), "{texts:?}");
    // Snippets highlight the word itself.
    assert!(
        r.hits.iter().all(|h| h.snippet.contains("<b>退款</b>")),
        "{:?}",
        r.hits[0].snippet
    );
}

#[test]
fn traditional_and_simplified_queries_find_each_other() {
    let run = sample_run();
    let idx = open(run);
    let trad = run_search(&idx, &q("態度"));
    let simp = run_search(&idx, &q("态度"));
    assert!(trad.total > 0);
    assert_eq!(ids(&trad), ids(&simp));
    // s0004 is written in traditional characters (這什麼態度).
    assert!(ids(&simp).contains("s0004"));
    let langs: BTreeSet<&str> = simp.hits.iter().map(|h| h.tags["lang"].as_str()).collect();
    assert!(
        langs.contains("zh-Hant") && langs.contains("zh"),
        "{langs:?}"
    );
    // Full-width and case fold too.
    assert_eq!(
        ids(&run_search(&idx, &q("ＡＰＰ"))),
        ids(&run_search(&idx, &q("app")))
    );
}

#[test]
fn filters_and_facets_match_the_scored_jsonl() {
    let run = sample_run();
    let idx = open(run);
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    let label = |s: &serde_json::Value, t: &str| s[t]["label"].as_str().unwrap().to_string();

    // Whole index: facet counts per tag equal the JSONL's counts.
    let all = run_search(
        &idx,
        &SearchRequest {
            limit: 5,
            ..SearchRequest::default()
        },
    );
    assert_eq!(all.total as usize, scored.len());
    for task in ["sentiment", "intent", "pain_point", "journey_stage"] {
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for s in &scored {
            *want.entry(label(s, task)).or_default() += 1;
        }
        assert_eq!(all.facets.tags[task], want, "{task}");
    }
    // The journey-stage filter by its HTTP name `stage` (two values: any of them).
    let req = SearchRequest::from_params([("stage", "delivery,use"), ("limit", "1000")]).unwrap();
    let r = run_search(&idx, &req);
    let want: BTreeSet<String> = scored
        .iter()
        .filter(|s| ["delivery", "use"].contains(&label(s, "journey_stage").as_str()))
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(ids(&r), want);

    // negative + complaint + VIP (tier given in any case) since 2026-10-01.
    let mut req = SearchRequest {
        limit: 1000,
        ..SearchRequest::default()
    };
    req.add_tag("sentiment", "negative");
    req.add_tag("intent", "complaint");
    req.add_tag("tier", "VIP");
    req.since = Some(vocmine::record::parse_time("2026-10-01").unwrap());
    let r = run_search(&idx, &req);
    let want: Vec<&serde_json::Value> = scored
        .iter()
        .filter(|s| {
            label(s, "sentiment") == "negative"
                && label(s, "intent") == "complaint"
                && s["tier"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("vip"))
                && s["time"]
                    .as_str()
                    .and_then(vocmine::record::parse_time)
                    .is_some_and(|t| t >= 1_790_812_800)
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(r.total as usize, want.len());
    let want_ids: BTreeSet<String> = want
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&r), want_ids);
    let mut pain: BTreeMap<String, u64> = BTreeMap::new();
    for s in &want {
        *pain.entry(label(s, "pain_point")).or_default() += 1;
    }
    assert_eq!(r.facets.tags["pain_point"], pain);
    // Date histogram: one bucket per day, summing to the hits with a time.
    let by_day: u64 = r.facets.date.iter().map(|b| b.count).sum();
    assert_eq!(by_day, r.total);

    // A word query with a filter: hits = comments containing the word with that label.
    let mut req = q("物流");
    req.add_tag("sentiment", "negative");
    let r = run_search(&idx, &req);
    let want: BTreeSet<String> = scored
        .iter()
        .filter(|s| {
            label(s, "sentiment") == "negative"
                && fold(s["text"].as_str().unwrap()).text.contains("物流")
        })
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&r), want);
}

#[test]
fn upsert_keeps_one_document_per_id() {
    let run = sample_run();
    let dir = tempfile::tempdir().unwrap();
    let scored = run.join("scored.jsonl");
    let index = dir.path().join("index");
    let index_once = |input: &Path| {
        let o = vocmine()
            .arg("index")
            .arg(input)
            .arg("--index")
            .arg(&index)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let first = index_once(&scored);
    assert!(
        first.contains("300 added, 0 replaced, 0 unchanged"),
        "{first}"
    );
    let second = index_once(&scored);
    assert!(
        second.contains("300 documents (300 read: 0 added, 0 replaced, 300 unchanged"),
        "{second}"
    );
    // Re-scored comment (changed text) replaces its document.
    let text = std::fs::read_to_string(&scored).unwrap();
    let changed: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["id"] == "s0001" {
                v["text"] = "烧水壶底部生锈，申请售后换新 zebrafinch".into();
            }
            v.to_string()
        })
        .collect();
    let changed_path = dir.path().join("changed.jsonl");
    std::fs::write(&changed_path, changed.join("\n") + "\n").unwrap();
    let third = index_once(&changed_path);
    assert!(
        third.contains("300 documents (300 read: 0 added, 1 replaced, 299 unchanged"),
        "{third}"
    );
    let idx = SearchIndex::open(&index).unwrap();
    let r = run_search(&idx, &q("zebrafinch"));
    assert_eq!(ids(&r), BTreeSet::from(["s0001".to_string()]));
    assert_eq!(
        run_search(&idx, &q("售后"))
            .hits
            .iter()
            .filter(|h| h.id == "s0001")
            .count(),
        1
    );
    assert_eq!(idx.revisions().unwrap().len(), 300);
}

#[test]
fn cli_search_json_and_clear_errors() {
    let run = sample_run();
    let o = vocmine()
        .arg("search")
        .arg(run)
        .args(["退款", "--sentiment", "negative", "--json", "--limit", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["total"].as_u64().unwrap() >= 3);
    assert_eq!(v["hits"].as_array().unwrap().len(), 3);
    for h in v["hits"].as_array().unwrap() {
        assert_eq!(h["sentiment"], "negative");
        assert!(h["snippet"].as_str().unwrap().contains("<b>"));
        assert!(h["id"].is_string() && h["score"].is_number());
    }
    assert!(v["facets"]["sentiment"]["negative"].as_u64().unwrap() >= 3);

    // --stage: every hit in that journey stage, as many as the facet counts.
    let o = vocmine()
        .arg("search")
        .arg(run)
        .args(["--stage", "after_sales_returns", "--json", "--limit", "300"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hits = v["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert_eq!(hits.len() as u64, v["total"].as_u64().unwrap());
    for h in hits {
        assert_eq!(h["journey_stage"], "after_sales_returns", "{h}");
    }
    assert_eq!(
        v["facets"]["journey_stage"]["after_sales_returns"],
        v["total"]
    );

    // not query syntax (issue 36): searched as plain text, never an error
    for q in ["\"退款", "order: late", "<PHONE>", "(退款"] {
        let o = vocmine()
            .arg("search")
            .arg(run)
            .args([q, "--json"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for (args, want) in [
        (vec!["x", "--since", "last week"], "since"),
        (vec!["x", "--sort", "random"], "sort"),
    ] {
        let mut cmd = vocmine();
        cmd.arg("search").arg(run).args(&args);
        let err = common::stderr_of_failure(cmd);
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    let o = vocmine()
        .args(["search", "/nonexistent/idx", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no search index here"));
}

#[test]
fn http_api_serves_concurrent_requests_and_rejects_bad_parameters() {
    let run = sample_run();
    let (mut child, addr) = common::start_server(&run.join("index"));

    let (st, health) = common::http_get(&addr, "/health");
    assert_eq!(st, 200);
    assert_eq!(health["docs"], 300);
    // 退款, negative: same answer as the library.
    let (st, v) = common::http_get(
        &addr,
        "/search?q=%E9%80%80%E6%AC%BE&sentiment=negative&limit=50",
    );
    assert_eq!(st, 200, "{v}");
    let mut req = q("退款");
    req.add_tag("sentiment", "negative");
    let lib = run_search(&open(run), &req);
    assert_eq!(v["total"].as_u64().unwrap(), lib.total);
    assert_eq!(v["hits"].as_array().unwrap().len() as u64, lib.total);
    // The journey-stage filter by its short name: every hit in that stage.
    let (st, v) = common::http_get(&addr, "/search?stage=customer_service&limit=300");
    assert_eq!(st, 200, "{v}");
    let want = common::read_jsonl(&run.join("scored.jsonl"))
        .iter()
        .filter(|s| s["journey_stage"]["label"] == "customer_service")
        .count();
    assert!(want > 0);
    assert_eq!(v["total"].as_u64().unwrap() as usize, want);
    assert!(v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["journey_stage"] == "customer_service"));

    for bad in [
        "/search?limit=abc",
        "/search?colour=red",
        "/search?since=soon",
    ] {
        let (st, v) = common::http_get(&addr, bad);
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {v}"
        );
    }
    // a filter value the index cannot hold is a 400 that lists the ones it can (issue 36);
    // a valid value of a closed list with no comments is an empty answer, not an error
    for (bad, field, listed) in [
        (
            "/search?sentiment=bogus",
            "sentiment",
            "negative, neutral, positive",
        ),
        ("/search?stage=nowhere", "stage", "after_sales_returns"),
        ("/search?channel=carrier-pigeon", "channel", "wechat"),
        ("/search?sentiment=negative,bogus", "sentiment", "negative"),
    ] {
        let (st, v) = common::http_get(&addr, bad);
        let e = v["error"].as_str().unwrap_or("");
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(e.starts_with(field) && e.contains(listed), "{bad}: {e}");
    }
    let (st, v) = common::http_get(&addr, "/search?lang=other&sentiment=neutral,NEGATIVE");
    assert_eq!(st, 200, "{v}");
    // an unbalanced quote is searched as text (issue 36)
    let (st, v) = common::http_get(&addr, "/search?q=%22open");
    assert_eq!(st, 200, "{v}");
    assert!(v["total"].as_u64().unwrap() >= 1, "{v}");
    let (st, _) = common::http_get(&addr, "/nope");
    assert_eq!(st, 404);

    // Concurrent clients: all answered, all the same.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        let (st, v) =
                            common::http_get(&addr, "/search?q=%E7%89%A9%E6%B5%81&limit=5");
                        assert_eq!(st, 200);
                        v["total"].as_u64().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let totals: BTreeSet<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(totals.len(), 1, "{totals:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A large scored JSONL: the sample's scored lines repeated with new ids.
fn big_scored(run: &Path, out: &Path, copies: usize) -> Vec<String> {
    let lines: Vec<serde_json::Value> = common::read_jsonl(&run.join("scored.jsonl"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let mut ids = Vec::new();
    for c in 0..copies {
        for l in &lines {
            let mut v = l.clone();
            let id = format!("{}-{c}", v["id"].as_str().unwrap());
            v["id"] = id.clone().into();
            writeln!(f, "{v}").unwrap();
            ids.push(id);
        }
    }
    ids
}

#[test]
fn killed_indexer_leaves_exactly_the_last_commit() {
    let run = sample_run();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    let all_ids = big_scored(run, &input, 400); // 120,000 comments
    let index = dir.path().join("index");
    let mut child = vocmine()
        .arg("index")
        .arg(&input)
        .arg("--index")
        .arg(&index)
        .args(["--commit-every", "2000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Search while the writer works; kill it once a few commits have landed.
    let mut seen_docs = Vec::new();
    let start = std::time::Instant::now();
    loop {
        assert!(start.elapsed().as_secs() < 300, "indexer made no commit");
        if index.join("meta.json").exists() {
            if let Ok(idx) = SearchIndex::open(&index) {
                let n = idx.reader().unwrap().searcher().num_docs();
                seen_docs.push(n);
                if let Some(p) = idx.last_commit().unwrap() {
                    if p.records >= 6000 {
                        break;
                    }
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        seen_docs.iter().all(|n| n % 2000 == 0),
        "readers saw a partial commit: {seen_docs:?}"
    );

    let idx = SearchIndex::open(&index).unwrap();
    let p = idx.last_commit().unwrap().unwrap();
    assert!(
        !p.complete,
        "the indexer finished before the kill; the test needs a bigger input"
    );
    let k = p.records as usize;
    assert_eq!(k % 2000, 0);
    let got: BTreeSet<String> = idx.revisions().unwrap().into_keys().collect();
    let want: BTreeSet<String> = all_ids[..k].iter().cloned().collect();
    assert_eq!(idx.reader().unwrap().searcher().num_docs() as usize, k);
    assert_eq!(got, want);
    assert_eq!(
        run_search(
            &idx,
            &SearchRequest {
                limit: 0,
                ..SearchRequest::default()
            }
        )
        .total as usize,
        k
    );

    // Resume: the rest is added, nothing twice.
    let o = vocmine()
        .arg("index")
        .arg(&input)
        .arg("--index")
        .arg(&index)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let want_line = format!(
        "{} documents ({} read: {} added, 0 replaced, {k} unchanged",
        all_ids.len(),
        all_ids.len(),
        all_ids.len() - k
    );
    assert!(out.contains(&want_line), "{out}");
}

#[test]
fn twitter_airline_index_counts_and_english_stemming() {
    let Some(test) = common::shared("corpora/twitter_airline/test.jsonl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = vocmine()
        .arg("score")
        .arg(&test)
        .arg("--out")
        .arg(&run)
        .args(["--channel-col", "airline", "--tasks", "sentiment"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    let rejects = common::read_jsonl(&run.join("rejects.jsonl"));
    assert_eq!(scored.len() + rejects.len(), 1472);
    let idx = open(&run);
    let all = run_search(
        &idx,
        &SearchRequest {
            limit: 0,
            ..SearchRequest::default()
        },
    );
    assert_eq!(all.total as usize, scored.len());

    // Stemming: "delays" finds "delayed" and "delay".
    let r = run_search(&idx, &q("delays"));
    let texts: Vec<String> = r.hits.iter().map(|h| h.text.to_lowercase()).collect();
    assert!(texts.iter().any(|t| t.contains("delayed")), "{texts:?}");
    assert!(texts.iter().all(|t| t.contains("delay")), "{texts:?}");

    // Channel filter and sentiment facets against the JSONL.
    let mut req = SearchRequest {
        limit: 0,
        ..SearchRequest::default()
    };
    req.add_tag("channel", "United");
    let r = run_search(&idx, &req);
    let united: Vec<&serde_json::Value> =
        scored.iter().filter(|s| s["channel"] == "United").collect();
    assert!(united.len() > 100);
    assert_eq!(r.total as usize, united.len());
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for s in &united {
        *want
            .entry(s["sentiment"]["label"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(r.facets.tags["sentiment"], want);

    // A word with a filter equals a count over the JSONL's words.
    let mut req = q("cancelled");
    req.add_tag("sentiment", "negative");
    let r = run_search(&idx, &req);
    let stem = vocmine::index::tokenizer::tokens("cancelled");
    let want = scored
        .iter()
        .filter(|s| {
            s["sentiment"]["label"] == "negative"
                && vocmine::index::tokenizer::tokens(s["text"].as_str().unwrap()).contains(&stem[0])
        })
        .count();
    assert!(want > 10);
    assert_eq!(r.total as usize, want);
}

/// Hits tied on their score (an empty query; many equal severities and times) come back in
/// the same order from indexes of the same comments laid out in different segments: the
/// order breaks ties by the document's revision, not by where tantivy put the document.
#[test]
fn tied_hits_come_back_in_the_same_order_whatever_the_segments() {
    use vocmine::index::request::Sort;
    use vocmine::index::{index_scored, UpdateOptions};
    let run = sample_run();
    let dir = tempfile::tempdir().unwrap();
    let layouts = [(0usize, 1usize), (23, 2), (41, 1), (7, 2)];
    let mut answers: Vec<Vec<Vec<String>>> = Vec::new();
    let mut segments = BTreeSet::new();
    for (i, &(commit_every, threads)) in layouts.iter().enumerate() {
        let idx_dir = dir.path().join(format!("idx{i}"));
        let opts = UpdateOptions {
            commit_every,
            threads,
            ..UpdateOptions::default()
        };
        index_scored(
            &run.join("scored.jsonl"),
            &idx_dir,
            None,
            None,
            &opts,
            |_| {},
        )
        .unwrap();
        let idx = SearchIndex::open(&idx_dir).unwrap();
        segments.insert(idx.reader().unwrap().searcher().segment_readers().len());
        let mut per_query = Vec::new();
        for sort in [Sort::Relevance, Sort::Newest, Sort::Severity] {
            for (text, sentiment) in [("", Some("negative")), ("", None), ("退款", None)] {
                let mut req = q(text);
                req.sort = sort;
                req.limit = 40;
                if let Some(s) = sentiment {
                    req.tags.insert("sentiment".into(), vec![s.into()]);
                }
                let r = run_search(&idx, &req);
                assert!(!r.hits.is_empty(), "{text:?} {sort:?}");
                per_query.push(r.hits.iter().map(|h| h.id.clone()).collect());
            }
        }
        answers.push(per_query);
    }
    // the layouts differ (else the test shows nothing)
    assert!(segments.len() > 1, "segments per layout: {segments:?}");
    for a in &answers[1..] {
        assert_eq!(a, &answers[0]);
    }
}
