#![no_main]
//! SSE decoder: input split at fuzzer-chosen points gives the same events as the whole
//! input; every `raw` plus the remainder reproduces the input; nothing panics.

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::sse::{Decoder, Event, MAX_EVENT_BYTES};

type Fields = (Option<Bytes>, Option<Bytes>, Option<Bytes>, Option<u64>);

fn decode(chunks: &[&[u8]]) -> (Vec<Fields>, Option<Fields>, Vec<u8>) {
    let fields = |e: &Event| (e.event.clone(), e.data.clone(), e.id.clone(), e.retry);
    let (mut dec, mut events, mut relayed) =
        (Decoder::new(MAX_EVENT_BYTES), Vec::new(), Vec::new());
    for chunk in chunks {
        dec.push(Bytes::copy_from_slice(chunk));
        while let Some(e) = dec.next_event().unwrap_or(None) {
            relayed.extend_from_slice(&e.raw);
            events.push(fields(&e));
        }
    }
    relayed.extend_from_slice(&dec.clone().take_remainder());
    (events, dec.finish().as_ref().map(fields), relayed)
}

fuzz_target!(|input: &[u8]| {
    // First byte: how many of the next bytes are chunk lengths (cycled) for the rest.
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let (lens, body) = rest.split_at((usize::from(n) % 8).min(rest.len()));
    let (mut chunks, mut tail, mut k) = (Vec::new(), body, 0);
    while !tail.is_empty() {
        let len = lens
            .get(k % lens.len().max(1))
            .map_or(1, |&l| usize::from(l) + 1);
        let (chunk, after) = tail.split_at(len.min(tail.len()));
        chunks.push(chunk);
        (tail, k) = (after, k + 1);
    }
    let whole = decode(&[body]);
    assert_eq!(whole.2, body, "relay transparency");
    assert_eq!(decode(&chunks), whole, "split decode differs");
});
