//! The custody trail: one [`Record`] per model call (who asked, which tier and route, every
//! attempt, what served, timings, tokens, PII counts by type, how it ended), kept in a
//! [`store::CustodyStore`] (SQLite in a file, or with `[cluster] postgres` the PostgreSQL the
//! cluster's nodes share: [`postgres`]) and read back by `GET /v1/custody/{id}` and
//! `GET /v1/usage`. Every record names the node that wrote it (`node`, `[cluster] node_id`).
//!
//! A worker never touches the database. It builds the record in its log phase and offers it
//! to a bounded channel (`try_send`); one writer thread (`ringway-custody`) writes what waits
//! in batched transactions. A full channel drops the record, counts it
//! (`ringway_custody_dropped_total`) and warns at most once per [`crate::offload::WARN_EVERY`].
//! Only requests that passed authentication are recorded (the proxy's log phase decides).
//!
//! Lookups have their own path: a second bounded channel to a reader thread
//! (`ringway-custody-read`) with its own read-only connection (the store's
//! [`store::CustodyStore::reader`]), so a usage query over months of records never holds up
//! the writer; in WAL mode the two do not lock each other out. The answer comes back on a reply
//! channel the worker polls with its runtime's timer; a lookup the queue has no room for is
//! refused at once as busy, and one whose asker gave up (after [`LOOKUP_WAIT`]) is skipped. A
//! lookup sees the records the writer has committed, so a record can be missing for the moment
//! between its answer and the writer's next batch. The writer prunes records older than the
//! retention at start (before the reader answers anything) and every [`PRUNE_EVERY`]; the main
//! thread [`flush`]es it at exit.
//!
//! With PostgreSQL the same threads talk to it ([`postgres`]); a writer facing an unreachable
//! database keeps up to `[cluster] postgres_buffer_records` records in memory (oldest dropped
//! and counted past that, [`buffer_dropped`]) and writes them when it is back, and the reader
//! fails a lookup at once while the database is down (the worker answers 503).
//!
//! What a record never holds: a gateway key (only its name), a credential, prompt or answer
//! text, a PII value (only counts per entity type).

pub mod postgres;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::calendar::DAY_MS;
use crate::offload::Drops;
use crate::usage::Usage;
use store::{CustodyReader, CustodyStore, Sqlite, StoreError, Stored, UsageQuery, UsageRows};

/// Records that may wait for the writer by default (`[custody] channel_records`).
pub const DEFAULT_CHANNEL_RECORDS: usize = 16 * 1024;
/// Smallest and largest `channel_records` accepted.
pub const CHANNEL_RECORDS_RANGE: std::ops::RangeInclusive<usize> = 1..=1024 * 1024;
/// Lookups that may wait for the reader by default (`[custody] read_queue`).
pub const DEFAULT_READ_QUEUE: usize = 64;
/// Smallest and largest `read_queue` accepted.
pub const READ_QUEUE_RANGE: std::ops::RangeInclusive<usize> = 1..=4096;
/// Longest a worker waits for a lookup's answer before it answers 503; the reader skips a
/// lookup whose asker has given up.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// Most records written in one transaction: a batch is whatever waits when the writer wakes,
/// up to this, so a burst costs one commit per this many records.
pub const BATCH_RECORDS: usize = 512;
/// Smallest `channel_records` with which the writer sleeps between batches
/// ([`GATHER`](crate::offload::GATHER)); a smaller channel would drop records above its size
/// per 10 ms, so its writer is woken per record instead.
pub const GATHER_MIN_CHANNEL: usize = 1024;
/// Days a record is kept by default (`[custody] retention_days`; 0 keeps them forever).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// How often the writer removes records past the retention (also once at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Test hook: milliseconds the writer sleeps before each batch, read once at start, to stand
/// for a disk that stalls (tests/custody.rs measures that the workers do not notice). Never
/// set it in production.
pub const STALL_ENV: &str = "RINGWAY_TEST_CUSTODY_STALL_MS";
/// Longest stall the hook accepts.
const MAX_STALL: Duration = Duration::from_secs(60);
/// Attempts kept in one record; more (a long failover with retries) are counted, not kept.
pub const MAX_ATTEMPTS: usize = 32;

/// `[custody]`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The SQLite file; None: custody is on because `[cluster] postgres` is set (with it, the
    /// records go to PostgreSQL and a path is not used).
    pub path: Option<PathBuf>,
    /// Keep records this many days (0: forever).
    pub retention_days: u32,
    /// Records that may wait for the writer; past this they are dropped.
    pub channel_records: usize,
    /// Lookups that may wait for the reader; past this they are refused (503).
    pub read_queue: usize,
}

/// One try of one target.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Attempt {
    /// `provider/model`.
    pub target: String,
    /// The provider's region (residency tiers fill it).
    pub region: Option<String>,
    /// The provider's jurisdiction (residency tiers fill it).
    pub jurisdiction: Option<String>,
    /// The provider's status, when it answered.
    pub status: Option<u16>,
    /// Why the gateway moved on (the fallback reason label), when it did.
    pub failure: Option<&'static str>,
    /// When the attempt started, after the request's head.
    #[serde(rename = "start_ms", serialize_with = "millis")]
    pub start: Duration,
    /// How long it took until its answer's head (or its failure).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

/// Tokens as a record says them (the meaning of [`Usage`]'s fields).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Tokens {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
}

/// One request's custody record, as `GET /v1/custody/{id}` returns it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Record {
    /// The request id (`x-ringway-request-id`).
    pub id: String,
    /// When the request's head was complete, in Unix milliseconds (`time`: RFC 3339 UTC).
    #[serde(rename = "time", serialize_with = "rfc3339")]
    pub time_ms: i64,
    /// The node that served it (`[cluster] node_id`; the writer fills it in). Records written
    /// before this field existed lack it.
    pub node: String,
    /// The gateway key's name (never the key; None without keys: only requests that passed
    /// authentication are recorded).
    pub key: Option<String>,
    /// The client's dialect (`openai`, `anthropic`, `responses`).
    pub dialect: &'static str,
    /// The endpoint's metrics label.
    pub endpoint: &'static str,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The residency tier the request ran in (residency tiers fill it).
    pub tier: Option<String>,
    /// The route's name, or `direct`.
    pub route: Option<String>,
    /// Every attempt, in order (at most [`MAX_ATTEMPTS`]).
    pub attempts: Vec<Attempt>,
    /// `provider/model` of the answer the client got (None: no provider answered).
    pub served_by: Option<String>,
    /// The answer was an event stream.
    pub stream: bool,
    /// Time to first token (streams).
    #[serde(rename = "ttft_ms", serialize_with = "opt_millis")]
    pub ttft: Option<Duration>,
    /// Head received → response written.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// The provider's usage.
    #[serde(serialize_with = "tokens")]
    pub usage: Option<Usage>,
    /// `usage` is (in part) the gateway's estimate: a stream cut short before its provider
    /// said its final usage. Records written before this field existed lack it (read: false).
    pub usage_estimated: bool,
    /// What translation dropped, changed or approximated (`[{"code","field","lossy"}]`; see
    /// `crate::translate::ledger`). Records written before this field existed lack it.
    pub ledger: crate::translate::Ledger,
    /// PII entities substituted, by type (counts only, never values).
    pub pii: BTreeMap<String, u64>,
    /// The status the client got (0: none could be sent).
    pub status: u16,
    /// The error kind (None on success; `provider_status` for a relayed provider error).
    pub error: Option<&'static str>,
}

/// A duration as milliseconds with microsecond precision.
fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

fn opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

fn rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(*ms).unwrap_or(0));
    let mut out = Vec::with_capacity(24);
    crate::calendar::rfc3339_millis(&mut out, t);
    s.serialize_str(std::str::from_utf8(&out).unwrap_or_default())
}

fn tokens<S: Serializer>(u: &Option<Usage>, s: S) -> Result<S::Ok, S::Error> {
    u.map(|u| Tokens {
        input: u.input,
        output: u.output,
        cache_read: u.cache_read,
        cache_write: u.cache_write,
        reasoning: u.reasoning,
    })
    .serialize(s)
}

/// A lookup's answer, or why there is none.
pub type Answer<T> = Result<T, StoreError>;

/// What the writer is handed.
enum Msg {
    Record(Box<Record>),
    /// Say (on this channel) when everything handed over before it is written.
    Flush(Sender<()>),
}

/// What the reader is handed.
enum Lookup {
    Get(String, crate::offload::Reply<Answer<Option<Stored>>>),
    Usage(UsageQuery, crate::offload::Reply<Answer<UsageRows>>),
}

/// A lookup and whether its asker has stopped waiting for it.
struct Asked {
    lookup: Lookup,
    abandoned: Arc<AtomicBool>,
}

static SINK: OnceLock<SyncSender<Msg>> = OnceLock::new();
static LOOKUPS: OnceLock<SyncSender<Asked>> = OnceLock::new();
static DROPPED: Drops = Drops::new();
static WRITE_FAILED: Drops = Drops::new();
/// Records dropped from the backlog kept while PostgreSQL was unreachable.
static BUFFER_DROPPED: Drops = Drops::new();
/// Records in that backlog now.
static BUFFERED: AtomicU64 = AtomicU64::new(0);

/// Open the store and its reader and start the writer and reader threads (once per process: a
/// reload cannot move the store). Runs on the main thread at start: opening the file or
/// reaching PostgreSQL may block (the latter at most about
/// [`crate::cluster::START_PROBE_TIMEOUT`]). Fails when the file cannot be opened as a
/// database (in WAL mode), or when `cluster.postgres` is set and cannot be reached or migrated
/// (then as the config's `FILE:LINE: cluster.postgres: reason`).
pub fn start(settings: &Settings, cluster: &crate::cluster::Settings) -> Result<(), String> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let store: Box<dyn CustodyStore> = match (&cluster.postgres, &settings.path) {
        (Some(url), path) => {
            if let Some(p) = path {
                crate::log::warn(format_args!(
                    "custody.path {} is not used: with [cluster] postgres the records go to PostgreSQL",
                    p.display()
                ));
            }
            crate::cluster::health().postgres.set_configured(true);
            Box::new(postgres::Postgres::open(
                url,
                cluster.postgres_buffer_records,
            )?)
        }
        (None, Some(path)) => Box::new(Sqlite::open(path).map_err(|e| e.0)?),
        (None, None) => return Err("custody: no store (set custody.path)".into()),
    };
    let reader = store.reader().map_err(|e| e.0)?;
    let node = cluster.node_id.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.channel_records);
    let (ask_tx, ask_rx) = std::sync::mpsc::sync_channel(settings.read_queue);
    if SINK.set(tx).is_err() || LOOKUPS.set(ask_tx).is_err() {
        return Ok(());
    }
    let stall = std::env::var(STALL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, |ms| {
            Duration::from_millis(ms).min(MAX_STALL)
        });
    if !stall.is_zero() {
        crate::log::warn(format_args!(
            "{STALL_ENV} is set: the custody writer sleeps {} ms before each batch (a test hook)",
            stall.as_millis()
        ));
    }
    let retention = settings.retention_days;
    // Gathering for 10 ms caps a channel at its size per 10 ms: only for channels that hold
    // far more than that at any real rate.
    let gather = settings.channel_records >= GATHER_MIN_CHANNEL;
    // The reader waits for the writer's first prune: a lookup must not see what retention
    // is about to remove.
    let (pruned_tx, pruned) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ringway-custody".into())
        .spawn(move || {
            write_loop(
                store,
                &rx,
                &Writing {
                    node,
                    retention,
                    stall,
                    gather,
                },
                Some(pruned_tx),
            )
        })
        .map_err(|e| format!("cannot start the custody writer: {e}"))?;
    std::thread::Builder::new()
        .name("ringway-custody-read".into())
        .spawn(move || {
            // Err: the writer is gone; the records already written can still be read.
            let _ = pruned.recv();
            read_loop(reader, &ask_rx);
        })
        .map_err(|e| format!("cannot start the custody reader: {e}"))?;
    Ok(())
}

/// Is the custody store on?
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Hand a record to the writer without waiting, or drop (and count) it when the writer is
/// behind.
pub fn submit(record: Record) {
    if let Some(tx) = SINK.get() {
        if tx.try_send(Msg::Record(Box::new(record))).is_err() {
            DROPPED.count("custody writer is behind: records");
        }
    }
}

/// A lookup on its way to the reader ([`crate::offload::Pending`]).
pub type Pending<T> = crate::offload::Pending<Answer<T>>;

impl<T> crate::offload::Gone for Answer<T> {
    fn gone() -> Self {
        Err(StoreError("custody reader gone".into()))
    }
}

fn ask<T>(
    queue: &SyncSender<Asked>,
    make: impl FnOnce(crate::offload::Reply<Answer<T>>) -> Lookup,
) -> Option<Pending<T>> {
    let (pending, reply, abandoned) = Pending::new();
    queue
        .try_send(Asked {
            lookup: make(reply),
            abandoned,
        })
        .ok()?;
    Some(pending)
}

/// Ask for the record of `id`. None: the store is off or the reader's queue is full (busy).
pub fn get(id: &str) -> Option<Pending<Option<Stored>>> {
    let id = id.to_owned();
    ask(LOOKUPS.get()?, |reply| Lookup::Get(id, reply))
}

/// Ask for usage sums. None: the store is off or the reader's queue is full (busy).
pub fn usage(q: UsageQuery) -> Option<Pending<UsageRows>> {
    ask(LOOKUPS.get()?, |reply| Lookup::Usage(q, reply))
}

/// Wait (at most `timeout`) until every record handed over so far is written: for the
/// process's last moments, never for a worker. False when the time ran out or the store is off.
pub fn flush(timeout: Duration) -> bool {
    SINK.get()
        .is_some_and(|tx| crate::offload::flush(tx, timeout, Msg::Flush))
}

/// Records dropped because the writer was behind.
pub fn dropped() -> u64 {
    DROPPED.total()
}

/// Records lost because the store refused a batch.
pub fn write_failed() -> u64 {
    WRITE_FAILED.total()
}

/// Records dropped, oldest first, from the backlog kept while PostgreSQL was unreachable (past
/// `[cluster] postgres_buffer_records`).
pub fn buffer_dropped() -> u64 {
    BUFFER_DROPPED.total()
}

/// Records waiting in that backlog now.
pub fn buffered() -> u64 {
    BUFFERED.load(Ordering::Relaxed)
}

/// Remove what is past the retention (none with `retention_days = 0`).
fn prune(store: &mut dyn CustodyStore, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    let now = crate::calendar::unix_millis(SystemTime::now());
    let before = now.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS));
    match store.prune(before) {
        Ok(0) => {}
        Ok(n) => crate::log::info(format_args!(
            "custody: {n} record(s) older than {retention_days} day(s) removed"
        )),
        Err(e) => crate::log::error(format_args!("custody: pruning failed: {e}")),
    }
}

/// How the writer thread works, fixed at start.
struct Writing {
    /// This node's id, written into every record.
    node: String,
    /// `retention_days` (0: forever).
    retention: u32,
    /// The test hook's sleep before each batch ([`STALL_ENV`]).
    stall: Duration,
    /// Sleep [`GATHER`](crate::offload::GATHER) after a batch that was not full.
    gather: bool,
}

/// The writer thread: prune (then say so on `pruned`), then per wake-up write what waits (up
/// to [`BATCH_RECORDS`]) in one transaction, then answer the flushes that came with it (after
/// the write, so the records before them are in); after a batch that was not full, sleep
/// [`GATHER`](crate::offload::GATHER) (when `gather`) so that records gather without waking it.
/// A store holding records back (its database unreachable) is woken to retry when it asks.
fn write_loop(
    mut store: Box<dyn CustodyStore>,
    rx: &Receiver<Msg>,
    how: &Writing,
    pruned: Option<Sender<()>>,
) {
    prune(store.as_mut(), how.retention);
    if let Some(pruned) = pruned {
        let _ = pruned.send(());
    }
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH_RECORDS);
    let mut later: Vec<Msg> = Vec::new();
    loop {
        let mut wait = next_prune.saturating_duration_since(Instant::now());
        if let Some(retry) = store.retry_in() {
            wait = wait.min(retry);
        }
        match rx.recv_timeout(wait) {
            Ok(first) => {
                if !how.stall.is_zero() {
                    std::thread::sleep(how.stall);
                }
                let mut records = 0usize;
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    match msg {
                        Msg::Record(mut r) => {
                            r.node.clone_from(&how.node);
                            batch.push(*r);
                            records += 1;
                        }
                        other => later.push(other),
                    }
                    if records >= BATCH_RECORDS {
                        break;
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = store.write_batch(&batch) {
                        for _ in 0..batch.len() {
                            WRITE_FAILED.count("custody store write failed: records");
                        }
                        crate::log::error(format_args!("custody: write failed: {e}"));
                    }
                    batch.clear();
                }
                if !later.is_empty() && store.retry_in().is_some() {
                    // A flush (the process's last moments) is the last chance for a backlog.
                    store.retry();
                    let left = buffered();
                    if left > 0 {
                        crate::log::warn(format_args!(
                            "custody: {left} record(s) still wait for PostgreSQL; they are lost if the process exits now"
                        ));
                    }
                }
                for msg in later.drain(..) {
                    if let Msg::Flush(ack) = msg {
                        let _ = ack.send(());
                    }
                }
                if records < BATCH_RECORDS && how.gather {
                    // Let records gather without a thread wake per record.
                    std::thread::sleep(crate::offload::GATHER);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if store.retry_in().is_some_and(|d| d.is_zero()) {
            store.retry();
        }
        if Instant::now() >= next_prune {
            prune(store.as_mut(), how.retention);
            next_prune = Instant::now() + PRUNE_EVERY;
        }
    }
}

/// The reader thread: answer each lookup in turn, skipping those nobody waits for any more.
fn read_loop(mut reader: Box<dyn CustodyReader>, rx: &Receiver<Asked>) {
    for asked in rx {
        if asked.abandoned.load(Ordering::Relaxed) {
            continue;
        }
        match asked.lookup {
            Lookup::Get(id, reply) => {
                let _ = reply.send(reader.get(&id));
            }
            Lookup::Usage(q, reply) => {
                let _ = reply.send(reader.usage(&q));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON shape the README documents.
    #[test]
    fn a_record_serialises_with_times_in_ms_and_no_key() {
        let r = Record {
            id: "rw-1".into(),
            time_ms: 1_795_000_000_250,
            key: Some("team-a".into()),
            dialect: "anthropic",
            endpoint: "messages",
            route: Some("fast".into()),
            attempts: vec![Attempt {
                target: "dead/never-up".into(),
                failure: Some("connect"),
                start: Duration::from_micros(120),
                duration: Duration::from_micros(1500),
                ..Attempt::default()
            }],
            ttft: Some(Duration::from_millis(12)),
            duration: Duration::from_millis(40),
            pii: BTreeMap::from([("email".to_owned(), 2)]),
            status: 200,
            ..Record::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["time"], "2026-11-18T11:06:40.250Z");
        assert_eq!(v["attempts"][0]["start_ms"], 0.12);
        assert_eq!(v["attempts"][0]["duration_ms"], 1.5);
        assert_eq!(v["attempts"][0]["failure"], "connect");
        assert_eq!(v["attempts"][0]["status"], serde_json::Value::Null);
        assert_eq!(v["ttft_ms"], 12.0);
        assert_eq!(v["usage"], serde_json::Value::Null);
        assert_eq!(v["usage_estimated"], false);
        assert_eq!(v["pii"]["email"], 2);
        assert_eq!(v["tier"], serde_json::Value::Null);
    }

    /// A store that fails every write: the writer keeps going and counts the loss. It notes
    /// the cut-offs it is asked to prune at.
    struct Broken(Arc<std::sync::Mutex<Vec<i64>>>);

    impl CustodyStore for Broken {
        fn write_batch(&mut self, _: &[Record]) -> Result<(), StoreError> {
            Err(StoreError("disk full".into()))
        }
        fn prune(&mut self, before: i64) -> Result<u64, StoreError> {
            self.0.lock().unwrap().push(before);
            Ok(0)
        }
        fn reader(&self) -> Result<Box<dyn CustodyReader>, StoreError> {
            Err(StoreError("no reader".into()))
        }
    }

    #[test]
    fn a_failing_store_counts_lost_records_and_still_flushes() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let prunes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Broken(prunes.clone());
        let (pruned_tx, pruned) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            write_loop(
                Box::new(store),
                &rx,
                &Writing {
                    node: "gw-test".into(),
                    retention: 30,
                    stall: Duration::ZERO,
                    gather: true,
                },
                Some(pruned_tx),
            );
        });
        pruned.recv().unwrap();
        let before = write_failed();
        tx.send(Msg::Record(Box::default())).unwrap();
        tx.send(Msg::Record(Box::default())).unwrap();
        let (ack, flushed) = std::sync::mpsc::channel();
        tx.send(Msg::Flush(ack)).unwrap();
        flushed.recv().unwrap();
        assert!(write_failed() >= before + 2);
        drop(tx);
        writer.join().unwrap();
        // Pruned once at start, at retention_days before now.
        let cutoffs = prunes.lock().unwrap().clone();
        assert_eq!(cutoffs.len(), 1);
        let want = crate::calendar::unix_millis(SystemTime::now()) - 30 * DAY_MS;
        assert!((want - cutoffs[0]).abs() < 60_000, "{cutoffs:?}");
    }

    /// A reader that answers every lookup with one record and counts the lookups it ran.
    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    impl CustodyReader for Counting {
        fn get(&mut self, id: &str) -> Result<Option<Stored>, StoreError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Some(Stored {
                key: None,
                json: id.to_owned(),
            }))
        }
        fn usage(&mut self, _: &UsageQuery) -> Result<UsageRows, StoreError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(UsageRows::default())
        }
    }

    /// The queue's bound refuses at once; a lookup whose asker dropped it is never run; the
    /// rest are answered in turn.
    #[test]
    fn the_read_queue_refuses_when_full_and_skips_abandoned_lookups() {
        let (queue, rx) = std::sync::mpsc::sync_channel(2);
        let first = ask(&queue, |r| Lookup::Get("a".into(), r)).unwrap();
        let given_up = ask(&queue, |r| Lookup::Get("b".into(), r)).unwrap();
        assert!(
            ask(
                &queue,
                |r: crate::offload::Reply<Answer<Option<Stored>>>| Lookup::Get("c".into(), r)
            )
            .is_none(),
            "full: refused, not queued"
        );
        drop(given_up);
        drop(queue);
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        read_loop(Box::new(Counting(ran.clone())), &rx);
        assert_eq!(
            ran.load(Ordering::Relaxed),
            1,
            "the abandoned one was skipped"
        );
        let got = first.try_take().unwrap().unwrap().unwrap();
        assert_eq!(got.json, "a");
    }
}
