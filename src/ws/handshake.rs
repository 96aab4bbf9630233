//! The opening handshake (RFC 6455 §4.2): whether a request asks for a WebSocket, whether it
//! asks correctly, and the `101 Switching Protocols` head that accepts it.

use std::fmt;

use base64::Engine as _;

use crate::http1::{Method, RequestHead};

/// The GUID appended to the client's key before hashing (RFC 6455 §1.3).
pub const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version there is (RFC 6455 §4.1).
const VERSION: &[u8] = b"13";

/// Length of a valid `Sec-WebSocket-Key`: 16 bytes in padded base64.
const KEY_LEN: usize = 24;

/// Length of a `Sec-WebSocket-Accept` value: 20 SHA-1 bytes in padded base64.
const ACCEPT_LEN: usize = 28;

/// A `Sec-WebSocket-Accept` value: base64 text, safe to write into a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptKey([u8; ACCEPT_LEN]);

impl AcceptKey {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        // base64 output is ASCII; the fallback is unreachable.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (the key's text as sent):
/// base64 of SHA-1 over the key and [`ACCEPT_GUID`]. SHA-1 is what the RFC fixes here; it
/// proves only that the server read the handshake, nothing about security.
pub fn accept_key(key: &[u8]) -> AcceptKey {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(ACCEPT_GUID);
    let digest = ctx.finish();
    let mut out = [0u8; ACCEPT_LEN];
    // 20 bytes always encode to exactly 28; a failure would leave zeros, which no client
    // accepts, rather than a panic.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(digest.as_ref(), &mut out);
    AcceptKey(out)
}

/// Why an upgrade request is refused. Each is answered before any frame, as plain HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not `GET`.
    NotGet,
    /// Not HTTP/1.1 (an HTTP/1.0 request cannot upgrade).
    OldHttp,
    /// No `Host` field.
    NoHost,
    /// `Upgrade` does not list `websocket`.
    NoUpgrade,
    /// `Connection` does not list `upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13.
    BadVersion,
    /// `Sec-WebSocket-Key` missing.
    NoKey,
    /// `Sec-WebSocket-Key` that is not 16 bytes in base64.
    BadKey,
    /// `Sec-WebSocket-Key` or `Sec-WebSocket-Version` given more than once.
    Repeated(&'static str),
}

impl HandshakeError {
    /// The status to answer with: 426 for a version we do not speak (with
    /// [`extra_headers`](Self::extra_headers) naming ours, RFC 6455 §4.4), else 400 (§4.2.1).
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::BadVersion => 426,
            _ => 400,
        }
    }

    /// Header fields the refusal must carry.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            HandshakeError::BadVersion => &[("sec-websocket-version", VERSION)],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::NotGet => f.write_str("a WebSocket upgrade must be a GET"),
            HandshakeError::OldHttp => f.write_str("a WebSocket upgrade needs HTTP/1.1"),
            HandshakeError::NoHost => f.write_str("the upgrade request has no Host"),
            HandshakeError::NoUpgrade => f.write_str("Upgrade does not name websocket"),
            HandshakeError::NoConnectionUpgrade => f.write_str("Connection does not name upgrade"),
            HandshakeError::BadVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            HandshakeError::NoKey => f.write_str("no Sec-WebSocket-Key"),
            HandshakeError::BadKey => f.write_str("Sec-WebSocket-Key must be 16 bytes in base64"),
            HandshakeError::Repeated(name) => write!(f, "{name} given more than once"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Comma-separated items of a field value, OWS trimmed, empty items skipped.
fn items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

fn lists(value: &[u8], token: &[u8]) -> bool {
    items(value).any(|item| item.eq_ignore_ascii_case(token))
}

/// Does the request ask for a WebSocket (an `Upgrade` field listing `websocket`)? Such a
/// request gets the handshake's answer (101, or 400/426, or 426 when WebSockets are off),
/// never the route's 405.
pub fn wants_upgrade<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> bool {
    headers
        .into_iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("upgrade") && lists(value, b"websocket"))
}

/// Checks the WebSocket fields of an upgrade request (RFC 6455 §4.2.1, items 3–6) and
/// returns the accept value for the 101. Extensions and subprotocols are not negotiated:
/// `Sec-WebSocket-Extensions` and `Sec-WebSocket-Protocol` are ignored.
pub fn check_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<AcceptKey, HandshakeError> {
    let (mut upgrade, mut connection) = (false, false);
    let (mut version, mut key): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= lists(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= lists(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version")
            && version.replace(value.trim_ascii()).is_some()
        {
            return Err(HandshakeError::Repeated("Sec-WebSocket-Version"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key")
            && key.replace(value.trim_ascii()).is_some()
        {
            return Err(HandshakeError::Repeated("Sec-WebSocket-Key"));
        }
    }
    if !upgrade {
        return Err(HandshakeError::NoUpgrade);
    }
    if !connection {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if version != Some(VERSION) {
        return Err(HandshakeError::BadVersion);
    }
    let key = key.ok_or(HandshakeError::NoKey)?;
    // Padded base64 of 16 bytes is 24 characters; the decoder also refuses non-canonical
    // trailing bits, so only a real 16-byte nonce passes.
    let mut nonce = [0u8; 18];
    let decoded = base64::engine::general_purpose::STANDARD.decode_slice(key, &mut nonce);
    if key.len() != KEY_LEN || decoded != Ok(16) {
        return Err(HandshakeError::BadKey);
    }
    Ok(accept_key(key))
}

/// Checks a whole upgrade request: `GET`, HTTP/1.1, a `Host`, then [`check_headers`].
pub fn check_request(head: &RequestHead) -> Result<AcceptKey, HandshakeError> {
    if head.method() != Method::Get {
        return Err(HandshakeError::NotGet);
    }
    if head.minor_version() < 1 {
        return Err(HandshakeError::OldHttp);
    }
    if head.header("host").is_none() {
        return Err(HandshakeError::NoHost);
    }
    check_headers(head.headers())
}

/// Appends the `101 Switching Protocols` head accepting the upgrade. No extension or
/// subprotocol is named, so the client keeps to plain frames.
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &AcceptKey) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
          sec-websocket-accept: ",
    );
    out.extend_from_slice(&accept.0);
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::http1::parse_request_head;

    #[test]
    fn rfc_6455_key_example() {
        // §1.3: "dGhlIHNhbXBsZSBub25jZQ==" is accepted with "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_str(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn head(text: &str) -> RequestHead {
        parse_request_head(&mut BytesMut::from(text), 64 * 1024)
            .unwrap()
            .unwrap()
    }

    /// The upgrade Codex 0.169.0 sends (captured), trimmed to the fields that matter here.
    const CODEX: &str = "GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:18099\r\n\
        Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: pAIlWzArzy06ojt6ckeGxw==\r\nauthorization: Bearer sk-capture\r\n\
        openai-beta: responses_websockets=2026-02-06\r\n\
        sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    #[test]
    fn codex_upgrade_is_accepted_and_answered() {
        let h = head(CODEX);
        assert!(wants_upgrade(h.headers()));
        let accept = check_request(&h).unwrap();
        let mut out = Vec::new();
        write_switching_protocols(&mut out, &accept);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.ends_with(&format!(
            "sec-websocket-accept: {}\r\n\r\n",
            accept.as_str()
        )));
        assert!(!text.contains("extensions"), "no extension is accepted");
    }

    #[test]
    fn field_values_are_lists_and_case_insensitive() {
        let h = head(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, UPGRADE\r\n\
             Upgrade: h2c, WebSocket\r\nSec-WebSocket-Version:  13 \r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert_eq!(
            check_request(&h).unwrap().as_str(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refusals() {
        let with = |from: &str, to: &str| {
            let text = CODEX.replacen(from, to, 1);
            check_request(&head(&text))
        };
        assert_eq!(with("GET", "POST"), Err(HandshakeError::NotGet));
        assert_eq!(with("HTTP/1.1", "HTTP/1.0"), Err(HandshakeError::OldHttp));
        assert_eq!(with("Host", "X-Host"), Err(HandshakeError::NoHost));
        assert_eq!(
            with("Upgrade: websocket", "Upgrade: h2c"),
            Err(HandshakeError::NoUpgrade)
        );
        assert_eq!(
            with("Connection: Upgrade", "Connection: keep-alive"),
            Err(HandshakeError::NoConnectionUpgrade)
        );
        let e = with("Version: 13", "Version: 8").unwrap_err();
        assert_eq!((e, e.status()), (HandshakeError::BadVersion, 426));
        assert_eq!(e.extra_headers(), &[("sec-websocket-version", &b"13"[..])]);
        assert_eq!(
            with("Sec-WebSocket-Version: 13\r\n", ""),
            Err(HandshakeError::BadVersion)
        );
        assert_eq!(
            with("Sec-WebSocket-Key", "Sec-WebSocket-Nonce"),
            Err(HandshakeError::NoKey)
        );
        for bad in [
            "pAIlWzArzy06ojt6ckeGxw=",      // short
            "pAIlWzArzy06ojt6ckeGxw",       // unpadded
            "pAIlWzArzy06ojt6ckeGxx==",     // non-canonical trailing bits
            "pAIlWzArzy06ojt6ckeGxw==AAAA", // 19 bytes
            "pAIlWzArzy06ojt6ckeG!w==",     // not base64
        ] {
            let e = with("pAIlWzArzy06ojt6ckeGxw==", bad).unwrap_err();
            assert_eq!((e, e.status()), (HandshakeError::BadKey, 400), "{bad}");
        }
        assert_eq!(
            with(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n"
            ),
            Err(HandshakeError::Repeated("Sec-WebSocket-Version"))
        );
        assert_eq!(
            with(
                "authorization",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nx"
            ),
            Err(HandshakeError::Repeated("Sec-WebSocket-Key"))
        );
    }

    #[test]
    fn a_plain_post_does_not_want_an_upgrade() {
        let h = head("POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert!(!wants_upgrade(h.headers()));
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n");
        assert!(!wants_upgrade(h.headers()));
    }
}
