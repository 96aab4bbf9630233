//! Message assembly: fragments joined (control frames may come between them), text checked as
//! UTF-8 as the fragments arrive, close payloads checked, and the message bound enforced from
//! each frame's header.

use bytes::{Bytes, BytesMut};

use super::frame::{parse_head, take_frame, Opcode};
use super::{CloseCode, Limits, ProtocolError, Role};

/// A close frame's status and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The peer's status code, one that may be sent on the wire.
    pub code: CloseCode,
    /// The peer's reason: UTF-8, possibly empty.
    pub reason: Bytes,
}

impl CloseFrame {
    /// The reason as text.
    pub fn reason_str(&self) -> &str {
        // Checked when the frame was read; the fallback is unreachable.
        std::str::from_utf8(&self.reason).unwrap_or_default()
    }
}

/// One complete message, or a control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping: answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (answer to our ping, or unsolicited: both allowed).
    Pong(Bytes),
    /// A close, with its status when the peer gave one (an empty close payload has none).
    Close(Option<CloseFrame>),
}

/// A fragmented message in progress.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: BytesMut,
    /// Prefix of `data` known to be UTF-8 (text only); the rest is at most an incomplete
    /// character of 1–3 bytes.
    checked: usize,
}

#[derive(Debug)]
enum State {
    Open,
    /// The peer sent a close: nothing more is read.
    Closed,
    /// The peer broke the protocol: the same error, again.
    Failed(ProtocolError),
}

/// Turns a read buffer into [`Message`]s under RFC 6455's rules and the given [`Limits`].
#[derive(Debug)]
pub struct MessageDecoder {
    role: Role,
    limits: Limits,
    partial: Option<Partial>,
    state: State,
}

impl MessageDecoder {
    /// A decoder for what `role` reads.
    pub fn new(role: Role, limits: Limits) -> MessageDecoder {
        MessageDecoder {
            role,
            limits,
            partial: None,
            state: State::Open,
        }
    }

    /// Bytes of the fragmented message in progress, if any (for accounting).
    pub fn pending_bytes(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// The next message or control frame from the front of `buf`, consuming the frames it
    /// took; `Ok(None)` when more bytes are needed. After a `Close` it returns `Ok(None)`
    /// without reading on (the connection answers the close and ends); after an error, the
    /// same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        match &self.state {
            State::Open => {}
            State::Closed => return Ok(None),
            State::Failed(e) => return Err(e.clone()),
        }
        match self.step(buf) {
            Err(e) => {
                self.partial = None;
                self.state = State::Failed(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        loop {
            let Some(head) = parse_head(buf, self.role, self.limits.max_frame)? else {
                return Ok(None);
            };
            // The message bound is decided here, before the payload is buffered.
            if !head.opcode.is_control() {
                let so_far = match (head.opcode, &self.partial) {
                    (Opcode::Continuation, None) => {
                        return Err(ProtocolError::UnexpectedContinuation)
                    }
                    (Opcode::Continuation, Some(p)) => p.data.len(),
                    (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                    (_, None) => 0,
                };
                if head.payload_len > self.limits.max_message.saturating_sub(so_far) {
                    return Err(ProtocolError::MessageTooLarge);
                }
            }
            let Some(frame) = take_frame(buf, &head) else {
                return Ok(None);
            };
            let payload = frame.payload;
            match frame.opcode {
                Opcode::Ping => return Ok(Some(Message::Ping(payload))),
                Opcode::Pong => return Ok(Some(Message::Pong(payload))),
                Opcode::Close => {
                    let close = read_close(payload)?;
                    self.state = State::Closed;
                    return Ok(Some(Message::Close(close)));
                }
                Opcode::Text | Opcode::Binary if frame.fin => {
                    // Unfragmented: the payload is the message, no copy.
                    let text = frame.opcode == Opcode::Text;
                    if text && std::str::from_utf8(&payload).is_err() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    return Ok(Some(if text {
                        Message::Text(payload)
                    } else {
                        Message::Binary(payload)
                    }));
                }
                Opcode::Text | Opcode::Binary => {
                    let mut p = Partial {
                        text: frame.opcode == Opcode::Text,
                        data: BytesMut::from(&payload[..]),
                        checked: 0,
                    };
                    if p.text {
                        p.checked = check_utf8(&p.data, 0, false)?;
                    }
                    self.partial = Some(p);
                }
                Opcode::Continuation => {
                    let Some(p) = self.partial.as_mut() else {
                        return Err(ProtocolError::UnexpectedContinuation);
                    };
                    p.data.extend_from_slice(&payload);
                    if p.text {
                        p.checked = check_utf8(&p.data, p.checked, frame.fin)?;
                    }
                    if frame.fin {
                        let Some(p) = self.partial.take() else {
                            return Err(ProtocolError::UnexpectedContinuation);
                        };
                        let data = p.data.freeze();
                        return Ok(Some(if p.text {
                            Message::Text(data)
                        } else {
                            Message::Binary(data)
                        }));
                    }
                }
            }
        }
    }
}

/// Checks `data[from..]` as the continuation of valid UTF-8; returns the new checked length.
/// An incomplete character at the end is fine until the final fragment; an impossible byte
/// fails at once (fail fast, as RFC 6455 §8.1 allows).
fn check_utf8(data: &[u8], from: usize, fin: bool) -> Result<usize, ProtocolError> {
    let rest = data.get(from..).unwrap_or_default();
    match std::str::from_utf8(rest) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() && !fin => Ok(from + e.valid_up_to()),
        Err(_) => Err(ProtocolError::InvalidUtf8),
    }
}

/// A close payload: empty, or a sendable code plus a UTF-8 reason (RFC 6455 §5.5.1).
fn read_close(payload: Bytes) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseTooShort),
        _ => {
            let raw = u16::from_be_bytes([payload[0], payload[1]]);
            let code = CloseCode::from_wire(raw).ok_or(ProtocolError::InvalidCloseCode(raw))?;
            let reason = payload.slice(2..);
            if std::str::from_utf8(&reason).is_err() {
                return Err(ProtocolError::InvalidCloseReason);
            }
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_masked_frame;
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn frames(list: &[(bool, Opcode, &[u8])]) -> BytesMut {
        let mut out = BytesMut::new();
        for &(fin, op, payload) in list {
            // Test input may break the send rules on purpose: write it by hand then.
            if encode_masked_frame(&mut out, fin, op, payload, MASK).is_err() {
                super::super::frame::write_head(&mut out, fin, op, payload.len(), Some(MASK));
                let start = out.len();
                out.extend_from_slice(payload);
                super::super::apply_mask(&mut out[start..], MASK);
            }
        }
        out
    }

    fn decode_all(buf: &mut BytesMut, limits: Limits) -> (Vec<Message>, Option<ProtocolError>) {
        let mut dec = MessageDecoder::new(Role::Server, limits);
        let mut out = Vec::new();
        loop {
            match dec.decode(buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn run(list: &[(bool, Opcode, &[u8])]) -> (Vec<Message>, Option<ProtocolError>) {
        decode_all(&mut frames(list), Limits::default())
    }

    #[test]
    fn fragments_join_with_control_frames_between() {
        use Opcode::*;
        let (msgs, err) = run(&[
            (false, Text, b"Hel"),
            (true, Ping, b"p1"),
            (false, Continuation, b""),
            (true, Pong, b""),
            (true, Continuation, b"lo"),
            (true, Binary, &[0, 255]),
        ]);
        assert_eq!(err, None);
        assert_eq!(
            msgs,
            vec![
                Message::Ping(Bytes::from_static(b"p1")),
                Message::Pong(Bytes::new()),
                Message::Text(Bytes::from_static(b"Hello")),
                Message::Binary(Bytes::from_static(&[0, 255])),
            ]
        );
    }

    #[test]
    fn fragment_order_errors() {
        use Opcode::*;
        assert_eq!(
            run(&[(true, Continuation, b"x")]).1,
            Some(ProtocolError::UnexpectedContinuation)
        );
        assert_eq!(
            run(&[(false, Text, b"a"), (true, Text, b"b")]).1,
            Some(ProtocolError::ExpectedContinuation)
        );
        assert_eq!(
            run(&[(false, Binary, b"a"), (false, Text, b"b")]).1,
            Some(ProtocolError::ExpectedContinuation)
        );
    }

    #[test]
    fn utf8_is_checked_across_fragments_and_fails_fast() {
        use Opcode::*;
        // "€" = E2 82 AC split over three fragments: fine.
        let (msgs, err) = run(&[
            (false, Text, &[0xE2]),
            (false, Continuation, &[0x82]),
            (true, Continuation, &[0xAC]),
        ]);
        assert_eq!((msgs, err), (vec![Message::Text(Bytes::from("€"))], None));
        // An impossible byte fails on its fragment, before the message ends: the first
        // fragment alone, with no FIN yet, is refused.
        let (msgs, err) = run(&[(false, Text, &[b'o', b'k', 0xF4, 0x90])]);
        assert_eq!((msgs.len(), err), (0, Some(ProtocolError::InvalidUtf8)));
        // A character cut off by the final fragment.
        assert_eq!(
            run(&[(false, Text, b"a"), (true, Continuation, &[0xE2, 0x82])]).1,
            Some(ProtocolError::InvalidUtf8)
        );
        // Single frame.
        assert_eq!(
            run(&[(true, Text, &[0xC0, 0x80])]).1,
            Some(ProtocolError::InvalidUtf8)
        );
        // Binary is not checked.
        assert_eq!(run(&[(true, Binary, &[0xC0, 0x80])]).1, None);
    }

    #[test]
    fn close_payload_rules() {
        use Opcode::*;
        let close = |p: &[u8]| run(&[(true, Close, p)]);
        assert_eq!(close(b"").0, vec![Message::Close(None)]);
        assert_eq!(close(&[0x03]).1, Some(ProtocolError::CloseTooShort));
        for ok in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            let (msgs, err) = close(&ok.to_be_bytes());
            assert_eq!(err, None, "{ok}");
            let Message::Close(Some(c)) = &msgs[0] else {
                panic!()
            };
            assert_eq!(c.code.as_u16(), ok);
        }
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                close(&bad.to_be_bytes()).1,
                Some(ProtocolError::InvalidCloseCode(bad)),
                "{bad}"
            );
        }
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye ✓".as_bytes());
        let (msgs, _) = close(&p);
        let Message::Close(Some(c)) = &msgs[0] else {
            panic!()
        };
        assert_eq!(c.reason_str(), "bye ✓");
        p.push(0xFF);
        assert_eq!(close(&p).1, Some(ProtocolError::InvalidCloseReason));
        assert_eq!(
            ProtocolError::InvalidCloseReason.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
    }

    #[test]
    fn nothing_is_read_after_a_close_and_errors_are_sticky() {
        use Opcode::*;
        let mut buf = frames(&[(true, Close, b""), (true, Text, b"late")]);
        let mut dec = MessageDecoder::new(Role::Server, Limits::default());
        assert_eq!(dec.decode(&mut buf), Ok(Some(Message::Close(None))));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(!buf.is_empty(), "the frame after the close is left unread");

        let mut buf = frames(&[(true, Continuation, b"x")]);
        let mut dec = MessageDecoder::new(Role::Server, Limits::default());
        let e = dec.decode(&mut buf).unwrap_err();
        buf.extend_from_slice(&frames(&[(true, Text, b"fine")]));
        assert_eq!(dec.decode(&mut buf), Err(e));
    }

    #[test]
    fn message_bound_counts_all_fragments_and_fires_from_the_header() {
        use Opcode::*;
        let limits = Limits {
            max_frame: 8,
            max_message: 10,
        };
        // 6 + 4 = 10: at the bound.
        let mut buf = frames(&[(false, Binary, &[1; 6]), (true, Continuation, &[2; 4])]);
        assert_eq!(decode_all(&mut buf, limits).1, None);
        // 6 + 5 = 11: over, refused on the continuation's header alone.
        let mut buf = frames(&[(false, Binary, &[1; 6])]);
        buf.extend_from_slice(&[0x80, 0x85, 1, 2, 3, 4]);
        let (msgs, err) = decode_all(&mut buf, limits);
        assert_eq!((msgs.len(), err), (0, Some(ProtocolError::MessageTooLarge)));
        // A single frame over max_frame.
        let mut buf = frames(&[(true, Text, b"123456789")]);
        let err = decode_all(&mut buf, limits).1.unwrap();
        assert_eq!(err, ProtocolError::FrameTooLarge);
        assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
        // Control frames do not count against the message.
        let mut buf = frames(&[
            (false, Binary, &[1; 8]),
            (true, Ping, &[0; 5]),
            (true, Continuation, &[2; 2]),
        ]);
        assert_eq!(decode_all(&mut buf, limits).1, None);
    }

    #[test]
    fn unfragmented_payload_is_not_copied() {
        let mut buf = frames(&[(true, Opcode::Text, b"{\"type\":\"response.create\"}")]);
        let start = buf.as_ptr() as usize;
        let (msgs, _) = decode_all(&mut buf, Limits::default());
        let Message::Text(t) = &msgs[0] else { panic!() };
        // The payload is a slice of the read buffer, just past the 6-byte header.
        assert_eq!(t.as_ptr() as usize, start + 6);
    }
}
