//! Sans-IO HTTP/1.1 codec for both sides: request head parsing and body framing, response
//! head and chunk writers (the client side); the provider's response head and body framing
//! (`response`, the upstream side).
//!
//! Nothing here touches a socket. The connection owns a `BytesMut` read buffer and calls
//! [`parse_request_head`] until it yields a head, then drives a [`BodyDecoder`] built from
//! [`RequestHead::framing`]; both split consumed bytes off the front of that buffer, so
//! pipelined requests simply follow in the same buffer. Framing rules are strict on purpose:
//! a proxy that guesses at message boundaries invites request smuggling. The same rules
//! ([`FramingFields`]) read the framing of provider responses in `upstream`.

mod body;
mod framing;
mod request;
mod response;
mod write;

#[cfg(test)]
mod prop_tests;

pub use body::{BodyDecoder, BodyError, BodyEvent};
pub use framing::{FramingError, FramingFields};
pub use request::{parse_request_head, HeadError, RequestHead};
pub use response::{
    decode_head, BodyCodec, BodyFraming, BodyReadError, BodyStep, HeadReadError, ResponseHead,
    MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD_BYTES,
};
pub use write::{
    is_token, is_valid_field_value, reason_phrase, write_chunk, write_chunk_header,
    write_request_head, write_response_head, HeaderRefused, RefusedBecause, ResponseBody,
    CONTINUE_100, LAST_CHUNK,
};

/// Largest request head (request line + header fields + blank line, and any leading empty
/// lines) accepted; a longer head is answered with 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields accepted in one request head; more is answered with 431. This is also
/// the size of the on-stack array handed to httparse.
pub const MAX_HEADERS: usize = 128;

/// Longest chunk-size line (hex size plus any chunk extensions, excluding the CRLF). Bounds
/// the bytes a client can make us scan without producing body data.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// Largest trailer section (all trailer field lines, CRLFs included) after the last chunk.
/// Trailers are discarded, so this only bounds the work a client can cause.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Request method. Anything outside the common set is `Other`; the raw token is still
/// available through [`RequestHead::method_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// Any other valid method token (`CONNECT`, `TRACE`, extension methods).
    Other,
}

impl Method {
    /// Maps a method token; methods are case-sensitive (RFC 9110 §9.1), so `get` is `Other`.
    pub fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (a request with neither Content-Length nor Transfer-Encoding).
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}
