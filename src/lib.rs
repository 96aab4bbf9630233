//! ringway: the hot-path core of an LLM API gateway.
//!
//! ```text
//! client (OpenAI or Anthropic SDK)
//!   │ HTTP/1.1
//!   ▼ one worker per core (runtime): monoio on io_uring, SO_REUSEPORT listener
//! server  accept → http1 head (httparse) → bounded body
//! proxy   auth → json (validate, find `model`) → config routing → plan
//! upstream per-worker keep-alive pool (TCP/TLS) → our own HTTP/1.1 client on the sans-IO codec
//! proxy   ← response: sse events relayed as they arrive (zero-copy slices)
//! ```
//!
//! Pure, sans-IO layers (`http1`, `sse`, `json`) never touch sockets or config; `upstream`,
//! `server` and `runtime` own the IO.

pub mod auth;
pub mod config;
pub mod downstream;
pub mod error;
pub mod format;
pub mod headers;
pub mod http1;
pub mod json;
pub mod log;
pub mod metrics;
pub mod mock;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod sse;
pub mod tokens;
pub mod translate;
pub mod upstream;
pub mod wire;
