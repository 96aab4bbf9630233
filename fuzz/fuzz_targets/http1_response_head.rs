#![no_main]
//! Response-head writer vs. header injection: any status, body kind and header list (one
//! `x-ringway-model` from arbitrary bytes, the others with arbitrary or well-known names) is
//! either refused — for the first bad field, the output untouched — or written as exactly one
//! head that parses back (httparse, and `decode_head` for final statuses) to the status and
//! fields given, plus the framing fields, with nothing left over.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringway::http1::{decode_head, MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEAD_BYTES};
use ringway::http1::{write_response_head, RefusedBecause, ResponseBody};

const NAMES: [&str; 8] = [
    "x-ringway-model",
    "content-type",
    "Content-Length",
    "transfer-encoding",
    "connection",
    "retry-after",
    "x-request-id",
    "Set-Cookie",
];

/// RFC 9110 §5.6.2 `tchar`, written out here rather than taken from the code under test.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first field a correct writer must refuse, and why.
fn first_bad(fields: &[(String, Vec<u8>)]) -> Option<(usize, RefusedBecause)> {
    fields.iter().enumerate().find_map(|(i, (n, v))| {
        let why = if n.is_empty() || !n.bytes().all(is_tchar) {
            RefusedBecause::Name
        } else if v.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            RefusedBecause::Value
        } else if ["content-length", "transfer-encoding"].contains(&&*n.to_ascii_lowercase()) {
            RefusedBecause::Framing
        } else {
            return None;
        };
        Some((i, why))
    })
}

/// Optional whitespace around a value is not part of it (RFC 9110 §5.5): parsers drop it.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fuzz_target!(|data: &[u8]| {
    let Some((head, mut rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let status = u16::from_le_bytes([head[0], head[1]]);
    let keep_alive = head[2] & 4 != 0;
    let len = u64::from(u32::from_le_bytes([head[3], head[4], head[5], head[6]]));
    let body = [
        ResponseBody::Empty,
        ResponseBody::Length(len),
        ResponseBody::Chunked,
        ResponseBody::CloseDelimited,
    ][usize::from(head[2] & 3)];
    let mut take = |n: usize| {
        let (now, later) = rest.split_at(n.min(rest.len()));
        rest = later;
        now
    };
    let model = take(usize::from(head[7])).to_vec();
    let mut fields = vec![("x-ringway-model".to_owned(), model)];
    while let [sel, vlen, ..] = *take(2) {
        let name = match sel {
            0x80.. => NAMES[usize::from(sel) % NAMES.len()].to_owned(),
            _ => String::from_utf8_lossy(take(usize::from(sel % 32))).into_owned(),
        };
        fields.push((name, take(usize::from(vlen)).to_vec()));
    }
    let refs: Vec<(&str, &[u8])> = fields.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
    // Earlier output in the buffer (a previous response on the connection) must survive.
    let mut out = b"HTTP/1.1 200 OK\r\n\r\n".repeat(usize::from(head[2] >> 6));
    let before = out.clone();

    let result = write_response_head(&mut out, status, &refs, body, keep_alive);
    if let Err(refused) = result {
        assert_eq!(out, before, "a refusal wrote something");
        assert_eq!(Some((refused.index, refused.reason)), first_bad(&fields));
        return;
    }
    assert_eq!(first_bad(&fields), None, "accepted a bad field");
    let written = &out[before.len()..];
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };

    let mut want: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|(n, v)| (n.clone(), trim_ows(v).to_vec()))
        .collect();
    let no_body = status < 200 || status == 204 || status == 304;
    match body {
        ResponseBody::Empty if no_body => {}
        ResponseBody::Empty => want.push(("content-length".into(), b"0".to_vec())),
        ResponseBody::Length(n) => want.push(("content-length".into(), n.to_string().into())),
        ResponseBody::Chunked => want.push(("transfer-encoding".into(), b"chunked".to_vec())),
        ResponseBody::CloseDelimited => {}
    }
    let closes = !keep_alive || body == ResponseBody::CloseDelimited;
    if closes {
        want.push(("connection".into(), b"close".to_vec()));
    }

    // As many slots as fields: the input decides how many there are.
    let mut slots = vec![httparse::EMPTY_HEADER; want.len()];
    let mut parsed = httparse::Response::new(&mut slots);
    let n = match parsed.parse(written) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("{other:?}: {:?}", String::from_utf8_lossy(written)),
    };
    assert_eq!(n, written.len(), "bytes after the head");
    assert_eq!(parsed.code, Some(status));
    let got: Vec<(String, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    assert_eq!(got, want);

    // The upstream decoder bounds what it reads (ringway writes heads to clients unbounded):
    // over its bounds it refuses the head rather than read part of it.
    let over_bounds = want.len() > MAX_RESPONSE_HEADERS || written.len() > MAX_RESPONSE_HEAD_BYTES;
    if (200..=599).contains(&status) && over_bounds {
        let mut buf = BytesMut::from(written);
        assert!(
            decode_head(&mut buf).is_err(),
            "a head over the bounds was read"
        );
    } else if (200..=599).contains(&status) {
        let mut buf = BytesMut::from(written);
        let h = decode_head(&mut buf)
            .expect("decode_head")
            .expect("complete");
        assert!(buf.is_empty() && h.status == status);
        let got: Vec<(String, Vec<u8>)> = h
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        let lower: Vec<_> = want
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        assert_eq!(got, lower);
        assert!(
            !(closes && h.reusable),
            "a closing response reads as reusable"
        );
    }
});
