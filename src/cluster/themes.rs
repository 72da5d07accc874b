//! Themes: the second level over topics. Topics whose centroids lie close together (in the
//! subject view, after the centroids' common direction is taken out) are grouped by average
//! linkage, so "screen", "battery" and "drivers" can sit under one "laptops" theme while each
//! keeps its own topic. Themes are recomputed from the centroids on every run; since centroids
//! never move, a theme only changes when a new topic joins it. A theme's id is its smallest
//! topic id, its label the top terms of its topics' terms weighted by their sizes.

use super::Topic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Centred cosine similarity two groups of topics need (on average over their pairs) to be
/// one theme.
pub const THEME_SIMILARITY: f32 = 0.3;

/// A group of topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Theme {
    /// Its smallest topic id.
    pub id: i64,
    /// The top three terms of its topics.
    pub label: String,
    /// Its topics, by id.
    pub topics: Vec<i64>,
    /// Comments in its topics.
    pub size: usize,
}

/// Groups `topics` into themes: average linkage on the centred cosine similarity of their
/// centroids, joining while the closest pair of groups is at least `min_similarity` alike.
/// Only topics with comments take part; every such topic is in exactly one theme (a theme may
/// hold one topic). Deterministic: ties go to the pair with the smallest ids.
pub fn themes(topics: &[Topic], min_similarity: f32) -> Vec<Theme> {
    let live: Vec<&Topic> = topics.iter().filter(|t| t.size > 0).collect();
    let dim = live.first().map_or(0, |t| t.centroid.len());
    if live.is_empty() || live.iter().any(|t| t.centroid.len() != dim) {
        return Vec::new();
    }
    // Centre on the size-weighted mean so the similarity reflects what sets topics apart.
    let total: f64 = live.iter().map(|t| t.size as f64).sum();
    let mut mean = vec![0f64; dim];
    for t in &live {
        for (m, c) in mean.iter_mut().zip(&t.centroid) {
            *m += f64::from(*c) * t.size as f64 / total;
        }
    }
    let centred: Vec<Vec<f64>> = live
        .iter()
        .map(|t| {
            let v: Vec<f64> = t
                .centroid
                .iter()
                .zip(&mean)
                .map(|(c, m)| f64::from(*c) - m)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let n = live.len();
    let sim: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                let s: f64 = groups[a]
                    .iter()
                    .flat_map(|&i| groups[b].iter().map(move |&j| (i, j)))
                    .map(|(i, j)| sim[i][j])
                    .sum::<f64>()
                    / (groups[a].len() * groups[b].len()) as f64;
                if best.is_none_or(|(bs, _, _)| s > bs) {
                    best = Some((s, a, b));
                }
            }
        }
        match best {
            Some((s, a, b)) if s >= f64::from(min_similarity) => {
                let moved = groups.remove(b);
                groups[a].extend(moved);
            }
            _ => break,
        }
    }
    let mut out: Vec<Theme> = groups
        .into_iter()
        .map(|g| {
            let mut ids: Vec<i64> = g.iter().map(|&i| live[i].id).collect();
            ids.sort_unstable();
            let mut weight: BTreeMap<&str, f64> = BTreeMap::new();
            for &i in &g {
                for (w, x) in &live[i].terms {
                    *weight.entry(w.as_str()).or_default() += f64::from(*x) * live[i].size as f64;
                }
            }
            let mut terms: Vec<(&str, f64)> = weight.into_iter().collect();
            terms.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            Theme {
                id: ids[0],
                label: terms
                    .iter()
                    .take(3)
                    .map(|t| t.0)
                    .collect::<Vec<_>>()
                    .join(" / "),
                size: g.iter().map(|&i| live[i].size).sum(),
                topics: ids,
            }
        })
        .collect();
    out.sort_by_key(|t| t.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(id: i64, centroid: Vec<f32>, size: usize, terms: &[&str]) -> Topic {
        Topic {
            id,
            label: terms[..2].join(" / "),
            terms: terms
                .iter()
                .enumerate()
                .map(|(i, w)| (w.to_string(), 1.0 / (i + 1) as f32))
                .collect(),
            size,
            representatives: vec![],
            centroid,
            radius: 0.5,
        }
    }

    #[test]
    fn close_topics_share_a_theme_and_far_ones_do_not() {
        // Two laptop topics near each other, a hotel topic and a food topic elsewhere.
        let ts = vec![
            topic(0, vec![1.0, 0.2, 0.0, 0.0], 30, &["屏幕", "笔记本"]),
            topic(1, vec![0.0, 0.0, 1.0, 0.0], 20, &["酒店", "房间"]),
            topic(2, vec![0.9, 0.4, 0.0, 0.0], 10, &["电池", "笔记本"]),
            topic(3, vec![0.0, 0.0, 0.0, 1.0], 25, &["味道", "外卖"]),
            topic(4, vec![0.0, 1.0, 0.0, 0.0], 0, &["空的", "话题"]),
        ];
        let th = themes(&ts, THEME_SIMILARITY);
        let groups: Vec<Vec<i64>> = th.iter().map(|t| t.topics.clone()).collect();
        assert_eq!(groups, vec![vec![0, 2], vec![1], vec![3]]);
        assert_eq!(th[0].id, 0);
        assert_eq!(th[0].size, 40);
        assert!(th[0].label.starts_with("屏幕 / 笔记本"), "{}", th[0].label);
        assert_eq!(themes(&ts, THEME_SIMILARITY), th);
        // At a bar of 1.0 nothing joins.
        assert_eq!(themes(&ts, 1.01).len(), 4);
    }
}
