#![no_main]
//! OpenAI → Anthropic request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields Anthropic requires; an `Err` is a client error; and what an
//! earlier request kept (its tools, `chat_via_messages::kept`; its conversation, resumed by a
//! body whose conversation opens with the same elements, `translate::conversations`) gives
//! the bytes, meta and error of the body translated afresh.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{openai_to_anthropic_request, without_kept, Options};

#[path = "common/kept.rs"]
mod kept;

fuzz_target!(|input: &[u8]| {
    let run = |body: &[u8]| openai_to_anthropic_request(body, "claude-fuzz", &Options::default());
    let afresh = without_kept(|| run(input));
    // The first run keeps the tools (or keeps them refused), the second takes them.
    let _ = run(input);
    assert_eq!(run(input), afresh, "kept and afresh differ");
    kept::resumed_alike(input, &run);
    match afresh {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "claude-fuzz");
            assert!(v["max_tokens"].is_u64() && v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
