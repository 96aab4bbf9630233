//! Starting and supervising the worker set: one monoio runtime per worker, each pinned to a
//! CPU where allowed, each with its own SO_REUSEPORT listener, upstream pool and state, and
//! the supervisor's signals, reload and drain above them. Workers share nothing on the request
//! path.

pub mod supervise;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::proxy::Ctx;
use crate::rt::{bind, block_on, control, ensure_address_free, pool, DriverKind};

/// Running workers.
pub struct Running {
    /// The bound address (the real port when the config said port 0).
    pub addr: SocketAddr,
    /// The plain-HTTP listener beside a TLS one (`server.plain_listen`), bound.
    pub plain_addr: Option<SocketAddr>,
    /// The driver every worker runs.
    pub driver: DriverKind,
    /// Messages to the workers, and what they report.
    pub workers: control::Workers,
    /// The per-key limits every worker shares; a reload calls its `reconfigure`.
    pub limiter: Arc<crate::limits::Limiter>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Block until every worker exits (they run until the process ends).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Start the workers and return once every one of them is listening. Worker 0 binds first so
/// that a port-0 config gets one real port that the other workers then share.
pub fn start(config: Arc<Config>) -> Result<Running, String> {
    let workers = config.server.workers;
    if let Some(plain) = config.server.plain_listen {
        // The file was checked at load; --listen may have moved server.listen since.
        if crate::config::same_port(plain, config.server.listen) {
            return Err(format!(
                "server.plain_listen {plain} and server.listen {} share a port",
                config.server.listen
            ));
        }
    }
    if !config.server.reuse_port {
        ensure_address_free(config.server.listen)?;
        if let Some(plain) = config.server.plain_listen {
            ensure_address_free(plain)?;
        }
    }
    let speaks = if config.server.tls.is_some() {
        crate::server::Speaks::Https
    } else {
        crate::server::Speaks::Http
    };
    // A node that cannot reach the Redis its config names does not start: the operator sees
    // the config line at once, not a fleet quietly enforcing local shares.
    if let Some(url) = &config.cluster.redis {
        crate::limits::redis::probe(&url.url, crate::cluster::START_PROBE_TIMEOUT).map_err(
            |e| {
                url.error(format!("Redis at {} unreachable: {e}", url.redacted()))
                    .to_string()
            },
        )?;
    }
    if let Some(dest) = &config.access_log {
        crate::access_log::start(dest).map_err(|e| format!("cannot start the {e}"))?;
    }
    // With [cluster] postgres these reach it and migrate its tables first: unreachable or
    // refused, the start fails as the config's `FILE:LINE: cluster.postgres: reason`.
    if let Some(custody) = &config.custody {
        crate::custody::start(custody, &config.cluster)?;
    }
    if let Some(settings) = &config.responses_store {
        crate::responses_store::start(settings, &config.cluster)?;
    }
    // Started here, before any worker is pinned to its CPU: a thread inherits the CPUs of the
    // thread that starts it, and helpers started from a pinned worker would share its CPU.
    pool::start();
    let ready = Arc::new(AtomicUsize::new(0));
    let hub = crate::metrics::Hub::new(workers);
    let board = control::Board::new(workers);
    let (handle, inboxes) = control::Workers::new(board.clone(), workers);
    // Once per process, outside the config snapshot: a reload keeps the keys' counts.
    let limiter =
        crate::limits::Limiter::new(&config.keys, config.routing.routes(), &config.cluster);
    let id_prefix = id_prefix();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::with_capacity(workers);
    let mut addr = config.server.listen;
    let mut plain_addr = config.server.plain_listen;
    let mut driver_seen = None;
    for (i, inbox) in inboxes.into_iter().enumerate() {
        type Bound = (SocketAddr, Option<SocketAddr>, DriverKind);
        let (tx, rx) = mpsc::channel::<Result<Bound, String>>();
        let cfg = config.clone();
        let ready = ready.clone();
        let hub = hub.clone();
        let board = board.clone();
        let limiter = limiter.clone();
        let bind_addr = addr;
        let bind_plain = plain_addr;
        let t = std::thread::Builder::new()
            .name(format!("ringway-w{i}"))
            .spawn(move || {
                if cfg.server.pin_workers {
                    if let Err(e) = monoio::utils::bind_to_cpu_set([i % cpus]) {
                        crate::log::warn(format_args!(
                            "worker {i}: cannot pin to CPU {}: {e:?}",
                            i % cpus
                        ));
                    }
                }
                let entries = cfg.server.uring_entries;
                let driver = cfg.server.driver;
                let run = move |kind: DriverKind| async move {
                    let listener = match bind(bind_addr, kind) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx.send(Err(format!("cannot listen on {bind_addr}: {e}")));
                            return;
                        }
                    };
                    let local = listener.local_addr().unwrap_or(bind_addr);
                    // The plain listener beside a TLS one: bound now, served by its own task.
                    let plain = match bind_plain.map(|a| (a, bind(a, kind))) {
                        None => None,
                        Some((a, Ok(l))) => Some((l.local_addr().unwrap_or(a), l)),
                        Some((a, Err(e))) => {
                            let _ = tx.send(Err(format!("cannot listen on {a}: {e}")));
                            return;
                        }
                    };
                    let ctx = Ctx::new(
                        cfg,
                        i,
                        ready.clone(),
                        id_prefix,
                        hub,
                        board.clone(),
                        limiter,
                    );
                    let live = crate::server::Live::new(ctx);
                    monoio::spawn(worker_control(live.clone(), inbox, board.clone()));
                    ready.fetch_add(1, Ordering::AcqRel);
                    let _ = tx.send(Ok((local, plain.as_ref().map(|p| p.0), kind)));
                    // Both listeners close at a drain; the worker reports once both have.
                    let plain_loop = plain.map(|(_, l)| {
                        let http = crate::server::Speaks::Http;
                        monoio::spawn(crate::server::accept_loop(l, live.clone(), http))
                    });
                    crate::server::accept_loop(listener, live.clone(), speaks).await;
                    if let Some(handle) = plain_loop {
                        handle.await;
                    }
                    board.listener_closed(i, live.open());
                    // Drained: the listeners are closed; the thread stays until the process
                    // exits, so that connections still open finish.
                    std::future::pending::<()>().await;
                };
                if let Err(e) = block_on(driver, entries, run) {
                    crate::log::error(format_args!("worker {i}: {e}"));
                }
            })
            .map_err(|e| format!("cannot spawn worker thread: {e}"))?;
        threads.push(t);
        match rx.recv() {
            Ok(Ok((bound, plain, kind))) => {
                addr = bound;
                plain_addr = plain;
                driver_seen = Some(kind);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("worker {i} failed to start")),
        }
    }
    Ok(Running {
        addr,
        plain_addr,
        driver: driver_seen.unwrap_or(DriverKind::Epoll),
        workers: handle,
        limiter,
        threads,
    })
}

/// A worker's side of the control channel: applies reloads and drains as they arrive, reports
/// its open connections, and publishes its metrics for scrapes answered by other workers.
async fn worker_control(
    live: Rc<crate::server::Live>,
    inbox: mpsc::Receiver<control::Message>,
    board: Arc<control::Board>,
) {
    let mut published = std::time::Instant::now();
    loop {
        monoio::time::sleep(control::CONTROL_TICK).await;
        while let Ok(message) = inbox.try_recv() {
            let ctx = live.ctx();
            match message {
                control::Message::Reload { config, generation } => {
                    live.swap(ctx.reloaded(config, generation));
                    board.serving(ctx.worker, generation);
                    crate::log::info(format_args!(
                        "worker {}: serving config generation {generation}",
                        ctx.worker
                    ));
                }
                control::Message::Drain { deadline } => {
                    ctx.draining.fire();
                    let state = ctx.state();
                    monoio::spawn(async move {
                        // Counted from the listeners' close: a connection accepted in their
                        // handover gets the whole grace too.
                        let grace = crate::rt::LISTENER_HANDOVER + control::FIRST_REQUEST_GRACE;
                        monoio::time::sleep(grace).await;
                        state.quiet.fire();
                        let wait = deadline.saturating_duration_since(std::time::Instant::now());
                        monoio::time::sleep(wait).await;
                        state.cut.fire();
                    });
                }
            }
        }
        let ctx = live.ctx();
        board.set_open(ctx.worker, live.open());
        crate::trace::tick();
        if published.elapsed() >= crate::metrics::PUBLISH_EVERY {
            published = std::time::Instant::now();
            let snap = ctx.metrics_snapshot();
            ctx.hub.publish(ctx.worker, snap);
        }
    }
}

/// A per-process prefix for request ids: 64 bits from the system's random source, so ids
/// never repeat across restarts or nodes (a custody record is found by its id). Should the
/// source fail, the start time mixed with the pid.
fn id_prefix() -> u64 {
    let mut b = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    // Fold with a multiplicative hash so nearby start times give unrelated prefixes.
    mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
