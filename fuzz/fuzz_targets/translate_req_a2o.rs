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
    anthropic_to_openai_request, lending_from, without_direct, without_kept, Options, Pair,
    Room,
};

#[path = "common/kept.rs"]
mod kept;

fuzz_target!(|input: &[u8]| {
    let run = || anthropic_to_openai_request(input, "gpt-fuzz", &Options::default());
    let direct = without_kept(run);
    let typed = without_kept(|| without_direct(run));
    assert_eq!(direct, typed, "direct and typed differ");
    // As the gateway takes it: shared bytes, every string lent.
    let shared = |body: &[u8]| {
        let (bytes, meta) = Pair::new(Format::Anthropic, Format::OpenAi).request_shared(
            body,
            "gpt-fuzz",
            &Options::default(),
            &Room::unlimited(),
        )?;
        Ok::<_, ringway::translate::TranslateError>((bytes.into_vec(body)?, meta))
    };
    let lent = lending_from(1, || without_kept(|| shared(input)));
    assert_eq!(lent, typed, "lent and typed differ");
    kept::resumed_alike(input, &shared);
    match direct {
        Ok((body, _meta)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
            assert_eq!(v["model"], "gpt-fuzz");
            assert!(v["messages"].is_array(), "{v}");
        }
        Err(e) => assert_eq!(e.status, 400, "{e}"),
    }
});
