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
use ringway::translate::{
    check, AnthropicToOpenAiStream, OpenAiToAnthropicStream, RequestMeta, StreamTranslator,
};

#[path = "common/drive.rs"]
mod drive;

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
        StreamTranslator::A2O(Box::new(AnthropicToOpenAiStream::new(&meta)))
    } else {
        StreamTranslator::O2A(Box::new(OpenAiToAnthropicStream::new(&meta)))
    };
    // One HTTP chunk per read, as the pump writes them.
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    drive::drive(&mut tr, body, (fail, fail_at, pattern), &mut out, |out| {
        write_chunk(&mut wire, out);
        out.clear();
    });
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
