//! `serve`: the HTTP API over an index, and `POST /score` with a model (with a run folder's
//! alerts after batches).

use super::args::{seconds, EncoderArgs, ServeAlertArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use vocmine::serve::{check_bind, open_index, run_folder, serve, Limits, Scorer, ServeConfig};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Index folder (a run folder's index/, or a run folder) for GET /search; with --score,
    /// scored comments are upserted into it (created if absent), and a run folder's records
    /// get them too (RUN/served.jsonl: its report and alerts see them)
    index: Option<PathBuf>,
    /// The same as INDEX
    #[arg(long = "index", conflicts_with = "index", value_name = "RUN")]
    index_flag: Option<PathBuf>,
    /// Address to listen on (any address but loopback needs --token)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Serve POST /score: comments scored by the model (--model), batched on the encoder
    #[arg(long)]
    score: bool,
    #[command(flatten)]
    enc: EncoderArgs,
    /// Tasks to run, comma-separated [default: the default tasks of the model]
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
    /// Do not mask phone numbers, emails, ID-card and bank-card numbers
    #[arg(long)]
    no_mask: bool,
    /// Bearer token every request but GET /health must carry [default: $VOCMINE_TOKEN]
    #[arg(long)]
    token: Option<String>,
    /// A host name the Host header may name besides the bound address (repeatable)
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Allow this one origin through CORS (e.g. https://dash.example.com)
    #[arg(long)]
    cors_origin: Option<String>,
    /// Largest request body, bytes (413 beyond)
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Most comments in one POST /score (413 beyond)
    #[arg(long, default_value_t = 256)]
    max_comments: usize,
    /// Most /score and /search requests in flight (429 beyond)
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Most comments waiting for the encoder (503 beyond)
    #[arg(long, default_value_t = 4096)]
    max_queued: usize,
    /// Most open connections (more are closed at once)
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds a connection may take to send a request head (also the idle timeout)
    #[arg(long, default_value_t = 10.0)]
    read_timeout: f64,
    /// Seconds a request may take (503 beyond)
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Milliseconds the encoder waits for more comments after the first of a batch when
    /// requests overlap (a lone client's comment is scored at once)
    #[arg(long, default_value_t = 2.0)]
    batch_wait_ms: f64,
    /// Most comments per encoder batch
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Seconds between commits of the index while comments are scored
    #[arg(long, default_value_t = 2.0)]
    commit_every: f64,
    /// Severity weight of a customer tier, e.g. vip=1.3 (repeatable; others weigh 1)
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// With --webhook or --routes (and --score --index RUN): the run's alerts after batches
    #[command(flatten)]
    alerts: ServeAlertArgs,
}

pub(crate) fn cmd_serve(a: ServeArgs) -> Result<()> {
    let env_token = || {
        std::env::var("VOCMINE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
    };
    let token = a.token.clone().or_else(env_token);
    // checked before the model loads (the server checks the bound address again)
    check_bind(&a.addr, token.as_deref())?;
    let index_arg = a.index.clone().or(a.index_flag.clone());
    let index = index_arg
        .as_deref()
        .map(|p| open_index(p, a.score))
        .transpose()?;
    if index.is_none() && !a.score {
        bail!("nothing to serve: name an index to search (vocmine serve RUN), or give --score");
    }
    let spec = a.score.then(|| a.enc.spec()).transpose()?;
    let weights = (!a.tier_weights.is_empty()).then_some(&a.tier_weights);
    let alerts = a.alerts.config(
        spec.as_ref().map(|s| s.dir.as_path()),
        weights
            .map(|w| vocmine::severity::parse_tier_weights(w))
            .transpose()?,
    )?;
    let scorer = match spec {
        Some(spec) => {
            let encoder = a.enc.load(&spec)?;
            let tasks = a.tasks.as_deref();
            Some(Scorer::from_model(&spec, encoder, tasks, !a.no_mask)?)
        }
        None => None,
    };
    let mut cfg = ServeConfig {
        addr: a.addr.clone(),
        token,
        allowed_hosts: a.allow_hosts.clone(),
        cors_origin: a.cors_origin.clone(),
        tier_weights: vocmine::severity::parse_tier_weights(&a.tier_weights)?,
        run: index_arg.as_deref().and_then(run_folder),
        alerts,
        ..Default::default()
    };
    cfg.limits = Limits {
        max_body_bytes: a.max_body,
        max_comments: a.max_comments.max(1),
        max_in_flight: a.max_in_flight.max(1),
        max_connections: a.max_connections.max(1),
        read_timeout: seconds("read-timeout", a.read_timeout)?,
        request_timeout: seconds("request-timeout", a.request_timeout)?,
    };
    cfg.queue.batch_wait = Duration::from_secs_f64(a.batch_wait_ms.clamp(0.0, 1e3) / 1e3);
    cfg.queue.max_batch = a.max_batch.max(1);
    cfg.queue.max_queued = a.max_queued.max(1);
    cfg.queue.commit_every = seconds("commit-every", a.commit_every)?;
    let what = match (a.score, index_arg.is_some()) {
        (true, true) => "POST /score, GET /search",
        (true, false) => "POST /score",
        _ => "GET /search",
    };
    serve(index, scorer, &cfg, |addr| {
        eprintln!("serving on http://{addr} ({what}, GET /health, GET /metrics, GET /openapi.json); Ctrl-C or SIGTERM stops");
    })?;
    Ok(())
}
