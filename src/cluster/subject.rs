//! The subject view of an embedding: the directions along which comments differ by sentiment
//! and by language are removed before clustering, so that comments about the same subject fall
//! together whatever their tone and language.
//!
//! A tuned encoder puts sentiment on its main axes (that is what it was tuned for), and a
//! multilingual one still keeps a language offset: clustered as they are, the embeddings give
//! topics like "positive Chinese comments" and "English complaints". [`Subject::learn`] takes,
//! for each nuisance factor (the run's predicted sentiment, its detected language), the mean
//! embedding of every group with at least [`MIN_GROUP`] comments minus the factor's overall
//! mean, and keeps an orthonormal basis of those differences (a few directions out of 384).
//! [`Subject::view`] projects an embedding onto their orthogonal complement and rescales it
//! to unit length. The basis is stored in the topic model, so that later nights and the
//! workers of a distributed job assign in the same space the topics were found in.
//!
//! Measured (`vocmine topics-eval`, online_shopping_10_cats test split against its 10
//! categories; a bilingual set where laptops and food are written about in zh and en): see
//! `benches/results/topics_subject_*.md`.

use serde::{Deserialize, Serialize};

/// Smallest group a factor's direction is learnt from: smaller groups' means are noise.
pub const MIN_GROUP: usize = 10;

/// Directions removed from embeddings before they are clustered or assigned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The factors the directions were learnt from (`sentiment`, `lang`).
    #[serde(default)]
    pub factors: Vec<String>,
    /// Orthonormal directions, each as long as an embedding.
    #[serde(default)]
    pub removed: Vec<Vec<f32>>,
}

/// One nuisance factor: its name and each comment's value of it.
#[derive(Debug, Clone, Copy)]
pub struct Factor<'a> {
    /// What it is (`sentiment`, `lang`).
    pub name: &'a str,
    /// One value per comment, in the embeddings' order.
    pub values: &'a [String],
}

impl Subject {
    /// The directions of `factors` in `embs` (see the module docs). A factor with fewer than two
    /// groups of [`MIN_GROUP`] comments adds none; a factor whose values are not one per
    /// comment is skipped. Deterministic: groups are taken in value order.
    pub fn learn(embs: &[Vec<f32>], factors: &[Factor<'_>]) -> Subject {
        let dim = embs.first().map_or(0, Vec::len);
        // Each comment at unit length, computed where it is summed (no second copy of a
        // million embeddings; the same values and order as a kept copy would give).
        let add_unit = |m: &mut [f64], e: &[f32]| {
            let n = e.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            m.iter_mut()
                .zip(e)
                .for_each(|(a, x)| *a += if n > 0.0 { f64::from(*x) / n } else { 0.0 });
        };
        let mut diffs: Vec<Vec<f64>> = Vec::new();
        let mut names = Vec::new();
        for f in factors {
            if f.values.len() != embs.len() || dim == 0 {
                continue;
            }
            let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for (i, v) in f.values.iter().enumerate() {
                groups.entry(v.as_str()).or_default().push(i);
            }
            groups.retain(|_, m| m.len() >= MIN_GROUP);
            if groups.len() < 2 {
                continue;
            }
            let mean = |rows: &mut dyn Iterator<Item = usize>| -> Vec<f64> {
                let mut m = vec![0f64; dim];
                let mut n = 0usize;
                for i in rows {
                    add_unit(&mut m, &embs[i]);
                    n += 1;
                }
                m.iter_mut().for_each(|a| *a /= n.max(1) as f64);
                m
            };
            let all = mean(&mut groups.values().flatten().copied());
            for m in groups.values() {
                let g = mean(&mut m.iter().copied());
                diffs.push(g.iter().zip(&all).map(|(a, b)| a - b).collect());
            }
            names.push(f.name.to_string());
        }
        // Modified Gram-Schmidt: a difference that the earlier ones already span (the last
        // group of each factor, up to rounding) leaves a residual far below its length.
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for d in diffs {
            let len = d.iter().map(|x| x * x).sum::<f64>().sqrt();
            let mut r = d;
            for b in &basis {
                let p: f64 = r.iter().zip(b).map(|(x, y)| x * y).sum();
                r.iter_mut().zip(b).for_each(|(x, y)| *x -= p * y);
            }
            let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
            if len > 0.0 && n > 1e-3 * len {
                r.iter_mut().for_each(|x| *x /= n);
                basis.push(r);
            }
        }
        Subject {
            factors: names,
            removed: basis
                .into_iter()
                .map(|b| b.into_iter().map(|x| x as f32).collect())
                .collect(),
        }
    }

    /// True when nothing is removed ([`view`](Self::view) returns embeddings unchanged).
    pub fn is_identity(&self) -> bool {
        self.removed.is_empty()
    }

    /// `e` without the removed directions, at unit length; `e` itself when nothing is removed
    /// (topic models written before subjects existed keep assigning exactly as before).
    pub fn view(&self, e: &[f32]) -> Vec<f32> {
        let mut v = e.to_vec();
        self.view_in_place(&mut v);
        v
    }

    /// [`view`](Self::view) written over `e` itself (the same values), so a caller holding a
    /// million embeddings needs no second copy, nor memory from another thread's heap.
    pub fn view_in_place(&self, e: &mut [f32]) {
        if self.removed.is_empty() {
            return;
        }
        let mut x: Vec<f64> = e.iter().map(|v| f64::from(*v)).collect();
        for d in &self.removed {
            if d.len() != x.len() {
                continue;
            }
            let p: f64 = x.iter().zip(d).map(|(a, b)| a * f64::from(*b)).sum();
            x.iter_mut()
                .zip(d)
                .for_each(|(a, b)| *a -= p * f64::from(*b));
        }
        let n = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        e.iter_mut()
            .zip(&x)
            .for_each(|(v, a)| *v = if n > 0.0 { (a / n) as f32 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Comments on two subjects (axes 0 and 1), each written in a positive or a negative tone
    /// (axis 2) and in one of two languages (axis 3), tone and language stronger than subject.
    fn comments(n: usize) -> (Vec<Vec<f32>>, Vec<usize>, Vec<String>, Vec<String>) {
        let mut rng = Rng::new(5);
        let (mut x, mut subj, mut tone, mut lang) = (Vec::new(), Vec::new(), vec![], vec![]);
        for i in 0..n {
            let (s, t, l) = (i % 2, (i / 2) % 2, (i / 4) % 2);
            let mut v: Vec<f32> = (0..12)
                .map(|_| (rng.next_f64() as f32 - 0.5) * 0.1)
                .collect();
            v[s] += 0.5;
            v[2] += if t == 0 { 1.0 } else { -1.0 };
            v[3] += if l == 0 { 1.0 } else { -1.0 };
            x.push(v);
            subj.push(s);
            tone.push(["positive", "negative"][t].to_string());
            lang.push(["zh", "en"][l].to_string());
        }
        (x, subj, tone, lang)
    }

    #[test]
    fn the_view_keeps_subject_and_drops_tone_and_language() {
        let (x, subj, tone, lang) = comments(80);
        let s = Subject::learn(
            &x,
            &[
                Factor {
                    name: "sentiment",
                    values: &tone,
                },
                Factor {
                    name: "lang",
                    values: &lang,
                },
            ],
        );
        assert_eq!(s.factors, ["sentiment", "lang"]);
        assert_eq!(s.removed.len(), 2, "one direction per two-valued factor");
        let v: Vec<Vec<f32>> = x.iter().map(|e| s.view(e)).collect();
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
        // Raw: a comment is closer to its tone-and-language twin on the other subject than to
        // a same-subject comment of the other tone and language.
        let (a, twin_other_subject, same_subject_other_tone) = (0, 1, 6);
        assert_eq!(subj[a], subj[same_subject_other_tone]);
        assert_ne!(subj[a], subj[twin_other_subject]);
        assert!(cos(&x[a], &x[twin_other_subject]) > cos(&x[a], &x[same_subject_other_tone]));
        // Viewed: the other way round.
        assert!(cos(&v[a], &v[same_subject_other_tone]) > cos(&v[a], &v[twin_other_subject]));
        assert!(v.iter().all(|e| (cos(e, e) - 1.0).abs() < 1e-5));
        // Deterministic, and nothing learnt from a factor with one usable group.
        assert_eq!(
            s,
            Subject::learn(
                &x,
                &[
                    Factor {
                        name: "sentiment",
                        values: &tone
                    },
                    Factor {
                        name: "lang",
                        values: &lang
                    }
                ]
            )
        );
        let one = vec!["zh".to_string(); x.len()];
        let none = Subject::learn(
            &x,
            &[Factor {
                name: "lang",
                values: &one,
            }],
        );
        assert!(none.is_identity());
        assert_eq!(none.view(&x[3]), x[3]);
    }
}
