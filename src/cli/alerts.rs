//! `alerts`: a run's spikes, one event each, delivered to webhooks or queue files (routing
//! rules, retries, a delivery log so a rerun sends nothing twice).

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use vocmine::alerts::{alerts_run, AlertOptions, Delivery, Outcome, RetryPolicy};
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct AlertsArgs {
    /// Run folder (the --out of score)
    run: PathBuf,
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    settings: super::report::SpikeArgs,
}

/// Where and how alerts are delivered (`alerts`, and `report` when given a destination).
#[derive(Args)]
pub(crate) struct DeliveryArgs {
    /// Webhook (http:// URL) for every event no routing rule takes: the default route
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Routing rules (TOML): [[route]] tables matching pain_point, intent, sentiment, tier,
    /// channel, each to a webhook or a queue file; the first match decides (README: Alerts)
    #[arg(long, value_name = "FILE")]
    routes: Option<PathBuf>,
    /// Say what would be sent; send, queue and log nothing
    #[arg(long)]
    dry_run: bool,
    /// Tries per webhook delivery (a delivery still failing stays pending for the next run)
    #[arg(long, default_value_t = 4)]
    attempts: u32,
    /// Wait after the first failed try, in milliseconds (doubled after each, at most 30 s)
    #[arg(long, default_value_t = 500)]
    backoff_ms: u64,
    /// Timeout of each step of a try (connect, send, answer), in milliseconds
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

impl DeliveryArgs {
    /// The delivery options; `None` when no destination was given.
    pub(crate) fn options(&self) -> Result<Option<AlertOptions>> {
        if self.webhook.is_none() && self.routes.is_none() {
            if self.dry_run {
                bail!("--dry-run needs --webhook URL or --routes FILE");
            }
            return Ok(None);
        }
        Ok(Some(AlertOptions {
            webhook: self.webhook.clone(),
            routes: self.routes.clone(),
            dry_run: self.dry_run,
            retry: RetryPolicy {
                attempts: self.attempts.max(1),
                backoff: Duration::from_millis(self.backoff_ms),
                timeout: Duration::from_millis(self.timeout_ms.max(1)),
                ..RetryPolicy::default()
            },
        }))
    }
}

pub(crate) fn cmd_alerts(a: AlertsArgs) -> Result<()> {
    let Some(opts) = a.delivery.options()? else {
        bail!("nowhere to deliver alerts to: give --webhook URL or --routes FILE");
    };
    let (cfg, weights) = a.settings.config()?;
    print(&alerts_run(&RunDir::new(&a.run), weights, cfg, &opts)?)
}

/// Prints one line per event and a summary; an error when a delivery failed this time.
pub(crate) fn print(deliveries: &[Delivery]) -> Result<()> {
    let mut counts = [0usize; 7];
    for d in deliveries {
        let p = &d.payload;
        let (i, what, note) = match &d.outcome {
            Outcome::Sent { attempts, http } => (0, "sent", format!("HTTP {http}, try {attempts}")),
            Outcome::Queued => (1, "queued", String::new()),
            Outcome::AlreadyDone(s) => (2, "skipped", format!("already {s:?}").to_lowercase()),
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
        outln!(
            "{what:<10} {} {} {} {:?} {} z {:.1}, {} comments{to}{note}",
            p.event,
            p.period,
            p.kind,
            p.name,
            p.metric,
            p.z,
            p.comments
        )?;
    }
    outln!(
        "{} events: {} sent, {} queued, {} already done, {} pending, {} refused, {} without a route{}",
        deliveries.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        if counts[6] > 0 { format!(", {} to send (dry run)", counts[6]) } else { String::new() }
    )?;
    if counts[3] + counts[4] > 0 {
        bail!(
            "{} deliveries failed ({} pending, retried by the next run; {} refused for good: see the delivery log)",
            counts[3] + counts[4],
            counts[3],
            counts[4]
        );
    }
    Ok(())
}
