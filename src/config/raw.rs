//! The TOML file as written: serde structs, strict (`deny_unknown_fields`), one doc comment a key.
//! Nothing here is read on the request path; `super::compile` turns it into `Config`.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listener, workers, driver and client-side limits.
    #[serde(default)]
    pub server: RawServer,
    /// Defaults for every provider's connection handling.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// Upstream providers.
    #[serde(default)]
    pub provider: Vec<Spanned<RawProvider>>,
    /// Model names clients may send, each mapped to ordered `provider/model` targets.
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    /// Gateway keys (clients' credentials). None at all: no authentication.
    #[serde(default)]
    pub key: Vec<Spanned<RawKey>>,
    /// Translation defaults (used when client and provider formats differ).
    #[serde(default)]
    pub translate: RawTranslate,
    /// The Responses API endpoint (`POST /v1/responses`).
    #[serde(default)]
    pub responses: RawResponses,
    /// The access log (one JSON line per request).
    #[serde(default)]
    pub access_log: RawAccessLog,
    /// Residency tiers: named sets of jurisdictions a request may ask to stay inside.
    #[serde(default)]
    pub tier: Vec<Spanned<RawTier>>,
    /// The custody store (one record per model call, in SQLite).
    #[serde(default)]
    pub custody: RawCustody,
    /// PII substitution (detectors, where it is on, the stand-in secret).
    #[serde(default)]
    pub pii: RawPii,
    /// Several nodes: the node id, and Redis and PostgreSQL shared by the nodes.
    pub cluster: Option<Spanned<RawCluster>>,
    /// Model prices, for budgets in money.
    #[serde(default)]
    pub price: Vec<Spanned<RawPrice>>,
    /// OTLP trace export.
    pub tracing: Option<Spanned<RawTracing>>,
}

/// `[tracing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Export traces (default true when the section is present).
    pub enabled: Option<bool>,
    /// The OTLP/HTTP traces URL, e.g. `http://collector:4318/v1/traces` (used as written).
    pub endpoint: Option<Spanned<String>>,
    /// Headers sent with every export, e.g. `{ authorization = "Bearer …" }`.
    pub headers: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// Gzip export bodies (default false).
    pub gzip: Option<bool>,
    /// Share of new traces recorded, 0.0 to 1.0 (default 1.0). Calls that arrive with a
    /// `traceparent` follow its sampled flag.
    pub sample_ratio: Option<Spanned<f64>>,
    /// The resource's `service.name` (default "ringway").
    pub service_name: Option<Spanned<String>>,
    /// Send the attempt span's `traceparent` to providers (default false).
    pub propagate: Option<bool>,
    /// Routes (names, or "direct" for `provider/model`) whose prompts and completions are
    /// exported in spans (default none).
    pub content_routes: Option<Vec<Spanned<String>>>,
}

/// `[cluster]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// This node's id (request ids, access log, custody). Default: the host name.
    pub node_id: Option<Spanned<String>>,
    /// Redis for shared limits and budgets: `redis://[:password@]host[:port][/db]`.
    pub redis: Option<Spanned<String>>,
    /// Or: environment variable holding that URL (keeps a password out of the file).
    pub redis_env: Option<Spanned<String>>,
    /// PostgreSQL for custody, usage and stored responses: `postgres://user[:pw]@host/db`.
    pub postgres: Option<Spanned<String>>,
    /// Or: environment variable holding that URL.
    pub postgres_env: Option<Spanned<String>>,
    /// Records buffered while PostgreSQL is unreachable; past it the oldest are dropped and
    /// counted. Default 100000.
    pub postgres_buffer_records: Option<Spanned<usize>>,
    /// One Redis call's deadline in milliseconds. Default 250.
    pub redis_timeout_ms: Option<Spanned<u64>>,
    /// Rate limits while Redis is unreachable: "local" (each node its share) or "closed".
    pub limits_when_redis_down: Option<Spanned<String>>,
    /// Budgets while Redis is unreachable: "closed" (default) or "open".
    pub budgets_when_redis_down: Option<Spanned<String>>,
    /// Nodes assumed until Redis has said how many are alive. Default 1.
    pub expected_nodes: Option<Spanned<u32>>,
    /// Stores `/readyz` waits for: any of "redis", "postgres". Default: Redis when
    /// `limits_when_redis_down = "closed"`, else none.
    pub ready_requires: Option<Vec<Spanned<String>>>,
}

/// `[[tier]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    /// What clients send in `privacy_tier` / `x-privacy-tier` (a label: A-Z a-z 0-9 . _ -).
    pub name: Spanned<String>,
    /// ISO 3166-1 alpha-2 codes, uppercase (`["CA"]`): where requests under it may be served.
    pub jurisdictions: Spanned<Vec<Spanned<String>>>,
}

/// `[custody]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustody {
    /// Keep custody records (default: true when `path` is set, else false).
    pub enabled: Option<bool>,
    /// The SQLite database file (created if missing; `-wal` and `-shm` files beside it).
    pub path: Option<Spanned<String>>,
    /// Days a record is kept; 0 keeps them forever. Default 30.
    pub retention_days: Option<u32>,
    /// Records that may wait for the writer thread before new ones are dropped (and counted).
    /// Default 16384.
    pub channel_records: Option<Spanned<usize>>,
    /// Lookups (`GET /v1/custody/…`, `GET /v1/usage`) that may wait for the reader thread
    /// before new ones are refused with a 503. Default 64.
    pub read_queue: Option<Spanned<usize>>,
}

/// `[access_log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// Write the access log (default true).
    pub enabled: Option<bool>,
    /// `"stderr"` (the default) or a file, opened for append and reopened by `reopen()`
    /// (SIGUSR1, for logrotate).
    pub path: Option<Spanned<String>>,
}

/// `[responses]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponses {
    /// Environment variable holding the key (64 hex digits) that seals reasoning handed to
    /// Responses clients. Unset: a key is drawn at start, and sealed items do not survive a
    /// restart or open on another instance.
    pub seal_key_env: Option<Spanned<String>>,
    /// `[responses.store]`: stored responses (`store: true`, the API's default).
    #[serde(default)]
    pub store: crate::responses_store::settings::RawStore,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on, `IP:PORT`. Default `127.0.0.1:4000`. Speaks HTTPS when
    /// `[server.tls]` is present, plain HTTP otherwise.
    pub listen: Option<Spanned<String>>,
    /// A second listener, plain HTTP, beside a TLS `listen` (e.g. loopback for local tools and
    /// health checks). Only with `[server.tls]`.
    pub plain_listen: Option<Spanned<String>>,
    /// Worker threads (one runtime, listener and pool set each). Default: one per CPU.
    pub workers: Option<Spanned<usize>>,
    /// `"auto"` (io_uring, falling back to epoll where refused), `"io_uring"` or `"epoll"`.
    pub driver: Option<Spanned<String>>,
    /// Pin worker N to CPU N (modulo the CPU count). Default true.
    pub pin_workers: Option<bool>,
    /// io_uring submission queue entries per worker. Default 1024.
    pub uring_entries: Option<u32>,
    /// Largest request body accepted (413 beyond). Default 32 MiB.
    pub max_body_bytes: Option<Spanned<usize>>,
    /// Accept `GET /v1/responses` upgraded to a WebSocket (Codex's Responses transport).
    /// Default true; false answers the upgrade 426, from which Codex falls back to HTTP at once.
    pub responses_websocket: Option<bool>,
    /// Time allowed from a request's first byte to the end of its head (slowloris guard). Default 10 s.
    pub header_read_timeout_ms: Option<u64>,
    /// Longest silence allowed while a client sends a body. Default 30 s.
    pub body_read_timeout_ms: Option<u64>,
    /// How long an idle client connection is kept open between requests. Default 75 s.
    pub keepalive_timeout_ms: Option<u64>,
    /// Longest a single write to a client may block (a client that stopped reading). Default 60 s.
    pub write_timeout_ms: Option<u64>,
    /// Longest a client may take to send a whole request body, however steadily it trickles.
    /// Default 120 s.
    pub body_timeout_ms: Option<u64>,
    /// Bytes of provider answers one worker may hold whole at once (answers read for
    /// translation); beyond it a request gets a 503 in its format. Default 128 MiB.
    pub max_buffered_bytes: Option<Spanned<usize>>,
    /// Share the listen port with another process already on it (SO_REUSEPORT), as a
    /// zero-downtime restart does. Default false: `serve` refuses a port something listens on.
    pub reuse_port: Option<bool>,
    /// On SIGTERM/SIGINT, how long responses in flight (streams included) may run before they
    /// are ended with their format's error event. Default 30 s.
    pub drain_timeout_ms: Option<u64>,
    /// Where `serve` writes its pid (for `ringway reload`); removed at a clean exit.
    pub pid_file: Option<Spanned<String>>,
    /// TLS termination on `listen`.
    pub tls: Option<RawServerTls>,
    /// Prefix of the gateway's response headers (`x-ringway-request-id`, the custody
    /// headers, …). Default `x-ringway-`.
    pub header_prefix: Option<Spanned<String>>,
    /// This gateway's name in custody paths (`NODE-JURISDICTION -> …`). Default `ringway`.
    pub node: Option<Spanned<String>>,
    /// ISO 3166-1 alpha-2 code of where this gateway runs, for custody paths.
    pub jurisdiction: Option<Spanned<String>>,
    /// The tier a request runs in when neither it nor its key names one. Default: none.
    pub default_tier: Option<Spanned<String>>,
}

/// `[server.tls]`: `server.listen` speaks HTTPS with this certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    /// PEM file: the certificate chain, leaf first. Relative to the config file's directory.
    pub cert: Spanned<String>,
    /// PEM file: the leaf's private key (PKCS#8, PKCS#1 RSA or SEC1 EC). Relative to the config
    /// file's directory.
    pub key: Spanned<String>,
    /// Time allowed from accept to a finished TLS handshake. Default 10 s.
    pub handshake_timeout_ms: Option<u64>,
}

/// `[upstream]`: defaults every provider inherits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// TCP + TLS connect budget. Default 5 s.
    pub connect_timeout_ms: Option<u64>,
    /// Wait for the response head after the request is sent. Default 300 s
    /// (a non-streaming completion sends nothing until it is done).
    pub first_byte_timeout_ms: Option<u64>,
    /// The same wait for a streamed request (its head comes before the answer). Default 60 s,
    /// or `first_byte_timeout_ms` when that is shorter.
    pub stream_first_byte_timeout_ms: Option<u64>,
    /// Longest silence allowed between body chunks. Default 120 s.
    pub idle_timeout_ms: Option<u64>,
    /// Idle pooled connections older than this are closed, not reused. Default 60 s.
    pub pool_idle_timeout_ms: Option<u64>,
    /// Idle connections kept per provider per worker. Default 64.
    pub pool_max_idle: Option<usize>,
}

/// `[[provider]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Unique name, used in route targets (`name/model`).
    pub name: Spanned<String>,
    /// `"openai"` (any OpenAI-compatible server) or `"anthropic"`.
    pub kind: Spanned<String>,
    /// Base URL. openai kind: up to and including `/v1` (requests go to `{base}/chat/completions`);
    /// anthropic kind: the host root (requests go to `{base}/v1/messages`). bedrock and vertex:
    /// optional, replacing the region's host (private endpoints, tests); a `preset` fills it.
    pub base_url: Option<Spanned<String>>,
    /// Fills `base_url` (and the key's header) for a cloud's endpoint that speaks the kind's
    /// API: `"bedrock-runtime"` or `"bedrock-mantle"`, with `region`.
    pub preset: Option<Spanned<String>>,
    /// vertex: the Google Cloud project.
    pub project: Option<Spanned<String>>,
    /// bedrock: the AWS shared-config profile whose keys sign requests (default `$AWS_PROFILE`,
    /// then `default`).
    pub aws_profile: Option<Spanned<String>>,
    /// bedrock: a container-style credentials endpoint (URL) that gives expiring keys.
    pub aws_credentials_url: Option<Spanned<String>>,
    /// vertex: a service-account (or authorized-user) JSON file (default
    /// `$GOOGLE_APPLICATION_CREDENTIALS`).
    pub google_credentials: Option<Spanned<String>>,
    /// vertex: a metadata server to ask for access tokens (the host's own on Google Cloud).
    pub google_metadata_url: Option<Spanned<String>>,
    /// Environment variable holding the provider API key. Omit for servers that need none.
    pub api_key_env: Option<Spanned<String>>,
    /// PEM file of extra CA certificates to trust for this provider (besides the webpki roots).
    pub ca_file: Option<Spanned<String>>,
    /// `anthropic-version` sent when the client sent none. Default `2023-06-01`.
    pub anthropic_version: Option<Spanned<String>>,
    /// Per-provider override of `[upstream] connect_timeout_ms`.
    pub connect_timeout_ms: Option<u64>,
    /// Per-provider override of `[upstream] first_byte_timeout_ms`.
    pub first_byte_timeout_ms: Option<u64>,
    /// Per-provider override of `[upstream] stream_first_byte_timeout_ms`.
    pub stream_first_byte_timeout_ms: Option<u64>,
    /// Per-provider override of `[upstream] idle_timeout_ms`.
    pub idle_timeout_ms: Option<u64>,
    /// openai kind, translated requests: the output cap field, `"max_completion_tokens"`
    /// (default, current API) or `"max_tokens"` (older OpenAI-compatible servers).
    pub max_tokens_field: Option<Spanned<String>>,
    /// Client headers to forward besides the default set: names or `prefix*` patterns.
    pub forward_headers: Option<Vec<Spanned<String>>>,
    /// Client headers never to forward to this provider, default set included.
    pub drop_headers: Option<Vec<Spanned<String>>>,
    /// anthropic kind, requests from OpenAI clients: the thinking form `reasoning_effort`
    /// becomes, `"auto"` (default: by model id), `"adaptive"` or `"budget"`.
    pub thinking_style: Option<Spanned<String>>,
    /// openai kind, Responses requests (`POST /v1/responses`): `"native"` sends them unchanged
    /// to `{base}/responses`, `"chat"` translates them to Chat Completions. Default: `"native"`
    /// for `api.openai.com`, `"chat"` otherwise.
    pub responses: Option<Spanned<String>>,
    /// Where the provider runs (`ca-central-1`): a label for custody headers. bedrock and
    /// vertex (and presets): the cloud region (Vertex location) requests go to; its country is
    /// the provider's jurisdiction unless `jurisdiction` says otherwise.
    pub region: Option<Spanned<String>>,
    /// ISO 3166-1 alpha-2 code of where the provider processes data (`CA`). A provider
    /// without one is never inside a residency tier.
    pub jurisdiction: Option<Spanned<String>>,
    /// Who holds the data there: a label such as `provider-managed` or `self-hosted`.
    pub custody: Option<Spanned<String>>,
}

/// `[[route]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The model name clients send.
    pub model: Spanned<String>,
    /// Other names clients send for the same route (native model ids).
    pub aliases: Option<Vec<Spanned<String>>>,
    /// Its Responses answers may be stored (`[responses.store]`). Default true.
    pub store_responses: Option<bool>,
    /// Refuse (400) a request whose translation would drop, change or approximate anything
    /// lossy (the translation ledger), before it is sent. Default false.
    pub strict_translation: Option<bool>,
    /// Export this route's prompts and completions in its spans (`[tracing]`; as listing it
    /// in `tracing.content_routes`). Default false.
    pub trace_content: Option<bool>,
    /// `provider/model` targets, in order of preference: strings, or tables with settings.
    pub targets: Vec<Spanned<RawTarget>>,
    /// Requests per minute to this route, all keys together. Default: no limit.
    pub rpm: Option<Spanned<u64>>,
    /// Tokens per minute, input plus output. Default: no limit.
    pub tpm: Option<Spanned<u64>>,
    /// Input tokens per minute. Default: no limit.
    pub input_tpm: Option<Spanned<u64>>,
    /// Output tokens per minute. Default: no limit.
    pub output_tpm: Option<Spanned<u64>>,
    /// Streaming requests open at once. Default: no limit.
    pub max_streams: Option<Spanned<u64>>,
    /// What `GET /v1/models` advertises for this model.
    #[serde(default)]
    pub capabilities: RawCapabilities,
    /// `"ordered"` (default), `"weighted"` or `"least_latency"`.
    pub strategy: Option<Spanned<String>>,
    /// Retries on the same target before moving on.
    pub retries: Option<u32>,
    /// Statuses that retry or move on to the next target.
    pub retry_on: Option<Vec<Spanned<u16>>>,
    /// First backoff step.
    pub backoff_base_ms: Option<u64>,
    /// Largest backoff step.
    pub backoff_max_ms: Option<u64>,
    /// Longest provider `retry-after` honoured.
    pub max_retry_after_ms: Option<u64>,
    /// Deadline from arrival until the answer starts.
    pub request_timeout_ms: Option<Spanned<u64>>,
    /// Streams: longest wait for the first content event before falling back.
    pub first_token_timeout_ms: Option<Spanned<u64>>,
    /// Streams: the response head budget for every target of the route (over the providers'
    /// `stream_first_byte_timeout_ms`).
    pub stream_first_byte_timeout_ms: Option<Spanned<u64>>,
    /// Consecutive failures that open a target's breaker (0: never).
    pub breaker_failures: Option<u32>,
    /// How long an open breaker skips its target.
    pub breaker_cooldown_ms: Option<u64>,
}

/// One route target: `"provider/model"`, or `{ target = "provider/model", … }` when the
/// target overrides a provider setting.
#[derive(Debug)]
pub enum RawTarget {
    /// The plain string form.
    Text(String),
    /// The table form.
    Table(RawTargetTable),
}

/// The table form of a route target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetTable {
    /// `provider/model`.
    pub target: Spanned<String>,
    /// Override of the provider's `thinking_style` for this target.
    pub thinking_style: Option<Spanned<String>>,
    /// Share of first picks under `strategy = "weighted"` (default 1).
    pub weight: Option<u32>,
    /// Override of the provider's `region` for this target.
    pub region: Option<Spanned<String>>,
    /// Override of the provider's `jurisdiction` for this target.
    pub jurisdiction: Option<Spanned<String>>,
    /// Override of the provider's `custody` for this target.
    pub custody: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TargetVisitor)
    }
}

/// Takes either target form; anything else is refused with both forms named.
struct TargetVisitor;

impl<'de> serde::de::Visitor<'de> for TargetVisitor {
    type Value = RawTarget;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a \"provider/model\" string or a { target = \"provider/model\", … } table")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTarget, E> {
        Ok(RawTarget::Text(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawTarget, E> {
        Ok(RawTarget::Text(v))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
        RawTargetTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(RawTarget::Table)
    }
}

/// `capabilities = { … }` on a route. Unset fields are reported as unknown (`null`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    /// Accepts image input.
    pub vision: Option<bool>,
    /// Supports tool calling.
    pub tools: Option<bool>,
    /// Supports extended thinking / reasoning.
    pub thinking: Option<bool>,
    /// Context window in tokens.
    pub context_window: Option<u64>,
    /// Largest output in tokens.
    pub max_output: Option<u64>,
}

/// `[[key]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// Appears in logs and metrics, never the key itself.
    pub name: Spanned<String>,
    /// Hex SHA-256 of the key.
    pub sha256: Option<Spanned<String>>,
    /// Or: environment variable holding the key in clear.
    pub key_env: Option<Spanned<String>>,
    /// Allow-list of model names; `prefix*` matches by prefix. Default: all.
    pub routes: Option<Vec<Spanned<String>>>,
    /// May call the admin endpoints (`POST /admin/reload`). Default false.
    pub admin: Option<bool>,
    /// Requests per minute (burst: the same number at once). Default: no limit.
    pub rpm: Option<Spanned<u64>>,
    /// Tokens per minute, input plus output, counted from usage. Default: no limit.
    pub tpm: Option<Spanned<u64>>,
    /// Input tokens per minute, from usage. Default: no limit.
    pub input_tpm: Option<Spanned<u64>>,
    /// Output tokens per minute, from usage. Default: no limit.
    pub output_tpm: Option<Spanned<u64>>,
    /// Streaming requests open at once. Default: no limit.
    pub max_streams: Option<Spanned<u64>>,
    /// Spending limit: money (priced by `[[price]]`) and/or tokens over a day, a month or a
    /// fixed window.
    pub budget: Option<Spanned<RawBudget>>,
    /// Residency tiers this key may use. Default: any (and none).
    pub tiers: Option<Vec<Spanned<String>>>,
    /// The tier its requests run in when they name none.
    pub default_tier: Option<Spanned<String>>,
    /// PII substitution for every request of this key. Default false.
    pub pii: Option<bool>,
    /// Its Responses answers may be stored (`[responses.store]`). Default true.
    pub store_responses: Option<bool>,
    /// Refuse (400) a request whose translation would be lossy (see the route's key of the
    /// same name). Default false.
    pub strict_translation: Option<bool>,
}

/// `[key.budget]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// US dollars per period (models priced in `[[price]]`).
    pub usd: Option<Spanned<f64>>,
    /// Tokens (input + output) per period.
    pub tokens: Option<Spanned<u64>>,
    /// "day" or "month" (UTC calendar), or "hours" with `hours` (fixed windows from the Unix
    /// epoch). Default "month".
    pub period: Option<Spanned<String>>,
    /// The fixed window's length, with `period = "hours"`.
    pub hours: Option<Spanned<u32>>,
    /// Output tokens reserved for a request that sets no output limit. Default 4096.
    pub reserve_output_tokens: Option<Spanned<u64>>,
}

/// `[[price]]`: what one model's tokens cost, in US dollars per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// The provider's model id as served (`prefix*` matches by prefix).
    pub model: Spanned<String>,
    /// Only when served by this provider. Default: any.
    pub provider: Option<Spanned<String>>,
    pub input: Spanned<f64>,
    pub output: Spanned<f64>,
    /// Default: `input`.
    pub cache_read: Option<Spanned<f64>>,
    /// Default: `input`.
    pub cache_write: Option<Spanned<f64>>,
}

/// `[pii]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPii {
    /// Substitute for every request. Default false (then: per key, per route, per request).
    pub enabled: Option<bool>,
    /// Route names (as clients send them) whose requests are always substituted.
    pub routes: Option<Vec<Spanned<String>>>,
    /// Operator regexes; each match is replaced by a same-shape stand-in.
    pub regexes: Option<Vec<Spanned<String>>>,
    /// Files of person names, one per line (`#` starts a comment); relative to this file.
    pub dictionaries: Option<Vec<Spanned<String>>>,
    /// Files of place names, same format.
    pub places: Option<Vec<Spanned<String>>>,
    /// Environment variable holding the stand-in secret (any text, 16 bytes or more). Unset:
    /// drawn at start, so stand-ins are stable per key only until a restart.
    pub secret_env: Option<Spanned<String>>,
}

/// `[translate]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTranslate {
    /// `max_tokens` sent to an Anthropic provider when an OpenAI client gave none. Default 4096.
    pub default_max_tokens: Option<u32>,
    /// OpenAI `reasoning_effort` ⇄ Anthropic `thinking.budget_tokens`.
    #[serde(default)]
    pub reasoning_effort_budgets: RawEffortBudgets,
}

/// `[translate.reasoning_effort_budgets]`: thinking budget per effort, and the reverse cut-offs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEffortBudgets {
    /// Budget for `minimal`. Default 1024.
    pub minimal: Option<u32>,
    /// Budget for `low`. Default 1024.
    pub low: Option<u32>,
    /// Budget for `medium`. Default 2048.
    pub medium: Option<u32>,
    /// Budget for `high`. Default 4096.
    pub high: Option<u32>,
    /// Budget for `xhigh`. Default 4096.
    pub xhigh: Option<u32>,
    /// Budget for `max`. Default 4096.
    pub max: Option<u32>,
    /// Anthropic → OpenAI: budgets up to this are `low`. Default 2048.
    pub low_up_to: Option<u32>,
    /// Anthropic → OpenAI: budgets up to this are `medium`, above it `high`. Default 8192.
    pub medium_up_to: Option<u32>,
}
