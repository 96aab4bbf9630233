#![no_main]
//! Upstream SSE body → `sse::Decoder` (small event limit) → stream translator (either
//! direction) → HTTP chunks, as the proxy drives them, with the body split at fuzzer-chosen
//! points and, in some runs, a gateway failure (`fail`) at a fuzzer-chosen read instead of
//! EOF (`finish`). The framed output de-chunks to complete SSE events, every data JSON or
//! `[DONE]`, SDK invariants held, ending in the terminal event with nothing after it.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringway::http1::{write_chunk, BodyDecoder, BodyEvent, Framing, LAST_CHUNK};
use ringway::sse::Decoder;
use ringway::translate::{check, AnthropicToOpenAiStream, OpenAiToAnthropicStream, RequestMeta};

#[path = "common/split.rs"]
mod split;

/// Small enough that an oversized upstream event fits in a fuzz input.
const EVENT_LIMIT: usize = 512;
/// A gateway error text with bytes that need escaping in both formats.
const FAILURE: &str = "upstream \"timed\" out\n\u{7f}é";

enum Translator {
    A2o(AnthropicToOpenAiStream),
    O2a(OpenAiToAnthropicStream),
}

impl Translator {
    fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Translator::A2o(t) => t.on_event(event, data, out),
            Translator::O2a(t) => t.on_event(event, data, out),
        }
    }
    fn end(&mut self, fail: bool, out: &mut Vec<u8>) {
        match (self, fail) {
            (Translator::A2o(t), true) => t.fail(FAILURE, out),
            (Translator::A2o(t), false) => t.finish(out),
            (Translator::O2a(t), true) => t.fail(FAILURE, out),
            (Translator::O2a(t), false) => t.finish(out),
        }
    }
    fn is_done(&self) -> bool {
        match self {
            Translator::A2o(t) => t.is_done(),
            Translator::O2a(t) => t.is_done(),
        }
    }
}

/// The chunked body's payload; panics unless it is exactly one complete chunked body.
fn dechunk(wire: &[u8]) -> Vec<u8> {
    let (mut dec, mut buf, mut body) = (
        BodyDecoder::new(Framing::Chunked),
        BytesMut::from(wire),
        Vec::new(),
    );
    loop {
        match dec.decode(&mut buf) {
            Ok(BodyEvent::Data(d)) => body.extend_from_slice(&d),
            Ok(BodyEvent::End) if buf.is_empty() => return body,
            other => panic!("bad framing: {other:?}, {} bytes left", buf.len()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, fail_at, pattern], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let a2o = flags & 1 != 0;
    let fail = flags & 2 != 0;
    let meta = RequestMeta {
        include_usage: flags & 4 != 0,
        client_thinking: flags & 8 != 0,
        json_tool: flags & 16 != 0,
        upstream_model: "m".into(),
        ..RequestMeta::default()
    };
    let mut tr = if a2o {
        Translator::A2o(AnthropicToOpenAiStream::new(&meta))
    } else {
        Translator::O2a(OpenAiToAnthropicStream::new(&meta))
    };
    let (mut dec, mut piece) = (Decoder::new(EVENT_LIMIT), split::pieces(pattern, 64));
    let (mut wire, mut out, mut rest, mut reads) = (Vec::new(), Vec::new(), body, 0u8);
    let mut ended = false;
    while !ended && !rest.is_empty() {
        let (now, later) = rest.split_at(piece().min(rest.len()));
        rest = later;
        dec.push(Bytes::copy_from_slice(now));
        out.clear();
        let too_large = loop {
            match dec.next_event() {
                Ok(Some(ev)) => {
                    if let Some(d) = ev.data.as_deref() {
                        tr.on_event(ev.event.as_deref(), d, &mut out);
                    }
                }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        reads = reads.wrapping_add(1);
        ended = too_large || (fail && reads == fail_at);
        if ended {
            tr.end(true, &mut out);
        }
        write_chunk(&mut wire, &out);
    }
    if !ended {
        out.clear();
        tr.end(fail, &mut out);
        write_chunk(&mut wire, &out);
    }
    assert!(tr.is_done(), "not done after finish/fail");
    // Terminal means terminal: whatever comes next writes nothing.
    out.clear();
    tr.on_event(
        Some(b"message_start"),
        br#"{"type":"message_start","message":{}}"#,
        &mut out,
    );
    tr.on_event(
        None,
        br#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
        &mut out,
    );
    tr.end(true, &mut out);
    tr.end(false, &mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    wire.extend_from_slice(LAST_CHUNK);

    let sse = dechunk(&wire);
    // Independently of `check`: complete events only, each data JSON or [DONE].
    let mut client = Decoder::new(usize::MAX);
    client.push(Bytes::from(sse.clone()));
    while let Some(ev) = client.next_event().expect("no limit") {
        let d = ev.data.as_deref().unwrap_or_default();
        assert!(
            ev.data.is_none()
                || d == b"[DONE]"
                || serde_json::from_slice::<serde_json::Value>(d).is_ok(),
            "data is not JSON: {}",
            String::from_utf8_lossy(d)
        );
    }
    assert!(
        client.take_remainder().is_empty(),
        "output ends inside an event"
    );
    let checked = if a2o {
        check::check_openai_stream(&sse, true)
    } else {
        check::check_anthropic_stream(&sse, true)
    };
    if let Err(e) = checked {
        panic!("{e}\n{}", String::from_utf8_lossy(&sse));
    }
});
