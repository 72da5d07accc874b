//! The topics of a run folder (`vocmine topics`): its comments' embeddings (kept by `score`,
//! else encoded now), a first clustering or an update that keeps topic ids, the model and
//! assignments written crash-safely, and the run's index re-indexed with its own settings.
//! [`fit_texts`] / [`fit_sample`] and [`assign_texts`] / [`assign_embeddings`] do the same for comments held elsewhere (a distributed
//! job's sample and its workers' batches). [`crate::cluster`] holds the clustering itself and
//! knows nothing of run folders.

mod edits;
mod eval;
pub use edits::{label_leave_out, TopicEdits};
pub use eval::{
    topics_eval, SizeTiming, TopicAgreement, TopicLabel, TopicsEval, TopicsEvalConfig,
    TopicsEvalEvent,
};

use crate::cluster::{
    fit, fit_viewed, known_ids, update_viewed, Factor, Subject, TopicConfig, TopicModel,
};
use crate::corpus::{EmbeddingCache, Labelled};
use crate::encode::Encoder;
use crate::error::{Error, Result};
use crate::index::{index_run, UpdateStats};
use crate::text::normalise::{normalise, Lang, NormaliseConfig};
use crate::text::segment::Segmenter;
use crate::workspace::embeddings::{load_aligned, Found, RowKey};
use crate::workspace::{pause_point, write_atomic, RunDir};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
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
    // Only what topics need of each record, read one at a time: a million full records
    // would not fit the memory a million embeddings leave.
    let (mut ids, mut texts, mut sentiment, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    run.each_scored(|s| {
        sentiment.push(
            s.tasks
                .get("sentiment")
                .map(|t| t.label.clone())
                .unwrap_or_default(),
        );
        ids.push(s.id.clone());
        texts.push(s.text);
        keys.push(RowKey {
            id: s.id,
            text_hash: s.text_hash,
            model: s.model,
        });
    })?;
    let mut embs = run_embeddings(run, &ids, &texts, &keys, encoder, &mut note, progress)?;
    drop(keys);
    let leave_out = label_leave_out(&run.topic_edits())?;
    // One normalisation per comment gives both its label words and its language.
    let (words, lang) = words_and_languages(&texts, &leave_out);
    drop(texts);
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
        view_in_place(&model.subject, &mut embs);
        let labels = update_viewed(&mut model, &embs, &words, &ids, &previous)?;
        let kept = previous.len();
        (model, labels, kept, Some(before))
    } else {
        let subject = subject_for(&embs, &lang, &sentiment);
        view_in_place(&subject, &mut embs);
        let (model, labels) = fit_viewed(&embs, &words, &ids, cfg, subject)?;
        (model, labels, 0, None)
    };
    drop(embs);
    let mut model = model;
    if !leave_out.is_empty() {
        // A label kept from an earlier run may hold a word the user has since left out.
        for t in &mut model.topics {
            if t.label.split(" / ").any(|w| leave_out.contains(w)) {
                let words: Vec<&str> = t.terms.iter().take(3).map(|(w, _)| w.as_str()).collect();
                t.label = if words.is_empty() {
                    format!("topic {}", t.id)
                } else {
                    words.join(" / ")
                };
            }
        }
    }
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

/// Each of `embs` replaced by its view in `subject` (see [`Subject::view`]), one at a time, so
/// no second copy of them is held.
fn view_in_place(subject: &Subject, embs: &mut [Vec<f32>]) {
    use rayon::prelude::*;
    if !subject.is_identity() {
        embs.par_iter_mut().for_each(|e| subject.view_in_place(e));
    }
}

/// The subject view topics are found in (see [`Subject`]): the directions of the comments'
/// predicted `sentiment` (one label per text; empty labels, or none at all, where the model
/// has no sentiment task) and of their language (detected from `texts`, as `score` does)
/// removed.
pub fn subject_of(embs: &[Vec<f32>], texts: &[String], sentiment: &[String]) -> Subject {
    subject_for(embs, &languages(texts), sentiment)
}

/// Each text's language as `score` detects it.
fn languages(texts: &[String]) -> Vec<Lang> {
    texts
        .iter()
        .map(|t| normalise(t, NormaliseConfig { mask_pii: false }).lang)
        .collect()
}

/// [`subject_of`] with each comment's language given (`lang`, one per embedding). The codes
/// are spelt out only here, while the directions are learnt: a million comments' languages
/// are held as one byte each meanwhile.
pub(crate) fn subject_for(embs: &[Vec<f32>], lang: &[Lang], sentiment: &[String]) -> Subject {
    let lang: Vec<String> = lang.iter().map(|l| l.as_str().to_string()).collect();
    let mut factors = Vec::new();
    if sentiment.len() == lang.len() && sentiment.iter().any(|s| !s.is_empty()) {
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
    let (words, lang) = words_and_languages(texts, &std::collections::HashSet::new());
    fit(embs, &words, ids, &cfg, subject_for(embs, &lang, sentiment))
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
/// Each distinct word is held once and shared ([`Word`]): a million comments' words then take
/// a few hundred MB, not gigabytes.
pub fn label_words(texts: &[String]) -> Vec<Vec<Word>> {
    label_words_without(texts, &std::collections::HashSet::new())
}

/// [`label_words`] less the words of `leave_out` too (a run's `[labels] leave_out`, see
/// [`label_leave_out`]).
pub fn label_words_without(
    texts: &[String],
    leave_out: &std::collections::HashSet<String>,
) -> Vec<Vec<Word>> {
    words_and_languages(texts, leave_out).0
}

/// [`label_words_without`] and each text's language as `score` detects it (what
/// [`subject_of`] groups by), from one normalisation of each text.
pub fn words_and_languages(
    texts: &[String],
    leave_out: &std::collections::HashSet<String>,
) -> (Vec<Vec<Word>>, Vec<Lang>) {
    let seg = Segmenter::new();
    let mut vocab: HashMap<String, Word> = HashMap::new();
    let mut lang = Vec::with_capacity(texts.len());
    let words = texts
        .iter()
        .map(|t| {
            let n = normalise(t, NormaliseConfig { mask_pii: false });
            lang.push(n.lang);
            let words = seg.tokens(&n);
            drop(n);
            let mut out: Vec<Word> = words
                .into_iter()
                .filter(|w| !is_label_stop_word(w) && !leave_out.contains(w))
                .map(|w| match vocab.get(&w) {
                    Some(shared) => shared.clone(),
                    None => {
                        let shared: Word = Arc::from(w.as_str());
                        vocab.insert(w, shared.clone());
                        shared
                    }
                })
                .collect();
            out.shrink_to_fit();
            out
        })
        .collect();
    (words, lang)
}

/// A word of [`label_words`], shared by every comment that has it.
pub type Word = Arc<str>;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_normalisation_gives_the_words_and_the_language_score_detects() {
        let texts = vec![
            "屏幕很清晰，电池不耐用".to_string(),
            "The battery drains fast".to_string(),
            "螢幕很清晰，電池不耐用".to_string(),
            "优选的 app 登录不了".to_string(),
        ];
        let leave_out: std::collections::HashSet<String> = ["电池".to_string()].into();
        let (words, lang) = words_and_languages(&texts, &leave_out);
        assert_eq!(words, label_words_without(&texts, &leave_out));
        assert_eq!(lang, languages(&texts));
        assert_eq!(lang[..2], [Lang::Zh, Lang::En]);
        assert!(words.iter().flatten().all(|w| w.as_ref() != "电池"));
    }

    #[test]
    fn label_words_are_the_segmenters_words_held_once() {
        let texts = vec![
            "屏幕很清晰，电池不耐用".to_string(),
            "电池续航太短了".to_string(),
            "The battery drains fast".to_string(),
        ];
        let words = label_words(&texts);
        assert_eq!(words.len(), 3);
        let as_str = |i: usize| -> Vec<&str> { words[i].iter().map(|w| w.as_ref()).collect() };
        assert!(
            as_str(0).contains(&"屏幕") && as_str(0).contains(&"电池"),
            "{:?}",
            as_str(0)
        );
        assert!(as_str(2).contains(&"battery"), "{:?}", as_str(2));
        // tone words stay out of labels
        assert!(words.iter().flatten().all(|w| !is_label_stop_word(w)));
        // the same word in two comments is one allocation
        let a = words[0].iter().find(|w| w.as_ref() == "电池").unwrap();
        let b = words[1].iter().find(|w| w.as_ref() == "电池").unwrap();
        assert!(Arc::ptr_eq(a, b));
    }
}
