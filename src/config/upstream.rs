//! `[upstream]`: the connect, head and silence budgets every provider starts from, and the
//! connection pool's settings.

use std::time::Duration;

use super::compiler::Compiler;
use super::raw;

/// Default upstream connect (TCP + TLS) budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wait for the upstream response head; non-streaming completions arrive whole.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default wait for the upstream response head of a streamed request: a stream's head comes
/// before its answer, so a provider silent this long is not going to start one.
pub const DEFAULT_STREAM_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest silence between upstream body chunks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default age after which an idle pooled upstream connection is dropped, not reused.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default idle upstream connections kept per provider per worker.
pub const DEFAULT_POOL_MAX_IDLE: usize = 64;

/// Compiled `[upstream]`: each provider's budgets unless it sets its own.
pub(super) struct Upstream {
    /// Connect (TCP + TLS) budget.
    pub(super) connect: Duration,
    /// Response head budget.
    pub(super) first_byte: Duration,
    /// Response head budget of a streamed request, when set.
    pub(super) stream_first_byte: Option<Duration>,
    /// Body chunk silence budget.
    pub(super) idle: Duration,
    /// Age after which an idle pooled connection is dropped.
    pub(super) pool_idle_timeout: Duration,
    /// Idle connections kept per provider per worker.
    pub(super) pool_max_idle: usize,
}

impl Compiler<'_> {
    /// `[upstream]`: nothing here can be wrong once `positive` has run.
    pub(super) fn upstream(&self, up: &raw::RawUpstream) -> Upstream {
        let ms = Duration::from_millis;
        Upstream {
            connect: up.connect_timeout_ms.map_or(DEFAULT_CONNECT_TIMEOUT, ms),
            first_byte: up
                .first_byte_timeout_ms
                .map_or(DEFAULT_FIRST_BYTE_TIMEOUT, ms),
            stream_first_byte: up.stream_first_byte_timeout_ms.map(ms),
            idle: up.idle_timeout_ms.map_or(DEFAULT_IDLE_TIMEOUT, ms),
            pool_idle_timeout: up
                .pool_idle_timeout_ms
                .map_or(DEFAULT_POOL_IDLE_TIMEOUT, ms),
            pool_max_idle: up.pool_max_idle.unwrap_or(DEFAULT_POOL_MAX_IDLE),
        }
    }
}
