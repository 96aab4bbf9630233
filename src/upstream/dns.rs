//! Provider name resolution off the worker threads: a lookup (`getaddrinfo`, which blocks for
//! as long as the resolver takes) runs on a short-lived helper thread, the worker's task
//! waits for its answer on the worker's timer, and the answer is cached per worker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a resolved provider address is reused before resolving again.
pub const DNS_CACHE_TTL: Duration = Duration::from_secs(60);

/// How often a task waiting for a lookup checks for its answer. Lookups are rare (once per
/// host per TTL per worker) and the wait is bounded by the provider's connect timeout.
pub const DNS_POLL: Duration = Duration::from_millis(1);

/// The answer a lookup thread leaves for the worker: set once, read without a lock.
type Answer = Arc<OnceLock<Result<SocketAddr, String>>>;

/// One host's state on this worker.
enum Entry {
    /// Resolved at this instant.
    Ready(SocketAddr, Instant),
    /// A lookup is running; every request for the host waits on the same one.
    Pending(Answer, u16),
}

/// Per-worker resolver cache. IP literals never look anything up; a name is looked up at most
/// once per `DNS_CACHE_TTL` on each worker, off the worker thread.
#[derive(Default)]
pub struct DnsCache {
    entries: RefCell<HashMap<String, Entry>>,
}

impl DnsCache {
    /// The address of `host:port`, resolving it on a helper thread when it is not cached. The
    /// caller bounds the wait (the provider's connect timeout).
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let answer = {
            let mut entries = self.entries.borrow_mut();
            match entries.get(host) {
                Some(Entry::Ready(addr, at))
                    if at.elapsed() < DNS_CACHE_TTL && addr.port() == port =>
                {
                    return Ok(*addr);
                }
                Some(Entry::Pending(answer, p)) if *p == port => answer.clone(),
                _ => {
                    let answer = start_lookup(host, port)?;
                    entries.insert(host.to_owned(), Entry::Pending(answer.clone(), port));
                    answer
                }
            }
        };
        loop {
            if let Some(result) = answer.get() {
                return self.settle(host, &answer, result.clone());
            }
            crate::rt::timer::sleep(DNS_POLL).await;
        }
    }

    /// Record a finished lookup (the first waiter to see it does; later ones find it cached
    /// or, for a failure, start afresh next time).
    fn settle(
        &self,
        host: &str,
        answer: &Answer,
        result: Result<SocketAddr, String>,
    ) -> io::Result<SocketAddr> {
        let mut entries = self.entries.borrow_mut();
        let ours =
            matches!(entries.get(host), Some(Entry::Pending(a, _)) if Arc::ptr_eq(a, answer));
        match result {
            Ok(addr) => {
                if ours {
                    entries.insert(host.to_owned(), Entry::Ready(addr, Instant::now()));
                }
                Ok(addr)
            }
            Err(e) => {
                if ours {
                    entries.remove(host);
                }
                Err(io::Error::new(io::ErrorKind::NotFound, e))
            }
        }
    }
}

/// Run one lookup on a helper thread; its answer lands in the returned cell.
fn start_lookup(host: &str, port: u16) -> io::Result<Answer> {
    let answer: Answer = Arc::new(OnceLock::new());
    let out = answer.clone();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("ringway-dns".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_owned()));
            let _ = out.set(result);
        })?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future<Output = ()>>(f: F) {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(f);
    }

    #[test]
    fn names_resolve_off_the_worker_and_are_cached() {
        run(async {
            let dns = DnsCache::default();
            let a = dns.resolve("localhost", 4000).await.unwrap();
            assert!(a.ip().is_loopback(), "{a}");
            assert_eq!(a.port(), 4000);
            assert!(matches!(
                dns.entries.borrow().get("localhost"),
                Some(Entry::Ready(..))
            ));
            // Cached: the same answer without a new lookup; another port looks up again.
            assert_eq!(dns.resolve("localhost", 4000).await.unwrap(), a);
            assert_eq!(dns.resolve("localhost", 4001).await.unwrap().port(), 4001);
            // IP literals never touch the cache.
            let ip = dns.resolve("127.0.0.2", 9).await.unwrap();
            assert_eq!(ip, SocketAddr::from(([127, 0, 0, 2], 9)));
            assert!(dns.entries.borrow().get("127.0.0.2").is_none());
        });
    }

    #[test]
    fn a_failed_lookup_is_an_error_and_not_cached() {
        run(async {
            let dns = DnsCache::default();
            // `.invalid` never resolves (RFC 6761).
            assert!(dns.resolve("no-such-host.invalid", 80).await.is_err());
            assert!(dns.entries.borrow().get("no-such-host.invalid").is_none());
        });
    }

    #[test]
    fn concurrent_requests_share_one_lookup() {
        run(async {
            let dns = std::rc::Rc::new(DnsCache::default());
            let (a, b) = (dns.clone(), dns.clone());
            let first = monoio::spawn(async move { a.resolve("localhost", 80).await.unwrap() });
            let second = monoio::spawn(async move { b.resolve("localhost", 80).await.unwrap() });
            assert_eq!(first.await, second.await);
        });
    }
}
