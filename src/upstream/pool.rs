//! Per-worker idle provider connections, kept per provider name (a reload that reorders or
//! adds providers keeps every name's connections apart).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Conn;

/// Per-worker idle connections, one LIFO stack per provider (keyed by
/// `Provider::pool_key`: name and address): the most recently used connection is the
/// likeliest to still be open.
pub struct Pool {
    idle: RefCell<HashMap<String, Vec<(Conn, Instant)>>>,
    /// After a reload: the provider keys of the config served now. A request of an older
    /// generation that finishes later would otherwise park its connection under a key nothing
    /// takes from again. None: every key (no reload yet).
    current: RefCell<Option<std::collections::HashSet<String>>>,
    max_idle: Cell<usize>,
    idle_timeout: Cell<Duration>,
}

impl Pool {
    /// An empty pool.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: RefCell::new(HashMap::new()),
            current: RefCell::new(None),
            max_idle: Cell::new(max_idle),
            idle_timeout: Cell::new(idle_timeout),
        }
    }

    /// A reload: new limits, and the idle connections of every provider key not in `keys` (a
    /// provider removed, renamed or pointed elsewhere) are closed, now and when returned later.
    pub fn reconfigure<'k>(
        &self,
        max_idle: usize,
        idle_timeout: Duration,
        keys: impl Iterator<Item = &'k str>,
    ) {
        self.max_idle.set(max_idle);
        self.idle_timeout.set(idle_timeout);
        let current: std::collections::HashSet<String> = keys.map(str::to_owned).collect();
        self.idle
            .borrow_mut()
            .retain(|key, _| current.contains(key));
        *self.current.borrow_mut() = Some(current);
    }

    /// Take an idle connection to `provider`, dropping any that idled too long or that the
    /// provider closed or wrote to while it sat idle.
    pub fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let stack = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some((mut conn, since)) = stack.pop() {
            if now.duration_since(since) < self.idle_timeout.get() && conn.is_quiet() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Return a connection whose response was fully read (one with stray bytes after the
    /// response is dropped instead).
    pub fn put(&self, key: &str, mut conn: Conn) {
        if !conn.is_clean() || self.max_idle.get() == 0 {
            return;
        }
        if let Some(current) = &*self.current.borrow() {
            if !current.contains(key) {
                return;
            }
        }
        conn.park();
        let mut idle = self.idle.borrow_mut();
        let stack = match idle.get_mut(key) {
            Some(stack) => stack,
            None => idle.entry(key.to_owned()).or_default(),
        };
        if stack.len() >= self.max_idle.get() && !stack.is_empty() {
            // Drop the oldest: it is the likeliest to be closed by the peer next.
            stack.remove(0);
        }
        stack.push((conn, Instant::now()));
    }

    /// Idle connections held (all providers).
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}
