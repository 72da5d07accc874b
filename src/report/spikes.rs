//! Spikes as alerts: one flagged period of a group, and the folding of the spikes of one
//! event (a pain point and the topics made of the same complaints, or a group's two metrics)
//! into one alert.

use serde::Serialize;
use std::collections::BTreeSet;

/// One flagged period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// `pain_point` or `topic`.
    pub kind: String,
    /// The group's key.
    pub key: String,
    /// Readable name.
    pub name: String,
    /// Period start date.
    pub period: String,
    /// `volume` or `negative_share`.
    pub metric: String,
    /// The period's value.
    pub value: f64,
    /// Baseline mean and standard deviation.
    pub baseline_mean: f64,
    /// Baseline standard deviation.
    pub baseline_sd: f64,
    /// (value - mean) / sd.
    pub z: f64,
    /// Spikes of the same event folded into this one (`kind name (metric)`).
    pub related: Vec<String>,
    /// Comments of the group in the period (for folding).
    #[serde(skip)]
    pub(super) ids: BTreeSet<String>,
    /// The spikes of `related`, for the page to name in its language.
    #[serde(skip)]
    pub(super) related_spikes: Vec<Related>,
}

impl Alert {
    /// The ids of the comments of the flagged group in the flagged period (the event's
    /// comments; folded spikes share at least half of them).
    pub fn ids(&self) -> &BTreeSet<String> {
        &self.ids
    }

    /// The spikes folded into this one, as kind, name and metric (what `related` spells).
    pub fn related_spikes(&self) -> &[Related] {
        &self.related_spikes
    }
}

/// A spike folded into another alert of the same event.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    /// `pain_point` or `topic`.
    pub kind: String,
    /// The group's readable name.
    pub name: String,
    /// `volume` or `negative_share`.
    pub metric: String,
}

/// One alert per event: within a period, a spike whose comments overlap an alert already kept
/// by half or more (of the smaller set) is folded into it. Pain points come before topics and
/// volume before negative share, then the larger z; the result is newest first.
pub(super) fn fold_alerts(mut alerts: Vec<Alert>) -> Vec<Alert> {
    alerts.sort_by(|a, b| {
        b.period
            .cmp(&a.period)
            .then((a.kind != "pain_point").cmp(&(b.kind != "pain_point")))
            .then((a.metric != "volume").cmp(&(b.metric != "volume")))
            .then(b.z.total_cmp(&a.z))
            .then(a.key.cmp(&b.key))
    });
    let mut kept: Vec<Alert> = Vec::new();
    for a in alerts {
        let same = kept.iter_mut().find(|k| {
            k.period == a.period && {
                let common = k.ids.intersection(&a.ids).count();
                let smaller = k.ids.len().min(a.ids.len()).max(1);
                2 * common >= smaller
            }
        });
        match same {
            Some(k) => {
                let what = format!("{} {} ({})", a.kind, a.name, a.metric);
                if !k.related.contains(&what) {
                    k.related.push(what);
                    k.related_spikes.push(Related {
                        kind: a.kind,
                        name: a.name,
                        metric: a.metric,
                    });
                }
            }
            None => kept.push(a),
        }
    }
    kept.sort_by(|a, b| {
        b.period
            .cmp(&a.period)
            .then(b.z.total_cmp(&a.z))
            .then(a.key.cmp(&b.key))
            .then(a.metric.cmp(&b.metric))
    });
    kept
}
