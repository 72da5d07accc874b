//! Aspects: aspect-level sentiment on the encoder's last hidden states (issue 33).
//!
//! Two small heads read the per-token states that the encoder computes anyway (the same pass
//! as the sentence tasks; the encoder is frozen):
//! - a **tagger**: per token, BIO tags for aspect and opinion spans (`O`, `B-ASP`, `I-ASP`,
//!   `B-OP`, `I-OP`) from the token's state and its neighbours' (`window` each side);
//! - a **polarity** head: per aspect, `negative` / `neutral` / `positive` from the mean state
//!   of the aspect's tokens, a proximity-weighted mean of the tokens around it, and the
//!   sentence mean (`features`; optionally also the mean of the aspect's clause, and a
//!   pooled context from an attention whose query is the aspect, `attention`).
//!
//! Like candle's `bert.rs`, the configuration ([`AspectConfig`], JSON), the weights (one
//! safetensors file, `tag.*` and `pol.*` tensors) and the forward pass ([`AspectModel`]) are
//! apart from loading; `data` reads labelled spans, `decode` turns the tag probabilities into
//! spans (constrained Viterbi by default, [`Decoding`]), `train` trains both heads on cached
//! states, `eval` measures span F1 and polarity accuracy.

use crate::classify::head_forward;
use crate::encode::{Encoder, TokenSpans};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod attention;
pub mod categories;
pub mod category_map;
pub mod data;
pub mod decode;
pub mod eval;
pub mod features;
pub mod train;

pub use category_map::{AspectCategories, AspectCategory};
pub use data::{read_aspect_set, AspectSet, Example, GoldAspect};
pub use decode::Decoding;
pub use eval::{evaluate_aspects, evaluate_file, AspectEvalReport};
pub use features::{clause_breaks, PolarityFeatures};
pub(crate) use features::{span_features, token_features};
pub use train::{
    cache_dir, encode_examples, train_aspects, train_files, AspectTrainConfig, AspectTrainReport,
    Encoded,
};

/// Where a model bundle keeps its aspect heads (`STEM.json`, `STEM.safetensors`), relative to
/// the bundle folder: the shipped bundle's.
pub const SHIPPED_STEM: &str = "finetuned/aspects";

/// The aspect heads' stem of the bundle in `dir`: [`SHIPPED_STEM`] where it has those heads,
/// else `aspects` beside its manifest (a bundle of its own, such as `models/fulldepth`).
pub fn bundle_stem(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = dir.join(SHIPPED_STEM);
    let own = dir.join("aspects");
    if !shipped.with_extension("json").exists() && own.with_extension("json").exists() {
        own
    } else {
        shipped
    }
}

/// The tagger's labels, in output order.
pub const TAGS: [&str; 5] = ["O", "B-ASP", "I-ASP", "B-OP", "I-OP"];
/// The polarity labels, in output order.
pub const POLARITIES: [&str; 3] = ["negative", "neutral", "positive"];

pub use crate::record::Aspect;

/// The aspect heads' configuration (`STEM.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AspectConfig {
    /// The encoder's hidden width (384 for e5-small).
    pub hidden_size: usize,
    /// Neighbour tokens on each side in the tagger's input.
    pub window: usize,
    /// Hidden width of the tagger (0 = linear).
    pub tag_hidden: usize,
    /// Hidden width of the polarity head (0 = linear).
    pub polarity_hidden: usize,
    /// What the polarity head reads of an aspect (absent in the first shipped config: `mean`).
    #[serde(default)]
    pub polarity_features: PolarityFeatures,
    /// Width of the polarity head's aspect-queried attention over the context tokens (its
    /// pooled state is appended to the features; 0: none, as in the first shipped config).
    #[serde(default)]
    pub polarity_attention: usize,
    /// Tag labels (see [`TAGS`]).
    pub tags: Vec<String>,
    /// Polarity labels (see [`POLARITIES`]).
    pub polarities: Vec<String>,
    /// Softmax temperature of the polarity head, fitted on dev.
    pub temperature: f32,
    /// Fingerprint of the encoder the heads were trained on.
    pub encoder: String,
    /// How they were trained: data, seed, settings, dev figures.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl AspectConfig {
    /// Input width of the tagger.
    pub fn tag_input(&self) -> usize {
        self.hidden_size * (1 + 2 * self.window)
    }

    /// Input width of the polarity head.
    pub fn polarity_input(&self) -> usize {
        let att = if self.polarity_attention > 0 {
            self.hidden_size
        } else {
            0
        };
        self.polarity_features.width(self.hidden_size) + att
    }
}

/// One head's weights: linear, or linear-GELU-linear.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub(crate) w1: Tensor,
    pub(crate) b1: Tensor,
    pub(crate) w2: Option<Tensor>,
    pub(crate) b2: Option<Tensor>,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        head_forward(x, &self.w1, &self.b1, self.w2.as_ref(), self.b2.as_ref())
    }

    fn out(&self) -> Result<usize> {
        Ok(self.w2.as_ref().unwrap_or(&self.w1).dim(0)?)
    }
}

/// The loaded aspect heads.
#[derive(Debug, Clone)]
pub struct AspectModel {
    /// Their configuration.
    pub config: AspectConfig,
    /// How the tagger's probabilities become spans ([`Decoding::Viterbi`] unless set).
    pub decoding: Decoding,
    pub(crate) tag: Mlp,
    pub(crate) pol: Mlp,
    /// The polarity head's attention (`config.polarity_attention > 0`).
    pub(crate) att: Option<attention::Attention>,
    /// The category list each aspect found is put in (see [`category_map`]), when set.
    pub categories: Option<AspectCategories>,
}

fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (
        stem.with_extension("json"),
        stem.with_extension("safetensors"),
    )
}

/// A span of tokens `[from, to)` found by the tagger, with its kind and mean tag probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenSpan {
    pub(crate) opinion: bool,
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) prob: f32,
}

impl AspectModel {
    /// Loads `STEM.json` and `STEM.safetensors`, checking the shapes against the config.
    pub fn load(stem: &Path) -> Result<AspectModel> {
        let (jp, wp) = paths(stem);
        let text = std::fs::read_to_string(&jp).map_err(|e| Error::io(&jp, e))?;
        let config: AspectConfig =
            serde_json::from_str(&text).map_err(|e| Error::model(&jp, e.to_string()))?;
        let t = candle_core::safetensors::load(&wp, &Device::Cpu)?;
        let get = |k: &str| -> Result<Tensor> {
            t.get(k)
                .ok_or_else(|| Error::model(&wp, format!("tensor {k} missing")))?
                .to_dtype(DType::F32)
                .map_err(Error::from)
        };
        let mlp = |p: &str, hidden: usize| -> Result<Mlp> {
            Ok(Mlp {
                w1: get(&format!("{p}.w1"))?,
                b1: get(&format!("{p}.b1"))?,
                w2: (hidden > 0).then(|| get(&format!("{p}.w2"))).transpose()?,
                b2: (hidden > 0).then(|| get(&format!("{p}.b2"))).transpose()?,
            })
        };
        let att = if config.polarity_attention > 0 {
            let a = attention::Attention {
                wq: get("pol.wq")?,
                wk: get("pol.wk")?,
                dist: get("pol.dist")?,
            };
            let (d, h) = (config.polarity_attention, config.hidden_size);
            if a.wq.dims() != [d, h]
                || a.wk.dims() != [d, h]
                || a.dist.dims() != [attention::DIST_BUCKETS]
            {
                return Err(Error::model(
                    &wp,
                    "attention weight shapes do not match the config",
                ));
            }
            Some(a)
        } else {
            None
        };
        let model = AspectModel {
            categories: None,
            tag: mlp("tag", config.tag_hidden)?,
            pol: mlp("pol", config.polarity_hidden)?,
            att,
            config,
            decoding: Decoding::default(),
        };
        let c = &model.config;
        if model.tag.out()? != c.tags.len()
            || model.tag.w1.dim(1)? != c.tag_input()
            || model.pol.out()? != c.polarities.len()
            || model.pol.w1.dim(1)? != c.polarity_input()
        {
            return Err(Error::model(
                &wp,
                "weight shapes do not match the tags, polarities or input widths of the config",
            ));
        }
        if c.tags != TAGS {
            return Err(Error::model(&jp, format!("tags must be {TAGS:?}")));
        }
        Ok(model)
    }

    /// The same heads, each aspect found put in one of `categories`.
    pub fn with_categories(mut self, categories: AspectCategories) -> AspectModel {
        self.categories = Some(categories);
        self
    }

    /// The same heads with another [`Decoding`].
    pub fn with_decoding(mut self, decoding: Decoding) -> AspectModel {
        self.decoding = decoding;
        self
    }

    /// Writes `STEM.json` and `STEM.safetensors`.
    pub fn save(&self, stem: &Path) -> Result<()> {
        let (jp, wp) = paths(stem);
        if let Some(dir) = stem.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for (p, m) in [("tag", &self.tag), ("pol", &self.pol)] {
            t.insert(format!("{p}.w1"), m.w1.clone());
            t.insert(format!("{p}.b1"), m.b1.clone());
            if let (Some(w2), Some(b2)) = (&m.w2, &m.b2) {
                t.insert(format!("{p}.w2"), w2.clone());
                t.insert(format!("{p}.b2"), b2.clone());
            }
        }
        if let Some(a) = &self.att {
            t.insert("pol.wq".into(), a.wq.clone());
            t.insert("pol.wk".into(), a.wk.clone());
            t.insert("pol.dist".into(), a.dist.clone());
        }
        candle_core::safetensors::save(&t, &wp)?;
        let json = serde_json::to_string_pretty(&self.config)?;
        std::fs::write(&jp, json + "\n").map_err(|e| Error::io(&jp, e))?;
        Ok(())
    }

    /// Tag probabilities, one row of [`TAGS`] per token, for one sequence's states
    /// (`tokens x hidden_size`, row-major).
    pub fn tag_probs(&self, states: &[f32]) -> Result<Vec<Vec<f32>>> {
        let h = self.config.hidden_size;
        let n = states.len() / h.max(1);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut x = Vec::with_capacity(n * self.config.tag_input());
        for i in 0..n {
            token_features(states, h, i, self.config.window, &mut x);
        }
        let x = Tensor::from_vec(x, (n, self.config.tag_input()), &Device::Cpu)?;
        let logits = self.tag.forward(&x)?;
        Ok(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2()?)
    }

    /// Polarity probabilities (calibrated, in [`POLARITIES`] order) of aspects given as token
    /// ranges `[from, to)` of one sequence of `text`, whose tokens cover `spans` (as
    /// [`Encoder::tokenize_with_offsets`] gives them).
    pub fn polarity_probs(
        &self,
        states: &[f32],
        text: &str,
        spans: &TokenSpans,
        ranges: &[(usize, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let h = self.config.hidden_size;
        let kind = self.config.polarity_features;
        let valid: Vec<bool> = spans.iter().map(Option::is_some).collect();
        let breaks = match kind {
            PolarityFeatures::Mean => Vec::new(),
            PolarityFeatures::Clause => clause_breaks(text, spans),
        };
        let mut x = Vec::with_capacity(ranges.len() * kind.width(h));
        for &(a, b) in ranges {
            x.extend(span_features(states, h, &valid, &breaks, kind, a, b));
        }
        let x = Tensor::from_vec(x, (ranges.len(), kind.width(h)), &Device::Cpu)?;
        let logits = match &self.att {
            None => self.pol.forward(&x)?,
            Some(att) => {
                let rows: Vec<attention::AttnRow> = ranges
                    .iter()
                    .map(|&(a, b)| attention::AttnRow::new(states, &valid, a, b))
                    .collect();
                let rows: Vec<&attention::AttnRow> = rows.iter().collect();
                let p = &self.pol;
                let mlp = (&p.w1, &p.b1, p.w2.as_ref(), p.b2.as_ref());
                attention::forward(att, mlp, &x, &rows, h)?
            }
        };
        let logits = (logits / self.config.temperature.max(1e-3) as f64)?;
        Ok(candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec2()?)
    }

    /// The aspects of one text from its token states and token character ranges (as
    /// [`Encoder::tokenize_with_offsets`] gives them): tagged spans widened to whole Latin
    /// words, each opinion paired with its nearest aspect, a polarity per aspect.
    pub fn extract(&self, text: &str, states: &[f32], spans: &TokenSpans) -> Result<Vec<Aspect>> {
        let h = self.config.hidden_size;
        if states.len() != spans.len() * h {
            return Err(Error::Invalid(format!(
                "aspects: {} token states for {} tokens",
                states.len() / h.max(1),
                spans.len()
            )));
        }
        let probs = self.tag_probs(states)?;
        let found = decode::decode(&probs, spans, text, self.decoding);
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let range = |s: &TokenSpan| -> Option<(usize, usize)> {
            let (a, _) = spans[s.from]?;
            let (_, b) = spans[s.to - 1]?;
            trim(&chars, a, b)
        };
        let aspects: Vec<(TokenSpan, (usize, usize))> = found
            .iter()
            .filter(|s| !s.opinion)
            .filter_map(|s| range(s).map(|r| (*s, r)))
            .collect();
        let opinions: Vec<(usize, usize)> = found
            .iter()
            .filter(|s| s.opinion)
            .filter_map(range)
            .collect();
        let ranges: Vec<(usize, usize)> = aspects.iter().map(|(s, _)| (s.from, s.to)).collect();
        let pol = self.polarity_probs(states, text, spans, &ranges)?;
        let pairs = pair_opinions(&aspects.iter().map(|a| a.1).collect::<Vec<_>>(), &opinions);
        let slice = |(a, b): (usize, usize)| -> String { chars_slice(&chars, text, a, b) };
        Ok(aspects
            .iter()
            .zip(pol)
            .zip(pairs)
            .map(|(((s, r), p), op)| {
                let (k, pk) = argmax(&p);
                let aspect = slice(*r);
                Aspect {
                    category: (self.categories.as_ref())
                        .map(|c| c.category_of(&aspect).to_string()),
                    aspect,
                    opinion: op.map(|o| slice(opinions[o])),
                    polarity: self.config.polarities[k].clone(),
                    confidence: s.prob * pk,
                    span: [r.0, r.1],
                }
            })
            .collect())
    }

    /// Tokenises and encodes `texts` (one encoder pass for the last hidden states) and
    /// extracts each one's aspects. Needs the packed engine.
    pub fn extract_texts(&self, encoder: &Encoder, texts: &[&str]) -> Result<Vec<Vec<Aspect>>> {
        self.check_encoder(encoder)?;
        let tok = encoder.tokenize_with_offsets(texts)?;
        let ids: Vec<_> = tok.iter().map(|t| t.0.clone()).collect();
        let states = encoder.hidden_states(&ids, usize::MAX)?;
        texts
            .iter()
            .zip(tok.iter().zip(&states))
            .map(|(t, ((_, spans), s))| self.extract(t, s, spans))
            .collect()
    }

    /// Fails when `encoder`'s width differs from the heads' (a different encoder).
    pub fn check_encoder(&self, encoder: &Encoder) -> Result<()> {
        if encoder.dim() != self.config.hidden_size {
            return Err(Error::Invalid(format!(
                "the aspect heads need an encoder of width {}, this one has {}",
                self.config.hidden_size,
                encoder.dim()
            )));
        }
        Ok(())
    }
}

fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().copied().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |b, (i, x)| if x > b.1 { (i, x) } else { b },
    )
}

/// `[a, b)` (chars) without leading and trailing whitespace; `None` if nothing is left.
fn trim(chars: &[(usize, char)], a: usize, b: usize) -> Option<(usize, usize)> {
    let b = b.min(chars.len());
    let mut a = a.min(b);
    let mut b = b;
    while a < b && chars[a].1.is_whitespace() {
        a += 1;
    }
    while b > a && chars[b - 1].1.is_whitespace() {
        b -= 1;
    }
    (a < b).then_some((a, b))
}

/// The characters `[a, b)` of `text` (`chars` = its char indices).
fn chars_slice(chars: &[(usize, char)], text: &str, a: usize, b: usize) -> String {
    let start = chars.get(a).map_or(text.len(), |c| c.0);
    let end = chars.get(b).map_or(text.len(), |c| c.0);
    text[start..end].to_string()
}

/// Pairs each opinion with the nearest aspect (character gap; ties to the earlier aspect);
/// returns, per aspect, its nearest paired opinion.
fn pair_opinions(aspects: &[(usize, usize)], opinions: &[(usize, usize)]) -> Vec<Option<usize>> {
    let gap = |a: (usize, usize), o: (usize, usize)| -> usize {
        if o.0 >= a.1 {
            o.0 - a.1
        } else {
            a.0.saturating_sub(o.1)
        }
    };
    let mut best: Vec<Option<(usize, usize)>> = vec![None; aspects.len()];
    for (oi, &o) in opinions.iter().enumerate() {
        let Some((ai, g)) = aspects
            .iter()
            .enumerate()
            .map(|(ai, &a)| (ai, gap(a, o)))
            .min_by_key(|&(ai, g)| (g, ai))
        else {
            continue;
        };
        if best[ai].is_none_or(|(_, bg)| g < bg) {
            best[ai] = Some((oi, g));
        }
    }
    best.into_iter().map(|b| b.map(|(o, _)| o)).collect()
}

/// Token range `[from, to)` of the tokens overlapping characters `[a, b)`, if any.
pub fn token_range(spans: &TokenSpans, a: usize, b: usize) -> Option<(usize, usize)> {
    let hit: Vec<usize> = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_some_and(|(s, e)| s < b && e > a))
        .map(|(i, _)| i)
        .collect();
    Some((*hit.first()?, *hit.last()? + 1))
}

#[cfg(test)]
mod tests;
