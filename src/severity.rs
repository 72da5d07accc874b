//! Severity, the domain rule both search and the report rank by: a comment's negativity times
//! its customer tier's weight. A leaf: it knows the scored record and nothing of the pipeline,
//! the index or the report.

use crate::error::{Error, Result};
use crate::record::Scored;
use std::collections::BTreeMap;

/// Weights of customer tiers in the severity score (lower-cased tier -> weight; others 1).
pub fn default_tier_weights() -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("vip".to_string(), 1.3),
        ("platinum".to_string(), 1.3),
        ("gold".to_string(), 1.15),
    ])
}

/// The default tier weights with `TIER=WEIGHT` items (as given to `--tier-weight`) applied on
/// top; a clear error for an item that is not `TIER=WEIGHT` with a finite weight >= 0.
pub fn parse_tier_weights(items: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut w = default_tier_weights();
    for item in items {
        let (tier, v) = item.split_once('=').ok_or_else(|| {
            Error::Invalid(format!(
                "--tier-weight {item:?}: expected TIER=WEIGHT, e.g. vip=1.3"
            ))
        })?;
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "--tier-weight {item:?}: the weight must be a number >= 0"
                ))
            })?;
        w.insert(tier.trim().to_lowercase(), v);
    }
    Ok(w)
}

/// Severity of one comment: its negativity (`-score` of sentiment, floored at 0, or
/// P(negative) where there is no score) times its customer tier's weight.
pub fn severity(s: &Scored, tier_weights: &BTreeMap<String, f64>) -> f64 {
    let neg = s.tasks.get("sentiment").map_or(0.0, |t| match t.score {
        Some(score) => f64::from(-score).max(0.0),
        None => f64::from(t.probs.get("negative").copied().unwrap_or(0.0)),
    });
    neg * tier_weight(s.tier.as_deref(), tier_weights)
}

/// The weight of a customer tier (case-insensitive; 1 for a tier not listed or none).
pub fn tier_weight(tier: Option<&str>, tier_weights: &BTreeMap<String, f64>) -> f64 {
    tier.and_then(|t| tier_weights.get(&t.to_lowercase()))
        .copied()
        .unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_weights_parse_on_top_of_the_defaults_and_refuse_bad_items() {
        let w = parse_tier_weights(&["VIP=2".into(), "bronze=0.5".into()]).unwrap();
        assert_eq!(w["vip"], 2.0);
        assert_eq!(w["bronze"], 0.5);
        assert_eq!(w["gold"], 1.15);
        for bad in ["vip", "vip=-1", "vip=nan", "vip=x"] {
            let e = parse_tier_weights(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains("--tier-weight"), "{bad}: {e}");
        }
        assert_eq!(tier_weight(Some("Gold"), &w), 1.15);
        assert_eq!(tier_weight(Some("basic"), &w), 1.0);
        assert_eq!(tier_weight(None, &w), 1.0);
    }
}
