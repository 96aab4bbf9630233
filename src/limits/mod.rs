//! Per-key and per-route limits (requests per minute; tokens, input tokens and output tokens
//! per minute; concurrent streams) and per-key budgets (money and tokens per period), held
//! across every worker of the process by atomics, with no lock on the request path, and
//! across every node of a cluster by leases on shared counters in Redis.
//!
//! Each limited key or route has one [`KeyState`]: a GCRA bucket per rate (one `AtomicU64`
//! each, stepped by compare-and-swap; see [`gcra`]), a counter of open streams
//! (compare-and-swap against the limit) and, for a key with a budget, its budget's counters.
//! Every worker steps the same atomics, so the counts are exact across workers: a burst
//! against a full bucket of `L` gets exactly `L` through, wherever the requests land.
//!
//! **Cluster mode** (`[cluster] redis`): the shared counters live in Redis and each node holds
//! a [`lease`] on each one it uses: units taken ahead of time, spent by its workers through
//! one atomic, refilled by the Redis thread ([`redis`]) before they run out. A request never
//! waits for Redis. How exact that is, and what happens while Redis is down, is in
//! [`lease`] and `docs/fleet.md`; while it is down, the local buckets above hold each node's
//! share of the limit.
//!
//! The [`Limiter`] is built once per process (in `workers::start`), not per config snapshot:
//! a reload calls [`Limiter::reconfigure`] and keys keep their counts. Workers read the key
//! table through a per-worker copy ([`Local`]) that they refresh when the limiter's
//! generation moves, so the table's mutex is taken once per worker per reload, never per
//! request.

// A refusal is the cold path, built once per refused request: returned by value, as the
// allocation a box would cost buys nothing there.
#![allow(clippy::result_large_err)]

mod gcra;
pub mod lease;
pub mod redis;
mod render;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::KeyLimits;
use crate::budget::{self as budget, Budget, Period};
use crate::cluster::{BudgetsWhenDown, LimitsWhenDown};
use crate::error::{Error, ErrorKind};
use crate::format::Format;
use gcra::Rate;
use lease::{block_for, Lease, Spend};

pub use gcra::{MAX_DEBT_NS, MAX_PER_MINUTE, WINDOW_NS};
pub use render::{is_rate_limit_header, openai_duration, rfc3339, Header, Level, Levels};

/// Largest `max_streams` a key may set.
pub const MAX_STREAMS: u64 = 1_000_000;
/// `retry-after` for a stream refused at the key's `max_streams`: when one of its streams ends
/// is unknown; a second keeps an SDK's retry from spinning.
pub const STREAM_RETRY_AFTER: Duration = Duration::from_secs(1);
/// `retry-after` when a lease is out and its refill is on its way (cluster mode): the next
/// try finds it refilled.
pub const LEASE_RETRY_AFTER: Duration = Duration::from_millis(100);
/// `retry-after` when a limit or budget cannot be checked because Redis is down and the
/// config says to refuse then.
pub const STORE_DOWN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which limit refused a request (the `limit` label of `ringway_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `rpm`.
    Requests,
    /// `tpm`.
    Tokens,
    /// `input_tpm`.
    InputTokens,
    /// `output_tpm`.
    OutputTokens,
    /// `max_streams`.
    Streams,
    /// `budget`: money.
    BudgetUsd,
    /// `budget`: tokens.
    BudgetTokens,
    /// Redis is down and the config refuses limited requests then.
    StoreDown,
}

impl Limit {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Tokens => "tokens",
            Limit::InputTokens => "input_tokens",
            Limit::OutputTokens => "output_tokens",
            Limit::Streams => "streams",
            Limit::BudgetUsd => "budget_usd",
            Limit::BudgetTokens => "budget_tokens",
            Limit::StoreDown => "store_down",
        }
    }
}

/// The per-minute rates, in the order of [`KeyState::buckets`] and the cluster's leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Requests = 0,
    Tokens = 1,
    Input = 2,
    Output = 3,
}

impl Dim {
    pub const ALL: [Dim; 4] = [Dim::Requests, Dim::Tokens, Dim::Input, Dim::Output];

    fn limit(self) -> Limit {
        match self {
            Dim::Requests => Limit::Requests,
            Dim::Tokens => Limit::Tokens,
            Dim::Input => Limit::InputTokens,
            Dim::Output => Limit::OutputTokens,
        }
    }

    /// Its tag in Redis keys.
    pub fn tag(self) -> &'static str {
        match self {
            Dim::Requests => "rpm",
            Dim::Tokens => "tpm",
            Dim::Input => "itpm",
            Dim::Output => "otpm",
        }
    }

    fn of(self, l: &KeyLimits) -> Option<u64> {
        match self {
            Dim::Requests => l.rpm,
            Dim::Tokens => l.tpm,
            Dim::Input => l.input_tpm,
            Dim::Output => l.output_tpm,
        }
    }
}

/// Whose limits a state holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A gateway key's (`[[key]]`).
    Key,
    /// A route's, all keys together (`[[route]]`).
    Route,
}

impl Scope {
    fn word(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Route => "route",
        }
    }

    /// Its tag in Redis keys.
    pub fn tag(self) -> &'static str {
        match self {
            Scope::Key => "k",
            Scope::Route => "r",
        }
    }
}

/// What a request is expected to spend of a budget, held at admission and settled with what it
/// used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Tokens: the input estimated from the body, plus the output it may generate.
    pub tokens: u64,
    /// Those tokens at the route's highest prices, in nano-dollars.
    pub nano_usd: u64,
}

/// How the limits are kept right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One node (no Redis configured): the local atomics are the limits.
    Local,
    /// Redis reachable: leases on the shared counters.
    Shared,
    /// Redis configured and unreachable.
    Down(LimitsWhenDown, BudgetsWhenDown),
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

/// A key's budget counters: its limits (0: that one is not limited), the current period, and
/// what is left of it. On one node the leases hold the whole budget (refilled when the period
/// turns); in a cluster they hold what Redis granted this node of it.
#[derive(Debug, Default)]
struct BudgetState {
    nano_usd: AtomicU64,
    tokens: AtomicU64,
    /// [`Period`] as a number: 0 day, 1 month, 2 + N fixed windows of N hours.
    period: AtomicU64,
    reserve_output_tokens: AtomicU64,
    /// The period the leases are for, and when it ends (Unix ms).
    window: AtomicU64,
    window_end: AtomicI64,
    /// No period started yet (the first admission starts one).
    fresh: AtomicBool,
    /// Periods started: a reservation from before the latest is not given back into it.
    rolls: AtomicU64,
    usd: Lease,
    tok: Lease,
}

fn period_code(p: Period) -> u64 {
    match p {
        Period::Day => 0,
        Period::Month => 1,
        Period::Hours(h) => 2 + u64::from(h),
    }
}

fn period_of(code: u64) -> Period {
    match code {
        0 => Period::Day,
        1 => Period::Month,
        n => Period::Hours(u32::try_from(n - 2).unwrap_or(u32::MAX)),
    }
}

impl BudgetState {
    fn set(&self, b: Option<Budget>, local: bool) {
        let (usd, tok) = b.map_or((0, 0), |b| (b.nano_usd.unwrap_or(0), b.tokens.unwrap_or(0)));
        let old_usd = self.nano_usd.swap(usd, Ordering::AcqRel);
        let old_tok = self.tokens.swap(tok, Ordering::AcqRel);
        if let Some(b) = b {
            let code = period_code(b.period);
            if self.period.swap(code, Ordering::AcqRel) != code {
                self.fresh.store(true, Ordering::Release);
            }
            self.reserve_output_tokens
                .store(b.reserve_output_tokens, Ordering::Release);
        }
        if old_usd == 0 && old_tok == 0 {
            self.fresh.store(true, Ordering::Release);
        } else if local {
            // A reload's new amount applies to what is left of the current period.
            adjust(&self.usd, old_usd, usd);
            adjust(&self.tok, old_tok, tok);
        }
        self.usd.restart_block(block_for(usd));
        self.tok.restart_block(block_for(tok));
    }

    fn on(&self) -> bool {
        self.nano_usd.load(Ordering::Acquire) > 0 || self.tokens.load(Ordering::Acquire) > 0
    }

    fn period(&self) -> Period {
        period_of(self.period.load(Ordering::Acquire))
    }

    /// Start the period holding `now_ms` when the leases are for an older one.
    fn roll(&self, now_ms: i64, local: bool) {
        let w = self.period().window(now_ms);
        let seen = self.window.load(Ordering::Acquire);
        // One worker starts a period: the one that clears `fresh` (first use, a reload's new
        // period), or the one that moves the window on at a boundary.
        let claimed = if self.fresh.load(Ordering::Acquire) {
            self.fresh
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        } else {
            seen != w.id
                && self
                    .window
                    .compare_exchange(seen, w.id, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
        };
        if !claimed {
            return;
        }
        self.window.store(w.id, Ordering::Release);
        self.rolls.fetch_add(1, Ordering::AcqRel);
        self.window_end.store(w.end_ms, Ordering::Release);
        for (lease, limit) in [(&self.usd, &self.nano_usd), (&self.tok, &self.tokens)] {
            let limit = limit.load(Ordering::Acquire);
            lease.restart(block_for(limit));
            if local {
                lease.refund(limit);
            }
        }
    }

    /// Until the period ends.
    fn until_end(&self, now_ms: i64) -> Duration {
        let end = self.window_end.load(Ordering::Acquire);
        Duration::from_millis(u64::try_from(end.saturating_sub(now_ms)).unwrap_or(0))
    }
}

/// Give a lease the difference between an old and a new amount.
fn adjust(lease: &Lease, old: u64, new: u64) {
    if new >= old {
        lease.refund(new - old);
    } else {
        lease.charge(old - new, 0);
        lease.release_refill();
    }
}

/// The cluster side of one state: its leases, and its stream slots as Redis counts them.
#[derive(Debug)]
pub struct Shared {
    link: Arc<redis::Link>,
    /// By [`Dim`].
    leases: [Lease; 4],
    /// The configured (cluster-wide) limits by [`Dim`]; the local buckets hold a share.
    full: [AtomicU64; 4],
    /// Nodes the local buckets' shares were cut for.
    share_nodes: AtomicU32,
    /// Stream slots Redis has recorded for this node.
    slots: AtomicU64,
    /// The last sync said the other nodes and this one fill `max_streams`.
    slots_full: AtomicBool,
    slots_pending: AtomicBool,
}

impl Shared {
    /// The lease of `dim`.
    pub fn lease(&self, dim: Dim) -> &Lease {
        &self.leases[dim as usize]
    }

    /// The configured limit of `dim` (0: none).
    pub fn full(&self, dim: Dim) -> u64 {
        self.full[dim as usize].load(Ordering::Acquire)
    }

    /// Stream slots recorded for this node; the last sync's verdict.
    pub fn slots(&self) -> u64 {
        self.slots.load(Ordering::Acquire)
    }

    /// A sync of stream slots answered: `recorded` for this node, `others` at the others.
    pub fn slots_answer(&self, recorded: u64, full: bool) {
        self.slots.store(recorded, Ordering::Release);
        self.slots_full.store(full, Ordering::Release);
        self.slots_pending.store(false, Ordering::Release);
    }

    /// A sync could not be queued or answered.
    pub fn slots_failed(&self) {
        self.slots_pending.store(false, Ordering::Release);
    }
}

/// One key's (or route's) counters, shared by every worker.
#[derive(Debug)]
pub struct KeyState {
    name: String,
    scope: Scope,
    epoch: Instant,
    /// By [`Dim`].
    buckets: [Bucket; 4],
    /// 0: no stream limit.
    max_streams: AtomicU64,
    /// Streams admitted and not yet finished.
    streams: AtomicU64,
    budget: BudgetState,
    cluster: Option<Shared>,
}

impl KeyState {
    fn new(
        name: &str,
        scope: Scope,
        limits: KeyLimits,
        budget: Option<Budget>,
        epoch: Instant,
        link: Option<&Arc<redis::Link>>,
    ) -> KeyState {
        let cluster = link.map(|link| Shared {
            link: link.clone(),
            leases: Dim::ALL.map(|d| Lease::new(block_for(d.of(&limits).unwrap_or(0)))),
            full: Dim::ALL.map(|d| AtomicU64::new(d.of(&limits).unwrap_or(0))),
            share_nodes: AtomicU32::new(0),
            slots: AtomicU64::new(0),
            slots_full: AtomicBool::new(false),
            slots_pending: AtomicBool::new(false),
        });
        let state = KeyState {
            name: name.to_owned(),
            scope,
            epoch,
            buckets: Dim::ALL.map(|d| Bucket::new(d.of(&limits))),
            max_streams: AtomicU64::new(limits.max_streams.unwrap_or(0)),
            streams: AtomicU64::new(0),
            budget: BudgetState::default(),
            cluster,
        };
        state.budget.set(budget, state.cluster.is_none());
        state
    }

    /// Nanoseconds since the limiter's epoch.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn apply(&self, limits: KeyLimits, budget: Option<Budget>, now: u64) {
        for d in Dim::ALL {
            let limit = d.of(&limits);
            match &self.cluster {
                None => self.buckets[d as usize].set_limit(limit, now),
                Some(c) => {
                    let new = limit.unwrap_or(0);
                    // A new limit is a new shared counter (its Redis key names the limit).
                    if c.full[d as usize].swap(new, Ordering::AcqRel) != new {
                        c.lease(d).restart(block_for(new));
                        c.share_nodes.store(0, Ordering::Release);
                    }
                }
            }
        }
        self.max_streams
            .store(limits.max_streams.unwrap_or(0), Ordering::Release);
        self.budget.set(budget, self.cluster.is_none());
    }

    /// The key's (or route's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whose limits these are.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The cluster side (None on one node).
    pub fn shared(&self) -> Option<&Shared> {
        self.cluster.as_ref()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> u64 {
        self.streams.load(Ordering::Acquire)
    }

    /// `max_streams` (0: none).
    pub fn max_streams(&self) -> u64 {
        self.max_streams.load(Ordering::Acquire)
    }

    /// The budget's window id and its amounts (for the Redis thread).
    pub fn budget_window(&self) -> (u64, Period, u64, u64) {
        (
            self.budget.window.load(Ordering::Acquire),
            self.budget.period(),
            self.budget.nano_usd.load(Ordering::Acquire),
            self.budget.tokens.load(Ordering::Acquire),
        )
    }

    /// The budget's leases: money, tokens.
    pub fn budget_leases(&self) -> (&Lease, &Lease) {
        (&self.budget.usd, &self.budget.tok)
    }

    fn mode(&self) -> Mode {
        match &self.cluster {
            None => Mode::Local,
            Some(c) if c.link.up() => Mode::Shared,
            Some(c) => Mode::Down(c.link.limits_when_down, c.link.budgets_when_down),
        }
    }

    /// While Redis is down, cut the local buckets to this node's share of each limit.
    fn cut_shares(&self, c: &Shared, now: u64) {
        let nodes = c.link.nodes().max(1);
        if c.share_nodes.swap(nodes, Ordering::AcqRel) == nodes {
            return;
        }
        for d in Dim::ALL {
            let full = c.full(d);
            let share = (full > 0).then(|| full.div_ceil(u64::from(nodes)));
            self.buckets[d as usize].set_limit(share, now);
        }
    }

    /// This node's share of `max_streams` while Redis is down.
    fn stream_share(&self, c: &Shared) -> u64 {
        self.max_streams()
            .div_ceil(u64::from(c.link.nodes().max(1)))
    }

    fn level(&self, d: Dim, now: u64) -> Option<Level> {
        match (&self.cluster, self.mode()) {
            (Some(c), Mode::Shared) => {
                let limit = c.full(d);
                (limit > 0).then(|| {
                    let remaining = c.lease(d).remaining_hint().min(limit);
                    Level {
                        limit,
                        remaining,
                        reset: Duration::from_nanos(
                            (limit - remaining).saturating_mul(WINDOW_NS / limit),
                        ),
                    }
                })
            }
            _ => self.buckets[d as usize].peek(now),
        }
    }

    fn levels(&self, now: u64) -> Levels {
        Levels {
            requests: self.level(Dim::Requests, now),
            tokens: self.level(Dim::Tokens, now),
        }
    }

    fn refuse(&self, limit: Limit, wait: Duration, now: u64) -> Refusal {
        Refusal {
            limit,
            wait,
            levels: self.levels(now),
            name: self.name.clone(),
            scope: self.scope,
            amount: match limit {
                Limit::Streams => self.max_streams(),
                Limit::BudgetUsd => self.budget.nano_usd.load(Ordering::Acquire),
                Limit::BudgetTokens => self.budget.tokens.load(Ordering::Acquire),
                Limit::Requests => self.limit_of(Dim::Requests),
                Limit::Tokens => self.limit_of(Dim::Tokens),
                Limit::InputTokens => self.limit_of(Dim::Input),
                Limit::OutputTokens => self.limit_of(Dim::Output),
                Limit::StoreDown => 0,
            },
            period: self.budget.period(),
        }
    }

    fn limit_of(&self, d: Dim) -> u64 {
        match &self.cluster {
            Some(c) => c.full(d),
            None => self.buckets[d as usize].limit.load(Ordering::Acquire),
        }
    }

    fn limited(&self, d: Dim) -> bool {
        self.limit_of(d) > 0
    }

    /// Ask the Redis thread for a refill of `what` (a no-op on one node).
    fn refill(self: &Arc<Self>, what: redis::What) {
        if let Some(c) = &self.cluster {
            c.link.send(self, what);
        }
    }

    /// Admit one request at `now` (limiter ns; `now_ms` Unix ms for budget periods). Checked in
    /// this order, so a refused request holds nothing: the token rates (one must be left;
    /// nothing is taken, usage is charged afterwards), the budget (the reservation, given
    /// back on a later refusal), a stream slot (streams only; given back likewise), then one
    /// request from the requests rate.
    pub fn admit(
        self: &Arc<Self>,
        now: u64,
        now_ms: i64,
        stream: bool,
        reserve: Reservation,
    ) -> Result<Admitted, Refusal> {
        let mode = self.mode();
        if let (Mode::Down(..), Some(c)) = (mode, &self.cluster) {
            self.cut_shares(c, now);
        }
        for d in [Dim::Tokens, Dim::Input, Dim::Output] {
            if self.limited(d) {
                self.check_tokens(d, mode, now)?;
            }
        }
        let reserved = self.reserve_budget(mode, now, now_ms, reserve)?;
        let rolls = self.budget.rolls.load(Ordering::Acquire);
        let slot = match self.take_slot(mode, stream, now) {
            Ok(slot) => slot,
            Err(r) => {
                self.give_back(reserved, rolls);
                return Err(r);
            }
        };
        let mut taken = None;
        if self.limited(Dim::Requests) {
            match self.take_request(mode, now) {
                Ok(level) => taken = level,
                Err(r) => {
                    self.give_back(reserved, rolls);
                    if slot {
                        self.release_slot();
                    }
                    return Err(r);
                }
            }
        }
        let mut levels = self.levels(now);
        if taken.is_some() {
            levels.requests = taken;
        }
        Ok(Admitted {
            slot,
            reserved,
            rolls,
            levels,
        })
    }

    fn check_tokens(self: &Arc<Self>, d: Dim, mode: Mode, now: u64) -> Result<(), Refusal> {
        match (mode, &self.cluster) {
            (Mode::Shared, Some(c)) => match c.lease(d).spend(0, now, true) {
                Spend::Spent { refill } => {
                    if refill {
                        self.refill(redis::What::Rate(d));
                    }
                    Ok(())
                }
                Spend::Refused { wait, refill } => {
                    if refill {
                        self.refill(redis::What::Rate(d));
                    }
                    if wait == 0 && c.lease(d).stalled(now) {
                        // Redis is slow to answer: the node's share decides meanwhile.
                        self.cut_shares(c, now);
                        return self.check_tokens(
                            d,
                            Mode::Down(LimitsWhenDown::Local, c.link.budgets_when_down),
                            now,
                        );
                    }
                    Err(self.refuse(d.limit(), lease_wait(wait), now))
                }
            },
            (Mode::Down(LimitsWhenDown::Closed, _), _) => {
                Err(self.refuse(Limit::StoreDown, STORE_DOWN_RETRY_AFTER, now))
            }
            _ => {
                let bucket = &self.buckets[d as usize];
                let Some(rate) = bucket.rate() else {
                    return Ok(());
                };
                gcra::check(rate, bucket.tat.load(Ordering::Acquire), now)
                    .map_err(|wait| self.refuse(d.limit(), Duration::from_nanos(wait), now))
            }
        }
    }

    /// Take one request: Ok with the requests level as of this very step when a local bucket
    /// took it (the level read back later could include another worker's step since).
    fn take_request(self: &Arc<Self>, mode: Mode, now: u64) -> Result<Option<Level>, Refusal> {
        match (mode, &self.cluster) {
            (Mode::Shared, Some(c)) => match c.lease(Dim::Requests).spend(1, now, true) {
                Spend::Spent { refill } => {
                    if refill {
                        self.refill(redis::What::Rate(Dim::Requests));
                    }
                    // The local bucket counts this node's use too: when Redis stalls, the
                    // node's share it falls back to starts from what the node really used.
                    self.debit_local(Dim::Requests, 1, now);
                    Ok(None)
                }
                Spend::Refused { wait, refill } => {
                    if refill {
                        self.refill(redis::What::Rate(Dim::Requests));
                    }
                    if wait == 0 && c.lease(Dim::Requests).stalled(now) {
                        // Redis is slow to answer: the node's share decides meanwhile.
                        self.cut_shares(c, now);
                        let down = Mode::Down(LimitsWhenDown::Local, c.link.budgets_when_down);
                        return self.take_request(down, now);
                    }
                    Err(self.refuse(Limit::Requests, lease_wait(wait), now))
                }
            },
            (Mode::Down(LimitsWhenDown::Closed, _), _) => {
                Err(self.refuse(Limit::StoreDown, STORE_DOWN_RETRY_AFTER, now))
            }
            _ => {
                let bucket = &self.buckets[Dim::Requests as usize];
                let Some(rate) = bucket.rate() else {
                    return Ok(None);
                };
                let (tat, at) = bucket.take_at(rate, now).map_err(|wait| {
                    self.refuse(Limit::Requests, Duration::from_nanos(wait), now)
                })?;
                // Down: what passes on the local share is settled with Redis when it is back.
                if let Some(c) = &self.cluster {
                    if c.lease(Dim::Requests).charge(1, now) {
                        self.refill(redis::What::Rate(Dim::Requests));
                    }
                }
                // Only a node's own limit is told from its bucket (a share is not the limit).
                Ok(self.cluster.is_none().then(|| bucket.level(rate, tat, at)))
            }
        }
    }

    fn take_slot(self: &Arc<Self>, mode: Mode, stream: bool, now: u64) -> Result<bool, Refusal> {
        let max = self.max_streams();
        if !stream || max == 0 {
            return Ok(false);
        }
        let refused = || self.refuse(Limit::Streams, STREAM_RETRY_AFTER, now);
        match (mode, &self.cluster) {
            (Mode::Shared, Some(c)) => {
                // A node holds slots in blocks (0.5% of the limit, at least 1) and may open one
                // block on credit while a sync is on its way, unless the last sync said every
                // slot is taken: at most one block per node over `max_streams`.
                let block = block_for(max);
                let took = self
                    .streams
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        let granted = c.slots();
                        (n < granted
                            || (n < granted + block && !c.slots_full.load(Ordering::Acquire)))
                        .then_some(n + 1)
                    });
                let Ok(n) = took else {
                    if !c.slots_pending.swap(true, Ordering::AcqRel) {
                        self.refill(redis::What::Slots);
                    }
                    return Err(refused());
                };
                // Headroom under half a block: ask for more before it runs out.
                if (n + 1).saturating_mul(2) + block > c.slots().saturating_mul(2)
                    && !c.slots_pending.swap(true, Ordering::AcqRel)
                {
                    self.refill(redis::What::Slots);
                }
                Ok(true)
            }
            (Mode::Down(LimitsWhenDown::Closed, _), _) => {
                Err(self.refuse(Limit::StoreDown, STORE_DOWN_RETRY_AFTER, now))
            }
            (_, c) => {
                let max = c.as_ref().map_or(max, |c| self.stream_share(c));
                self.streams
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map(|_| true)
                    .map_err(|_| refused())
            }
        }
    }

    fn release_slot(self: &Arc<Self>) {
        let n = self
            .streams
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if let Some(c) = &self.cluster {
            // Slots held beyond two blocks of spares go back to the other nodes.
            let block = block_for(self.max_streams());
            if c.slots() > n + 2 * block && !c.slots_pending.swap(true, Ordering::AcqRel) {
                self.refill(redis::What::Slots);
            }
        }
    }

    fn reserve_budget(
        self: &Arc<Self>,
        mode: Mode,
        now: u64,
        now_ms: i64,
        reserve: Reservation,
    ) -> Result<Reservation, Refusal> {
        let b = &self.budget;
        if !b.on() {
            return Ok(Reservation::default());
        }
        let local = self.cluster.is_none();
        b.roll(now_ms, local);
        let want = Reservation {
            nano_usd: if b.nano_usd.load(Ordering::Acquire) > 0 {
                reserve.nano_usd
            } else {
                0
            },
            tokens: if b.tokens.load(Ordering::Acquire) > 0 {
                reserve.tokens
            } else {
                0
            },
        };
        let parts = [
            (
                &b.usd,
                want.nano_usd,
                Limit::BudgetUsd,
                redis::What::BudgetUsd,
            ),
            (
                &b.tok,
                want.tokens,
                Limit::BudgetTokens,
                redis::What::BudgetTokens,
            ),
        ];
        let mut done: Vec<(&Lease, u64)> = Vec::with_capacity(2);
        for (lease, cost, limit, what) in parts {
            let on = match limit {
                Limit::BudgetUsd => b.nano_usd.load(Ordering::Acquire) > 0,
                _ => b.tokens.load(Ordering::Acquire) > 0,
            };
            if !on {
                continue;
            }
            let outcome = match mode {
                Mode::Local => lease.spend(cost, now, false),
                Mode::Shared => {
                    // A lease must be able to hold one whole reservation.
                    lease.grow_block(cost);
                    lease.spend(cost, now, true)
                }
                Mode::Down(_, BudgetsWhenDown::Closed) => lease.spend(cost, now, false),
                // Open: spend whatever is held; the debt is settled when Redis is back.
                Mode::Down(_, BudgetsWhenDown::Open) => Spend::Spent {
                    refill: lease.charge(cost, now),
                },
            };
            match outcome {
                Spend::Spent { refill } => {
                    if refill && !local {
                        self.refill(what);
                    } else if refill {
                        lease.release_refill();
                    }
                    done.push((lease, cost));
                }
                Spend::Refused { wait, refill } => {
                    if refill && !local {
                        self.refill(what);
                    } else if refill {
                        lease.release_refill();
                    }
                    for (l, c) in done {
                        l.refund(c);
                    }
                    let r = match mode {
                        Mode::Down(..) => {
                            self.refuse(Limit::StoreDown, STORE_DOWN_RETRY_AFTER, now)
                        }
                        Mode::Shared if wait == 0 => {
                            // Out of this node's lease with a refill on its way.
                            self.refuse(limit, LEASE_RETRY_AFTER, now)
                        }
                        _ => self.refuse(limit, b.until_end(now_ms), now),
                    };
                    return Err(r);
                }
            }
        }
        Ok(want)
    }

    /// Give a reservation back: only into the period it was taken from (a new period starts
    /// whole, and must not gain what an older one lent).
    fn give_back(&self, r: Reservation, rolls: u64) {
        if !self.budget.on() || self.budget.rolls.load(Ordering::Acquire) != rolls {
            return;
        }
        self.budget.usd.refund(r.nano_usd);
        self.budget.tok.refund(r.tokens);
    }

    /// Debit usage reported after the fact (`input`, `output` tokens) from the token rates.
    pub fn charge_tokens_at(self: &Arc<Self>, input: u64, output: u64, now: u64) {
        let total = input.saturating_add(output);
        if total == 0 {
            return;
        }
        let mode = self.mode();
        for (d, n) in [
            (Dim::Tokens, total),
            (Dim::Input, input),
            (Dim::Output, output),
        ] {
            if n == 0 || !self.limited(d) {
                continue;
            }
            match (mode, &self.cluster) {
                (Mode::Local, _) | (Mode::Down(..), _) => {
                    let bucket = &self.buckets[d as usize];
                    if let Some(rate) = bucket.rate() {
                        let _ = bucket.step(|tat| Ok(gcra::debit(rate, tat, now, n)));
                    }
                    if let Some(c) = &self.cluster {
                        if c.lease(d).charge(n, now) {
                            self.refill(redis::What::Rate(d));
                        }
                    }
                }
                (Mode::Shared, Some(c)) => {
                    if c.lease(d).charge(n, now) {
                        self.refill(redis::What::Rate(d));
                    }
                    self.debit_local(d, n, now);
                }
                (Mode::Shared, None) => {}
            }
        }
    }

    /// Debit `n` units from the local bucket of `d`, whatever is left (it can run a deficit).
    fn debit_local(&self, d: Dim, n: u64, now: u64) {
        let bucket = &self.buckets[d as usize];
        if let Some(rate) = bucket.rate() {
            let _ = bucket.step(|tat| Ok(gcra::debit(rate, tat, now, n)));
        }
    }

    /// Settle a request's budget reservation with what it spent.
    fn settle_budget(self: &Arc<Self>, reserved: Reservation, spent: Reservation, rolls: u64) {
        // A route holds no budget: nothing to settle (and nothing to ask Redis for).
        if !self.budget.on() {
            return;
        }
        // A reservation from an older period: only what it spent beyond it is charged, to the
        // period running now.
        let same_period = self.budget.rolls.load(Ordering::Acquire) == rolls;
        let now = self.now();
        for (lease, held, used, what) in [
            (
                &self.budget.usd,
                reserved.nano_usd,
                spent.nano_usd,
                redis::What::BudgetUsd,
            ),
            (
                &self.budget.tok,
                reserved.tokens,
                spent.tokens,
                redis::What::BudgetTokens,
            ),
        ] {
            if held == 0 && used == 0 {
                continue;
            }
            let used = if same_period {
                lease.refund(held);
                used
            } else {
                used.saturating_sub(held)
            };
            if lease.charge(used, now) {
                if self.cluster.is_some() {
                    self.refill(what);
                } else {
                    lease.release_refill();
                }
            }
        }
    }
}

/// Wait to tell a client refused by an empty lease: what Redis said, or a moment when a
/// refill is on its way.
fn lease_wait(wait: u64) -> Duration {
    if wait == 0 {
        LEASE_RETRY_AFTER
    } else {
        Duration::from_nanos(wait)
    }
}

/// What admission took from one state.
#[derive(Debug)]
pub struct Admitted {
    slot: bool,
    reserved: Reservation,
    /// The budget period the reservation was made in.
    rolls: u64,
    levels: Levels,
}

/// One state a ticket holds: what it took there.
#[derive(Debug)]
struct Held {
    state: Arc<KeyState>,
    slot: bool,
    reserved: Reservation,
    rolls: u64,
}

/// A request let in under its key's and route's limits: it holds stream slots until dropped
/// (the end of the exchange), charges tokens when its usage is known, settles its budget
/// reservation at the end, and says what headers the client gets.
#[derive(Debug)]
pub struct Ticket {
    held: Vec<Held>,
    /// Tokens already debited for this request: input, output (usage is charged as it grows).
    charged: Cell<(u64, u64)>,
    settled: Cell<bool>,
    /// The key's levels right after admission (the route's when only the route is limited).
    pub levels: Levels,
}

impl Ticket {
    /// The request's usage so far is `input` and `output` tokens: debit what was not debited
    /// yet. Called as usage arrives (a stream reports it at its start and its end) and once at
    /// the end.
    pub fn charge_usage(&self, input: u64, output: u64) {
        let (ci, co) = self.charged.get();
        let (di, d_o) = (input.saturating_sub(ci), output.saturating_sub(co));
        if di == 0 && d_o == 0 {
            return;
        }
        self.charged.set((ci.max(input), co.max(output)));
        for h in &self.held {
            h.state.charge_tokens_at(di, d_o, h.state.now());
        }
    }

    /// Settle the budget with what the request spent (`spent`: its tokens, and their cost at
    /// the served model's price). Once; a ticket dropped unsettled gives its reservation back.
    pub fn settle(&self, spent: Reservation) {
        if self.settled.replace(true) {
            return;
        }
        for h in &self.held {
            h.state.settle_budget(h.reserved, spent, h.rolls);
        }
    }

    /// What the key's budget reserved at admission.
    pub fn reserved(&self) -> Reservation {
        self.held
            .first()
            .map_or(Reservation::default(), |h| h.reserved)
    }

    /// Whether the key has a budget (the caller prices the usage only then).
    pub fn has_budget(&self) -> bool {
        self.held.iter().any(|h| h.state.budget.on())
    }

    /// The rate-limit headers of a response to this request, in `format`'s names.
    pub fn headers(&self, format: Format, out: &mut Vec<Header>) {
        render::level_headers(format, &self.levels, SystemTime::now(), out);
    }

    /// The key's state (the first held).
    pub fn key(&self) -> Option<&KeyState> {
        self.held.first().map(|h| &*h.state)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled.get() {
            for h in &self.held {
                h.state.give_back(h.reserved, h.rolls);
            }
        }
        for h in &self.held {
            if h.slot {
                h.state.release_slot();
            }
        }
    }
}

/// A request refused by one of its key's (or route's) limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which limit.
    pub limit: Limit,
    /// Until it would pass (for streams: [`STREAM_RETRY_AFTER`]).
    pub wait: Duration,
    /// The buckets' levels.
    pub levels: Levels,
    /// The key's or route's name.
    name: String,
    scope: Scope,
    /// The limit's amount (a count, or nano-dollars for money).
    amount: u64,
    period: Period,
}

impl Refusal {
    /// The headers of the 429: the levels, `retry-after` and `retry-after-ms`.
    pub fn headers(&self, format: Format, out: &mut Vec<Header>) {
        render::level_headers(format, &self.levels, SystemTime::now(), out);
        render::retry_headers(self.wait, out);
    }

    /// The key's or route's name, and which of them.
    pub fn whose(&self) -> (&str, Scope) {
        (&self.name, self.scope)
    }

    /// The error, worded as the providers word theirs: a 429 whose OpenAI `error.type` is the
    /// limit's unit (`requests` or `tokens`; a stream limit is one on requests, a spent budget
    /// is `insufficient_quota`), or a 503 when Redis is down and the config refuses then.
    pub fn error(&self) -> Error {
        let again = openai_duration(self.wait);
        let (scope, name, amount) = (self.scope.word(), &self.name, self.amount);
        let per_min = |unit: &str, short: &str| {
            format!(
                "Rate limit reached for {scope} `{name}` on {unit} per min ({short}): \
                 Limit {amount}. Please try again in {again}."
            )
        };
        let (unit, message) = match self.limit {
            Limit::Requests => ("requests", per_min("requests", "RPM")),
            Limit::Tokens => ("tokens", per_min("tokens", "TPM")),
            Limit::InputTokens => ("tokens", per_min("input tokens", "input TPM")),
            Limit::OutputTokens => ("tokens", per_min("output tokens", "output TPM")),
            Limit::Streams => (
                "requests",
                format!(
                    "Concurrent stream limit reached for {scope} `{name}`: Limit {amount} \
                     streams at once. Please try again when one of them ends."
                ),
            ),
            Limit::BudgetUsd | Limit::BudgetTokens => {
                let what = match self.limit {
                    Limit::BudgetUsd => budget::dollars(amount),
                    _ => format!("{amount} tokens"),
                };
                (
                    "insufficient_quota",
                    format!(
                        "Budget exhausted for {scope} `{name}`: {what} per {}. \
                         It renews in {again}.",
                        self.period.describe()
                    ),
                )
            }
            Limit::StoreDown => {
                return Error::new(
                    ErrorKind::Busy,
                    format!(
                        "The limits of {scope} `{name}` are kept in a shared store that is \
                         unreachable; try again in {again}."
                    ),
                )
            }
        };
        Error::new(ErrorKind::RateLimited, message).with_openai_type(unit)
    }
}

/// Key or route name → its counters.
#[derive(Debug, Default)]
struct Table {
    keys: HashMap<String, Arc<KeyState>>,
    routes: HashMap<String, Arc<KeyState>>,
}

/// Every limited key's and route's counters, for the whole process.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    /// The current table; locked only to replace it (reload) or to copy its `Arc` (a worker
    /// after a reload).
    table: Mutex<Arc<Table>>,
    /// Moves on every reconfigure: a worker whose copy is older fetches the new table.
    generation: AtomicU64,
    /// The Redis thread's link (cluster mode).
    link: Option<Arc<redis::Link>>,
}

impl Limiter {
    /// The limiter for these keys and routes (those with no limit set take no state), with
    /// the Redis thread when `[cluster] redis` is set.
    pub fn new(
        keys: &[crate::auth::GatewayKey],
        routes: &[crate::routing::Route],
        cluster: &crate::cluster::Settings,
    ) -> Arc<Limiter> {
        let epoch = Instant::now();
        let link = cluster
            .redis
            .as_ref()
            .map(|_| redis::Link::start(cluster, epoch));
        let limiter = Limiter {
            epoch,
            table: Mutex::new(Arc::new(Table::default())),
            generation: AtomicU64::new(0),
            link,
        };
        limiter.reconfigure(keys, routes);
        Arc::new(limiter)
    }

    /// Follow a reload: keys and routes added get fresh state, those removed (or no longer
    /// limited) are dropped, changed limits apply at once with the units already used carried
    /// over, and unchanged ones keep their counters. Requests in flight keep their tickets: a
    /// stream slot of a dropped key is released into its old, unreachable state. Call it
    /// before the new config serves, so that its new keys are found limited from its first
    /// request.
    pub fn reconfigure(&self, keys: &[crate::auth::GatewayKey], routes: &[crate::routing::Route]) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Table::default();
        let link = self.link.as_ref();
        let place = |map: &mut HashMap<String, Arc<KeyState>>,
                     old: &HashMap<String, Arc<KeyState>>,
                     name: &str,
                     scope: Scope,
                     limits: KeyLimits,
                     budget: Option<Budget>| {
            // Entries sharing a name share one state (config checks their limits agree).
            if (limits.is_unlimited() && budget.is_none()) || map.contains_key(name) {
                return;
            }
            let state = match old.get(name) {
                Some(state) => {
                    state.apply(limits, budget, now);
                    state.clone()
                }
                None => Arc::new(KeyState::new(name, scope, limits, budget, self.epoch, link)),
            };
            map.insert(name.to_owned(), state);
        };
        for k in keys {
            place(
                &mut next.keys,
                &table.keys,
                &k.name,
                Scope::Key,
                k.limits,
                k.budget,
            );
        }
        for r in routes {
            place(
                &mut next.routes,
                &table.routes,
                &r.model,
                Scope::Route,
                r.limits,
                None,
            );
        }
        *table = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The state of key `name` (None: not limited). Takes the table's lock: for tests and
    /// tools; workers go through [`Local`].
    pub fn key(&self, name: &str) -> Option<Arc<KeyState>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.keys.get(name).cloned()
    }

    /// The state of route `model` (None: not limited).
    pub fn route(&self, model: &str) -> Option<Arc<KeyState>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.routes.get(model).cloned()
    }

    /// Redis calls made so far (cluster mode), for `/metrics` and the measurements.
    pub fn link(&self) -> Option<&Arc<redis::Link>> {
        self.link.as_ref()
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
            table: RefCell::new(Arc::new(Table::default())),
        }
    }

    /// The process-wide limiter (for the reload path).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.shared
    }

    fn table(&self) -> Arc<Table> {
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
        self.table.borrow().clone()
    }

    /// Whether key `key` has a budget (the caller then works out a reservation).
    pub fn has_budget(&self, key: &str) -> bool {
        self.table().keys.get(key).is_some_and(|s| s.budget.on())
    }

    /// The output tokens a budgeted key reserves for a request that sets no output limit.
    pub fn reserve_output_tokens(&self, key: &str) -> u64 {
        self.table().keys.get(key).map_or(0, |s| {
            s.budget.reserve_output_tokens.load(Ordering::Acquire)
        })
    }

    /// Admit a request of key `key` to route `route` (a route name; None for a direct
    /// `provider/model`) now: Ok(None) when neither is limited.
    pub fn admit(
        &self,
        key: Option<&str>,
        route: Option<&str>,
        stream: bool,
        reserve: Reservation,
    ) -> Result<Option<Ticket>, Refusal> {
        let table = self.table();
        let states = [
            key.and_then(|k| table.keys.get(k)),
            route.and_then(|r| table.routes.get(r)),
        ];
        if states.iter().all(Option::is_none) {
            return Ok(None);
        }
        let now_ms = crate::calendar::unix_millis(SystemTime::now());
        let mut ticket = Ticket {
            held: Vec::with_capacity(2),
            charged: Cell::new((0, 0)),
            settled: Cell::new(false),
            levels: Levels::default(),
        };
        for (i, state) in states.into_iter().enumerate() {
            let Some(state) = state else { continue };
            // Only a key holds a budget.
            let reserve = if i == 0 {
                reserve
            } else {
                Reservation::default()
            };
            // A refusal drops the ticket: what earlier states took goes back.
            let a = state.admit(state.now(), now_ms, stream, reserve)?;
            if ticket.held.is_empty() {
                ticket.levels = a.levels;
            }
            ticket.held.push(Held {
                state: state.clone(),
                slot: a.slot,
                reserved: a.reserved,
                rolls: a.rolls,
            });
        }
        Ok(Some(ticket))
    }

    /// Debit `tokens` from key `key`'s token rates (callable at any time; a key without them
    /// ignores it).
    pub fn charge_tokens(&self, key: &str, input: u64, output: u64) {
        if let Some(state) = self.table().keys.get(key) {
            state.charge_tokens_at(input, output, state.now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::GatewayKey;

    impl Limiter {
        /// One node, these keys.
        fn local(keys: &[GatewayKey]) -> Arc<Limiter> {
            let limiter = Limiter {
                epoch: Instant::now(),
                table: Mutex::new(Arc::new(Table::default())),
                generation: AtomicU64::new(0),
                link: None,
            };
            limiter.reconfigure_keys(keys);
            Arc::new(limiter)
        }

        fn reconfigure_keys(&self, keys: &[GatewayKey]) {
            self.reconfigure(keys, &[]);
        }
    }

    impl KeyState {
        /// Admit at `now` into a ticket of its own.
        fn ticket(self: &Arc<Self>, now: u64, stream: bool) -> Result<Ticket, Refusal> {
            let a = self.admit(now, 0, stream, Reservation::default())?;
            Ok(Ticket {
                held: vec![Held {
                    state: self.clone(),
                    slot: a.slot,
                    reserved: a.reserved,
                    rolls: a.rolls,
                }],
                charged: Cell::new((0, 0)),
                settled: Cell::new(false),
                levels: a.levels,
            })
        }
    }

    impl Local {
        fn admit_key(&self, key: &str, stream: bool) -> Result<Option<Ticket>, Refusal> {
            self.admit(Some(key), None, stream, Reservation::default())
        }
    }

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
                ..KeyLimits::default()
            },
            budget: None,
            tiers: None,
            default_tier: None,
            pii: false,
            store_responses: true,
            strict_translation: false,
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
        let limiter = Limiter::local(&[key("k", Some(500), None, Some(3))]);
        let state = limiter.key("k").unwrap();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    s.spawn(move || {
                        (0..200)
                            .filter(|_| state.ticket(10 * S, false).is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 500);
        let refused = state.ticket(10 * S, false).unwrap_err();
        assert_eq!(refused.limit, Limit::Requests);
        assert_eq!(refused.wait, Duration::from_millis(120));

        let limiter = Limiter::local(&[key("k", None, None, Some(3))]);
        let state = limiter.key("k").unwrap();
        let tickets: Vec<Ticket> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    s.spawn(move || {
                        (0..50)
                            .filter_map(|_| state.ticket(S, true).ok())
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
        assert!(state.ticket(S, false).is_ok());
        assert_eq!(state.ticket(S, true).unwrap_err().limit, Limit::Streams);
        drop(tickets);
        assert_eq!(state.open_streams(), 0);
        assert!(state.ticket(S, true).is_ok());
        assert_eq!(state.open_streams(), 0);
    }

    #[test]
    fn a_refused_request_holds_nothing() {
        let limiter = Limiter::local(&[key("k", Some(2), None, Some(5))]);
        let state = limiter.key("k").unwrap();
        let a = state.ticket(S, true).unwrap();
        let b = state.ticket(S, true).unwrap();
        assert_eq!(a.levels.requests.unwrap().remaining, 1);
        assert_eq!(b.levels.requests.unwrap().remaining, 0);
        let r = state.ticket(S, true).unwrap_err();
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
        let limiter = Limiter::local(&[key("k", Some(100), Some(1000), None)]);
        let state = limiter.key("k").unwrap();
        let t = state.ticket(S, false).unwrap();
        assert_eq!(t.levels.tokens.unwrap().remaining, 1000);
        // In flight together: both admitted before either's usage is known.
        let u = state.ticket(S, false).unwrap();
        state.charge_tokens_at(900, 0, S);
        state.charge_tokens_at(400, 0, S);
        drop((t, u));
        // 1300 of 1000 used: refused until 301 tokens (18.06 s) have refilled.
        let r = state.ticket(2 * S, false).unwrap_err();
        assert_eq!(r.limit, Limit::Tokens);
        assert_eq!(r.wait, Duration::from_millis(301 * 60 - 1000));
        let e = r.error();
        assert_eq!(e.status(), 429);
        let body: serde_json::Value =
            serde_json::from_slice(&Format::OpenAi.error_body(&e)).unwrap();
        assert_eq!(body["error"]["type"], "tokens");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(
                "key `k` on tokens per min (TPM): Limit 1000. Please try again in 17.06s"
            ),
            "{message}"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&Format::Anthropic.error_body(&e)).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        // The refused request took no request from the rpm bucket.
        // (two used at 1 s, 1 s of refill since: 1.67 of 100 used)
        assert_eq!(r.levels.requests.unwrap().remaining, 99);
        assert!(state.ticket(S + 18_060_000_000, false).is_ok());
        // A key without tpm ignores charges.
        let limiter = Limiter::local(&[key("r", Some(1), None, None)]);
        limiter.key("r").unwrap().charge_tokens_at(u64::MAX, 0, S);
        assert!(limiter.key("r").unwrap().ticket(S, false).is_ok());
    }

    #[test]
    fn reconfigure_keeps_unchanged_counts_and_applies_changes() {
        let limiter = Limiter::local(&[
            key("same", Some(10), None, None),
            key("grow", Some(10), None, None),
            key("gone", Some(10), None, None),
            key("free", None, None, None),
        ]);
        assert!(limiter.key("free").is_none());
        let local = Local::new(limiter.clone());
        for _ in 0..4 {
            local.admit_key("same", false).unwrap().unwrap();
            local.admit_key("grow", false).unwrap().unwrap();
        }
        let held = local.admit_key("gone", true).unwrap().unwrap();
        let same = limiter.key("same").unwrap();
        limiter.reconfigure_keys(&[
            key("same", Some(10), None, None),
            key("grow", Some(20), None, Some(1)),
            key("new", Some(1), None, None),
            key("free", None, Some(5), None),
        ]);
        assert!(Arc::ptr_eq(&same, &limiter.key("same").unwrap()));
        let now = same.now();
        let level = |name: &str| limiter.key(name).unwrap().buckets[0].peek(now).unwrap();
        assert_eq!(level("same").remaining, 6);
        // 4 of 10 used become 4 of 20 (a few refilled while the test ran, never more used).
        assert!((16..=20).contains(&level("grow").remaining));
        assert_eq!(level("grow").limit, 20);
        assert_eq!(level("new").remaining, 1);
        assert!(limiter.key("gone").is_none());
        assert!(limiter.key("free").unwrap().buckets[1].peek(now).is_some());
        // The worker's copy follows the generation: the removed key is unlimited for it, the
        // added one limited, and the stream limit applies.
        assert!(local.admit_key("gone", false).unwrap().is_none());
        assert!(local.admit_key("new", false).unwrap().is_some());
        assert_eq!(
            local.admit_key("new", false).unwrap_err().limit,
            Limit::Requests
        );
        let s = local.admit_key("grow", true).unwrap().unwrap();
        assert_eq!(
            local.admit_key("grow", true).unwrap_err().limit,
            Limit::Streams
        );
        drop(s);
        assert!(local.admit_key("grow", true).is_ok());
        // A ticket of a dropped key releases into its old state harmlessly.
        drop(held);
        // Unlimiting then limiting again starts full.
        limiter.reconfigure_keys(&[key("same", None, None, None)]);
        assert!(limiter.key("same").is_none());
        limiter.reconfigure_keys(&[key("same", Some(10), None, None)]);
        assert_eq!(level("same").remaining, 10);
    }

    #[test]
    fn charge_tokens_by_name_from_any_worker() {
        let limiter = Limiter::local(&[key("k", None, Some(100), None)]);
        let (a, b) = (Local::new(limiter.clone()), Local::new(limiter.clone()));
        a.charge_tokens("k", 60, 0);
        b.charge_tokens("k", 60, 0);
        b.charge_tokens("nobody", 60, 0);
        let r = a.admit_key("k", false).unwrap_err();
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

    #[test]
    fn a_reservation_goes_back_only_into_the_period_it_came_from() {
        let mut k = key("b", None, None, None);
        k.budget = Some(Budget {
            nano_usd: None,
            tokens: Some(100),
            period: Period::Day,
            reserve_output_tokens: 10,
        });
        let limiter = Limiter::local(&[k]);
        let state = limiter.key("b").unwrap();
        let day = crate::calendar::DAY_MS;
        let reserve = Reservation {
            tokens: 60,
            nano_usd: 0,
        };
        let a = state.admit(S, day / 2, false, reserve).unwrap();
        assert_eq!(state.budget.tok.balance(), 40);
        // The next day starts whole; the old day's reservation is not lent to it.
        state.budget.roll(day + 1, true);
        assert_eq!(state.budget.tok.balance(), 100);
        state.give_back(a.reserved, a.rolls);
        assert_eq!(state.budget.tok.balance(), 100);
        // Settled late: only what it used beyond its reservation counts in the new day.
        state.settle_budget(
            a.reserved,
            Reservation {
                tokens: 70,
                nano_usd: 0,
            },
            a.rolls,
        );
        assert_eq!(state.budget.tok.balance(), 90);
        // Within one day, a reservation settles to what was used.
        let b = state.admit(S, day + 2, false, reserve).unwrap();
        assert_eq!(state.budget.tok.balance(), 30);
        state.settle_budget(
            b.reserved,
            Reservation {
                tokens: 5,
                nano_usd: 0,
            },
            b.rolls,
        );
        assert_eq!(state.budget.tok.balance(), 85);
        // A second roll of the same day is a no-op.
        state.budget.roll(day + 3, true);
        assert_eq!(state.budget.tok.balance(), 85);
    }
}
