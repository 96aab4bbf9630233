//! The serde_json parser: a single pass with a map visitor. `model` is taken as `&RawValue`,
//! which gives its byte span. Every other value goes through a validating visitor.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{first_non_ws, Collected, JsonError, RequestInfo, StreamValue};

/// The start of serde_json's message for its recursion limit. serde_json has no public error
/// code for it, so [`from_serde`] matches the text. A unit test pins it.
const RECURSION_LIMIT_MSG: &str = "recursion limit exceeded";

/// Checks a chat request body and finds its `model` using serde_json. See the module docs for
/// the rules.
pub fn inspect_request_serde(body: &[u8]) -> Result<RequestInfo, JsonError> {
    if first_non_ws(body) != Some(b'{') {
        // Either invalid, or valid but not an object. Only a full parse can tell which.
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
    if walked.revalidate {
        validate(body)?;
    }
    walked.collected.finish()
}

/// Validates a whole document: UTF-8, escapes including surrogate pairs, numbers, depth, and
/// trailing bytes. `IgnoredAny` is not enough here: it checks neither UTF-8 nor surrogates
/// inside the strings it skips, and it has no depth limit.
pub(super) fn validate(body: &[u8]) -> Result<(), JsonError> {
    serde_json::from_slice::<Validate>(body)
        .map(|_| ())
        .map_err(from_serde)
}

/// Converts a serde_json error into the client-facing error.
fn from_serde(e: serde_json::Error) -> JsonError {
    let msg = e.to_string();
    if msg.starts_with(RECURSION_LIMIT_MSG) {
        JsonError::TooDeep
    } else {
        JsonError::Syntax(msg)
    }
}

/// The result of the single pass, before the field checks.
struct Walked {
    collected: Collected,
    /// Set when a `model` value was only skipped, not validated. That happens when it is not a
    /// string, appears twice, or fails to decode. The whole document is then validated again
    /// to decide between a syntax error and a field error. This is a cold path, since all
    /// three cases end in a 400.
    revalidate: bool,
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
        let mut revalidate = false;
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Model => {
                    let raw: &'de RawValue = map.next_value()?;
                    collected.model_count += 1;
                    if collected.model_count > 1 {
                        revalidate = true;
                        continue;
                    }
                    let text = raw.get();
                    let span = self
                        .span_of(text)
                        .ok_or_else(|| de::Error::custom("`model` value is outside the body"))?;
                    let decoded = if text.starts_with('"') {
                        // The skip did not check surrogate pairs; decoding does.
                        serde_json::from_str::<String>(text).ok()
                    } else {
                        None
                    };
                    revalidate |= decoded.is_none();
                    collected.model = Some((span, decoded));
                }
                TopKey::Stream => {
                    let value = map.next_value::<StreamSlot>()?.0;
                    collected.stream_count += 1;
                    if collected.stream_count == 1 {
                        collected.stream = value;
                    }
                }
                TopKey::Other => {
                    map.next_value::<Validate>()?;
                }
            }
        }
        Ok(Walked {
            collected,
            revalidate,
        })
    }
}

/// A top-level key, compared after unescaping.
enum TopKey {
    Model,
    Stream,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
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
            _ => TopKey::Other,
        })
    }
}

/// A value that is only validated. Strings are parsed with `deserialize_any`, so serde_json
/// checks their UTF-8 and `\u` escapes. Each container counts toward serde_json's recursion
/// limit.
struct Validate;

impl<'de> Deserialize<'de> for Validate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValidateVisitor).map(|()| Validate)
    }
}

struct ValidateVisitor;

impl<'de> Visitor<'de> for ValidateVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Validate>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<Validate>()?.is_some() {
            map.next_value::<Validate>()?;
        }
        Ok(())
    }
}

/// A `stream` value: validated like any other value, and sorted by kind.
struct StreamSlot(StreamValue);

impl<'de> Deserialize<'de> for StreamSlot {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StreamVisitor).map(StreamSlot)
    }
}

struct StreamVisitor;

impl<'de> Visitor<'de> for StreamVisitor {
    type Value = StreamValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<StreamValue, E> {
        Ok(StreamValue::Bool(b))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StreamValue, E> {
        Ok(StreamValue::Null)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<StreamValue, E> {
        Ok(StreamValue::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<StreamValue, E> {
        Ok(StreamValue::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<StreamValue, E> {
        Ok(StreamValue::Other)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<StreamValue, E> {
        Ok(StreamValue::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<StreamValue, A::Error> {
        ValidateVisitor.visit_seq(seq).map(|()| StreamValue::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StreamValue, A::Error> {
        ValidateVisitor.visit_map(map).map(|()| StreamValue::Other)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn recursion_limit_message_is_recognised() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = serde_json::from_str::<Validate>(&deep).err().unwrap();
        assert!(e.to_string().starts_with(RECURSION_LIMIT_MSG), "{e}");
        assert_eq!(validate(deep.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn validate_checks_what_ignored_any_skips() {
        for bad in [
            &br#"{"a":"\ud800"}"#[..],
            br#"{"a":["\udc00"]}"#,
            b"{\"a\":\"\xff\"}",
            br#"{"\ud800x":1}"#,
        ] {
            assert!(serde_json::from_slice::<de::IgnoredAny>(bad).is_ok());
            assert!(
                matches!(validate(bad), Err(JsonError::Syntax(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn span_points_at_the_raw_value() {
        let body = br#" { "x" : [1] , "model" :  "a\u0062c" , "stream":true } "#;
        let info = inspect_request_serde(body).unwrap();
        assert_eq!(info.model, "abc");
        assert_eq!(&body[info.model_span.clone()], br#""a\u0062c""#);
        assert!(info.stream);
    }

    #[test]
    fn invalid_model_value_is_a_syntax_error_not_a_field_error() {
        let body = br#"{"model":{"a":"\ud800"}}"#;
        assert!(matches!(
            inspect_request_serde(body),
            Err(JsonError::Syntax(_))
        ));
        let body = br#"{"model":"\ud800"}"#;
        assert!(matches!(
            inspect_request_serde(body),
            Err(JsonError::Syntax(_))
        ));
        let deep = format!(r#"{{"model":{}1{}}}"#, "[".repeat(130), "]".repeat(130));
        assert_eq!(
            inspect_request_serde(deep.as_bytes()),
            Err(JsonError::TooDeep)
        );
    }
}
