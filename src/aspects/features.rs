//! The heads' inputs, built from one sequence's last hidden states: the tagger's per-token
//! window and the polarity head's per-aspect pooled states ([`PolarityFeatures`]).

use crate::encode::TokenSpans;
use serde::{Deserialize, Serialize};

/// Decay (in tokens) of the context weights around an aspect in the polarity features.
const CONTEXT_DECAY: f32 = 3.0;

/// Characters that end a clause (Latin and CJK punctuation).
const CLAUSE_MARKS: &[char] = &[
    ',', ';', '.', '!', '?', ':', '(', ')', '，', '；', '。', '！', '？', '：', '、', '（', '）',
    '…', '～',
];

/// Contrastive conjunctions that open a new clause: whole Latin words (any case) ...
const CLAUSE_WORDS: &[&str] = &[
    "but", "although", "though", "however", "whereas", "while", "yet", "except",
];
/// ... and Chinese ones (anywhere in the text).
const CLAUSE_WORDS_ZH: &[&str] = &["但是", "但", "可是", "不过", "然而", "却"];

/// What the polarity head reads of an aspect (`polarity_features` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolarityFeatures {
    /// The span's mean state, a proximity-weighted mean of the other text tokens and the
    /// sentence mean (3 x hidden; the first shipped heads).
    #[default]
    Mean,
    /// [`PolarityFeatures::Mean`] and the mean of the other text tokens of the aspect's
    /// clause, which ends at punctuation and at contrastive conjunctions ("but", "但是"), so
    /// "sharp" and "dies fast" in "The screen is sharp but the battery dies fast" are read
    /// apart (4 x hidden).
    Clause,
}

impl PolarityFeatures {
    /// Input width of the polarity head over states of width `h`.
    pub fn width(self, h: usize) -> usize {
        match self {
            PolarityFeatures::Mean => 3 * h,
            PolarityFeatures::Clause => 4 * h,
        }
    }
}

/// Appends token `i`'s tagger input: its state, then `window` states before and after it
/// (nearest first; zeros past either end).
pub(crate) fn token_features(
    states: &[f32],
    h: usize,
    i: usize,
    window: usize,
    out: &mut Vec<f32>,
) {
    let n = states.len() / h;
    out.extend_from_slice(&states[i * h..(i + 1) * h]);
    for d in 1..=window {
        for j in [i.checked_sub(d), Some(i + d).filter(|&j| j < n)] {
            match j {
                Some(j) => out.extend_from_slice(&states[j * h..(j + 1) * h]),
                None => out.extend(std::iter::repeat_n(0.0, h)),
            }
        }
    }
}

/// Which tokens end a clause: those covering a `CLAUSE_MARKS` character or part of a
/// contrastive conjunction (`CLAUSE_WORDS`, `CLAUSE_WORDS_ZH`). Special tokens do not.
pub fn clause_breaks(text: &str, spans: &TokenSpans) -> Vec<bool> {
    let chars: Vec<char> = text.chars().collect();
    let mut brk: Vec<bool> = chars.iter().map(|c| CLAUSE_MARKS.contains(c)).collect();
    // Latin words: maximal runs of alphanumeric characters
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
        if CLAUSE_WORDS.contains(&word.as_str()) {
            brk[start..i].iter_mut().for_each(|b| *b = true);
        }
    }
    for w in CLAUSE_WORDS_ZH {
        let wc: Vec<char> = w.chars().collect();
        for j in 0..=chars.len().saturating_sub(wc.len()) {
            if chars.get(j..j + wc.len()) == Some(&wc[..]) {
                brk[j..j + wc.len()].iter_mut().for_each(|b| *b = true);
            }
        }
    }
    spans
        .iter()
        .map(|s| {
            s.is_some_and(|(a, b)| {
                brk.get(a..b.min(brk.len()))
                    .is_some_and(|r| r.contains(&true))
            })
        })
        .collect()
}

/// The polarity input of the aspect at tokens `[a, b)`. [`PolarityFeatures::Mean`]: the
/// span's mean state, the mean of the other text tokens weighted by
/// `exp(-distance / CONTEXT_DECAY)`, and the mean of all text tokens;
/// [`PolarityFeatures::Clause`] adds the mean of the other text tokens between the clause
/// breaks (`breaks`, [`clause_breaks`]) around the span (zeros if there are none).
pub(crate) fn span_features(
    states: &[f32],
    h: usize,
    valid: &[bool],
    breaks: &[bool],
    kind: PolarityFeatures,
    a: usize,
    b: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; kind.width(h)];
    let (span, rest) = out.split_at_mut(h);
    let (ctx, rest) = rest.split_at_mut(h);
    let (sent, clause) = rest.split_at_mut(h);
    let (mut ws, mut wc, mut wn, mut wl) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    // the clause: after the last break before the span, up to the first break after it
    let lo = (0..a.min(breaks.len()))
        .rev()
        .find(|&i| breaks[i])
        .map_or(0, |i| i + 1);
    let hi = (b..breaks.len())
        .find(|&i| breaks[i])
        .unwrap_or(valid.len());
    for (i, &v) in valid.iter().enumerate() {
        let row = &states[i * h..(i + 1) * h];
        let inside = i >= a && i < b;
        if inside {
            span.iter_mut().zip(row).for_each(|(o, x)| *o += x);
            ws += 1.0;
        }
        if !v {
            continue;
        }
        sent.iter_mut().zip(row).for_each(|(o, x)| *o += x);
        wn += 1.0;
        if !inside {
            let d = if i < a { a - i } else { i + 1 - b } as f32;
            let w = (-d / CONTEXT_DECAY).exp();
            ctx.iter_mut().zip(row).for_each(|(o, x)| *o += w * x);
            wc += w;
            if !clause.is_empty() && i >= lo && i < hi {
                clause.iter_mut().zip(row).for_each(|(o, x)| *o += x);
                wl += 1.0;
            }
        }
    }
    for (part, w) in [(span, ws), (ctx, wc), (sent, wn), (clause, wl)] {
        if w > 0.0 {
            part.iter_mut().for_each(|x| *x /= w);
        }
    }
    out
}
