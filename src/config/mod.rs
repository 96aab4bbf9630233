//! Configuration: load the TOML file, validate it with key-path errors, and compile it into the
//! immutable snapshot the workers read (`Config`). A bad file never half-starts the gateway.

mod raw;
mod tls;
mod toml_error;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::format::{check_model_id, Format};
use crate::translate::ThinkingStyle;
use raw::{RawConfig, RawTarget};
use toml::Spanned;

pub use crate::auth::{GatewayKey, KeyLimits};
pub use crate::routing::Capabilities;

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
/// Default time responses in flight may run once a drain (SIGTERM) starts.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default io_uring queue depth per worker.
pub const DEFAULT_URING_ENTRIES: u32 = 1024;
/// `anthropic-version` sent when the client sent none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` for Anthropic when an OpenAI client omitted it.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Longest provider name. Names go into the `x-ringway-provider` header, logs, metrics
/// labels and `provider/model` ids; real ones are short words.
pub const MAX_PROVIDER_NAME_BYTES: usize = 64;

/// Is `name` a provider name: 1 to [`MAX_PROVIDER_NAME_BYTES`] of `A-Z a-z 0-9 . _ -`? The
/// set leaves out `/` (it splits `provider/model`), `@` (the direct-address prefix), and
/// anything that could break a header or log line.
pub fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROVIDER_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

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

/// Where a provider lives and how to talk to it.
#[derive(Debug)]
pub struct Provider {
    /// Config name.
    pub name: String,
    /// Its wire format.
    pub kind: Format,
    /// `https`?
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Host name or IP for connect and SNI.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Translation options for requests to this provider (filled in once the config is
    /// compiled).
    pub translate: crate::translate::Options,
    /// Idle connections are pooled under this key: the name and the address, so a reload that
    /// points a name elsewhere never hands out a connection to the old address.
    pub pool_key: String,
    /// Path prefix from `base_url`, without a trailing slash.
    pub base_path: String,
    /// The credential, or the name of the unset environment variable that should hold it.
    pub api_key: ApiKey,
    /// Finds that credential (and its fragments) in what the provider sends back; None
    /// without a key (or one too short to tell from text).
    pub scrubber: Option<Arc<crate::scrub::Scrubber>>,
    /// Default `anthropic-version`.
    pub anthropic_version: String,
    /// Connect budget.
    pub connect_timeout: Duration,
    /// Response head budget (`first_byte_timeout_ms`).
    pub first_byte_timeout: Duration,
    /// Response head budget of a streamed request (`stream_first_byte_timeout_ms`).
    pub stream_first_byte_timeout: Duration,
    /// Body chunk silence budget.
    pub idle_timeout: Duration,
    /// Output cap field for translated requests to an openai-kind provider.
    pub max_tokens_field: crate::translate::MaxTokensField,
    /// Client headers forwarded besides the default set (`forward_headers`).
    pub forward_headers: Vec<crate::headers::HeaderPattern>,
    /// Client headers never forwarded to this provider (`drop_headers`).
    pub drop_headers: Vec<crate::headers::HeaderPattern>,
    /// Thinking form for `reasoning_effort` in translated requests (anthropic kind).
    pub thinking_style: ThinkingStyle,
    /// Responses requests go to it unchanged (`responses = "native"`).
    pub native_responses: bool,
    /// Where it runs (region, jurisdiction, custody label) and its custody path; targets
    /// without overrides share it.
    pub place: Arc<crate::routing::Place>,
}

/// A provider credential as resolved at start.
#[derive(Debug, Clone)]
pub enum ApiKey {
    /// The provider needs none.
    None,
    /// Resolved from the environment, kept as the ready header (`Authorization: Bearer …` or
    /// `x-api-key: …`) so no request formats it again.
    Value(http::HeaderName, http::HeaderValue),
    /// `api_key_env` names a variable that is not set.
    Missing(String),
}

impl Provider {
    /// What this provider is sent for a `client` request: Responses unchanged when it has
    /// native Responses, else its own kind.
    pub fn speaks(&self, client: Format) -> Format {
        if client == Format::Responses && self.native_responses {
            Format::Responses
        } else {
            self.kind
        }
    }

    /// Full request path for `suffix` (`/chat/completions`, `/v1/messages`, …).
    pub fn path_for(&self, format_path: &str) -> String {
        let mut p = String::with_capacity(self.base_path.len() + format_path.len());
        p.push_str(&self.base_path);
        p.push_str(format_path);
        p
    }
}

/// Compiled `[translate]`.
#[derive(Clone, Debug)]
pub struct TranslateConfig {
    /// Anthropic `max_tokens` when an OpenAI client gave none.
    pub default_max_tokens: u32,
    /// Effort ⇄ budget table.
    pub effort_budgets: crate::translate::EffortTable,
    /// Seals reasoning handed to Responses clients (`[responses] seal_key_env`, or drawn at
    /// start).
    pub seal: crate::translate::seal::SealKey,
    /// `seal_key_env` names a variable that is not set (the key was drawn instead).
    pub seal_key_missing: Option<String>,
    /// The key was drawn at start (no `seal_key_env`, or its variable unset): a reload keeps it.
    pub seal_key_drawn: bool,
}

/// The immutable snapshot every worker reads.
#[derive(Debug)]
pub struct Config {
    /// Server settings.
    pub server: ServerConfig,
    /// Providers, indexed by `Target::provider`.
    pub providers: Vec<Provider>,
    /// The route table.
    pub routing: crate::routing::Table,
    /// Gateway keys; empty = no authentication.
    pub keys: Vec<GatewayKey>,
    /// Translation defaults.
    pub translate: TranslateConfig,
    /// Upstream pool settings.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per provider per worker.
    pub pool_max_idle: usize,
    /// Where the access log goes; None: it is off.
    pub access_log: Option<crate::access_log::Destination>,
    /// Residency tiers, in file order (keys and `server.default_tier` index them).
    pub tiers: Vec<crate::routing::Tier>,
    /// The custody store; None: it is off.
    pub custody: Option<crate::custody::Settings>,
    /// The stored-responses store (`[responses.store]`); None: it is off.
    pub responses_store: Option<crate::responses_store::Settings>,
    /// PII substitution: detectors and where it is on.
    pub pii: PiiConfig,
}

/// `[pii]`, compiled: the detectors are built once and shared by every worker.
#[derive(Debug, Clone)]
pub struct PiiConfig {
    /// The detectors (built-in kinds, operator regexes, dictionary terms): compiled at load
    /// when a key, a route or `enabled` turns substitution on, else on a request's first ask.
    pub detector: std::sync::Arc<crate::pii::LazyDetector>,
    /// On for every request.
    pub all: bool,
    /// Route names whose requests are always substituted (each route's own name, whichever
    /// alias the config listed).
    pub routes: Vec<String>,
    /// `provider/model` of every target of those routes: addressing one directly is held
    /// to the same policy (else `provider/model` would be a way around it).
    pub targets: Vec<String>,
    /// The stand-in secret; each key's HMAC key is derived from it and the key's name.
    pub secret: Vec<u8>,
    /// The secret was drawn at start (no `secret_env`): a reload keeps it, so stand-ins stay
    /// the same across turns of a conversation.
    pub secret_drawn: bool,
}

impl PiiConfig {
    /// Is substitution on for this key and resolved model, before the request's own flag?
    /// A route is matched by its own name whatever name or alias the client sent.
    pub fn on_for(&self, key: Option<&GatewayKey>, to: Option<&Resolved<'_>>) -> bool {
        if self.all || key.is_some_and(|k| k.pii) {
            return true;
        }
        match to {
            Some(Resolved::Route(r) | Resolved::Within(r, _)) => self.routes.contains(&r.model),
            Some(Resolved::Direct(t, _)) => self.targets.contains(&t.key),
            None => false,
        }
    }

    /// The per-key secret: stand-ins are deterministic per key, and differ between keys.
    pub fn key_secret(&self, key: Option<&str>) -> Vec<u8> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        ring::hmac::sign(&k, key.unwrap_or_default().as_bytes())
            .as_ref()
            .to_vec()
    }
}

/// Shortest stand-in secret accepted from the environment, in bytes.
pub const MIN_PII_SECRET_BYTES: usize = 16;

/// Largest dictionary file read, in bytes (the terms are compiled into every worker's view).
pub const MAX_DICTIONARY_BYTES: u64 = 16 * 1024 * 1024;

pub use crate::routing::{Resolved, Route, Target};

impl Config {
    /// Route `model`: a route name first, then `PROVIDER/MODEL` or `@PROVIDER/MODEL`.
    pub fn resolve(&self, model: &str) -> Option<Resolved<'_>> {
        self.routing.resolve(model)
    }

    /// The tier named `name`, by index.
    pub fn tier(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// Translation options for requests to `provider`.
    pub fn translate_options(&self, provider: &Provider) -> crate::translate::Options {
        crate::translate::Options {
            default_max_tokens: self.translate.default_max_tokens,
            effort_budgets: self.translate.effort_budgets.clone(),
            openai_max_tokens_field: provider.max_tokens_field,
            thinking_style: provider.thinking_style,
            seal: Some(self.translate.seal.clone()),
            provider: provider.name.clone(),
        }
    }

    /// A provider by index (indexes come from this config, so absent means a bug: None).
    pub fn provider(&self, i: usize) -> Option<&Provider> {
        self.providers.get(i)
    }

    /// Load and compile a config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::from_toml(&text, &file)
    }

    /// Compile TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| toml_error::explain(text, file, &e))?;
        Compiler { text, file }.compile(raw)
    }

    /// The embedded default: loopback only, `openai/*` and `anthropic/*` to the real APIs with
    /// keys from the environment, and the demo routes to the built-in mock at `mock`.
    pub fn embedded_default(mock: SocketAddr) -> Result<Config, ConfigError> {
        Config::from_toml(&embedded_default_toml(mock), "<embedded default>")
    }

    /// The routing table as text, for `ringway check` and the start-up log.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "listen {}{}{} | workers {} | driver {} | keys {}",
            if self.server.tls.is_some() {
                "https://"
            } else {
                "http://"
            },
            self.server.listen,
            self.server
                .plain_listen
                .map_or(String::new(), |a| format!(" + http://{a}")),
            self.server.workers,
            self.server.driver.as_str(),
            self.keys.len()
        );
        let _ = match &self.access_log {
            None => writeln!(s, "access log off"),
            Some(crate::access_log::Destination::Stderr) => writeln!(s, "access log to stderr"),
            Some(crate::access_log::Destination::File(p)) => {
                writeln!(s, "access log to {}", p.display())
            }
        };
        let _ = match &self.custody {
            None => writeln!(s, "custody store off"),
            Some(c) => writeln!(
                s,
                "custody store {} (retention {} day(s), channel {} records, read queue {})",
                c.path.display(),
                c.retention_days,
                c.channel_records,
                c.read_queue
            ),
        };
        let _ = match &self.responses_store {
            None => writeln!(s, "responses store off"),
            Some(r) => writeln!(s, "{}", r.describe()),
        };
        for p in &self.providers {
            let key = match &p.api_key {
                ApiKey::None => "no key".to_owned(),
                ApiKey::Value(..) => "key set".to_owned(),
                ApiKey::Missing(var) => format!("key MISSING (${var} unset)"),
            };
            let scheme = if p.tls.is_some() { "https" } else { "http" };
            let _ = writeln!(
                s,
                "provider {:<16} {:<9} {scheme}://{}{}  ({key})",
                p.name,
                p.kind.as_str(),
                p.authority,
                p.base_path
            );
        }
        for t in &self.tiers {
            let _ = writeln!(s, "tier     {:<16} in {}", t.name, t.jurisdictions_text());
        }
        for r in self.routing.routes() {
            let targets: Vec<String> = r
                .targets
                .iter()
                .map(|t| {
                    let p = self.provider(t.provider);
                    let name = p.map_or("?", |p| p.name.as_str());
                    // Where it runs, for an operator checking a tier: `[CA]`.
                    let at = t
                        .place
                        .jurisdiction
                        .as_deref()
                        .map_or(String::new(), |j| format!(" [{j}]"));
                    match p {
                        Some(p) if p.thinking_style != t.thinking_style => format!(
                            "{name}/{}{at} (thinking_style {})",
                            t.model,
                            t.thinking_style.as_str()
                        ),
                        _ => format!("{name}/{}{at}", t.model),
                    }
                })
                .collect();
            let _ = writeln!(s, "route    {:<16} -> {}", r.model, targets.join(", "));
            if !r.aliases.is_empty() {
                let _ = writeln!(s, "alias    {:<16} -> {}", r.aliases.join(", "), r.model);
            }
        }
        let _ = writeln!(
            s,
            "direct   PROVIDER/MODEL or @PROVIDER/MODEL for providers: {}",
            self.providers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        s
    }
}

/// The embedded default config text, with the mock's address filled in.
pub fn embedded_default_toml(mock: SocketAddr) -> String {
    format!(
        r#"[server]
listen = "{DEFAULT_LISTEN}"

[[provider]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[provider]]
name = "anthropic"
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"

[[provider]]
name = "mock-openai"
kind = "openai"
base_url = "http://{mock}/v1"

[[provider]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://{mock}"

[[route]]
model = "demo-gpt"
targets = ["mock-openai/mock-gpt"]
capabilities = {{ vision = true, tools = true, thinking = false, context_window = 128000, max_output = 16384 }}

[[route]]
model = "demo-claude"
targets = ["mock-anthropic/mock-claude"]
capabilities = {{ vision = true, tools = true, thinking = true, context_window = 200000, max_output = 64000 }}
"#
    )
}

/// A config error: file, line, key path and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Key path such as `route[2].targets[0]`; empty for a TOML syntax error.
    pub path: String,
    /// The reason.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| memchr::memchr_iter(b'\n', b).count())
        + 1
}

struct Compiler<'t> {
    text: &'t str,
    file: &'t str,
}

impl Compiler<'_> {
    /// The reasoning seal key: from `[responses] seal_key_env` (64 hex digits), else drawn now
    /// (also when the variable is unset, as a provider's missing key is: said at start).
    fn seal_key(
        &self,
        env: Option<&toml::Spanned<String>>,
    ) -> Result<(crate::translate::seal::SealKey, Option<String>), ConfigError> {
        use crate::translate::seal::SealKey;
        let path = "responses.seal_key_env";
        let drawn = |missing: Option<String>| {
            SealKey::random()
                .map(|k| (k, missing))
                .ok_or_else(|| ConfigError {
                    file: self.file.to_owned(),
                    line: None,
                    path: path.into(),
                    message: "the system's random source failed; set a seal key".into(),
                })
        };
        let Some(var) = env else {
            return drawn(None);
        };
        let Ok(value) = std::env::var(var.get_ref()) else {
            return drawn(Some(var.get_ref().clone()));
        };
        let key = hex32(value.trim())
            .and_then(|b| SealKey::from_bytes(&b))
            .ok_or_else(|| {
                self.err(
                    var.span(),
                    path,
                    format!(
                        "environment variable {} must hold 64 hex digits (a 256-bit key)",
                        var.get_ref()
                    ),
                )
            })?;
        Ok((key, None))
    }

    fn err(
        &self,
        span: Range<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(line_of(self.text, span.start)),
            path: path.into(),
            message: message.into(),
        }
    }

    /// A key's `rpm`, `tpm` and `max_streams`: positive, and within the limiter's bounds.
    fn key_limits(&self, k: &raw::RawKey, path: &str) -> Result<KeyLimits, ConfigError> {
        use crate::limits::{MAX_PER_MINUTE, MAX_STREAMS};
        let limit = |v: &Option<Spanned<u64>>, key: &str, max: u64| match v {
            None => Ok(None),
            Some(x) if *x.get_ref() == 0 => Err(self.err(
                x.span(),
                format!("{path}.{key}"),
                "must be greater than 0 (leave it out for no limit)",
            )),
            Some(x) if *x.get_ref() > max => Err(self.err(
                x.span(),
                format!("{path}.{key}"),
                format!("{}: at most {max}", x.get_ref()),
            )),
            Some(x) => Ok(Some(*x.get_ref())),
        };
        Ok(KeyLimits {
            rpm: limit(&k.rpm, "rpm", MAX_PER_MINUTE)?,
            tpm: limit(&k.tpm, "tpm", MAX_PER_MINUTE)?,
            max_streams: limit(&k.max_streams, "max_streams", MAX_STREAMS)?,
        })
    }

    /// A route's failover policy; unset keys take the defaults in `routing`.
    fn policy(&self, r: &raw::RawRoute, path: &str) -> Result<crate::routing::Policy, ConfigError> {
        use crate::routing::{BreakerPolicy, Policy, Strategy};
        let d = Policy::default();
        let ms = Duration::from_millis;
        let strategy = match &r.strategy {
            None => d.strategy,
            Some(s) => Strategy::parse(s.get_ref()).ok_or_else(|| {
                self.err(
                    s.span(),
                    format!("{path}.strategy"),
                    format!(
                        "{:?}: expected \"ordered\", \"weighted\" or \"least_latency\"",
                        s.get_ref()
                    ),
                )
            })?,
        };
        let mut retry_on = d.retry_on.clone();
        if let Some(list) = &r.retry_on {
            retry_on.clear();
            for (j, st) in list.iter().enumerate() {
                let status = *st.get_ref();
                // A 2xx is an answer, never a reason to retry.
                if !(300..=599).contains(&status) {
                    return Err(self.err(
                        st.span(),
                        format!("{path}.retry_on[{j}]"),
                        format!("{status}: a status to retry on is 300-599"),
                    ));
                }
                retry_on.push(status);
            }
        }
        let positive =
            |v: &Option<Spanned<u64>>, key: &str| -> Result<Option<Duration>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(x) if *x.get_ref() == 0 => {
                        Err(self.err(x.span(), format!("{path}.{key}"), "must be greater than 0"))
                    }
                    Some(x) => Ok(Some(ms(*x.get_ref()))),
                }
            };
        Ok(Policy {
            strategy,
            retries: r.retries.unwrap_or(d.retries),
            retry_on,
            backoff_base: r.backoff_base_ms.map_or(d.backoff_base, ms),
            backoff_max: r.backoff_max_ms.map_or(d.backoff_max, ms),
            max_retry_after: r.max_retry_after_ms.map_or(d.max_retry_after, ms),
            request_timeout: positive(&r.request_timeout_ms, "request_timeout_ms")?
                .unwrap_or(d.request_timeout),
            first_token_timeout: positive(&r.first_token_timeout_ms, "first_token_timeout_ms")?,
            stream_first_byte_timeout: positive(
                &r.stream_first_byte_timeout_ms,
                "stream_first_byte_timeout_ms",
            )?,
            breaker: BreakerPolicy {
                failures: r.breaker_failures.unwrap_or(d.breaker.failures),
                cooldown: r.breaker_cooldown_ms.map_or(d.breaker.cooldown, ms),
            },
        })
    }

    /// `[pii]`: regexes compiled, dictionary files read (errors name the dictionary's file
    /// and line), the secret taken from the environment or drawn.
    fn pii(&self, raw: &raw::RawPii, a_key_has_it: bool) -> Result<PiiConfig, ConfigError> {
        use crate::pii::{Kind, Term};
        let mut operator = Vec::new();
        for (i, r) in raw.regexes.iter().flatten().enumerate() {
            let re = crate::pii::operator_regex(r.get_ref())
                .map_err(|e| self.err(r.span(), format!("pii.regexes[{i}]"), e.0))?;
            operator.push(re);
        }
        let dir = std::path::Path::new(self.file)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        let mut terms = Vec::new();
        let files = [
            (raw.dictionaries.as_deref(), Kind::Name, "pii.dictionaries"),
            (raw.places.as_deref(), Kind::Place, "pii.places"),
        ];
        for (list, kind, key) in files {
            for (i, f) in list.unwrap_or_default().iter().enumerate() {
                let path = dir.join(f.get_ref());
                let read = std::fs::metadata(&path).and_then(|m| {
                    if m.len() > MAX_DICTIONARY_BYTES {
                        Err(std::io::Error::other(format!(
                            "larger than {MAX_DICTIONARY_BYTES} bytes"
                        )))
                    } else {
                        std::fs::read_to_string(&path)
                    }
                });
                let text = read.map_err(|e| {
                    self.err(
                        f.span(),
                        format!("{key}[{i}]"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                for (n, line) in text.lines().enumerate() {
                    let term = line.split('#').next().unwrap_or_default().trim();
                    if term.is_empty() {
                        continue;
                    }
                    let t = Term {
                        text: term.to_owned(),
                        kind,
                    };
                    // Checked one by one so the error names the file and line.
                    crate::pii::check_term(&t.text).map_err(|e| ConfigError {
                        file: path.display().to_string(),
                        line: Some(n + 1),
                        path: format!("{key}[{i}]"),
                        message: e.0,
                    })?;
                    terms.push(t);
                }
            }
        }
        if terms.len() > crate::pii::MAX_TERMS {
            return Err(self.err(
                0..0,
                "pii",
                format!("more than {} dictionary terms", crate::pii::MAX_TERMS),
            ));
        }
        let all = raw.enabled.unwrap_or(false);
        let routes: Vec<String> = raw
            .routes
            .iter()
            .flatten()
            .map(|r| r.get_ref().clone())
            .collect();
        let detector = if all || a_key_has_it || !routes.is_empty() {
            let d = crate::pii::Detector::assemble(operator, &terms)
                .map_err(|e| self.err(0..0, "pii", e.0))?;
            crate::pii::LazyDetector::ready(d)
        } else {
            crate::pii::LazyDetector::later(operator, terms)
        };
        let secret = match &raw.secret_env {
            Some(var) => {
                let value = std::env::var(var.get_ref()).unwrap_or_default();
                if value.len() < MIN_PII_SECRET_BYTES {
                    return Err(self.err(
                        var.span(),
                        "pii.secret_env",
                        format!(
                            "environment variable {} must hold at least {MIN_PII_SECRET_BYTES} bytes",
                            var.get_ref()
                        ),
                    ));
                }
                value.into_bytes()
            }
            None => {
                let mut b = vec![0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).map_err(
                    |_| self.err(0..0, "pii.secret_env", "the system's random source failed"),
                )?;
                b
            }
        };
        Ok(PiiConfig {
            detector: std::sync::Arc::new(detector),
            all,
            routes,
            targets: Vec::new(),
            secret,
            secret_drawn: raw.secret_env.is_none(),
        })
    }

    /// `[access_log]`: on by default, to stderr.
    fn access_log(
        &self,
        raw: &raw::RawAccessLog,
    ) -> Result<Option<crate::access_log::Destination>, ConfigError> {
        use crate::access_log::Destination;
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let Some(path) = raw.path.as_ref() else {
            return Ok(Some(Destination::Stderr));
        };
        match path.get_ref().as_str() {
            "stderr" => Ok(Some(Destination::Stderr)),
            "" => Err(self.err(
                path.span(),
                "access_log.path",
                "must be \"stderr\" or a file path",
            )),
            p if p.contains('\0') => Err(self.err(
                path.span(),
                "access_log.path",
                "must not contain a NUL byte",
            )),
            p => Ok(Some(Destination::File(std::path::PathBuf::from(p)))),
        }
    }

    /// An optional label (`region`, `custody`, `node`) at `path`.
    fn label(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
    ) -> Result<Option<String>, ConfigError> {
        use crate::routing::tier::{is_label, MAX_LABEL_BYTES};
        self.checked(
            v,
            path,
            is_label,
            &format!("use 1 to {MAX_LABEL_BYTES} of A-Z a-z 0-9 . _ -"),
        )
    }

    /// An optional jurisdiction at `path`: an ISO 3166-1 alpha-2 code, uppercase.
    fn jurisdiction(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
    ) -> Result<Option<String>, ConfigError> {
        self.checked(
            v,
            path,
            crate::routing::tier::is_jurisdiction,
            "a jurisdiction is an ISO 3166-1 alpha-2 code in upper case, such as \"CA\"",
        )
    }

    /// An optional string at `path` that `valid` accepts; otherwise an error quoting it, then
    /// `rule`.
    fn checked(
        &self,
        v: Option<&Spanned<String>>,
        path: &str,
        valid: fn(&str) -> bool,
        rule: &str,
    ) -> Result<Option<String>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) if valid(v.get_ref()) => Ok(Some(v.get_ref().clone())),
            Some(v) => Err(self.err(v.span(), path, format!("{:?}: {rule}", v.get_ref()))),
        }
    }

    /// `[[tier]]`: names unique labels, each with 1 or more distinct jurisdictions.
    fn tiers(
        &self,
        raw: &[Spanned<raw::RawTier>],
    ) -> Result<Vec<crate::routing::Tier>, ConfigError> {
        use crate::routing::tier::{MAX_TIERS, MAX_TIER_JURISDICTIONS};
        if raw.len() > MAX_TIERS {
            let span = raw.get(MAX_TIERS).map_or(0..0, Spanned::span);
            return Err(self.err(span, "tier", format!("at most {MAX_TIERS} tiers")));
        }
        let mut tiers: Vec<crate::routing::Tier> = Vec::with_capacity(raw.len());
        for (i, st) in raw.iter().enumerate() {
            let t = st.get_ref();
            let path = format!("tier[{i}]");
            let name = self
                .label(Some(&t.name), &format!("{path}.name"))?
                .unwrap_or_default();
            if tiers.iter().any(|e| e.name == name) {
                return Err(self.err(
                    t.name.span(),
                    format!("{path}.name"),
                    format!("duplicate tier {name:?}"),
                ));
            }
            let list = t.jurisdictions.get_ref();
            if list.is_empty() || list.len() > MAX_TIER_JURISDICTIONS {
                return Err(self.err(
                    t.jurisdictions.span(),
                    format!("{path}.jurisdictions"),
                    format!("a tier lists 1 to {MAX_TIER_JURISDICTIONS} jurisdictions"),
                ));
            }
            let mut jurisdictions: Vec<String> = Vec::with_capacity(list.len());
            for (j, code) in list.iter().enumerate() {
                let jpath = format!("{path}.jurisdictions[{j}]");
                let code = self.jurisdiction(Some(code), &jpath)?.unwrap_or_default();
                if !jurisdictions.contains(&code) {
                    jurisdictions.push(code);
                }
            }
            tiers.push(crate::routing::Tier {
                name,
                jurisdictions,
            });
        }
        Ok(tiers)
    }

    /// A tier name at `path` that must be one of `tiers`: its index.
    fn tier_ref(
        &self,
        v: &Spanned<String>,
        tiers: &[crate::routing::Tier],
        path: &str,
    ) -> Result<usize, ConfigError> {
        tiers
            .iter()
            .position(|t| t.name == *v.get_ref())
            .ok_or_else(|| {
                self.err(
                    v.span(),
                    path,
                    format!("unknown tier {:?}: no [[tier]] has that name", v.get_ref()),
                )
            })
    }

    /// `[custody]`: off unless a path is given (a database file is the operator's choice of
    /// place); `enabled = true` without a path is refused.
    fn custody(
        &self,
        raw: &raw::RawCustody,
    ) -> Result<Option<crate::custody::Settings>, ConfigError> {
        use crate::custody::{
            Settings, CHANNEL_RECORDS_RANGE, DEFAULT_CHANNEL_RECORDS, DEFAULT_READ_QUEUE,
            DEFAULT_RETENTION_DAYS, READ_QUEUE_RANGE,
        };
        let bounded = |value: &Option<Spanned<usize>>,
                       range: &std::ops::RangeInclusive<usize>,
                       default: usize,
                       path: &str| match value {
            Some(n) if !range.contains(n.get_ref()) => Err(self.err(
                n.span(),
                path,
                format!("must be {} to {}", range.start(), range.end()),
            )),
            Some(n) => Ok(*n.get_ref()),
            None => Ok(default),
        };
        let channel_records = bounded(
            &raw.channel_records,
            &CHANNEL_RECORDS_RANGE,
            DEFAULT_CHANNEL_RECORDS,
            "custody.channel_records",
        )?;
        let read_queue = bounded(
            &raw.read_queue,
            &READ_QUEUE_RANGE,
            DEFAULT_READ_QUEUE,
            "custody.read_queue",
        )?;
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let Some(path) = raw.path.as_ref() else {
            if raw.enabled == Some(true) {
                return Err(self.err(
                    0..0,
                    "custody.path",
                    "is needed when custody is enabled (the SQLite file)",
                ));
            }
            return Ok(None);
        };
        let p = path.get_ref();
        if p.is_empty() || p.contains('\0') {
            return Err(self.err(
                path.span(),
                "custody.path",
                "must be a file path (not empty, no NUL byte)",
            ));
        }
        Ok(Some(Settings {
            path: std::path::PathBuf::from(p),
            retention_days: raw.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
            channel_records,
            read_queue,
        }))
    }

    fn compile(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        self.positive(&raw)?;
        let tiers = self.tiers(&raw.tier)?;
        let server = self.server(&raw.server, &tiers)?;
        let up = &raw.upstream;
        let ms = Duration::from_millis;
        let connect = up.connect_timeout_ms.map_or(DEFAULT_CONNECT_TIMEOUT, ms);
        let first_byte = up
            .first_byte_timeout_ms
            .map_or(DEFAULT_FIRST_BYTE_TIMEOUT, ms);
        let stream_first_byte = up.stream_first_byte_timeout_ms.map(ms);
        let idle = up.idle_timeout_ms.map_or(DEFAULT_IDLE_TIMEOUT, ms);

        let mut providers = Vec::with_capacity(raw.provider.len());
        let mut provider_index = HashMap::new();
        for (i, sp) in raw.provider.iter().enumerate() {
            let p = sp.get_ref();
            let path = format!("provider[{i}]");
            let name = p.name.get_ref().clone();
            if !is_provider_name(&name) {
                return Err(self.err(
                    p.name.span(),
                    format!("{path}.name"),
                    format!(
                        "invalid provider name {name:?}: use 1 to {MAX_PROVIDER_NAME_BYTES} of A-Z a-z 0-9 . _ -"
                    ),
                ));
            }
            if provider_index.insert(name.clone(), i).is_some() {
                return Err(self.err(
                    p.name.span(),
                    format!("{path}.name"),
                    format!("duplicate provider name {name:?}"),
                ));
            }
            let kind = match p.kind.get_ref().as_str() {
                "openai" => Format::OpenAi,
                "anthropic" => Format::Anthropic,
                other => {
                    return Err(self.err(
                        p.kind.span(),
                        format!("{path}.kind"),
                        format!(
                            "unknown provider kind {other:?}: expected \"openai\" or \"anthropic\""
                        ),
                    ))
                }
            };
            let url = self.base_url(&p.base_url, &format!("{path}.base_url"))?;
            let tls = if url.tls {
                let ca = p.ca_file.as_ref().map(|c| PathBuf::from(c.get_ref()));
                let cfg = tls::client_config(ca.as_deref()).map_err(|e| {
                    let span = p.ca_file.as_ref().map_or(sp.span(), Spanned::span);
                    self.err(span, format!("{path}.ca_file"), e)
                })?;
                Some(cfg)
            } else {
                if let Some(ca) = &p.ca_file {
                    return Err(self.err(
                        ca.span(),
                        format!("{path}.ca_file"),
                        "ca_file needs an https base_url",
                    ));
                }
                None
            };
            let max_tokens_field = match p.max_tokens_field.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
                None | Some(("max_completion_tokens", _)) => crate::translate::MaxTokensField::MaxCompletionTokens,
                Some(("max_tokens", _)) => crate::translate::MaxTokensField::MaxTokens,
                Some((other, span)) => {
                    return Err(self.err(
                        span,
                        format!("{path}.max_tokens_field"),
                        format!("unknown field {other:?}: expected \"max_completion_tokens\" or \"max_tokens\""),
                    ))
                }
            };
            let forward_headers = self.header_patterns(
                p.forward_headers.as_deref(),
                &format!("{path}.forward_headers"),
            )?;
            let drop_headers =
                self.header_patterns(p.drop_headers.as_deref(), &format!("{path}.drop_headers"))?;
            let thinking_style = self.thinking_style(p.thinking_style.as_ref(), kind, &path)?;
            let native_responses = match p.responses.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                None => kind == Format::OpenAi && url.host == "api.openai.com",
                Some(("chat", _)) => false,
                Some(("native", span)) if kind != Format::OpenAi => {
                    return Err(self.err(
                        span,
                        format!("{path}.responses"),
                        "\"native\" needs an openai-kind provider (an anthropic-kind one has no Responses API)",
                    ))
                }
                Some(("native", _)) => true,
                Some((other, span)) => {
                    return Err(self.err(
                        span,
                        format!("{path}.responses"),
                        format!("unknown value {other:?}: expected \"native\" or \"chat\""),
                    ))
                }
            };
            let mut scrubber = None;
            let api_key = match &p.api_key_env {
                None => ApiKey::None,
                Some(var) => match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => {
                        // It goes out in a header on every request: refuse it now, not per request.
                        if http::HeaderValue::from_str(&v).is_err() || v.trim() != v {
                            return Err(self.err(
                                var.span(),
                                format!("{path}.api_key_env"),
                                format!(
                                    "environment variable {} holds characters not allowed in a header (whitespace or control characters)",
                                    var.get_ref()
                                ),
                            ));
                        }
                        scrubber = crate::scrub::Scrubber::new(v.as_bytes())
                            .map_err(|e| self.err(var.span(), format!("{path}.api_key_env"), e))?
                            .map(Arc::new);
                        let (name, value) = match kind {
                            Format::Anthropic => (http::HeaderName::from_static("x-api-key"), v),
                            _ => (http::header::AUTHORIZATION, format!("Bearer {v}")),
                        };
                        let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
                            self.err(
                                var.span(),
                                format!("{path}.api_key_env"),
                                "not a valid header value",
                            )
                        })?;
                        value.set_sensitive(true);
                        ApiKey::Value(name, value)
                    }
                    _ => ApiKey::Missing(var.get_ref().clone()),
                },
            };
            // Sent as a header on every Anthropic request: refuse a bad value now, not per request.
            let anthropic_version =
                match &p.anthropic_version {
                    None => DEFAULT_ANTHROPIC_VERSION.to_owned(),
                    Some(v)
                        if !v.get_ref().is_empty()
                            && v.get_ref().trim() == v.get_ref()
                            && crate::http1::is_valid_field_value(v.get_ref().as_bytes()) =>
                    {
                        v.get_ref().clone()
                    }
                    Some(v) => return Err(self.err(
                        v.span(),
                        format!("{path}.anthropic_version"),
                        "empty, or holds characters not allowed in a header (control characters, surrounding whitespace)",
                    )),
                };
            let credential = match api_key {
                ApiKey::None => crate::routing::CredentialSource::None,
                ApiKey::Value(..) | ApiKey::Missing(_) => crate::routing::CredentialSource::Gateway,
            };
            let place = Arc::new(crate::routing::Place::new(
                &server.hop,
                &name,
                self.label(p.region.as_ref(), &format!("{path}.region"))?,
                self.jurisdiction(p.jurisdiction.as_ref(), &format!("{path}.jurisdiction"))?,
                self.label(p.custody.as_ref(), &format!("{path}.custody"))?,
                credential,
            ));
            // The CA file too: a reload that changes it must not reuse connections verified
            // against the old roots.
            let pool_key = format!(
                "{name} {}://{}:{}{}",
                if tls.is_some() { "https" } else { "http" },
                url.host,
                url.port,
                p.ca_file
                    .as_ref()
                    .map_or(String::new(), |c| format!(" ca={}", c.get_ref()))
            );
            let first_byte_timeout = p.first_byte_timeout_ms.map_or(first_byte, ms);
            // Unset, a stream's head wait is the default, or the provider's whole-answer wait
            // when that is shorter (an operator who shortened it meant streams too).
            let stream_first_byte_timeout = p
                .stream_first_byte_timeout_ms
                .map(ms)
                .or(stream_first_byte)
                .unwrap_or(DEFAULT_STREAM_FIRST_BYTE_TIMEOUT.min(first_byte_timeout));
            providers.push(Provider {
                name,
                pool_key,
                kind,
                tls,
                host: url.host,
                port: url.port,
                authority: url.authority,
                base_path: url.path,
                api_key,
                scrubber,
                anthropic_version,
                connect_timeout: p.connect_timeout_ms.map_or(connect, ms),
                first_byte_timeout,
                stream_first_byte_timeout,
                idle_timeout: p.idle_timeout_ms.map_or(idle, ms),
                max_tokens_field,
                forward_headers,
                drop_headers,
                thinking_style: thinking_style.unwrap_or_default(),
                native_responses,
                translate: crate::translate::Options::default(),
                place,
            });
        }

        let mut routes = Vec::with_capacity(raw.route.len());
        let mut route_index = HashMap::new();
        for (i, sr) in raw.route.iter().enumerate() {
            let r = sr.get_ref();
            let path = format!("route[{i}]");
            let model = r.model.get_ref().clone();
            if model.is_empty() {
                return Err(self.err(r.model.span(), format!("{path}.model"), "empty model name"));
            }
            // Clients send this name, and the same bound applies to what they send.
            if let Err(p) = check_model_id(&model) {
                return Err(self.err(
                    r.model.span(),
                    format!("{path}.model"),
                    format!("model name {model:?} {p}"),
                ));
            }
            if route_index.insert(model.clone(), i).is_some() {
                return Err(self.err(
                    r.model.span(),
                    format!("{path}.model"),
                    format!("duplicate route {model:?}"),
                ));
            }
            let mut aliases = Vec::new();
            for (j, a) in r.aliases.iter().flatten().enumerate() {
                let apath = format!("{path}.aliases[{j}]");
                let alias = a.get_ref();
                if alias.is_empty() {
                    return Err(self.err(a.span(), apath, "empty model name"));
                }
                if let Err(p) = check_model_id(alias) {
                    return Err(self.err(a.span(), apath, format!("model name {alias:?} {p}")));
                }
                // One name, one route: a name claimed twice would route by file order.
                if route_index.insert(alias.clone(), i).is_some() {
                    return Err(self.err(
                        a.span(),
                        apath,
                        format!("{alias:?} already names a route"),
                    ));
                }
                aliases.push(alias.clone());
            }
            if r.targets.is_empty() {
                return Err(self.err(
                    sr.span(),
                    format!("{path}.targets"),
                    "a route needs at least one target",
                ));
            }
            let mut targets = Vec::with_capacity(r.targets.len());
            for (j, st) in r.targets.iter().enumerate() {
                let mut tpath = format!("{path}.targets[{j}]");
                let (t, style, weight, table) = match st.get_ref() {
                    RawTarget::Text(text) => {
                        (Spanned::new(st.span(), text.clone()), None, None, None)
                    }
                    RawTarget::Table(t) => {
                        tpath.push_str(".target");
                        (
                            t.target.clone(),
                            t.thinking_style.as_ref(),
                            t.weight,
                            Some(t),
                        )
                    }
                };
                let text = t.get_ref();
                let Some((pname, tmodel)) = text.split_once('/') else {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} must read \"provider/model\""),
                    ));
                };
                let Some(&provider) = provider_index.get(pname) else {
                    return Err(self.err(t.span(), tpath, format!("unknown provider {pname:?}")));
                };
                if tmodel.is_empty() {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} names no model"),
                    ));
                }
                // Sent upstream and echoed in `x-ringway-model` on every routed response.
                if let Err(p) = check_model_id(tmodel) {
                    return Err(self.err(t.span(), tpath, format!("target model {tmodel:?} {p}")));
                }
                let Some(p) = providers.get(provider) else {
                    return Err(self.err(t.span(), tpath, format!("unknown provider {pname:?}")));
                };
                let style_path = format!("{path}.targets[{j}]");
                let thinking_style = self
                    .thinking_style(style, p.kind, &style_path)?
                    .unwrap_or(p.thinking_style);
                // The same target twice would be asked twice by one request, though it may
                // have acted on it the first time.
                if targets
                    .iter()
                    .any(|t: &Target| t.provider == provider && t.model == tmodel)
                {
                    return Err(self.err(
                        t.span(),
                        tpath,
                        format!("target {text:?} is listed twice"),
                    ));
                }
                let place = match table {
                    Some(tt)
                        if tt.region.is_some()
                            || tt.jurisdiction.is_some()
                            || tt.custody.is_some() =>
                    {
                        // An override replaces that one setting; the rest stay the provider's.
                        let base = &p.place;
                        let region =
                            self.label(tt.region.as_ref(), &format!("{style_path}.region"))?;
                        let jurisdiction = self.jurisdiction(
                            tt.jurisdiction.as_ref(),
                            &format!("{style_path}.jurisdiction"),
                        )?;
                        let custody =
                            self.label(tt.custody.as_ref(), &format!("{style_path}.custody"))?;
                        Arc::new(crate::routing::Place::new(
                            &server.hop,
                            pname,
                            region.or_else(|| base.region.clone()),
                            jurisdiction.or_else(|| base.jurisdiction.clone()),
                            custody.or_else(|| base.custody.clone()),
                            base.credential,
                        ))
                    }
                    _ => p.place.clone(),
                };
                targets.push(Target {
                    provider,
                    model: tmodel.to_owned(),
                    key: format!("{pname}/{tmodel}"),
                    label: format!("{pname}/{tmodel}"),
                    direct: false,
                    thinking_style,
                    weight: weight.unwrap_or(1),
                    place,
                });
            }
            let c = &r.capabilities;
            routes.push(Route {
                model,
                aliases,
                targets,
                capabilities: Capabilities {
                    vision: c.vision,
                    tools: c.tools,
                    thinking: c.thinking,
                    context_window: c.context_window,
                    max_output: c.max_output,
                },
                policy: self.policy(r, &path)?,
                store_responses: r.store_responses.unwrap_or(true),
            });
        }

        let mut keys = Vec::with_capacity(raw.key.len());
        for (i, sk) in raw.key.iter().enumerate() {
            let k = sk.get_ref();
            let path = format!("key[{i}]");
            let sha256 = match (&k.sha256, &k.key_env) {
                (Some(h), None) => hex32(h.get_ref()).ok_or_else(|| {
                    self.err(h.span(), format!("{path}.sha256"), "expected 64 hex digits")
                })?,
                (None, Some(var)) => match std::env::var(var.get_ref()) {
                    Ok(v) if !v.is_empty() => crate::auth::sha256(v.as_bytes()),
                    _ => {
                        return Err(self.err(
                            var.span(),
                            format!("{path}.key_env"),
                            format!("environment variable {} is not set", var.get_ref()),
                        ))
                    }
                },
                _ => {
                    return Err(self.err(
                        sk.span(),
                        path,
                        "a key needs exactly one of `sha256` or `key_env`",
                    ));
                }
            };
            // Key names appear in logs, metrics labels and 403 messages: the provider-name
            // charset keeps them to one plain word.
            if !is_provider_name(k.name.get_ref()) {
                return Err(self.err(
                    k.name.span(),
                    format!("{path}.name"),
                    format!(
                        "{:?}: a key name is 1 to {MAX_PROVIDER_NAME_BYTES} of A-Z a-z 0-9 . _ -",
                        k.name.get_ref()
                    ),
                ));
            }
            if let Some(routes) = &k.routes {
                for (j, r) in routes.iter().enumerate() {
                    if crate::format::check_model_id(r.get_ref()).is_err() {
                        return Err(self.err(
                            r.span(),
                            format!("{path}.routes[{j}]"),
                            "a route pattern is a model name (optionally ending in `*`): no control characters, at most 256 bytes",
                        ));
                    }
                }
            }
            let limits = self.key_limits(k, &path)?;
            // One name is one budget: entries sharing it (a key being rotated) must agree.
            if let Some(earlier) = keys
                .iter()
                .find(|e: &&GatewayKey| e.name == *k.name.get_ref() && e.limits != limits)
            {
                return Err(self.err(
                    k.name.span(),
                    format!("{path}.name"),
                    format!(
                        "key `{}` is listed earlier with other limits; entries sharing a name share one budget",
                        earlier.name
                    ),
                ));
            }
            let key_tiers = match &k.tiers {
                None => None,
                Some(list) => {
                    let mut ids = Vec::with_capacity(list.len());
                    for (j, t) in list.iter().enumerate() {
                        ids.push(self.tier_ref(t, &tiers, &format!("{path}.tiers[{j}]"))?);
                    }
                    Some(ids)
                }
            };
            let default_tier = match &k.default_tier {
                None => None,
                Some(t) => {
                    let id = self.tier_ref(t, &tiers, &format!("{path}.default_tier"))?;
                    if key_tiers.as_ref().is_some_and(|ids| !ids.contains(&id)) {
                        return Err(self.err(
                            t.span(),
                            format!("{path}.default_tier"),
                            format!("{:?} is not in this key's `tiers`", t.get_ref()),
                        ));
                    }
                    Some(id)
                }
            };
            keys.push(GatewayKey {
                tiers: key_tiers,
                default_tier,
                name: k.name.get_ref().clone(),
                sha256,
                routes: k
                    .routes
                    .as_ref()
                    .map(|rs| rs.iter().map(|r| r.get_ref().clone()).collect()),
                admin: k.admin.unwrap_or(false),
                limits,
                pii: k.pii.unwrap_or(false),
                store_responses: k.store_responses.unwrap_or(true),
            });
        }

        let names = providers
            .iter()
            .map(|p| (p.name.clone(), p.thinking_style, p.place.clone()))
            .collect();
        let (seal, seal_key_missing) = self.seal_key(raw.responses.seal_key_env.as_ref())?;
        let seal_key_drawn = raw.responses.seal_key_env.is_none() || seal_key_missing.is_some();
        let access_log = self.access_log(&raw.access_log)?;
        let custody = self.custody(&raw.custody)?;
        let responses_store =
            crate::responses_store::settings::compile(&raw.responses.store, "responses.store")
                .map_err(|e| self.err(e.span, e.path, e.message))?;
        let pii = self.pii(&raw.pii, keys.iter().any(|k| k.pii))?;
        let mut config = Config {
            tiers,
            pii,
            access_log,
            custody,
            responses_store,
            server,
            providers,
            routing: crate::routing::Table::new(routes, names),
            keys,
            translate: {
                let d = crate::translate::EffortTable::default();
                let b = &raw.translate.reasoning_effort_budgets;
                TranslateConfig {
                    default_max_tokens: raw
                        .translate
                        .default_max_tokens
                        .unwrap_or(DEFAULT_MAX_TOKENS),
                    effort_budgets: crate::translate::EffortTable {
                        minimal: b.minimal.unwrap_or(d.minimal),
                        low: b.low.unwrap_or(d.low),
                        medium: b.medium.unwrap_or(d.medium),
                        high: b.high.unwrap_or(d.high),
                        xhigh: b.xhigh.unwrap_or(d.xhigh),
                        max: b.max.unwrap_or(d.max),
                        low_up_to: b.low_up_to.unwrap_or(d.low_up_to),
                        medium_up_to: b.medium_up_to.unwrap_or(d.medium_up_to),
                    },
                    seal,
                    seal_key_missing,
                    seal_key_drawn,
                }
            },
            pool_idle_timeout: raw
                .upstream
                .pool_idle_timeout_ms
                .map_or(DEFAULT_POOL_IDLE_TIMEOUT, ms),
            pool_max_idle: raw.upstream.pool_max_idle.unwrap_or(DEFAULT_POOL_MAX_IDLE),
        };
        // Each provider's translation options, built once: requests only borrow them.
        let options: Vec<_> = config
            .providers
            .iter()
            .map(|p| config.translate_options(p))
            .collect();
        for (p, o) in config.providers.iter_mut().zip(options) {
            p.translate = o;
        }
        self.pii_routes(&mut config, &raw.pii)?;
        Ok(config)
    }

    /// `pii.routes`, each resolved to its route (an alias names the route it belongs to), and
    /// the targets of those routes; a name that is no route is refused.
    fn pii_routes(&self, config: &mut Config, raw: &raw::RawPii) -> Result<(), ConfigError> {
        let mut routes = Vec::new();
        let mut targets = Vec::new();
        for (i, name) in raw.routes.iter().flatten().enumerate() {
            let Some(Resolved::Route(r)) = config.routing.resolve(name.get_ref()) else {
                return Err(self.err(
                    name.span(),
                    format!("pii.routes[{i}]"),
                    format!("no route is named {:?}", name.get_ref()),
                ));
            };
            routes.push(r.model.clone());
            targets.extend(r.targets.iter().map(|t| t.key.clone()));
        }
        config.pii.routes = routes;
        config.pii.targets = targets;
        Ok(())
    }

    /// A `thinking_style` key at `{path}.thinking_style`: its value, refused on an openai-kind
    /// provider (it only shapes requests to Anthropic).
    fn thinking_style(
        &self,
        raw: Option<&Spanned<String>>,
        kind: Format,
        path: &str,
    ) -> Result<Option<ThinkingStyle>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let key = format!("{path}.thinking_style");
        let Some(style) = ThinkingStyle::parse(raw.get_ref()) else {
            return Err(self.err(
                raw.span(),
                key,
                format!(
                    "unknown thinking style {:?}: expected \"auto\", \"adaptive\" or \"budget\"",
                    raw.get_ref()
                ),
            ));
        };
        if kind != Format::Anthropic {
            return Err(self.err(
                raw.span(),
                key,
                "thinking_style applies to anthropic-kind providers only",
            ));
        }
        Ok(Some(style))
    }

    /// Durations and pool sizes of 0 parse but would fail every request: refuse them here.
    fn positive(&self, raw: &RawConfig) -> Result<(), ConfigError> {
        let s = &raw.server;
        let u = &raw.upstream;
        let mut checks: Vec<(String, Option<u64>)> = vec![
            (
                "server.header_read_timeout_ms".into(),
                s.header_read_timeout_ms,
            ),
            ("server.body_read_timeout_ms".into(), s.body_read_timeout_ms),
            ("server.keepalive_timeout_ms".into(), s.keepalive_timeout_ms),
            ("server.write_timeout_ms".into(), s.write_timeout_ms),
            ("server.body_timeout_ms".into(), s.body_timeout_ms),
            (
                "server.tls.handshake_timeout_ms".into(),
                s.tls.as_ref().and_then(|t| t.handshake_timeout_ms),
            ),
            (
                "server.uring_entries".into(),
                s.uring_entries.map(u64::from),
            ),
            ("upstream.connect_timeout_ms".into(), u.connect_timeout_ms),
            (
                "upstream.first_byte_timeout_ms".into(),
                u.first_byte_timeout_ms,
            ),
            (
                "upstream.stream_first_byte_timeout_ms".into(),
                u.stream_first_byte_timeout_ms,
            ),
            ("upstream.idle_timeout_ms".into(), u.idle_timeout_ms),
            (
                "upstream.pool_idle_timeout_ms".into(),
                u.pool_idle_timeout_ms,
            ),
            (
                "translate.default_max_tokens".into(),
                raw.translate.default_max_tokens.map(u64::from),
            ),
        ];
        for (i, p) in raw.provider.iter().enumerate() {
            let p = p.get_ref();
            checks.push((
                format!("provider[{i}].connect_timeout_ms"),
                p.connect_timeout_ms,
            ));
            checks.push((
                format!("provider[{i}].first_byte_timeout_ms"),
                p.first_byte_timeout_ms,
            ));
            checks.push((
                format!("provider[{i}].stream_first_byte_timeout_ms"),
                p.stream_first_byte_timeout_ms,
            ));
            checks.push((format!("provider[{i}].idle_timeout_ms"), p.idle_timeout_ms));
        }
        for (path, v) in checks {
            if v == Some(0) {
                return Err(ConfigError {
                    file: self.file.to_owned(),
                    line: toml_error::span_of(self.text, &path)
                        .map(|s| line_of(self.text, s.start)),
                    path,
                    message: "must be greater than 0".into(),
                });
            }
        }
        Ok(())
    }

    /// Compile `forward_headers` / `drop_headers` (bounded; each entry checked).
    fn header_patterns(
        &self,
        raw: Option<&[Spanned<String>]>,
        path: &str,
    ) -> Result<Vec<crate::headers::HeaderPattern>, ConfigError> {
        let raw = raw.unwrap_or_default();
        if raw.len() > crate::headers::MAX_HEADER_PATTERNS {
            let span = raw.first().map_or(0..0, Spanned::span);
            return Err(self.err(
                span,
                path,
                format!("at most {} patterns", crate::headers::MAX_HEADER_PATTERNS),
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(i, p)| {
                let parsed = if path.ends_with(".drop_headers") {
                    crate::headers::HeaderPattern::parse_drop(p.get_ref())
                } else {
                    crate::headers::HeaderPattern::parse(p.get_ref())
                };
                parsed.map_err(|why| self.err(p.span(), format!("{path}[{i}]"), why))
            })
            .collect()
    }

    fn server(
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

    fn base_url(&self, s: &Spanned<String>, path: &str) -> Result<BaseUrl, ConfigError> {
        let bad = |why: &str| self.err(s.span(), path, format!("{:?}: {why}", s.get_ref()));
        // Its authority becomes the `Host` header and its path the request target: both must
        // be visible ASCII, whatever the URL parser would let through.
        if !s.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "only visible ASCII is allowed (no spaces or control characters; percent-encode the path, punycode the host)",
            ));
        }
        let uri: http::Uri = s.get_ref().parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not allowed; use api_key_env",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(BaseUrl {
            tls,
            host,
            port,
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

struct BaseUrl {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

/// 32 bytes written as 64 hex digits (a key's SHA-256, a seal key).
fn hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
workers = 2

[[provider]]
name = "a"
kind = "anthropic"
base_url = "http://127.0.0.1:9/"

[[provider]]
name = "o"
kind = "openai"
base_url = "http://localhost:8080/v1"

[[route]]
model = "fast"
targets = ["a/claude-x", "o/gpt-y"]

[[key]]
name = "team"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
routes = ["fast", "o/*"]
"#;

    #[test]
    fn compiles_and_resolves() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(c.server.workers, 2);
        let r = c.resolve("fast").unwrap();
        assert_eq!(r.targets().len(), 2);
        assert_eq!(r.targets()[0].model, "claude-x");
        let d = c.resolve("@o/gpt-4o/mini").unwrap();
        assert_eq!(d.targets()[0].model, "gpt-4o/mini");
        assert_eq!(c.providers[d.targets()[0].provider].name, "o");
        assert!(c.resolve("nope").is_none());
        assert!(c.resolve("zz/model").is_none());
        assert!(c.resolve("o/").is_none());
        assert_eq!(c.providers[0].base_path, "");
        assert_eq!(
            c.providers[1].path_for("/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(c.providers[1].authority, "localhost:8080");
        let k = &c.keys[0];
        assert!(k.allows("fast") && k.allows("o/gpt") && k.allows("@o/gpt"));
        assert!(!k.allows("a/claude") && !k.allows("faster"));
        assert_eq!(k.sha256, crate::auth::sha256(b"test"));
    }

    #[test]
    fn a_stream_first_byte_timeout_per_provider_and_route() {
        let ms = Duration::from_millis;
        let t = |extra: &str| {
            let c = Config::from_toml(&format!("{GOOD}\n{extra}"), "t.toml").unwrap();
            let p: Vec<_> = c
                .providers
                .iter()
                .map(|p| (p.first_byte_timeout, p.stream_first_byte_timeout))
                .collect();
            let route = c
                .resolve("fast")
                .unwrap()
                .policy()
                .stream_first_byte_timeout;
            (p, route)
        };
        let (p, route) = t("");
        assert_eq!(p, [(ms(300_000), ms(60_000)); 2]);
        assert_eq!(route, None);
        // Unset, it is never longer than the provider's whole-answer wait.
        let (p, _) = t("[upstream]\nfirst_byte_timeout_ms = 400\n");
        assert_eq!(p, [(ms(400), ms(400)); 2]);
        // Set, it is used as set: the provider's over [upstream].
        let (p, _) =
            t("[upstream]\nfirst_byte_timeout_ms = 400\nstream_first_byte_timeout_ms = 900\n");
        assert_eq!(p, [(ms(400), ms(900)); 2]);
        let text = GOOD
            .replace(
                "base_url = \"http://localhost:8080/v1\"",
                "base_url = \"http://localhost:8080/v1\"\nstream_first_byte_timeout_ms = 7000",
            )
            .replace(
                "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                "targets = [\"a/claude-x\", \"o/gpt-y\"]\nstream_first_byte_timeout_ms = 1500",
            );
        let c = Config::from_toml(&text, "t.toml").unwrap();
        assert_eq!(c.providers[0].stream_first_byte_timeout, ms(60_000));
        assert_eq!(c.providers[1].stream_first_byte_timeout, ms(7000));
        assert_eq!(
            c.resolve("fast")
                .unwrap()
                .policy()
                .stream_first_byte_timeout,
            Some(ms(1500))
        );
    }

    #[test]
    fn thinking_style_per_provider_and_target() {
        let c = Config::from_toml(
            &GOOD
                .replace(
                    "base_url = \"http://127.0.0.1:9/\"",
                    "base_url = \"http://127.0.0.1:9/\"\nthinking_style = \"adaptive\"",
                )
                .replace(
                    "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                    "targets = [\"a/claude-x\", { target = \"a/claude-y\", thinking_style = \"budget\" }, { target = \"o/gpt-y\" }]",
                ),
            "t.toml",
        )
        .unwrap();
        let t = c.resolve("fast").unwrap().targets().to_vec();
        let styles: Vec<_> = t
            .iter()
            .map(|t| (t.model.as_str(), t.thinking_style))
            .collect();
        assert_eq!(
            styles,
            [
                ("claude-x", ThinkingStyle::Adaptive),
                ("claude-y", ThinkingStyle::Budget),
                ("gpt-y", ThinkingStyle::Auto),
            ]
        );
        assert_eq!(
            c.translate_options(&c.providers[0]).thinking_style,
            ThinkingStyle::Adaptive
        );
        let d = c.resolve("a/claude-z").unwrap();
        assert_eq!(d.targets()[0].thinking_style, ThinkingStyle::Adaptive);
        assert!(c.describe().contains("a/claude-y (thinking_style budget)"));
        let plain = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(plain.providers[0].thinking_style, ThinkingStyle::Auto);
    }

    #[test]
    fn thinking_style_errors_name_the_key() {
        let t = "targets = [\"a/claude-x\", \"o/gpt-y\"]";
        refused(
            t,
            "targets = [{ target = \"a/claude-x\", thinking_style = \"enabled\" }]",
            "route[0].targets[0].thinking_style",
            "unknown thinking style \"enabled\": expected \"auto\", \"adaptive\" or \"budget\"",
        );
        refused(
            t,
            "targets = [{ target = \"o/gpt-y\", thinking_style = \"budget\" }]",
            "route[0].targets[0].thinking_style",
            "anthropic-kind providers only",
        );
        refused(
            t,
            "targets = [{ target = \"zz/m\" }]",
            "route[0].targets[0].target",
            "unknown provider \"zz\"",
        );
        refused(
            t,
            "targets = [{ target = \"a/m\", thinking = \"budget\" }]",
            "route[0].targets[0].thinking",
            "unknown key",
        );
        refused(
            t,
            "targets = [{ thinking_style = \"budget\" }]",
            "route[0].targets[0].target",
            "required key is missing",
        );
        refused(
            "kind = \"openai\"",
            "kind = \"openai\"\nthinking_style = \"auto\"",
            "provider[1].thinking_style",
            "anthropic-kind providers only",
        );
        refused(
            "kind = \"anthropic\"",
            "kind = \"anthropic\"\nthinking_style = \"Adaptive\"",
            "provider[0].thinking_style",
            "unknown thinking style",
        );
    }

    #[test]
    fn failover_keys_compile_and_bad_ones_are_named() {
        use crate::routing::Strategy;
        let c = Config::from_toml(
            &GOOD.replace(
                "targets = [\"a/claude-x\", \"o/gpt-y\"]",
                "targets = [{ target = \"a/claude-x\", weight = 3 }, \"o/gpt-y\"]\nstrategy = \"weighted\"\nretries = 2\nretry_on = [429, 503]\nfirst_token_timeout_ms = 700\nbreaker_failures = 0",
            ),
            "t.toml",
        )
        .unwrap();
        let r = &c.routing.routes()[0];
        assert_eq!(r.policy.strategy, Strategy::Weighted);
        assert_eq!(r.policy.retries, 2);
        assert_eq!(r.policy.retry_on, vec![429, 503]);
        assert_eq!(
            r.policy.first_token_timeout,
            Some(Duration::from_millis(700))
        );
        assert_eq!(r.policy.breaker.failures, 0);
        assert_eq!(r.targets[0].weight, 3);
        assert_eq!(r.targets[1].weight, 1);
        for (from, to, path) in [
            ("\"o/gpt-y\"]", "\"a/claude-x\"]", "route[0].targets[1]"),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nstrategy = \"fastest\"",
                "route[0].strategy",
            ),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nretry_on = [200]",
                "route[0].retry_on[0]",
            ),
            (
                "\"o/gpt-y\"]",
                "\"o/gpt-y\"]\nrequest_timeout_ms = 0",
                "route[0].request_timeout_ms",
            ),
        ] {
            let e = Config::from_toml(&GOOD.replace(from, to), "t.toml").unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        let e = Config::from_toml(&GOOD.replace("\"o/gpt-y\"]", "\"a/claude-x\"]"), "t.toml")
            .unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn custody_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(c.custody, None, "off without a path");
        let with = |t: &str| Config::from_toml(&format!("{GOOD}\n[custody]\n{t}\n"), "t.toml");
        let on = with("path = \"/tmp/c.db\"").unwrap().custody.unwrap();
        assert_eq!(on.path, std::path::PathBuf::from("/tmp/c.db"));
        assert_eq!(on.retention_days, crate::custody::DEFAULT_RETENTION_DAYS);
        assert_eq!(on.channel_records, crate::custody::DEFAULT_CHANNEL_RECORDS);
        assert_eq!(on.read_queue, crate::custody::DEFAULT_READ_QUEUE);
        let set = with("path = \"c.db\"\nretention_days = 0\nchannel_records = 8\nread_queue = 3")
            .unwrap()
            .custody
            .unwrap();
        assert_eq!(
            (set.retention_days, set.channel_records, set.read_queue),
            (0, 8, 3)
        );
        assert_eq!(
            with("path = \"c.db\"\nenabled = false").unwrap().custody,
            None
        );
        let e = with("enabled = true").unwrap_err();
        assert!(e.to_string().contains("custody.path"), "{e}");
        let e = with("path = \"c.db\"\nchannel_records = 0").unwrap_err();
        assert!(e.to_string().contains("custody.channel_records"), "{e}");
        let e = with("path = \"c.db\"\nread_queue = 0").unwrap_err();
        assert!(e.to_string().contains("custody.read_queue"), "{e}");
        assert!(with("path = \"c.db\"\nwhat = 1").is_err());
    }

    #[test]
    fn access_log_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(c.access_log, Some(crate::access_log::Destination::Stderr));
        assert!(c.describe().contains("access log to stderr"));
        let with = |t: &str| Config::from_toml(&format!("{GOOD}\n[access_log]\n{t}\n"), "t.toml");
        assert_eq!(with("enabled = false").unwrap().access_log, None);
        assert_eq!(
            with("path = \"/var/log/rw.log\"").unwrap().access_log,
            Some(crate::access_log::Destination::File(
                "/var/log/rw.log".into()
            ))
        );
        assert_eq!(
            with("path = \"stderr\"").unwrap().access_log,
            Some(crate::access_log::Destination::Stderr)
        );
        let e = with("path = \"\"").unwrap_err();
        assert!(e.to_string().contains("access_log.path"), "{e}");
        assert!(with("format = \"text\"").is_err());
    }

    #[test]
    fn responses_settings() {
        // Native Responses: the default for api.openai.com only, settable on openai kind only.
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert!(c.providers.iter().all(|p| !p.native_responses));
        assert_eq!(c.providers[1].speaks(Format::Responses), Format::OpenAi);
        assert_eq!(c.providers[0].speaks(Format::Responses), Format::Anthropic);
        let official = GOOD.replace("http://localhost:8080/v1", "https://api.openai.com/v1");
        let c = Config::from_toml(&official, "t.toml").unwrap();
        assert!(c.providers[1].native_responses);
        assert_eq!(c.providers[1].speaks(Format::Responses), Format::Responses);
        assert_eq!(c.providers[1].speaks(Format::OpenAi), Format::OpenAi);
        let chat = official.replace("/v1\"\n", "/v1\"\nresponses = \"chat\"\n");
        assert!(!Config::from_toml(&chat, "t.toml").unwrap().providers[1].native_responses);
        let native = GOOD.replace("8080/v1\"\n", "8080/v1\"\nresponses = \"native\"\n");
        assert!(Config::from_toml(&native, "t.toml").unwrap().providers[1].native_responses);
        for (text, path) in [
            (
                GOOD.replace(
                    "127.0.0.1:9/\"\n",
                    "127.0.0.1:9/\"\nresponses = \"native\"\n",
                ),
                "provider[0].responses",
            ),
            (
                GOOD.replace("8080/v1\"\n", "8080/v1\"\nresponses = \"both\"\n"),
                "provider[1].responses",
            ),
        ] {
            let e = Config::from_toml(&text, "t.toml").unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert_eq!(
                e.line,
                Some(
                    text.lines()
                        .position(|l| l.starts_with("responses"))
                        .unwrap()
                        + 1
                )
            );
        }
        // The seal key: 64 hex digits from the environment; an unset variable draws one and
        // says so; a malformed value is refused.
        let with_env = |var: &str| format!("{GOOD}\n[responses]\nseal_key_env = \"{var}\"\n");
        std::env::set_var("RW_CONFIG_TEST_SEAL", "ab".repeat(32));
        let c = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL"), "t.toml").unwrap();
        assert_eq!(
            Some(c.translate.seal.clone()),
            crate::translate::seal::SealKey::from_bytes(&[0xab; 32])
        );
        assert_eq!(
            c.providers[0].translate.seal,
            Some(c.translate.seal.clone())
        );
        assert_eq!(c.providers[0].translate.provider, "a");
        assert_eq!(c.translate.seal_key_missing, None);
        let c = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL_UNSET"), "t.toml").unwrap();
        assert_eq!(
            c.translate.seal_key_missing.as_deref(),
            Some("RW_CONFIG_TEST_SEAL_UNSET")
        );
        std::env::set_var("RW_CONFIG_TEST_SEAL_BAD", "not-hex");
        let e = Config::from_toml(&with_env("RW_CONFIG_TEST_SEAL_BAD"), "t.toml").unwrap_err();
        assert_eq!(e.path, "responses.seal_key_env");
        assert!(e.message.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn responses_store_settings() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert_eq!(
            c.responses_store,
            Some(crate::responses_store::Settings::default()),
            "on by default, in memory"
        );
        let with =
            |t: &str| Config::from_toml(&format!("{GOOD}\n[responses.store]\n{t}\n"), "t.toml");
        assert_eq!(with("enabled = false").unwrap().responses_store, None);
        let on = with("path = \"/tmp/r.db\"\nretention_hours = 3").unwrap();
        let on = on.responses_store.unwrap();
        assert_eq!(on.retention_hours, 3);
        let e = with("\n\nretention_hours = 0").unwrap_err();
        assert_eq!(e.path, "responses.store.retention_hours");
        let text = format!("{GOOD}\n[responses.store]\n\n\nretention_hours = 0\n");
        let at = text.find("retention_hours").unwrap();
        assert_eq!(e.line, Some(line_of(&text, at)), "{e}");
        assert!(with("colour = 1").is_err(), "unknown keys refused");
    }

    #[test]
    fn pii_section_compiles_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rw-pii-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("names.txt"), "# people\nJane Doe\nJo\n").unwrap();
        std::fs::write(dir.join("ok.txt"), "Jane Doe # a comment\n\nHalifax\n").unwrap();
        let file = dir.join("c.toml");
        let file = file.to_str().unwrap();
        let with = |pii: &str| format!("{GOOD}\n[pii]\n{pii}\n");
        // A term too short: the dictionary's own file and line.
        let e = Config::from_toml(&with("dictionaries = [\"names.txt\"]"), file).unwrap_err();
        assert!(e.file.ends_with("names.txt"), "{e}");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.path, "pii.dictionaries[0]");
        // A bad regex: the config's line.
        let cfg = with("regexes = [\"ok-\\\\d+\", \"(\"]");
        let e = Config::from_toml(&cfg, file).unwrap_err();
        assert_eq!(e.path, "pii.regexes[1]");
        assert_eq!(e.line, Some(cfg.lines().count()));
        // Good: compiled, on for the listed route and the key that asks.
        let c = Config::from_toml(
            &with("places = [\"ok.txt\"]\nroutes = [\"fast\"]\nregexes = [\"EMP-\\\\d{6}\"]"),
            file,
        )
        .unwrap();
        let on = |model: &str| c.pii.on_for(None, c.resolve(model).as_ref());
        // The route, and its targets addressed directly (with or without `@`): the same policy.
        assert!(on("fast") && on("a/claude-x") && on("@o/gpt-y") && !c.pii.all);
        assert!(!on("other") && !on("o/gpt-other"));
        // A name that is no route is refused.
        let e = Config::from_toml(&with("routes = [\"fats\"]"), file).unwrap_err();
        assert_eq!(e.path, "pii.routes[0]");
        assert!(
            c.pii.detector.is_ready(),
            "a route turns it on: compiled at load"
        );
        let found = c
            .pii
            .detector
            .get()
            .unwrap()
            .find("Jane Doe in Halifax, EMP-123456");
        assert_eq!(found.len(), 3);
        assert_ne!(c.pii.key_secret(Some("a")), c.pii.key_secret(Some("b")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pii_detectors_wait_for_a_request_when_no_policy_turns_them_on() {
        let c = Config::from_toml(GOOD, "t.toml").unwrap();
        assert!(!c.pii.detector.is_ready(), "nothing asked for them yet");
        let d = c.pii.detector.get().unwrap();
        assert_eq!(d.find("mail a@example.com").len(), 1);
        assert!(c.pii.detector.is_ready());
        let on = format!("{GOOD}\n[pii]\nenabled = true\n");
        assert!(Config::from_toml(&on, "t.toml")
            .unwrap()
            .pii
            .detector
            .is_ready());
    }

    #[test]
    fn errors_name_line_and_path() {
        let bad = GOOD.replace("\"a/claude-x\"", "\"zz/claude-x\"");
        let e = Config::from_toml(&bad, "t.toml").unwrap_err();
        assert_eq!(e.path, "route[0].targets[0]");
        assert_eq!(e.line, Some(18));
        assert!(e
            .to_string()
            .starts_with("t.toml:18: route[0].targets[0]: unknown provider"));

        let bad = GOOD.replace("workers = 2", "workers = 2\nlistn = \"x\"");
        let e = Config::from_toml(&bad, "t.toml").unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.path, "server.listn");
        assert_eq!(e.message, "unknown key; did you mean `listen`?");

        let bad = GOOD.replace("kind = \"openai\"", "kind = \"gemini\"");
        let e = Config::from_toml(&bad, "t.toml").unwrap_err();
        assert_eq!(e.path, "provider[1].kind");

        let bad = GOOD.replace("http://localhost:8080/v1", "ftp://x");
        assert_eq!(
            Config::from_toml(&bad, "t").unwrap_err().path,
            "provider[1].base_url"
        );

        let bad = GOOD.replace("9f86d081", "zz86d081");
        assert_eq!(
            Config::from_toml(&bad, "t").unwrap_err().path,
            "key[0].sha256"
        );

        let bad = GOOD.replace("name = \"o\"", "name = \"a\"");
        assert!(Config::from_toml(&bad, "t")
            .unwrap_err()
            .message
            .contains("duplicate"));
    }

    /// `GOOD` with `from` replaced by `to` must fail at `path`, with `reason` in the message.
    #[track_caller]
    fn refused(from: &str, to: &str, path: &str, reason: &str) {
        assert!(GOOD.contains(from), "{from}");
        let e = match Config::from_toml(&GOOD.replace(from, to), "t.toml") {
            Ok(_) => panic!("accepted {to:?}"),
            Err(e) => e,
        };
        assert_eq!(e.path, path, "{to:?}: {e}");
        assert!(e.line.is_some(), "{e}");
        assert!(e.message.contains(reason), "{to:?}: {e}");
    }

    #[test]
    fn values_that_reach_headers_are_checked_at_load() {
        for name in [
            "a\\r\\nX-Injected: 1",
            "a b",
            "a/b",
            "@a",
            "a:b",
            "é",
            "",
            &"p".repeat(MAX_PROVIDER_NAME_BYTES + 1),
        ] {
            refused(
                "name = \"a\"",
                &format!("name = \"{name}\""),
                "provider[0].name",
                "invalid provider name",
            );
        }
        for name in [
            "p",
            "mock-openai",
            "Azure_EU.2",
            &"p".repeat(MAX_PROVIDER_NAME_BYTES),
        ] {
            assert!(is_provider_name(name), "{name}");
        }

        let long = "m".repeat(crate::format::MAX_MODEL_ID_BYTES + 1);
        for (model, reason) in [
            ("claude-x\\r\\nX: y", "control characters"),
            ("claude\\u0000x", "control characters"),
            ("claude\\u007f", "control characters"),
            (long.as_str(), "longer than 256 bytes"),
        ] {
            refused(
                "\"a/claude-x\"",
                &format!("\"a/{model}\""),
                "route[0].targets[0]",
                reason,
            );
            refused(
                "model = \"fast\"",
                &format!("model = \"{model}\""),
                "route[0].model",
                reason,
            );
        }
        let max = "m".repeat(crate::format::MAX_MODEL_ID_BYTES);
        let ok = GOOD
            .replace("a/claude-x", &format!("a/{max}"))
            .replace("model = \"fast\"", &format!("model = \"{max}\""));
        assert!(Config::from_toml(&ok, "t").is_ok());

        for url in [
            "http://localhost:8080/v1\\r\\nX: y",
            "http://local\\nhost:8080/v1",
            "http://localhost:8080/v1 x",
            "http://localhost:8080/v\\u0000",
            "http://localhost:8080/vé",
            "http://lòcalhost:8080/v1",
        ] {
            refused(
                "\"http://localhost:8080/v1\"",
                &format!("\"{url}\""),
                "provider[1].base_url",
                "",
            );
        }

        let with_version = |v: &str| {
            GOOD.replace(
                "kind = \"anthropic\"",
                &format!("kind = \"anthropic\"\nanthropic_version = \"{v}\""),
            )
        };
        for v in ["2023\\r\\nX: y", "", " 2023-06-01", "2023\\u0000"] {
            let e = Config::from_toml(&with_version(v), "t").unwrap_err();
            assert_eq!(e.path, "provider[0].anthropic_version", "{v:?}");
        }
        assert!(Config::from_toml(&with_version("2023-06-01"), "t").is_ok());
    }

    /// `text` must fail with exactly `line: path: message`.
    #[track_caller]
    fn fails(text: &str, line: usize, path: &str, message: &str) {
        let e = match Config::from_toml(text, "t.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        assert_eq!(
            (e.line, e.path.as_str(), e.message.as_str()),
            (Some(line), path, message),
            "{text}"
        );
    }

    #[test]
    fn parser_errors_name_the_key_path_in_words() {
        let two = |second: &str| {
            format!(
                "[[provider]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"http://x\"\n\n[[provider]]\n{second}"
            )
        };
        // Unknown keys: top level, in a table, in the second [[provider]], in an inline table.
        fails(
            "servr = 1\n",
            1,
            "servr",
            "unknown key; did you mean `server`?",
        );
        fails(
            "[server]\nworkers = 2\nzzz = 1\n",
            3,
            "server.zzz",
            "unknown key; valid keys here: listen, plain_listen, workers, driver, pin_workers, \
             uring_entries, max_body_bytes, responses_websocket, header_read_timeout_ms, body_read_timeout_ms, \
             keepalive_timeout_ms, write_timeout_ms, body_timeout_ms, max_buffered_bytes, \
             reuse_port, drain_timeout_ms, pid_file, tls, header_prefix, node, jurisdiction, \
             default_tier",
        );
        fails(
            &two("name = \"b\"\nkindd = \"openai\"\nbase_url = \"http://x\"\n"),
            8,
            "provider[1].kindd",
            "unknown key; did you mean `kind`?",
        );
        fails(
            "[[route]]\nmodel = \"m\"\ntargets = [\"a/b\"]\ncapabilities = { visio = true }\n",
            4,
            "route[0].capabilities.visio",
            "unknown key; did you mean `vision`?",
        );
        // Wrong types and values out of range.
        fails(
            "[server]\nworkers = \"x\"\n",
            2,
            "server.workers",
            "expected a whole number (0 or more), found string `\"x\"`",
        );
        fails(
            "[server]\nworkers = -1\n",
            2,
            "server.workers",
            "expected a whole number (0 or more), found integer `-1`",
        );
        fails(
            "[server]\nuring_entries = 99999999999\n",
            2,
            "server.uring_entries",
            "expected a whole number from 0 to 4294967295, found integer `99999999999`",
        );
        fails(
            "[server]\npin_workers = 1\n",
            2,
            "server.pin_workers",
            "expected true or false, found integer `1`",
        );
        fails(
            "[server]\nlisten = 2025-01-01\n",
            2,
            "server.listen",
            "expected a string, found datetime `2025-01-01`",
        );
        fails(
            "server = 1\n",
            1,
            "server",
            "expected a table, found integer `1`",
        );
        // Checks made after parsing find their line too.
        fails(
            &two(
                "name = \"b\"\nkind = \"openai\"\nbase_url = \"http://x\"\n\nidle_timeout_ms = 0\n",
            ),
            11,
            "provider[1].idle_timeout_ms",
            "must be greater than 0",
        );
        fails(
            "[upstream]\nconnect_timeout_ms = 5\nidle_timeout_ms = 0\n",
            3,
            "upstream.idle_timeout_ms",
            "must be greater than 0",
        );
        fails(
            &two("name = \"b\"\nkind = 3\nbase_url = \"http://x\"\n"),
            8,
            "provider[1].kind",
            "expected a string, found integer `3`",
        );
        fails(
            "[[route]]\nmodel = \"m\"\ntargets = \"a/b\"\n",
            3,
            "route[0].targets",
            "expected an array, found string `\"a/b\"`",
        );
        fails(
            "[[route]]\nmodel = \"m\"\ntargets = [\"a/b\", 3]\n",
            3,
            "route[0].targets[1]",
            "expected a \"provider/model\" string or a { target = \"provider/model\", … } table, found integer `3`",
        );
        fails(
            "[translate.reasoning_effort_budgets]\nlow = 1.5\n",
            2,
            "translate.reasoning_effort_budgets.low",
            "expected a whole number from 0 to 4294967295, found float `1.5`",
        );
        // Missing keys: the path names the key that is missing.
        fails(
            &two("name = \"b\"\nbase_url = \"http://x\"\n"),
            6,
            "provider[1].kind",
            "required key is missing",
        );
        fails(
            "[[route]]\nmodel = \"m\"\n",
            1,
            "route[0].targets",
            "required key is missing",
        );
        fails(
            "route = [{ model = \"m\" }]\n",
            1,
            "route[0].targets",
            "required key is missing",
        );
        // Syntax errors keep the parser's words, with the line.
        fails(
            "[server]\nworkers = 1\nworkers = 2\n",
            3,
            "",
            "duplicate key `workers`",
        );
        let e = Config::from_toml("[server\n", "t.toml").unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (Some(1), ""));
    }

    #[test]
    fn embedded_default_compiles() {
        let c = Config::embedded_default("127.0.0.1:5555".parse().unwrap()).unwrap();
        assert!(c.keys.is_empty());
        let r = c.resolve("demo-claude").unwrap();
        let p = &c.providers[r.targets()[0].provider];
        assert_eq!(p.kind, Format::Anthropic);
        assert_eq!(p.port, 5555);
        assert!(c.resolve("openai/gpt-4o").is_some());
        assert!(c.providers.iter().any(|p| p.tls.is_some()));
    }

    #[test]
    fn key_names_and_route_patterns_are_checked_at_load() {
        let hash = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046";
        fails(
            &format!("[[key]]\nname = \"team\\nforged log line\"\nsha256 = \"{hash}\"\n"),
            2,
            "key[0].name",
            "\"team\\nforged log line\": a key name is 1 to 64 of A-Z a-z 0-9 . _ -",
        );
        fails(
            &format!("[[key]]\nname = \"team\"\nsha256 = \"{hash}\"\nroutes = [\"ok\", \"bad\\u0000*\"]\n"),
            4,
            "key[0].routes[1]",
            "a route pattern is a model name (optionally ending in `*`): no control characters, at most 256 bytes",
        );
        assert!(Config::from_toml(
            &format!("[[key]]\nname = \"team-a.1\"\nsha256 = \"{hash}\"\nroutes = [\"fast\", \"anthropic/*\"]\n"),
            "t.toml"
        )
        .is_ok());
    }

    #[test]
    fn key_limits_compile_and_bad_ones_are_named() {
        let hash = "f2d4b279b82ad92867af5878fe7482caebdd7b75499868d0362a6e63ff51f046";
        let key = |extra: &str| format!("[[key]]\nname = \"team\"\nsha256 = \"{hash}\"\n{extra}");
        let c =
            Config::from_toml(&key("rpm = 60\ntpm = 100000\nmax_streams = 4\n"), "t.toml").unwrap();
        assert_eq!(
            c.keys[0].limits,
            KeyLimits {
                rpm: Some(60),
                tpm: Some(100_000),
                max_streams: Some(4)
            }
        );
        let c = Config::from_toml(&key(""), "t.toml").unwrap();
        assert!(c.keys[0].limits.is_unlimited());
        for k in ["rpm", "tpm", "max_streams"] {
            fails(
                &key(&format!("{k} = 0\n")),
                4,
                &format!("key[0].{k}"),
                "must be greater than 0 (leave it out for no limit)",
            );
            fails(
                &key(&format!("{k} = -1\n")),
                4,
                &format!("key[0].{k}"),
                "expected a whole number (0 or more), found integer `-1`",
            );
        }
        fails(
            &key("tpm = 1000000001\n"),
            4,
            "key[0].tpm",
            "1000000001: at most 1000000000",
        );
        fails(
            &key("max_streams = 1000001\n"),
            4,
            "key[0].max_streams",
            "1000001: at most 1000000",
        );
        // Entries sharing a name (a key being rotated) share one budget, so must agree.
        let two = |a: &str, b: &str| {
            format!(
                "{}\n[[key]]\nname = \"team\"\nkey_env = \"PATH\"\n{b}",
                key(a)
            )
        };
        assert!(Config::from_toml(&two("rpm = 5\n", "rpm = 5\n"), "t.toml").is_ok());
        fails(
            &two("rpm = 5\n", "rpm = 6\n"),
            7,
            "key[1].name",
            "key `team` is listed earlier with other limits; entries sharing a name share one budget",
        );
    }

    const TIERED: &str = r#"
[server]
listen = "127.0.0.1:0"
jurisdiction = "CA"
header_prefix = "x-ni-"
default_tier = "any"

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[tier]]
name = "any"
jurisdictions = ["CA", "US", "CA"]

[[provider]]
name = "ca"
kind = "anthropic"
base_url = "http://127.0.0.1:9/"
region = "ca-central-1"
jurisdiction = "CA"
custody = "provider-managed"

[[provider]]
name = "us"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
jurisdiction = "US"

[[route]]
model = "sonnet"
aliases = ["claude-sonnet-4-5-20250929"]
targets = ["ca/claude", { target = "us/gpt", jurisdiction = "CA", region = "ca-east" }]

[[key]]
name = "team"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
tiers = ["canada"]
default_tier = "canada"
"#;

    #[test]
    fn tiers_places_and_prefix_compile() {
        let c = Config::from_toml(TIERED, "t.toml").unwrap();
        assert_eq!(c.tiers.len(), 2);
        assert_eq!(c.tiers[1].jurisdictions, ["CA", "US"]);
        assert_eq!(c.server.headers.custody_path, "x-ni-custody-path");
        assert_eq!(c.server.headers.request_id, "x-ni-request-id");
        assert_eq!(c.server.default_tier, Some(1));
        assert_eq!(c.keys[0].tiers, Some(vec![0]));
        assert_eq!(c.keys[0].default_tier, Some(0));
        let Some(Resolved::Route(r)) = c.resolve("claude-sonnet-4-5-20250929") else {
            panic!("alias");
        };
        let ca = &r.targets[0].place;
        assert_eq!(ca.path, "ringway-CA -> ca-CA");
        assert_eq!(ca.region.as_deref(), Some("ca-central-1"));
        assert_eq!(ca.custody.as_deref(), Some("provider-managed"));
        assert_eq!(ca.credential.as_str(), "none");
        // A target's override replaces one setting; the others stay the provider's.
        let us = &r.targets[1].place;
        assert_eq!(
            (
                us.jurisdiction.as_deref(),
                us.region.as_deref(),
                us.path.as_str()
            ),
            (Some("CA"), Some("ca-east"), "ringway-CA -> us-CA")
        );
        // Without tiers or a prefix, nothing changes.
        let plain = Config::from_toml(GOOD, "g.toml").unwrap();
        assert_eq!(plain.server.headers.request_id, "x-ringway-request-id");
        assert!(plain.tiers.is_empty() && plain.server.default_tier.is_none());
    }

    #[test]
    fn tier_errors_name_line_and_path() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "name = \"canada\"",
                "name = \"can ada\"",
                "tier[0].name",
                "use 1 to 64",
            ),
            (
                "jurisdictions = [\"CA\"]",
                "jurisdictions = [\"ca\"]",
                "tier[0].jurisdictions[0]",
                "ISO 3166-1 alpha-2",
            ),
            (
                "jurisdictions = [\"CA\"]",
                "jurisdictions = []",
                "tier[0].jurisdictions",
                "1 to 250",
            ),
            (
                "name = \"any\"",
                "name = \"canada\"",
                "tier[1].name",
                "duplicate tier",
            ),
            (
                "jurisdiction = \"CA\"\nheader_prefix",
                "jurisdiction = \"Canada\"\nheader_prefix",
                "server.jurisdiction",
                "ISO 3166-1",
            ),
            (
                "header_prefix = \"x-ni-\"",
                "header_prefix = \"X-Ni\"",
                "server.header_prefix",
                "must start with a lower-case",
            ),
            (
                "header_prefix = \"x-ni-\"",
                "header_prefix = \"content-\"",
                "server.header_prefix",
                "collides",
            ),
            (
                "default_tier = \"any\"",
                "default_tier = \"nope\"",
                "server.default_tier",
                "unknown tier \"nope\"",
            ),
            (
                "region = \"ca-central-1\"",
                "region = \"ca central\\r\\n\"",
                "provider[0].region",
                "use 1 to 64",
            ),
            (
                "custody = \"provider-managed\"",
                "custody = \"\"",
                "provider[0].custody",
                "use 1 to 64",
            ),
            (
                "jurisdiction = \"US\"",
                "jurisdiction = \"USA\"",
                "provider[1].jurisdiction",
                "ISO 3166-1",
            ),
            (
                "jurisdiction = \"CA\", region",
                "jurisdiction = \"xx\", region",
                "route[0].targets[1].jurisdiction",
                "ISO 3166-1",
            ),
            (
                "aliases = [\"claude-sonnet-4-5-20250929\"]",
                "aliases = [\"sonnet\"]",
                "route[0].aliases[0]",
                "already names a route",
            ),
            (
                "tiers = [\"canada\"]",
                "tiers = [\"mars\"]",
                "key[0].tiers[0]",
                "unknown tier \"mars\"",
            ),
            (
                "tiers = [\"canada\"]\ndefault_tier = \"canada\"",
                "tiers = [\"canada\"]\ndefault_tier = \"any\"",
                "key[0].default_tier",
                "not in this key's `tiers`",
            ),
        ];
        for (from, to, path, reason) in cases {
            let text = TIERED.replacen(from, to, 1);
            assert_ne!(text, TIERED, "{from}");
            let e = Config::from_toml(&text, "t.toml").unwrap_err();
            // The line of the first changed byte: where the bad value is.
            let diff = text
                .bytes()
                .zip(TIERED.bytes())
                .position(|(a, b)| a != b)
                .unwrap();
            let line = text[..diff].matches('\n').count() + 1;
            assert_eq!(e.path, *path, "{to}: {e}");
            assert!(e.message.contains(reason), "{to}: {e}");
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert!(e.to_string().starts_with("t.toml:"), "{e}");
        }
    }
}
