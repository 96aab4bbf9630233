#![no_main]
//! Request translation under a memory budget: the first byte picks the pair (its two low bits)
//! and the room (from nothing to about four times the body), the rest is the body (an input
//! opening with `{` is all body, knob 0: the seeds are golden bodies). Arbitrary
//! bytes never panic, and the budgeted translation is the unbudgeted one, body and meta, or
//! the budget's refusal (413); taken as shared bytes (as the gateway takes it, its first
//! members placed in front without moving the rest, long strings lent from the body rather
//! than copied, a Messages or Responses request's tools as kept from an earlier input with the
//! same tools), it is the same as the translation that copies every byte and converts the
//! tools afresh.

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::translate::{lending_from, without_kept, without_lending, Options, Pair, Room};

fuzz_target!(|input: &[u8]| {
    // A body as it is (the smoke run's seeds are golden bodies) has knob 0; anything else
    // gives its first byte to the knob.
    let (knob, body) = match input.split_first() {
        None => return,
        Some((b'{', _)) => (0, input),
        Some((&knob, body)) => (knob, body),
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
    // The plain path: every byte copied, nothing lent, no tools kept.
    let free = without_lending(|| without_kept(|| pair.request(body, "fuzz-model", &opts)));
    let source = bytes::Bytes::copy_from_slice(body);
    // Strings of eight bytes or more lent: a fuzz body is small.
    let shared = lending_from(8, || {
        pair.request_shared(&source, "fuzz-model", &opts, &Room::unlimited())
    });
    match (&shared, &free) {
        (Ok((s, sm)), Ok((f, fm))) => {
            let parts = s.parts(&source).expect("its own source");
            assert_eq!(&parts.concat(), f);
            assert_eq!(sm, fm);
        }
        (Err(s), Err(f)) => assert_eq!(s, f),
        _ => panic!("shared and plain differ: {shared:?}"),
    }
    match (pair.request_within(body, "fuzz-model", &opts, &room), free) {
        (Ok(within), Ok(free)) => assert_eq!(within, free),
        (Err(e), Ok(_)) => assert!(e.is_over_budget(), "{e}"),
        (Err(e), Err(f)) => assert!(e == f || e.is_over_budget(), "{e} / {f}"),
        (Ok(_), Err(f)) => {
            panic!("the budgeted translation answered where the free one refused: {f}")
        }
    }
});
