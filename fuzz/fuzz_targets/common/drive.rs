//! Drives a stream translator as the proxy's pump does: the upstream body split at
//! fuzzer-chosen points, decoded by `sse::Decoder` (small event limit), every event through the
//! translator, then EOF (`finish`) or, in some runs, a gateway failure (`fail`) at a
//! fuzzer-chosen read; and checks that nothing is written after the end.

use bytes::Bytes;
use ringway::sse::Decoder;
use ringway::translate::StreamTranslator;

#[path = "split.rs"]
mod split;

/// Small enough that an oversized upstream event fits in a fuzz input.
const EVENT_LIMIT: usize = 512;
/// A gateway error text with bytes that need escaping in every format.
const FAILURE: &str = "upstream \"timed\" out\n\u{7f}é";

/// Feeds `body` through `tr` into `out`; `after_read` sees `out` after each read and after
/// the end (the pipeline target frames and clears it there). `fail`: end with a gateway
/// failure, at read `fail_at` if the body lasts that long, else at its end.
pub fn drive(
    tr: &mut StreamTranslator,
    body: &[u8],
    (fail, fail_at, pattern): (bool, u8, u8),
    out: &mut Vec<u8>,
    mut after_read: impl FnMut(&mut Vec<u8>),
) {
    let (mut dec, mut piece) = (Decoder::new(EVENT_LIMIT), split::pieces(pattern, 64));
    let (mut rest, mut reads, mut ended) = (body, 0u8, false);
    while !ended && !rest.is_empty() {
        let (now, later) = rest.split_at(piece().min(rest.len()));
        rest = later;
        dec.push(Bytes::copy_from_slice(now));
        let too_large = loop {
            match dec.next_event() {
                Ok(Some(ev)) => {
                    if let Some(d) = ev.data.as_deref() {
                        tr.on_event(ev.event.as_deref(), d, out);
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        reads = reads.wrapping_add(1);
        ended = too_large || (fail && reads == fail_at);
        if ended {
            tr.fail(FAILURE, out);
        }
        after_read(out);
    }
    if !ended {
        if fail {
            tr.fail(FAILURE, out);
        } else {
            tr.finish(out);
        }
        after_read(out);
    }
    assert!(tr.is_done(), "not done after finish/fail");
    // Terminal means terminal: whatever comes next writes nothing.
    let mut after = Vec::new();
    tr.on_event(
        Some(b"message_start"),
        br#"{"type":"message_start","message":{"id":"m2"}}"#,
        &mut after,
    );
    tr.on_event(
        None,
        br#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
        &mut after,
    );
    tr.fail("again", &mut after);
    tr.finish(&mut after);
    assert!(
        after.is_empty(),
        "written after the end: {}",
        String::from_utf8_lossy(&after)
    );
}
