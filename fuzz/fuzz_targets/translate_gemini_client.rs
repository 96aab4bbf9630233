#![no_main]
//! A Gemini client through `Pair` to an OpenAI and an Anthropic provider, on any bytes: the
//! request translator gives JSON or a 400/413; a whole answer that translates is a Gemini
//! answer; the stream (three header bytes: flags, the read to fail at, the split pattern; then
//! the provider's SSE, split and decoded as the proxy does) is a Gemini stream (SSE or one JSON
//! array) whose first finish or error is its end, and split anywhere equals the whole run.

use libfuzzer_sys::fuzz_target;
use ringway::format::Format;
use ringway::translate::Pair;

#[path = "common/drive.rs"]
mod drive;
#[path = "common/gemini.rs"]
mod gemini;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, fail_at, pattern], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    for pair in [Format::OpenAi, Format::Anthropic].map(|p| Pair::new(Format::Gemini, p)) {
        match pair.request(body, "m", &gemini::options(true, flags & 8 != 0)) {
            Ok((out, _)) => assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok()),
            Err(e) => assert!(matches!(e.status, 400 | 413), "{e:?}"),
        }
        let meta = gemini::meta(pair, flags).expect("the fixed request translates");
        let mut out = Vec::new();
        if pair.response_into(body, &meta, &mut out).is_ok() {
            gemini::answer(&out);
        }
        let (mut tr, mut split) = (pair.stream(&meta).expect("a translator"), Vec::new());
        drive::drive(
            &mut tr,
            body,
            (flags & 2 != 0, fail_at, pattern),
            &mut split,
            |_| {},
        );
        gemini::check_stream(&split, meta.gemini_json_array);
        if flags & 2 == 0 {
            assert_eq!(split, gemini::whole(pair, &meta, body), "split ≠ whole");
        }
    }
});
