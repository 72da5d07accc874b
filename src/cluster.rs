//! Topics: density-based clustering of the pooled embeddings, readable labels, and a topic
//! model that keeps its ids from run to run.
//!
//! - **Reduce**: PCA of the L2-normalised embeddings to a few dimensions (seeded block power
//!   iteration on the covariance), where density estimates are meaningful.
//! - **Cluster**: HDBSCAN (the `hdbscan` crate) finds the number of topics itself and leaves
//!   comments that fit no topic unassigned (-1). Prim's spanning tree is quadratic, so inputs
//!   over `max_sample` comments are clustered on a seeded sample and the rest are *assigned*
//!   (nearest centroid, within the topic's radius): n log n-ish overall, the same path that
//!   assigns a later night's comments.
//! - **Label**: class-based TF-IDF over the segmenter's words (simplified Chinese via jieba,
//!   English lower-cased, stop words removed), and the three comments closest to the centroid.
//! - **Stay stable**: [`TopicModel`] stores centroids (in embedding space), radii, labels and
//!   the next free id. [`update`] keeps every earlier assignment, assigns new comments to
//!   existing topics, and opens new topics only from dense groups of new, unassigned comments.

mod pca;
mod subject;
mod themes;
pub use pca::{pca, PCA_ROUNDS};
pub use subject::{Factor, Subject, MIN_GROUP};
pub use themes::{themes, Theme, THEME_SIMILARITY};

use crate::rng::Rng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Clustering settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// Smallest topic (0: 0.5% of the comments clustered, i.e. of the sample, at least 10).
    pub min_cluster_size: usize,
    /// HDBSCAN's k for core distances (0: by the number of comments clustered, see
    /// [`auto_min_samples`]).
    pub min_samples: usize,
    /// Cluster at most this many comments; the rest are assigned to the topics found.
    pub max_sample: usize,
    /// Largest topic as a share of the comments clustered, a soft target: a first clustering
    /// splits bigger clusters unless that leaves more than half of the comments unplaced (then
    /// the uncapped clustering is kept), and assignment to centroids can grow a topic past it.
    pub max_share: f32,
    /// PCA dimensions the clustering runs in.
    pub dims: usize,
    /// Share of a topic's members its radius covers (the rest count as outliers when
    /// assigning).
    pub radius_quantile: f32,
    /// Taken off each new topic's radius: HDBSCAN keeps dense cores, and the comments just
    /// outside them (most of its noise) belong to them. 0 in models written before it existed.
    #[serde(default)]
    pub radius_slack: f32,
    /// Seed for the sample and the PCA start.
    pub seed: u64,
    /// Terms kept per topic.
    pub top_terms: usize,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            min_cluster_size: 0,
            min_samples: 0,
            max_sample: 10_000,
            max_share: 0.25,
            dims: 10,
            radius_quantile: 1.0,
            radius_slack: 0.03,
            seed: 42,
            top_terms: 8,
        }
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    /// Stable id (never reused).
    pub id: i64,
    /// Readable label: the top three terms.
    pub label: String,
    /// Top terms with their class-based TF-IDF weights.
    pub terms: Vec<(String, f32)>,
    /// Comments assigned to it.
    pub size: usize,
    /// Ids of the three comments closest to the centroid.
    pub representatives: Vec<String>,
    /// Unit-length mean embedding of the members it was found from.
    pub centroid: Vec<f32>,
    /// Cosine similarity to the centroid a comment needs to be assigned to this topic.
    pub radius: f32,
}

/// A saved topic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicModel {
    /// Format version.
    pub version: u32,
    /// The settings it was built with.
    pub config: TopicConfig,
    /// Next id a new topic gets.
    pub next_id: i64,
    /// The topics, by id.
    pub topics: Vec<Topic>,
    /// The directions removed from every embedding before it is clustered or assigned
    /// (sentiment and language, see [`Subject`]); centroids live in that view. Empty in models
    /// written before subjects existed, which assign as they always did.
    #[serde(default, skip_serializing_if = "Subject::is_identity")]
    pub subject: Subject,
    /// The themes over the topics (see [`themes`]), recomputed on every run.
    #[serde(default)]
    pub themes: Vec<Theme>,
}

impl TopicModel {
    /// The topic of embedding `e` (as the encoder gives it): the nearest centroid in the
    /// subject view, if `e` is within that topic's radius.
    pub fn assign(&self, e: &[f32]) -> Option<i64> {
        if self.subject.is_identity() {
            assign_one(&self.topics, e)
        } else {
            assign_one(&self.topics, &self.subject.view(e))
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Below this many comments clustered, HDBSCAN's `min_samples` is 3 instead of 5 (see
/// [`auto_min_samples`]).
pub const SMALL_RUN: usize = 400;

/// HDBSCAN's `min_samples` for `n` comments clustered: 3 under [`SMALL_RUN`], else 5. A few
/// hundred comments have too few neighbours for 5 to leave more than two or three dense
/// groups (the 300-comment sample: 2 topics at 5, 6 at 3; a night's 30 new complaints: one
/// topic at either). From 400 on, 3 and 4 make looser topics: a 400-comment run's food topic
/// then takes in the next night's 30 milk-boycott complaints instead of leaving them to a new
/// topic (tests/topics_subject.rs); thousands need 5 for topics to hold a subject across
/// languages (benches/results/topics_subject_20261206b.md).
pub fn auto_min_samples(n: usize) -> usize {
    if n < SMALL_RUN {
        3
    } else {
        5
    }
}

fn auto_sizes(n: usize, cfg: &TopicConfig) -> (usize, usize) {
    let mcs = if cfg.min_cluster_size > 0 {
        cfg.min_cluster_size
    } else {
        (n / 200).max(10)
    };
    let ms = if cfg.min_samples > 0 {
        cfg.min_samples
    } else {
        auto_min_samples(n)
    };
    (mcs.max(2), ms.max(1))
}

/// HDBSCAN labels (-1: noise) of `points`, relabelled so that the largest cluster is 0 (ties:
/// the cluster whose first member comes first).
/// `allow_single` lets the whole input be one cluster (for new comments next to a model).
pub fn hdbscan_labels(
    points: &[Vec<f32>],
    min_cluster_size: usize,
    min_samples: usize,
    max_cluster_size: usize,
    allow_single: bool,
) -> Result<Vec<i64>> {
    if points.len() < min_cluster_size.max(2) {
        return Ok(vec![-1; points.len()]);
    }
    let hp = hdbscan::HdbscanHyperParams::builder()
        .min_cluster_size(min_cluster_size)
        .min_samples(min_samples.min(points.len() - 1).max(1))
        .allow_single_cluster(allow_single)
        .max_cluster_size(max_cluster_size.max(min_cluster_size + 1))
        .dist_metric(hdbscan::DistanceMetric::Euclidean)
        .nn_algorithm(hdbscan::NnAlgorithm::BruteForce)
        .build();
    let raw = hdbscan::Hdbscan::new(points, hp)
        .cluster()
        .map_err(|e| Error::Invalid(format!("clustering failed: {e:?}")))?;
    let mut stats: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for (i, &l) in raw.iter().enumerate() {
        if l >= 0 {
            let e = stats.entry(l).or_insert((0, i));
            e.0 += 1;
        }
    }
    let mut order: Vec<(i32, usize, usize)> =
        stats.into_iter().map(|(l, (n, f))| (l, n, f)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let map: HashMap<i32, i64> = order
        .iter()
        .enumerate()
        .map(|(new, o)| (o.0, new as i64))
        .collect();
    Ok(raw
        .iter()
        .map(|l| map.get(l).copied().unwrap_or(-1))
        .collect())
}

/// Class-based TF-IDF: for each class, its terms weighted by
/// `tf(t, c) / |c| * ln(1 + A / f(t))` (tf: comments of the class with the word, |c|: their
/// words, A: average words per class, f: frequency over all classes), best first; a word
/// counts once per comment.
pub fn c_tf_idf<T: AsRef<str>>(
    docs: &[&[T]],
    classes: &[i64],
    top: usize,
) -> BTreeMap<i64, Vec<(String, f32)>> {
    let mut tf: BTreeMap<i64, BTreeMap<&str, f64>> = BTreeMap::new();
    let mut total: BTreeMap<&str, f64> = BTreeMap::new();
    for (words, &c) in docs.iter().zip(classes) {
        if c < 0 {
            continue;
        }
        let e = tf.entry(c).or_default();
        // A word counts once per comment: one comment repeating a word must not name a topic.
        let mut seen: HashSet<&str> = HashSet::new();
        for w in words.iter().map(AsRef::as_ref).filter(|w| seen.insert(*w)) {
            *e.entry(w).or_default() += 1.0;
            *total.entry(w).or_default() += 1.0;
        }
    }
    let n_words: f64 = total.values().sum();
    let avg = n_words / tf.len().max(1) as f64;
    tf.into_iter()
        .map(|(c, terms)| {
            let size: f64 = terms.values().sum::<f64>().max(1.0);
            // Words of two or more comments; a small topic with none has its single ones.
            let weigh = |min: f64| -> Vec<(String, f32)> {
                terms
                    .iter()
                    .filter(|(t, n)| **n >= min && t.chars().count() >= 2)
                    .map(|(t, n)| {
                        let idf = (1.0 + avg / total[t]).ln();
                        (t.to_string(), (n / size * idf) as f32)
                    })
                    .collect()
            };
            let mut w = weigh(2.0);
            if w.is_empty() {
                w = weigh(1.0);
            }
            w.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            w.truncate(top);
            (c, w)
        })
        .collect()
}

/// True when a topic's earlier `label` still describes it: at least two of its words (all of
/// them when it has fewer) are among the topic's current top terms. Labels then stay put from
/// night to night while the topic is the same, and change when its words really did.
pub fn label_still_fits(label: &str, terms: &[(String, f32)]) -> bool {
    let words: Vec<&str> = label.split(" / ").filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return false;
    }
    let present = words
        .iter()
        .filter(|w| terms.iter().any(|(t, _)| t == *w))
        .count();
    present >= words.len().min(2)
}

/// Best topic for `e` among `topics` if within its radius.
pub fn assign_one(topics: &[Topic], e: &[f32]) -> Option<i64> {
    nearest(topics, e)
        .filter(|(s, t)| *s >= t.radius)
        .map(|(_, t)| t.id)
}

/// The topic whose centroid is most similar to `e`, with that similarity (ties: the first).
fn nearest<'a>(topics: &'a [Topic], e: &[f32]) -> Option<(f32, &'a Topic)> {
    let mut best: Option<(f32, &Topic)> = None;
    for t in topics {
        let s = dot(&t.centroid, e);
        if best.is_none_or(|(b, _)| s > b) {
            best = Some((s, t));
        }
    }
    best
}

/// Builds topics from an assignment (label -> topic id): centroids, radii, sizes,
/// representatives, and with `with_terms` the c-TF-IDF terms and label (skipped where only
/// centroids and radii are needed).
fn describe<T: AsRef<str>>(
    labels: &[i64],
    embs: &[Vec<f32>],
    words: &[Vec<T>],
    ids: &[String],
    cfg: &TopicConfig,
    with_terms: bool,
) -> Vec<Topic> {
    let dim = embs.first().map_or(0, Vec::len);
    let mut members: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        if l >= 0 {
            members.entry(l).or_default().push(i);
        }
    }
    let terms = if with_terms {
        let docs: Vec<&[T]> = words.iter().map(Vec::as_slice).collect();
        c_tf_idf(&docs, labels, cfg.top_terms)
    } else {
        BTreeMap::new()
    };
    members
        .into_iter()
        .map(|(id, m)| {
            let mut c = vec![0f32; dim];
            for &i in &m {
                c.iter_mut().zip(&embs[i]).for_each(|(a, b)| *a += b);
            }
            normalise(&mut c);
            let mut sims: Vec<(f32, usize)> = m.iter().map(|&i| (dot(&c, &embs[i]), i)).collect();
            sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let q =
                ((sims.len() as f32 * cfg.radius_quantile).ceil() as usize).clamp(1, sims.len());
            let radius = sims[q - 1].0 - cfg.radius_slack;
            let t = terms.get(&id).cloned().unwrap_or_default();
            let label = t
                .iter()
                .take(3)
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" / ");
            // No subject word at all (comments of nothing but praise or thanks): its number.
            let label = if label.is_empty() && with_terms {
                format!("topic {id}")
            } else {
                label
            };
            Topic {
                id,
                label,
                terms: t,
                size: m.len(),
                representatives: sims.iter().take(3).map(|&(_, i)| ids[i].clone()).collect(),
                centroid: c,
                radius,
            }
        })
        .collect()
}

/// Clusters comments from scratch: returns the model and each comment's topic (-1: none).
/// `words[i]` are comment i's segmented words, `ids[i]` its id; `subject` the directions to
/// remove first ([`Subject::learn`] on the comments' sentiment and language; the default
/// removes none).
pub fn fit<T: AsRef<str>>(
    embs: &[Vec<f32>],
    words: &[Vec<T>],
    ids: &[String],
    cfg: &TopicConfig,
    subject: Subject,
) -> Result<(TopicModel, Vec<i64>)> {
    let viewed = view_all(&subject, embs);
    fit_viewed(&viewed, words, ids, cfg, subject)
}

/// [`fit`] on embeddings already in `subject`'s view (each one [`Subject::view`] of the
/// comment's embedding): a caller holding a million comments views them in place rather than
/// keep a second copy.
pub fn fit_viewed<T: AsRef<str>>(
    embs: &[Vec<f32>],
    words: &[Vec<T>],
    ids: &[String],
    cfg: &TopicConfig,
    subject: Subject,
) -> Result<(TopicModel, Vec<i64>)> {
    let mut model = TopicModel {
        version: 1,
        config: *cfg,
        next_id: 0,
        topics: Vec::new(),
        subject,
        themes: Vec::new(),
    };
    let labels = update_viewed(&mut model, embs, words, ids, &HashMap::new())?;
    Ok((model, labels))
}

/// `embs` in `subject`'s view, borrowed as they are when it removes nothing.
fn view_all<'a>(subject: &Subject, embs: &'a [Vec<f32>]) -> Cow<'a, [Vec<f32>]> {
    if subject.is_identity() {
        Cow::Borrowed(embs)
    } else {
        Cow::Owned(embs.iter().map(|e| subject.view(e)).collect())
    }
}

/// The topic ids `model` defines (below its `next_id`): an earlier assignment to any other id
/// (a leftover of an interrupted or other run) means nothing to it.
pub fn known_ids(model: &TopicModel) -> HashSet<i64> {
    model
        .topics
        .iter()
        .map(|t| t.id)
        .filter(|&id| (0..model.next_id).contains(&id))
        .collect()
}

/// Assigns comments to `model`'s topics, keeping every id in `previous` (id -> topic) where it
/// was (when the model knows that topic, see [`known_ids`], or it is -1), and opens new topics from dense groups of the remaining unassigned comments. Topic ids
/// never change; labels, sizes and representatives are recomputed over all comments.
pub fn update<T: AsRef<str>>(
    model: &mut TopicModel,
    embs: &[Vec<f32>],
    words: &[Vec<T>],
    ids: &[String],
    previous: &HashMap<String, i64>,
) -> Result<Vec<i64>> {
    let viewed = view_all(&model.subject, embs);
    update_viewed(model, &viewed, words, ids, previous)
}

/// [`update`] on embeddings already in the model's subject view (see [`fit_viewed`]).
pub fn update_viewed<T: AsRef<str>>(
    model: &mut TopicModel,
    embs: &[Vec<f32>],
    words: &[Vec<T>],
    ids: &[String],
    previous: &HashMap<String, i64>,
) -> Result<Vec<i64>> {
    if embs.len() != ids.len() || words.len() != ids.len() {
        return Err(Error::Invalid(
            "embeddings, words and ids differ in length".into(),
        ));
    }
    let cfg = model.config;
    let known = known_ids(model);
    let mut labels: Vec<i64> = Vec::with_capacity(ids.len());
    let mut fresh = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match previous.get(id) {
            Some(&t) if t == -1 || known.contains(&t) => labels.push(t),
            _ => {
                // A new comment within a topic's core (its radius before the slack) is that
                // topic's; one that only the slack lets in joins it too, but is also a
                // candidate for a new topic, as is one that fits none: a group of new
                // complaints at a topic's edge is a new subject, not more of the old one.
                let near = nearest(&model.topics, &embs[i]);
                let t = near.filter(|(s, t)| *s >= t.radius).map(|(_, t)| t.id);
                labels.push(t.unwrap_or(-1));
                let core = near.is_some_and(|(s, t)| s >= t.radius + cfg.radius_slack);
                if !core {
                    fresh.push(i);
                }
            }
        }
    }
    // New topics from the new comments outside every topic's core: cluster a seeded sample of
    // them, then assign the unassigned rest of them to what was found.
    // Sizes follow the number of comments actually clustered (the sample).
    let (mcs, ms) = auto_sizes(fresh.len().min(cfg.max_sample), &cfg);
    if fresh.len() >= 2 * mcs {
        let mut sample = fresh.clone();
        if sample.len() > cfg.max_sample {
            let mut rng = Rng::new(cfg.seed);
            rng.shuffle(&mut sample);
            sample.truncate(cfg.max_sample);
            sample.sort_unstable();
        }
        let pts: Vec<Vec<f32>> = sample.iter().map(|&i| embs[i].clone()).collect();
        let reduced = pca(&pts, cfg.dims, cfg.seed);
        let had_topics = !model.topics.is_empty();
        // HDBSCAN's excess-of-mass selection likes a few huge clusters on embeddings whose main
        // axis is sentiment, so a first-night clustering caps a topic at `max_share` of the
        // comments. If the cap leaves more than half unplaced (the data really has one or two
        // big topics), the uncapped clustering is used when it places more.
        let cap = if had_topics {
            usize::MAX
        } else {
            ((reduced.len() as f32 * cfg.max_share).ceil() as usize).max(2 * mcs)
        };
        let mut found = hdbscan_labels(&reduced, mcs, ms, cap, had_topics)?;
        if cap != usize::MAX {
            // Coverage after assignment: the sample's own members plus the comments within a
            // found topic's radius.
            let coverage = |found: &[i64]| -> usize {
                let mut sub = vec![-1i64; ids.len()];
                for (&i, &l) in sample.iter().zip(found) {
                    sub[i] = l;
                }
                let topics = describe(&sub, embs, words, ids, &cfg, false);
                fresh
                    .iter()
                    .filter(|&&i| sub[i] >= 0 || assign_one(&topics, &embs[i]).is_some())
                    .count()
            };
            let capped_cover = coverage(&found);
            if (capped_cover as f64) < 0.5 * fresh.len() as f64 {
                let uncapped = hdbscan_labels(&reduced, mcs, ms, usize::MAX, false)?;
                if coverage(&uncapped) > capped_cover {
                    found = uncapped;
                }
            }
        }
        let n_found = found.iter().copied().max().map_or(0, |m| m + 1);
        if n_found > 0 {
            let base = model.next_id;
            let mut sub_labels = vec![-1i64; ids.len()];
            for (&i, &l) in sample.iter().zip(&found) {
                if l >= 0 {
                    sub_labels[i] = base + l;
                }
            }
            // Terms and labels are computed once, over all comments, below.
            let mut new_topics = describe(&sub_labels, embs, words, ids, &cfg, false);
            // Next to an existing model, a new topic must be at least as tight as the loosest
            // existing one: leftovers that merely did not fit stay unassigned.
            if had_topics {
                let loosest = model
                    .topics
                    .iter()
                    .map(|t| t.radius)
                    .fold(f32::INFINITY, f32::min);
                new_topics.retain(|t| t.radius >= loosest);
                // Renumber the kept ones densely from `base`, in their found order.
                let keep: HashMap<i64, i64> = new_topics
                    .iter()
                    .enumerate()
                    .map(|(k, t)| (t.id, base + k as i64))
                    .collect();
                for l in sub_labels.iter_mut() {
                    *l = keep.get(l).copied().unwrap_or(-1);
                }
                new_topics.iter_mut().for_each(|t| t.id = keep[&t.id]);
            }
            let n_new = new_topics.len() as i64;
            // The candidates the clustering left out go to the nearest topic, old or new,
            // whose radius holds them.
            let every: Vec<Topic> = model.topics.iter().chain(&new_topics).cloned().collect();
            for &i in &fresh {
                labels[i] = if sub_labels[i] >= 0 {
                    sub_labels[i]
                } else {
                    assign_one(&every, &embs[i]).unwrap_or(-1)
                };
            }
            model.topics.extend(new_topics);
            model.next_id = base + n_new;
        }
    }
    // Refresh labels, sizes and representatives over every comment; keep centroids and radii
    // of existing topics (so assignment stays stable), add the new ones' own.
    let described: HashMap<i64, Topic> = describe(&labels, embs, words, ids, &cfg, true)
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    for t in &mut model.topics {
        match described.get(&t.id) {
            Some(d) => {
                if !label_still_fits(&t.label, &d.terms) {
                    t.label = d.label.clone();
                }
                t.terms = d.terms.clone();
                t.size = d.size;
                t.representatives = d.representatives.clone();
            }
            None => t.size = 0,
        }
    }
    model.topics.sort_by_key(|t| t.id);
    model.themes = themes(&model.topics, THEME_SIMILARITY);
    Ok(labels)
}

#[cfg(test)]
mod tests;
