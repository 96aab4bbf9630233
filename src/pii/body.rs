//! The request side: substituting entities in a request body of any of the three dialects,
//! and taking the per-request `pii_substitution` flag out.
//!
//! The body is parsed into a tree and re-serialised when PII is on (splicing every text span
//! would be faster, but a request with PII on is already paying for detection over all of its
//! text; with PII off nothing here runs). Keys come out in sorted order, which no API cares
//! about.
//!
//! Which strings: every string under the conversation keys (`messages`, `system`, `input`,
//! `instructions`, `prompt`), at any depth: system and user text, assistant text from earlier
//! turns (restored for the client, so it must be substituted again: the same stand-in, by
//! determinism, which also keeps signed thinking blocks valid), tool results, tool-call
//! arguments (OpenAI's JSON-in-a-string and Anthropic's `input` object alike). Structural
//! strings are skipped by key ([`SKIP_KEYS`]): ids, roles, types, names of tools, signatures,
//! image data and URLs.

use serde_json::Value;

use super::Session;

/// The per-request switch, removed before the body goes upstream.
pub const FLAG: &str = "pii_substitution";

/// Top-level keys whose strings are conversation text.
const TEXT_ROOTS: &[&str] = &["messages", "system", "input", "instructions", "prompt"];

/// Keys whose string values are structure, never conversation text.
pub const SKIP_KEYS: &[&str] = &[
    "type",
    "role",
    "id",
    "name",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "signature",
    "encrypted_content",
    "data",
    "url",
    "image_url",
    "file_id",
    "file_data",
    "media_type",
    "source",
    "cache_control",
    "status",
    "model",
    "detail",
    "format",
];

/// Why a body could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not a JSON object.
    NotObject,
    /// `pii_substitution` is not a boolean.
    FlagNotBool,
}

/// The parsed body and what its flag said.
#[derive(Debug)]
pub struct Parsed {
    /// The tree, flag removed.
    pub tree: Value,
    /// `Some(b)` when the request carried `pii_substitution: b`.
    pub flag: Option<bool>,
}

/// Parses `body` and removes the flag.
pub fn parse(body: &[u8]) -> Result<Parsed, BodyError> {
    let mut tree: Value = serde_json::from_slice(body).map_err(|_| BodyError::NotObject)?;
    let obj = tree.as_object_mut().ok_or(BodyError::NotObject)?;
    let flag = match obj.remove(FLAG) {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(BodyError::FlagNotBool),
    };
    Ok(Parsed { tree, flag })
}

/// Substitutes the tree's conversation text in `session` and serialises it. Returns the new
/// body (also when nothing was found: the flag is gone either way).
pub fn substitute(tree: &mut Value, session: &mut Session<'_>) -> Vec<u8> {
    let mut texts: Vec<String> = Vec::new();
    walk(tree, &mut |s| texts.push(s.clone()));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut results = session.substitute(&refs).into_iter();
    walk(tree, &mut |s| {
        if let Some(Some(new)) = results.next() {
            *s = new;
        }
    });
    serde_json::to_vec(tree).unwrap_or_default()
}

/// Calls `f` on every conversation string, in document order (the same order both times).
fn walk(tree: &mut Value, f: &mut impl FnMut(&mut String)) {
    if let Some(obj) = tree.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            if TEXT_ROOTS.contains(&k.as_str()) {
                walk_text(v, f, false);
            }
        }
    }
}

/// `free`: inside data the client wrote (a tool call's `input` object, a text document's
/// `data`), where every string is content whatever its key: a tool argument called `name`,
/// `id` or `url` holds a person, an identifier or an address as readily as any other.
fn walk_text(v: &mut Value, f: &mut impl FnMut(&mut String), free: bool) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| walk_text(i, f, free)),
        Value::Object(obj) => {
            let kind = obj.get("type").and_then(Value::as_str).map(str::to_owned);
            for (k, v) in obj.iter_mut() {
                let k = k.as_str();
                if free
                    || (k == "input"
                        && matches!(kind.as_deref(), Some("tool_use" | "server_tool_use")))
                {
                    walk_text(v, f, true);
                } else if k == "source" {
                    // A document given as text: its `data` is conversation text.
                    if v.get("type").and_then(Value::as_str) == Some("text") {
                        if let Some(data) = v.get_mut("data") {
                            walk_text(data, f, true);
                        }
                    }
                } else if !SKIP_KEYS.contains(&k) {
                    walk_text(v, f, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::pii::{Detector, Kind};

    const ORIGINALS: &[&str] = &[
        "jane.doe@corp.example.io",
        "4111 1111 1111 1111",
        "10.20.30.40",
    ];

    fn run(body: &str) -> (String, Option<bool>, Session<'static>) {
        static D: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
        let d = D.get_or_init(|| Detector::new(&[], &[]).unwrap());
        let mut p = parse(body.as_bytes()).unwrap();
        let mut s = Session::new(d, b"k");
        let out = String::from_utf8(substitute(&mut p.tree, &mut s)).unwrap();
        (out, p.flag, s)
    }

    fn assert_clean(out: &str, s: &Session<'_>) {
        for o in ORIGINALS {
            assert!(!out.contains(o), "{o} in {out}");
        }
        assert!(!out.contains(FLAG));
        // Restoring the whole body gives the originals back, still valid JSON.
        let back = s.restore_set().unwrap().restore_all(out.as_bytes());
        let v: Value = serde_json::from_slice(&back).unwrap();
        let text = v.to_string();
        for o in ORIGINALS {
            assert!(text.contains(o), "{o} not restored in {text}");
        }
    }

    #[test]
    fn openai_chat_every_text_slot() {
        let body = r#"{"model":"m","pii_substitution":true,"messages":[
          {"role":"system","content":"admin is jane.doe@corp.example.io"},
          {"role":"user","content":[{"type":"text","text":"card 4111 1111 1111 1111"}]},
          {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"lookup","arguments":"{\"ip\":\"10.20.30.40\"}"}}]},
          {"role":"tool","tool_call_id":"c1","content":"owner jane.doe@corp.example.io"}]}"#;
        let (out, flag, s) = run(body);
        assert_eq!(flag, Some(true));
        assert_clean(&out, &s);
        assert_eq!(s.counts().get(Kind::Email), 2);
        let v: Value = serde_json::from_str(&out).unwrap();
        // Tool-call arguments stay valid JSON text.
        let args = v["messages"][2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let args: Value = serde_json::from_str(args).unwrap();
        assert!(
            args["ip"].as_str().unwrap().starts_with("19")
                || args["ip"].as_str().unwrap().starts_with("20")
        );
        assert_eq!(v["messages"][2]["tool_calls"][0]["id"], "c1");
    }

    #[test]
    fn anthropic_messages_every_text_slot() {
        let body = r#"{"model":"m","max_tokens":9,"system":[{"type":"text","text":"mail jane.doe@corp.example.io"}],
          "messages":[{"role":"user","content":"card 4111 1111 1111 1111"},
          {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"lookup","input":{"ip":"10.20.30.40"}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"jane.doe@corp.example.io"}]}]}]}"#;
        let (out, flag, s) = run(body);
        assert_eq!(flag, None);
        assert_clean(&out, &s);
    }

    #[test]
    fn responses_every_text_slot() {
        let body = r#"{"model":"m","instructions":"reply to jane.doe@corp.example.io","input":[
          {"role":"user","content":[{"type":"input_text","text":"card 4111 1111 1111 1111"}]},
          {"type":"function_call","call_id":"f1","name":"lookup","arguments":"{\"ip\":\"10.20.30.40\"}"},
          {"type":"function_call_output","call_id":"f1","output":"ok"}]}"#;
        let (out, _, s) = run(body);
        assert_clean(&out, &s);
    }

    #[test]
    fn flag_must_be_boolean_and_structure_is_untouched() {
        assert_eq!(
            parse(br#"{"pii_substitution":"yes"}"#).unwrap_err(),
            BodyError::FlagNotBool
        );
        assert_eq!(parse(b"[1]").unwrap_err(), BodyError::NotObject);
        let (out, _, s) = run(
            r#"{"model":"jane.doe@corp.example.io","messages":[{"role":"user","name":"10.20.30.40","content":"hi"}]}"#,
        );
        assert!(out.contains("jane.doe@corp.example.io") && out.contains("10.20.30.40"));
        assert_eq!(s.counts().total(), 0);
    }

    #[test]
    fn tool_call_inputs_and_text_documents_are_content_whatever_their_keys() {
        // `name`, `id`, `url`, `status` are structural keys in a block, but user data inside a
        // tool call's input, and a text document's `data` is the document itself.
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Patient jane.doe@corp.example.io"}}]},
            {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"name":"x","id":"4111 1111 1111 1111","url":"mailto:jane.doe@corp.example.io","status":"10.20.30.40"}}]}
        ]}"#;
        let (out, _, s) = run(body);
        assert_clean(&out, &s);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["messages"][1]["content"][0]["id"], "toolu_1",
            "structure is left alone"
        );
        assert_eq!(v["messages"][1]["content"][0]["name"], "lookup");
        assert_eq!(
            v["messages"][0]["content"][0]["source"]["media_type"],
            "text/plain"
        );
    }
}
