//! What the off-worker writer threads (the access log, the custody store) share: the drop
//! counter a worker bumps when a writer's bounded channel is full (with a warning at most once
//! per [`WARN_EVERY`]), and the flush handshake the main thread uses at exit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

/// Fewest seconds between two "dropped" warnings of one writer.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a writer sleeps after a batch smaller than its largest before it looks again.
/// While it sleeps, a worker's hand-over wakes no thread (only a receiver parked on the
/// channel is woken), so under load a worker pays a queue push per message, not a thread wake
/// (with a wake per line, the access log cost a one-worker gateway 13 µs per request, more
/// than the request itself: oha, 32 connections). An idle writer parks and the first message
/// wakes it at once; a channel of 16k lines holds 1.6M lines a second at this pace.
pub const GATHER: Duration = Duration::from_millis(10);
/// How long [`flush`] sleeps between two offers to a full channel.
const FLUSH_RETRY: Duration = Duration::from_millis(1);

/// Items a writer's full channel refused, and when that was last said in the log.
#[derive(Debug, Default)]
pub struct Drops {
    dropped: AtomicU64,
    /// Unix second of the last warning (0: none yet).
    last_warn: AtomicU64,
}

impl Drops {
    /// No drops yet (for statics).
    pub const fn new() -> Drops {
        Drops {
            dropped: AtomicU64::new(0),
            last_warn: AtomicU64::new(0),
        }
    }

    /// Count one dropped item; warn (`{n} {what} dropped so far`) unless a warning was given in
    /// the last [`WARN_EVERY`]. Lock-free: called on workers.
    pub fn count(&self, what: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = crate::calendar::unix_secs(SystemTime::now());
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last.saturating_add(WARN_EVERY.as_secs())
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::log::warn(format_args!("{what}: {n} dropped so far"));
        }
    }

    /// Items dropped so far.
    pub fn total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Has a warning been given?
    pub fn warned(&self) -> bool {
        self.last_warn.load(Ordering::Relaxed) > 0
    }
}

/// Hand `make(ack)` to a writer and wait (at most `timeout`) for its acknowledgement: the
/// writer acks once everything queued before the message is written. For the process's last
/// moments (a blocking wait), never for a worker. False when the time ran out or the writer is
/// gone.
pub fn flush<M>(
    tx: &SyncSender<M>,
    timeout: Duration,
    make: impl FnOnce(std::sync::mpsc::Sender<()>) -> M,
) -> bool {
    let deadline = Instant::now() + timeout;
    let (ack, done) = std::sync::mpsc::channel();
    let mut msg = make(ack);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(FLUSH_RETRY);
            }
            Err(_) => return false,
        }
    }
    done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

/// An answer that can say its helper thread is gone (what a [`Pending`] gives when the reply
/// channel closes without an answer).
pub trait Gone {
    /// The answer for a thread that went away without replying.
    fn gone() -> Self;
}

/// A lookup on its way to a helper thread (the custody reader, the responses store): poll
/// [`Pending::try_take`] (never blocks). Dropping it tells the thread nobody waits any more,
/// so a lookup given up on is not run.
pub struct Pending<A> {
    answer: std::sync::mpsc::Receiver<A>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<A: Gone> Pending<A> {
    /// A lookup and what its thread needs: where to reply, and the flag it reads to skip
    /// a lookup nobody waits for.
    pub fn new() -> (
        Pending<A>,
        std::sync::mpsc::Sender<A>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let (reply, answer) = std::sync::mpsc::channel();
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        (
            Pending {
                answer,
                abandoned: abandoned.clone(),
            },
            reply,
            abandoned,
        )
    }

    /// An answer known without asking.
    pub fn ready(answer: A) -> Pending<A> {
        let (pending, reply, _) = Pending::new();
        let _ = reply.send(answer);
        pending
    }

    /// The answer if it has come; [`Gone::gone`] when the thread is gone.
    pub fn try_take(&self) -> Option<A> {
        match self.answer.try_recv() {
            Ok(a) => Some(a),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(A::gone()),
        }
    }
}

impl<A> Drop for Pending<A> {
    fn drop(&mut self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_count_and_warn_once_per_period() {
        let d = Drops::new();
        assert!(!d.warned());
        for _ in 0..3 {
            d.count("test writer");
        }
        assert_eq!(d.total(), 3);
        assert!(d.warned());
    }
}
