#![no_main]
//! OpenAI → Anthropic request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields Anthropic requires; an `Err` is a client error; and what an
//! earlier request kept (its tools, `chat_via_messages::kept`; its conversation, resumed by a
//! body whose conversation opens with the same elements, `translate::conversations`) gives
//! the bytes, meta and error of the body translated afresh.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{keeping_from, openai_to_anthropic_request, without_kept, Options};

/// A turn appended before a `]` of the body (one of them closes its conversation).
const MORE: &[u8] = br#",{"role":"user","content":"more"}"#;

fuzz_target!(|input: &[u8]| {
    let run = |body: &[u8]| openai_to_anthropic_request(body, "claude-fuzz", &Options::default());
    let afresh = without_kept(|| run(input));
    // Kept under a key's scope, as the gateway keeps it.
    ringway::json::with_scope(1, || keeping_from(1, || {
        // The first run keeps the tools and the conversation (or keeps the tools refused),
        // the second takes them.
        let _ = run(input);
        assert_eq!(run(input), afresh, "kept and afresh differ");
        // The next turn: one more element after the kept ones (or a body broken there), at
        // each of the last few `]`.
        let closes = input.iter().enumerate().rev().filter(|(_, &b)| b == b']');
        for (at, _) in closes.take(3) {
            let grown = [&input[..at], MORE, &input[at..]].concat();
            let _ = run(input);
            assert_eq!(
                run(&grown),
                without_kept(|| run(&grown)),
                "a grown conversation kept and afresh differ"
            );
        }
    }));
    match afresh {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "claude-fuzz");
            assert!(v["max_tokens"].is_u64() && v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
