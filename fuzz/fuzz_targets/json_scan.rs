//! The scanning JSON parser (the request path's) against serde_json's: the same answer on any
//! input, alone and spliced into a string of a real agent body (so long, escape-dense strings
//! and block boundaries are crossed with arbitrary bytes). And the block escaper against
//! serde_json's: the same bytes for any string. And `wire::Str`, which keeps an escaped
//! string as written: the same text (or refusal) as serde_json's `String`, and written back
//! it reads as that text again. And a body checked to be UTF-8 once (`json::Checked`): the
//! scan of it as known text answers as the scan that checks it, and a slice of it is taken as
//! text exactly when it is cut at character boundaries, as that text. And an agent body's
//! tools and conversation, taken whole as kept from an earlier input: the answer and notes of
//! scanning them.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::json::{
    inspect_request_scan, inspect_request_serde, known_text, with_checked, with_scope,
    without_kept_values, write_json_string, Checked, JsonError, RequestInfo,
};

/// A real Claude Code request: its first text string runs from byte 90 to past byte 600.
const AGENT: &[u8] = include_bytes!("../../tests/fixtures/claude_code/request.json");

/// The two parsers agree; on the seal note, the scanner's (made per string token) never says
/// yes where serde_json's path (a search for `"rw1.`) says no; and every note the scanner took
/// of where a long string or container ends (which readers trust) is right.
fn same(body: &[u8]) {
    let (scan, serde) = (inspect_request_scan(body), inspect_request_serde(body));
    if let (Ok(scan), Ok(serde)) = (&scan, &serde) {
        assert!(serde.may_hold_seal || !scan.may_hold_seal);
        assert!(
            scan.strings.hold_in(body),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(unsealed(scan), unsealed(serde));
    checked(body);
}

/// What is known of a body checked once agrees with checking it again.
fn checked(body: &[u8]) {
    let bytes = Bytes::copy_from_slice(body);
    let utf8 = Checked::new(&bytes);
    assert_eq!(utf8.is_some(), std::str::from_utf8(body).is_ok());
    let plain = inspect_request_scan(&bytes);
    with_checked(utf8.as_ref(), || {
        assert_eq!(inspect_request_scan(&bytes), plain);
        // Slices at cuts the body's own bytes choose.
        let n = bytes.len();
        for (i, j) in [(0, n), (n / 3, n), (0, n / 2), (n / 4, n - n / 5)] {
            let Some(slice) = bytes.get(i..j) else {
                continue;
            };
            match known_text(slice) {
                Some(text) => assert_eq!(Ok(text), std::str::from_utf8(slice)),
                None => assert!(utf8.is_none() || std::str::from_utf8(slice).is_err()),
            }
        }
    });
}

/// A body's `tools` taken whole as kept from an earlier input with the same tools (the agent
/// body's, after the fuzzer's bytes) gives the answer and the notes scanning them gives.
fn kept(body: &[u8]) {
    let plain = without_kept_values(|| inspect_request_scan(body));
    for _ in 0..2 {
        let kept = with_scope(1, || inspect_request_scan(body));
        if let (Ok(k), Ok(p)) = (&kept, &plain) {
            assert!(k.strings.same_notes(&p.strings));
        }
        assert_eq!(kept, plain);
    }
}

/// An agent conversation whose next turns hold the fuzzer's bytes (after the elements kept
/// from the turn before, between them, and right against the end of one): each inspected with
/// kept conversations as without, in turn, so each takes what the one before kept.
fn conversation(data: &[u8]) {
    let find = |needle: &[u8]| AGENT.windows(needle.len()).position(|w| w == needle);
    let (Some(from), Some(to)) = (find(b"\"system\":"), find(b",\"tools\"")) else {
        return;
    };
    // Claude Code's system blocks: 17 KB, a kept element.
    let long = &AGENT[from + 9..to];
    let short: &[u8] = br#"{"role":"user","content":"x"}"#;
    let body = |elements: &[&[u8]]| {
        let mut b = br#"{"model":"m","messages":["#.to_vec();
        b.extend_from_slice(&elements.join(&b","[..]));
        b.extend_from_slice(b"]}");
        b
    };
    kept(&body(&[long, short]));
    kept(&body(&[long, short, data]));
    kept(&body(&[long, data, short]));
    kept(&body(&[long, &[short, data].concat()]));
    kept(&body(&[long, short, long, data]));
}

fn unsealed(r: Result<RequestInfo, JsonError>) -> Result<RequestInfo, JsonError> {
    r.map(|info| RequestInfo {
        may_hold_seal: false,
        ..info
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = std::str::from_utf8(data) {
        let ours = serde_json::from_str::<Vec<ringway::wire::Str<'_>>>(json);
        let theirs = serde_json::from_str::<Vec<String>>(json);
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{json:?}");
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            let texts: Vec<&str> = ours.iter().map(|s| s.as_str()).collect();
            assert_eq!(texts, theirs);
            let written = serde_json::to_string(&ours).unwrap();
            assert_eq!(
                serde_json::from_str::<Vec<String>>(&written).unwrap(),
                theirs
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut ours = Vec::new();
        write_json_string(&mut ours, text);
        assert_eq!(Some(ours), serde_json::to_vec(text).ok());
    }
    same(data);
    // The fuzzer's bytes inside a long string of a real body, at a place that moves with
    // them, so that a block boundary falls anywhere in them.
    let at = 200 + data.len() % 64;
    if let Some(head) = AGENT.get(..at) {
        let mut body = head.to_vec();
        body.extend_from_slice(data);
        body.extend_from_slice(&AGENT[at..]);
        same(&body);
        kept(&body);
    }
    conversation(data);
});
