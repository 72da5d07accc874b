//! `topics` (cluster a run folder's comments into stable topics) and `topics-eval` (NMI/ARI
//! of the topics against a labelled corpus, and clustering time by input size).

use super::args::{bar, ClusterArgs, EncoderArgs};
use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::time::Instant;
use vocmine::topics::TopicsEvalEvent as Event;
use vocmine::topics::{topics_eval, topics_for_run, TopicsEval, TopicsEvalConfig};
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct TopicsArgs {
    /// Run folder (the --out of score)
    run: PathBuf,
    /// Start a new topic model instead of updating RUN/topics/model.json
    #[arg(long)]
    refit: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    enc: EncoderArgs,
}

#[derive(Args)]
pub(crate) struct TopicsEvalArgs {
    /// Labelled JSONL/CSV files (their embeddings are cached)
    #[arg(long = "data", required = true)]
    data: Vec<PathBuf>,
    /// Label field the topics are compared with
    #[arg(long, default_value = "label")]
    label_field: String,
    /// Instead of NMI: time clustering on the first N embeddings for each N (comma-separated)
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Write the measurements as JSON here
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    enc: EncoderArgs,
}

pub(crate) fn cmd_topics(a: TopicsArgs) -> Result<()> {
    let t0 = Instant::now();
    let run = RunDir::new(&a.run);
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let pb = bar(0, "embedding");
    let t = topics_for_run(
        &run,
        &encoder,
        &a.cluster.config(),
        a.refit,
        |n| pb.suspend(|| eprintln!("{n}")),
        |d, total| {
            pb.set_length(total as u64);
            pb.set_position(d as u64)
        },
    )?;
    pb.finish_and_clear();
    out!("{}", t.to_text(t0.elapsed().as_secs_f64(), &run))?;
    Ok(())
}

pub(crate) fn cmd_topics_eval(a: TopicsEvalArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    // The subject view removes the predicted sentiment's directions, as `vocmine topics` does.
    let sentiment = spec
        .load_heads(Some(&["sentiment".to_string()]), &encoder)
        .ok()
        .and_then(|h| h.into_iter().next());
    let cfg = TopicsEvalConfig {
        data: a.data,
        label_field: a.label_field,
        sizes: a.sizes,
        cluster: a.cluster.config(),
        out: a.out,
    };
    let mut pb: Option<ProgressBar> = None;
    let r = topics_eval(&encoder, sentiment.as_ref(), &cfg, |e| match e {
        Event::Embedding { done, total } => {
            pb.get_or_insert_with(|| bar(total, "embedding"))
                .set_position(done as u64);
        }
        Event::Segmenting(n) => {
            pb.take().inspect(ProgressBar::finish_and_clear);
            pb = Some(bar(n, "segmenting"));
        }
        Event::Timed(row) => {
            pb.take().inspect(ProgressBar::finish_and_clear);
            println!(
                "{} comments: {:.2}s, {} topics, {} unassigned",
                row.n, row.seconds, row.topics, row.unassigned
            );
        }
    })?;
    pb.take().inspect(ProgressBar::finish_and_clear);
    if let TopicsEval::Agreement(r) = &r {
        let n = |x: f64| if x.is_finite() { x } else { 0.0 };
        outln!(
            "{} comments, {} gold labels: {} topics, {} unassigned; NMI {:.3} (assigned only {:.3}), ARI {:.3} ({:.3}); clustering {:.2}s",
            r.n, r.gold_labels, r.topics, r.unassigned, n(r.nmi), n(r.nmi_assigned_only),
            n(r.ari), n(r.ari_assigned_only), r.cluster_seconds
        )?;
        for t in r.topic_labels.iter().take(30) {
            outln!("  topic {:>3}  {:>5}  {}", t.id, t.size, t.label)?;
        }
    }
    Ok(())
}
