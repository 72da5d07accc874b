//! The customer-journey map: per journey stage (in journey order) the volume, mean sentiment,
//! the rating metric, the change from the report's second-last period to its last, the top
//! pain points and example comments; and the per-segment counts (stage x channel x product x
//! tier) the page filters on without a server.

use super::strings::{Words, OTHER_PRODUCTS};
use super::{example, rating_metric, Example, Item, Names, PeriodChange};
use serde::Serialize;
use std::collections::BTreeMap;

/// Products named in the filter; the rest are counted under "other products".
const MAX_PRODUCTS: usize = 40;
/// Example candidates per stage kept for the page's filters.
const CANDIDATES: usize = 24;

/// A pain point's count within a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedCount {
    /// Category id.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Comments.
    pub count: u64,
}

/// The rating metric over a stage's rated comments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRating {
    /// CSAT (% of 4-5), NPS (% 9-10 minus % 0-6) or CES (mean), as the report's scale.
    pub value: f64,
    /// Rated comments.
    pub n: u64,
}

/// One stage of the journey map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// Stage id (`delivery`, ...).
    pub key: String,
    /// Display name in the report's language.
    pub name: String,
    /// Comments in this stage.
    pub volume: u64,
    /// Share of all comments.
    pub share: f64,
    /// Mean sentiment score (-1..1).
    pub mean_sentiment: f64,
    /// Share with negative sentiment.
    pub negative_share: f64,
    /// Rating metric where the stage has rated comments.
    pub rating: Option<StageRating>,
    /// The stage's comments in the report's last period against the period before it (week
    /// over week with weekly periods); null with fewer than two periods.
    pub change: Option<PeriodChange>,
    /// The stage's most frequent pain points (without `none`/`unknown`), up to three.
    pub top_pain_points: Vec<NamedCount>,
    /// Up to three example comments, most severe first.
    pub examples: Vec<Example>,
}

/// Counts of one segment (stage, channel, product, tier), for the page's filters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Indices into [`Segments`]' stages, channels, products and tiers.
    pub at: [usize; 4],
    /// Comments.
    pub n: u64,
    /// Sum of sentiment scores.
    pub score_sum: f64,
    /// Negative comments.
    pub negative: u64,
    /// Rated comments, their sum, and those rated >= 4, >= 9 and <= 6 (CSAT: % of 4-5 on
    /// 1-5; NPS: % of 9-10 minus % of 0-6; CES: the mean).
    pub rated: [f64; 5],
    /// Pain-point index -> comments.
    pub pains: BTreeMap<usize, u64>,
    /// Comments in the report's second-last and last periods (the week-over-week change).
    pub recent: [u64; 2],
}

/// An example candidate with its segment, for the page's filters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Stage index.
    pub stage: usize,
    /// Channel, product and tier indices.
    pub seg: [usize; 3],
    /// The example.
    pub example: Example,
}

/// Everything the page needs to redraw the journey map for a channel, product and tier.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Segments {
    /// Stage ids in order.
    pub stages: Vec<String>,
    /// Channel values (`""`: none given).
    pub channels: Vec<String>,
    /// Product values (`""`: none given; the last may be "other products").
    pub products: Vec<String>,
    /// Tier values, lower-cased.
    pub tiers: Vec<String>,
    /// Pain-point display names by index.
    pub pains: Vec<String>,
    /// Non-empty segments.
    pub cells: Vec<Cell>,
    /// Example candidates, most severe first within each stage.
    pub candidates: Vec<Candidate>,
}

fn index_of(v: &mut Vec<String>, x: &str) -> usize {
    match v.iter().position(|y| y == x) {
        Some(i) => i,
        None => {
            v.push(x.to_string());
            v.len() - 1
        }
    }
}

/// Where a comment falls in the report's last two periods: 0 the second-last, 1 the last.
fn recent_of(it: &Item, periods: &[String]) -> Option<usize> {
    let [.., previous, last] = periods else {
        return None;
    };
    let p = it.period.as_ref()?;
    if p == previous {
        Some(0)
    } else {
        (p == last).then_some(1)
    }
}

/// Builds the journey map and its segments. `scale` is the report's rating scale, `periods`
/// the report's periods (start dates, in order).
pub(super) fn build(
    items: &[Item],
    names: &Names,
    scale: &str,
    periods: &[String],
) -> (Vec<StageStats>, Segments) {
    let stages: Vec<String> = names.stages().to_vec();
    let stage_of = |it: &Item| -> Option<usize> {
        let l = &it.s.tasks.get("journey_stage")?.label;
        stages.iter().position(|s| s == l)
    };
    let pain_of = |it: &Item| -> Option<String> {
        let l = &it.s.tasks.get("pain_point")?.label;
        (l != "none" && l != "unknown").then(|| l.clone())
    };
    let total = items.len().max(1) as f64;
    let mut out = Vec::new();
    for (si, key) in stages.iter().enumerate() {
        let members: Vec<&Item> = items.iter().filter(|i| stage_of(i) == Some(si)).collect();
        let n = members.len().max(1) as f64;
        let ratings: Vec<f64> = members.iter().filter_map(|m| m.s.rating).collect();
        let mut pains: BTreeMap<String, u64> = BTreeMap::new();
        for m in &members {
            if let Some(p) = pain_of(m) {
                *pains.entry(p).or_default() += 1;
            }
        }
        let mut pains: Vec<(String, u64)> = pains.into_iter().collect();
        pains.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut recent = [0u64; 2];
        for m in &members {
            if let Some(k) = recent_of(m, periods) {
                recent[k] += 1;
            }
        }
        let change = (periods.len() >= 2)
            .then(|| PeriodChange::of(&recent))
            .flatten();
        let mut ex = members.clone();
        ex.sort_by(|a, b| b.severity.total_cmp(&a.severity).then(a.s.id.cmp(&b.s.id)));
        out.push(StageStats {
            key: key.clone(),
            name: names.name("journey_stage", key),
            volume: members.len() as u64,
            share: members.len() as f64 / total,
            mean_sentiment: members.iter().map(|m| m.score).sum::<f64>() / n,
            negative_share: members.iter().filter(|m| m.negative).count() as f64 / n,
            rating: rating_metric(scale, &ratings).map(|value| StageRating {
                value,
                n: ratings.len() as u64,
            }),
            change,
            top_pain_points: pains
                .iter()
                .take(3)
                .map(|(k, c)| NamedCount {
                    key: k.clone(),
                    name: names.name("pain_point", k),
                    count: *c,
                })
                .collect(),
            examples: ex.iter().take(3).map(|m| example(m)).collect(),
        });
    }
    let recent = |it: &Item| recent_of(it, periods);
    (
        out,
        segments(items, names, &stages, stage_of, pain_of, recent),
    )
}

fn segments(
    items: &[Item],
    names: &Names,
    stages: &[String],
    stage_of: impl Fn(&Item) -> Option<usize>,
    pain_of: impl Fn(&Item) -> Option<String>,
    recent_of: impl Fn(&Item) -> Option<usize>,
) -> Segments {
    // Products by volume; those past MAX_PRODUCTS share one value.
    let mut product_counts: BTreeMap<&str, u64> = BTreeMap::new();
    for it in items {
        *product_counts
            .entry(it.s.product.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    let mut by_volume: Vec<(&str, u64)> = product_counts.into_iter().collect();
    by_volume.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<&str> = by_volume.iter().take(MAX_PRODUCTS).map(|p| p.0).collect();
    let mut seg = Segments {
        stages: stages.to_vec(),
        ..Segments::default()
    };
    let other = Words::new(&names.lang).get(OTHER_PRODUCTS);
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| b.severity.total_cmp(&a.severity).then(a.s.id.cmp(&b.s.id)));
    let mut cells: BTreeMap<[usize; 4], Cell> = BTreeMap::new();
    let mut per_stage = vec![0usize; stages.len()];
    let mut pain_keys: Vec<String> = Vec::new();
    for it in sorted {
        let Some(st) = stage_of(it) else { continue };
        let ch = index_of(&mut seg.channels, it.s.channel.as_deref().unwrap_or(""));
        let p = it.s.product.as_deref().unwrap_or("");
        let p = if named.contains(&p) { p } else { other };
        let pr = index_of(&mut seg.products, p);
        let tier = it.s.tier.as_deref().unwrap_or("").to_lowercase();
        let ti = index_of(&mut seg.tiers, &tier);
        let at = [st, ch, pr, ti];
        let c = cells.entry(at).or_insert_with(|| Cell {
            at,
            n: 0,
            score_sum: 0.0,
            negative: 0,
            rated: [0.0; 5],
            pains: BTreeMap::new(),
            recent: [0; 2],
        });
        if let Some(k) = recent_of(it) {
            c.recent[k] += 1;
        }
        c.n += 1;
        c.score_sum += it.score;
        c.negative += u64::from(it.negative);
        if let Some(r) = it.s.rating {
            c.rated[0] += 1.0;
            c.rated[1] += r;
            c.rated[2] += f64::from(u8::from(r >= 4.0));
            c.rated[3] += f64::from(u8::from(r >= 9.0));
            c.rated[4] += f64::from(u8::from(r <= 6.0));
        }
        if let Some(pk) = pain_of(it) {
            let pi = index_of(&mut pain_keys, &pk);
            *c.pains.entry(pi).or_default() += 1;
        }
        if per_stage[st] < CANDIDATES {
            per_stage[st] += 1;
            seg.candidates.push(Candidate {
                stage: st,
                seg: [ch, pr, ti],
                example: example(it),
            });
        }
    }
    seg.pains = pain_keys
        .iter()
        .map(|k| names.name("pain_point", k))
        .collect();
    seg.cells = cells.into_values().collect();
    seg
}
