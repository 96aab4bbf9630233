//! The Responses stream targets' shared harness: an upstream SSE body → `sse::Decoder` (small
//! event limit) → a stream translator to Responses events, as the proxy drives it, then the
//! SDK invariants over what it wrote.

use ringway::seal::SealKey;
use ringway::translate::responses::{ResponsesMeta, ToolName};
use ringway::translate::{check, RequestMeta, StreamTranslator};

#[path = "drive.rs"]
mod drive;

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
    let mut tr = make(&meta(flags));
    let mut out = Vec::new();
    drive::drive(
        &mut tr,
        body,
        (flags & 2 != 0, fail_at, pattern),
        &mut out,
        |_| {},
    );
    if let Err(e) = check::check_responses_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
}
