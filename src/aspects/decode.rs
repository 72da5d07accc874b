//! Decoding the tagger's per-token probabilities into spans.
//!
//! The tagger scores each token's BIO tag ([`super::TAGS`]: `O`, `B-ASP`, `I-ASP`, `B-OP`,
//! `I-OP`) independently. Two ways to choose the tags:
//! - [`Decoding::Viterbi`] (the default): the most probable sequence (sum of per-token log
//!   probabilities) among the well-formed ones, where an `I-X` only follows a `B-X` or an
//!   `I-X` of the same type `X` (never `O`, another type, the start or a non-text token).
//!   Every span is then well-formed, and a token whose own argmax would break its span is
//!   outweighed by its neighbours when the whole sequence says so;
//! - [`Decoding::Greedy`]: each token's argmax, read leniently (an `I-X` without its `B-X`
//!   opens a span): the decoding of the first shipped heads (2026-12-05).
//!
//! Spans are then widened to whole Latin words ([`decode`]).

use super::TokenSpan;
use crate::encode::TokenSpans;
use serde::{Deserialize, Serialize};

/// Index of `O` in [`super::TAGS`].
const O: usize = 0;
/// Floor of a probability before its logarithm (a zero probability stays finite).
const MIN_PROB: f32 = 1e-12;

/// How the tagger's per-token probabilities become tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decoding {
    /// The most probable well-formed BIO sequence (constrained Viterbi).
    #[default]
    Viterbi,
    /// Each token's most probable tag, read leniently.
    Greedy,
}

impl Decoding {
    /// One tag (index into [`super::TAGS`]) per row of `probs`; `valid[i]` says whether
    /// token i is a text token (non-text tokens, and rows past `valid`, get `O`).
    pub fn tags(self, probs: &[Vec<f32>], valid: &[bool]) -> Vec<usize> {
        match self {
            Decoding::Viterbi => viterbi_tags(probs, valid),
            Decoding::Greedy => greedy_tags(probs, valid),
        }
    }
}

/// Whether tag `cur` may follow tag `prev`: `I-ASP` (2) only after `B-ASP` (1) or `I-ASP`,
/// `I-OP` (4) only after `B-OP` (3) or `I-OP`; anything else after anything.
pub fn allowed(prev: usize, cur: usize) -> bool {
    match cur {
        2 => prev == 1 || prev == 2,
        4 => prev == 3 || prev == 4,
        _ => true,
    }
}

/// Whether every `I-X` of `tags` follows a `B-X` or `I-X` (the first tag follows `O`).
pub fn well_formed(tags: &[usize]) -> bool {
    let mut prev = O;
    tags.iter().all(|&t| {
        let ok = allowed(prev, t);
        prev = t;
        ok
    })
}

fn argmax(p: &[f32]) -> usize {
    super::argmax(p).0
}

/// Each text token's most probable tag.
pub fn greedy_tags(probs: &[Vec<f32>], valid: &[bool]) -> Vec<usize> {
    probs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if valid.get(i).copied().unwrap_or(false) {
                argmax(p)
            } else {
                O
            }
        })
        .collect()
}

/// The well-formed tag sequence with the largest sum of log probabilities, decoded
/// separately over each run of text tokens (a non-text token is `O` and ends a span).
/// Ties go to the lower tag index.
pub fn viterbi_tags(probs: &[Vec<f32>], valid: &[bool]) -> Vec<usize> {
    let mut tags = vec![O; probs.len()];
    let mut i = 0;
    while i < probs.len() {
        if !valid.get(i).copied().unwrap_or(false) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < probs.len() && valid.get(j).copied().unwrap_or(false) {
            j += 1;
        }
        tags[i..j].copy_from_slice(&viterbi_run(&probs[i..j]));
        i = j;
    }
    tags
}

/// Constrained Viterbi over one run of text tokens, starting after `O`.
fn viterbi_run(probs: &[Vec<f32>]) -> Vec<usize> {
    let k = probs.first().map_or(0, Vec::len);
    if k == 0 {
        return vec![O; probs.len()];
    }
    let lp = |p: &[f32], t: usize| -> f64 {
        f64::from(p.get(t).copied().unwrap_or(0.0).max(MIN_PROB)).ln()
    };
    // score[t]: best log probability of a well-formed prefix ending in tag t
    let mut score: Vec<f64> = (0..k)
        .map(|t| {
            if allowed(O, t) {
                lp(&probs[0], t)
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(probs.len());
    for p in &probs[1..] {
        let mut next = vec![f64::NEG_INFINITY; k];
        let mut from = vec![O; k];
        for (t, (n, f)) in next.iter_mut().zip(from.iter_mut()).enumerate() {
            for (s, &sc) in score.iter().enumerate() {
                if allowed(s, t) && sc > *n {
                    *n = sc;
                    *f = s;
                }
            }
            *n += lp(p, t);
        }
        back.push(from);
        score = next;
    }
    let mut t = (0..k).fold(O, |b, t| if score[t] > score[b] { t } else { b });
    let mut tags = vec![t; probs.len()];
    for (i, from) in back.iter().enumerate().rev() {
        t = from[t];
        tags[i] = t;
    }
    tags
}

/// Reads spans off `tags` (an `I-X` that does not continue a span of type `X` opens one; a
/// non-text token ends a span), each with the mean probability of its tokens' tags, then
/// widens each span to whole Latin words (a token that continues a word without a space
/// joins it); of spans that widening makes overlap, the first is kept.
pub(crate) fn decode(
    probs: &[Vec<f32>],
    spans: &TokenSpans,
    text: &str,
    decoding: Decoding,
) -> Vec<TokenSpan> {
    let valid: Vec<bool> = (0..probs.len())
        .map(|i| spans.get(i).copied().flatten().is_some())
        .collect();
    let tags = decoding.tags(probs, &valid);
    let mut out: Vec<TokenSpan> = Vec::new();
    let mut cur: Option<(TokenSpan, f32)> = None;
    let close = |cur: &mut Option<(TokenSpan, f32)>, out: &mut Vec<TokenSpan>| {
        if let Some((mut s, sum)) = cur.take() {
            s.prob = sum / (s.to - s.from) as f32;
            out.push(s);
        }
    };
    for (i, (&k, p)) in tags.iter().zip(probs).enumerate() {
        if !valid[i] {
            close(&mut cur, &mut out);
            continue;
        }
        let pk = p.get(k).copied().unwrap_or(0.0);
        let opinion = k >= 3;
        match k {
            O => close(&mut cur, &mut out),
            2 | 4 if cur.as_ref().is_some_and(|c| c.0.opinion == opinion) => {
                if let Some(c) = cur.as_mut() {
                    c.0.to = i + 1;
                    c.1 += pk;
                }
            }
            _ => {
                close(&mut cur, &mut out);
                let s = TokenSpan {
                    opinion,
                    from: i,
                    to: i + 1,
                    prob: 0.0,
                };
                cur = Some((s, pk));
            }
        }
    }
    close(&mut cur, &mut out);
    widen(out, spans, text)
}

fn widen(mut out: Vec<TokenSpan>, spans: &TokenSpans, text: &str) -> Vec<TokenSpan> {
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let joined = |i: usize, j: usize| -> bool {
        // tokens i and j (j = i + 1) touch inside one Latin word
        match (
            spans.get(i).copied().flatten(),
            spans.get(j).copied().flatten(),
        ) {
            (Some((_, e)), Some((s, _))) => {
                e == s && e > 0 && word(chars.get(e - 1)) && word(chars.get(e))
            }
            _ => false,
        }
    };
    for s in out.iter_mut() {
        while s.from > 0 && joined(s.from - 1, s.from) {
            s.from -= 1;
        }
        while s.to < spans.len() && joined(s.to - 1, s.to) {
            s.to += 1;
        }
    }
    // widening can make neighbours overlap: keep the first of each overlapping run
    let mut kept: Vec<TokenSpan> = Vec::with_capacity(out.len());
    for s in out {
        if kept.last().is_some_and(|k| s.from < k.to) {
            continue;
        }
        kept.push(s);
    }
    kept
}
