//! Command definitions (clap) and their handlers.

mod bench_search;
mod eval;
mod finetune;
mod report;
mod search;
mod topics;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::classify::{ClassWeight, Targets, TrainConfig};
use vocmine::corpus::{read_labelled, EmbeddingCache, Labelled, Relabel};
use vocmine::encode::{
    cosine, forward_flops, read_npy_f32, set_intra_op_threads, Encoder, EncoderConfig, Engine,
};
use vocmine::ingest::{expand_inputs, ColumnMap, Format, IngestConfig};
use vocmine::model::{default_model_dir, ModelSpec};
use vocmine::normalise::NormaliseConfig;
use vocmine::pipeline::{score, ScoreConfig};
use vocmine::segment::Segmenter;

/// vocmine: voice-of-customer text mining for Chinese and English comments.
///
/// Scores comments (sentiment and other tasks) with a multilingual BERT encoder, trains the
/// classification heads, and measures the encoder.
#[derive(Parser)]
#[command(name = "vocmine", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Score comments from CSV/JSONL files into a run folder (scored.jsonl, rejects.jsonl,
    /// summary.json).
    Score(ScoreArgs),
    /// Train a classification head on labelled JSONL/CSV data (frozen encoder, cached
    /// embeddings).
    Train(TrainArgs),
    /// Measure encoder throughput (texts/s, tokens/s) on labelled or plain text files.
    Bench(BenchArgs),
    /// Evaluate a task's head on labelled data: accuracy, F1s, confusion, calibration (ECE),
    /// bootstrap intervals, throughput; compare two reports; run a suite.
    Eval(eval::EvalArgs),
    /// Show a workspace: counts, runs, model versions, and what a run on INPUTS would do now.
    Status(StatusArgs),
    /// Build or update the search index of a run folder (or of a scored JSONL file): upsert
    /// by comment id, unchanged comments skipped.
    Index(search::IndexArgs),
    /// Search an index: full-text query, filters, facet counts, highlighted snippets.
    Search(search::SearchArgs),
    /// Serve an index over HTTP: GET /search (the search flags as parameters), GET /health.
    Serve(search::ServeArgs),
    /// Measure indexing throughput and query latency on labelled corpora (with a linear-scan
    /// baseline in the same run).
    BenchSearch(search::BenchSearchArgs),
    /// Cluster a run folder's comments into topics (HDBSCAN, c-TF-IDF labels); a rerun keeps
    /// topic ids and assigns new comments. Writes RUN/topics/{model.json,assignments.jsonl}.
    Topics(topics::TopicsArgs),
    /// Cluster a labelled corpus and report NMI/ARI against its labels, or time clustering by
    /// input size (--sizes).
    TopicsEval(topics::TopicsEvalArgs),
    /// Rank pain points and topics (volume, negativity, severity, tier, trend), flag spikes,
    /// compute CSAT/NPS/CES and each topic's impact: RUN/report.json and RUN/report.html.
    Report(report::ReportArgs),
}

#[derive(Args, Clone)]
pub(crate) struct EncoderArgs {
    /// Model folder: a vocmine.toml bundle or a bare encoder folder [default: the shipped models/]
    #[arg(long)]
    model: Option<PathBuf>,
    /// Texts per encoder batch
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Threads in all [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Batches encoded at once; threads are split evenly between them [default: = threads,
    /// single-threaded matmuls, the fastest split measured here]
    #[arg(long)]
    workers: Option<usize>,
    /// Forward pass: packed (real tokens only, fused AVX2 / AVX-512 kernels; set
    /// VOCMINE_NO_AVX512=1 to keep to AVX2), int8 (the packed engine
    /// with int8 linear layers: faster, embeddings within cosine ~0.9999 of f32) or candle
    /// (candle's BertModel on padded batches) [default: packed where the CPU has AVX2 + FMA]
    #[arg(long, value_parser = ["packed", "int8", "candle"])]
    engine: Option<String>,
}

impl EncoderArgs {
    pub(crate) fn spec(&self) -> Result<ModelSpec> {
        let dir = self.model.clone().unwrap_or_else(default_model_dir);
        ModelSpec::open(&dir).with_context(|| format!("cannot open model folder {}", dir.display()))
    }

    /// Sets the thread split and loads the encoder.
    pub(crate) fn load(&self, spec: &ModelSpec) -> Result<Encoder> {
        let mut cfg = EncoderConfig {
            batch_size: self.batch,
            ..EncoderConfig::default()
        };
        if let Some(t) = self.threads {
            cfg.threads = t.max(1);
        }
        cfg.workers = self.workers.unwrap_or(cfg.threads).clamp(1, cfg.threads);
        match self.engine.as_deref() {
            Some("candle") => cfg.engine = Engine::Candle,
            Some("int8") => cfg.engine = Engine::Int8,
            Some(_) => cfg.engine = Engine::Packed,
            None => {}
        }
        set_intra_op_threads(cfg.threads / cfg.workers);
        spec.load_encoder(cfg).with_context(|| {
            format!(
                "cannot load the encoder from {}",
                spec.encoder_dir.display()
            )
        })
    }
}

#[derive(Args)]
pub(crate) struct ColumnArgs {
    /// Input format [default: from the extension]
    #[arg(long, value_parser = ["csv", "jsonl"])]
    format: Option<String>,
    /// CSV delimiter, one character (e.g. ';' or 'tab')
    #[arg(long)]
    delimiter: Option<String>,
    /// TOML file with a [columns] table mapping id/text/time/channel/rating/tier/product
    #[arg(long)]
    columns: Option<PathBuf>,
    /// Field holding the text
    #[arg(long)]
    text_col: Option<String>,
    /// Field holding the id (ids are derived from the text when absent)
    #[arg(long)]
    id_col: Option<String>,
    /// Field holding the time
    #[arg(long)]
    time_col: Option<String>,
    /// Field holding the channel
    #[arg(long)]
    channel_col: Option<String>,
    /// Field holding the rating
    #[arg(long)]
    rating_col: Option<String>,
    /// Field holding the customer tier
    #[arg(long)]
    tier_col: Option<String>,
    /// Field holding the product
    #[arg(long)]
    product_col: Option<String>,
}

impl ColumnArgs {
    pub(crate) fn config(&self) -> Result<IngestConfig> {
        let mut cols = match &self.columns {
            Some(p) => ColumnMap::from_toml_file(p)?,
            None => ColumnMap::default(),
        };
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut cols.text, &self.text_col);
        set(&mut cols.id, &self.id_col);
        set(&mut cols.time, &self.time_col);
        set(&mut cols.channel, &self.channel_col);
        set(&mut cols.rating, &self.rating_col);
        set(&mut cols.tier, &self.tier_col);
        set(&mut cols.product, &self.product_col);
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab" | "\\t") => Some(b'\t'),
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(d) => bail!("--delimiter must be one ASCII character or 'tab', not {d:?}"),
        };
        let format = match self.format.as_deref() {
            Some("csv") => Some(Format::Csv),
            Some("jsonl") => Some(Format::Jsonl),
            _ => None,
        };
        Ok(IngestConfig {
            columns: cols,
            format,
            delimiter,
        })
    }
}

#[derive(Args)]
struct ScoreArgs {
    /// Input files or folders (CSV with a header, or JSONL)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Run folder for the outputs
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    enc: EncoderArgs,
    #[command(flatten)]
    cols: ColumnArgs,
    /// Tasks to run, comma-separated [default: the default tasks of the model]
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
    /// Do not mask phone numbers, emails, ID-card and bank-card numbers
    #[arg(long)]
    no_mask: bool,
    /// Write segmented tokens into each output line
    #[arg(long)]
    tokens: bool,
    /// Write the pooled embeddings to embeddings.f32 (for topics)
    #[arg(long)]
    embeddings: bool,
    /// jieba user dictionary (word [freq] [tag] per line) for product names and domain terms
    #[arg(long)]
    user_dict: Option<PathBuf>,
    /// Do not build or update the search index (RUN/index)
    #[arg(long)]
    no_index: bool,
    /// Severity weight of a customer tier in the index, e.g. vip=1.3 (repeatable)
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Records read per chunk (memory stays bounded by this)
    #[arg(long, default_value_t = 2048)]
    chunk: usize,
    /// Commit a checkpoint every N chunks (0: only at the end of each input file)
    #[arg(long, default_value_t = 1)]
    checkpoint_every: usize,
}

#[derive(Args)]
struct StatusArgs {
    /// The workspace (the --out folder of score)
    workspace: PathBuf,
    /// Inputs to check against the workspace: what a run would do now (nothing is written)
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    enc: EncoderArgs,
    #[command(flatten)]
    cols: ColumnArgs,
    /// Tasks, as given to score [default: every default task of the model]
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
}

#[derive(Args)]
struct TrainArgs {
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
    /// With --finetune: where training steps run (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    device: String,
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
    /// Label field
    #[arg(long, default_value = "label")]
    label_field: String,
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
    /// Hidden width of the head (0 = linear)
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Maximum epochs
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Learning rate
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Class weighting for imbalanced labels
    #[arg(long, default_value = "sqrt", value_parser = ["none", "sqrt", "balanced"])]
    class_weight: String,
    /// Seed for sampling, initialisation and shuffling
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output head stem (writes STEM.json and STEM.safetensors); with --finetune, a folder
    #[arg(long)]
    out: PathBuf,
    /// Embedding cache folder [default: $VOCMINE_CACHE or .cache/vocmine]
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    enc: EncoderArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// JSONL/CSV files with a text field; texts are encoded in file order, raw (as the peer
    /// benchmark does)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text field
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Encode at most this many texts
    #[arg(long)]
    limit: Option<usize>,
    /// Write the embeddings here (little-endian f32 rows) to compare with a reference
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Compare every embedding with this float32 .npy of reference embeddings (same texts,
    /// same order; e.g. the peer benchmark's ONNX Runtime fp32 output): prints the worst cosine
    /// and fails if any is below --min-cosine
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Lowest cosine to the reference accepted
    #[arg(long, default_value_t = 0.999)]
    min_cosine: f32,
    #[command(flatten)]
    enc: EncoderArgs,
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Score(a) => cmd_score(a),
        Cmd::Train(a) => cmd_train(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Eval(a) => eval::cmd_eval(a),
        Cmd::Status(a) => cmd_status(a),
        Cmd::Index(a) => search::cmd_index(a),
        Cmd::Search(a) => search::cmd_search(a),
        Cmd::Serve(a) => search::cmd_serve(a),
        Cmd::BenchSearch(a) => search::cmd_bench_search(a),
        Cmd::Topics(a) => topics::cmd_topics(a),
        Cmd::TopicsEval(a) => topics::cmd_topics_eval(a),
        Cmd::Report(a) => report::cmd_report(a),
    }
}

pub(crate) fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} records [{elapsed_precise}] {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb
}

pub(crate) fn bar(total: usize, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

fn cmd_score(a: ScoreArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let inputs = expand_inputs(&a.inputs)?;
    if inputs.is_empty() {
        bail!("no input files found in {:?}", a.inputs);
    }
    let encoder = a.enc.load(&spec)?;
    let heads = spec.load_heads(a.tasks.as_deref(), &encoder)?;
    let tasks: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
    let model_version = spec.version(&encoder.fingerprint()?, &tasks)?;
    let segmenter = match &a.user_dict {
        Some(p) => Segmenter::with_user_dict(p)?,
        None => Segmenter::new(),
    };
    let cfg = ScoreConfig {
        inputs,
        out_dir: a.out.clone(),
        ingest: a.cols.config()?,
        normalise: NormaliseConfig {
            mask_pii: !a.no_mask,
        },
        chunk_size: a.chunk,
        checkpoint_every: a.checkpoint_every,
        keep_tokens: a.tokens,
        save_embeddings: a.embeddings,
        model_version,
    };
    let pb = spinner("scoring");
    let sum = score(&cfg, &encoder, &heads, &segmenter, |n| pb.set_position(n))?;
    pb.finish_and_clear();
    println!(
        "scored {} of {} records ({} rejected, {} unchanged and skipped) in {:.1}s: {:.1} comments/s, {} encoder tokens ({:.0} tokens/s in the encoder)",
        sum.scored,
        sum.records,
        sum.rejected,
        sum.unchanged,
        sum.seconds,
        sum.texts_per_second,
        sum.tokens,
        sum.tokens as f64 / sum.encode_seconds.max(1e-9)
    );
    if sum.scored > 0 {
        println!(
            "scored: {} new, {} with changed text, {} scored before by another model version",
            sum.new, sum.changed_text, sum.older_model
        );
    }
    if !sum.files_skipped.is_empty() {
        println!(
            "skipped {} input file(s) already scored to the end by this model: {}",
            sum.files_skipped.len(),
            sum.files_skipped.join(", ")
        );
    }
    if !sum.languages.is_empty() {
        println!("languages: {}", fmt_counts(&sum.languages));
    }
    for (task, counts) in &sum.labels {
        println!("{task}: {}", fmt_counts(counts));
    }
    if sum.masked_comments > 0 {
        println!("personal data masked in {} comments", sum.masked_comments);
    }
    println!(
        "workspace {}: {} comments in scored.jsonl, {} in rejects.jsonl (model {}, {} checkpoints this run)",
        a.out.display(),
        sum.total_scored,
        sum.total_rejected,
        sum.model,
        sum.checkpoints
    );
    if !a.no_index {
        let opts = vocmine::index::UpdateOptions {
            tier_weights: search::parse_tier_weights(&a.tier_weights)?,
            ..Default::default()
        };
        let stats = search::index_run(&a.out, None, None, &opts)?;
        search::print_index_stats(&stats, &a.out.join("index"));
    }
    Ok(())
}

fn cmd_status(a: StatusArgs) -> Result<()> {
    use vocmine::workspace::read_manifest;
    let m = read_manifest(&a.workspace)?;
    if m.parts.is_empty() && m.runs.is_empty() {
        println!("{}: no scoring run yet", a.workspace.display());
    }
    let scored: u64 = m.parts.iter().map(|p| p.scored).sum();
    println!(
        "{}: {} checkpoints, {} scored lines (before compaction), {} runs, {} input files done",
        a.workspace.display(),
        m.parts.len(),
        scored,
        m.runs.len(),
        m.files.len()
    );
    if let Some(last) = m.runs.last() {
        println!(
            "last run: {} scored ({} new, {} changed, {} older model), {} unchanged, {} rejected, model {}, {:.1}s",
            last["scored"], last["new"], last["changed_text"], last["older_model"], last["unchanged"],
            last["rejected"], last["model"].as_str().unwrap_or("?"), last["seconds"].as_f64().unwrap_or(0.0)
        );
        println!(
            "in scored.jsonl: {} comments; rejects.jsonl: {}",
            last["total_scored"], last["total_rejected"]
        );
    }
    for f in &m.files {
        println!(
            "  done: {} (sha256 {}…, {} records, model {})",
            f.path,
            &f.sha256[..12],
            f.records,
            f.model
        );
    }
    if a.inputs.is_empty() {
        return Ok(());
    }
    // what a run would do now: decide every comment without scoring
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let heads = spec.load_heads(a.tasks.as_deref(), &encoder)?;
    let tasks: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
    let model = spec.version(&encoder.fingerprint()?, &tasks)?;
    let plan = vocmine::pipeline::plan(
        &a.workspace,
        &expand_inputs(&a.inputs)?,
        &a.cols.config()?,
        &model,
    )?;
    println!(
        "a run now (model {model}) would score {} ({} new, {} changed text, {} older model), skip {} unchanged and {} whole files, reject {}",
        plan.new + plan.changed_text + plan.older_model,
        plan.new,
        plan.changed_text,
        plan.older_model,
        plan.unchanged,
        plan.files_skipped.len(),
        plan.rejected
    );
    Ok(())
}

fn fmt_counts(m: &std::collections::BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_sets(
    files: &[PathBuf],
    text: &str,
    label: &str,
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
    let mut all = Labelled::default();
    for (i, f) in files.iter().enumerate() {
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

/// Embeds a labelled set file by file (each file's rows are cached on their own, so adding a
/// file to a training set reuses the others' embeddings).
pub(crate) fn embed(
    enc: &Encoder,
    fp: &str,
    cache: &EmbeddingCache,
    set: &Labelled,
    what: &str,
) -> Result<Vec<Vec<f32>>> {
    let pb = bar(set.len(), what);
    let mut out = Vec::with_capacity(set.len());
    let mut start = 0;
    while start < set.len() {
        let end = (start..set.len())
            .find(|&i| set.sources[i] != set.sources[start])
            .unwrap_or(set.len());
        let done = out.len();
        let v = cache.embed(enc, fp, &set.texts[start..end], |d, _| {
            pb.set_position((done + d) as u64)
        })?;
        out.extend(v);
        start = end;
    }
    pb.finish_and_clear();
    Ok(out)
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    if let Some(spec) = &a.finetune {
        return finetune::run(finetune::FinetuneCli {
            spec,
            out: &a.out,
            layers: a.layers,
            stop_after: a.stop_after,
            device: &a.device,
            enc: &a.enc,
        });
    }
    let t0 = Instant::now();
    let spec = a.enc.spec()?;
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
        return few_shot(&a, k, train, (&encoder, &fp, &cache), (&relabel, &keep), t0);
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
            &a.label_field,
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
    let cfg = TrainConfig {
        hidden: a.hidden,
        epochs: a.epochs,
        lr: a.lr,
        seed: a.seed,
        class_weight: match a.class_weight.as_str() {
            "none" => ClassWeight::None,
            "balanced" => ClassWeight::Balanced,
            _ => ClassWeight::Sqrt,
        },
        ..TrainConfig::default()
    };
    let tt = Instant::now();
    let (mut head, rep) =
        vocmine::classify::train_head(&a.task, &labels, &xt, tt_, &xd, td_, &cfg)?;
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
            let (acc, acc_r) = accuracy(&probs, &labels, &set.labels);
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
        "config": cfg, "report": rep, "test": tests,
        "train_seconds": train_secs,
    });
    head.save(&a.out)?;
    println!(
        "trained {} head on {} examples ({} dev): dev accuracy {:.2}% at epoch {}/{}, temperature {:.2}, {:.1}s training, {:.1}s in all",
        a.task,
        train.len(),
        dev.len(),
        rep.dev_accuracy * 100.0,
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
        let (acc, _) = accuracy(&probs, &labels, &set.labels);
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
        &a.label_field,
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
fn accuracy(probs: &[Vec<f32>], labels: &[String], gold: &[String]) -> (f64, f64) {
    let present: Vec<bool> = labels.iter().map(|l| gold.contains(l)).collect();
    let (mut hit, mut hit_r) = (0usize, 0usize);
    for (p, g) in probs.iter().zip(gold) {
        let arg = |mask: bool| {
            (0..p.len())
                .filter(|&i| !mask || present[i])
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .map(|i| labels[i].as_str())
        };
        hit += usize::from(arg(false) == Some(g.as_str()));
        hit_r += usize::from(arg(true) == Some(g.as_str()));
    }
    let n = gold.len().max(1) as f64;
    (hit as f64 / n, hit_r as f64 / n)
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let mut texts = Vec::new();
    for f in &a.inputs {
        let (l, _) = read_labelled(f, &a.text_field, &a.text_field)?;
        texts.extend(l.texts);
    }
    if let Some(n) = a.limit {
        texts.truncate(n);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // warm-up
    encoder.encode(&refs[..refs.len().min(64)])?;
    let t0 = Instant::now();
    let toks = encoder.tokenize(&refs)?;
    let tok_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let embs = encoder.encode_ids(&toks)?;
    let enc_s = t1.elapsed().as_secs_f64();
    let real: usize = toks.iter().map(Vec::len).sum();
    let cfg = encoder.config();
    // e5-small / BERT-small: 12 layers of 4 h^2 + 2 h i linear weights
    let (h, layers, inter) = (encoder.dim(), 12usize, 4 * encoder.dim());
    let linear = (layers * (4 * h * h + 2 * h * inter)) as f64;
    let flops: f64 = toks
        .iter()
        .map(|t| forward_flops(t.len(), linear, h, layers))
        .sum();
    println!(
        "bench: {} texts, {} real tokens, engine {:?}, batch {}, threads {}, workers {}: tokenize {:.2}s; encode {:.2}s = {:.1} texts/s, {:.0} tokens/s, {:.1} GFLOP/s useful (tokenize+encode {:.1} texts/s)",
        texts.len(),
        real,
        cfg.engine,
        cfg.batch_size,
        cfg.threads,
        cfg.workers,
        tok_s,
        enc_s,
        texts.len() as f64 / enc_s,
        real as f64 / enc_s,
        flops / enc_s / 1e9,
        texts.len() as f64 / (enc_s + tok_s)
    );
    // the machine's peak at its clock now, on as many threads, right after the pass
    let (f32_peak, int8_peak) = (
        vocmine::encode::peak::f32_gflops(cfg.threads, 1000),
        vocmine::encode::peak::int8_gops(cfg.threads, 1000),
    );
    if f32_peak > 0.0 {
        println!(
            "peak measured now on {} threads ({}): f32 FMA {f32_peak:.1} GFLOP/s, int8 {int8_peak:.1} GOP/s; this pass: {:.0}% of the f32 peak{}",
            cfg.threads,
            if vocmine::encode::kernels512::use_avx512() {
                "AVX-512, int8 vpdpbusd"
            } else {
                "AVX2, int8 vpmaddubsw"
            },
            100.0 * flops / enc_s / 1e9 / f32_peak,
            if cfg.engine == vocmine::encode::Engine::Int8 {
                format!(", {:.0}% of the int8 peak", 100.0 * flops / enc_s / 1e9 / int8_peak)
            } else {
                String::new()
            }
        );
    }
    if let Some(r) = &a.reference {
        let (shape, reference) = read_npy_f32(r)?;
        let dim = encoder.dim();
        if shape.len() != 2 || shape[1] != dim || shape[0] < embs.len() {
            bail!(
                "{}: shape {shape:?}, expected at least [{}, {dim}]",
                r.display(),
                embs.len()
            );
        }
        let cos: Vec<f32> = embs
            .iter()
            .enumerate()
            .map(|(i, e)| cosine(e, &reference[i * dim..(i + 1) * dim]))
            .collect();
        let (worst_i, worst) = cos
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or((0, 1.0), |(i, &c)| (i, c));
        let below = cos.iter().filter(|&&c| c < a.min_cosine).count();
        let mean = cos.iter().map(|&c| c as f64).sum::<f64>() / cos.len().max(1) as f64;
        println!(
            "reference {}: {} embeddings, cosine min {worst:.7} (text {worst_i}), mean {mean:.7}, {below} below {}",
            r.display(),
            cos.len(),
            a.min_cosine
        );
        if below > 0 {
            bail!(
                "{below} embeddings below cosine {} to the reference",
                a.min_cosine
            );
        }
    }
    if let Some(p) = &a.dump {
        write_f32(p, &embs)?;
    }
    Ok(())
}

fn write_f32(p: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let mut bytes = Vec::with_capacity(rows.len() * rows.first().map_or(0, Vec::len) * 4);
    for r in rows {
        for x in r {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
}
