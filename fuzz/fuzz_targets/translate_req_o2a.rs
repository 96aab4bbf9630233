#![no_main]
//! OpenAI → Anthropic request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields Anthropic requires; an `Err` is a client error; and the tools
//! kept from an earlier request with the same tools (`chat_via_messages::kept`) give the
//! bytes, meta and error of the tools converted afresh.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{openai_to_anthropic_request, without_kept_tools, Options};

fuzz_target!(|input: &[u8]| {
    let run = || openai_to_anthropic_request(input, "claude-fuzz", &Options::default());
    let afresh = without_kept_tools(run);
    // The first run keeps the tools (or keeps them refused), the second takes them.
    let _ = run();
    assert_eq!(run(), afresh, "kept and afresh differ");
    match afresh {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "claude-fuzz");
            assert!(v["max_tokens"].is_u64() && v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
