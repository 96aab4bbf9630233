#![no_main]
//! Anthropic → OpenAI request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields OpenAI requires; an `Err` is a client error.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{anthropic_to_openai_request, Options};

fuzz_target!(|input: &[u8]| {
    match anthropic_to_openai_request(input, "gpt-fuzz", &Options::default()) {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "gpt-fuzz");
            assert!(v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
