//! `vocmine train --finetune`: the real encoder, real corpora, a small run. Checks that it
//! learns, that an interrupted run resumes to exactly the uninterrupted result, and that the
//! bundle it writes loads with the tuned layers merged (both engines agree).

mod common;

use std::path::Path;
use vocmine::encode::{cosine, EncoderConfig, Engine};
use vocmine::model::ModelSpec;

fn spec(dir: &Path, corpora: &Path, file: &str, extra: &str) -> std::path::PathBuf {
    spec_with(dir, corpora, file, extra, "")
}

fn spec_with(
    dir: &Path,
    corpora: &Path,
    file: &str,
    extra: &str,
    task_extra: &str,
) -> std::path::PathBuf {
    // `extra` lines replace the defaults of the same key; `task_extra` lines go in the task
    let defaults = "layers = 1\nepochs = 4\nbatch_size = 16\nlr = 3e-4\nhead_lr = 1e-2\n\
                    eval_every = 8\npatience = 10\ncheckpoint_every = 2\nseed = 7";
    let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
    let given: Vec<String> = extra.lines().map(key).collect();
    let settings: Vec<&str> = extra
        .lines()
        .chain(defaults.lines().filter(|l| !given.contains(&key(l))))
        .collect();
    let s = format!(
        r#"corpora = "{}"
[settings]
{}

[[task]]
name = "sentiment"
labels = ["negative", "positive"]
train = ["chnsenticorp_12k/train.jsonl"]
dev = ["chnsenticorp_12k/dev.jsonl"]
max_per_file = 128
max_dev_per_file = 64
hidden = 0
{}
"#,
        corpora.display(),
        settings.join("\n"),
        task_extra
    );
    let p = dir.join(file);
    std::fs::write(&p, s).unwrap();
    p
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn finetune_learns_resumes_exactly_and_loads_merged() {
    let Some(corpora) = common::shared("corpora") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let anchored = spec(d, &corpora, "anchored.toml", "anchor = 2.0");
    // the same anchor in the settings, turned off for the (only) task: the free run again
    let unanchored_task = spec_with(d, &corpora, "off.toml", "anchor = 2.0", "anchor = 0.0");
    let spec = spec(d, &corpora, "ft.toml", "");
    let model = common::model_dir();
    let base_encoder = model.join("multilingual-e5-small-zh-en");
    let args = |spec: &Path, out: &str| -> Vec<String> {
        [
            "train",
            "--finetune",
            spec.to_str().unwrap(),
            "--model",
            base_encoder.to_str().unwrap(),
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |extra: &[&str], out: &str| {
        let mut a = args(&spec, out);
        a.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        common::vocmine_in(d, &refs)
    };

    // uninterrupted
    run(&[], "a");
    let a = d.join("a");
    let report: serde_json::Value =
        serde_json::from_slice(&read(&a.join("finetune.json"))).unwrap();
    let rep = &report["report"];
    assert_eq!(rep["finished"], true);
    assert_eq!(rep["total_steps"], 32, "4 epochs of 128/16 batches");
    let hist = rep["history"].as_array().unwrap();
    assert_eq!(hist[0]["step"], 0, "the starting point is evaluated");
    assert_eq!(
        hist.iter()
            .map(|p| p["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 8, 16, 24, 32]
    );
    let start = hist[0]["score"].as_f64().unwrap();
    let best = rep["best"]["score"].as_f64().unwrap();
    // a random head starts near chance on the balanced dev sample; the frozen encoder with a
    // linear head reaches ~88% on this corpus
    assert!(start < 0.7, "start {start}");
    assert!(best >= 0.7, "best dev accuracy {best} (start {start})");
    assert!(
        !a.join("checkpoint").exists(),
        "a finished run removes its checkpoint"
    );

    // interrupted after 5 steps (a checkpoint at step 4), then resumed: same bytes out
    run(&["--stop-after", "5"], "b");
    let b = d.join("b");
    assert!(b.join("checkpoint/checkpoint.json").is_file());
    assert!(!b.join("encoder-top.safetensors").exists());
    run(&[], "b");
    for f in ["encoder-top.safetensors", "heads/sentiment.safetensors"] {
        assert!(
            read(&a.join(f)) == read(&b.join(f)),
            "{f} differs after resume"
        );
    }
    // the head's metadata too, but for the seconds it took
    let meta = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&read(&dir.join("heads/sentiment.json"))).unwrap();
        let t = &mut v["training"];
        t["seconds"] = serde_json::Value::Null;
        t["best"]["seconds"] = serde_json::Value::Null;
        v
    };
    assert_eq!(meta(&a), meta(&b));

    // the bundle: base encoder + overlay of layer 12 + the head
    let bundle = ModelSpec::open(&a).unwrap();
    assert!(bundle.encoder_overlay.is_some());
    assert_eq!(bundle.default_tasks, vec!["sentiment".to_string()]);
    let texts = [
        "物流太慢了，等了一个星期",
        "shipping was slow",
        "質量很好，推薦購買",
    ];
    let cfg = |engine| EncoderConfig {
        engine,
        threads: 1,
        workers: 1,
        ..EncoderConfig::default()
    };
    let packed = bundle.load_encoder(cfg(Engine::Packed)).unwrap();
    let candle = bundle.load_encoder(cfg(Engine::Candle)).unwrap();
    let base = ModelSpec::open(&base_encoder)
        .unwrap()
        .load_encoder(cfg(Engine::Packed))
        .unwrap();
    let (ep, _) = packed.encode(&texts).unwrap();
    let (ec, _) = candle.encode(&texts).unwrap();
    let (eb, _) = base.encode(&texts).unwrap();
    for i in 0..texts.len() {
        let c = cosine(&ep[i], &ec[i]);
        assert!(
            c > 0.99999,
            "text {i}: packed vs candle with the overlay: {c}"
        );
        let moved = ep[i]
            .iter()
            .zip(&eb[i])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            moved > 1e-4,
            "text {i}: the tuned layer changed nothing ({moved})"
        );
    }
    assert_ne!(
        packed.fingerprint().unwrap(),
        base.fingerprint().unwrap(),
        "the overlay is part of the fingerprint"
    );
    // the bundle scores with its head
    let heads = bundle.load_heads(None, &packed).unwrap();
    let probs = heads[0].predict(&ep).unwrap();
    assert_eq!(probs[0].len(), 2);
    assert!((probs[0].iter().sum::<f32>() - 1.0).abs() < 1e-4);

    // the anchor term holds the tuned embeddings near the base encoder's, and still learns
    let a2 = args(&anchored, "c");
    common::vocmine_in(d, &a2.iter().map(String::as_str).collect::<Vec<_>>());
    let c = d.join("c");
    let report: serde_json::Value =
        serde_json::from_slice(&read(&c.join("finetune.json"))).unwrap();
    let best_c = report["report"]["best"]["score"].as_f64().unwrap();
    assert!(
        best_c > start + 0.05,
        "anchored best dev accuracy {best_c} (start {start})"
    );
    let anchored = ModelSpec::open(&c)
        .unwrap()
        .load_encoder(cfg(Engine::Packed))
        .unwrap();
    let (ea, _) = anchored.encode(&texts).unwrap();
    let drift = |e: &[Vec<f32>]| -> f32 {
        (0..texts.len())
            .map(|i| 1.0 - cosine(&e[i], &eb[i]))
            .sum::<f32>()
    };
    let (free, held) = (drift(&ep), drift(&ea));
    assert!(
        held < 0.75 * free,
        "anchored drift {held} should be well under the free run's {free}"
    );

    // a task's own `anchor = 0` overrides the settings' 2.0: the weights of the free run
    let a3 = args(&unanchored_task, "e");
    common::vocmine_in(d, &a3.iter().map(String::as_str).collect::<Vec<_>>());
    let e = d.join("e");
    assert!(
        read(&e.join("encoder-top.safetensors")) == read(&a.join("encoder-top.safetensors")),
        "a task with anchor = 0 trains as if the anchor were off"
    );
    assert!(
        read(&e.join("encoder-top.safetensors")) != read(&c.join("encoder-top.safetensors")),
        "and unlike the anchored run"
    );

    // per-label weights override the task's: every label at 0 is the free run again, bit for bit
    let by_label = |file: &str, setting: &str, map: &str| {
        spec_with(
            d,
            &corpora,
            file,
            setting,
            &format!("anchor_by_label = {{ {map} }}"),
        )
    };
    let zeros = by_label(
        "zeros.toml",
        "anchor = 2.0",
        "negative = 0.0, positive = 0.0",
    );
    let a4 = args(&zeros, "f");
    common::vocmine_in(d, &a4.iter().map(String::as_str).collect::<Vec<_>>());
    let top = |dir: &str| read(&d.join(dir).join("encoder-top.safetensors"));
    assert!(
        top("f") == top("a"),
        "every label at anchor 0 trains as if the anchor were off"
    );
    // only the negative texts held: neither the free nor the fully anchored run, and it learns
    let neg = by_label("neg.toml", "anchor = 0.0", "negative = 2.0");
    let a5 = args(&neg, "g");
    common::vocmine_in(d, &a5.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(top("g") != top("a") && top("g") != top("c"));
    let report: serde_json::Value =
        serde_json::from_slice(&read(&d.join("g").join("finetune.json"))).unwrap();
    assert_eq!(
        report["tasks"][0]["label_anchor"],
        serde_json::json!([2.0, 0.0]),
        "the resolved per-label weights are recorded"
    );
    let best_g = report["report"]["best"]["score"].as_f64().unwrap();
    assert!(best_g > start + 0.05, "best dev {best_g} (start {start})");
    // relations instead of positions: the anchor holds the pairwise similarities of the texts,
    // which drift less than in the free run, while the positions may move
    let rel = spec_with(
        d,
        &corpora,
        "rel.toml",
        "anchor = 20.0",
        "anchor_relations = true",
    );
    let a6 = args(&rel, "k");
    common::vocmine_in(d, &a6.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(top("k") != top("c") && top("k") != top("a"));
    let report: serde_json::Value =
        serde_json::from_slice(&read(&d.join("k").join("finetune.json"))).unwrap();
    assert_eq!(report["tasks"][0]["anchor_relations"], true);
    let best_k = report["report"]["best"]["score"].as_f64().unwrap();
    assert!(best_k > start + 0.05, "best dev {best_k} (start {start})");
    let dev_texts: Vec<String> =
        std::fs::read_to_string(corpora.join("chnsenticorp_12k/dev.jsonl"))
            .unwrap()
            .lines()
            .take(24)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["text"].as_str().unwrap().to_string()
            })
            .collect();
    let dev_texts: Vec<&str> = dev_texts.iter().map(String::as_str).collect();
    let embed = |dir: &Path| {
        ModelSpec::open(dir)
            .unwrap()
            .load_encoder(cfg(Engine::Packed))
            .unwrap()
            .encode(&dev_texts)
            .unwrap()
            .0
    };
    let (e_base, e_free, e_rel) = (embed(&base_encoder), embed(&a), embed(&d.join("k")));
    let relation_drift = |e: &[Vec<f32>]| -> f32 {
        let mut s = 0.0;
        for i in 0..e.len() {
            for j in i + 1..e.len() {
                s += (cosine(&e[i], &e[j]) - cosine(&e_base[i], &e_base[j])).abs();
            }
        }
        s
    };
    let (free, held) = (relation_drift(&e_free), relation_drift(&e_rel));
    assert!(
        held < 0.75 * free,
        "relation drift {held} should be well under the free run's {free}"
    );

    // a label the task does not have is an error naming it and the task's labels
    let typo = by_label("typo.toml", "", "neutral = 1.0");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(d).args(args(&typo, "h"));
    let err = common::stderr_of_failure(cmd);
    assert!(
        err.contains("typo.toml")
            && err.contains("\"neutral\"")
            && err.contains("negative, positive"),
        "{err}"
    );
}

#[test]
fn bad_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // checked before any data or model is read, so the corpora need not exist; a task's own
    // anchor is checked as early, and its error names the task
    for (file, setting, task_setting, expect) in [
        ("bad.toml", "anchor = -1.0", "", "settings.anchor = -1"),
        ("zero.toml", "batch_size = 0", "", "settings.batch_size = 0"),
        ("warm.toml", "warmup = 1.5", "", "settings.warmup = 1.5"),
        (
            "budget.toml",
            "time_budget = -1.0",
            "",
            "settings.time_budget = -1",
        ),
        (
            "task.toml",
            "",
            "anchor = -2.0",
            "task sentiment: anchor = -2",
        ),
        (
            "label.toml",
            "",
            "anchor_by_label = { negative = -1.0 }",
            "task sentiment (label negative): anchor = -1",
        ),
    ] {
        let spec = spec_with(d, &d.join("no-corpora"), file, setting, task_setting);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
        cmd.current_dir(d)
            .args(["train", "--finetune"])
            .arg(&spec)
            .args(["--out"])
            .arg(d.join("out"));
        let err = common::stderr_of_failure(cmd);
        assert!(err.contains(file) && err.contains(expect), "{err}");
        assert!(!d.join("out").exists());
    }
}

#[test]
fn spec_relabels_caps_per_file_and_stops_at_the_time_budget() {
    let Some(corpora) = common::shared("corpora") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // clinc150's assistant queries join the sentiment task as `neutral` rows (16 of them), the
    // review corpus gives 64; a budget of a millisecond ends the run after its first step
    let s = format!(
        r#"corpora = "{}"
[settings]
layers = 1
epochs = 2
batch_size = 16
eval_every = 4
seed = 3

[[task]]
name = "sentiment"
labels = ["negative", "neutral", "positive"]
train = ["chnsenticorp_12k/train.jsonl", "clinc150/train.jsonl",
         "semeval2014_absa/restaurants_train.jsonl", "./own.jsonl"]
label_field = ["label", "label", "aspects.polarity", "tone"]
max_per_file = [64, 16, 8, 100]
relabel = ["conflict=-", "*=neutral"]
dev = ["chnsenticorp_12k/dev.jsonl"]
max_dev_per_file = 32
hidden = 0
"#,
        corpora.display()
    );
    let spec = d.join("mixed.toml");
    std::fs::write(&spec, s).unwrap();
    // a file of the user's own beside the spec (`./`: from the working directory), with its
    // label in another field; SemEval's sentences read the polarity their aspects agree on
    std::fs::write(
        d.join("own.jsonl"),
        "{\"text\": \"请问可以开发票吗\", \"tone\": \"neutral\"}\n\
         {\"text\": \"物流太慢了\", \"tone\": \"negative\"}\n\
         {\"text\": \"no tone here\"}\n",
    )
    .unwrap();
    let base = common::model_dir().join("multilingual-e5-small-zh-en");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .current_dir(d)
        .env("VOCMINE_CACHE", d.join("cache"))
        .args(["train", "--finetune"])
        .arg(&spec)
        .arg("--model")
        .arg(&base)
        .args(["--out", "out", "--time-budget", "0.001"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("clinc150/train.jsonl: relabel changed")
            && err.contains("time budget of 0 s reached at step 1 of 12"),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&read(&d.join("out/finetune.json"))).unwrap();
    assert!(
        err.contains("own.jsonl: 1 rows without \"tone\" skipped")
            && err.contains("restaurants_train.jsonl: relabel"),
        "{err}"
    );
    // 64 + 16 + 8 + the 2 own rows with a tone; dev read with `dev_label_field` (label)
    assert_eq!(report["train_dev_counts"], serde_json::json!([[90, 32]]));
    let rep = &report["report"];
    assert_eq!(rep["steps"], 1);
    assert_eq!(rep["finished"], true);
    assert_eq!(rep["stopped_by_budget"], true);
    // the starting point and the point where the budget ran out
    assert_eq!(rep["history"].as_array().unwrap().len(), 2);
    assert!(d.join("out/encoder-top.safetensors").exists());

    // a list of caps, or of label fields, must have one value per train file
    let bad = d.join("bad.toml");
    for (from, to, msg) in [
        (
            "[64, 16, 8, 100]",
            "[64, 16, 8]",
            "max_per_file has 3 values for 4 train files",
        ),
        (
            ", \"tone\"]",
            "]",
            "label_field has 3 values for 4 train files",
        ),
    ] {
        let text = std::fs::read_to_string(&spec).unwrap().replace(from, to);
        std::fs::write(&bad, text).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
        cmd.current_dir(d)
            .args(["train", "--finetune"])
            .arg(&bad)
            .args(["--model"])
            .arg(&base)
            .args(["--out", "bad"]);
        let err = common::stderr_of_failure(cmd);
        assert!(err.contains(msg), "{err}");
    }
}
