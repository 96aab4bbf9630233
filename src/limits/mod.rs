//! Per-key limits (requests per minute, tokens per minute, concurrent streams), held across
//! every worker of the process by atomics, with no lock on the request path.
//!
//! Each limited key has one [`KeyState`]: a GCRA bucket for requests and one for tokens (one
//! `AtomicU64` each, stepped by compare-and-swap; see [`gcra`]) and a counter of open streams
//! (compare-and-swap against the limit). Every worker steps the same atomics, so the counts
//! are exact across workers: a burst against a full bucket of `L` gets exactly `L` through,
//! wherever the requests land.
//!
//! The [`Limiter`] is built once per process (in `workers::start`), not per config snapshot:
//! a reload calls [`Limiter::reconfigure`] and keys keep their counts. Workers read the key
//! table through a per-worker copy ([`Local`]) that they refresh when the limiter's
//! generation moves, so the table's mutex is taken once per worker per reload, never per
//! request.

mod gcra;
mod render;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{GatewayKey, KeyLimits};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use gcra::Rate;

pub use gcra::{MAX_DEBT_NS, MAX_PER_MINUTE, WINDOW_NS};
pub use render::{is_rate_limit_header, openai_duration, rfc3339, Header, Level, Levels};

/// Largest `max_streams` a key may set.
pub const MAX_STREAMS: u64 = 1_000_000;
/// `retry-after` for a stream refused at the key's `max_streams`: when one of its streams ends
/// is unknown; a second keeps an SDK's retry from spinning.
pub const STREAM_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which limit refused a request (the `limit` label of `ringway_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `rpm`.
    Requests,
    /// `tpm`.
    Tokens,
    /// `max_streams`.
    Streams,
}

impl Limit {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Tokens => "tokens",
            Limit::Streams => "streams",
        }
    }
}

/// One GCRA bucket: its per-minute limit (0: none) and its theoretical arrival time.
#[derive(Debug, Default)]
struct Bucket {
    limit: AtomicU64,
    tat: AtomicU64,
    /// The latest clock reading any worker admitted with (see [`Bucket::take_at`]).
    latest: AtomicU64,
}

impl Bucket {
    fn new(limit: Option<u64>) -> Bucket {
        Bucket {
            limit: AtomicU64::new(limit.unwrap_or(0)),
            tat: AtomicU64::new(0),
            latest: AtomicU64::new(0),
        }
    }

    fn rate(&self) -> Option<Rate> {
        Rate::per_minute(self.limit.load(Ordering::Acquire))
    }

    /// Apply `step` to the TAT atomically (compare-and-swap until no other worker moved it
    /// in between): the new TAT, or the step's refusal.
    fn step(&self, step: impl Fn(u64) -> Result<u64, u64>) -> Result<u64, u64> {
        let mut seen = self.tat.load(Ordering::Acquire);
        loop {
            let next = step(seen)?;
            match self
                .tat
                .compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(next),
                Err(now_there) => seen = now_there,
            }
        }
    }

    /// Take one unit at `now`: the new TAT and the time it was taken at, or the wait. Two
    /// workers can read their clocks in one order and land their steps in the other; each step
    /// uses the latest reading any worker has stepped with, so what is left after it (the
    /// `remaining` a client is told) counts down exactly, never repeating a value.
    fn take_at(&self, rate: Rate, now: u64) -> Result<(u64, u64), u64> {
        let mut seen = self.tat.load(Ordering::Acquire);
        loop {
            let now = now.max(self.latest.fetch_max(now, Ordering::AcqRel));
            let next = gcra::take(rate, seen, now, 1)?;
            match self
                .tat
                .compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok((next, now)),
                Err(now_there) => seen = now_there,
            }
        }
    }

    fn level(&self, rate: Rate, tat: u64, now: u64) -> Level {
        Level {
            limit: rate.limit,
            remaining: gcra::remaining(rate, tat, now),
            reset: Duration::from_nanos(gcra::debt(tat, now)),
        }
    }

    /// The level now, for headers (None: no limit).
    fn peek(&self, now: u64) -> Option<Level> {
        let rate = self.rate()?;
        Some(self.level(rate, self.tat.load(Ordering::Acquire), now))
    }

    /// A reload's new limit: the units used carry over to the new rate.
    fn set_limit(&self, limit: Option<u64>, now: u64) {
        let new = limit.unwrap_or(0);
        let old = self.limit.swap(new, Ordering::AcqRel);
        match (Rate::per_minute(old), Rate::per_minute(new)) {
            _ if old == new => {}
            (Some(old), Some(new)) => {
                let _ = self.step(|tat| Ok(gcra::rescale(old, new, tat, now)));
            }
            // Newly limited (nothing was counted): full. No longer limited: unused.
            _ => self.tat.store(0, Ordering::Release),
        }
    }
}

/// One key's counters, shared by every worker.
#[derive(Debug)]
pub struct KeyState {
    name: String,
    epoch: Instant,
    requests: Bucket,
    tokens: Bucket,
    /// 0: no stream limit.
    max_streams: AtomicU64,
    /// Streams admitted and not yet finished.
    streams: AtomicU64,
}

impl KeyState {
    fn new(name: &str, limits: KeyLimits, epoch: Instant) -> KeyState {
        KeyState {
            name: name.to_owned(),
            epoch,
            requests: Bucket::new(limits.rpm),
            tokens: Bucket::new(limits.tpm),
            max_streams: AtomicU64::new(limits.max_streams.unwrap_or(0)),
            streams: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the limiter's epoch.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn apply(&self, limits: KeyLimits, now: u64) {
        self.requests.set_limit(limits.rpm, now);
        self.tokens.set_limit(limits.tpm, now);
        self.max_streams
            .store(limits.max_streams.unwrap_or(0), Ordering::Release);
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Streams open now.
    pub fn open_streams(&self) -> u64 {
        self.streams.load(Ordering::Acquire)
    }

    /// Admit one request at `now`. Checked in this order, so a refused request holds nothing:
    /// tokens (one must be left; nothing is taken, usage is charged afterwards), a stream slot
    /// (streams only), then one request from the requests bucket (the stream slot is given
    /// back when that refuses).
    pub fn admit(self: &Arc<Self>, now: u64, stream: bool) -> Result<Ticket, Refusal> {
        let mut levels = Levels::default();
        if let Some(rate) = self.tokens.rate() {
            let tat = self.tokens.tat.load(Ordering::Acquire);
            levels.tokens = Some(self.tokens.level(rate, tat, now));
            if let Err(wait) = gcra::check(rate, tat, now) {
                levels.requests = self.requests.peek(now);
                return Err(Refusal::new(
                    Limit::Tokens,
                    Duration::from_nanos(wait),
                    levels,
                ));
            }
        }
        let max_streams = self.max_streams.load(Ordering::Acquire);
        let slot = stream && max_streams > 0;
        if slot {
            let took = self
                .streams
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max_streams).then_some(n + 1)
                });
            if took.is_err() {
                levels.requests = self.requests.peek(now);
                let mut refusal = Refusal::new(Limit::Streams, STREAM_RETRY_AFTER, levels);
                refusal.max_streams = max_streams;
                return Err(refusal);
            }
        }
        if let Some(rate) = self.requests.rate() {
            match self.requests.take_at(rate, now) {
                Ok((tat, at)) => levels.requests = Some(self.requests.level(rate, tat, at)),
                Err(wait) => {
                    if slot {
                        self.streams.fetch_sub(1, Ordering::AcqRel);
                    }
                    levels.requests = self.requests.peek(now);
                    return Err(Refusal::new(
                        Limit::Requests,
                        Duration::from_nanos(wait),
                        levels,
                    ));
                }
            }
        }
        Ok(Ticket {
            key: self.clone(),
            stream: slot,
            charged: std::cell::Cell::new(0),
            levels,
        })
    }

    /// Debit `tokens` used at `now` from the tokens bucket (no-op without `tpm`).
    pub fn charge_tokens_at(&self, tokens: u64, now: u64) {
        if tokens == 0 {
            return;
        }
        if let Some(rate) = self.tokens.rate() {
            let _ = self
                .tokens
                .step(|tat| Ok(gcra::debit(rate, tat, now, tokens)));
        }
    }
}

/// A request let in under its key's limits: it holds a stream slot until dropped (the end of
/// the exchange), charges the key's tokens when its usage is known, and says what headers
/// the client gets.
#[derive(Debug)]
pub struct Ticket {
    key: Arc<KeyState>,
    stream: bool,
    /// Tokens already debited for this request (usage is charged as it grows).
    charged: std::cell::Cell<u64>,
    /// The buckets' levels right after admission.
    pub levels: Levels,
}

impl Ticket {
    /// Debit `tokens` (the request's usage) from the key's tokens per minute.
    pub fn charge_tokens(&self, tokens: u64) {
        self.key.charge_tokens_at(tokens, self.key.now());
    }

    /// The request's usage so far is `total` tokens: debit what was not debited yet. Called as
    /// usage arrives (a stream reports it at its start and its end) and once at the end.
    pub fn charge_usage_total(&self, total: u64) {
        let new = total.saturating_sub(self.charged.get());
        if new > 0 {
            self.charged.set(total);
            self.charge_tokens(new);
        }
    }

    /// The rate-limit headers of a response to this request, in `format`'s names.
    pub fn headers(&self, format: Format, out: &mut Vec<Header>) {
        render::level_headers(format, &self.levels, SystemTime::now(), out);
    }

    /// The key's state.
    pub fn key(&self) -> &KeyState {
        &self.key
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.stream {
            self.key.streams.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A request refused by one of its key's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub limit: Limit,
    /// Until it would pass (for streams: [`STREAM_RETRY_AFTER`]).
    pub wait: Duration,
    /// The buckets' levels.
    pub levels: Levels,
    /// The key's `max_streams` (for the message).
    max_streams: u64,
}

impl Refusal {
    fn new(limit: Limit, wait: Duration, levels: Levels) -> Refusal {
        Refusal {
            limit,
            wait,
            levels,
            max_streams: 0,
        }
    }

    /// The headers of the 429: the levels, `retry-after` and `retry-after-ms`.
    pub fn headers(&self, format: Format, out: &mut Vec<Header>) {
        render::level_headers(format, &self.levels, SystemTime::now(), out);
        render::retry_headers(self.wait, out);
    }

    /// The 429 for key `name`, worded as the providers word theirs. OpenAI's `error.type` is
    /// the limit's unit (`requests` or `tokens`; a stream limit is one on requests).
    pub fn error(&self, name: &str) -> Error {
        let again = openai_duration(self.wait);
        let (unit, message) = match self.limit {
            Limit::Requests | Limit::Tokens => {
                let (unit, short, level) = match self.limit {
                    Limit::Tokens => ("tokens", "TPM", self.levels.tokens),
                    _ => ("requests", "RPM", self.levels.requests),
                };
                let limit = level.map_or(0, |l| l.limit);
                (
                    unit,
                    format!(
                        "Rate limit reached for key `{name}` on {unit} per min ({short}): \
                         Limit {limit}. Please try again in {again}."
                    ),
                )
            }
            Limit::Streams => (
                "requests",
                format!(
                    "Concurrent stream limit reached for key `{name}`: Limit {} streams at once. \
                     Please try again when one of them ends.",
                    self.max_streams
                ),
            ),
        };
        Error::new(ErrorKind::RateLimited, message).with_openai_type(unit)
    }
}

/// Key name → its counters.
type Table = HashMap<String, Arc<KeyState>>;

/// Every limited key's counters, for the whole process.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    /// The current table; locked only to replace it (reload) or to copy its `Arc` (a worker
    /// after a reload).
    table: Mutex<Arc<Table>>,
    /// Moves on every reconfigure: a worker whose copy is older fetches the new table.
    generation: AtomicU64,
}

impl Limiter {
    /// The limiter for `keys` (those with no limit set take no state).
    pub fn new(keys: &[GatewayKey]) -> Arc<Limiter> {
        let limiter = Limiter {
            epoch: Instant::now(),
            table: Mutex::new(Arc::new(Table::new())),
            generation: AtomicU64::new(0),
        };
        limiter.reconfigure(keys);
        Arc::new(limiter)
    }

    /// Follow a reload: keys added get fresh state, keys removed (or no longer limited) are
    /// dropped, changed limits apply at once with the units already used carried over, and
    /// unchanged keys keep their counters. Requests in flight keep their tickets: a stream
    /// slot of a dropped key is released into its old, unreachable state. Call it before the
    /// new config serves, so that its new keys are found limited from its first request.
    pub fn reconfigure(&self, keys: &[GatewayKey]) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Table::with_capacity(keys.len());
        for k in keys {
            // Entries sharing a name share one state (config checks their limits agree).
            if k.limits.is_unlimited() || next.contains_key(&k.name) {
                continue;
            }
            let state = match table.get(&k.name) {
                Some(state) => {
                    state.apply(k.limits, now);
                    state.clone()
                }
                None => Arc::new(KeyState::new(&k.name, k.limits, self.epoch)),
            };
            next.insert(k.name.clone(), state);
        }
        *table = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The state of key `name` (None: not limited). Takes the table's lock: for tests and
    /// tools; workers go through [`Local`].
    pub fn key(&self, name: &str) -> Option<Arc<KeyState>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.get(name).cloned()
    }
}

/// A worker's view of the [`Limiter`]: a copy of the key table, refreshed when the limiter's
/// generation moves (once per reload), so a request reads it without a lock.
pub struct Local {
    shared: Arc<Limiter>,
    seen: Cell<u64>,
    table: RefCell<Arc<Table>>,
}

impl Local {
    /// A worker's view.
    pub fn new(shared: Arc<Limiter>) -> Local {
        Local {
            shared,
            // Never a real generation: the first lookup fetches the table.
            seen: Cell::new(u64::MAX),
            table: RefCell::new(Arc::new(Table::new())),
        }
    }

    /// The process-wide limiter (for the reload path).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.shared
    }

    fn state(&self, key: &str) -> Option<Arc<KeyState>> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.seen.get() {
            let fresh = self
                .shared
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            *self.table.borrow_mut() = fresh;
            self.seen.set(generation);
        }
        self.table.borrow().get(key).cloned()
    }

    /// Admit a request of key `key` now: Ok(None) for a key without limits.
    pub fn admit(&self, key: &str, stream: bool) -> Result<Option<Ticket>, Refusal> {
        match self.state(key) {
            None => Ok(None),
            Some(state) => state.admit(state.now(), stream).map(Some),
        }
    }

    /// Debit `tokens` from key `key`'s tokens per minute (callable at any time; a key without
    /// `tpm` ignores it).
    pub fn charge_tokens(&self, key: &str, tokens: u64) {
        if let Some(state) = self.state(key) {
            state.charge_tokens_at(tokens, state.now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(name: &str, rpm: Option<u64>, tpm: Option<u64>, streams: Option<u64>) -> GatewayKey {
        GatewayKey {
            name: name.into(),
            sha256: crate::auth::sha256(name.as_bytes()),
            routes: None,
            admin: false,
            limits: KeyLimits {
                rpm,
                tpm,
                max_streams: streams,
            },
            tiers: None,
            default_tier: None,
            pii: false,
            store_responses: true,
        }
    }

    #[test]
    fn remaining_counts_down_exactly_when_clocks_are_read_out_of_order() {
        let rate = gcra::Rate::per_minute(10).unwrap();
        let bucket = Bucket::new(Some(10));
        let t = 1_000_000_000_000u64;
        // Worker B read its clock 1 ms after worker A, but stepped first.
        let (tat_b, at_b) = bucket.take_at(rate, t + 1_000_000).unwrap();
        let (tat_a, at_a) = bucket.take_at(rate, t).unwrap();
        let b = bucket.level(rate, tat_b, at_b).remaining;
        let a = bucket.level(rate, tat_a, at_a).remaining;
        assert_eq!(
            (b, a),
            (9, 8),
            "each admission is told one less, none twice"
        );
    }

    #[test]
    fn exact_across_threads() {
        // Eight threads race for one key's 500 requests at one instant: exactly 500 pass,
        // wherever they land; then its 3 stream slots the same way.
        let limiter = Limiter::new(&[key("k", Some(500), None, Some(3))]);
        let state = limiter.key("k").unwrap();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    s.spawn(move || {
                        (0..200)
                            .filter(|_| state.admit(10 * S, false).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 500);
        let refused = state.admit(10 * S, false).unwrap_err();
        assert_eq!(refused.limit, Limit::Requests);
        assert_eq!(refused.wait, Duration::from_millis(120));

        let limiter = Limiter::new(&[key("k", None, None, Some(3))]);
        let state = limiter.key("k").unwrap();
        let tickets: Vec<Ticket> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    s.spawn(move || {
                        (0..50)
                            .filter_map(|_| state.admit(S, true).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(tickets.len(), 3);
        assert_eq!(state.open_streams(), 3);
        // Non-streaming requests take no slot; a finished stream gives its slot back.
        assert!(state.admit(S, false).is_ok());
        assert_eq!(state.admit(S, true).unwrap_err().limit, Limit::Streams);
        drop(tickets);
        assert_eq!(state.open_streams(), 0);
        assert!(state.admit(S, true).is_ok());
        assert_eq!(state.open_streams(), 0);
    }

    #[test]
    fn a_refused_request_holds_nothing() {
        let limiter = Limiter::new(&[key("k", Some(2), None, Some(5))]);
        let state = limiter.key("k").unwrap();
        let a = state.admit(S, true).unwrap();
        let b = state.admit(S, true).unwrap();
        assert_eq!(a.levels.requests.unwrap().remaining, 1);
        assert_eq!(b.levels.requests.unwrap().remaining, 0);
        let r = state.admit(S, true).unwrap_err();
        assert_eq!(r.limit, Limit::Requests);
        assert_eq!(
            state.open_streams(),
            2,
            "the refused stream's slot is given back"
        );
        assert_eq!(r.wait, Duration::from_secs(30));
        assert_eq!(
            r.levels.requests,
            Some(Level {
                limit: 2,
                remaining: 0,
                reset: Duration::from_secs(60)
            })
        );
    }

    #[test]
    fn tokens_refuse_while_in_deficit() {
        let limiter = Limiter::new(&[key("k", Some(100), Some(1000), None)]);
        let state = limiter.key("k").unwrap();
        let t = state.admit(S, false).unwrap();
        assert_eq!(t.levels.tokens.unwrap().remaining, 1000);
        // In flight together: both admitted before either's usage is known.
        let u = state.admit(S, false).unwrap();
        state.charge_tokens_at(900, S);
        state.charge_tokens_at(400, S);
        drop((t, u));
        // 1300 of 1000 used: refused until 301 tokens (18.06 s) have refilled.
        let r = state.admit(2 * S, false).unwrap_err();
        assert_eq!(r.limit, Limit::Tokens);
        assert_eq!(r.wait, Duration::from_millis(301 * 60 - 1000));
        let e = r.error("team");
        assert_eq!(e.status(), 429);
        let body: serde_json::Value =
            serde_json::from_slice(&Format::OpenAi.error_body(&e)).unwrap();
        assert_eq!(body["error"]["type"], "tokens");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert!(body["error"]["message"].as_str().unwrap().contains(
            "key `team` on tokens per min (TPM): Limit 1000. Please try again in 17.06s"
        ));
        let body: serde_json::Value =
            serde_json::from_slice(&Format::Anthropic.error_body(&e)).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        // The refused request took no request from the rpm bucket.
        // (two used at 1 s, 1 s of refill since: 1.67 of 100 used)
        assert_eq!(r.levels.requests.unwrap().remaining, 99);
        assert!(state.admit(S + 18_060_000_000, false).is_ok());
        // A key without tpm ignores charges.
        let limiter = Limiter::new(&[key("r", Some(1), None, None)]);
        limiter.key("r").unwrap().charge_tokens_at(u64::MAX, S);
        assert!(limiter.key("r").unwrap().admit(S, false).is_ok());
    }

    #[test]
    fn reconfigure_keeps_unchanged_counts_and_applies_changes() {
        let limiter = Limiter::new(&[
            key("same", Some(10), None, None),
            key("grow", Some(10), None, None),
            key("gone", Some(10), None, None),
            key("free", None, None, None),
        ]);
        assert!(limiter.key("free").is_none());
        let local = Local::new(limiter.clone());
        for _ in 0..4 {
            local.admit("same", false).unwrap().unwrap();
            local.admit("grow", false).unwrap().unwrap();
        }
        let held = local.admit("gone", true).unwrap().unwrap();
        let same = limiter.key("same").unwrap();
        limiter.reconfigure(&[
            key("same", Some(10), None, None),
            key("grow", Some(20), None, Some(1)),
            key("new", Some(1), None, None),
            key("free", None, Some(5), None),
        ]);
        assert!(Arc::ptr_eq(&same, &limiter.key("same").unwrap()));
        let now = same.now();
        let level = |name: &str| limiter.key(name).unwrap().requests.peek(now).unwrap();
        assert_eq!(level("same").remaining, 6);
        // 4 of 10 used become 4 of 20 (a few refilled while the test ran, never more used).
        assert!((16..=20).contains(&level("grow").remaining));
        assert_eq!(level("grow").limit, 20);
        assert_eq!(level("new").remaining, 1);
        assert!(limiter.key("gone").is_none());
        assert!(limiter.key("free").unwrap().tokens.peek(now).is_some());
        // The worker's copy follows the generation: the removed key is unlimited for it, the
        // added one limited, and the stream limit applies.
        assert!(local.admit("gone", false).unwrap().is_none());
        assert!(local.admit("new", false).unwrap().is_some());
        assert_eq!(
            local.admit("new", false).unwrap_err().limit,
            Limit::Requests
        );
        let s = local.admit("grow", true).unwrap().unwrap();
        assert_eq!(local.admit("grow", true).unwrap_err().limit, Limit::Streams);
        drop(s);
        assert!(local.admit("grow", true).is_ok());
        // A ticket of a dropped key releases into its old state harmlessly.
        drop(held);
        // Unlimiting then limiting again starts full.
        limiter.reconfigure(&[key("same", None, None, None)]);
        assert!(limiter.key("same").is_none());
        limiter.reconfigure(&[key("same", Some(10), None, None)]);
        assert_eq!(level("same").remaining, 10);
    }

    #[test]
    fn charge_tokens_by_name_from_any_worker() {
        let limiter = Limiter::new(&[key("k", None, Some(100), None)]);
        let (a, b) = (Local::new(limiter.clone()), Local::new(limiter.clone()));
        a.charge_tokens("k", 60);
        b.charge_tokens("k", 60);
        b.charge_tokens("nobody", 60);
        let r = a.admit("k", false).unwrap_err();
        assert_eq!(r.limit, Limit::Tokens);
        assert_eq!(r.levels.tokens.unwrap().remaining, 0);
        let mut headers = Vec::new();
        r.headers(Format::OpenAi, &mut headers);
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
                "retry-after",
                "retry-after-ms"
            ]
        );
    }
}
