//! Amazon Bedrock's stream framing: AWS event-stream frames (`application/vnd.amazon.eventstream`)
//! decoded into the Anthropic SSE events they carry, so the Anthropic stream machinery reads a
//! Bedrock stream as Anthropic's own. Sans-IO, deterministic.
//!
//! Frames are decoded by the vendor's codec (`aws_smithy_eventstream`), which checks both
//! CRC32s but bounds nothing: this decoder reads each prelude first, checks its CRC and refuses
//! a frame over [`MAX_FRAME_BYTES`] before buffering its body.
//!
//! What a frame becomes:
//! - `:message-type` `event`, `:event-type` `chunk`: its payload `{"bytes":"<base64>","p":"…"}`
//!   holds one Anthropic stream event's JSON; it becomes `event: <its type>` / `data: <JSON>`.
//!   `p` is length padding and is never read.
//! - `:message-type` `exception` (a modeled error, `:exception-type`, payload `{"message":…}`)
//!   and `error` (unmodeled, `:error-code` / `:error-message` headers): an Anthropic `error`
//!   event, its type from [`anthropic_error_type`], so a Bedrock failure reads as the provider's.
//! - Any other valid frame (another event type, no `:message-type`, such as the CRT test
//!   vectors) is skipped: the framing is intact, and AWS may add members to a stream's union.
//!   A broken frame (checksum, lengths, headers, a chunk that is not base64 JSON) ends the
//!   stream with [`SseError::BadFrame`]; the decoder stays failed.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};

use crate::sse::{self, SseError};

/// Largest frame accepted (prelude to message CRC). AWS's own C runtime caps a message at
/// 16 MiB; one Anthropic event is a few KiB, so anything near this is a broken upstream, and
/// the cap bounds what one stream can make us buffer (the prelude's length field allows 4 GiB).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Prelude bytes: total length, headers length, prelude CRC (u32 big-endian each).
const PRELUDE_BYTES: usize = 12;

/// Smallest frame: a prelude and the message CRC, no headers, no payload.
const MIN_FRAME_BYTES: usize = 16;

/// Anthropic's error type for a Bedrock stream exception (`:exception-type`) or unmodeled error
/// (`:error-code`), compared without ASCII case (AWS spells the same name `throttlingException`
/// in a stream and `ThrottlingException` in an HTTP error). The types are the ones Anthropic's
/// API sends for the same condition, so failover and the client's status match a direct call.
/// Unknown names are `api_error` (a server-side failure).
pub fn anthropic_error_type(aws_name: &str) -> &'static str {
    EXCEPTION_ERROR_TYPES
        .iter()
        .find(|(aws, _)| aws.eq_ignore_ascii_case(aws_name))
        .map_or(UNKNOWN_EXCEPTION_ERROR_TYPE, |(_, anthropic)| anthropic)
}

/// Bedrock stream exceptions (the `ResponseStream` union's error members, and the operation's
/// quota error) and Anthropic's error type for each.
pub const EXCEPTION_ERROR_TYPES: &[(&str, &str)] = &[
    // 429 on Bedrock; Anthropic says rate_limit_error for the same.
    ("throttlingException", "rate_limit_error"),
    ("serviceQuotaExceededException", "rate_limit_error"),
    // 503: the model is out of capacity, Anthropic's 529 overloaded.
    ("serviceUnavailableException", "overloaded_error"),
    // 400: the request is wrong; retrying elsewhere gives the same answer.
    ("validationException", "invalid_request_error"),
    // 500, and the model's own stream failing (424 with the model's original status).
    ("internalServerException", "api_error"),
    ("modelStreamErrorException", "api_error"),
    // 408: the model took too long.
    ("modelTimeoutException", "timeout_error"),
];

/// Anthropic's error type for an exception not in [`EXCEPTION_ERROR_TYPES`].
pub const UNKNOWN_EXCEPTION_ERROR_TYPE: &str = "api_error";

/// Decoder of one Bedrock response stream: bytes in, Anthropic SSE events out. Holds what was
/// pushed and not yet decoded; each frame is handed to the vendor codec whole, once its
/// prelude has passed the checks.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    failed: Option<SseError>,
    /// Largest frame taken ([`MAX_FRAME_BYTES`], or less to match an event bound).
    max_frame: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            buf: BytesMut::new(),
            frames: MessageFrameDecoder::default(),
            failed: None,
            max_frame: MAX_FRAME_BYTES,
        }
    }
}

/// Room in a frame beyond its event's base64: the prelude, headers, the JSON wrapper and the
/// padding field.
const FRAME_OVERHEAD_BYTES: usize = 64 << 10;

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty decoder whose frames may carry events of at most `max_event` bytes (the bound
    /// an SSE stream's events have): a frame is refused past the base64 of that, plus
    /// [`FRAME_OVERHEAD_BYTES`], never past [`MAX_FRAME_BYTES`].
    pub fn with_event_bound(max_event: usize) -> Self {
        let base64 = max_event.saturating_add(2) / 3 * 4;
        Decoder {
            max_frame: base64
                .saturating_add(FRAME_OVERHEAD_BYTES)
                .min(MAX_FRAME_BYTES),
            ..Self::default()
        }
    }

    /// Bytes read from the provider. Ignored once the decoder has failed.
    pub fn push(&mut self, data: Bytes) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(&data);
        }
    }

    /// The next event, if a frame carrying one is complete. Frames that carry no event are
    /// skipped. After an error the decoder drops its buffer and keeps returning it.
    pub fn next_event(&mut self) -> Result<Option<sse::Event>, SseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let step = self.next_frame().and_then(|m| match m {
                Some(m) => to_event(&m).map(Some),
                None => Ok(None),
            });
            match step {
                Ok(Some(Some(ev))) => return Ok(Some(ev)),
                Ok(Some(None)) => continue,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.buf = BytesMut::new();
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// What is left when the stream ends: nothing, a partial frame is not an event (the
    /// stream's end without its final event is the pump's to judge).
    pub fn finish(&mut self) -> Option<sse::Event> {
        self.buf.clear();
        None
    }

    /// The next whole frame, decoded by the vendor codec, once its prelude passed our bounds.
    fn next_frame(&mut self) -> Result<Option<Message>, SseError> {
        if self.buf.len() < PRELUDE_BYTES {
            return Ok(None);
        }
        let total = check_prelude(&self.buf[..PRELUDE_BYTES], self.max_frame)?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        match self.frames.decode_frame(frame) {
            Ok(DecodedFrame::Complete(m)) => Ok(Some(m)),
            // The whole frame was handed over; the codec wanting more means the lengths lie.
            Ok(DecodedFrame::Incomplete) => Err(bad("frame shorter than its length says")),
            Err(e) => Err(bad(format!("{e}"))),
        }
    }
}

fn bad(why: impl Into<String>) -> SseError {
    SseError::BadFrame(why.into())
}

/// The frame's total length from a 12-byte prelude, after checking its CRC, the bounds and
/// that the headers fit: checked here so a corrupt or hostile length never makes us wait for,
/// or buffer, bytes that cannot be a frame.
fn check_prelude(p: &[u8], max_frame: usize) -> Result<usize, SseError> {
    let word = |i: usize| {
        p.get(i..i + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_be_bytes)
    };
    let (total, headers, crc) = (word(0), word(4), word(8));
    let computed = crc32fast::hash(p.get(..8).unwrap_or_default());
    if computed != crc {
        return Err(bad(format!(
            "prelude checksum mismatch: expected {computed:#010x}, found {crc:#010x}"
        )));
    }
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total > max_frame {
        return Err(bad(format!(
            "frame of {total} bytes exceeds the limit of {max_frame}"
        )));
    }
    let headers = usize::try_from(headers).unwrap_or(usize::MAX);
    if total < MIN_FRAME_BYTES || headers > total - MIN_FRAME_BYTES {
        return Err(bad(format!(
            "frame length {total} cannot hold {headers} header bytes"
        )));
    }
    Ok(total)
}

/// A string header's value, if the frame has it as a string.
fn header<'m>(m: &'m Message, name: &str) -> Option<&'m str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// The event a frame carries; `None` for a frame that carries none.
fn to_event(m: &Message) -> Result<Option<sse::Event>, SseError> {
    match header(m, ":message-type") {
        Some("event") if header(m, ":event-type") == Some("chunk") => chunk_event(m).map(Some),
        Some("exception") => {
            let name = header(m, ":exception-type").unwrap_or("exception");
            #[derive(serde::Deserialize)]
            struct Payload {
                message: Option<String>,
            }
            // A modeled exception's payload is `{"message":…}`; one we cannot read still ends
            // the stream as the exception it names.
            let message = serde_json::from_slice::<Payload>(m.payload())
                .ok()
                .and_then(|p| p.message);
            Ok(Some(error_event(name, message.as_deref().unwrap_or(name))))
        }
        Some("error") => {
            let code = header(m, ":error-code").unwrap_or("error");
            let message = header(m, ":error-message").unwrap_or(code);
            Ok(Some(error_event(code, message)))
        }
        _ => Ok(None),
    }
}

/// A `chunk`'s Anthropic event: base64 `bytes` decoded, `p` (padding) never looked at. The
/// usual payload (`{"bytes":"…",…}` with the event's `"type"` first, one line) is read by
/// scanning and decoded straight into the event's wire bytes; anything else goes the long
/// way through serde (same result, checked by the tests and the fuzz target).
fn chunk_event(m: &Message) -> Result<sse::Event, SseError> {
    match chunk_event_fast(m.payload()) {
        Some(event) => Ok(event),
        None => chunk_event_slow(m.payload()),
    }
}

/// A chunk read by serde: the reference the fast path must agree with.
fn chunk_event_slow(payload: &[u8]) -> Result<sse::Event, SseError> {
    #[derive(serde::Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        r#type: String,
    }
    let chunk: Chunk<'_> = serde_json::from_slice(payload)
        .map_err(|e| bad(format!("chunk payload is not {{\"bytes\":…}}: {e}")))?;
    let mut json = base64::engine::general_purpose::STANDARD
        .decode(chunk.bytes.as_bytes())
        .map_err(|e| bad(format!("chunk bytes are not base64: {e}")))?;
    let typed: Typed = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("chunk is not an event with a type: {e}")))?;
    if !is_event_type(typed.r#type.as_bytes()) {
        return Err(bad("chunk event type is empty or has control characters"));
    }
    // One SSE `data` line: JSON may break lines between tokens (never inside a string), so
    // such an event is re-written compact; the usual one-line event is carried as sent.
    if json.iter().any(|&b| b == b'\n' || b == b'\r') {
        let v: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| bad(format!("chunk JSON: {e}")))?;
        json = serde_json::to_vec(&v).map_err(|e| bad(format!("chunk JSON: {e}")))?;
    }
    Ok(sse_event(&typed.r#type, &json))
}

/// Base64 characters that decode the first bytes of an event, enough for its type
/// (`{"type":"content_block_delta"` is 29 bytes).
const TYPE_PREFIX_B64: usize = 64;

/// Is this an event type the SSE line can carry as it is?
fn is_event_type(t: &[u8]) -> bool {
    !t.is_empty()
        && t.iter()
            .all(|&b| !b.is_ascii_control() && b != b'"' && b != b'\\')
}

/// The usual chunk, by scanning: None sends it the long way (another member order, escapes,
/// a type not first, line breaks, anything not valid).
fn chunk_event_fast(payload: &[u8]) -> Option<sse::Event> {
    use base64::Engine as _;
    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
    let rest = payload.strip_prefix(b"{\"bytes\":\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest.get(end) != Some(&b'"') {
        return None;
    }
    let b64 = rest.get(..end)?;
    // The type, from the first bytes decoded on their own.
    let head = b64.get(..TYPE_PREFIX_B64.min(b64.len() / 4 * 4))?;
    let mut first = [0u8; TYPE_PREFIX_B64 / 4 * 3];
    let n = B64.decode_slice(head, &mut first).ok()?;
    let after = first.get(..n)?.strip_prefix(b"{\"type\":\"")?;
    let type_len = memchr::memchr(b'"', after)?;
    let event_type = after.get(..type_len)?;
    if !is_event_type(event_type) {
        return None;
    }
    // `event: T\ndata: ` then the whole event decoded in place, then the blank line.
    let mut raw = Vec::with_capacity(16 + type_len + b64.len() / 4 * 3 + 2);
    raw.extend_from_slice(b"event: ");
    raw.extend_from_slice(event_type);
    raw.extend_from_slice(b"\ndata: ");
    let data_at = raw.len();
    B64.decode_vec(b64, &mut raw).ok()?;
    let data_end = raw.len();
    if memchr::memchr2(b'\n', b'\r', raw.get(data_at..)?).is_some() {
        return None;
    }
    raw.extend_from_slice(b"\n\n");
    let raw = Bytes::from(raw);
    Some(sse::Event {
        event: Some(raw.slice(7..7 + type_len)),
        data: Some(raw.slice(data_at..data_end)),
        raw,
        id: None,
        retry: None,
    })
}

/// An Anthropic `error` event for an AWS exception or error named `aws_name`.
fn error_event(aws_name: &str, message: &str) -> sse::Event {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": anthropic_error_type(aws_name), "message": message},
    });
    sse_event("error", body.to_string().as_bytes())
}

/// The event as Anthropic's SSE carries it: `event: T\ndata: JSON\n\n`, fields slicing `raw`.
fn sse_event(event_type: &str, data: &[u8]) -> sse::Event {
    let mut raw = BytesMut::with_capacity(event_type.len() + data.len() + 16);
    raw.extend_from_slice(b"event: ");
    raw.extend_from_slice(event_type.as_bytes());
    raw.extend_from_slice(b"\ndata: ");
    raw.extend_from_slice(data);
    raw.extend_from_slice(b"\n\n");
    let raw = raw.freeze();
    let name_at = 7;
    let data_at = name_at + event_type.len() + 7;
    sse::Event {
        event: Some(raw.slice(name_at..name_at + event_type.len())),
        data: Some(raw.slice(data_at..data_at + data.len())),
        raw,
        id: None,
        retry: None,
    }
}

/// Encode one message as a frame with the vendor codec: tests and fuzz targets build streams
/// with it (never with copied binary data).
pub fn encode_frame(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    // Only over-long headers or payloads fail to encode; a caller's test data is never that.
    let _ = aws_smithy_eventstream::frame::write_message_to(m, &mut out);
    out
}

/// A Bedrock `chunk` frame carrying `event_json`, with `padding` as its `p`.
pub fn chunk_frame(event_json: &[u8], padding: &str) -> Vec<u8> {
    use aws_smithy_types::event_stream::Header;
    let b64 = base64::engine::general_purpose::STANDARD.encode(event_json);
    let payload = serde_json::json!({"bytes": b64, "p": padding}).to_string();
    encode_frame(
        &Message::new(Bytes::from(payload))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String("chunk".into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            )),
    )
}

/// A Bedrock modeled exception frame (`:exception-type` = `name`, payload `{"message":…}`).
pub fn exception_frame(name: &str, message: &str) -> Vec<u8> {
    use aws_smithy_types::event_stream::Header;
    let payload = serde_json::json!({ "message": message }).to_string();
    encode_frame(
        &Message::new(Bytes::from(payload))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String(name.to_owned().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            )),
    )
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::event_stream::Header;

    use super::*;

    const START: &str =
        r#"{"type":"message_start","message":{"id":"msg_1","role":"assistant","content":[]}}"#;
    const DELTA: &str =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \n"}}"#;
    const STOP: &str =
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#;

    fn drain(d: &mut Decoder) -> Result<Vec<sse::Event>, SseError> {
        let mut out = Vec::new();
        while let Some(ev) = d.next_event()? {
            out.push(ev);
        }
        Ok(out)
    }

    fn decode_split(bytes: &[u8], step: usize) -> Result<Vec<sse::Event>, SseError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step.max(1)) {
            d.push(Bytes::copy_from_slice(piece));
            out.extend(drain(&mut d)?);
        }
        Ok(out)
    }

    fn stream() -> Vec<u8> {
        [
            chunk_frame(START.as_bytes(), "abcdefghij"),
            chunk_frame(DELTA.as_bytes(), ""),
            chunk_frame(STOP.as_bytes(), "abcdefghijklmnopqrstuvwxyzABCDEF"),
        ]
        .concat()
    }

    #[test]
    fn a_chunk_becomes_the_anthropic_sse_event() {
        let evs = decode_split(&chunk_frame(START.as_bytes(), "abc"), usize::MAX).unwrap();
        assert_eq!(evs.len(), 1);
        let ev = &evs[0];
        assert_eq!(ev.event.as_deref(), Some(&b"message_start"[..]));
        assert_eq!(ev.data.as_deref(), Some(START.as_bytes()));
        let raw = format!("event: message_start\ndata: {START}\n\n");
        assert_eq!(&ev.raw[..], raw.as_bytes());
        // The event reads exactly as the SSE decoder reads Anthropic's own bytes.
        let mut sse = sse::Decoder::new(sse::MAX_EVENT_BYTES);
        sse.push(Bytes::from(raw));
        assert_eq!(sse.next_event().unwrap().as_ref(), Some(ev));
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let bytes = stream();
        let whole = decode_split(&bytes, usize::MAX).unwrap();
        assert_eq!(whole.len(), 3);
        let types: Vec<_> = whole.iter().map(|e| e.event_type().to_vec()).collect();
        assert_eq!(
            types,
            [
                &b"message_start"[..],
                b"content_block_delta",
                b"message_stop"
            ]
        );
        for step in 1..bytes.len() {
            assert_eq!(decode_split(&bytes, step).unwrap(), whole, "step {step}");
        }
        // Two pieces cut at every byte.
        for cut in 0..=bytes.len() {
            let mut d = Decoder::new();
            d.push(Bytes::copy_from_slice(&bytes[..cut]));
            let mut got = drain(&mut d).unwrap();
            d.push(Bytes::copy_from_slice(&bytes[cut..]));
            got.extend(drain(&mut d).unwrap());
            assert_eq!(got, whole, "cut {cut}");
        }
    }

    #[test]
    fn padding_is_ignored() {
        let a = decode_split(&chunk_frame(DELTA.as_bytes(), ""), usize::MAX).unwrap();
        let long = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".repeat(5);
        let b = decode_split(&chunk_frame(DELTA.as_bytes(), &long), usize::MAX).unwrap();
        assert_eq!(a, b);
        assert!(!b[0].raw.windows(5).any(|w| w == b"abcde"));
    }

    #[test]
    fn a_multi_line_event_is_carried_on_one_data_line() {
        let pretty = b"{\n  \"type\": \"ping\"\n}";
        let evs = decode_split(&chunk_frame(pretty, ""), usize::MAX).unwrap();
        assert_eq!(
            &evs[0].raw[..],
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
    }

    fn error_of(ev: &sse::Event) -> (String, String) {
        assert_eq!(ev.event.as_deref(), Some(&b"error"[..]));
        let v: serde_json::Value = serde_json::from_slice(ev.data.as_deref().unwrap()).unwrap();
        assert_eq!(v["type"], "error");
        (
            v["error"]["type"].as_str().unwrap().to_owned(),
            v["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn each_exception_maps_to_anthropic_error() {
        let table = [
            ("throttlingException", "rate_limit_error"),
            ("modelStreamErrorException", "api_error"),
            ("validationException", "invalid_request_error"),
            ("internalServerException", "api_error"),
            ("serviceUnavailableException", "overloaded_error"),
            ("modelTimeoutException", "timeout_error"),
            ("somethingNewException", "api_error"),
        ];
        for (aws, anthropic) in table {
            let bytes = [
                chunk_frame(START.as_bytes(), "p"),
                exception_frame(aws, "Too many tokens, please wait."),
            ]
            .concat();
            let evs = decode_split(&bytes, 7).unwrap();
            assert_eq!(evs.len(), 2, "{aws}");
            let (ty, msg) = error_of(&evs[1]);
            assert_eq!(ty, anthropic, "{aws}");
            assert_eq!(msg, "Too many tokens, please wait.");
        }
        assert_eq!(
            anthropic_error_type("ThrottlingException"),
            "rate_limit_error"
        );
    }

    #[test]
    fn an_unmodeled_error_maps_from_its_headers() {
        let m = Message::new(Bytes::new())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("error".into()),
            ))
            .add_header(Header::new(
                ":error-code",
                HeaderValue::String("ThrottlingException".into()),
            ))
            .add_header(Header::new(
                ":error-message",
                HeaderValue::String("slow down".into()),
            ));
        let evs = decode_split(&encode_frame(&m), usize::MAX).unwrap();
        assert_eq!(
            error_of(&evs[0]),
            ("rate_limit_error".into(), "slow down".into())
        );
    }

    /// The CRT's no-header vector (payload `{'foo':'bar'}`): decodes, carries no event, and is
    /// skipped (documented: a valid frame that is not chunk/exception/error is ignored).
    #[test]
    fn the_crt_vector_decodes_and_is_skipped() {
        let hex = "0000001d00000000fd528c5a7b27666f6f273a27626172277dc3653936";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut d = Decoder::new();
        d.push(Bytes::from(bytes.clone()));
        d.push(Bytes::from(chunk_frame(STOP.as_bytes(), "")));
        let evs = drain(&mut d).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event_type(), b"message_stop");
        // And the vendor codec reads it as the CRT says.
        let m = aws_smithy_eventstream::frame::read_message_from(&bytes[..]).unwrap();
        assert_eq!(&m.payload()[..], b"{'foo':'bar'}");
    }

    fn expect_bad(bytes: Vec<u8>, needle: &str) {
        for step in [1, 5, usize::MAX] {
            let mut d = Decoder::new();
            let mut err = None;
            for piece in bytes.chunks(step) {
                d.push(Bytes::copy_from_slice(piece));
                if let Err(e) = drain(&mut d) {
                    err = Some(e);
                    break;
                }
            }
            match err {
                Some(SseError::BadFrame(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("expected a bad frame ({needle}), got {other:?}"),
            }
            // It stays failed.
            d.push(Bytes::from(chunk_frame(START.as_bytes(), "")));
            assert!(matches!(d.next_event(), Err(SseError::BadFrame(_))));
        }
    }

    #[test]
    fn a_bad_prelude_crc_is_an_error() {
        let mut bytes = chunk_frame(START.as_bytes(), "");
        bytes[9] ^= 0x01;
        expect_bad(bytes, "prelude checksum");
    }

    #[test]
    fn a_bad_message_crc_is_an_error() {
        let mut bytes = chunk_frame(START.as_bytes(), "");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        expect_bad(bytes.clone(), "checksum");
        // A flipped payload byte fails the same check.
        let mut bytes = chunk_frame(START.as_bytes(), "");
        let mid = bytes.len() - 10;
        bytes[mid] ^= 0x01;
        expect_bad(bytes, "checksum");
    }

    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32fast::hash(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        p
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_prelude() {
        // Only the prelude is sent: the limit is enforced before any body is buffered.
        let too_big = u32::try_from(MAX_FRAME_BYTES + 1).unwrap();
        expect_bad(prelude(too_big, 0), "exceeds the limit");
        expect_bad(prelude(u32::MAX, 0), "exceeds the limit");
        expect_bad(prelude(15, 0), "cannot hold");
        expect_bad(prelude(20, 5), "cannot hold");
        // Bound to an event size: a frame that could not carry an event that small is refused.
        let mut d = Decoder::with_event_bound(1 << 20);
        d.push(Bytes::from(prelude(4 << 20, 0)));
        let e = d.next_event().unwrap_err();
        assert!(format!("{e:?}").contains("exceeds the limit"), "{e:?}");
        let mut d = Decoder::with_event_bound(1 << 20);
        d.push(Bytes::from(prelude(1 << 20, 0)));
        assert!(
            matches!(d.next_event(), Ok(None)),
            "a frame within the bound is awaited"
        );
    }

    #[test]
    fn a_chunk_that_is_not_base64_json_is_an_error() {
        let bad_chunk = |payload: &'static str| {
            encode_frame(
                &Message::new(Bytes::from_static(payload.as_bytes()))
                    .add_header(Header::new(
                        ":event-type",
                        HeaderValue::String("chunk".into()),
                    ))
                    .add_header(Header::new(
                        ":message-type",
                        HeaderValue::String("event".into()),
                    )),
            )
        };
        expect_bad(bad_chunk(r#"{"p":"abc"}"#), "chunk payload");
        expect_bad(bad_chunk(r#"{"bytes":"!!"}"#), "base64");
        expect_bad(bad_chunk(r#"{"bytes":"bm90IGpzb24="}"#), "type");
    }

    /// Frames from an independent encoder (the fuzz seeds: Python's struct + zlib.crc32, two
    /// bytes of fuzz pattern first) decode as this crate's own do.
    #[test]
    fn frames_from_an_independent_encoder_decode() {
        let seed = |b: &'static [u8]| decode_split(&b[2..], 3).unwrap();
        let stream = seed(include_bytes!("../../fuzz/seeds/aws_event_stream/stream"));
        let types: Vec<_> = stream.iter().map(|e| e.event_type().to_vec()).collect();
        assert_eq!(
            types,
            [
                &b"message_start"[..],
                b"content_block_delta",
                b"message_stop"
            ]
        );
        let exc = seed(include_bytes!(
            "../../fuzz/seeds/aws_event_stream/exception"
        ));
        assert_eq!(
            error_of(&exc[1]),
            ("rate_limit_error".into(), "Too many requests".into())
        );
        let err = seed(include_bytes!(
            "../../fuzz/seeds/aws_event_stream/unmodeled_error"
        ));
        assert_eq!(error_of(&err[0]), ("api_error".into(), "boom".into()));
    }

    #[test]
    fn finish_yields_nothing_from_a_partial_frame() {
        let bytes = chunk_frame(START.as_bytes(), "");
        let mut d = Decoder::new();
        d.push(Bytes::copy_from_slice(&bytes[..bytes.len() - 1]));
        assert_eq!(d.next_event(), Ok(None));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn the_scanned_chunk_path_agrees_with_serde() {
        use base64::Engine as _;
        let events = [
            r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":3}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\u00e9 \"q\" é 😀"}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"x"}"#,
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}"#,
            r#"{"index":0,"type":"content_block_stop"}"#,
            r#"{"type":"a\u0062c"}"#,
            "{\"type\":\"message_delta\",\n\"delta\":{}}",
        ];
        let long = format!(
            r#"{{"type":"content_block_delta","delta":{{"text":"{}"}}}}"#,
            "w".repeat(5000)
        );
        for e in events.iter().copied().chain([long.as_str()]) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(e);
            for payload in [
                format!(r#"{{"bytes":"{b64}","p":"abcdefghij"}}"#),
                format!(r#"{{"p":"abc","bytes":"{b64}"}}"#),
                format!(r#"{{"bytes":"{b64}"}}"#),
            ] {
                let slow = chunk_event_slow(payload.as_bytes()).unwrap();
                if let Some(fast) = chunk_event_fast(payload.as_bytes()) {
                    assert_eq!(fast.raw, slow.raw, "{e}");
                    assert_eq!(fast.event, slow.event, "{e}");
                    assert_eq!(fast.data, slow.data, "{e}");
                }
                let got = chunk_event(&Message::new(payload.clone().into_bytes()).add_header(
                    aws_smithy_types::event_stream::Header::new(
                        ":message-type",
                        HeaderValue::String("event".into()),
                    ),
                ))
                .unwrap();
                assert_eq!(got.raw, slow.raw, "{e}");
            }
        }
        // The common shape takes the fast path.
        let b64 = base64::engine::general_purpose::STANDARD.encode(events[1]);
        assert!(chunk_event_fast(format!(r#"{{"bytes":"{b64}","p":"ab"}}"#).as_bytes()).is_some());
    }
}
