//! The low-level runtime every IO layer stands on: the monoio driver choice (io_uring with
//! SINGLE_ISSUER + DEFER_TASKRUN, or epoll), listeners, the per-worker timer and beacon, the
//! helper-thread pool, the control board the workers read, and direct socket calls that skip
//! the driver. It knows nothing of requests; `workers` starts the worker set on top of it.

pub mod beacon;
pub mod control;
mod listen;
pub mod pool;
pub mod timer;

use std::future::Future;
use std::net::SocketAddr;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::Driver;
pub use listen::{kernel_migrates_queued, Listener, LISTENER_HANDOVER};

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

/// Send from the front of `buf` what a connected socket takes now, without waiting and without
/// the driver, and take it off `buf`: the bytes sent, 0 when the socket has no room. A peer
/// that has gone is an error here (no SIGPIPE), as it would be through the driver.
pub fn send_front(fd: std::os::fd::RawFd, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use nix::sys::socket::{send, MsgFlags};
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    let n = match no_eintr(|| send(fd, buf, flags)) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        other => other?,
    };
    buf.drain(..n.min(buf.len()));
    Ok(n)
}

/// Send from `parts` (in order, as one vectored send) what a connected socket takes now, without
/// waiting and without the driver: the bytes sent, 0 when the socket has no room.
pub fn send_parts_now(
    fd: std::os::fd::RawFd,
    parts: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    match no_eintr(|| sendmsg::<SockaddrStorage>(fd, parts, &[], flags, None)) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// Receive what a connected socket holds now, without waiting and without the driver: the
/// bytes read (0 at its end), or `WouldBlock` when nothing is there.
pub fn recv_now(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    use nix::sys::socket::{recv, MsgFlags};
    no_eintr(|| recv(fd, buf, MsgFlags::MSG_DONTWAIT))
}

/// Does a connected socket hold bytes to read now? Peeked, without waiting: nothing is taken.
pub fn readable_now(fd: std::os::fd::RawFd) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let mut byte = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    matches!(no_eintr(|| recv(fd, &mut byte, flags)), Ok(n) if n > 0)
}

/// A socket call, again while a signal interrupts it.
fn no_eintr(mut call: impl FnMut() -> nix::Result<usize>) -> std::io::Result<usize> {
    loop {
        match call() {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)),
            Ok(n) => return Ok(n),
        }
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
pub fn bind(addr: SocketAddr, kind: DriverKind) -> std::io::Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Listener::new(socket.into(), kind == DriverKind::Epoll)
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
