//! Configuration: load the TOML file, validate it with key-path errors, and compile it into the
//! immutable snapshot the workers read (`Config`). A bad file never half-starts the gateway.

mod access_log;
mod budgets;
mod cloud;
mod cluster;
mod compiler;
mod custody;
mod keys;
mod pii;
mod providers;
mod raw;
mod responses;
mod routes;
mod server;
#[cfg(test)]
mod testing;
mod tiers;
mod tls;
mod toml_error;
mod tracing;
mod translate;
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use compiler::{line_of, Compiler};
use raw::RawConfig;

pub use crate::auth::{GatewayKey, KeyLimits};
pub use crate::routing::Capabilities;
pub use crate::routing::{Resolved, Route, Target};
pub use compiler::ConfigError;
pub use pii::{PiiConfig, MAX_DICTIONARY_BYTES, MIN_PII_SECRET_BYTES};
pub use providers::{
    is_provider_name, ApiKey, Provider, DEFAULT_ANTHROPIC_VERSION, MAX_PROVIDER_NAME_BYTES,
};
pub use server::{
    same_port, Driver, ServerConfig, ServerTls, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_BODY_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_NODE,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT, DEFAULT_URING_ENTRIES, DEFAULT_WRITE_TIMEOUT,
};
pub use translate::{TranslateConfig, DEFAULT_MAX_TOKENS};
pub use upstream::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_POOL_MAX_IDLE, DEFAULT_STREAM_FIRST_BYTE_TIMEOUT,
};

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
    /// `[cluster]`: node id and the stores shared with other nodes.
    pub cluster: crate::cluster::Settings,
    /// `[[price]]`: model prices, for budgets in money.
    pub prices: crate::budget::Prices,
    /// `[tracing]`: OTLP trace export; None: off.
    pub tracing: Option<std::sync::Arc<crate::trace::Settings>>,
}

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
            // Vertex has refused call ids on some routes; its calls match by order.
            gemini_call_ids: provider.kind != crate::provider::Kind::Vertex,
            path_stream: false,
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
                match (&self.cluster.postgres, &c.path) {
                    (Some(url), _) => format!("in PostgreSQL {}", url.redacted()),
                    (None, Some(p)) => p.display().to_string(),
                    (None, None) => "(none)".into(),
                },
                c.retention_days,
                c.channel_records,
                c.read_queue
            ),
        };
        let _ = match &self.responses_store {
            None => writeln!(s, "responses store off"),
            Some(r) => writeln!(s, "{}", r.describe()),
        };
        let c = &self.cluster;
        let _ = writeln!(
            s,
            "node {} | redis {} | postgres {}",
            c.node_id,
            c.redis.as_ref().map_or("off".into(), |u| u.redacted()),
            c.postgres.as_ref().map_or("off".into(), |u| u.redacted()),
        );
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
name = "gemini"
kind = "gemini"
api_key_env = "GEMINI_API_KEY"

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

impl Compiler<'_> {
    /// One section at a time, in the order their errors are reported: the sections others
    /// name (tiers, the server's hop, providers) before those that name them.
    fn compile(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        self.positive(&raw)?;
        let tiers = self.tiers(&raw.tier)?;
        let server = self.server(&raw.server, &tiers)?;
        let upstream = self.upstream(&raw.upstream);
        let (providers, provider_index) = self.providers(&raw.provider, &upstream, &server.hop)?;
        let routes = self.routes(&raw.route, &providers, &provider_index, &server.hop)?;
        let keys = self.keys(&raw.key, &tiers)?;
        let translate = self.translate(&raw.translate, &raw.responses)?;
        let access_log = self.access_log(&raw.access_log)?;
        let cluster = self.cluster(raw.cluster.as_ref())?;
        let prices = self.prices(&raw.price)?;
        let custody = self.custody(&raw.custody, cluster.postgres.is_some())?;
        let responses_store = self.responses_store(&raw.responses, cluster.postgres.as_ref())?;
        let mut pii = self.pii(&raw.pii, keys.iter().any(|k| k.pii))?;
        let names = providers
            .iter()
            .map(|p| (p.name.clone(), p.thinking_style, p.place.clone(), p.reach))
            .collect();
        let routing = crate::routing::Table::new(routes, names);
        self.pii_routes(&mut pii, &routing, &raw.pii)?;
        let tracing = self.tracing(raw.tracing.as_ref(), &raw.route, &routing)?;
        let mut config = Config {
            tracing,
            cluster,
            prices,
            tiers,
            pii,
            access_log,
            custody,
            responses_store,
            server,
            providers,
            routing,
            keys,
            translate,
            pool_idle_timeout: upstream.pool_idle_timeout,
            pool_max_idle: upstream.pool_max_idle,
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
        Ok(config)
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
}

#[cfg(test)]
mod tests {
    use super::testing::{fails, GOOD};
    use super::*;

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

        let bad = GOOD.replace("kind = \"openai\"", "kind = \"palm\"");
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
        assert_eq!(p.kind, crate::provider::Kind::Anthropic);
        assert_eq!(p.port, 5555);
        assert!(c.resolve("openai/gpt-4o").is_some());
        assert!(c.providers.iter().any(|p| p.tls.is_some()));
    }
}
