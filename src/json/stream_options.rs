//! Asking an OpenAI-kind provider for a streamed answer's usage on a same-format request whose
//! client did not: `stream_options.include_usage` is set by splicing, the rest byte for byte.

use bytes::Bytes;
use memchr::memmem;

use super::members::members;

/// The member inserted when a body has no `stream_options` at all.
const INSERTED: &[u8] = b"\"stream_options\":{\"include_usage\":true},";

/// `body` (a validated JSON object) with `stream_options.include_usage` true, or None when it
/// says so already (the client asked: its usage chunk is its own) or when its `stream_options`
/// is not an object or null (the provider will judge it; nothing is changed).
///
/// A body that never mentions `stream_options` (and has no escapes that could spell it) gets
/// the member inserted first, without a walk; otherwise the top-level members are walked and
/// only the `stream_options` value is rewritten.
pub fn with_include_usage(body: &[u8]) -> Option<Bytes> {
    // Built once: a one-shot `memmem::find` builds its searcher on every call.
    static NAME: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"stream_options"));
    let mentioned = NAME.find(body).is_some();
    let escaped = memchr::memchr(b'\\', body).is_some();
    if !mentioned && !escaped {
        let open = body.iter().position(|b| *b == b'{')?;
        let rest = body.get(open + 1..)?;
        let empty = rest.trim_ascii_start().starts_with(b"}");
        let mut out = Vec::with_capacity(body.len() + INSERTED.len());
        out.extend_from_slice(body.get(..=open)?);
        if empty {
            out.extend_from_slice(INSERTED.strip_suffix(b",")?);
        } else {
            out.extend_from_slice(INSERTED);
        }
        out.extend_from_slice(rest);
        return Some(Bytes::from(out));
    }
    let all = members(body)?;
    // The provider reads the last of duplicate keys (as serde_json and Python do).
    let Some(m) = all.iter().rev().find(|m| m.key == "stream_options") else {
        // Only a string or an escaped key mentioned it: insert as above.
        let open = body.iter().position(|b| *b == b'{')?;
        let mut out = Vec::with_capacity(body.len() + INSERTED.len());
        out.extend_from_slice(body.get(..=open)?);
        if all.is_empty() {
            out.extend_from_slice(INSERTED.strip_suffix(b",")?);
        } else {
            out.extend_from_slice(INSERTED);
        }
        out.extend_from_slice(body.get(open + 1..)?);
        return Some(Bytes::from(out));
    };
    let mut value: serde_json::Value = serde_json::from_slice(body.get(m.value.clone())?).ok()?;
    match &mut value {
        serde_json::Value::Null => value = serde_json::json!({"include_usage": true}),
        serde_json::Value::Object(o) => {
            if o.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
                return None;
            }
            o.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        }
        _ => return None,
    }
    let new = serde_json::to_vec(&value).ok()?;
    let mut out = Vec::with_capacity(body.len() + new.len());
    out.extend_from_slice(body.get(..m.value.start)?);
    out.extend_from_slice(&new);
    out.extend_from_slice(body.get(m.value.end..)?);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn after(body: &str) -> Option<Value> {
        with_include_usage(body.as_bytes()).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn include_usage_is_added_only_where_missing() {
        // Absent: inserted first, the rest byte for byte.
        let body =
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"stream_opt"}]}"#;
        let out = with_include_usage(body.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!(
                "{{\"stream_options\":{{\"include_usage\":true}},{}",
                &body[1..]
            )
        );
        assert_eq!(
            after(" { } ").unwrap(),
            json!({"stream_options": {"include_usage": true}})
        );
        // Present without it, false, or null: set, other options kept.
        for (opts, want) in [
            (
                r#"{"include_obfuscation":false}"#,
                json!({"include_obfuscation": false, "include_usage": true}),
            ),
            (r#"{"include_usage":false}"#, json!({"include_usage": true})),
            ("null", json!({"include_usage": true})),
        ] {
            let body = format!(r#"{{"model":"m","stream_options":{opts},"stream":true}}"#);
            let v = after(&body).unwrap();
            assert_eq!(v["stream_options"], want, "{body}");
            assert_eq!(v["model"], "m");
            assert_eq!(v["stream"], true);
        }
        // The client asked, or sent something the provider must judge: unchanged.
        assert!(after(r#"{"model":"m","stream_options":{"include_usage":true}}"#).is_none());
        assert!(after(r#"{"model":"m","stream_options":"yes"}"#).is_none());
        // Mentioned only in a string, or the key escaped: read as the provider reads it.
        let v = after(r#"{"model":"m","messages":[{"content":"stream_options \u00e9"}]}"#).unwrap();
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        assert_eq!(v["messages"][0]["content"], "stream_options é");
        assert!(after(r#"{"model":"m","stream_\u006fptions":{"include_usage":true}}"#).is_none());
        let v = after(r#"{"model":"m","stream_\u006fptions":{}}"#).unwrap();
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
    }
}
