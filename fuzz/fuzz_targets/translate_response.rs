#![no_main]
//! Non-streaming response translation, every direction (to OpenAI, to Anthropic, and from
//! either to Responses, plain or as a compaction), on any body: no panic; `Ok` is a response
//! the client's SDK can read; `Err` renders as the client's error format.

use libfuzzer_sys::fuzz_target;
use ringway::translate::responses::{
    anthropic_to_responses_response_into, chat_to_responses_response_into, Compaction,
    ResponsesMeta,
};
use ringway::translate::{anthropic_to_openai_response, openai_to_anthropic_response, RequestMeta};

#[path = "common/shape.rs"]
mod shape;

fuzz_target!(|data: &[u8]| {
    // Flags last, so a bare response body (tests/golden) is a useful seed as it is.
    let Some((&flags, body)) = data.split_last() else {
        return;
    };
    let meta = RequestMeta {
        json_tool: flags & 1 != 0,
        client_thinking: flags & 2 != 0,
        client_model: "client-model".into(),
        upstream_model: "upstream-model".into(),
        created: 1_700_000_000,
        tool_names: vec![("f_short".into(), "f_original_long_name".into())],
        ..RequestMeta::default()
    };
    match anthropic_to_openai_response(body, &meta) {
        Ok(out) => shape::openai_completion(&out),
        Err(e) => drop(shape::openai_error(&e.to_openai_body())),
    }
    match openai_to_anthropic_response(body, &meta) {
        Ok(out) => shape::anthropic_message(&out),
        Err(e) => drop(shape::anthropic_error(&e.to_anthropic_body())),
    }
    let meta = RequestMeta {
        responses: Some(Box::new(ResponsesMeta {
            id: "resp_fuzz".into(),
            summary: flags & 4 != 0,
            encrypted: flags & 8 != 0,
            seal: ringway::seal::SealKey::from_bytes(&[7; 32]),
            provider: "fuzz-provider".into(),
            compaction: match flags >> 4 & 3 {
                1 => Compaction::Trigger,
                2 => Compaction::Endpoint,
                _ => Compaction::No,
            },
            ..ResponsesMeta::default()
        })),
        ..meta
    };
    for translate in [
        anthropic_to_responses_response_into,
        chat_to_responses_response_into,
    ] {
        let mut out = Vec::new();
        match translate(body, &meta, &mut out) {
            Ok(()) => {
                let v: serde_json::Value = serde_json::from_slice(&out).expect("Responses JSON");
                let object = v["object"].as_str().unwrap_or("");
                assert!(
                    object == "response" || object == "response.compaction",
                    "{v}"
                );
                assert!(
                    v["output"].is_array() && v["usage"]["input_tokens"].is_u64(),
                    "{v}"
                );
            }
            Err(e) => drop(shape::openai_error(&e.to_openai_body())),
        }
    }
});
