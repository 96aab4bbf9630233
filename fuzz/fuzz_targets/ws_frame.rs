//! WebSocket message decoder (server side) with fuzzer-chosen bounds: input fed in pieces
//! gives the same messages, error and leftover as the input whole; no message exceeds its
//! bound; text is UTF-8; control payloads fit 125 bytes; an error is sticky.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringway::ws::{Limits, Message, MessageDecoder, Role, MAX_CONTROL_PAYLOAD};

#[path = "common/split.rs"]
mod split;

/// Messages, then the error (if any), then the bytes left unread.
type Outcome = (Vec<Message>, Option<ringway::ws::ProtocolError>, usize);

fn run(input: &[u8], limits: Limits, mut piece: impl FnMut() -> usize) -> Outcome {
    let (mut dec, mut buf, mut rest, mut out) = (
        MessageDecoder::new(Role::Server, limits),
        BytesMut::new(),
        input,
        Vec::new(),
    );
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Err(e) => {
                assert_eq!(
                    dec.decode(&mut BytesMut::from(&b"\x81\x80abcd"[..])),
                    Err(e.clone())
                );
                return (out, Some(e), 0);
            }
            Ok(None) if rest.is_empty() => return (out, None, buf.len()),
            Ok(None) => {
                let (now, later) = rest.split_at(piece().clamp(1, rest.len()));
                buf.extend_from_slice(now);
                rest = later;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[pattern, frame, message], input)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limits = Limits {
        max_frame: 1 + usize::from(frame) * 64,
        max_message: 1 + usize::from(message) * 128,
    };
    let whole = run(input, limits, || usize::MAX);
    assert_eq!(
        run(input, limits, split::pieces(pattern, 32)),
        whole,
        "split decode differs"
    );
    for m in &whole.0 {
        match m {
            Message::Text(t) => {
                assert!(t.len() <= limits.max_message && std::str::from_utf8(t).is_ok())
            }
            Message::Binary(b) => assert!(b.len() <= limits.max_message),
            Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
            Message::Close(c) => assert!(c
                .as_ref()
                .is_none_or(|c| std::str::from_utf8(&c.reason).is_ok())),
        }
    }
});
