#![no_main]
//! PII substitution and restore: for random text sprinkled with real entities, restoring the
//! substituted text gives back exactly the original, whole or pushed in any split, and the
//! restorer never holds back more than its longest stand-in. No panic anywhere.

use libfuzzer_sys::fuzz_target;
use ringway::pii::{Mode, Restorer, Session};

#[path = "common/entities.rs"]
mod entities;
use entities::{detector, ENTITIES};

fuzz_target!(|data: &[u8]| {
    let Some(detector) = detector() else { return };
    // Byte 0: the key secret; byte 1: the chunk-size pattern seed; the rest: the prompt.
    let Some((&[secret, sizes], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut raw = Vec::with_capacity(rest.len() * 2);
    let mut it = rest.iter();
    while let Some(&b) = it.next() {
        match (b, it.clone().next()) {
            (0xff, Some(&i)) => {
                it.next();
                raw.extend_from_slice(ENTITIES[usize::from(i) % ENTITIES.len()].as_bytes());
            }
            _ => raw.push(b),
        }
    }
    let prompt = String::from_utf8_lossy(&raw).into_owned();
    let mut session = Session::new(detector, &[secret]);
    let sent = session.substitute(&[&prompt]).pop().flatten();
    let Some(set) = session.restore_set() else {
        assert!(sent.is_none(), "substituted with no stand-in");
        return;
    };
    let sent = sent.unwrap_or_else(|| prompt.clone());
    for p in session.pairs() {
        assert!(
            !prompt.contains(&p.stand_in),
            "stand-in {} collides with the prompt",
            p.stand_in
        );
    }
    // The prompt is plain text: restored as such (JSON escapes are not read), like the
    // streaming restorer below.
    let whole = set.restore_with(sent.as_bytes(), Mode::Text);
    assert_eq!(
        String::from_utf8_lossy(&whole),
        prompt,
        "whole restore differs"
    );
    let mut r = Restorer::new(set.clone());
    let (mut streamed, mut at, mut k) = (Vec::new(), 0, u32::from(sizes));
    while at < sent.len() {
        k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let end = (at + 1 + (k >> 16) as usize % 9).min(sent.len());
        streamed.extend(r.push(&sent.as_bytes()[at..end]));
        assert!(r.held() <= set.longest(), "held back {} bytes", r.held());
        at = end;
    }
    streamed.extend(r.finish());
    assert_eq!(streamed, whole, "split restore differs");
});
