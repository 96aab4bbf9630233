//! ringway: the hot-path core of an LLM API gateway.
//!
//! ```text
//! client (OpenAI or Anthropic SDK, Claude Code, Codex: Chat Completions, Messages, Responses)
//!   │ HTTP/1.1, or HTTPS (server::tls: rustls handshake, then the same loop)
//!   ▼ one worker per core (workers, on rt): monoio on io_uring, SO_REUSEPORT listener
//! server   accept → downstream: http1 head (httparse) → keep-alive loop
//! proxy    classify → admit (key, bounded body, json) → route (routing: candidates, breakers)
//!          → attempt* (splice or translate; upstream pool, TCP/TLS; head, first content)
//!          → commit (the one head writer) → pump (SSE events, zero-copy, through a stage) → log
//! ```
//!
//! Direction: workers → server → proxy → routing/upstream/translate → dialect → wire/sse/json/
//! http1 → error, with `rt` under every IO layer. Pure, sans-IO layers (`http1`, `ws`, `sse`,
//! `json`, `wire`, `dialect`, `translate`) never touch sockets or config; `downstream`,
//! `upstream`, `server`, `rt` and `workers` own the IO.

pub mod access_log;
pub mod auth;
pub mod budget;
pub mod calendar;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod custody;
pub mod dialect;
pub mod downstream;
pub mod error;
pub mod format;
pub mod headers;
pub mod http1;
pub mod json;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod mock;
pub mod offload;
pub mod pii;
pub mod preflight;
pub mod provider;
pub mod proxy;
pub mod recent;
pub mod responses_store;
pub mod routing;
pub mod rt;
pub mod scrub;
pub mod seal;
pub mod server;
pub mod sse;
pub mod tokens;
pub mod trace;
pub mod translate;
pub mod upstream;
pub mod usage;
pub mod wire;
pub mod workers;
/// Sans-IO WebSocket (RFC 6455): the upgrade handshake, frames, and message assembly.
pub mod ws;
