//! `vocmine train --finetune SPEC`: reads the spec (tasks, data, settings), caches the frozen
//! layers' states, runs [`vocmine::finetune`], and writes a model bundle (overlay, heads,
//! manifest, report).

use super::{bar, EncoderArgs};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::classify::Head;
use vocmine::corpus::{read_labelled, Labelled, Relabel};
use vocmine::encode::Encoder;
use vocmine::finetune::{
    check_task_anchor, finetune, Example, FinetuneConfig, FinetuneInput, TaskSpec,
};
use vocmine::model::{Manifest, TaskEntry, TaskSource, MANIFEST};
use vocmine::text::normalise::{normalise, NormaliseConfig};

/// The fine-tuning spec file (TOML): where the data is, the tasks, the settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    /// Folder the data paths resolve against (`../shared/corpora` follows `$VOCMINE_SHARED`).
    #[serde(default = "default_corpora")]
    corpora: String,
    /// Training settings.
    #[serde(default)]
    settings: FinetuneConfig,
    /// The tasks.
    task: Vec<TaskFiles>,
}

fn default_corpora() -> String {
    "../shared/corpora".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFiles {
    name: String,
    /// Label order [default: sorted labels of the training data].
    labels: Option<Vec<String>>,
    train: Vec<String>,
    #[serde(default)]
    dev: Vec<String>,
    #[serde(default = "default_label")]
    label_field: String,
    #[serde(default = "default_text")]
    text_field: String,
    /// At most this many training rows per file (seeded sample): one number for every file,
    /// or a list with one per `train` file.
    max_per_file: Option<PerFile>,
    /// Label mapping applied to every train and dev file as it is read, in `train --relabel`'s
    /// syntax: `["complaint=-", "*=neutral"]` drops `complaint` rows and maps every label that
    /// is not one of the task's `labels` to `neutral` (so intent corpora can add neutral rows).
    #[serde(default)]
    relabel: Vec<String>,
    /// At most this many dev rows per file (seeded sample).
    max_dev_per_file: Option<usize>,
    /// Share of train held out as dev when no dev file is given.
    #[serde(default = "default_dev_fraction")]
    dev_fraction: f64,
    /// Head width (0 = linear).
    #[serde(default = "default_hidden")]
    hidden: usize,
    /// Start the head from this trained head (a stem relative to the model folder, e.g.
    /// `heads/sentiment`): its labels and width are taken from it.
    init_head: Option<String>,
    /// Weight of the anchor term for this task's training texts [default: `settings.anchor`];
    /// 0 lets this task's texts move freely.
    anchor: Option<f64>,
    /// Anchor weights for the texts of some labels, overriding `anchor` for them, e.g.
    /// `{ negative = 5.0 }` holds the negative texts while the others move.
    #[serde(default)]
    anchor_by_label: BTreeMap<String, f64>,
    /// Anchor the pairwise similarities of the texts instead of their positions.
    #[serde(default)]
    anchor_relations: bool,
}

/// A per-file cap: one number for every file, or one per file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PerFile {
    All(usize),
    Each(Vec<usize>),
}

impl PerFile {
    /// The cap of file `i` of `n`, or an error when a list has the wrong length.
    fn of(&self, i: usize, n: usize, task: &str) -> Result<usize> {
        match self {
            PerFile::All(v) => Ok(*v),
            PerFile::Each(v) if v.len() == n => Ok(v[i]),
            PerFile::Each(v) => bail!(
                "task {task}: max_per_file has {} values for {n} train files: give one value, or one per file",
                v.len()
            ),
        }
    }
}

fn default_label() -> String {
    "label".into()
}
fn default_text() -> String {
    "text".into()
}
fn default_dev_fraction() -> f64 {
    0.1
}
fn default_hidden() -> usize {
    1024
}

/// What `train --finetune` takes from the command line.
pub(crate) struct FinetuneCli<'a> {
    pub spec: &'a Path,
    pub out: &'a Path,
    pub layers: Option<usize>,
    pub stop_after: usize,
    pub time_budget: Option<f64>,
    pub device: &'a str,
    pub engine: &'a str,
    pub enc: &'a EncoderArgs,
}

fn corpora_dir(c: &str) -> PathBuf {
    if c == "../shared/corpora" {
        if let Some(s) = std::env::var_os("VOCMINE_SHARED") {
            return PathBuf::from(s).join("corpora");
        }
    }
    PathBuf::from(c)
}

fn read_files(
    root: &Path,
    files: &[String],
    t: &TaskFiles,
    max: Option<&PerFile>,
    seed: u64,
) -> Result<Labelled> {
    let relabel = Relabel::parse(&t.relabel).with_context(|| format!("task {}", t.name))?;
    let keep = t.labels.clone().unwrap_or_default();
    let mut all = Labelled::default();
    for (i, f) in files.iter().enumerate() {
        let p = root.join(f);
        let (l, skipped) = read_labelled(&p, &t.text_field, &t.label_field)
            .with_context(|| format!("task {}: cannot read {}", t.name, p.display()))?;
        let (l, changed, dropped) = relabel.apply(l, &keep);
        if changed + dropped > 0 {
            eprintln!(
                "{}: relabel changed {changed} rows and dropped {dropped}",
                p.display()
            );
        }
        if skipped > 0 {
            eprintln!(
                "{}: {skipped} rows without {:?} skipped",
                p.display(),
                t.label_field
            );
        }
        if l.multi {
            bail!(
                "task {}: {} has multi-label rows; fine-tuning takes single-label tasks",
                t.name,
                p.display()
            );
        }
        all.extend(match max {
            Some(m) => l.sample(m.of(i, files.len(), &t.name)?, seed),
            None => l,
        });
    }
    Ok(all)
}

/// Normalises, tokenises and runs the frozen layers over a set; one example per row. With
/// `anchor`, also the whole base encoder's embedding of each text (for the anchor term).
fn states(
    enc: &Encoder,
    set: &Labelled,
    task: usize,
    labels: &[String],
    frozen: usize,
    anchor: bool,
    what: &str,
) -> Result<Vec<Example>> {
    let pb = bar(set.len(), what);
    let mut out = Vec::with_capacity(set.len());
    for (c, chunk) in set.texts.chunks(2048).enumerate() {
        let norm: Vec<String> = chunk
            .iter()
            .map(|t| normalise(t, NormaliseConfig::default()).text)
            .collect();
        let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
        let toks = enc.tokenize(&refs)?;
        // with the anchor, the base embedding comes from the same pass as the states
        let (hs, mut anchors) = if anchor {
            enc.hidden_states_and_embeddings(&toks, frozen)?
        } else {
            let hs = enc.hidden_states(&toks, frozen)?;
            let none = vec![Vec::new(); hs.len()];
            (hs, none)
        };
        for (j, states) in hs.into_iter().enumerate() {
            let i = c * 2048 + j;
            let l = &set.labels[i];
            let label = labels.iter().position(|x| x == l).with_context(|| {
                format!(
                    "{what}: row {} ({}) has label {l:?}, not in {labels:?}",
                    i + 1,
                    set.ids[i]
                )
            })?;
            out.push(Example {
                task,
                label,
                states,
                anchor: std::mem::take(&mut anchors[j]),
            });
        }
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// `to` relative to the folder `from` (both made absolute), for the manifest's paths.
fn relative(to: &Path, from: &Path) -> Result<String> {
    let to = std::fs::canonicalize(to).with_context(|| format!("{}", to.display()))?;
    let from = std::fs::canonicalize(from).with_context(|| format!("{}", from.display()))?;
    let a: Vec<_> = to.components().collect();
    let b: Vec<_> = from.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut p = PathBuf::new();
    for _ in common..b.len() {
        p.push("..");
    }
    for c in &a[common..] {
        p.push(c);
    }
    Ok(p.to_string_lossy().replace('\\', "/"))
}

/// Runs `vocmine train --finetune`.
pub(crate) fn run(cli: FinetuneCli) -> Result<()> {
    let t0 = Instant::now();
    let text = std::fs::read_to_string(cli.spec)
        .with_context(|| format!("cannot read the fine-tuning spec {}", cli.spec.display()))?;
    let spec: Spec = toml::from_str(&text)
        .with_context(|| format!("{}: not a valid fine-tuning spec", cli.spec.display()))?;
    let mut cfg = spec.settings.clone();
    if let Some(l) = cli.layers {
        cfg.layers = l;
    }
    cfg.stop_after = cli.stop_after;
    if let Some(b) = cli.time_budget {
        cfg.time_budget = b;
    }
    // before any data is read or embedded: a bad setting fails in a second, not after caching
    cfg.validate()
        .with_context(|| format!("{}: invalid [settings]", cli.spec.display()))?;
    for t in &spec.task {
        if let Some(a) = t.anchor {
            check_task_anchor(&t.name, a).with_context(|| cli.spec.display().to_string())?;
        }
        for (l, &a) in &t.anchor_by_label {
            check_task_anchor(&format!("{} (label {l})", t.name), a)
                .with_context(|| cli.spec.display().to_string())?;
        }
    }
    let device = match cli.device {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context(
            "no CUDA device: build with `--features cuda` on a machine with a GPU, or use --device cpu",
        )?,
        other => bail!("--device {other}: expected cpu or cuda"),
    };
    let model = cli.enc.spec()?;
    let enc = cli.enc.load(&model)?;
    let config_path = model.encoder_dir.join("config.json");
    let bert: candle_transformers::models::bert::Config = serde_json::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )
    .with_context(|| format!("{}", config_path.display()))?;
    if cfg.layers == 0 || cfg.layers > bert.num_hidden_layers {
        bail!(
            "layers = {} but the encoder has {} layers",
            cfg.layers,
            bert.num_hidden_layers
        );
    }
    let frozen = bert.num_hidden_layers - cfg.layers;
    let root = corpora_dir(&spec.corpora);
    let mut tasks = Vec::new();
    let mut train = Vec::new();
    let mut dev = Vec::new();
    let mut counts = Vec::new();
    let mut init_heads = Vec::new();
    for (ti, t) in spec.task.iter().enumerate() {
        let anchor = t.anchor.unwrap_or(cfg.anchor);
        let tr = read_files(&root, &t.train, t, t.max_per_file.as_ref(), cfg.seed)?;
        let (tr, dv) = if t.dev.is_empty() {
            tr.split(t.dev_fraction, cfg.seed)
        } else {
            (
                tr,
                read_files(
                    &root,
                    &t.dev,
                    t,
                    t.max_dev_per_file.map(PerFile::All).as_ref(),
                    cfg.seed,
                )?,
            )
        };
        let init = match &t.init_head {
            Some(stem) => {
                let p = model.dir.join(stem);
                let head = Head::load(&p)
                    .with_context(|| format!("task {}: init_head {}", t.name, p.display()))?;
                if head.meta.input_dim != bert.hidden_size || head.meta.multi_label {
                    bail!(
                        "task {}: init_head {} does not fit this encoder",
                        t.name,
                        p.display()
                    );
                }
                Some(head)
            }
            None => None,
        };
        let labels = match (&init, &t.labels) {
            (Some(h), _) => h.meta.labels.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => {
                let mut l = tr.labels.clone();
                l.sort();
                l.dedup();
                l
            }
        };
        eprintln!(
            "task {}: {} train, {} dev, {} labels",
            t.name,
            tr.len(),
            dv.len(),
            labels.len()
        );
        let label_anchor = if t.anchor_by_label.is_empty() {
            Vec::new()
        } else {
            if let Some(l) = t.anchor_by_label.keys().find(|l| !labels.contains(l)) {
                bail!(
                    "{}: task {}: anchor_by_label names {l:?}, which is not one of its labels ({})",
                    cli.spec.display(),
                    t.name,
                    labels.join(", ")
                );
            }
            labels
                .iter()
                .map(|l| t.anchor_by_label.get(l).copied().unwrap_or(anchor))
                .collect()
        };
        let anchored = anchor > 0.0 || label_anchor.iter().any(|&a| a > 0.0);
        counts.push((tr.len(), dv.len()));
        train.extend(states(
            &enc,
            &tr,
            ti,
            &labels,
            frozen,
            anchored,
            &format!("{} train", t.name),
        )?);
        dev.extend(states(
            &enc,
            &dv,
            ti,
            &labels,
            frozen,
            false,
            &format!("{} dev", t.name),
        )?);
        tasks.push(TaskSpec {
            name: t.name.clone(),
            labels,
            hidden: init.as_ref().map_or(t.hidden, |h| h.meta.hidden),
            anchor,
            label_anchor,
            anchor_relations: t.anchor_relations,
        });
        init_heads.push(init);
    }
    let cache_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "frozen layers 1-{frozen} cached for {} texts in {cache_s:.0} s; tuning layers {}-{} and {} heads",
        train.len() + dev.len(),
        frozen + 1,
        bert.num_hidden_layers,
        tasks.len()
    );
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update(enc.fingerprint()?.as_bytes());
    h.update(serde_json::to_string(&cfg.clone_without_stop())?.as_bytes());
    h.update(format!("{counts:?}").as_bytes());
    let key: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // training: candle's matmuls use every thread (the cache above ran one batch per thread)
    vocmine::encode::set_intra_op_threads(enc.config().threads);
    std::fs::create_dir_all(cli.out)
        .with_context(|| format!("cannot create {}", cli.out.display()))?;
    let input = FinetuneInput {
        weights: &model.encoder_dir.join("model.safetensors"),
        overlay: model.encoder_overlay.as_deref(),
        config: &bert,
        tasks: &tasks,
        init_heads: &init_heads,
        train: &train,
        dev: &dev,
        checkpoint_dir: cli.out.join("checkpoint"),
        key,
        device,
        engine: vocmine::finetune::EngineOptions {
            engine: cli.engine.parse()?,
            micro_batch: 0,
        },
    };
    let done = finetune(&input, &cfg, |s| eprintln!("{s}"))?;
    let rep = &done.report;
    if !rep.finished {
        eprintln!(
            "stopped at step {} of {} (--stop-after; {:.1} texts/s training); run the same command again to resume",
            rep.steps, rep.total_steps, rep.texts_per_second
        );
        return Ok(());
    }
    // the bundle: overlay (f16, the base's precision), heads, manifest, report
    let overlay_path = cli.out.join("encoder-top.safetensors");
    let map: HashMap<String, Tensor> = done
        .overlay
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_dtype(DType::F16)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&map, &overlay_path)?;
    let training = serde_json::json!({
        "finetune": cli.spec.display().to_string(),
        "layers_tuned": cfg.layers,
        "steps": rep.steps,
        "best": rep.best,
        "seconds": rep.seconds,
    });
    let mut entries = BTreeMap::new();
    for mut head in done.heads {
        head.meta.training = training.clone();
        let stem = cli.out.join("heads").join(&head.meta.task);
        head.save(&stem)?;
        // a task keeps the base bundle's `default` flag (benchmark heads stay opt-in)
        let default = !model.heads.contains_key(&head.meta.task)
            || model.default_tasks.contains(&head.meta.task);
        entries.insert(
            head.meta.task.clone(),
            TaskEntry {
                head: Some(format!("heads/{}", head.meta.task)),
                taxonomy: None,
                default,
                by_language: BTreeMap::new(),
            },
        );
    }
    // few-shot tasks are built from their taxonomy with whatever encoder loads them: carry them
    let mut left = Vec::new();
    for (name, src) in &model.heads {
        if entries.contains_key(name) {
            continue;
        }
        match src {
            TaskSource::Taxonomy(p) => {
                entries.insert(
                    name.clone(),
                    TaskEntry {
                        head: None,
                        taxonomy: Some(relative(p, cli.out)?),
                        default: model.default_tasks.contains(name),
                        by_language: BTreeMap::new(),
                    },
                );
            }
            TaskSource::Head(_) => left.push(name.clone()),
        }
    }
    let manifest = Manifest {
        encoder: relative(&model.encoder_dir, cli.out)?,
        encoder_overlay: Some("encoder-top.safetensors".into()),
        max_len: model.max_len,
        tasks: entries,
    };
    let mpath = cli.out.join(MANIFEST);
    std::fs::write(
        &mpath,
        format!(
            "# Written by `vocmine train --finetune {}`: the base encoder with its top {} layers\n# tuned (encoder-top.safetensors) and the heads trained with them.\n{}",
            cli.spec.display(),
            cfg.layers,
            toml::to_string(&manifest)?
        ),
    )
    .with_context(|| format!("cannot write {}", mpath.display()))?;
    let rpath = cli.out.join("finetune.json");
    std::fs::write(
        &rpath,
        serde_json::to_string_pretty(&serde_json::json!({
            "spec": cli.spec.display().to_string(),
            "settings": cfg,
            "tasks": tasks,
            "train_dev_counts": counts,
            "cache_seconds": cache_s,
            "report": rep,
        }))?,
    )?;
    std::fs::remove_dir_all(cli.out.join("checkpoint")).ok();
    eprintln!(
        "done in {:.0} s ({} steps, {:.1} texts/s training); best dev mean {:.4}; wrote {}",
        t0.elapsed().as_secs_f64(),
        rep.steps,
        rep.texts_per_second,
        rep.best.as_ref().map_or(f64::NAN, |b| b.score),
        mpath.display()
    );
    if !left.is_empty() {
        eprintln!(
            "note: heads trained on the frozen encoder are not carried over (retrain them with --model {}): {}",
            cli.out.display(),
            left.join(", ")
        );
    }
    Ok(())
}
