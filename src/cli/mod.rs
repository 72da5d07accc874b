//! Command definitions (clap) and their dispatch. Each command family has its own file, which
//! turns its flags into the library's settings, makes one library call and prints; the flag
//! groups and helpers they share are in `args`.

/// `println!` for results: returns the write's `io::Result` instead of panicking when stdout is
/// closed early (`vocmine search ... | head -1`); [`is_broken_pipe`] lets `main` end quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` for results, with [`outln!`]'s handling of a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod alerts;
mod args;
mod bench;
mod bench_search;
mod eval;
mod index;
mod report;
mod score;
mod search;
mod serve;
mod status;
mod topics;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Score(score::ScoreArgs),
    /// Train a classification head on labelled JSONL/CSV data (frozen encoder, cached
    /// embeddings).
    Train(train::TrainArgs),
    /// Measure encoder throughput (texts/s, tokens/s) on labelled or plain text files.
    Bench(bench::BenchArgs),
    /// Evaluate a task's head on labelled data: accuracy, F1s, confusion, calibration (ECE),
    /// bootstrap intervals, throughput; compare two reports; run a suite.
    Eval(eval::EvalArgs),
    /// Show a workspace: counts, runs, model versions, and what a run on INPUTS would do now.
    Status(status::StatusArgs),
    /// Build or update the search index of a run folder (or of a scored JSONL file): upsert
    /// by comment id, unchanged comments skipped.
    Index(index::IndexArgs),
    /// Search an index: full-text query, filters, facet counts, highlighted snippets.
    Search(search::SearchArgs),
    /// Serve an index over HTTP: GET /search (the search flags as parameters), GET /health.
    Serve(serve::ServeArgs),
    /// Measure indexing throughput and query latency on labelled corpora (with a linear-scan
    /// baseline in the same run).
    BenchSearch(bench_search::BenchSearchArgs),
    /// Cluster a run folder's comments into topics (HDBSCAN, c-TF-IDF labels); a rerun keeps
    /// topic ids and assigns new comments. Writes RUN/topics/{model.json,assignments.jsonl}.
    Topics(topics::TopicsArgs),
    /// Cluster a labelled corpus and report NMI/ARI against its labels, or time clustering by
    /// input size (--sizes).
    TopicsEval(topics::TopicsEvalArgs),
    /// Rank pain points and topics (volume, negativity, severity, tier, trend), flag spikes,
    /// compute CSAT/NPS/CES and each topic's impact: RUN/report.json and RUN/report.html.
    Report(report::ReportArgs),
    /// Deliver a run's spikes, one event each, to webhooks or queue files (routing rules,
    /// retries with backoff, RUN/alerts/delivered.jsonl so nothing is sent twice or lost).
    Alerts(alerts::AlertsArgs),
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
        Cmd::Score(a) => score::cmd_score(a),
        Cmd::Train(a) => train::cmd_train(a),
        Cmd::Bench(a) => bench::cmd_bench(a),
        Cmd::Eval(a) => eval::cmd_eval(a),
        Cmd::Status(a) => status::cmd_status(a),
        Cmd::Index(a) => index::cmd_index(a),
        Cmd::Search(a) => search::cmd_search(a),
        Cmd::Serve(a) => serve::cmd_serve(a),
        Cmd::BenchSearch(a) => bench_search::cmd_bench_search(a),
        Cmd::Topics(a) => topics::cmd_topics(a),
        Cmd::TopicsEval(a) => topics::cmd_topics_eval(a),
        Cmd::Report(a) => report::cmd_report(a),
        Cmd::Alerts(a) => alerts::cmd_alerts(a),
    }
}
