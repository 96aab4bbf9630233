//! Differential and split-invariance tests for the whole codec: generated pipelined requests
//! (random headers, Content-Length and chunked bodies) fed whole vs. split at random points
//! and at every byte boundary, plus the chunked decoder against a dumb line-based oracle.
use bytes::BytesMut;

use super::*;

/// splitmix64: tiny deterministic PRNG so failures reproduce from the seed. Interior
/// mutability lets calls nest (`rng.bytes_from(A, rng.below(9))`).
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
    fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes_from(&self, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }
}

const TOKEN: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~";
const VALUE: &[u8] = b"abcxyz ABC019 \t;,=/\"{}:()<>@[]?\x80\xfe";
const PATH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789/-_.~%=&";

/// Random chunked encoding of `body` (extensions, hex case, leading zeros, trailers).
fn encode_chunked(rng: &Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let size_line = |rng: &Rng, out: &mut Vec<u8>, n: usize| {
        let mut hex = format!("{n:x}");
        if rng.chance(3) {
            hex = hex.to_uppercase();
        }
        if rng.chance(5) {
            hex.insert_str(0, &"0".repeat(rng.below(4)));
        }
        out.extend_from_slice(hex.as_bytes());
        if rng.chance(3) {
            let ext: &[u8] =
                rng.pick::<&[u8]>(&[b";a=b", b" ;x", b"\t; k = \"q;t\"", b";ext", b";a;b=1"]);
            out.extend_from_slice(ext);
        }
        out.extend_from_slice(b"\r\n");
    };
    while !rest.is_empty() {
        let n = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(16),
            2 => 1 + rng.below(300),
            _ => rest.len(),
        }
        .min(rest.len());
        size_line(rng, &mut out, n);
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    size_line(rng, &mut out, 0);
    for _ in 0..rng.below(3) {
        let name = rng.bytes_from(TOKEN, 1 + rng.below(8));
        let value = rng.bytes_from(b"abc 123\t", rng.below(10));
        out.extend_from_slice(&name);
        out.push(b':');
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// One generated request: its wire bytes and the body it carries.
fn gen_request(rng: &Rng) -> (Vec<u8>, Vec<u8>) {
    let method = *rng.pick(&[
        "GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD", "PROPFIND",
    ]);
    let mut path = b"/".to_vec();
    path.extend(rng.bytes_from(PATH, rng.below(30)));
    if rng.chance(2) {
        path.push(b'?');
        path.extend(rng.bytes_from(PATH, rng.below(20)));
    }
    let minor = if rng.chance(8) { 0 } else { 1 };
    let mut out = Vec::new();
    for _ in 0..(if rng.chance(10) { rng.below(3) } else { 0 }) {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&path);
    out.extend_from_slice(format!(" HTTP/1.{minor}\r\n").as_bytes());
    let field = |out: &mut Vec<u8>, name: &[u8], value: &[u8], rng: &Rng| {
        out.extend_from_slice(name);
        out.push(b':');
        if !rng.chance(4) {
            out.push(b' ');
        }
        out.extend_from_slice(value);
        if rng.chance(6) {
            out.push(b' ');
        }
        out.extend_from_slice(b"\r\n");
    };
    field(&mut out, b"Host", b"api.example.com", rng);
    for _ in 0..rng.below(15) {
        let name = rng.bytes_from(TOKEN, 1 + rng.below(20));
        let mut value = rng.bytes_from(VALUE, rng.below(40));
        // keep values free of leading/trailing whitespace so trimming is not in question
        while value.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            value.remove(0);
        }
        while value.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
            value.pop();
        }
        let lower = name.to_ascii_lowercase();
        if [&b"host"[..], b"content-length", b"transfer-encoding"].contains(&&lower[..]) {
            continue;
        }
        field(&mut out, &name, &value, rng);
    }
    if rng.chance(4) {
        let v: &[u8] = rng.pick::<&[u8]>(&[b"close", b"keep-alive", b"Upgrade, close", b"x"]);
        field(&mut out, b"Connection", v, rng);
    }
    let body_len = if rng.chance(3) {
        0
    } else {
        rng.below(if rng.chance(10) { 5000 } else { 200 })
    };
    let body = rng.bytes_from(&(0u8..=255).collect::<Vec<_>>(), body_len);
    let encoded = match rng.below(3) {
        0 if body.is_empty() => Vec::new(),
        1 if minor == 1 => {
            field(&mut out, b"Transfer-Encoding", b"chunked", rng);
            encode_chunked(rng, &body)
        }
        _ => {
            field(
                &mut out,
                b"Content-Length",
                body.len().to_string().as_bytes(),
                rng,
            );
            body.clone()
        }
    };
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&encoded);
    (out, body)
}

/// What a connection observes while reading `input`.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Head(RequestHead),
    Body(Vec<u8>),
    HeadErr(HeadError),
    BodyErr(BodyError),
    /// Input exhausted with this many bytes still buffered.
    Eof(usize),
}

/// Feed `input` in the pieces delimited by the sorted `cuts` and record everything seen.
fn drive(input: &[u8], cuts: &[usize], max_head: usize) -> Vec<Seen> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain([input.len()].iter()) {
        pieces.push(&input[start..c]);
        start = c;
    }
    let mut pieces = pieces.into_iter();
    let mut buf = BytesMut::new();
    let mut seen = Vec::new();
    let mut body: Option<(BodyDecoder, Vec<u8>)> = None;
    loop {
        let need_more = match &mut body {
            None => match parse_request_head(&mut buf, max_head) {
                Ok(Some(h)) => {
                    body = Some((BodyDecoder::new(h.framing()), Vec::new()));
                    seen.push(Seen::Head(h));
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    seen.push(Seen::HeadErr(e));
                    return seen;
                }
            },
            Some((dec, data)) => match dec.decode(&mut buf) {
                Ok(BodyEvent::Data(d)) => {
                    assert!(!d.is_empty());
                    data.extend_from_slice(&d);
                    false
                }
                Ok(BodyEvent::End) => {
                    seen.push(Seen::Body(std::mem::take(data)));
                    body = None;
                    false
                }
                Ok(BodyEvent::NeedMore) => true,
                Err(e) => {
                    seen.push(Seen::Body(std::mem::take(data)));
                    seen.push(Seen::BodyErr(e));
                    return seen;
                }
            },
        };
        if need_more {
            match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => {
                    if let Some((_, data)) = body {
                        seen.push(Seen::Body(data));
                    }
                    seen.push(Seen::Eof(buf.len()));
                    return seen;
                }
            }
        }
    }
}

fn random_cuts(rng: &Rng, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = match rng.below(3) {
        0 => (0..rng.below(8)).map(|_| rng.below(len + 1)).collect(),
        1 => (0..len).step_by(1 + rng.below(7)).collect(),
        _ => (0..rng.below(len / 4 + 1))
            .map(|_| rng.below(len + 1))
            .collect(),
    };
    cuts.sort_unstable();
    cuts
}

fn mutate(rng: &Rng, input: &mut Vec<u8>) {
    if input.is_empty() {
        return;
    }
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(input.len());
        let b = *rng.pick(b"\r\n ;:\t0f9xX,\x00\x7f\x80-");
        match rng.below(3) {
            0 => input[at] = b,
            1 => input.insert(at, b),
            _ => {
                input.remove(at);
                if input.is_empty() {
                    return;
                }
            }
        }
    }
}

#[test]
fn generated_requests_round_trip_whole() {
    let rng = Rng::new(1);
    for case in 0..500 {
        let mut wire = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let (w, b) = gen_request(&rng);
            wire.extend(w);
            bodies.push(b);
        }
        let seen = drive(&wire, &[], MAX_HEAD_BYTES);
        let got: Vec<&Vec<u8>> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Body(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), bodies.len(), "case {case}: {seen:?}");
        for (g, want) in got.iter().zip(&bodies) {
            assert_eq!(*g, want, "case {case}");
        }
        assert_eq!(seen.last(), Some(&Seen::Eof(0)), "case {case}");
        for s in &seen {
            if let Seen::Head(h) = s {
                assert_eq!(h.header("host"), Some(&b"api.example.com"[..]));
            }
        }
    }
}

#[test]
fn split_feeding_matches_whole() {
    let rng = Rng::new(2);
    for case in 0..3000 {
        let mut wire = Vec::new();
        for _ in 0..1 + rng.below(3) {
            wire.extend(gen_request(&rng).0);
        }
        if rng.chance(2) {
            mutate(&rng, &mut wire);
        }
        let max_head = if rng.chance(5) {
            64 + rng.below(400)
        } else {
            MAX_HEAD_BYTES
        };
        let whole = drive(&wire, &[], max_head);
        for _ in 0..4 {
            let cuts = random_cuts(&rng, wire.len());
            assert_eq!(
                drive(&wire, &cuts, max_head),
                whole,
                "case {case} cuts {cuts:?}"
            );
        }
    }
}

#[test]
fn every_byte_boundary_matches_whole() {
    let rng = Rng::new(3);
    for case in 0..150 {
        let mut wire = gen_request(&rng).0;
        wire.truncate(600);
        if rng.chance(2) {
            mutate(&rng, &mut wire);
        }
        let whole = drive(&wire, &[], MAX_HEAD_BYTES);
        for k in 0..=wire.len() {
            assert_eq!(
                drive(&wire, &[k], MAX_HEAD_BYTES),
                whole,
                "case {case} cut {k}"
            );
        }
        let all: Vec<usize> = (0..wire.len()).collect();
        assert_eq!(
            drive(&wire, &all, MAX_HEAD_BYTES),
            whole,
            "case {case} byte-at-a-time"
        );
    }
}

/// Dumb chunked decoder over a complete input: `Some((body, consumed))` when the input holds
/// a valid chunked body, `None` when it is invalid or incomplete.
fn reference_chunked(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    fn line<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
        let rest = &input[*pos..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let l = &rest[..end];
        if l.contains(&b'\r') || l.contains(&b'\n') {
            return None;
        }
        *pos += end + 2;
        Some(l)
    }
    let ctl_ok = |b: &u8| !((*b < 0x20 && *b != b'\t') || *b == 0x7f);
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let l = line(input, &mut pos)?;
        if l.len() > MAX_CHUNK_LINE_BYTES {
            return None;
        }
        let (size, ext) = match l.iter().position(|b| *b == b';') {
            Some(i) => (&l[..i], Some(&l[i + 1..])),
            None => (l, None),
        };
        let size = std::str::from_utf8(size)
            .ok()?
            .trim_end_matches([' ', '\t']);
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if !ext.unwrap_or_default().iter().all(ctl_ok) {
            return None;
        }
        let n = usize::try_from(u64::from_str_radix(size, 16).ok()?).ok()?;
        if n == 0 {
            let mut total = 0;
            loop {
                let t = line(input, &mut pos)?;
                if t.is_empty() {
                    return Some((body, pos));
                }
                total += t.len() + 2;
                let colon = t.iter().position(|b| *b == b':')?;
                let name_ok = colon > 0 && t[..colon].iter().all(|b| TOKEN.contains(b));
                if total > MAX_TRAILER_BYTES || !name_ok || !t[colon..].iter().all(ctl_ok) {
                    return None;
                }
            }
        }
        body.extend_from_slice(input.get(pos..pos.checked_add(n)?)?);
        pos += n;
        if input.get(pos..pos + 2)? != b"\r\n" {
            return None;
        }
        pos += 2;
    }
}

/// Outcome of running the real chunked decoder over a whole input.
#[derive(Debug, PartialEq, Eq)]
enum BodyRun {
    /// Reached End with this body and this many input bytes left over.
    Ended(Vec<u8>, usize),
    /// Failed after emitting this much body.
    Failed(Vec<u8>, BodyError),
    /// Ran out of input after emitting this much body.
    Starved(Vec<u8>),
}

/// Feed a bare chunked body to the real decoder at `cuts`.
fn drive_body(input: &[u8], cuts: &[usize]) -> BodyRun {
    let mut dec = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut start = 0;
    let mut pieces = cuts.iter().copied().chain(std::iter::once(input.len()));
    loop {
        match dec.decode(&mut buf) {
            Ok(BodyEvent::Data(d)) => {
                assert!(!d.is_empty());
                body.extend_from_slice(&d);
            }
            Ok(BodyEvent::End) => return BodyRun::Ended(body, buf.len() + input.len() - start),
            Ok(BodyEvent::NeedMore) => match pieces.next() {
                Some(c) => {
                    buf.extend_from_slice(&input[start..c]);
                    start = c;
                }
                None => return BodyRun::Starved(body),
            },
            Err(e) => return BodyRun::Failed(body, e),
        }
    }
}

/// The real decoder in the oracle's terms: `Some((body, consumed))` iff it ends.
fn real_chunked(input: &[u8], cuts: &[usize]) -> Option<(Vec<u8>, usize)> {
    match drive_body(input, cuts) {
        BodyRun::Ended(body, left) => Some((body, input.len() - left)),
        BodyRun::Failed(..) | BodyRun::Starved(_) => None,
    }
}

#[test]
fn chunked_decoder_matches_reference() {
    let rng = Rng::new(4);
    let mut accepted = 0;
    let mut rejected = 0;
    for case in 0..5000 {
        let len = rng.below(if rng.chance(8) { 3000 } else { 100 });
        let body = rng.bytes_from(b"ab\r\n0;", len);
        let mut wire = encode_chunked(&rng, &body);
        let valid = !rng.chance(2);
        if !valid {
            mutate(&rng, &mut wire);
        }
        if rng.chance(3) {
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        }
        let want = reference_chunked(&wire);
        if valid {
            let (b, _) = want
                .as_ref()
                .unwrap_or_else(|| panic!("case {case}: oracle rejected {wire:?}"));
            assert_eq!(b, &body, "case {case}");
        }
        let whole = real_chunked(&wire, &[]);
        assert_eq!(
            whole,
            want,
            "case {case}: {:?}",
            String::from_utf8_lossy(&wire)
        );
        let cuts = random_cuts(&rng, wire.len());
        assert_eq!(
            drive_body(&wire, &cuts),
            drive_body(&wire, &[]),
            "case {case} cuts {cuts:?}"
        );
        if want.is_some() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // the mutator must actually produce both outcomes for this test to mean anything
    assert!(
        accepted > 2500 && rejected > 500,
        "accepted {accepted} rejected {rejected}"
    );
}

#[test]
fn chunked_every_byte_boundary() {
    let rng = Rng::new(5);
    for case in 0..200 {
        let len = rng.below(60);
        let body = rng.bytes_from(b"xyz\r\n", len);
        let mut wire = encode_chunked(&rng, &body);
        if rng.chance(2) {
            mutate(&rng, &mut wire);
        }
        let whole = drive_body(&wire, &[]);
        for k in 0..=wire.len() {
            assert_eq!(drive_body(&wire, &[k]), whole, "case {case} cut {k}");
        }
        let all: Vec<usize> = (0..wire.len()).collect();
        assert_eq!(drive_body(&wire, &all), whole, "case {case} byte-at-a-time");
    }
}

#[test]
fn written_chunks_decode_back() {
    let rng = Rng::new(6);
    for _ in 0..300 {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(10) {
            let len = rng.below(2000);
            let piece = rng.bytes_from(b"data: {}\n", len);
            write_chunk(&mut wire, &piece);
            want.extend(piece);
        }
        wire.extend_from_slice(LAST_CHUNK);
        assert_eq!(reference_chunked(&wire), Some((want.clone(), wire.len())));
        assert_eq!(
            real_chunked(&wire, &random_cuts(&rng, wire.len())),
            Some((want, wire.len()))
        );
    }
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let wire = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let seen = drive(wire, &[], MAX_HEAD_BYTES);
    let [Seen::Head(a), Seen::Body(ab), Seen::Head(b), Seen::Body(bb), Seen::Head(c), Seen::Body(cb), Seen::Eof(0)] =
        &seen[..]
    else {
        panic!("{seen:?}");
    };
    assert_eq!(
        (a.path(), a.framing(), &ab[..]),
        ("/a", Framing::Length(5), &b"hello"[..])
    );
    assert_eq!(
        (b.path(), b.framing(), &bb[..]),
        ("/b", Framing::Chunked, &b"abcde"[..])
    );
    assert_eq!(
        (c.path(), c.framing(), c.keep_alive(), cb.len()),
        ("/c", Framing::None, false, 0)
    );
    for step in 1..wire.len() {
        let cuts: Vec<usize> = (step..wire.len()).step_by(step).collect();
        assert_eq!(drive(wire, &cuts, MAX_HEAD_BYTES), seen, "step {step}");
    }
}
