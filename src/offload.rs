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

/// A lookup on its way to a helper thread (the custody reader, the responses store). The
/// worker waits for it without blocking and without polling: the lookup carries one end of a
/// socket pair, which the thread shuts once the answer is in place, so the worker's own IO
/// driver wakes the waiting task ([`Pending::take_wake`]). Dropping it tells the thread nobody
/// waits any more, so a lookup given up on is not run.
pub struct Pending<A> {
    answer: std::sync::mpsc::Receiver<A>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The worker's end of the wake-up (None: the answer is already there, or no socket pair
    /// could be made and the waiter polls).
    wake: Option<std::os::unix::net::UnixStream>,
}

/// Where a helper thread puts a lookup's answer: sending it also wakes the worker that waits.
pub struct Reply<A> {
    tx: std::sync::mpsc::Sender<A>,
    wake: Option<std::os::unix::net::UnixStream>,
}

impl<A> Reply<A> {
    /// Hand the answer over and wake the waiter (an error when nobody waits any more).
    pub fn send(&self, answer: A) -> Result<(), std::sync::mpsc::SendError<A>> {
        let sent = self.tx.send(answer);
        if let Some(w) = &self.wake {
            // The waiter's read ends at our shutdown; dropping the Reply would do it too, but
            // later than the answer is ready.
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        sent
    }
}

impl<A: Gone> Pending<A> {
    /// A lookup and what its thread needs: where to reply, and the flag it reads to skip
    /// a lookup nobody waits for.
    pub fn new() -> (
        Pending<A>,
        Reply<A>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let (tx, answer) = std::sync::mpsc::channel();
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ours, theirs) = match std::os::unix::net::UnixStream::pair() {
            Ok((ours, theirs)) if ours.set_nonblocking(true).is_ok() => (Some(ours), Some(theirs)),
            _ => (None, None),
        };
        (
            Pending {
                answer,
                abandoned: abandoned.clone(),
                wake: ours,
            },
            Reply { tx, wake: theirs },
            abandoned,
        )
    }

    /// An answer known without asking.
    pub fn ready(answer: A) -> Pending<A> {
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = tx.send(answer);
        Pending {
            answer: rx,
            abandoned: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            wake: None,
        }
    }

    /// The answer if it has come; [`Gone::gone`] when the thread is gone.
    pub fn try_take(&self) -> Option<A> {
        match self.answer.try_recv() {
            Ok(a) => Some(a),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(A::gone()),
        }
    }

    /// The worker's end of the wake-up (non-blocking), once: readable at its end when the
    /// answer is in place or the thread dropped the lookup.
    pub fn take_wake(&mut self) -> Option<std::os::unix::net::UnixStream> {
        self.wake.take()
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

    impl Gone for u8 {
        fn gone() -> Self {
            0
        }
    }

    #[test]
    fn a_reply_wakes_the_waiter_once_its_answer_is_in_place() {
        use std::io::Read;
        let (mut pending, reply, _) = Pending::<u8>::new();
        let mut wake = pending.take_wake().unwrap();
        let mut byte = [0u8; 1];
        // Nothing yet: the waiter would sleep.
        assert_eq!(
            wake.read(&mut byte).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        assert_eq!(pending.try_take(), None);
        reply.send(7).unwrap();
        // The answer is there before the wake-up reads as the end.
        assert_eq!(wake.read(&mut byte).unwrap(), 0);
        assert_eq!(pending.try_take(), Some(7));
        // A thread that drops its lookup unanswered wakes the waiter too, with `gone`.
        let (mut pending, reply, _) = Pending::<u8>::new();
        let mut wake = pending.take_wake().unwrap();
        drop(reply);
        assert_eq!(wake.read(&mut byte).unwrap(), 0);
        assert_eq!(pending.try_take(), Some(0));
    }
}
