//! End-to-end scoring runs on real files with the shipped model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use vocmine::encode::EncoderConfig;
use vocmine::ingest::IngestConfig;
use vocmine::model::ModelSpec;
use vocmine::pipeline::{score, ScoreConfig};
use vocmine::text::normalise::{id_card_check_char, NormaliseConfig};
use vocmine::text::segment::Segmenter;

fn run(inputs: Vec<std::path::PathBuf>, out: &Path, mask: bool) -> vocmine::pipeline::Summary {
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let enc = spec.load_encoder(EncoderConfig::default()).unwrap();
    let heads = spec.load_heads(None, &enc).unwrap();
    let cfg = ScoreConfig {
        inputs,
        out_dir: out.to_path_buf(),
        ingest: IngestConfig::default(),
        normalise: NormaliseConfig { mask_pii: mask },
        chunk_size: 4,
        checkpoint_every: 1,
        keep_tokens: true,
        save_embeddings: true,
        model_version: "test".into(),
        tier_weights: vocmine::severity::default_tier_weights(),
    };
    score(&cfg, &enc, &heads, None, &Segmenter::new(), |_| {}).unwrap()
}

fn id_card() -> String {
    let first17 = [4, 4, 0, 3, 0, 5, 1, 9, 8, 8, 1, 1, 2, 5, 0, 4, 2];
    first17
        .iter()
        .map(|d| char::from(b'0' + *d as u8))
        .collect::<String>()
        + &id_card_check_char(&first17).to_string()
}

#[test]
fn every_record_ends_in_output_or_rejects_and_no_pii_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tickets.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    f.write_all("\u{feff}id,text,time,channel,rating,tier,product\n".as_bytes())
        .unwrap();
    let id = id_card();
    let rows: Vec<String> = vec![
        "c1,物流太慢了，等了一个星期还没到,2026-10-01T10:00:00+08:00,app_review,1,VIP,X5".into(),
        "c2,\"Great service, thanks! 😀👍\",2026-10-02,twitter,5,regular,".into(),
        "c3,退貨流程太麻煩了,2026-10-03,wechat,2,gold,RoboVac".into(),
        "c4,\"App 一直 crash，登录不了\",,web_form,,new,app".into(),
        "c5,too,many,fields,here,x,y,z".into(),
        "c6,,2026-10-04,email,3,regular,".into(),
        "c7,\"\u{0001}\u{0002}  \t \",2026-10-04,email,3,regular,".into(),
        format!("c8,\"call me on 13812345678 or mail zhang.wei@example.com, ID {id}\",2026-10-05,hotline,1,VIP,"),
        "c9,\"beep\u{0007} control\u{0008} chars\",2026-10-05,email,,regular,".into(),
        format!("c10,\"{}\",2026-10-06,email,2,regular,", "质量太差了".repeat(70_000)),
        "c11,fine,2026-10-06,email,five stars,regular,".into(),
        "c1,duplicate id,2026-10-06,email,3,regular,".into(),
    ];
    for r in &rows {
        writeln!(f, "{r}").unwrap();
    }
    f.write_all(b"c12,\"bad \xff\xfe utf8\",2026-10-07,email,1,regular,\n")
        .unwrap();
    drop(f);
    let jsonl = dir.path().join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"j1\", \"text\": \"客服电话打不通 +86 139 1234 5678\"}\n{\"id\": \"j2\", \"text\": \n{\"id\": \"j3\", \"text\": 42}\n{\"id\": \"j4\"}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let sum = run(vec![csv.clone(), jsonl.clone()], &out, true);

    let scored = common::read_jsonl(&out.join("scored.jsonl"));
    let rejects = common::read_jsonl(&out.join("rejects.jsonl"));
    assert_eq!(sum.records, 17);
    assert_eq!(sum.scored as usize, scored.len());
    assert_eq!(sum.rejected as usize, rejects.len());
    assert_eq!(
        scored.len() + rejects.len(),
        17,
        "every record in exactly one file"
    );
    let scored_ids: BTreeSet<&str> = scored.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(
        scored_ids,
        ["c1", "c2", "c3", "c4", "c8", "c9", "c10", "j1"]
            .into_iter()
            .collect()
    );
    let rej: BTreeMap<(String, u64), (String, String)> = rejects
        .iter()
        .map(|r| {
            (
                (
                    Path::new(r["file"].as_str().unwrap())
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                    r["line"].as_u64().unwrap(),
                ),
                (
                    r["field"].as_str().unwrap_or("").to_string(),
                    r["reason"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    let reason = |f: &str, l: u64| rej.get(&(f.to_string(), l)).cloned().unwrap_or_default();
    assert!(reason("tickets.csv", 6).1.contains("expected 7 fields"));
    assert_eq!(reason("tickets.csv", 7).0, "text"); // empty text
    assert_eq!(reason("tickets.csv", 8).0, "text"); // only control characters
    assert_eq!(reason("tickets.csv", 12).0, "rating");
    assert!(reason("tickets.csv", 13).1.starts_with("duplicate id"));
    let (field, why) = reason("tickets.csv", 14);
    assert_eq!(field, "text");
    assert!(
        why.starts_with("invalid UTF-8 (if the file is not UTF-8"),
        "{why}"
    );
    assert!(reason("more.jsonl", 2).1.starts_with("invalid JSON"));
    assert_eq!(reason("more.jsonl", 3).0, "text");
    assert_eq!(
        reason("more.jsonl", 4),
        ("text".into(), "missing text field".into())
    );

    // tags, languages and sentiment look right
    let by_id: BTreeMap<&str, &serde_json::Value> = scored
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v))
        .collect();
    assert_eq!(by_id["c1"]["lang"], "zh");
    assert_eq!(by_id["c2"]["lang"], "en");
    assert_eq!(by_id["c3"]["lang"], "zh-Hant");
    assert_eq!(
        by_id["c3"]["text"], "退貨流程太麻煩了",
        "original script kept"
    );
    assert_eq!(by_id["c4"]["lang"], "mixed");
    assert_eq!(by_id["c1"]["tier"], "VIP");
    assert_eq!(by_id["c1"]["rating"], 1.0);
    assert_eq!(by_id["c9"]["text"], "beep control chars");
    assert_eq!(
        by_id["c10"]["n_tokens"], 128,
        "long text truncated to max_len"
    );
    assert_eq!(by_id["c1"]["sentiment"]["label"], "negative");
    assert_eq!(by_id["c2"]["sentiment"]["label"], "positive");
    let s = by_id["c2"]["sentiment"]["score"].as_f64().unwrap();
    assert!(s > 0.5 && s <= 1.0, "{s}");
    let probs: f64 = by_id["c1"]["sentiment"]["probs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-3);
    assert!(by_id["c3"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "退货"));
    // embeddings row-aligned with scored.jsonl
    let emb = std::fs::metadata(out.join("embeddings.f32")).unwrap().len();
    assert_eq!(emb, scored.len() as u64 * 384 * 4);

    // no personal data in any output file; the kinds masked, in order of appearance
    assert_eq!(
        by_id["c8"]["masked"],
        serde_json::json!(["PHONE", "EMAIL", "ID_CARD"])
    );
    let mut files = Vec::new();
    let mut dirs = vec![out.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 6, "outputs and checkpoint parts: {files:?}");
    for p in files {
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "13812345678",
            "zhang.wei@example.com",
            id.as_str(),
            "1234 5678",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {}",
                p.display()
            );
        }
    }
    assert!(!out.join("scored.jsonl.tmp").exists());
}

#[test]
fn no_mask_keeps_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl");
    std::fs::write(&p, "{\"text\": \"call 13812345678\"}\n").unwrap();
    let out = dir.path().join("run");
    run(vec![p], &out, false);
    let s = common::read_jsonl(&out.join("scored.jsonl"));
    assert_eq!(s[0]["text"], "call 13812345678");
    assert!(
        s[0]["id"].as_str().unwrap().starts_with('h'),
        "generated id"
    );
}

/// The README's main command on the shipped sample, through the real binary; the sentiment
/// head agrees with the hand labels on most comments.
#[test]
fn cli_scores_the_sample_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample");
    let sample = common::root().join("corpora/sample/comments.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .args([
            "score",
            sample.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(common::root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("scored 300 of 300 records (0 rejected, 0 unchanged and skipped)"),
        "{stdout}"
    );
    let scored = common::read_jsonl(&out.join("scored.jsonl"));
    let mut gold = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(&sample).unwrap();
    for r in rdr.records() {
        let r = r.unwrap();
        gold.insert(r[0].to_string(), r[7].to_string());
    }
    let hits = scored
        .iter()
        .filter(|v| gold[v["id"].as_str().unwrap()] == v["sentiment"]["label"].as_str().unwrap())
        .count();
    let acc = hits as f64 / scored.len() as f64;
    eprintln!("sample sentiment accuracy {acc:.3}");
    assert!(
        acc >= 0.70,
        "sentiment accuracy on the hand-labelled sample {acc:.3}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["scored"], 300);
    assert_eq!(
        summary["masked_comments"], 8,
        "the sample plants PII in 8 comments"
    );
    let out_text = std::fs::read_to_string(out.join("scored.jsonl")).unwrap();
    for secret in [
        "13812345678",
        "13912345678",
        "15800001234",
        "139 1234 5678",
        "110105199003071239",
        "6222 0212 3456 7894",
        "4111 1111 1111 1111",
        "@example.com",
    ] {
        assert!(!out_text.contains(secret), "{secret} leaked");
    }
}

#[test]
fn bad_model_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .args([
            "score",
            "x.csv",
            "--out",
            "y",
            "--model",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vocmine.toml") && err.contains("--model"),
        "{err}"
    );
}

/// A bundle like the shipped one whose `sentiment` head is `head`, and, with `en`, a
/// `by_language` route that answers English comments with another head.
fn bundle(dir: &Path, head: &str, en: Option<&str>) -> std::path::PathBuf {
    let m = common::model_dir();
    let route = en.map_or(String::new(), |h| {
        format!("by_language = {{ en = \"{}\" }}\n", m.join(h).display())
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("vocmine.toml"),
        format!(
            "encoder = \"{}\"\nencoder_overlay = \"{}\"\n[tasks.sentiment]\nhead = \"{}\"\n{route}",
            m.join("multilingual-e5-small-zh-en").display(),
            m.join("finetuned/encoder-top.safetensors").display(),
            m.join(head).display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

#[test]
fn a_language_route_answers_that_language_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("mixed.csv");
    std::fs::write(
        &csv,
        "id,text\nz1,物流太慢了，等了一个星期还没到\ne1,The flight was delayed three hours and nobody told us\n\
         z2,客服态度很好，问题很快解决了\ne2,Can you tell me how to change my seat?\nm1,App 一直 crash，登录不了\n",
    )
    .unwrap();
    let mlp = "finetuned/heads/sentiment_mlp";
    let linear = "finetuned/heads/sentiment";
    let sentiment = |model: &Path, out: &str| {
        let spec = ModelSpec::open(model).unwrap();
        let enc = spec.load_encoder(EncoderConfig::default()).unwrap();
        let heads = spec.load_heads(None, &enc).unwrap();
        let cfg = ScoreConfig {
            inputs: vec![csv.clone()],
            out_dir: dir.path().join(out),
            ingest: IngestConfig::default(),
            normalise: NormaliseConfig::default(),
            chunk_size: 64,
            checkpoint_every: 1,
            keep_tokens: false,
            save_embeddings: false,
            model_version: "test".into(),
            tier_weights: vocmine::severity::default_tier_weights(),
        };
        score(&cfg, &enc, &heads, None, &Segmenter::new(), |_| {}).unwrap();
        let rows = common::read_jsonl(&dir.path().join(out).join("scored.jsonl"));
        let by_id: BTreeMap<String, (String, serde_json::Value)> = rows
            .iter()
            .map(|r| {
                let lang = r["lang"].as_str().unwrap().to_string();
                let sentiment = r["sentiment"].clone();
                assert!(sentiment["probs"].is_object(), "{r}");
                (r["id"].as_str().unwrap().to_string(), (lang, sentiment))
            })
            .collect();
        (by_id, spec)
    };
    let (plain, plain_spec) = sentiment(&bundle(&dir.path().join("m1"), mlp, None), "o1");
    let (lin, _) = sentiment(&bundle(&dir.path().join("m2"), linear, None), "o2");
    let (routed, routed_spec) = sentiment(&bundle(&dir.path().join("m3"), mlp, Some(linear)), "o3");
    assert_eq!(routed.len(), 5);
    let mut english = 0;
    for (id, (lang, r)) in &routed {
        if lang == "en" {
            english += 1;
            assert_eq!(r, &lin[id].1, "{id}: English goes to the route");
            assert_ne!(r["confidence"], plain[id].1["confidence"], "{id}");
        } else {
            assert_eq!(r, &plain[id].1, "{id} ({lang}): the task's own head");
        }
    }
    assert_eq!(english, 2, "{routed:?}");
    // the route is part of the model version, so a workspace rescored with it sees a new model
    let fp = "same encoder";
    let tasks = ["sentiment".to_string()];
    assert_ne!(
        plain_spec.version(fp, &tasks).unwrap(),
        routed_spec.version(fp, &tasks).unwrap()
    );
    // a route whose labels differ from the task's is refused when the model loads
    let bad = bundle(
        &dir.path().join("m4"),
        mlp,
        Some("finetuned/heads/banking77"),
    );
    let spec = ModelSpec::open(&bad).unwrap();
    let enc = spec.load_encoder(EncoderConfig::default()).unwrap();
    let e = spec.load_heads(None, &enc).err().unwrap().to_string();
    assert!(
        e.contains("vocmine.toml") && e.contains("same labels"),
        "{e}"
    );
    // and a language code that `normalise` never gives is refused when the bundle is opened
    let typo = bundle(&dir.path().join("m5"), mlp, Some(linear));
    let man = typo.join("vocmine.toml");
    let text = std::fs::read_to_string(&man).unwrap();
    std::fs::write(&man, text.replace("{ en =", "{ english =")).unwrap();
    let e = ModelSpec::open(&typo).err().unwrap().to_string();
    assert!(
        e.contains("\"english\"") && e.contains("not a language code"),
        "{e}"
    );
}
