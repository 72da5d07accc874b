//! The report: pain points and topics ranked, trends and spikes, rating metrics (CSAT, NPS,
//! CES) with each topic's impact, as `report.json` and a self-contained `report.html`.
//!
//! Ranking: a group's *priority* is the sum of its comments' severities (negativity intensity
//! x customer-tier weight, see [`crate::severity`]), so volume, negativity and tier all
//! count. Periods are ISO weeks (Monday, UTC) or days. A spike is a period whose volume or
//! negative share is more than `sigma` standard deviations above the mean of the `baseline`
//! periods before it (and at least `min_count` comments). One event is alerted once: spikes of
//! the same period whose comments overlap by half or more (a pain point and the topics made of
//! the same complaints, or a group's volume and negative share) become one alert, the others
//! listed under it as `related`.
//!
//! Impact is Thematic's: the overall rating metric minus the metric over the comments outside
//! the group (what the score would be without the theme).

mod aspects;
mod export;
mod font;
mod html;
mod journey;
mod journey_page;
mod names;
mod notes;
mod periods;
mod spikes;
mod strings;
mod tables;
mod text;

pub use export::{report_tables, write_tables, Table, Value};
pub use font::{font_face, FONT_FAMILY};
pub use html::to_html;
pub use journey::{Candidate, Cell, NamedCount, Segments, StageRating, StageStats};
pub use names::{Names, DEFAULT_STAGES};
pub use periods::PeriodChange;
pub use spikes::{Alert, Related};

use crate::error::{Error, Result};
use crate::record::{civil_date, parse_time, Scored};
use crate::severity::{severity, tier_weight};
use crate::workspace::{write_atomic, RunDir, TopicTag};
use periods::{mean_sd, period_start};
use serde::Serialize;
use spikes::fold_alerts;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Report settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// Period length in days (7: ISO weeks starting Monday; 1: days).
    pub period_days: i64,
    /// Standard deviations above the trailing baseline that make a spike.
    pub sigma: f64,
    /// Periods in the trailing baseline.
    pub baseline: usize,
    /// Fewest comments in a period for it to be flagged.
    pub min_count: u64,
    /// Tier weights for severity.
    pub tier_weights: BTreeMap<String, f64>,
    /// Rating scale: `csat` (1-5), `nps` (0-10), `ces` (1-7), or `auto` (max > 5: nps).
    pub rating_scale: String,
    /// Category names in the report's language and the journey-stage order.
    pub names: Names,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            period_days: 7,
            sigma: 2.0,
            baseline: 4,
            min_count: 3,
            tier_weights: crate::severity::default_tier_weights(),
            rating_scale: "auto".into(),
            names: Names::ids("en"),
        }
    }
}

/// Figures of one group (a pain point or a topic).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// Pain-point label or topic id.
    pub key: String,
    /// Readable name (topic label).
    pub name: String,
    /// Comments.
    pub volume: u64,
    /// Share of them with negative sentiment.
    pub negative_share: f64,
    /// Mean sentiment score (-1..1).
    pub mean_sentiment: f64,
    /// Sum of severities (the ranking key).
    pub priority: f64,
    /// Mean severity.
    pub mean_severity: f64,
    /// Comments from the highest-weighted tiers (weight > 1).
    pub weighted_tier_comments: u64,
    /// Volume per period (period start date -> count).
    pub by_period: BTreeMap<String, u64>,
    /// Last period's volume against the mean of the baseline periods before it (ratio; null
    /// when there is no baseline).
    pub trend: Option<f64>,
    /// The last period against the one before it (week over week with weekly periods);
    /// null with fewer than two periods.
    pub change: Option<PeriodChange>,
    /// Rating metric over the group's rated comments, and the overall metric without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingImpact>,
    /// Up to three example comments (most severe first).
    pub examples: Vec<Example>,
}

/// An example comment as the report quotes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// Comment id.
    pub id: String,
    /// The text as scored (personal data masked), cut to [`EXAMPLE_CHARS`] characters.
    pub text: String,
    /// Sentiment label.
    pub sentiment: String,
}

pub use aspects::AspectStats;

/// Longest quoted example, in characters (longer texts end in `…`).
pub const EXAMPLE_CHARS: usize = 140;

fn example(it: &Item) -> Example {
    Example::of(it.s)
}

impl Example {
    /// The example the report quotes for a scored comment: its id, its text as scored (cut to
    /// [`EXAMPLE_CHARS`]) and its sentiment label.
    pub fn of(s: &Scored) -> Example {
        let t = s.text.trim();
        let text = if t.chars().count() > EXAMPLE_CHARS {
            t.chars().take(EXAMPLE_CHARS - 1).collect::<String>() + "…"
        } else {
            t.to_string()
        };
        Example {
            id: s.id.clone(),
            text,
            sentiment: s
                .tasks
                .get("sentiment")
                .map_or_else(String::new, |t| t.label.clone()),
        }
    }
}

/// A rating metric for a group and its impact on the overall figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatingImpact {
    /// The metric over the group's rated comments.
    pub value: f64,
    /// Rated comments in the group.
    pub n: u64,
    /// Overall metric minus the metric without this group's comments.
    pub impact: f64,
}

/// Overall rating metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatingSummary {
    /// `csat`, `nps` or `ces`.
    pub scale: String,
    /// CSAT: % of 4-5; NPS: % 9-10 minus % 0-6; CES: mean.
    pub value: f64,
    /// Rated comments.
    pub n: u64,
}

/// Sentiment of one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodSentiment {
    /// Period start date.
    pub period: String,
    /// Comments.
    pub count: u64,
    /// Negative share.
    pub negative_share: f64,
    /// Mean sentiment score.
    pub mean_sentiment: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Comments covered.
    pub comments: u64,
    /// Comments with a readable time.
    pub timed: u64,
    /// First and last date.
    pub from: Option<String>,
    /// Last date.
    pub to: Option<String>,
    /// Period length in days.
    pub period_days: i64,
    /// Sentiment label counts.
    pub sentiment: BTreeMap<String, u64>,
    /// Overall rating metric, when comments carry ratings.
    pub rating: Option<RatingSummary>,
    /// Pain points (without `none`/`unknown`), by priority.
    pub pain_points: Vec<GroupStats>,
    /// Topics (assigned ones), by priority.
    pub topics: Vec<GroupStats>,
    /// Themes that group two or more topics, by priority (key: the theme id).
    pub themes: Vec<GroupStats>,
    /// Sentiment over time.
    pub timeline: Vec<PeriodSentiment>,
    /// Spikes, newest first; one per event.
    pub alerts: Vec<Alert>,
    /// Language of the names (`en` or `zh`).
    pub lang: String,
    /// The journey map: stages in journey order.
    pub journey: Vec<StageStats>,
    /// Per-segment counts for the page's journey filters (not in report.json).
    #[serde(skip)]
    pub segments: Segments,
    /// Aspects by negative mentions, when the run was scored with `--aspects`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aspects: Vec<AspectStats>,
}

pub(crate) fn rating_metric(scale: &str, ratings: &[f64]) -> Option<f64> {
    if ratings.is_empty() {
        return None;
    }
    let n = ratings.len() as f64;
    Some(match scale {
        "nps" => {
            let pro = ratings.iter().filter(|&&r| r >= 9.0).count() as f64;
            let det = ratings.iter().filter(|&&r| r <= 6.0).count() as f64;
            100.0 * (pro - det) / n
        }
        "ces" => ratings.iter().sum::<f64>() / n,
        _ => 100.0 * ratings.iter().filter(|&&r| r >= 4.0).count() as f64 / n,
    })
}

struct Item<'a> {
    s: &'a Scored,
    period: Option<String>,
    negative: bool,
    score: f64,
    severity: f64,
}

/// Builds the report of the run folder `run` (its scored comments and, when `topics` has run,
/// their topics) and writes `RUN/report.json`, `RUN/report.html`, and its tables as
/// `RUN/report_tables/TABLE.csv` and `RUN/report.xlsx` ([`write_tables`]). `tier_weights: None`
/// takes the run's saved ones (`score --tier-weight`).
pub fn report_run(
    run: &RunDir,
    tier_weights: Option<BTreeMap<String, f64>>,
    cfg: ReportConfig,
) -> Result<Report> {
    let r = build_run(run, tier_weights, cfg)?;
    let json = serde_json::to_string_pretty(&r)? + "\n";
    write_atomic(&run.report_json(), json.as_bytes())?;
    write_tables(run, &r)?;
    write_atomic(&run.report_html(), to_html(&r).as_bytes())?;
    Ok(r)
}

/// The report of the run folder `run`, as [`report_run`] builds it, without writing it
/// (`vocmine alerts` uses it).
pub fn build_run(
    run: &RunDir,
    tier_weights: Option<BTreeMap<String, f64>>,
    mut cfg: ReportConfig,
) -> Result<Report> {
    let scored = run.read_scored()?;
    if scored.is_empty() {
        return Err(Error::input(run.scored(), "no comments to report on"));
    }
    cfg.tier_weights = match tier_weights {
        Some(w) => w,
        None => run.settings()?.tier_weights,
    };
    let topics = run.read_assignments()?;
    Ok(build(&scored, &topics, &cfg))
}

/// Builds the report from scored comments and their topics.
pub fn build(scored: &[Scored], topics: &HashMap<String, TopicTag>, cfg: &ReportConfig) -> Report {
    let items: Vec<Item> = scored
        .iter()
        .map(|s| {
            let sent = s.tasks.get("sentiment");
            Item {
                s,
                period: s
                    .time
                    .as_deref()
                    .and_then(parse_time)
                    .map(|t| period_start(t, cfg.period_days)),
                negative: sent.is_some_and(|t| t.label == "negative"),
                score: sent.and_then(|t| t.score).map_or(0.0, f64::from),
                severity: severity(s, &cfg.tier_weights),
            }
        })
        .collect();
    let mut periods: Vec<String> = items.iter().filter_map(|i| i.period.clone()).collect();
    periods.sort();
    periods.dedup();
    let ratings: Vec<f64> = items.iter().filter_map(|i| i.s.rating).collect();
    let scale = match cfg.rating_scale.as_str() {
        "auto" if ratings.iter().any(|&r| r > 5.0) => "nps".to_string(),
        "auto" => "csat".to_string(),
        s => s.to_string(),
    };
    let overall = rating_metric(&scale, &ratings);

    let group = |kind: &str,
                 key_of: &dyn Fn(&Item) -> Option<(String, String)>|
     -> (Vec<GroupStats>, Vec<Alert>) {
        let mut groups: BTreeMap<String, (String, Vec<&Item>)> = BTreeMap::new();
        for it in &items {
            if let Some((k, name)) = key_of(it) {
                groups
                    .entry(k)
                    .or_insert_with(|| (name, Vec::new()))
                    .1
                    .push(it);
            }
        }
        let mut stats = Vec::new();
        let mut alerts = Vec::new();
        for (key, (name, members)) in groups {
            let n = members.len() as f64;
            let mut by_period: BTreeMap<String, u64> =
                periods.iter().map(|p| (p.clone(), 0)).collect();
            let mut neg_by_period: BTreeMap<String, u64> = BTreeMap::new();
            let mut ids_by_period: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            for m in &members {
                if let Some(p) = &m.period {
                    ids_by_period
                        .entry(p.as_str())
                        .or_default()
                        .insert(m.s.id.clone());
                    *by_period.entry(p.clone()).or_default() += 1;
                    if m.negative {
                        *neg_by_period.entry(p.clone()).or_default() += 1;
                    }
                }
            }
            let vols: Vec<f64> = by_period.values().map(|&v| v as f64).collect();
            let trend = (vols.len() > cfg.baseline)
                .then(|| {
                    let last = vols[vols.len() - 1];
                    let (m, _) = mean_sd(&vols[vols.len() - 1 - cfg.baseline..vols.len() - 1]);
                    (m > 0.0).then(|| last / m)
                })
                .flatten();
            // Spikes: every period with a full baseline.
            let keys: Vec<&String> = by_period.keys().collect();
            for i in cfg.baseline..keys.len() {
                let v = vols[i];
                let (m, sd) = mean_sd(&vols[i - cfg.baseline..i]);
                // Counts are at least Poisson-noisy: sd no smaller than sqrt(mean), nor 1.
                let sd_eff = sd.max(m.sqrt()).max(1.0);
                let z = (v - m) / sd_eff;
                if v as u64 >= cfg.min_count && z > cfg.sigma {
                    alerts.push(Alert {
                        kind: kind.into(),
                        key: key.clone(),
                        name: name.clone(),
                        period: keys[i].clone(),
                        metric: "volume".into(),
                        value: v,
                        baseline_mean: m,
                        baseline_sd: sd,
                        z,
                        related: Vec::new(),
                        related_spikes: Vec::new(),
                        ids: ids_by_period
                            .get(keys[i].as_str())
                            .cloned()
                            .unwrap_or_default(),
                    });
                }
                let share = |j: usize| {
                    let k = keys[j];
                    let total = by_period[k] as f64;
                    (total > 0.0).then(|| neg_by_period.get(k).copied().unwrap_or(0) as f64 / total)
                };
                if let Some(cur) = share(i) {
                    let base: Vec<f64> = (i - cfg.baseline..i).filter_map(share).collect();
                    if base.len() >= 2 && v as u64 >= cfg.min_count {
                        let (m, sd) = mean_sd(&base);
                        let z = (cur - m) / sd.max(0.05);
                        if z > cfg.sigma {
                            alerts.push(Alert {
                                kind: kind.into(),
                                key: key.clone(),
                                name: name.clone(),
                                period: keys[i].clone(),
                                metric: "negative_share".into(),
                                value: cur,
                                baseline_mean: m,
                                baseline_sd: sd,
                                z,
                                related: Vec::new(),
                                related_spikes: Vec::new(),
                                ids: ids_by_period
                                    .get(keys[i].as_str())
                                    .cloned()
                                    .unwrap_or_default(),
                            });
                        }
                    }
                }
            }
            let group_ratings: Vec<f64> = members.iter().filter_map(|m| m.s.rating).collect();
            let rating = rating_metric(&scale, &group_ratings).map(|value| {
                let ids: std::collections::HashSet<&str> =
                    members.iter().map(|m| m.s.id.as_str()).collect();
                let rest: Vec<f64> = items
                    .iter()
                    .filter(|i| !ids.contains(i.s.id.as_str()))
                    .filter_map(|i| i.s.rating)
                    .collect();
                let without = rating_metric(&scale, &rest).unwrap_or(0.0);
                RatingImpact {
                    value,
                    n: group_ratings.len() as u64,
                    impact: overall.unwrap_or(0.0) - without,
                }
            });
            let mut ex: Vec<&&Item> = members.iter().collect();
            ex.sort_by(|a, b| b.severity.total_cmp(&a.severity).then(a.s.id.cmp(&b.s.id)));
            let change = PeriodChange::of(&by_period.values().copied().collect::<Vec<_>>());
            stats.push(GroupStats {
                key,
                name,
                volume: members.len() as u64,
                negative_share: members.iter().filter(|m| m.negative).count() as f64 / n,
                mean_sentiment: members.iter().map(|m| m.score).sum::<f64>() / n,
                priority: members.iter().map(|m| m.severity).sum(),
                mean_severity: members.iter().map(|m| m.severity).sum::<f64>() / n,
                weighted_tier_comments: members
                    .iter()
                    .filter(|m| tier_weight(m.s.tier.as_deref(), &cfg.tier_weights) > 1.0)
                    .count() as u64,
                by_period,
                trend,
                change,
                rating,
                examples: ex.iter().take(3).map(|m| example(m)).collect(),
            });
        }
        stats.sort_by(|a, b| b.priority.total_cmp(&a.priority).then(a.key.cmp(&b.key)));
        (stats, alerts)
    };
    let (pain_points, mut alerts) = group("pain_point", &|it: &Item| {
        let l = &it.s.tasks.get("pain_point")?.label;
        (l != "none" && l != "unknown").then(|| (l.clone(), cfg.names.name("pain_point", l)))
    });
    let (topic_stats, topic_alerts) = group("topic", &|it: &Item| {
        let t = topics.get(&it.s.id).filter(|t| t.topic >= 0)?;
        Some((t.topic.to_string(), t.label.clone()))
    });
    alerts.extend(topic_alerts);
    // Themes: only those that group two or more of the run's topics (a one-topic theme is its
    // topic); their spikes are the topics' own, so they raise no alerts of their own.
    let mut theme_topics: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for t in topics.values().filter(|t| t.topic >= 0) {
        if let Some((id, _)) = &t.theme {
            theme_topics.entry(*id).or_default().insert(t.topic);
        }
    }
    let (theme_stats, _) = group("theme", &|it: &Item| {
        let t = topics.get(&it.s.id).filter(|t| t.topic >= 0)?;
        let (id, label) = t.theme.as_ref()?;
        let members = theme_topics.get(id).filter(|m| m.len() > 1)?;
        let ids: Vec<String> = members.iter().map(i64::to_string).collect();
        Some((
            id.to_string(),
            strings::theme_name(strings::Words::new(&cfg.names.lang), label, &ids),
        ))
    });
    let alerts = fold_alerts(alerts);
    let (journey, segments) = journey::build(&items, &cfg.names, &scale, &periods);
    let timeline = periods
        .iter()
        .map(|p| {
            let its: Vec<&Item> = items
                .iter()
                .filter(|i| i.period.as_ref() == Some(p))
                .collect();
            let n = its.len().max(1) as f64;
            PeriodSentiment {
                period: p.clone(),
                count: its.len() as u64,
                negative_share: its.iter().filter(|i| i.negative).count() as f64 / n,
                mean_sentiment: its.iter().map(|i| i.score).sum::<f64>() / n,
            }
        })
        .collect();
    let mut sentiment = BTreeMap::new();
    for it in &items {
        if let Some(t) = it.s.tasks.get("sentiment") {
            *sentiment.entry(t.label.clone()).or_default() += 1;
        }
    }
    let mut dates: Vec<i64> = items
        .iter()
        .filter_map(|i| i.s.time.as_deref().and_then(parse_time))
        .collect();
    dates.sort_unstable();
    Report {
        comments: items.len() as u64,
        timed: dates.len() as u64,
        from: dates.first().map(|&d| civil_date(d)),
        to: dates.last().map(|&d| civil_date(d)),
        period_days: cfg.period_days,
        sentiment,
        rating: overall.map(|value| RatingSummary {
            scale,
            value,
            n: ratings.len() as u64,
        }),
        pain_points,
        topics: topic_stats,
        themes: theme_stats,
        timeline,
        alerts,
        lang: cfg.names.lang.clone(),
        journey,
        segments,
        aspects: aspects::build(scored, &cfg.names),
    }
}

#[cfg(test)]
mod tests;
