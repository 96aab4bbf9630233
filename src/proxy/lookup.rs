//! Waiting for a helper thread's lookup (the custody reader, the responses store) without
//! blocking the worker and without polling it: the task sleeps on its end of the lookup's
//! socket pair, which the thread shuts once the answer is in place.

use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;

use crate::offload::{Gone, Pending};

/// How often a lookup without a wake-up socket (the system refused a socket pair) is looked at.
const FALLBACK_POLL: Duration = Duration::from_millis(1);

/// The lookup's answer, or None when `limit` passed first. Giving up drops `pending`, which
/// tells the thread not to run it.
pub(super) async fn answer<A: Gone>(mut pending: Pending<A>, limit: Duration) -> Option<A> {
    let deadline = Instant::now() + limit;
    if let Some(a) = pending.try_take() {
        return Some(a);
    }
    if let Some(wake) = pending
        .take_wake()
        .and_then(|s| monoio::net::UnixStream::from_std(s).ok())
    {
        let mut wake = wake;
        // Nothing is ever written: the read ends when the thread shuts its end.
        let _ = crate::rt::timer::timeout_at(deadline, wake.read(Vec::with_capacity(1))).await;
        return pending.try_take();
    }
    loop {
        if let Some(a) = pending.try_take() {
            return Some(a);
        }
        if Instant::now() >= deadline {
            return None;
        }
        crate::rt::timer::sleep(FALLBACK_POLL).await;
    }
}
