//! A Responses request bound for a provider with native Responses: items this gateway sealed
//! mean nothing there. Reasoning it sealed (another provider's thinking) is dropped and listed;
//! a compaction it made was opened into the summary it holds, as a user message, where the
//! request was admitted (`open_sealed_items`), and one still sealed here is refused.
//! Everything else passes unchanged.

use serde_json::{Map, Value};

use super::super::TranslateError;
use crate::seal::SealKey;

/// A rewritten body and the parameters dropped from it.
pub type Rewritten = (Vec<u8>, Vec<&'static str>);

/// The body for a native provider when it carries items this gateway sealed, with `model` set
/// to `upstream_model`, and what was dropped; None when there are none (the body is then
/// spliced as it is, the common case, decided by one scan for the seal prefix).
pub fn native_request(
    body: &[u8],
    upstream_model: &str,
) -> Result<Option<Rewritten>, TranslateError> {
    if !crate::seal::may_hold_seal(body) {
        return Ok(None);
    }
    let mut v: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| TranslateError::invalid("input", format!("invalid JSON body: {e}")))?;
    let Some(Value::Array(items)) = v.get_mut("input") else {
        return Ok(None);
    };
    let ours = |item: &Value| {
        item.get("encrypted_content")
            .and_then(Value::as_str)
            .is_some_and(SealKey::is_ours)
    };
    if !items.iter().any(ours) {
        return Ok(None);
    }
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(items.len());
    for (i, item) in std::mem::take(items).into_iter().enumerate() {
        if !ours(&item) {
            kept.push(item);
            continue;
        }
        match item.get("type").and_then(Value::as_str) {
            Some("compaction" | "compaction_summary") => {
                return Err(TranslateError::invalid(
                    format!("input[{i}].encrypted_content"),
                    super::open::UNOPENABLE_COMPACTION,
                ));
            }
            _ => {
                if !dropped.contains(&"input.reasoning") {
                    dropped.push("input.reasoning");
                }
            }
        }
    }
    *items = kept;
    v.insert("model".into(), Value::String(upstream_model.to_owned()));
    let bytes = serde_json::to_vec(&v).map_err(|e| TranslateError::internal(e.to_string()))?;
    Ok(Some((bytes, dropped)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{Holder, Purpose};
    use serde_json::json;

    #[test]
    fn our_reasoning_is_dropped_a_sealed_compaction_refused_and_the_rest_passes() {
        let key = SealKey::from_bytes(&[5; 32])
            .unwrap()
            .for_holder(Holder::Open);
        let plain = br#"{"model":"r","input":[{"type":"reasoning","encrypted_content":"gAAAA"}]}"#;
        assert_eq!(native_request(plain, "up").unwrap(), None);
        let thinking = key.seal(Purpose::Reasoning, b"{}").unwrap();
        let body = json!({"model": "r", "store": false, "input": [
            {"role": "user", "content": "a"},
            {"type": "compaction", "encrypted_content": "gAAAA-their-compaction"},
            {"type": "reasoning", "summary": [], "encrypted_content": thinking},
            {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-theirs"},
            {"role": "user", "content": "b"}]});
        let (out, dropped) = native_request(body.to_string().as_bytes(), "up")
            .unwrap()
            .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["model"], "up");
        assert_eq!(out["store"], false);
        let input = out["input"].as_array().unwrap();
        assert_eq!(input.len(), 4);
        assert_eq!(input[1]["encrypted_content"], "gAAAA-their-compaction");
        assert_eq!(input[2]["encrypted_content"], "gAAAA-theirs");
        assert_eq!(dropped, ["input.reasoning"]);
        // A compaction of ours still sealed here (admission opens them): a 400 naming it.
        let body = json!({"model": "r", "input": [
            {"type": "compaction", "encrypted_content": key.seal(Purpose::Compaction, b"x").unwrap()}]});
        let e = native_request(body.to_string().as_bytes(), "up").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[0].encrypted_content"));
    }
}
