//! The topics of a run folder (`vocmine topics`): its comments' embeddings (kept by `score`,
//! else encoded now), a first clustering or an update that keeps topic ids, the model and
//! assignments written crash-safely, and the run's index re-indexed with its own settings.
//! [`fit_texts`] / [`fit_sample`] and [`assign_texts`] / [`assign_embeddings`] do the same for comments held elsewhere (a distributed
//! job's sample and its workers' batches). [`crate::cluster`] holds the clustering itself and
//! knows nothing of run folders.

mod edits;
mod eval;
pub use edits::TopicEdits;
pub use eval::{
    topics_eval, SizeTiming, TopicAgreement, TopicLabel, TopicsEval, TopicsEvalConfig,
    TopicsEvalEvent,
};

use crate::cluster::{fit, known_ids, update, Factor, Subject, TopicConfig, TopicModel};
use crate::corpus::{EmbeddingCache, Labelled};
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::index::{index_run, UpdateStats};
use crate::text::normalise::{normalise, NormaliseConfig};
use crate::text::segment::Segmenter;
use crate::workspace::embeddings::{load_aligned, Found, RowKey};
use crate::workspace::{pause_point, write_atomic, RunDir};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// What [`topics_for_run`] did.
#[derive(Debug, Clone)]
pub struct RunTopics {
    /// The topic model written to `RUN/topics/model.json`.
    pub model: TopicModel,
    /// Comments assigned (one per line of scored.jsonl).
    pub comments: usize,
    /// Comments that fit no topic.
    pub unassigned: usize,
    /// Comments that kept the topic an earlier run gave them.
    pub kept: usize,
    /// Topics the model had before (None: a first clustering or `--refit`).
    pub topics_before: Option<usize>,
    /// Seconds spent clustering and assigning.
    pub cluster_seconds: f64,
    /// The re-indexing of `RUN/index`, when the run has one.
    pub index: Option<UpdateStats>,
    /// The user's names and merges applied (`RUN/topics/edits.toml`).
    pub edits: TopicEdits,
}

/// Clusters the comments of `run` into topics, or, when it has a topic model and `refit` is
/// false, assigns them to that model's topics (ids never change; new dense groups open new
/// topics). Writes `RUN/topics/model.json` then `RUN/topics/assignments.jsonl`, and re-indexes
/// `RUN/index` when there is one, with the run's saved tier weights. `note` receives what the
/// user should know (embeddings taken from the parts, stale assignments discarded);
/// `progress(done, total)` follows the encoding of comments whose embeddings were not kept.
pub fn topics_for_run(
    run: &RunDir,
    encoder: &Encoder,
    cfg: &TopicConfig,
    refit: bool,
    mut note: impl FnMut(String),
    progress: impl FnMut(usize, usize),
) -> Result<RunTopics> {
    let scored = run.read_scored()?;
    let ids: Vec<String> = scored.iter().map(|s| s.id.clone()).collect();
    let texts: Vec<String> = scored.iter().map(|s| s.text.clone()).collect();
    let sentiment: Vec<String> = scored
        .iter()
        .map(|s| {
            s.tasks
                .get("sentiment")
                .map(|t| t.label.clone())
                .unwrap_or_default()
        })
        .collect();
    let keys: Vec<RowKey> = scored
        .into_iter()
        .map(|s| RowKey {
            id: s.id,
            text_hash: s.text_hash,
            model: s.model,
        })
        .collect();
    let embs = run_embeddings(run, &ids, &texts, &keys, encoder, &mut note, progress)?;
    let words = label_words(&texts);
    let dir = run.topics_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (model_path, assignments_path) = (run.topic_model(), run.assignments());
    let t_cluster = Instant::now();
    let updating = model_path.exists() && !refit;
    let (model, labels, kept, topics_before) = if updating {
        let text = std::fs::read_to_string(&model_path).map_err(|e| Error::io(&model_path, e))?;
        let mut model: TopicModel = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                &model_path,
                format!("not a topic model ({e}): use --refit to start over"),
            )
        })?;
        let before = model.topics.len();
        let mut previous: HashMap<String, i64> = run
            .read_assignments()?
            .into_iter()
            .map(|(id, t)| (id, t.found.unwrap_or(t.topic)))
            .collect();
        let known = known_ids(&model);
        let stale: BTreeSet<i64> = previous
            .values()
            .copied()
            .filter(|t| *t != -1 && !known.contains(t))
            .collect();
        if !stale.is_empty() {
            let n = previous.len();
            previous.retain(|_, t| *t == -1 || known.contains(t));
            note(format!(
                "{}: discarded {} assignments to topics {} does not know ({:?}; left by an interrupted run?): those comments are assigned again",
                assignments_path.display(),
                n - previous.len(),
                model_path.display(),
                stale
            ));
        }
        let labels = update(&mut model, &embs, &words, &ids, &previous)?;
        let kept = previous.len();
        (model, labels, kept, Some(before))
    } else {
        let subject = subject_of(&embs, &texts, &sentiment);
        let (model, labels) = fit(&embs, &words, &ids, cfg, subject)?;
        (model, labels, 0, None)
    };
    let cluster_seconds = t_cluster.elapsed().as_secs_f64();
    let by_id: BTreeMap<i64, &str> = model
        .topics
        .iter()
        .map(|t| (t.id, t.label.as_str()))
        .collect();
    // What the run shows: the user's merges and names over the model's topics; `found`
    // keeps the model's topic of a merged comment, so the next update starts from it.
    let edits = TopicEdits::read(&run.topic_edits(), &model)?;
    let mut lines = String::new();
    for (id, &l) in ids.iter().zip(&labels) {
        let shown = if l < 0 { l } else { edits.shown(l) };
        let label = edits.label(shown, by_id.get(&shown).copied().unwrap_or(""));
        let mut line = serde_json::json!({"id": id, "topic": shown, "label": label});
        if shown != l {
            line["found"] = l.into();
        }
        if let Some(t) = model.themes.iter().find(|t| t.topics.contains(&shown)) {
            line["theme"] = t.id.into();
            line["theme_label"] = t.label.clone().into();
        }
        lines += &line.to_string();
        lines.push('\n');
    }
    // The model first: every id an assignments file can hold is then one the model on disk
    // knows, whenever the process dies (an update only adds ids; the assignments of a model
    // that is replaced go before the new model is written).
    if !updating && assignments_path.exists() {
        std::fs::remove_file(&assignments_path).map_err(|e| Error::io(&assignments_path, e))?;
    }
    write_atomic(
        &model_path,
        (serde_json::to_string_pretty(&model)? + "\n").as_bytes(),
    )?;
    pause_point("topics:model-written");
    write_atomic(&assignments_path, lines.as_bytes())?;
    let index = if run.has_index() {
        Some(index_run(run, |_| {})?)
    } else {
        None
    };
    Ok(RunTopics {
        model,
        comments: ids.len(),
        unassigned: labels.iter().filter(|&&l| l < 0).count(),
        kept,
        topics_before,
        cluster_seconds,
        index,
        edits,
    })
}

/// The subject view topics are found in (see [`Subject`]): the directions of the comments'
/// predicted `sentiment` (one label per text; empty labels, or none at all, where the model
/// has no sentiment task) and of their language (detected from `texts`, as `score` does)
/// removed.
pub fn subject_of(embs: &[Vec<f32>], texts: &[String], sentiment: &[String]) -> Subject {
    let lang: Vec<String> = texts
        .iter()
        .map(|t| {
            normalise(t, NormaliseConfig { mask_pii: false })
                .lang
                .as_str()
                .to_string()
        })
        .collect();
    let mut factors = Vec::new();
    if sentiment.len() == texts.len() && sentiment.iter().any(|s| !s.is_empty()) {
        factors.push(Factor {
            name: "sentiment",
            values: sentiment,
        });
    }
    factors.push(Factor {
        name: "lang",
        values: &lang,
    });
    Subject::learn(embs, &factors)
}

/// Topics fitted on comments held outside a run folder (the driver's seeded sample of a
/// distributed job: `vocmine.spark.assign_topics`): the texts encoded, then [`fit_sample`].
pub fn fit_texts(
    encoder: &Encoder,
    ids: &[String],
    texts: &[String],
    sentiment: &[String],
    cfg: &TopicConfig,
) -> Result<(TopicModel, Vec<i64>)> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (embs, _) = encoder.encode(&refs)?;
    fit_sample(ids, texts, sentiment, &embs, cfg)
}

/// Topics fitted on comments and their embeddings (as `score` computed them): their label
/// words and [`fit`] as `vocmine topics` runs it on a run of these comments in this order,
/// every one of them clustered (the caller drew the sample). `sentiment` holds the comments'
/// predicted sentiment labels (empty: the model has none), see [`subject_of`]. Returns the
/// model and each comment's topic (-1: none).
pub fn fit_sample(
    ids: &[String],
    texts: &[String],
    sentiment: &[String],
    embs: &[Vec<f32>],
    cfg: &TopicConfig,
) -> Result<(TopicModel, Vec<i64>)> {
    if ids.len() != texts.len() || embs.len() != texts.len() {
        return Err(Error::Invalid(format!(
            "{} ids and {} embeddings for {} texts",
            ids.len(),
            embs.len(),
            texts.len()
        )));
    }
    let cfg = TopicConfig {
        max_sample: cfg.max_sample.max(texts.len()),
        ..*cfg
    };
    fit(
        embs,
        &label_words(texts),
        ids,
        &cfg,
        subject_of(embs, texts, sentiment),
    )
}

/// Each text's topic in `model` (-1: within no topic's radius), the texts encoded, then
/// [`assign_embeddings`].
pub fn assign_texts(encoder: &Encoder, model: &TopicModel, texts: &[String]) -> Result<Vec<i64>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (embs, _) = encoder.encode(&refs)?;
    Ok(assign_embeddings(model, &embs))
}

/// Each embedding's topic in `model` (-1: within no topic's radius): the assignment of the
/// comments a fitted sample did not hold, one by one, so it does not depend on how the
/// comments are split between workers.
pub fn assign_embeddings(model: &TopicModel, embs: &[Vec<f32>]) -> Vec<i64> {
    embs.iter().map(|e| model.assign(e).unwrap_or(-1)).collect()
}

/// The words each text's topic label is drawn from: jieba words of the normalised text, less
/// the words that name a tone or a shop rather than a subject (`data/topic_label_stop.txt`).
pub fn label_words(texts: &[String]) -> Vec<Vec<String>> {
    let seg = Segmenter::new();
    texts
        .iter()
        .map(|t| {
            let mut w = seg.tokens(&normalise(t, NormaliseConfig { mask_pii: false }));
            w.retain(|w| !is_label_stop_word(w));
            w
        })
        .collect()
}

/// True for a word kept out of topic labels (`data/topic_label_stop.txt`: tone and opinion
/// words, shop and platform names; simplified Chinese, lower-case English).
pub fn is_label_stop_word(w: &str) -> bool {
    static STOP: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        include_str!("../data/topic_label_stop.txt")
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(str::split_whitespace)
            .collect()
    })
    .contains(w)
}

/// The embeddings of every comment of the run, row-aligned with scored.jsonl: the kept ones
/// where they line up with it (RUN/embeddings.f32, else the checkpoint parts), the rest
/// encoded now (through the embedding cache).
fn run_embeddings(
    run: &RunDir,
    ids: &[String],
    texts: &[String],
    keys: &[RowKey],
    encoder: &Encoder,
    note: &mut impl FnMut(String),
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let (rows, found) = load_aligned(run.path(), keys, encoder.dim())?;
    let missing: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_none()).collect();
    if let Found::Parts {
        stale, found: n, ..
    } = found
    {
        if stale {
            note(format!(
                "{}: embeddings.f32 does not line up with scored.jsonl (an interrupted compaction, or another run's file): not used",
                run.path().display()
            ));
        }
        if n > 0 {
            note(format!(
                "took {n} embeddings from the checkpoint parts (state/parts)"
            ));
        }
        if !missing.is_empty() {
            note(format!(
                "encoding {} comments whose embeddings were not kept (score keeps them unless --no-embeddings)",
                missing.len()
            ));
        }
    }
    let mut rows = rows;
    if !missing.is_empty() {
        let pick =
            |v: &[String]| -> Vec<String> { missing.iter().map(|&i| v[i].clone()).collect() };
        let set = Labelled {
            ids: pick(ids),
            texts: pick(texts),
            labels: vec![String::new(); missing.len()],
            label_sets: vec![Vec::new(); missing.len()],
            multi: false,
            sources: vec![run.path().display().to_string(); missing.len()],
        };
        let fp = encoder.fingerprint()?;
        let cache = EmbeddingCache::new(EmbeddingCache::default_dir());
        let total = missing.len();
        let embs = cache.embed_set(encoder, &fp, &set, |d| progress(d, total))?;
        for (&i, e) in missing.iter().zip(embs) {
            rows[i] = Some(e);
        }
    }
    Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
}

impl RunTopics {
    /// The lines `vocmine topics` prints for `run`, `seconds` after it started: the update,
    /// the counts, the twenty largest topics, the files written and the re-indexing. Every
    /// line ends with a newline.
    pub fn to_text(&self, seconds: f64, run: &RunDir) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if let Some(before) = self.topics_before {
            let now = self.model.topics.len();
            let _ = writeln!(s, "updated topic model: {before} topics before, {now} now");
        }
        let _ = writeln!(
            s,
            "{} comments: {} topics, {} unassigned ({:.1}%), {} kept their earlier topic; clustering {:.2}s, total {:.1}s",
            self.comments,
            self.model.topics.len(),
            self.unassigned,
            100.0 * self.unassigned as f64 / self.comments.max(1) as f64,
            self.kept,
            self.cluster_seconds,
            seconds
        );
        // Topics as the run shows them: merged ones counted under the topic they join.
        let mut shown: BTreeMap<i64, usize> = BTreeMap::new();
        for t in &self.model.topics {
            *shown.entry(self.edits.shown(t.id)).or_default() += t.size;
        }
        let mut topics: Vec<(i64, usize)> = shown.into_iter().filter(|t| t.1 > 0).collect();
        topics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let label = |id: i64| {
            let model = self.model.topics.iter().find(|t| t.id == id);
            self.edits.label(id, model.map_or("", |t| t.label.as_str()))
        };
        for &(id, size) in topics.iter().take(20) {
            let _ = writeln!(s, "  topic {id:>3}  {size:>5} comments  {}", label(id));
        }
        let grouped: Vec<_> = (self.model.themes.iter())
            .filter(|t| t.topics.len() > 1)
            .collect();
        if !grouped.is_empty() {
            let _ = writeln!(s, "themes (topics grouped by subject):");
            for t in grouped {
                let ids: Vec<String> = t.topics.iter().map(i64::to_string).collect();
                let _ = writeln!(
                    s,
                    "  theme {:>3}  {:>5} comments  {}  (topics {})",
                    t.id,
                    t.size,
                    t.label,
                    ids.join(", ")
                );
            }
        }
        if !self.edits.is_empty() {
            let _ = writeln!(
                s,
                "applied {}: {} names, {} merges",
                run.topic_edits().display(),
                self.edits.names.len(),
                self.edits.merge.len()
            );
        }
        let (model, assignments) = (run.topic_model(), run.assignments());
        let _ = writeln!(s, "wrote {} and {}", model.display(), assignments.display());
        if let Some(stats) = &self.index {
            let _ = writeln!(s, "{}", stats.summary(&run.index()));
        }
        s
    }
}
