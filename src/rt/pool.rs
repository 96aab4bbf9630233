//! Helper threads for pure CPU work too long to run on a worker (translating a large request
//! body): a few threads shared by every worker, fed through one bounded queue. The worker's
//! task awaits the answer without blocking and without polling: each job carries one end of a
//! socket pair, which the helper closes once the answer is in place, so the worker's own IO
//! driver (io_uring or epoll) wakes the task. monoio's cross-thread wakers would need its
//! `sync` feature, which changes every task's wake path; a socket pair costs a few syscalls
//! per job, and only large jobs come here.

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};

use monoio::io::AsyncReadRent;

/// Most helper threads (fewer on a machine with fewer CPUs): they run beside the workers, and
/// the jobs that come here are rare and bounded by the workers' memory budgets.
pub const MAX_HELPER_THREADS: usize = 4;

/// Jobs waiting for a helper, process-wide; past it a job is refused ([`PoolError::Busy`]) and
/// its request gets a 503 to retry.
pub const QUEUE_JOBS: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// The queue's sending end (None: the helpers could not be started).
static QUEUE: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();

/// Why a job got no answer.
#[derive(Debug)]
pub enum PoolError {
    /// The queue is full: retry later.
    Busy,
    /// No helper thread could be started, or the job did not finish (it panicked).
    Unavailable(String),
}

/// Starts the helper threads (once; later calls change nothing). The gateway does so before
/// its workers are pinned to their CPUs, so that helpers may run on any CPU; a job run before
/// that starts them on first use.
pub fn start() {
    let _ = queue();
}

fn queue() -> Option<&'static SyncSender<Job>> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_JOBS);
            let rx = std::sync::Arc::new(Mutex::new(rx));
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_HELPER_THREADS);
            let mut started = 0;
            for i in 0..threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("ringway-helper-{i}"))
                    .spawn(move || helper(&rx));
                if spawned.is_ok() {
                    started += 1;
                }
            }
            (started > 0).then_some(tx)
        })
        .as_ref()
}

/// A helper's life: take a job, run it, until the process ends.
fn helper(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job: helpers take turns waiting.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A job that panics loses its answer (its worker sees the socket close without one),
        // not the helper.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Run `work` on a helper thread and wait for its answer without blocking the worker.
pub async fn run<R, F>(work: F) -> Result<R, PoolError>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let queue = queue().ok_or_else(|| PoolError::Unavailable("no helper thread".into()))?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(unavailable)?;
    ours.set_nonblocking(true).map_err(unavailable)?;
    let (answer_tx, answer) = mpsc::sync_channel::<R>(1);
    let job: Job = Box::new(move || {
        let _ = answer_tx.send(work());
        // Closing our end is the wake-up: the worker's read returns.
        drop(theirs);
    });
    match queue.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(PoolError::Busy),
        Err(TrySendError::Disconnected(_)) => {
            return Err(PoolError::Unavailable("the helper threads are gone".into()))
        }
    }
    let mut wake = monoio::net::UnixStream::from_std(ours).map_err(unavailable)?;
    // Nothing is ever written: the read ends when the helper closes its end (the job is done
    // or was dropped).
    let (_, _) = wake.read(Vec::with_capacity(1)).await;
    answer
        .try_recv()
        .map_err(|_| PoolError::Unavailable("a helper job ended without an answer".into()))
}

fn unavailable(e: io::Error) -> PoolError {
    PoolError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_through_the_workers_driver() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = run(|| (1..=100u64).sum::<u64>());
            let b = run(|| "two".to_owned());
            assert_eq!(a.await.unwrap(), 5050);
            assert_eq!(b.await.unwrap(), "two");
            // A job that panics gives no answer, and the helpers live on.
            let lost = run(|| -> u8 { panic!("job") }).await;
            assert!(matches!(lost, Err(PoolError::Unavailable(_))));
            assert_eq!(run(|| 7).await.unwrap(), 7);
        });
    }
}
