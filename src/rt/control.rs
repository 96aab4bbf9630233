//! How the process's control thread and its workers talk: messages to each worker (a new
//! config snapshot, start draining), and what workers report back through atomics (the config
//! generation each serves, connections still open). Nothing here is on the request path.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;

/// How often a worker looks for messages (and publishes its connection count). A reload is
/// served by every worker within about this long.
pub const CONTROL_TICK: Duration = Duration::from_millis(20);

/// Once a drain has closed the listeners, how long a connection accepted but still silent may
/// take to send its first request before it is closed (one accepted just as the drain began,
/// or in the listeners' handover, is not cut off).
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// A message to one worker.
pub enum Message {
    /// Serve this snapshot from now on; requests in flight keep theirs.
    Reload {
        /// The new snapshot.
        config: Arc<Config>,
        /// Its generation.
        generation: u64,
    },
    /// Stop accepting, close idle connections, and cut what is still in flight at `deadline`.
    Drain {
        /// When responses still running get their format's error event.
        deadline: Instant,
    },
}

/// What the workers report, one slot each, and the outcome of the latest reload.
pub struct Board {
    generation: Vec<AtomicU64>,
    open: Vec<AtomicUsize>,
    /// Worker `i` has closed its listener (after a drain started).
    closed: Vec<AtomicBool>,
    /// Reloads asked for through the admin endpoint (tickets handed out).
    requested: AtomicU64,
    /// The highest ticket the latest finished reload answers.
    answered: AtomicU64,
    /// Reload attempts finished (successful or not).
    reloads: AtomicU64,
    /// Of those, the ones refused.
    failed: AtomicU64,
    /// The generation the latest successful reload made (1 before any).
    latest: AtomicU64,
    /// Why the latest reload failed (empty when it succeeded). Read by the admin endpoint only.
    last_error: Mutex<String>,
    draining: AtomicBool,
}

impl Board {
    /// A board for `workers` workers, all on generation 1.
    pub fn new(workers: usize) -> Arc<Board> {
        Arc::new(Board {
            generation: (0..workers).map(|_| AtomicU64::new(1)).collect(),
            open: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            closed: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            requested: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latest: AtomicU64::new(1),
            last_error: Mutex::new(String::new()),
            draining: AtomicBool::new(false),
        })
    }

    /// Worker `i` now serves `generation`.
    pub fn serving(&self, i: usize, generation: u64) {
        if let Some(g) = self.generation.get(i) {
            g.store(generation, Ordering::Release);
        }
    }

    /// The generation worker `i` serves.
    pub fn generation_of(&self, i: usize) -> u64 {
        self.generation
            .get(i)
            .map_or(0, |g| g.load(Ordering::Acquire))
    }

    /// Do all workers serve `generation` (or a later one)?
    pub fn all_on(&self, generation: u64) -> bool {
        self.generation
            .iter()
            .all(|g| g.load(Ordering::Acquire) >= generation)
    }

    /// Worker `i` has `n` client connections open.
    pub fn set_open(&self, i: usize, n: usize) {
        if let Some(o) = self.open.get(i) {
            o.store(n, Ordering::Release);
        }
    }

    /// Worker `i` has closed its listener, with `open` connections left.
    pub fn listener_closed(&self, i: usize, open: usize) {
        self.set_open(i, open);
        if let Some(c) = self.closed.get(i) {
            c.store(true, Ordering::Release);
        }
    }

    /// Have all workers closed their listeners?
    pub fn all_closed(&self) -> bool {
        self.closed.iter().all(|c| c.load(Ordering::Acquire))
    }

    /// Client connections open on all workers (as last reported).
    pub fn open(&self) -> usize {
        self.open.iter().map(|o| o.load(Ordering::Acquire)).sum()
    }

    /// Ask for a reload: a ticket that a reload reading the file from now on will answer.
    pub fn request(&self) -> u64 {
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Tickets handed out so far: a reload about to read the file answers all of them.
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// The outcome of the reload that answered `ticket`, once one has (a later one may have:
    /// it read the file later still).
    pub fn answer(&self, ticket: u64) -> Option<Result<u64, String>> {
        (self.answered.load(Ordering::Acquire) >= ticket).then(|| self.last_reload())
    }

    /// Record a reload attempt's outcome; it answers tickets up to `asked`.
    pub fn reloaded(&self, asked: u64, outcome: &Result<u64, String>) {
        let message = match outcome {
            Ok(generation) => {
                self.latest.store(*generation, Ordering::Release);
                String::new()
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::AcqRel);
                e.clone()
            }
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = message;
        }
        self.reloads.fetch_add(1, Ordering::AcqRel);
        self.answered.fetch_max(asked, Ordering::AcqRel);
    }

    /// Reload attempts finished so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Acquire)
    }

    /// The latest reload's outcome: the generation it made, or why it failed.
    pub fn last_reload(&self) -> Result<u64, String> {
        let error = self
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        if error.is_empty() {
            Ok(self.latest.load(Ordering::Acquire))
        } else {
            Err(error)
        }
    }

    /// A drain has started.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Has a drain started?
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The lifecycle series for `/metrics`: the generation each worker serves, reloads by
    /// outcome, and whether a drain is under way.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP ringway_config_generation The config generation each worker serves (1: the one it started with; each successful reload adds one).\n",
        );
        out.push_str("# TYPE ringway_config_generation gauge\n");
        for (i, g) in self.generation.iter().enumerate() {
            let _ = writeln!(
                out,
                "ringway_config_generation{{worker=\"{i}\"}} {}",
                g.load(Ordering::Acquire)
            );
        }
        let failed = self.failed.load(Ordering::Acquire);
        let ok = self.reloads().saturating_sub(failed);
        out.push_str("# HELP ringway_config_reloads_total Config reloads, by outcome.\n");
        out.push_str("# TYPE ringway_config_reloads_total counter\n");
        let _ = writeln!(out, "ringway_config_reloads_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(
            out,
            "ringway_config_reloads_total{{result=\"error\"}} {failed}"
        );
        out.push_str("# HELP ringway_draining 1 once a drain (SIGTERM, SIGINT) has started.\n");
        out.push_str("# TYPE ringway_draining gauge\n");
        let _ = writeln!(out, "ringway_draining {}", u8::from(self.is_draining()));
    }
}

/// The process side: one sender per worker.
pub struct Workers {
    senders: Vec<mpsc::Sender<Message>>,
    /// What the workers report.
    pub board: Arc<Board>,
}

impl Workers {
    /// Senders for `workers` workers and their receivers, in worker order.
    pub fn new(board: Arc<Board>, workers: usize) -> (Workers, Vec<mpsc::Receiver<Message>>) {
        let (senders, receivers) = (0..workers).map(|_| mpsc::channel()).unzip();
        (Workers { senders, board }, receivers)
    }

    /// Send every worker a new snapshot.
    pub fn reload(&self, config: &Arc<Config>, generation: u64) {
        for tx in &self.senders {
            let _ = tx.send(Message::Reload {
                config: config.clone(),
                generation,
            });
        }
    }

    /// Tell every worker to drain, with what is in flight cut at `deadline`.
    pub fn drain(&self, deadline: Instant) {
        self.board.start_draining();
        for tx in &self.senders {
            let _ = tx.send(Message::Drain { deadline });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_reports_generations_connections_and_reloads() {
        let b = Board::new(2);
        assert!(b.all_on(1));
        b.serving(0, 2);
        assert!(!b.all_on(2), "worker 1 is still on generation 1");
        b.serving(1, 2);
        assert!(b.all_on(2));
        b.set_open(0, 3);
        b.set_open(1, 4);
        assert_eq!(b.open(), 7);
        assert_eq!(b.reloads(), 0);
        let t1 = b.request();
        assert_eq!(
            b.answer(t1),
            None,
            "not answered before a reload read the file"
        );
        let asked = b.requested();
        let t2 = b.request();
        let refused = "f.toml:3: server.workers: must be between 1 and 1024";
        b.reloaded(asked, &Err(refused.into()));
        assert_eq!(b.reloads(), 1);
        assert_eq!(b.answer(t1), Some(Err(refused.into())));
        assert_eq!(
            b.answer(t2),
            None,
            "asked after the file was read: the next one answers"
        );
        b.reloaded(b.requested(), &Ok(3));
        assert_eq!(b.answer(t2), Some(Ok(3)));
        let mut text = String::new();
        b.render(&mut text);
        assert!(
            text.contains("ringway_config_generation{worker=\"1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ringway_config_reloads_total{result=\"ok\"} 1\n"));
        assert!(text.contains("ringway_config_reloads_total{result=\"error\"} 1\n"));
        assert!(text.contains("ringway_draining 0\n"));
    }
}
