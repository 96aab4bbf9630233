//! Talking to providers: connect (TCP, then TLS), a per-worker keep-alive pool, DNS lookups
//! off the worker, writing the request, and reading the response head and body chunk by chunk.
//!
//! The client side is our own, on the same sans-IO pieces as the server side: the request head
//! is written by `http1::write_request_head`, the response head is parsed (bounded, 1xx
//! skipped) by `http1::decode_head`, and `BodyCodec` (on the `http1` chunked decoder) frames the body
//! out of the connection's read buffer, so every framing streams and stays zero-copy. Each
//! connection owns one read buffer that starts small, doubles while reads fill it and halves
//! while they fill half or less: a connection carrying a slow stream holds 1 KiB between
//! events, a bulk response still reads in 64 KiB steps. (monoio-http's client codec, used
//! here before, keeps two fixed 8 KiB buffers per connection, which put 5,000 concurrent
//! streams far over their memory budget.)

mod body;
mod conn;
mod dns;
mod pool;

pub use dns::{DnsCache, DNS_CACHE_TTL};

pub use body::OutBody;
pub use conn::{Conn, COALESCE_BODY_BYTES, FIRST_READ, MAX_READ};
pub use pool::Pool;
