//! Labelled aspect data: JSONL, one sentence a line, in the SemEval shape
//! `{"text": .., "aspects": [{"term": .., "polarity": .., "from": .., "to": ..}]}` (character
//! offsets), optionally with `"opinion"` words (and `"opinion_from"`, `"opinion_to"`). An aspect
//! given without offsets (`"term"` or `"aspect"` only, as ccf2018's subjects and opinion words)
//! is placed by string search where its words occur in the text; those that do not occur are
//! kept for polarity on gold aspects and counted, never dropped silently.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// One gold aspect.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldAspect {
    /// Its words.
    pub term: String,
    /// Its polarity label as given (`conflict` and other labels outside
    /// [`super::POLARITIES`] are kept here and left out of polarity training and scoring).
    pub polarity: String,
    /// Character range `[from, to)` in the text, given or found; `None` where the words do not
    /// occur in the text.
    pub span: Option<(usize, usize)>,
    /// Opinion words, if given.
    pub opinion: Option<String>,
    /// The opinion's character range, given or found.
    pub opinion_span: Option<(usize, usize)>,
}

/// One labelled sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Its id (the file's `id`, or `FILE:LINE`).
    pub id: String,
    /// The text.
    pub text: String,
    /// Its gold aspects (possibly none).
    pub aspects: Vec<GoldAspect>,
    /// Which file of its set it came from (an index into [`AspectSet::sources`]).
    pub source: usize,
}

impl Example {
    /// Whether every aspect has a span: only such sentences teach the tagger (an unplaced
    /// aspect would be taught as "no aspect here").
    pub fn complete(&self) -> bool {
        self.aspects.iter().all(|a| a.span.is_some())
    }
}

/// A labelled file.
#[derive(Debug, Clone, Default)]
pub struct AspectSet {
    /// The files read.
    pub sources: Vec<PathBuf>,
    /// Its sentences, in file order.
    pub examples: Vec<Example>,
    /// Gold aspects in all.
    pub aspects: usize,
    /// Aspects given without offsets.
    pub searched: usize,
    /// Of those, how many were found in the text.
    pub placed: usize,
    /// Opinions given, and how many of them have a span.
    pub opinions: (usize, usize),
    /// Aspects whose given offsets missed their words and were moved to the nearest
    /// occurrence.
    pub corrected: usize,
}

impl AspectSet {
    /// Appends another set.
    pub fn extend(&mut self, o: AspectSet) {
        let base = self.sources.len();
        self.sources.extend(o.sources);
        self.examples.extend(o.examples.into_iter().map(|mut e| {
            e.source += base;
            e
        }));
        self.aspects += o.aspects;
        self.searched += o.searched;
        self.placed += o.placed;
        self.opinions.0 += o.opinions.0;
        self.opinions.1 += o.opinions.1;
        self.corrected += o.corrected;
    }
}

#[derive(Deserialize)]
struct RawAspect {
    #[serde(alias = "aspect")]
    term: Option<String>,
    polarity: Option<String>,
    from: Option<usize>,
    to: Option<usize>,
    opinion: Option<String>,
    opinion_from: Option<usize>,
    opinion_to: Option<usize>,
}

#[derive(Deserialize)]
struct RawLine {
    id: Option<serde_json::Value>,
    text: Option<String>,
    #[serde(default)]
    aspects: Vec<RawAspect>,
}

/// Every character position where `needle` occurs in `hay` (as chars).
fn find_all(hay: &[char], needle: &[char]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&i| hay[i..i + needle.len()] == *needle)
        .collect()
}

/// Reads a labelled aspect file (JSONL). Errors name the file, line and field.
pub fn read_aspect_set(path: &Path) -> Result<AspectSet> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut set = AspectSet {
        sources: vec![path.to_path_buf()],
        ..Default::default()
    };
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let ln = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad =
            |field: &str, m: String| Error::input(path, format!("line {ln}: field {field}: {m}"));
        let raw: RawLine = serde_json::from_str(&line).map_err(|e| bad("(line)", e.to_string()))?;
        let text = raw.text.ok_or_else(|| bad("text", "missing".into()))?;
        let chars: Vec<char> = text.chars().collect();
        let id = match raw.id {
            Some(serde_json::Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => format!("{}:{ln}", path.display()),
        };
        let mut aspects = Vec::with_capacity(raw.aspects.len());
        for (k, a) in raw.aspects.into_iter().enumerate() {
            let field = |f: &str| format!("aspects[{k}].{f}");
            let term = a
                .term
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| bad(&field("term"), "missing or empty".into()))?;
            let polarity = a
                .polarity
                .ok_or_else(|| bad(&field("polarity"), "missing".into()))?;
            let term_chars: Vec<char> = term.chars().collect();
            let span = match (a.from, a.to) {
                (Some(f), Some(t))
                    if f < t && t <= chars.len() && chars[f..t] == term_chars[..] =>
                {
                    Some((f, t))
                }
                (Some(f), Some(t)) => {
                    // offsets that miss the words (a few SemEval laptop sentences, shifted by
                    // leading spaces): the occurrence nearest them, counted as corrected
                    let near = find_all(&chars, &term_chars)
                        .into_iter()
                        .min_by_key(|&i| i.abs_diff(f))
                        .ok_or_else(|| {
                            bad(
                                &field("from"),
                                format!("[{f}, {t}) is not {term:?}, which is not in the text"),
                            )
                        })?;
                    set.corrected += 1;
                    Some((near, near + term_chars.len()))
                }
                (None, None) => {
                    set.searched += 1;
                    let at = find_all(&chars, &term_chars).first().copied();
                    if at.is_some() {
                        set.placed += 1;
                    }
                    at.map(|f| (f, f + term_chars.len()))
                }
                _ => return Err(bad(&field("to"), "from and to go together".into())),
            };
            let opinion = a.opinion.filter(|o| !o.trim().is_empty());
            let opinion_span = match (&opinion, a.opinion_from, a.opinion_to) {
                (Some(o), Some(f), Some(t)) => {
                    let oc: Vec<char> = o.chars().collect();
                    if f >= t || t > chars.len() || chars[f..t] != oc[..] {
                        return Err(bad(
                            &field("opinion_from"),
                            format!("[{f}, {t}) is not {o:?} in the text"),
                        ));
                    }
                    Some((f, t))
                }
                (Some(o), None, None) => {
                    let oc: Vec<char> = o.chars().collect();
                    // the occurrence nearest the aspect, not overlapping it
                    let anchor = span.map_or(0, |s| s.0);
                    find_all(&chars, &oc)
                        .into_iter()
                        .map(|f| (f, f + oc.len()))
                        .filter(|&(f, t)| span.is_none_or(|s| t <= s.0 || f >= s.1))
                        .min_by_key(|&(f, _)| f.abs_diff(anchor))
                }
                (None, None, None) => None,
                _ => {
                    return Err(bad(
                        &field("opinion_from"),
                        "opinion offsets need the opinion and both of opinion_from, opinion_to"
                            .into(),
                    ))
                }
            };
            if opinion.is_some() {
                set.opinions.0 += 1;
                set.opinions.1 += opinion_span.is_some() as usize;
            }
            aspects.push(GoldAspect {
                term,
                polarity,
                span,
                opinion,
                opinion_span,
            });
        }
        set.aspects += aspects.len();
        set.examples.push(Example {
            id,
            text,
            aspects,
            source: 0,
        });
    }
    Ok(set)
}

/// Gold tags (indices into [`super::TAGS`]) of one sentence's tokens: aspects win over
/// opinions where they overlap; tokens without a span are `O`.
pub fn gold_tags(ex: &Example, spans: &crate::encode::TokenSpans) -> Vec<usize> {
    let mut tags = vec![0usize; spans.len()];
    let mut mark = |range: (usize, usize), b: usize| {
        if let Some((f, t)) = super::token_range(spans, range.0, range.1) {
            if tags[f..t].iter().any(|&x| x == 1 || x == 2) {
                return;
            }
            tags[f] = b;
            tags[f + 1..t].iter_mut().for_each(|x| *x = b + 1);
        }
    };
    for a in &ex.aspects {
        if let Some(s) = a.span {
            mark(s, 1);
        }
    }
    for a in &ex.aspects {
        if let Some(s) = a.opinion_span {
            mark(s, 3);
        }
    }
    tags
}
