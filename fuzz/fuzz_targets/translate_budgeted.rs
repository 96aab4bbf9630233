#![no_main]
//! Request translation under a memory budget: the first byte picks the pair (its two low bits)
//! and the room (from nothing to about four times the body), the rest is the body. Arbitrary
//! bytes never panic, and the budgeted translation is the unbudgeted one, body and meta, or
//! the budget's refusal (413); taken as shared bytes (as the gateway takes it, its first
//! members placed in front without moving the rest), it is the same.

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::translate::{Options, Pair, Room};

fuzz_target!(|input: &[u8]| {
    let Some((&knob, body)) = input.split_first() else {
        return;
    };
    let (client, provider) = [
        (Format::OpenAi, Format::Anthropic),
        (Format::Anthropic, Format::OpenAi),
        (Format::Responses, Format::OpenAi),
        (Format::Responses, Format::Anthropic),
    ][usize::from(knob & 3)];
    let pair = Pair::new(client, provider);
    let step = usize::from(knob >> 2);
    let room = Room::new(body.len() * step / 16 + step * 64);
    let opts = Options::default();
    let free = pair.request(body, "fuzz-model", &opts);
    let shared = pair.request_shared(body, "fuzz-model", &opts, &Room::unlimited());
    match (&shared, &free) {
        (Ok((s, sm)), Ok((f, fm))) => {
            assert_eq!(s.bytes, f);
            assert_eq!(sm, fm);
            assert!(s.held >= s.bytes.len());
        }
        (Err(s), Err(f)) => assert_eq!(s, f),
        _ => panic!("shared and plain differ: {shared:?}"),
    }
    match (pair.request_within(body, "fuzz-model", &opts, &room), free) {
        (Ok(within), Ok(free)) => assert_eq!(within, free),
        (Err(e), Ok(_)) => assert!(e.is_over_budget(), "{e}"),
        (Err(e), Err(f)) => assert!(e == f || e.is_over_budget(), "{e} / {f}"),
        (Ok(_), Err(f)) => panic!("the budgeted translation answered where the free one refused: {f}"),
    }
});
