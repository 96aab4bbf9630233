//! Property tests for the WebSocket codec: generated client streams (fragmented text and
//! binary messages, control frames between fragments, random masks, text cut inside
//! characters) decode to the messages they were built from, fed whole, split at random points
//! and at every byte boundary; mutated streams give the same outcome whole and split; server
//! frames round-trip through the client-side decoder; a dumb bytewise frame parser agrees
//! with the decoder on arbitrary bytes.
use bytes::{Bytes, BytesMut};

use super::*;

/// splitmix64, as in `http1::prop_tests`: failures reproduce from the seed.
struct Rng(std::cell::Cell<u64>);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(std::cell::Cell::new(seed))
    }
    fn next(&self) -> u64 {
        let state = self.0.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.0.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn mask(&self) -> [u8; 4] {
        (self.next() as u32).to_ne_bytes()
    }
    fn bytes(&self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// Text of about `len` bytes mixing 1- to 4-byte characters.
    fn text(&self, len: usize) -> String {
        const CHARS: [char; 8] = ['a', 'Z', ' ', '{', 'é', '€', '中', '🦀'];
        let mut s = String::new();
        while s.len() < len {
            s.push(CHARS[self.below(CHARS.len())]);
        }
        s
    }
    fn len(&self) -> usize {
        match self.below(10) {
            0 => 0,
            1..=6 => self.below(40),
            7 | 8 => 100 + self.below(300),
            // Crosses the 16-bit length encoding.
            _ => 65_000 + self.below(1_000),
        }
    }
}

/// A generated client stream: its bytes and the messages it must decode to.
fn gen_stream(rng: &Rng, messages: usize) -> (Vec<u8>, Vec<Message>) {
    let mut wire = BytesMut::new();
    let mut want = Vec::new();
    let frame = |wire: &mut BytesMut, fin: bool, op: Opcode, payload: &[u8]| {
        encode_masked_frame(wire, fin, op, payload, rng.mask()).unwrap();
    };
    let control = |wire: &mut BytesMut, want: &mut Vec<Message>| {
        let payload = Bytes::from(rng.bytes(rng.below(MAX_CONTROL_PAYLOAD + 1)));
        if rng.chance(2) {
            frame(wire, true, Opcode::Ping, &payload);
            want.push(Message::Ping(payload));
        } else {
            frame(wire, true, Opcode::Pong, &payload);
            want.push(Message::Pong(payload));
        }
    };
    for _ in 0..messages {
        if rng.chance(5) {
            control(&mut wire, &mut want);
            continue;
        }
        let text = rng.chance(2);
        let data: Vec<u8> = if text {
            rng.text(rng.len()).into_bytes()
        } else {
            rng.bytes(rng.len())
        };
        // Cut into fragments anywhere, inside characters too; empty fragments allowed.
        let mut cuts: Vec<usize> = (0..rng.below(4))
            .map(|_| rng.below(data.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut start = 0;
        let first = if text { Opcode::Text } else { Opcode::Binary };
        let mut later = Vec::new();
        for (i, &c) in cuts.iter().chain([data.len()].iter()).enumerate() {
            let fin = i == cuts.len();
            let op = if i == 0 { first } else { Opcode::Continuation };
            frame(&mut wire, fin, op, &data[start..c]);
            start = c;
            if !fin && rng.chance(3) {
                // A control frame between fragments is delivered before the message.
                control(&mut wire, &mut later);
            }
        }
        want.extend(later);
        let data = Bytes::from(data);
        want.push(if text {
            Message::Text(data)
        } else {
            Message::Binary(data)
        });
    }
    if rng.chance(3) {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(rng.text(rng.below(40)).as_bytes());
        let mut cut = payload.len().min(MAX_CONTROL_PAYLOAD);
        while std::str::from_utf8(&payload[2..cut]).is_err() {
            cut -= 1;
        }
        payload.truncate(cut);
        frame(&mut wire, true, Opcode::Close, &payload);
        want.push(Message::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: Bytes::copy_from_slice(&payload[2..]),
        })));
    }
    (wire.to_vec(), want)
}

/// What the decoder yields for `input` fed in the pieces cut at the sorted `cuts`: the
/// messages, then the error if one came, then the bytes left unread.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Message>,
    error: Option<ProtocolError>,
    left: usize,
}

fn drive(input: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut dec = MessageDecoder::new(Role::Server, limits);
    let (mut buf, mut messages, mut start) = (BytesMut::new(), Vec::new(), 0);
    for &c in cuts.iter().chain([input.len()].iter()) {
        buf.extend_from_slice(&input[start..c]);
        start = c;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        messages,
                        error: Some(error),
                        left: 0,
                    }
                }
            }
        }
    }
    Outcome {
        messages,
        error: None,
        left: buf.len(),
    }
}

fn random_cuts(rng: &Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..rng.below(12)).map(|_| rng.below(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

#[test]
fn generated_streams_decode_to_their_messages_whole_and_split() {
    let rng = Rng::new(11);
    for case in 0..400 {
        let (wire, want) = gen_stream(&rng, 1 + rng.below(6));
        let whole = drive(&wire, &[], Limits::default());
        assert_eq!(whole.error, None, "case {case}");
        assert_eq!(whole.messages, want, "case {case}");
        assert_eq!(whole.left, 0, "case {case}");
        for _ in 0..5 {
            let cuts = random_cuts(&rng, wire.len());
            assert_eq!(
                drive(&wire, &cuts, Limits::default()),
                whole,
                "case {case} {cuts:?}"
            );
        }
    }
}

#[test]
fn every_byte_boundary_matches_whole() {
    let rng = Rng::new(12);
    let mut checked = 0;
    while checked < 60 {
        let (wire, _) = gen_stream(&rng, 1 + rng.below(4));
        if wire.len() > 1_500 {
            continue;
        }
        checked += 1;
        let whole = drive(&wire, &[], Limits::default());
        for cut in 0..=wire.len() {
            assert_eq!(drive(&wire, &[cut], Limits::default()), whole, "cut {cut}");
        }
        // And one byte at a time.
        let all: Vec<usize> = (0..=wire.len()).collect();
        assert_eq!(drive(&wire, &all, Limits::default()), whole);
    }
}

#[test]
fn mutated_streams_give_the_same_outcome_whole_and_split() {
    let rng = Rng::new(13);
    let mut errors = 0;
    for case in 0..2_000 {
        let (mut wire, _) = gen_stream(&rng, 1 + rng.below(4));
        for _ in 0..1 + rng.below(3) {
            if !wire.is_empty() {
                let at = rng.below(wire.len());
                wire[at] ^= 1 << rng.below(8);
            }
        }
        if rng.chance(3) {
            wire.truncate(rng.below(wire.len() + 1));
        }
        // Small bounds so the size checks fire too.
        let limits = Limits {
            max_frame: 1 + rng.below(70_000),
            max_message: 1 + rng.below(140_000),
        };
        let whole = drive(&wire, &[], limits);
        errors += usize::from(whole.error.is_some());
        let cuts = random_cuts(&rng, wire.len());
        assert_eq!(drive(&wire, &cuts, limits), whole, "case {case} {cuts:?}");
        // Bounds held: no message above max_message; every text message is UTF-8.
        for m in &whole.messages {
            match m {
                Message::Text(t) => {
                    assert!(t.len() <= limits.max_message);
                    assert!(std::str::from_utf8(t).is_ok());
                }
                Message::Binary(b) => assert!(b.len() <= limits.max_message),
                Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                Message::Close(_) => {}
            }
        }
    }
    assert!(errors > 500, "mutations found only {errors} errors");
}

#[test]
fn server_frames_round_trip_through_the_client_decoder() {
    let rng = Rng::new(14);
    let ops = [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ];
    for _ in 0..2_000 {
        let op = ops[rng.below(ops.len())];
        let fin = op.is_control() || rng.chance(2);
        let len = if op.is_control() {
            rng.below(MAX_CONTROL_PAYLOAD + 1)
        } else {
            rng.len()
        };
        let payload = rng.bytes(len);
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, fin, op, &payload).unwrap();
        // Shortest length encoding, nothing else.
        let header = match len {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        assert_eq!(wire.len(), header + len);
        let dec = FrameDecoder::new(Role::Client, 1 << 20);
        let frame = dec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(
            (frame.fin, frame.opcode, &frame.payload[..]),
            (fin, op, &payload[..])
        );
        assert!(wire.is_empty());
        // A server decoder refuses it: server frames are not masked.
        let mut again = BytesMut::new();
        encode_frame(&mut again, fin, op, &payload).unwrap();
        let server = FrameDecoder::new(Role::Server, 1 << 20);
        assert_eq!(server.decode(&mut again), Err(ProtocolError::Unmasked));
    }
}

#[test]
fn random_masks_round_trip() {
    let rng = Rng::new(15);
    for _ in 0..2_000 {
        let mask = rng.mask();
        let data = rng.bytes(rng.below(100));
        let mut masked = data.clone();
        apply_mask(&mut masked, mask);
        let bytewise: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(masked, bytewise);
        apply_mask(&mut masked, mask);
        assert_eq!(masked, data);
        let mut wire = BytesMut::new();
        encode_masked_frame(&mut wire, true, Opcode::Binary, &data, mask).unwrap();
        let frame = FrameDecoder::new(Role::Server, 1 << 20)
            .decode(&mut wire)
            .unwrap();
        assert_eq!(&frame.unwrap().payload[..], &data[..]);
    }
}

/// FIN, opcode bits, unmasked payload, bytes used.
type NaiveFrame = (bool, u8, Vec<u8>, usize);

/// The dumb oracle: a frame header read byte by byte from the RFC's figure, no shortcuts.
/// `Err(())` for anything the RFC forbids (bounds ignored), `Ok(None)` for too few bytes.
fn naive_frame(input: &[u8]) -> Result<Option<NaiveFrame>, ()> {
    let bit = |byte: u8, n: u8| (byte >> n) & 1 == 1;
    let Some(&b0) = input.first() else {
        return Ok(None);
    };
    if bit(b0, 6) || bit(b0, 5) || bit(b0, 4) {
        return Err(());
    }
    let (fin, op) = (bit(b0, 7), b0 & 15);
    if ![0, 1, 2, 8, 9, 10].contains(&op) || (op >= 8 && !fin) {
        return Err(());
    }
    let Some(&b1) = input.get(1) else {
        return Ok(None);
    };
    if !bit(b1, 7) || (op >= 8 && b1 & 127 > 125) {
        return Err(());
    }
    let mut pos = 2;
    let mut len: u128 = u128::from(b1 & 127);
    let extra = match len {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if extra > 0 {
        len = 0;
        for _ in 0..extra {
            let Some(&b) = input.get(pos) else {
                return Ok(None);
            };
            len = len * 256 + u128::from(b);
            pos += 1;
        }
        if len >= 1 << 63 {
            return Err(());
        }
    }
    let mut mask = Vec::new();
    for _ in 0..4 {
        let Some(&b) = input.get(pos) else {
            return Ok(None);
        };
        mask.push(b);
        pos += 1;
    }
    if ((input.len() - pos) as u128) < len {
        return Ok(None);
    }
    let payload = (0..len as usize)
        .map(|i| input[pos + i] ^ mask[i % 4])
        .collect();
    Ok(Some((fin, op, payload, pos + len as usize)))
}

#[test]
fn frame_decoder_matches_the_naive_parser() {
    let rng = Rng::new(16);
    for case in 0..20_000 {
        // Mostly plausible headers: a real frame, mutated and truncated, or plain noise.
        let mut input = if rng.chance(4) {
            rng.bytes(rng.below(40))
        } else {
            let (wire, _) = gen_stream(&rng, 1);
            wire
        };
        if !input.is_empty() && rng.chance(2) {
            let at = rng.below(input.len().min(14));
            input[at] ^= 1 << rng.below(8);
        }
        if rng.chance(3) {
            input.truncate(rng.below(input.len() + 1));
        }
        let mut buf = BytesMut::from(&input[..]);
        let got = FrameDecoder::new(Role::Server, usize::MAX >> 1).decode(&mut buf);
        match (naive_frame(&input), got) {
            (Err(()), Err(_)) | (Ok(None), Ok(None)) => {}
            (Ok(Some((fin, op, payload, used))), Ok(Some(f))) => {
                assert_eq!(
                    (fin, op, &payload[..]),
                    (f.fin, f.opcode.bits(), &f.payload[..])
                );
                assert_eq!(input.len() - used, buf.len(), "case {case}");
            }
            (want, got) => panic!("case {case}: naive {want:?}, decoder {got:?}"),
        }
    }
}
