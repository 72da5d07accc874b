//! `RUN/topics/edits.toml`: the user's own names for topics and merges of one topic into
//! another. `vocmine topics` reads it on every run and applies it to what the run shows
//! (assignments, so the index and the report); the topic model itself is left as found, so an
//! edit can be changed or taken back at any time and topic ids stay stable.
//!
//! ```toml
//! [names]
//! 3 = "屏幕与显示"
//! 7 = "Battery life"
//!
//! [merge]
//! 12 = 3    # topic 12's comments are shown under topic 3
//!
//! [labels]
//! leave_out = ["优选", "youxuan"]   # never in a label: the shop's or brand's own name
//! ```
//!
//! `[labels] leave_out` words are taken out of every comment's label words before labels are
//! made (like the built-in list of tone words and platform names), so no topic is named after
//! the shop every comment is about; a label that holds one is made again from the topic's terms.

use crate::cluster::TopicModel;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Names and merges, checked against a topic model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicEdits {
    /// Topic id -> the name shown instead of its label.
    pub names: BTreeMap<i64, String>,
    /// Topic id -> the topic its comments are shown under (chains followed to the end).
    pub merge: BTreeMap<i64, i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    names: BTreeMap<String, String>,
    #[serde(default)]
    merge: BTreeMap<String, i64>,
    #[serde(default)]
    labels: Labels,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Labels {
    #[serde(default)]
    leave_out: Vec<String>,
}

/// The words `path`'s `[labels] leave_out` keeps out of topic labels, as label words are
/// written (simplified Chinese as given, English lower-cased); empty when there is no file.
/// Read before clustering, so it needs no topic model.
pub fn label_leave_out(path: &Path) -> Result<HashSet<String>> {
    if !path.exists() {
        return Ok(HashSet::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let f: File = toml::from_str(&text).map_err(|e| Error::input(path, e.to_string()))?;
    let mut out = HashSet::new();
    for w in f.labels.leave_out {
        let w = w.trim().to_lowercase();
        if w.is_empty() {
            return Err(Error::input(path, "[labels] leave_out: an empty word"));
        }
        out.insert(w);
    }
    Ok(out)
}

impl TopicEdits {
    /// Reads `path` (none: no edits) and checks it against `model`: every id must be one of
    /// its topics, and merges may not go round in a circle. Errors name the file and the key.
    pub fn read(path: &Path, model: &TopicModel) -> Result<TopicEdits> {
        if !path.exists() {
            return Ok(TopicEdits::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let f: File = toml::from_str(&text).map_err(|e| Error::input(path, e.to_string()))?;
        let known: HashSet<i64> = model.topics.iter().map(|t| t.id).collect();
        let id = |section: &str, key: &str| -> Result<i64> {
            let n: i64 = key.trim().parse().map_err(|_| {
                Error::input(
                    path,
                    format!("[{section}] {key:?}: a topic id (a whole number) was expected"),
                )
            })?;
            if known.contains(&n) {
                Ok(n)
            } else {
                Err(Error::input(
                    path,
                    format!(
                        "[{section}] {n}: the topic model has no topic {n} (see vocmine topics)"
                    ),
                ))
            }
        };
        let mut edits = TopicEdits::default();
        for (k, v) in &f.names {
            let name = v.trim();
            if name.is_empty() {
                return Err(Error::input(
                    path,
                    format!("[names] {k}: the name is empty"),
                ));
            }
            edits.names.insert(id("names", k)?, name.to_string());
        }
        for (k, &to) in &f.merge {
            let from = id("merge", k)?;
            id("merge", &to.to_string())?;
            edits.merge.insert(from, to);
        }
        for &from in edits.merge.keys() {
            let mut seen = HashSet::from([from]);
            let mut at = from;
            while let Some(&next) = edits.merge.get(&at) {
                if !seen.insert(next) {
                    return Err(Error::input(
                        path,
                        format!("[merge] {from}: the merges go round in a circle"),
                    ));
                }
                at = next;
            }
        }
        Ok(edits)
    }

    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.merge.is_empty()
    }

    /// The topic a comment the model put in `topic` is shown under.
    pub fn shown(&self, topic: i64) -> i64 {
        let mut at = topic;
        // `read` rejected circles; the bound only guards a hand-built value.
        for _ in 0..=self.merge.len() {
            match self.merge.get(&at) {
                Some(&next) => at = next,
                None => break,
            }
        }
        at
    }

    /// The label shown for topic `shown`: the user's name, else the model's label.
    pub fn label<'a>(&'a self, shown: i64, model_label: &'a str) -> &'a str {
        self.names.get(&shown).map_or(model_label, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Topic, TopicConfig};

    fn model(ids: &[i64]) -> TopicModel {
        TopicModel {
            version: 1,
            config: TopicConfig::default(),
            next_id: ids.len() as i64,
            topics: ids
                .iter()
                .map(|&id| Topic {
                    id,
                    label: format!("t{id}"),
                    terms: vec![],
                    size: 1,
                    representatives: vec![],
                    centroid: vec![1.0],
                    radius: 0.5,
                })
                .collect(),
            subject: Default::default(),
            themes: vec![],
        }
    }

    #[test]
    fn names_and_merge_chains_apply_and_bad_files_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("edits.toml");
        let m = model(&[0, 1, 2, 3]);
        assert!(TopicEdits::read(&p, &m).unwrap().is_empty());
        std::fs::write(&p, "[names]\n1 = \"屏幕\"\n[merge]\n3 = 2\n2 = 1\n").unwrap();
        let e = TopicEdits::read(&p, &m).unwrap();
        assert_eq!(e.shown(3), 1);
        assert_eq!(e.shown(0), 0);
        assert_eq!(e.label(1, "t1"), "屏幕");
        assert_eq!(e.label(0, "t0"), "t0");
        for (bad, says) in [
            ("[merge]\n1 = 2\n2 = 1\n", "circle"),
            ("[names]\n9 = \"x\"\n", "no topic 9"),
            ("[names]\nbattery = \"x\"\n", "whole number"),
            ("[rename]\n1 = \"x\"\n", "unknown field"),
            ("[names]\n1 = \" \"\n", "empty"),
        ] {
            std::fs::write(&p, bad).unwrap();
            let err = TopicEdits::read(&p, &m).unwrap_err().to_string();
            assert!(
                err.contains("edits.toml") && err.contains(says),
                "{bad}: {err}"
            );
        }
    }
}
