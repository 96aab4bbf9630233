//! The Redis thread (`ringway-redis`): the only place that talks to Redis. Workers hand it
//! refills through a bounded channel (`try_send`, never blocking); it answers by writing the
//! leases' atomics ([`super::lease`]). Each wake sends everything that waits as one
//! pipeline (one round trip), each step an atomic server-side script, so two nodes never
//! interleave inside one step.
//!
//! Counters in Redis (all under `ringway:`), each step timed by the server's clock:
//! - `r:{k|r}:{name}:{rpm|tpm|itpm|otpm}:{limit}`: a GCRA theoretical arrival time in µs
//!   (the same algorithm as the local buckets); a grant takes what fits of a block, a debt is
//!   charged first whatever fits, a return (negative debt) moves it back;
//! - `s:{k|r}:{name}`: a hash of node → `open+spare:expiry_ms`, the stream slots each node
//!   holds, expired when a node stops refreshing them (a node that died gives its slots back);
//! - `b:{name}:{period}:{window}`: a hash of money (`u`, nano-dollars) and tokens (`t`) used in
//!   one budget period;
//! - `nodes`: the nodes alive (a sorted set by last heartbeat), whose count cuts the local
//!   shares used while Redis is down.
//!
//! Health: the first failed call marks Redis down (one log line, the metric, `/readyz`); the
//! thread then reconnects with a capped backoff and, once back, settles every lease that ran
//! a debt meanwhile. Nothing here ever blocks a worker: a full channel drops the refill (the
//! lease asks again on its next spend).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::lease::{Ask, Lease};
use super::{Dim, KeyState};
use crate::cluster::{BudgetsWhenDown, LimitsWhenDown, Settings};

/// Refills that may wait for the thread; past it a refill is dropped (asked again later).
pub const QUEUE: usize = 4096;
/// Most steps sent in one pipeline.
pub const BATCH: usize = 256;
/// How often the thread sweeps: heartbeat, idle leases back, slots refreshed, reconnect.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// A node not heard from for this long is no longer counted alive.
pub const NODE_STALE_MS: u64 = 5_000;
/// Stream slots a node does not refresh for this long go back to the others.
pub const SLOT_TTL_MS: u64 = 10_000;
/// Reconnect backoff: first wait, and the cap.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// How soon a budget lease that got nothing asks again.
const BUDGET_RETRY_NS: u64 = 1_000_000_000;
/// Prefix of every key.
const PREFIX: &str = "ringway:";

/// GCRA grant. KEYS[1] the TAT (µs). ARGV: want, debt (negative: a return), cost µs, tau µs.
/// Returns {granted, left, wait µs}.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want, debt = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, tau = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + debt * cost
if tat < now then tat = now end
local cap = now + tau + 86400000000
if tat > cap then tat = cap end
local room = math.floor((now + tau - tat) / cost)
if room < 0 then room = 0 end
local k = want
if room < k then k = room end
tat = tat + k * cost
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
else
  redis.call('DEL', KEYS[1])
end
local left = math.floor((now + tau - tat) / cost)
if left < 0 then left = 0 end
local wait = 0
if k < want then wait = tat + cost - now - tau end
if wait < 0 then wait = 0 end
return {k, left, wait}
";

/// Budget grant. KEYS[1] the period's hash. ARGV: field, want, debt (negative: a return),
/// limit, ttl s. Returns {granted, left}.
const BUDGET: &str = r"
local f = ARGV[1]
local want, debt, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local used = tonumber(redis.call('HGET', KEYS[1], f) or '0') + debt
if used < 0 then used = 0 end
local room = limit - used
if room < 0 then room = 0 end
local k = want
if room < k then k = room end
used = used + k
redis.call('HSET', KEYS[1], f, string.format('%.0f', used))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
local left = limit - used
if left < 0 then left = 0 end
return {k, left}
";

/// Stream slots. KEYS[1] the hash. ARGV: node, open, spare wanted, limit, ttl ms. Records
/// open + the spare that fits; returns {recorded, held by the others}.
const SLOTS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node = ARGV[1]
local open, want, limit, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local all = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, ':', 1, true)
  local n, exp = 0, 0
  if sep then
    n = tonumber(string.sub(v, 1, sep - 1)) or 0
    exp = tonumber(string.sub(v, sep + 1)) or 0
  end
  if exp < now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= node then
    others = others + n
  end
end
local spare = limit - others - open
if spare > want then spare = want end
if spare < 0 then spare = 0 end
local rec = open + spare
if rec == 0 then
  redis.call('HDEL', KEYS[1], node)
else
  redis.call('HSET', KEYS[1], node, rec .. ':' .. (now + ttl))
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
end
return {rec, others}
";

/// Heartbeat. KEYS[1] the nodes' set. ARGV: node, stale ms. Returns the nodes alive.
const NODES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
";

/// What a refill is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Rate(Dim),
    Slots,
    BudgetUsd,
    BudgetTokens,
}

struct Job {
    state: Arc<KeyState>,
    what: What,
}

/// Workers' handle on the Redis thread, and what it reports.
#[derive(Debug)]
pub struct Link {
    tx: SyncSender<Job>,
    up: AtomicBool,
    nodes: AtomicU32,
    /// What limits do while Redis is down.
    pub limits_when_down: LimitsWhenDown,
    /// What budgets do while Redis is down.
    pub budgets_when_down: BudgetsWhenDown,
    /// Pipelines sent (round trips), and steps in them.
    round_trips: AtomicU64,
    steps: AtomicU64,
    /// Refills dropped because the queue was full.
    dropped: AtomicU64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({}, {:?})", self.state.name(), self.what)
    }
}

impl Link {
    /// Start the thread for `[cluster]` (its `redis` set); it connects in the background (the
    /// start-up check that Redis is reachable is [`probe`]).
    pub fn start(settings: &Settings, epoch: Instant) -> Arc<Link> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let link = Arc::new(Link {
            tx,
            // `serve` checked that Redis answers before it built this: serve as up until the
            // thread's first call says otherwise.
            up: AtomicBool::new(true),
            nodes: AtomicU32::new(settings.expected_nodes.max(1)),
            limits_when_down: settings.limits_when_down,
            budgets_when_down: settings.budgets_when_down,
            round_trips: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        crate::cluster::health().redis.start_up();
        let url = settings
            .redis
            .as_ref()
            .map(|u| u.url.clone())
            .unwrap_or_default();
        let thread = Thread {
            link: Arc::downgrade(&link),
            rx,
            url,
            // Per process, not per node id: during a restart the old and the new process share
            // the id, and must not overwrite each other's stream slots.
            node: format!("{}.{}", settings.node_id, std::process::id()),
            timeout: settings.redis_timeout,
            epoch,
            conn: None,
            known: Vec::new(),
            seen: HashMap::new(),
            next_connect: Instant::now(),
            backoff: RECONNECT_MIN,
            last_sweep: Instant::now(),
            scripts: Scripts::new(),
            announced: false,
        };
        let spawned = std::thread::Builder::new()
            .name("ringway-redis".into())
            .spawn(move || thread.run());
        if let Err(e) = spawned {
            link.up.store(false, Ordering::Release);
            crate::cluster::health().redis.set_up(false);
            crate::log::warn(format_args!("cannot start the Redis thread: {e}"));
        }
        link
    }

    /// Whether the last call reached Redis.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Nodes alive at the last heartbeat (the configured guess before the first).
    pub fn nodes(&self) -> u32 {
        self.nodes.load(Ordering::Acquire)
    }

    /// Round trips to Redis and steps sent in them, since start.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.round_trips.load(Ordering::Relaxed),
            self.steps.load(Ordering::Relaxed),
        )
    }

    /// Refills dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Its counters in Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (trips, steps) = self.calls();
        let _ = write!(
            out,
            "# HELP ringway_cluster_redis_round_trips_total Pipelines sent to Redis (lease refills, returns, heartbeats).\n\
             # TYPE ringway_cluster_redis_round_trips_total counter\n\
             ringway_cluster_redis_round_trips_total {trips}\n\
             # HELP ringway_cluster_redis_steps_total Script steps sent to Redis in those pipelines.\n\
             # TYPE ringway_cluster_redis_steps_total counter\n\
             ringway_cluster_redis_steps_total {steps}\n\
             # HELP ringway_cluster_lease_refills_dropped_total Lease refills dropped because the Redis thread's queue was full.\n\
             # TYPE ringway_cluster_lease_refills_dropped_total counter\n\
             ringway_cluster_lease_refills_dropped_total {}\n\
             # HELP ringway_cluster_nodes Nodes alive as Redis last counted them.\n\
             # TYPE ringway_cluster_nodes gauge\n\
             ringway_cluster_nodes {}\n",
            self.dropped(),
            self.nodes(),
        );
    }

    /// Queue a refill of `what` for `state` (its pending flag already claimed). Never blocks:
    /// a full queue drops it and frees the flag, so the next spend asks again.
    pub fn send(&self, state: &Arc<KeyState>, what: What) {
        let job = Job {
            state: state.clone(),
            what,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                fail(&job);
            }
            Err(mpsc::TrySendError::Disconnected(job)) => {
                // The thread is gone: nothing refills leases any more, so the node keeps to
                // its share (as with Redis down) rather than refusing on spent leases.
                if self.up.swap(false, Ordering::AcqRel) {
                    crate::cluster::health().redis.set_up(false);
                    crate::log::error(format_args!(
                        "redis: the Redis thread stopped; limits fall back to each node's share"
                    ));
                }
                fail(&job);
            }
        }
    }
}

/// Free the pending flag of a refill that will not be answered.
fn fail(job: &Job) {
    match job.what {
        What::Slots => {
            if let Some(c) = job.state.shared() {
                c.slots_failed();
            }
        }
        what => {
            if let Some(lease) = lease_of(&job.state, what) {
                lease.release_refill();
            }
        }
    }
}

fn lease_of(state: &KeyState, what: What) -> Option<&Lease> {
    match what {
        What::Rate(d) => state.shared().map(|c| c.lease(d)),
        What::BudgetUsd => Some(state.budget_leases().0),
        What::BudgetTokens => Some(state.budget_leases().1),
        What::Slots => None,
    }
}

/// Connect to `url` within `timeout` and run one command: the start-up check that Redis is
/// reachable (`Err`: why not).
pub fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| format!("cannot connect: {e}"))?;
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(|_| ())
        .map_err(|e| format!("PING failed: {e}"))
}

struct Scripts {
    rate: redis::Script,
    budget: redis::Script,
    slots: redis::Script,
    nodes: redis::Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            rate: redis::Script::new(RATE),
            budget: redis::Script::new(BUDGET),
            slots: redis::Script::new(SLOTS),
            nodes: redis::Script::new(NODES),
        }
    }

    fn load(&self, conn: &mut redis::Connection) -> redis::RedisResult<()> {
        for s in [&self.rate, &self.budget, &self.slots, &self.nodes] {
            s.prepare_invoke().load(conn)?;
        }
        Ok(())
    }
}

/// One step of a pipeline, and how to apply its answer.
enum Step {
    Rate {
        state: Arc<KeyState>,
        dim: Dim,
        ask: Ask,
    },
    /// Fire and forget: a lease given back.
    Give(redis::Cmd),
    Budget {
        state: Arc<KeyState>,
        usd: bool,
        ask: Ask,
    },
    Slots {
        state: Arc<KeyState>,
    },
    Nodes,
}

struct Thread {
    link: Weak<Link>,
    rx: Receiver<Job>,
    url: String,
    node: String,
    timeout: Duration,
    epoch: Instant,
    conn: Option<redis::Connection>,
    /// Every state a refill was asked for (swept for idle leases, slots and settlement).
    known: Vec<Weak<KeyState>>,
    /// The states in `known`, by address (a freed state's address can be reused: checked
    /// against the live state, not trusted alone).
    seen: HashMap<usize, Weak<KeyState>>,
    next_connect: Instant,
    backoff: Duration,
    last_sweep: Instant,
    scripts: Scripts,
    /// The first state has been logged.
    announced: bool,
}

impl Thread {
    fn run(mut self) {
        if let Some(link) = self.link.upgrade() {
            self.connect(&link, Vec::new());
        }
        loop {
            let mut jobs = Vec::new();
            match self.rx.recv_timeout(SWEEP_EVERY) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while jobs.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let Some(link) = self.link.upgrade() else {
                return;
            };
            for job in &jobs {
                self.remember(&job.state);
            }
            if self.conn.is_none() {
                if Instant::now() >= self.next_connect {
                    // Connected: these jobs went with the settlement.
                    self.connect(&link, jobs);
                } else {
                    jobs.iter().for_each(fail);
                }
                continue;
            }
            let mut steps = Vec::with_capacity(jobs.len() + 8);
            for job in jobs {
                self.step_for(job, &mut steps);
            }
            if self.last_sweep.elapsed() >= SWEEP_EVERY {
                self.last_sweep = Instant::now();
                self.sweep(&mut steps);
            }
            self.send(&link, steps);
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn remember(&mut self, state: &Arc<KeyState>) {
        let at = Arc::as_ptr(state) as usize;
        if let Some(w) = self.seen.get(&at) {
            if w.upgrade().is_some_and(|s| Arc::ptr_eq(&s, state)) {
                return;
            }
        }
        self.seen.insert(at, Arc::downgrade(state));
        self.known.push(Arc::downgrade(state));
    }

    /// Drop the states no config holds any more.
    fn forget_dead(&mut self) {
        self.known.retain(|w| w.strong_count() > 0);
        self.seen.retain(|_, w| w.strong_count() > 0);
    }

    /// Connect; once connected, `jobs` and everything queued go in the first pipeline with
    /// the settlement of what was spent meanwhile. Not connected: `jobs` fail.
    fn connect(&mut self, link: &Link, jobs: Vec<Job>) {
        let attempt = redis::Client::open(self.url.as_str()).and_then(|c| {
            let mut conn = c.get_connection_with_timeout(self.timeout)?;
            conn.set_read_timeout(Some(self.timeout))?;
            conn.set_write_timeout(Some(self.timeout))?;
            self.scripts.load(&mut conn)?;
            Ok(conn)
        });
        match attempt {
            Ok(conn) => {
                self.conn = Some(conn);
                // Settle what was spent while it was down, and report the node, before the
                // workers are told it is back (`send` marks it up once the answers landed): a
                // lease still owing its outage would refuse until then.
                let mut steps = Vec::new();
                // Refills queued while it was down go first (their leases are claimed, so
                // `settle` leaves them to these).
                for job in jobs {
                    self.step_for(job, &mut steps);
                }
                while let Ok(job) = self.rx.try_recv() {
                    self.remember(&job.state);
                    self.step_for(job, &mut steps);
                }
                self.settle(&mut steps);
                steps.push(self.nodes_step());
                self.send(link, steps);
            }
            Err(e) => {
                jobs.iter().for_each(fail);
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
                self.mark(link, false, &e.to_string());
            }
        }
    }

    /// Record Redis's state; log the first and every change once.
    fn mark(&mut self, link: &Link, up: bool, why: &str) {
        let was = link.up.swap(up, Ordering::AcqRel);
        crate::cluster::health().redis.set_up(up);
        if was != up || !self.announced {
            self.announced = true;
            if up {
                crate::log::info(format_args!(
                    "redis: reachable; shared limits and budgets in use"
                ));
            } else {
                crate::log::warn(format_args!(
                    "redis: unreachable ({}); limits: {}, budgets: {} until it is back",
                    printable(why),
                    match link.limits_when_down {
                        LimitsWhenDown::Local => "each node its share",
                        LimitsWhenDown::Closed => "refused",
                    },
                    match link.budgets_when_down {
                        BudgetsWhenDown::Closed => "refused once leases are spent",
                        BudgetsWhenDown::Open => "admitted, settled later",
                    }
                ));
            }
        }
    }

    fn step_for(&self, job: Job, steps: &mut Vec<Step>) {
        let Job { state, what } = job;
        match what {
            What::Rate(dim) => {
                let Some(c) = state.shared() else { return };
                // Rate debts older than a window have refilled: at most one window's worth.
                let ask = c.lease(dim).ask(c.full(dim));
                steps.push(Step::Rate { state, dim, ask });
            }
            What::BudgetUsd | What::BudgetTokens => {
                let usd = what == What::BudgetUsd;
                let (u, t) = state.budget_leases();
                let ask = if usd {
                    u.ask(u64::MAX)
                } else {
                    t.ask(u64::MAX)
                };
                steps.push(Step::Budget { state, usd, ask });
            }
            What::Slots => steps.push(Step::Slots { state }),
        }
    }

    /// Every known lease that owes: a refill that charges the debt.
    fn settle(&mut self, steps: &mut Vec<Step>) {
        self.forget_dead();
        for state in self.known.iter().filter_map(Weak::upgrade) {
            let Some(c) = state.shared() else { continue };
            for dim in Dim::ALL {
                let lease = c.lease(dim);
                if c.full(dim) > 0 && lease.balance() < 0 && lease.claim_refill() {
                    let ask = lease.ask(c.full(dim));
                    steps.push(Step::Rate {
                        state: state.clone(),
                        dim,
                        ask,
                    });
                }
            }
            let (u, t) = state.budget_leases();
            for (lease, usd) in [(u, true), (t, false)] {
                if lease.balance() < 0 && lease.claim_refill() {
                    steps.push(Step::Budget {
                        state: state.clone(),
                        usd,
                        ask: lease.ask(u64::MAX),
                    });
                }
            }
            if state.open_streams() > 0 || c.slots() > 0 {
                steps.push(Step::Slots { state });
            }
        }
    }

    /// The periodic work: heartbeat, idle leases back, stream slots refreshed.
    fn sweep(&mut self, steps: &mut Vec<Step>) {
        steps.push(self.nodes_step());
        let now = self.now();
        self.forget_dead();
        for state in self.known.iter().filter_map(Weak::upgrade) {
            let Some(c) = state.shared() else { continue };
            for dim in Dim::ALL {
                let full = c.full(dim);
                let lease = c.lease(dim);
                // A debt whose refill was dropped (a full queue) is settled here.
                if full > 0 && lease.balance() < 0 && lease.claim_refill() {
                    let ask = lease.ask(full);
                    steps.push(Step::Rate {
                        state: state.clone(),
                        dim,
                        ask,
                    });
                    continue;
                }
                let (n, generation) = lease.take_idle(now);
                if n > 0 && generation != lease.generation() {
                    continue;
                }
                if n > 0 && full > 0 {
                    let (cost, tau) = rate_us(full);
                    steps.push(Step::Give(invoke(
                        &self.scripts.rate,
                        &rate_key(&state, dim, full),
                        &["0".into(), format!("-{n}"), cost, tau],
                    )));
                }
            }
            let (window, period, lim_usd, lim_tok) = state.budget_window();
            let (u, t) = state.budget_leases();
            for (lease, field, limit, usd) in [(u, "u", lim_usd, true), (t, "t", lim_tok, false)] {
                if limit > 0 && lease.balance() < 0 && lease.claim_refill() {
                    let ask = lease.ask(u64::MAX);
                    steps.push(Step::Budget {
                        state: state.clone(),
                        usd,
                        ask,
                    });
                    continue;
                }
                let (n, generation) = lease.take_idle(now);
                if n > 0 && generation != lease.generation() {
                    continue;
                }
                if n > 0 && limit > 0 {
                    steps.push(Step::Give(invoke(
                        &self.scripts.budget,
                        &budget_key(&state, window, period),
                        &[
                            field.into(),
                            "0".into(),
                            format!("-{n}"),
                            limit.to_string(),
                            budget_ttl(period).to_string(),
                        ],
                    )));
                }
            }
            if state.open_streams() > 0 || c.slots() > 0 {
                steps.push(Step::Slots { state });
            }
        }
    }

    fn nodes_step(&self) -> Step {
        Step::Nodes
    }

    /// Send `steps` as one pipeline and apply the answers; a failure marks Redis down and
    /// frees every lease's pending flag.
    fn send(&mut self, link: &Link, steps: Vec<Step>) {
        if steps.is_empty() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            steps.iter().for_each(release);
            return;
        };
        let mut pipe = redis::pipe();
        for step in &steps {
            match step {
                Step::Rate { state, dim, ask } => {
                    let c = match state.shared() {
                        Some(c) => c,
                        None => continue,
                    };
                    let (cost, tau) = rate_us(c.full(*dim));
                    pipe.add_command(invoke(
                        &self.scripts.rate,
                        &rate_key(state, *dim, c.full(*dim)),
                        &[ask.want.to_string(), ask.debt.to_string(), cost, tau],
                    ));
                }
                Step::Give(cmd) => {
                    pipe.add_command(cmd.clone());
                }
                Step::Budget { state, usd, ask } => {
                    let (window, period, lim_usd, lim_tok) = state.budget_window();
                    let limit = if *usd { lim_usd } else { lim_tok };
                    pipe.add_command(invoke(
                        &self.scripts.budget,
                        &budget_key(state, window, period),
                        &[
                            if *usd { "u" } else { "t" }.to_owned(),
                            ask.want.to_string(),
                            ask.debt.to_string(),
                            limit.to_string(),
                            budget_ttl(period).to_string(),
                        ],
                    ));
                }
                Step::Slots { state } => {
                    let open = state.open_streams();
                    // A block of spares while streams are open; none once they all ended, so
                    // an idle node holds nothing the others could use.
                    let spare = if open > 0 {
                        super::lease::block_for(state.max_streams())
                    } else {
                        0
                    };
                    pipe.add_command(invoke(
                        &self.scripts.slots,
                        &format!("{PREFIX}s:{}:{}", state.scope().tag(), state.name()),
                        &[
                            self.node.clone(),
                            open.to_string(),
                            spare.to_string(),
                            state.max_streams().to_string(),
                            SLOT_TTL_MS.to_string(),
                        ],
                    ));
                }
                Step::Nodes => {
                    pipe.add_command(invoke(
                        &self.scripts.nodes,
                        &format!("{PREFIX}nodes"),
                        &[self.node.clone(), NODE_STALE_MS.to_string()],
                    ));
                }
            }
        }
        link.round_trips.fetch_add(1, Ordering::Relaxed);
        link.steps.fetch_add(steps.len() as u64, Ordering::Relaxed);
        let answers: redis::RedisResult<Vec<redis::Value>> = pipe.query(conn);
        let answers = match answers {
            Ok(a) => a,
            Err(e) => {
                // A Redis that accepts connections but fails the steps (out of memory, a
                // read-only replica) is retried with the same backoff as one that refuses.
                self.conn = None;
                self.next_connect = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
                self.mark(link, false, &e.to_string());
                steps.iter().for_each(release);
                return;
            }
        };
        let now = self.now();
        let mut answers = answers.into_iter();
        for step in steps {
            let Some(answer) = answers.next() else {
                release(&step);
                continue;
            };
            let nums: Vec<i64> = redis::from_redis_value(&answer).unwrap_or_default();
            let n = |i: usize| nums.get(i).copied().unwrap_or(0).max(0) as u64;
            match step {
                Step::Rate { state, dim, ask } => {
                    if let Some(c) = state.shared() {
                        c.lease(dim)
                            .answer(ask, n(0), n(1), n(2).saturating_mul(1000), now);
                    }
                }
                Step::Budget { state, usd, ask } => {
                    let (u, t) = state.budget_leases();
                    let lease = if usd { u } else { t };
                    // An empty budget is asked again a second later (what other nodes give back
                    // or settle below their reservations frees room), not at the period's end.
                    let wait = if n(0) < ask.want { BUDGET_RETRY_NS } else { 0 };
                    lease.answer(ask, n(0), n(1), wait, now);
                }
                Step::Slots { state } => {
                    if let Some(c) = state.shared() {
                        let (recorded, others) = (n(0), n(1));
                        c.slots_answer(recorded, others + recorded >= state.max_streams());
                    }
                }
                Step::Nodes => {
                    let alive = u32::try_from(n(0)).unwrap_or(u32::MAX).max(1);
                    link.nodes.store(alive, Ordering::Release);
                }
                Step::Give(_) => {}
            }
        }
        self.backoff = RECONNECT_MIN;
        self.mark(link, true, "");
    }
}

/// An error's text for one log line: control characters out, at most 200 characters.
fn printable(why: &str) -> String {
    why.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A step that will not be answered: free its pending flag.
fn release(step: &Step) {
    match step {
        Step::Rate { state, dim, .. } => {
            if let Some(c) = state.shared() {
                c.lease(*dim).release_refill();
            }
        }
        Step::Budget { state, usd, .. } => {
            let (u, t) = state.budget_leases();
            if *usd { u } else { t }.release_refill();
        }
        Step::Slots { state } => {
            if let Some(c) = state.shared() {
                c.slots_failed();
            }
        }
        Step::Give(_) | Step::Nodes => {}
    }
}

fn invoke(script: &redis::Script, key: &str, args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(1).arg(key);
    for a in args {
        cmd.arg(a);
    }
    cmd
}

/// A budget period's Redis key.
fn budget_key(state: &KeyState, window: u64, period: crate::budget::Period) -> String {
    format!("{PREFIX}b:{}:{}:{window}", state.name(), period.tag())
}

/// Seconds a budget period's counters are kept: past its end, a day to spare.
fn budget_ttl(period: crate::budget::Period) -> i64 {
    let now = crate::calendar::unix_millis(SystemTime::now());
    period.window(now).end_ms.saturating_sub(now) / 1000 + 86_400
}

/// A rate's Redis key: it names the limit, so a new limit starts a new counter.
fn rate_key(state: &KeyState, dim: Dim, limit: u64) -> String {
    format!(
        "{PREFIX}r:{}:{}:{}:{limit}",
        state.scope().tag(),
        state.name(),
        dim.tag()
    )
}

/// A per-minute limit's unit cost and bucket size in µs, as text for the script. The cost is
/// fractional (a limit of 40 million a minute costs 1.5 µs a unit): whole µs would round
/// limits above a million a minute down.
fn rate_us(limit: u64) -> (String, String) {
    let cost = 60_000_000.0 / limit.max(1) as f64;
    (format!("{cost:.6}"), "60000000".to_owned())
}
