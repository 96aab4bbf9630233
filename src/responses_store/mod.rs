//! Stored responses (`store: true`, the Responses API's default): what makes
//! `previous_response_id`, `item_reference` to items the gateway issued, and
//! `GET`/`DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items` work, whichever
//! provider kind served.
//!
//! **What is kept.** Per response: the response object as the client got it, the input items
//! its turn added (as the client sent them, `item_reference`s replaced by their items), and the
//! id each input item is listed under. Output items are the response object's `output`. Every
//! row belongs to an [`Owner`] (the gateway key that made it); any other owner gets the same
//! "not found" as for an id never stored. Nothing is kept for `store: false`.
//!
//! **Chains, not copies.** A turn that continues another (`previous_response_id`) stores only
//! what it added and points at the one it continued; rebuilding a conversation walks the
//! chain, newest first, in one read on the reader thread (so a continued request costs the
//! worker one lookup). A chain is at most [`backend::MAX_CHAIN`] rows: the turn that would
//! make it longer stores the whole conversation and starts a new one. Storing each turn's
//! whole conversation instead would cost a long agent session (Codex sends one response per
//! tool step, hundreds per session) the square of its length in writes and bytes, and fill
//! `max_bytes` with copies; a chain costs it about one copy per 32 turns. An ancestor is kept
//! while any turn continuing it is (`kept_until`), but is visible to clients only for its own
//! retention; a deleted response that later turns continue is hidden and goes with the last
//! of them. So a deleted or expired response's content may live on as part of the
//! conversation a later turn continued, exactly as with a store that copies it into each turn.
//!
//! **Bounds.** Retention (`retention_hours`, default [`DEFAULT_RETENTION_HOURS`]) from when
//! the response was stored; stored bytes (`max_bytes`, the rows kept the shortest go first,
//! down to 90%); the largest response stored (`max_response_bytes`, its object and whole
//! conversation; larger ones are counted and not stored); the write queue ([`Settings`]:
//! entries and bytes; full → dropped and counted, the response still answers); lookups waiting
//! for the reader (full → refused at once, the caller answers 503).
//!
//! **Encrypted at rest** ([`seal`]): each row's payload is sealed with AES-256-GCM under the
//! store key (`key_env`, else drawn at start: stored responses then last as long as the
//! process), with its id, owner and previous id bound as associated data.
//!
//! **Where.** SQLite ([`sqlite`]: a file, or memory), or with `[cluster] postgres` the
//! PostgreSQL every node shares ([`postgres`]): a conversation continues on any node, all of
//! them sealing with the one `key_env` key.
//!
//! **Threads.** Workers never touch the database. [`put`] offers a response to a bounded
//! channel (`try_send`); one writer thread (`ringway-responses`) writes, deletes and prunes
//! through its connection. Lookups go through a second bounded channel to a reader thread
//! (`ringway-responses-read`) with its own read-only connection; the answer comes back on a
//! reply channel the worker polls ([`Pending::try_take`], never blocking), and a lookup whose
//! asker gave up is skipped. Deletes go through the writer (ordered after the puts before
//! them) and answer the same way. A lookup that misses while the writer still holds puts
//! handed over before the lookup was asked waits for them (at most [`CATCH_UP_WAIT`]) and
//! looks again, so a client continuing a response the moment it got it finds it.

pub mod backend;
pub mod engine;
pub mod items;
pub mod postgres;
pub mod seal;
pub mod settings;
pub mod sqlite;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::offload::Drops;
use backend::StoreError;
pub use engine::{Conversation, FoundItems, Put, PutOutcome};
use engine::{Limits, Reader, SystemNonces, Writer};
pub use items::{
    deleted_body, not_found_message, previous_not_found_message, request_items, Order, Page,
    PageError,
};
pub use seal::Owner;
pub use settings::{KeyBytes, Settings};
use sqlite::Sqlite;

/// Hours a response is kept by default: a conversation can be continued (and its items
/// referenced) through a working day and the night after it, far short of OpenAI's 30 days; a
/// conversation still going keeps what it continues.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Sealed bytes kept by default: thousands of agent sessions, and little enough for a memory
/// store or a small disk.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Largest response kept by default, its whole conversation included: more than any model's
/// context window holds as text.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 << 20;
/// Responses that may wait for the writer.
pub const DEFAULT_WRITE_QUEUE: usize = 1024;
/// Bytes of responses that may wait for the writer (the queue's entries can be large).
pub const DEFAULT_QUEUE_BYTES: u64 = 64 << 20;
/// Lookups that may wait for the reader.
pub const DEFAULT_READ_QUEUE: usize = 64;
/// Longest a worker waits for a lookup's answer before it answers 503; the reader skips a
/// lookup whose asker has given up.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// Longest a lookup that missed waits (from when it was asked) for the writer to write the
/// responses handed over before it.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// How often the writer removes what is past its time (also once at start). Lookups never see
/// an expired response in between: they check the time themselves.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most queued writes handled per wake-up before the writer looks at the clock again.
const BATCH: usize = 64;
/// Longest response id looked up (ours are about 30 bytes): a longer one cannot exist.
pub const MAX_ID_BYTES: usize = 128;
/// How often the reader looks whether the writer has caught up.
const CATCH_UP_POLL: Duration = Duration::from_millis(1);

/// A lookup's answer, or why there is none.
pub type Answer<T> = Result<T, StoreError>;

/// What a request continuing a conversation needs, from one lookup.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The conversation of its `previous_response_id`; None when that was not asked for or is
    /// not found (unknown, another key's, expired, deleted).
    pub previous: Option<Conversation>,
    /// Its `item_reference`s, in the order asked.
    pub items: FoundItems,
}

/// What [`put`] did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Handed to the writer.
    Queued,
    /// The store is off.
    Off,
    /// Larger than `max_response_bytes` on its own: not stored (counted).
    TooBig,
    /// The writer is behind: dropped (counted).
    Dropped,
}

/// Counts since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Responses written.
    pub stored: u64,
    /// Dropped because the write queue was full.
    pub dropped: u64,
    /// Not stored: larger than `max_response_bytes`.
    pub too_big: u64,
    /// Not stored: the response they continued was gone by the time they were written.
    pub orphaned: u64,
    /// Lost because the database refused them.
    pub write_failed: u64,
    /// Sealed bytes stored now.
    pub bytes: u64,
}

/// What the writer is handed.
enum Write {
    Put(Box<Put>, u64),
    Delete {
        owner: Owner,
        id: String,
        reply: crate::offload::Reply<Answer<bool>>,
        abandoned: Arc<AtomicBool>,
    },
    /// Say (on this channel) when everything handed over before it is written.
    Flush(Sender<()>),
}

/// What the reader is handed.
enum Lookup {
    Resolve {
        owner: Owner,
        previous: Option<String>,
        items: Vec<String>,
        reply: crate::offload::Reply<Answer<Resolved>>,
    },
    Response {
        owner: Owner,
        id: String,
        reply: crate::offload::Reply<Answer<Option<String>>>,
    },
    InputItems {
        owner: Owner,
        id: String,
        page: Page,
        reply: crate::offload::Reply<Answer<Option<String>>>,
    },
}

/// A lookup, whether its asker has stopped waiting, and what it may need to wait for.
struct Asked {
    lookup: Lookup,
    abandoned: Arc<AtomicBool>,
    /// Puts handed to the writer when it was asked.
    seen: u64,
    asked_at: Instant,
}

/// State the workers and the two threads share (atomics only).
#[derive(Default)]
struct Shared {
    /// Puts handed to the writer.
    submitted: AtomicU64,
    /// Puts the writer has finished with (written or not).
    written: AtomicU64,
    /// Bytes of puts waiting for the writer.
    queued_bytes: AtomicU64,
    stored: AtomicU64,
    bytes: AtomicU64,
    dropped: Drops,
    too_big: Drops,
    orphaned: Drops,
    write_failed: Drops,
}

/// A running store: the two channels and the counters. [`start`] keeps the process's one.
pub struct Store {
    writes: SyncSender<Write>,
    lookups: SyncSender<Asked>,
    shared: Arc<Shared>,
    max_response_bytes: u64,
    queue_bytes: u64,
}

/// The ends the two threads read.
struct Ends {
    writes: Receiver<Write>,
    lookups: Receiver<Asked>,
}

impl Store {
    /// Open the store `settings` describe (drawing a key when it names none) and start its
    /// threads: with `settings.shared`, in the PostgreSQL of `cluster` (an unreachable one, or
    /// one whose tables cannot be migrated, fails as the config's `FILE:LINE:
    /// cluster.postgres: reason`). Opening a file or a connection may block: for the main
    /// thread at start.
    pub fn launch(
        settings: &Settings,
        cluster: &crate::cluster::Settings,
    ) -> Result<Store, String> {
        let key = match &settings.key {
            Some(k) => k.0,
            None => {
                let mut b = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                    .map_err(|_| "responses store: the system's random source failed")?;
                b
            }
        };
        let key = seal::StoreKey::new(&key).ok_or("responses store: the key was refused")?;
        let backend: Box<dyn backend::ResponseBackend> = match &cluster.postgres {
            Some(url) if settings.shared => {
                crate::cluster::health().postgres.set_configured(true);
                Box::new(postgres::Postgres::open(url, &cluster.node_id)?)
            }
            _ => Box::new(Sqlite::open(&settings.location).map_err(|e| e.0)?),
        };
        let (store, ends) = Store::unstarted(settings);
        let (writer, removed) = Writer::new(
            backend,
            Arc::new(key),
            limits(settings),
            Box::new(SystemNonces::new()),
        )
        .map_err(|e| format!("responses store: {e}"))?;
        if removed > 0 {
            crate::log::info(format_args!(
                "responses store: {removed} response(s) sealed under another key removed"
            ));
        }
        store.run(writer, ends)?;
        Ok(store)
    }

    /// The channels and counters, before any thread reads them.
    fn unstarted(settings: &Settings) -> (Store, Ends) {
        let (writes, wrx) = std::sync::mpsc::sync_channel(settings.write_queue);
        let (lookups, lrx) = std::sync::mpsc::sync_channel(settings.read_queue);
        (
            Store {
                writes,
                lookups,
                shared: Arc::new(Shared::default()),
                max_response_bytes: settings.max_response_bytes,
                queue_bytes: settings.queue_bytes,
            },
            Ends {
                writes: wrx,
                lookups: lrx,
            },
        )
    }

    /// Start the writer and reader threads on `ends`. The reader starts once the writer's first
    /// prune is done.
    fn run(&self, writer: Writer, ends: Ends) -> Result<(), String> {
        let reader = writer
            .reader()
            .map_err(|e| format!("responses store: {e}"))?;
        let (pruned_tx, pruned) = std::sync::mpsc::channel();
        let shared = self.shared.clone();
        let Ends { writes, lookups } = ends;
        std::thread::Builder::new()
            .name("ringway-responses".into())
            .spawn(move || write_loop(writer, &writes, &shared, Some(pruned_tx)))
            .map_err(|e| format!("cannot start the responses store's writer: {e}"))?;
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("ringway-responses-read".into())
            .spawn(move || {
                // Err: the writer is gone; what it wrote can still be read.
                let _ = pruned.recv();
                read_loop(reader, &lookups, &shared);
            })
            .map_err(|e| format!("cannot start the responses store's reader: {e}"))?;
        Ok(())
    }

    /// Hand `p` to the writer without waiting. Call it before the response's last event or
    /// byte goes to the client: a lookup asked after this call finds it.
    pub fn put(&self, p: Put) -> Submitted {
        let bytes = p.bytes();
        let s = &self.shared;
        if bytes > self.max_response_bytes {
            s.too_big.count("responses too large to store");
            return Submitted::TooBig;
        }
        if s.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > self.queue_bytes {
            s.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            s.dropped
                .count("responses store writer is behind: responses");
            return Submitted::Dropped;
        }
        // Counted before it is sent: a put counted after its send could be written behind
        // one another worker counted first, and a lookup that saw only the other's count would
        // take the other's write for this one's.
        s.submitted.fetch_add(1, Ordering::SeqCst);
        match self.writes.try_send(Write::Put(Box::new(p), bytes)) {
            Ok(()) => Submitted::Queued,
            Err(_) => {
                s.submitted.fetch_sub(1, Ordering::SeqCst);
                s.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                s.dropped
                    .count("responses store writer is behind: responses");
                Submitted::Dropped
            }
        }
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(crate::offload::Reply<Answer<T>>) -> Lookup,
    ) -> Option<Pending<T>> {
        let (pending, reply, abandoned) = Pending::new();
        self.lookups
            .try_send(Asked {
                lookup: make(reply),
                abandoned,
                seen: self.shared.submitted.load(Ordering::SeqCst),
                asked_at: Instant::now(),
            })
            .ok()?;
        Some(pending)
    }

    /// Look up, in one read, the conversation of `previous` (a `previous_response_id`) and the
    /// items `items` (`item_reference` ids) of `owner`. None: the reader's queue is full.
    pub fn resolve(
        &self,
        owner: &Owner,
        previous: Option<&str>,
        items: &[&str],
    ) -> Option<Pending<Resolved>> {
        let previous = previous.map(str::to_owned);
        let items = items.iter().map(|s| (*s).to_owned()).collect();
        self.ask(|reply| Lookup::Resolve {
            owner: *owner,
            previous,
            items,
            reply,
        })
    }

    /// Look up the response object `id` of `owner` (`GET /v1/responses/{id}`). None: busy.
    pub fn response(&self, owner: &Owner, id: &str) -> Option<Pending<Option<String>>> {
        if id.len() > MAX_ID_BYTES {
            return Some(Pending::ready(Ok(None)));
        }
        let id = id.to_owned();
        self.ask(|reply| Lookup::Response {
            owner: *owner,
            id,
            reply,
        })
    }

    /// Look up `page` of the input items of `id` of `owner`, as the list object's JSON. None:
    /// busy.
    pub fn input_items(
        &self,
        owner: &Owner,
        id: &str,
        page: Page,
    ) -> Option<Pending<Option<String>>> {
        if id.len() > MAX_ID_BYTES {
            return Some(Pending::ready(Ok(None)));
        }
        let id = id.to_owned();
        self.ask(|reply| Lookup::InputItems {
            owner: *owner,
            id,
            page,
            reply,
        })
    }

    /// Delete the response `id` of `owner`: true when it was there. None: the writer's queue
    /// is full.
    pub fn delete(&self, owner: &Owner, id: &str) -> Option<Pending<bool>> {
        if id.len() > MAX_ID_BYTES {
            return Some(Pending::ready(Ok(false)));
        }
        let (pending, reply, abandoned) = Pending::new();
        self.writes
            .try_send(Write::Delete {
                owner: *owner,
                id: id.to_owned(),
                reply,
                abandoned,
            })
            .ok()?;
        Some(pending)
    }

    /// Wait (at most `timeout`) until everything handed over so far is written: for the
    /// process's last moments and tests, never for a worker.
    pub fn flush(&self, timeout: Duration) -> bool {
        crate::offload::flush(&self.writes, timeout, Write::Flush)
    }

    /// Counts since start.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            stored: s.stored.load(Ordering::Relaxed),
            dropped: s.dropped.total(),
            too_big: s.too_big.total(),
            orphaned: s.orphaned.total(),
            write_failed: s.write_failed.total(),
            bytes: s.bytes.load(Ordering::Relaxed),
        }
    }
}

fn limits(settings: &Settings) -> Limits {
    Limits {
        retention_ms: i64::from(settings.retention_hours) * 3_600_000,
        max_bytes: settings.max_bytes,
        max_response_bytes: settings.max_response_bytes,
    }
}

/// A lookup on its way to the store ([`crate::offload::Pending`]).
pub type Pending<T> = crate::offload::Pending<Answer<T>>;

impl<T> crate::offload::Gone for Answer<T> {
    fn gone() -> Self {
        Err(StoreError("the responses store is gone".into()))
    }
}

fn now_ms() -> i64 {
    crate::calendar::unix_millis(SystemTime::now())
}

/// Remove what is past its time or over the size bound, and say so.
fn prune(w: &mut Writer, shared: &Shared) {
    match w.prune(now_ms()) {
        Ok(p) => {
            if p.expired + p.evicted > 0 {
                crate::log::info(format_args!(
                    "responses store: {} expired and {} over max_bytes removed",
                    p.expired, p.evicted
                ));
            }
        }
        Err(e) => crate::log::error(format_args!("responses store: pruning failed: {e}")),
    }
    shared.bytes.store(w.bytes(), Ordering::Relaxed);
}

/// Handle one write.
fn handle(w: &mut Writer, msg: Write, shared: &Shared) {
    match msg {
        Write::Put(p, bytes) => {
            let id = p.id.clone();
            match w.put(*p, now_ms()) {
                Ok(PutOutcome::Stored { .. }) => {
                    shared.stored.fetch_add(1, Ordering::Relaxed);
                }
                Ok(PutOutcome::Exists) => crate::log::warn(format_args!(
                    "responses store: {id} is already stored; the new one was not written"
                )),
                Ok(PutOutcome::TooBig { .. }) => {
                    shared.too_big.count("responses too large to store");
                }
                Ok(PutOutcome::PreviousGone) => {
                    shared
                        .orphaned
                        .count("responses whose previous response was gone");
                }
                Err(e) => {
                    shared.write_failed.count("responses store write failed");
                    // While PostgreSQL is unreachable its link said so once; a line per
                    // response would flood the log (the count above warns, rate-limited).
                    if !crate::cluster::postgres::unreachable() {
                        crate::log::error(format_args!(
                            "responses store: writing {id} failed: {e}"
                        ));
                    }
                }
            }
            shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            shared.bytes.store(w.bytes(), Ordering::Relaxed);
            shared.written.fetch_add(1, Ordering::SeqCst);
        }
        Write::Delete {
            owner,
            id,
            reply,
            abandoned,
        } => {
            if !abandoned.load(Ordering::Relaxed) {
                let _ = reply.send(w.delete(&owner, &id, now_ms()));
                shared.bytes.store(w.bytes(), Ordering::Relaxed);
            }
        }
        Write::Flush(ack) => {
            let _ = ack.send(());
        }
    }
}

/// The writer thread: prune (then say so on `pruned`), then handle what waits, in order;
/// prune every [`PRUNE_EVERY`].
fn write_loop(mut w: Writer, rx: &Receiver<Write>, shared: &Shared, pruned: Option<Sender<()>>) {
    prune(&mut w, shared);
    if let Some(pruned) = pruned {
        let _ = pruned.send(());
    }
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    loop {
        match rx.recv_timeout(next_prune.saturating_duration_since(Instant::now())) {
            Ok(first) => {
                for msg in std::iter::once(first).chain(rx.try_iter().take(BATCH - 1)) {
                    handle(&mut w, msg, shared);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_prune {
            prune(&mut w, shared);
            next_prune = Instant::now() + PRUNE_EVERY;
        }
    }
}

/// Run `look`; if it `missed` while the writer still holds puts handed over before the lookup
/// was asked, wait for them (at most [`CATCH_UP_WAIT`] after it was asked) and run it again.
fn caught_up<T>(
    shared: &Shared,
    seen: u64,
    asked_at: Instant,
    mut look: impl FnMut() -> Answer<T>,
    missed: impl Fn(&Answer<T>) -> bool,
) -> Answer<T> {
    // Read before the look: a put finished after the look began may not be in what it read,
    // so only a count reached before it says the miss is real.
    let written_before = shared.written.load(Ordering::SeqCst);
    let first = look();
    if !missed(&first) || written_before >= seen {
        return first;
    }
    let deadline = asked_at + CATCH_UP_WAIT;
    while shared.written.load(Ordering::SeqCst) < seen {
        if Instant::now() >= deadline {
            return first;
        }
        std::thread::sleep(CATCH_UP_POLL);
    }
    look()
}

/// The reader thread: answer each lookup in turn, skipping those nobody waits for any more.
fn read_loop(mut r: Reader, rx: &Receiver<Asked>, shared: &Shared) {
    for asked in rx {
        if asked.abandoned.load(Ordering::Relaxed) {
            continue;
        }
        let (seen, at) = (asked.seen, asked.asked_at);
        match asked.lookup {
            Lookup::Resolve {
                owner,
                previous,
                items,
                reply,
            } => {
                let answer = caught_up(
                    shared,
                    seen,
                    at,
                    || {
                        let now = now_ms();
                        let previous = match &previous {
                            Some(id) => r.conversation(&owner, id, now)?,
                            None => None,
                        };
                        let items = if items.is_empty() {
                            FoundItems::default()
                        } else {
                            r.items(&owner, &items, now)?
                        };
                        Ok(Resolved { previous, items })
                    },
                    |a| {
                        a.as_ref().is_ok_and(|got| {
                            (previous.is_some() && got.previous.is_none())
                                || (!got.items.cut && got.items.items.iter().any(Option::is_none))
                        })
                    },
                );
                let _ = reply.send(answer);
            }
            Lookup::Response { owner, id, reply } => {
                let answer = caught_up(
                    shared,
                    seen,
                    at,
                    || r.response(&owner, &id, now_ms()),
                    |a| matches!(a, Ok(None)),
                );
                let _ = reply.send(answer);
            }
            Lookup::InputItems {
                owner,
                id,
                page,
                reply,
            } => {
                let answer = caught_up(
                    shared,
                    seen,
                    at,
                    || r.input_items(&owner, &id, &page, now_ms()),
                    |a| matches!(a, Ok(None)),
                );
                let _ = reply.send(answer);
            }
        }
    }
}

static STORE: OnceLock<Store> = OnceLock::new();

/// Open the store and start its threads (once per process: a reload cannot move it). For the
/// main thread at start.
pub fn start(settings: &Settings, cluster: &crate::cluster::Settings) -> Result<(), String> {
    if STORE.get().is_some() {
        return Ok(());
    }
    let store = Store::launch(settings, cluster)?;
    let _ = STORE.set(store);
    Ok(())
}

/// Is the store on?
pub fn enabled() -> bool {
    STORE.get().is_some()
}

/// [`Store::put`] on the process's store.
pub fn put(p: Put) -> Submitted {
    STORE.get().map_or(Submitted::Off, |s| s.put(p))
}

/// [`Store::resolve`] on the process's store. None: off or busy.
pub fn resolve(owner: &Owner, previous: Option<&str>, items: &[&str]) -> Option<Pending<Resolved>> {
    STORE.get()?.resolve(owner, previous, items)
}

/// [`Store::response`] on the process's store. None: off or busy.
pub fn response(owner: &Owner, id: &str) -> Option<Pending<Option<String>>> {
    STORE.get()?.response(owner, id)
}

/// [`Store::input_items`] on the process's store. None: off or busy.
pub fn input_items(owner: &Owner, id: &str, page: Page) -> Option<Pending<Option<String>>> {
    STORE.get()?.input_items(owner, id, page)
}

/// [`Store::delete`] on the process's store. None: off or busy.
pub fn delete(owner: &Owner, id: &str) -> Option<Pending<bool>> {
    STORE.get()?.delete(owner, id)
}

/// [`Store::flush`] on the process's store (false when it is off).
pub fn flush(timeout: Duration) -> bool {
    STORE.get().is_some_and(|s| s.flush(timeout))
}

/// [`Store::stats`] of the process's store (zeros when it is off).
pub fn stats() -> Stats {
    STORE.get().map(Store::stats).unwrap_or_default()
}

#[cfg(test)]
mod tests;
