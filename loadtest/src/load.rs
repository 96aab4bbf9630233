//! One load thread: its own monoio runtime (io_uring with SINGLE_ISSUER + DEFER_TASKRUN, or
//! epoll), driving one target for one phase in open or closed loop, and returning what it
//! measured. Threads share nothing but a few progress counters.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::cli::{Driver, Mode};
use crate::client::{Conn, Reply};
use crate::reqlog::{Entry, HeadNote, RequestLog};
use crate::sse::Dialect;
use crate::stats::{micros, ErrorKind, Stats, StatsError};

/// io_uring submission queue size per load thread; monoio submits early when it fills.
pub const URING_ENTRIES: u32 = 1024;
/// Pause after a failed connect in closed loop, so a refusing target is not hammered in a
/// tight loop that would only measure the refusal path.
pub const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Open loop: requests are sent up to this much before their intended time. The runtime's
/// timer has millisecond ticks and rounds up, so waiting for the exact time would make every
/// request late by up to a tick and bill that to the target. An early request is instead
/// measured from when it was really sent, so neither direction flatters the target.
pub const DISPATCH_EARLY: Duration = Duration::from_millis(1);
/// Open loop: most requests dispatched back to back before yielding to the runtime. When the
/// schedule is behind, this keeps completions flowing instead of queueing the whole backlog.
const DISPATCH_BATCH: u32 = 64;
/// Open loop: idle connections older than this are not reused (httpx's default expiry).
pub const KEEPALIVE_EXPIRY: Duration = Duration::from_secs(5);
/// How often the open-loop drain checks for finished requests.
const DRAIN_POLL: Duration = Duration::from_millis(1);
/// Extra time, beyond the request timeout, a phase waits for its last requests.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Why a load thread could not run.
#[derive(Debug)]
pub enum LoadError {
    /// The runtime could not be built.
    Runtime(String),
    /// Histogram setup failed.
    Stats(StatsError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Runtime(e) => write!(f, "runtime: {e}"),
            LoadError::Stats(e) => e.fmt(f),
        }
    }
}

/// What to send where, the same for every thread of a phase.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Target socket address.
    pub addr: SocketAddr,
    /// The complete request bytes.
    pub request: Bytes,
    /// Streaming request.
    pub stream: bool,
    /// Response format.
    pub dialect: Dialect,
    /// Load shape, all threads together.
    pub mode: Mode,
    /// Threads in the phase.
    pub threads: usize,
    /// Open-loop connection cap, all threads together.
    pub max_conns: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// io driver.
    pub driver: Driver,
    /// Per-request log (`--request-log`), main target only.
    pub log: Option<Arc<RequestLog>>,
}

/// The phase's timeline. Requests whose (intended) start falls in `[measure, end)` count.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Load starts (warm-up).
    pub start: Instant,
    /// Measurement starts.
    pub measure: Instant,
    /// No new request starts at or after this.
    pub end: Instant,
}

impl Window {
    fn counts(&self, t: Instant) -> bool {
        t >= self.measure && t < self.end
    }
}

/// Counters the main thread reads for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Measured successes.
    pub ok: AtomicU64,
    /// Measured failures.
    pub errors: AtomicU64,
    /// Connections opened.
    pub connects: AtomicU64,
}

/// Run one thread's share of a phase on a fresh runtime on the current thread.
pub fn run_thread(
    plan: &Plan,
    window: Window,
    index: usize,
    live: Arc<Live>,
) -> Result<Stats, LoadError> {
    let stats = Stats::new().map_err(LoadError::Stats)?;
    let empty = Stats::new().map_err(LoadError::Stats)?;
    let plan = plan.clone();
    block_on(plan.driver, move || async move {
        let sh = Rc::new(Shared {
            plan,
            window,
            live,
            stats: RefCell::new(stats),
            pool: RefCell::new(Pool::default()),
        });
        match sh.plan.mode {
            Mode::Closed { conns } => {
                closed_loop(&sh, share(conns, sh.plan.threads, index)).await;
            }
            Mode::Open { rate } => open_loop(&sh, rate, index).await,
        }
        // Close pooled connections while the runtime still runs, so their close is submitted.
        sh.pool.borrow_mut().idle.clear();
        sh.stats.replace(empty)
    })
}

/// Send one request on a fresh runtime and return the reply and the start of its body, so a
/// misconfigured target (wrong model, missing key) is reported before the run starts.
pub fn probe(plan: &Plan) -> Result<(Reply, Vec<u8>), String> {
    let plan = plan.clone();
    let mut out: Result<(Reply, Vec<u8>), String> = Err("probe did not run".into());
    let slot = &mut out;
    block_on(plan.driver, move || async move {
        let work = async {
            let mut conn = Conn::connect(plan.addr).await?;
            let reply = conn
                .exchange(plan.request.clone(), plan.stream, plan.dialect, true)
                .await?;
            Ok::<_, ErrorKind>((reply, std::mem::take(&mut conn.capture)))
        };
        *slot = match monoio::time::timeout(plan.timeout, work).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(kind)) => Err(format!("{kind}")),
            Err(_) => Err("timeout".into()),
        };
    })
    .map_err(|e| e.to_string())?;
    out
}

/// `total` split over `threads`, the remainder going to the first threads.
pub fn share(total: usize, threads: usize, index: usize) -> usize {
    let threads = threads.max(1);
    total / threads + usize::from(index < total % threads)
}

fn block_on<F, Fut>(driver: Driver, f: F) -> Result<Fut::Output, LoadError>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let uring = match driver {
        Driver::Epoll => false,
        Driver::IoUring => true,
        Driver::Auto => monoio::utils::detect_uring(),
    };
    if uring {
        match build_uring() {
            Ok(mut rt) => return Ok(rt.block_on(f())),
            Err(e) if driver == Driver::IoUring => return Err(LoadError::Runtime(e)),
            Err(_) => {}
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new()
        .with_entries(URING_ENTRIES)
        .enable_timer()
        .build()
        .map_err(|e| LoadError::Runtime(e.to_string()))?;
    Ok(rt.block_on(f()))
}

fn build_uring() -> Result<monoio::Runtime<TimeDriver<IoUringDriver>>, String> {
    // Same flags as the gateway: without them the kernel runs task work on every completion,
    // which costs more than it saves for a single-threaded ring.
    let mut urb = io_uring::IoUring::builder();
    urb.setup_single_issuer().setup_defer_taskrun();
    RuntimeBuilder::<IoUringDriver>::new()
        .uring_builder(urb)
        .with_entries(URING_ENTRIES)
        .enable_timer()
        .build()
        .map_err(|e| e.to_string())
}

struct Shared {
    plan: Plan,
    window: Window,
    live: Arc<Live>,
    stats: RefCell<Stats>,
    pool: RefCell<Pool>,
}

/// Open-loop connection pool of one thread.
#[derive(Default)]
struct Pool {
    idle: Vec<(Conn, Instant)>,
    /// Connections owned by the pool: idle ones plus one per running worker.
    open: usize,
    /// Intended start times waiting for a connection (the cap was reached).
    backlog: VecDeque<Instant>,
    /// Running workers.
    running: usize,
}

impl Shared {
    /// Run one request on `slot` (connecting first if it is empty) and record it. The slot
    /// is emptied when the connection cannot carry another request. Returns true when the
    /// connect itself failed.
    async fn one(&self, slot: &mut Option<Conn>, intended: Instant, open_loop: bool) -> bool {
        let started = Instant::now();
        // The clock starts at the intended time for a late request (time spent queued for a
        // connection counts) and at the real send for an early one.
        let base = intended.min(started);
        let deadline = base + self.plan.timeout;
        if deadline <= started {
            // Queued past its timeout: fail it without sending, as a client would have.
            if self.window.counts(intended) {
                self.record(base, started, &Err(ErrorKind::Timeout), None, open_loop);
            }
            return false;
        }
        let deadline = monoio::time::Instant::from_std(deadline);
        let work = async {
            if slot.is_none() {
                let mut conn = Conn::connect(self.plan.addr).await?;
                if self.plan.log.is_some() {
                    conn.note = Some(HeadNote::default());
                }
                *slot = Some(conn);
                self.live.connects.fetch_add(1, Ordering::Relaxed);
            }
            match slot.as_mut() {
                Some(conn) => {
                    conn.exchange(
                        self.plan.request.clone(),
                        self.plan.stream,
                        self.plan.dialect,
                        false,
                    )
                    .await
                }
                None => Err(ErrorKind::Connect),
            }
        };
        let outcome = match monoio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout),
        };
        if self.window.counts(intended) {
            self.record(base, started, &outcome, slot.as_ref(), open_loop);
        }
        if !matches!(&outcome, Ok(r) if r.reusable) {
            *slot = None;
        }
        matches!(outcome, Err(ErrorKind::Connect))
    }

    /// Record one request whose latency clock started at `base`.
    fn record(
        &self,
        base: Instant,
        started: Instant,
        outcome: &Result<Reply, ErrorKind>,
        conn: Option<&Conn>,
        open_loop: bool,
    ) {
        let mut st = self.stats.borrow_mut();
        if open_loop {
            st.start_delay
                .saturating_record(micros(started.saturating_duration_since(base)));
        }
        let failure = match outcome {
            Err(kind) => Some(*kind),
            Ok(r) if !(200..300).contains(&r.status) => Some(ErrorKind::Status(r.status)),
            Ok(r) => r.stream_error,
        };
        if let Some(log) = &self.plan.log {
            let (end, first_token) = match outcome {
                Ok(r) => (r.done_at, r.first_token_at),
                Err(_) => (Instant::now(), None),
            };
            let outcome_text = failure.map_or("ok".to_owned(), |k| k.to_string());
            log.write(&Entry {
                start: base,
                end,
                first_token,
                outcome: &outcome_text,
                head: conn.and_then(|c| c.note.as_ref()),
            });
        }
        match (failure, outcome) {
            (Some(kind), _) => {
                st.error(kind);
                self.live.errors.fetch_add(1, Ordering::Relaxed);
            }
            (None, Ok(r)) => {
                st.ok += 1;
                st.latency
                    .saturating_record(micros(r.done_at.saturating_duration_since(base)));
                if let Some(t) = r.first_token_at {
                    st.ttft
                        .saturating_record(micros(t.saturating_duration_since(base)));
                }
                for g in conn.map_or(&[][..], |c| &c.gaps) {
                    st.itl.saturating_record(*g);
                }
                self.live.ok.fetch_add(1, Ordering::Relaxed);
            }
            (None, Err(_)) => {}
        }
    }
}

async fn closed_loop(sh: &Rc<Shared>, conns: usize) {
    // Each connection is a task of its own; they are joined here so the phase ends when the
    // last in-flight request does.
    // Every thread starts together, whenever its runtime came up.
    monoio::time::sleep_until(monoio::time::Instant::from_std(sh.window.start)).await;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let sh = sh.clone();
        tasks.push(monoio::spawn(async move {
            let mut slot = None;
            while Instant::now() < sh.window.end {
                let start = Instant::now();
                if sh.one(&mut slot, start, false).await {
                    monoio::time::sleep(CONNECT_RETRY_PAUSE).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await;
    }
}

async fn open_loop(sh: &Rc<Shared>, rate: f64, index: usize) {
    let threads = sh.plan.threads.max(1);
    // Thread i sends at start + (k * threads + i) / rate: the threads interleave into one
    // evenly spaced schedule at the full rate.
    let period = threads as f64 / rate;
    let offset = index as f64 / rate;
    let max_conns = share(sh.plan.max_conns, threads, index).max(1);
    let mut k: u64 = 0;
    let mut since_yield = 0u32;
    loop {
        let at = offset + period * k as f64;
        let Some(intended) = sh.window.start.checked_add(Duration::from_secs_f64(at)) else {
            break;
        };
        if intended >= sh.window.end {
            break;
        }
        let wake = intended.checked_sub(DISPATCH_EARLY).unwrap_or(intended);
        if wake > Instant::now() {
            monoio::time::sleep_until(monoio::time::Instant::from_std(wake)).await;
            since_yield = 0;
        } else if since_yield >= DISPATCH_BATCH {
            YieldNow(false).await;
            since_yield = 0;
        }
        since_yield += 1;
        dispatch(sh, intended, max_conns);
        k += 1;
    }
    let deadline = sh.window.end + sh.plan.timeout + DRAIN_GRACE;
    while sh.pool.borrow().running > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    // Whatever has not finished by now will not be waited for: count it as timed out.
    let pool = sh.pool.borrow();
    let abandoned = pool
        .backlog
        .iter()
        .filter(|t| sh.window.counts(**t))
        .count()
        + pool.running;
    if abandoned > 0 {
        let mut st = sh.stats.borrow_mut();
        for _ in 0..abandoned {
            st.error(ErrorKind::Timeout);
        }
    }
    if let (Some(log), true) = (&sh.plan.log, abandoned > 0) {
        // The log gets a line for each of them too, so its lines add up to the report's
        // count. A running request's start is not known here: it is logged as ending now.
        let now = Instant::now();
        let queued = pool.backlog.iter().filter(|t| sh.window.counts(**t));
        let running = std::iter::repeat_n(&now, pool.running);
        for start in queued.chain(running) {
            log.write(&Entry {
                start: *start,
                end: now,
                first_token: None,
                outcome: "timeout",
                head: None,
            });
        }
    }
}

/// Lets the runtime run other ready tasks once (monoio has no `yield_now`).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

fn dispatch(sh: &Rc<Shared>, intended: Instant, max_conns: usize) {
    let mut pool = sh.pool.borrow_mut();
    // Like an HTTP client's keep-alive expiry: a connection idle this long may be closing on
    // the server side right now, and reusing it would count the server's idle timeout as the
    // target's error. Its slot reconnects instead.
    let slot = match pool.idle.pop() {
        Some((c, since)) if since.elapsed() < KEEPALIVE_EXPIRY => Some(c),
        Some(_) => None,
        None if pool.open < max_conns => {
            pool.open += 1;
            None
        }
        None => {
            pool.backlog.push_back(intended);
            return;
        }
    };
    pool.running += 1;
    drop(pool);
    let sh = sh.clone();
    // Detached: the drain loop in open_loop waits for `running` to reach zero.
    drop(monoio::spawn(async move {
        let mut slot = slot;
        let mut intended = intended;
        loop {
            let _connect_failed = sh.one(&mut slot, intended, true).await;
            let mut pool = sh.pool.borrow_mut();
            // A queued request takes this connection (or reconnects in its place) at once.
            if let Some(next) = pool.backlog.pop_front() {
                intended = next;
                continue;
            }
            match slot.take() {
                Some(c) => pool.idle.push((c, Instant::now())),
                None => pool.open = pool.open.saturating_sub(1),
            }
            pool.running = pool.running.saturating_sub(1);
            break;
        }
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in 0..20 {
            for threads in 1..6 {
                let sum: usize = (0..threads).map(|i| share(total, threads, i)).sum();
                assert_eq!(sum, total);
                let max = (0..threads)
                    .map(|i| share(total, threads, i))
                    .max()
                    .unwrap();
                let min = (0..threads)
                    .map(|i| share(total, threads, i))
                    .min()
                    .unwrap();
                assert!(max - min <= 1);
            }
        }
    }
}
