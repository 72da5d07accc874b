//! `search`: a query with filters on an index, printed as text or JSON.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use vocmine::index::query::{parse_since, parse_until, search, SearchRequest, Sort};
use vocmine::index::{resolve_index_dir, SearchIndex};

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Index folder (a run folder's index/, or a run folder)
    index: PathBuf,
    /// Query: plain words, all of which must match [default: everything]
    #[arg(default_value = "", hide_default_value = true)]
    query: String,
    /// Read the query as query syntax: "a phrase", -excluded, a OR b (plain words otherwise;
    /// invalid syntax is searched as its words)
    #[arg(long)]
    syntax: bool,
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
    /// Aspect filter as ASPECT:POLARITY, e.g. 电池:negative (runs scored with --aspects)
    #[arg(long)]
    aspect: Option<String>,
    /// Aspect-category filter as CATEGORY:POLARITY, e.g. delivery:negative
    #[arg(long)]
    aspect_category: Option<String>,
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

/// The request the flags give.
fn request(a: &SearchArgs) -> Result<SearchRequest> {
    let mut r = SearchRequest {
        query: a.query.clone(),
        syntax: a.syntax,
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
        ("aspect", &a.aspect),
        ("aspect_category", &a.aspect_category),
    ] {
        if let Some(v) = v {
            r.add_tag(name, v);
        }
    }
    for x in (a.topic.iter()).flat_map(|t| t.split(',').filter(|x| !x.trim().is_empty())) {
        let id = (x.trim().parse()).with_context(|| format!("--topic {x:?}: not a topic id"))?;
        r.topics.push(id);
    }
    r.since = a.since.as_deref().map(parse_since).transpose()?;
    r.until = a.until.as_deref().map(parse_until).transpose()?;
    // The same limits as the HTTP API's.
    r.validate()?;
    Ok(r)
}

pub(crate) fn cmd_search(a: SearchArgs) -> Result<()> {
    let req = request(&a)?;
    let idx = SearchIndex::open(&resolve_index_dir(&a.index))?;
    let reader = idx.reader()?;
    let res = search(&idx, &reader.searcher(), &req)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&res)?)?;
    } else {
        // matches in bold red on a terminal, in [brackets] otherwise
        use std::io::IsTerminal;
        let (on, off) = match std::io::stdout().is_terminal() {
            true => ("\x1b[1;31m", "\x1b[0m"),
            false => ("[", "]"),
        };
        out!("{}", res.to_text(on, off))?;
    }
    Ok(())
}
