//! A worker's bound listener, with the spare handle a drain uses to take what the kernel had
//! already queued.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

/// At a drain, the pause between closing the runtime's handle on a listener and taking what is
/// queued on it through the spare handle: long enough for io_uring to run the queued close.
const LISTENER_CLOSE_SETTLE: Duration = Duration::from_millis(2);

/// A bound listener: what the worker accepts on, and a second handle on the same socket used
/// once, at a drain, to take the connections the kernel had already queued before it closes
/// (closing a listener resets those).
pub struct Listener {
    socket: TcpListener,
    spare: std::net::TcpListener,
    epoll: bool,
}

impl Listener {
    /// Wrap a bound, listening socket for the worker's driver.
    pub fn new(std: std::net::TcpListener, epoll: bool) -> std::io::Result<Listener> {
        let spare = std.try_clone()?;
        // The epoll driver needs non-blocking sockets; io_uring would hand EAGAIN back for them.
        if epoll {
            std.set_nonblocking(true)?;
        }
        Ok(Listener {
            socket: TcpListener::from_std(std)?,
            spare,
            epoll,
        })
    }

    /// Accept one connection.
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.socket.accept().await
    }

    /// Accept one connection, or give up when `handle`'s canceller fires.
    pub async fn accept_cancelable(
        &self,
        handle: monoio::io::CancelHandle,
    ) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.socket.cancelable_accept(handle).await
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accept, without waiting, every connection already queued; the listener then closes.
    /// The runtime's handle goes first (on io_uring its close is queued to the ring, so it is
    /// given a moment to happen): the socket then closes with the spare handle, synchronously,
    /// right after the last accept found the queue empty. Whatever the kernel queues between
    /// those two calls is reset, unless `net.ipv4.tcp_migrate_req` hands it to another listener.
    pub async fn take_queued(self) -> Vec<(TcpStream, SocketAddr)> {
        let Listener {
            socket,
            spare,
            epoll,
        } = self;
        drop(socket);
        monoio::time::sleep(LISTENER_CLOSE_SETTLE).await;
        let mut out = Vec::new();
        if spare.set_nonblocking(true).is_err() {
            return out;
        }
        while let Ok((s, peer)) = spare.accept() {
            let ready = if epoll {
                s.set_nonblocking(true).is_ok()
            } else {
                true
            };
            if let Some(s) = ready.then(|| TcpStream::from_std(s).ok()).flatten() {
                out.push((s, peer));
            }
        }
        out
    }
}
