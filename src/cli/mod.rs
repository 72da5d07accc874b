//! Command definitions (clap) and their handlers.

/// `println!` for results: returns the write's `io::Result` instead of panicking when stdout is
/// closed early (`vocmine search ... | head -1`); [`is_broken_pipe`] lets `main` end quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod bench;
mod bench_search;
mod eval;
mod few_shot;
mod finetune;
mod job_progress;
mod report;
mod search;
mod topics;
mod train;
mod train_report;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use vocmine::encode::{set_intra_op_threads, Encoder, EncoderConfig, Engine};
use vocmine::index::index_run;
use vocmine::ingest::{expand_inputs, ColumnMap, Format, IngestConfig};
use vocmine::model::{default_model_dir, ModelSpec};
use vocmine::pipeline::{run_segmenter, score, ScoreConfig};
use vocmine::severity::parse_tier_weights;
use vocmine::text::normalise::NormaliseConfig;
use vocmine::workspace::RunDir;

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
    Train(train::TrainArgs),
    /// Measure encoder throughput (texts/s, tokens/s) on labelled or plain text files.
    Bench(bench::BenchArgs),
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
    /// Model folder: a vocmine.toml bundle or a bare encoder folder [default: $VOCMINE_MODEL,
    /// else models/ beside the binary or one or two folders above it, else the models/ of the
    /// source tree it was built from]
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
        let (dir, from) = match &self.model {
            Some(d) => (d.clone(), ""),
            None => (default_model_dir()?, " (the default model folder)"),
        };
        ModelSpec::open(&dir)
            .with_context(|| format!("cannot open model folder {}{from}", dir.display()))
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
    /// Input format [default: from the extension; .xlsx/.xls/.ods are spreadsheets]
    #[arg(long, value_parser = ["csv", "jsonl", "xlsx", "parquet"])]
    format: Option<String>,
    /// CSV delimiter, one character (e.g. ';' or 'tab') [default: tab for .tsv, else the one
    /// of , ; tab | found most often in the header line]
    #[arg(long)]
    delimiter: Option<String>,
    /// Text encoding of CSV/JSONL input: auto, utf-8, gb18030 (or gbk), big5, utf-16le, ...
    /// [default: auto: UTF-16 by its byte-order mark, UTF-8, else GB18030]
    #[arg(long)]
    encoding: Option<String>,
    /// Sheet of a spreadsheet input to read [default: the first]
    #[arg(long)]
    sheet: Option<String>,
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
            Some("xlsx") => Some(Format::Sheet),
            Some("parquet") => Some(Format::Parquet),
            _ => None,
        };
        Ok(IngestConfig {
            columns: cols,
            format,
            delimiter,
            encoding: self.encoding.clone(),
            sheet: self.sheet.clone(),
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
    /// Keep the pooled embeddings (the default), so that `topics` does not encode every
    /// comment again: 384 floats = 1.5 KB per comment in RUN/embeddings.f32 and as much again
    /// in the checkpoint parts (state/parts), i.e. about 3 KB per comment, 3 GB per million
    #[arg(long, overrides_with = "no_embeddings")]
    embeddings: bool,
    /// Do not keep the embeddings (saves ~3 KB per comment; `topics` then encodes every comment
    /// again, which takes about as long as scoring)
    #[arg(long, overrides_with = "embeddings")]
    no_embeddings: bool,
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
    /// jsonl: RUN/scored.jsonl; parquet: also RUN/scored.parquet with typed columns (kept up
    /// to date by every later run; rejects stay JSONL)
    #[arg(long, value_parser = ["jsonl", "parquet"], default_value = "jsonl")]
    output_format: String,
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

/// Whether `e` comes from writing to a closed pipe (the reader of stdout went away): not a
/// failure of the command, whose work is done by the time it prints.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Score(a) => cmd_score(a),
        Cmd::Train(a) => train::cmd_train(a),
        Cmd::Bench(a) => bench::cmd_bench(a),
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
    let inputs = input_files(&a.inputs)?;
    if inputs.is_empty() {
        bail!("no input files found in {:?}", a.inputs);
    }
    let encoder = a.enc.load(&spec)?;
    let heads = spec.load_heads(a.tasks.as_deref(), &encoder)?;
    let tasks: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
    let model_version = spec.version(&encoder.fingerprint()?, &tasks)?;
    let run = RunDir::new(&a.out);
    let segmenter = run_segmenter(&run, a.user_dict.as_deref())?;
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
        save_embeddings: a.embeddings || !a.no_embeddings,
        model_version,
        tier_weights: parse_tier_weights(&a.tier_weights)?,
    };
    let pb = spinner("scoring");
    let sum = score(&cfg, &encoder, &heads, &segmenter, |n| pb.set_position(n))?;
    pb.finish_and_clear();
    let parquet =
        vocmine::workspace::parquet::update_run_parquet(&run, a.output_format == "parquet")?;
    // All the work (the index included) is done before anything is printed, so a closed stdout
    // (`| head -1`) cannot cut it short.
    let index_stats = if a.no_index {
        None
    } else {
        let pb = spinner("indexing");
        let stats = index_run(&run, |s| pb.set_position(s.read))?;
        pb.finish_and_clear();
        Some(stats)
    };
    outln!(
        "scored {} of {} records ({} rejected, {} unchanged and skipped) in {:.1}s: {:.1} comments/s, {} encoder tokens ({:.0} tokens/s in the encoder)",
        sum.scored,
        sum.records,
        sum.rejected,
        sum.unchanged,
        sum.seconds,
        sum.texts_per_second,
        sum.tokens,
        sum.tokens as f64 / sum.encode_seconds.max(1e-9)
    )?;
    if sum.scored > 0 {
        outln!(
            "scored: {} new, {} with changed text, {} scored before by another model version",
            sum.new,
            sum.changed_text,
            sum.older_model
        )?;
    }
    if !sum.files_skipped.is_empty() {
        outln!(
            "skipped {} input file(s) already scored to the end by this model: {}",
            sum.files_skipped.len(),
            sum.files_skipped.join(", ")
        )?;
    }
    if !sum.languages.is_empty() {
        outln!("languages: {}", fmt_counts(&sum.languages))?;
    }
    for (task, counts) in &sum.labels {
        outln!("{task}: {}", fmt_counts(counts))?;
    }
    if sum.total_labels != sum.labels {
        println!("in the whole workspace:");
        for (task, counts) in &sum.total_labels {
            println!("  {task}: {}", fmt_counts(counts));
        }
    }
    if sum.masked_comments > 0 {
        outln!("personal data masked in {} comments", sum.masked_comments)?;
    }
    outln!(
        "workspace {}: {} comments in scored.jsonl, {} in rejects.jsonl (model {}, {} checkpoints this run)",
        a.out.display(),
        sum.total_scored,
        sum.total_rejected,
        sum.model,
        sum.checkpoints
    )?;
    if let Some(n) = parquet {
        let p = run.scored_parquet();
        outln!("wrote {n} comments to {}", p.display())?;
    }
    if let Some(stats) = index_stats {
        search::print_index_stats(&stats, &run.index())?;
    }
    Ok(())
}

fn cmd_status(a: StatusArgs) -> Result<()> {
    use vocmine::workspace::read_manifest;
    let m = read_manifest(&a.workspace)?;
    if m.parts.is_empty() && m.runs.is_empty() {
        outln!("{}: no scoring run yet", a.workspace.display())?;
    }
    let scored: u64 = m.parts.iter().map(|p| p.scored).sum();
    outln!(
        "{}: {} checkpoints, {} scored lines (before compaction), {} runs, {} input files done",
        a.workspace.display(),
        m.parts.len(),
        scored,
        m.runs.len(),
        m.files.len()
    )?;
    if let Some(last) = m.runs.last() {
        outln!(
            "last run: {} scored ({} new, {} changed, {} older model), {} unchanged, {} rejected, model {}, {:.1}s",
            last["scored"], last["new"], last["changed_text"], last["older_model"], last["unchanged"],
            last["rejected"], last["model"].as_str().unwrap_or("?"), last["seconds"].as_f64().unwrap_or(0.0)
        )?;
        outln!(
            "in scored.jsonl: {} comments; rejects.jsonl: {}",
            last["total_scored"],
            last["total_rejected"]
        )?;
    }
    for f in &m.files {
        outln!(
            "  done: {} (sha256 {}…, {} records, model {})",
            f.path,
            &f.sha256[..12],
            f.records,
            f.model
        )?;
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
        &input_files(&a.inputs)?,
        &a.cols.config()?,
        &model,
    )?;
    outln!(
        "a run now (model {model}) would score {} ({} new, {} changed text, {} older model), skip {} unchanged and {} whole files, reject {}",
        plan.new + plan.changed_text + plan.older_model,
        plan.new,
        plan.changed_text,
        plan.older_model,
        plan.unchanged,
        plan.files_skipped.len(),
        plan.rejected
    )?;
    Ok(())
}

/// The files to read from the inputs named, with a note on stderr for each entry of an input
/// folder that is not read.
fn input_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let found = expand_inputs(inputs)?;
    for (path, why) in &found.skipped {
        eprintln!("note: skipped {}: {why}", path.display());
    }
    Ok(found.files)
}

fn fmt_counts(m: &std::collections::BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
