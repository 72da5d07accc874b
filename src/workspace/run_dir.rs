//! [`RunDir`]: every path of a run folder, its saved settings, and the one reader of its
//! scored records and topic assignments. Nothing else in the crate spells a run folder's file
//! names.
//!
//! ```text
//! RUN/
//!   scored.jsonl  rejects.jsonl  summary.json  settings.json   (score)
//!   scored.parquet                                             (score --output-format parquet;
//!                                                               a folder from vocmine.spark)
//!   embeddings.f32  embeddings.json  state/  lock              (score, see the workspace)
//!   user_dict.txt                                              (score --user-dict)
//!   index/                                                     (score, index, topics)
//!   topics/model.json  topics/assignments.jsonl                (topics)
//!   report.json  report.html  report.xlsx                      (report)
//!   report_tables/TABLE.csv                                    (report: one file per table)
//!   alerts/delivered.jsonl  alerts/lock  alerts/queue/NAME.jsonl (alerts, report --webhook,
//!                                                               serve --webhook)
//!   served.jsonl                                               (serve --score --index RUN)
//! ```
//!
//! The run's scored records are those of `scored.jsonl` (or `scored.parquet`) and of
//! `served.jsonl` ([`super::served`]), a served record replacing the scored one of its id.

use crate::error::{Error, Result};
use crate::record::Scored;
use crate::severity::default_tier_weights;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

const REPORT_TABLES: &str = "report_tables";
const REPORT_XLSX: &str = "report.xlsx";

/// A topic assignment for one comment (from `vocmine topics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicTag {
    /// Topic id; -1 for comments that fit no topic.
    pub topic: i64,
    /// The topic's readable label.
    #[serde(default)]
    pub label: String,
    /// The topic the topic model gave the comment, where the user merged it into `topic`
    /// (`RUN/topics/edits.toml`); `None` when they are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<i64>,
    /// The theme (a group of close topics) the topic belongs to, and its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<(i64, String)>,
}

/// What a run folder remembers of how it was made (`settings.json`), so that every later
/// command (`index`, `topics`, `report`, `status`) works as the scoring did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Whether personal data was masked before scoring (`score --no-mask` turns it off); the
    /// text hashes that decide what a rerun rescores depend on it.
    #[serde(default = "yes")]
    pub mask_pii: bool,
    /// Tier weights of the severity score (`--tier-weight`), lower-cased tier -> weight.
    #[serde(default = "default_tier_weights")]
    pub tier_weights: BTreeMap<String, f64>,
}

fn yes() -> bool {
    true
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            mask_pii: true,
            tier_weights: default_tier_weights(),
        }
    }
}

/// A run folder (the `--out` of `score`): the home of its file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The run folder at `dir` (nothing is read or created).
    pub fn new(dir: impl Into<PathBuf>) -> RunDir {
        RunDir { dir: dir.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `scored.jsonl`: the latest record of every comment, once.
    pub fn scored(&self) -> PathBuf {
        self.dir.join("scored.jsonl")
    }

    /// `scored.parquet`: the scored records with typed columns (`score --output-format
    /// parquet`), rewritten from scored.jsonl after every run once it exists.
    pub fn scored_parquet(&self) -> PathBuf {
        self.dir.join(super::parquet::SCORED_PARQUET)
    }

    /// The file or folder the scored records are read from: `scored.jsonl`, else
    /// `scored.parquet` (a file, or the folder of part files a distributed job writes with
    /// `vocmine.spark.write_run`), else `scored.jsonl` (for the error that names it).
    pub fn scored_records(&self) -> PathBuf {
        let (jsonl, parquet) = (self.scored(), self.scored_parquet());
        if !jsonl.exists() && parquet.exists() {
            parquet
        } else {
            jsonl
        }
    }

    /// Whether the records come from `scored.parquet` (see [`RunDir::scored_records`]).
    fn records_are_parquet(&self) -> bool {
        self.scored_records() != self.scored()
    }

    /// `served.jsonl`: the comments `serve --score --index RUN` scored, appended
    /// ([`super::served`]); read with the scored records.
    pub fn served(&self) -> PathBuf {
        self.dir.join("served.jsonl")
    }

    /// `rejects.jsonl`: every rejected record, once.
    pub fn rejects(&self) -> PathBuf {
        self.dir.join("rejects.jsonl")
    }

    /// `summary.json`: what the last run did.
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }

    /// `settings.json`: the saved [`RunSettings`].
    pub fn settings_file(&self) -> PathBuf {
        self.dir.join("settings.json")
    }

    /// `user_dict.txt`: the jieba user dictionary of the scoring (`score --user-dict`).
    pub fn user_dict(&self) -> PathBuf {
        self.dir.join("user_dict.txt")
    }

    /// `index/`: the search index.
    pub fn index(&self) -> PathBuf {
        self.dir.join("index")
    }

    /// Whether the run has a search index.
    pub fn has_index(&self) -> bool {
        self.index().join("meta.json").exists()
    }

    /// `topics/`: the topic model and assignments.
    pub fn topics_dir(&self) -> PathBuf {
        self.dir.join("topics")
    }

    /// `topics/model.json`.
    pub fn topic_model(&self) -> PathBuf {
        self.topics_dir().join("model.json")
    }

    /// `topics/assignments.jsonl`: `{"id","topic","label"}` per comment.
    pub fn assignments(&self) -> PathBuf {
        self.topics_dir().join("assignments.jsonl")
    }

    /// `topics/edits.toml`: the user's topic names and merges, kept across runs.
    pub fn topic_edits(&self) -> PathBuf {
        self.topics_dir().join("edits.toml")
    }

    /// `report.json`.
    pub fn report_json(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    /// `report.html`.
    pub fn report_html(&self) -> PathBuf {
        self.dir.join("report.html")
    }

    /// `report.xlsx`: the report's tables, one sheet each.
    pub fn report_xlsx(&self) -> PathBuf {
        self.dir.join(REPORT_XLSX)
    }

    /// `report_tables/`: the report's tables as CSV files.
    pub fn report_tables_dir(&self) -> PathBuf {
        self.dir.join(REPORT_TABLES)
    }

    /// `report_tables/TABLE.csv`: one table of the report (`TABLE`: `pain_points`, ...).
    pub fn report_table(&self, table: &str) -> PathBuf {
        self.report_tables_dir().join(format!("{table}.csv"))
    }

    /// The link from `report.html` to `report_tables/TABLE.csv` (relative, `/`-separated).
    pub fn report_table_href(table: &str) -> String {
        format!("{REPORT_TABLES}/{table}.csv")
    }

    /// The link from `report.html` to `report.xlsx`.
    pub fn report_xlsx_href() -> &'static str {
        REPORT_XLSX
    }

    /// `alerts/`: what `vocmine alerts` delivered and queued.
    pub fn alerts_dir(&self) -> PathBuf {
        self.dir.join("alerts")
    }

    /// `alerts/delivered.jsonl`: the delivery log, one line per delivery outcome, appended.
    pub fn delivery_log(&self) -> PathBuf {
        self.alerts_dir().join("delivered.jsonl")
    }

    /// `alerts/lock`: held (OS file lock) by the one delivery running for this folder.
    pub fn alerts_lock(&self) -> PathBuf {
        self.alerts_dir().join("lock")
    }

    /// `alerts/queue/NAME.jsonl`: the output queue `NAME` of the routing rules (one alert
    /// payload per line, appended). `NAME` is checked by the routes' parser (letters, digits,
    /// `-`, `_`).
    pub fn alert_queue(&self, name: &str) -> PathBuf {
        self.alerts_dir()
            .join("queue")
            .join(format!("{name}.jsonl"))
    }

    /// The saved settings; the defaults for a folder scored before settings were saved.
    pub fn settings(&self) -> Result<RunSettings> {
        let p = self.settings_file();
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::input(&p, format!("not the settings of a run: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunSettings::default()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Saves `settings` (atomically).
    pub fn save_settings(&self, settings: &RunSettings) -> Result<()> {
        let json = serde_json::to_string_pretty(settings)? + "\n";
        super::write_atomic(&self.settings_file(), json.as_bytes())
    }

    /// An error for a folder with no scored comments, saying what to run first.
    fn no_scored(&self) -> Error {
        Error::input(
            self.scored(),
            format!(
                "no scored comments (run `vocmine score INPUT --out {}` first)",
                self.dir.display()
            ),
        )
    }

    /// Every scored record: those of `scored.jsonl` (or `scored.parquet`) in file order, less
    /// the ids `serve` scored since, then the served records ([`RunDir::each_scored`]).
    pub fn read_scored(&self) -> Result<Vec<Scored>> {
        let mut out = Vec::new();
        self.each_scored(|s| out.push(s))?;
        Ok(out)
    }

    /// Streams every scored record to `f` ([`RunDir::iter_scored`]), stopping at the first
    /// error.
    pub fn each_scored(&self, mut f: impl FnMut(Scored)) -> Result<()> {
        for s in self.iter_scored()? {
            f(s?);
        }
        Ok(())
    }

    /// Every scored record, streamed: those of whichever file holds them (see
    /// [`RunDir::scored_records`]), one batch or line at a time, in file order, skipping the ids
    /// of `served.jsonl`; then the served records (the latest of each id, in the order of each
    /// id's first line). In memory: the served ids and where their latest lines are, and one
    /// batch. A folder with neither file is an error saying what to run.
    pub fn iter_scored(&self) -> Result<impl Iterator<Item = Result<Scored>>> {
        let mut served = super::served::ServedRecords::open(&self.served())?;
        let path = self.scored_records();
        if !path.exists() && served.is_empty() {
            return Err(self.no_scored());
        }
        type Records = Box<dyn Iterator<Item = Result<Scored>>>;
        let scored: Records = if self.records_are_parquet() {
            Box::new(super::parquet::ScoredParquetReader::open(&path)?.flat_map(
                |batch| -> Records {
                    match batch {
                        Ok(rows) => Box::new(rows.into_iter().map(|(s, _)| Ok(s))),
                        Err(e) => Box::new(std::iter::once(Err(e))),
                    }
                },
            ))
        } else if path.exists() {
            Box::new(scored_lines(&path)?)
        } else {
            Box::new(std::iter::empty())
        };
        let ids = std::mem::take(&mut served.ids);
        Ok(scored
            .filter(move |r| !matches!(r, Ok(s) if ids.contains_key(&s.id)))
            .chain(served))
    }

    /// The topic assignments by id (empty when `topics` has not run): `topics/assignments.jsonl`,
    /// else the topics the rows of a Parquet run carry.
    pub fn read_assignments(&self) -> Result<HashMap<String, TopicTag>> {
        let p = self.assignments();
        if !p.exists() {
            if self.records_are_parquet() {
                return super::parquet::read_parquet_topics(&self.scored_records());
            }
            return Ok(HashMap::new());
        }
        read_topic_assignments(&p)
    }

    /// Checks that the folder has scored comments (a clear error saying what to run if not).
    pub fn require_scored(&self) -> Result<()> {
        if self.scored_records().exists() {
            Ok(())
        } else {
            Err(self.no_scored())
        }
    }
}

/// Reads topic assignments (`{"id", "topic", "label"}` lines) into a map by id.
pub fn read_topic_assignments(path: &Path) -> Result<HashMap<String, TopicTag>> {
    #[derive(Deserialize)]
    struct Line {
        id: String,
        topic: i64,
        #[serde(default)]
        label: String,
        #[serde(default)]
        found: Option<i64>,
        #[serde(default)]
        theme: Option<i64>,
        #[serde(default)]
        theme_label: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line)
            .map_err(|e| Error::input(path, format!("line {}: {e}", i + 1)))?;
        out.insert(
            l.id,
            TopicTag {
                topic: l.topic,
                label: l.label,
                found: l.found,
                theme: l.theme.map(|t| (t, l.theme_label.unwrap_or_default())),
            },
        );
    }
    Ok(out)
}

/// Streams a file of [`Scored`] lines (a run's `scored.jsonl`, or any such file) with topic
/// tags joined by id; a line that is not a scored record is an error naming file and line.
pub fn read_scored_file<'a>(
    path: &Path,
    topics: &'a HashMap<String, TopicTag>,
) -> Result<impl Iterator<Item = Result<(Scored, Option<TopicTag>)>> + 'a> {
    Ok(scored_lines(path)?.map(move |r| {
        r.map(|s| {
            let t = topics.get(&s.id).cloned();
            (s, t)
        })
    }))
}

/// Streams a file of [`Scored`] lines (blank lines skipped; errors name file and line).
fn scored_lines(path: &Path) -> Result<impl Iterator<Item = Result<Scored>>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let lines = std::io::BufReader::new(f).lines().enumerate();
    let path = path.to_path_buf();
    Ok(lines.filter_map(move |(i, line)| {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(Error::io(&path, e))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str::<Scored>(&line).map_err(|e| {
                Error::input(&path, format!("line {}: not a scored record: {e}", i + 1))
            }),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_when_absent_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.settings().unwrap(), RunSettings::default());
        let s = RunSettings {
            mask_pii: false,
            tier_weights: BTreeMap::from([("vip".to_string(), 3.0)]),
        };
        run.save_settings(&s).unwrap();
        assert_eq!(run.settings().unwrap(), s);
        std::fs::write(run.settings_file(), "{oops").unwrap();
        let e = run.settings().unwrap_err().to_string();
        assert!(e.contains("settings.json"), "{e}");
    }

    #[test]
    fn a_folder_without_scored_comments_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = RunDir::new(dir.path())
            .read_scored()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scored.jsonl") && e.contains("vocmine score"),
            "{e}"
        );
        assert!(RunDir::new(dir.path())
            .read_assignments()
            .unwrap()
            .is_empty());
    }
}
