//! Worker threads: one monoio runtime per worker (io_uring with SINGLE_ISSUER + DEFER_TASKRUN,
//! or the legacy epoll driver), each pinned to a CPU where allowed, each with its own
//! SO_REUSEPORT listener, upstream pool and state. Workers share nothing on the request path.

pub mod timer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::net::{ListenerOpts, TcpListener};
use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::{Config, Driver};
use crate::proxy::Ctx;

/// Listen backlog per worker socket.
pub const LISTEN_BACKLOG: i32 = 4096;

/// The driver a worker ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring with SINGLE_ISSUER + DEFER_TASKRUN.
    IoUring,
    /// epoll.
    Epoll,
}

impl DriverKind {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring (SINGLE_ISSUER+DEFER_TASKRUN)",
            DriverKind::Epoll => "epoll (legacy)",
        }
    }
}

/// Running workers.
pub struct Running {
    /// The bound address (the real port when the config said port 0).
    pub addr: SocketAddr,
    /// The driver every worker runs.
    pub driver: DriverKind,
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

/// Start a single-threaded monoio runtime on the current thread and run `f` in it.
/// Used by the mock provider and tools that need one runtime, not a worker set.
pub fn block_on<F, Fut>(driver: Driver, entries: u32, f: F) -> Result<(), String>
where
    F: FnOnce(DriverKind) -> Fut,
    Fut: Future<Output = ()>,
{
    // A runtime of an earlier block_on on this thread may have left timers behind.
    timer::reset();
    match choose(driver)? {
        DriverKind::IoUring => match build_uring(entries) {
            Ok(mut rt) => {
                rt.block_on(f(DriverKind::IoUring));
                Ok(())
            }
            Err(e) if driver == Driver::Auto => {
                crate::log::warn(format_args!("io_uring setup refused ({e}); using epoll"));
                let mut rt = build_legacy(entries)?;
                rt.block_on(f(DriverKind::Epoll));
                Ok(())
            }
            Err(e) => Err(format!("io_uring setup failed: {e}")),
        },
        DriverKind::Epoll => {
            let mut rt = build_legacy(entries)?;
            rt.block_on(f(DriverKind::Epoll));
            Ok(())
        }
    }
}

fn choose(driver: Driver) -> Result<DriverKind, String> {
    let forced_legacy = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    match driver {
        Driver::Epoll => Ok(DriverKind::Epoll),
        Driver::Auto if forced_legacy || !monoio::utils::detect_uring() => Ok(DriverKind::Epoll),
        Driver::Auto => Ok(DriverKind::IoUring),
        Driver::IoUring if monoio::utils::detect_uring() => Ok(DriverKind::IoUring),
        Driver::IoUring => Err("driver = \"io_uring\" but the kernel refuses io_uring".to_owned()),
    }
}

fn build_uring(entries: u32) -> Result<monoio::Runtime<TimeDriver<IoUringDriver>>, String> {
    // Without these two flags io_uring is slower than epoll on these machines: the kernel
    // would run task work on every completion instead of when we ask for events.
    let mut urb = io_uring::IoUring::builder();
    urb.setup_single_issuer().setup_defer_taskrun();
    RuntimeBuilder::<IoUringDriver>::new()
        .uring_builder(urb)
        .with_entries(entries)
        .enable_timer()
        .build()
        .map_err(|e| e.to_string())
}

fn build_legacy(entries: u32) -> Result<monoio::Runtime<TimeDriver<LegacyDriver>>, String> {
    RuntimeBuilder::<LegacyDriver>::new()
        .with_entries(entries)
        .enable_timer()
        .build()
        .map_err(|e| format!("epoll runtime setup failed: {e}"))
}

/// Bind a worker's listener (SO_REUSEPORT, so every worker binds the same port).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(LISTEN_BACKLOG);
    TcpListener::bind_with_config(addr, &opts)
}

/// Refuse an address another socket already listens on. Our listeners set SO_REUSEPORT so
/// that every worker can bind the port, but that would also let this process silently share
/// it with another gateway (of another config). Probe first with a socket that sets only
/// SO_REUSEADDR and is bound, never listened on (so no connection can land on it): Linux
/// refuses that bind while anything listens on the address. Port 0 always gets a fresh port.
pub fn ensure_address_free(addr: SocketAddr) -> Result<(), String> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };
    if addr.port() == 0 {
        return Ok(());
    }
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("cannot probe {addr}: {e}"))?;
    // Closed on every path below.
    let close = |fd| {
        let _ = nix::unistd::close(fd);
    };
    if let Err(e) = setsockopt(fd, sockopt::ReuseAddr, &true) {
        close(fd);
        return Err(format!("cannot probe {addr}: {e}"));
    }
    let result = bind(fd, &SockaddrStorage::from(addr));
    close(fd);
    match result {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EADDRINUSE) => Err(format!(
            "cannot listen on {addr}: another process is already listening there; stop it, \
             choose another address, or pass --reuse-port (server.reuse_port = true) to share \
             the port on purpose (zero-downtime restart)"
        )),
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// Start the workers and return once every one of them is listening. Worker 0 binds first so
/// that a port-0 config gets one real port that the other workers then share.
pub fn start(config: Arc<Config>) -> Result<Running, String> {
    let workers = config.server.workers;
    if !config.server.reuse_port {
        ensure_address_free(config.server.listen)?;
    }
    if let Some(dest) = &config.access_log {
        crate::access_log::start(dest).map_err(|e| format!("cannot start the {e}"))?;
    }
    let ready = Arc::new(AtomicUsize::new(0));
    let hub = crate::metrics::Hub::new(workers);
    let id_prefix = id_prefix();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::with_capacity(workers);
    let mut addr = config.server.listen;
    let mut driver_seen = None;
    for i in 0..workers {
        let (tx, rx) = mpsc::channel::<Result<(SocketAddr, DriverKind), String>>();
        let cfg = config.clone();
        let ready = ready.clone();
        let hub = hub.clone();
        let bind_addr = addr;
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
                    let listener = match bind(bind_addr) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx.send(Err(format!("cannot listen on {bind_addr}: {e}")));
                            return;
                        }
                    };
                    let local = listener.local_addr().unwrap_or(bind_addr);
                    let ctx = Ctx::new(cfg, i, ready.clone(), id_prefix, hub);
                    // Publish this worker's metrics for scrapes answered by other workers.
                    let publisher = ctx.clone();
                    monoio::spawn(async move {
                        loop {
                            monoio::time::sleep(crate::metrics::PUBLISH_EVERY).await;
                            let snap = publisher.metrics_snapshot();
                            publisher.hub.publish(publisher.worker, snap);
                        }
                    });
                    ready.fetch_add(1, Ordering::AcqRel);
                    let _ = tx.send(Ok((local, kind)));
                    crate::server::accept_loop(listener, ctx).await;
                };
                if let Err(e) = block_on(driver, entries, run) {
                    crate::log::error(format_args!("worker {i}: {e}"));
                }
            })
            .map_err(|e| format!("cannot spawn worker thread: {e}"))?;
        threads.push(t);
        match rx.recv() {
            Ok(Ok((bound, kind))) => {
                addr = bound;
                driver_seen = Some(kind);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("worker {i} failed to start")),
        }
    }
    Ok(Running {
        addr,
        driver: driver_seen.unwrap_or(DriverKind::Epoll),
        threads,
    })
}

/// A per-process prefix for request ids: start time mixed with the pid.
fn id_prefix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    // Fold with a multiplicative hash so nearby start times give unrelated prefixes.
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}
