//! The flags of `serve`'s alerts after `/score` batches: the delivery and spike flags of
//! `alerts`, and how often the run's alerts are evaluated.

use super::alerting::{DeliveryArgs, ReportFlags};
use super::seconds;
use anyhow::Result;
use clap::Args;
use std::collections::BTreeMap;
use std::path::Path;
use vocmine::serve::AlertConfig;

/// `serve --score --index RUN --webhook URL` (or `--routes FILE`): the run's alerts delivered
/// after batches.
#[derive(Args)]
pub(crate) struct ServeAlertArgs {
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    report: ReportFlags,
    /// Seconds between evaluations of the run's alerts after /score batches (at most one
    /// evaluation this often, off the request path)
    #[arg(long, default_value_t = 5.0)]
    alert_every: f64,
}

impl ServeAlertArgs {
    /// The alerts' settings (`None` without a destination); names from the taxonomies of
    /// `model`, tier weights `None`: the run's.
    pub(crate) fn config(
        &self,
        model: Option<&Path>,
        tier_weights: Option<BTreeMap<String, f64>>,
    ) -> Result<Option<AlertConfig>> {
        let Some(options) = self.delivery.options()? else {
            return Ok(None);
        };
        Ok(Some(AlertConfig {
            report: self.report.config(model)?,
            tier_weights,
            every: seconds("alert-every", self.alert_every)?,
            ..AlertConfig::new(options)
        }))
    }
}
