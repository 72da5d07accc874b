//! Alerts after `/score` batches (`vocmine serve --score --index RUN --webhook URL`): the
//! served comments are records of the run (`RUN/served.jsonl`), so the run's report sees them;
//! an alerts thread rebuilds the report (in memory, nothing written) and delivers its alerts
//! ([`crate::alerts::alerts_run`]) once served records were made durable since the last
//! evaluation, at most once every `every`: off the request path, debounced. The delivery log
//! makes every evaluation idempotent (an event is sent once), across restarts too.
//!
//! The thread also evaluates once at start (what a previous server left pending, or a run
//! never alerted), and again after `retry_pending` while a delivery is pending. On shutdown
//! it finishes the evaluation in progress; then, once the queue has scored and synced what
//! was queued, one last evaluation delivers what the last batches raised with a single try
//! per webhook, so the exit is not held by backoff: what fails stays pending in the delivery
//! log for the next evaluation. Payloads carry masked examples only (see [`crate::alerts`]).

use super::metrics::Metrics;
use crate::alerts::{alerts_run, deliveries_text, AlertOptions, Delivery, Outcome};
use crate::report::ReportConfig;
use crate::workspace::RunDir;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How `serve` delivers the run's alerts after `/score` batches.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Where and how to deliver (`--webhook`, `--routes`, retries): those of `vocmine alerts`.
    pub options: AlertOptions,
    /// The report's spike settings.
    pub report: ReportConfig,
    /// Tier weights of the report; `None`: the run's saved ones.
    pub tier_weights: Option<BTreeMap<String, f64>>,
    /// At most one evaluation this often.
    pub every: Duration,
    /// While a delivery is pending, evaluate again after this long even with no new batch.
    pub retry_pending: Duration,
}

impl AlertConfig {
    /// Delivery to `options` with the default report settings, evaluated at most every 5 s.
    pub fn new(options: AlertOptions) -> AlertConfig {
        AlertConfig {
            options,
            report: ReportConfig::default(),
            tier_weights: None,
            every: Duration::from_secs(5),
            retry_pending: Duration::from_secs(30),
        }
    }
}

/// What an evaluation needs; shared by the thread and the last evaluation.
struct Evaluator {
    run: RunDir,
    cfg: AlertConfig,
    metrics: Arc<Metrics>,
}

impl Evaluator {
    /// Whether the run has records to report on yet.
    fn has_records(&self) -> bool {
        self.run.scored_records().exists()
            || std::fs::metadata(self.run.served()).is_ok_and(|m| m.len() > 0)
    }

    /// Builds the report and delivers its alerts (nothing while the run has no records);
    /// returns whether a delivery is pending (or the evaluation failed, so it is to be tried
    /// again).
    fn evaluate(&self, options: &AlertOptions) -> bool {
        if !self.has_records() {
            return false;
        }
        let c = &self.cfg;
        let res = alerts_run(&self.run, c.tier_weights.clone(), c.report.clone(), options);
        self.metrics.alert_evaluation();
        match res {
            Ok(ds) => {
                let count = |f: fn(&Outcome) -> bool| ds.iter().filter(|d| f(&d.outcome)).count();
                let sent = count(|o| matches!(o, Outcome::Sent { .. } | Outcome::Queued));
                let failed =
                    count(|o| matches!(o, Outcome::Pending { .. } | Outcome::Rejected { .. }));
                self.metrics.alerts(sent as u64, failed as u64);
                log_deliveries(&ds);
                ds.iter()
                    .any(|d| matches!(d.outcome, Outcome::Pending { .. }))
            }
            Err(e) => {
                log(&format!("alerts: {e}"));
                true
            }
        }
    }
}

/// Writes `line` to stderr; a closed stderr is no reason to stop (nor to panic).
fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The lines of what this evaluation did (events already delivered are not repeated).
fn log_deliveries(ds: &[Delivery]) {
    let done: Vec<Delivery> = ds
        .iter()
        .filter(|d| !matches!(d.outcome, Outcome::AlreadyDone(_)))
        .cloned()
        .collect();
    if !done.is_empty() {
        let t = deliveries_text(&done).text;
        log(&format!("alerts after /score:\n{}", t.trim_end()));
    }
}

/// The alerts thread of a server.
pub(super) struct Alerter {
    eval: Arc<Evaluator>,
    durable: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, bool)>>,
}

impl Alerter {
    /// Starts the thread for `run`; `durable` counts the batches of served records synced to
    /// disk (an evaluation follows a change). Fails when there is nowhere to deliver to.
    pub(super) fn start(
        run: RunDir,
        cfg: AlertConfig,
        durable: Arc<AtomicU64>,
        metrics: Arc<Metrics>,
    ) -> Result<Alerter> {
        cfg.options.load_routes()?;
        let eval = Arc::new(Evaluator { run, cfg, metrics });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (eval, durable, stop) = (eval.clone(), durable.clone(), stop.clone());
            std::thread::Builder::new()
                .name("vocmine-alerts".into())
                .spawn(move || alert_loop(&eval, &durable, &stop))
                .map_err(|e| Error::Invalid(format!("cannot start the alerts thread: {e}")))?
        };
        Ok(Alerter {
            eval,
            durable,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (after the evaluation in progress) and, when batches were made
    /// durable since its last evaluation or a delivery is pending, evaluates once more with
    /// one try per webhook. Call it after the queue has scored and synced what was queued.
    pub(super) fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let (seen, pending) = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(state)) => state,
            _ => (u64::MAX, true),
        };
        if seen != self.durable.load(Ordering::SeqCst) || pending {
            let mut once = self.eval.cfg.options.clone();
            once.retry.attempts = 1;
            self.eval.evaluate(&once);
        }
    }
}

/// The thread: evaluates at start when the run has records, then after each change of
/// `durable` (at most every `every`) and while deliveries are pending; returns the last
/// `durable` it evaluated and whether a delivery was pending.
fn alert_loop(eval: &Evaluator, durable: &AtomicU64, stop: &AtomicBool) -> (u64, bool) {
    let c = &eval.cfg;
    let tick = Duration::from_millis(50).min(c.every);
    let mut seen = if eval.has_records() {
        u64::MAX
    } else {
        durable.load(Ordering::SeqCst)
    };
    let mut pending = false;
    let mut last: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let now = durable.load(Ordering::SeqCst);
        let since = last.map_or(Duration::MAX, |t| t.elapsed());
        let due = (now != seen && since >= c.every) || (pending && since >= c.retry_pending);
        if due {
            last = Some(Instant::now());
            pending = eval.evaluate(&c.options);
            seen = now;
        } else {
            std::thread::sleep(tick);
        }
    }
    (seen, pending)
}
