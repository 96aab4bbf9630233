//! Responses input items read straight from their JSON, for the items an agent sends every
//! turn (messages of text, function calls, their outputs as strings, reasoning it cannot have
//! sealed here): spans of the body, no typed item in between, each string to be written as
//! the client's bytes (`request.rs` writes them as Chat, or hands them on to the Messages
//! translator as the Chat pieces the typed items make). Anything else, and anything the
//! typed reading would read otherwise (an escape that may be a `\u`, a key twice, `null`
//! where a value is written), is left to the typed translation, whose bytes these are: a test
//! in `translate_golden.rs` and the fuzz target `translate_req_responses` compare the two.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::Tokens;
use crate::translate::direct::{kept_string, key, plain_string};
use crate::translate::util::openai_tool_name;

/// What an item is, as `request::Reading::item` tells them apart.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    #[default]
    Message,
    /// `function_call`.
    Call,
    /// `function_call_output`.
    Output,
    /// `reasoning` with no sealed content (nothing is written for it).
    Reasoning,
}

/// A message's role, as Chat has it (`developer` is a system message).
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Role {
    #[default]
    User,
    System,
    Assistant,
}

/// One item, read: spans of the text (quoted string tokens).
#[derive(Default)]
pub(super) struct Item {
    pub(super) kind: Kind,
    pub(super) role: Role,
    /// A message's content as one string.
    pub(super) text: Option<Range<usize>>,
    /// A message's content as text parts: each part's text (None: it has none).
    pub(super) parts: Vec<Option<Range<usize>>>,
    /// The content was an array (of `parts`).
    pub(super) in_parts: bool,
    pub(super) call_id: Option<Range<usize>>,
    pub(super) name: Option<Range<usize>>,
    pub(super) arguments: Option<Range<usize>>,
    pub(super) output: Option<Range<usize>>,
}

impl Item {
    /// A message's texts: its parts' texts, or its one string (none when it has neither).
    pub(super) fn texts(&self) -> &[Option<Range<usize>>] {
        if self.in_parts {
            &self.parts
        } else if self.text.is_some() {
            std::slice::from_ref(&self.text)
        } else {
            &[]
        }
    }
}

/// The members of an item the typed reading knows, one bit each (a second of one is left to
/// it, which refuses it).
const TYPE: u16 = 1;
const ROLE: u16 = 1 << 1;
const CONTENT: u16 = 1 << 2;
const ID: u16 = 1 << 3;
const CALL_ID: u16 = 1 << 4;
const NAME: u16 = 1 << 5;
const ARGUMENTS: u16 = 1 << 6;
const INPUT: u16 = 1 << 7;
const OUTPUT: u16 = 1 << 8;
const SUMMARY: u16 = 1 << 9;
const ENCRYPTED_CONTENT: u16 = 1 << 10;

/// Reads the item `text` (checked JSON: a span of the body, for admission's notes to be used)
/// into `item` (cleared first); None where it is not a shape taken here.
pub(super) fn read(text: &str, item: &mut Item) -> Option<()> {
    item.text = None;
    item.parts.clear();
    item.in_parts = false;
    item.call_id = None;
    item.name = None;
    item.arguments = None;
    item.output = None;
    let mut t = Tokens::new(text, 0);
    let (mut seen, mut kind, mut role) = (0u16, None, None);
    // Every content part is a text part.
    let mut texts = true;
    t.object(|t, k| {
        let bit = match key(t, &k)? {
            b"type" => {
                let r = plain_string(t)?;
                kind = Some(match t.bytes().get(r)? {
                    b"\"message\"" => Kind::Message,
                    b"\"function_call\"" => Kind::Call,
                    b"\"function_call_output\"" => Kind::Output,
                    b"\"reasoning\"" => Kind::Reasoning,
                    _ => return None,
                });
                TYPE
            }
            b"role" => {
                let r = plain_string(t)?;
                role = Some(match t.bytes().get(r)? {
                    b"\"user\"" => Role::User,
                    b"\"system\"" | b"\"developer\"" => Role::System,
                    b"\"assistant\"" => Role::Assistant,
                    _ => return None,
                });
                ROLE
            }
            b"content" => {
                match t.peek()? {
                    b'n' => t.word(b"null")?,
                    b'"' => item.text = Some(kept_string(t)?),
                    _ => {
                        item.in_parts = true;
                        t.array(|t| {
                            let p = part(t)?;
                            texts &= p.is_text;
                            item.parts.push(p.text);
                            Some(())
                        })?
                    }
                }
                CONTENT
            }
            b"id" => {
                nullable(t)?;
                ID
            }
            b"call_id" => {
                item.call_id = Some(kept_string(t)?);
                CALL_ID
            }
            b"name" => {
                item.name = Some(plain_string(t)?);
                NAME
            }
            b"arguments" => {
                item.arguments = Some(kept_string(t)?);
                ARGUMENTS
            }
            b"input" => {
                nullable(t)?;
                INPUT
            }
            b"output" => {
                // Parts (an image among them) are the typed translation's.
                item.output = Some(kept_string(t)?);
                OUTPUT
            }
            b"summary" => {
                if t.peek()? == b'n' {
                    t.word(b"null")?;
                } else {
                    t.array(|t| part(t).map(drop))?;
                }
                SUMMARY
            }
            b"encrypted_content" => {
                // Sealed reasoning is opened typed (for this provider, or listed as dropped).
                t.word(b"null")?;
                ENCRYPTED_CONTENT
            }
            // `namespace` (a flattened name) and the rest the typed reading knows.
            b"namespace" => return None,
            _ => {
                // Not an item's field: the typed reading passes over it. Only a flat value, so
                // that no nesting is crossed here that the readers' depth limits would refuse.
                unknown(t)?;
                return Some(());
            }
        };
        (seen & bit == 0).then_some(())?;
        seen |= bit;
        Some(())
    })?;
    // A message may go without its type; nothing else may.
    item.kind = match (kind, role) {
        (Some(k), _) => k,
        (None, Some(_)) => Kind::Message,
        (None, None) => return None,
    };
    match item.kind {
        Kind::Message => {
            item.role = role?;
            // An assistant's refusal part, an image or a file: the typed translation's.
            texts.then_some(())?;
        }
        Kind::Call => {
            item.call_id.as_ref()?;
            let name = item.name.clone()?;
            let inside = t.text(name.start + 1..name.end - 1)?;
            // A name shortened for OpenAI is recorded: left to the typed translation.
            matches!(openai_tool_name(inside), Cow::Borrowed(_)).then_some(())?;
        }
        Kind::Output => {
            item.call_id.as_ref()?;
        }
        Kind::Reasoning => {}
    }
    Some(())
}

/// A string the typed reading keeps, or `null`.
fn nullable(t: &mut Tokens<'_>) -> Option<()> {
    if t.peek()? == b'n' {
        return t.word(b"null");
    }
    kept_string(t).map(drop)
}

/// A value of a member the typed reading passes over: a scalar or an empty container.
fn unknown(t: &mut Tokens<'_>) -> Option<()> {
    let r = t.value()?;
    match t.bytes().get(r.start)? {
        b'{' | b'[' => (r.len() == 2).then_some(()),
        _ => Some(()),
    }
}

/// A content part, read.
struct Part {
    /// `input_text`, `output_text` or `text`.
    is_text: bool,
    text: Option<Range<usize>>,
}

/// The members of a part the typed reading knows (`wire::responses::Part`), one bit each.
const PART_KEYS: [&[u8]; 9] = [
    b"type",
    b"text",
    b"refusal",
    b"image_url",
    b"detail",
    b"file_id",
    b"file_data",
    b"filename",
    b"file_url",
];

/// One content part (of a message or a summary): each member the typed reading knows a string
/// it keeps (`null` for all but the type), once.
fn part(t: &mut Tokens<'_>) -> Option<Part> {
    let mut p = Part {
        is_text: false,
        text: None,
    };
    let mut seen = 0u16;
    t.object(|t, k| {
        let name = key(t, &k)?;
        let Some(at) = PART_KEYS.iter().position(|known| *known == name) else {
            return unknown(t);
        };
        let bit = 1u16 << at;
        (seen & bit == 0).then_some(())?;
        seen |= bit;
        match at {
            0 => {
                let r = plain_string(t)?;
                p.is_text = matches!(
                    t.bytes().get(r)?,
                    b"\"input_text\"" | b"\"output_text\"" | b"\"text\""
                );
            }
            1 if t.peek()? == b'"' => p.text = Some(kept_string(t)?),
            _ => nullable(t)?,
        }
        Some(())
    })?;
    // The type is the only member a part cannot go without (an empty one is refused).
    (seen & 1 != 0).then_some(p)
}
