#![no_main]
//! Responses → Chat Completions / Messages request translation, for both provider kinds, with
//! a seal key and a provider name set (so sealed reasoning items are opened): arbitrary bytes
//! never panic; an `Ok` body is a JSON object with the fields the provider requires, and every
//! request value its response object repeats (spliced in as JSON text) is JSON; an `Err` is a
//! client error; and the items read straight from their JSON (`responses::direct`) give the
//! typed translation's bytes, meta and error, with long strings lent or not, and with
//! admission's notes of the body or not; and a conversation an earlier request kept
//! (`translate::conversations`), resumed by the same body or one grown by an item, gives
//! the bytes, meta and error of the body translated afresh.

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::seal::SealKey;
use ringway::translate::responses::responses_request;
use ringway::translate::{lending_from, without_direct, without_kept, Options, Pair, Room};

#[path = "common/kept.rs"]
mod kept;

fuzz_target!(|input: &[u8]| {
    let opts = Options {
        seal: SealKey::from_bytes(&[7; 32]),
        provider: "fuzz-provider".into(),
        ..Options::default()
    };
    for (provider, model) in [
        (Format::OpenAi, "gpt-fuzz"),
        (Format::Anthropic, "claude-fuzz"),
    ] {
        let run = || responses_request(input, model, provider, &opts);
        let direct = without_kept(run);
        let typed = without_kept(|| without_direct(run));
        assert_eq!(direct, typed, "direct and typed differ");
        // As the gateway takes it: shared bytes, every string lent.
        let shared = |body: &[u8]| {
            let (bytes, meta) = Pair::new(Format::Responses, provider).request_shared(
                body,
                model,
                &opts,
                &Room::unlimited(),
            )?;
            Ok::<_, ringway::translate::TranslateError>((bytes.into_vec(body)?, meta))
        };
        let lent = lending_from(1, || without_kept(|| shared(input)));
        assert_eq!(lent, typed, "lent and typed differ");
        kept::resumed_alike(input, &shared);
        // With admission's notes of where long strings end (and whether they hold a `\u`),
        // which the readers ask as they cross them.
        if let Ok(info) = ringway::json::inspect_request(input) {
            let noted = |f: &dyn Fn() -> _| ringway::json::with_notes(input, &info.strings, f);
            assert_eq!(
                noted(&|| without_kept(run)),
                noted(&|| without_kept(|| without_direct(run))),
                "direct and typed differ with notes"
            );
        }
        match direct {
            Ok((body, meta)) => {
                let v: serde_json::Value = serde_json::from_slice(&body).expect("output is JSON");
                assert_eq!(v["model"], model);
                assert!(v["messages"].is_array(), "{v}");
                if provider == Format::Anthropic {
                    assert!(v["max_tokens"].is_u64(), "{v}");
                }
                let e = &meta.responses.as_ref().expect("no Responses meta").echo;
                let tier = e.service_tier.as_deref().unwrap_or("null");
                for text in e.fields().map(|(_, t)| t).into_iter().chain([tier]) {
                    serde_json::from_str::<serde_json::Value>(text)
                        .unwrap_or_else(|err| panic!("echo is not JSON ({err}): {text}"));
                }
            }
            Err(e) => assert_eq!(e.status, 400, "{e}"),
        }
    }
});
