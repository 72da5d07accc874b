//! The HTTP API (axum on hyper): `POST /score` (score comments, batched on the encoder, and
//! upsert them into the index), `GET /search`, `GET /health`, `GET /metrics` (Prometheus),
//! `GET /openapi.json`.
//!
//! Safe by default: it binds loopback unless told otherwise, and any other address needs a
//! bearer token; the Host header must name the bound address (DNS rebinding); bodies, batches,
//! requests in flight, queued comments and connections are bounded (413 / 429 / 503); a
//! connection that sends no request head within the read timeout is closed (silent and idle
//! connections alike); no 500 carries internal text (it goes to the server's log); CORS only
//! for one named origin. SIGTERM or Ctrl-C stops accepting, lets requests in flight finish,
//! scores what is queued and commits the index before the process exits.
//!
//! Given a run folder (`--index RUN`), the scored comments are records of the run
//! (`RUN/served.jsonl`), and with a destination its alerts are delivered after batches
//! (`alerting.rs`).

mod alerting;
pub mod metrics;
pub mod openapi;
pub mod score;
mod search;
mod setup;

pub use self::alerting::AlertConfig;
use self::metrics::{endpoint_label, Metrics};
pub use self::score::Scorer;
use self::score::{parse_request, Outcome, QueueConfig, QueueError, ScoreQueue, ScoreResponse};
pub use self::setup::{check_bind, open_index, run_folder};
use crate::index::SearchIndex;
use crate::ingest::Item;
use crate::workspace::RunDir;
use crate::{Error, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tantivy::IndexReader;
use tokio::sync::Semaphore;

/// The bounds every request is checked against.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most comments in one `POST /score` (413 beyond).
    pub max_comments: usize,
    /// Most `/score` and `/search` requests in flight at once (429 beyond).
    pub max_in_flight: usize,
    /// Most open connections; more are closed at once.
    pub max_connections: usize,
    /// A connection must send a whole request head within this (also the keep-alive idle
    /// timeout).
    pub read_timeout: Duration,
    /// A request must be answered within this (503 beyond).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_comments: 256,
            max_in_flight: 64,
            max_connections: 256,
            read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks a free port).
    pub addr: String,
    /// Bearer token every request but `GET /health` must carry; required to bind any address
    /// but loopback.
    pub token: Option<String>,
    /// Host names (besides the bound address, and `localhost` on loopback) the Host header may
    /// name; on an unspecified address (0.0.0.0) with none given, any.
    pub allowed_hosts: Vec<String>,
    /// The one origin allowed by CORS, if any.
    pub cors_origin: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// The scoring queue.
    pub queue: QueueConfig,
    /// Tier weights for the severity of indexed comments.
    pub tier_weights: BTreeMap<String, f64>,
    /// The run folder the index belongs to ([`run_folder`]): scored comments are appended to
    /// its records (`RUN/served.jsonl`).
    pub run: Option<RunDir>,
    /// Deliver the run's alerts after `/score` batches (needs `run` and an index).
    pub alerts: Option<AlertConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: "127.0.0.1:8080".into(),
            token: None,
            allowed_hosts: Vec::new(),
            cors_origin: None,
            limits: Limits::default(),
            queue: QueueConfig {
                batch_wait: Duration::from_millis(2),
                max_batch: 64,
                max_queued: 4096,
                commit_every: Duration::from_secs(2),
            },
            tier_weights: crate::severity::default_tier_weights(),
            run: None,
            alerts: None,
        }
    }
}

#[derive(Clone)]
struct SearchState {
    index: Arc<SearchIndex>,
    reader: IndexReader,
}

/// Checks every request passes before it reaches a handler.
struct Guard {
    token: Option<String>,
    /// Host names allowed (lower case); empty: any.
    hosts: Vec<String>,
    port: u16,
    cors: Option<String>,
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    search: Option<SearchState>,
    scorer: Option<Arc<ScoreQueue>>,
    metrics: Arc<Metrics>,
    guard: Arc<Guard>,
    max_comments: usize,
}

pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// A 500 whose detail goes to the server's log, not to the client.
pub(crate) fn internal_error(what: &str, detail: &str) -> Response {
    eprintln!("internal error in {what}: {detail}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error in {what} (details are in the server's log)"),
    )
}

fn unavailable(message: &str) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message.into());
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/search", get(search::search_handler))
        .route("/score", post(score_handler))
        .route("/metrics", get(metrics_handler))
        .route("/openapi.json", get(|| async { Json(openapi::spec()) }))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint (see GET /openapi.json)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Whether `a` equals `b`, in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a Host header value names this server.
fn host_allowed(g: &Guard, host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && (n.starts_with('[') || !n.contains(':')) => {
            (n.to_string(), p.parse::<u16>().ok())
        }
        _ => (host.clone(), Some(80)),
    };
    if port != Some(g.port) {
        return false;
    }
    g.hosts.is_empty() || g.hosts.contains(&name)
}

/// The checks before every handler, and the metrics after it.
async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let endpoint = endpoint_label(req.uri().path());
    let resp = gate_inner(&st, req, next).await;
    st.metrics
        .request(endpoint, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp
}

async fn gate_inner(st: &AppState, req: Request, next: Next) -> Response {
    let g = &st.guard;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(g, host) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            format!("Host {host:?} does not name this server"),
        );
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let cors_ok = matches!((&g.cors, &origin), (Some(c), Some(o)) if c == o);
    if req.method() == Method::OPTIONS {
        if !cors_ok {
            return error(StatusCode::FORBIDDEN, "origin not allowed".into());
        }
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        add_cors(&mut r, origin.as_deref());
        return r;
    }
    let path = req.uri().path().to_string();
    if let (Some(token), false) = (&g.token, path == "/health") {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer TOKEN)".into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let _permit = if path == "/score" || path == "/search" {
        match g.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests in flight; retry shortly".into(),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        }
    } else {
        None
    };
    let mut r = match tokio::time::timeout(g.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => unavailable(&format!(
            "the request took longer than {}s",
            g.request_timeout.as_secs_f64()
        )),
    };
    if cors_ok {
        add_cors(&mut r, origin.as_deref());
    }
    r
}

fn add_cors(r: &mut Response, origin: Option<&str>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

async fn health(State(st): State<AppState>) -> Response {
    let mut v = serde_json::json!({
        "status": "ok",
        "model": st.scorer.as_ref().map(|s| s.model().to_string()),
        "scored": st.metrics.scored(),
    });
    if let Some(s) = &st.search {
        let searcher = s.reader.searcher();
        v["docs"] = searcher.num_docs().into();
        v["segments"] = searcher.segment_readers().len().into();
    }
    Json(v).into_response()
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        st.metrics.render(),
    )
        .into_response()
}

async fn score_handler(
    State(st): State<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let Some(queue) = st.scorer.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "this server does not score (start it with `vocmine serve --score`)".into(),
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body: larger than the server's limit (--max-body)".into(),
            )
        }
        Err(e) => return error(e.status(), format!("body: {}", e.body_text())),
    };
    let items = match parse_request(&body, st.max_comments) {
        Ok(items) => items,
        Err((status, msg)) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                msg,
            )
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    let mut comments = Vec::new();
    let mut slots = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Item::Reject(r) => outcomes[i] = Some(Outcome::Rejected(r)),
            Item::Comment(c) => {
                slots.push(i);
                comments.push(c);
            }
        }
    }
    if !comments.is_empty() {
        let rx = match queue.submit(comments) {
            Ok(rx) => rx,
            Err(QueueError::Full) => {
                return unavailable("the scoring queue is full; retry shortly")
            }
            Err(QueueError::Closed) => return unavailable("the server is shutting down"),
        };
        match rx.await {
            Ok(Ok(outs)) => {
                for (i, o) in slots.into_iter().zip(outs) {
                    outcomes[i] = Some(o);
                }
            }
            Ok(Err(e)) => return internal_error("scoring", &e.to_string()),
            Err(_) => return internal_error("scoring", "the encoder worker stopped"),
        }
    }
    let mut resp = ScoreResponse {
        model: queue.model().to_string(),
        scored: Vec::new(),
        rejected: Vec::new(),
    };
    for o in outcomes.into_iter().flatten() {
        match o {
            Outcome::Scored(s) => resp.scored.push(*s),
            Outcome::Rejected(r) => resp.rejected.push(r),
        }
    }
    st.metrics
        .comments(resp.scored.len() as u64, resp.rejected.len() as u64);
    Json(resp).into_response()
}

/// Waits for SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `index` (search) and `scorer` (`POST /score`, upserting into `index` when both are
/// given, appending to the records of `cfg.run` and delivering its alerts with `cfg.alerts`)
/// until SIGTERM or Ctrl-C. Calls `on_ready` with the bound address (port 0 picks a
/// free port). Refuses to bind an address other than loopback without a token.
pub fn serve(
    index: Option<SearchIndex>,
    scorer: Option<Scorer>,
    cfg: &ServeConfig,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if index.is_none() && scorer.is_none() {
        return Err(Error::Invalid(
            "nothing to serve: give an index to search, or --score".into(),
        ));
    }
    if cfg.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(Error::Invalid("the bearer token is empty".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    let addr = cfg.addr.clone();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    if !local.ip().is_loopback() && cfg.token.is_none() {
        return Err(Error::Invalid(format!(
            "{addr} is not a loopback address: serving it needs a bearer token \
             (--token or VOCMINE_TOKEN)"
        )));
    }
    let metrics = Arc::new(Metrics::new(
        scorer.as_ref().map(|s| s.model_version.clone()),
    ));
    let index = index.map(Arc::new);
    let search = match &index {
        Some(i) => Some(SearchState {
            index: i.clone(),
            reader: i.reader()?,
        }),
        None => None,
    };
    let queue = match scorer {
        Some(s) => Some(Arc::new(ScoreQueue::start(
            s,
            index.map(|i| (i, cfg.tier_weights.clone())),
            cfg.run.clone(),
            cfg.alerts.clone(),
            cfg.queue.clone(),
            metrics.clone(),
        )?)),
        None if cfg.alerts.is_some() => {
            return Err(Error::Invalid(
                "alerts after /score batches need --score".into(),
            ))
        }
        None => None,
    };
    let mut hosts: Vec<String> = cfg
        .allowed_hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let ip = local.ip();
    if ip.is_loopback() {
        hosts.extend(["localhost", "127.0.0.1", "[::1]"].map(String::from));
    } else if !ip.is_unspecified() || !hosts.is_empty() {
        hosts.push(match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        });
    }
    let state = AppState {
        search,
        scorer: queue.clone(),
        metrics,
        guard: Arc::new(Guard {
            token: cfg.token.clone(),
            hosts,
            port: local.port(),
            cors: cfg.cors_origin.clone(),
            in_flight: Arc::new(Semaphore::new(cfg.limits.max_in_flight.max(1))),
            request_timeout: cfg.limits.request_timeout,
        }),
        max_comments: cfg.limits.max_comments,
    };
    let app = router(state, cfg.limits.max_body_bytes);
    on_ready(local);
    let limits = cfg.limits.clone();
    rt.block_on(accept_loop(listener, app, &limits));
    // connections are closed: score what is queued, commit the index
    let res = match &queue {
        Some(q) => q.shutdown(),
        None => Ok(()),
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    res
}

/// Accepts connections until the shutdown signal, then waits (at most the request timeout)
/// for the connections to finish their requests in flight.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, limits: &Limits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let conns = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .keep_alive(true);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // out of file descriptors and the like: wait, do not spin
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = fut.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
}
