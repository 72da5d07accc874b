//! `report`: report.json and a self-contained report.html for a run folder (and, with
//! `--webhook`/`--routes`, its alerts delivered as `vocmine alerts` does).

use anyhow::Result;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use vocmine::report::{report_run, Names, ReportConfig};
use vocmine::severity::parse_tier_weights;
use vocmine::workspace::RunDir;

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// Run folder (the --out of score; topics from `vocmine topics` when present)
    run: PathBuf,
    #[command(flatten)]
    settings: SpikeArgs,
    #[command(flatten)]
    delivery: super::alerts::DeliveryArgs,
}

/// The report's settings, shared by `report` and `alerts` (so both see the same spikes).
#[derive(Args)]
pub(crate) struct SpikeArgs {
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

/// The report's settings and tier weights (`None`: the run's).
pub(crate) type Settings = (ReportConfig, Option<BTreeMap<String, f64>>);

impl SpikeArgs {
    pub(crate) fn config(&self) -> Result<Settings> {
        // Names come from the model's taxonomies; without a model the ids are shown, and said so.
        let names = match &self.model {
            Some(m) => Names::from_model(m, &self.lang)?,
            None => match vocmine::model::default_model_dir() {
                Ok(m) => Names::from_model(&m, &self.lang)?,
                Err(e) => {
                    eprintln!("no model found ({e}): categories are shown by id");
                    Names::ids(&self.lang)
                }
            },
        };
        let cfg = ReportConfig {
            period_days: if self.period == "day" { 1 } else { 7 },
            sigma: self.sigma,
            baseline: self.baseline.max(1),
            min_count: self.min_count,
            rating_scale: self.rating_scale.clone(),
            names,
            ..ReportConfig::default()
        };
        let weights = if self.tier_weights.is_empty() {
            None
        } else {
            Some(parse_tier_weights(&self.tier_weights)?)
        };
        Ok((cfg, weights))
    }
}

pub(crate) fn cmd_report(a: ReportArgs) -> Result<()> {
    let run = RunDir::new(&a.run);
    let (cfg, weights) = a.settings.config()?;
    let alerts = a.delivery.options()?;
    let r = report_run(&run, weights, cfg)?;
    println!(
        "{} comments, {} to {}",
        r.comments,
        r.from.as_deref().unwrap_or("?"),
        r.to.as_deref().unwrap_or("?")
    );
    if let Some(rt) = &r.rating {
        println!(
            "{} {:.1} over {} rated comments",
            rt.scale.to_uppercase(),
            rt.value,
            rt.n
        );
    }
    println!("top pain points by priority:");
    for g in r.pain_points.iter().take(5) {
        println!(
            "  {:<22} {:>4} comments, {:>3.0}% negative, priority {:.1}",
            g.name,
            g.volume,
            g.negative_share * 100.0,
            g.priority
        );
    }
    for al in r.alerts.iter().take(10) {
        println!(
            "ALERT {} {} {:?}: {} {:.2} (baseline {:.2} ± {:.2}, z {:.1})",
            al.period,
            al.kind,
            al.name,
            al.metric,
            al.value,
            al.baseline_mean,
            al.baseline_sd,
            al.z
        );
    }
    println!(
        "wrote {} and {}",
        run.report_json().display(),
        run.report_html().display()
    );
    match alerts {
        Some(opts) => super::alerts::print(&vocmine::alerts::deliver(&run, &r, &opts)?),
        None => Ok(()),
    }
}
