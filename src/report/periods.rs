//! Periods: where a date's period starts, the baseline statistics of a run of periods, and
//! the change from one period to the next (week over week with weekly periods).

use crate::record::civil_date;
use serde::Serialize;

/// The start date of the period of `secs` (Unix seconds, UTC): Mondays for periods of 7
/// days, else multiples of `days` days since 1970-01-01.
pub(super) fn period_start(secs: i64, days: i64) -> String {
    let day = secs.div_euclid(86_400);
    // 1970-01-01 was a Thursday: shift so that periods of 7 start on Mondays.
    let start = if days == 7 {
        (day + 3).div_euclid(7) * 7 - 3
    } else {
        day.div_euclid(days.max(1)) * days.max(1)
    };
    civil_date(start * 86_400)
}

/// Mean and (population) standard deviation.
pub(super) fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// A group's last period against the period before it: week over week with weekly periods,
/// day over day with daily ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodChange {
    /// Comments in the last period of the report.
    pub last: u64,
    /// Comments in the period before it.
    pub previous: u64,
    /// `last - previous`.
    pub delta: i64,
    /// `delta / previous` (0.4: 40% more); `None` when the previous period had none.
    pub percent: Option<f64>,
}

impl PeriodChange {
    /// The change of the last two of `volumes` (per period, oldest first); `None` with fewer
    /// than two periods.
    pub fn of(volumes: &[u64]) -> Option<PeriodChange> {
        let [.., previous, last] = volumes else {
            return None;
        };
        let delta = *last as i64 - *previous as i64;
        Some(PeriodChange {
            last: *last,
            previous: *previous,
            delta,
            percent: (*previous > 0).then(|| delta as f64 / *previous as f64),
        })
    }

    /// As the page shows it: `+12 (+40%)`, `-3 (-25%)`, `0 (0%)`; `+3 (–)` when the previous
    /// period had none.
    pub fn to_text(&self) -> String {
        let sign = |x: f64| if x > 0.0 { "+" } else { "" };
        let pct = match self.percent {
            Some(p) => format!("{}{:.0}%", sign(p), p * 100.0),
            None => "–".to_string(),
        };
        format!("{}{} ({pct})", sign(self.delta as f64), self.delta)
    }

    /// [`PeriodChange::to_text`] of an optional change; `–` for none.
    pub fn text_of(change: Option<&PeriodChange>) -> String {
        change.map_or_else(|| "–".to_string(), PeriodChange::to_text)
    }
}
