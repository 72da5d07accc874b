//! `report`: report.json and a self-contained report.html for a run folder (and, with
//! `--webhook`/`--routes`, its alerts delivered as `vocmine alerts` does).

use super::args::{print_deliveries, DeliveryArgs, SpikeArgs};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vocmine::report::report_run;
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Run folder (the --out of score; topics from `vocmine topics` when present)
    run: PathBuf,
    #[command(flatten)]
    settings: SpikeArgs,
    #[command(flatten)]
    delivery: DeliveryArgs,
}

pub(crate) fn cmd_report(a: ReportArgs) -> Result<()> {
    let run = RunDir::new(&a.run);
    let (cfg, weights) = a.settings.config()?;
    let alerts = a.delivery.options()?;
    let r = report_run(&run, weights, cfg)?;
    out!("{}", r.to_text())?;
    let (json, html) = (run.report_json(), run.report_html());
    outln!("wrote {} and {}", json.display(), html.display())?;
    match alerts {
        Some(opts) => print_deliveries(&vocmine::alerts::deliver(&run, &r, &opts)?),
        None => Ok(()),
    }
}
