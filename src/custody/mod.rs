//! The custody trail: one [`Record`] per model call (who asked, which tier and route, every
//! attempt, what served, timings, tokens, PII counts by type, how it ended), kept in a
//! [`store::CustodyStore`] (SQLite in a file) and read back by `GET /v1/custody/{id}` and
//! `GET /v1/usage`.
//!
//! A worker never touches the database. It builds the record in its log phase and offers it
//! to a bounded channel (`try_send`); one writer thread (`ringway-custody`) writes what waits
//! in batched transactions. A full channel drops the record, counts it
//! (`ringway_custody_dropped_total`) and warns at most once per [`crate::offload::WARN_EVERY`].
//! Only requests that passed authentication are recorded (the proxy's log phase decides).
//! Lookups travel the same channel (so a lookup sees every record handed over before it) and
//! come back on a reply channel the worker polls with its runtime's timer; a lookup the channel
//! has no room for is refused at once as busy. The writer prunes records older than the
//! retention at start and every [`PRUNE_EVERY`]; the main thread [`flush`]es it at exit.
//!
//! What a record never holds: a gateway key (only its name), a credential, prompt or answer
//! text, a PII value (only counts per entity type).

pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::offload::{Drops, DAY_MS};
use crate::usage::Usage;
use store::{CustodyStore, Sqlite, StoreError, Stored, UsageQuery, UsageRows};

/// Records that may wait for the writer by default (`[custody] channel_records`).
pub const DEFAULT_CHANNEL_RECORDS: usize = 16 * 1024;
/// Smallest and largest `channel_records` accepted.
pub const CHANNEL_RECORDS_RANGE: std::ops::RangeInclusive<usize> = 1..=1024 * 1024;
/// Most records written in one transaction: a batch is whatever waits when the writer wakes,
/// up to this, so a burst costs one commit per this many records.
pub const BATCH_RECORDS: usize = 512;
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
    /// The SQLite file.
    pub path: PathBuf,
    /// Keep records this many days (0: forever).
    pub retention_days: u32,
    /// Records that may wait for the writer; past this they are dropped.
    pub channel_records: usize,
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
    crate::offload::rfc3339_millis(&mut out, t);
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
    Get(String, Sender<Answer<Option<Stored>>>),
    Usage(UsageQuery, Sender<Answer<UsageRows>>),
    /// Say (on this channel) when everything handed over before it is written.
    Flush(Sender<()>),
}

static SINK: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: Drops = Drops::new();
static WRITE_FAILED: Drops = Drops::new();

/// Open the store and start the writer thread (once per process: a reload cannot move the
/// store). Runs on the main thread at start: opening the file may block. Fails when the file
/// cannot be opened as a database.
pub fn start(settings: &Settings) -> Result<(), String> {
    if SINK.get().is_some() {
        return Ok(());
    }
    let store = Sqlite::open(&settings.path).map_err(|e| e.0)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.channel_records);
    if SINK.set(tx).is_err() {
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
    std::thread::Builder::new()
        .name("ringway-custody".into())
        .spawn(move || write_loop(Box::new(store), &rx, retention, stall))
        .map_err(|e| format!("cannot start the custody writer: {e}"))?;
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

/// A lookup on its way: poll [`Pending::try_take`] (never blocks).
pub struct Pending<T>(Receiver<Answer<T>>);

impl<T> Pending<T> {
    /// The answer if it has come; `Some(Err)` when the writer is gone.
    pub fn try_take(&self) -> Option<Answer<T>> {
        match self.0.try_recv() {
            Ok(a) => Some(a),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(StoreError("custody writer gone".into()))),
        }
    }
}

fn ask<T>(make: impl FnOnce(Sender<Answer<T>>) -> Msg) -> Option<Pending<T>> {
    let tx = SINK.get()?;
    let (reply, pending) = std::sync::mpsc::channel();
    tx.try_send(make(reply)).ok()?;
    Some(Pending(pending))
}

/// Ask for the record of `id`. None: the store is off or its channel is full (busy).
pub fn get(id: &str) -> Option<Pending<Option<Stored>>> {
    let id = id.to_owned();
    ask(|reply| Msg::Get(id, reply))
}

/// Ask for usage sums. None: the store is off or its channel is full (busy).
pub fn usage(q: UsageQuery) -> Option<Pending<UsageRows>> {
    ask(|reply| Msg::Usage(q, reply))
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

/// Remove what is past the retention (none with `retention_days = 0`).
fn prune(store: &mut dyn CustodyStore, retention_days: u32) {
    if retention_days == 0 {
        return;
    }
    let now = crate::offload::unix_millis(SystemTime::now());
    let before = now.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS));
    match store.prune(before) {
        Ok(0) => {}
        Ok(n) => crate::log::info(format_args!(
            "custody: {n} record(s) older than {retention_days} day(s) removed"
        )),
        Err(e) => crate::log::error(format_args!("custody: pruning failed: {e}")),
    }
}

/// The writer thread: prune, then per wake-up write what waits (up to [`BATCH_RECORDS`]) in
/// one transaction, then answer the lookups and flushes that came with it (after the write,
/// so they see it).
fn write_loop(
    mut store: Box<dyn CustodyStore>,
    rx: &Receiver<Msg>,
    retention: u32,
    stall: Duration,
) {
    prune(store.as_mut(), retention);
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH_RECORDS);
    let mut later: Vec<Msg> = Vec::new();
    loop {
        let wait = next_prune.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(first) => {
                if !stall.is_zero() {
                    std::thread::sleep(stall);
                }
                let mut records = 0usize;
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    match msg {
                        Msg::Record(r) => {
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
                for msg in later.drain(..) {
                    match msg {
                        Msg::Get(id, reply) => {
                            let _ = reply.send(store.get(&id));
                        }
                        Msg::Usage(q, reply) => {
                            let _ = reply.send(store.usage(&q));
                        }
                        Msg::Flush(ack) => {
                            let _ = ack.send(());
                        }
                        Msg::Record(_) => {}
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_prune {
            prune(store.as_mut(), retention);
            next_prune = Instant::now() + PRUNE_EVERY;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
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
        assert_eq!(v["pii"]["email"], 2);
        assert_eq!(v["tier"], serde_json::Value::Null);
    }

    /// A store that fails every write: the writer keeps going and counts the loss; lookups
    /// still answer. It notes the cut-offs it is asked to prune at.
    struct Broken(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

    impl CustodyStore for Broken {
        fn write_batch(&mut self, _: &[Record]) -> Result<(), StoreError> {
            Err(StoreError("disk full".into()))
        }
        fn get(&mut self, _: &str) -> Result<Option<Stored>, StoreError> {
            Ok(None)
        }
        fn usage(&mut self, _: &UsageQuery) -> Result<UsageRows, StoreError> {
            Ok(UsageRows::default())
        }
        fn prune(&mut self, before: i64) -> Result<u64, StoreError> {
            self.0.lock().unwrap().push(before);
            Ok(0)
        }
    }

    #[test]
    fn a_failing_store_counts_lost_records_and_still_answers() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let prunes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Broken(prunes.clone());
        let writer =
            std::thread::spawn(move || write_loop(Box::new(store), &rx, 30, Duration::ZERO));
        let before = write_failed();
        tx.send(Msg::Record(Box::default())).unwrap();
        tx.send(Msg::Record(Box::default())).unwrap();
        let (reply, answer) = std::sync::mpsc::channel();
        tx.send(Msg::Get("x".into(), reply)).unwrap();
        assert_eq!(answer.recv().unwrap(), Ok(None));
        assert!(write_failed() >= before + 2);
        drop(tx);
        writer.join().unwrap();
        // Pruned once at start, at retention_days before now.
        let cutoffs = prunes.lock().unwrap().clone();
        assert_eq!(cutoffs.len(), 1);
        let want = crate::offload::unix_millis(SystemTime::now()) - 30 * DAY_MS;
        assert!((want - cutoffs[0]).abs() < 60_000, "{cutoffs:?}");
    }
}
