#![no_main]
//! OpenAI chunks → Responses events: after three header bytes (flags, the read to fail at,
//! the split pattern) the input is an upstream body, not necessarily UTF-8, split at
//! fuzzer-chosen points and decoded as the proxy does (`sse::Decoder`, small event limit);
//! every event goes to the translator, then upstream EOF (`finish`) or a gateway failure
//! (`fail`, at a fuzzer-chosen read or at the end). The output always satisfies the Responses
//! SDK invariants (`response.created` first, sequence numbers, items added, filled and done
//! in order, one final event last), `is_done()` holds and nothing more is written after it;
//! nothing panics. The request side varies by flag: seal key, summaries, renamed tools.

use libfuzzer_sys::fuzz_target;
use ringway::translate::responses::ChatToResponsesStream;
use ringway::translate::StreamTranslator;

#[path = "common/responses.rs"]
mod responses;

fuzz_target!(|data: &[u8]| {
    responses::run(data, |meta| {
        StreamTranslator::C2R(Box::new(ChatToResponsesStream::new(meta)))
    });
});
