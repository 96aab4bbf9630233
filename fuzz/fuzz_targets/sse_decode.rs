#![no_main]
//! SSE decoder with a small event limit: input split at fuzzer-chosen points gives the same
//! events, and the same `EventTooLarge` at the same place, as the whole input; without an
//! error every `raw` plus the remainder reproduces the input; no event exceeds the limit
//! (plus the CRLF LFs it does not count); an error is only raised when more than the limit is
//! left undecoded, and is sticky.

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::sse::{Decoder, Event, SseError};

type Fields = (Option<Bytes>, Option<Bytes>, Option<Bytes>, Option<u64>);

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Fields>,
    error: Option<SseError>,
    last: Option<Fields>,
    relayed: Vec<u8>,
}

fn decode(chunks: &[&[u8]], limit: usize) -> Outcome {
    let fields = |e: &Event| (e.event.clone(), e.data.clone(), e.id.clone(), e.retry);
    let (mut dec, mut events, mut relayed) = (Decoder::new(limit), Vec::new(), Vec::new());
    for chunk in chunks {
        dec.push(Bytes::copy_from_slice(chunk));
        loop {
            match dec.next_event() {
                Ok(Some(e)) => {
                    // The limit does not count the LF of a CRLF at either end of the block.
                    assert!(e.raw.len() <= limit + 2, "event of {} bytes", e.raw.len());
                    relayed.extend_from_slice(&e.raw);
                    events.push(fields(&e));
                }
                Ok(None) => break,
                Err(error) => {
                    // Failed for good: later input is ignored and the error repeats.
                    dec.push(Bytes::from_static(b"data: x\n\n"));
                    assert_eq!(dec.next_event(), Err(error.clone()));
                    assert_eq!(dec.finish(), None);
                    let error = Some(error);
                    return Outcome {
                        events,
                        error,
                        last: None,
                        relayed,
                    };
                }
            }
        }
    }
    relayed.extend_from_slice(&dec.clone().take_remainder());
    let last = dec.finish().as_ref().map(fields);
    Outcome {
        events,
        error: None,
        last,
        relayed,
    }
}

fuzz_target!(|input: &[u8]| {
    // First byte: the event limit; second: how many of the next bytes are chunk lengths
    // (cycled) for the rest.
    let Some((&[limit, n], rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let limit = 1 + usize::from(limit);
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
    let mut whole = decode(&[body], limit);
    let mut split = decode(&chunks, limit);
    if whole.error.is_some() {
        let left = body.len() - whole.relayed.len();
        assert!(left > limit, "error with all left fitting");
        // Which block a CRLF's LF is relayed with depends on the split; the stream has failed.
        (whole.relayed, split.relayed) = (Vec::new(), Vec::new());
    } else {
        assert_eq!(whole.relayed, body, "relay transparency");
    }
    assert_eq!(split, whole, "split decode differs");
});
