//! `vocmine topics-eval`: topics of a labelled corpus against its labels (NMI, ARI), or the
//! time clustering takes by input size.

use super::{subject_for, words_and_languages};
use crate::classify::Head;
use crate::cluster::{fit, Subject, TopicConfig};
use crate::corpus::{read_labelled, EmbeddingCache, Labelled};
use crate::encode::Encoder;
use crate::metrics::{ari, nmi};
use crate::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What to measure.
#[derive(Debug, Clone)]
pub struct TopicsEvalConfig {
    /// Labelled JSONL/CSV files (field `text`); their embeddings are cached.
    pub data: Vec<PathBuf>,
    /// The label field the topics are compared with.
    pub label_field: String,
    /// Instead of the agreement: time clustering on the first N embeddings for each N.
    pub sizes: Option<Vec<usize>>,
    /// The clustering settings.
    pub cluster: TopicConfig,
    /// Write the measurements as JSON here.
    pub out: Option<PathBuf>,
}

/// What [`topics_eval`] reports while it runs.
#[derive(Debug)]
pub enum TopicsEvalEvent<'a> {
    /// Embeddings done so far, of `total`.
    Embedding {
        /// Texts embedded.
        done: usize,
        /// Texts to embed.
        total: usize,
    },
    /// The words of `n` texts are being cut (for the topic labels).
    Segmenting(usize),
    /// One size timed.
    Timed(&'a SizeTiming),
}

/// Clustering time on the first `n` embeddings.
#[derive(Debug, Clone, Serialize)]
pub struct SizeTiming {
    /// Embeddings clustered.
    pub n: usize,
    /// Seconds.
    pub seconds: f64,
    /// Topics found.
    pub topics: usize,
    /// Comments that fit no topic.
    pub unassigned: usize,
}

/// One topic's id, size and label.
#[derive(Debug, Clone, Serialize)]
pub struct TopicLabel {
    /// Topic id.
    pub id: i64,
    /// Its label.
    pub label: String,
    /// Comments in it.
    pub size: usize,
}

/// The topics of a labelled corpus against its labels (field names are the JSON's).
#[derive(Debug, Clone, Serialize)]
pub struct TopicAgreement {
    /// Adjusted Rand index, unassigned comments as one cluster.
    pub ari: f64,
    /// Adjusted Rand index over the assigned comments only.
    pub ari_assigned_only: f64,
    /// Clustering seconds.
    pub cluster_seconds: f64,
    /// The clustering settings.
    pub config: TopicConfig,
    /// Distinct gold labels.
    #[serde(skip)]
    pub gold_labels: usize,
    /// Comments clustered.
    pub n: usize,
    /// Normalised mutual information, unassigned comments as one cluster.
    pub nmi: f64,
    /// NMI over the assigned comments only.
    pub nmi_assigned_only: f64,
    /// The topics found, in the model's order.
    pub topic_labels: Vec<TopicLabel>,
    /// Topics found.
    pub topics: usize,
    /// Comments that fit no topic.
    pub unassigned: usize,
}

/// What [`topics_eval`] measured.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TopicsEval {
    /// Clustering time by size.
    Timing {
        /// The clustering settings.
        config: TopicConfig,
        /// One row per size.
        timing: Vec<SizeTiming>,
    },
    /// Agreement with the labels.
    Agreement(TopicAgreement),
}

/// Clusters the embeddings of the labelled files (cached under the default cache) and
/// compares the topics with their labels, or times clustering for each of `cfg.sizes`; writes
/// the result to `cfg.out` when given. With a `sentiment` head, the comments' predicted
/// sentiment is one of the directions removed for the subject view, as `vocmine topics` does
/// with the run's own predictions.
pub fn topics_eval(
    encoder: &Encoder,
    sentiment: Option<&Head>,
    cfg: &TopicsEvalConfig,
    mut on: impl FnMut(TopicsEvalEvent),
) -> Result<TopicsEval> {
    let fp = encoder.fingerprint()?;
    let cache = EmbeddingCache::new(EmbeddingCache::default_dir());
    let mut set = Labelled::default();
    for f in &cfg.data {
        let (s, _) = read_labelled(f, "text", &cfg.label_field)?;
        set.extend(s);
    }
    let total = set.len();
    let embs = cache.embed_set(encoder, &fp, &set, |done| {
        on(TopicsEvalEvent::Embedding { done, total })
    })?;
    let config = cfg.cluster;
    let result = if let Some(sizes) = &cfg.sizes {
        let mut timing = Vec::new();
        for &n in sizes {
            let n = n.min(embs.len());
            let w = vec![Vec::<String>::new(); n];
            let t = Instant::now();
            let (model, labels) = fit(&embs[..n], &w, &set.ids[..n], &config, Subject::default())?;
            let row = SizeTiming {
                n,
                seconds: t.elapsed().as_secs_f64(),
                topics: model.topics.len(),
                unassigned: labels.iter().filter(|&&l| l < 0).count(),
            };
            on(TopicsEvalEvent::Timed(&row));
            timing.push(row);
        }
        TopicsEval::Timing { config, timing }
    } else {
        on(TopicsEvalEvent::Segmenting(set.len()));
        let (w, lang) = words_and_languages(&set.texts, &Default::default());
        let sentiment = match sentiment {
            Some(h) => predicted(h, &embs, &set.texts)?,
            None => Vec::new(),
        };
        let t = Instant::now();
        let subject = subject_for(&embs, &lang, &sentiment);
        let (model, labels) = fit(&embs, &w, &set.ids, &config, subject)?;
        let cluster_seconds = t.elapsed().as_secs_f64();
        let pred: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let assigned: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 0).collect();
        let gold_a: Vec<String> = assigned.iter().map(|&i| set.labels[i].clone()).collect();
        let pred_a: Vec<String> = assigned.iter().map(|&i| pred[i].clone()).collect();
        let gold: std::collections::BTreeSet<&String> = set.labels.iter().collect();
        TopicsEval::Agreement(TopicAgreement {
            ari: ari(&set.labels, &pred),
            ari_assigned_only: ari(&gold_a, &pred_a),
            cluster_seconds,
            config,
            gold_labels: gold.len(),
            n: set.len(),
            nmi: nmi(&set.labels, &pred),
            nmi_assigned_only: nmi(&gold_a, &pred_a),
            topic_labels: (model.topics.iter())
                .map(|t| TopicLabel {
                    id: t.id,
                    label: t.label.clone(),
                    size: t.size,
                })
                .collect(),
            topics: model.topics.len(),
            unassigned: labels.len() - assigned.len(),
        })
    };
    if let Some(p) = &cfg.out {
        crate::workspace::write_json_file(p, &result)?;
    }
    Ok(result)
}

/// Each embedding's most probable label under `head`, routed by the text's language as
/// `score` routes it.
fn predicted(head: &Head, embs: &[Vec<f32>], texts: &[String]) -> Result<Vec<String>> {
    use crate::text::normalise::{normalise, NormaliseConfig};
    let langs: Vec<&'static str> = texts
        .iter()
        .map(|t| {
            normalise(t, NormaliseConfig { mask_pii: false })
                .lang
                .as_str()
        })
        .collect();
    let probs = head.predict_routed(embs, &langs)?;
    Ok(probs
        .iter()
        .map(|p| {
            let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
            head.meta.labels.get(best).cloned().unwrap_or_default()
        })
        .collect())
}
