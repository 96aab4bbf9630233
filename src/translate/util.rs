//! Small shared pieces of the mapping: stop/finish reasons (spec §7), usage (spec §8), data
//! URLs, base64, tool id/name constraints.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::wire::{anthropic, openai};

use super::OPENAI_TOOL_NAME_MAX;

/// OpenAI `finish_reason` for an Anthropic `stop_reason` (spec §7; unknown → `stop`).
pub(crate) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded" | "compaction") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, null and anything new.
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason` (spec §7); a refusal seen in the
/// answer wins.
pub(crate) fn stop_reason_for(finish_reason: Option<&str>, refused: bool) -> &'static str {
    if refused {
        return "refusal";
    }
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage → OpenAI usage (spec §8: prompt includes both cache counts).
pub(crate) fn openai_usage(u: &anthropic::Usage) -> openai::Usage {
    let input = u.input_tokens.unwrap_or(0);
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
    let prompt = input.saturating_add(cache_read).saturating_add(cache_write);
    let completion = u.output_tokens.unwrap_or(0);
    openai::Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt.saturating_add(completion),
        prompt_tokens_details: Some(openai::PromptTokensDetails {
            cached_tokens: Some(cache_read),
            cache_write_tokens: Some(cache_write),
        }),
        completion_tokens_details: u
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
            .map(|t| openai::CompletionTokensDetails {
                reasoning_tokens: Some(t),
            }),
    }
}

/// OpenAI usage → Anthropic usage (spec §8: input excludes both cache counts).
pub(crate) fn anthropic_usage(u: Option<&openai::Usage>) -> anthropic::Usage {
    let (prompt, completion, details) = match u {
        Some(u) => (
            u.prompt_tokens,
            u.completion_tokens,
            u.prompt_tokens_details.as_ref(),
        ),
        None => (0, 0, None),
    };
    let cache_read = details.and_then(|d| d.cached_tokens).unwrap_or(0);
    let cache_write = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
    anthropic::Usage {
        input_tokens: Some(prompt.saturating_sub(cache_read.saturating_add(cache_write))),
        cache_creation_input_tokens: Some(cache_write),
        cache_read_input_tokens: Some(cache_read),
        output_tokens: Some(completion),
        output_tokens_details: None,
    }
}

/// A parsed `data:` URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DataUrl<'a> {
    /// Lower-cased MIME type (`text/plain` when the URL names none).
    pub(crate) mime: Cow<'a, str>,
    /// The payload is base64 (`;base64`).
    pub(crate) base64: bool,
    /// Everything after the first comma.
    pub(crate) data: &'a str,
}

/// Parses `data:<mime>[;k=v…][;base64],<data>`; `None` if `url` is not a data URL.
pub(crate) fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = strip_prefix_ignore_case(url, "data:")?;
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let mime = params.next().unwrap_or("").trim();
    let base64 = params.any(|p| p.trim().eq_ignore_ascii_case("base64"));
    let mime = if mime.is_empty() {
        Cow::Borrowed("text/plain")
    } else if mime.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(mime.to_ascii_lowercase())
    } else {
        Cow::Borrowed(mime)
    };
    Some(DataUrl { mime, base64, data })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// `http://` or `https://` (any case).
pub(crate) fn is_http_url(url: &str) -> bool {
    strip_prefix_ignore_case(url, "https://").is_some()
        || strip_prefix_ignore_case(url, "http://").is_some()
}

/// Image types Anthropic accepts.
pub(crate) fn is_anthropic_image_mime(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// One base64 character's value (the standard alphabet, and URL-safe `-` and `_` too).
pub(crate) fn base64_sextet(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

/// Decodes standard or URL-safe base64 (padding optional, ASCII whitespace ignored).
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        base64_sextet(c).map(u32::from)
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for &c in s.as_bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None; // data after padding
        }
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Only the low 8 bits are meant: the shift leaves exactly one byte above `bits`.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if padding > 2 || bits >= 6 {
        return None;
    }
    Some(out)
}

/// Anthropic tool ids must match `^[a-zA-Z0-9_-]+$`: replace anything else with `_`
/// (deterministic, so a `tool_use` and its `tool_result` stay paired).
pub(crate) fn sanitize_tool_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.is_empty() {
        Cow::Borrowed("_")
    } else if id.bytes().all(|b| ok(char::from(b))) {
        // By bytes: every allowed character is one ASCII byte, and no byte of a longer
        // character is ASCII (an id is checked on every turn of a long conversation).
        Cow::Borrowed(id)
    } else {
        Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
    }
}

/// An OpenAI-legal tool name for `name`: unchanged when short enough, else a prefix plus a
/// hash of the whole name (deterministic, so definitions, history and choice agree).
pub(crate) fn openai_tool_name(name: &str) -> Cow<'_, str> {
    if name.len() <= OPENAI_TOOL_NAME_MAX {
        return Cow::Borrowed(name);
    }
    // 64 = prefix + '_' + 8 hex digits.
    let keep = OPENAI_TOOL_NAME_MAX - 9;
    let mut cut = keep;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = name.get(..cut).unwrap_or("");
    Cow::Owned(format!("{prefix}_{:08x}", fnv1a32(name.as_bytes())))
}

pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Why a client's tool-call `arguments` cannot become an Anthropic `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgumentsProblem {
    /// Not a JSON text at all.
    NotJson,
    /// Valid JSON of this type (`array`, `string`, …), but Anthropic's `input` must be an object.
    NotObject(&'static str),
}

/// Request side: a client's tool-call `arguments` as the Anthropic `input` object, or why it
/// cannot be one. Guessing `{}` here would change the history the model sees, so bad text is
/// refused. Absent or blank arguments do map to `{}`: some clients send `""` for a tool that
/// takes no arguments, and an empty object says exactly that.
pub(crate) fn arguments_to_input(arguments: Option<&str>) -> Result<&RawValue, ArgumentsProblem> {
    let args = arguments.unwrap_or("").trim();
    if args.is_empty() {
        return empty_object().ok_or(ArgumentsProblem::NotJson);
    }
    let raw =
        crate::json::de::from_str::<&RawValue>(args).map_err(|_| ArgumentsProblem::NotJson)?;
    // Valid JSON text: its first byte tells its type.
    match raw.get().as_bytes().first() {
        Some(b'{') => Ok(raw),
        Some(b'[') => Err(ArgumentsProblem::NotObject("an array")),
        Some(b'"') => Err(ArgumentsProblem::NotObject("a string")),
        Some(b't' | b'f') => Err(ArgumentsProblem::NotObject("a boolean")),
        Some(b'n') => Err(ArgumentsProblem::NotObject("null")),
        _ => Err(ArgumentsProblem::NotObject("a number")),
    }
}

/// Response side (a provider's own output): tool-call arguments as an Anthropic `input`
/// object; empty, invalid or non-object arguments become `{}` (spec §3; a reply already
/// generated is relayed, not failed).
pub(crate) fn arguments_as_input(arguments: Option<&str>) -> Option<&RawValue> {
    let args = arguments.unwrap_or("").trim();
    if args.starts_with('{') {
        if let Ok(raw) = serde_json::from_str::<&RawValue>(args) {
            return Some(raw);
        }
    }
    empty_object()
}

/// `{}` as a raw value (borrowed from a static string; parsing a literal cannot fail).
pub(crate) fn empty_object() -> Option<&'static RawValue> {
    serde_json::from_str("{}").ok()
}

/// `raw` (valid JSON) without insignificant whitespace; borrowed when already compact.
/// Tool inputs re-sent as OpenAI `arguments` strings stay short and canonical this way.
/// Strings are crossed sixteen bytes at a time: a custom tool's grammar (Codex's
/// `apply_patch`) is KB of string with an escape every line.
pub(crate) fn compact_json(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    // `raw` up to here is in `out` already (when it is made).
    let mut copied = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'"' {
            i = past_string(b, i);
            continue;
        }
        if c.is_ascii_whitespace() {
            let o = out.get_or_insert_with(|| Vec::with_capacity(b.len()));
            o.extend_from_slice(b.get(copied..i).unwrap_or_default());
            copied = i + 1;
        }
        i += 1;
    }
    let Some(mut o) = out else {
        return Cow::Borrowed(raw);
    };
    o.extend_from_slice(b.get(copied..).unwrap_or_default());
    // Only ASCII bytes were dropped, so the text stays UTF-8.
    String::from_utf8(o).map_or(Cow::Borrowed(raw), Cow::Owned)
}

/// Just past the string whose opening quote is at `open` (the end of `b` if it never closes).
fn past_string(b: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    loop {
        let Some(k) = b.get(i..).and_then(crate::json::first_to_escape) else {
            return b.len();
        };
        i += k;
        match b.get(i) {
            Some(b'\\') => i += 2,
            Some(b'"') => return i + 1,
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let d = parse_data_url("data:image/PNG;name=a.png;base64,iVBO").unwrap();
        assert_eq!(d.mime, "image/png");
        assert!(d.base64);
        assert_eq!(d.data, "iVBO");
        let d = parse_data_url("DATA:,hello%20world").unwrap();
        assert_eq!(d.mime, "text/plain");
        assert!(!d.base64);
        assert!(parse_data_url("https://x/y.png").is_none());
        assert!(parse_data_url("data:image/png;base64").is_none());
    }

    #[test]
    fn base64_roundtrip_against_reference() {
        // Reference encoder (standard alphabet, padded).
        fn encode(b: &[u8]) -> String {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in b.chunks(3) {
                let n = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                for k in 0..4 {
                    if k <= c.len() {
                        s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
                    } else {
                        s.push('=');
                    }
                }
            }
            s
        }
        let mut x = 12345u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            let enc = encode(&bytes);
            assert_eq!(decode_base64(&enc).unwrap(), bytes);
            assert_eq!(decode_base64(enc.trim_end_matches('=')).unwrap(), bytes);
        }
        assert!(decode_base64("ab!d").is_none());
        assert!(decode_base64("QQ==QQ").is_none());
        assert!(decode_base64("Q").is_none());
    }

    #[test]
    fn tool_ids_and_names() {
        assert_eq!(sanitize_tool_id("call_Ab-9"), "call_Ab-9");
        assert_eq!(
            sanitize_tool_id("functions.get_weather:0"),
            "functions_get_weather_0"
        );
        assert_eq!(sanitize_tool_id(""), "_");
        // A character of several bytes is one `_`; Latin-1 letters are not ASCII ones.
        assert_eq!(sanitize_tool_id("toolu_é9ü"), "toolu__9_");
        assert_eq!(sanitize_tool_id("ид"), "__");
        let long = "x".repeat(100);
        let short = openai_tool_name(&long);
        assert_eq!(short.len(), 64);
        assert_eq!(short, openai_tool_name(&long));
        assert_ne!(short, openai_tool_name(&"x".repeat(101)));
        assert_eq!(openai_tool_name("get_weather"), "get_weather");
        let multibyte = "é".repeat(40);
        assert!(openai_tool_name(&multibyte).len() <= 64);
    }

    #[test]
    fn arguments() {
        assert_eq!(
            arguments_as_input(Some(" {\"a\": 1} ")).unwrap().get(),
            "{\"a\": 1}"
        );
        assert_eq!(arguments_as_input(Some("")).unwrap().get(), "{}");
        assert_eq!(arguments_as_input(None).unwrap().get(), "{}");
        assert_eq!(arguments_as_input(Some("{\"a\":")).unwrap().get(), "{}");
        assert_eq!(arguments_as_input(Some("[1]")).unwrap().get(), "{}");
    }

    #[test]
    fn request_arguments_are_objects_or_refused() {
        use ArgumentsProblem::{NotJson, NotObject};
        let input = |a| arguments_to_input(a).map(RawValue::get);
        assert_eq!(input(Some(" {\"a\": 1} ")), Ok("{\"a\": 1}"));
        assert_eq!(input(Some("")), Ok("{}"));
        assert_eq!(input(Some("  ")), Ok("{}"));
        assert_eq!(input(None), Ok("{}"));
        assert_eq!(input(Some("{}")), Ok("{}"));
        for bad in ["{{{not json", "{\"a\":", "{} {}", "{\"a\":1}x", "nul"] {
            assert_eq!(input(Some(bad)), Err(NotJson), "{bad}");
        }
        for (value, kind) in [
            ("[1]", "an array"),
            ("\"{}\"", "a string"),
            ("true", "a boolean"),
            ("null", "null"),
            ("-1.5", "a number"),
            ("7", "a number"),
        ] {
            assert_eq!(input(Some(value)), Err(NotObject(kind)), "{value}");
        }
    }

    #[test]
    fn compacting_matches_serde_json() {
        for raw in [
            "{}",
            "{\"a\":1}",
            "{\n  \"a b\" : [ 1 , 2 ],\n  \"c\": \"x \\\" y\\\\\" , \"d\":{ } }",
            " [ \"\\u00e9 é\" , null ] ",
        ] {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            let out = compact_json(raw.trim());
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&out).unwrap(),
                v,
                "{raw}"
            );
            assert!(!out.contains(": ") && !out.contains('\n'), "{out}");
        }
        assert!(matches!(compact_json("{\"a\":\"b c\"}"), Cow::Borrowed(_)));
    }

    /// The byte-at-a-time walk `compact_json` was.
    fn compact_reference(raw: &str) -> String {
        let (mut in_string, mut escaped) = (false, false);
        let mut out = String::new();
        for c in raw.chars() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c.is_ascii_whitespace() {
                continue;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn compacting_matches_a_byte_at_a_time_walk() {
        let pieces = [
            " ", "\n", "\"", "\\\\", "\\\"", "\\n", "a", "é", "{", "}", "[", "]", ":", ",", "1",
            "\"k\"", "\"x y\"", "\u{1}",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..4000 {
            let len = (next() % 60) as usize + round % 3 * 20;
            let raw: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let out = compact_json(&raw);
            assert_eq!(out, compact_reference(&raw), "{raw:?}");
            assert_eq!(matches!(out, Cow::Borrowed(_)), out == raw, "{raw:?}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(finish_reason_for(Some("end_turn")), "stop");
        assert_eq!(finish_reason_for(Some("pause_turn")), "stop");
        assert_eq!(finish_reason_for(Some("max_tokens")), "length");
        assert_eq!(
            finish_reason_for(Some("model_context_window_exceeded")),
            "length"
        );
        assert_eq!(finish_reason_for(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason_for(Some("refusal")), "content_filter");
        assert_eq!(finish_reason_for(None), "stop");
        assert_eq!(stop_reason_for(Some("stop"), false), "end_turn");
        assert_eq!(stop_reason_for(Some("length"), false), "max_tokens");
        assert_eq!(stop_reason_for(Some("tool_calls"), false), "tool_use");
        assert_eq!(stop_reason_for(Some("function_call"), false), "tool_use");
        assert_eq!(stop_reason_for(Some("content_filter"), false), "refusal");
        assert_eq!(stop_reason_for(Some("stop"), true), "refusal");
        assert_eq!(stop_reason_for(None, false), "end_turn");
    }

    #[test]
    fn usage_both_ways() {
        let a = anthropic::Usage {
            input_tokens: Some(10),
            cache_creation_input_tokens: Some(5),
            cache_read_input_tokens: Some(100),
            output_tokens: Some(7),
            output_tokens_details: Some(anthropic::OutputTokensDetails {
                thinking_tokens: Some(3),
            }),
        };
        let o = openai_usage(&a);
        assert_eq!(
            (o.prompt_tokens, o.completion_tokens, o.total_tokens),
            (115, 7, 122)
        );
        let back = anthropic_usage(Some(&o));
        assert_eq!(back.input_tokens, Some(10));
        assert_eq!(back.cache_read_input_tokens, Some(100));
        assert_eq!(back.cache_creation_input_tokens, Some(5));
        assert_eq!(back.output_tokens, Some(7));
    }
}
