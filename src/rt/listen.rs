//! A worker's bound listener, with the spare handle a drain uses to take what the kernel had
//! already queued, and to stop new handshakes on it before it closes.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};
use nix::libc;

/// At a drain, the pause between closing the runtime's handle on a listener and taking what is
/// queued on it through the spare handle: long enough for io_uring to run the queued close.
const LISTENER_CLOSE_SETTLE: Duration = Duration::from_millis(2);

/// At a drain, how long a listener that takes no new handshakes (see
/// [`Listener::refuse_new_handshakes`]) still accepts the ones under way before it closes:
/// the round trip of a client's last ACK on the networks a gateway sits on, with room to spare,
/// and well under the second after which a client sends a dropped SYN again (it must find this
/// listener gone by then). Every SYN that reaches the listener meanwhile waits that second:
/// longer would delay more clients.
pub const LISTENER_HANDOVER: Duration = Duration::from_millis(100);

/// A classic BPF socket filter that drops a TCP segment with SYN set and ACK clear (a new
/// handshake) and lets everything else through. On a listener it runs on the TCP header.
const DROP_NEW_HANDSHAKES: [libc::sock_filter; 5] = [
    // A = the flags byte of the TCP header.
    bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 13),
    // A &= SYN | ACK.
    bpf(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0, 0, 0x12),
    // SYN alone: drop; otherwise keep.
    bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, 0x02),
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
];

const fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    // The opcodes above all fit in the 16 bits of `code`.
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Does the kernel hand a closing listener's queued connections to another listener on the
/// same port (`net.ipv4.tcp_migrate_req`, Linux 5.14+)?
pub fn kernel_migrates_queued() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}

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

    /// From now on, a new connection's SYN that reaches this listener is dropped; handshakes
    /// already under way still complete and are queued for accept. Closing a listener resets
    /// every connection in its queues (a client that sent its request gets a reset instead of an
    /// answer), and while it is open the kernel keeps handing it a share of the port's new
    /// connections: this ends that flow first. A dropped SYN is sent again by the client a
    /// second later, and then reaches a listener still open on the port (the new process of a
    /// restart; none at a plain stop, and the client is refused). The filter has no use once
    /// the kernel moves queued connections itself ([`kernel_migrates_queued`]).
    pub fn refuse_new_handshakes(&self) -> std::io::Result<()> {
        socket2::SockRef::from(&self.spare).attach_filter(&DROP_NEW_HANDSHAKES)
    }

    /// Accept, without waiting, every connection already queued; the listener then closes.
    /// The runtime's handle goes first (on io_uring its close is queued to the ring, so it is
    /// given a moment to happen): the socket then closes with the spare handle, synchronously,
    /// right after the last accept found the queue empty. A handshake that completes between
    /// those two calls is reset, unless `net.ipv4.tcp_migrate_req` hands it to another
    /// listener; after [`Listener::refuse_new_handshakes`] and [`LISTENER_HANDOVER`] none is
    /// left under way but one whose client has not answered for that long.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::{bind, DriverKind};

    fn run<F: std::future::Future<Output = ()>>(f: F) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(f);
    }

    /// A client socket whose handshake with `addr` is under way (non-blocking connect).
    fn start_connect(addr: SocketAddr) -> socket2::Socket {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        match s.connect(&addr.into()) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            other => panic!("connect: {other:?}"),
        }
        s
    }

    #[test]
    fn a_listener_refusing_new_handshakes_keeps_its_queue_and_the_port_takes_the_rest() {
        run(async {
            let old = bind("127.0.0.1:0".parse().unwrap(), DriverKind::Epoll).unwrap();
            let addr = old.local_addr().unwrap();
            let queued = std::net::TcpStream::connect(addr).unwrap();
            old.refuse_new_handshakes().unwrap();
            let late = start_connect(addr);
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                late.peer_addr().is_err(),
                "a handshake completed on a listener refusing new ones"
            );
            // The process that takes over shares the port; the old listener then closes.
            let new = bind(addr, DriverKind::Epoll).unwrap();
            let taken = old.take_queued().await;
            let peers: Vec<SocketAddr> = taken.iter().map(|(_, p)| *p).collect();
            assert_eq!(
                peers,
                vec![queued.local_addr().unwrap()],
                "queued, then taken"
            );
            // The client sends its SYN again a second later; it reaches the listener left.
            let (_, peer) = monoio::time::timeout(Duration::from_secs(5), new.accept())
                .await
                .expect("the refused client reaches the new listener")
                .unwrap();
            assert_eq!(Some(peer), late.local_addr().unwrap().as_socket());
        });
    }
}
