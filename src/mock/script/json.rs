//! JSON text as the providers write it: compact, two-space indented, ASCII-escaped, and tool
//! arguments in the order given.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

/// `{"key": value, …}` with the spacing both real APIs use in streamed arguments.
pub(super) fn spaced_args(args: &[(String, Value)]) -> String {
    let fields: Vec<String> = args
        .iter()
        .map(|(k, v)| format!("{}: {}", json(k), json(v)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Serialises arguments as a JSON object in `required` order (serde_json's `Map` would sort).
pub(super) struct ArgsObject<'a>(pub(super) &'a [(String, Value)]);

impl Serialize for ArgsObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Compact JSON. The types serialised here have string keys only, so this cannot fail.
pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// JSON text with every non-ASCII character escaped, as Python's `json.dumps` writes it by
/// default (outside strings JSON is ASCII, so only string contents change).
pub(super) fn ascii_only(json: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(json) else {
        return json.to_vec();
    };
    let mut out = String::with_capacity(json.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// Two-space indented JSON, as OpenAI sends non-streaming bodies.
pub(super) fn json_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::mock::script::testing::*;
    use crate::mock::script::Api;
    use serde_json::json;

    #[test]
    fn ascii_escapes_what_is_not_ascii() {
        assert_eq!(
            ascii_only(r#"{"t":"é😀\"x"}"#.as_bytes()),
            br#"{"t":"\u00e9\ud83d\ude00\"x"}"#
        );
        let v = fixed(&run(
            Api::AnthropicMessages,
            &anthropic("mock:ascii héllo", json!({})),
        ));
        assert!(v.1.contains(r"h\u00e9llo"), "{}", v.1);
        assert!(v.2["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("héllo"));
    }
}
