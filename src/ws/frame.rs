//! One frame: the header read (every check the header alone decides), payload unmasking, and
//! the writers for frames we send.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CloseCode, ProtocolError, Role, MAX_CONTROL_PAYLOAD};

/// A frame's opcode (RFC 6455 §5.2); the reserved values are a [`ProtocolError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: a later fragment of a text or binary message.
    Continuation,
    /// 0x1: the first (or only) frame of a text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl Opcode {
    /// The opcode of the low four bits, `None` for a reserved value.
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The four wire bits.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, payload at most 125 bytes, allowed between
    /// the fragments of a message.
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// Last frame of its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The masking key, present on client frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length; at most the `max_frame` the header was read with.
    pub payload_len: usize,
    /// Header bytes (2 to 14) before the payload.
    pub header_len: usize,
}

/// Reads the frame header at the front of `buf`: `Ok(None)` until all of it is there. Checks
/// everything the header decides (reserved bits, opcode, control-frame rules, masking for
/// `role`, the length's top bit, and `max_frame`) as soon as the byte deciding it has arrived,
/// so an oversized frame is refused before its payload is read.
pub fn parse_head(
    buf: &[u8],
    role: Role,
    max_frame: usize,
) -> Result<Option<FrameHead>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(ProtocolError::UnknownOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControl);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(ProtocolError::Unmasked),
        (Role::Client, true) => return Err(ProtocolError::Masked),
        _ => {}
    }
    let len7 = b1 & 0x7F;
    // 126 and 127 announce longer lengths, over the control bound either way.
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlTooLong);
    }
    // Lengths need not be minimal: the RFC binds senders to that, and refusing a longer
    // encoding of the same length protects nothing.
    let (len, mut at) = match len7 {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let payload_len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= max_frame)
        .ok_or(ProtocolError::FrameTooLarge)?;
    let mask = if masked {
        let Some(&[a, b, c, d]) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([a, b, c, d])
    } else {
        None
    };
    Ok(Some(FrameHead {
        fin,
        opcode,
        mask,
        payload_len,
        header_len: at,
    }))
}

/// XORs `data` with the 4-byte `mask`, starting at mask byte 0 (RFC 6455 §5.3); applying it
/// twice restores the data. Eight bytes at a time: this runs over every byte a client sends.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so at mask byte 0.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// One frame, payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Last frame of its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: Opcode,
    /// The payload, unmasked; a slice of the read buffer, not a copy.
    pub payload: Bytes,
}

/// Splits whole frames off a read buffer. Stateless beyond its settings: message rules
/// (fragments, UTF-8, close payloads) belong to [`MessageDecoder`](super::MessageDecoder).
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    role: Role,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder for the frames `role` reads, refusing payloads above `max_frame`.
    pub fn new(role: Role, max_frame: usize) -> FrameDecoder {
        FrameDecoder { role, max_frame }
    }

    /// The next whole frame at the front of `buf`, split off and unmasked; `Ok(None)` (and
    /// `buf` untouched) until all of it has arrived.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(head) = parse_head(buf, self.role, self.max_frame)? else {
            return Ok(None);
        };
        Ok(take_frame(buf, &head))
    }
}

/// Splits the frame `head` describes off `buf` once its payload is all there.
pub(super) fn take_frame(buf: &mut BytesMut, head: &FrameHead) -> Option<Frame> {
    // payload_len <= max_frame, a usize, so this only overflows for a max_frame near
    // usize::MAX; such a frame can never be complete.
    let total = head.header_len.checked_add(head.payload_len)?;
    if buf.len() < total {
        return None;
    }
    let mut payload = buf.split_to(total);
    payload.advance(head.header_len);
    if let Some(mask) = head.mask {
        apply_mask(&mut payload, mask);
    }
    Some(Frame {
        fin: head.fin,
        opcode: head.opcode,
        payload: payload.freeze(),
    })
}

/// Appends a frame header for a payload of `len` bytes, with the shortest length encoding.
/// The caller writes the payload after it, masked with `mask` when there is one.
pub fn write_head(
    out: &mut impl BufMut,
    fin: bool,
    opcode: Opcode,
    len: usize,
    mask: Option<[u8; 4]>,
) {
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.put_u8(mask_bit | len as u8),
        126..=0xFFFF => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    if let Some(mask) = mask {
        out.put_slice(&mask);
    }
}

/// Refuses a frame RFC 6455 forbids anyone to send: a fragmented or oversized control frame.
fn check_send(fin: bool, opcode: Opcode, len: usize) -> Result<(), ProtocolError> {
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControl);
    }
    if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlTooLong);
    }
    Ok(())
}

/// Appends an unmasked frame, as a server sends it. A control frame that is fragmented or
/// longer than 125 bytes is refused and nothing is written.
pub fn encode_frame(
    out: &mut impl BufMut,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
) -> Result<(), ProtocolError> {
    check_send(fin, opcode, payload.len())?;
    write_head(out, fin, opcode, payload.len(), None);
    out.put_slice(payload);
    Ok(())
}

/// Appends a frame masked with `mask`, as a client sends it (tests, fuzzing, and any client).
pub fn encode_masked_frame(
    out: &mut impl BufMut,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: [u8; 4],
) -> Result<(), ProtocolError> {
    check_send(fin, opcode, payload.len())?;
    write_head(out, fin, opcode, payload.len(), Some(mask));
    let mut masked = payload.to_vec();
    apply_mask(&mut masked, mask);
    out.put_slice(&masked);
    Ok(())
}

/// Appends an unmasked close frame with `code` and `reason`, the reason cut at a character
/// boundary to fit the 125-byte control payload.
pub fn encode_close(out: &mut impl BufMut, code: CloseCode, reason: &str) {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = reason.get(..cut).unwrap_or_default();
    write_head(out, true, Opcode::Close, 2 + reason.len(), None);
    out.put_u16(code.as_u16());
    out.put_slice(reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_decode(bytes: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        FrameDecoder::new(Role::Server, 1 << 20).decode(&mut BytesMut::from(bytes))
    }

    fn client_decode(bytes: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        FrameDecoder::new(Role::Client, 1 << 20).decode(&mut BytesMut::from(bytes))
    }

    // RFC 6455 §5.7, first example: an unmasked single-frame text "Hello".
    const UNMASKED_HELLO: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    // Second example: the same, masked with 37 fa 21 3d.
    const MASKED_HELLO: &[u8] = &[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn rfc_5_7_single_frame_text() {
        let f = client_decode(UNMASKED_HELLO).unwrap().unwrap();
        assert_eq!(
            (f.fin, f.opcode, &f.payload[..]),
            (true, Opcode::Text, &b"Hello"[..])
        );
        let f = server_decode(MASKED_HELLO).unwrap().unwrap();
        assert_eq!(
            (f.fin, f.opcode, &f.payload[..]),
            (true, Opcode::Text, &b"Hello"[..])
        );
        // And the encoders produce exactly those bytes.
        let mut out = BytesMut::new();
        encode_frame(&mut out, true, Opcode::Text, b"Hello").unwrap();
        assert_eq!(&out[..], UNMASKED_HELLO);
        let mut out = BytesMut::new();
        encode_masked_frame(
            &mut out,
            true,
            Opcode::Text,
            b"Hello",
            [0x37, 0xfa, 0x21, 0x3d],
        )
        .unwrap();
        assert_eq!(&out[..], MASKED_HELLO);
    }

    #[test]
    fn rfc_5_7_fragmented_text_frames() {
        // "Hel" (FIN clear, text) then "lo" (FIN set, continuation).
        let mut buf = BytesMut::from(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f][..]);
        let dec = FrameDecoder::new(Role::Client, 1 << 20);
        let a = dec.decode(&mut buf).unwrap().unwrap();
        let b = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            (a.fin, a.opcode, &a.payload[..]),
            (false, Opcode::Text, &b"Hel"[..])
        );
        assert_eq!(
            (b.fin, b.opcode, &b.payload[..]),
            (true, Opcode::Continuation, &b"lo"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn rfc_5_7_ping_and_pong() {
        // Unmasked ping "Hello", and a masked pong answering it.
        let f = client_decode(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap()
            .unwrap();
        assert_eq!((f.opcode, &f.payload[..]), (Opcode::Ping, &b"Hello"[..]));
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let f = server_decode(&pong).unwrap().unwrap();
        assert_eq!((f.opcode, &f.payload[..]), (Opcode::Pong, &b"Hello"[..]));
    }

    #[test]
    fn rfc_5_7_binary_lengths() {
        // 256 bytes in a single unmasked frame: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x...010000.
        for (len, head) in [
            (256usize, &[0x82, 0x7E, 0x01, 0x00][..]),
            (65536, &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00][..]),
        ] {
            let mut out = BytesMut::new();
            encode_frame(&mut out, true, Opcode::Binary, &vec![7u8; len]).unwrap();
            assert_eq!(&out[..head.len()], head);
            let f = client_decode(&out).unwrap().unwrap();
            assert_eq!((f.opcode, f.payload.len()), (Opcode::Binary, len));
        }
    }

    #[test]
    fn header_checks_fire_on_the_deciding_byte() {
        let e = |bytes: &[u8]| server_decode(bytes).unwrap_err();
        assert_eq!(e(&[0xC1]), ProtocolError::ReservedBits);
        assert_eq!(e(&[0x91]), ProtocolError::ReservedBits);
        assert_eq!(e(&[0x83]), ProtocolError::UnknownOpcode(3));
        assert_eq!(e(&[0x8B]), ProtocolError::UnknownOpcode(0xB));
        assert_eq!(e(&[0x09]), ProtocolError::FragmentedControl);
        assert_eq!(e(&[0x81, 0x05]), ProtocolError::Unmasked);
        assert_eq!(
            client_decode(&[0x81, 0x85]).unwrap_err(),
            ProtocolError::Masked
        );
        assert_eq!(e(&[0x89, 0xFE]), ProtocolError::ControlTooLong);
        assert_eq!(e(&[0x88, 0xFF]), ProtocolError::ControlTooLong);
        assert_eq!(
            e(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            ProtocolError::LengthOverflow
        );
        // Over the frame bound: refused from the header, no payload needed.
        let dec = FrameDecoder::new(Role::Server, 100);
        let mut buf = BytesMut::from(&[0x82, 0xFE, 0x00, 0x65][..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap_err(),
            ProtocolError::FrameTooLarge
        );
        // Exactly at the bound: fine.
        let mut buf = BytesMut::new();
        encode_masked_frame(&mut buf, true, Opcode::Binary, &[1; 100], [1, 2, 3, 4]).unwrap();
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().payload.len(), 100);
    }

    #[test]
    fn incomplete_header_or_payload_needs_more_and_leaves_the_buffer() {
        for cut in 0..MASKED_HELLO.len() {
            let mut buf = BytesMut::from(&MASKED_HELLO[..cut]);
            assert_eq!(
                FrameDecoder::new(Role::Server, 1 << 20).decode(&mut buf),
                Ok(None)
            );
            assert_eq!(buf.len(), cut);
        }
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        // "Hello" announced with a 16-bit length.
        let f = client_decode(&[0x81, 0x7E, 0x00, 0x05, b'H', b'e', b'l', b'l', b'o']).unwrap();
        assert_eq!(&f.unwrap().payload[..], b"Hello");
    }

    #[test]
    fn mask_matches_bytewise_xor_at_every_length() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn control_frames_we_would_send_are_checked() {
        let mut out = BytesMut::new();
        assert_eq!(
            encode_frame(&mut out, true, Opcode::Ping, &[0; 126]),
            Err(ProtocolError::ControlTooLong)
        );
        assert_eq!(
            encode_frame(&mut out, false, Opcode::Pong, b""),
            Err(ProtocolError::FragmentedControl)
        );
        assert!(out.is_empty());
        encode_frame(&mut out, true, Opcode::Ping, &[0; 125]).unwrap();
        assert_eq!(out.len(), 127);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let mut out = BytesMut::new();
        // 62 two-byte chars = 124 bytes; only 123 fit, so 61 chars (122 bytes) go.
        encode_close(&mut out, CloseCode::POLICY_VIOLATION, &"é".repeat(62));
        let f = client_decode(&out).unwrap().unwrap();
        assert_eq!(f.opcode, Opcode::Close);
        assert_eq!(f.payload.len(), 124);
        assert_eq!(&f.payload[..2], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&f.payload[2..]).is_ok());
    }
}
