//! The shipped aspect heads (issue 33): aspects, spans and opposite polarities in zh and en,
//! and `vocmine eval --task aspects` on a SemEval-2014 test slice.

mod common;

use std::process::Command;
use vocmine::aspects::{AspectModel, SHIPPED_STEM};
use vocmine::encode::EncoderConfig;
use vocmine::model::ModelSpec;

/// An expected aspect: words, span, polarity.
type Want = (&'static str, [usize; 2], &'static str);

/// Issue 33's example with the shipped heads (trained with contrast pairs since 2026-12-08,
/// `models/aspects_contrast.py`): both aspects, their spans, each with its own polarity.
#[test]
fn shipped_heads_give_each_half_of_the_issue_example_its_polarity() {
    assert_two_aspects(&common::model_dir(), ISSUE_EXAMPLE);
}

/// The English counterpart: "screen" is answered negative by every aspect head trained so far,
/// in either order of the two clauses, while "The screen is great but the battery dies fast"
/// and "The screen is sharp." are right with the shipped heads (MODEL_CARD.md, "Aspects:
/// contrast pairs"): "sharp" beside a complaint, not the contrast alone.
#[test]
#[ignore = "fails: `screen` answered negative and the span is `battery dies`; MODEL_CARD.md, \
            Aspects: contrast pairs"]
fn shipped_heads_read_a_sharp_screen_as_praise() {
    assert_two_aspects(
        &common::model_dir(),
        (
            "The screen is sharp but the battery dies fast",
            [
                ("screen", [4, 10], "positive"),
                ("battery", [28, 35], "negative"),
            ],
        ),
    );
}

const ISSUE_EXAMPLE: (&str, [Want; 2]) = (
    "屏幕很清晰，电池不耐用",
    [("屏幕", [0, 2], "positive"), ("电池", [6, 8], "negative")],
);

/// The bundle at `dir` (its encoder and its own aspect heads) finds exactly the two wanted
/// aspects of `text`, with their spans and polarities.
fn assert_two_aspects(dir: &std::path::Path, (text, want): (&str, [Want; 2])) {
    let spec = ModelSpec::open(dir).unwrap();
    let enc = spec.load_encoder(EncoderConfig::default()).unwrap();
    let model = AspectModel::load(&vocmine::aspects::bundle_stem(dir)).unwrap();
    let got = &model.extract_texts(&enc, &[text]).unwrap()[0];
    assert_eq!(got.len(), 2, "{text}: {got:?}");
    for ((term, span, pol), a) in want.iter().zip(got) {
        assert_eq!(
            (a.aspect.as_str(), a.span, a.polarity.as_str()),
            (*term, *span, *pol),
            "{text}: {got:?}"
        );
        assert!(a.confidence > 0.0 && a.confidence <= 1.0, "{a:?}");
        // the span points at the aspect's words in the text
        assert_eq!(chars(text, *span), *term);
    }
}

#[test]
fn eval_on_a_semeval_test_slice_keeps_its_floor() {
    eval_slice(None);
}

/// The full-depth bundle's own aspect heads (`models/fulldepth/aspects`, found as the bundle's
/// default stem), on the slice (its floors were set with the first full-depth run: span F1
/// 83.1, polarity accuracy 87.8).
#[test]
fn the_full_depth_bundle_evaluates_its_own_aspect_heads() {
    let dir = common::model_dir().join("fulldepth");
    assert_eq!(
        vocmine::aspects::bundle_stem(&dir),
        dir.join("aspects"),
        "a bundle without finetuned/aspects uses the aspects beside its manifest"
    );
    assert_eq!(
        vocmine::aspects::bundle_stem(&common::model_dir()),
        common::model_dir().join(SHIPPED_STEM)
    );
    eval_slice(Some("models/fulldepth"));
}

/// Issue 33's targets on the whole SemEval-2014 test splits: restaurants span F1 >= 75 and
/// polarity >= 80, laptops polarity >= 75. Met by the shipped and the full-depth bundles'
/// contrast-pair heads (measured 2026-12-08: restaurants span F1 76.1 / 76.8, polarity 81.2 /
/// 82.9; laptops 76.8 / 77.4; MODEL_CARD.md, "Aspects: contrast pairs").
#[test]
fn aspect_heads_meet_the_semeval_targets() {
    for model in [None, Some("models/fulldepth")] {
        for (file, f1_min, acc_min) in [
            ("restaurants_test.jsonl", Some(0.75), 0.80),
            ("laptops_test.jsonl", None, 0.75),
        ] {
            let Some(test) = common::shared(&format!("corpora/semeval2014_absa/{file}")) else {
                return;
            };
            let (r, text) = eval_aspects(model, &test, "100");
            assert_eq!(r["sentences"].as_u64(), Some(800), "{file}");
            let acc = r["polarity"]["accuracy"].as_f64().unwrap();
            assert!(
                acc >= acc_min,
                "{model:?} {file}: polarity accuracy {acc:.4}: {text}"
            );
            if let Some(m) = f1_min {
                let f1 = r["extraction"]["f1"].as_f64().unwrap();
                assert!(f1 >= m, "{model:?} {file}: span F1 {f1:.4}: {text}");
            }
        }
    }
}

/// The issue's example with the full-depth bundle's heads (trained with contrast pairs too).
#[test]
fn the_full_depth_heads_give_each_half_of_the_issue_example_its_polarity() {
    assert_two_aspects(&common::model_dir().join("fulldepth"), ISSUE_EXAMPLE);
}

/// Mixed sentences (`corpora/handwritten/aspect_contrast_check.jsonl`: 44 sentences in zh,
/// zh-Hant and en, each with aspects of opposite polarity, 88 aspects): the shipped and the
/// full-depth bundles' heads, trained with contrast pairs, give most aspects their own side
/// (measured 2026-12-08: 72.7 and 71.6), where heads trained without them mostly gave both
/// aspects the sentence's side (58.0 and 54.5; answering one side for both scores 50). The
/// report's confusion matrix counts every scored aspect once.
#[test]
fn aspect_heads_read_each_half_of_a_mixed_sentence() {
    let check = common::root().join("corpora/handwritten/aspect_contrast_check.jsonl");
    for model in [None, Some("models/fulldepth")] {
        let (r, text) = eval_aspects(model, &check, "200");
        let p = &r["polarity"];
        assert_eq!(p["aspects"].as_u64(), Some(88), "{text}");
        let acc = p["accuracy"].as_f64().unwrap();
        assert!(
            acc >= 0.65,
            "{model:?}: mixed-sentence polarity accuracy {acc:.3}: {text}"
        );
        let confusion: Vec<Vec<u64>> = serde_json::from_value(p["confusion"].clone()).unwrap();
        assert_eq!(confusion.len(), 3);
        let total: u64 = confusion.iter().flatten().sum();
        let diagonal: u64 = (0..3).map(|i| confusion[i][i]).sum();
        assert_eq!(total, 88);
        assert!(
            (diagonal as f64 / 88.0 - acc).abs() < 1e-9,
            "{confusion:?} {acc}"
        );
        assert!(text.contains("polarity confusion (rows gold"), "{text}");
    }
}

/// `vocmine eval --task aspects` on the first 300 sentences of SemEval-2014 restaurants test
/// with the bundle `model` (None: the shipped one): span F1 and polarity accuracy over floors.
fn eval_slice(model: Option<&str>) {
    let Some(test) = common::shared("corpora/semeval2014_absa/restaurants_test.jsonl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let slice = dir.path().join("slice.jsonl");
    let body: String = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .take(300)
        .map(|l| l.to_string() + "\n")
        .collect();
    std::fs::write(&slice, body).unwrap();
    let (r, text) = eval_aspects(model, &slice, "200");
    assert!(text.contains("aspect spans"), "{text}");
    let f1 = r["extraction"]["f1"].as_f64().unwrap();
    let acc = r["polarity"]["accuracy"].as_f64().unwrap();
    let (lo, hi) = (
        r["polarity"]["accuracy_ci"]["lo"].as_f64().unwrap(),
        r["polarity"]["accuracy_ci"]["hi"].as_f64().unwrap(),
    );
    assert_eq!(r["sentences"].as_u64(), Some(300));
    assert!(lo <= acc && acc <= hi, "{r}");
    // floors a few points under the measured figures (MODEL_CARD.md, "Aspects")
    assert!(f1 >= F1_FLOOR, "span F1 {f1:.3} under {F1_FLOOR}: {text}");
    assert!(
        acc >= ACC_FLOOR,
        "polarity accuracy {acc:.3} under {ACC_FLOOR}: {text}"
    );
}

/// `vocmine eval --task aspects` on `data` with the bundle `model` (None: the shipped one) and
/// `bootstrap` resamples: the JSON report and the printed text.
fn eval_aspects(
    model: Option<&str>,
    data: &std::path::Path,
    bootstrap: &str,
) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(common::root());
    let mut args = vec![
        "eval",
        "--task",
        "aspects",
        "--data",
        data.to_str().unwrap(),
        "--bootstrap",
        bootstrap,
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(m) = model {
        args.extend(["--model", m]);
    }
    let text = common::run_checked(cmd, &args);
    let r = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (r, text)
}

// measured on this slice with the shipped heads: span F1 82.4 with Viterbi decoding (80.3 with
// the greedy decoding before it), polarity accuracy 87.8; with the full-depth bundle's: 83.1,
// 87.8
const F1_FLOOR: f64 = 0.78;
const ACC_FLOOR: f64 = 0.84;

/// Characters `[from, to)` of `s`.
fn chars(s: &str, [from, to]: [usize; 2]) -> String {
    s.chars().skip(from).take(to - from).collect()
}

/// `vocmine score --aspects` (issue 33 item 5): every record gets `aspects`, their spans point
/// into the record's shown text (masked, full-width letters and runs of spaces as given, not
/// the folded text the encoder read), the other tasks and the embeddings are the bits of a run
/// without aspects (one encoder pass), Parquet keeps them, and `--tasks` selects them.
#[test]
fn score_with_aspects_puts_them_in_every_record_with_spans_into_the_shown_text() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("c.csv");
    std::fs::write(
        &input,
        "id,text\n\
         a,屏幕很清晰，电池不耐用\n\
         b,\"  ＡＰＰ  很好用，但是电池　不耐用，打13812345678也没人管\"\n\
         c,The screen is sharp but the battery dies fast\n\
         d,谢谢\n",
    )
    .unwrap();
    let score = |out: &str, extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
            .args(["score", input.to_str().unwrap(), "--out"])
            .arg(dir.path().join(out))
            .args(["--no-index", "--output-format", "parquet"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        common::read_jsonl(&dir.path().join(out).join("scored.jsonl"))
    };
    let with = score("with", &["--aspects"]);
    let without = score("without", &[]);
    assert_eq!(with.len(), 4);
    for r in &with {
        let text = r["text"].as_str().unwrap();
        let found = r["aspects"].as_array().unwrap_or_else(|| panic!("{r}"));
        for a in found {
            let span: [usize; 2] = serde_json::from_value(a["span"].clone()).unwrap();
            assert_eq!(
                chars(text, span),
                a["aspect"].as_str().unwrap(),
                "{text}: {a}"
            );
            assert!(["negative", "neutral", "positive"].contains(&a["polarity"].as_str().unwrap()));
            let c = a["confidence"].as_f64().unwrap();
            assert!(c > 0.0 && c <= 1.0, "{a}");
        }
    }
    let by_term = |i: usize, term: &str| -> serde_json::Value {
        with[i]["aspects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["aspect"] == term)
            .unwrap_or_else(|| panic!("no {term} in {}", with[i]))
            .clone()
    };
    // the issue's example: both halves, opposite polarity
    assert_eq!(by_term(0, "屏幕")["span"], serde_json::json!([0, 2]));
    assert_eq!(by_term(0, "屏幕")["polarity"], "positive");
    assert_eq!(by_term(0, "电池")["span"], serde_json::json!([6, 8]));
    assert_eq!(by_term(0, "电池")["polarity"], "negative");
    // each put in a category of the model's list (models/taxonomies/aspect_category.toml)
    assert_eq!(by_term(0, "屏幕")["category"], "display");
    assert_eq!(by_term(0, "电池")["category"], "battery");
    // in the shown text the leading spaces are trimmed, ＡＰＰ stays full-width, the phone is
    // masked: 电池 is at shown characters 11..13 (the folded text has it at 10..12)
    let shown = with[1]["text"].as_str().unwrap();
    assert!(
        shown.starts_with("ＡＰＰ  很好用") && !shown.contains("13812345678"),
        "{shown}"
    );
    assert_eq!(by_term(1, "电池")["span"], serde_json::json!([11, 13]));
    assert_eq!(by_term(1, "电池")["polarity"], "negative");
    // the same encoder pass: embeddings and every other task as without aspects
    let emb = |r: &str| std::fs::read(dir.path().join(r).join("embeddings.f32")).unwrap();
    assert_eq!(emb("with"), emb("without"));
    for (a, b) in with.iter().zip(&without) {
        assert!(b.get("aspects").is_none());
        for task in ["sentiment", "intent", "pain_point", "journey_stage"] {
            assert_eq!(a[task], b[task], "{task}");
        }
        assert_ne!(a["model"], b["model"], "aspects change the model version");
    }
    // Parquet holds the same aspects
    let back =
        vocmine::workspace::parquet::read_scored_parquet(&dir.path().join("with/scored.parquet"))
            .unwrap();
    for (p, j) in back.iter().zip(&with) {
        let from_json: Option<Vec<vocmine::aspects::Aspect>> =
            serde_json::from_value(j["aspects"].clone()).unwrap();
        assert!(from_json.is_some());
        assert_eq!(p.aspects, from_json);
    }
    // --tasks picks aspects like any task
    let only = score("only", &["--tasks", "sentiment,aspects"]);
    assert!(only[0]["aspects"].is_array() && only[0].get("intent").is_none());
    assert_eq!(only[0]["aspects"], with[0]["aspects"]);
    // a model without aspect heads says so
    let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .args([
            "score",
            input.to_str().unwrap(),
            "--no-index",
            "--aspects",
            "--out",
        ])
        .arg(dir.path().join("frozen"))
        .arg("--model")
        .arg(common::model_dir().join("frozen"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no aspect heads"), "{err}");
}

/// The search index of a run scored with `--aspects` (issue 33 item 5): an `aspect` tag per
/// aspect (`电池:negative`), a filter (`search --aspect`) and facet counts; and a run's index
/// built before the field existed is built again by `vocmine index`, not refused.
#[test]
fn aspects_are_a_search_filter_and_facet() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("c.csv");
    std::fs::write(
        &input,
        "id,text\n\
         a,屏幕很清晰，电池不耐用\n\
         b,电池不耐用，充一次电只能用半天\n\
         c,物流很快，包装完好\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let vocmine = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let run_s = run.to_str().unwrap();
    vocmine(&[
        "score",
        input.to_str().unwrap(),
        "--out",
        run_s,
        "--aspects",
    ]);
    let records = common::read_jsonl(&run.join("scored.jsonl"));
    let with_battery: Vec<&str> = records
        .iter()
        .filter(|r| {
            r["aspects"].as_array().unwrap().iter().any(|a| {
                a["aspect"].as_str().unwrap().contains("电池") && a["polarity"] == "negative"
            })
        })
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(with_battery.contains(&"a"), "{records:?}");
    let search = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["search", run_s, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&vocmine(&args)).unwrap()
    };
    let hits = search(&["--aspect", "电池:negative"]);
    let mut ids: Vec<&str> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = records
        .iter()
        .filter(|r| {
            (r["aspects"].as_array().unwrap())
                .iter()
                .any(|a| a["aspect"] == "电池" && a["polarity"] == "negative")
        })
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    assert!(!ids.is_empty() && !ids.contains(&"c"));
    // facet counts per aspect:polarity, and the hit shows its aspects
    let all = search(&[]);
    assert_eq!(all["facets"]["aspect"]["电池:negative"], want.len());
    let a = (all["hits"].as_array().unwrap().iter())
        .find(|h| h["id"] == "a")
        .unwrap();
    let shown = a["aspect"].as_str().unwrap();
    assert!(
        shown.contains("屏幕:positive") && shown.contains("电池:negative"),
        "{shown}"
    );
    // a value the index does not hold is an error that lists the ones it does
    let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .args(["search", run_s, "--aspect", "电池:great"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("电池:negative"));
    // the report: an aspect table (JSON, CSV, the page), 电池 first with its negative mentions
    vocmine(&["report", run_s, "--lang", "en"]);
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let top = &rep["aspects"][0];
    assert_eq!(top["aspect"], "battery");
    assert_eq!(top["name"], "Battery");
    assert_eq!(top["words"][0], serde_json::json!(["电池", want.len()]));
    assert_eq!(top["negative"], want.len());
    assert_eq!(top["examples"].as_array().unwrap().len(), want.len());
    let csv = std::fs::read_to_string(run.join("report_tables/aspects.csv")).unwrap();
    // mentions, comments mentioning it, comments not mentioning it, negative, neutral, positive
    assert_eq!(top["comments"], want.len());
    assert_eq!(top["not_mentioned"], records.len() - want.len());
    let row = format!(
        "Battery,电池 {0},{0},{0},{1},{0},0,0,-1",
        want.len(),
        records.len() - want.len()
    );
    assert!(csv.contains(&row), "{csv}");
    // and the index has the category tag: battery:negative
    assert_eq!(
        all["facets"]["aspect_category"]["battery:negative"],
        want.len()
    );
    let by_cat = search(&["--aspect-category", "battery:negative"]);
    assert_eq!(by_cat["total"], want.len());
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Aspects</h2>") && html.contains("href=\"report_tables/aspects.csv\"")
    );
    // an index with another schema (an earlier version's) is rebuilt from the run's records
    let index = run.join("index");
    std::fs::remove_dir_all(&index).unwrap();
    std::fs::create_dir_all(&index).unwrap();
    let mut b = tantivy::schema::Schema::builder();
    b.add_text_field("id", tantivy::schema::STRING | tantivy::schema::STORED);
    tantivy::Index::create_in_dir(&index, b.build()).unwrap();
    vocmine(&["index", run_s]);
    assert_eq!(search(&["--aspect", "电池:negative"])["total"], want.len());
}
