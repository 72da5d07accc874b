//! `vocmine eval` through the real binary and the shipped model.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Runs vocmine in the repository root (its embedding cache is the repository's).
fn vocmine(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(common::root());
    common::run_checked(cmd, args)
}

const DATA: &[(&str, &str)] = &[
    ("物流太慢了，等了一个星期还没到", "negative"),
    ("质量很好，非常满意，下次还来", "positive"),
    ("客服态度太差了，再也不买了", "negative"),
    ("送货很快，包装完好，好评", "positive"),
    (
        "The package arrived broken and nobody answers my emails.",
        "negative",
    ),
    (
        "Great service, the agent fixed my problem in two minutes!",
        "positive",
    ),
    ("Worst airline ever, lost my luggage twice", "negative"),
    (
        "Thanks for the quick refund, really appreciate it",
        "positive",
    ),
    ("退貨流程太麻煩了，等了兩週", "negative"),
    ("這家店的東西很好用，推薦", "positive"),
    ("味道一般，分量太少", "negative"),
    ("Love the new app update, so much faster", "positive"),
];

fn write_data(dir: &Path) -> std::path::PathBuf {
    write_rows(&dir.join("labelled.jsonl"), "e", DATA)
}

/// Writes (text, label) rows as JSONL with ids PREFIX0, PREFIX1, ...
fn write_rows(p: &Path, prefix: &str, rows: &[(&str, &str)]) -> std::path::PathBuf {
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(i, (t, l))| {
            serde_json::json!({"id": format!("{prefix}{i}"), "text": t, "label": l}).to_string()
                + "\n"
        })
        .collect();
    std::fs::write(p, body).unwrap();
    p.to_path_buf()
}

#[test]
fn eval_reports_metrics_and_agrees_with_score() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_data(dir.path());
    let report = dir.path().join("report.json");
    let text = vocmine(&[
        "eval",
        "--task",
        "sentiment",
        "--data",
        data.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--errors",
        "3",
    ]);
    assert!(
        text.contains("accuracy") && text.contains("ECE") && text.contains("confusion"),
        "{text}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for key in [
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "ece",
        "per_class",
        "confusion",
        "throughput",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(r["n"], 12);
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "these 12 texts are unambiguous: accuracy {acc}");
    let lo = r["accuracy_ci"]["lo"].as_f64().unwrap();
    let hi = r["accuracy_ci"]["hi"].as_f64().unwrap();
    assert!(lo <= acc && acc <= hi);
    let conf: u64 = r["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(conf, 12);
    // every gold label here is polar: the neutral figures count the ones answered neutral
    let answered_neutral = r["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pred"] == "neutral")
        .count();
    assert_eq!(r["neutral"]["n_polar"], 12);
    assert_eq!(r["neutral"]["n_neutral"], 0);
    assert!(r["neutral"]["neutral_recall"].is_null());
    assert_eq!(
        r["neutral"]["polar_called_neutral"].as_f64().unwrap(),
        answered_neutral as f64 / 12.0
    );
    assert!(text.contains("polar answered neutral"), "{text}");
    assert!(r["throughput"]["texts_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["throughput"]["peak_rss_mib"].as_f64().unwrap() > 50.0);
    let errors = std::fs::read_to_string(dir.path().join("errors.jsonl")).unwrap();
    assert_eq!(
        errors.lines().count(),
        r["errors"].as_array().unwrap().len()
    );

    // score gives the same predictions, for the trained head and the few-shot ones
    let run = dir.path().join("run");
    vocmine(&[
        "score",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let scored: Vec<serde_json::Value> = std::fs::read_to_string(run.join("scored.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for task in ["sentiment", "intent", "pain_point"] {
        let rep = dir.path().join(format!("{task}.json"));
        vocmine(&[
            "eval",
            "--task",
            task,
            "--data",
            data.to_str().unwrap(),
            "--out",
            rep.to_str().unwrap(),
            "--bootstrap",
            "50",
        ]);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
        let by_id: BTreeMap<String, String> = scored
            .iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap().to_string(),
                    v[task]["label"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for p in r["predictions"].as_array().unwrap() {
            assert_eq!(
                by_id[p["id"].as_str().unwrap()],
                p["pred"].as_str().unwrap(),
                "{task}"
            );
        }
    }

    // a report compared with itself: no difference, not significant
    let cmp = vocmine(&[
        "eval",
        "--compare",
        report.to_str().unwrap(),
        report.to_str().unwrap(),
    ]);
    assert!(cmp.contains("12 common examples"), "{cmp}");
    assert!(
        cmp.lines()
            .filter(|l| l.starts_with("accuracy") || l.starts_with("macro-F1"))
            .all(|l| l.trim_end().ends_with("no")),
        "{cmp}"
    );
}

#[test]
fn suite_writes_one_markdown_table() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let suite = dir.path().join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            "corpora = {:?}\n[[run]]\nname = \"tiny\"\ndata = \"labelled.jsonl\"\ntask = \"sentiment\"\n\n[[run]]\nname = \"absent\"\ndata = \"labelled.jsonl\"\ntask = \"no_such_task\"\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let md = dir.path().join("suite.md");
    vocmine(&[
        "eval",
        "--suite",
        suite.to_str().unwrap(),
        "--md",
        md.to_str().unwrap(),
        "--bootstrap",
        "200",
    ]);
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(
        table.starts_with("| corpus | task | n | accuracy"),
        "{table}"
    );
    assert!(table.contains("| tiny | sentiment | 12 |"), "{table}");
    assert!(
        table.contains("| absent | no_such_task | | not run: the model has no `no_such_task` head"),
        "{table}"
    );
    assert!(table.contains("Whole suite:"));
}

/// Issue floor: the shipped 10-shot banking77 head (10 train examples per intent + names,
/// refined prototypes) reaches 80% on banking77 test.
#[test]
fn banking77_ten_shot_head_reaches_eighty_percent() {
    let Some(test) = common::shared("corpora/banking77/test.jsonl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b77.json");
    vocmine(&[
        "eval",
        "--task",
        "banking77_10shot",
        "--data",
        test.to_str().unwrap(),
        "--bootstrap",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["n"], 3080);
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.80, "banking77 10-shot accuracy {acc}");
    assert!(r["ece"].as_f64().unwrap() < 0.08);
}

/// `train --relabel` maps and drops labels as the files are read, before `--max-per-file`
/// takes its per-file cap; a cap list of the wrong length is a clear error.
#[test]
fn train_relabels_then_caps_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sentiment = write_data(d);
    let intents = d.join("intents.jsonl");
    let rows = [
        ("Where is my order 1234?", "track_order"),
        ("How do I change my delivery address?", "change_address"),
        ("请问可以开发票吗？", "get_invoice"),
        ("Can you send me the invoice again?", "get_invoice"),
        ("请帮我取消订单", "cancel_order"),
        ("What payment methods do you accept?", "payment_methods"),
        ("I want to file a complaint about your staff", "complaint"),
        ("你们的服务太差了，我要投诉", "complaint"),
        ("Your service is terrible, complaint incoming", "complaint"),
    ];
    write_rows(&intents, "i", &rows);
    let model = common::model_dir();
    let (s, i) = (sentiment.to_str().unwrap(), intents.to_str().unwrap());
    let args = |caps: &str| -> Vec<String> {
        [
            "train",
            "--task",
            "sentiment",
            "--model",
            model.to_str().unwrap(),
            "--data",
            s,
            "--data",
            i,
            "--relabel",
            "complaint=-,*=neutral",
            "--labels",
            "negative,neutral,positive",
            "--max-per-file",
            caps,
            "--hidden",
            "0",
            "--epochs",
            "3",
            "--out",
            "head",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let train = |caps: &str| -> serde_json::Value {
        let a = args(caps);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        common::vocmine_in(d, &refs);
        serde_json::from_slice(&std::fs::read(d.join("head.json")).unwrap()).unwrap()
    };
    let rows_used = |meta: &serde_json::Value| {
        let t = &meta["training"];
        t["n_train"].as_u64().unwrap() + t["n_dev"].as_u64().unwrap()
    };
    // 12 sentiment rows + the 6 intent rows left after dropping the 3 complaints
    let meta = train("12,8");
    assert_eq!(rows_used(&meta), 18);
    assert_eq!(
        meta["labels"],
        serde_json::json!(["negative", "neutral", "positive"])
    );
    let t = &meta["training"];
    assert_eq!(
        t["relabel"],
        serde_json::json!(["complaint=-", "*=neutral"])
    );
    assert_eq!(t["max_per_file"], serde_json::json!([12, 8]));
    // the second file's own cap
    assert_eq!(rows_used(&train("12,4")), 16);

    // three caps for two files
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(d)
        .env("VOCMINE_CACHE", d.join("cache"))
        .args(args("12,4,4"));
    let err = common::stderr_of_failure(cmd);
    assert!(
        err.contains("--max-per-file has 3 values for 2 --data files"),
        "{err}"
    );
}

/// Issue 29.12: a head trained with the defaults on the sample corpus's 300 pain-point labels
/// used to stop at 40% on its held-out 10% (an MLP that barely moves in the few minibatch steps
/// a small set gives). Small sets now get the nearest-prototype head refined by logistic
/// regression; `--into` names the head in the bundle, and `score` then runs it.
#[test]
fn a_small_label_set_trains_a_useful_head_into_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = common::model_dir();
    let bundle = d.join("bundle");
    std::fs::create_dir_all(bundle.join("heads")).unwrap();
    let manifest = bundle.join("vocmine.toml");
    std::fs::write(
        &manifest,
        format!(
            "# a bundle of my own\nencoder = \"{}\"\nencoder_overlay = \"{}\"\n\n[tasks.sentiment]\nhead = \"{}\"\n",
            m.join("multilingual-e5-small-zh-en").display(),
            m.join("finetuned/encoder-top.safetensors").display(),
            m.join("finetuned/heads/sentiment_mlp").display()
        ),
    )
    .unwrap();
    let sample = common::root().join("corpora/sample/comments.csv");
    let (b, s) = (bundle.to_str().unwrap(), sample.to_str().unwrap());
    let train = |extra: &[&str]| -> (String, serde_json::Value) {
        let mut args = vec![
            "train",
            "--task",
            "pain_point",
            "--label-field",
            "pain_point",
            "--data",
            s,
            "--model",
            b,
            "--out",
            "bundle/heads/pain_point",
        ];
        args.extend_from_slice(extra);
        let out = common::vocmine_in(d, &args);
        let meta =
            serde_json::from_slice(&std::fs::read(bundle.join("heads/pain_point.json")).unwrap())
                .unwrap();
        (out, meta)
    };
    let dev =
        |meta: &serde_json::Value| meta["training"]["report"]["dev_accuracy"].as_f64().unwrap();

    // The MLP with its defaults, as before (forced): the 40% of the issue.
    let (_, mlp) = train(&["--method", "mlp"]);
    assert!(dev(&mlp) < 0.5, "{}", mlp["training"]);

    // The defaults: the prototype head, and the lines to add to the bundle.
    let (out, meta) = train(&[]);
    assert_eq!(meta["training"]["report"]["method"], "prototype+lr");
    assert!(dev(&meta) >= 0.75, "{}", meta["training"]);
    assert!(
        out.contains("[tasks.pain_point]\nhead = \"heads/pain_point\""),
        "{out}"
    );
    assert!(!std::fs::read_to_string(&manifest)
        .unwrap()
        .contains("pain_point"));

    // --into writes them, keeping the file's comments and other tasks.
    train(&["--into", manifest.to_str().unwrap()]);
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.starts_with("# a bundle of my own"), "{text}");
    assert!(
        text.contains("[tasks.pain_point]\nhead = \"heads/pain_point\""),
        "{text}"
    );
    let run = d.join("run");
    common::vocmine_in(
        d,
        &[
            "score",
            s,
            "--out",
            run.to_str().unwrap(),
            "--model",
            b,
            "--no-index",
        ],
    );
    let rows = common::read_jsonl(&run.join("scored.jsonl"));
    assert_eq!(rows.len(), 300);
    let right = rows
        .iter()
        .zip(csv::Reader::from_path(&sample).unwrap().records())
        .filter(|(r, rec)| r["pain_point"]["label"] == rec.as_ref().unwrap()[9])
        .count();
    assert!(
        right >= 240,
        "{right} of 300 right on its own training data"
    );
    assert!(rows.iter().all(|r| r["sentiment"]["label"].is_string()));

    // --into another bundle than the one trained on is refused.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(d)
        .env("VOCMINE_CACHE", d.join("cache"))
        .args([
            "train",
            "--task",
            "pain_point",
            "--label-field",
            "pain_point",
            "--data",
            s,
            "--model",
            b,
            "--out",
            "h",
            "--into",
            common::model_dir().join("vocmine.toml").to_str().unwrap(),
        ]);
    let err = common::stderr_of_failure(cmd);
    assert!(err.contains("not the manifest of the model"), "{err}");
}

/// The shipped sentiment head on the hand-written check set (corpora/handwritten, domains no
/// training set covers, never trained on): questions and requests are neutral, polar comments
/// are not. The head of 2026-11-24 found 13 of its 43 neutral comments and scored 68.5%.
#[test]
fn shipped_sentiment_finds_neutral_on_unseen_domains() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("check.json");
    vocmine(&[
        "eval",
        "--task",
        "sentiment",
        "--data",
        "corpora/handwritten/sentiment_check.jsonl",
        "--out",
        report.to_str().unwrap(),
        "--bootstrap",
        "100",
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["n"], 108);
    assert_eq!(r["neutral"]["n_neutral"], 43);
    let recall = r["neutral"]["neutral_recall"].as_f64().unwrap();
    let polar_neutral = r["neutral"]["polar_called_neutral"].as_f64().unwrap();
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(recall >= 0.75, "neutral recall {recall}");
    assert!(
        polar_neutral <= 0.08,
        "polar answered neutral {polar_neutral}"
    );
    assert!(acc >= 0.85, "accuracy {acc}");
}

/// Accuracy, neutral recall and the share of polar gold answered neutral of `vocmine eval
/// --task sentiment` on `data` with the bundle `model` (None: the shipped one).
fn sentiment_eval(model: Option<&str>, data: &str) -> (f64, f64, f64) {
    sentiment_eval_field(model, data, "label")
}

/// [`sentiment_eval`] with the gold labels in `field`.
fn sentiment_eval_field(model: Option<&str>, data: &str, field: &str) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut args = vec![
        "eval",
        "--task",
        "sentiment",
        "--data",
        data,
        "--out",
        report.to_str().unwrap(),
        "--bootstrap",
        "100",
        "--label-field",
        field,
    ];
    if let Some(m) = model {
        args.extend(["--model", m]);
    }
    vocmine(&args);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    (
        f(&r["accuracy"]),
        f(&r["neutral"]["neutral_recall"]),
        f(&r["neutral"]["polar_called_neutral"]),
    )
}

/// The full-depth bundle (models/fulldepth: all 12 layers tuned with neutral rows in zh and en,
/// MODEL_CARD.md "Full depth with every neutral source") against the shipped one: measured
/// 93.33 against 90.58 on ChnSentiCorp's test split; on the hand-written check (domains no
/// training set covers) it finds neutral comments (95% recall, 97.2% accuracy measured) and on
/// the sample 39 of its 67 neutral comments (86.67% accuracy; the shipped bundle 81.00, 31).
#[test]
fn full_depth_bundle_beats_the_shipped_sentiment_and_keeps_neutral() {
    let Some(test) = common::shared("corpora/chnsenticorp_12k/test.jsonl") else {
        return;
    };
    let test = test.to_str().unwrap();
    let (full, _, full_polar) = sentiment_eval(Some("models/fulldepth"), test);
    let (shipped, _, _) = sentiment_eval(None, test);
    assert!(
        full >= shipped + 0.015,
        "ChnSentiCorp test: full depth {full}, shipped {shipped}"
    );
    assert!(full_polar <= 0.01, "polar answered neutral {full_polar}");
    let check = "corpora/handwritten/sentiment_check.jsonl";
    let (acc, recall, polar) = sentiment_eval(Some("models/fulldepth"), check);
    assert!(acc >= 0.85, "check accuracy {acc}");
    assert!(recall >= 0.75, "check neutral recall {recall}");
    assert!(polar <= 0.08, "check polar answered neutral {polar}");
    let sample = "corpora/sample/comments.csv";
    let (acc, recall, polar) = sentiment_eval_field(Some("models/fulldepth"), sample, "sentiment");
    assert!(acc >= 0.85, "sample accuracy {acc}");
    assert!(recall >= 0.55, "sample neutral recall {recall}");
    assert!(polar <= 0.05, "sample polar answered neutral {polar}");
}
