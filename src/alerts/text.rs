//! Deliveries as plain text: what `vocmine alerts` (and `report --webhook`) prints.

use super::{Delivery, Outcome};
use std::fmt::Write as _;

/// What a batch of deliveries comes to: one line per event, a summary, and the failure (if
/// any delivery is pending or was refused this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveriesText {
    /// One line per event, then the summary line; every line ends with a newline.
    pub text: String,
    /// Set when a delivery is pending or was refused: the message to fail the command with.
    pub failure: Option<String>,
}

/// The text of `deliveries` ([`DeliveriesText`]).
pub fn deliveries_text(deliveries: &[Delivery]) -> DeliveriesText {
    let mut counts = [0usize; 7];
    let mut s = String::new();
    for d in deliveries {
        let p = &d.payload;
        let (i, what, note) = match &d.outcome {
            Outcome::Sent { attempts, http } => (0, "sent", format!("HTTP {http}, try {attempts}")),
            Outcome::Queued => (1, "queued", String::new()),
            Outcome::AlreadyDone(st) => (2, "skipped", format!("already {st:?}").to_lowercase()),
            Outcome::Pending { attempts, error } => {
                (3, "PENDING", format!("{attempts} tries, last: {error}"))
            }
            Outcome::Rejected { http } => (4, "REFUSED", format!("HTTP {http}, not retried")),
            Outcome::NoRoute => (5, "no route", String::new()),
            Outcome::DryRun => (6, "would send", String::new()),
        };
        counts[i] += 1;
        let to = match (&d.target, &d.route) {
            (Some(t), Some(r)) => format!(" -> {t} (route {r:?})"),
            _ => String::new(),
        };
        let note = if note.is_empty() {
            note
        } else {
            format!(" [{note}]")
        };
        let _ = writeln!(
            s,
            "{what:<10} {} {} {} {:?} {} z {:.1}, {} comments{to}{note}",
            p.event, p.period, p.kind, p.name, p.metric, p.z, p.comments
        );
    }
    let dry = if counts[6] > 0 {
        format!(", {} to send (dry run)", counts[6])
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{} events: {} sent, {} queued, {} already done, {} pending, {} refused, {} without a route{dry}",
        deliveries.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
    );
    let failure = (counts[3] + counts[4] > 0).then(|| {
        format!(
            "{} deliveries failed ({} pending, retried by the next run; {} refused for good: see the delivery log)",
            counts[3] + counts[4],
            counts[3],
            counts[4]
        )
    });
    DeliveriesText { text: s, failure }
}
