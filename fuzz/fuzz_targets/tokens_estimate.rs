//! The prompt estimate of a stream cut short (any client dialect) never panics on any body,
//! and its text budget changes only how text is counted, never whether the body is read: a
//! body is an error with every budget or with none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::tokens::{estimate_request, shared};

fuzz_target!(|data: &[u8]| {
    // The process's tokenizer, built once on its helper thread.
    shared::start_loading();
    let bpe = loop {
        match shared::get() {
            Some(Ok(bpe)) => break bpe,
            Some(Err(_)) => return,
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    };
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = [Format::OpenAi, Format::Anthropic, Format::Responses][usize::from(selector % 3)];
    // Small budgets cut inside characters and strings.
    let budget = usize::from(selector / 3);
    let whole = estimate_request(format, body, bpe, usize::MAX);
    let sampled = estimate_request(format, body, bpe, budget);
    assert_eq!(whole.is_ok(), sampled.is_ok(), "{format:?} budget {budget}");
});
