//! A usage object and a stop-reason string read straight from the provider's bytes: the few
//! known keys compared as bytes, every other value skipped. serde's derive decoded and
//! UTF-8-checked every key: reading the mock's short answer took 15.4k instructions with it
//! and 13.2k with this (callgrind). The derive stays as the tests' oracle.

use super::{Details, Raw, StopReason};

/// Deepest nesting skipped inside a usage object (a provider's usage is two levels deep; a
/// deeper value is not a usage object worth reading).
const MAX_SKIP_DEPTH: usize = 64;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The string token at the cursor (after its opening quote): its raw bytes between the
    /// quotes, escapes left as written, and whether it holds any.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = quote_or_backslash(self.b.get(self.i..)?)?;
            self.i += at;
            if self.peek()? == b'"' {
                let s = self.b.get(start..self.i)?;
                self.i += 1;
                return Some((s, escaped));
            }
            escaped = true;
            self.i += 2;
        }
    }

    /// The members of the object at the cursor: `each` gets the key (unescaped only when it
    /// holds an escape) and reads or skips the value.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let (raw, escaped) = self.string()?;
            self.eat(b':')?;
            self.ws();
            if escaped {
                let mut quoted = Vec::with_capacity(raw.len() + 2);
                quoted.push(b'"');
                quoted.extend_from_slice(raw);
                quoted.push(b'"');
                let key: String = serde_json::from_slice(&quoted).ok()?;
                each(self, key.as_bytes())?;
            } else {
                each(self, raw)?;
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (None) or a non-negative integer that fits a u64; anything else fails the whole
    /// object, as serde's `Option<u64>` does.
    fn count(&mut self) -> Option<Option<u64>> {
        if self.b.get(self.i..)?.starts_with(b"null") {
            self.i += 4;
            return Some(None);
        }
        let (n, len) = crate::json::tree::unsigned_prefix(self.b.get(self.i..)?)?;
        self.i += len;
        Some(Some(n))
    }

    /// `null` or a details object.
    fn details(&mut self) -> Option<Option<Details>> {
        if self.b.get(self.i..)?.starts_with(b"null") {
            self.i += 4;
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

    /// Past the value at the cursor (strings, numbers, literals, nested containers).
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.i += 1;
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > MAX_SKIP_DEPTH {
                                return None;
                            }
                        }
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number or a literal: only their characters, so a span the reader accepts
                // has every bracket inside a container it walked (the depth walks skip it as
                // balanced).
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

/// Offset of the first `"` or `\\` in `rest`. The strings the meter walks are mostly keys
/// and short tokens, shorter than `memchr2`'s set-up: the first words are looked at eight
/// bytes at a time, the rest of a long string by `memchr2`.
#[inline]
pub(super) fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const SHORT_WORDS: usize = 4;
    let mut words = rest.chunks_exact(8);
    for (n, word) in words.by_ref().take(SHORT_WORDS).enumerate() {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        // Per byte: equal to `"` or to `\\`. A test can flag a byte above a true match (a
        // borrow), never one below it, so the lowest flag is exact.
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let found =
            (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash) & HIGH;
        if found != 0 {
            return Some(n * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let looked = (rest.len() / 8).min(SHORT_WORDS) * 8;
    let tail = rest.get(looked..)?;
    memchr::memchr2(b'"', b'\\', tail).map(|at| looked + at)
}

/// The usage object at `buf[at..]` (what follows it is not read) and the offset just past
/// it; None when it is not an object or a known field holds something other than a count (or
/// null).
pub(super) fn usage_at(buf: &[u8], at: usize) -> Option<(Raw, usize)> {
    let mut raw = Raw::default();
    let mut r = Reader { b: buf, i: at };
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
    Some((raw, r.i))
}

/// The string at `buf[at..]` as a stop reason (`null` and other values: None). Only ASCII
/// word characters are kept, so a string without escapes is read as bytes.
pub(super) fn stop_at(buf: &[u8], at: usize) -> Option<StopReason> {
    let mut r = Reader { b: buf, i: at };
    r.eat(b'"')?;
    let (raw, escaped) = r.string()?;
    if !escaped {
        return StopReason::from_ascii(raw);
    }
    let value = buf.get(at..)?;
    let mut de = serde_json::Deserializer::from_slice(value);
    let s = <String as serde::Deserialize>::deserialize(&mut de).ok()?;
    StopReason::new(&s)
}
