//! Chunked body decoder: the first byte picks a split pattern; decoding the rest fed in those
//! pieces must equal decoding it whole (same body, same end or error, same leftover).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[path = "common/split.rs"]
mod split;
use ringway::http1::{BodyDecoder, BodyError, BodyEvent, Framing};

/// Body bytes, then `Some(Ok(leftover))` on End, `Some(Err)` on error, `None` when starved.
fn run(
    input: &[u8],
    mut piece: impl FnMut() -> usize,
) -> (Vec<u8>, Option<Result<usize, BodyError>>) {
    let (mut dec, mut buf, mut body, mut rest) = (
        BodyDecoder::new(Framing::Chunked),
        BytesMut::new(),
        Vec::new(),
        input,
    );
    loop {
        match dec.decode(&mut buf) {
            Ok(BodyEvent::Data(d)) => body.extend_from_slice(&d),
            Ok(BodyEvent::End) => return (body, Some(Ok(buf.len() + rest.len()))),
            Err(e) => return (body, Some(Err(e))),
            Ok(BodyEvent::NeedMore) if rest.is_empty() => return (body, None),
            Ok(BodyEvent::NeedMore) => {
                let (now, later) = rest.split_at(piece().clamp(1, rest.len()));
                buf.extend_from_slice(now);
                rest = later;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pattern, input)) = data.split_first() else {
        return;
    };
    let split = run(input, split::pieces(pattern, 32));
    assert_eq!(split, run(input, || usize::MAX));
});
