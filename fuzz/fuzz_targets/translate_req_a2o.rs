#![no_main]
//! Anthropic → OpenAI request translation: arbitrary bytes never panic; an `Ok` body is a
//! JSON object with the fields OpenAI requires; an `Err` is a client error; and the turns
//! written straight from their JSON (`messages_via_chat::direct`) are the typed translation's
//! bytes, meta and error, with long strings lent or not; and a conversation an earlier
//! request kept (`translate::conversations`), resumed by the same body or one grown by an
//! element, gives the bytes, meta and error of the body translated afresh.

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::translate::{
    anthropic_to_openai_request, keeping_from, lending_from, without_direct, without_kept,
    Options, Pair, Room,
};

/// A turn appended before a `]` of the body (one of them closes its conversation).
const MORE: &[u8] = br#",{"role":"user","content":"more"}"#;

fuzz_target!(|input: &[u8]| {
    let run = || anthropic_to_openai_request(input, "gpt-fuzz", &Options::default());
    let direct = without_kept(run);
    let typed = without_kept(|| without_direct(run));
    assert_eq!(direct, typed, "direct and typed differ");
    // As the gateway takes it: shared bytes, every string lent.
    let shared = || {
        let (bytes, meta) = Pair::new(Format::Anthropic, Format::OpenAi).request_shared(
            input,
            "gpt-fuzz",
            &Options::default(),
            &Room::unlimited(),
        )?;
        Ok((bytes.into_vec(input)?, meta))
    };
    let lent = lending_from(1, || without_kept(shared));
    assert_eq!(lent, typed, "lent and typed differ");
    // Kept under a key's scope, as the gateway keeps it, every string lent: the first run
    // keeps the conversation, the second resumes it, and so does the next turn.
    ringway::json::with_scope(1, || {
        keeping_from(1, || {
            lending_from(1, || {
                let _ = shared();
                assert_eq!(shared(), typed, "kept and typed differ");
                let closes = input.iter().enumerate().rev().filter(|(_, &b)| b == b']');
                for (at, _) in closes.take(3) {
                    let grown = [&input[..at], MORE, &input[at..]].concat();
                    let turn = || {
                        let (bytes, meta) = Pair::new(Format::Anthropic, Format::OpenAi)
                            .request_shared(
                                &grown,
                                "gpt-fuzz",
                                &Options::default(),
                                &Room::unlimited(),
                            )?;
                        Ok((bytes.into_vec(&grown)?, meta))
                    };
                    let _ = shared();
                    let kept: Result<_, ringway::translate::TranslateError> = turn();
                    assert_eq!(kept, without_kept(turn), "a grown conversation differs");
                }
            })
        })
    });
    match direct {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "gpt-fuzz");
            assert!(v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
