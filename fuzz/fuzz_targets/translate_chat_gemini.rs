#![no_main]
//! Chat ⇄ Gemini on any bytes: the request translator gives a JSON body or a 400-class error;
//! the answer translator a `chat.completion` an OpenAI SDK reads or an error; the stream
//! machine (chunks split at 0xff bytes, then EOF) a valid Chat stream ending in `[DONE]` or an
//! error frame, writing nothing after it. No panics.

use libfuzzer_sys::fuzz_target;
use ringway::translate::chat_via_gemini::{self as cg, GeminiMeta, GeminiOptions, SignatureSeal};
use ringway::translate::check;

#[path = "common/shape.rs"]
mod shape;

/// Reversible, checked by a keyed sum: enough to reach the open and split paths.
struct Seal;
impl SignatureSeal for Seal {
    fn seal(&self, sig: &[u8]) -> Option<String> {
        let sum = sig
            .iter()
            .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(*b));
        Some(format!(
            "{}{sum:02x}",
            sig.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }
    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let bytes: Vec<u8> = (0..token.len() / 2)
            .map(|i| u8::from_str_radix(token.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let (sum, sig) = bytes.split_last()?;
        (self.seal(sig)?.ends_with(&format!("{sum:02x}"))).then(|| sig.to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    for model in ["gemini-3-pro-preview", "gemini-2.5-flash"] {
        if let Err(e) = cg::request(data, model, &GeminiOptions::default(), &Seal) {
            assert!(e.status == 400 || e.status == 413, "{e}");
        }
    }
    let meta = GeminiMeta {
        include_usage: data.first().is_some_and(|b| b & 1 != 0),
        include_thoughts: data.first().is_some_and(|b| b & 2 != 0),
        ..GeminiMeta::default()
    };
    let mut out = Vec::new();
    match cg::response(data, &meta, &Seal, &mut out) {
        Ok(()) => shape::openai_completion(&out),
        Err(e) => drop(shape::openai_error(&e.to_openai_body())),
    }
    let mut s = cg::Stream::new(&meta);
    let mut out = Vec::new();
    for chunk in data.split(|&b| b == 0xff) {
        s.feed(chunk, &Seal, &mut out);
    }
    s.finish(&mut out);
    assert!(s.is_done());
    let len = out.len();
    s.feed(
        br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#,
        &Seal,
        &mut out,
    );
    assert_eq!(out.len(), len, "written after the end");
    if let Err(e) = check::check_openai_stream(&out, true) {
        panic!("{e}\n{}", String::from_utf8_lossy(&out));
    }
});
