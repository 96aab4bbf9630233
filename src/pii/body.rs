//! The request side: substituting entities in a request body of any of the four dialects,
//! and taking the per-request `pii_substitution` flag out.
//!
//! The body is never re-serialised: its strings are located as byte spans (`json::tree`),
//! the conversation strings decoded and run through the session, and only the strings that
//! changed are written back, in place. Every other byte (numbers beyond 64 bits, decimals
//! with more digits than an f64 holds, key order, whitespace) reaches the provider as the
//! client wrote it.
//!
//! Which strings: every string whose text reaches the model or the provider's logs.
//! - Under the conversation keys (`messages`, `system`, `input`, `instructions`, `prompt`,
//!   `prediction`, Gemini's `contents` and `systemInstruction`), at any depth: system and user text, assistant text from earlier turns
//!   (restored for the client, so it must be substituted again: the same stand-in, by
//!   determinism), tool results, tool-call arguments (OpenAI's JSON-in-a-string and
//!   Anthropic's `input` object alike), a participant's `name`. Structural strings are skipped
//!   by key ([`SKIP_KEYS`]): ids, roles, types, names of tools, signatures, image data and
//!   URLs. In an assistant turn, the signed members of a thinking block are skipped (see
//!   [`SIGNED`]).
//! - The end user's identifiers (`user`, `safety_identifier`) and `metadata` values.
//! - In tool definitions and output schemas (`tools`, `functions`, `response_format`, `text`,
//!   `output_format`, `output_config`): descriptions, titles and the values a schema lists
//!   (`enum`, `const`, `default`, `examples`). Names, types and property names stay: the
//!   provider and the client's code must see them unchanged. Nothing echoes a description
//!   back, so its stand-ins are not restored anywhere.
//!
//! In data the client or the model wrote (a tool call's `input`, JSON text in a string), keys
//! are content like values: a map keyed by an address is the address.
//!
//! A string whose text is JSON (tool-call arguments, a tool result, Responses `arguments` and
//! `output`: recognised by content, not by key) is opened in turn: its strings, keys and
//! numbers are searched decoded, and only those that changed are written into it again (see
//! `Piece`). Text that starts like JSON but does not parse is searched as plain text.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::tree::{self, Entry, Node};
use crate::json::Splice;

use super::plain::Clear;
use super::{Session, Text};

/// The per-request switch, removed before the body goes upstream.
pub const FLAG: &str = "pii_substitution";

/// Top-level keys whose strings are conversation text (Gemini's system instruction in both
/// spellings its API takes).
const TEXT_ROOTS: &[&str] = &[
    "system",
    "instructions",
    "prompt",
    "prediction",
    "systemInstruction",
    "system_instruction",
];

/// Top-level keys holding the turns or items of a conversation (Gemini's `contents`).
const TURN_ROOTS: &[&str] = &["messages", "input", "contents"];

/// Top-level keys naming the end user to the provider (its abuse logs; translated to
/// Anthropic `metadata.user_id`).
const USER_ROOTS: &[&str] = &["user", "safety_identifier"];

/// Top-level keys whose every string reaches the provider as data the client wrote: stop
/// sequences (a stand-in stops the model where the original would, since the model writes
/// stand-ins), the prompt cache key, a web search's location. Keys in them are searched too.
const DATA_ROOTS: &[&str] = &[
    "stop",
    "stop_sequences",
    "prompt_cache_key",
    "web_search_options",
];

/// Top-level keys holding tool definitions or an output schema, read with [`walk_schema`].
const SCHEMA_ROOTS: &[&str] = &[
    "tools",
    "functions",
    "response_format",
    "text",
    "output_format",
    "output_config",
];

/// Block types whose text the provider signed: Anthropic `thinking` (text + `signature`) and
/// `redacted_thinking` (opaque `data`), in an Anthropic assistant turn or in the OpenAI
/// `thinking_blocks` extension that carries them verbatim.
///
/// Their signed members are never substituted: the provider checks the signature against
/// the text it wrote, so the text must reach it byte for byte as it was produced.
/// Re-substituting restored thinking text cannot give those bytes back in general: the model
/// may itself write an original or any other detectable value in its thinking (a phone number
/// it reasons about, a dictionary place), which substitution would then change and the
/// signature check would refuse. A block whose text the answer side restored carries a sealed
/// signature instead, and is given back its provider's exact text and signature before this
/// runs (`thinking::unseal_body`); any other block holds only what the provider wrote, so left
/// alone it leaks nothing. Its text is also kept out of the stand-in collision check, so the
/// stand-ins it mentions are drawn again for the same originals.
///
/// Only where such a block can be: an element of an assistant message's `content` or
/// `thinking_blocks` under `messages` (see [`signed_members`]). An object that merely says
/// `"type":"thinking"` anywhere else is searched like any other, since a translator that
/// drops the `type` would send its text as plain text.
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
    // Gemini's parts: the signature is the provider's, the rest locate media.
    "thoughtSignature",
    "thought_signature",
    "mimeType",
    "mime_type",
    "fileUri",
    "file_uri",
];

/// Why a body could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not a JSON object.
    NotObject,
    /// More than [`MAX_VALUES`] JSON values to search (JSON text inside strings included).
    TooManyValues,
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
    substitute_spliced(body, session).map(|(out, _)| out)
}

/// [`substitute`], also saying which tokens were rewritten and where they are now (in body
/// order): an inspection's notes of the body move with them (`json::StringSpans::spliced`).
pub fn substitute_spliced(
    body: &[u8],
    session: &mut Session<'_>,
) -> Result<(Vec<u8>, Vec<Splice>), BodyError> {
    let mut left = MAX_VALUES;
    let root = tree::parse_within(body, &mut left).ok_or(if left == 0 {
        BodyError::TooManyValues
    } else {
        BodyError::NotObject
    })?;
    let mut spans = Spans::default();
    walk(body, &root, &mut spans);
    drop(root);
    let mut pieces = Vec::with_capacity(spans.strings.len() + spans.numbers.len());
    let builtin_only = session.builtin_only();
    for span in spans.strings {
        if builtin_only {
            if let Some(token) = body.get(span.clone()) {
                if let Some(clear) = super::plain::cleared(session.scope(), token, escaped_text_len)
                {
                    pieces.push(Piece::escaped(span, token, clear));
                    continue;
                }
            }
        }
        // A validated body decodes; a string that does not must not go upstream unread.
        let text = tree::decode(body, span.clone()).ok_or(BodyError::NotObject)?;
        pieces.push(Piece::new(span, false, text, 0, &mut left)?);
    }
    for span in spans.numbers {
        let token = body
            .get(span.clone())
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or(BodyError::NotObject)?;
        pieces.push(Piece::new(span, true, Cow::Borrowed(token), 0, &mut left)?);
    }
    let mut texts = Vec::new();
    pieces.iter().for_each(|p| p.leaves(&mut texts));
    let mut results = session.substitute_texts(&texts).into_iter();
    // Every text was searched (none refused): a text without a new one holds no entity.
    let searched = builtin_only && !session.incomplete();
    let mut edits = Vec::new();
    for p in &pieces {
        if let Some(new) = p.rebuilt(&mut results)? {
            // A number stays bare while its stand-in is one (as in JSON text, see `rebuilt`).
            let bare = p.number && is_number(&new);
            edits.push((p.span.clone(), new, bare));
        } else if searched {
            p.keep_searched(body, session.scope());
        }
    }
    // Strings and numbers were collected apart: the splice goes in body order.
    edits.sort_by_key(|(r, _, _)| r.start);
    // Sized once, with room for stand-ins longer than their originals: growing at the end
    // would copy the whole body. (Its exact size would take a pass over every rewritten
    // string, and a bound by their decoded lengths would reserve up to six times each, which
    // the body keeps while the request is held.) Past the room, it grows as any Vec.
    let room = 1024 + body.len() / 64 + edits.len() * 64;
    let mut out = Vec::with_capacity(body.len() + room);
    let mut splices = Vec::with_capacity(edits.len());
    let mut at = 0;
    for (span, text, bare) in &edits {
        out.extend_from_slice(body.get(at..span.start).ok_or(BodyError::NotObject)?);
        let start = out.len();
        let escaped = if *bare {
            out.extend_from_slice(text.as_bytes());
            None
        } else {
            crate::json::write_json_string(&mut out, text);
            let inner = out
                .get(start + 1..out.len().saturating_sub(1))
                .unwrap_or_default();
            Some(memchr::memchr(b'\\', inner).is_some())
        };
        splices.push(Splice {
            before: span.clone(),
            after: start..out.len(),
            escaped,
        });
        at = span.end;
    }
    out.extend_from_slice(body.get(at..).ok_or(BodyError::NotObject)?);
    Ok((out, splices))
}

/// How many levels of JSON text inside a string are opened (JSON text in a string of JSON
/// text in a string…). Each level is parsed once more, so the work stays a small multiple of
/// the body; deeper text is searched as it reads at that level.
pub const MAX_JSON_TEXT_DEPTH: usize = 4;

/// Most JSON values one request's body and the JSON text in its strings may hold for PII
/// substitution. Each is a node of a parsed tree and may become a text to search, so memory
/// and time grow with their count, not only with the bytes: a tool result of four million
/// `0,` took 17 s and 660 MB before the text bound was reached. A conversation holds a few
/// thousand.
pub const MAX_VALUES: usize = 1 << 18;

/// One text the session searches: a conversation string of the body, or a string, key or
/// number of JSON text held in one.
///
/// JSON text in a string (tool-call arguments, a tool's result, Responses `arguments` and
/// `output`) is searched string by string, decoded: its own escapes (`Garc\u00eda`, written
/// by any `ensure_ascii` serialiser) would hide an entity from the detectors, or cut one in
/// two and break the escape when the stand-in went in. Only its changed strings are written
/// again; every other byte of it stays as it was.
struct Piece<'a> {
    /// Its token in the text that holds it: a string with its quotes, a number's digits.
    span: Range<usize>,
    /// A number of JSON text: written back bare while its stand-in is still a number.
    number: bool,
    /// The decoded text.
    text: Cow<'a, str>,
    /// The pieces of `text` when it is JSON text (they are searched instead of it).
    inner: Option<Vec<Piece<'static>>>,
    /// A string of the body searched still escaped: its token and what is known of it
    /// ([`Text::Escaped`]; `text` is then empty).
    escaped: Option<(&'a [u8], Clear)>,
}

/// The decoded length of a body's string token that can be searched still escaped
/// ([`Text::Escaped`]): it has an escape (else decoding costs nothing), none is `\u`, its text
/// does not open like JSON text (which is searched piece by piece), and no built-in pattern
/// needs a byte in it. In a 300 KB agent body with five entities (`benches/agent.rs`
/// `chat_pii`), 174 of the 187 texts searched, 253 of 280 KB, had no line a pattern could
/// match in; searching them escaped took the request from 5.7 to 4.5 million instructions
/// (callgrind), most of it their decoding.
pub(super) fn escaped_text_len(token: &[u8]) -> Option<usize> {
    let inner = token.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // Every escape but `\u` is two bytes for one.
    let escapes = super::lines::plain_escapes(inner)?;
    if escapes == 0 || opens_like_json(inner) {
        return None;
    }
    inner.len().checked_sub(escapes)
}

/// Whether the decoded text of a string's inside (with no `\u` escape) opens, after white
/// space, with `{`, `[` or `"`, as [`json_pieces`] asks.
fn opens_like_json(inner: &[u8]) -> bool {
    let mut i = 0;
    loop {
        match inner.get(i) {
            Some(b' ') => i += 1,
            Some(b'\\') => match inner.get(i + 1) {
                Some(b'n' | b't' | b'r') => i += 2,
                Some(b'"') => return true,
                _ => return false,
            },
            Some(b'{' | b'[') => return true,
            _ => return false,
        }
    }
}

impl<'a> Piece<'a> {
    fn new(
        span: Range<usize>,
        number: bool,
        text: Cow<'a, str>,
        depth: usize,
        left: &mut usize,
    ) -> Result<Piece<'a>, BodyError> {
        let inner = if number || depth >= MAX_JSON_TEXT_DEPTH {
            None
        } else {
            json_pieces(&text, depth + 1, left)?
        };
        Ok(Piece {
            span,
            number,
            text,
            inner,
            escaped: None,
        })
    }

    /// A string of the body searched still escaped (see [`escaped_text_len`]).
    fn escaped(span: Range<usize>, token: &'a [u8], clear: Clear) -> Piece<'a> {
        Piece {
            span,
            number: false,
            text: Cow::Borrowed(""),
            inner: None,
            escaped: Some((token, clear)),
        }
    }

    /// Keeps this string of the body, searched whole and found with no entity, for the
    /// next request of `scope` (`plain::searched`): a long text resent every turn (a tool's
    /// description) is then neither decoded nor searched again. Not one with a `\u` escape,
    /// whose decoded text may hold a stand-in its bytes do not (see `Text::contains`), nor
    /// one opening like JSON text, which is searched piece by piece.
    fn keep_searched(&self, body: &[u8], scope: u64) {
        if self.number || self.inner.is_some() || self.escaped.is_some() || opens_json(&self.text) {
            return;
        }
        if let Some(token) = body.get(self.span.clone()) {
            super::plain::searched(scope, token, self.text.len(), |t| {
                memchr::memmem::find(t, b"\\u").is_none()
            });
        }
    }

    /// The texts to search, in document order.
    fn leaves<'p>(&'p self, out: &mut Vec<Text<'p>>) {
        match (&self.inner, self.escaped) {
            (Some(inner), _) => inner.iter().for_each(|p| p.leaves(out)),
            (None, Some((token, clear))) => out.push(Text::Escaped {
                token,
                len: clear.len,
                needless: clear.needless,
            }),
            (None, None) => out.push(Text::Decoded(&self.text)),
        }
    }

    /// The new text, or `None` when nothing in it changed. `results` holds the session's
    /// answer for each text [`Piece::leaves`] listed, in that order.
    fn rebuilt(
        &self,
        results: &mut impl Iterator<Item = Option<String>>,
    ) -> Result<Option<String>, BodyError> {
        let Some(inner) = &self.inner else {
            return Ok(results.next().flatten());
        };
        let (mut out, mut at, mut changed) = (Vec::new(), 0, false);
        for p in inner {
            let Some(new) = p.rebuilt(results)? else {
                continue;
            };
            // The spans come from parsing this text, in order: a miss is a bug, and the
            // request is refused rather than sent with the original in it.
            out.extend_from_slice(
                self.text
                    .as_bytes()
                    .get(at..p.span.start)
                    .ok_or(BodyError::NotObject)?,
            );
            if p.number && is_number(&new) {
                out.extend_from_slice(new.as_bytes());
            } else {
                // A stand-in that is no number (the synthetic one drawn when every
                // same-shape candidate collided, as for a one-digit number) goes in as a
                // string: the JSON text stays valid, the original stays out.
                crate::json::write_json_string(&mut out, &new);
            }
            at = p.span.end;
            changed = true;
        }
        if !changed {
            return Ok(None);
        }
        out.extend_from_slice(self.text.as_bytes().get(at..).ok_or(BodyError::NotObject)?);
        // Only whole tokens were replaced, by UTF-8 text.
        String::from_utf8(out)
            .map(Some)
            .map_err(|_| BodyError::NotObject)
    }
}

/// The strings, keys and numbers of `text`, in order, when it is JSON text: an object, an
/// array or a string (a bare number or word reads the same as plain text). Inside it every
/// string is content, whatever its key: it is data the client or the model wrote, like a
/// tool call's `input`. `None` for anything else (not JSON, or a string in it that does not
/// decode): then `text` is searched as it is. Values count against `left`; running out is
/// [`BodyError::TooManyValues`].
fn json_pieces(
    text: &str,
    depth: usize,
    left: &mut usize,
) -> Result<Option<Vec<Piece<'static>>>, BodyError> {
    if !opens_json(text) {
        return Ok(None);
    }
    let Some(root) = tree::parse_within(text.as_bytes(), left) else {
        return if *left == 0 {
            Err(BodyError::TooManyValues)
        } else {
            Ok(None)
        };
    };
    let mut out = Vec::new();
    Ok(collect(text.as_bytes(), &root, depth, &mut out, left)?.map(|()| out))
}

/// Whether `text` opens, after white space, as an object, an array or a string do.
fn opens_json(text: &str) -> bool {
    let first = text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    matches!(first, Some(b'{' | b'[' | b'"'))
}

/// The pieces of `node` into `out`; `Ok(None)` when a string in it does not decode.
fn collect(
    text: &[u8],
    node: &Node,
    depth: usize,
    out: &mut Vec<Piece<'static>>,
    left: &mut usize,
) -> Result<Option<()>, BodyError> {
    let string = |span: &Range<usize>, out: &mut Vec<Piece<'static>>, left: &mut usize| {
        let Some(decoded) = tree::decode(text, span.clone()) else {
            return Ok(None);
        };
        let decoded = Cow::Owned(decoded.into_owned());
        out.push(Piece::new(span.clone(), false, decoded, depth, left)?);
        Ok(Some(()))
    };
    match node {
        Node::Str(span) => return string(span, out, left),
        Node::Scalar(span) => {
            let Some(token) = text
                .get(span.clone())
                .and_then(|t| std::str::from_utf8(t).ok())
            else {
                return Ok(None);
            };
            if is_number(token) {
                let token = Cow::Owned(token.into());
                out.push(Piece::new(span.clone(), true, token, depth, left)?);
            }
        }
        Node::Array(items) => {
            for i in items {
                if collect(text, i, depth, out, left)?.is_none() {
                    return Ok(None);
                }
            }
        }
        Node::Object(entries) => {
            for e in entries {
                if string(&e.key_span, out, left)?.is_none()
                    || collect(text, &e.value, depth, out, left)?.is_none()
                {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(()))
}

/// Is `token` one JSON number?
pub(super) fn is_number(token: &str) -> bool {
    token
        .bytes()
        .next()
        .is_some_and(|b| b == b'-' || b.is_ascii_digit())
        && matches!(tree::parse(token.as_bytes()), Some(Node::Scalar(_)))
}

/// The tokens of a body to search: strings, and numbers in data the client wrote.
#[derive(Default)]
struct Spans {
    strings: Vec<Range<usize>>,
    numbers: Vec<Range<usize>>,
}

impl Spans {
    fn push(&mut self, string: Range<usize>) {
        self.strings.push(string);
    }
}

/// Collects the span of every string (and free number) to search.
fn walk(body: &[u8], root: &Node, out: &mut Spans) {
    let Node::Object(entries) = root else {
        return;
    };
    for e in entries {
        let k = e.key();
        if TEXT_ROOTS.contains(&k) {
            walk_text(body, &e.value, out, false);
        } else if TURN_ROOTS.contains(&k) {
            match &e.value {
                // Thinking blocks only ever come back in `messages` (Chat and Messages); a
                // Responses turn carries reasoning sealed in `encrypted_content` instead.
                Node::Array(turns) => turns
                    .iter()
                    .for_each(|t| walk_turn(body, t, k == "messages", out)),
                other => walk_text(body, other, out, false),
            }
        } else if USER_ROOTS.contains(&k) {
            if let Node::Str(span) = &e.value {
                out.push(span.clone());
            }
        } else if k == "metadata" {
            // Values only: the keys are labels (Anthropic's `user_id`), like a schema's.
            match &e.value {
                Node::Object(members) => members
                    .iter()
                    .for_each(|m| walk_text(body, &m.value, out, true)),
                other => walk_text(body, other, out, true),
            }
        } else if SCHEMA_ROOTS.contains(&k) {
            walk_schema(&e.value, out);
        } else if DATA_ROOTS.contains(&k) {
            walk_text(body, &e.value, out, true);
        } else if k == "generationConfig" || k == "generation_config" {
            // Gemini's stop sequences are data, its output schemas schemas (as Chat's `stop`
            // and `response_format`).
            if let Node::Object(members) = &e.value {
                for m in members {
                    match m.key() {
                        "stopSequences" | "stop_sequences" => walk_text(body, &m.value, out, true),
                        "responseSchema"
                        | "response_schema"
                        | "responseJsonSchema"
                        | "response_json_schema" => walk_schema(&m.value, out),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A Gemini part's members holding a function call or its result.
const GEMINI_CALLS: &[&str] = &[
    "functionCall",
    "function_call",
    "functionResponse",
    "function_response",
];

/// The decoded `type` strings of an object's members (duplicates included: a provider may
/// read any of them, so each counts).
fn types<'b>(body: &'b [u8], entries: &[Entry]) -> Vec<std::borrow::Cow<'b, str>> {
    values(body, entries, "type")
}

/// The decoded string values of every member named `key`.
fn values<'b>(body: &'b [u8], entries: &[Entry], key: &str) -> Vec<std::borrow::Cow<'b, str>> {
    entries
        .iter()
        .filter(|e| e.key == key)
        .filter_map(|e| e.value.as_str(body))
        .collect()
}

/// One turn of `messages` or item of `input`. `signed`: thinking blocks can be in it (a
/// `messages` turn).
fn walk_turn(body: &[u8], turn: &Node, signed: bool, out: &mut Spans) {
    let Node::Object(entries) = turn else {
        return walk_text(body, turn, out, false);
    };
    let roles = values(body, entries, "role");
    let every =
        |names: &[&str]| !roles.is_empty() && roles.iter().all(|r| names.contains(&r.as_ref()));
    let assistant = signed && every(&["assistant"]);
    // A participant's name (Chat `name` on a system, user or assistant turn) is read by the
    // model; on a `function` or `tool` turn it is the tool's name.
    let person = every(&["system", "developer", "user", "assistant"]);
    let tool_use = is_tool_use(body, entries);
    for e in entries {
        match e.key() {
            "name" if person => walk_text(body, &e.value, out, true),
            "content" | "thinking_blocks" if assistant => match &e.value {
                Node::Array(blocks) => blocks.iter().for_each(|b| walk_block(body, b, out)),
                other => walk_text(body, other, out, false),
            },
            _ => member(body, e, tool_use, out),
        }
    }
}

/// One block of an assistant turn: a signed thinking block keeps its signed members as they
/// are; everything else is searched.
fn walk_block(body: &[u8], block: &Node, out: &mut Spans) {
    let Node::Object(entries) = block else {
        return walk_text(body, block, out, false);
    };
    let skip = signed_members(body, entries);
    let tool_use = is_tool_use(body, entries);
    for e in entries.iter().filter(|e| !skip.contains(&e.key())) {
        member(body, e, tool_use, out);
    }
}

/// The members a thinking block's signature covers, when every `type` it has names the
/// same signed kind (a block that also says it is something else is searched whole: should
/// the provider then refuse the signature, nothing leaked).
///
/// A thinking block without a signature (none, or an empty one) is searched: there is nothing
/// for substitution to break (a provider that checks refuses it anyway; one translated from an
/// OpenAI provider's reasoning was never signed), and its text may hold originals: the
/// answer side restores thinking, and a client that drops the sealed signature it got, or one
/// whose seal could not be made, sends the restored text back without it. So is one whose
/// signature is still a seal of the gateway's (`rw1.`): unsealing puts the provider's back, so
/// one left here was not opened (a member the unsealer did not read, an escaped prefix), and
/// its text holds originals; searched, it reaches the provider with stand-ins, which refuses
/// the signature, and nothing leaked.
fn signed_members(body: &[u8], entries: &[Entry]) -> &'static [&'static str] {
    let kinds = types(body, entries);
    let every = |name: &str| !kinds.is_empty() && kinds.iter().all(|k| k == name);
    let signed = || {
        let sigs = values(body, entries, "signature");
        !sigs.is_empty()
            && sigs
                .iter()
                .all(|s| !s.is_empty() && !crate::seal::SealKey::is_ours(s))
    };
    if every("thinking") && signed() {
        &["thinking", "signature"]
    } else if every("redacted_thinking") {
        &["data"]
    } else {
        &[]
    }
}

/// A tool call whose `input` is the model's data: `tool_use`, and every kind of it the API
/// names so (`server_tool_use`, `mcp_tool_use`, …).
fn is_tool_use(body: &[u8], entries: &[Entry]) -> bool {
    types(body, entries)
        .iter()
        .any(|k| k == "tool_use" || k.ends_with("_tool_use"))
}

/// `free`: inside data the client wrote (a tool call's `input` object, a text document's
/// `data`, a `metadata` value), where every string is content whatever its key: a tool
/// argument called `name`, `id` or `url` holds a person, an identifier or an address as
/// readily as any other, and so may a key (as in JSON text in a string, see `collect`).
fn walk_text(body: &[u8], v: &Node, out: &mut Spans, free: bool) {
    match v {
        Node::Str(span) => out.push(span.clone()),
        Node::Array(items) => items.iter().for_each(|i| walk_text(body, i, out, free)),
        Node::Object(entries) if free => {
            for e in entries {
                out.push(e.key_span.clone());
                walk_text(body, &e.value, out, true);
            }
        }
        Node::Object(entries) => {
            let tool_use = is_tool_use(body, entries);
            entries.iter().for_each(|e| member(body, e, tool_use, out));
        }
        // In data the client wrote, a number may be an entity too (a card number as a tool
        // argument): as in JSON text in a string, see `collect`.
        Node::Scalar(span) if free => {
            if body
                .get(span.start)
                .is_some_and(|b| *b == b'-' || b.is_ascii_digit())
            {
                out.numbers.push(span.clone());
            }
        }
        Node::Scalar(_) => {}
    }
}

/// One member of an object of the conversation's structure. `tool_use`: the object is a
/// tool call whose `input` is the model's data.
fn member(body: &[u8], e: &Entry, tool_use: bool, out: &mut Spans) {
    let k = e.key();
    if k == "input" && tool_use {
        walk_text(body, &e.value, out, true);
    } else if GEMINI_CALLS.contains(&k) {
        // A Gemini part's call or result: its `args` / `response` are data the model or the
        // client wrote (as a tool_use's `input`); its name and id are structure.
        if let Node::Object(members) = &e.value {
            for m in members {
                if matches!(m.key(), "args" | "response") {
                    walk_text(body, &m.value, out, true);
                } else if !SKIP_KEYS.contains(&m.key()) {
                    walk_text(body, &m.value, out, false);
                }
            }
        }
    } else if k == "source" {
        // A document given as text (its `data`) or as content blocks (its `content`): both
        // are conversation text.
        let kind = e.value.get("type").and_then(|t| t.as_str(body));
        if let Node::Object(members) = &e.value {
            for m in members {
                match (kind.as_deref(), m.key()) {
                    (Some("text"), "data") => walk_text(body, &m.value, out, true),
                    (Some("content"), "content") => walk_text(body, &m.value, out, false),
                    _ => {}
                }
            }
        }
    } else if !SKIP_KEYS.contains(&k) {
        walk_text(body, &e.value, out, false);
    }
}

/// Keys of a JSON schema whose value maps names (of properties, of definitions) to schemas:
/// the names are the tool's interface, never searched.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// A tool definition or an output schema, at any depth: descriptions and titles are text the
/// model reads, and the values a schema lists (`enum`, `const`, `default`, `examples`) are
/// text it may write back (restored then, like any stand-in). Everything else (names, types,
/// patterns, formats, `required`, property names) is the interface and stays.
fn walk_schema(v: &Node, out: &mut Spans) {
    match v {
        Node::Array(items) => items.iter().for_each(|i| walk_schema(i, out)),
        Node::Object(entries) => {
            for e in entries {
                match (e.key(), &e.value) {
                    ("description" | "title", Node::Str(span)) => out.push(span.clone()),
                    ("enum" | "const" | "default" | "examples", value) => walk_listed(value, out),
                    (k, Node::Object(map)) if SCHEMA_MAPS.contains(&k) => {
                        map.iter().for_each(|m| walk_schema(&m.value, out))
                    }
                    // A property called `description` holds a schema: read as one.
                    (_, value) => walk_schema(value, out),
                }
            }
        }
        Node::Str(_) | Node::Scalar(_) => {}
    }
}

/// A value a schema lists: its strings, at any depth; the keys of an object value are the
/// schema's property names and stay.
fn walk_listed(v: &Node, out: &mut Spans) {
    match v {
        Node::Str(span) => out.push(span.clone()),
        Node::Array(items) => items.iter().for_each(|i| walk_listed(i, out)),
        Node::Object(entries) => entries.iter().for_each(|e| walk_listed(&e.value, out)),
        Node::Scalar(_) => {}
    }
}

#[cfg(test)]
mod tests {
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

    /// Fields the review found unsearched: MCP tool input, a document given as content
    /// blocks, stop sequences, the prompt cache key, a web search's location.
    #[test]
    fn mcp_input_content_documents_stops_and_search_options_are_searched() {
        let e = ORIGINALS[0];
        let body = format!(
            r#"{{"model":"m","messages":[
              {{"role":"assistant","content":[{{"type":"mcp_tool_use","id":"x","name":"n","server_name":"s","input":{{"to":"{e}"}}}}]}},
              {{"role":"user","content":[{{"type":"document","source":{{"type":"content","content":[{{"type":"text","text":"mail {e}"}}]}}}}]}}],
              "stop":["{e}"],"stop_sequences":["{e}"],"prompt_cache_key":"{e}",
              "web_search_options":{{"user_location":{{"approximate":{{"city":"{e}"}}}}}}}}"#
        );
        let (out, _, s) = run(&body);
        assert!(!out.contains(e), "{out}");
        assert_eq!(out.matches(&s.pairs()[0].stand_in).count(), 6, "{out}");
    }

    /// A number in data the client wrote (a tool call's input) is an entity like a string:
    /// a card number is replaced by a bare number, other numbers stay byte for byte.
    #[test]
    fn numbers_in_tool_input_are_searched_and_stay_numbers() {
        let body = r#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"pay",
            "input":{"card":4111111111111111,"qty":2,"price":1.50,"n":-0}}]}],"max_tokens":4111111111111111}"#;
        let (out, _, s) = run(body);
        assert!(!out.contains(r#""card":4111111111111111"#), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let card = &v["messages"][0]["content"][0]["input"]["card"];
        assert!(card.is_u64(), "still a number: {out}");
        let restored = s
            .restore_set()
            .unwrap()
            .restore_all(card.to_string().as_bytes());
        assert_eq!(restored, b"4111111111111111");
        assert!(out.contains(r#""qty":2,"price":1.50,"n":-0"#), "{out}");
        // Outside client data a number is a parameter, never searched.
        assert!(out.contains(r#""max_tokens":4111111111111111"#), "{out}");
    }

    /// A body with more JSON values than [`MAX_VALUES`], in its own tree or in JSON text in
    /// one of its strings, is refused as such, before a piece per value is built; at the
    /// bound it is searched.
    #[test]
    fn values_beyond_the_bound_are_refused_not_built() {
        let d = Detector::new(&[], &[]).unwrap();
        let numbers = |n: usize| vec!["0"; n].join(",");
        let in_text = |n: usize| {
            format!(
                r#"{{"messages":[{{"role":"tool","tool_call_id":"c","content":"[{}]"}}]}}"#,
                numbers(n)
            )
        };
        let in_tree = |n: usize| format!(r#"{{"messages":[],"user":[{}]}}"#, numbers(n));
        for (name, body) in [("text", in_text(MAX_VALUES)), ("tree", in_tree(MAX_VALUES))] {
            let mut s = Session::new(&d, b"k");
            assert_eq!(
                substitute(body.as_bytes(), &mut s),
                Err(BodyError::TooManyValues),
                "{name}"
            );
        }
        let mut s = Session::new(&d, b"k");
        let ok = in_text(MAX_VALUES - 16);
        assert_eq!(substitute(ok.as_bytes(), &mut s).unwrap(), ok.as_bytes());
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
        // A tool's name on a `function`/`tool` turn, a call's id and the model are the
        // interface. A `prompt_cache_key` is stored by the provider: searched (its stand-in is
        // deterministic per key, so the cache still keys the same way).
        let (out, _, s) = run(
            r#"{"model":"jane.doe@corp.example.io","prompt_cache_key":"10.20.30.40","messages":[
              {"role":"tool","name":"10.20.30.40","tool_call_id":"jane.doe@corp.example.io","content":"hi"},
              {"role":"function","name":"10.20.30.40","content":"hi"}]}"#,
        );
        assert!(
            out.contains(r#""model":"jane.doe@corp.example.io""#),
            "{out}"
        );
        assert_eq!(out.matches("10.20.30.40").count(), 2, "{out}");
        assert!(
            !out.contains(r#""prompt_cache_key":"10.20.30.40""#),
            "{out}"
        );
        assert_eq!(s.counts().total(), 1);
    }

    /// Every field whose text reaches the model or the provider's logs, in the three
    /// dialects; names, ids, types and property names stay.
    #[test]
    fn user_metadata_tools_schemas_and_names_are_searched() {
        let schema = r#"{"type":"object","description":"for jane.doe@corp.example.io",
            "properties":{"to":{"type":"string","title":"card 4111 1111 1111 1111",
              "enum":["10.20.30.40","x"],"default":{"to":"10.20.30.40"}},
              "description":{"type":"string","examples":["jane.doe@corp.example.io"]}},
            "required":["to","description"]}"#;
        let bodies = [
            format!(
                r#"{{"model":"m","user":"10.20.30.40","safety_identifier":"jane.doe@corp.example.io",
                "metadata":{{"k":"4111 1111 1111 1111"}},
                "prediction":{{"type":"content","content":"to jane.doe@corp.example.io"}},
                "response_format":{{"type":"json_schema","json_schema":{{"name":"r","schema":{schema}}}}},
                "tools":[{{"type":"function","function":{{"name":"send",
                  "description":"mail jane.doe@corp.example.io","parameters":{schema}}}}}],
                "messages":[{{"role":"user","name":"10.20.30.40","content":"hi"}}]}}"#
            ),
            format!(
                r#"{{"model":"m","metadata":{{"user_id":"10.20.30.40"}},"system":"jane.doe@corp.example.io",
                "tools":[{{"name":"send","description":"4111 1111 1111 1111","input_schema":{schema}}}],
                "output_config":{{"format":{{"type":"json_schema","schema":{schema}}}}},
                "messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
            format!(
                r#"{{"model":"m","user":"10.20.30.40","instructions":"jane.doe@corp.example.io",
                "metadata":{{"k":"4111 1111 1111 1111"}},
                "text":{{"format":{{"type":"json_schema","name":"r","schema":{schema}}}}},
                "tools":[{{"type":"function","name":"send","description":"x 10.20.30.40","parameters":{schema}}}],
                "input":"hi"}}"#
            ),
            // Gemini: a call's `args` and a result's `response` are data whatever their keys,
            // and `generationConfig` holds stop sequences and an output schema.
            format!(
                r#"{{"systemInstruction":{{"parts":[{{"text":"jane.doe@corp.example.io"}}]}},
                "contents":[{{"role":"user","parts":[{{"text":"hi"}}]}},
                  {{"role":"model","parts":[{{"functionCall":{{"name":"send","id":"c1",
                    "args":{{"name":"jane.doe@corp.example.io","card":4111111111111111,"10.20.30.40":1}}}},
                    "thoughtSignature":"CiQB"}}]}},
                  {{"role":"user","parts":[{{"functionResponse":{{"name":"send","id":"c1",
                    "response":{{"status":"10.20.30.40","source":"jane.doe@corp.example.io"}}}}}}]}}],
                "generationConfig":{{"stopSequences":["10.20.30.40"],"responseJsonSchema":{schema}}},
                "tools":[{{"functionDeclarations":[{{"name":"send","description":"mail jane.doe@corp.example.io",
                  "parametersJsonSchema":{schema}}}]}}]}}"#
            ),
        ];
        for body in bodies {
            let (out, _, s) = run(&body);
            assert_clean(&out, &s);
            let v: Value = serde_json::from_str(&out).unwrap();
            let tools = v["tools"].to_string();
            assert!(tools.contains(r#""name":"send""#), "{tools}");
            for key in [
                r#""to":{"#,
                r#""description":{"type""#,
                r#"["to","description"]"#,
            ] {
                assert!(out.contains(key), "{key} in {out}");
            }
            assert!(out.contains(r#""default":{"to":"#), "{out}");
        }
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

    #[test]
    fn a_thinking_block_without_a_signature_is_searched() {
        // Restored thinking sent back without its sealed signature (dropped, or a seal that
        // could not be made) must not take originals upstream; unsigned, nothing can break.
        let body = r#"{"model":"m","messages":[{"role":"assistant","content":[
            {"type":"thinking","thinking":"mail jane.doe@corp.example.io","signature":""},
            {"type":"thinking","thinking":"host 10.20.30.40"},
            {"type":"thinking","thinking":"card 4111 1111 1111 1111","signature":null},
            {"type":"thinking","thinking":"mail jane.doe@corp.example.io","signature":"c2ln"}]}]}"#;
        let (out, _, s) = run(body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let content = &v["messages"][0]["content"];
        for i in 0..3 {
            let t = content[i]["thinking"].as_str().unwrap();
            assert!(
                !t.contains("jane.doe@") && !t.contains("10.20.30.40") && !t.contains("4111"),
                "{t}"
            );
        }
        assert_eq!(content[3]["thinking"], "mail jane.doe@corp.example.io");
        assert_eq!(content[0]["signature"], "");
        assert_eq!(s.counts().total(), 3);
    }

    #[test]
    fn a_thinking_block_still_under_a_gateway_seal_is_searched() {
        // Unsealing puts the provider's signature back; a seal of ours still here was not
        // opened (an escaped prefix the unsealer's search missed, a member it did not read),
        // so the text holds the client's originals and must not go upstream as it is.
        let body = r#"{"model":"m","messages":[{"role":"assistant","content":[
            {"type":"thinking","thinking":"mail jane.doe@corp.example.io","signature":"\u0072w1.AAAA"},
            {"type":"thinking","thinking":"host 10.20.30.40","signature":"rw1.AAAA"}]}]}"#;
        let (out, _, s) = run(body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let content = &v["messages"][0]["content"];
        for i in 0..2 {
            let t = content[i]["thinking"].as_str().unwrap();
            assert!(
                !t.contains("jane.doe@") && !t.contains("10.20.30.40"),
                "{t}"
            );
        }
        assert_eq!(s.counts().total(), 2);
    }

    #[test]
    fn only_the_signed_members_of_a_block_where_one_can_be_are_left_alone() {
        let body = r#"{"model":"m","messages":[
          {"role":"user","type":"thinking","content":"mail jane.doe@corp.example.io"},
          {"role":"user","content":[{"type":"thinking","thinking":"10.20.30.40","signature":"s"}]},
          {"role":"assistant","type":"thinking","thinking":"10.20.30.40","content":[
            {"type":"thinking","thinking":"jane.doe@corp.example.io","signature":"s","note":"4111 1111 1111 1111"},
            {"type":"thinking","type":"text","thinking":"10.20.30.40","text":"10.20.30.40"},
            {"type":"text","text":"ok","nested":{"type":"thinking","thinking":"10.20.30.40"}}]}],
          "system":[{"type":"thinking","thinking":"10.20.30.40"}],
          "input":[{"role":"assistant","content":[{"type":"thinking","thinking":"10.20.30.40"}]}]}"#;
        let (out, _, s) = run(body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let signed = &v["messages"][2]["content"][0];
        assert_eq!(signed["thinking"], "jane.doe@corp.example.io");
        assert_eq!(signed["signature"], "s");
        assert_ne!(signed["note"], "4111 1111 1111 1111");
        assert!(!v["messages"][0].to_string().contains("jane.doe@"), "{v}");
        // Everywhere else, 10.20.30.40 was an object that only claimed the type.
        assert!(!out.contains("10.20.30.40"), "{out}");
        assert_eq!(s.counts().get(Kind::Ipv4), 7);
    }

    /// A session over a detector that also knows the name `García`.
    fn run_named(body: &str) -> (String, Session<'static>) {
        static D: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
        let d = D.get_or_init(|| {
            let terms = [crate::pii::Term {
                text: "García".into(),
                kind: Kind::Name,
            }];
            Detector::new(&[], &terms).unwrap()
        });
        let mut s = Session::new(d, b"k");
        let out = String::from_utf8(substitute(body.as_bytes(), &mut s).unwrap()).unwrap();
        (out, s)
    }

    /// Every string of `v`, decoded, and where one holds JSON text, that text's strings too.
    fn decoded(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
                match serde_json::from_str::<Value>(s) {
                    Ok(inner) => decoded(&inner, out),
                    // JSON text must stay JSON: a broken one would hide what it holds.
                    Err(e) => assert!(
                        !(s.starts_with('{') && s.ends_with('}')),
                        "broken JSON text {s}: {e}"
                    ),
                }
            }
            Value::Array(items) => items.iter().for_each(|i| decoded(i, out)),
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push_str(k);
                out.push('\n');
                decoded(v, out);
            }),
            _ => out.push_str(&v.to_string()),
        }
    }

    /// JSON text as Python's `json.dumps` writes it by default: `í` and `é` as `\u` escapes.
    const ARGS: &str = r#"{"name": "Garc\u00eda", "to": "\u00e9jane.doe@corp.example.io", "note": "caf\u00e9", "n": 1.50}"#;

    #[test]
    fn json_text_in_a_string_is_searched_decoded_and_only_its_changed_strings_rewritten() {
        let nested = serde_json::to_string(&serde_json::json!({"payload": ARGS})).unwrap();
        let body = serde_json::json!({"model": "m", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "send", "arguments": ARGS}}]},
            {"role": "tool", "tool_call_id": "c1", "content": ARGS},
            {"role": "user", "content": [{"type": "text", "text": nested}]}]})
        .to_string();
        let (out, s) = run_named(&body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut all = String::new();
        decoded(&v, &mut all);
        for o in ["García", "jane.doe@corp.example.io"] {
            assert!(!all.contains(o), "{o} reached the provider: {all}");
        }
        assert_eq!(s.counts().get(Kind::Name), 3);
        assert_eq!(s.counts().get(Kind::Email), 3);
        let args = v["messages"][0]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        // Valid JSON again; the stand-in follows the `é`, it did not eat the escape.
        let inner: Value = serde_json::from_str(args).unwrap();
        let to = inner["to"].as_str().unwrap();
        assert!(to.starts_with('é') && to.contains("@example."), "{args}");
        // Unchanged inner strings and numbers are the client's bytes.
        assert!(
            args.contains(r#", "note": "caf\u00e9", "n": 1.50}"#),
            "{args}"
        );
        assert_eq!(
            v["messages"][1]["content"], args,
            "the same text, the same stand-ins"
        );
        // JSON text in JSON text in a string: opened at each level.
        let outer: Value =
            serde_json::from_str(v["messages"][2]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(outer["payload"], args);
        // And the answer side gives back what the client wrote (decoded).
        let back = s.restore_set().unwrap().restore_document(out.as_bytes());
        let back: Value = serde_json::from_slice(&back).unwrap();
        let args = back["messages"][0]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let args: Value = serde_json::from_str(args).unwrap();
        let want: Value = serde_json::from_str(ARGS).unwrap();
        assert_eq!(args, want);
    }

    #[test]
    fn responses_items_carry_json_text_too() {
        let body = serde_json::json!({"model": "m", "input": [
            {"type": "function_call", "call_id": "f1", "name": "send", "arguments": ARGS},
            {"type": "function_call_output", "call_id": "f1", "output": ARGS}]})
        .to_string();
        let (out, s) = run_named(&body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut all = String::new();
        decoded(&v, &mut all);
        assert!(
            !all.contains("García") && !all.contains("jane.doe@"),
            "{all}"
        );
        for item in [&v["input"][0]["arguments"], &v["input"][1]["output"]] {
            let inner: Value = serde_json::from_str(item.as_str().unwrap()).unwrap();
            assert_eq!(inner["note"], "café");
        }
        assert_eq!(s.counts().total(), 4);
    }

    #[test]
    fn json_text_numbers_keys_and_text_that_is_not_json() {
        // A card number written as a JSON number stays a number; a key is content too.
        let args = r#"{"card": 4111111111111111, "jane.doe@corp.example.io": true}"#;
        let cut = r#"{"to": "jane.doe@corp.example.io", "name": "García"#;
        let body = serde_json::json!({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c", "content": cut}]})
        .to_string();
        let (out, s) = run_named(&body);
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut all = String::new();
        decoded(&v, &mut all);
        for o in ["4111111111111111", "jane.doe@", "García"] {
            assert!(!all.contains(o), "{o} in {all}");
        }
        let args: Value = serde_json::from_str(
            v["messages"][0]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(args["card"].is_u64(), "{args}");
        assert_eq!(s.counts().get(Kind::Card), 1);
        // Text that is not JSON (cut short) is searched as plain text.
        let cut_out = v["messages"][1]["content"].as_str().unwrap();
        assert!(cut_out.starts_with(r#"{"to": ""#), "{cut_out}");
    }

    #[test]
    fn a_number_an_operator_regex_matches_stays_a_number() {
        // An operator regex's stand-in keeps the shape; for a number, also its first digit
        // non-zero and its exponent, so it is written back bare. (Its first digit was drawn
        // from 0-9 before, and one key in ten turned the number into a string.)
        let d = Detector::new(&[r"\b9\d{5}\b".into(), r"-2\.5e-3".into()], &[]).unwrap();
        let body = serde_json::json!({"model": "m", "messages": [{"role": "assistant",
            "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": r#"{"badge": 912345, "x": -2.5e-3}"#}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                "input": {"badge": 912345}}]}]})
        .to_string();
        for k in 0..64u8 {
            let mut s = Session::new(&d, &[k]);
            let out = substitute(body.as_bytes(), &mut s).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            let args = v["messages"][0]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap();
            let args: Value = serde_json::from_str(args).unwrap();
            let input = &v["messages"][1]["content"][0]["input"];
            assert!(args["badge"].is_u64() && input["badge"].is_u64(), "key {k}");
            assert!(args["x"].is_f64(), "key {k}");
            let restore = s.restore_set().unwrap();
            let pairs = s.pairs();
            assert_eq!(pairs.len(), 2);
            for p in pairs {
                assert!(is_number(&p.stand_in), "key {k}: {}", p.stand_in);
                assert_ne!(p.stand_in, p.original);
                let back = restore.restore_all(p.stand_in.as_bytes());
                assert_eq!(back, p.original.as_bytes());
            }
            assert_eq!(args["badge"], input["badge"]);
        }
    }

    #[test]
    fn json_text_nested_deep_and_often_is_bounded_and_still_searched() {
        // Arrays 120 deep at every level, JSON text in a string six levels down: opened to
        // MAX_JSON_TEXT_DEPTH, read as text below it (a plain address is found either way).
        let mut text = "\"mail jane.doe@corp.example.io\"".to_string();
        for _ in 0..6 {
            let wrapped = format!("{}{text}{}", "[".repeat(120), "]".repeat(120));
            text = serde_json::to_string(&wrapped).unwrap();
        }
        let body = format!(r#"{{"model":"m","messages":[{{"role":"tool","content":{text}}}]}}"#);
        let (out, _, s) = run(&body);
        assert!(!out.contains("jane.doe@"), "{out}");
        assert_eq!(s.counts().get(Kind::Email), 1);
        let back = s.restore_set().unwrap().restore_document(out.as_bytes());
        let v: Value = serde_json::from_slice(&back).unwrap();
        let mut inner = v["messages"][0]["content"].clone();
        for _ in 0..6 {
            let mut x: Value = serde_json::from_str(inner.as_str().unwrap()).unwrap();
            for _ in 0..120 {
                x = x[0].take();
            }
            inner = x;
        }
        assert_eq!(inner, "mail jane.doe@corp.example.io");
    }
}
