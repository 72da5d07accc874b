//! `topics` (cluster a run folder's comments into stable topics) and `topics-eval` (NMI/ARI
//! of the topics against a labelled corpus, and clustering time by input size).

use crate::cli::train::embed;
use crate::cli::{bar, EncoderArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::cluster::{fit, known_ids, update, TopicConfig, TopicModel};
use vocmine::corpus::{read_labelled, EmbeddingCache, Labelled};
use vocmine::metrics::{ari, nmi};
use vocmine::normalise::{normalise, NormaliseConfig};
use vocmine::segment::Segmenter;
use vocmine::workspace::embeddings::{load_aligned, Found, RowKey};

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

struct RunComments {
    ids: Vec<String>,
    texts: Vec<String>,
    /// (id, text hash, model) of each line: what its embedding depends on.
    keys: Vec<RowKey>,
}

fn read_run(run: &Path) -> Result<RunComments> {
    let path = run.join("scored.jsonl");
    let f = std::fs::File::open(&path).with_context(|| {
        format!(
            "{}: no scored comments (run `vocmine score INPUT --out {}` first)",
            path.display(),
            run.display()
        )
    })?;
    let mut out = RunComments {
        ids: Vec::new(),
        texts: Vec::new(),
        keys: Vec::new(),
    };
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}: invalid JSON", path.display(), i + 1))?;
        let (Some(id), Some(text)) = (v["id"].as_str(), v["text"].as_str()) else {
            bail!("{}: line {}: no id or text", path.display(), i + 1);
        };
        out.ids.push(id.to_string());
        out.texts.push(text.to_string());
        let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
        out.keys.push(RowKey {
            id: id.to_string(),
            text_hash: field("text_hash"),
            model: field("model"),
        });
    }
    Ok(out)
}

/// The embeddings of every comment of the run, row-aligned with scored.jsonl: the kept ones
/// where they line up with it (RUN/embeddings.f32, else the checkpoint parts), the rest
/// encoded now (through the embedding cache).
fn run_embeddings(
    run: &Path,
    c: &RunComments,
    encoder: &vocmine::encode::Encoder,
) -> Result<Vec<Vec<f32>>> {
    let (rows, found) = load_aligned(run, &c.keys, encoder.dim())
        .with_context(|| format!("cannot read the embeddings of {}", run.display()))?;
    let missing: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_none()).collect();
    match found {
        Found::Compacted => {}
        Found::Parts {
            stale, found: n, ..
        } => {
            if stale {
                eprintln!(
                    "{}: embeddings.f32 does not line up with scored.jsonl (an interrupted compaction, or another run's file): not used",
                    run.display()
                );
            }
            if n > 0 {
                eprintln!("took {n} embeddings from the checkpoint parts (state/parts)");
            }
            if !missing.is_empty() {
                eprintln!(
                    "encoding {} comments whose embeddings were not kept (score keeps them unless --no-embeddings)",
                    missing.len()
                );
            }
        }
    }
    let mut rows = rows;
    if !missing.is_empty() {
        let pick =
            |v: &[String]| -> Vec<String> { missing.iter().map(|&i| v[i].clone()).collect() };
        let set = Labelled {
            ids: pick(&c.ids),
            texts: pick(&c.texts),
            labels: vec![String::new(); missing.len()],
            label_sets: vec![Vec::new(); missing.len()],
            multi: false,
            sources: vec![run.display().to_string(); missing.len()],
        };
        let fp = encoder.fingerprint()?;
        let cache = EmbeddingCache::new(EmbeddingCache::default_dir());
        let embs = embed(encoder, &fp, &cache, &set, "embedding")?;
        for (&i, e) in missing.iter().zip(embs) {
            rows[i] = Some(e);
        }
    }
    Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
}

fn words(texts: &[String]) -> Vec<Vec<String>> {
    let seg = Segmenter::new();
    texts
        .iter()
        .map(|t| seg.tokens(&normalise(t, NormaliseConfig { mask_pii: false })))
        .collect()
}

fn read_assignments(path: &Path) -> Result<HashMap<String, i64>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    Ok(vocmine::index::read_topic_assignments(path)?
        .into_iter()
        .map(|(id, t)| (id, t.topic))
        .collect())
}

pub(crate) fn cmd_topics(a: TopicsArgs) -> Result<()> {
    let t0 = Instant::now();
    let c = read_run(&a.run)?;
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let embs = run_embeddings(&a.run, &c, &encoder)?;
    let w = words(&c.texts);
    let dir = a.run.join("topics");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let model_path = dir.join("model.json");
    let assignments_path = dir.join("assignments.jsonl");
    let cfg = a.cluster.config();
    let t_cluster = Instant::now();
    let updating = model_path.exists() && !a.refit;
    let (model, labels, kept) = if updating {
        let mut model: TopicModel = serde_json::from_str(
            &std::fs::read_to_string(&model_path)
                .with_context(|| format!("cannot read {}", model_path.display()))?,
        )
        .with_context(|| {
            format!(
                "{}: not a topic model (use --refit to start over)",
                model_path.display()
            )
        })?;
        let before = model.topics.len();
        let mut previous = read_assignments(&assignments_path)?;
        let known = known_ids(&model);
        let stale: BTreeSet<i64> = previous
            .values()
            .copied()
            .filter(|t| *t != -1 && !known.contains(t))
            .collect();
        if !stale.is_empty() {
            let n = previous.len();
            previous.retain(|_, t| *t == -1 || known.contains(t));
            eprintln!(
                "{}: discarded {} assignments to topics {} does not know ({:?}; left by an interrupted run?): those comments are assigned again",
                assignments_path.display(),
                n - previous.len(),
                model_path.display(),
                stale
            );
        }
        let labels = update(&mut model, &embs, &w, &c.ids, &previous)?;
        let kept = previous.len();
        println!(
            "updated topic model: {} topics before, {} now",
            before,
            model.topics.len()
        );
        (model, labels, kept)
    } else {
        let (model, labels) = fit(&embs, &w, &c.ids, &cfg)?;
        (model, labels, 0)
    };
    let cluster_s = t_cluster.elapsed().as_secs_f64();
    let by_id: BTreeMap<i64, &str> = model
        .topics
        .iter()
        .map(|t| (t.id, t.label.as_str()))
        .collect();
    let mut lines = String::new();
    for (id, &l) in c.ids.iter().zip(&labels) {
        let label = by_id.get(&l).copied().unwrap_or("");
        lines += &serde_json::json!({"id": id, "topic": l, "label": label}).to_string();
        lines.push('\n');
    }
    // The model first: every id an assignments file can hold is then one the model on disk
    // knows, whenever the process dies (an update only adds ids; the assignments of a model
    // that is replaced go before the new model is written).
    if !updating && assignments_path.exists() {
        std::fs::remove_file(&assignments_path)
            .with_context(|| format!("cannot remove {}", assignments_path.display()))?;
    }
    vocmine::workspace::write_atomic(
        &model_path,
        (serde_json::to_string_pretty(&model)? + "\n").as_bytes(),
    )?;
    vocmine::workspace::pause_point("topics:model-written");
    vocmine::workspace::write_atomic(&assignments_path, lines.as_bytes())?;
    let unassigned = labels.iter().filter(|&&l| l < 0).count();
    println!(
        "{} comments: {} topics, {} unassigned ({:.1}%), {} kept their earlier topic; clustering {:.2}s, total {:.1}s",
        c.ids.len(),
        model.topics.len(),
        unassigned,
        100.0 * unassigned as f64 / c.ids.len().max(1) as f64,
        kept,
        cluster_s,
        t0.elapsed().as_secs_f64()
    );
    let mut topics: Vec<_> = model.topics.iter().filter(|t| t.size > 0).collect();
    topics.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    for t in topics.iter().take(20) {
        println!("  topic {:>3}  {:>5} comments  {}", t.id, t.size, t.label);
    }
    println!(
        "wrote {} and {}",
        model_path.display(),
        assignments_path.display()
    );
    if a.run.join("index").join("meta.json").exists() {
        let stats = crate::cli::search::index_run(
            &a.run,
            None,
            None,
            None,
            &vocmine::index::UpdateOptions::default(),
        )?;
        crate::cli::search::print_index_stats(&stats, &a.run.join("index"))?;
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
        let w = words(&set.texts);
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
