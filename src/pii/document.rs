//! The answer side for whole JSON documents (a non-streaming body, an event that is not a
//! delta): stand-ins restored string by string.
//!
//! Each string is decoded before it is searched, so an escape next to a stand-in
//! (`\u00e9avery…`, `\u0022avery…`) is read as the character it stands for, and only the
//! strings that changed are written back; every other byte is the provider's. Tool-call
//! arguments, and any other string whose text is JSON, are restored reading their own escapes
//! too ([`Mode::Json`]).
//!
//! A signed thinking block's text is restored only when the set can seal (see `thinking`):
//! its signature is then replaced by a seal that lets the provider get its own text back.
//! Without a key, and always for `redacted_thinking`, the block stays as the provider wrote
//! it. Opaque values the client hands back (signatures, sealed content, ids) are never
//! searched. A body that is not JSON (an error page) is restored as text.

use std::ops::Range;
use std::sync::Arc;

use crate::json::tree::{self, Node};

use super::body::SIGNED;
use super::restore::{Mode, RestoreSet};
use super::thinking;
use crate::seal::SealKey;

/// Keys whose string value is JSON text.
const JSON_TEXT_KEYS: &[&str] = &["arguments", "partial_json"];

/// Keys whose values are tokens the client hands back as they are, never text.
const OPAQUE_KEYS: &[&str] = &[
    "signature",
    "encrypted_content",
    "id",
    "call_id",
    "tool_use_id",
    "tool_call_id",
];

impl RestoreSet {
    /// A whole JSON document (`body`) with its stand-ins restored; text when it is not JSON.
    pub fn restore_document(self: &Arc<Self>, body: &[u8]) -> Vec<u8> {
        restore(self, body)
    }
}

fn restore(set: &Arc<RestoreSet>, body: &[u8]) -> Vec<u8> {
    let Some(root) = tree::parse(body) else {
        return set.restore_all(body);
    };
    let mut edits = Vec::new();
    visit(set, body, &root, Mode::Text, false, &mut edits);
    let edits: Vec<(Range<usize>, &str)> =
        edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
    // The spans come from this body, in order: splicing cannot fail.
    tree::splice_strings(body, &edits).unwrap_or_else(|| body.to_vec())
}

/// `free`: inside a tool call's `input`, the model's data, where every string is content.
fn visit(
    set: &Arc<RestoreSet>,
    body: &[u8],
    node: &Node,
    mode: Mode,
    free: bool,
    edits: &mut Vec<(Range<usize>, String)>,
) {
    match node {
        Node::Str(span) => restore_string(set, body, span, mode, edits),
        Node::Array(items) => items
            .iter()
            .for_each(|i| visit(set, body, i, Mode::Text, free, edits)),
        Node::Object(entries) => {
            let kind = |names: &[&str]| {
                entries
                    .iter()
                    .filter(|e| e.key == "type")
                    .filter_map(|e| e.value.as_str(body))
                    .any(|t| names.contains(&t.as_ref()))
            };
            if !free && kind(SIGNED) {
                if let Some(key) = set.seal_key() {
                    thinking_block(set, key, body, entries, edits);
                }
                return;
            }
            let tool_use = kind(&["tool_use", "server_tool_use"]);
            for e in entries {
                restore_string(set, body, &e.key_span, Mode::Text, edits);
                let k = e.key();
                if free || (k == "input" && tool_use) {
                    visit(set, body, &e.value, Mode::Text, true, edits);
                } else if !OPAQUE_KEYS.contains(&k) {
                    let mode = if JSON_TEXT_KEYS.contains(&k) {
                        Mode::Json
                    } else {
                        Mode::Text
                    };
                    visit(set, body, &e.value, mode, false, edits);
                }
            }
        }
        Node::Scalar(_) => {}
    }
}

/// A `thinking` block (every `type` it has says so, with one `thinking` text and one
/// `signature`): its text restored and its signature sealed, when anything was restored.
fn thinking_block(
    set: &Arc<RestoreSet>,
    key: &SealKey,
    body: &[u8],
    entries: &[tree::Entry],
    edits: &mut Vec<(Range<usize>, String)>,
) {
    let types = || {
        entries
            .iter()
            .filter(|e| e.key == "type")
            .map(|e| e.value.as_str(body))
    };
    if !types().all(|t| t.as_deref() == Some("thinking")) {
        return;
    }
    let member = |name: &str| {
        let mut found = entries.iter().filter(|e| e.key == name);
        match (found.next().map(|e| &e.value), found.next()) {
            (Some(Node::Str(span)), None) => {
                Some((span.clone(), tree::decode(body, span.clone())?))
            }
            _ => None,
        }
    };
    let (Some((text_span, text)), Some((sig_span, signature))) =
        (member("thinking"), member("signature"))
    else {
        return;
    };
    let Some((restored, sealed)) = thinking::restore_block(set, key, &text, &signature) else {
        return;
    };
    // Edits go in body order.
    let mut pair = [(text_span, restored), (sig_span, sealed)];
    pair.sort_by_key(|(r, _)| r.start);
    edits.extend(pair);
}

fn restore_string(
    set: &Arc<RestoreSet>,
    body: &[u8],
    span: &Range<usize>,
    mode: Mode,
    edits: &mut Vec<(Range<usize>, String)>,
) {
    // A string that does not decode (a lone surrogate) is left as it came.
    let Some(text) = tree::decode(body, span.clone()) else {
        return;
    };
    if !set.may_hold(text.as_bytes()) {
        return;
    }
    // Any string whose text is JSON (a tool's result, an answer asked for as JSON) is read
    // with its own escapes, like arguments: a stand-in after `\u00e9` is then seen as after
    // `é`, not after the letter `9`.
    let mode = if mode == Mode::Text && is_json_text(&text) {
        Mode::Json
    } else {
        mode
    };
    let restored = set.restore_with(text.as_bytes(), mode);
    if restored != text.as_bytes() {
        // Originals replace whole stand-ins (ASCII): the result is UTF-8.
        if let Ok(restored) = String::from_utf8(restored) {
            edits.push((span.clone(), restored));
        }
    }
}

/// Is `text` a JSON object or array? Only those carry escapes of their own worth reading;
/// checked only for strings that may hold a stand-in.
fn is_json_text(text: &str) -> bool {
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    (start.starts_with('{') || start.starts_with('[')) && tree::parse(text.as_bytes()).is_some()
}
