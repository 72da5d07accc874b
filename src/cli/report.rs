//! `report`: report.json and a self-contained report.html for a run folder.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vocmine::report::{report_run, Names, ReportConfig};
use vocmine::severity::parse_tier_weights;
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Run folder (the --out of score; topics from `vocmine topics` when present)
    run: PathBuf,
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
    /// Severity weight of a customer tier, e.g. vip=1.3 (repeatable) [default: the run's,
    /// saved by `score --tier-weight`]
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Rating scale: csat (1-5, % of 4-5), nps (0-10), ces (mean effort), auto
    #[arg(long, default_value = "auto", value_parser = ["auto", "csat", "nps", "ces"])]
    rating_scale: String,
    /// Language of category names (from the model's taxonomies): en or zh
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    lang: String,
    /// Model folder whose taxonomies name the categories [default: $VOCMINE_MODEL, else the
    /// shipped model]
    #[arg(long)]
    model: Option<PathBuf>,
}

pub(crate) fn cmd_report(a: ReportArgs) -> Result<()> {
    let run = RunDir::new(&a.run);
    // Names come from the model's taxonomies; without a model the ids are shown, and said so.
    let (names, missing) = Names::for_model(a.model.as_deref(), &a.lang)?;
    if let Some(e) = missing {
        eprintln!("no model found ({e}): categories are shown by id");
    }
    let cfg = ReportConfig {
        period_days: if a.period == "day" { 1 } else { 7 },
        sigma: a.sigma,
        baseline: a.baseline.max(1),
        min_count: a.min_count,
        rating_scale: a.rating_scale.clone(),
        names,
        ..ReportConfig::default()
    };
    let weights = if a.tier_weights.is_empty() {
        None
    } else {
        Some(parse_tier_weights(&a.tier_weights)?)
    };
    let r = report_run(&run, weights, cfg)?;
    out!("{}", r.to_text())?;
    let (json, html) = (run.report_json(), run.report_html());
    outln!("wrote {} and {}", json.display(), html.display())?;
    Ok(())
}
