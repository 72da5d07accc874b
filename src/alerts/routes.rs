//! Routing rules (`--routes FILE`, TOML): which owner an event goes to.
//!
//! ```toml
//! [[route]]
//! name = "vip complaints"        # optional; shown in the output and the delivery log
//! sentiment = "negative"         # a value or a list of values (any of them)
//! tier = ["vip", "platinum"]
//! match = "majority"             # or "any" (default: majority)
//! queue = "vip-negative"         # RUN/alerts/queue/vip-negative.jsonl
//!
//! [[route]]
//! pain_point = ["delivery", "waiting"]
//! webhook = "http://127.0.0.1:9000/hooks/logistics"
//!
//! [default]                      # events no rule matches (`--webhook URL` replaces it)
//! webhook = "http://127.0.0.1:9000/hooks/all"
//! ```
//!
//! A rule matches an event when every condition it gives holds (values compared without
//! case). A condition is on the event's comments: with `match = "majority"`, the value most of
//! them carry (a tie: each tied value); with `match = "any"`, a value at least one carries.
//! Rules are tried in file order and the **first** matching rule decides; an event no rule
//! matches goes to the default route, and is skipped (and not logged, so a later run with a
//! route sends it) when there is none.

use super::http::Url;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The comment fields a rule can match on.
pub const DIMENSIONS: [&str; 5] = ["pain_point", "intent", "sentiment", "tier", "channel"];

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POST the payload to this `http://` URL.
    Webhook(String),
    /// Append the payload to the run's queue file of this name (`RUN/alerts/queue/NAME.jsonl`).
    Queue(String),
}

/// How a rule's conditions read the event's comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    /// The value most of the event's comments carry (each tied value on a tie).
    Majority,
    /// A value at least one of the event's comments carries.
    Any,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name (`route N` when the file gives none).
    pub name: String,
    /// Field -> accepted values (lower case); every field given must match.
    pub conditions: BTreeMap<String, Vec<String>>,
    /// How the conditions read the comments.
    pub mode: MatchMode,
    /// Where a matching event goes.
    pub destination: Destination,
}

/// The routing rules of a file, tried in order, and the default route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routes {
    /// The rules in file order.
    pub rules: Vec<Rule>,
    /// Where events no rule matches go (`[default]`, or `--webhook`).
    pub default: Option<Destination>,
}

/// The values an event's comments carry per field: field -> value (lower case) -> comments.
pub type Attributes = BTreeMap<String, BTreeMap<String, usize>>;

impl Routes {
    /// Reads and checks a routes file; errors name the file and the key at fault.
    pub fn load(path: &Path) -> Result<Routes> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Routes::parse(&text, path)
    }

    /// Parses and checks the text of a routes file (`path` is for the messages).
    pub fn parse(text: &str, path: &Path) -> Result<Routes> {
        let err = |m: String| Error::input(path, m);
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(format!("not valid TOML: {e}")))?;
        let mut routes = Routes::default();
        for (key, value) in &table {
            match key.as_str() {
                "route" => {
                    let list = value.as_array().ok_or_else(|| {
                        err("key `route`: expected [[route]] tables (an array of tables)".into())
                    })?;
                    for (i, v) in list.iter().enumerate() {
                        let at = format!("route {}", i + 1);
                        let t = v
                            .as_table()
                            .ok_or_else(|| err(format!("{at}: expected a table")))?;
                        routes.rules.push(rule(t, &at).map_err(err)?);
                    }
                }
                "default" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| err("key `default`: expected a table".into()))?;
                    if let Some(k) = t.keys().find(|k| *k != "webhook" && *k != "queue") {
                        return Err(err(format!(
                            "[default]: unknown key `{k}` (a default has only `webhook` or `queue`)"
                        )));
                    }
                    routes.default = Some(destination(t, "[default]").map_err(err)?);
                }
                other => {
                    return Err(err(format!(
                        "unknown key `{other}` (expected [[route]] tables and a [default] table)"
                    )))
                }
            }
        }
        Ok(routes)
    }

    /// The first rule that matches `attrs` (its name and destination), else the default
    /// (named `default`); `None` when neither.
    pub fn route<'a>(&'a self, attrs: &Attributes) -> Option<(&'a str, &'a Destination)> {
        self.rules
            .iter()
            .find(|r| r.matches(attrs))
            .map(|r| (r.name.as_str(), &r.destination))
            .or_else(|| self.default.as_ref().map(|d| ("default", d)))
    }
}

impl Rule {
    /// Whether every condition holds for an event whose comments carry `attrs`.
    pub fn matches(&self, attrs: &Attributes) -> bool {
        self.conditions.iter().all(|(field, want)| {
            let Some(counts) = attrs.get(field) else {
                return false;
            };
            let top = counts.values().copied().max().unwrap_or(0);
            counts.iter().any(|(v, &n)| {
                n > 0 && (self.mode == MatchMode::Any || n == top) && want.contains(v)
            })
        })
    }
}

fn rule(t: &toml::Table, at: &str) -> std::result::Result<Rule, String> {
    let mut conditions = BTreeMap::new();
    let mut name = at.to_string();
    let mut mode = MatchMode::Majority;
    for (k, v) in t {
        match k.as_str() {
            "webhook" | "queue" => {}
            "name" => {
                name = v
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| format!("{at}: key `name`: expected a non-empty string"))?
                    .to_string();
            }
            "match" => {
                mode = match v.as_str() {
                    Some("majority") => MatchMode::Majority,
                    Some("any") => MatchMode::Any,
                    _ => {
                        return Err(format!(
                            "{at}: key `match`: expected \"majority\" or \"any\""
                        ))
                    }
                }
            }
            field if DIMENSIONS.contains(&field) => {
                let bad = || format!("{at}: key `{field}`: expected a string or a list of strings");
                let values: Vec<String> = match v {
                    toml::Value::String(s) => vec![s.to_lowercase()],
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map(str::to_lowercase).ok_or_else(bad))
                        .collect::<std::result::Result<_, _>>()?,
                    _ => return Err(bad()),
                };
                if values.is_empty() {
                    return Err(format!("{at}: key `{field}`: the list is empty"));
                }
                conditions.insert(field.to_string(), values);
            }
            other => {
                return Err(format!(
                "{at}: unknown key `{other}` (a rule has name, match, {}, and webhook or queue)",
                DIMENSIONS.join(", ")
            ))
            }
        }
    }
    Ok(Rule {
        name,
        conditions,
        mode,
        destination: destination(t, at)?,
    })
}

fn destination(t: &toml::Table, at: &str) -> std::result::Result<Destination, String> {
    match (t.get("webhook"), t.get("queue")) {
        (Some(_), Some(_)) => Err(format!("{at}: give `webhook` or `queue`, not both")),
        (None, None) => Err(format!("{at}: no destination (key `webhook` or `queue`)")),
        (Some(w), None) => {
            let url = w
                .as_str()
                .ok_or_else(|| format!("{at}: key `webhook`: expected a string"))?;
            check_webhook(url).map_err(|m| format!("{at}: key `webhook`: {m}"))?;
            Ok(Destination::Webhook(url.to_string()))
        }
        (None, Some(q)) => {
            let name = q
                .as_str()
                .ok_or_else(|| format!("{at}: key `queue`: expected a string"))?;
            check_queue_name(name).map_err(|m| format!("{at}: key `queue`: {m}"))?;
            Ok(Destination::Queue(name.to_string()))
        }
    }
}

/// Checks a webhook URL (`http://` only); the message says what is wrong.
pub fn check_webhook(url: &str) -> std::result::Result<(), String> {
    Url::parse(url).map(|_| ())
}

fn check_queue_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a queue name (1-64 letters, digits, `-` or `_`)"
        ))
    }
}
