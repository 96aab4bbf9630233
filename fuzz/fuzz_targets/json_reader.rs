//! The fast reader (`ringway::json::de`) against serde_json alone: any text reads to the same
//! `Value` (or the fast reader refuses, and serde_json's answer is given), and every request
//! translation gives the same body, meta or error either way, for the fuzzer's bytes as a
//! body and spliced into a long string of a real agent body (block boundaries anywhere in
//! them), and the same again with admission's notes of where long strings and containers end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::json::de;
use ringway::translate::responses::responses_request;
use ringway::translate::{
    anthropic_to_openai_request, openai_to_anthropic_request, without_kept, Options,
};

/// A real Claude Code request: its first text string runs from byte 90 to past byte 600.
const AGENT: &[u8] = include_bytes!("../../tests/fixtures/claude_code/request.json");

fn translations_alike(body: &[u8], opts: &Options) {
    let runs: [&dyn Fn() -> _; 4] = [
        &|| openai_to_anthropic_request(body, "m", opts),
        &|| anthropic_to_openai_request(body, "m", opts),
        &|| responses_request(body, "m", Format::OpenAi, opts),
        &|| responses_request(body, "m", Format::Anthropic, opts),
    ];
    // Admission's notes of where long strings and containers end, as the gateway reads a body
    // it inspected.
    let info = ringway::json::inspect_request(body);
    // Every reader reads a Responses request's tools itself: none kept.
    for run in runs {
        let fast = without_kept(run);
        let reference = without_kept(|| de::reference_only(run));
        assert_eq!(fast, reference, "{:?}", String::from_utf8_lossy(body));
        if let Ok(info) = &info {
            let noted = without_kept(|| ringway::json::with_notes(body, &info.strings, run));
            assert_eq!(
                noted,
                fast,
                "with notes: {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let reference = serde_json::from_str::<serde_json::Value>(text);
        // Whether the fast reader answered or left it to serde_json, the answer is theirs.
        match (de::from_str::<serde_json::Value>(text), reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text:?}"),
            (a, b) => panic!("{text:?}: {a:?} against {b:?}"),
        }
    }
    let opts = Options::default();
    translations_alike(data, &opts);
    let at = 200 + data.len() % 64;
    if let Some(head) = AGENT.get(..at) {
        let mut body = head.to_vec();
        body.extend_from_slice(data);
        body.extend_from_slice(&AGENT[at..]);
        translations_alike(&body, &opts);
    }
});
