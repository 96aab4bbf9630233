//! Per-worker accept loop and the per-connection request loop (keep-alive, pipelining: requests
//! already buffered are served in order, each response written before the next is parsed).
//! A TLS listener's connections go through `tls` first, then the same loop.

pub mod tls;

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use crate::downstream::{ClientConn, HeadOutcome, Transport};
use crate::proxy::{self, After, Ctx};

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

/// Accept connections forever, one task per connection.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<Ctx>, speaks: Speaks) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                failures.recovered(ctx.worker);
                let ctx = ctx.clone();
                match speaks {
                    Speaks::Http => {
                        monoio::spawn(async move { serve_connection(stream, &ctx).await });
                    }
                    Speaks::Https => {
                        monoio::spawn(
                            async move { tls::serve_connection(stream, peer, &ctx).await },
                        );
                    }
                }
            }
            Err(e) => {
                let pause = failures.failed(ctx.worker, &e, Instant::now());
                monoio::time::sleep(pause).await;
            }
        }
    }
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

/// Serve requests on one plain TCP connection until it closes or a response says close.
pub async fn serve_connection(stream: TcpStream, ctx: &Ctx) {
    // Responses are written whole or per SSE event; Nagle would delay each of them.
    let _ = stream.set_nodelay(true);
    serve(stream, ctx).await;
}

/// The request loop over any transport (TCP, or TLS after its handshake).
pub async fn serve<S: Transport>(stream: S, ctx: &Ctx) {
    let mut conn = ClientConn::new(stream);
    conn.write_timeout = ctx.config.server.write_timeout;
    loop {
        let head = match conn.read_head(&ctx.config.server).await {
            Ok(h) => h,
            Err(HeadOutcome::Closed) => return,
            Err(HeadOutcome::Failed(e, seen)) => {
                proxy::write_head_failure(ctx, &mut conn, &e, &seen).await;
                conn.drain_and_close().await;
                return;
            }
        };
        match proxy::handle(ctx, &mut conn, &head).await {
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
