//! Several nodes behind one balancer: `[cluster]` compiled ([`Settings`]), the node's id, and
//! the health of the shared stores (Redis for limits and budgets, PostgreSQL for custody,
//! usage and stored responses) that `/readyz`, `/metrics` and the log report.
//!
//! Store health is process-wide ([`health`]): the helper thread that talks to a store is the
//! only writer of its flag; workers only read it (one atomic load). A state change is logged
//! once, by the thread that saw it, never once per request.

pub mod postgres;
mod report;

pub use report::{readyz, render_metrics, verdict, Verdict};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest node id.
pub const MAX_NODE_ID_BYTES: usize = 32;
/// Records a node buffers while PostgreSQL is unreachable, by default
/// (`[cluster] postgres_buffer_records`); past it the oldest are dropped and counted.
pub const DEFAULT_POSTGRES_BUFFER_RECORDS: usize = 100_000;
/// Smallest and largest `postgres_buffer_records` accepted.
pub const POSTGRES_BUFFER_RANGE: std::ops::RangeInclusive<usize> = 1_000..=10_000_000;
/// How long one Redis call may take before the store counts as down, by default
/// (`[cluster] redis_timeout_ms`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// Smallest and largest `redis_timeout_ms` accepted.
pub const REDIS_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 10..=10_000;
/// How long connecting to a store at start may take before `serve` refuses the config.
pub const START_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What rate limits do while Redis is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsWhenDown {
    /// Each node enforces its share of the limit (the limit over the nodes last seen alive).
    Local,
    /// Refuse the limited keys' requests until Redis is back.
    Closed,
}

/// What budgets do while Redis is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetsWhenDown {
    /// Refuse the budgeted keys' requests once the lease a worker holds is spent.
    Closed,
    /// Admit them; what they spend is settled when Redis is back.
    Open,
}

/// Where a shared store is, as configured. The URL may hold a password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The URL as written (or read from the environment variable).
    pub url: String,
    /// Where the config said it, for the start-up error: `FILE:LINE` and the key path.
    pub file: String,
    pub line: Option<usize>,
    pub path: String,
}

impl StoreUrl {
    /// The URL with any password replaced by `***`, for `ringway check` and logs.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// The start-up error for this store, worded as a config error:
    /// `FILE:LINE: key.path: message`.
    pub fn error(&self, message: impl std::fmt::Display) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}: {message}", self.file, self.path),
            None => format!("{}: {}: {message}", self.file, self.path),
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

/// `[cluster]`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This node's id: in request ids, the access log and custody records.
    pub node_id: String,
    /// Whether `[cluster]` was written at all (request ids carry the node id only then).
    pub configured: bool,
    /// Redis for shared limits and budgets.
    pub redis: Option<StoreUrl>,
    /// PostgreSQL for custody, usage and stored responses.
    pub postgres: Option<StoreUrl>,
    /// Records buffered while PostgreSQL is unreachable.
    pub postgres_buffer_records: usize,
    /// One Redis call's deadline.
    pub redis_timeout: Duration,
    /// Rate limits while Redis is down.
    pub limits_when_down: LimitsWhenDown,
    /// Budgets while Redis is down.
    pub budgets_when_down: BudgetsWhenDown,
    /// Nodes assumed before Redis has said how many are alive (the local share's divisor).
    pub expected_nodes: u32,
    /// `/readyz` answers 503 while one of these configured stores is unreachable.
    pub ready_requires_redis: bool,
    pub ready_requires_postgres: bool,
}

impl Settings {
    /// No `[cluster]`: one node, local state only.
    pub fn local() -> Settings {
        Settings {
            node_id: default_node_id(),
            configured: false,
            redis: None,
            postgres: None,
            postgres_buffer_records: DEFAULT_POSTGRES_BUFFER_RECORDS,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            limits_when_down: LimitsWhenDown::Local,
            budgets_when_down: BudgetsWhenDown::Closed,
            expected_nodes: 1,
            ready_requires_redis: false,
            ready_requires_postgres: false,
        }
    }
}

/// A node id: 1 to [`MAX_NODE_ID_BYTES`] of A-Z a-z 0-9 . _ - (it is written into request
/// ids, log lines and database rows).
pub fn is_node_id(id: &str) -> bool {
    (1..=MAX_NODE_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The host's name cut to a node id's charset and length, or `node` when it has none.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let id: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(MAX_NODE_ID_BYTES)
        .collect();
    if id.is_empty() {
        "node".to_owned()
    } else {
        id
    }
}

/// One shared store's state as its helper thread last saw it.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// The config names this store (set once at start and on reload).
    configured: AtomicBool,
    /// The last call reached it.
    up: AtomicBool,
    /// State changes seen (for `/metrics`).
    changes: AtomicU64,
}

impl StoreHealth {
    /// Whether the config uses this store.
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Acquire)
    }

    /// Mark the store used (or no longer used) by the config.
    pub fn set_configured(&self, on: bool) {
        self.configured.store(on, Ordering::Release);
    }

    /// The store's thread starts, after `serve` checked that it answers: configured and up,
    /// not counted as a change.
    pub fn start_up(&self) {
        self.configured.store(true, Ordering::Release);
        self.up.store(true, Ordering::Release);
    }

    /// Whether the last call reached it (false when not configured).
    pub fn up(&self) -> bool {
        self.configured() && self.up.load(Ordering::Acquire)
    }

    /// Record what the last call saw; true when that changed the state (the caller logs it
    /// once).
    pub fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::AcqRel);
        if was != up {
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        was != up
    }

    /// State changes seen since start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// The shared stores' health, for the whole process.
#[derive(Debug, Default)]
pub struct Health {
    pub redis: StoreHealth,
    pub postgres: StoreHealth,
}

/// The process's store health.
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_a_url() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://ringway:pw@db/ringway?sslmode=disable"),
            "postgres://ringway:***@db/ringway?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://ringway@db/x"),
            "postgres://ringway@db/x"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn node_ids() {
        assert!(is_node_id("gw-a.eu_1"));
        assert!(!is_node_id(""));
        assert!(!is_node_id("a b"));
        assert!(!is_node_id(&"a".repeat(33)));
        assert!(is_node_id(&default_node_id()));
    }
}
