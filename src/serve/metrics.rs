//! The server's counters, rendered in the Prometheus text format (`GET /metrics`): requests
//! and latency histograms per endpoint, comments scored and rejected, batch sizes, alerts
//! evaluated, delivered and failed, and the model version.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the batch-size buckets, comments.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A cumulative histogram with fixed bucket bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[derive(Debug, Default)]
struct Requests {
    /// (endpoint, status) -> requests.
    counts: BTreeMap<(String, u16), u64>,
    /// endpoint -> latency histogram.
    latency: BTreeMap<String, Histogram>,
}

/// The server's metrics; shared by every handler.
#[derive(Debug)]
pub struct Metrics {
    model: Option<String>,
    requests: Mutex<Requests>,
    batches: Mutex<Histogram>,
    scored: AtomicU64,
    rejected: AtomicU64,
    indexed: AtomicU64,
    commits: AtomicU64,
    alert_evaluations: AtomicU64,
    alerts_sent: AtomicU64,
    alerts_failed: AtomicU64,
}

/// The endpoint label of a request path: a known route, else `other` (so that random paths
/// cannot grow the label set without bound).
pub fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/score" => "/score",
        "/search" => "/search",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/openapi.json" => "/openapi.json",
        _ => "other",
    }
}

impl Metrics {
    /// Metrics of a server with this model version (`None`: search only).
    pub fn new(model: Option<String>) -> Self {
        Metrics {
            model,
            requests: Mutex::new(Requests::default()),
            batches: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            scored: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            indexed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            alert_evaluations: AtomicU64::new(0),
            alerts_sent: AtomicU64::new(0),
            alerts_failed: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.counts.entry((endpoint.to_string(), status)).or_default() += 1;
        r.latency
            .entry(endpoint.to_string())
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// Counts one encoder batch of `comments` comments.
    pub fn batch(&self, comments: usize) {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(comments as f64);
    }

    /// Counts scored and rejected comments.
    pub fn comments(&self, scored: u64, rejected: u64) {
        self.scored.fetch_add(scored, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// Counts documents upserted into the index and index commits.
    pub fn indexed(&self, docs: u64, commits: u64) {
        self.indexed.fetch_add(docs, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
    }

    /// Counts one evaluation of the run's alerts (`serve --webhook`).
    pub fn alert_evaluation(&self) {
        self.alert_evaluations.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts alerts delivered (sent or queued) and failed (pending or refused).
    pub fn alerts(&self, sent: u64, failed: u64) {
        self.alerts_sent.fetch_add(sent, Ordering::Relaxed);
        self.alerts_failed.fetch_add(failed, Ordering::Relaxed);
    }

    /// Comments scored so far.
    pub fn scored(&self) -> u64 {
        self.scored.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP vocmine_model_info The model version that scores comments.\n");
        out.push_str("# TYPE vocmine_model_info gauge\n");
        let model = self.model.as_deref().unwrap_or("none");
        let _ = writeln!(out, "vocmine_model_info{{version=\"{}\"}} 1", esc(model));
        let r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP vocmine_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE vocmine_http_requests_total counter\n");
        for ((ep, status), n) in &r.counts {
            let _ = writeln!(
                out,
                "vocmine_http_requests_total{{endpoint=\"{ep}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP vocmine_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE vocmine_http_request_duration_seconds histogram\n");
        for (ep, h) in &r.latency {
            h.render(
                &mut out,
                "vocmine_http_request_duration_seconds",
                &format!("endpoint=\"{ep}\""),
            );
        }
        drop(r);
        for (name, help, v) in [
            (
                "vocmine_comments_scored_total",
                "Comments scored.",
                &self.scored,
            ),
            (
                "vocmine_comments_rejected_total",
                "Comments rejected, with a reason, instead of scored.",
                &self.rejected,
            ),
            (
                "vocmine_index_upserts_total",
                "Scored comments upserted into the search index.",
                &self.indexed,
            ),
            (
                "vocmine_index_commits_total",
                "Commits of the search index by the server.",
                &self.commits,
            ),
            (
                "vocmine_alert_evaluations_total",
                "Evaluations of the run's alerts after /score batches.",
                &self.alert_evaluations,
            ),
            (
                "vocmine_alerts_delivered_total",
                "Alerts sent to a webhook or appended to a queue file.",
                &self.alerts_sent,
            ),
            (
                "vocmine_alerts_failed_total",
                "Alert deliveries that failed (pending for the next evaluation, or refused).",
                &self.alerts_failed,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str("# HELP vocmine_batch_size Comments per encoder batch.\n");
        out.push_str("# TYPE vocmine_batch_size histogram\n");
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(&mut out, "vocmine_batch_size", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_requests_counted_per_endpoint_and_status() {
        let m = Metrics::new(Some("m1".into()));
        m.request("/score", 200, 0.003);
        m.request("/score", 200, 0.2);
        m.request("/score", 413, 0.001);
        m.batch(3);
        m.batch(40);
        m.comments(43, 2);
        let t = m.render();
        assert!(t.contains("vocmine_model_info{version=\"m1\"} 1"), "{t}");
        assert!(t.contains("vocmine_http_requests_total{endpoint=\"/score\",status=\"200\"} 2"));
        assert!(t.contains("vocmine_http_requests_total{endpoint=\"/score\",status=\"413\"} 1"));
        assert!(t.contains(
            "vocmine_http_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.005\"} 2"
        ));
        assert!(t.contains(
            "vocmine_http_request_duration_seconds_bucket{endpoint=\"/score\",le=\"0.25\"} 3"
        ));
        assert!(t.contains("vocmine_http_request_duration_seconds_count{endpoint=\"/score\"} 3"));
        assert!(t.contains("vocmine_batch_size_bucket{le=\"4\"} 1"));
        assert!(t.contains("vocmine_batch_size_bucket{le=\"64\"} 2"));
        assert!(t.contains("vocmine_batch_size_sum 43"));
        assert!(t.contains("vocmine_comments_scored_total 43"));
        assert!(t.contains("vocmine_comments_rejected_total 2"));
        assert_eq!(endpoint_label("/etc/passwd"), "other");
    }
}
