//! `[server]` and `[server.tls]`: listeners, workers, the client-side bounds, and their
//! defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::compiler::{Compiler, ConfigError};
use super::{raw, tls};
use toml::Spanned;

/// This gateway's name in custody paths when `[server] node` is unset.
pub const DEFAULT_NODE: &str = "ringway";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// Default largest request body (Anthropic's own Messages limit is 32 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default time from a request's first byte to the end of its head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest silence while a client sends a body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default longest time to receive a whole request body (a trickle that never goes silent).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(120);
/// Default budget, per worker, for provider answers held whole for translation.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 128 * 1024 * 1024;
/// Default bound on one write to a client that stopped reading.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time from accepting a TLS connection to the end of its handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle time of a client connection between requests.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default time responses in flight may run once a drain (SIGTERM) starts.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default io_uring queue depth per worker.
pub const DEFAULT_URING_ENTRIES: u32 = 1024;

/// Would listeners on `a` and `b` share a port? Both are bound with SO_REUSEPORT, so the kernel
/// would not refuse it: connections would be split at random between HTTPS and plain HTTP.
/// Port 0 always gets a fresh port.
pub fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Which io driver the workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring (SINGLE_ISSUER + DEFER_TASKRUN), epoll where the kernel refuses it.
    Auto,
    /// io_uring only; refusing to start without it.
    IoUring,
    /// The legacy epoll driver.
    Epoll,
}

impl Driver {
    /// As the config file and `--driver` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Compiled `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Listen address (HTTPS when `tls` is set).
    pub listen: SocketAddr,
    /// A plain-HTTP listener beside the TLS one.
    pub plain_listen: Option<SocketAddr>,
    /// TLS termination on `listen`.
    pub tls: Option<ServerTls>,
    /// Worker threads.
    pub workers: usize,
    /// Driver choice.
    pub driver: Driver,
    /// Pin workers to CPUs.
    pub pin_workers: bool,
    /// io_uring queue depth.
    pub uring_entries: u32,
    /// Request body bound.
    pub max_body_bytes: usize,
    /// Accept `GET /v1/responses` upgraded to a WebSocket (else 426).
    pub responses_websocket: bool,
    /// Slowloris guard.
    pub header_read_timeout: Duration,
    /// Body stall guard.
    pub body_read_timeout: Duration,
    /// Idle keep-alive time.
    pub keepalive_timeout: Duration,
    /// Bound on one write to a client.
    pub write_timeout: Duration,
    /// Bound on receiving a whole request body.
    pub body_timeout: Duration,
    /// Per-worker budget for answers held whole.
    pub max_buffered_bytes: usize,
    /// Share the port with a process already listening on it.
    pub reuse_port: bool,
    /// How long a drain lets responses in flight run.
    pub drain_timeout: Duration,
    /// Where the pid is written (`ringway reload` reads it).
    pub pid_file: Option<PathBuf>,
    /// The gateway's response header names under `header_prefix`.
    pub headers: crate::headers::GatewayHeaders,
    /// This gateway's hop in custody paths: `node`, then `-JURISDICTION` when configured.
    pub hop: String,
    /// The tier a request runs in when neither it nor its key names one (index into
    /// `Config::tiers`).
    pub default_tier: Option<usize>,
}

/// Compiled `[server.tls]`. Built at load, so a reload that re-runs `Config::load` re-reads
/// the certificate; a connection takes this from the snapshot current when it is accepted.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// rustls server config: the chain and key, TLS 1.3 + 1.2, ALPN `http/1.1`.
    pub config: Arc<rustls::ServerConfig>,
    /// Accept → handshake finished; a slower client is closed.
    pub handshake_timeout: Duration,
    /// The certificate file, resolved (for the start-up log).
    pub cert: PathBuf,
}

impl Compiler<'_> {
    /// `[server]`: `tiers` are known, so `default_tier` can name one.
    pub(super) fn server(
        &self,
        s: &raw::RawServer,
        tiers: &[crate::routing::Tier],
    ) -> Result<ServerConfig, ConfigError> {
        let headers = match &s.header_prefix {
            None => crate::headers::GatewayHeaders::default(),
            Some(p) => {
                crate::headers::is_header_prefix(p.get_ref()).map_err(|why| {
                    self.err(
                        p.span(),
                        "server.header_prefix",
                        format!("{:?} {why}", p.get_ref()),
                    )
                })?;
                crate::headers::GatewayHeaders::new(p.get_ref())
            }
        };
        let node = self
            .label(s.node.as_ref(), "server.node")?
            .unwrap_or_else(|| DEFAULT_NODE.to_owned());
        let jurisdiction = self.jurisdiction(s.jurisdiction.as_ref(), "server.jurisdiction")?;
        let hop = crate::routing::tier::hop(&node, jurisdiction.as_deref());
        let default_tier = s
            .default_tier
            .as_ref()
            .map(|t| self.tier_ref(t, tiers, "server.default_tier"))
            .transpose()?;
        let listen = match &s.listen {
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| self.err(0..0, "server.listen", "bad default"))?,
            Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|_| {
                self.err(
                    l.span(),
                    "server.listen",
                    format!("{:?} is not IP:PORT", l.get_ref()),
                )
            })?,
        };
        let workers = match &s.workers {
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(w) if *w.get_ref() == 0 || *w.get_ref() > 1024 => {
                return Err(self.err(w.span(), "server.workers", "must be between 1 and 1024"));
            }
            Some(w) => *w.get_ref(),
        };
        let driver = match s.driver.as_ref().map(|d| (d.get_ref().as_str(), d.span())) {
            None | Some(("auto", _)) => Driver::Auto,
            Some(("io_uring", _)) => Driver::IoUring,
            Some(("epoll", _)) => Driver::Epoll,
            Some((other, span)) => {
                return Err(self.err(
                    span,
                    "server.driver",
                    format!(
                        "unknown driver {other:?}: expected \"auto\", \"io_uring\" or \"epoll\""
                    ),
                ))
            }
        };
        let max_body_bytes = match &s.max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(m) if *m.get_ref() == 0 => {
                return Err(self.err(m.span(), "server.max_body_bytes", "must be positive"));
            }
            Some(m) => *m.get_ref(),
        };
        let max_buffered_bytes = match &s.max_buffered_bytes {
            None => DEFAULT_MAX_BUFFERED_BYTES,
            Some(m) if *m.get_ref() == 0 => {
                return Err(self.err(m.span(), "server.max_buffered_bytes", "must be positive"));
            }
            Some(m) => *m.get_ref(),
        };
        let tls = s.tls.as_ref().map(|t| self.server_tls(t)).transpose()?;
        let plain_listen = match &s.plain_listen {
            None => None,
            Some(l) => {
                let addr = l.get_ref().parse::<SocketAddr>().map_err(|_| {
                    self.err(
                        l.span(),
                        "server.plain_listen",
                        format!("{:?} is not IP:PORT", l.get_ref()),
                    )
                })?;
                if tls.is_none() {
                    return Err(self.err(
                        l.span(),
                        "server.plain_listen",
                        "needs [server.tls]: without it server.listen is already plain HTTP",
                    ));
                }
                if same_port(addr, listen) {
                    return Err(self.err(
                        l.span(),
                        "server.plain_listen",
                        format!("{addr} is server.listen's port too; give each listener its own"),
                    ));
                }
                Some(addr)
            }
        };
        let ms = Duration::from_millis;
        Ok(ServerConfig {
            listen,
            plain_listen,
            tls,
            workers,
            driver,
            pin_workers: s.pin_workers.unwrap_or(true),
            uring_entries: s.uring_entries.unwrap_or(DEFAULT_URING_ENTRIES),
            max_body_bytes,
            responses_websocket: s.responses_websocket.unwrap_or(true),
            header_read_timeout: s
                .header_read_timeout_ms
                .map_or(DEFAULT_HEADER_READ_TIMEOUT, ms),
            body_read_timeout: s.body_read_timeout_ms.map_or(DEFAULT_BODY_READ_TIMEOUT, ms),
            keepalive_timeout: s.keepalive_timeout_ms.map_or(DEFAULT_KEEPALIVE_TIMEOUT, ms),
            write_timeout: s.write_timeout_ms.map_or(DEFAULT_WRITE_TIMEOUT, ms),
            body_timeout: s.body_timeout_ms.map_or(DEFAULT_BODY_TIMEOUT, ms),
            max_buffered_bytes,
            reuse_port: s.reuse_port.unwrap_or(false),
            drain_timeout: s.drain_timeout_ms.map_or(DEFAULT_DRAIN_TIMEOUT, ms),
            pid_file: match &s.pid_file {
                None => None,
                Some(p) if p.get_ref().is_empty() || p.get_ref().contains('\0') => {
                    return Err(self.err(p.span(), "server.pid_file", "not a usable path"));
                }
                Some(p) => Some(PathBuf::from(p.get_ref())),
            },
            headers,
            hop,
            default_tier,
        })
    }

    /// `[server.tls]`: the certificate and key are read and checked now; relative paths are
    /// relative to the config file's directory (the service's working directory is anyone's
    /// guess).
    fn server_tls(&self, t: &raw::RawServerTls) -> Result<ServerTls, ConfigError> {
        let dir = std::path::Path::new(self.file)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        let resolve = |p: &Spanned<String>| dir.join(p.get_ref());
        let (cert, key) = (resolve(&t.cert), resolve(&t.key));
        let config = tls::server_config(&cert, &key).map_err(|(which, why)| match which {
            tls::TlsFile::Cert => self.err(t.cert.span(), "server.tls.cert", why),
            tls::TlsFile::Key => self.err(t.key.span(), "server.tls.key", why),
        })?;
        Ok(ServerTls {
            config,
            handshake_timeout: t
                .handshake_timeout_ms
                .map_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT, Duration::from_millis),
            cert,
        })
    }
}
