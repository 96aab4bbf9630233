//! The Gemini client target's shared pieces: the options and request metas of a Gemini
//! client (a seal bound to one provider), what a Gemini client's answer and stream must look
//! like, and a stream run over the whole body to compare a split run with.

use bytes::Bytes;
use ringway::seal::{Holder, SealKey};
use ringway::sse::Decoder;
use ringway::translate::{Options, Pair, RequestMeta};
use serde_json::{json, Value};

/// The split runs' event limit (`drive.rs`), so both runs refuse the same oversized event.
const EVENT_LIMIT: usize = 512;

/// A gateway's options: sealed thinking and signatures when `seal`, a stream path.
pub fn options(seal: bool, stream: bool) -> Options {
    Options {
        seal: seal
            .then(|| SealKey::from_bytes(&[7; 32]).map(|k| k.for_holder(Holder::Open)))
            .flatten(),
        provider: "fuzz-provider".into(),
        path_stream: stream,
        ..Options::default()
    }
}

/// The meta of a fixed streaming Gemini request through `pair`: bit 0 of `flags` asks for
/// thoughts, bit 2 for the JSON-array form; no seal (a split run must equal a whole one).
pub fn meta(pair: Pair, flags: u8) -> Option<RequestMeta> {
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "tools": [{"functionDeclarations": [{"name": "fs.read:v2"}, {"name": "get_time"}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": flags & 1 != 0}}});
    let (_, mut meta) = pair
        .request(body.to_string().as_bytes(), "m", &options(false, true))
        .ok()?;
    meta.gemini_json_array = flags & 4 != 0;
    Some(meta)
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

/// A whole answer: one candidate of the model's parts, a finish reason, usage.
pub fn answer(out: &[u8]) {
    let v = json(out);
    let c = &v["candidates"][0];
    let ok = v["candidates"].as_array().is_some_and(|a| a.len() == 1)
        && c["content"]["role"] == "model"
        && c["finishReason"].is_string()
        && v["usageMetadata"]["totalTokenCount"].is_u64();
    assert!(ok, "not a Gemini answer: {v}");
}

/// A stream: chunks (CRLF-framed `data:` lines, or one JSON array) each an answer chunk or
/// Google's error object; the first finish or error is the last chunk, and there is one.
pub fn check_stream(out: &[u8], json_array: bool) {
    let chunks: Vec<Value> = if json_array {
        json(out)
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("not an array"))
    } else {
        let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
        let body = text
            .strip_suffix("\r\n\r\n")
            .unwrap_or_else(|| panic!("cut frame: {text}"));
        body.split("\r\n\r\n")
            .map(|f| {
                json(
                    f.strip_prefix("data: ")
                        .unwrap_or_else(|| panic!("{f:?}"))
                        .as_bytes(),
                )
            })
            .collect()
    };
    let last = chunks
        .len()
        .checked_sub(1)
        .unwrap_or_else(|| panic!("no chunk"));
    for (i, c) in chunks.iter().enumerate() {
        let end = c.get("error").is_some() || c["candidates"][0].get("finishReason").is_some();
        assert_eq!(end, i == last, "chunk {i} of {}: {c}", last + 1);
        assert!(
            c.get("error").is_some() || c["candidates"][0]["content"]["parts"].is_array(),
            "{c}"
        );
    }
}

/// `pair`'s stream over `body` read in one piece, then its end.
pub fn whole(pair: Pair, meta: &RequestMeta, body: &[u8]) -> Vec<u8> {
    let (mut dec, mut out) = (Decoder::new(EVENT_LIMIT), Vec::new());
    let Some(mut tr) = pair.stream(meta) else {
        return out;
    };
    dec.push(Bytes::copy_from_slice(body));
    loop {
        match dec.next_event() {
            Ok(Some(ev)) => {
                if let Some(d) = ev.data.as_deref() {
                    tr.on_event(ev.event.as_deref(), d, &mut out);
                }
            }
            Ok(None) => break,
            Err(_) => {
                tr.fail("upstream \"timed\" out\n\u{7f}é", &mut out);
                return out;
            }
        }
    }
    tr.finish(&mut out);
    out
}
