//! `alerts`: a run's spikes, one event each, delivered to webhooks or queue files (routing
//! rules, retries, a delivery log so a rerun sends nothing twice).

use super::args::{print_deliveries, DeliveryArgs, SpikeArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use vocmine::alerts::alerts_run;
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct AlertsArgs {
    /// Run folder (the --out of score)
    run: PathBuf,
    #[command(flatten)]
    delivery: DeliveryArgs,
    #[command(flatten)]
    settings: SpikeArgs,
}

pub(crate) fn cmd_alerts(a: AlertsArgs) -> Result<()> {
    let Some(opts) = a.delivery.options()? else {
        bail!("nowhere to deliver alerts to: give --webhook URL or --routes FILE");
    };
    let (cfg, weights) = a.settings.config()?;
    print_deliveries(&alerts_run(&RunDir::new(&a.run), weights, cfg, &opts)?)
}
