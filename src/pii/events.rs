//! The response side for streams: restoring stand-ins in a client-dialect SSE stream, event
//! by event, with the streaming [`Restorer`] per text stream.
//!
//! A text stream is one place deltas accumulate: an OpenAI choice's `content`,
//! `reasoning_content`/`reasoning`/`refusal` or one tool call's `arguments`; an Anthropic
//! content block's `text` or `partial_json`; a Responses item's `delta`. Each has its own
//! restorer (arguments read as JSON text, see [`Mode`]), so a stand-in split across deltas (or
//! reads) is restored, and a delta holds back only a stand-in's first bytes.
//!
//! A delta whose text is all held back says nothing and is not sent (unless it carries
//! something else: a role, a tool call's id and name, a finish reason, usage). What is held
//! comes out in the text's next delta, or before any event that is not a delta (a block's
//! stop, a finish chunk, `[DONE]`) in a delta of its own, a copy of the text's last delta with
//! just that text; a chunk that finishes a choice carries its texts' held bytes itself. So
//! nothing is lost, order is kept, and the stream's end flushes everything. Responses deltas
//! are the exception: each carries a `sequence_number` the next events count on, so an empty
//! one is still sent; and a copy takes the number after the last one written, the events
//! after it moving up by one (see `Numbering`).
//!
//! Anthropic thinking is restored like text when the set can seal (see `thinking`): its
//! deltas through a recording restorer, and the block's `signature_delta` (which follows its
//! thinking deltas) replaced by a seal once anything in the block was restored; a block that
//! changed and ends with no signature of its own (a translated stream's) gets a
//! `signature_delta` before its `content_block_stop`. Without a key, thinking passes as the
//! provider wrote it (see `body::SIGNED`). Other events are restored whole, string by string
//! (`document`; an OpenAI chunk's `thinking_blocks` too).
//!
//! Events are re-serialised only when they carry a delta; others are copied as they came
//! (restored in place).

use std::sync::Arc;

use serde_json::Value;

use super::restore::Mode;
use super::{thinking, RestoreSet, Restorer};
use crate::format::Format;
use crate::json::tree;

/// One text stream: its key, restorer and, while it holds bytes back, the last delta event
/// it came in (the copy a flush sends).
struct Text {
    key: String,
    restorer: Restorer,
    event: Option<Vec<u8>>,
    template: Value,
    path: Vec<PathStep>,
    /// An Anthropic thinking block's text: its signature is sealed once it changed.
    thinking: Option<Thinking>,
}

/// The signature side of one streamed thinking block.
#[derive(Debug, Default)]
struct Thinking {
    /// The block's `index`.
    index: u64,
    /// The signature its `content_block_start` carried (empty in practice): sealed when the
    /// block ends without a `signature_delta`.
    start_signature: String,
    /// A seal has been sent for it.
    signed: bool,
}

/// Most text streams restored in one stream. A provider sends one per choice, content block,
/// tool call or item: a few, at most a few hundred (`n` choices with parallel tool calls).
/// Past this, a new text's deltas pass unrestored (the client sees stand-ins, never more
/// than the provider sent): a hostile stream with a new index per chunk costs bounded memory
/// and constant work per event.
pub const MAX_TEXT_STREAMS: usize = 1024;

#[derive(Clone, Debug)]
enum PathStep {
    Key(&'static str),
    Index(usize),
}

/// One delta text slot of an event: its stream key, where it is, how it reads.
struct Slot {
    key: String,
    path: Vec<PathStep>,
    mode: Mode,
    /// An Anthropic `thinking_delta`'s text (only seen when the set can seal).
    thinking: bool,
}

/// Restores stand-ins in one stream of client-dialect events.
pub struct EventRestorer {
    set: Arc<RestoreSet>,
    format: Format,
    texts: Vec<Text>,
    /// `texts` by key.
    index: std::collections::HashMap<String, usize>,
    /// Indexes of the texts holding bytes back: a flush looks only at these.
    holding: Vec<usize>,
    numbering: Numbering,
}

/// Responses events carry a `sequence_number`; a held text flushed in a delta of its own is
/// an event the provider did not number. It takes the number after the last one written, and
/// every later event moves up by the count of such deltas, so the client still reads unique,
/// increasing numbers. Until the first one nothing is renumbered (no event is touched).
#[derive(Debug, Default)]
struct Numbering {
    /// Deltas of held text written so far.
    added: u64,
    /// The last number written. Read from deltas and renumbered events only: a text is held
    /// only after a delta, and any other event (but a `ping`, which Responses streams do not
    /// send) flushes it before it is written, so at a flush the last numbered event written
    /// is a delta.
    last: Option<u64>,
}

const SEQUENCE: &str = "sequence_number";

impl std::fmt::Debug for EventRestorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRestorer")
            .field("texts", &self.texts.len())
            .finish()
    }
}

/// OpenAI delta fields that carry text.
const OPENAI_TEXT: &[&str] = &["content", "reasoning_content", "reasoning", "refusal"];
/// Anthropic delta fields that carry text the restorer may change (`thinking` is signed).
const ANTHROPIC_TEXT: &[&str] = &["text", "partial_json"];
/// Anthropic delta types that are part of a signed thinking block.
const ANTHROPIC_SIGNED_DELTAS: &[&str] = &["thinking_delta", "signature_delta"];

impl EventRestorer {
    /// A restorer for a stream the client reads in `format`.
    pub fn new(set: Arc<RestoreSet>, format: Format) -> EventRestorer {
        EventRestorer {
            set,
            format,
            texts: Vec::new(),
            index: std::collections::HashMap::new(),
            holding: Vec::new(),
            numbering: Numbering::default(),
        }
    }

    /// One event (`event:` name, `data:` payload): its restored form, framed, into `out`.
    pub fn on_event(&mut self, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
        let mut tree: Option<Value> = serde_json::from_slice(data).ok();
        let sealing = self.sealing();
        if sealing {
            if let Some(t) = tree.as_mut() {
                if self.thinking_event(event, t, out) {
                    return;
                }
            }
        } else if tree.as_ref().is_some_and(|t| signed_delta(self.format, t)) {
            self.flush(out);
            write_event(out, event, data);
            return;
        }
        let slots = tree
            .as_ref()
            .map(|t| delta_slots(self.format, t, sealing))
            .unwrap_or_default();
        if slots.is_empty() {
            // A keep-alive (`ping`) says nothing and ends no text: what is held stays held, or a
            // stand-in split around one would reach the client unrestored.
            if event != Some(b"ping".as_slice()) {
                self.flush(out);
            }
            let mut restored = self.set.restore_document(data);
            if self.format == Format::Responses && self.numbering.added > 0 {
                restored = self.numbering.shift_bytes(restored);
            }
            write_event(out, event, &restored);
            return;
        }
        let Some(tree) = tree.as_mut() else { return };
        if finishes(self.format, tree) {
            // Texts of this chunk end with it (below); any other held text came before it.
            self.flush_except(out, &slots);
        }
        let mut emptied = false;
        for slot in slots {
            let i = match self.index.get(&slot.key) {
                Some(&i) => i,
                None if self.texts.len() >= MAX_TEXT_STREAMS => continue,
                None => {
                    let i = self.texts.len();
                    self.index.insert(slot.key.clone(), i);
                    let (restorer, thinking) = if slot.thinking {
                        let index = tree.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let t = Thinking {
                            index,
                            ..Thinking::default()
                        };
                        (thinking::restorer(self.set.clone()), Some(t))
                    } else {
                        (Restorer::with_mode(self.set.clone(), slot.mode), None)
                    };
                    self.texts.push(Text {
                        key: slot.key,
                        restorer,
                        event: None,
                        template: Value::Null,
                        path: slot.path.clone(),
                        thinking,
                    });
                    i
                }
            };
            let Some(text) = self.texts.get_mut(i) else {
                continue;
            };
            let ends = finishes_at(self.format, tree, &slot.path);
            if let Some(v) = at_path(tree, &slot.path) {
                let piece = v.as_str().unwrap_or_default().as_bytes().to_vec();
                let mut restored = text.restorer.push(&piece);
                if ends {
                    text.restorer.finish_into(&mut restored);
                }
                emptied |= !piece.is_empty() && restored.is_empty();
                *v = Value::String(String::from_utf8_lossy(&restored).into_owned());
            }
            // Only a text holding bytes back needs its event kept for a flush (a copy per
            // event for every text was the cost of a stream with many texts).
            if text.restorer.held() > 0 {
                text.event = event.map(<[u8]>::to_vec);
                text.template = tree.clone();
                if !self.holding.contains(&i) {
                    self.holding.push(i);
                }
            }
        }
        if self.format == Format::Responses {
            self.numbering.shift(tree);
        }
        if emptied && says_nothing(self.format, tree) {
            // All of its text is held back: it comes out with the text's next delta, or in a
            // delta of its own before the next other event.
            return;
        }
        let data = serde_json::to_vec(tree).unwrap_or_default();
        write_event(out, event, &data);
    }

    /// Sends every held-back piece in a delta of its own (end of stream, or a non-delta
    /// event coming).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.flush_except(out, &[]);
    }

    /// The stream's end: everything held back, and a seal for every restored thinking block
    /// the stream cut before its signature (the client must not hold restored text under the
    /// provider's signature, or nothing at all).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
        for i in 0..self.texts.len() {
            self.sign(i, None, out);
        }
    }

    /// Are Anthropic thinking blocks restored (and their signatures sealed)?
    fn sealing(&self) -> bool {
        self.format == Format::Anthropic && self.set.seal_key().is_some()
    }

    /// The start, signature and stop of an Anthropic thinking block (only when sealing).
    /// `true` when the event was written here.
    fn thinking_event(
        &mut self,
        event: Option<&[u8]>,
        tree: &mut Value,
        out: &mut Vec<u8>,
    ) -> bool {
        let index = tree.get("index").and_then(Value::as_u64).unwrap_or(0);
        // Built only for the events looked at here, not for every text delta.
        let key = || format!("b{index}.thinking");
        match tree.get("type").and_then(Value::as_str) {
            Some("content_block_start") => {
                let block = tree.get("content_block");
                if block.and_then(|b| b.get("type")).and_then(Value::as_str) != Some("thinking") {
                    return false;
                }
                self.flush(out);
                let text = block
                    .and_then(|b| b.get("thinking"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let start_signature = block
                    .and_then(|b| b.get("signature"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if self.texts.len() >= MAX_TEXT_STREAMS && !self.index.contains_key(&key()) {
                    write_event(out, event, &serde_json::to_vec(tree).unwrap_or_default());
                    return true;
                }
                let mut restorer = thinking::restorer(self.set.clone());
                let restored = restorer.push(text.as_bytes());
                let held = restorer.held() > 0;
                let key = key();
                let t = Text {
                    key: key.clone(),
                    restorer,
                    // What a flush of the start's held bytes sends: a thinking delta.
                    event: held.then(|| b"content_block_delta".to_vec()),
                    template: serde_json::json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": ""}}),
                    path: vec![PathStep::Key("delta"), PathStep::Key("thinking")],
                    thinking: Some(Thinking {
                        index,
                        start_signature,
                        signed: false,
                    }),
                };
                let i = match self.index.get(&key) {
                    Some(&i) => {
                        // An index used again starts a new block.
                        if let Some(slot) = self.texts.get_mut(i) {
                            *slot = t;
                        }
                        i
                    }
                    None => {
                        self.index.insert(key, self.texts.len());
                        self.texts.push(t);
                        self.texts.len() - 1
                    }
                };
                if held && !self.holding.contains(&i) {
                    self.holding.push(i);
                }
                if let Some(v) = tree
                    .get_mut("content_block")
                    .and_then(|b| b.get_mut("thinking"))
                {
                    *v = Value::String(String::from_utf8_lossy(&restored).into_owned());
                }
                write_event(out, event, &serde_json::to_vec(tree).unwrap_or_default());
                true
            }
            Some("content_block_delta")
                if tree.pointer("/delta/type").and_then(Value::as_str)
                    == Some("signature_delta") =>
            {
                // Its thinking's held bytes come first: the seal covers all of the text.
                self.flush(out);
                let provider = tree
                    .pointer("/delta/signature")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match self.index.get(&key()).copied() {
                    Some(i) => self.sign(i, Some((event, tree, &provider)), out),
                    None => write_event(out, event, &serde_json::to_vec(tree).unwrap_or_default()),
                }
                true
            }
            Some("content_block_stop") => {
                if let Some(&i) = self.index.get(&key()) {
                    self.flush(out);
                    self.sign(i, None, out);
                }
                false
            }
            _ => false,
        }
    }

    /// Sends thinking text `i`'s signature: the provider's `signature_delta` (`given`) with a
    /// seal in it when the text changed, else as the provider sent it; without one, a
    /// `signature_delta` of its own when the text changed and none was sent yet.
    fn sign(
        &mut self,
        i: usize,
        given: Option<(Option<&[u8]>, &mut Value, &str)>,
        out: &mut Vec<u8>,
    ) {
        let Some(key) = self.set.seal_key().cloned() else {
            return;
        };
        let Some(text) = self.texts.get_mut(i) else {
            return;
        };
        let Some(state) = text.thinking.as_mut() else {
            if let Some((event, tree, _)) = given {
                write_event(out, event, &serde_json::to_vec(tree).unwrap_or_default());
            }
            return;
        };
        let changed = text.restorer.changed();
        let (event, mut tree, provider) = match given {
            Some((event, tree, provider)) => (event, Some(tree), provider.to_owned()),
            None if changed && !state.signed => (None, None, state.start_signature.clone()),
            None => return,
        };
        if changed {
            if text.restorer.cut_short() && !state.signed {
                self.set.note_cut_short();
            }
            // Only a failed random source makes a seal fail. The text already went out
            // restored, so the provider's signature must not go with it: an empty one makes
            // the block's text be substituted when it comes back (see `body::signed_members`;
            // the provider then refuses it), rather than sent with originals in it.
            let sealed = thinking::seal(&key, &provider, &text.restorer).unwrap_or_else(|| {
                self.set.note_cut_short();
                String::new()
            });
            state.signed = true;
            let mut own = serde_json::json!({"type": "content_block_delta",
                "index": state.index, "delta": {"type": "signature_delta", "signature": ""}});
            let tree = tree.get_or_insert(&mut own);
            if let Some(v) = tree.pointer_mut("/delta/signature") {
                *v = Value::String(sealed);
            }
            let data = serde_json::to_vec(&**tree).unwrap_or_default();
            write_event(out, event.or(Some(b"content_block_delta")), &data);
            return;
        }
        if let Some(tree) = tree {
            write_event(out, event, &serde_json::to_vec(tree).unwrap_or_default());
        }
    }

    /// [`EventRestorer::flush`] for every text but those of `keep`.
    fn flush_except(&mut self, out: &mut Vec<u8>, keep: &[Slot]) {
        let holding = std::mem::take(&mut self.holding);
        let sealing = self.sealing();
        for i in holding {
            let Some(t) = self.texts.get_mut(i) else {
                continue;
            };
            if keep.iter().any(|s| s.key == t.key) {
                self.holding.push(i);
                continue;
            }
            let event = t.event.take();
            let template = std::mem::take(&mut t.template);
            let held = t.restorer.finish();
            if held.is_empty() {
                continue;
            }
            let mut tree = template;
            // The copy carries only this text: every other delta text in it is emptied, and
            // what its first delta announced (role, a tool call's id and name) is not repeated.
            for slot in delta_slots(self.format, &tree, sealing) {
                if let Some(v) = at_path(&mut tree, &slot.path) {
                    *v = Value::String(String::new());
                }
            }
            strip_announcements(self.format, &mut tree);
            if let Some(slot) = at_path(&mut tree, &t.path) {
                *slot = Value::String(String::from_utf8_lossy(&held).into_owned());
            }
            if self.format == Format::Responses {
                self.numbering.next(&mut tree);
            }
            let data = serde_json::to_vec(&tree).unwrap_or_default();
            write_event(out, event.as_deref(), &data);
        }
    }
}

impl Numbering {
    /// A provider's event: its number moved up past the deltas added before it.
    fn shift(&mut self, tree: &mut Value) {
        let Some(n) = tree.get(SEQUENCE).and_then(Value::as_u64) else {
            return;
        };
        let n = n.saturating_add(self.added);
        if let Some(v) = tree.get_mut(SEQUENCE) {
            *v = Value::from(n);
        }
        self.last = Some(n);
    }

    /// A delta the restorer added (a copy of one of the text's): the number after the last.
    fn next(&mut self, tree: &mut Value) {
        let Some(v) = tree.get_mut(SEQUENCE) else {
            return;
        };
        let n = self.last.map_or(0, |l| l.saturating_add(1));
        *v = Value::from(n);
        self.last = Some(n);
        self.added = self.added.saturating_add(1);
    }

    /// [`Numbering::shift`] for an event that is not re-serialised: only its number's bytes
    /// are replaced. Left as it is when it is not a JSON object with a whole number there.
    fn shift_bytes(&mut self, data: Vec<u8>) -> Vec<u8> {
        let Some(tree::Node::Object(entries)) = tree::parse(&data) else {
            return data;
        };
        let span = entries.iter().find_map(|e| match &e.value {
            tree::Node::Scalar(span) if e.key == SEQUENCE => Some(span.clone()),
            _ => None,
        });
        let Some(span) = span else { return data };
        let Some(n) = data
            .get(span.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return data;
        };
        let n = n.saturating_add(self.added);
        self.last = Some(n);
        let mut out = Vec::with_capacity(data.len() + 4);
        out.extend_from_slice(data.get(..span.start).unwrap_or_default());
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(data.get(span.end..).unwrap_or_default());
        out
    }
}

/// An Anthropic thinking or signature delta: passed on as the provider wrote it.
fn signed_delta(format: Format, tree: &Value) -> bool {
    format == Format::Anthropic
        && tree.get("type").and_then(Value::as_str) == Some("content_block_delta")
        && tree
            .get("delta")
            .and_then(|d| d.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| ANTHROPIC_SIGNED_DELTAS.contains(&t))
}

/// Does this OpenAI chunk finish a choice (a Gemini chunk a candidate)?
fn finishes(format: Format, tree: &Value) -> bool {
    let (list, key) = match format {
        Format::OpenAi => ("choices", "finish_reason"),
        Format::Gemini => ("candidates", "finishReason"),
        Format::Anthropic | Format::Responses => return false,
    };
    tree.get(list)
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| !null(c.get(key))))
}

/// Does the choice the slot at `path` belongs to finish in this chunk?
fn finishes_at(format: Format, tree: &Value, path: &[PathStep]) -> bool {
    match (format, path) {
        (Format::OpenAi, [PathStep::Key("choices"), PathStep::Index(ci), ..]) => !null(
            tree.get("choices")
                .and_then(|c| c.get(*ci))
                .and_then(|c| c.get("finish_reason")),
        ),
        (Format::Gemini, [PathStep::Key("candidates"), PathStep::Index(ci), ..]) => !null(
            tree.get("candidates")
                .and_then(|c| c.get(*ci))
                .and_then(|c| c.get("finishReason")),
        ),
        _ => false,
    }
}

fn null(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

fn empty_or_null(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("")
}

/// Once its delta texts are empty, does the event carry nothing a client needs?
fn says_nothing(format: Format, tree: &Value) -> bool {
    match format {
        // A content_block_delta carries one delta and its index, nothing more.
        Format::Anthropic => true,
        // The numbering of Responses events must not skip (see the module doc); a Gemini
        // chunk also says usage and the model's version.
        Format::Responses | Format::Gemini => false,
        Format::OpenAi => {
            let call_empty = |call: &Value| {
                call.as_object().is_some_and(|o| {
                    o.iter().all(|(k, v)| match k.as_str() {
                        "index" => true,
                        "function" => v.as_object().is_some_and(|f| {
                            f.iter().all(|(fk, fv)| {
                                fv.is_null() || (fk == "arguments" && empty_or_null(fv))
                            })
                        }),
                        _ => v.is_null(),
                    })
                })
            };
            let delta_empty = |d: &Value| {
                d.as_object().is_some_and(|o| {
                    o.iter().all(|(k, v)| {
                        v.is_null()
                            || (OPENAI_TEXT.contains(&k.as_str()) && empty_or_null(v))
                            || (k == "tool_calls"
                                && v.as_array().is_some_and(|cs| cs.iter().all(call_empty)))
                    })
                })
            };
            null(tree.get("usage"))
                && tree
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter().all(|c| {
                            null(c.get("finish_reason"))
                                && null(c.get("logprobs"))
                                && c.get("delta").is_none_or(delta_empty)
                        })
                    })
        }
    }
}

/// Removes from a copied OpenAI chunk what only its first delta says: the role, a tool call's
/// id, type and name (clients join names across deltas), and usage.
fn strip_announcements(format: Format, tree: &mut Value) {
    if format != Format::OpenAi {
        return;
    }
    if let Some(usage) = tree.get_mut("usage") {
        *usage = Value::Null;
    }
    let choices = tree.get_mut("choices").and_then(Value::as_array_mut);
    for c in choices.into_iter().flatten() {
        let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) else {
            continue;
        };
        delta.remove("role");
        let calls = delta.get_mut("tool_calls").and_then(Value::as_array_mut);
        for call in calls.into_iter().flatten() {
            if let Some(call) = call.as_object_mut() {
                call.remove("id");
                call.remove("type");
                if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                    f.remove("name");
                }
            }
        }
    }
}

/// The text-delta slots of one event.
fn delta_slots(format: Format, tree: &Value, thinking: bool) -> Vec<Slot> {
    use PathStep::{Index, Key};
    let mut found = Vec::new();
    match format {
        Format::OpenAi => {
            let Some(choices) = tree.get("choices").and_then(Value::as_array) else {
                return found;
            };
            for (ci, c) in choices.iter().enumerate() {
                let n = c.get("index").and_then(Value::as_u64).unwrap_or(ci as u64);
                let Some(delta) = c.get("delta") else {
                    continue;
                };
                for f in OPENAI_TEXT {
                    if delta.get(*f).is_some_and(Value::is_string) {
                        found.push(Slot {
                            key: format!("c{n}.{f}"),
                            path: vec![Key("choices"), Index(ci), Key("delta"), Key(f)],
                            mode: Mode::Text,
                            thinking: false,
                        });
                    }
                }
                let calls = delta.get("tool_calls").and_then(Value::as_array);
                for (ti, call) in calls.into_iter().flatten().enumerate() {
                    let tn = call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(ti as u64);
                    if call
                        .get("function")
                        .and_then(|f| f.get("arguments"))
                        .is_some_and(Value::is_string)
                    {
                        let path = vec![
                            Key("choices"),
                            Index(ci),
                            Key("delta"),
                            Key("tool_calls"),
                            Index(ti),
                            Key("function"),
                            Key("arguments"),
                        ];
                        found.push(Slot {
                            key: format!("c{n}.t{tn}"),
                            path,
                            mode: Mode::Json,
                            thinking: false,
                        });
                    }
                }
            }
        }
        Format::Anthropic => {
            if tree.get("type").and_then(Value::as_str) != Some("content_block_delta") {
                return found;
            }
            let n = tree.get("index").and_then(Value::as_u64).unwrap_or(0);
            let fields = ANTHROPIC_TEXT.iter().chain(thinking.then_some(&"thinking"));
            for f in fields {
                if tree
                    .get("delta")
                    .and_then(|d| d.get(*f))
                    .is_some_and(Value::is_string)
                {
                    found.push(Slot {
                        key: format!("b{n}.{f}"),
                        path: vec![Key("delta"), Key(f)],
                        mode: if *f == "partial_json" {
                            Mode::Json
                        } else {
                            Mode::Text
                        },
                        thinking: *f == "thinking",
                    });
                }
            }
        }
        Format::Gemini => {
            // Text (and thought) parts continue one another across chunks, per candidate; a
            // function call comes whole in one chunk, its arguments an object.
            let candidates = tree.get("candidates").and_then(Value::as_array);
            for (ci, c) in candidates.into_iter().flatten().enumerate() {
                let n = c.get("index").and_then(Value::as_u64).unwrap_or(ci as u64);
                let parts = c
                    .get("content")
                    .and_then(|c| c.get("parts"))
                    .and_then(Value::as_array);
                for (pi, part) in parts.into_iter().flatten().enumerate() {
                    if !part.get("text").is_some_and(Value::is_string) {
                        continue;
                    }
                    let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
                    if thought && !thinking {
                        continue;
                    }
                    found.push(Slot {
                        key: format!("g{n}.{}", if thought { "thought" } else { "text" }),
                        path: vec![
                            Key("candidates"),
                            Index(ci),
                            Key("content"),
                            Key("parts"),
                            Index(pi),
                            Key("text"),
                        ],
                        mode: Mode::Text,
                        thinking: thought,
                    });
                }
            }
        }
        Format::Responses => {
            let ty = tree.get("type").and_then(Value::as_str).unwrap_or_default();
            if ty.ends_with(".delta") && tree.get("delta").is_some_and(Value::is_string) {
                let part = |k: &str| tree.get(k).map(Value::to_string).unwrap_or_default();
                let key = format!(
                    "{ty}:{}:{}:{}:{}",
                    part("item_id"),
                    part("output_index"),
                    part("content_index"),
                    part("summary_index")
                );
                let mode = if ty.contains("arguments") {
                    Mode::Json
                } else {
                    Mode::Text
                };
                found.push(Slot {
                    key,
                    path: vec![Key("delta")],
                    mode,
                    thinking: false,
                });
            }
        }
    }
    found
}

fn at_path<'v>(tree: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(tree, |v, step| match step {
        PathStep::Key(k) => v.get_mut(*k),
        PathStep::Index(i) => v.get_mut(*i),
    })
}

/// One SSE event: an `event:` line when named, one `data:` line (JSON has no raw newlines;
/// anything else is split over `data:` lines), the blank line.
fn write_event(out: &mut Vec<u8>, event: Option<&[u8]>, data: &[u8]) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e);
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Decoder;

    fn set() -> (Arc<RestoreSet>, String) {
        let stand_in = "avery.thorne42@example.com".to_string();
        (
            RestoreSet::new([(stand_in.as_str(), "jane.doe@corp.example.io")]).unwrap(),
            stand_in,
        )
    }

    /// Runs events through, then collects every text of `field` from the output.
    fn run(
        format: Format,
        events: &[(Option<&str>, String)],
        pick: impl Fn(&Value) -> Option<String>,
    ) -> String {
        let (set, _) = set();
        let mut r = EventRestorer::new(set, format);
        let mut out = Vec::new();
        for (e, d) in events {
            r.on_event(e.map(str::as_bytes), d.as_bytes(), &mut out);
        }
        r.flush(&mut out);
        let mut dec = Decoder::new(1 << 20);
        dec.push(bytes::Bytes::from(out));
        let mut text = String::new();
        while let Ok(Some(ev)) = dec.next_event() {
            let data = ev.data.unwrap();
            if let Ok(v) = serde_json::from_slice::<Value>(&data) {
                text.push_str(&pick(&v).unwrap_or_default());
            }
        }
        text
    }

    /// A provider that opens a new choice in every chunk, each ending in a stand-in's first
    /// bytes: texts stop being tracked at the bound (their deltas pass as sent), only texts
    /// holding bytes are kept for a flush, and every held byte still comes out once.
    #[test]
    fn a_new_text_per_chunk_is_bounded() {
        let (set, s) = set();
        let mut r = EventRestorer::new(set, Format::OpenAi);
        let mut out = Vec::new();
        let n = MAX_TEXT_STREAMS + 500;
        for i in 0..n {
            let d = json_chunk(i, &s[..5]);
            r.on_event(None, d.as_bytes(), &mut out);
            assert!(r.texts.len() <= MAX_TEXT_STREAMS);
            assert!(r.holding.len() <= MAX_TEXT_STREAMS);
        }
        assert_eq!(r.texts.len(), MAX_TEXT_STREAMS);
        assert_eq!(
            r.holding.len(),
            MAX_TEXT_STREAMS,
            "each tracked text holds its 5 bytes"
        );
        r.flush(&mut out);
        assert!(r.holding.is_empty());
        let text = String::from_utf8(out).unwrap();
        // Every choice's 5 bytes reach the client exactly once: held ones at the flush,
        // untracked ones as they came.
        assert_eq!(text.matches(&s[..5]).count(), n);
    }

    fn json_chunk(index: usize, content: &str) -> String {
        serde_json::json!({"object": "chat.completion.chunk",
            "choices": [{"index": index, "delta": {"content": content}, "finish_reason": null}]})
        .to_string()
    }

    #[test]
    fn openai_content_and_tool_arguments_split_across_chunks() {
        let (_, s) = set();
        let (a, b) = s.split_at(7);
        let chunk = |delta: &str| {
            (
                None,
                format!(r#"{{"choices":[{{"index":0,"delta":{delta}}}]}}"#),
            )
        };
        let events = [
            chunk(&format!(r#"{{"content":"mail {a}"}}"#)),
            chunk(&format!(r#"{{"content":"{b} now"}}"#)),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\"to\":\"{a}"}}}}]}}"#
            )),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{b}\"}}"}}}}]}}"#
            )),
            chunk(r#"{"content":"mail avery"}"#),
            (
                None,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.into(),
            ),
        ];
        let content = run(Format::OpenAi, &events, |v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        });
        assert_eq!(content, "mail jane.doe@corp.example.io nowmail avery");
        let args = run(Format::OpenAi, &events, |v| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        });
        assert_eq!(args, r#"{"to":"jane.doe@corp.example.io"}"#);
    }

    #[test]
    fn anthropic_text_and_thinking_flush_before_stop() {
        let (_, s) = set();
        let (a, b) = s.split_at(3);
        let delta = |ty: &str, f: &str, t: &str| {
            (
                Some("content_block_delta"),
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{ty}","{f}":"{t}"}}}}"#
                ),
            )
        };
        let ping = (Some("ping"), r#"{"type":"ping"}"#.to_owned());
        let events = [
            delta("text_delta", "text", &format!("to {a}")),
            // A keep-alive between the halves of a stand-in does not flush it unrestored.
            ping,
            delta("text_delta", "text", b),
            delta("text_delta", "text", " or avery.th"),
            (
                Some("content_block_stop"),
                r#"{"type":"content_block_stop","index":0}"#.into(),
            ),
        ];
        let text = run(Format::Anthropic, &events, |v| {
            v["delta"]["text"].as_str().map(str::to_owned)
        });
        assert_eq!(text, "to jane.doe@corp.example.io or avery.th");
    }

    #[test]
    fn responses_deltas_and_whole_texts() {
        let (_, s) = set();
        let (a, b) = s.split_at(10);
        let d = |t: &str| {
            (
                Some("response.output_text.delta"),
                format!(
                    r#"{{"type":"response.output_text.delta","item_id":"m1","output_index":0,"content_index":0,"delta":"{t}"}}"#
                ),
            )
        };
        let done = (
            Some("response.output_text.done"),
            format!(r#"{{"type":"response.output_text.done","text":"{s}"}}"#),
        );
        let events = [d(a), d(b), done];
        let deltas = run(Format::Responses, &events, |v| {
            v["delta"].as_str().map(str::to_owned)
        });
        assert_eq!(deltas, "jane.doe@corp.example.io");
        let whole = run(Format::Responses, &events, |v| {
            v["text"].as_str().map(str::to_owned)
        });
        assert_eq!(whole, "jane.doe@corp.example.io");
    }

    /// Every `data:` payload written, parsed.
    fn events_of(out: &[u8]) -> Vec<Value> {
        let mut dec = Decoder::new(1 << 20);
        dec.push(bytes::Bytes::from(out.to_vec()));
        let mut all = Vec::new();
        while let Ok(Some(ev)) = dec.next_event() {
            all.push(serde_json::from_slice(&ev.data.unwrap()).unwrap());
        }
        all
    }

    #[test]
    fn a_delta_all_held_back_is_not_sent_but_its_text_comes_out_in_order() {
        let (set, s) = set();
        let (a, b) = s.split_at(9);
        let chunk = |delta: &str| format!(r#"{{"choices":[{{"index":0,"delta":{delta}}}]}}"#);
        // OpenAI: a continuation chunk of arguments that is all held back says nothing; the
        // first one (id, name) and the role chunk say something even when their text is held.
        let mut r = EventRestorer::new(set.clone(), Format::OpenAi);
        let mut out = Vec::new();
        for d in [
            chunk(&format!(r#"{{"role":"assistant","content":"{a}"}}"#)),
            chunk(&format!(r#"{{"content":"{b} ok"}}"#)),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"id":"c1","type":"function","function":{{"name":"send","arguments":"{{\"to\":\"{a}"}}}}]}}"#
            )),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{}"}}}}]}}"#,
                &b[..2]
            )),
            chunk(&format!(
                r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"{}\"}}"}}}}]}}"#,
                &b[2..]
            )),
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#.to_owned(),
        ] {
            r.on_event(None, d.as_bytes(), &mut out);
        }
        r.flush(&mut out);
        let events = events_of(&out);
        assert_eq!(
            events.len(),
            5,
            "the held-back continuation is dropped: {events:?}"
        );
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], "");
        assert_eq!(
            events[1]["choices"][0]["delta"]["content"],
            "jane.doe@corp.example.io ok"
        );
        let call = &events[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (&call["id"], &call["function"]["name"]),
            (&"c1".into(), &"send".into())
        );
        let args: String = events
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, r#"{"to":"jane.doe@corp.example.io"}"#);
        assert_eq!(events[4]["choices"][0]["finish_reason"], "tool_calls");

        // Anthropic: the same for text and partial JSON deltas.
        let mut r = EventRestorer::new(set.clone(), Format::Anthropic);
        let mut out = Vec::new();
        let delta = |f: &str, ty: &str, t: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{ty}","{f}":"{t}"}}}}"#
            )
        };
        for d in [
            delta("text", "text_delta", a),
            delta("text", "text_delta", b),
            r#"{"type":"content_block_stop","index":0}"#.to_owned(),
            delta("text", "text_delta", &format!("to {a}")),
            r#"{"type":"content_block_stop","index":0}"#.to_owned(),
        ] {
            r.on_event(Some(b"content_block_delta"), d.as_bytes(), &mut out);
        }
        let events = events_of(&out);
        let texts: Vec<&str> = events
            .iter()
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        assert_eq!(texts, ["jane.doe@corp.example.io", "to ", a]);
        assert!(!texts.contains(&""), "{events:?}");
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[3]["delta"]["text"], a, "flushed before the stop");
        assert_eq!(events[4]["type"], "content_block_stop");
    }

    #[test]
    fn a_chunk_that_finishes_its_choice_carries_its_held_text() {
        let (set, s) = set();
        let (a, _) = s.split_at(9);
        let mut r = EventRestorer::new(set, Format::OpenAi);
        let mut out = Vec::new();
        let last = format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":"to {a}"}},"finish_reason":"stop"}}],"usage":{{"total_tokens":3}}}}"#
        );
        r.on_event(None, last.as_bytes(), &mut out);
        r.on_event(None, b"[DONE]", &mut out);
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 2, "{text}");
        let v: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], format!("to {a}"));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[1], "data: [DONE]");
    }

    /// The thinking blocks a client accumulates from an Anthropic stream, by index.
    fn thinking_blocks(events: &[Value]) -> Vec<Value> {
        let mut blocks: std::collections::BTreeMap<u64, Value> = Default::default();
        for e in events {
            let i = e["index"].as_u64().unwrap_or(0);
            match e["type"].as_str() {
                Some("content_block_start") if e["content_block"]["type"] == "thinking" => {
                    blocks.insert(i, e["content_block"].clone());
                }
                Some("content_block_delta") => {
                    let Some(b) = blocks.get_mut(&i) else {
                        continue;
                    };
                    if let Some(t) = e["delta"]["thinking"].as_str() {
                        b["thinking"] = (b["thinking"].as_str().unwrap().to_owned() + t).into();
                    }
                    if let Some(sig) = e["delta"]["signature"].as_str() {
                        b["signature"] = sig.into();
                    }
                }
                _ => {}
            }
        }
        blocks.into_values().collect()
    }

    #[test]
    fn streamed_thinking_is_restored_and_its_signature_sealed_for_any_split() {
        use crate::seal::SealKey;
        let key = SealKey::from_bytes(&[9; 32])
            .unwrap()
            .for_holder(crate::seal::Holder::Open);
        let stand_in = "avery.thorne42@example.com";
        let set = RestoreSet::sealing([(stand_in, "jane.doe@corp.example.io")], Some(key.clone()))
            .unwrap();
        let provider = format!("They wrote {stand_in}. I will answer {stand_in}");
        let start = |i: u64| {
            format!(
                r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"thinking","thinking":"","signature":""}}}}"#
            )
        };
        let delta = |i: u64, t: &str| {
            format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"thinking_delta","thinking":{}}}}}"#,
                serde_json::to_string(t).unwrap()
            )
        };
        let sig = |i: u64| {
            format!(
                r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"signature_delta","signature":"c2ln{i}"}}}}"#
            )
        };
        let stop = |i: u64| format!(r#"{{"type":"content_block_stop","index":{i}}}"#);
        for cut in (0..=provider.len()).step_by(3) {
            let (a, b) = provider.split_at(cut);
            // Block 0: the provider signs it; block 1: nothing to restore; block 2: a
            // translated stream's, with no signature of its own.
            let mut events = vec![start(0), delta(0, a), delta(0, b), sig(0), stop(0)];
            events.extend([start(1), delta(1, "plain"), sig(1), stop(1)]);
            events.extend([start(2), delta(2, a), delta(2, b), stop(2)]);
            let mut r = EventRestorer::new(set.clone(), Format::Anthropic);
            let mut out = Vec::new();
            for e in &events {
                r.on_event(Some(b"e"), e.as_bytes(), &mut out);
            }
            r.finish(&mut out);
            let got = events_of(&out);
            let blocks = thinking_blocks(&got);
            let restored = provider.replace(stand_in, "jane.doe@corp.example.io");
            assert_eq!(blocks[0]["thinking"], restored.as_str(), "cut {cut}");
            assert_eq!(blocks[2]["thinking"], restored.as_str(), "cut {cut}");
            assert_eq!(blocks[1]["signature"], "c2ln1", "unchanged: the provider's");
            // The signature comes before each block's stop, after all its text.
            let last = |i: u64, ty: &str| {
                got.iter()
                    .rposition(|e| {
                        e["index"] == i
                            && e.pointer("/delta/type")
                                .or(e.get("type"))
                                .and_then(Value::as_str)
                                == Some(ty)
                    })
                    .unwrap()
            };
            for i in [0, 2] {
                assert!(
                    last(i, "thinking_delta") < last(i, "signature_delta"),
                    "{got:?}"
                );
                assert_eq!(
                    last(i, "signature_delta") + 1,
                    last(i, "content_block_stop")
                );
            }
            // Sent back, each gives the provider its own text and signature.
            let body = serde_json::json!({"messages": [{"role": "assistant", "content": blocks}]});
            let back = crate::pii::unseal_body(body.to_string().as_bytes(), &key)
                .unwrap()
                .unwrap();
            let back: Value = serde_json::from_slice(&back).unwrap();
            let content = &back["messages"][0]["content"];
            assert_eq!(content[0]["thinking"], provider.as_str());
            assert_eq!(content[0]["signature"], "c2ln0");
            assert_eq!(content[1], blocks[1]);
            assert_eq!(content[2]["thinking"], provider.as_str());
            assert_eq!(content[2]["signature"], "");
        }
        // A stream cut before the block's signature still leaves the client a seal.
        let mut r = EventRestorer::new(set.clone(), Format::Anthropic);
        let mut out = Vec::new();
        for e in [start(0), delta(0, &provider[..40])] {
            r.on_event(Some(b"e"), e.as_bytes(), &mut out);
        }
        r.finish(&mut out);
        let blocks = thinking_blocks(&events_of(&out));
        assert!(SealKey::is_ours(blocks[0]["signature"].as_str().unwrap()));
    }

    #[test]
    fn anthropic_thinking_passes_as_the_provider_signed_it() {
        let (set, s) = set();
        let mut r = EventRestorer::new(set, Format::Anthropic);
        let mut out = Vec::new();
        let events = [
            format!(r#"{{"type":"content_block_start","index":0,"content_block":{{"type":"thinking","thinking":"{s}","signature":""}}}}"#),
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"thinking_delta","thinking":"mail {s}"}}}}"#),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}"#.to_owned(),
            format!(r#"{{"type":"content_block_delta","index":1,"delta":{{"type":"text_delta","text":"mail {s}"}}}}"#),
            r#"{"type":"content_block_stop","index":1}"#.to_owned(),
        ];
        for e in &events {
            r.on_event(Some(b"e"), e.as_bytes(), &mut out);
        }
        let got = events_of(&out);
        assert_eq!(got[0], serde_json::from_str::<Value>(&events[0]).unwrap());
        assert_eq!(got[1], serde_json::from_str::<Value>(&events[1]).unwrap());
        assert_eq!(got[2]["delta"]["signature"], "c2ln");
        let text: String = got
            .iter()
            .filter_map(|e| e["delta"]["text"].as_str())
            .collect();
        assert_eq!(text, "mail jane.doe@corp.example.io");
    }

    /// Cuts `text` at each of `at` (byte offsets, ascending).
    fn cut<'t>(text: &'t str, at: &[usize]) -> Vec<&'t str> {
        let mut pieces = Vec::new();
        let mut from = 0;
        for &i in at.iter().chain([text.len()].iter()) {
            pieces.push(&text[from..i]);
            from = i;
        }
        pieces
    }

    #[test]
    fn streamed_arguments_with_escapes_beside_a_stand_in_restore_in_every_dialect() {
        let (set, s) = set();
        // Arguments JSON text as an `ensure_ascii` writer streams it: the stand-in between two
        // escaped `é`, the deltas cut inside the escapes and inside the stand-in.
        let inner = format!(r#"{{"to":"\u00e9{s}\u00e9","cc":"\u0041{s}"}}"#);
        let want = serde_json::json!({"to": "éjane.doe@corp.example.ioé", "cc": format!("A{s}")});
        let start = inner.find(r"\u00e9").unwrap();
        let at = [
            start + 4,
            start + 9,
            start + 6 + s.len() + 3,
            inner.len() - 8,
        ];
        let pieces = cut(&inner, &at);
        // One arguments delta of each dialect, and where its text is.
        let event = |format: Format, p: &str| {
            let p = serde_json::to_string(p).unwrap();
            match format {
                Format::OpenAi => (
                    None,
                    format!(
                        r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{p}}}}}]}}}}]}}"#
                    ),
                ),
                Format::Anthropic => (
                    Some("content_block_delta"),
                    format!(
                        r#"{{"type":"content_block_delta","index":1,"delta":{{"type":"input_json_delta","partial_json":{p}}}}}"#
                    ),
                ),
                Format::Responses => (
                    Some("response.function_call_arguments.delta"),
                    format!(
                        r#"{{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":{p}}}"#
                    ),
                ),
                Format::Gemini => unreachable!("Gemini arguments arrive whole, never as deltas"),
            }
        };
        let cases = [
            (
                Format::OpenAi,
                "/choices/0/delta/tool_calls/0/function/arguments",
            ),
            (Format::Anthropic, "/delta/partial_json"),
            (Format::Responses, "/delta"),
        ];
        for (format, pointer) in cases {
            let mut r = EventRestorer::new(set.clone(), format);
            let mut out = Vec::new();
            for p in &pieces {
                let (e, d) = event(format, p);
                r.on_event(e.map(str::as_bytes), d.as_bytes(), &mut out);
            }
            r.on_event(
                Some(b"stop"),
                br#"{"type":"content_block_stop","index":1}"#,
                &mut out,
            );
            let args: String = events_of(&out)
                .iter()
                .filter_map(|e| {
                    e.pointer(pointer)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            let got: Value =
                serde_json::from_str(&args).unwrap_or_else(|e| panic!("{format:?}: {e}: {args}"));
            assert_eq!(got, want, "{format:?}: {args}");
        }
    }

    #[test]
    fn whole_arguments_with_escapes_beside_a_stand_in_restore_in_every_dialect() {
        let (set, s) = set();
        let inner = format!(r#"{{"to":"\u00e9{s}\u00e9","cc":"\u0041{s}"}}"#);
        let want = serde_json::json!({"to": "éjane.doe@corp.example.ioé", "cc": format!("A{s}")});
        let args = serde_json::to_string(&inner).unwrap();
        for (body, pointer) in [
            (
                format!(
                    r#"{{"choices":[{{"index":0,"message":{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"send","arguments":{args}}}}}]}}}}]}}"#
                ),
                "/choices/0/message/tool_calls/0/function/arguments",
            ),
            (
                format!(
                    r#"{{"object":"response","output":[{{"type":"function_call","id":"fc_1","call_id":"c","name":"send","arguments":{args}}}]}}"#
                ),
                "/output/0/arguments",
            ),
            (
                format!(
                    r#"{{"type":"response.function_call_arguments.done","sequence_number":7,"item_id":"fc_1","output_index":0,"arguments":{args}}}"#
                ),
                "/arguments",
            ),
            // Any text that is JSON reads the same way (an answer asked for as JSON).
            (
                format!(r#"{{"content":[{{"type":"text","text":{args}}}]}}"#),
                "/content/0/text",
            ),
        ] {
            let out = set.restore_document(body.as_bytes());
            let v: Value = serde_json::from_slice(&out).unwrap();
            let text = v.pointer(pointer).and_then(Value::as_str).unwrap();
            let got: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(got, want, "{body}");
        }
    }

    #[test]
    fn responses_sequence_numbers_stay_unique_and_increasing_when_held_text_is_flushed() {
        let (set, s) = set();
        let (a, b) = s.split_at(8);
        let ev = |ty: &str, rest: &str| (ty.to_owned(), format!(r#"{{"type":"{ty}",{rest}}}"#));
        let text = |n: u64, t: &str| {
            ev(
                "response.output_text.delta",
                &format!(
                    r#""sequence_number":{n},"item_id":"m1","output_index":0,"content_index":0,"delta":"{t}""#
                ),
            )
        };
        let args = |n: u64, t: &str| {
            ev(
                "response.function_call_arguments.delta",
                &format!(r#""sequence_number":{n},"item_id":"fc1","output_index":1,"delta":"{t}""#),
            )
        };
        let plain = |ty: &str, n: u64| ev(ty, &format!(r#""sequence_number":{n}"#));
        let events = [
            plain("response.created", 0),
            text(1, "mail "),
            text(2, a),
            text(3, &format!("{b} or {a}")),
            // Held: `a` comes out in a delta of its own before the done event.
            plain("response.output_text.done", 4),
            args(5, &format!(r#"{{\"to\":\"{a}"#)),
            args(6, &format!(r#"{b}\"}} {a}"#)),
            plain("response.function_call_arguments.done", 7),
            plain("response.completed", 8),
        ];
        // Whole, and cut short after an arguments delta (the held text is flushed at the end).
        for n in [events.len(), 7] {
            let mut r = EventRestorer::new(set.clone(), Format::Responses);
            let mut out = Vec::new();
            for (e, d) in &events[..n] {
                r.on_event(Some(e.as_bytes()), d.as_bytes(), &mut out);
            }
            r.flush(&mut out);
            let got = events_of(&out);
            let numbers: Vec<u64> = got
                .iter()
                .map(|e| e["sequence_number"].as_u64().unwrap())
                .collect();
            let want: Vec<u64> = (0..got.len() as u64).collect();
            assert_eq!(numbers, want, "one more event, numbered in turn: {got:?}");
            assert_eq!(got.len(), n + 2, "{got:?}");
            let joined = |ty: &str| -> String {
                got.iter()
                    .filter(|e| e["type"] == ty)
                    .filter_map(|e| e["delta"].as_str())
                    .collect()
            };
            assert_eq!(
                joined("response.output_text.delta"),
                format!("mail jane.doe@corp.example.io or {a}")
            );
            assert_eq!(
                joined("response.function_call_arguments.delta"),
                format!(r#"{{"to":"jane.doe@corp.example.io"}} {a}"#)
            );
        }
    }
}
