//! Alerts that reach people: the report's spikes, one event each, sent as JSON to a webhook or
//! appended to a queue file, chosen by routing rules, with retries and a delivery log.
//!
//! - **Events** are the report's alerts ([`crate::report::Report::alerts`]: a spike of a pain
//!   point and of the topics made of the same comments is one alert). An event's id is a hash
//!   of its kind, key, metric and period ([`event_id`]), so the same spike has the same id on
//!   every run.
//! - **Payload** ([`Payload`]): the figures, the related spikes, the values the event's
//!   comments carry, 3 example comments (id and text with personal data masked, masked again
//!   here so a run scored with `--no-mask` sends none either), the run folder's name and the
//!   model version.
//! - **Routes** ([`Routes`], `routes.rs`): the first matching rule decides; else the default
//!   (`--webhook`).
//! - **Delivery**: `POST` over plain HTTP (`http.rs`) with an `Idempotency-Key` header (the
//!   event id), up to `attempts` tries with exponential backoff; 2xx is delivered, 408, 429,
//!   5xx, timeouts and connection errors are retried, other answers are a permanent refusal.
//!   Queues are files of the run folder (`RUN/alerts/queue/NAME.jsonl`).
//! - **The delivery log** (`RUN/alerts/delivered.jsonl`, `log.rs`) is appended and fsynced
//!   after every delivery: a rerun skips what a destination has (delivered, queued or refused
//!   for good) and retries what failed, so nothing is sent twice or lost. A crash between a
//!   receiver's 2xx and the log's line sends that one event again on the next run (with the
//!   same idempotency key); a queue append is checked against the queue file, so it is never
//!   doubled. One delivery runs at a time per run folder (`RUN/alerts/lock`).

mod http;
mod log;
mod routes;
mod text;

pub use log::{DeliveryLog, Entry, Status};
pub use routes::{check_webhook, Attributes, Destination, MatchMode, Routes, Rule, DIMENSIONS};
pub use text::{deliveries_text, DeliveriesText};

use crate::error::{Error, Result};
use crate::record::Scored;
use crate::report::{build_run, Example, Report, ReportConfig};
use crate::severity::severity;
use crate::text::normalise::mask_pii;
use crate::workspace::RunDir;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// How often and how patiently a webhook is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// Wait after the first failed try; doubled after each further one.
    pub backoff: Duration,
    /// Longest wait between tries.
    pub max_backoff: Duration,
    /// Timeout of each step of a try (connect, send, read the answer's status).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based): `backoff x 2^(attempt-1)`, at most
    /// `max_backoff`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What to deliver to and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOptions {
    /// The default route (`--webhook URL`), replacing a routes file's `[default]`.
    pub webhook: Option<String>,
    /// The routing rules (`--routes FILE`).
    pub routes: Option<PathBuf>,
    /// Say what would be sent; send, queue and log nothing.
    pub dry_run: bool,
    /// Tries, backoff and timeouts of webhooks.
    pub retry: RetryPolicy,
}

impl AlertOptions {
    /// The routing rules with `--webhook` as the default route; an error when there is
    /// nowhere to deliver to.
    pub fn load_routes(&self) -> Result<Routes> {
        let mut routes = match &self.routes {
            Some(p) => Routes::load(p)?,
            None => Routes::default(),
        };
        if let Some(url) = &self.webhook {
            check_webhook(url).map_err(|m| Error::Invalid(format!("--webhook: {m}")))?;
            routes.default = Some(Destination::Webhook(url.clone()));
        }
        if routes.rules.is_empty() && routes.default.is_none() {
            return Err(Error::Invalid(
                "nowhere to deliver alerts to: give --webhook URL or --routes FILE".into(),
            ));
        }
        Ok(routes)
    }
}

/// The JSON an event is delivered as (webhook body, queue line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// The event id (also the `Idempotency-Key` header).
    pub event: String,
    /// `pain_point` or `topic`.
    pub kind: String,
    /// Pain-point label or topic id.
    pub key: String,
    /// Readable name.
    pub name: String,
    /// `volume` or `negative_share`.
    pub metric: String,
    /// Period start date.
    pub period: String,
    /// The period's value of the metric.
    pub value: f64,
    /// Mean of the baseline periods.
    pub baseline_mean: f64,
    /// Standard deviation of the baseline periods.
    pub baseline_sd: f64,
    /// How far above the baseline (standard deviations).
    pub z: f64,
    /// Spikes folded into this event (`kind name (metric)`).
    pub related: Vec<String>,
    /// Comments of the event (the group's comments in the period).
    pub comments: usize,
    /// The value most of the event's comments carry, per routing field.
    pub attributes: BTreeMap<String, String>,
    /// Up to 3 of the event's comments, most severe first, personal data masked.
    pub examples: Vec<Example>,
    /// The run folder's name.
    pub run: String,
    /// The model version that scored the event's comments (the most common one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// An event: its payload and the values its comments carry (what routes match on).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What is delivered.
    pub payload: Payload,
    /// Field -> value -> comments, for [`Routes::route`].
    pub attributes: Attributes,
}

/// An event's id: the first 16 hex digits of SHA-256 over kind, key, metric and period.
pub fn event_id(kind: &str, key: &str, metric: &str, period: &str) -> String {
    hex16(&format!("vocmine-alert\0{kind}\0{key}\0{metric}\0{period}"))
}

fn hex16(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn field_value(s: &Scored, field: &str) -> Option<String> {
    let v = match field {
        "tier" => s.tier.clone(),
        "channel" => s.channel.clone(),
        task => s.tasks.get(task).map(|t| t.label.clone()),
    }?;
    let v = v.trim().to_lowercase();
    (!v.is_empty()).then_some(v)
}

/// The events of `report`, a report of `run`: each alert with its comments read back from the
/// run's scored records.
pub fn events(run: &RunDir, report: &Report) -> Result<Vec<Event>> {
    let wanted: HashSet<&str> = report
        .alerts
        .iter()
        .flat_map(|a| a.ids().iter().map(String::as_str))
        .collect();
    let mut by_id: HashMap<String, Scored> = HashMap::new();
    if !wanted.is_empty() {
        run.each_scored(|s| {
            if wanted.contains(s.id.as_str()) {
                by_id.insert(s.id.clone(), s);
            }
        })?;
    }
    let weights = run.settings()?.tier_weights;
    let run_name = run.path().file_name().map_or_else(
        || run.path().display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut out = Vec::new();
    for a in &report.alerts {
        let comments: Vec<&Scored> = a.ids().iter().filter_map(|id| by_id.get(id)).collect();
        let mut attributes = Attributes::new();
        for field in DIMENSIONS {
            let counts = attributes.entry(field.to_string()).or_default();
            for s in &comments {
                if let Some(v) = field_value(s, field) {
                    *counts.entry(v).or_default() += 1;
                }
            }
        }
        let majority = |counts: &BTreeMap<String, usize>| {
            let top = counts.values().copied().max()?;
            counts
                .iter()
                .find(|(_, &n)| n == top)
                .map(|(v, _)| v.clone())
        };
        let mut ranked = comments.clone();
        ranked.sort_by(|x, y| {
            severity(y, &weights)
                .total_cmp(&severity(x, &weights))
                .then(x.id.cmp(&y.id))
        });
        let examples = ranked
            .iter()
            .take(3)
            .map(|s| {
                // Masked before the cut, so no half of a phone number is quoted.
                let mut m = (*s).clone();
                m.text = mask_pii(&s.text).0;
                Example::of(&m)
            })
            .collect();
        let mut models: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &comments {
            if !s.model.is_empty() {
                *models.entry(s.model.as_str()).or_default() += 1;
            }
        }
        let model = models
            .iter()
            .max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0)))
            .map(|(m, _)| m.to_string());
        out.push(Event {
            payload: Payload {
                event: event_id(&a.kind, &a.key, &a.metric, &a.period),
                kind: a.kind.clone(),
                key: a.key.clone(),
                name: a.name.clone(),
                metric: a.metric.clone(),
                period: a.period.clone(),
                value: a.value,
                baseline_mean: a.baseline_mean,
                baseline_sd: a.baseline_sd,
                z: a.z,
                related: a.related.clone(),
                comments: comments.len(),
                attributes: attributes
                    .iter()
                    .filter_map(|(f, c)| Some((f.clone(), majority(c)?)))
                    .collect(),
                examples,
                run: run_name.clone(),
                model,
            },
            attributes,
        });
    }
    Ok(out)
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The webhook answered 2xx (after `attempts` tries).
    Sent {
        /// Tries it took.
        attempts: u32,
        /// The status.
        http: u16,
    },
    /// Appended to the queue file.
    Queued,
    /// The log says this destination already has it (delivered, queued or refused for good).
    AlreadyDone(Status),
    /// The webhook refused it for good (logged, not retried).
    Rejected {
        /// The status.
        http: u16,
    },
    /// Every try failed: pending, retried on the next run.
    Pending {
        /// Tries made.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// No rule matched and there is no default route.
    NoRoute,
    /// `--dry-run`: would be delivered.
    DryRun,
}

/// One event's delivery, as reported to the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The payload (sent, queued or not).
    pub payload: Payload,
    /// The rule that routed it (`default` for the default route); `None`: no route.
    pub route: Option<String>,
    /// The destination as shown: a webhook's origin (no path) or the queue file.
    pub target: Option<String>,
    /// What happened.
    pub outcome: Outcome,
}

/// Builds the report of `run` (nothing written) and delivers its alerts ([`deliver`]).
pub fn alerts_run(
    run: &RunDir,
    tier_weights: Option<BTreeMap<String, f64>>,
    cfg: ReportConfig,
    opts: &AlertOptions,
) -> Result<Vec<Delivery>> {
    let routes = opts.load_routes()?;
    let report = build_run(run, tier_weights, cfg)?;
    deliver_with(run, &report, &routes, opts)
}

/// Delivers the alerts of `report`, a report of `run`, as `opts` says: each event to its
/// route, skipping what the delivery log says is done, logging each outcome.
pub fn deliver(run: &RunDir, report: &Report, opts: &AlertOptions) -> Result<Vec<Delivery>> {
    let routes = opts.load_routes()?;
    deliver_with(run, report, &routes, opts)
}

fn deliver_with(
    run: &RunDir,
    report: &Report,
    routes: &Routes,
    opts: &AlertOptions,
) -> Result<Vec<Delivery>> {
    let events = events(run, report)?;
    let (_lock, mut log) = if opts.dry_run {
        (None, DeliveryLog::open(&run.delivery_log(), false)?)
    } else {
        let dir = run.alerts_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = take_lock(run)?;
        (Some(lock), DeliveryLog::open(&run.delivery_log(), true)?)
    };
    let mut out = Vec::new();
    for ev in events {
        let p = ev.payload;
        let Some((rule, dest)) = routes.route(&ev.attributes) else {
            out.push(Delivery {
                payload: p,
                route: None,
                target: None,
                outcome: Outcome::NoRoute,
            });
            continue;
        };
        let (dest_id, target) = match dest {
            Destination::Webhook(u) => (
                hex16(&format!("webhook\0{u}")),
                http::Url::parse(u).map_or_else(|_| u.clone(), |u| u.origin()),
            ),
            Destination::Queue(q) => (
                hex16(&format!("queue\0{q}")),
                run.alert_queue(q).display().to_string(),
            ),
        };
        let outcome = match log.get(&p.event, &dest_id) {
            Some(e) if e.status.is_final() => Outcome::AlreadyDone(e.status),
            _ if opts.dry_run => Outcome::DryRun,
            _ => {
                let body = serde_json::to_string(&p)?;
                let (outcome, entry) = match dest {
                    Destination::Webhook(u) => post(u, &body, &p.event, &opts.retry),
                    Destination::Queue(q) => {
                        enqueue(&run.alert_queue(q), &body, &p.event)?;
                        (Outcome::Queued, Attempted::new(Status::Queued, 0))
                    }
                };
                log.append(Entry {
                    event: p.event.clone(),
                    dest: dest_id,
                    target: target.clone(),
                    route: rule.to_string(),
                    status: entry.status,
                    attempts: entry.attempts,
                    http: entry.http,
                    error: entry.error,
                    at: now(),
                    kind: p.kind.clone(),
                    key: p.key.clone(),
                    metric: p.metric.clone(),
                    period: p.period.clone(),
                })?;
                outcome
            }
        };
        out.push(Delivery {
            payload: p,
            route: Some(rule.to_string()),
            target: Some(target),
            outcome,
        });
    }
    Ok(out)
}

fn take_lock(run: &RunDir) -> Result<std::fs::File> {
    let p = run.alerts_lock();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::input(
            &p,
            "another delivery is running for this run folder; wait for it to finish",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&p, e)),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Attempted {
    status: Status,
    attempts: u32,
    http: Option<u16>,
    error: Option<String>,
}

impl Attempted {
    fn new(status: Status, attempts: u32) -> Attempted {
        Attempted {
            status,
            attempts,
            http: None,
            error: None,
        }
    }
}

/// POSTs `body` to `url` with retries: 2xx delivered; 408, 429, 5xx and I/O errors retried
/// after the policy's backoff; anything else refused for good.
fn post(url: &str, body: &str, event: &str, policy: &RetryPolicy) -> (Outcome, Attempted) {
    let parsed = match http::Url::parse(url) {
        Ok(u) => u,
        Err(m) => {
            let mut a = Attempted::new(Status::Failed, 0);
            a.error = Some(m.clone());
            return (
                Outcome::Pending {
                    attempts: 0,
                    error: m,
                },
                a,
            );
        }
    };
    let attempts = policy.attempts.max(1);
    let headers = [("Idempotency-Key", event), ("X-Vocmine-Event", event)];
    let mut last = Attempted::new(Status::Failed, 0);
    for n in 1..=attempts {
        last.attempts = n;
        match http::post_json(&parsed, body.as_bytes(), &headers, policy.timeout) {
            Ok(code) if (200..300).contains(&code) => {
                last.status = Status::Delivered;
                last.http = Some(code);
                last.error = None;
                return (
                    Outcome::Sent {
                        attempts: n,
                        http: code,
                    },
                    last,
                );
            }
            Ok(code) if code == 408 || code == 429 || code >= 500 => {
                last.http = Some(code);
                last.error = Some(format!("HTTP {code}"));
            }
            Ok(code) => {
                last.status = Status::Rejected;
                last.http = Some(code);
                last.error = Some(format!("HTTP {code}: refused for good, not retried"));
                return (Outcome::Rejected { http: code }, last);
            }
            Err(e) => {
                last.http = None;
                last.error = Some(e.to_string());
            }
        }
        if n < attempts {
            std::thread::sleep(policy.delay(n));
        }
    }
    let error = last.error.clone().unwrap_or_default();
    (Outcome::Pending { attempts, error }, last)
}

/// Appends `body` as a line of the queue file unless a line of it already carries `event` (a
/// crash after the append and before the log's line).
/// A last line a crash cut (no newline) is removed first.
fn enqueue(path: &std::path::Path, body: &str, event: &str) -> Result<()> {
    let (lines, f) = log::whole_lines(path, true)?;
    let there = lines.split(|&b| b == b'\n').any(|l| {
        serde_json::from_slice::<serde_json::Value>(l)
            .is_ok_and(|v| v.get("event").and_then(|e| e.as_str()) == Some(event))
    });
    let Some(mut f) = f.filter(|_| !there) else {
        return Ok(());
    };
    f.write_all(format!("{body}\n").as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests;
