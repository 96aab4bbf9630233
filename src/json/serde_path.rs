//! The serde_json parser. A map visitor walks the top-level object and takes `model` as a
//! `&RawValue`, which gives its byte span. serde_json skips every other value. After that
//! pass, [`check_text`] checks what serde_json does not check while skipping.
//!
//! serde_json's skip (`IgnoredAny`, and the skip under `RawValue`) checks the grammar: strings
//! end, escapes are well-formed, no control bytes, numbers have the right shape, no trailing
//! bytes. It does not check UTF-8 in the strings it skips, surrogate pairs in `\u` escapes, or
//! depth. Visiting every value with `deserialize_any` would check those, but it costs about the
//! same as skip + [`check_text`] on the bench bodies. It would also stop at serde_json's
//! recursion limit, one level short of [`MAX_JSON_DEPTH`], and reject numbers beyond `f64`,
//! which the rules accept.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    first_non_ws, Collected, FieldShape, Flag, JsonError, RequestInfo, StreamValue, TextField,
    MAX_JSON_DEPTH,
};

/// Checks a chat request body and finds its `model` using serde_json. See the module docs for
/// the rules.
pub fn inspect_request_serde(body: &[u8]) -> Result<RequestInfo, JsonError> {
    collect_serde(body)?.finish()
}

/// What [`inspect_request_serde`] gathers before its field checks.
pub(super) fn collect_serde(body: &[u8]) -> Result<Collected, JsonError> {
    if first_non_ws(body) != Some(b'{') {
        // Either invalid, or valid but not an object. Only a full check can tell which.
        return Err(validate(body).err().unwrap_or(JsonError::NotObject));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopLevel {
        base: body.as_ptr() as usize,
        len: body.len(),
    };
    let walked = (&mut de)
        .deserialize_map(top)
        .and_then(|walked| de.end().map(|()| walked))
        .map_err(from_serde)?;
    check_text(body)?;
    let mut collected = walked.collected;
    // The scanner notes the mark per string token; here a search stands in (it also finds
    // the mark after an escaped quote: a needless look, never a missed seal).
    collected.sealed = crate::seal::may_hold_seal(body);
    collected.signed = crate::seal::find_signature_separator(body).is_some();
    if let Some(span) = walked.model_span {
        let raw = body.get(span.clone()).unwrap_or_default();
        // check_text has already checked the escapes, so this decode cannot fail.
        let decoded = match raw.first() {
            Some(b'"') => Some(serde_json::from_slice::<String>(raw).map_err(from_serde)?),
            _ => None,
        };
        collected.model = Some((span, decoded));
    }
    Ok(collected)
}

/// Checks a whole document: the grammar, using serde_json, and then [`check_text`].
pub(super) fn validate(body: &[u8]) -> Result<(), JsonError> {
    serde_json::from_slice::<IgnoredAny>(body).map_err(from_serde)?;
    check_text(body)
}

/// Converts a serde_json error into the client-facing error. The message includes a line and
/// column.
fn from_serde(e: serde_json::Error) -> JsonError {
    JsonError::Syntax(e.to_string())
}

/// Checks what serde_json's skip does not: the whole body is UTF-8, every `\u` surrogate is
/// paired, and nesting is at most [`MAX_JSON_DEPTH`]. A syntax error outranks `TooDeep`,
/// whatever its position.
///
/// Only call this on a body that serde_json has accepted. The scan relies on that: strings
/// end, a backslash only appears inside a string and starts a well-formed escape, and brackets
/// outside strings balance.
fn check_text(body: &[u8]) -> Result<(), JsonError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(syntax_at(body, e.valid_up_to(), "invalid UTF-8"));
    }
    let mut depth = 0usize;
    let mut too_deep = false;
    let mut at = 0;
    while let Some(&b) = body.get(at) {
        at += 1;
        match b {
            b'"' => at = skip_string(body, at)?,
            b'[' | b'{' => {
                depth += 1;
                too_deep |= depth > MAX_JSON_DEPTH;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if too_deep {
        return Err(JsonError::TooDeep);
    }
    Ok(())
}

/// Skips a string whose content starts at `at` and checks its `\u` escapes pair up. Returns the
/// offset just past the closing quote.
fn skip_string(body: &[u8], mut at: usize) -> Result<usize, JsonError> {
    let unterminated = || syntax_at(body, body.len(), "EOF while parsing a string");
    loop {
        let rest = body.get(at..).ok_or_else(unterminated)?;
        let hit = at + memchr::memchr2(b'"', b'\\', rest).ok_or_else(unterminated)?;
        if body.get(hit) == Some(&b'"') {
            return Ok(hit + 1);
        }
        if body.get(hit + 1) != Some(&b'u') {
            at = hit + 2;
            continue;
        }
        let unit = hex4(body, hit + 2);
        at = hit + 6;
        match unit {
            Some(0xD800..=0xDBFF) => {
                let low = match body.get(at..at + 2) {
                    Some(br"\u") => hex4(body, at + 2),
                    _ => None,
                };
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err(syntax_at(body, hit, "unpaired surrogate in \\u escape"));
                }
                at += 6;
            }
            Some(0xDC00..=0xDFFF) => {
                return Err(syntax_at(body, hit, "unpaired surrogate in \\u escape"));
            }
            Some(_) => {}
            // serde_json has checked the hex digits, so this cannot happen.
            None => return Err(syntax_at(body, hit, "invalid escape")),
        }
    }
}

/// The four hex digits at `at`, as a UTF-16 code unit.
fn hex4(body: &[u8], at: usize) -> Option<u16> {
    body.get(at..at.checked_add(4)?)?
        .iter()
        .try_fold(0u16, |unit, &b| {
            let digit = char::from(b).to_digit(16)?;
            Some(unit << 4 | u16::try_from(digit).ok()?)
        })
}

/// A syntax error at a byte offset, worded like serde_json's: `... at line L column C`.
fn syntax_at(body: &[u8], offset: usize, what: &str) -> JsonError {
    let before = body.get(..offset).unwrap_or(body);
    let line = 1 + memchr::memchr_iter(b'\n', before).count();
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |nl| nl + 1);
    let column = offset - line_start + 1;
    JsonError::Syntax(format!("{what} at line {line} column {column}"))
}

/// The result of the serde_json pass, before the field checks.
struct Walked {
    /// `stream` and the `model` count. The model text is decoded after [`check_text`].
    collected: Collected,
    /// The span of the first `model` value.
    model_span: Option<Range<usize>>,
}

/// Visits the top-level object.
struct TopLevel {
    /// The address of the body's first byte, used to turn `RawValue` slices into spans.
    base: usize,
    len: usize,
}

impl TopLevel {
    /// The span of `raw` within the body. `raw` was borrowed from the body, so this always
    /// succeeds. It is still checked rather than assumed.
    fn span_of(&self, raw: &str) -> Option<Range<usize>> {
        let start = (raw.as_ptr() as usize).checked_sub(self.base)?;
        let end = start.checked_add(raw.len())?;
        (end <= self.len).then_some(start..end)
    }
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Walked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walked, A::Error> {
        let mut collected = Collected::default();
        let mut model_span = None;
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Model => {
                    let raw: &'de RawValue = map.next_value()?;
                    collected.model_count += 1;
                    if collected.model_count == 1 {
                        let span = self.span_of(raw.get()).ok_or_else(|| {
                            de::Error::custom("`model` value is outside the body")
                        })?;
                        model_span = Some(span);
                    }
                }
                TopKey::Stream => {
                    // Taken raw, like `model`, so that a number is only checked for shape.
                    let raw: &'de RawValue = map.next_value()?;
                    collected.stream_count += 1;
                    if collected.stream_count == 1 {
                        collected.stream = match raw.get() {
                            "true" => StreamValue::Bool(true),
                            "false" => StreamValue::Bool(false),
                            "null" => StreamValue::Null,
                            _ => StreamValue::Other,
                        };
                    }
                }
                TopKey::Messages | TopKey::MaxTokens => {
                    let raw: &'de RawValue = map.next_value()?;
                    let slot = match key {
                        TopKey::Messages => &mut collected.messages,
                        _ => &mut collected.max_tokens,
                    };
                    if *slot == FieldShape::Absent {
                        *slot = FieldShape::of_raw(raw.get().as_bytes());
                    }
                }
                TopKey::AllowFallbacks | TopKey::PiiSubstitution => {
                    let slot = match key {
                        TopKey::AllowFallbacks => &mut collected.allow_fallbacks,
                        _ => &mut collected.pii_substitution,
                    };
                    let raw: &'de RawValue = map.next_value()?;
                    if *slot == Flag::Absent {
                        *slot = Flag::of_raw(raw.get().as_bytes());
                    }
                }
                TopKey::PrivacyTier => {
                    let raw: &'de RawValue = map.next_value()?;
                    if collected.privacy_tier == TextField::Absent {
                        // A string with a lone surrogate escape does not decode: not a name.
                        collected.privacy_tier = match serde_json::from_str::<String>(raw.get()) {
                            Ok(s) => TextField::of_str(&s),
                            Err(_) => TextField::Other,
                        };
                    }
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Walked {
            collected,
            model_span,
        })
    }
}

/// A top-level key, compared after unescaping.
enum TopKey {
    Model,
    Stream,
    Messages,
    MaxTokens,
    AllowFallbacks,
    PrivacyTier,
    PiiSubstitution,
    Other,
}

impl<'de> de::Deserialize<'de> for TopKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TopKeyVisitor)
    }
}

struct TopKeyVisitor;

impl Visitor<'_> for TopKeyVisitor {
    type Value = TopKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<TopKey, E> {
        Ok(match key {
            "model" => TopKey::Model,
            "stream" => TopKey::Stream,
            "messages" => TopKey::Messages,
            "max_tokens" => TopKey::MaxTokens,
            "allow_fallbacks" => TopKey::AllowFallbacks,
            "privacy_tier" => TopKey::PrivacyTier,
            "pii_substitution" => TopKey::PiiSubstitution,
            _ => TopKey::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_text_catches_what_the_skip_misses() {
        for bad in [
            &br#"{"a":"\ud800"}"#[..],
            br#"{"a":["\udc00"]}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\ud800\n"}"#,
            br#"{"a":"x\\\ud83d"}"#,
            b"{\"a\":\"\xff\"}",
            br#"{"\ud800x":1}"#,
        ] {
            let shown = String::from_utf8_lossy(bad);
            assert!(serde_json::from_slice::<IgnoredAny>(bad).is_ok(), "{shown}");
            assert!(
                matches!(validate(bad), Err(JsonError::Syntax(_))),
                "{shown}"
            );
        }
        for good in [
            &br#"{"a":"\ud83d\ude00 \\ud800 \\\\"}"#[..],
            br#"{"a":"\uDBFF\uDFFF\uE000\uD7FF"}"#,
            br#"{"[":"{{{{", "]":"}}"}"#,
        ] {
            assert_eq!(validate(good), Ok(()), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn depth_counts_only_brackets_outside_strings() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(validate(nest(MAX_JSON_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            validate(nest(MAX_JSON_DEPTH + 1).as_bytes()),
            Err(JsonError::TooDeep)
        );
        // serde_json's own recursion limit must not get in the way.
        assert_eq!(validate(nest(5000).as_bytes()), Err(JsonError::TooDeep));
        // A syntax error outranks depth, wherever it is.
        let deep_then_bad = format!(r#"[{},"\udc00"]"#, nest(MAX_JSON_DEPTH + 5));
        assert!(matches!(
            validate(deep_then_bad.as_bytes()),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn syntax_positions_are_one_based() {
        let body = b"{\n  \"a\": \"\\udc00\"}";
        assert_eq!(
            validate(body),
            Err(JsonError::Syntax(
                "unpaired surrogate in \\u escape at line 2 column 9".into()
            ))
        );
        assert_eq!(
            validate(b"[\"\xc3\"]"),
            Err(JsonError::Syntax("invalid UTF-8 at line 1 column 3".into()))
        );
    }

    #[test]
    fn hex4_reads_only_hex_digits() {
        assert_eq!(hex4(b"xD83d", 1), Some(0xd83d));
        assert_eq!(hex4(b"+123", 0), None);
        assert_eq!(hex4(b"12", 0), None);
    }

    #[test]
    fn span_points_at_the_raw_value() {
        let body = br#" { "x" : [1] , "model" :  "a\u0062c" , "stream":true } "#;
        let info = inspect_request_serde(body).unwrap();
        assert_eq!(info.model, "abc");
        assert_eq!(&body[info.model_span.clone()], br#""a\u0062c""#);
        assert!(info.stream);
    }
}
