//! `index`, `search`, `serve` and `bench-search`: the search side of the command line.

use anyhow::{bail, Context, Result};
use clap::Args;

use std::path::{Path, PathBuf};
use std::time::Instant;
use vocmine::index::query::{
    parse_since, parse_until, search, SearchRequest, SearchResponse, Sort,
};
use vocmine::index::{index_scored, SearchIndex, UpdateOptions, UpdateStats};
use vocmine::severity::parse_tier_weights;
use vocmine::workspace::{RunDir, RunSettings};

#[derive(Args)]
pub(crate) struct IndexArgs {
    /// A run folder (indexes its scored.jsonl into RUN/index) or a scored JSONL file
    input: PathBuf,
    /// Index folder [default: RUN/index for a run folder]
    #[arg(long)]
    index: Option<PathBuf>,
    /// Topic assignments JSONL ({"id","topic","label"}) [default: RUN/topics/assignments.jsonl
    /// when present]
    #[arg(long)]
    topics: Option<PathBuf>,
    /// Commit after this many changed documents (each commit is a safe restart point)
    #[arg(long, default_value_t = 50_000)]
    commit_every: usize,
    /// Severity weight of a customer tier, e.g. vip=1.3 (repeatable; others weigh 1)
    /// [default: the run's, saved by `score --tier-weight`]; given for a run folder, they are
    /// saved as the run's, so `topics` re-indexes with them too
    #[arg(long = "tier-weight", value_name = "TIER=W")]
    tier_weights: Vec<String>,
    /// Indexing threads [default: tantivy's choice]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
    /// jieba user dictionary for the index (word [freq] [tag] per line) [default: the run's
    /// RUN/user_dict.txt, recorded by `score --user-dict`; else the index's own]
    #[arg(long)]
    user_dict: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Index folder (a run folder's index/, or a run folder)
    index: PathBuf,
    /// Query: words (all must match), "a phrase", -excluded, a OR b [default: everything]
    #[arg(default_value = "", hide_default_value = true)]
    query: String,
    /// Sentiment filter, comma-separated values (any of them)
    #[arg(long)]
    sentiment: Option<String>,
    /// Intent filter
    #[arg(long)]
    intent: Option<String>,
    /// Pain-point category filter
    #[arg(long)]
    pain_point: Option<String>,
    /// Journey-stage filter (pre_purchase, purchase_payment, delivery, use,
    /// after_sales_returns, customer_service, account_membership, other)
    #[arg(long)]
    stage: Option<String>,
    /// Channel filter
    #[arg(long)]
    channel: Option<String>,
    /// Customer-tier filter
    #[arg(long)]
    tier: Option<String>,
    /// Product filter
    #[arg(long)]
    product: Option<String>,
    /// Language filter (zh, zh-hant, en, mixed, other)
    #[arg(long)]
    lang: Option<String>,
    /// Topic id filter, comma-separated
    #[arg(long)]
    topic: Option<String>,
    /// Comments at or after this date/time
    #[arg(long)]
    since: Option<String>,
    /// Comments up to this date (inclusive) or before this time
    #[arg(long)]
    until: Option<String>,
    /// Hits to show
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Hits to skip
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Order: relevance, newest, severity
    #[arg(long, default_value = "relevance")]
    sort: String,
    /// Boost relevance by severity: score x (1 + BOOST x severity)
    #[arg(long, default_value_t = 0.0)]
    boost: f32,
    /// Days per bar of the date histogram
    #[arg(long, default_value_t = 1)]
    interval_days: u32,
    /// Print JSON ({"total", "hits", "facets"})
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Index folder (a run folder's index/, or a run folder) for GET /search; with --score,
    /// scored comments are upserted into it (created if absent)
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
    enc: crate::cli::EncoderArgs,
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
    /// Milliseconds the encoder waits for more comments after the first of a batch
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
}

#[derive(Args)]
pub(crate) struct BenchSearchArgs {
    /// Labelled JSONL corpora to index (text; label -> sentiment; category/airline -> product)
    #[arg(long = "data", required = true)]
    pub(crate) data: Vec<PathBuf>,
    /// Queries to time
    #[arg(long, default_value_t = 1000)]
    pub(crate) queries: usize,
    /// Index folder to build [default: a temporary folder]
    #[arg(long)]
    pub(crate) index: Option<PathBuf>,
    /// Seed for the query sample
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
    /// Write the measurements as JSON here
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Write the sampled queries here (one per line, for load generators)
    #[arg(long)]
    pub(crate) queries_out: Option<PathBuf>,
}

/// `index` and `search` accept a run folder for its `index/`.
fn index_dir(p: &Path) -> PathBuf {
    let run = RunDir::new(p);
    if !p.join("meta.json").exists() && run.has_index() {
        run.index()
    } else {
        p.to_path_buf()
    }
}

pub(crate) fn print_index_stats(s: &UpdateStats, dir: &Path) -> std::io::Result<()> {
    outln!(
        "index {}: {} documents ({} read: {} added, {} replaced, {} unchanged; {} commits)",
        dir.display(),
        s.docs,
        s.read,
        s.added,
        s.replaced,
        s.unchanged,
        s.commits
    )
}

pub(crate) fn cmd_index(a: IndexArgs) -> Result<()> {
    // a run folder supplies its scored.jsonl, index, topics, user dictionary and settings
    let run = a.input.is_dir().then(|| RunDir::new(&a.input));
    let mut settings = match &run {
        Some(r) => r.settings()?,
        None => RunSettings::default(),
    };
    if !a.tier_weights.is_empty() {
        settings.tier_weights = parse_tier_weights(&a.tier_weights)?;
        if let Some(r) = &run {
            r.save_settings(&settings)?;
        }
    }
    let scored = run.as_ref().map_or(a.input.clone(), RunDir::scored);
    let dir = a
        .index
        .clone()
        .or(run.as_ref().map(RunDir::index))
        .context("--index DIR is needed when the input is a file")?;
    let topics = a
        .topics
        .clone()
        .or(run.as_ref().map(RunDir::assignments).filter(|p| p.exists()));
    let dict = a
        .user_dict
        .clone()
        .or(run.as_ref().map(RunDir::user_dict).filter(|p| p.exists()));
    let opts = UpdateOptions {
        commit_every: a.commit_every,
        threads: a.threads,
        tier_weights: settings.tier_weights,
        ..UpdateOptions::default()
    };
    let t = Instant::now();
    let pb = crate::cli::spinner("indexing");
    let stats = index_scored(
        &scored,
        &dir,
        topics.as_deref(),
        dict.as_deref(),
        &opts,
        |s| pb.set_position(s.read),
    )?;
    pb.finish_and_clear();
    print_index_stats(&stats, &dir)?;
    eprintln!(
        "{:.2}s, {:.0} records/s",
        t.elapsed().as_secs_f64(),
        stats.read as f64 / t.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn request(a: &SearchArgs) -> Result<SearchRequest> {
    let mut r = SearchRequest {
        query: a.query.clone(),
        limit: a.limit,
        offset: a.offset,
        sort: a.sort.parse::<Sort>()?,
        severity_boost: a.boost,
        interval_days: a.interval_days,
        ..SearchRequest::default()
    };
    for (name, v) in [
        ("sentiment", &a.sentiment),
        ("intent", &a.intent),
        ("pain_point", &a.pain_point),
        ("journey_stage", &a.stage),
        ("channel", &a.channel),
        ("tier", &a.tier),
        ("product", &a.product),
        ("lang", &a.lang),
    ] {
        if let Some(v) = v {
            r.add_tag(name, v);
        }
    }
    if let Some(t) = &a.topic {
        for x in t.split(',').filter(|x| !x.trim().is_empty()) {
            r.topics.push(
                x.trim()
                    .parse()
                    .with_context(|| format!("--topic {x:?}: not a topic id"))?,
            );
        }
    }
    r.since = a.since.as_deref().map(parse_since).transpose()?;
    r.until = a.until.as_deref().map(parse_until).transpose()?;
    // The same limits as the HTTP API's.
    r.validate()?;
    Ok(r)
}

/// The snippet for a terminal: matches in bold red when stdout is a terminal, in [brackets]
/// otherwise.
fn strip_tags(html: &str) -> String {
    use std::io::IsTerminal;
    let (on, off) = if std::io::stdout().is_terminal() {
        ("\x1b[1;31m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    html.replace("<b>", on)
        .replace("</b>", off)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn print_human(r: &SearchResponse) -> std::io::Result<()> {
    outln!("{} comments match", r.total)?;
    for h in &r.hits {
        let tag = |k: &str| h.tags.get(k).map(String::as_str).unwrap_or("-");
        outln!(
            "\n{}  score {:.2}  {} {} {} {}  {} {}  {}",
            h.id,
            h.score,
            tag("sentiment"),
            tag("intent"),
            tag("pain_point"),
            tag("journey_stage"),
            tag("channel"),
            tag("tier"),
            h.time.as_deref().unwrap_or("")
        )?;
        outln!("  {}", strip_tags(&h.snippet))?;
    }
    outln!()?;
    for (name, counts) in &r.facets.tags {
        if counts.is_empty() {
            continue;
        }
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        outln!("{name}: {}", parts.join(", "))?;
    }
    if !r.facets.topic.is_empty() {
        let parts: Vec<String> = r
            .facets
            .topic
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        outln!("topic: {}", parts.join(", "))?;
    }
    let days: Vec<String> = r
        .facets
        .date
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| format!("{} {}", b.date, b.count))
        .collect();
    if !days.is_empty() {
        outln!("date: {}", days.join(", "))?;
    }
    Ok(())
}

pub(crate) fn cmd_search(a: SearchArgs) -> Result<()> {
    let req = request(&a)?;
    let idx = SearchIndex::open(&index_dir(&a.index))?;
    let reader = idx.reader()?;
    let res = search(&idx, &reader.searcher(), &req)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&res)?)?;
    } else {
        print_human(&res)?;
    }
    Ok(())
}

fn seconds(name: &str, v: f64) -> Result<std::time::Duration> {
    if !(v.is_finite() && v > 0.0 && v < 1e6) {
        bail!("--{name} {v}: expected a positive number of seconds");
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

pub(crate) fn cmd_serve(a: ServeArgs) -> Result<()> {
    let token = a.token.clone().or_else(|| {
        std::env::var("VOCMINE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
    });
    // checked before the model loads (the server checks the bound address again)
    if let (Ok(addr), None) = (a.addr.parse::<std::net::SocketAddr>(), &token) {
        if !addr.ip().is_loopback() {
            bail!(
                "{} is not a loopback address: serving it needs a bearer token (--token or \
                 VOCMINE_TOKEN)",
                a.addr
            );
        }
    }
    let index_arg = a.index.clone().or(a.index_flag.clone());
    let index = match &index_arg {
        // a folder that is not an index yet is a run folder: its index goes in RUN/index
        Some(p) if a.score && p.join("meta.json").exists() => Some(SearchIndex::open_or_create(p)?),
        Some(p) if a.score => Some(SearchIndex::open_or_create(&RunDir::new(p).index())?),
        Some(p) => Some(SearchIndex::open(&index_dir(p))?),
        None => None,
    };
    if index.is_none() && !a.score {
        bail!("nothing to serve: name an index to search (vocmine serve RUN), or give --score");
    }
    let scorer = if a.score {
        let spec = a.enc.spec()?;
        let encoder = a.enc.load(&spec)?;
        let heads = spec.load_heads(a.tasks.as_deref(), &encoder)?;
        let tasks: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
        let model_version = spec.version(&encoder.fingerprint()?, &tasks)?;
        Some(vocmine::serve::Scorer {
            encoder,
            heads,
            segmenter: vocmine::text::segment::Segmenter::default(),
            normalise: vocmine::text::normalise::NormaliseConfig {
                mask_pii: !a.no_mask,
            },
            model_version,
        })
    } else {
        None
    };
    let mut cfg = vocmine::serve::ServeConfig {
        addr: a.addr.clone(),
        token,
        allowed_hosts: a.allow_hosts.clone(),
        cors_origin: a.cors_origin.clone(),
        tier_weights: parse_tier_weights(&a.tier_weights)?,
        ..Default::default()
    };
    cfg.limits = vocmine::serve::Limits {
        max_body_bytes: a.max_body,
        max_comments: a.max_comments.max(1),
        max_in_flight: a.max_in_flight.max(1),
        max_connections: a.max_connections.max(1),
        read_timeout: seconds("read-timeout", a.read_timeout)?,
        request_timeout: seconds("request-timeout", a.request_timeout)?,
    };
    cfg.queue.batch_wait =
        std::time::Duration::from_secs_f64(a.batch_wait_ms.clamp(0.0, 1e3) / 1e3);
    cfg.queue.max_batch = a.max_batch.max(1);
    cfg.queue.max_queued = a.max_queued.max(1);
    cfg.queue.commit_every = seconds("commit-every", a.commit_every)?;
    let what = match (a.score, index_arg.is_some()) {
        (true, true) => "POST /score, GET /search",
        (true, false) => "POST /score",
        _ => "GET /search",
    };
    vocmine::serve::serve(index, scorer, &cfg, |addr| {
        eprintln!("serving on http://{addr} ({what}, GET /health, GET /metrics, GET /openapi.json); Ctrl-C or SIGTERM stops");
    })?;
    Ok(())
}

pub(crate) use crate::cli::bench_search::cmd_bench_search;
