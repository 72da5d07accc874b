//! `topics` (cluster a run folder's comments into stable topics) and `topics-eval` (NMI/ARI
//! of the topics against a labelled corpus, and clustering time by input size).

use crate::cli::train::embed;
use crate::cli::{bar, EncoderArgs};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use vocmine::cluster::{fit, TopicConfig};
use vocmine::corpus::{read_labelled, EmbeddingCache, Labelled};
use vocmine::metrics::{ari, nmi};
use vocmine::topics::{label_words, topics_for_run};
use vocmine::workspace::RunDir;

#[derive(Args, Clone)]
pub(crate) struct ClusterArgs {
    /// Smallest topic [default: 0.5% of the comments clustered, at least 10]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    min_topic_size: usize,
    /// HDBSCAN's min_samples [default: 5]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    min_samples: usize,
    /// Cluster at most this many comments (seeded sample); the rest are assigned
    #[arg(long, default_value_t = 10_000)]
    max_sample: usize,
    /// PCA dimensions the clustering runs in
    #[arg(long, default_value_t = 20)]
    dims: usize,
    /// Largest topic as a share of the comments clustered: a soft target. It caps the clusters
    /// of a first clustering, unless the cap would leave more than half of the comments
    /// unplaced (the data has one or two big topics), in which case the uncapped clustering is
    /// kept; comments assigned to a topic's centroid afterwards, and on later runs, can make a
    /// topic larger
    #[arg(long, default_value_t = 0.25)]
    max_share: f32,
    /// A topic's radius covers this share of its members (assignment threshold)
    #[arg(long, default_value_t = 1.0)]
    radius_quantile: f32,
    /// Seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl ClusterArgs {
    fn config(&self) -> TopicConfig {
        TopicConfig {
            min_cluster_size: self.min_topic_size,
            min_samples: self.min_samples,
            max_sample: self.max_sample.max(2),
            dims: self.dims.max(1),
            max_share: self.max_share.clamp(0.0, 1.0),
            radius_quantile: self.radius_quantile.clamp(0.01, 1.0),
            seed: self.seed,
            ..TopicConfig::default()
        }
    }
}

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
    if let Some(before) = t.topics_before {
        println!(
            "updated topic model: {} topics before, {} now",
            before,
            t.model.topics.len()
        );
    }
    println!(
        "{} comments: {} topics, {} unassigned ({:.1}%), {} kept their earlier topic; clustering {:.2}s, total {:.1}s",
        t.comments,
        t.model.topics.len(),
        t.unassigned,
        100.0 * t.unassigned as f64 / t.comments.max(1) as f64,
        t.kept,
        t.cluster_seconds,
        t0.elapsed().as_secs_f64()
    );
    let mut topics: Vec<_> = t.model.topics.iter().filter(|t| t.size > 0).collect();
    topics.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    for t in topics.iter().take(20) {
        println!("  topic {:>3}  {:>5} comments  {}", t.id, t.size, t.label);
    }
    println!(
        "wrote {} and {}",
        run.topic_model().display(),
        run.assignments().display()
    );
    if let Some(stats) = &t.index {
        crate::cli::search::print_index_stats(stats, &run.index())?;
    }
    Ok(())
}

pub(crate) fn cmd_topics_eval(a: TopicsEvalArgs) -> Result<()> {
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let fp = encoder.fingerprint()?;
    let cache = EmbeddingCache::new(EmbeddingCache::default_dir());
    let mut set = Labelled::default();
    for f in &a.data {
        let (s, _) = read_labelled(f, "text", &a.label_field)?;
        set.extend(s);
    }
    let embs = embed(&encoder, &fp, &cache, &set, "embedding")?;
    let cfg = a.cluster.config();
    let report = if let Some(sizes) = &a.sizes {
        let mut rows = Vec::new();
        for &n in sizes {
            let n = n.min(embs.len());
            let w = vec![Vec::new(); n];
            let t = Instant::now();
            let (model, labels) = fit(&embs[..n], &w, &set.ids[..n], &cfg)?;
            let s = t.elapsed().as_secs_f64();
            let unassigned = labels.iter().filter(|&&l| l < 0).count();
            println!(
                "{n} comments: {:.2}s, {} topics, {unassigned} unassigned",
                s,
                model.topics.len()
            );
            rows.push(serde_json::json!({"n": n, "seconds": s, "topics": model.topics.len(), "unassigned": unassigned}));
        }
        serde_json::json!({"timing": rows, "config": cfg})
    } else {
        let pb = bar(set.len(), "segmenting");
        let w = label_words(&set.texts);
        pb.finish_and_clear();
        let t = Instant::now();
        let (model, labels) = fit(&embs, &w, &set.ids, &cfg)?;
        let s = t.elapsed().as_secs_f64();
        let pred: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let assigned: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 0).collect();
        let gold_a: Vec<String> = assigned.iter().map(|&i| set.labels[i].clone()).collect();
        let pred_a: Vec<String> = assigned.iter().map(|&i| pred[i].clone()).collect();
        let r = serde_json::json!({
            "n": set.len(),
            "topics": model.topics.len(),
            "unassigned": labels.len() - assigned.len(),
            "nmi": nmi(&set.labels, &pred),
            "ari": ari(&set.labels, &pred),
            "nmi_assigned_only": nmi(&gold_a, &pred_a),
            "ari_assigned_only": ari(&gold_a, &pred_a),
            "cluster_seconds": s,
            "config": cfg,
            "topic_labels": model.topics.iter().map(|t| serde_json::json!({"id": t.id, "size": t.size, "label": t.label})).collect::<Vec<_>>(),
        });
        println!(
            "{} comments, {} gold labels: {} topics, {} unassigned; NMI {:.3} (assigned only {:.3}), ARI {:.3} ({:.3}); clustering {:.2}s",
            set.len(),
            set.labels.iter().collect::<std::collections::BTreeSet<_>>().len(),
            model.topics.len(),
            labels.len() - assigned.len(),
            r["nmi"].as_f64().unwrap_or(0.0),
            r["nmi_assigned_only"].as_f64().unwrap_or(0.0),
            r["ari"].as_f64().unwrap_or(0.0),
            r["ari_assigned_only"].as_f64().unwrap_or(0.0),
            s
        );
        for t in model.topics.iter().take(30) {
            println!("  topic {:>3}  {:>5}  {}", t.id, t.size, t.label);
        }
        r
    };
    if let Some(p) = &a.out {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
