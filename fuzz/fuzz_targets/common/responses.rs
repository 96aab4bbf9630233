//! The Responses stream targets' shared harness: an upstream SSE body → `sse::Decoder` (small
//! event limit) → a stream translator to Responses events, as the proxy drives it, then the
//! SDK invariants over what it wrote.

use bytes::Bytes;
use ringway::sse::Decoder;
use ringway::translate::responses::{ResponsesMeta, ToolName};
use ringway::translate::seal::SealKey;
use ringway::translate::{check, RequestMeta, StreamTranslator};

#[path = "split.rs"]
mod split;

/// Small enough that an oversized upstream event fits in a fuzz input.
const EVENT_LIMIT: usize = 512;
/// A gateway error text with bytes that need escaping.
const FAILURE: &str = "upstream \"timed\" out\n\u{7f}é";

/// The request side as the flags pick it: bit 0 the `json_object` stand-in tool, bit 2 a seal
/// key (sealed reasoning asked for), bit 3 reasoning summaries, bit 4 client tools under other
/// names upstream (namespaced, custom). Bit 1 is the harness's (fail instead of finish).
fn meta(flags: u8) -> RequestMeta {
    let seal = flags & 4 != 0;
    let tools = if flags & 16 != 0 {
        vec![
            ToolName {
                upstream: "mcp__get_weather".into(),
                namespace: Some("mcp".into()),
                name: "get_weather".into(),
                custom: false,
            },
            ToolName {
                upstream: "get_weather".into(),
                namespace: Some("ns".into()),
                name: "weather".into(),
                custom: false,
            },
            ToolName {
                upstream: "f".into(),
                name: "apply_patch".into(),
                custom: true,
                ..ToolName::default()
            },
            ToolName {
                upstream: "get_time".into(),
                name: "shell".into(),
                custom: true,
                ..ToolName::default()
            },
        ]
    } else {
        Vec::new()
    };
    RequestMeta {
        json_tool: flags & 1 != 0,
        stream: true,
        client_model: "client-model".into(),
        upstream_model: "m".into(),
        created: 1_700_000_000,
        responses: Some(Box::new(ResponsesMeta {
            id: "resp_fuzz01".into(),
            summary: flags & 8 != 0,
            encrypted: seal,
            seal: seal.then(|| SealKey::from_bytes(&[7; 32])).flatten(),
            provider: "fuzz-provider".into(),
            tools,
            ..ResponsesMeta::default()
        })),
        ..RequestMeta::default()
    }
}

/// Runs one input: three header bytes (flags, the read to fail at, the split pattern), then
/// the upstream body. `make` builds the translator for the request meta the flags pick.
pub fn run(data: &[u8], make: fn(&RequestMeta) -> StreamTranslator) {
    let Some((&[flags, fail_at, pattern], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let fail = flags & 2 != 0;
    let mut tr = make(&meta(flags));
    let (mut dec, mut piece) = (Decoder::new(EVENT_LIMIT), split::pieces(pattern, 64));
    let (mut out, mut rest, mut reads) = (Vec::new(), body, 0u8);
    let mut ended = false;
    while !ended && !rest.is_empty() {
        let (now, later) = rest.split_at(piece().min(rest.len()));
        rest = later;
        dec.push(Bytes::copy_from_slice(now));
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
            tr.fail(FAILURE, &mut out);
        }
    }
    if !ended {
        if fail {
            tr.fail(FAILURE, &mut out);
        } else {
            tr.finish(&mut out);
        }
    }
    assert!(tr.is_done(), "not done after finish/fail");
    // Terminal means terminal: whatever comes next writes nothing.
    let len = out.len();
    tr.on_event(
        Some(b"message_start"),
        br#"{"type":"message_start","message":{"id":"m2"}}"#,
        &mut out,
    );
    tr.on_event(
        None,
        br#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#,
        &mut out,
    );
    tr.fail("again", &mut out);
    tr.finish(&mut out);
    assert_eq!(out.len(), len, "written after the end");
    if let Err(e) = check::check_responses_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
}
