//! Search against hostile requests and hostile data, and the words the analysis must find
//! (issue 29): indexes built with `vocmine index` from scored lines written here, searched
//! through the library, the CLI and a real `vocmine serve` on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use vocmine::index::query::{search, SearchRequest, SearchResponse};
use vocmine::index::SearchIndex;

fn vocmine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vocmine"))
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

/// A scored line as `score` writes it (negative sentiment), for indexes built without the model.
fn scored_line(id: &str, text: &str, time: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "id": id, "text": text, "lang": "zh", "n_tokens": 0,
        "sentiment": {"label": "negative", "confidence": 0.9,
                      "probs": {"negative": 0.9}, "score": -0.8},
    });
    if let Some(t) = time {
        v["time"] = serde_json::json!(t);
    }
    v.to_string()
}

/// Writes `docs` (id, text, time) as a scored JSONL and indexes it with `vocmine index`
/// (`extra` arguments added); returns the index folder.
fn index_docs(dir: &Path, docs: &[(&str, &str, Option<&str>)], extra: &[&str]) -> PathBuf {
    let scored = dir.join("scored.jsonl");
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, text, time)| scored_line(id, text, *time))
        .collect();
    std::fs::write(&scored, lines.join("\n") + "\n").unwrap();
    let index = dir.join("index");
    let mut cmd = vocmine();
    cmd.arg("index").arg(&scored).arg("--index").arg(&index);
    common::run_checked(cmd, extra);
    index
}

fn hit_ids(r: &SearchResponse) -> Vec<&str> {
    let mut v: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    v.sort_unstable();
    v
}

#[test]
fn hostile_requests_get_400_and_the_server_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_docs(
        dir.path(),
        &[
            ("a", "退款太慢了", Some("2026-10-01")),
            ("b", "物流很快", Some("2026-10-02")),
        ],
        &[],
    );
    let (mut child, addr) = common::start_server(&index);
    let nested = format!("{}a{}", "%28".repeat(3000), "%29".repeat(3000));
    let long = "a%20".repeat(1001);
    for (path, param) in [
        (format!("/search?q={nested}"), "q"),
        (format!("/search?q={long}"), "q"),
        (
            format!("/search?q={}a{}", "%28".repeat(400), "%29".repeat(400)),
            "q",
        ),
        ("/search?offset=10000000000".to_string(), "offset"),
        ("/search?offset=9990&limit=20".to_string(), "offset"),
        ("/search?limit=10001".to_string(), "limit"),
        (
            "/search?offset=99999999999999999999999".to_string(),
            "offset",
        ),
        ("/search?boost=1e30".to_string(), "boost"),
    ] {
        let (st, v) = common::http_get(&addr, &path);
        assert_eq!(st, 400, "{}: {v}", &path[..path.len().min(60)]);
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.starts_with(&format!("{param}:")), "{param}: {e}");
        // Still alive after every one of them.
        let (st, health) = common::http_get(&addr, "/health");
        assert_eq!(st, 200);
        assert_eq!(health["docs"], 2);
    }
    // The deepest page allowed, and nesting within the limit, still work.
    let (st, v) = common::http_get(&addr, "/search?offset=9990&limit=10");
    assert_eq!((st, v["total"].as_u64()), (200, Some(2)), "{v}");
    let q = format!("{}%E9%80%80%E6%AC%BE{}", "%28".repeat(16), "%29".repeat(16));
    let (st, v) = common::http_get(&addr, &format!("/search?q={q}"));
    assert_eq!((st, v["total"].as_u64()), (200, Some(1)), "{v}");
    child.kill().unwrap();
    child.wait().unwrap();

    // The CLI applies the same limits, with the same messages.
    let deep = format!("{}a{}", "(".repeat(20), ")".repeat(20));
    let huge = format!("{}a{}", "(".repeat(3000), ")".repeat(3000));
    for (args, want) in [
        (vec![deep.as_str()], "q: parentheses nested 20 deep"),
        (vec![huge.as_str()], "q: the query has 6001 characters"),
        (
            vec!["x", "--offset", "10000000000"],
            "offset: offset + limit",
        ),
        (vec!["x", "--limit", "10001"], "limit:"),
    ] {
        let mut cmd = vocmine();
        cmd.arg("search").arg(&index).args(&args);
        let err = common::stderr_of_failure(cmd);
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{want}: {err}"
        );
    }
}

#[test]
fn long_comments_and_far_dates_do_not_deny_search() {
    let dir = tempfile::tempdir().unwrap();
    let long = "退款太慢了".repeat(100_000);
    let idx_dir = index_docs(
        dir.path(),
        &[
            ("long", &long, Some("2026-10-01T08:00:00Z")),
            ("old", "退款在公元元年", Some("0001-01-01T00:00:00Z")),
            ("future", "物流在九九九九年", Some("9999-12-31T23:59:59Z")),
            ("a", "物流很快", Some("2026-10-02")),
            ("b", "客服态度差", Some("2026-10-05")),
        ],
        &[],
    );
    let idx = SearchIndex::open(&idx_dir).unwrap();

    // 100k matches in one comment: the snippet's work is bounded.
    let t = std::time::Instant::now();
    let r = run_search(&idx, &q("退款"));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hit_ids(&r), vec!["long", "old"]);
    assert!(secs < 5.0, "a search took {secs:.1}s");
    let h = r.hits.iter().find(|h| h.id == "long").unwrap();
    assert!(h.snippet.starts_with("<b>退款</b>太慢了"), "{}", h.snippet);
    assert!(h.snippet.chars().count() < 400, "{}", h.snippet);

    // Default search: every comment, and a histogram of bounded size.
    let all = run_search(&idx, &SearchRequest::default());
    assert_eq!(all.total, 5);
    let bars = &all.facets.date;
    assert!(bars.len() <= 2_001, "{} bars", bars.len());
    assert_eq!(bars.iter().map(|b| b.count).sum::<u64>(), 5);
    assert!(all.interval_days > 1);
    assert!(bars.first().unwrap().date.as_str() < "1700");
    assert!(bars.last().unwrap().date.as_str() > "2250");
    // Within a month the asked-for daily bars come back.
    let mut req = SearchRequest {
        since: Some(vocmine::index::query::parse_since("2026-10-01").unwrap()),
        until: Some(vocmine::index::query::parse_until("2026-10-31").unwrap()),
        ..SearchRequest::default()
    };
    let month = run_search(&idx, &req);
    assert_eq!((month.total, month.interval_days), (3, 1));
    assert_eq!(
        month
            .facets
            .date
            .iter()
            .map(|b| (b.date.as_str(), b.count))
            .filter(|b| b.1 > 0)
            .collect::<Vec<_>>(),
        vec![("2026-10-01", 1), ("2026-10-02", 1), ("2026-10-05", 1)]
    );
    // The far dates still sort and filter in order (clamped to the index's range).
    req.since = None;
    req.until = Some(vocmine::index::query::parse_until("1900-01-01").unwrap());
    assert_eq!(hit_ids(&run_search(&idx, &req)), vec!["old"]);
    req.until = None;
    req.since = Some(vocmine::index::query::parse_since("2100-01-01").unwrap());
    assert_eq!(hit_ids(&run_search(&idx, &req)), vec!["future"]);
    let newest = run_search(
        &idx,
        &SearchRequest {
            sort: vocmine::index::query::Sort::Newest,
            ..SearchRequest::default()
        },
    );
    let order: Vec<&str> = newest.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(order, vec!["future", "b", "a", "long", "old"]);
}

#[test]
fn words_inside_words_traditional_phrases_and_english_stems_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let idx_dir = index_docs(
        dir.path(),
        &[
            ("z1", "钱还没到账", None),
            ("z2", "三天了没到账，客服也不回", None),
            ("z3", "退款到账了吗", None),
            ("z4", "錢還沒到帳", None),
            ("s1", "我的螢幕壞了", None),
            ("s2", "屏幕碎了，要换", None),
            ("e1", "Where is my delivery? Deliveries are late", None),
            ("e2", "They never deliver on time", None),
            ("e3", "I want refunds now", None),
            ("e4", "Refunded twice, thanks", None),
            ("e5", "Taxi was fine", None),
        ],
        &[],
    );
    let idx = SearchIndex::open(&idx_dir).unwrap();
    let found = |text: &str| -> Vec<String> {
        hit_ids(&run_search(&idx, &q(text)))
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    // A word inside a longer word (jieba keeps 没到账 whole).
    assert_eq!(found("到账"), vec!["z1", "z2", "z3", "z4"]);
    assert_eq!(found("没到账"), vec!["z1", "z2", "z4"]);
    // Traditional phrases fold to the mainland word, both ways.
    assert_eq!(found("到帳"), vec!["z1", "z2", "z3", "z4"]);
    assert_eq!(found("螢幕"), vec!["s1", "s2"]);
    assert_eq!(found("屏幕"), vec!["s1", "s2"]);
    // English: deliver / delivery / deliveries, refund / refunds / refunded.
    assert_eq!(found("deliver"), vec!["e1", "e2"]);
    assert_eq!(found("delivery"), vec!["e1", "e2"]);
    assert_eq!(found("refund"), vec!["e3", "e4"]);
    assert_eq!(found("tax"), Vec::<String>::new());
    // Snippets mark what the customer wrote.
    let r = run_search(&idx, &q("屏幕"));
    let s1 = r.hits.iter().find(|h| h.id == "s1").unwrap();
    assert_eq!(s1.snippet, "我的<b>螢幕</b>壞了");
    let r = run_search(&idx, &q("到账"));
    let z1 = r.hits.iter().find(|h| h.id == "z1").unwrap();
    assert_eq!(z1.snippet, "钱还没<b>到账</b>");
    let z4 = r.hits.iter().find(|h| h.id == "z4").unwrap();
    assert_eq!(z4.snippet, "錢還沒<b>到帳</b>");
    let r = run_search(&idx, &q("deliver"));
    let e1 = r.hits.iter().find(|h| h.id == "e1").unwrap();
    assert_eq!(
        e1.snippet,
        "Where is my <b>delivery</b>? <b>Deliveries</b> are late"
    );
}

#[test]
fn the_runs_user_dictionary_cuts_the_index_and_its_queries() {
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("words.txt");
    std::fs::write(&dict, "华东仓 2000 n\n").unwrap();
    let texts = [
        "华东仓发货太慢",
        "从华东仓调货要三天",
        "华东仓库存不准",
        "上海华东仓的客服不错",
    ];
    // score --user-dict records the dictionary in the run; its index cuts with it.
    let csv = dir.path().join("in.csv");
    let mut body = String::from("id,text\n");
    for (i, t) in texts.iter().enumerate() {
        body.push_str(&format!("d{i},{t}\n"));
    }
    body.push_str("x,华东地区仓储一般\n");
    std::fs::write(&csv, body).unwrap();
    let run = dir.path().join("run");
    let mut cmd = vocmine();
    cmd.current_dir(common::root())
        .env("VOCMINE_CACHE", dir.path().join("cache"));
    common::run_checked(
        cmd,
        &[
            "score",
            csv.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--tasks",
            "sentiment",
            "--user-dict",
            dict.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(run.join("user_dict.txt")).unwrap(),
        "华东仓 2000 n\n"
    );
    let idx = SearchIndex::open(&run.join("index")).unwrap();
    let mut a = idx.analyzer();
    let t = vocmine::index::tokenizer::tokens_of(&mut a, "从华东仓调货");
    assert!(t.contains(&"华东仓".to_string()), "{t:?}");
    let r = run_search(&idx, &q("华东仓"));
    assert_eq!(hit_ids(&r), vec!["d0", "d1", "d2", "d3"]);
    assert!(r.hits.iter().all(|h| h.snippet.contains("<b>华东仓</b>")));

    // `search` (a new process) opens the index with the same dictionary.
    let o = vocmine()
        .arg("search")
        .arg(&run)
        .args(["华东仓", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 4);

    // `index --user-dict` on a plain scored file records it in that index, and a changed
    // dictionary re-indexes every comment.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let docs: Vec<(&str, &str, Option<&str>)> =
        vec![("p", "扫地机器人七号坏了", None), ("q", "七号线很挤", None)];
    let index = index_docs(&other, &docs, &[]);
    let dict2 = dir.path().join("robot.txt");
    std::fs::write(&dict2, "扫地机器人七号 1000 n\n").unwrap();
    let mut cmd = vocmine();
    cmd.arg("index")
        .arg(other.join("scored.jsonl"))
        .arg("--index")
        .arg(&index);
    let out = common::run_checked(cmd, &["--user-dict", dict2.to_str().unwrap()]);
    assert!(out.contains("2 replaced"), "{out}");
    let idx = SearchIndex::open(&index).unwrap();
    let t = vocmine::index::tokenizer::tokens_of(&mut idx.analyzer(), "扫地机器人七号坏了");
    assert!(t.contains(&"扫地机器人七号".to_string()), "{t:?}");
    assert_eq!(hit_ids(&run_search(&idx, &q("扫地机器人七号"))), vec!["p"]);
}

#[test]
fn text_that_is_not_query_syntax_is_searched_as_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_docs(
        dir.path(),
        &[
            ("a", "my order was late again", None),
            ("b", "客服电话<PHONE>打不通", None),
            ("c", "退款太慢了", None),
        ],
        &[],
    );
    let idx = SearchIndex::open(&index).unwrap();
    for (query, want) in [
        ("order: late", vec!["a"]),
        ("\"order late", vec!["a"]),
        ("(late", vec!["a"]),
        ("<PHONE>", vec!["b"]),
        ("\"退款", vec!["c"]),
        ("order late", vec!["a"]),
    ] {
        assert_eq!(hit_ids(&run_search(&idx, &q(query))), want, "{query}");
    }
    assert_eq!(
        vocmine::index::query::plain_query("order: \"late\" OR (x - 2599.00"),
        r#""order:" "late" "OR" "(x" "2599.00""#
    );
}

#[test]
fn query_syntax_is_opt_in_on_the_command_line_and_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_docs(
        dir.path(),
        &[
            ("a", "refund was slow", None),
            ("b", "refund was fast", None),
            ("c", "delivery was slow", None),
        ],
        &[],
    );
    let idx = SearchIndex::open(&index).unwrap();
    let with = |query: &str, syntax: bool| {
        let mut r = q(query);
        r.syntax = syntax;
        let got: Vec<String> = hit_ids(&run_search(&idx, &r))
            .into_iter()
            .map(String::from)
            .collect();
        got
    };
    // Plain text: every word must match, and `-` or `OR` are not operators.
    assert_eq!(with("refund -fast", false), vec!["b"]);
    assert!(with("refund OR delivery", false).is_empty());
    // Opted in: exclusion and OR work; invalid syntax still falls back to the words.
    assert_eq!(with("refund -fast", true), vec!["a"]);
    assert_eq!(with("refund OR delivery", true), vec!["a", "b", "c"]);
    assert_eq!(with("\"refund slow", true), vec!["a"]);
    // The command line's --syntax flag.
    let search = |extra: &[&str]| -> String {
        let mut cmd = vocmine();
        cmd.arg("search")
            .arg(&index)
            .arg("refund -fast")
            .arg("--json");
        let out = common::run_checked(cmd, extra);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["total"], 1, "{v}");
        v["hits"][0]["id"].as_str().unwrap().to_string()
    };
    assert_eq!(search(&[]), "b");
    assert_eq!(search(&["--syntax"]), "a");
    // Over HTTP: `syntax=true`, and a bad value is a 400 naming the parameter.
    let (mut server, addr) = common::start_server(&index);
    let (st, v) = common::http_get(&addr, "/search?q=refund%20-fast&syntax=true");
    assert_eq!(
        (st, &v["hits"][0]["id"]),
        (200, &serde_json::json!("a")),
        "{v}"
    );
    let (st, v) = common::http_get(&addr, "/search?q=refund%20-fast");
    assert_eq!(
        (st, &v["hits"][0]["id"]),
        (200, &serde_json::json!("b")),
        "{v}"
    );
    let (st, v) = common::http_get(&addr, "/search?q=refund&syntax=maybe");
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("syntax"), "{v}");
    server.kill().unwrap();
    server.wait().unwrap();
}
