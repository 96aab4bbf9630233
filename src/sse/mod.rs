//! Sans-IO Server-Sent Events codec: the incremental zero-copy decoder for upstream bodies
//! and the small encoder for frames the gateway builds itself.
//!
//! Events come out as `Bytes::slice`s of the chunk they arrived in; only an event that
//! straddles chunks is copied (once, into a carry buffer). Concatenating every
//! [`Event::raw`] in order plus [`Decoder::take_remainder`] reproduces the input byte for
//! byte, so a same-format relay forwards `raw` without re-encoding.

use std::fmt;

use bytes::Bytes;

mod decoder;
mod encoder;

pub use decoder::Decoder;
pub use encoder::{write_comment, write_event};

/// Default upper bound on one event's bytes (its raw block, including any stray blank lines
/// before it and the part held in the carry, but not the LF of a CRLF at either end, which
/// may arrive in a different read). Bigger events fail with
/// [`SseError::EventTooLarge`]; this bounds the memory one stream can pin.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The `data` payload OpenAI sends as its final event.
pub const OPENAI_DONE: &[u8] = b"[DONE]";

/// Event type the spec assigns when no (or an empty) `event` field was sent.
const DEFAULT_EVENT_TYPE: &[u8] = b"message";

/// Why the decoder stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event grew past the decoder's byte bound. The decoder stays failed.
    EventTooLarge,
    /// A binary framing carrying the events (AWS event stream) is broken: a bad checksum, a
    /// malformed or oversized frame, or a payload that is not what the framing promises. The
    /// decoder stays failed.
    BadFrame(String),
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventTooLarge => f.write_str("SSE event exceeds the size limit"),
            Self::BadFrame(why) => write!(f, "malformed event-stream frame: {why}"),
        }
    }
}

impl std::error::Error for SseError {}

/// One complete event block: everything up to and including its terminating blank line.
///
/// The `Bytes` fields are slices of `raw` (no copy), except: `data` of an event with more
/// than one `data` line (the lines must be joined), and `event` for the provider's
/// well-known names, which are equal static `Bytes` (no refcount traffic).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Exact wire bytes of the block, including the blank line and any stray blank lines
    /// (or a leading BOM) before it: what a same-format relay writes out.
    pub raw: Bytes,
    /// Value of the last `event` field, if any.
    pub event: Option<Bytes>,
    /// The block's `data` lines joined by `\n`; `None` if it had no `data` field.
    pub data: Option<Bytes>,
    /// Value of the last valid `id` field of this block (values containing NUL are ignored,
    /// as the spec says). Not inherited from earlier events.
    pub id: Option<Bytes>,
    /// Value of the last valid `retry` field (ASCII digits only), in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// True when the block carries no `event`, `data`, `id` or `retry` field: keep-alive
    /// comments or unknown fields only. A relay forwards it; a translator skips it.
    pub fn is_comment_only(&self) -> bool {
        self.event.is_none() && self.data.is_none() && self.id.is_none() && self.retry.is_none()
    }

    /// The event type: the `event` field, or `message` when it is absent or empty.
    pub fn event_type(&self) -> &[u8] {
        match &self.event {
            Some(name) if !name.is_empty() => name,
            _ => DEFAULT_EVENT_TYPE,
        }
    }

    /// True for OpenAI's end-of-stream marker `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.as_deref() == Some(OPENAI_DONE)
    }
}
