#![no_main]
//! OpenAI → Anthropic request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields Anthropic requires; an `Err` is a client error.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{openai_to_anthropic_request, Options};

fuzz_target!(|input: &[u8]| {
    match openai_to_anthropic_request(input, "claude-fuzz", &Options::default()) {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "claude-fuzz");
            assert!(v["max_tokens"].is_u64() && v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
