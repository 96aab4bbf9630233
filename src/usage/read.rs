//! A usage object and a stop-reason string read straight from the provider's bytes: the few
//! known keys compared as bytes, every other value skipped. serde's derive decoded and
//! UTF-8-checked every key: reading the mock's short answer took 15.4k instructions with it
//! and 13.2k with this (callgrind). The derive stays as the tests' oracle.

use super::{Details, Raw, StopReason};
use crate::json::cursor::Cursor;

/// Deepest nesting skipped inside a usage object (a provider's usage is two levels deep; a
/// deeper value is not a usage object worth reading).
const MAX_SKIP_DEPTH: usize = 64;

struct Reader<'a> {
    c: Cursor<'a>,
}

impl Reader<'_> {
    /// The members of the object at the cursor: `each` gets the key (unescaped only when it
    /// holds an escape) and reads or skips the value.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.c.expect(b'{')?;
        self.c.skip_ws();
        if self.c.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.c.skip_ws();
            let key = self.c.string()?;
            self.c.expect(b':')?;
            self.c.skip_ws();
            if key.escaped {
                let quoted = self.c.bytes().get(key.quoted())?;
                let key: String = serde_json::from_slice(quoted).ok()?;
                each(self, key.as_bytes())?;
            } else {
                each(self, self.c.bytes().get(key.inner)?)?;
            }
            self.c.skip_ws();
            match self.c.peek()? {
                b',' => self.c.advance(1),
                b'}' => {
                    self.c.advance(1);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (None) or a non-negative integer that fits a u64; anything else fails the whole
    /// object, as serde's `Option<u64>` does.
    fn count(&mut self) -> Option<Option<u64>> {
        if self.c.literal(b"null").is_some() {
            return Some(None);
        }
        self.c.unsigned().map(Some)
    }

    /// `null` or a details object.
    fn details(&mut self) -> Option<Option<Details>> {
        if self.c.literal(b"null").is_some() {
            return Some(None);
        }
        let mut d = Details::default();
        self.object(|r, key| {
            match key {
                b"cached_tokens" => d.cached_tokens = r.count()?,
                b"reasoning_tokens" => d.reasoning_tokens = r.count()?,
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(Some(d))
    }

    /// Past the value at the cursor (strings, numbers, literals, nested containers). A number
    /// or literal is only their characters, so a span the reader accepts has every bracket
    /// inside a container it walked (the depth walks skip it as balanced).
    fn skip(&mut self) -> Option<()> {
        self.c.skip_value(MAX_SKIP_DEPTH)
    }
}

/// The usage object at `buf[at..]` (what follows it is not read) and the offset just past
/// it; None when it is not an object or a known field holds something other than a count (or
/// null).
pub(super) fn usage_at(buf: &[u8], at: usize) -> Option<(Raw, usize)> {
    let mut raw = Raw::default();
    let mut r = Reader {
        c: Cursor::new(buf, at),
    };
    r.object(|r, key| {
        match key {
            b"prompt_tokens" => raw.prompt_tokens = r.count()?,
            b"completion_tokens" => raw.completion_tokens = r.count()?,
            b"input_tokens" => raw.input_tokens = r.count()?,
            b"output_tokens" => raw.output_tokens = r.count()?,
            b"cache_read_input_tokens" => raw.cache_read_input_tokens = r.count()?,
            b"cache_creation_input_tokens" => raw.cache_creation_input_tokens = r.count()?,
            b"prompt_tokens_details" => raw.prompt_tokens_details = r.details()?,
            b"completion_tokens_details" => raw.completion_tokens_details = r.details()?,
            b"input_tokens_details" => raw.input_tokens_details = r.details()?,
            b"output_tokens_details" => raw.output_tokens_details = r.details()?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some((raw, r.c.pos()))
}

/// The string at `buf[at..]` as a stop reason (`null` and other values: None). Only ASCII
/// word characters are kept, so a string without escapes is read as bytes.
pub(super) fn stop_at(buf: &[u8], at: usize) -> Option<StopReason> {
    let mut c = Cursor::new(buf, at);
    c.skip_ws();
    let token = c.string()?;
    if !token.escaped {
        return StopReason::from_ascii(buf.get(token.inner)?);
    }
    let value = buf.get(at..)?;
    let mut de = serde_json::Deserializer::from_slice(value);
    let s = <String as serde::Deserialize>::deserialize(&mut de).ok()?;
    StopReason::new(&s)
}
