//! What a cloud's Claude endpoint needs done to an Anthropic Messages body, and how its
//! errors read as Anthropic's: the members it refuses left out, `model` (and for Bedrock
//! `stream`) moved out of the body, the cloud's `anthropic_version` and betas put in; AWS and
//! Google error bodies rewritten in Anthropic's error shape. Span edits on the validated body:
//! everything else is forwarded byte for byte. Pure.

use base64::Engine as _;

use crate::json::{members, write_json_string};

/// How one cloud takes the body.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    /// Its `anthropic_version`.
    pub version: &'static str,
    /// `model` stays in the body (Vertex's count_tokens).
    pub keep_model: bool,
    /// `stream` stays in the body (Vertex: the path says it on Bedrock).
    pub keep_stream: bool,
    /// The top-level members it takes (None: any).
    pub members: Option<&'static [&'static str]>,
    /// Betas to put in the body as `anthropic_beta` (Bedrock); None: they travel in a header.
    pub betas: Option<&'a [String]>,
    /// `context_management` edits whose type starts with one of these are kept, the rest left
    /// out (Bedrock takes only compaction there; Claude Code's own Bedrock mode sends none).
    /// None: the member as the client sent it.
    pub context_edits: Option<&'static [&'static str]>,
}

/// `body` reshaped for `shape`, and the members left out because the cloud refuses them (to
/// report as dropped). `model` and `stream` leave silently: the path carries them. None if the
/// body is not a JSON object (admission validated it, so only on a bug).
pub fn reshape(body: &[u8], shape: &Shape<'_>) -> Option<(Vec<u8>, Vec<String>)> {
    let all = members(body)?;
    let mut out = Vec::with_capacity(body.len() + 96);
    let mut dropped = Vec::new();
    out.extend_from_slice(b"{\"anthropic_version\":");
    write_json_string(&mut out, shape.version);
    if let Some(betas) = shape.betas.filter(|b| !b.is_empty()) {
        out.extend_from_slice(b",\"anthropic_beta\":[");
        for (i, b) in betas.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, b);
        }
        out.push(b']');
    }
    for m in &all {
        let silent = match m.key.as_str() {
            // Ours replaces the client's.
            "anthropic_version" | "anthropic_beta" => true,
            "model" => !shape.keep_model,
            "stream" => !shape.keep_stream,
            _ => false,
        };
        if silent {
            continue;
        }
        if let Some(allowed) = shape.members {
            if !allowed.contains(&m.key.as_str()) {
                dropped.push(m.key.clone());
                continue;
            }
        }
        if let (Some(kept), "context_management") = (shape.context_edits, m.key.as_str()) {
            match context_edits(body.get(m.value.clone())?, kept) {
                Edits::AsSent => {}
                Edits::Some(value) => {
                    dropped.push("context_management.edits".to_owned());
                    out.extend_from_slice(b",\"context_management\":");
                    out.extend_from_slice(&value);
                    continue;
                }
                Edits::None => {
                    dropped.push("context_management".to_owned());
                    continue;
                }
            }
        }
        out.push(b',');
        out.extend_from_slice(body.get(m.span.clone())?);
    }
    out.push(b'}');
    Some((out, dropped))
}

/// What is left of a `context_management` value once edits a cloud does not take are out.
enum Edits {
    /// All of it is taken.
    AsSent,
    /// This (JSON) is.
    Some(Vec<u8>),
    /// None of it (or it is not an object with an `edits` list).
    None,
}

/// `value` keeping only the edits whose `type` starts with one of `kept`.
fn context_edits(value: &[u8], kept: &[&str]) -> Edits {
    let Ok(serde_json::Value::Object(mut cm)) = serde_json::from_slice(value) else {
        return Edits::None;
    };
    let Some(serde_json::Value::Array(edits)) = cm.get_mut("edits") else {
        return Edits::None;
    };
    let before = edits.len();
    edits.retain(|e| {
        e.get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| kept.iter().any(|k| t.starts_with(k)))
    });
    match edits.len() {
        0 => Edits::None,
        n if n == before => Edits::AsSent,
        _ => serde_json::to_vec(&cm).map_or(Edits::None, Edits::Some),
    }
}

/// The values of `anthropic-beta` headers (comma-separated lists) split into those `allow`
/// takes (renamed where the cloud knows them by another name; each once) and those dropped.
pub fn split_betas<'h>(
    headers: impl Iterator<Item = &'h [u8]>,
    allow: &[&str],
    renames: &[(&str, &str)],
) -> (Vec<String>, Vec<String>) {
    let (mut kept, mut dropped) = (Vec::<String>::new(), Vec::<String>::new());
    for value in headers {
        for beta in value.split(|&b| b == b',') {
            let beta = String::from_utf8_lossy(beta.trim_ascii());
            if beta.is_empty() {
                continue;
            }
            let name = renames
                .iter()
                .find(|(from, _)| *from == beta)
                .map_or(beta.as_ref(), |(_, to)| *to);
            let list = if allow.contains(&name) {
                (&mut kept, name)
            } else {
                (&mut dropped, beta.as_ref())
            };
            if !list.0.iter().any(|b| b == list.1) {
                list.0.push(list.1.to_owned());
            }
        }
    }
    (kept, dropped)
}

/// The betas among `sent` that a cloud's 400 answer refuses: those it names (Anthropic's
/// "Unexpected value(s) `x` for the `anthropic-beta` header"), or all of them when it says a
/// beta is wrong without naming one (Bedrock's "invalid beta flag"). Empty: the 400 is about
/// something else.
pub fn refused_betas(raw: &[u8], sent: &[String]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let named: Vec<String> = sent
        .iter()
        .filter(|b| text.contains(b.as_str()))
        .cloned()
        .collect();
    if !named.is_empty() {
        return named;
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("beta flag")
        || lower.contains("anthropic-beta")
        || lower.contains("anthropic_beta")
    {
        return sent.to_vec();
    }
    Vec::new()
}

/// A reshaped Bedrock body with its `anthropic_beta` member replaced by `betas` (left out when
/// there are none). None if the body is not an object.
pub fn with_betas(body: &[u8], betas: &[String]) -> Option<Vec<u8>> {
    let all = members(body)?;
    let mut out = Vec::with_capacity(body.len());
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if !betas.is_empty() {
        sep(&mut out);
        out.extend_from_slice(b"\"anthropic_beta\":[");
        for (i, b) in betas.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, b);
        }
        out.push(b']');
    }
    for m in all.iter().filter(|m| m.key != "anthropic_beta") {
        sep(&mut out);
        out.extend_from_slice(body.get(m.span.clone())?);
    }
    out.push(b'}');
    Some(out)
}

/// Bedrock's CountTokens body around an InvokeModel body: `{"input":{"invokeModel":{"body":
/// "<base64>"}}}`. InvokeModel needs `max_tokens`, which a count_tokens request has no use for:
/// the smallest is added when it is missing.
pub fn bedrock_count_tokens(invoke_body: &[u8]) -> Vec<u8> {
    let with_cap;
    let inner = match members(invoke_body) {
        Some(m) if !m.iter().any(|m| m.key == "max_tokens") && invoke_body.len() > 1 => {
            let mut b = Vec::with_capacity(invoke_body.len() + 16);
            b.extend_from_slice(b"{\"max_tokens\":1,");
            b.extend_from_slice(invoke_body.get(1..).unwrap_or_default());
            with_cap = b;
            &with_cap[..]
        }
        _ => invoke_body,
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let mut out = Vec::with_capacity(b64.len() + 40);
    out.extend_from_slice(b"{\"input\":{\"invokeModel\":{\"body\":\"");
    out.extend_from_slice(b64.as_bytes());
    out.extend_from_slice(b"\"}}}");
    out
}

/// Bedrock's `{"inputTokens":N}` as Anthropic's `{"input_tokens":N}`; None if it says no count.
pub fn bedrock_token_count(raw: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let n = v.get("inputTokens")?.as_u64()?;
    Some(format!("{{\"input_tokens\":{n}}}").into_bytes())
}

/// An Anthropic error body.
pub fn anthropic_error(error_type: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
    write_json_string(&mut out, error_type);
    out.extend_from_slice(b",\"message\":");
    write_json_string(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

/// Is `raw` already an Anthropic error body?
fn is_anthropic_error(v: &serde_json::Value) -> bool {
    v.get("type").and_then(|t| t.as_str()) == Some("error") && v.get("error").is_some()
}

/// An AWS REST-JSON error (`x-amzn-ErrorType: <type>[:namespace]`, body `{"message":…}`) as an
/// Anthropic error body; an Anthropic-shaped body (the model's own) as it is. None: unreadable,
/// relayed as the provider sent it.
pub fn from_aws_error(aws_type: Option<&str>, raw: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    if is_anthropic_error(&v) {
        return None;
    }
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|m| m.as_str()))?;
    let name = aws_type
        .or_else(|| v.get("__type").and_then(|t| t.as_str()))
        .unwrap_or_default();
    let name = name.rsplit('#').next().unwrap_or(name);
    let text = match name.split(':').next() {
        Some(n) if !n.is_empty() => format!("{n}: {message}"),
        _ => message.to_owned(),
    };
    Some(anthropic_error(super::bedrock::error_type(name), &text))
}

/// A Google API error (`{"error":{"code","message","status"}}`, on streaming endpoints inside a
/// one-element array) as an Anthropic error body; an Anthropic-shaped body as it is.
pub fn from_google_error(raw: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    if is_anthropic_error(&v) {
        return None;
    }
    let v = match &v {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    let e = v.get("error")?;
    let message = e.get("message").and_then(|m| m.as_str())?;
    let status = e.get("status").and_then(|s| s.as_str()).unwrap_or_default();
    let text = if status.is_empty() {
        message.to_owned()
    } else {
        format!("{status}: {message}")
    };
    Some(anthropic_error(super::vertex::error_type(status), &text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn v(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn bedrock_bodies_lose_model_and_stream_and_gain_version_and_betas() {
        let body = br#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}],"service_tier":"auto","anthropic_version":"x"}"#;
        let betas = vec!["context-1m-2025-08-07".to_owned()];
        let shape = Shape {
            version: super::super::bedrock::ANTHROPIC_VERSION,
            keep_model: false,
            keep_stream: false,
            members: Some(super::super::bedrock::BODY_MEMBERS),
            betas: Some(&betas),
            context_edits: Some(super::super::bedrock::CONTEXT_EDITS),
        };
        let (out, dropped) = reshape(body, &shape).unwrap();
        assert_eq!(
            v(&out),
            json!({"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["context-1m-2025-08-07"],
                   "max_tokens":5,"messages":[{"role":"user","content":"hi"}]})
        );
        assert_eq!(dropped, vec!["service_tier"]);
    }

    #[test]
    fn vertex_bodies_keep_stream_and_all_members() {
        let body = br#"{ "model" : "m" , "stream":true, "x":{"model":1} }"#;
        let shape = Shape {
            version: super::super::vertex::ANTHROPIC_VERSION,
            keep_model: false,
            keep_stream: true,
            members: None,
            betas: None,
            context_edits: None,
        };
        let (out, dropped) = reshape(body, &shape).unwrap();
        assert_eq!(
            v(&out),
            json!({"anthropic_version":"vertex-2023-10-16","stream":true,"x":{"model":1}})
        );
        assert!(dropped.is_empty());
        // Empty object.
        let (out, _) = reshape(b"{}", &shape).unwrap();
        assert_eq!(v(&out), json!({"anthropic_version":"vertex-2023-10-16"}));
    }

    #[test]
    fn bedrock_keeps_only_compaction_edits() {
        let shape = Shape {
            version: "v",
            keep_model: false,
            keep_stream: false,
            members: None,
            betas: None,
            context_edits: Some(super::super::bedrock::CONTEXT_EDITS),
        };
        // Claude Code's first-party edit: Bedrock refuses it, so the member goes.
        let cc = br#"{"max_tokens":1,"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}}"#;
        let (out, dropped) = reshape(cc, &shape).unwrap();
        assert_eq!(v(&out), json!({"anthropic_version":"v","max_tokens":1}));
        assert_eq!(dropped, vec!["context_management"]);
        let mixed = br#"{"context_management":{"edits":[{"type":"clear_thinking_20251015"},{"type":"compact_20260112","trigger":{"type":"input_tokens","value":9}}]}}"#;
        let (out, dropped) = reshape(mixed, &shape).unwrap();
        assert_eq!(
            v(&out),
            json!({"anthropic_version":"v","context_management":{"edits":[{"type":"compact_20260112","trigger":{"type":"input_tokens","value":9}}]}})
        );
        assert_eq!(dropped, vec!["context_management.edits"]);
        let compact = br#"{"context_management":{"edits":[{"type":"compact_20260112"}]}}"#;
        let (out, dropped) = reshape(compact, &shape).unwrap();
        assert_eq!(
            v(&out),
            json!({"anthropic_version":"v","context_management":{"edits":[{"type":"compact_20260112"}]}})
        );
        assert!(dropped.is_empty());
    }

    #[test]
    fn betas_split_by_allowlist_with_renames() {
        let h: Vec<&[u8]> = vec![
            b"claude-code-20250219, context-1m-2025-08-07",
            b"advanced-tool-use-2025-11-20,tool-search-tool-2025-10-19,,",
        ];
        let (kept, dropped) = split_betas(
            h.into_iter(),
            super::super::bedrock::BETAS,
            super::super::bedrock::BETA_RENAMES,
        );
        assert_eq!(
            kept,
            vec!["context-1m-2025-08-07", "tool-search-tool-2025-10-19"]
        );
        assert_eq!(dropped, vec!["claude-code-20250219"]);
    }

    #[test]
    fn refused_betas_are_the_named_ones_or_all_when_none_is_named() {
        let sent = vec!["a-2025".to_owned(), "b-2026".to_owned()];
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Unexpected value(s) `b-2026` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header."}}"#;
        assert_eq!(refused_betas(anthropic, &sent), vec!["b-2026"]);
        assert_eq!(
            refused_betas(br#"{"message":"invalid beta flag"}"#, &sent),
            sent
        );
        assert!(refused_betas(br#"{"message":"max_tokens: too large"}"#, &sent).is_empty());
        let body =
            br#"{"anthropic_version":"v","anthropic_beta":["a-2025","b-2026"],"max_tokens":1}"#;
        let keep = vec!["a-2025".to_owned()];
        assert_eq!(
            v(&with_betas(body, &keep).unwrap()),
            json!({"anthropic_version":"v","anthropic_beta":["a-2025"],"max_tokens":1})
        );
        assert_eq!(
            v(&with_betas(body, &[]).unwrap()),
            json!({"anthropic_version":"v","max_tokens":1})
        );
    }

    #[test]
    fn count_tokens_wraps_and_unwraps() {
        let out = bedrock_count_tokens(br#"{"anthropic_version":"v","messages":[]}"#);
        let outer = v(&out);
        let b64 = outer["input"]["invokeModel"]["body"].as_str().unwrap();
        let inner = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            v(&inner),
            json!({"max_tokens":1,"anthropic_version":"v","messages":[]})
        );
        assert_eq!(
            bedrock_token_count(br#"{"inputTokens":42}"#).unwrap(),
            br#"{"input_tokens":42}"#
        );
        assert_eq!(bedrock_token_count(br#"{"x":1}"#), None);
    }

    #[test]
    fn cloud_errors_read_as_anthropic_errors() {
        let out = from_aws_error(
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        )
        .unwrap();
        assert_eq!(
            v(&out),
            json!({"type":"error","error":{"type":"rate_limit_error",
                "message":"ThrottlingException: Too many requests, please wait before trying again."}})
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"x"}}"#;
        assert_eq!(from_aws_error(None, anthropic), None);
        assert_eq!(from_google_error(anthropic), None);
        let g = br#"[{"error":{"code":429,"message":"Resource exhausted.","status":"RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(
            v(&from_google_error(g).unwrap()),
            json!({"type":"error","error":{"type":"rate_limit_error","message":"RESOURCE_EXHAUSTED: Resource exhausted."}})
        );
        assert_eq!(from_google_error(b"not json"), None);
    }
}
