//! What a request runs with: the worker's state (pools, caches, counters, beacons) and the
//! config snapshot current when the request started; request ids; the drain's refusal.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use super::budget;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::rt::beacon::Beacon;
use crate::upstream::{DnsCache, Pool};

/// What a request runs with: the config snapshot current when it started (a reload swaps the
/// worker's snapshot; requests in flight keep theirs) and the worker's state, which outlives
/// every snapshot. Fields of the state read through `Deref`.
pub struct Ctx {
    /// The config snapshot.
    pub config: Arc<Config>,
    /// Which reload produced it (1: the config the process started with).
    pub generation: u64,
    state: Rc<WorkerState>,
}

impl std::ops::Deref for Ctx {
    type Target = WorkerState;

    fn deref(&self) -> &WorkerState {
        &self.state
    }
}

/// Per-worker state shared by all of the worker's connections and every config generation
/// (single thread: `Rc`/`Cell`).
pub struct WorkerState {
    /// Idle upstream connections.
    pub pool: Pool,
    /// Resolver cache.
    pub dns: DnsCache,
    /// Worker index (in request ids and logs).
    pub worker: usize,
    /// Counts workers that are up (shared with the runtime; read only by /readyz).
    pub ready: Arc<AtomicUsize>,
    /// Process-unique prefix for request ids (64 random bits: custody records from every
    /// start of every node share one id space).
    pub id_prefix: u64,
    next_id: Cell<u64>,
    /// This worker's counters and histograms.
    pub metrics: crate::metrics::Worker,
    /// Where workers publish metrics snapshots for scrapes.
    pub hub: Arc<crate::metrics::Hub>,
    /// Health of every target (breakers, latency) and the worker's PRNG.
    pub health: crate::routing::Health,
    /// Bytes of bodies held whole on this worker (answers and requests being translated,
    /// translated Responses answers held for their final event), and their bound.
    pub buffers: Rc<budget::BufferBudget>,
    /// Fired when a drain starts: listeners close, idle connections close, `/readyz` is 503.
    pub draining: Beacon,
    /// Fired a moment after `draining`: a connection that has not sent its first request by
    /// then is closed too.
    pub quiet: Beacon,
    /// Fired when the drain's time is up: what is still in flight ends with an error.
    pub cut: Beacon,
    /// What every worker reports (generations, reloads, drain): shared with the control thread.
    pub board: Arc<crate::rt::control::Board>,
    /// The per-key limits (shared by every worker; this worker's lock-free view).
    pub limits: crate::limits::Local,
}

impl Ctx {
    /// Build a worker's context for the config it starts with (generation 1).
    pub fn new(
        config: Arc<Config>,
        worker: usize,
        ready: Arc<AtomicUsize>,
        id_prefix: u64,
        hub: Arc<crate::metrics::Hub>,
        board: Arc<crate::rt::control::Board>,
        limiter: Arc<crate::limits::Limiter>,
    ) -> Rc<Ctx> {
        let pool = Pool::new(config.pool_max_idle, config.pool_idle_timeout);
        // Seeded apart per worker and per start: jitter and balancing draws differ everywhere.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((worker as u64) << 48)
            ^ id_prefix;
        let buffers = Rc::new(budget::BufferBudget::new(config.server.max_buffered_bytes));
        let state = Rc::new(WorkerState {
            buffers,
            pool,
            dns: DnsCache::default(),
            worker,
            ready,
            id_prefix,
            next_id: Cell::new(0),
            health: crate::routing::Health::new(seed),
            metrics: crate::metrics::Worker::default(),
            hub,
            draining: Beacon::new(),
            quiet: Beacon::new(),
            cut: Beacon::new(),
            board,
            limits: crate::limits::Local::new(limiter),
        });
        Rc::new(Ctx {
            config,
            generation: 1,
            state,
        })
    }

    /// The same worker on a new config snapshot. Pooled connections of providers whose name
    /// and address did not change stay; the others are closed. Breakers, metrics and the
    /// buffer budget carry over (their limits follow the new config).
    pub fn reloaded(&self, config: Arc<Config>, generation: u64) -> Rc<Ctx> {
        self.pool.reconfigure(
            config.pool_max_idle,
            config.pool_idle_timeout,
            config.providers.iter().map(|p| p.pool_key.as_str()),
        );
        self.buffers.set_limit(config.server.max_buffered_bytes);
        Rc::new(Ctx {
            config,
            generation,
            state: self.state.clone(),
        })
    }

    /// The worker's state alone, for tasks that outlive requests (accept loops, connections):
    /// they must not hold a config snapshot.
    pub fn state(&self) -> Rc<WorkerState> {
        self.state.clone()
    }

    /// This worker's metrics with its gauges read now: idle pool connections, and the breaker
    /// of every route target (the config's: a bounded set).
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let mut s = self.metrics.snapshot(self.pool.idle_count());
        let now = Instant::now();
        for route in self.config.routing.routes() {
            for t in &route.targets {
                s.set_breaker(&t.label, self.worker, self.health.breaker_state(t, now));
            }
        }
        s
    }

    pub(super) fn request_id(&self) -> String {
        let n = self.next_id.get();
        self.next_id.set(n.wrapping_add(1));
        let cluster = &self.config.cluster;
        let node = if cluster.configured {
            cluster.node_id.as_str()
        } else {
            ""
        };
        request_id(node, self.id_prefix, self.worker, n)
    }
}

/// A request id's length without a node id: `rw-`, then 16 + 2 + 10 hex digits and the two
/// dashes between them.
pub const REQUEST_ID_BYTES: usize = 33;
/// Longest request id: with the longest node id and its dash.
pub const MAX_REQUEST_ID_BYTES: usize = REQUEST_ID_BYTES + crate::cluster::MAX_NODE_ID_BYTES + 1;

/// `rw-PPPPPPPPPPPPPPPP-WW-NNNNNNNNNN` (hex: process prefix, worker, counter), or with a node
/// id (`[cluster]` written) `rw-NODE-PPPPPPPPPPPPPPPP-WW-NNNNNNNNNN`: which node to ask about a
/// request, at a glance. The node id's charset (checked at load) keeps the id a valid header
/// value and custody key, and its length keeps it within [`MAX_REQUEST_ID_BYTES`]. Written by
/// hand: this runs for every request.
fn request_id(node: &str, prefix: u64, worker: usize, n: u64) -> String {
    let mut id = String::with_capacity(REQUEST_ID_BYTES + node.len() + 1);
    id.push_str("rw-");
    if !node.is_empty() {
        id.push_str(node);
        id.push('-');
    }
    push_hex(&mut id, prefix, 16);
    id.push('-');
    push_hex(&mut id, (worker & 0xff) as u64, 2);
    id.push('-');
    push_hex(&mut id, n, 10);
    id
}

/// Append the low `digits` hex digits of `v`.
fn push_hex(out: &mut String, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (v >> (i * 4)) & 0xf;
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
}

/// What a request still in flight when a drain's time is up gets.
pub(crate) fn shutting_down() -> Error {
    Error::new(
        ErrorKind::ShuttingDown,
        "the gateway is shutting down and this request ran past its drain time; retry",
    )
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_carry_the_node_only_when_given_one() {
        let plain = request_id("", 0xa952_fbd5_c04e_17d2, 1, 3);
        assert_eq!(plain, "rw-a952fbd5c04e17d2-01-0000000003");
        assert_eq!(plain.len(), REQUEST_ID_BYTES);
        let node = "gw-a.eu_1";
        assert!(crate::cluster::is_node_id(node));
        assert_eq!(
            request_id(node, 0xa952_fbd5_c04e_17d2, 1, 3),
            "rw-gw-a.eu_1-a952fbd5c04e17d2-01-0000000003"
        );
        let longest = "n".repeat(crate::cluster::MAX_NODE_ID_BYTES);
        let id = request_id(&longest, u64::MAX, 255, u64::MAX);
        assert_eq!(id.len(), MAX_REQUEST_ID_BYTES);
        assert!(
            id.len() <= super::super::custody::MAX_ID_BYTES,
            "found by the custody lookup"
        );
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
            "a plain header value: {id}"
        );
        // The parts after the node are found from the right, whatever dashes the node holds.
        let parts: Vec<&str> = id.rsplitn(4, '-').collect();
        assert_eq!(parts[3], format!("rw-{longest}"));
    }
}
