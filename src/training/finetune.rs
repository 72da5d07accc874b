//! A fine-tuning run from a spec file (TOML: where the data is, the tasks, the settings) to a
//! model bundle: [`FinetunePlan::read`] reads and checks the spec before anything is loaded,
//! [`FinetunePlan::run`] caches the frozen layers' states, runs [`crate::finetune::finetune`]
//! (resuming from its checkpoint) and writes the bundle: the tuned layers as an overlay
//! (`encoder-top.safetensors`), the heads, the manifest (`vocmine.toml`) and `finetune.json`.

use super::Progress;
use crate::classify::Head;
use crate::corpus::{read_labelled, Labelled, Relabel};
use crate::encode::{set_intra_op_threads, Encoder};
use crate::error::{Error, Result};
use crate::finetune::{
    check_task_anchor, finetune, Engine, EngineOptions, Example, FinetuneConfig, FinetuneInput,
    FinetuneReport, TaskSpec,
};
use crate::model::{Manifest, ModelSpec, TaskEntry, TaskSource, MANIFEST};
use crate::text::normalise::{normalise, NormaliseConfig};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The fine-tuning spec file (TOML): where the data is, the tasks, the settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    /// Folder the data paths resolve against (`../shared/corpora` follows `$VOCMINE_SHARED`).
    #[serde(default = "default_corpora")]
    pub corpora: String,
    /// Training settings.
    #[serde(default)]
    pub settings: FinetuneConfig,
    /// The tasks.
    pub task: Vec<TaskFiles>,
}

fn default_corpora() -> String {
    "../shared/corpora".into()
}

/// One task of a spec: its files and settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFiles {
    /// Task name (the head's `task`).
    pub name: String,
    /// Label order [default: sorted labels of the training data].
    pub labels: Option<Vec<String>>,
    /// Training files, relative to the spec's `corpora`; a path that starts with `./` is
    /// relative to the working directory instead (e.g. `./corpora/handwritten/...` in the
    /// repository).
    pub train: Vec<String>,
    /// Dev files [default: hold out `dev_fraction` of train].
    #[serde(default)]
    pub dev: Vec<String>,
    /// Label field: one name for every file, or a list with one per `train` file (dev files
    /// then read `dev_label_field`). `aspects.polarity` reads an aspect-labelled file's
    /// sentence label (the aspects' polarity where they agree, `conflict` where not).
    #[serde(default)]
    pub label_field: PerFile<String>,
    /// Label field of the dev files when `label_field` is a list [default: `label`].
    #[serde(default = "default_label")]
    pub dev_label_field: String,
    /// Text field.
    #[serde(default = "default_text")]
    pub text_field: String,
    /// At most this many training rows per file (seeded sample): one number for every file,
    /// or a list with one per `train` file.
    pub max_per_file: Option<PerFile<usize>>,
    /// Label mapping applied to every train and dev file as it is read, in `train --relabel`'s
    /// syntax: `["complaint=-", "*=neutral"]` drops `complaint` rows and maps every label that
    /// is not one of the task's `labels` to `neutral` (so intent corpora can add neutral rows).
    #[serde(default)]
    pub relabel: Vec<String>,
    /// At most this many dev rows per file (seeded sample).
    pub max_dev_per_file: Option<usize>,
    /// Share of train held out as dev when no dev file is given.
    #[serde(default = "default_dev_fraction")]
    pub dev_fraction: f64,
    /// Head width (0 = linear).
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Start the head from this trained head (a stem relative to the model folder, e.g.
    /// `heads/sentiment`): its labels and width are taken from it.
    pub init_head: Option<String>,
    /// Weight of the anchor term for this task's training texts [default: `settings.anchor`];
    /// 0 lets this task's texts move freely.
    pub anchor: Option<f64>,
    /// Anchor weights for the texts of some labels, overriding `anchor` for them, e.g.
    /// `{ negative = 5.0 }` holds the negative texts while the others move.
    #[serde(default)]
    pub anchor_by_label: BTreeMap<String, f64>,
    /// Anchor the pairwise similarities of the texts instead of their positions.
    #[serde(default)]
    pub anchor_relations: bool,
}

/// Which files of a task are read: the field names differ between them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Split {
    Train,
    Dev,
}

impl TaskFiles {
    /// The label field of file `i` of `n` of `split`, or an error when a list has the wrong
    /// length.
    fn label_field_of(&self, split: Split, i: usize, n: usize) -> Result<&str> {
        match (&self.label_field, split) {
            (PerFile::Each(_), Split::Dev) => Ok(&self.dev_label_field),
            (f, _) => f.of(i, n, &self.name, "label_field").map(String::as_str),
        }
    }
}

/// A per-file setting (a cap, a label field): one value for every file, or one per file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PerFile<T> {
    /// The same value for every file.
    All(T),
    /// One value per file, in order.
    Each(Vec<T>),
}

impl Default for PerFile<String> {
    fn default() -> Self {
        PerFile::All(default_label())
    }
}

impl<T> PerFile<T> {
    /// The value of file `i` of `n`, or an error naming the task and the setting `what` when
    /// a list has the wrong length.
    fn of(&self, i: usize, n: usize, task: &str, what: &str) -> Result<&T> {
        match self {
            PerFile::All(v) => Ok(v),
            PerFile::Each(v) if v.len() == n => Ok(&v[i]),
            PerFile::Each(v) => Err(Error::Invalid(format!(
                "task {task}: {what} has {} values for {n} train files: give one value, or one per file",
                v.len()
            ))),
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

/// A fine-tuning run as asked for: the spec, where the bundle goes, and overrides.
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    /// The spec file.
    pub spec: PathBuf,
    /// The bundle folder (its `checkpoint/` keeps an interrupted run).
    pub out: PathBuf,
    /// How many top layers to tune [default: the spec's].
    pub layers: Option<usize>,
    /// Stop after this many steps (0: run to the end).
    pub stop_after: usize,
    /// End training after this many seconds over all invocations.
    pub time_budget: Option<f64>,
    /// Where the steps run: `cpu` or `cuda`.
    pub device: String,
    /// The training engine.
    pub engine: Engine,
}

/// A read and checked spec with the job's overrides applied, ready to [`run`](Self::run).
pub struct FinetunePlan {
    job: FinetuneJob,
    text: String,
    spec: FinetuneSpec,
    cfg: FinetuneConfig,
    device: Device,
}

/// How a run ended.
#[derive(Debug)]
pub enum FinetuneOutcome {
    /// Stopped early (`stop_after`): the checkpoint keeps the rest; the same job resumes.
    Stopped(FinetuneReport),
    /// Finished: the bundle is written.
    Done {
        /// What training did.
        report: FinetuneReport,
        /// The bundle's manifest.
        manifest: PathBuf,
        /// Heads of the base bundle that were trained on the frozen encoder and are not
        /// carried over (they must be retrained on the new bundle).
        not_carried: Vec<String>,
        /// Seconds in all (caching included).
        seconds: f64,
    },
}

impl FinetunePlan {
    /// Reads the spec and checks its settings and anchors (a bad setting fails in a second,
    /// before any data is read or embedded), and opens the device.
    pub fn read(job: FinetuneJob) -> Result<FinetunePlan> {
        let path = &job.spec;
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(path, format!("cannot read the fine-tuning spec: {e}")))?;
        let spec: FinetuneSpec = toml::from_str(&text)
            .map_err(|e| Error::input(path, format!("not a valid fine-tuning spec: {e}")))?;
        let mut cfg = spec.settings.clone();
        if let Some(l) = job.layers {
            cfg.layers = l;
        }
        cfg.stop_after = job.stop_after;
        if let Some(b) = job.time_budget {
            cfg.time_budget = b;
        }
        cfg.validate()
            .map_err(|e| Error::input(path, format!("invalid [settings]: {e}")))?;
        for t in &spec.task {
            if let Some(a) = t.anchor {
                check_task_anchor(&t.name, a).map_err(|e| Error::input(path, e.to_string()))?;
            }
            for (l, &a) in &t.anchor_by_label {
                check_task_anchor(&format!("{} (label {l})", t.name), a)
                    .map_err(|e| Error::input(path, e.to_string()))?;
            }
        }
        let device = match job.device.as_str() {
            "cpu" => Device::Cpu,
            "cuda" => Device::new_cuda(0).map_err(|e| {
                Error::Invalid(format!(
                    "no CUDA device ({e}): build with `--features cuda` on a machine with a GPU, or use --device cpu"
                ))
            })?,
            other => {
                return Err(Error::Invalid(format!(
                    "--device {other}: expected cpu or cuda"
                )))
            }
        };
        Ok(FinetunePlan {
            job,
            text,
            spec,
            cfg,
            device,
        })
    }

    /// The settings the run uses (the spec's with the job's overrides).
    pub fn settings(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// Runs the plan on `model`'s encoder (`enc`, loaded from `model`) and, when it finishes,
    /// writes the bundle to the job's `out`.
    pub fn run(
        &self,
        model: &ModelSpec,
        enc: &Encoder,
        progress: &dyn Progress,
    ) -> Result<FinetuneOutcome> {
        let t0 = Instant::now();
        let (cfg, out, spec_path) = (&self.cfg, &self.job.out, &self.job.spec);
        let bert = enc.bert_config();
        if cfg.layers == 0 || cfg.layers > bert.num_hidden_layers {
            return Err(Error::Invalid(format!(
                "layers = {} but the encoder has {} layers",
                cfg.layers, bert.num_hidden_layers
            )));
        }
        let frozen = bert.num_hidden_layers - cfg.layers;
        let root = corpora_dir(&self.spec.corpora);
        let mut tasks = Vec::new();
        let (mut train, mut dev) = (Vec::new(), Vec::new());
        let mut counts = Vec::new();
        let mut init_heads = Vec::new();
        for (ti, t) in self.spec.task.iter().enumerate() {
            let anchor = t.anchor.unwrap_or(cfg.anchor);
            let tr = read_files(
                &root,
                Split::Train,
                &t.train,
                t,
                t.max_per_file.as_ref(),
                cfg.seed,
                progress,
            )?;
            let (tr, dv) = if t.dev.is_empty() {
                tr.split(t.dev_fraction, cfg.seed)
            } else {
                let cap = t.max_dev_per_file.map(PerFile::All);
                let dv = read_files(
                    &root,
                    Split::Dev,
                    &t.dev,
                    t,
                    cap.as_ref(),
                    cfg.seed,
                    progress,
                )?;
                (tr, dv)
            };
            let init = match &t.init_head {
                Some(stem) => {
                    let p = model.dir.join(stem);
                    let head = Head::load(&p).map_err(|e| {
                        Error::model(&p, format!("task {}: init_head: {e}", t.name))
                    })?;
                    if head.meta.input_dim != bert.hidden_size || head.meta.multi_label {
                        return Err(Error::model(
                            &p,
                            format!("task {}: init_head does not fit this encoder", t.name),
                        ));
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
            progress.note(&format!(
                "task {}: {} train, {} dev, {} labels",
                t.name,
                tr.len(),
                dv.len(),
                labels.len()
            ));
            let label_anchor = if t.anchor_by_label.is_empty() {
                Vec::new()
            } else {
                if let Some(l) = t.anchor_by_label.keys().find(|l| !labels.contains(l)) {
                    return Err(Error::input(
                        spec_path,
                        format!(
                            "task {}: anchor_by_label names {l:?}, which is not one of its labels ({})",
                            t.name,
                            labels.join(", ")
                        ),
                    ));
                }
                labels
                    .iter()
                    .map(|l| t.anchor_by_label.get(l).copied().unwrap_or(anchor))
                    .collect()
            };
            let anchored = anchor > 0.0 || label_anchor.iter().any(|&a| a > 0.0);
            counts.push((tr.len(), dv.len()));
            let states_of = |set: &Labelled, anchored: bool, what: String| {
                let s = States {
                    enc,
                    task: ti,
                    labels: &labels,
                    frozen,
                };
                s.of(set, anchored, &what, progress)
            };
            train.extend(states_of(&tr, anchored, format!("{} train", t.name))?);
            dev.extend(states_of(&dv, false, format!("{} dev", t.name))?);
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
        progress.note(&format!(
            "frozen layers 1-{frozen} cached for {} texts in {cache_s:.0} s; tuning layers {}-{} and {} heads",
            train.len() + dev.len(),
            frozen + 1,
            bert.num_hidden_layers,
            tasks.len()
        ));
        let mut h = Sha256::new();
        h.update(self.text.as_bytes());
        h.update(enc.fingerprint()?.as_bytes());
        h.update(serde_json::to_string(&cfg.clone_without_stop())?.as_bytes());
        h.update(format!("{counts:?}").as_bytes());
        let key: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // training: candle's matmuls use every thread (the cache above ran one batch per thread)
        set_intra_op_threads(enc.config().threads);
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let input = FinetuneInput {
            weights: &model.encoder_dir.join("model.safetensors"),
            overlay: model.encoder_overlay.as_deref(),
            config: bert,
            tasks: &tasks,
            init_heads: &init_heads,
            train: &train,
            dev: &dev,
            checkpoint_dir: out.join("checkpoint"),
            key,
            device: self.device.clone(),
            engine: EngineOptions {
                engine: self.job.engine,
                micro_batch: 0,
            },
        };
        let done = finetune(&input, cfg, |s| progress.note(s))?;
        if !done.report.finished {
            return Ok(FinetuneOutcome::Stopped(done.report));
        }
        let record = serde_json::json!({
            "spec": spec_path.display().to_string(),
            "settings": cfg,
            "tasks": tasks,
            "train_dev_counts": counts,
            "cache_seconds": cache_s,
            "report": done.report,
        });
        let (manifest, not_carried) =
            self.write_bundle(model, &done.overlay, done.heads, &done.report, record)?;
        Ok(FinetuneOutcome::Done {
            report: done.report,
            manifest,
            not_carried,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Writes the bundle: overlay (f16, the base's precision), heads, manifest and
    /// `finetune.json` (`record`); removes the checkpoint. Returns the manifest's path and the
    /// base's heads that are not carried over.
    fn write_bundle(
        &self,
        model: &ModelSpec,
        overlay: &[(String, Tensor)],
        heads: Vec<Head>,
        rep: &FinetuneReport,
        record: serde_json::Value,
    ) -> Result<(PathBuf, Vec<String>)> {
        let (cfg, out, spec_path) = (&self.cfg, &self.job.out, &self.job.spec);
        let overlay_path = out.join("encoder-top.safetensors");
        let map: HashMap<String, Tensor> = overlay
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_dtype(DType::F16)?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&map, &overlay_path)?;
        let training = serde_json::json!({
            "finetune": spec_path.display().to_string(),
            "layers_tuned": cfg.layers,
            "steps": rep.steps,
            "best": rep.best,
            "seconds": rep.seconds,
        });
        let mut entries = BTreeMap::new();
        for mut head in heads {
            head.meta.training = training.clone();
            let stem = out.join("heads").join(&head.meta.task);
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
        // few-shot tasks are built from their taxonomy with whatever encoder loads them: carry
        // them
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
                            taxonomy: Some(relative(p, out)?),
                            default: model.default_tasks.contains(name),
                            by_language: BTreeMap::new(),
                        },
                    );
                }
                TaskSource::Head(_) => left.push(name.clone()),
            }
        }
        let manifest = Manifest {
            encoder: relative(&model.encoder_dir, out)?,
            encoder_overlay: Some("encoder-top.safetensors".into()),
            max_len: model.max_len,
            tasks: entries,
            // aspect heads read the encoder they were trained on: not this new one
            aspects: None,
            aspect_categories: None,
        };
        let mpath = out.join(MANIFEST);
        let toml = toml::to_string(&manifest)
            .map_err(|e| Error::model(&mpath, format!("cannot write the manifest: {e}")))?;
        std::fs::write(
            &mpath,
            format!(
                "# Written by `vocmine train --finetune {}`: the base encoder with its top {} layers\n# tuned (encoder-top.safetensors) and the heads trained with them.\n{toml}",
                spec_path.display(),
                cfg.layers,
            ),
        )
        .map_err(|e| Error::io(&mpath, e))?;
        let rpath = out.join("finetune.json");
        std::fs::write(&rpath, serde_json::to_string_pretty(&record)?)
            .map_err(|e| Error::io(&rpath, e))?;
        std::fs::remove_dir_all(out.join("checkpoint")).ok();
        Ok((mpath, left))
    }
}

fn corpora_dir(c: &str) -> PathBuf {
    if c == "../shared/corpora" {
        if let Some(s) = std::env::var_os("VOCMINE_SHARED") {
            return PathBuf::from(s).join("corpora");
        }
    }
    PathBuf::from(c)
}

/// Where a spec's data path points: `./...` from the working directory, anything else from the
/// spec's corpora folder.
fn data_path(root: &Path, f: &str) -> PathBuf {
    match f.strip_prefix("./") {
        Some(rest) => PathBuf::from(rest),
        None => root.join(f),
    }
}

fn read_files(
    root: &Path,
    split: Split,
    files: &[String],
    t: &TaskFiles,
    max: Option<&PerFile<usize>>,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Labelled> {
    let relabel =
        Relabel::parse(&t.relabel).map_err(|e| Error::Invalid(format!("task {}: {e}", t.name)))?;
    let keep = t.labels.clone().unwrap_or_default();
    let mut all = Labelled::default();
    for (i, f) in files.iter().enumerate() {
        let p = data_path(root, f);
        let field = t.label_field_of(split, i, files.len())?;
        let (l, skipped) = read_labelled(&p, &t.text_field, field).map_err(|e| {
            Error::Invalid(format!("task {}: cannot read {}: {e}", t.name, p.display()))
        })?;
        let (l, changed, dropped) = relabel.apply(l, &keep);
        if changed + dropped > 0 {
            progress.note(&format!(
                "{}: relabel changed {changed} rows and dropped {dropped}",
                p.display()
            ));
        }
        if skipped > 0 {
            progress.note(&format!(
                "{}: {skipped} rows without {field:?} skipped",
                p.display(),
            ));
        }
        if l.multi {
            return Err(Error::Invalid(format!(
                "task {}: {} has multi-label rows; fine-tuning takes single-label tasks",
                t.name,
                p.display()
            )));
        }
        all.extend(match max {
            Some(m) => l.sample(*m.of(i, files.len(), &t.name, "max_per_file")?, seed),
            None => l,
        });
    }
    Ok(all)
}

/// The frozen layers' states of one task's sets.
struct States<'a> {
    enc: &'a Encoder,
    task: usize,
    labels: &'a [String],
    frozen: usize,
}

impl States<'_> {
    /// Normalises, tokenises and runs the frozen layers over a set; one example per row. With
    /// `anchor`, also the whole base encoder's embedding of each text (for the anchor term).
    fn of(
        &self,
        set: &Labelled,
        anchor: bool,
        what: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<Example>> {
        progress.start(what, set.len());
        let mut out = Vec::with_capacity(set.len());
        let mut done = 0;
        for (c, chunk) in set.texts.chunks(2048).enumerate() {
            let norm: Vec<String> = chunk
                .iter()
                .map(|t| normalise(t, NormaliseConfig::default()).text)
                .collect();
            let refs: Vec<&str> = norm.iter().map(String::as_str).collect();
            let toks = self.enc.tokenize(&refs)?;
            // with the anchor, the base embedding comes from the same pass as the states
            let (hs, mut anchors) = if anchor {
                self.enc.hidden_states_and_embeddings(&toks, self.frozen)?
            } else {
                let hs = self.enc.hidden_states(&toks, self.frozen)?;
                let none = vec![Vec::new(); hs.len()];
                (hs, none)
            };
            for (j, states) in hs.into_iter().enumerate() {
                let i = c * 2048 + j;
                let l = &set.labels[i];
                let label = self.labels.iter().position(|x| x == l).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{what}: row {} ({}) has label {l:?}, not in {:?}",
                        i + 1,
                        set.ids[i],
                        self.labels
                    ))
                })?;
                out.push(Example {
                    task: self.task,
                    label,
                    states,
                    anchor: std::mem::take(&mut anchors[j]),
                });
            }
            done += chunk.len();
            progress.set(done);
        }
        progress.finish();
        Ok(out)
    }
}

/// `to` relative to the folder `from` (both made absolute), for the manifest's paths.
fn relative(to: &Path, from: &Path) -> Result<String> {
    let to = std::fs::canonicalize(to).map_err(|e| Error::io(to, e))?;
    let from = std::fs::canonicalize(from).map_err(|e| Error::io(from, e))?;
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
