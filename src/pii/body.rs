//! The request side: substituting entities in a request body of any of the three dialects,
//! and taking the per-request `pii_substitution` flag out.
//!
//! The body is never re-serialised: its strings are located as byte spans (`json::tree`),
//! the conversation strings decoded and run through the session, and only the strings that
//! changed are written back, in place. Every other byte (numbers beyond 64 bits, decimals
//! with more digits than an f64 holds, key order, whitespace) reaches the provider as the
//! client wrote it.
//!
//! Which strings: every string under the conversation keys (`messages`, `system`, `input`,
//! `instructions`, `prompt`), at any depth: system and user text, assistant text from earlier
//! turns (restored for the client, so it must be substituted again: the same stand-in, by
//! determinism), tool results, tool-call arguments (OpenAI's JSON-in-a-string and Anthropic's
//! `input` object alike). Structural strings are skipped by key ([`SKIP_KEYS`]): ids, roles,
//! types, names of tools, signatures, image data and URLs. Signed thinking blocks are skipped
//! whole (see [`SIGNED`]).

use std::ops::Range;

use crate::json::tree::{self, Entry, Node};

use super::Session;

/// The per-request switch, removed before the body goes upstream.
pub const FLAG: &str = "pii_substitution";

/// Top-level keys whose strings are conversation text.
const TEXT_ROOTS: &[&str] = &["messages", "system", "input", "instructions", "prompt"];

/// Block types whose text the provider signed: Anthropic `thinking` (text + `signature`) and
/// `redacted_thinking` (opaque `data`), in an Anthropic assistant turn or in the OpenAI
/// `thinking_blocks` extension that carries them verbatim.
///
/// They go back exactly as the client holds them, never substituted. The provider checks the
/// signature against the text it wrote, so the text must reach it byte for byte as it was
/// produced; that is why the answer side never restores thinking text either (`document`,
/// `events`).
/// Re-substituting restored thinking text cannot give those bytes back in general: the model
/// may itself write an original or any other detectable value in its thinking (a phone number
/// it reasons about, a dictionary place), which substitution would then change and the
/// signature check would refuse. Left alone, the block leaks nothing: every byte of it came
/// from the provider. Its text is also kept out of the stand-in collision check, so the
/// stand-ins it mentions are drawn again for the same originals.
pub const SIGNED: &[&str] = &["thinking", "redacted_thinking"];

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

/// The body with its flag taken out, and what the flag said.
#[derive(Debug)]
pub struct Parsed {
    /// The body without `pii_substitution`, every other byte as it came.
    pub body: Vec<u8>,
    /// `Some(b)` when the request carried `pii_substitution: b` (the first one, as the
    /// request inspector reads it).
    pub flag: Option<bool>,
}

/// Takes the flag out of `body` (every occurrence; each must be a boolean).
pub fn parse(body: &[u8]) -> Result<Parsed, BodyError> {
    let members = crate::json::members(body).ok_or(BodyError::NotObject)?;
    let mut flag = None;
    for m in members.iter().filter(|m| m.key == FLAG) {
        let b = match body.get(m.value.clone()) {
            Some(b"true") => true,
            Some(b"false") => false,
            _ => return Err(BodyError::FlagNotBool),
        };
        flag = flag.or(Some(b));
    }
    if flag.is_none() {
        return Ok(Parsed {
            body: body.to_vec(),
            flag,
        });
    }
    let (body, _) = crate::json::remove_members(body, FLAG).ok_or(BodyError::NotObject)?;
    Ok(Parsed { body, flag })
}

/// Substitutes the body's conversation text in `session`. Returns the new body: the input
/// with only the changed strings rewritten.
pub fn substitute(body: &[u8], session: &mut Session<'_>) -> Result<Vec<u8>, BodyError> {
    let root = tree::parse(body).ok_or(BodyError::NotObject)?;
    let mut spans = Vec::new();
    walk(body, &root, &mut spans);
    let mut texts = Vec::with_capacity(spans.len());
    for span in &spans {
        // A validated body decodes; a string that does not must not go upstream unread.
        texts.push(tree::decode(body, span.clone()).ok_or(BodyError::NotObject)?);
    }
    let refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
    let results = session.substitute(&refs);
    let edits: Vec<(Range<usize>, &str)> = spans
        .iter()
        .zip(&results)
        .filter_map(|(span, new)| Some((span.clone(), new.as_deref()?)))
        .collect();
    tree::splice_strings(body, &edits).ok_or(BodyError::NotObject)
}

/// Collects the span of every conversation string, in document order.
fn walk(body: &[u8], root: &Node, out: &mut Vec<Range<usize>>) {
    if let Node::Object(entries) = root {
        for e in entries {
            if TEXT_ROOTS.contains(&e.key.as_str()) {
                walk_text(body, &e.value, out, false);
            }
        }
    }
}

/// The decoded `type` strings of an object's members (duplicates included: a provider may
/// read any of them, so each counts).
fn types<'b>(body: &'b [u8], entries: &[Entry]) -> Vec<std::borrow::Cow<'b, str>> {
    entries
        .iter()
        .filter(|e| e.key == "type")
        .filter_map(|e| e.value.as_str(body))
        .collect()
}

/// `free`: inside data the client wrote (a tool call's `input` object, a text document's
/// `data`), where every string is content whatever its key: a tool argument called `name`,
/// `id` or `url` holds a person, an identifier or an address as readily as any other.
fn walk_text(body: &[u8], v: &Node, out: &mut Vec<Range<usize>>, free: bool) {
    match v {
        Node::Str(span) => out.push(span.clone()),
        Node::Array(items) => items.iter().for_each(|i| walk_text(body, i, out, free)),
        Node::Object(entries) => {
            let kinds = types(body, entries);
            let is = |names: &[&str]| kinds.iter().any(|k| names.contains(&k.as_ref()));
            if !free && is(SIGNED) {
                return;
            }
            let tool_use = is(&["tool_use", "server_tool_use"]);
            for e in entries {
                let k = e.key.as_str();
                if free || (k == "input" && tool_use) {
                    walk_text(body, &e.value, out, true);
                } else if k == "source" {
                    // A document given as text: its `data` is conversation text.
                    if e.value.get("type").and_then(|t| t.as_str(body)).as_deref() == Some("text") {
                        if let Node::Object(members) = &e.value {
                            for m in members.iter().filter(|m| m.key == "data") {
                                walk_text(body, &m.value, out, true);
                            }
                        }
                    }
                } else if !SKIP_KEYS.contains(&k) {
                    walk_text(body, &e.value, out, false);
                }
            }
        }
        Node::Scalar(_) => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::pii::{Detector, Kind};
    use serde_json::Value;

    const ORIGINALS: &[&str] = &[
        "jane.doe@corp.example.io",
        "4111 1111 1111 1111",
        "10.20.30.40",
    ];

    fn run(body: &str) -> (String, Option<bool>, Session<'static>) {
        static D: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
        let d = D.get_or_init(|| Detector::new(&[], &[]).unwrap());
        let p = parse(body.as_bytes()).unwrap();
        let mut s = Session::new(d, b"k");
        let out = String::from_utf8(substitute(&p.body, &mut s).unwrap()).unwrap();
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

    #[test]
    fn numbers_and_every_untouched_byte_reach_the_provider_as_written() {
        // Beyond u64/i64 and beyond f64 precision: a tree of serde_json values would turn
        // these into 1.2345678901234568e29 and 0.1, and refuse 1e400 outright (the inspector
        // checks numbers for shape only; the provider decides what magnitude it takes).
        let body = r#"{ "model" : "m", "seed": 123456789012345678901234567890,
            "temperature": 0.10000000000000000001, "big": -1e400,
            "zero": 0.0, "pii_substitution": true, "z": 1, "a": 2,
            "messages": [{"role": "user", "content": "mail jane.doe@corp.example.io \u00e9 \/ ok",
                "n": 18446744073709551616}]}"#;
        let (out, flag, s) = run(body);
        assert_eq!(flag, Some(true));
        assert_eq!(s.counts().get(Kind::Email), 1);
        let stand_in = &s.pairs()[0].stand_in;
        // Only the one string with an entity was rewritten (its escapes are now written the
        // one way `write_json_string` writes them); everything else is the client's bytes.
        let expected = body
            .replace(
                r#""mail jane.doe@corp.example.io \u00e9 \/ ok""#,
                &format!("\"mail {stand_in} é / ok\""),
            )
            .replace(r#""pii_substitution": true, "#, "");
        assert_eq!(out, expected);
    }

    #[test]
    fn a_body_without_entities_or_with_the_flag_off_is_unchanged() {
        let body = r#"{"model":"m","seed":123456789012345678901234567890,"messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        let (out, flag, s) = run(body);
        assert_eq!((out.as_str(), flag), (body, None));
        assert_eq!(s.counts().total(), 0);
        let p = parse(
            br#"{"pii_substitution":false,"x":0.10000000000000000001,"pii_substitution":true}"#,
        )
        .unwrap();
        assert_eq!(
            p.flag,
            Some(false),
            "the first flag, as the inspector reads it"
        );
        assert_eq!(p.body, br#"{"x":0.10000000000000000001}"#);
        assert_eq!(
            parse(br#"{"pii_substitution":true,"pii_substitution":1}"#).unwrap_err(),
            BodyError::FlagNotBool
        );
    }

    #[test]
    fn signed_thinking_blocks_are_left_as_the_provider_wrote_them() {
        let thinking = "The user jane.doe@corp.example.io wants 10.20.30.40";
        let body = format!(
            r#"{{"model":"m","messages":[
              {{"role":"user","content":"mail jane.doe@corp.example.io"}},
              {{"role":"assistant","content":[
                {{"type":"thinking","thinking":"{thinking}","signature":"c2ln"}},
                {{"type":"redacted_thinking","data":"jane.doe@corp.example.io"}},
                {{"type":"tool_use","id":"t","name":"n","input":{{"type":"thinking","thinking":"10.20.30.40"}}}}]}},
              {{"role":"assistant","content":null,"thinking_blocks":[
                {{"type":"thinking","thinking":"{thinking}","signature":"c2ln"}}]}}]}}"#
        );
        let (out, _, s) = run(&body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let content = &v["messages"][1]["content"];
        assert_eq!(content[0]["thinking"], thinking);
        assert_eq!(content[1]["data"], "jane.doe@corp.example.io");
        assert_eq!(v["messages"][2]["thinking_blocks"][0]["thinking"], thinking);
        // A tool's input is the client's data, whatever its shape.
        assert_ne!(content[2]["input"]["thinking"], "10.20.30.40");
        assert_ne!(v["messages"][0]["content"], "mail jane.doe@corp.example.io");
        assert_eq!(s.counts().get(Kind::Email), 1);
    }
}
