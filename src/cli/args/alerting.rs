//! The flags of the report's spikes and of their delivery, shared by `report`, `alerts` and
//! `serve` (so all see the same spikes and deliver them the same way), and the printing of
//! deliveries.

use anyhow::{bail, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vocmine::alerts::{deliveries_text, AlertOptions, Delivery, RetryPolicy};
use vocmine::report::{Names, ReportConfig};
use vocmine::severity::parse_tier_weights;

/// The report's spike settings, shared by `report`, `alerts` and `serve` (so all see the same
/// spikes).
#[derive(Args)]
pub(crate) struct ReportFlags {
    /// Period: week (ISO weeks, Monday, UTC) or day
    #[arg(long, default_value = "week", value_parser = ["week", "day"])]
    period: String,
    /// Standard deviations above the trailing baseline that flag a spike
    #[arg(long, default_value_t = 2.0)]
    sigma: f64,
    /// Periods in the trailing baseline
    #[arg(long, default_value_t = 4)]
    baseline: usize,
    /// Fewest comments in a period for it to be flagged
    #[arg(long, default_value_t = 3)]
    min_count: u64,
    /// Rating scale: csat (1-5, % of 4-5), nps (0-10), ces (mean effort), auto
    #[arg(long, default_value = "auto", value_parser = ["auto", "csat", "nps", "ces"])]
    rating_scale: String,
    /// Language of category names (from the model's taxonomies): en or zh
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    lang: String,
}

impl ReportFlags {
    /// The report's settings, category names from the taxonomies of `model` (`None`: the
    /// default model).
    pub(crate) fn config(&self, model: Option<&Path>) -> Result<ReportConfig> {
        // Names come from the model's taxonomies; without a model the ids are shown, and said so.
        let (names, missing) = Names::for_model(model, &self.lang)?;
        if let Some(e) = missing {
            eprintln!("no model found ({e}): categories are shown by id");
        }
        Ok(ReportConfig {
            period_days: if self.period == "day" { 1 } else { 7 },
            sigma: self.sigma,
            baseline: self.baseline.max(1),
            min_count: self.min_count,
            rating_scale: self.rating_scale.clone(),
            names,
            ..ReportConfig::default()
        })
    }
}

/// The report's settings with its tier weights and model, shared by `report` and `alerts`.
#[derive(Args)]
pub(crate) struct SpikeArgs {
    #[command(flatten)]
    report: ReportFlags,
    /// Severity weight of a customer tier, e.g. vip=1.3 (repeatable) [default: the run's,
    /// saved by `score --tier-weight`]
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Model folder whose taxonomies name the categories [default: $VOCMINE_MODEL, else the
    /// shipped model]
    #[arg(long)]
    model: Option<PathBuf>,
}

/// The report's settings and tier weights (`None`: the run's).
pub(crate) type Settings = (ReportConfig, Option<BTreeMap<String, f64>>);

impl SpikeArgs {
    pub(crate) fn config(&self) -> Result<Settings> {
        let cfg = self.report.config(self.model.as_deref())?;
        let weights = if self.tier_weights.is_empty() {
            None
        } else {
            Some(parse_tier_weights(&self.tier_weights)?)
        };
        Ok((cfg, weights))
    }
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

/// Prints one line per event and a summary; an error when a delivery failed this time.
pub(crate) fn print_deliveries(deliveries: &[Delivery]) -> Result<()> {
    let t = deliveries_text(deliveries);
    out!("{}", t.text)?;
    match t.failure {
        Some(m) => bail!(m),
        None => Ok(()),
    }
}
