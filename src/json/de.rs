//! The fast reader: a serde deserializer over UTF-8-checked text that crosses strings sixteen
//! bytes at a time (the scanner's mask), where serde_json stops at every escape an agent's
//! files and tool output are full of. It makes the visitor calls serde_json's deserializer
//! makes; anything it is unsure of (an error, a number that is not a plain integer past what
//! it parses itself, deep nesting, 128-bit integers) it refuses, and [`from_str`] and the
//! request readers then read the text again with serde_json, whose answer (value or error,
//! with its words and position) is always the one given. A refusal costs time, never a
//! different answer: `tests.rs` and `fuzz/fuzz_targets/json_reader.rs` compare the two.

use std::cell::Cell;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::escape::unescape;
use super::scan::Scanner;

/// The struct name serde_json's `RawValue` goes by: a serde_json serializer writes the one
/// field of a struct by this name as it is (JSON already), and a serde_json deserializer (and
/// this reader) asked for a newtype struct by this name hands over the value's JSON text. Any
/// other (de)serializer sees an ordinary name: `wire::Str` then reads and writes plain strings.
pub(crate) const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The struct name `wire::TextOr` (a `string | array`) asks for: this reader answers it with
/// the string's JSON text (as for [`RAW_VALUE_TOKEN`]) or with the array, read in place; for
/// any other deserializer it is an ordinary newtype name.
pub(crate) const TEXT_OR_TOKEN: &str = "$ringway::TextOr";

/// The struct name [`SkipTo`] asks for: this reader answers it by moving its cursor to the
/// address [`SkipTo`] names; any other deserializer refuses it.
const SKIP_TOKEN: &str = "$ringway::SkipTo";

/// Containers open at once before the reader leaves a document to serde_json (whose own
/// limit is 127: below it, so a document this reader takes is one serde_json takes).
const MAX_DEPTH: u32 = 120;

/// The reader's errors are serde_json's type (the visitors' errors pass through it), but they
/// are never shown: every one sends the text to serde_json.
type Error = serde_json::Error;

fn refuse() -> Error {
    de::Error::custom("left to serde_json")
}

thread_local! {
    /// Set by [`reference_only`]: every read goes to serde_json.
    static REFERENCE_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Reads this thread's fast reader refused (see [`refused`]).
    static REFUSED: Cell<u64> = const { Cell::new(0) };
    /// Fast reads running on this thread now (see [`fast`]).
    static READING: Cell<u32> = const { Cell::new(0) };
    /// The address [`SkipTo`] moves the cursor to while it is read (0: none).
    static SKIP_TO: Cell<usize> = const { Cell::new(0) };
}

/// How many reads the fast reader refused on this thread so far (left to serde_json): a
/// test's way to tell that the fast path did the reading.
pub fn refused() -> u64 {
    REFUSED.with(Cell::get)
}

/// Runs `f` with every read of this module's callers done by serde_json alone: the plain
/// path the fast one is compared with (differential tests, the fuzz target).
pub fn reference_only<R>(f: impl FnOnce() -> R) -> R {
    let before = REFERENCE_ONLY.with(|r| r.replace(true));
    let out = f();
    REFERENCE_ONLY.with(|r| r.set(before));
    out
}

/// Whether what is being deserialized on this thread is read by the fast reader (within
/// [`read`], and not within [`reference_only`], which serde_json reads under): the only
/// reader that hands a conversation's elements to a sink that may take some as kept.
pub(crate) fn fast() -> bool {
    READING.with(Cell::get) > 0 && !REFERENCE_ONLY.with(Cell::get)
}

/// An array's elements crossed without reading them: the fast reader's cursor moves to the
/// address `0.0` (in the text it reads), which the caller vouches is the end of a whole
/// element of the array being read, its bytes those of elements read before (a sink's kept
/// conversation, `wire::Sink::resume`). Read as the array's next element; any reader other
/// than the fast one, or an address not past the cursor within the text, refuses it.
pub(crate) struct SkipTo(pub usize);

impl<'de> DeserializeSeed<'de> for SkipTo {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct Moved;
        impl<'de> Visitor<'de> for Moved {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the fast reader")
            }
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                Ok(())
            }
        }
        SKIP_TO.with(|s| s.set(self.0));
        let moved = d.deserialize_newtype_struct(SKIP_TOKEN, Moved);
        SKIP_TO.with(|s| s.set(0));
        moved
    }
}

/// Reads `T` from `text` as `serde_json::from_str` does, fast where it can.
pub fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> serde_json::Result<T> {
    match read(text, |r| T::deserialize(r)) {
        Some(value) => Ok(value),
        None => reference_only(|| serde_json::from_str(text)),
    }
}

/// Runs `f` over a fast reader of `text` and checks nothing follows the value. None: the
/// reader refused somewhere (or [`reference_only`] is on), and the caller reads the text
/// again with serde_json under [`reference_only`] (so that what it reads inside, such as
/// `TextOr`'s arrays, is serde_json's too, and no deeper than before), after undoing what `f`
/// did on the way.
pub fn read<'de, T>(
    text: &'de str,
    f: impl FnOnce(&mut Reader<'de>) -> Result<T, Error>,
) -> Option<T> {
    if REFERENCE_ONLY.with(Cell::get) {
        return None;
    }
    let mut r = Reader {
        s: Scanner::new(text.as_bytes(), 0),
        text,
        depth: 0,
    };
    /// Counts the read out, also when `f` unwinds (a helper thread lives on).
    struct Reading;
    impl Drop for Reading {
        fn drop(&mut self) {
            READING.with(|n| n.set(n.get().saturating_sub(1)));
        }
    }
    READING.with(|n| n.set(n.get().saturating_add(1)));
    let reading = Reading;
    let value = f(&mut r).ok();
    drop(reading);
    let value = value.and_then(|value| {
        r.s.ws();
        (r.s.i == text.len()).then_some(value)
    });
    if value.is_none() {
        REFUSED.with(|n| n.set(n.get() + 1));
    }
    value
}

/// The fast reader's state: a cursor and how many containers are open.
pub struct Reader<'de> {
    s: Scanner<'de>,
    text: &'de str,
    depth: u32,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("at", &self.s.i).finish()
    }
}

impl<'de> Reader<'de> {
    /// The next byte after whitespace.
    fn next(&mut self) -> Option<u8> {
        self.s.ws();
        self.s.peek()
    }

    fn eat(&mut self, byte: u8) -> Result<(), Error> {
        if self.next() != Some(byte) {
            return Err(refuse());
        }
        self.s.i += 1;
        Ok(())
    }

    fn text(&self, from: usize, to: usize) -> Result<&'de str, Error> {
        self.text.get(from..to).ok_or_else(refuse)
    }

    /// The string at the cursor (its opening quote): its text between the quotes, and whether
    /// it holds an escape.
    fn string(&mut self) -> Result<(&'de str, bool), Error> {
        let from = self.s.i;
        let escaped = self.s.string().map_err(|_| refuse())?;
        Ok((self.text(from + 1, self.s.i - 1)?, escaped))
    }

    /// Visits the string at the cursor as serde_json does: borrowed when it has no escape,
    /// else decoded.
    fn visit_string<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
        let (inner, escaped) = self.string()?;
        if escaped {
            let decoded = unescape(inner).ok_or_else(refuse)?;
            v.visit_str(&decoded)
        } else {
            v.visit_borrowed_str(inner)
        }
    }

    /// The JSON text of the value at the cursor.
    fn raw(&mut self) -> Result<&'de str, Error> {
        self.s.ws();
        let from = self.s.i;
        self.s.value().map_err(|_| refuse())?;
        self.text(from, self.s.i)
    }

    /// Visits the number at the cursor as serde_json does: a non-negative integer as `u64`, a
    /// negative one as `i64`, anything else (a fraction, an exponent, `-0`, past 64 bits) as
    /// `f64`, which serde_json parses (its rounding is the one given).
    fn visit_number<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
        let from = self.s.i;
        self.s.number().map_err(|_| refuse())?;
        let span = self.text(from, self.s.i)?;
        let (negative, digits) = match span.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, span),
        };
        // Up to 18 digits cannot overflow; "0" is the only integer with a leading zero
        // (the scanner checked the shape).
        if digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let n = digits
                .bytes()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return match (negative, n) {
                (false, n) => v.visit_u64(n),
                (true, 0) => v.visit_f64(-0.0),
                // At most 18 digits: below i64::MAX.
                (true, n) => v.visit_i64(-(n as i64)),
            };
        }
        let n: serde_json::Number = serde_json::from_str(span).map_err(|_| refuse())?;
        if let Some(u) = n.as_u64() {
            v.visit_u64(u)
        } else if let Some(i) = n.as_i64() {
            v.visit_i64(i)
        } else {
            v.visit_f64(n.as_f64().ok_or_else(refuse)?)
        }
    }

    /// Whether another element (or member) of the container closed by `close` follows: the
    /// cursor is then on it, past its comma. A trailing comma is refused.
    fn another(&mut self, first: &mut bool, close: u8) -> Result<bool, Error> {
        match self.next() {
            Some(c) if c == close => Ok(false),
            Some(b',') if !*first => {
                self.s.i += 1;
                match self.next() {
                    Some(c) if c == close => Err(refuse()),
                    _ => Ok(true),
                }
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(refuse()),
        }
    }

    /// One more container open, within [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(refuse());
        }
        self.s.i += 1;
        Ok(())
    }

    /// Closes a container the visitor read: `close` must follow.
    fn leave(&mut self, close: u8) -> Result<(), Error> {
        self.depth -= 1;
        self.eat(close)
    }

    fn seq<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
        self.enter()?;
        let value = v.visit_seq(Seq {
            r: self,
            first: true,
        })?;
        self.leave(b']')?;
        Ok(value)
    }

    fn map<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value, Error> {
        self.enter()?;
        let value = v.visit_map(Map {
            r: self,
            first: true,
        })?;
        self.leave(b'}')?;
        Ok(value)
    }
}

/// Deserializer methods that read a number as [`Deserializer::deserialize_f64`] does.
macro_rules! number_as_f64 {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.deserialize_f64(v)
        })*
    };
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next().ok_or_else(refuse)? {
            b'"' => self.visit_string(v),
            b'{' => self.map(v),
            b'[' => self.seq(v),
            b't' | b'f' => self.deserialize_bool(v),
            b'n' => self.deserialize_unit(v),
            b'-' | b'0'..=b'9' => self.visit_number(v),
            _ => Err(refuse()),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b't') => {
                self.s.literal(b"true").map_err(|_| refuse())?;
                v.visit_bool(true)
            }
            Some(b'f') => {
                self.s.literal(b"false").map_err(|_| refuse())?;
                v.visit_bool(false)
            }
            _ => Err(refuse()),
        }
    }

    // Every number type reads as `f64` does (below).
    number_as_f64!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32
    );

    /// Every number type reads as serde_json's do: the number, visited by its kind (the
    /// visitor converts); anything else is refused.
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'-' | b'0'..=b'9') => self.visit_number(v),
            _ => Err(refuse()),
        }
    }
    fn deserialize_i128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }
    fn deserialize_u128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'"') => self.visit_string(v),
            _ => Err(refuse()),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'n') => {
                self.s.literal(b"null").map_err(|_| refuse())?;
                v.visit_none()
            }
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'n') => {
                self.s.literal(b"null").map_err(|_| refuse())?;
                v.visit_unit()
            }
            _ => Err(refuse()),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_VALUE_TOKEN {
            let raw = self.raw()?;
            return v.visit_map(RawMap(Some(raw)));
        }
        if name == SKIP_TOKEN {
            let to = SKIP_TO
                .with(Cell::get)
                .checked_sub(self.text.as_ptr().addr())
                .filter(|&to| to > self.s.i && to <= self.text.len())
                .ok_or_else(refuse)?;
            self.s.i = to;
            return v.visit_unit();
        }
        if name == TEXT_OR_TOKEN {
            return match self.next() {
                Some(b'"') => {
                    let raw = self.raw()?;
                    v.visit_map(RawMap(Some(raw)))
                }
                Some(b'[') => self.seq(v),
                _ => Err(refuse()),
            };
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'[') => self.seq(v),
            _ => Err(refuse()),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'{') => self.map(v),
            _ => Err(refuse()),
        }
    }

    /// A struct reads from an object or, as serde_json allows, an array of its fields.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'{') => self.map(v),
            Some(b'[') => self.seq(v),
            _ => Err(refuse()),
        }
    }

    /// An enum is a string (a unit variant) or an object of one member.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match self.next() {
            Some(b'"') => {
                let (inner, escaped) = self.string()?;
                if escaped {
                    let decoded = unescape(inner).ok_or_else(refuse)?;
                    v.visit_enum(IntoDeserializer::<Error>::into_deserializer(decoded))
                } else {
                    v.visit_enum(BorrowedStrDeserializer::<Error>::new(inner))
                }
            }
            Some(b'{') => {
                self.enter()?;
                let value = v.visit_enum(Variant { r: self })?;
                self.leave(b'}')?;
                Ok(value)
            }
            _ => Err(refuse()),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.raw()?;
        v.visit_unit()
    }
}

/// serde_json's raw value: a map of one entry, the token to the value's text.
struct RawMap<'de>(Option<&'de str>);

impl<'de> de::MapAccess<'de> for RawMap<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.0.is_none() {
            return Ok(None);
        }
        seed.deserialize(BorrowedStrDeserializer::new(RAW_VALUE_TOKEN))
            .map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let raw = self.0.take().ok_or_else(refuse)?;
        seed.deserialize(BorrowedStrDeserializer::new(raw))
    }
}

struct Seq<'r, 'de> {
    r: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.r.another(&mut self.first, b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
}

struct Map<'r, 'de> {
    r: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if !self.r.another(&mut self.first, b'}')? {
            return Ok(None);
        }
        if self.r.s.peek() != Some(b'"') {
            return Err(refuse());
        }
        seed.deserialize(Key { r: &mut *self.r }).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        self.r.eat(b':')?;
        seed.deserialize(&mut *self.r)
    }
}

/// An object's key (the cursor on its opening quote), read as serde_json reads keys: as a
/// string, or its text for a raw value; anything else is refused.
struct Key<'r, 'de> {
    r: &'r mut Reader<'de>,
}

impl<'de> Deserializer<'de> for Key<'_, 'de> {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.r.visit_string(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_VALUE_TOKEN {
            let from = self.r.s.i;
            self.r.string()?;
            let raw = self.r.text(from, self.r.s.i)?;
            return v.visit_map(RawMap(Some(raw)));
        }
        v.visit_newtype_struct(self)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.r.string()?;
        v.visit_unit()
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(refuse())
    }
    // The rest visit the key's text, as serde_json's keys do; where serde_json reads a key
    // otherwise (a number, a boolean), the visitor refuses the text and serde_json decides.
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string identifier unit
        unit_struct seq tuple tuple_struct map struct enum
    }
}

/// An enum written as an object of one member: the key names the variant.
struct Variant<'r, 'de> {
    r: &'r mut Reader<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let name = seed.deserialize(&mut *self.r)?;
        self.r.eat(b':')?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        <()>::deserialize(&mut *self.r)
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(&mut *self.r)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.r.deserialize_seq(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.r.deserialize_struct("", fields, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Both readers over `text` as a `Value`: the same value, or both refuse.
    fn alike(text: &str) {
        let fast = read(text, |r| Value::deserialize(r));
        let reference = serde_json::from_str::<Value>(text);
        match (&fast, &reference) {
            (Some(f), Ok(r)) => assert_eq!(f, r, "{text:?}"),
            // Refused here: serde_json decides (and may accept: deep nesting, big numbers).
            (None, _) => {}
            (Some(f), Err(e)) => panic!("{text:?}: fast took {f:?}, serde_json said {e}"),
        }
        // The public entry gives serde_json's answer either way.
        match (from_str::<Value>(text), reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("{text:?}: {a:?} against {b:?}"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{}"#,
            r#" {"a": [1, -2, 0, -0, 18446744073709551615, 18446744073709551616, -9223372036854775808,
                -9223372036854775809, 1.5, -2.5e+3, 1e400, 123456789012345678, 1234567890123456789],
                "b": true, "c": false, "d": null, "e": {"f": [[]], "g": {}}} "#,
            r#"{"k":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é𝄞"}"#,
            r#"{"lone":"\ud800"}"#,
            r#"{"low":"\udc00x"}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[,1]"#,
            r#"{"a" 1}"#,
            r#"{"a":01}"#,
            r#"{"a":1} x"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"es\"caped key":"v", "plain":"a long string with no escape in it at all, none"}"#,
            r#""just a string""#,
            r#"[{"a":[{"b":[{"c":null}]}]}]"#,
            "",
            "  ",
            r#"{"a":tru}"#,
            r#"{"a":-}"#,
        ] {
            alike(text);
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        alike(&deep);
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(read(&deep_ok, |r| Value::deserialize(r)).is_some());
    }

    #[test]
    fn hands_over_raw_text_and_typed_values_as_serde_json_does() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code, reason = "compared through Debug")]
        struct T<'a> {
            #[serde(borrow)]
            raw: &'a serde_json::value::RawValue,
            n: Option<u32>,
            s: String,
            v: Vec<i64>,
            e: E,
            u: E,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum E {
            One,
            Two(u8),
        }
        let text = r#"{"raw": {"x": [1, "\n"]} , "n": null, "s": "a\tb", "v": [-1, 2],
            "e": {"two": 7}, "u": "one"}"#;
        let fast = read(text, |r| T::deserialize(r)).expect("read");
        let reference: T<'_> = serde_json::from_str(text).expect("serde");
        assert_eq!(fast.raw.get(), r#"{"x": [1, "\n"]}"#);
        assert_eq!(format!("{fast:?}"), format!("{reference:?}"));
        // A struct from an array, and a type mismatch (refused, then serde_json's error).
        let arr = r#"[{"a":1}, 5, "x", [], {"two": 1}, "one"]"#;
        assert!(read(arr, |r| T::deserialize(r)).is_some());
        assert!(read(r#"{"s": 5}"#, |r| T::deserialize(r)).is_none());
        let e = from_str::<T<'_>>(r#"{"s": 5}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            serde_json::from_str::<T<'_>>(r#"{"s": 5}"#)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn reference_only_sends_every_read_to_serde_json() {
        assert!(read("{}", |r| Value::deserialize(r)).is_some());
        assert!(reference_only(|| read("{}", |r| Value::deserialize(r))).is_none());
        assert!(read("{}", |r| Value::deserialize(r)).is_some());
    }

    #[test]
    fn unescapes_every_escape() {
        for inner in [
            r#"\u0041\u00e9\uD83D\uDE00"#,
            r#"a\"b\\c\/d\b\f\n\r\t"#,
            "plain",
        ] {
            let json = format!("\"{inner}\"");
            assert_eq!(
                unescape(inner),
                serde_json::from_str::<String>(&json).ok(),
                "{inner}"
            );
        }
        assert_eq!(unescape(r#"\ud800"#), None);
        assert_eq!(unescape(r#"\ud800\u0041"#), None);
    }
}
