//! `POST /score`: a request's comments are read and validated exactly as a `.jsonl` input of
//! `vocmine score` ([`Reader::from_jsonl`]), then queued for one encoder worker thread that
//! batches concurrent requests together (dynamic batching: it waits at most `batch_wait` for
//! more comments after the first, up to `max_batch`) and runs them through the scoring run's
//! own stages ([`ScoreStages`]). With an index, scored comments are upserted by id and a
//! committer thread commits every few seconds; readers are never blocked. With the run folder
//! of the index, they are also appended to its records (`RUN/served.jsonl`, synced before each
//! commit), and with alerts an alerts thread delivers the run's alerts ([`super::alerting`]).

use super::alerting::{AlertConfig, Alerter};
use super::metrics::Metrics;
use crate::classify::Head;
use crate::encode::Encoder;
use crate::index::{tantivy_err, CommitPayload, SearchIndex};
use crate::ingest::{ColumnMap, Item, Reader};
use crate::pipeline::{empty_text_reject, ScoreStages};
use crate::record::{Comment, Reject, Scored};
use crate::text::normalise::NormaliseConfig;
use crate::text::segment::Segmenter;
use crate::workspace::{RunDir, ServedWriter};
use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tantivy::{IndexWriter, Term};

/// The name request items are read under: rejects carry it as their `file`, and the item's
/// 1-based position in `comments` as their `line`.
pub const REQUEST_SOURCE: &str = "request";

/// What scores comments: the model, loaded once, moved into the encoder worker thread.
pub struct Scorer {
    /// The encoder.
    pub encoder: Encoder,
    /// The task heads.
    pub heads: Vec<Head>,
    /// The segmenter.
    pub segmenter: Segmenter,
    /// Normalisation (PII masking).
    pub normalise: NormaliseConfig,
    /// The model version written into each record.
    pub model_version: String,
    /// The aspect heads, when the tasks name them.
    pub aspects: Option<crate::aspects::AspectModel>,
}

/// The outcome of one item of a request.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// Scored: the `scored.jsonl` record.
    Scored(Box<Scored>),
    /// Rejected, with the reason.
    Rejected(Reject),
}

/// The answer to `POST /score`.
#[derive(Debug, Serialize)]
pub struct ScoreResponse {
    /// The model version.
    pub model: String,
    /// The scored records, in request order.
    pub scored: Vec<Scored>,
    /// The rejected items (`line` is the item's 1-based position in `comments`).
    pub rejected: Vec<Reject>,
}

/// Reads the body of a `POST /score` request: `{"comments": [...]}`. A malformed request
/// (not JSON, no `comments` array, more than `max_comments` items) is an error naming the
/// field; a bad item is a [`Reject`] in the returned list, not an error.
pub fn parse_request(
    body: &[u8],
    max_comments: usize,
) -> std::result::Result<Vec<Item>, (u16, String)> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| (400, format!("body: not a JSON document: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err((
            400,
            "body: expected a JSON object {\"comments\": [...]}".into(),
        ));
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "comments") {
        return Err((400, format!("{k}: unknown field (known: comments)")));
    }
    let items = match obj.remove("comments") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err((400, "comments: expected an array of objects".into())),
        None => {
            return Err((
                400,
                "comments: missing (expected {\"comments\": [...]})".into(),
            ))
        }
    };
    if items.len() > max_comments {
        return Err((
            413,
            format!(
                "comments: {} items; at most {max_comments} a request (split the batch)",
                items.len()
            ),
        ));
    }
    let mut jsonl = Vec::with_capacity(body.len() + items.len());
    for item in &items {
        // compact JSON never holds a raw newline: one item a line
        serde_json::to_writer(&mut jsonl, item).map_err(|e| (400, format!("comments: {e}")))?;
        jsonl.push(b'\n');
    }
    let reader = Reader::from_jsonl(REQUEST_SOURCE, jsonl, ColumnMap::default());
    reader
        .map(|r| r.map_err(|e| (400, format!("comments: {e}"))))
        .collect()
}

struct Job {
    comments: Vec<Comment>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Outcome>>>,
}

/// The index side of the server: the writer (upserts by id), its commit schedule, and the
/// run's served records.
struct IndexSink {
    index: Arc<SearchIndex>,
    writer: Mutex<IndexWriter>,
    pending: AtomicUsize,
    upserts: Mutex<u64>,
    tier_weights: BTreeMap<String, f64>,
    /// `RUN/served.jsonl`, when the index is a run folder's.
    served: Option<Mutex<ServedWriter>>,
    /// Batches appended to `served`, and those of them synced to disk.
    appended: AtomicU64,
    durable: Arc<AtomicU64>,
}

impl IndexSink {
    fn upsert(&self, records: &[Scored]) -> Result<()> {
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(served) = &self.served {
            let mut served = served.lock().unwrap_or_else(|e| e.into_inner());
            served.append(records)?;
            self.appended.fetch_add(1, Ordering::SeqCst);
        }
        for s in records {
            w.delete_term(Term::from_field_text(self.index.fields().id, &s.id));
            w.add_document(self.index.document(s, None, &self.tier_weights))
                .map_err(|e| tantivy_err(self.index.dir(), e))?;
        }
        self.pending.fetch_add(records.len(), Ordering::SeqCst);
        Ok(())
    }

    /// Syncs the served records (compacting them when superseded lines outnumber the live
    /// ones: [`ServedWriter::compact_if_large`]), then commits what was upserted since the last
    /// commit; returns whether it committed.
    fn commit(&self) -> Result<bool> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let appended = self.appended.load(Ordering::SeqCst);
        if let (Some(served), true) = (
            &self.served,
            appended != self.durable.load(Ordering::SeqCst),
        ) {
            let mut served = served.lock().unwrap_or_else(|e| e.into_inner());
            served.sync()?;
            self.durable.store(appended, Ordering::SeqCst);
            if let Err(e) = served.compact_if_large() {
                eprintln!("compacting the served records failed: {e}");
            }
        }
        let n = self.pending.swap(0, Ordering::SeqCst);
        if n == 0 {
            return Ok(false);
        }
        let mut total = self.upserts.lock().unwrap_or_else(|e| e.into_inner());
        *total += n as u64;
        let payload = CommitPayload {
            records: *total,
            source: "vocmine serve: POST /score".into(),
            complete: true,
        };
        let mut prepared = w
            .prepare_commit()
            .map_err(|e| tantivy_err(self.index.dir(), e))?;
        prepared.set_payload(&serde_json::to_string(&payload)?);
        prepared
            .commit()
            .map_err(|e| tantivy_err(self.index.dir(), e))?;
        Ok(true)
    }
}

/// Settings of the scoring queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// After the first comment of a batch, wait at most this long for more.
    pub batch_wait: Duration,
    /// Comments per encoder batch at most.
    pub max_batch: usize,
    /// Comments waiting in the queue at most; more are answered 503.
    pub max_queued: usize,
    /// Commit the index this often when something was upserted.
    pub commit_every: Duration,
}

/// The handle the handlers use: a queue to the encoder worker.
pub struct ScoreQueue {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    model: String,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
    sink: Option<Arc<IndexSink>>,
    alerter: Mutex<Option<Alerter>>,
    metrics: Arc<Metrics>,
}

/// Why a request could not be queued.
#[derive(Debug)]
pub enum QueueError {
    /// The queue is full: try again later (503).
    Full,
    /// The server is shutting down (503).
    Closed,
}

impl ScoreQueue {
    /// Starts the encoder worker (and, with `index`, the committer; with `run`, the folder
    /// the index belongs to, the served records; with `alerts` too, the alerts thread). Fails
    /// when the index is being written by another process, or alerts have no index and run.
    pub fn start(
        scorer: Scorer,
        index: Option<(Arc<SearchIndex>, BTreeMap<String, f64>)>,
        run: Option<RunDir>,
        alerts: Option<AlertConfig>,
        cfg: QueueConfig,
        metrics: Arc<Metrics>,
    ) -> Result<ScoreQueue> {
        if let Some(a) = &alerts {
            if index.is_none() || run.is_none() {
                return Err(Error::Invalid(
                    "alerts after /score batches need a run folder: --score --index RUN".into(),
                ));
            }
            a.options.load_routes()?;
        }
        let durable = Arc::new(AtomicU64::new(0));
        let sink = match index {
            Some((index, tier_weights)) => {
                let writer = index.index().writer(100_000_000).map_err(|e| match e {
                    tantivy::TantivyError::LockFailure(..) => Error::Index(format!(
                        "{}: another process is writing this index; wait for it to finish",
                        index.dir().display()
                    )),
                    e => tantivy_err(index.dir(), e),
                })?;
                let served = match &run {
                    Some(run) => Some(Mutex::new(ServedWriter::open(run)?)),
                    None => None,
                };
                Some(Arc::new(IndexSink {
                    index,
                    writer: Mutex::new(writer),
                    pending: AtomicUsize::new(0),
                    upserts: Mutex::new(0),
                    tier_weights,
                    served,
                    appended: AtomicU64::new(0),
                    durable: durable.clone(),
                }))
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let model = scorer.model_version.clone();
        let worker = {
            let (queued, sink, metrics, cfg) =
                (queued.clone(), sink.clone(), metrics.clone(), cfg.clone());
            std::thread::Builder::new()
                .name("vocmine-encoder".into())
                .spawn(move || worker_loop(scorer, rx, &cfg, &queued, sink.as_deref(), &metrics))
                .map_err(|e| Error::Invalid(format!("cannot start the encoder thread: {e}")))?
        };
        let stop = Arc::new(AtomicBool::new(false));
        let committer = match &sink {
            Some(sink) => {
                let (sink, stop, metrics) = (sink.clone(), stop.clone(), metrics.clone());
                let every = cfg.commit_every;
                Some(
                    std::thread::Builder::new()
                        .name("vocmine-commit".into())
                        .spawn(move || {
                            let tick = Duration::from_millis(50).min(every);
                            let mut last = Instant::now();
                            while !stop.load(Ordering::SeqCst) {
                                std::thread::sleep(tick);
                                if last.elapsed() >= every {
                                    last = Instant::now();
                                    match sink.commit() {
                                        Ok(c) => metrics.indexed(0, u64::from(c)),
                                        Err(e) => eprintln!("index commit failed: {e}"),
                                    }
                                }
                            }
                        })
                        .map_err(|e| {
                            Error::Invalid(format!("cannot start the commit thread: {e}"))
                        })?,
                )
            }
            None => None,
        };
        let alerter = match (run, alerts) {
            (Some(run), Some(a)) => Some(Alerter::start(run, a, durable, metrics.clone())?),
            _ => None,
        };
        Ok(ScoreQueue {
            tx: Mutex::new(Some(tx)),
            queued,
            max_queued: cfg.max_queued,
            model,
            worker: Mutex::new(Some(worker)),
            committer: Mutex::new(committer),
            stop,
            sink,
            alerter: Mutex::new(alerter),
            metrics,
        })
    }

    /// The model version.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Queues `comments` for scoring; the outcomes come back in order on the receiver.
    pub fn submit(
        &self,
        comments: Vec<Comment>,
    ) -> std::result::Result<tokio::sync::oneshot::Receiver<Result<Vec<Outcome>>>, QueueError> {
        let n = comments.len();
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.max_queued && before > 0 {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(QueueError::Full);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|tx| tx.send(Job { comments, reply })) {
            Some(Ok(())) => Ok(rx),
            _ => {
                self.queued.fetch_sub(n, Ordering::SeqCst);
                Err(QueueError::Closed)
            }
        }
    }

    /// Stops taking jobs, lets the worker finish the queued ones, syncs the served records
    /// and commits the index, then lets the alerts thread deliver what the last batches raised.
    pub fn shutdown(&self) -> Result<()> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.join();
        }
        let committed = match &self.sink {
            Some(sink) => sink.commit().map(|c| self.metrics.indexed(0, u64::from(c))),
            None => Ok(()),
        };
        if let Some(a) = self
            .alerter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            a.finish();
        }
        committed
    }
}

fn worker_loop(
    scorer: Scorer,
    rx: mpsc::Receiver<Job>,
    cfg: &QueueConfig,
    queued: &AtomicUsize,
    sink: Option<&IndexSink>,
    metrics: &Metrics,
) {
    let stages = ScoreStages {
        encoder: &scorer.encoder,
        heads: &scorer.heads,
        segmenter: &scorer.segmenter,
        normalise: scorer.normalise,
        keep_tokens: false,
        model_version: &scorer.model_version,
        aspects: scorer.aspects.as_ref(),
    };
    let mut concurrent = false;
    while let Some(mut jobs) = gather(&rx, cfg, &mut concurrent) {
        let n: usize = jobs.iter().map(|j| j.comments.len()).sum();
        queued.fetch_sub(n, Ordering::SeqCst);
        metrics.batch(n);
        // the whole batch inside the encoder's pool: its stages' own `install`s then run in
        // place, rather than each handing over to a pool thread and back (a wake-up each)
        let done = scorer
            .encoder
            .pool()
            .install(|| run_batch(&stages, &mut jobs, sink, metrics));
        match done {
            Ok(outs) => {
                for (job, out) in jobs.into_iter().zip(outs) {
                    let _ = job.reply.send(Ok(out));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Invalid(msg.clone())));
                }
            }
        }
    }
}

/// The next encoder batch: the first job to come, every job already queued behind it (up to
/// `max_batch` comments), and, when requests overlap, those that come within `batch_wait` of
/// the first. `concurrent` carries over between calls: it says whether the last batch held
/// more than one request. A lone client (each request alone in its batch, none queued while
/// the last ran) is scored at once: waiting for company that cannot come would only add
/// `batch_wait` to every round trip. None when the queue is closed and empty.
fn gather(rx: &mpsc::Receiver<Job>, cfg: &QueueConfig, concurrent: &mut bool) -> Option<Vec<Job>> {
    let (first, backlog) = match rx.try_recv() {
        Ok(j) => (j, true),
        Err(mpsc::TryRecvError::Empty) => (rx.recv().ok()?, false),
        Err(mpsc::TryRecvError::Disconnected) => return None,
    };
    let deadline = Instant::now() + cfg.batch_wait;
    let mut n = first.comments.len();
    let mut jobs = vec![first];
    while n < cfg.max_batch {
        match rx.try_recv() {
            Ok(j) => {
                n += j.comments.len();
                jobs.push(j);
            }
            Err(_) => break,
        }
    }
    if *concurrent || backlog || jobs.len() > 1 {
        while n < cfg.max_batch {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(j) => {
                    n += j.comments.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
    }
    *concurrent = jobs.len() > 1;
    Some(jobs)
}

/// Scores every job's comments as one batch; returns each job's outcomes in its order.
fn run_batch(
    stages: &ScoreStages,
    jobs: &mut [Job],
    sink: Option<&IndexSink>,
    metrics: &Metrics,
) -> Result<Vec<Vec<Outcome>>> {
    let all: Vec<(usize, Comment)> = jobs
        .iter_mut()
        .enumerate()
        .flat_map(|(j, job)| {
            std::mem::take(&mut job.comments)
                .into_iter()
                .map(move |c| (j, c))
        })
        .collect();
    let (owners, comments): (Vec<usize>, Vec<Comment>) = all.into_iter().unzip();
    let normed = stages.normalise(&comments);
    let mut outs: Vec<Vec<Option<Outcome>>> = vec![Vec::new(); jobs.len()];
    let mut keep = Vec::with_capacity(comments.len());
    let mut slots = Vec::with_capacity(comments.len());
    for ((c, (n, h)), &j) in comments.into_iter().zip(normed).zip(&owners) {
        if n.text.is_empty() {
            outs[j].push(Some(Outcome::Rejected(empty_text_reject(&c))));
        } else {
            slots.push((j, outs[j].len()));
            outs[j].push(None);
            keep.push((c, n, h));
        }
    }
    let batch = stages.score(keep)?;
    let records: Vec<Scored> = batch.records.into_iter().map(|(s, _)| s).collect();
    if let Some(sink) = sink {
        sink.upsert(&records)?;
        metrics.indexed(records.len() as u64, 0);
    }
    for ((j, k), s) in slots.into_iter().zip(records) {
        outs[j][k] = Some(Outcome::Scored(Box::new(s)));
    }
    Ok(outs
        .into_iter()
        .map(|v| v.into_iter().flatten().collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_as_a_jsonl_input_with_per_item_rejects() {
        let body = br#"{"comments":[{"text":"fine"},{"id":7,"text":"x","rating":"abc"},
            {"text":5},3,{"id":"a","text":"one"},{"id":"a","text":"two"},{"id":"b"}]}"#;
        let items = parse_request(body, 10).unwrap();
        assert_eq!(items.len(), 7);
        let reasons: Vec<(u64, Option<&str>)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Reject(r) => Some((r.line, r.field.as_deref())),
                Item::Comment(_) => None,
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                (2, Some("rating")),
                (3, Some("text")),
                (4, None),
                (6, Some("id")),
                (7, Some("text"))
            ]
        );
        let Item::Comment(c) = &items[0] else {
            panic!("{:?}", items[0])
        };
        assert_eq!(c.id, crate::ingest::content_id("fine"));
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let e = |b: &[u8]| parse_request(b, 2).unwrap_err();
        assert_eq!(e(b"nope").0, 400);
        assert!(e(b"[]").1.starts_with("body:"));
        assert!(e(b"{}").1.starts_with("comments:"));
        assert!(e(br#"{"comments":{}}"#).1.starts_with("comments:"));
        assert!(e(br#"{"comments":[],"x":1}"#).1.starts_with("x:"));
        let (status, msg) = e(br#"{"comments":[{"text":"a"},{"text":"b"},{"text":"c"}]}"#);
        assert_eq!(status, 413);
        assert!(msg.contains("at most 2"), "{msg}");
    }

    fn job(id: &str) -> Job {
        let c: Comment = serde_json::from_value(serde_json::json!({"id": id, "text": id})).unwrap();
        Job {
            comments: vec![c],
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.comments[0].id.as_str()).collect()
    }

    #[test]
    fn a_lone_client_is_scored_at_once_and_overlapping_requests_are_batched() {
        // a wait long enough that a test which waited it would be seen to hang
        let cfg = QueueConfig {
            batch_wait: Duration::from_secs(600),
            max_batch: 4,
            max_queued: 100,
            commit_every: Duration::from_secs(1),
        };
        let (tx, rx) = mpsc::channel();
        let mut concurrent = false;
        // one request, sent while the encoder was idle, nothing behind it, the last batch
        // alone: no wait
        let lone = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(job("a")).unwrap();
            tx
        });
        let t = Instant::now();
        assert_eq!(ids(&gather(&rx, &cfg, &mut concurrent).unwrap()), ["a"]);
        assert!(!concurrent);
        assert!(t.elapsed() < Duration::from_secs(60));
        let tx = lone.join().unwrap();
        // requests queued while the encoder was busy: all of them, up to max_batch, and no
        // wait once the batch is full
        for id in ["b", "c", "d", "e", "f"] {
            tx.send(job(id)).unwrap();
        }
        assert_eq!(
            ids(&gather(&rx, &cfg, &mut concurrent).unwrap()),
            ["b", "c", "d", "e"]
        );
        assert!(concurrent);
        // after an overlapping batch, the next one waits (up to batch_wait) for company
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(job("g")).unwrap();
            tx
        });
        let cfg = QueueConfig {
            batch_wait: Duration::from_secs(30),
            max_batch: 2,
            ..cfg
        };
        assert_eq!(
            ids(&gather(&rx, &cfg, &mut concurrent).unwrap()),
            ["f", "g"]
        );
        drop(late.join().unwrap());
        // the queue closed and empty: no batch
        assert!(gather(&rx, &cfg, &mut concurrent).is_none());
    }
}
