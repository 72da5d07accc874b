//! Training the aspect heads on cached last hidden states: the encoder runs once per
//! sentence (the states are cached on disk, keyed by the encoder fingerprint and the texts),
//! then the tagger (per token) and the polarity head (per gold aspect) are trained with the
//! classify module's AdamW loop, seeded, with early stopping on a held-out dev share.

use super::data::{gold_tags, Example};
use super::{clause_breaks, Decoding, PolarityFeatures, POLARITIES, TAGS};
use super::{span_features, token_features, token_range, AspectConfig, AspectModel, Mlp};
use crate::classify::{
    train_head, train_head_on, ClassWeight, Split, Targets, TrainConfig, TrainReport,
};
use crate::encode::{Encoder, TokenSpans};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::Tensor;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One sentence as the encoder saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Each token's character range in the text (`None`: special or prefix token).
    pub spans: TokenSpans,
    /// Last hidden states, `tokens x hidden` row-major.
    pub states: Vec<f32>,
}

impl Encoded {
    /// Which tokens are text tokens.
    pub fn valid(&self) -> Vec<bool> {
        self.spans.iter().map(Option::is_some).collect()
    }
}

/// Settings of [`train_aspects`].
#[derive(Debug, Clone, Serialize)]
pub struct AspectTrainConfig {
    /// Neighbour tokens each side in the tagger's input.
    pub window: usize,
    /// Tagger hidden width (0 = linear).
    pub tag_hidden: usize,
    /// Polarity head hidden width (0 = linear).
    pub polarity_hidden: usize,
    /// What the polarity head reads of an aspect.
    pub polarity_features: PolarityFeatures,
    /// Width of the polarity head's aspect-queried attention (0: none).
    pub polarity_attention: usize,
    /// Maximum epochs of each head.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Epochs without dev improvement before stopping.
    pub patience: usize,
    /// Share of the sentences held out as dev (seeded).
    pub dev_fraction: f64,
    /// Seed for the dev split, initialisation and shuffling.
    pub seed: u64,
    /// Class weighting of the tagger's loss (`None`: `O` tokens count fully, which keeps
    /// precision up).
    pub tag_class_weight: ClassWeight,
    /// Weight of each data file's aspects in the polarity head's loss and in its dev accuracy
    /// (early stopping), by [`Example::source`]; files past the end count 1. For weak labels
    /// (the silver Chinese set) that should teach less than the gold ones without being
    /// dropped. Empty: every aspect counts 1.
    pub polarity_weights: Vec<f32>,
    /// The polarity weights of the dev rows (early stopping), when they differ from
    /// `polarity_weights` (e.g. 0 for weak labels: epochs are not chosen on them).
    pub polarity_dev_weights: Option<Vec<f32>>,
    /// Class weighting of the polarity head's loss.
    pub polarity_class_weight: ClassWeight,
    /// Polarity MLPs trained with seeds `seed`, `seed + 1`, ... (same rows, same dev share)
    /// and merged into one wider MLP whose logits are their mean (1: a single MLP).
    pub polarity_ensemble: usize,
}

impl Default for AspectTrainConfig {
    fn default() -> Self {
        AspectTrainConfig {
            window: 1,
            tag_hidden: 256,
            polarity_hidden: 256,
            polarity_features: PolarityFeatures::Mean,
            polarity_attention: 0,
            epochs: 30,
            lr: 1e-3,
            patience: 4,
            dev_fraction: 0.1,
            seed: 42,
            tag_class_weight: ClassWeight::None,
            polarity_weights: Vec::new(),
            polarity_dev_weights: None,
            polarity_class_weight: ClassWeight::Sqrt,
            polarity_ensemble: 1,
        }
    }
}

/// What training did.
#[derive(Debug, Clone, Serialize)]
pub struct AspectTrainReport {
    /// Sentences in train / dev.
    pub sentences: (usize, usize),
    /// Sentences left out of the tagger because an aspect could not be placed.
    pub tagger_skipped: usize,
    /// Tokens the tagger was trained on.
    pub tokens: usize,
    /// Aspects the polarity head was trained on.
    pub polarity_examples: usize,
    /// Gold aspects left out of polarity training (no span, or a polarity outside
    /// [`POLARITIES`] such as `conflict`).
    pub polarity_skipped: usize,
    /// The tagger's training (dev score: token accuracy).
    pub tagger: TrainReport,
    /// The polarity head's training (dev score: accuracy).
    pub polarity: TrainReport,
}

/// Runs the encoder over `texts` and returns each one's token spans and last hidden states.
/// With `cache`, the result is read from / written to `cache/aspects-HASH.bin` (HASH of the
/// encoder fingerprint `fp` and the texts), so a second run costs no encoder time.
pub fn encode_examples(
    encoder: &Encoder,
    fp: &str,
    texts: &[&str],
    cache: Option<&Path>,
) -> Result<Vec<Encoded>> {
    let file = cache.map(|dir| {
        let mut h = Sha256::new();
        h.update(fp.as_bytes());
        for t in texts {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        let d = h.finalize();
        let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
        dir.join(format!("aspects-{hex}.bin"))
    });
    if let Some(p) = file.as_ref().filter(|p| p.is_file()) {
        return read_cache(p, encoder.dim(), texts.len());
    }
    let tok = encoder.tokenize_with_offsets(texts)?;
    let ids: Vec<_> = tok.iter().map(|t| t.0.clone()).collect();
    let states = encoder.hidden_states(&ids, usize::MAX)?;
    let out: Vec<Encoded> = tok
        .into_iter()
        .zip(states)
        .map(|((_, spans), states)| Encoded { spans, states })
        .collect();
    if let Some(p) = &file {
        write_cache(p, &out)?;
    }
    Ok(out)
}

fn write_cache(path: &Path, rows: &[Encoded]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let tmp = path.with_extension("tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = BufWriter::new(f);
    let mut put = |b: &[u8]| w.write_all(b).map_err(|e| Error::io(&tmp, e));
    put(&(rows.len() as u64).to_le_bytes())?;
    for r in rows {
        put(&(r.spans.len() as u64).to_le_bytes())?;
        for s in &r.spans {
            let (a, b) = s.map_or((u32::MAX, u32::MAX), |(a, b)| (a as u32, b as u32));
            put(&a.to_le_bytes())?;
            put(&b.to_le_bytes())?;
        }
        let bytes: Vec<u8> = r.states.iter().flat_map(|x| x.to_le_bytes()).collect();
        put(&bytes)?;
    }
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn read_cache(path: &Path, h: usize, n: usize) -> Result<Vec<Encoded>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::new(f);
    let u64_ = |r: &mut BufReader<std::fs::File>| -> Result<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
        Ok(u64::from_le_bytes(b))
    };
    if u64_(&mut r)? as usize != n {
        return Err(Error::input(
            path,
            "the aspect state cache holds another set",
        ));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u64_(&mut r)? as usize;
        let mut buf = vec![0u8; len * 8];
        r.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        let spans = buf
            .chunks_exact(8)
            .map(|c| {
                let a = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let b = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                (a != u32::MAX).then_some((a as usize, b as usize))
            })
            .collect();
        let mut buf = vec![0u8; len * h * 4];
        r.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        let states = buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(Encoded { spans, states });
    }
    Ok(out)
}

#[derive(Default)]
struct Rows {
    x: Vec<Vec<f32>>,
    y: Vec<usize>,
    /// Per-row weights (polarity rows only).
    w: Vec<f32>,
    /// Polarity rows only: the sentence (index into the set) and the span's token range.
    at: Vec<(usize, usize, usize)>,
}

/// The tagger's rows (every text token of the complete sentences) and the polarity rows
/// (every placed aspect with a polarity in [`POLARITIES`], weighted by its file's entry of
/// `weights`); also counts what was left out.
fn rows(
    set: &[(&Example, &Encoded)],
    h: usize,
    cfg: &AspectTrainConfig,
    weights: &[f32],
) -> (Rows, Rows, usize, usize) {
    let (window, kind) = (cfg.window, cfg.polarity_features);
    let mut tag = Rows::default();
    let mut pol = Rows::default();
    let (mut tag_skipped, mut pol_skipped) = (0, 0);
    for (si, (ex, enc)) in set.iter().enumerate() {
        let valid = enc.valid();
        let breaks = match kind {
            PolarityFeatures::Mean => Vec::new(),
            PolarityFeatures::Clause => clause_breaks(&ex.text, &enc.spans),
        };
        if ex.complete() {
            let tags = gold_tags(ex, &enc.spans);
            for (i, (&t, &v)) in tags.iter().zip(&valid).enumerate() {
                if v {
                    let mut f = Vec::with_capacity(h * (1 + 2 * window));
                    token_features(&enc.states, h, i, window, &mut f);
                    tag.x.push(f);
                    tag.y.push(t);
                }
            }
        } else {
            tag_skipped += 1;
        }
        for a in &ex.aspects {
            let k = POLARITIES.iter().position(|p| *p == a.polarity);
            let r = a.span.and_then(|(f, t)| token_range(&enc.spans, f, t));
            match (k, r) {
                (Some(k), Some((f, t))) => {
                    pol.x
                        .push(span_features(&enc.states, h, &valid, &breaks, kind, f, t));
                    pol.y.push(k);
                    pol.w.push(weights.get(ex.source).copied().unwrap_or(1.0));
                    pol.at.push((si, f, t));
                }
                _ => pol_skipped += 1,
            }
        }
    }
    (tag, pol, tag_skipped, pol_skipped)
}

fn to_mlp(head: crate::classify::Head) -> Mlp {
    Mlp {
        w1: head.w1,
        b1: head.b1,
        w2: head.w2,
        b2: head.b2,
    }
}

/// Trains the tagger and the polarity head on `examples` and their encoder states
/// (`encoded[i]` is `examples[i]`'s), holding out `cfg.dev_fraction` of the sentences
/// (seeded) for early stopping and the polarity temperature. `fp` is the encoder fingerprint
/// recorded in the config.
pub fn train_aspects(
    examples: &[Example],
    encoded: &[Encoded],
    h: usize,
    fp: &str,
    cfg: &AspectTrainConfig,
) -> Result<(AspectModel, AspectTrainReport)> {
    if examples.len() != encoded.len() {
        return Err(Error::Invalid(format!(
            "{} sentences but {} encoded",
            examples.len(),
            encoded.len()
        )));
    }
    // a sentence is in dev by a seeded draw keyed by its text, so adding files does not move
    // the other files' sentences between train and dev
    let in_dev = |e: &Example| {
        let key = e.text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Rng::new(cfg.seed ^ key).next_f64() < cfg.dev_fraction
    };
    let (dev_idx, train_idx): (Vec<usize>, Vec<usize>) =
        (0..examples.len()).partition(|&i| in_dev(&examples[i]));
    let pick = |idx: &[usize]| -> Vec<(&Example, &Encoded)> {
        idx.iter().map(|&i| (&examples[i], &encoded[i])).collect()
    };
    let (train, dev) = (pick(&train_idx), pick(&dev_idx));
    if cfg.polarity_attention > 0
        && (cfg.polarity_ensemble > 1 || cfg.polarity_class_weight != ClassWeight::Sqrt)
    {
        return Err(Error::Invalid(
            "the attention polarity head trains alone with square-root class weights".into(),
        ));
    }
    let dw = cfg.polarity_dev_weights.as_ref();
    let mut all = cfg.polarity_weights.iter().chain(dw.into_iter().flatten());
    if all.any(|w| !w.is_finite() || *w < 0.0) {
        return Err(Error::Invalid(format!(
            "polarity weights must be finite and >= 0: {:?}, dev {dw:?}",
            cfg.polarity_weights
        )));
    }
    let (tag_t, pol_t, tag_skipped, pol_skipped) = rows(&train, h, cfg, &cfg.polarity_weights);
    let (tag_d, pol_d, _, _) = rows(&dev, h, cfg, dw.unwrap_or(&cfg.polarity_weights));
    if tag_t.x.is_empty() || tag_d.x.is_empty() || pol_t.x.is_empty() || pol_d.x.is_empty() {
        return Err(Error::Invalid(
            "aspect training needs placed aspects with a polarity in both the train and the dev share"
                .into(),
        ));
    }
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let tc = |hidden: usize, batch: usize, class_weight: ClassWeight| TrainConfig {
        hidden,
        epochs: cfg.epochs,
        batch_size: batch,
        lr: cfg.lr,
        weight_decay: 1e-4,
        patience: cfg.patience,
        seed: cfg.seed,
        class_weight,
    };
    let (tagger, tag_rep) = train_head(
        "aspect_tags",
        &labels(&TAGS),
        &tag_t.x,
        Targets::Single(&tag_t.y),
        &tag_d.x,
        Targets::Single(&tag_d.y),
        &tc(cfg.tag_hidden, 256, cfg.tag_class_weight),
    )?;
    let tokens = tag_t.x.len();
    drop(tag_t);
    let (pol, att, pol_rep) = train_polarity(&pol_t, &pol_d, (&train, &dev), h, cfg)?;
    let report = AspectTrainReport {
        sentences: (train.len(), dev.len()),
        tagger_skipped: tag_skipped,
        tokens,
        polarity_examples: pol_t.x.len(),
        polarity_skipped: pol_skipped,
        tagger: tag_rep,
        polarity: pol_rep.clone(),
    };
    let config = AspectConfig {
        hidden_size: h,
        window: cfg.window,
        tag_hidden: cfg.tag_hidden,
        polarity_hidden: pol.w2.as_ref().map_or(0, |w| w.dim(1).unwrap_or(0)),
        polarity_features: cfg.polarity_features,
        polarity_attention: cfg.polarity_attention,
        tags: labels(&TAGS),
        polarities: labels(&POLARITIES),
        temperature: pol_rep.temperature as f32,
        encoder: fp.to_string(),
        training: serde_json::json!({ "settings": cfg, "report": report }),
    };
    Ok((
        AspectModel {
            categories: None,
            config,
            decoding: Decoding::default(),
            tag: to_mlp(tagger),
            pol,
            att,
        },
        report,
    ))
}

type Sentences<'a> = [(&'a Example, &'a Encoded)];

/// The polarity head on its rows: an MLP over the fixed features ([`train_head_on`]), or with
/// `cfg.polarity_attention`, the attention and the MLP trained jointly.
fn train_polarity(
    t: &Rows,
    d: &Rows,
    sets: (&Sentences, &Sentences),
    h: usize,
    cfg: &AspectTrainConfig,
) -> Result<(Mlp, Option<super::attention::Attention>, TrainReport)> {
    let labels: Vec<String> = POLARITIES.iter().map(|s| s.to_string()).collect();
    if cfg.polarity_attention > 0 {
        use super::attention::{train, AttnConfig, AttnRow, AttnSplit};
        let valid: Vec<Vec<bool>> = sets.0.iter().map(|(_, e)| e.valid()).collect();
        let valid_d: Vec<Vec<bool>> = sets.1.iter().map(|(_, e)| e.valid()).collect();
        fn attn_rows<'a>(r: &Rows, set: &'a Sentences, valid: &'a [Vec<bool>]) -> Vec<AttnRow<'a>> {
            r.at.iter()
                .map(|&(si, a, b)| AttnRow::new(&set[si].1.states, &valid[si], a, b))
                .collect()
        }
        fn split<'a>(r: &'a Rows, rows: &'a [AttnRow<'a>]) -> AttnSplit<'a> {
            AttnSplit {
                x: &r.x,
                rows,
                y: &r.y,
                w: &r.w,
            }
        }
        let (rt, rd) = (attn_rows(t, sets.0, &valid), attn_rows(d, sets.1, &valid_d));
        let ac = AttnConfig {
            dim: cfg.polarity_attention,
            hidden: cfg.polarity_hidden,
            epochs: cfg.epochs,
            lr: cfg.lr,
            patience: cfg.patience,
            seed: cfg.seed,
            batch: 64,
        };
        let (att, [w1, b1, w2, b2], rep) = train(&labels, &split(t, &rt), &split(d, &rd), h, &ac)?;
        let mlp = Mlp {
            w1,
            b1,
            w2: Some(w2),
            b2: Some(b2),
        };
        return Ok((mlp, Some(att), rep));
    }
    // unweighted (every weight 1) trains exactly as before the weights existed
    let weighted =
        |r: &Rows| -> Option<Vec<f32>> { r.w.iter().any(|&w| w != 1.0).then(|| r.w.clone()) };
    let (wt, wd) = (weighted(t), weighted(d));
    let tc = TrainConfig {
        hidden: cfg.polarity_hidden,
        epochs: cfg.epochs,
        batch_size: 64,
        lr: cfg.lr,
        weight_decay: 1e-4,
        patience: cfg.patience,
        seed: cfg.seed,
        class_weight: cfg.polarity_class_weight,
    };
    let members = cfg.polarity_ensemble.max(1);
    let mut heads = Vec::with_capacity(members);
    for m in 0..members {
        // member m differs from the first only by its initialisation and shuffling seed
        let tc = TrainConfig {
            seed: cfg.seed.wrapping_add(m as u64),
            ..tc.clone()
        };
        let (head, rep) = train_head_on(
            "aspect_polarity",
            &labels,
            Split {
                x: &t.x,
                y: Targets::Single(&t.y),
                weights: wt.as_deref(),
            },
            Split {
                x: &d.x,
                y: Targets::Single(&d.y),
                weights: wd.as_deref(),
            },
            &tc,
        )?;
        heads.push((to_mlp(head), rep));
    }
    if members == 1 {
        let (mlp, rep) = heads
            .pop()
            .ok_or_else(|| Error::Invalid("no polarity head".into()))?;
        return Ok((mlp, None, rep));
    }
    let mlp = merge(&heads.iter().map(|h| &h.0).collect::<Vec<_>>())?;
    let logits = mlp.forward(&crate::classify::to_tensor(&d.x)?)?;
    let pred: Vec<u32> = logits.argmax(candle_core::D::Minus1)?.to_vec1()?;
    let w = |i: usize| wd.as_ref().map_or(1.0, |w| w[i] as f64);
    let (hit, all) = pred
        .iter()
        .zip(&d.y)
        .enumerate()
        .fold((0.0, 0.0), |(h, a), (i, (p, y))| {
            (h + if *p as usize == *y { w(i) } else { 0.0 }, a + w(i))
        });
    let (temperature, nll_raw, nll_cal) = crate::classify::fit_temperature(&logits, &d.y)?;
    let mut rep = heads[0].1.clone();
    rep.method = format!("mlp x{members} (mean logits)");
    rep.dev_accuracy = hit / f64::max(all, 1e-9);
    rep.best_epoch = 0;
    rep.epochs_run = heads.iter().map(|h| h.1.epochs_run).sum();
    (rep.temperature, rep.dev_nll_raw, rep.dev_nll_calibrated) = (temperature, nll_raw, nll_cal);
    Ok((mlp, None, rep))
}

/// The one MLP whose logits are the mean of `heads`' logits (one hidden layer each): their
/// hidden units side by side, the output weights scaled by `1 / heads.len()`.
pub(super) fn merge(heads: &[&Mlp]) -> Result<Mlp> {
    let (mut w1, mut b1, mut w2, mut b2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for h in heads {
        let (Some(hw2), Some(hb2)) = (&h.w2, &h.b2) else {
            return Err(Error::Invalid(
                "merging polarity heads needs hidden layers".into(),
            ));
        };
        w1.push(h.w1.clone());
        b1.push(h.b1.clone());
        w2.push(hw2.clone());
        b2.push(hb2.unsqueeze(0)?);
    }
    let n = heads.len() as f64;
    Ok(Mlp {
        w1: Tensor::cat(&w1, 0)?,
        b1: Tensor::cat(&b1, 0)?,
        w2: Some((Tensor::cat(&w2, 1)? / n)?),
        b2: Some(Tensor::cat(&b2, 0)?.mean(0)?),
    })
}

/// Where [`encode_examples`] keeps its files under an embedding cache folder.
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join("aspects")
}

/// `vocmine train --task aspects`: reads the labelled files, encodes their sentences (states
/// cached under `cache` when given), trains both heads and writes `out.json` and
/// `out.safetensors`. Returns the report and the sets' placing counts (aspects searched,
/// found; opinions given, placed).
pub fn train_files(
    encoder: &Encoder,
    data: &[PathBuf],
    cache: Option<&Path>,
    cfg: &AspectTrainConfig,
    out: &Path,
) -> Result<(AspectTrainReport, super::AspectSet)> {
    let mut set = super::AspectSet::default();
    for p in data {
        set.extend(super::read_aspect_set(p)?);
    }
    let fp = encoder.fingerprint()?;
    let texts: Vec<&str> = set.examples.iter().map(|e| e.text.as_str()).collect();
    let enc = encode_examples(encoder, &fp, &texts, cache)?;
    let (mut model, report) = train_aspects(&set.examples, &enc, encoder.dim(), &fp, cfg)?;
    if let serde_json::Value::Object(m) = &mut model.config.training {
        m.insert(
            "data".into(),
            serde_json::json!({
                "files": set.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "aspects": set.aspects,
                "searched": set.searched,
                "placed": set.placed,
                "opinions": set.opinions,
            }),
        );
    }
    model.save(out)?;
    Ok((report, set))
}
