//! Opening the items this gateway sealed for a Responses client, where its request is admitted
//! and before PII substitution reads the body: what comes out of a seal then passes the same
//! substitution as the rest of the input, with the same stand-ins.
//!
//! - A `compaction` item becomes the user message every route sends in its place (the
//!   summary after [`COMPACTION_PREAMBLE`]). One that does not open under the request's key
//!   (another gateway key's, another server's, forged, cut) is a 400, the same for all.
//! - With PII on, a `reasoning` item whose thinking was written from input that was not
//!   substituted, and holds an entity, is taken out: its text goes back to the provider under
//!   its signature, so it cannot be substituted, and it may hold the client's originals.
//!   Thinking written from substituted input holds only stand-ins and stays. Reasoning that
//!   does not open is left to the translators, which drop it (as they drop a forged one).
//!
//! The rest of the body keeps its bytes: only the `input` arrays that change are written again.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::super::TranslateError;
use super::{SealedThinking, COMPACTION_PREAMBLE};
use crate::seal::{Purpose, SealKey};

/// What a client gets for a compaction item that does not open: one message whatever the
/// reason, so that it cannot tell another key's item from a forged one.
pub(crate) const UNOPENABLE_COMPACTION: &str = "this compaction item cannot be opened: it was not sealed by this gateway for this API key, or it was changed (gateway instances open each other's items only with the same [responses] seal_key_env)";

/// A body with its sealed items opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    /// The body as it goes on.
    pub body: Vec<u8>,
    /// Reasoning items were taken out (listed as `input.reasoning`).
    pub dropped_reasoning: bool,
}

/// The two members of an item read here.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    encrypted_content: Option<Cow<'a, str>>,
}

/// What becomes of one item.
enum Fate {
    Keep,
    Replace(Vec<u8>),
    Remove,
}

/// Opens the compaction items `key` sealed in `body`'s `input` (every `input` member, should
/// there be more than one) and, when `holds_entity` is given (PII on), takes out the reasoning
/// items whose thinking must not reach the provider. `Ok(None)`: nothing to do (the body goes
/// on as it is). A body whose `input` is not a readable array is left to the stages that read
/// it: none of them opens a compaction item.
///
/// Without `holds_entity`, a body in which no string token starts `"rw1.` as written is not
/// read: a compaction item of ours hidden behind an escape is then left sealed, and refused by
/// the translators and `native_request` (a client gains nothing by it). With it every body is
/// read, since the translators do open reasoning written with escapes.
pub fn open_sealed_items(
    body: &[u8],
    key: &SealKey,
    holds_entity: Option<&dyn Fn(&str) -> bool>,
) -> Result<Option<Opened>, TranslateError> {
    if holds_entity.is_none() && !crate::seal::may_hold_seal(body) {
        return Ok(None);
    }
    let Some(members) = crate::json::members(body) else {
        return Ok(None);
    };
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    let mut dropped_reasoning = false;
    for m in members.iter().filter(|m| m.key == "input") {
        let Some(Ok(items)) = body
            .get(m.value.clone())
            .map(serde_json::from_slice::<Vec<&RawValue>>)
        else {
            continue;
        };
        let mut fates = Vec::with_capacity(items.len());
        for (i, raw) in items.iter().enumerate() {
            let fate = fate(i, raw, key, holds_entity)?;
            dropped_reasoning |= matches!(fate, Fate::Remove);
            fates.push(fate);
        }
        if fates.iter().all(|f| matches!(f, Fate::Keep)) {
            continue;
        }
        let mut array = Vec::with_capacity(m.value.len());
        array.push(b'[');
        for (raw, fate) in items.iter().zip(&fates) {
            let bytes = match fate {
                Fate::Keep => raw.get().as_bytes(),
                Fate::Replace(new) => new.as_slice(),
                Fate::Remove => continue,
            };
            if array.len() > 1 {
                array.push(b',');
            }
            array.extend_from_slice(bytes);
        }
        array.push(b']');
        edits.push((m.value.clone(), array));
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for (span, new) in &edits {
        // Members come in body order and apart.
        out.extend_from_slice(body.get(at..span.start).unwrap_or_default());
        out.extend_from_slice(new);
        at = span.end;
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    Ok(Some(Opened {
        body: out,
        dropped_reasoning,
    }))
}

/// What becomes of item `i`.
fn fate(
    i: usize,
    raw: &RawValue,
    key: &SealKey,
    holds_entity: Option<&dyn Fn(&str) -> bool>,
) -> Result<Fate, TranslateError> {
    // An item that does not read as one (a duplicate member) is refused by the translators;
    // a native provider is never sent a compaction item of ours (`native_request`).
    let Ok(item) = serde_json::from_str::<Item<'_>>(raw.get()) else {
        return Ok(Fate::Keep);
    };
    let Some(sealed) = item.encrypted_content.filter(|s| SealKey::is_ours(s)) else {
        return Ok(Fate::Keep);
    };
    match item.kind.as_deref() {
        Some("compaction" | "compaction_summary") => {
            let summary = key
                .open(Purpose::Compaction, &sealed)
                .and_then(|plain| String::from_utf8(plain).ok())
                .ok_or_else(|| {
                    TranslateError::invalid(
                        format!("input[{i}].encrypted_content"),
                        UNOPENABLE_COMPACTION,
                    )
                })?;
            let mut text = String::with_capacity(COMPACTION_PREAMBLE.len() + summary.len());
            text.push_str(COMPACTION_PREAMBLE);
            text.push_str(&summary);
            let mut new = Vec::with_capacity(text.len() + 48);
            new.extend_from_slice(br#"{"type":"message","role":"user","content":"#);
            crate::json::write_json_string(&mut new, &text);
            new.push(b'}');
            Ok(Fate::Replace(new))
        }
        Some("reasoning") => {
            let Some(holds_entity) = holds_entity else {
                return Ok(Fate::Keep);
            };
            let thinking = key
                .open(Purpose::Reasoning, &sealed)
                .and_then(|plain| serde_json::from_slice::<SealedThinking>(&plain).ok());
            let unsafe_text = thinking.is_some_and(|b| {
                !b.x && b.k == "thinking" && b.t.as_deref().is_some_and(holds_entity)
            });
            Ok(if unsafe_text {
                Fate::Remove
            } else {
                Fate::Keep
            })
        }
        _ => Ok(Fate::Keep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Holder;
    use serde_json::{json, Value};

    fn key(holder: u8) -> SealKey {
        SealKey::from_bytes(&[4; 32])
            .unwrap()
            .for_holder(Holder::Key([holder; 32]))
    }

    fn thinking(k: &SealKey, text: &str, x: bool) -> String {
        let plain = serde_json::to_vec(&SealedThinking {
            p: "p".into(),
            k: "thinking".into(),
            t: Some(text.into()),
            s: Some("sig".into()),
            d: None,
            x,
        })
        .unwrap();
        k.seal(Purpose::Reasoning, &plain).unwrap()
    }

    #[test]
    fn compaction_items_open_into_the_summary_and_only_for_their_holder() {
        let a = key(1);
        let summary = a
            .seal(Purpose::Compaction, b"mail jane@corp.example")
            .unwrap();
        let body = format!(
            r#"{{"model":"m", "seed": 123456789012345678901234567890,"input":[ {{"role":"user","content":"a"}} ,{{"type":"compaction","encrypted_content":"{summary}"}},{{"type":"compaction","encrypted_content":"gAAAA-theirs"}}],"temperature":0.10000000000000000001}}"#
        );
        let out = open_sealed_items(body.as_bytes(), &a, None)
            .unwrap()
            .unwrap();
        assert!(!out.dropped_reasoning);
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(
            v["input"][1],
            json!({"type": "message", "role": "user",
                "content": format!("{COMPACTION_PREAMBLE}mail jane@corp.example")})
        );
        assert_eq!(v["input"][2]["encrypted_content"], "gAAAA-theirs");
        // Every byte outside `input` is kept.
        let text = String::from_utf8(out.body).unwrap();
        assert!(text.starts_with(
            r#"{"model":"m", "seed": 123456789012345678901234567890,"input":[{"role":"user","content":"a"},{"type":"message","#
        ));
        assert!(text.ends_with(r#"],"temperature":0.10000000000000000001}"#));
        // Another holder and a forged item get the same error.
        let b_err = open_sealed_items(body.as_bytes(), &key(2), None).unwrap_err();
        // The last character changed, whatever it was (a fixed replacement is sometimes the
        // same character: the test then passed a seal that was not forged).
        let last = if summary.ends_with('A') { 'B' } else { 'A' };
        let forged = body.replace(
            &summary,
            &format!("{}{last}", &summary[..summary.len() - 1]),
        );
        let forged_err = open_sealed_items(forged.as_bytes(), &a, None).unwrap_err();
        assert_eq!(b_err, forged_err);
        assert_eq!(b_err.param.as_deref(), Some("input[1].encrypted_content"));
        // Nothing sealed: nothing done.
        assert_eq!(
            open_sealed_items(br#"{"input":[{"role":"user","content":"rw1"}]}"#, &a, None),
            Ok(None)
        );
    }

    #[test]
    fn reasoning_written_from_originals_is_taken_out_only_with_pii_on() {
        let a = key(1);
        let has_at = |t: &str| t.contains('@');
        let body = |items: Vec<Value>| json!({"model": "m", "input": items}).to_string();
        let plain = thinking(&a, "write to jane@corp.example", false);
        let substituted = thinking(&a, "write to avery@example.com", true);
        let harmless = thinking(&a, "nothing personal", false);
        let other = thinking(&key(2), "write to jane@corp.example", false);
        let items = vec![
            json!({"role": "user", "content": "q"}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": plain}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": substituted}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": harmless}),
            json!({"type": "reasoning", "summary": [], "encrypted_content": other}),
        ];
        let b = body(items.clone());
        assert_eq!(open_sealed_items(b.as_bytes(), &a, None), Ok(None));
        let out = open_sealed_items(b.as_bytes(), &a, Some(&has_at))
            .unwrap()
            .unwrap();
        assert!(out.dropped_reasoning);
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["input"], json!([items[0], items[2], items[3], items[4]]));
        // The translators read `encrypted_content` decoded: so is the screen, whether or not
        // the body holds a seal as written.
        let only = body(vec![items[0].clone(), items[1].clone()]);
        let escaped = only.replace(&format!("\"{plain}"), &format!("\"\\u0072{}", &plain[1..]));
        assert!(!crate::seal::may_hold_seal(escaped.as_bytes()));
        let out = open_sealed_items(escaped.as_bytes(), &a, Some(&has_at))
            .unwrap()
            .unwrap();
        assert!(out.dropped_reasoning);
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["input"], json!([items[0]]));
    }
}
