#![no_main]
//! Sealed items opened with PII on, on the path admission takes: a Responses body whose items
//! the recipe draws (user text, compaction items sealed for this gateway key, for another key
//! or forged, reasoning sealed from substituted input or not, text with entities: 0xFF then an
//! index) goes through `open_sealed_items`, the flag's removal, the PII-on pass of
//! `open_sealed_items` and `substitute_body`.
//!
//! Asserted, besides no panic: a compaction item that is not this key's is a 400 and nothing
//! else is; every summary comes out opened, in order, and restores to what was sealed; every
//! entity the detector finds in it was substituted and no original is left in it; no reasoning
//! item left holds thinking written from originals with an entity in it.

use libfuzzer_sys::fuzz_target;
use ringway::pii::{parse_body, substitute_body, Mode, Session};
use ringway::seal::{Holder, Purpose, SealKey};
use ringway::translate::responses::{open_sealed_items, COMPACTION_PREAMBLE};
use serde_json::{json, Value};

#[path = "common/entities.rs"]
mod entities;
use entities::{detector, ENTITIES};

/// Text up to a 0x00 byte (Latin-1; 0xFF then an index inserts an entity).
fn text(data: &mut std::slice::Iter<'_, u8>) -> String {
    let mut out = String::new();
    while let Some(&b) = data.next() {
        match b {
            0 => break,
            0xff => {
                out.push_str(ENTITIES[usize::from(*data.next().unwrap_or(&0)) % ENTITIES.len()])
            }
            b => out.push(char::from(b)),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (Some(detector), Some(master)) = (detector(), SealKey::from_bytes(&[7; 32])) else {
        return;
    };
    let (key, other) = (
        master.for_holder(Holder::Key([1; 32])),
        master.for_holder(Holder::Key([2; 32])),
    );
    let mut data = data.iter();
    let (mut items, mut summaries, mut refused, mut unsafe_thinking) =
        (Vec::new(), Vec::new(), false, false);
    while let Some(&k) = data.next().filter(|_| items.len() < 8) {
        let t = text(&mut data);
        items.push(match k % 5 {
            0 => json!({"role": "user", "content": [{"type": "input_text", "text": t}]}),
            1 | 2 | 4 => {
                let sealed = if k % 5 == 2 { &other } else { &key }.seal(Purpose::Compaction, t.as_bytes()).unwrap_or_default();
                let mut sealed = sealed.into_bytes();
                if let Some(c) = sealed.get_mut(20).filter(|_| k % 5 == 4) {
                    *c = if *c == b'A' { b'B' } else { b'A' }; // forged
                }
                let sealed = String::from_utf8(sealed).unwrap_or_default();
                refused |= k % 5 != 1;
                summaries.push(t);
                json!({"type": "compaction", "encrypted_content": sealed})
            }
            _ => {
                let x = k & 0x80 != 0;
                unsafe_thinking |= !x && !detector.find(&t).is_empty();
                let plain = json!({"p": "p", "k": "thinking", "t": t, "s": "c2ln", "x": x}).to_string();
                json!({"type": "reasoning", "summary": [], "encrypted_content": key.seal(Purpose::Reasoning, plain.as_bytes())})
            }
        });
    }
    let body = json!({"model": "m", "pii_substitution": true, "input": items}).to_string();
    let opened = match open_sealed_items(body.as_bytes(), &key, None) {
        Err(e) => return assert!(refused && e.status == 400, "{e}"),
        Ok(o) => o.map_or(body.into_bytes(), |o| o.body),
    };
    assert!(
        !refused,
        "a compaction item of another key or forged was opened"
    );
    let parsed = parse_body(&opened).expect("an object");
    let holds = |t: &str| !detector.find(t).is_empty();
    let screened =
        open_sealed_items(&parsed.body, &key, Some(&holds)).expect("nothing left to refuse");
    assert_eq!(
        screened.as_ref().is_some_and(|o| o.dropped_reasoning),
        unsafe_thinking
    );
    let screened = screened.map_or(parsed.body, |o| o.body);
    let mut session = Session::new(detector, b"k");
    let out = substitute_body(&screened, &mut session).expect("substituted");
    if session.incomplete() {
        return; // admission refuses the request
    }
    let v: Value = serde_json::from_slice(&out).expect("JSON");
    let input = v["input"].as_array().expect("input");
    let opened: Vec<&str> = input.iter().filter_map(|i| i["content"].as_str()).collect();
    assert_eq!(opened.len(), summaries.len(), "every summary opened");
    let originals: Vec<&str> = session
        .pairs()
        .iter()
        .map(|p| p.original.as_str())
        .collect();
    for (got, summary) in opened.iter().zip(&summaries) {
        let want = format!("{COMPACTION_PREAMBLE}{summary}");
        let back = session.restore_set().map_or(got.as_bytes().to_vec(), |s| {
            s.restore_with(got.as_bytes(), Mode::Text)
        });
        assert_eq!(back, want.as_bytes(), "the summary does not restore");
        assert!(
            detector
                .find(&want)
                .iter()
                .all(|f| originals.contains(&&want[f.range.clone()])),
            "an entity of {want:?} was not substituted"
        );
        assert!(
            detector
                .find(got)
                .iter()
                .all(|f| !originals.contains(&&got[f.range.clone()])),
            "an original reached the provider in {got:?}"
        );
    }
    for sealed in input.iter().filter_map(|i| i["encrypted_content"].as_str()) {
        let thinking: Value =
            serde_json::from_slice(&key.open(Purpose::Reasoning, sealed).expect("ours"))
                .expect("JSON");
        assert!(
            thinking["x"] == true || !holds(thinking["t"].as_str().unwrap_or("")),
            "unsafe thinking left"
        );
    }
});
