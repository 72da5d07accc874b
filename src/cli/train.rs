//! `vocmine train`: a classification head on a frozen encoder's cached embeddings (or, with
//! `--few-shot K`, a nearest-prototype head from K examples per label); `--finetune` hands
//! over to [`super::finetune`].

use super::{bar, finetune, EncoderArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::classify::{ClassWeight, Targets, TrainConfig};
use vocmine::corpus::{read_labelled, EmbeddingCache, Labelled, Relabel};
use vocmine::encode::Encoder;

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Task name (the key of its result in the output), e.g. sentiment
    #[arg(long, required_unless_present = "finetune", default_value = "")]
    task: String,
    /// Training files (JSONL or CSV), repeatable
    #[arg(long, required_unless_present = "finetune")]
    data: Vec<PathBuf>,
    /// Fine-tune the encoder's top layers and the heads of several tasks jointly, as the spec
    /// file says (tasks, data, settings; see models/finetune.toml); --out is then a folder that
    /// receives a model bundle. Resumes from its checkpoint when interrupted
    #[arg(long, value_name = "SPEC")]
    finetune: Option<PathBuf>,
    /// With --finetune: how many top layers to tune [default: the spec's]
    #[arg(long)]
    layers: Option<usize>,
    /// With --finetune: stop after this many steps (a checkpoint keeps the rest; run again to
    /// resume)
    #[arg(long, default_value_t = 0)]
    stop_after: usize,
    /// With --finetune: end training after this many seconds (all invocations), keeping the
    /// best dev weights and writing the bundle (for a machine lent for a fixed time)
    #[arg(long, value_name = "SECONDS")]
    time_budget: Option<f64>,
    /// With --finetune: where training steps run (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    device: String,
    /// With --finetune: the training engine: own (the project's kernels, CPU) or candle
    /// (candle's autograd, the reference; always on a GPU)
    #[arg(long, default_value = "own", value_parser = ["own", "candle"])]
    engine: String,
    /// Dev files for early stopping and calibration, repeatable [default: hold out
    /// --dev-fraction of the training data]
    #[arg(long)]
    dev: Vec<PathBuf>,
    /// Share of the training data held out as dev when no --dev is given (seeded)
    #[arg(long, default_value_t = 0.1)]
    dev_fraction: f64,
    /// Test files to report accuracy on after training, repeatable
    #[arg(long)]
    test: Vec<PathBuf>,
    /// Label field; one for every file, or comma-separated, one per --data file in order
    /// (--dev and --test files use the first). `FIELD.SUB` takes the `SUB` value that every
    /// object of the array FIELD shares, e.g. `aspects.polarity` for the SemEval sentences
    /// whose aspects agree (the others are skipped)
    #[arg(
        long,
        default_value = "label",
        value_delimiter = ',',
        value_name = "FIELD"
    )]
    label_field: Vec<String>,
    /// Text field
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Label order, comma-separated [default: sorted labels of the training data]
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// Use at most this many examples of each training file (seeded sample, after
    /// --relabel); one value for every file, or comma-separated, one per --data file in order
    #[arg(long, value_delimiter = ',', value_name = "N")]
    max_per_file: Vec<usize>,
    /// Map labels of the training and dev files before training, FROM=TO, comma-separated or
    /// repeated: merges fine labels into coarse ones (e.g. an intent corpus's requests into
    /// `neutral`); TO = - drops the rows; FROM = * maps every label neither named nor in
    /// --labels
    #[arg(long, value_delimiter = ',', value_name = "FROM=TO")]
    relabel: Vec<String>,
    /// Few-shot: build a nearest-prototype head from K examples per label of the training data
    /// (seeded sample); no dev set or gradient training
    #[arg(long, value_name = "K")]
    few_shot: Option<usize>,
    /// With --few-shot: answer `unknown` below this confidence
    #[arg(long, default_value_t = 0.0)]
    unknown_below: f32,
    /// With --few-shot: add each label's name (underscores as spaces) as one more example of
    /// it, as a taxonomy's category names are
    #[arg(long)]
    with_label_names: bool,
    /// With --few-shot: refine the prototype head for this many full-batch steps of
    /// cross-entropy on the shots, anchored at the prototypes (0: plain prototypes)
    #[arg(long, default_value_t = 0)]
    refine_steps: usize,
    /// With --refine-steps: learning rate
    #[arg(long, default_value_t = 1e-3)]
    refine_lr: f64,
    /// With --refine-steps: weight of the L2 pull towards the prototype weights
    #[arg(long, default_value_t = 1e-3)]
    refine_anchor: f64,
    /// How to train: `mlp` (minibatch AdamW, early stopping on dev), `prototype` (the nearest-
    /// prototype head of all training rows refined by logistic regression, the refinement step
    /// chosen on dev; single-label only), or `auto`: `prototype` for a small single-label set
    /// (under 2,000 rows or under 50 rows per label) unless --hidden, --epochs or --lr is
    /// given, else `mlp`
    #[arg(long, default_value = "auto", value_parser = ["auto", "mlp", "prototype"])]
    method: String,
    /// Hidden width of the MLP head (0 = linear) [default: 256]
    #[arg(long)]
    hidden: Option<usize>,
    /// Maximum epochs of the MLP head [default: 60]
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate of the MLP head [default: 0.001]
    #[arg(long)]
    lr: Option<f64>,
    /// Class weighting for imbalanced labels
    #[arg(long, default_value = "sqrt", value_parser = ["none", "sqrt", "balanced"])]
    class_weight: String,
    /// Seed for sampling, initialisation and shuffling
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output head stem (writes STEM.json and STEM.safetensors); with --finetune, a folder
    #[arg(long)]
    out: PathBuf,
    /// Also name the head as --task's head in this bundle manifest (a vocmine.toml, or its
    /// folder), which must be the bundle of --model (the head only fits that encoder); the rest
    /// of the file is kept. Without it, the lines to add are printed
    #[arg(long, value_name = "VOCMINE_TOML")]
    into: Option<PathBuf>,
    /// Embedding cache folder [default: $VOCMINE_CACHE or .cache/vocmine]
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    enc: EncoderArgs,
}

fn load_sets(
    files: &[PathBuf],
    text: &str,
    label: &[String],
    (max, seed): (&[usize], u64),
    (relabel, keep): (&Relabel, &[String]),
) -> Result<Labelled> {
    if max.len() > 1 && max.len() != files.len() {
        bail!(
            "--max-per-file has {} values for {} --data files: give one value, or one per file",
            max.len(),
            files.len()
        );
    }
    if label.len() > 1 && label.len() != files.len() {
        bail!(
            "--label-field has {} values for {} --data files: give one value, or one per file",
            label.len(),
            files.len()
        );
    }
    let mut all = Labelled::default();
    for (i, f) in files.iter().enumerate() {
        let label = label
            .get(i)
            .or(label.first())
            .map_or("label", String::as_str);
        let (l, skipped) = read_labelled(f, text, label)?;
        if skipped > 0 {
            eprintln!("{}: {skipped} rows without {label:?} skipped", f.display());
        }
        let (l, changed, dropped) = relabel.apply(l, keep);
        if changed + dropped > 0 {
            eprintln!(
                "{}: --relabel changed {changed} rows and dropped {dropped}",
                f.display()
            );
        }
        all.extend(match max.get(i).or(max.first()) {
            Some(&n) => l.sample(n, seed),
            None => l,
        });
    }
    Ok(all)
}

/// Embeds a labelled set (through the cache) with a progress bar.
pub(crate) fn embed(
    enc: &Encoder,
    fp: &str,
    cache: &EmbeddingCache,
    set: &Labelled,
    what: &str,
) -> Result<Vec<Vec<f32>>> {
    let pb = bar(set.len(), what);
    let out = cache.embed_set(enc, fp, set, |d| pb.set_position(d as u64))?;
    pb.finish_and_clear();
    Ok(out)
}

pub(crate) fn cmd_train(a: TrainArgs) -> Result<()> {
    if let Some(spec) = &a.finetune {
        return finetune::run(finetune::FinetuneCli {
            spec,
            out: &a.out,
            layers: a.layers,
            stop_after: a.stop_after,
            time_budget: a.time_budget,
            device: &a.device,
            engine: &a.engine,
            enc: &a.enc,
        });
    }
    let t0 = Instant::now();
    let spec = a.enc.spec()?;
    if a.task == "aspects" {
        return train_aspects(&a, &spec);
    }
    let into = match &a.into {
        Some(p) => Some(bundle_manifest(p, &spec)?),
        None => None,
    };
    let encoder = a.enc.load(&spec)?;
    let fp = encoder.fingerprint()?;
    let cache = EmbeddingCache::new(a.cache.clone().unwrap_or_else(EmbeddingCache::default_dir));
    let relabel = Relabel::parse(&a.relabel)?;
    let keep = a.labels.clone().unwrap_or_default();
    let train = load_sets(
        &a.data,
        &a.text_field,
        &a.label_field,
        (&a.max_per_file, a.seed),
        (&relabel, &keep),
    )?;
    if let Some(k) = a.few_shot {
        few_shot(&a, k, train, (&encoder, &fp, &cache), (&relabel, &keep), t0)?;
        return install(&a, &spec, into.as_deref());
    }
    let (train, dev) = if a.dev.is_empty() {
        let (t, d) = train.split(a.dev_fraction, a.seed);
        eprintln!(
            "no --dev given: {} examples ({:.0}%) of the training data held out as dev (seed {})",
            d.len(),
            a.dev_fraction * 100.0,
            a.seed
        );
        (t, d)
    } else {
        let dev = load_sets(
            &a.dev,
            &a.text_field,
            &a.label_field[..a.label_field.len().min(1)],
            (&[], a.seed),
            (&relabel, &keep),
        )?;
        (train, dev)
    };
    let multi = train.multi;
    let labels: Vec<String> = match &a.labels {
        Some(l) => l.clone(),
        None => {
            let mut l: Vec<String> = train.label_sets.iter().flatten().cloned().collect();
            l.sort();
            l.dedup();
            l
        }
    };
    let index = |set: &Labelled, what: &str| -> Result<Vec<Vec<usize>>> {
        set.label_sets
            .iter()
            .map(|ls| {
                ls.iter()
                    .map(|l| {
                        labels.iter().position(|x| x == l).with_context(|| {
                            format!("{what}: label {l:?} is not in the label set {labels:?}")
                        })
                    })
                    .collect()
            })
            .collect()
    };
    let (yt, yd) = (index(&train, "train")?, index(&dev, "dev")?);
    let single = |y: &[Vec<usize>]| -> Vec<usize> { y.iter().map(|v| v[0]).collect() };
    let (yt1, yd1) = (single(&yt), single(&yd));
    let (tt_, td_) = if multi {
        (Targets::Multi(&yt), Targets::Multi(&yd))
    } else {
        (Targets::Single(&yt1), Targets::Single(&yd1))
    };
    let xt = embed(&encoder, &fp, &cache, &train, "embedding train")?;
    let xd = embed(&encoder, &fp, &cache, &dev, "embedding dev")?;
    let defaults = TrainConfig::default();
    let cfg = TrainConfig {
        hidden: a.hidden.unwrap_or(defaults.hidden),
        epochs: a.epochs.unwrap_or(defaults.epochs),
        lr: a.lr.unwrap_or(defaults.lr),
        seed: a.seed,
        class_weight: match a.class_weight.as_str() {
            "none" => ClassWeight::None,
            "balanced" => ClassWeight::Balanced,
            _ => ClassWeight::Sqrt,
        },
        ..TrainConfig::default()
    };
    let mlp_flags = a.hidden.is_some() || a.epochs.is_some() || a.lr.is_some();
    let per_label = train.len() / labels.len().max(1);
    let small = train.len() < SMALL_ROWS || per_label < SMALL_PER_LABEL;
    let prototype = match a.method.as_str() {
        "prototype" if multi => {
            bail!("--method prototype trains single-label heads; this data has label arrays")
        }
        "prototype" => true,
        "auto" => !multi && small && !mlp_flags,
        _ => false,
    };
    if prototype && a.method == "auto" {
        eprintln!(
            "small training set ({} rows, {per_label} per label): nearest-prototype head refined by logistic regression (--method mlp for the MLP)",
            train.len()
        );
    }
    let tt = Instant::now();
    let (mut head, rep) = if prototype {
        vocmine::classify::train_prototype_head(
            &a.task,
            &labels,
            (&xt, &yt1),
            (&xd, &yd1),
            vocmine::classify::PROTOTYPE_REFINE,
            PROTOTYPE_CHECK_EVERY,
        )?
    } else {
        vocmine::classify::train_head(&a.task, &labels, &xt, tt_, &xd, td_, &cfg)?
    };
    let train_secs = tt.elapsed().as_secs_f64();
    let mut tests = serde_json::Map::new();
    for f in &a.test {
        let (set, x) = test_set(&a, f, (&encoder, &fp, &cache), (&relabel, &keep))?;
        let probs = head.predict(&x)?;
        let entry = if multi {
            let gold = index(&set, "test")?;
            let pred: Vec<Vec<usize>> = probs
                .iter()
                .map(|p| (0..p.len()).filter(|&j| p[j] >= 0.5).collect())
                .collect();
            let m = vocmine::metrics::multi_label(&labels, &gold, &pred);
            println!(
                "{}: micro-F1 {:.2}%, macro-F1 {:.2}%, exact match {:.2}%, n={}",
                f.display(),
                m.micro_f1 * 100.0,
                m.macro_f1 * 100.0,
                m.exact_match * 100.0,
                set.len()
            );
            serde_json::json!({"n": set.len(), "micro_f1": m.micro_f1, "macro_f1": m.macro_f1, "exact_match": m.exact_match})
        } else {
            let (acc, acc_r) =
                vocmine::metrics::accuracy_and_restricted(&probs, &labels, &set.labels);
            println!(
                "{}: accuracy {:.2}% (argmax over the corpus's own labels: {:.2}%), n={}",
                f.display(),
                acc * 100.0,
                acc_r * 100.0,
                set.len()
            );
            serde_json::json!({"n": set.len(), "accuracy": acc, "accuracy_gold_labels_only": acc_r})
        };
        tests.insert(f.display().to_string(), entry);
    }
    head.meta.encoder = fp;
    head.meta.training = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "data": a.data, "dev": a.dev, "max_per_file": a.max_per_file, "relabel": a.relabel,
        "n_train": train.len(), "n_dev": dev.len(),
        "config": if prototype { serde_json::json!({"refine": format!("{:?}", vocmine::classify::PROTOTYPE_REFINE), "seed": a.seed}) } else { serde_json::to_value(&cfg)? },
        "report": rep, "test": tests,
        "train_seconds": train_secs,
    });
    head.save(&a.out)?;
    println!(
        "trained {} {} head on {} examples ({} dev): dev accuracy {:.2}% at {} {}/{}, temperature {:.2}, {:.1}s training, {:.1}s in all",
        rep.method,
        a.task,
        train.len(),
        dev.len(),
        rep.dev_accuracy * 100.0,
        if prototype { "step" } else { "epoch" },
        rep.best_epoch,
        rep.epochs_run,
        rep.temperature,
        train_secs,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "wrote {}.json and {}.safetensors",
        a.out.display(),
        a.out.display()
    );
    install(&a, &spec, into.as_deref())
}

/// Below this many training rows `--method auto` builds the prototype head.
const SMALL_ROWS: usize = 2000;
/// Below this many training rows per label `--method auto` builds the prototype head.
const SMALL_PER_LABEL: usize = 50;
/// Refinement steps between dev checks of the prototype head.
const PROTOTYPE_CHECK_EVERY: usize = 10;

/// The manifest `--into` names (a vocmine.toml or its folder), checked to be `spec`'s.
fn bundle_manifest(into: &Path, spec: &vocmine::model::ModelSpec) -> Result<PathBuf> {
    let manifest = if into.is_dir() {
        into.join(vocmine::model::MANIFEST)
    } else {
        into.to_path_buf()
    };
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let same = match (
        std::fs::canonicalize(&dir),
        std::fs::canonicalize(&spec.dir),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if !manifest.is_file() || !same {
        bail!(
            "--into {}: not the manifest of the model the head is trained on ({}); name that bundle's vocmine.toml, or train with --model on the bundle you want",
            into.display(),
            spec.dir.join(vocmine::model::MANIFEST).display()
        );
    }
    Ok(manifest)
}

/// After a head is written: names it in the `--into` bundle, or prints the lines to add.
fn install(a: &TrainArgs, spec: &vocmine::model::ModelSpec, into: Option<&Path>) -> Result<()> {
    match into {
        Some(m) => {
            let lines = vocmine::model::set_task_head(m, &a.task, &a.out)?;
            println!(
                "{}: task {} now uses this head:\n{lines}",
                m.display(),
                a.task
            );
        }
        None => {
            let m = spec.dir.join(vocmine::model::MANIFEST);
            if m.is_file() {
                println!(
                    "to score with it, add to {} (or train with --into {}):\n{}",
                    m.display(),
                    m.display(),
                    vocmine::model::head_entry(&m, &a.task, &a.out)?
                );
            }
        }
    }
    Ok(())
}

/// `train --few-shot K`: K examples per label, prototypes, accuracy on the test files.
fn few_shot(
    a: &TrainArgs,
    k: usize,
    train: Labelled,
    (encoder, fp, cache): (&Encoder, &str, &EmbeddingCache),
    label_map: (&Relabel, &[String]),
    t0: Instant,
) -> Result<()> {
    let mut sample = train.per_label_sample(k, a.seed);
    let labels: Vec<String> = {
        let mut l = sample.labels.clone();
        l.sort();
        l.dedup();
        l
    };
    if a.with_label_names {
        for l in &labels {
            sample.ids.push(format!("label:{l}"));
            sample.texts.push(l.replace(['_', '-'], " "));
            sample.labels.push(l.clone());
            sample.label_sets.push(vec![l.clone()]);
            sample.sources.push("label names".into());
        }
    }
    let y: Vec<usize> = sample
        .labels
        .iter()
        .map(|l| labels.iter().position(|x| x == l).unwrap_or(0))
        .collect();
    let x = embed(encoder, fp, cache, &sample, "embedding the shots")?;
    let mut head = vocmine::taxonomy::prototype_head(&a.task, &labels, &x, &y, a.unknown_below)?;
    if a.refine_steps > 0 {
        let cfg = vocmine::taxonomy::RefineConfig {
            steps: a.refine_steps,
            lr: a.refine_lr,
            anchor: a.refine_anchor,
        };
        head = vocmine::taxonomy::refine_head(&head, &x, &y, cfg)?;
    }
    let mut tests = serde_json::Map::new();
    for f in &a.test {
        let (set, xt) = test_set(a, f, (encoder, fp, cache), label_map)?;
        let probs = head.predict(&xt)?;
        let (acc, _) = vocmine::metrics::accuracy_and_restricted(&probs, &labels, &set.labels);
        println!(
            "{}: accuracy {:.2}% ({k}-shot, {} labels), n={}",
            f.display(),
            acc * 100.0,
            labels.len(),
            set.len()
        );
        tests.insert(
            f.display().to_string(),
            serde_json::json!({"n": set.len(), "accuracy": acc}),
        );
    }
    head.meta.encoder = fp.to_string();
    head.meta.training = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "method": if a.refine_steps > 0 { "nearest prototype, refined (few-shot)" } else { "nearest prototype (few-shot)" }, "shots": k, "seed": a.seed,
        "examples": sample.len(), "data": a.data, "test": tests,
        "prototype": head.meta.training,
    });
    head.save(&a.out)?;
    println!(
        "built a {k}-shot {} head ({} labels, {} examples) in {:.1}s; wrote {}.json/.safetensors",
        a.task,
        labels.len(),
        sample.len(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// A test file of `train`, read (with the --relabel mapping) and embedded.
fn test_set(
    a: &TrainArgs,
    f: &Path,
    (encoder, fp, cache): (&Encoder, &str, &EmbeddingCache),
    label_map: (&Relabel, &[String]),
) -> Result<(Labelled, Vec<Vec<f32>>)> {
    let set = load_sets(
        &[f.to_path_buf()],
        &a.text_field,
        &a.label_field[..a.label_field.len().min(1)],
        (&[], a.seed),
        label_map,
    )?;
    let x = embed(
        encoder,
        fp,
        cache,
        &set,
        &format!("embedding {}", f.display()),
    )?;
    Ok((set, x))
}

/// Accuracy, and accuracy with the argmax restricted to the labels that occur in `gold` (for
/// a 3-way head on a 2-way corpus).
/// `train --task aspects`: the aspect tagger and polarity heads on the labelled spans.
fn train_aspects(a: &TrainArgs, spec: &vocmine::model::ModelSpec) -> Result<()> {
    let encoder = a.enc.load(spec)?;
    let root = a.cache.clone().unwrap_or_else(EmbeddingCache::default_dir);
    let d = vocmine::aspects::AspectTrainConfig::default();
    let cfg = vocmine::aspects::AspectTrainConfig {
        tag_hidden: a.hidden.unwrap_or(d.tag_hidden),
        polarity_hidden: a.hidden.unwrap_or(d.polarity_hidden),
        epochs: a.epochs.unwrap_or(d.epochs),
        lr: a.lr.unwrap_or(d.lr),
        dev_fraction: a.dev_fraction,
        seed: a.seed,
        ..d
    };
    let cache = vocmine::aspects::cache_dir(&root);
    let (r, set) = vocmine::aspects::train_files(&encoder, &a.data, Some(&cache), &cfg, &a.out)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    println!(
        "{} sentences, {} aspects ({} without offsets, {} placed), opinions {} ({} placed); wrote {}.json and .safetensors",
        set.examples.len(),
        set.aspects,
        set.searched,
        set.placed,
        set.opinions.0,
        set.opinions.1,
        a.out.display()
    );
    Ok(())
}
