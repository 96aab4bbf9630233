//! Per-worker accept loop and the per-connection request loop (keep-alive, pipelining: requests
//! already buffered are served in order, each response written before the next is parsed), and
//! the worker's live state: the config snapshot new requests start on, and its connections.
//! A TLS listener's connections go through `tls` first (the handshake), then the same loop.

pub mod tls;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::Canceller;
use monoio::net::TcpStream;

use crate::downstream::{ClientConn, HeadOutcome, Transport};
use crate::proxy::{self, After, Ctx};
use crate::rt::Listener;

/// A worker's current context (swapped by a reload) and its open client connections.
pub struct Live {
    ctx: RefCell<Rc<Ctx>>,
    open: Cell<usize>,
}

impl Live {
    /// A worker starting on `ctx`.
    pub fn new(ctx: Rc<Ctx>) -> Rc<Live> {
        Rc::new(Live {
            ctx: RefCell::new(ctx),
            open: Cell::new(0),
        })
    }

    /// The context a new request starts on.
    pub fn ctx(&self) -> Rc<Ctx> {
        self.ctx.borrow().clone()
    }

    /// Serve `ctx` from now on; requests in flight keep the one they hold.
    pub fn swap(&self, ctx: Rc<Ctx>) {
        *self.ctx.borrow_mut() = ctx;
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.open.get()
    }
}

/// First pause after an accept error (e.g. out of file descriptors) before trying again; it
/// doubles with each failure in a row, up to [`ACCEPT_ERROR_BACKOFF_MAX`].
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);
/// Longest pause between accept attempts while they keep failing.
pub const ACCEPT_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one accept-failure warning per worker per this period; the rest are counted and
/// the count is reported with the next warning (or when accepting recovers).
pub const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(5);

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    /// Plain HTTP/1.1.
    Http,
    /// HTTP/1.1 over TLS (`[server.tls]`).
    Https,
}

/// Accept connections, one task per connection, until a drain starts; then stop new
/// handshakes on the listener, accept the ones under way for a moment, serve what the kernel
/// had already queued and close it.
pub async fn accept_loop(listener: Listener, live: Rc<Live>, speaks: Speaks) {
    let mut failures = AcceptFailures::default();
    // The worker's state, not a snapshot: holding a config here would pin it for good.
    let state = live.ctx().state();
    let worker = state.worker;
    accept_until(
        &listener,
        &live,
        speaks,
        &mut failures,
        state.draining.wait(),
    )
    .await;
    // Closing resets every connection in the listener's queues, and until then the kernel
    // keeps handing it new ones: stop those first, then take what is under way. Not needed
    // where the kernel moves a closing listener's connections to the listeners left.
    if !crate::rt::kernel_migrates_queued() {
        match listener.refuse_new_handshakes() {
            Ok(()) => {
                let over = monoio::time::sleep(crate::rt::LISTENER_HANDOVER);
                accept_until(&listener, &live, speaks, &mut failures, over).await;
            }
            Err(e) => crate::log::warn(format_args!(
                "worker {worker}: cannot stop new connections before closing the listener \
                 ({e}): one that arrives as it closes is reset"
            )),
        }
    }
    let queued = listener.take_queued().await;
    if !queued.is_empty() {
        crate::log::info(format_args!(
            "worker {worker}: serving {} connection(s) queued before the listener closed",
            queued.len()
        ));
    }
    for (stream, peer) in queued {
        spawn_connection(stream, peer, &live, speaks);
    }
}

/// Accept, one task per connection, until `stop` completes. The accept under way then is
/// cancelled and still awaited: on io_uring it may have taken a connection already, which
/// dropping it would leak unanswered.
async fn accept_until(
    listener: &Listener,
    live: &Rc<Live>,
    speaks: Speaks,
    failures: &mut AcceptFailures,
    stop: impl Future<Output = ()>,
) {
    let worker = live.ctx().worker;
    let mut stop = std::pin::pin!(stop);
    let mut canceller = Canceller::new();
    loop {
        let mut accept = std::pin::pin!(listener.accept_cancelable(canceller.handle()));
        let (outcome, stopped) = match first_of(accept.as_mut(), stop.as_mut()).await {
            First::A(r) => (r, false),
            First::B(()) => {
                canceller = canceller.cancel();
                (accept.await, true)
            }
        };
        match outcome {
            Ok((stream, peer)) => {
                failures.recovered(worker);
                spawn_connection(stream, peer, live, speaks);
            }
            Err(_) if stopped => {}
            Err(e) => {
                let pause = std::pin::pin!(monoio::time::sleep(failures.failed(
                    worker,
                    &e,
                    Instant::now()
                )));
                if let First::B(()) = first_of(pause, stop.as_mut()).await {
                    return;
                }
            }
        }
        if stopped {
            return;
        }
    }
}

/// Which of two futures completed first.
enum First<A, B> {
    A(A),
    B(B),
}

/// Poll `a`, then `b`, until one completes.
async fn first_of<A: Future, B: Future>(
    mut a: Pin<&mut A>,
    mut b: Pin<&mut B>,
) -> First<A::Output, B::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(First::A(v));
        }
        b.as_mut().poll(cx).map(First::B)
    })
    .await
}

fn spawn_connection(stream: TcpStream, peer: SocketAddr, live: &Rc<Live>, speaks: Speaks) {
    let live = live.clone();
    live.open.set(live.open.get() + 1);
    monoio::spawn(async move {
        match speaks {
            Speaks::Http => serve_connection(stream, &live).await,
            // Boxed: a TLS connection's future (handshake, rustls state) is twice a plain
            // one's, and inline it would size every plain connection's task for it too
            // (9.3 against 4.6 KB per held stream, measured).
            Speaks::Https => Box::pin(tls::serve_connection(stream, peer, &live)).await,
        }
        live.open.set(live.open.get().saturating_sub(1));
    });
}

/// Accept failures in a row: the backoff they have earned and the warnings they may print.
#[derive(Default)]
struct AcceptFailures {
    /// Failures since the last accept that worked.
    in_a_row: u32,
    /// Failures not yet reported in a warning.
    unreported: u64,
    /// When the last warning was printed.
    last_warning: Option<Instant>,
}

impl AcceptFailures {
    /// Count a failure, warn if the last warning is old enough, and return the pause before the
    /// next attempt.
    fn failed(&mut self, worker: usize, e: &std::io::Error, now: Instant) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unreported += 1;
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_WARN_EVERY)
        {
            crate::log::warn(format_args!(
                "worker {worker}: accept failed: {e} ({} failure(s) since the last warning; \
                 backing off up to {} ms)",
                self.unreported,
                ACCEPT_ERROR_BACKOFF_MAX.as_millis()
            ));
            self.unreported = 0;
            self.last_warning = Some(now);
        }
        backoff(self.in_a_row)
    }

    /// An accept worked: report what the warnings did not say, then start afresh.
    fn recovered(&mut self, worker: usize) {
        if self.in_a_row == 0 {
            return;
        }
        if self.unreported > 0 {
            crate::log::warn(format_args!(
                "worker {worker}: accepting again after {} more failure(s)",
                self.unreported
            ));
        }
        *self = AcceptFailures {
            last_warning: self.last_warning,
            ..AcceptFailures::default()
        };
    }
}

/// The pause after the `n`th failure in a row (n ≥ 1): 20 ms, 40 ms, … capped at 1 s.
fn backoff(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(16);
    ACCEPT_ERROR_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(ACCEPT_ERROR_BACKOFF_MAX)
}

/// Serve requests on one plain TCP connection until it closes, a response says close, or a
/// drain finds it idle.
pub async fn serve_connection(stream: TcpStream, live: &Live) {
    // Responses are written whole or per SSE event; Nagle would delay each of them.
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    serve(stream, Some(fd), live).await;
}

/// The request loop over any transport (TCP, or TLS after its handshake). Each request runs on
/// the config snapshot current when its head arrived.
/// `direct`: the plain socket under `stream`, written to directly when it has room.
pub async fn serve<S: Transport>(stream: S, direct: Option<RawFd>, live: &Live) {
    let mut conn = ClientConn::new(stream);
    if let Some(fd) = direct {
        conn = conn.with_direct_writes(fd);
    }
    let state = live.ctx().state();
    let mut first = true;
    loop {
        // A drain closes connections idle between requests at once; a new one (accepted as
        // the drain began, or from the listener's queue) gets a moment to send its request.
        let idle_end = if first { &state.quiet } else { &state.draining };
        // A request already in the socket is answered (with `connection: close`), not reset.
        if idle_end.fired() && !conn.has_waiting() {
            return;
        }
        first = false;
        let timeouts = (&live.ctx().config.server).into();
        // The read's result lives in this block only: kept, it would have a place in the
        // request's states too, a held stream's included.
        let (ctx, head) = {
            let read = conn.read_head(timeouts, Some(idle_end)).await;
            // The snapshot current now, not when the wait began: a reload may have come
            // meanwhile.
            let ctx = live.ctx();
            conn.write_timeout = ctx.config.server.write_timeout;
            match read {
                Ok(h) => (ctx, h),
                Err(HeadOutcome::Closed) => return,
                Err(HeadOutcome::Failed(e, seen)) => {
                    // Boxed, as one future: what the answer needs would otherwise be kept
                    // beside every state of the connection (a local alive across two awaits
                    // gets a place of its own in the task).
                    Box::pin(async {
                        proxy::write_head_failure(&ctx, &mut conn, &e, &seen).await;
                        conn.drain_and_close().await;
                    })
                    .await;
                    return;
                }
            }
        };
        match proxy::handle(&ctx, &mut conn, &head).await {
            After::KeepAlive => {}
            After::Close => return,
            After::DrainAndClose => {
                conn.drain_and_close().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(2), Duration::from_millis(40));
        assert_eq!(backoff(6), Duration::from_millis(640));
        assert_eq!(backoff(7), ACCEPT_ERROR_BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), ACCEPT_ERROR_BACKOFF_MAX);
    }

    #[test]
    fn warnings_are_rate_limited_and_counted() {
        let e = std::io::Error::from_raw_os_error(24);
        let mut f = AcceptFailures::default();
        let t0 = Instant::now();
        f.failed(0, &e, t0);
        assert_eq!(f.unreported, 0, "the first failure is reported at once");
        for i in 1..100u64 {
            f.failed(0, &e, t0 + Duration::from_millis(i));
        }
        assert_eq!(f.unreported, 99, "no warning within the period");
        f.failed(0, &e, t0 + ACCEPT_WARN_EVERY);
        assert_eq!(f.unreported, 0, "one warning once the period is over");
        f.recovered(0);
        assert_eq!(f.in_a_row, 0);
        assert_eq!(backoff(f.in_a_row.max(1)), ACCEPT_ERROR_BACKOFF);
    }
}
