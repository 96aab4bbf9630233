//! Bedrock's AWS event-stream decoder: any bytes in any pieces never panic and give the same
//! events and error as the input whole; a valid stream (frames built by the vendor codec from
//! the input) decodes to one event per frame, whole or split, with no error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::provider::aws_event_stream::{chunk_frame, exception_frame, Decoder};
use ringway::sse::{Event, SseError};

#[path = "common/split.rs"]
mod split;

fn run(input: &[u8], mut piece: impl FnMut() -> usize) -> (Vec<Event>, Option<SseError>) {
    let (mut dec, mut rest, mut out) = (Decoder::new(), input, Vec::new());
    loop {
        match dec.next_event() {
            Ok(Some(ev)) => out.push(ev),
            Err(e) => return (out, Some(e)),
            Ok(None) if rest.is_empty() => return (out, None),
            Ok(None) => {
                let (now, later) = rest.split_at(piece().clamp(1, rest.len()));
                dec.push(Bytes::copy_from_slice(now));
                rest = later;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[pattern, mode], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let whole = run(input, || usize::MAX);
    assert_eq!(
        run(input, split::pieces(pattern, 64)),
        whole,
        "split decode differs"
    );
    if mode & 1 == 1 {
        // Each 0xFF-separated part becomes a frame: a chunk (text in a JSON string) or,
        // when it starts with 0xFE, an exception named by the rest.
        let parts: Vec<&[u8]> = input.split(|&b| b == 0xFF).collect();
        let stream: Vec<u8> = parts
            .iter()
            .flat_map(|p| match p.split_first() {
                Some((0xFE, name)) => exception_frame(&String::from_utf8_lossy(name), "m"),
                _ => {
                    let text = String::from_utf8_lossy(p);
                    let ev = serde_json::json!({"type": "content_block_delta", "t": text});
                    chunk_frame(ev.to_string().as_bytes(), &text)
                }
            })
            .collect();
        let valid = run(&stream, || usize::MAX);
        assert_eq!(valid.1, None, "a valid stream failed");
        assert_eq!(valid.0.len(), parts.len());
        assert_eq!(run(&stream, split::pieces(pattern, 64)), valid);
    }
});
