//! A classification head trained from labelled files on the frozen encoder's cached
//! embeddings ([`train_head_job`]: the MLP, or the nearest-prototype head refined by logistic
//! regression for small sets), or built from K examples per label ([`few_shot_job`]); both
//! report accuracy on test files and write `STEM.json` + `STEM.safetensors`.

use super::{read_labelled_files, LabelledFiles, Progress};
use crate::classify::{
    train_head, train_prototype_head, ClassWeight, Targets, TrainConfig, TrainReport,
    PROTOTYPE_REFINE,
};
use crate::corpus::{EmbeddingCache, Labelled, Relabel};
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::metrics::{accuracy_and_restricted, multi_label};
use crate::taxonomy::{prototype_head, refine_head, RefineConfig};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// Below this many training rows [`HeadMethod::Auto`] builds the prototype head.
pub const SMALL_ROWS: usize = 2000;
/// Below this many training rows per label [`HeadMethod::Auto`] builds the prototype head.
pub const SMALL_PER_LABEL: usize = 50;
/// Refinement steps between dev checks of the prototype head.
const PROTOTYPE_CHECK_EVERY: usize = 10;

/// How a head is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadMethod {
    /// The prototype head for a small single-label set (under [`SMALL_ROWS`] rows or under
    /// [`SMALL_PER_LABEL`] per label) unless MLP settings are given, else the MLP.
    Auto,
    /// Minibatch AdamW with early stopping on dev.
    Mlp,
    /// The nearest-prototype head of all training rows refined by logistic regression, the
    /// refinement step chosen on dev (single-label only).
    Prototype,
}

impl FromStr for HeadMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<HeadMethod> {
        match s {
            "auto" => Ok(HeadMethod::Auto),
            "mlp" => Ok(HeadMethod::Mlp),
            "prototype" => Ok(HeadMethod::Prototype),
            other => Err(Error::Invalid(format!(
                "method {other:?}: expected auto, mlp or prototype"
            ))),
        }
    }
}

/// A head to train from labelled files.
#[derive(Debug, Clone)]
pub struct HeadJob {
    /// Task name (the head's `task`).
    pub task: String,
    /// The training files and how to read them.
    pub data: LabelledFiles,
    /// Dev files for early stopping and calibration (read with the first label field); empty:
    /// hold out `dev_fraction` of the training data.
    pub dev: Vec<PathBuf>,
    /// Share of the training data held out as dev when `dev` is empty (seeded).
    pub dev_fraction: f64,
    /// Test files to report accuracy on after training.
    pub test: Vec<PathBuf>,
    /// Label order [default: sorted labels of the training data].
    pub labels: Option<Vec<String>>,
    /// Label mapping of the training, dev and test files (`FROM=TO`, see [`Relabel`]).
    pub relabel: Vec<String>,
    /// How to train.
    pub method: HeadMethod,
    /// MLP hidden width [default: [`TrainConfig`]'s].
    pub hidden: Option<usize>,
    /// MLP maximum epochs [default: [`TrainConfig`]'s].
    pub epochs: Option<usize>,
    /// MLP learning rate [default: [`TrainConfig`]'s].
    pub lr: Option<f64>,
    /// Class weighting of the MLP.
    pub class_weight: ClassWeight,
    /// Output head stem (writes STEM.json and STEM.safetensors).
    pub out: PathBuf,
    /// The command that asked for it, kept in the head's training record.
    pub command: String,
}

/// A few-shot head: K examples per label of the training data.
#[derive(Debug, Clone)]
pub struct FewShotConfig {
    /// Examples per label (seeded sample).
    pub k: usize,
    /// Answer `unknown` below this confidence.
    pub unknown_below: f32,
    /// Add each label's name (underscores and hyphens as spaces) as one more example of it.
    pub with_label_names: bool,
    /// Full-batch refinement steps anchored at the prototypes (0: plain prototypes).
    pub refine: RefineConfig,
}

/// A test file's score.
#[derive(Debug, Clone, PartialEq)]
pub enum TestScore {
    /// A single-label head: accuracy, and accuracy with the argmax over the labels that occur
    /// in the file (a 3-way head on a 2-way corpus).
    Single {
        /// Accuracy.
        accuracy: f64,
        /// Accuracy restricted to the file's own labels.
        restricted: f64,
    },
    /// A multi-label head (a label is predicted at probability >= 0.5).
    Multi {
        /// Micro-averaged F1.
        micro_f1: f64,
        /// Macro-averaged F1.
        macro_f1: f64,
        /// Share of rows whose label set is predicted exactly.
        exact_match: f64,
    },
}

/// One test file's result.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The file.
    pub file: PathBuf,
    /// Rows scored.
    pub n: usize,
    /// The score.
    pub score: TestScore,
}

impl TestResult {
    fn json(&self, few_shot: bool) -> serde_json::Value {
        match self.score {
            TestScore::Single { accuracy, .. } if few_shot => {
                serde_json::json!({"n": self.n, "accuracy": accuracy})
            }
            TestScore::Single {
                accuracy,
                restricted,
            } => {
                serde_json::json!({"n": self.n, "accuracy": accuracy, "accuracy_gold_labels_only": restricted})
            }
            TestScore::Multi {
                micro_f1,
                macro_f1,
                exact_match,
            } => {
                serde_json::json!({"n": self.n, "micro_f1": micro_f1, "macro_f1": macro_f1, "exact_match": exact_match})
            }
        }
    }
}

/// What [`train_head_job`] did.
#[derive(Debug, Clone)]
pub struct HeadOutcome {
    /// The training report (method, dev accuracy, epochs, temperature).
    pub report: TrainReport,
    /// Whether the prototype head was built (steps, not epochs, in the report).
    pub prototype: bool,
    /// Training rows (after the dev hold-out).
    pub n_train: usize,
    /// Dev rows.
    pub n_dev: usize,
    /// The test files' results, in order.
    pub tests: Vec<TestResult>,
    /// Seconds spent training (embedding excluded).
    pub train_seconds: f64,
}

/// What [`few_shot_job`] did.
#[derive(Debug, Clone)]
pub struct FewShotOutcome {
    /// Labels of the head.
    pub labels: usize,
    /// Examples its prototypes are made of (label names included).
    pub examples: usize,
    /// The test files' results, in order.
    pub tests: Vec<TestResult>,
}

/// Embeds a labelled set through the cache, reporting rows done to `progress`.
fn embed(
    enc: &Encoder,
    fp: &str,
    cache: &EmbeddingCache,
    set: &Labelled,
    what: &str,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>> {
    progress.start(what, set.len());
    let out = cache.embed_set(enc, fp, set, |d| progress.set(d))?;
    progress.finish();
    Ok(out)
}

/// The files read like the first training file (first label field, no cap).
fn like_training(data: &LabelledFiles, files: &[PathBuf]) -> LabelledFiles {
    LabelledFiles {
        files: files.to_vec(),
        text_field: data.text_field.clone(),
        label_field: data.label_field[..data.label_field.len().min(1)].to_vec(),
        max_per_file: Vec::new(),
        seed: data.seed,
    }
}

/// Where `set`'s labels are in `labels`; an unknown label is an error naming `what`.
fn label_index(set: &Labelled, labels: &[String], what: &str) -> Result<Vec<Vec<usize>>> {
    set.label_sets
        .iter()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    labels.iter().position(|x| x == l).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{what}: label {l:?} is not in the label set {labels:?}"
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

/// The encoder, its fingerprint and the embedding cache, as the jobs use them.
pub struct Embedder<'a> {
    /// The frozen encoder.
    pub encoder: &'a Encoder,
    /// Its fingerprint (the cache key).
    pub fingerprint: String,
    /// The embedding cache.
    pub cache: &'a EmbeddingCache,
}

impl<'a> Embedder<'a> {
    /// The encoder with its fingerprint, over `cache`.
    pub fn new(encoder: &'a Encoder, cache: &'a EmbeddingCache) -> Result<Embedder<'a>> {
        Ok(Embedder {
            encoder,
            fingerprint: encoder.fingerprint()?,
            cache,
        })
    }

    fn embed(&self, set: &Labelled, what: &str, progress: &dyn Progress) -> Result<Vec<Vec<f32>>> {
        embed(
            self.encoder,
            &self.fingerprint,
            self.cache,
            set,
            what,
            progress,
        )
    }

    /// A test file, read like the first training file (with the relabelling) and embedded.
    fn test_set(
        &self,
        data: &LabelledFiles,
        f: &Path,
        (relabel, keep): (&Relabel, &[String]),
        progress: &dyn Progress,
    ) -> Result<(Labelled, Vec<Vec<f32>>)> {
        let set = read_labelled_files(
            &like_training(data, &[f.to_path_buf()]),
            relabel,
            keep,
            progress,
        )?;
        let x = self.embed(&set, &format!("embedding {}", f.display()), progress)?;
        Ok((set, x))
    }
}

/// Trains `job`'s head on the embeddings of its files, scores the test files and writes the
/// head (with its training record) to `job.out`.
pub fn train_head_job(
    job: &HeadJob,
    emb: &Embedder,
    progress: &dyn Progress,
) -> Result<HeadOutcome> {
    let relabel = Relabel::parse(&job.relabel)?;
    let keep = job.labels.clone().unwrap_or_default();
    let train = read_labelled_files(&job.data, &relabel, &keep, progress)?;
    let seed = job.data.seed;
    let (train, dev) = if job.dev.is_empty() {
        let (t, d) = train.split(job.dev_fraction, seed);
        progress.note(&format!(
            "no --dev given: {} examples ({:.0}%) of the training data held out as dev (seed {seed})",
            d.len(),
            job.dev_fraction * 100.0,
        ));
        (t, d)
    } else {
        let dev = read_labelled_files(
            &like_training(&job.data, &job.dev),
            &relabel,
            &keep,
            progress,
        )?;
        (train, dev)
    };
    let multi = train.multi;
    let labels: Vec<String> = match &job.labels {
        Some(l) => l.clone(),
        None => {
            let mut l: Vec<String> = train.label_sets.iter().flatten().cloned().collect();
            l.sort();
            l.dedup();
            l
        }
    };
    let (yt, yd) = (
        label_index(&train, &labels, "train")?,
        label_index(&dev, &labels, "dev")?,
    );
    let single = |y: &[Vec<usize>]| -> Vec<usize> { y.iter().map(|v| v[0]).collect() };
    let (yt1, yd1) = (single(&yt), single(&yd));
    let (tt_, td_) = if multi {
        (Targets::Multi(&yt), Targets::Multi(&yd))
    } else {
        (Targets::Single(&yt1), Targets::Single(&yd1))
    };
    let xt = emb.embed(&train, "embedding train", progress)?;
    let xd = emb.embed(&dev, "embedding dev", progress)?;
    let defaults = TrainConfig::default();
    let cfg = TrainConfig {
        hidden: job.hidden.unwrap_or(defaults.hidden),
        epochs: job.epochs.unwrap_or(defaults.epochs),
        lr: job.lr.unwrap_or(defaults.lr),
        seed,
        class_weight: job.class_weight,
        ..TrainConfig::default()
    };
    let mlp_flags = job.hidden.is_some() || job.epochs.is_some() || job.lr.is_some();
    let per_label = train.len() / labels.len().max(1);
    let small = train.len() < SMALL_ROWS || per_label < SMALL_PER_LABEL;
    let prototype = match job.method {
        HeadMethod::Prototype if multi => {
            return Err(Error::Invalid(
                "--method prototype trains single-label heads; this data has label arrays".into(),
            ))
        }
        HeadMethod::Prototype => true,
        HeadMethod::Auto => !multi && small && !mlp_flags,
        HeadMethod::Mlp => false,
    };
    if prototype && job.method == HeadMethod::Auto {
        progress.note(&format!(
            "small training set ({} rows, {per_label} per label): nearest-prototype head refined by logistic regression (--method mlp for the MLP)",
            train.len()
        ));
    }
    let tt = Instant::now();
    let (mut head, rep) = if prototype {
        train_prototype_head(
            &job.task,
            &labels,
            (&xt, &yt1),
            (&xd, &yd1),
            PROTOTYPE_REFINE,
            PROTOTYPE_CHECK_EVERY,
        )?
    } else {
        train_head(&job.task, &labels, &xt, tt_, &xd, td_, &cfg)?
    };
    let train_seconds = tt.elapsed().as_secs_f64();
    let mut tests = Vec::new();
    let mut tests_json = serde_json::Map::new();
    for f in &job.test {
        let (set, x) = emb.test_set(&job.data, f, (&relabel, &keep), progress)?;
        let probs = head.predict(&x)?;
        let score = if multi {
            let gold = label_index(&set, &labels, "test")?;
            let pred: Vec<Vec<usize>> = probs
                .iter()
                .map(|p| (0..p.len()).filter(|&j| p[j] >= 0.5).collect())
                .collect();
            let m = multi_label(&labels, &gold, &pred);
            TestScore::Multi {
                micro_f1: m.micro_f1,
                macro_f1: m.macro_f1,
                exact_match: m.exact_match,
            }
        } else {
            let (accuracy, restricted) = accuracy_and_restricted(&probs, &labels, &set.labels);
            TestScore::Single {
                accuracy,
                restricted,
            }
        };
        let r = TestResult {
            file: f.clone(),
            n: set.len(),
            score,
        };
        tests_json.insert(f.display().to_string(), r.json(false));
        tests.push(r);
    }
    head.meta.encoder = emb.fingerprint.clone();
    head.meta.training = serde_json::json!({
        "command": job.command,
        "data": job.data.files, "dev": job.dev, "max_per_file": job.data.max_per_file, "relabel": job.relabel,
        "n_train": train.len(), "n_dev": dev.len(),
        "config": if prototype { serde_json::json!({"refine": format!("{PROTOTYPE_REFINE:?}"), "seed": seed}) } else { serde_json::to_value(&cfg)? },
        "report": rep, "test": tests_json,
        "train_seconds": train_seconds,
    });
    head.save(&job.out)?;
    Ok(HeadOutcome {
        report: rep,
        prototype,
        n_train: train.len(),
        n_dev: dev.len(),
        tests,
        train_seconds,
    })
}

/// Builds `job`'s head from `shots.k` examples per label (nearest prototypes, optionally
/// refined), scores the test files and writes it to `job.out`. Of `job` only the task, data,
/// test files, relabelling, output and command are used.
pub fn few_shot_job(
    job: &HeadJob,
    shots: &FewShotConfig,
    emb: &Embedder,
    progress: &dyn Progress,
) -> Result<FewShotOutcome> {
    let relabel = Relabel::parse(&job.relabel)?;
    let keep = job.labels.clone().unwrap_or_default();
    let train = read_labelled_files(&job.data, &relabel, &keep, progress)?;
    let (k, seed) = (shots.k, job.data.seed);
    let mut sample = train.per_label_sample(k, seed);
    let labels: Vec<String> = {
        let mut l = sample.labels.clone();
        l.sort();
        l.dedup();
        l
    };
    if shots.with_label_names {
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
    let x = emb.embed(&sample, "embedding the shots", progress)?;
    let mut head = prototype_head(&job.task, &labels, &x, &y, shots.unknown_below)?;
    if shots.refine.steps > 0 {
        head = refine_head(&head, &x, &y, shots.refine)?;
    }
    let mut tests = Vec::new();
    let mut tests_json = serde_json::Map::new();
    for f in &job.test {
        let (set, xt) = emb.test_set(&job.data, f, (&relabel, &keep), progress)?;
        let probs = head.predict(&xt)?;
        let (accuracy, restricted) = accuracy_and_restricted(&probs, &labels, &set.labels);
        let r = TestResult {
            file: f.clone(),
            n: set.len(),
            score: TestScore::Single {
                accuracy,
                restricted,
            },
        };
        tests_json.insert(f.display().to_string(), r.json(true));
        tests.push(r);
    }
    head.meta.encoder = emb.fingerprint.clone();
    head.meta.training = serde_json::json!({
        "command": job.command,
        "method": if shots.refine.steps > 0 { "nearest prototype, refined (few-shot)" } else { "nearest prototype (few-shot)" }, "shots": k, "seed": seed,
        "examples": sample.len(), "data": job.data.files, "test": tests_json,
        "prototype": head.meta.training,
    });
    head.save(&job.out)?;
    Ok(FewShotOutcome {
        labels: labels.len(),
        examples: sample.len(),
        tests,
    })
}
