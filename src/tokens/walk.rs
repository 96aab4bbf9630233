//! Input estimates of OpenAI Chat Completions and Responses request bodies, for a stream cut
//! short before its provider said its usage: one pass over the JSON (no tree, no copy of the
//! body), every string the model reads counted by the rules of [`super::Counter`].
//!
//! What counts: the messages (`messages`, or `input` and `instructions`), each item with the
//! cookbook's per-message overhead and its role; tool definitions (name, description, and the
//! parameter schema's keys and strings) with the cookbook's per-function overheads; a
//! structured-output schema. Images by the vision guide's tile rule (a data URL's size read
//! from its header; a linked image at the rule's default), files by the PDF rule. Ids, types,
//! statuses and signatures are not read by the model as text and do not count; neither do
//! sampling and other settings. Sealed content (`encrypted_content`: reasoning, compaction
//! summaries) cannot be read here and is not counted either: the estimate errs low there.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tiktoken_rs::CoreBPE;

use super::image::{self, Detail};
use super::{pdf_tokens, Counter, TokensError, FUNC_END_TOKENS, FUNC_INIT_TOKENS};
use super::{REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE};
use crate::wire::ParseError;

/// Estimated input tokens of a Chat Completions or Responses body (see the module doc); at
/// most `text_budget` bytes of text through the tokenizer.
pub(super) fn estimate_openai(
    body: &[u8],
    bpe: &CoreBPE,
    text_budget: usize,
) -> Result<u64, TokensError> {
    let mut c = Counter::new(bpe, text_budget);
    c.add(REPLY_PRIMING_TOKENS);
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        c: &mut c,
        at: At::Root,
        key: Key::Text,
    };
    walk.deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|error| TokensError::Parse(ParseError { key: None, error }))?;
    Ok(c.total)
}

/// Where a value lies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// The body.
    Root,
    /// A member of the request object.
    Request,
    /// The list of messages or input items: each object is one message.
    Items,
    /// The list of tools: each object is one function definition.
    Tools,
    /// Inside a message or a tool: strings are text.
    Content,
    /// Inside a schema: keys (property names) are text as well as strings.
    Schema,
}

/// What the key a value sits under says about it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    /// Not read by the model as text (an id, a type, a setting): skipped unread.
    Skip,
    /// Text, or a container of it.
    Text,
    /// A list of messages (or a string standing for one).
    Items,
    /// The tool list.
    Tools,
    /// A schema (a tool's parameters, a structured-output format).
    Schema,
    /// A link or data URL to an image.
    ImageUrl,
    /// A link or data URL to a file.
    FileUrl,
    /// Base64 file or audio data.
    Data,
}

/// The key's meaning at `at`.
fn classify(at: At, name: &str) -> Key {
    match at {
        At::Request => match name {
            "messages" | "input" => Key::Items,
            "instructions" | "prompt" => Key::Text,
            "tools" | "functions" => Key::Tools,
            "response_format" | "text" => Key::Schema,
            _ => Key::Skip,
        },
        At::Schema => Key::Text,
        At::Root | At::Items | At::Tools | At::Content => match name {
            "type" | "id" | "call_id" | "tool_call_id" | "status" | "detail" | "media_type"
            | "mime_type" | "format" | "file_id" | "signature" | "encrypted_content"
            | "cache_control" | "annotations" | "logprobs" | "index" | "strict" => Key::Skip,
            "parameters" | "input_schema" | "schema" => Key::Schema,
            "image_url" | "url" => Key::ImageUrl,
            "file_data" | "file_url" => Key::FileUrl,
            "data" => Key::Data,
            _ => Key::Text,
        },
    }
}

/// One value, walked.
struct Walk<'c, 'b> {
    c: &'c mut Counter<'b>,
    at: At,
    key: Key,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.key == Key::Skip {
            return d.deserialize_ignored_any(IgnoredAny).map(|_| ());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        match self.key {
            Key::ImageUrl => image_url(self.c, s),
            Key::FileUrl => file(self.c, s),
            Key::Data => data(self.c, s),
            // An input given as one string is one user message.
            Key::Items if self.at == At::Request => {
                self.c.add(TOKENS_PER_MESSAGE);
                self.c.text(s);
            }
            // Instructions are a system message.
            Key::Text if self.at == At::Request => {
                self.c.add(TOKENS_PER_MESSAGE);
                self.c.text(s);
            }
            _ => self.c.text(s),
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // A list under `messages`/`input` or `tools` holds messages or tools; any other list
        // is content (or more schema).
        let at = match (self.at, self.key) {
            (At::Request, Key::Items) => At::Items,
            (At::Request, Key::Tools) => At::Tools,
            (At::Schema, _) | (_, Key::Schema) => At::Schema,
            _ => At::Content,
        };
        let mut n = 0u64;
        while seq
            .next_element_seed(Walk {
                c: &mut *self.c,
                at,
                key: Key::Text,
            })?
            .is_some()
        {
            n += 1;
        }
        if at == At::Tools && n > 0 {
            self.c.add(FUNC_END_TOKENS);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.at {
            At::Items => self.c.add(TOKENS_PER_MESSAGE),
            At::Tools => self.c.add(FUNC_INIT_TOKENS),
            _ => {}
        }
        // The body's members are the request's; a schema's, more schema; anything else's,
        // content.
        let inner = match (self.at, self.key) {
            (At::Root, _) => At::Request,
            (At::Schema, _) | (_, Key::Schema) => At::Schema,
            _ => At::Content,
        };
        while let Some(key) = map.next_key_seed(KeySeed {
            c: &mut *self.c,
            at: inner,
        })? {
            map.next_value_seed(Walk {
                c: &mut *self.c,
                at: inner,
                key,
            })?;
        }
        Ok(())
    }
}

/// A member's name: what it says (see [`classify`]); counted as text inside a schema.
struct KeySeed<'c, 'b> {
    c: &'c mut Counter<'b>,
    at: At,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Key, E> {
        if self.at == At::Schema {
            self.c.text(name);
        }
        Ok(classify(self.at, name))
    }
}

/// An image given as a link (the tile rule's default size) or a data URL (its size read from
/// the image's header). OpenAI's `auto` detail is counted as high, as elsewhere.
fn image_url(c: &mut Counter<'_>, s: &str) {
    if s.starts_with("data:") {
        return file(c, s);
    }
    c.add(image::unknown_image_tokens());
}

/// A file as a data URL (an image by the tile rule, anything else by the PDF rule), plain
/// base64 (a PDF), or a link (one page).
fn file(c: &mut Counter<'_>, s: &str) {
    let Some(rest) = s.strip_prefix("data:") else {
        let decoded = if s.contains("://") {
            0
        } else {
            s.len() as u64 / 4 * 3
        };
        c.add(pdf_tokens(decoded));
        return;
    };
    let (meta, payload) = rest.split_once(',').unwrap_or((rest, ""));
    if meta.starts_with("image/") {
        let n = match image::base64_image_size(payload) {
            Some((w, h)) => image::image_tokens(w, h, Detail::High),
            None => image::unknown_image_tokens(),
        };
        c.add(n);
    } else {
        c.add(pdf_tokens(payload.len() as u64 / 4 * 3));
    }
}

/// Base64 `data` (an audio clip's, in Chat): an image when its header says so; audio has no
/// published text rate, and is not counted (the estimate errs low there).
fn data(c: &mut Counter<'_>, s: &str) {
    if let Some((w, h)) = image::base64_image_size(s) {
        c.add(image::image_tokens(w, h, Detail::High));
    }
}
