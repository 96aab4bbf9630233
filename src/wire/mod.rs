//! Borrowed, typed views of the public chat APIs (OpenAI Chat Completions and Anthropic
//! Messages; `responses` reads an OpenAI Responses request): one flat struct per wire object,
//! usable both to read a body and to write one.
//!
//! Strings are [`Str`] (borrowed from the input unless the JSON escaped them) and opaque
//! subtrees (JSON Schemas, `cache_control`, tool `input`) are `&RawValue`, so a translation
//! copies only what it changes. Unions the APIs use everywhere (`string | array`) are
//! [`TextOr`]. Top-level request objects see every key so that unknown parameters can be
//! reported instead of silently ignored.

pub mod anthropic;
pub mod chunk;
pub mod openai;
pub mod responses;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// One provider event's JSON, read as `T`. The bytes are checked as UTF-8 once and serde reads
/// them as text: read as bytes, serde checks every string it borrows on its own, which was a
/// fifth of the instructions of reading an OpenAI chunk (callgrind). Invalid UTF-8 falls back
/// to the byte reader, so the error says where, as before.
pub fn from_event<'a, T: Deserialize<'a>>(data: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(data),
    }
}

/// An OpenAI stream chunk: read by hand where [`chunk::read`] can, else by serde (whose answer
/// it always is, error included).
pub fn openai_chunk(data: &[u8]) -> serde_json::Result<openai::Chunk<'_>> {
    match std::str::from_utf8(data) {
        Ok(text) => chunk::read(text).map_or_else(|| serde_json::from_str(text), Ok),
        Err(_) => serde_json::from_slice(data),
    }
}

/// An Anthropic stream event: its deltas read by hand where [`chunk::read_anthropic_event`]
/// can, else (and every other event) by serde, whose answer it always is, error included.
pub fn anthropic_event(data: &[u8]) -> serde_json::Result<anthropic::StreamEvent<'_>> {
    match std::str::from_utf8(data) {
        Ok(text) => {
            chunk::read_anthropic_event(text).map_or_else(|| serde_json::from_str(text), Ok)
        }
        Err(_) => serde_json::from_slice(data),
    }
}

/// A JSON string: borrowed from the input when it contained no escapes; with escapes, the
/// literal as the input wrote it, decoded only when something reads it and written back as
/// it was. Most of an agent's body is long strings (files, tool output, prompts) with an
/// escape every few dozen bytes that a translation only moves: decoding and escaping them
/// again was most of what translating cost (callgrind).
///
/// `#[serde(borrow)] Option<Cow<str>>` never borrows (serde's `Cow` impl always allocates);
/// this type does, also inside `Option` and `Vec`.
#[derive(Clone)]
pub struct Str<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Text(Cow<'a, str>),
    /// A JSON string literal, quotes included, with nothing inside that escaping rewrites:
    /// its text is its inside, and it is written back as it stands.
    Plain(&'a str),
    /// A JSON string literal, quotes included, whose escapes are all single-character ones
    /// (`\n`, `\"`, …: no `\u`, so it always decodes) and whose text is decoded on first read.
    Literal {
        literal: &'a str,
        decoded: std::cell::OnceCell<Box<str>>,
    },
    /// A literal as [`Self::Literal`], made here ([`Str::joined`]). Apart from it, so that a
    /// `Str` (moved by the thousand while a body is read) stays as small.
    Joined {
        literal: Box<str>,
        decoded: std::cell::OnceCell<Box<str>>,
    },
}

impl Default for Str<'_> {
    fn default() -> Self {
        Str(Repr::Text(Cow::Borrowed("")))
    }
}

impl<'a> Str<'a> {
    /// A borrowed view of this string with a shorter lifetime (no copy).
    pub fn reborrow(&self) -> Str<'_> {
        Str(match &self.0 {
            Repr::Text(text) => Repr::Text(Cow::Borrowed(text)),
            Repr::Plain(literal) => Repr::Plain(literal),
            Repr::Literal { literal, decoded } => match decoded.get() {
                Some(text) => Repr::Text(Cow::Borrowed(text)),
                None => Repr::Literal {
                    literal,
                    decoded: std::cell::OnceCell::new(),
                },
            },
            Repr::Joined { literal, decoded } => match decoded.get() {
                Some(text) => Repr::Text(Cow::Borrowed(text)),
                None => Repr::Literal {
                    literal,
                    decoded: std::cell::OnceCell::new(),
                },
            },
        })
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Text(text) => text,
            Repr::Plain(literal) => inside(literal),
            Repr::Literal { literal, decoded } => decoded.get_or_init(|| decode(literal).into()),
            Repr::Joined { literal, decoded } => decoded.get_or_init(|| decode(literal).into()),
        }
    }

    /// The text, borrowed when it can be.
    pub fn into_cow(self) -> Cow<'a, str> {
        match self.0 {
            Repr::Text(text) => text,
            Repr::Plain(literal) => Cow::Borrowed(inside(literal)),
            Repr::Literal { literal, decoded } => Cow::Owned(
                decoded
                    .into_inner()
                    .map_or_else(|| decode(literal), String::from),
            ),
            Repr::Joined { literal, decoded } => Cow::Owned(
                decoded
                    .into_inner()
                    .map_or_else(|| decode(&literal), String::from),
            ),
        }
    }

    /// The text, owned.
    pub fn into_owned(self) -> String {
        self.into_cow().into_owned()
    }

    /// Whether the text is empty (without decoding it: a literal with an escape is not).
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Text(text) => text.is_empty(),
            Repr::Plain(literal) => inside(literal).is_empty(),
            Repr::Literal { .. } | Repr::Joined { .. } => false,
        }
    }

    /// The JSON literal, quotes included, of a string kept as written (None for text): what
    /// serializing it writes.
    #[inline]
    pub(crate) fn literal(&self) -> Option<&str> {
        match &self.0 {
            Repr::Text(_) => None,
            Repr::Plain(literal) | Repr::Literal { literal, .. } => Some(literal),
            Repr::Joined { literal, .. } => Some(literal),
        }
    }

    /// Whether the text is only whitespace (`str::trim`'s), read from a literal without
    /// decoding it where an ASCII byte decides: a tool result or a file is not decoded only
    /// to learn that it has a letter.
    pub fn is_blank(&self) -> bool {
        let Some(literal) = self.literal() else {
            return self.as_str().trim().is_empty();
        };
        let bytes = inside(literal).as_bytes();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i += 1,
                // Of the single-character escapes, these four are whitespace.
                b'\\' if matches!(bytes.get(i + 1), Some(b'n' | b't' | b'r' | b'f')) => i += 2,
                // Unicode whitespace (NBSP, U+2028, …) is decided by the text.
                0x80.. => return self.as_str().trim().is_empty(),
                _ => return false,
            }
        }
        true
    }

    /// The string as a JSON literal, quotes included: a literal as the input wrote it.
    pub fn to_json(&self) -> String {
        match self.literal() {
            Some(literal) => literal.to_owned(),
            None => serde_json::to_string(self.as_str()).unwrap_or_else(|_| "null".into()),
        }
    }

    /// Borrowed from the input (not decoded from it).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Repr::Text(Cow::Borrowed(_)) | Repr::Plain(_))
    }

    /// The string whose JSON token (quotes included) is `json`, as the typed reading makes it
    /// from the same token (None where that reading refuses it).
    #[cfg(test)]
    pub(crate) fn of_token(json: &'a str) -> Option<Str<'a>> {
        Str::of_json::<serde::de::value::Error>(json).ok()
    }

    /// The string whose token `json` a translation's own reader read from checked JSON and
    /// kept (`translate::direct::kept_string`: no `\u` escape, as the typed reading found when
    /// it read the same token): borrowed with no escape, else kept as its literal. Not
    /// [`Str::of_json`], whose look for `\u` asks admission's note of the token crossed last,
    /// which, once a reader has walked on, is another's.
    pub(crate) fn of_kept_token(json: &'a str) -> Option<Str<'a>> {
        Str::of_json_known::<serde::de::value::Error>(json, true).ok()
    }

    /// A string read from its JSON text (the value as the input has it): borrowed when it
    /// has no escape, kept as a literal when its escapes are all single-character ones, and
    /// decoded now when it has a `\u` escape (so that a lone surrogate is refused here, as
    /// serde_json refuses it).
    fn of_json<E: de::Error>(json: &'a str) -> Result<Str<'a>, E> {
        Str::of_json_known(json, false)
    }

    /// [`Str::of_json`], told whether the token is known to hold no `\u` escape.
    fn of_json_known<E: de::Error>(json: &'a str, without_unicode: bool) -> Result<Str<'a>, E> {
        let Some(inner) = json
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        else {
            return Err(E::invalid_type(unexpected(json), &"a string"));
        };
        let first = match crate::json::first_to_escape(inner.as_bytes()) {
            None => return Ok(Str(Repr::Plain(json))),
            // Not a string token as it stands (not from a JSON reader): written escaped.
            Some(k)
                if inner.as_bytes().get(k) != Some(&b'\\')
                    && memchr::memchr(b'\\', inner.as_bytes()).is_none() =>
            {
                return Ok(Str(Repr::Text(Cow::Borrowed(inner))))
            }
            Some(k) => k,
        };
        // Nothing before the first byte found above is an escape. A long token the reader
        // crossed by its note is known not to hold a `\u` when the inspection saw none.
        let rest = inner.as_bytes().get(first..).unwrap_or_default();
        if !without_unicode
            && !crate::json::noted_without_unicode(json)
            && memchr::memmem::find(rest, b"\\u").is_some()
        {
            return crate::json::de::from_str::<String>(json)
                .map(Str::from)
                .map_err(|e| E::custom(without_position(&e)));
        }
        Ok(Str(Repr::Literal {
            literal: json,
            decoded: std::cell::OnceCell::new(),
        }))
    }

    /// `parts` joined by `sep`. Where a part is kept as written, the join is written as JSON
    /// from the parts' own (nothing decoded and escaped again): a system prompt in several
    /// blocks joined into one message.
    pub fn joined(parts: &[&Str<'_>], sep: &str) -> Str<'static> {
        let decoded = || {
            Str::from(
                parts
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(sep),
            )
        };
        if parts.iter().all(|p| matches!(p.0, Repr::Text(_))) {
            return decoded();
        }
        let len = parts.iter().map(|p| p.json_len()).sum::<usize>() + sep.len() * parts.len();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'"');
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                crate::json::write_json_escaped(&mut out, sep);
            }
            match part.literal() {
                Some(literal) => out.extend_from_slice(inside(literal).as_bytes()),
                None => crate::json::write_json_escaped(&mut out, part.as_str()),
            }
        }
        out.push(b'"');
        // A literal holds single-character escapes only: text that escaping wrote a `\u` for
        // (a control character) is joined as text instead.
        if memchr::memmem::find(&out, b"\\u").is_some() {
            return decoded();
        }
        match String::from_utf8(out) {
            Ok(literal) => Str(Repr::Joined {
                literal: literal.into_boxed_str(),
                decoded: std::cell::OnceCell::new(),
            }),
            Err(_) => decoded(),
        }
    }

    /// About how long this string is written as JSON.
    fn json_len(&self) -> usize {
        self.literal().map_or_else(|| self.as_str().len(), str::len)
    }
}

/// A JSON string literal between its quotes (a [`Repr::Plain`] one's text).
fn inside(literal: &str) -> &str {
    literal
        .get(1..literal.len().saturating_sub(1))
        .unwrap_or_default()
}

/// The text of a literal [`Str::of_json`] kept (its escapes always decode).
fn decode(literal: &str) -> String {
    crate::json::de::from_str(literal).unwrap_or_default()
}

/// serde_json's message without its ` at line L column C` (which would count from the start
/// of one value, not of the body; the outer deserializer adds the body's position).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

/// What a JSON value that is not a string is, in serde's words (as serde_json names it).
fn unexpected(json: &str) -> de::Unexpected<'_> {
    match json.as_bytes().first() {
        Some(b'n') => de::Unexpected::Unit,
        Some(b't') => de::Unexpected::Bool(true),
        Some(b'f') => de::Unexpected::Bool(false),
        Some(b'[') => de::Unexpected::Seq,
        Some(b'{') => de::Unexpected::Map,
        _ => {
            if let Ok(n) = json.parse::<u64>() {
                de::Unexpected::Unsigned(n)
            } else if let Ok(n) = json.parse::<i64>() {
                de::Unexpected::Signed(n)
            } else if let Ok(n) = json.parse::<f64>() {
                de::Unexpected::Float(n)
            } else {
                de::Unexpected::Other(json)
            }
        }
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str<'_> {}

impl std::hash::Hash for Str<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl PartialOrd for Str<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Repr::Text(Cow::Borrowed(s)))
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str(Repr::Text(Cow::Owned(s)))
    }
}

impl<'a> From<Cow<'a, str>> for Str<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Str(Repr::Text(s))
    }
}

use crate::json::de::RAW_VALUE_TOKEN;

/// Strings at least this long are escaped here and handed to the serializer as written JSON:
/// serde_json escapes a byte at a time, ~8 instructions a byte, and agent bodies are mostly
/// long strings. Shorter ones are not worth the allocation.
pub(crate) const ESCAPE_HERE_MIN: usize = 64;

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.literal() {
            Some(literal) => serialize_json(literal, s),
            None => serialize_text(self.as_str(), s),
        }
    }
}

/// Serializes `text` as a JSON string: long ones escaped by [`crate::json::write_json_string`],
/// which writes the bytes serde_json would, sixteen bytes at a time.
pub(crate) fn serialize_text<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    if text.len() < ESCAPE_HERE_MIN {
        return s.serialize_str(text);
    }
    let mut written = Vec::with_capacity(text.len() + text.len() / 16 + 32);
    crate::json::write_json_string(&mut written, text);
    // Escaping keeps UTF-8 whole; checked (SIMD, a fraction of the escaping) rather than
    // assumed.
    let Ok(written) = simdutf8::basic::from_utf8(&written) else {
        return s.serialize_str(text);
    };
    serialize_json(written, s)
}

/// Serializes `json`, a JSON string literal, as it is.
fn serialize_json<S: Serializer>(json: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut raw = s.serialize_struct(RAW_VALUE_TOKEN, 1)?;
    raw.serialize_field(RAW_VALUE_TOKEN, json)?;
    raw.end()
}

struct StrVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Str<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
        Ok(Str::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
        Ok(Str::from(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
        Ok(Str::from(v))
    }
}

/// Reads a [`Str`] from its JSON text where the deserializer is serde_json's, else as a
/// plain string.
struct JsonTextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonTextVisitor<'a> {
    type Value = Str<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    /// serde_json hands the value's text over as a map of one entry.
    fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Str<'a>, M::Error> {
        match map.next_key::<RawKey>()? {
            Some(RawKey) => map.next_value_seed(JsonTextSeed(PhantomData)),
            None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Str<'a>, D::Error> {
        d.deserialize_str(StrVisitor(PhantomData))
    }
    // A deserializer that answers a newtype with its string: read as a plain one.
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
        StrVisitor(PhantomData).visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
        StrVisitor(PhantomData).visit_str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
        StrVisitor(PhantomData).visit_string(v)
    }
}

/// The key of serde_json's raw-value map (its token), refused otherwise.
struct RawKey;

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RawKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKey, E> {
                if v == RAW_VALUE_TOKEN {
                    Ok(RawKey)
                } else {
                    Err(E::invalid_type(de::Unexpected::Map, &self))
                }
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// The value of serde_json's raw-value map: the JSON text, borrowed from the input (or owned,
/// from a `serde_json::Value`, and then read at once).
struct JsonTextSeed<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> de::DeserializeSeed<'de> for JsonTextSeed<'a> {
    type Value = Str<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Str<'a>, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Str::of_json(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Str::of_json::<E>(v).map(|s| Str::from(s.into_owned()))
            }
        }
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(RAW_VALUE_TOKEN, JsonTextVisitor(PhantomData))
    }
}

/// The APIs' ubiquitous `string | array` union (message content, `system`, `stop`, tool
/// result content).
#[derive(Clone, Debug)]
pub enum TextOr<'a, T> {
    /// The plain-string form.
    Text(Str<'a>),
    /// The array form.
    Items(Vec<T>),
}

impl<T: Serialize> Serialize for TextOr<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TextOr::Text(t) => t.serialize(s),
            TextOr::Items(v) => s.collect_seq(v),
        }
    }
}

struct TextOrVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for TextOrVisitor<'a, T> {
    type Value = TextOr<'a, T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(TextOr::Text(Str::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TextOr::Text(Str::from(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(TextOr::Text(Str::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The size hint comes from the input; cap it so a lying hint cannot reserve memory.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(TextOr::Items(items))
    }
}

/// Reads a `string | array` in one pass where the deserializer is the fast reader
/// ([`crate::json::de`]): the string form is then a [`Str`] kept as written (see there), the
/// array form a sequence. Where it is serde_json's, from its JSON text: the string form the
/// same, the array form read from that text, so the array's bytes are read twice (for a value
/// that is mostly arrays, an Anthropic message's content blocks, [`text_or_any`] reads it once
/// instead).
impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for TextOr<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entry = TextOrEntry {
            decoded_once: false,
            of: PhantomData,
        };
        d.deserialize_newtype_struct(crate::json::de::TEXT_OR_TOKEN, entry)
    }
}

/// [`TextOr`]'s first visitor: the fast reader answers its token with the string's text (as
/// serde_json's raw map: kept as written) or the array; any other deserializer calls it a
/// newtype, and is then asked for the value's JSON text, or (`decoded_once`, for
/// [`text_or_any`]) for the value, read once with its string decoded.
struct TextOrEntry<'a, T> {
    decoded_once: bool,
    of: PhantomData<(&'a (), T)>,
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for TextOrEntry<'a, T> {
    type Value = TextOr<'a, T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array")
    }
    fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
        TextOrJsonVisitor(PhantomData).visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        TextOrVisitor(PhantomData).visit_seq(seq)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.decoded_once {
            d.deserialize_any(TextOrVisitor(PhantomData))
        } else {
            d.deserialize_newtype_struct(RAW_VALUE_TOKEN, TextOrJsonVisitor(PhantomData))
        }
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        TextOrVisitor(PhantomData).visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        TextOrVisitor(PhantomData).visit_str(v)
    }
}

/// Reads a `string | array` in one pass (for `deserialize_with`): with the fast reader as
/// [`TextOr`] does; with serde_json, its string form decoded rather than its array read twice.
pub(crate) fn text_or_any<'de: 'a, 'a, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<TextOr<'a, T>, D::Error> {
    let entry = TextOrEntry {
        decoded_once: true,
        of: PhantomData,
    };
    d.deserialize_newtype_struct(crate::json::de::TEXT_OR_TOKEN, entry)
}

struct TextOrJsonVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for TextOrJsonVisitor<'a, T> {
    type Value = TextOr<'a, T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array")
    }
    /// serde_json hands the value's text over as a map of one entry.
    fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        match map.next_key::<RawKey>()? {
            Some(RawKey) => map.next_value_seed(TextOrJsonSeed(PhantomData)),
            None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TextOrVisitor(PhantomData))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        TextOrVisitor(PhantomData).visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        TextOrVisitor(PhantomData).visit_str(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        TextOrVisitor(PhantomData).visit_seq(seq)
    }
}

/// Arrays read from their text may nest in each other (tool results hold blocks that hold
/// tool results): serde_json's depth limit counts each reading afresh, so this bounds how many
/// are open at once. A body the gateway admits is at most [`crate::json::MAX_JSON_DEPTH`] deep,
/// which is at most half as many of them.
const MAX_NESTED_READS: u32 = (crate::json::MAX_JSON_DEPTH / 2) as u32;

thread_local! {
    static NESTED_READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs one nested reading, or refuses it past [`MAX_NESTED_READS`].
fn nested<R, E: de::Error>(read: impl FnOnce() -> Result<R, E>) -> Result<Result<R, E>, E> {
    let open = NESTED_READS.with(std::cell::Cell::get);
    if open >= MAX_NESTED_READS {
        return Err(E::custom("recursion limit exceeded"));
    }
    NESTED_READS.with(|n| n.set(open + 1));
    let result = read();
    NESTED_READS.with(|n| n.set(open));
    Ok(result)
}

/// The value of serde_json's raw-value map for a `string | array`.
struct TextOrJsonSeed<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> de::DeserializeSeed<'de> for TextOrJsonSeed<'a, T> {
    type Value = TextOr<'a, T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct JsonVisitor<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for JsonVisitor<'a, T> {
            type Value = TextOr<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_borrowed_str<E: de::Error>(self, json: &'de str) -> Result<Self::Value, E> {
                match json.as_bytes().first() {
                    Some(b'"') => Str::of_json(json).map(TextOr::Text),
                    // Where an element fails, serde_json counts from the array's start: the
                    // message keeps its words, the outer reader adds the body's position.
                    Some(b'[') => nested(|| {
                        crate::json::de::from_str::<Vec<T>>(json)
                            .map(TextOr::Items)
                            .map_err(|e| E::custom(without_position(&e)))
                    })?,
                    _ => Err(E::invalid_type(unexpected(json), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, json: &str) -> Result<Self::Value, E> {
                // Owned text (from a `serde_json::Value`): a string reads; elements could
                // not borrow from it.
                match Str::of_json::<E>(json) {
                    Ok(text) => Ok(TextOr::Text(Str::from(text.into_owned()))),
                    Err(_) => Err(E::invalid_type(unexpected(json), &self)),
                }
            }
        }
        d.deserialize_str(JsonVisitor(PhantomData))
    }
}

/// Where the elements of a request's conversation go as the body is read (the key a
/// [`top_level_seed`] struct marks `lazy`): each element, typed, is handed over and dropped
/// before the next is read, so a conversation of a million tiny messages is never held typed
/// (typed whole it costs tens of times its bytes). The body is still read in one pass with
/// the very types (and so the very errors) a typed read of the whole has.
pub(crate) trait Sink<'de, T> {
    /// Element `i` of the array form.
    fn element(&mut self, i: usize, element: T);
    /// The string form (for a `string | array` key).
    fn text(&mut self, _text: Str<'de>) {}
    /// The key came again: what its earlier value gave is void (the last value counts, as in
    /// a typed read).
    fn restart(&mut self);
    /// Whether the sink may have kept what an earlier conversation's elements made: the fast
    /// reader then hands it the first element's JSON ([`Sink::resume`]) and says where the
    /// elements end ([`Sink::end`]).
    fn keeps(&self) -> bool {
        false
    }
    /// `first` (the first element's JSON, a slice of the body) opens elements the sink kept
    /// what it made of, byte for byte: it is as if it had been handed them. It returns how
    /// many, and how many bytes they span from `first`'s start (their reading is skipped).
    /// 0 elements: none, and `first` is handed over as usual.
    fn resume(&mut self, _first: &'de str) -> (usize, usize) {
        (0, 0)
    }
    /// Every element was handed over or resumed: `count` of them.
    fn end(&mut self, _count: usize) {}
}

/// A sink that keeps nothing.
pub(crate) struct Discard;

impl<T> Sink<'_, T> for Discard {
    fn element(&mut self, _: usize, _: T) {}
    fn restart(&mut self) {}
}

/// The lazy key was present (not `null`): its value went to the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Read;

/// Reads an optional lazy value into a sink: `null` is absent, as for `Option<…>`.
pub(crate) struct LazySeed<'s, 'de, T> {
    pub(crate) sink: &'s mut dyn Sink<'de, T>,
    /// The value may also be a string (`string | array`).
    pub(crate) text: bool,
}

impl<'de, T: Deserialize<'de>> de::DeserializeSeed<'de> for LazySeed<'_, 'de, T> {
    type Value = Option<Read>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Read>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for LazySeed<'_, 'de, T> {
    type Value = Option<Read>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("option")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<Read>, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<Read>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Read>, D::Error> {
        let value = ElementsVisitor {
            sink: self.sink,
            text: self.text,
            _t: PhantomData,
        };
        if self.text {
            // `TextOr`'s reader: a string or an array.
            d.deserialize_any(value).map(Some)
        } else {
            // `Vec`'s reader: an array.
            d.deserialize_seq(value).map(Some)
        }
    }
}

struct ElementsVisitor<'s, 'de, T> {
    sink: &'s mut dyn Sink<'de, T>,
    text: bool,
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ElementsVisitor<'_, 'de, T> {
    type Value = Read;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The words of the typed readers (`Vec`, `TextOr`): the errors read as theirs did.
        f.write_str(if self.text {
            "a string or an array"
        } else {
            "a sequence"
        })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Read, E> {
        if !self.text {
            return Err(de::Error::invalid_type(de::Unexpected::Str(v), &self));
        }
        self.sink.text(Str::from(v));
        Ok(Read)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read, E> {
        if !self.text {
            return Err(de::Error::invalid_type(de::Unexpected::Str(v), &self));
        }
        self.sink.text(Str::from(v.to_owned()));
        Ok(Read)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Read, A::Error> {
        let mut i = 0usize;
        // Only the fast reader hands elements over raw: a sink's kept elements are only ever
        // ones it read (serde_json, which words the errors, reads every element).
        if self.sink.keeps() && crate::json::de::fast() {
            let Some(first) = seq.next_element::<&'de serde_json::value::RawValue>()? else {
                self.sink.end(0);
                return Ok(Read);
            };
            let (kept, bytes) = self.sink.resume(first.get());
            i = kept;
            if i == 0 {
                // Read typed where it lies, as the loop below reads the others; one that does
                // not read has the whole body read again by serde_json, for its error.
                let element = crate::json::de::from_str::<T>(first.get())
                    .map_err(|_| de::Error::custom("left to serde_json"))?;
                self.sink.element(0, element);
                i = 1;
            }
            // The rest of the kept ones: the very bytes they were, crossed, not read.
            if i > 1 {
                let end = first.get().as_ptr().addr().saturating_add(bytes);
                if seq
                    .next_element_seed(crate::json::de::SkipTo(end))?
                    .is_none()
                {
                    return Err(de::Error::custom("a kept conversation ended early"));
                }
            }
        }
        while let Some(element) = seq.next_element::<T>()? {
            self.sink.element(i, element);
            i += 1;
        }
        self.sink.end(i);
        Ok(Read)
    }
}

/// A JSON object key, borrowed when unescaped. Used by the hand-written top-level visitors.
pub(crate) struct Key<'a>(pub Str<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(PhantomData)).map(Key)
    }
}

/// Top-level request parsing failed: which key was being read (if any) and why.
#[derive(Debug)]
pub struct ParseError {
    /// The top-level key whose value did not fit the API's type, if the failure was inside one.
    pub key: Option<String>,
    /// serde_json's description (with line/column).
    pub error: serde_json::Error,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "invalid value for `{k}`: {}", self.error),
            None => write!(f, "invalid JSON body: {}", self.error),
        }
    }
}

impl std::error::Error for ParseError {}

/// Generates a `DeserializeSeed` for a top-level request struct: each listed key is read into
/// its typed field in one pass; every other key lands in `unknown` (name, raw value); the key
/// being read when a value fails to parse is recorded for the error message.
///
/// The key listed under `lazy` (the conversation) is read element by element into a [`Sink`]
/// (`seq`: an array, as `Vec<T>`; `text_or`: a string or an array, as `TextOr`); its field
/// says only whether it was there.
///
/// The key listed under `either` is read as its JSON into the second field (a translation may
/// have kept what it made of those bytes), or, by a seed made `typed`, into the first, typed
/// (the reading whose error is the one given); the third field says the key came twice.
macro_rules! top_level_seed {
    ($seed:ident, $ty:ident, { $($name:literal => $field:ident),* $(,)? },
     $(either $ename:literal => $efield:ident | $eraw:ident | $etwice:ident,
       read by $eread:ident as $eelem:ident,)?
     lazy $lname:literal => $lfield:ident : $form:ident $elem:ident) => {
        /// `E`: what the conversation's elements are read as (typed, or a span of JSON).
        pub(crate) struct $seed<'f, 's, 'de, E> {
            pub(crate) failed_key: &'f mut Option<String>,
            pub(crate) sink: &'s mut dyn $crate::wire::Sink<'de, E>,
            /// The `either` key read typed, not as its JSON.
            #[allow(dead_code, reason = "read where a key is `either`")]
            pub(crate) typed: bool,
        }

        impl<'de, E: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for $seed<'_, '_, 'de, E> {
            type Value = $ty<'de>;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<$ty<'de>, D::Error> {
                d.deserialize_map(self)
            }
        }

        impl<'de, E: serde::Deserialize<'de>> serde::de::Visitor<'de> for $seed<'_, '_, 'de, E> {
            type Value = $ty<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<$ty<'de>, M::Error> {
                let mut out = $ty::default();
                let sink = self.sink;
                let mut seen = false;
                #[allow(unused_mut, unused_variables, reason = "used where a key is `either`")]
                let mut either_seen = false;
                while let Some(key) = map.next_key::<$crate::wire::Key<'de>>()? {
                    let key = key.0;
                    let res = match key.as_str() {
                        $( $name => map.next_value().map(|v| out.$field = v), )*
                        $( $ename => {
                            out.$etwice |= std::mem::replace(&mut either_seen, true);
                            if self.typed {
                                map.next_value().map(|v| out.$efield = v)
                            } else {
                                map.next_value().map(|v| out.$eraw = v)
                            }
                        } )?
                        $lname => {
                            if seen {
                                sink.restart();
                            }
                            seen = true;
                            map.next_value_seed($crate::wire::LazySeed {
                                sink: &mut *sink,
                                text: top_level_seed!(@text $form),
                            })
                            .map(|v| out.$lfield = v)
                        }
                        _ => map
                            .next_value::<&'de serde_json::value::RawValue>()
                            .map(|v| out.unknown.push((key.clone(), v))),
                    };
                    if let Err(e) = res {
                        *self.failed_key = Some(key.as_str().to_owned());
                        return Err(e);
                    }
                }
                Ok(out)
            }
        }

        impl<'de> $ty<'de> {
            /// Parses a request body in one pass, keeping unknown top-level keys in `unknown`
            /// and naming the key whose value failed to parse; the conversation's elements go
            /// to `sink` as they are read.
            pub(crate) fn parse_into<E: serde::Deserialize<'de>>(
                body: &'de [u8],
                sink: &mut dyn $crate::wire::Sink<'de, E>,
            ) -> Result<Self, $crate::wire::ParseError> {
                // UTF-8 checked once, with SIMD (here, or by admission: `json::Checked`): the
                // readers then read text, which they do not check again string by string.
                // Invalid UTF-8 goes to serde_json's byte reader, whose error says where.
                let Some(text) = $crate::json::known_text(body)
                    .or_else(|| simdutf8::basic::from_utf8(body).ok())
                else {
                    return Self::parse_with(serde_json::Deserializer::from_slice(body), sink, false);
                };
                // The fast reader first; where it refuses, what it gave the sink is void and
                // serde_json reads the body again (its answer, error included, is the one).
                let mut failed_key = None;
                let fast = $crate::json::de::read(text, |r| {
                    serde::de::DeserializeSeed::deserialize(
                        $seed { failed_key: &mut failed_key, sink: &mut *sink, typed: false },
                        r,
                    )
                });
                if let Some(value) = fast {
                    return Ok(value);
                }
                sink.restart();
                $crate::json::de::reference_only(|| {
                    Self::parse_with(serde_json::Deserializer::from_str(text), sink, false)
                })
            }

            /// The error reading `body` with the `either` key typed gives (serde_json's), if
            /// any: the one given for a body read otherwise.
            #[allow(dead_code, reason = "used where a key is `either`")]
            pub(crate) fn typed_error(body: &'de [u8]) -> Option<$crate::wire::ParseError> {
                $crate::json::de::reference_only(|| {
                    Self::parse_with::<_, $elem<'de>>(
                        serde_json::Deserializer::from_slice(body),
                        &mut $crate::wire::Discard,
                        true,
                    )
                })
                .err()
            }

            /// [`Self::parse_into`] with the `either` key typed.
            #[allow(dead_code, reason = "used where a key is `either`")]
            pub(crate) fn parse_typed<E: serde::Deserialize<'de>>(
                body: &'de [u8],
                sink: &mut dyn $crate::wire::Sink<'de, E>,
            ) -> Result<Self, $crate::wire::ParseError> {
                $crate::json::de::reference_only(|| {
                    Self::parse_with(serde_json::Deserializer::from_slice(body), sink, true)
                })
            }

            fn parse_with<R: serde_json::de::Read<'de>, E: serde::Deserialize<'de>>(
                mut de: serde_json::Deserializer<R>,
                sink: &mut dyn $crate::wire::Sink<'de, E>,
                typed: bool,
            ) -> Result<Self, $crate::wire::ParseError> {
                let mut failed_key = None;
                let res = serde::de::DeserializeSeed::deserialize(
                    $seed { failed_key: &mut failed_key, sink, typed },
                    &mut de,
                );
                let value = match res {
                    Ok(v) => v,
                    Err(error) => return Err($crate::wire::ParseError { key: failed_key, error }),
                };
                de.end().map_err(|error| $crate::wire::ParseError { key: None, error })?;
                Ok(value)
            }

            /// [`Self::parse_into`] keeping nothing of the conversation.
            pub fn parse(body: &'de [u8]) -> Result<Self, $crate::wire::ParseError> {
                Self::parse_into::<$elem<'de>>(body, &mut $crate::wire::Discard)
            }
        }

        $(
        impl<'de> $ty<'de> {
            /// [`Self::parse_into`] with the `either` key kept as its JSON, answering as reading
            /// the body with it typed answers: the same error (that key not reading, before a
            /// later key that does not either, is the one named), and a body naming the key
            /// twice read typed, each checked.
            pub(crate) fn read_into<E: serde::Deserialize<'de>>(
                body: &'de [u8],
                sink: &mut dyn $crate::wire::Sink<'de, E>,
            ) -> Result<Self, $crate::wire::ParseError> {
                // A body the reading with the key as JSON refuses is read typed: its error is
                // that reading's, and one it takes (serde_json checks a raw value's UTF-8
                // whole, not a skipped field's) is taken.
                match Self::parse_into(body, sink) {
                    Ok(req) if !req.$etwice => Ok(req),
                    _ => {
                        sink.restart();
                        Self::parse_typed(body, sink)
                    }
                }
            }

            /// The `either` key's value read from its JSON. Its error is the one reading the
            /// body with the key typed gives (the first key that does not read, where in the
            /// body): `body` is the text this request was read from.
            pub fn $eread(
                &mut self,
                body: &'de [u8],
            ) -> Result<Option<Vec<$eelem<'de>>>, $crate::wire::ParseError> {
                let Some(json) = self.$eraw else {
                    // Read typed already, or absent.
                    return Ok(self.$efield.take());
                };
                $crate::json::de::from_str(json.get()).map(Some).map_err(|error| {
                    Self::typed_error(body).unwrap_or($crate::wire::ParseError {
                        key: Some($ename.to_owned()),
                        error,
                    })
                })
            }
        }
        )?
    };
    (@text seq) => { false };
    (@text text_or) => { true };
}
pub(crate) use top_level_seed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_crossed_by_its_note_reads_as_one_scanned() {
        #[derive(serde::Deserialize)]
        struct R<'a> {
            #[serde(borrow)]
            a: Str<'a>,
            #[serde(borrow)]
            b: Str<'a>,
            #[serde(borrow)]
            c: Str<'a>,
            #[serde(borrow)]
            d: Str<'a>,
        }
        // Each member's text thirty times over: long enough to be noted.
        let members: Vec<String> = [
            ("a", "caf\\u00e9 \\n"),
            ("b", "a\\\\u00e9 "),
            ("c", "line\\n"),
            ("d", "\\ud83d\\ude00 ok"),
        ]
        .iter()
        .map(|(k, text)| format!(r#""{k}":"{}""#, text.repeat(30)))
        .collect();
        let body = format!(r#"{{"model":"m",{}}}"#, members.join(","));
        let info = crate::json::inspect_request(body.as_bytes()).unwrap();
        let plain: R<'_> = crate::json::de::from_str(&body).unwrap();
        let used = crate::json::notes_used();
        let noted: R<'_> = crate::json::with_notes(body.as_bytes(), &info.strings, || {
            crate::json::de::from_str(&body).unwrap()
        });
        assert!(crate::json::notes_used() - used >= 4);
        let want: serde_json::Value = serde_json::from_str(&body).unwrap();
        for (k, p, n) in [
            ("a", &plain.a, &noted.a),
            ("b", &plain.b, &noted.b),
            ("c", &plain.c, &noted.c),
            ("d", &plain.d, &noted.d),
        ] {
            assert_eq!(p.as_str(), want[k].as_str().unwrap(), "{k}");
            assert_eq!(n.as_str(), p.as_str(), "{k}");
        }
        // With a `\u` escape (`d` a surrogate pair): decoded now either way. A backslash
        // before `u` is no such escape: the note knows it, where the search of the token
        // without one takes it for one and decodes.
        assert!(noted.a.literal().is_none() && noted.d.literal().is_none());
        assert!(noted.b.literal().is_some() && plain.b.literal().is_none());
        assert!(noted.c.literal().is_some() && plain.c.literal().is_some());
    }

    #[test]
    fn str_borrows_unescaped_and_owns_escaped() {
        let v: Vec<Str<'_>> = serde_json::from_str(r#"["plain","es\"caped"]"#).unwrap();
        assert!(v[0].is_borrowed());
        assert!(!v[1].is_borrowed());
        assert_eq!(&*v[1], "es\"caped");
        let o: Option<Str<'_>> = serde_json::from_str(r#""x""#).unwrap();
        assert!(o.unwrap().is_borrowed());
    }

    /// Long strings are escaped here and written through serde_json's raw-value path: the
    /// bytes must be serde_json's own, inside structures and into a `Value` too (which parses
    /// what the raw path hands it).
    #[test]
    fn long_strings_serialize_as_serde_json_writes_them() {
        let long = "line \"one\"\n\tback\\slash \u{1} é 😀 ".repeat(9);
        assert!(long.len() >= ESCAPE_HERE_MIN);
        for text in [long.as_str(), "short \"one\"\n"] {
            let want = serde_json::to_string(text).unwrap();
            let s = Str::from(text);
            assert_eq!(serde_json::to_string(&s).unwrap(), want);
            let t: TextOr<'_, Str<'_>> = TextOr::Text(Str::from(text));
            assert_eq!(serde_json::to_string(&t).unwrap(), want);
            let nested = serde_json::to_string(&vec![Some(Str::from(text))]).unwrap();
            assert_eq!(nested, format!("[{want}]"));
            assert_eq!(
                serde_json::to_value(&s).unwrap(),
                serde_json::Value::String(text.to_owned())
            );
        }
    }

    /// A string with single-character escapes is kept as the input wrote it: read as its
    /// text, written back byte for byte. One with a `\u` escape is decoded at once (a lone
    /// surrogate refused there, as serde_json refuses it); a value that is no string is
    /// refused in serde_json's words; a `Value` reads as one too.
    #[test]
    fn escaped_strings_stay_as_written() {
        let v: Vec<Str<'_>> =
            serde_json::from_str(r#"["a\/b\n\"c\"", "\u00e9t\u00e9", "plain"]"#).unwrap();
        assert!(matches!(v[0].0, Repr::Literal { .. }));
        assert_eq!(v[0].as_str(), "a/b\n\"c\"");
        assert!(!v[0].is_empty());
        assert_eq!(v[0].reborrow().as_str(), "a/b\n\"c\"");
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["a\/b\n\"c\"","été","plain"]"#
        );
        assert_eq!(v[0].clone().into_owned(), "a/b\n\"c\"");
        assert_eq!(v[1].as_str(), "été");
        let lone = serde_json::from_str::<Vec<Str<'_>>>(r#"["\ud800"]"#).unwrap_err();
        let theirs = serde_json::from_str::<Vec<String>>(r#"["\ud800"]"#).unwrap_err();
        assert_eq!(without_position(&lone), without_position(&theirs));
        for (json, says) in [
            ("[5]", "invalid type: integer `5`, expected a string"),
            ("[-5]", "invalid type: integer `-5`, expected a string"),
            (
                "[1.5]",
                "invalid type: floating point `1.5`, expected a string",
            ),
            ("[true]", "invalid type: boolean `true`, expected a string"),
            ("[null]", "invalid type: null, expected a string"),
            ("[{}]", "invalid type: map, expected a string"),
            ("[[]]", "invalid type: sequence, expected a string"),
        ] {
            let ours = serde_json::from_str::<Vec<Str<'_>>>(json).unwrap_err();
            let theirs = serde_json::from_str::<Vec<String>>(json).unwrap_err();
            assert!(ours.to_string().starts_with(says), "{ours}");
            assert!(theirs.to_string().starts_with(says), "{theirs}");
        }
        let value = serde_json::json!({"k": "x\ny"});
        let from_value = Str::deserialize(&value["k"]).unwrap();
        assert_eq!(from_value.as_str(), "x\ny");
    }

    /// Every form a string is kept in reads as its text, writes JSON of its text, and is
    /// blank as `str::trim` says.
    #[test]
    fn every_form_of_a_string_reads_writes_and_is_blank_as_its_text() {
        let alphabet = [
            " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "a", "\"", "\\", "/", "\u{8}", "\u{a0}",
            "\u{2028}", "é",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        let (mut literals, mut plain) = (0, 0);
        for text in &texts {
            // As serde_json escapes it, and with `\f` and `\/` as other writers do.
            let escaped = serde_json::to_string(text).unwrap();
            let other = escaped.replace("\\u000c", "\\f").replace('/', "\\/");
            for json in [escaped, other] {
                let s: Str<'_> = serde_json::from_str(&json).unwrap();
                literals += usize::from(matches!(s.0, Repr::Literal { .. }));
                plain += usize::from(matches!(s.0, Repr::Plain(_)));
                assert_eq!(s.is_blank(), text.trim().is_empty(), "{json}");
                assert_eq!(s.as_str(), text);
                let written = serde_json::to_string(&s).unwrap();
                assert_eq!(serde_json::from_str::<String>(&written).unwrap(), *text);
                let again: String = serde_json::from_str(&s.to_json()).unwrap();
                assert_eq!(&again, text);
            }
        }
        assert!(literals > texts.len() / 2, "{literals} literals");
        assert!(plain > texts.len() / 10, "{plain} plain");
    }

    /// Strings joined from parts kept as written are written from the parts' JSON: the same
    /// text and the same bytes out as joining the decoded texts; a text part that escapes
    /// to a `\u` (a control character) is joined as text.
    #[test]
    fn joined_strings_are_the_join_of_their_texts() {
        let parts: Vec<Str<'_>> = serde_json::from_str(
            r#"["line one\nline \"two\"", "plain", "tab\there", "\u00e9t\u00e9"]"#,
        )
        .unwrap();
        let mut cases: Vec<Vec<Str<'_>>> = vec![parts.clone()];
        cases.push(vec![
            parts[1].clone(),
            Str::from("a\u{1}b"),
            parts[0].clone(),
        ]);
        cases.push(vec![parts[1].clone(), parts[3].clone()]);
        cases.push(vec![Str::from("é\"x"), parts[2].clone(), Str::from("")]);
        for case in &cases {
            for sep in ["\n", "", " \" "] {
                let refs: Vec<&Str<'_>> = case.iter().collect();
                let joined = Str::joined(&refs, sep);
                let texts: Vec<&str> = case.iter().map(|p| p.as_str()).collect();
                let want = texts.join(sep);
                assert_eq!(
                    serde_json::to_string(&joined).unwrap(),
                    serde_json::to_string(&want).unwrap()
                );
                assert_eq!(joined.as_str(), want);
            }
        }
        let refs: Vec<&Str<'_>> = cases[0].iter().collect();
        assert!(matches!(Str::joined(&refs, "\n").0, Repr::Joined { .. }));
        let refs: Vec<&Str<'_>> = cases[1].iter().collect();
        assert!(matches!(Str::joined(&refs, "\n").0, Repr::Text(_)));
    }

    /// Arrays read from their own text nest without bound in serde_json's count: a block
    /// nested thousands deep is refused, not a stack overflow; one nested a few deep reads.
    #[test]
    fn nested_array_reads_are_bounded() {
        use crate::wire::anthropic::ContentBlock;
        let nest = |depth: usize| {
            let mut json = String::from(r#"{"type":"text","text":"x"}"#);
            for _ in 0..depth {
                json = format!(r#"{{"type":"tool_result","content":[{json}]}}"#);
            }
            json
        };
        let deep = nest(5000);
        let err = serde_json::from_str::<ContentBlock<'_>>(&deep).unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
        let shallow = nest(10);
        let block: ContentBlock<'_> = serde_json::from_str(&shallow).unwrap();
        assert_eq!(serde_json::to_string(&block).unwrap(), shallow);
    }

    #[test]
    fn text_or_reads_both_forms() {
        let t: TextOr<'_, Str<'_>> = serde_json::from_str(r#""a""#).unwrap();
        assert!(matches!(t, TextOr::Text(ref s) if &**s == "a"));
        let t: TextOr<'_, Str<'_>> = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(matches!(t, TextOr::Items(ref v) if v.len() == 2));
        assert!(serde_json::from_str::<TextOr<'_, Str<'_>>>("1").is_err());
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"["a","b"]"#);
    }

    /// `from_event` against serde's byte reader, the reference: the same result (value or
    /// error) for real chunks and events, non-ASCII text, escapes, and every one-byte change of
    /// them (invalid UTF-8, broken syntax, bytes that open or close strings).
    #[test]
    fn from_event_reads_like_the_byte_reader() {
        use crate::wire::anthropic::StreamEvent;
        use crate::wire::openai::Chunk;
        let samples: [&[u8]; 5] = [
            br#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"H\u00e9llo \"x\"","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"ab"}"#,
            "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"déjà vu 🦀\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}".as_bytes(),
            br#"{"error":{"message":"over","type":"server_error","code":"x"}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf\u00e9"}}"#,
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
        ];
        fn same<'a, T: Deserialize<'a> + fmt::Debug>(data: &'a [u8]) {
            let fast = from_event::<T>(data).map(|v| format!("{v:?}"));
            let reference = serde_json::from_slice::<T>(data).map(|v| format!("{v:?}"));
            match (&fast, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(data)),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "{fast:?} vs {reference:?}: {}",
                    String::from_utf8_lossy(data)
                ),
            }
        }
        let mut checked = 0;
        for sample in samples {
            for at in 0..sample.len() {
                for byte in [b'"', b'\\', 0xff, 0xc3, b'}', b' ', b'x', 0x01] {
                    let mut data = sample.to_vec();
                    data[at] = byte;
                    same::<Chunk<'_>>(&data);
                    same::<StreamEvent<'_>>(&data);
                    checked += 1;
                }
            }
            same::<Chunk<'_>>(sample);
            same::<StreamEvent<'_>>(sample);
        }
        assert!(checked > 2000);
        // The samples themselves read (the loop above would pass on two errors).
        assert!(from_event::<Chunk<'_>>(samples[0]).is_ok());
        assert!(from_event::<StreamEvent<'_>>(samples[3]).is_ok());
    }
}
