//! Messages turns written as Chat messages straight from their JSON, for the shapes an agent
//! sends every turn (text, tool calls, their results, thinking): no typed tree in between,
//! every string written as the client's bytes. Anything else, and anything the typed reading
//! would read otherwise (an escape that may be a `\u`, a key twice, `null`), is left to the
//! typed translation (`request.rs`), whose bytes these are: a test in `translate_golden.rs`
//! and the fuzz target `translate_req_a2o` compare the two.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::{Token, Tokens};
use crate::translate::direct::{kept_string, key, plain_string, present};
use crate::translate::out::Out;
use crate::translate::util::{compact_json, openai_tool_name};
use crate::translate::TranslateError;

/// What one turn holds, as spans of the text (quoted string tokens, an `input` value).
#[derive(Default)]
pub(super) struct Turn {
    role: Role,
    /// The content as one string, or (None) as `pieces`.
    text: Option<Range<usize>>,
    pieces: Vec<Piece>,
    /// Fields the translation drops, in the order the typed scan meets them.
    pub(super) dropped: Vec<&'static str>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Role {
    #[default]
    User,
    Assistant,
}

enum Piece {
    /// A text block's text.
    Text(Range<usize>),
    /// A tool result: the call answered, and its text (None: empty).
    Result {
        id: Range<usize>,
        text: Option<Range<usize>>,
    },
    /// A tool call: id, name and `input` (None: absent).
    Call {
        id: Range<usize>,
        name: Range<usize>,
        input: Option<Range<usize>>,
    },
    /// A thinking block: nothing written (an assistant's), or an error (a user's).
    Thinking,
}

/// The members a block may have here, one bit each (a second of one is left to the typed
/// reading, which refuses it).
const TYPE: u16 = 1;
const TEXT: u16 = 1 << 1;
const ID: u16 = 1 << 2;
const NAME: u16 = 1 << 3;
const INPUT: u16 = 1 << 4;
const TOOL_USE_ID: u16 = 1 << 5;
const CONTENT: u16 = 1 << 6;
const IS_ERROR: u16 = 1 << 7;
const CACHE_CONTROL: u16 = 1 << 8;
const CALLER: u16 = 1 << 9;
const THINKING: u16 = 1 << 10;
const SIGNATURE: u16 = 1 << 11;
const DATA: u16 = 1 << 12;

/// Dropped wherever they sit (see `request::walk`).
const DROPPED: u16 = CACHE_CONTROL | CALLER;

/// One block's members, read.
#[derive(Default)]
struct Block {
    seen: u16,
    kind: Range<usize>,
    text: Option<Range<usize>>,
    id: Option<Range<usize>>,
    name: Option<Range<usize>>,
    input: Option<Range<usize>>,
    tool_use_id: Option<Range<usize>>,
    /// A tool result's content: its one text (None: none, or an empty array).
    content: Option<Range<usize>>,
    /// Dropped fields of the blocks inside `content`, in order.
    inner_dropped: Vec<&'static str>,
}

impl Block {
    fn kind<'t>(&self, text: &'t [u8]) -> &'t [u8] {
        text.get(self.kind.clone()).unwrap_or_default()
    }

    /// Its own dropped fields, then those inside it, as `request::walk` notes them.
    fn note_dropped(&self, dropped: &mut Vec<&'static str>) {
        for (bit, name) in [(CACHE_CONTROL, "cache_control"), (CALLER, "caller")] {
            if self.seen & bit != 0 {
                note(dropped, name);
            }
        }
        for name in &self.inner_dropped {
            note(dropped, name);
        }
    }
}

fn note(dropped: &mut Vec<&'static str>, name: &'static str) {
    if !dropped.contains(&name) {
        dropped.push(name);
    }
}

/// Reads the turn `text` (checked JSON: a span of the body, for admission's notes to be
/// used) into `turn` (cleared first); None where it is not a shape taken here.
pub(super) fn read(text: &str, turn: &mut Turn) -> Option<()> {
    turn.text = None;
    turn.pieces.clear();
    turn.dropped.clear();
    let mut t = Tokens::new(text, 0);
    let (mut role, mut content) = (None, false);
    t.object(|t, k| match key(t, &k)? {
        b"role" if role.is_none() => {
            let r = plain_string(t)?;
            role = Some(match t.bytes().get(r)? {
                b"\"user\"" => Role::User,
                b"\"assistant\"" => Role::Assistant,
                _ => return None,
            });
            Some(())
        }
        b"content" if !content => {
            content = true;
            if t.peek()? == b'"' {
                // A string with an escape is left typed: where serde_json did the reading
                // (the fast reader refused something elsewhere in the body), it decodes the
                // string and escapes it again (`\/` becomes `/`).
                turn.text = Some(plain_string(t)?);
                return Some(());
            }
            // The role may come after the content: blocks are read as either's, and sorted
            // once the role is known.
            t.array(|t| block(t, turn))
        }
        _ => None,
    })?;
    turn.role = role?;
    content.then_some(())?;
    if turn.text.is_some() {
        return Some(());
    }
    for p in &turn.pieces {
        let fits = matches!(
            (turn.role, p),
            (_, Piece::Text(_))
                | (Role::User, Piece::Result { .. })
                | (Role::Assistant, Piece::Call { .. } | Piece::Thinking)
        );
        if !fits {
            return None;
        }
    }
    if turn.role == Role::Assistant
        && turn
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Text(_)))
            .count()
            > 1
    {
        // Texts joined: left to the typed join, which reads escapes across their seams.
        return None;
    }
    Some(())
}

/// One content block: a piece of the turn.
fn block(t: &mut Tokens<'_>, turn: &mut Turn) -> Option<()> {
    let mut b = Block::default();
    members(t, &mut b, u16::MAX)?;
    let text = t.bytes();
    // The members besides those every block may have.
    let rest = b.seen & !(TYPE | DROPPED);
    let piece = match b.kind(text) {
        b"\"text\"" if rest == TEXT => Piece::Text(b.text.clone()?),
        b"\"tool_result\"" if rest & !(CONTENT | IS_ERROR) == TOOL_USE_ID => Piece::Result {
            id: b.tool_use_id.clone()?,
            text: b.content.clone(),
        },
        b"\"tool_use\"" if rest & !INPUT == ID | NAME => {
            let name = b.name.clone()?;
            let inside = t.text(name.start + 1..name.end - 1)?;
            // A name shortened for OpenAI is recorded: left to the typed translation.
            matches!(openai_tool_name(inside), Cow::Borrowed(_)).then_some(())?;
            Piece::Call {
                id: b.id.clone()?,
                name,
                input: b.input.clone(),
            }
        }
        b"\"thinking\"" | b"\"redacted_thinking\""
            if rest & !(THINKING | SIGNATURE | DATA) == 0 =>
        {
            Piece::Thinking
        }
        _ => return None,
    };
    b.note_dropped(&mut turn.dropped);
    turn.pieces.push(piece);
    Some(())
}

/// The members of the block at the walk read into `b`: each once, each of `allowed`.
fn members(t: &mut Tokens<'_>, b: &mut Block, allowed: u16) -> Option<()> {
    t.object(|t, k| {
        let bit = member(t, &k, b)?;
        (b.seen & bit == 0 && allowed & bit != 0).then_some(())?;
        b.seen |= bit;
        Some(())
    })
}

/// One member of a block read into `b`: its bit.
fn member(t: &mut Tokens<'_>, k: &Token, b: &mut Block) -> Option<u16> {
    let bit = match key(t, k)? {
        b"type" => {
            b.kind = plain_string(t)?;
            TYPE
        }
        b"text" => {
            b.text = Some(kept_string(t)?);
            TEXT
        }
        b"id" => {
            b.id = Some(kept_string(t)?);
            ID
        }
        b"name" => {
            b.name = Some(plain_string(t)?);
            NAME
        }
        b"input" => {
            // An object: another value is the typed translation's to write.
            (t.peek()? == b'{').then_some(())?;
            b.input = Some(t.value()?);
            INPUT
        }
        b"tool_use_id" => {
            b.tool_use_id = Some(kept_string(t)?);
            TOOL_USE_ID
        }
        b"content" => {
            b.content = result_content(t, &mut b.inner_dropped)?;
            CONTENT
        }
        b"is_error" => {
            // A failed tool's result is written with a prefix: the typed translation's.
            t.word(b"false")?;
            IS_ERROR
        }
        b"cache_control" => {
            present(t)?;
            CACHE_CONTROL
        }
        b"caller" => {
            present(t)?;
            CALLER
        }
        b"thinking" => {
            kept_string(t)?;
            THINKING
        }
        b"signature" => {
            kept_string(t)?;
            SIGNATURE
        }
        b"data" => {
            kept_string(t)?;
            DATA
        }
        _ => return None,
    };
    Some(bit)
}

/// A tool result's content: a string, or an array of at most one text block. Its text (None
/// when there is none).
fn result_content(
    t: &mut Tokens<'_>,
    dropped: &mut Vec<&'static str>,
) -> Option<Option<Range<usize>>> {
    if t.peek()? == b'"' {
        return kept_string(t).map(Some);
    }
    let mut text = None;
    let mut count = 0usize;
    t.array(|t| {
        count += 1;
        if count > 1 {
            // Texts joined with newlines: the typed translation's.
            return None;
        }
        let mut b = Block::default();
        members(t, &mut b, TYPE | TEXT | DROPPED)?;
        (b.kind(t.bytes()) == b"\"text\"").then_some(())?;
        text = Some(b.text.clone()?);
        b.note_dropped(dropped);
        Some(())
    })?;
    Some(text)
}

/// Writes the turn `read` took as Chat messages, each followed by a comma, as the typed
/// translation writes them. `scratch` is a buffer kept between turns.
pub(super) fn write(
    turn: &Turn,
    text: &str,
    out: &mut Out<'_>,
    scratch: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    crate::translate::direct::count();
    let span = |r: &Range<usize>| text.as_bytes().get(r.clone()).unwrap_or(b"\"\"");
    let role: &[u8] = match turn.role {
        Role::User => b"{\"role\":\"user\",\"content\":",
        Role::Assistant => b"{\"role\":\"assistant\",\"content\":",
    };
    if let Some(t) = &turn.text {
        out.put(role)?;
        out.put(span(t))?;
        return out.put(b"},");
    }
    match turn.role {
        Role::User => {
            // Tool results first, in order; then the turn's own text, one string or parts.
            for p in &turn.pieces {
                if let Piece::Result { id, text } = p {
                    out.put(b"{\"role\":\"tool\",\"content\":")?;
                    out.put(text.as_ref().map_or(b"\"\"", span))?;
                    out.put(b",\"tool_call_id\":")?;
                    out.put(span(id))?;
                    out.put(b"},")?;
                }
            }
            let texts = || {
                turn.pieces.iter().filter_map(|p| match p {
                    Piece::Text(r) => Some(r),
                    _ => None,
                })
            };
            match texts().count() {
                0 => {}
                1 => {
                    out.put(role)?;
                    for r in texts() {
                        out.put(span(r))?;
                    }
                    out.put(b"},")?;
                }
                _ => {
                    out.put(role)?;
                    out.put(b"[")?;
                    for (i, r) in texts().enumerate() {
                        out.put(if i == 0 {
                            &b"{\"type\":\"text\",\"text\":"[..]
                        } else {
                            &b",{\"type\":\"text\",\"text\":"[..]
                        })?;
                        out.put(span(r))?;
                        out.put(b"}")?;
                    }
                    out.put(b"]},")?;
                }
            }
        }
        Role::Assistant => {
            let mut said = None;
            let mut calls = 0usize;
            for p in &turn.pieces {
                match p {
                    Piece::Text(r) => said = Some(r),
                    Piece::Call { .. } => calls += 1,
                    Piece::Result { .. } | Piece::Thinking => {}
                }
            }
            if said.is_none() && calls == 0 {
                return Ok(());
            }
            out.put(b"{\"role\":\"assistant\"")?;
            if let Some(r) = said {
                out.put(b",\"content\":")?;
                out.put(span(r))?;
            }
            if calls > 0 {
                out.put(b",\"tool_calls\":[")?;
                let mut first = true;
                for p in &turn.pieces {
                    let Piece::Call { id, name, input } = p else {
                        continue;
                    };
                    out.put(if first {
                        &b"{\"id\":"[..]
                    } else {
                        &b",{\"id\":"[..]
                    })?;
                    first = false;
                    out.put(span(id))?;
                    out.put(b",\"type\":\"function\",\"function\":{\"name\":")?;
                    out.put(span(name))?;
                    out.put(b",\"arguments\":")?;
                    let input = input
                        .as_ref()
                        .and_then(|r| text.get(r.clone()))
                        .unwrap_or("{}");
                    scratch.clear();
                    crate::json::write_json_string(scratch, &compact_json(input));
                    out.put(scratch)?;
                    out.put(b"}}")?;
                }
                out.put(b"]")?;
            }
            out.put(b"},")?;
        }
    }
    Ok(())
}
