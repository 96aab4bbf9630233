//! A position in JSON bytes and the lexing steps the hand-written readers share (the request
//! members splicer, the string-span tree, the usage meter, the stream-chunk reader): white
//! space, one expected byte, a literal, a string's end (escape-aware), a value's end
//! (nesting-aware, strings inside skipped) and a number's length. Grammar and bounds beyond
//! that belong to each reader: a bound is passed in, named where it is decided.

use std::ops::Range;

/// A read position in `bytes`. Every step returns `None` instead of going past the end, so a
/// reader of hostile bytes is a chain of `?`.
#[derive(Clone, Copy, Debug)]
pub struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

/// A string token found by [`Cursor::string`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrToken {
    /// The bytes between the quotes, escapes left as written.
    pub inner: Range<usize>,
    /// Whether it holds a backslash (so the text differs from its bytes).
    pub escaped: bool,
}

impl StrToken {
    /// The token with its quotes.
    pub fn quoted(&self) -> Range<usize> {
        self.inner.start.saturating_sub(1)..self.inner.end.saturating_add(1)
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at offset `at` of `bytes`.
    #[inline(always)]
    pub fn new(bytes: &'a [u8], at: usize) -> Self {
        Cursor { b: bytes, i: at }
    }

    /// The whole text the cursor moves in.
    #[inline(always)]
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }

    /// The offset of the next byte to read.
    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.i
    }

    /// Moves to offset `at` (a reader that scanned ahead by other means).
    #[inline(always)]
    pub fn seek(&mut self, at: usize) {
        self.i = at;
    }

    /// Steps over `n` bytes already looked at.
    #[inline(always)]
    pub fn advance(&mut self, n: usize) {
        self.i = self.i.saturating_add(n);
    }

    /// The byte at the cursor.
    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The bytes from the cursor on (None once past the end).
    #[inline(always)]
    pub fn rest(&self) -> Option<&'a [u8]> {
        self.b.get(self.i..)
    }

    /// Past JSON white space (RFC 8259: space, tab, LF, CR).
    #[inline(always)]
    pub fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Past `byte`, which must be at the cursor.
    #[inline(always)]
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// Past white space and then `byte`, which must follow it.
    #[inline(always)]
    pub fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        self.eat(byte)
    }

    /// Past `word` (`true`, `null`, ...), which must be at the cursor.
    #[inline(always)]
    pub fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.rest()?.starts_with(word).then(|| {
            self.i += word.len();
        })
    }

    /// Past the string token whose opening quote is at the cursor. A backslash steps over the
    /// byte after it (a `\uXXXX` has no quote or backslash in its digits); nothing else is
    /// checked. None when there is no opening quote or no closing one.
    #[inline(always)]
    pub fn string(&mut self) -> Option<StrToken> {
        self.string_with(quote_or_backslash)
    }

    /// [`Cursor::string`] that also refuses a raw control byte (below 0x20), as serde does.
    #[inline(always)]
    pub fn strict_string(&mut self) -> Option<StrToken> {
        self.string_with(quote_backslash_or_control)
    }

    /// The string walk: `stop` finds the next byte worth looking at.
    #[inline(always)]
    fn string_with(&mut self, stop: impl Fn(&[u8]) -> Option<usize>) -> Option<StrToken> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i += stop(self.rest()?)?;
            match self.peek()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some(StrToken {
                        inner: start..end,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                _ => return None,
            }
        }
    }

    /// Past the value at the cursor, by its structure only: a string, a container (its
    /// strings skipped, its brackets counted, at most `max_depth` levels counting itself), or
    /// a number or literal (a run of their characters: letters, digits, `+ - .`). A span this
    /// accepts in a valid document is exactly the value; in an invalid one it is at least
    /// balanced.
    #[inline]
    pub fn skip_value(&mut self, max_depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > max_depth {
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

    /// Past the number at the cursor, by JSON's grammar (see [`number_len`]).
    #[inline]
    pub fn number(&mut self) -> Option<()> {
        self.i += number_len(self.rest()?)?;
        Some(())
    }

    /// The integer at the cursor as serde reads it into an unsigned field (see
    /// [`unsigned_prefix`]), and past it.
    #[inline]
    pub fn unsigned(&mut self) -> Option<u64> {
        let (n, len) = unsigned_prefix(self.rest()?)?;
        self.i += len;
        Some(n)
    }
}

/// Offset of the first `"` or `\\` in `rest`. The strings walked are mostly keys and short
/// tokens, shorter than `memchr2`'s set-up: the first words are looked at eight bytes at a
/// time, the rest of a long string by `memchr2`.
#[inline]
pub fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
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

/// Offset of the first quote, backslash or control byte in `rest`, found eight bytes at a time
/// (a stream chunk's strings are mostly keys and single tokens, shorter than `memchr`'s
/// set-up).
#[inline(always)]
fn quote_backslash_or_control(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0usize;
    let mut words = rest.chunks_exact(8);
    for word in words.by_ref() {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        // Per byte: equal to `"`, equal to `\`, below 0x20. Each test can flag a byte above
        // a true match (a borrow), never one below it, so the lowest flag is exact.
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | x.wrapping_sub(ONES * 0x20) & !x)
            & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| at + p)
}

/// The JSON integer that `bytes` starts with, as serde reads it into an unsigned field, and
/// its length: digits, no leading zero, no fraction or exponent, within u64. None for a sign,
/// an overflow or anything else (serde would refuse it or read it otherwise).
pub fn unsigned_prefix(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut len = 0usize;
    for &d in bytes.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        len += 1;
    }
    let leading_zero = len > 1 && bytes.first() == Some(&b'0');
    if len == 0 || leading_zero || matches!(bytes.get(len), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, len))
}

/// Length of the JSON number that `bytes` starts with, by JSON's grammar
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; None when it starts with none.
pub fn number_len(bytes: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        bytes
            .get(from..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digits(i),
        _ => return None,
    }
    if bytes.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_over_white_space_bytes_and_literals() {
        let mut c = Cursor::new(b" \t\r\n{ : null", 0);
        assert_eq!(c.peek(), Some(b' '));
        assert!(c.eat(b'{').is_none());
        assert!(c.expect(b'{').is_some());
        assert!(c.expect(b':').is_some());
        assert!(c.literal(b"null").is_none());
        c.skip_ws();
        assert!(c.literal(b"nul").is_some());
        assert!(c.literal(b"l").is_some());
        assert_eq!((c.pos(), c.peek(), c.expect(b'x')), (12, None, None));
        assert!(Cursor::new(b"tru", 0).literal(b"true").is_none());
    }

    #[test]
    fn strings_end_past_their_escapes() {
        // The bytes between the quotes, and whether they hold an escape.
        type Found = Option<(Range<usize>, bool)>;
        let cases: &[(&[u8], Found)] = &[
            (br#""""#, Some((1..1, false))),
            (br#""abc" x"#, Some((1..4, false))),
            (br#""a\"b""#, Some((1..5, true))),
            (br#""a\\""#, Some((1..4, true))),
            (br#""\u0022""#, Some((1..7, true))),
            (br#""a\""#, None),
            (br#""a\"#, None),
            (br#""abc"#, None),
            (br#"abc""#, None),
            (b"", None),
        ];
        for (text, want) in cases {
            let got = Cursor::new(text, 0).string().map(|t| (t.inner, t.escaped));
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(text));
        }
        let t = Cursor::new(br#" "a\nb" "#, 1).string().unwrap();
        assert_eq!(t.quoted(), 1..7);
        // A control byte ends only the strict walk.
        assert!(Cursor::new(b"\"a\x01b\"", 0).string().is_some());
        assert!(Cursor::new(b"\"a\x01b\"", 0).strict_string().is_none());
        // An escaped byte is stepped over whatever it is: what an escape means is left to
        // whoever decodes the string.
        let t = Cursor::new(b"\"a\\\x01\"", 0).strict_string().unwrap();
        assert!(t.escaped);
    }

    #[test]
    fn values_are_skipped_by_their_structure() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (br#"{"a":["}",{"b":"]"}],"c":1}, 2"#, Some(27)),
            (b"[[],[[]]]]", Some(9)),
            (b"-1.5e+3,", Some(7)),
            (b"true}", Some(4)),
            (br#""x\"y" "#, Some(6)),
            (b"[1,2", None),
            (br#"["]"#, None),
            (b",", None),
            (b"]", None),
            (b"", None),
        ];
        for (text, want) in cases {
            let mut c = Cursor::new(text, 0);
            let got = c.skip_value(8).map(|()| c.pos());
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(text));
        }
        assert!(Cursor::new(b"[[]]", 0).skip_value(2).is_some());
        assert!(Cursor::new(b"[[[]]]", 0).skip_value(2).is_none());
    }

    #[test]
    fn numbers_by_the_grammar_and_unsigned_as_serde_reads_them() {
        for (text, want) in [
            ("0", Some(1)),
            ("-0.5e-3,", Some(7)),
            ("12E4]", Some(4)),
            ("01", Some(1)),
            ("-", None),
            ("1.", None),
            ("1e+", None),
            (".5", None),
        ] {
            assert_eq!(number_len(text.as_bytes()), want, "{text}");
        }
        assert_eq!(unsigned_prefix(b"42,"), Some((42, 2)));
        assert_eq!(
            unsigned_prefix(b"18446744073709551615"),
            Some((u64::MAX, 20))
        );
        for refused in ["18446744073709551616", "-1", "01", "1.0", "1e3", ""] {
            assert_eq!(unsigned_prefix(refused.as_bytes()), None, "{refused}");
        }
        let mut c = Cursor::new(b"7 x", 0);
        assert_eq!((c.unsigned(), c.pos()), (Some(7), 1));
    }

    /// A tiny deterministic PRNG (a 64-bit LCG's high bits), so failures reproduce.
    fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut s = seed;
        move |below| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 33) % below
        }
    }

    /// The word-at-a-time searches against their byte-at-a-time definitions, at every length
    /// and position, with bytes next to the stops (where a borrow could mislead): 0x1f/0x20,
    /// `!`/`#` around `"`, `[`/`]` around `\\`, high bytes.
    #[test]
    fn word_searches_find_what_a_byte_walk_finds() {
        const NEAR: [u8; 15] = [
            0x1f, 0x20, b'"', b'!', b'#', b'\\', b'[', b']', 0x80, 0xff, 0x00, 0xdc, 0xa2, b'a',
            b' ',
        ];
        let mut rand = lcg(0x51ED_2701);
        for _ in 0..40_000 {
            let len = rand(90) as usize;
            let stops = rand(4);
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    if rand(8) < stops {
                        NEAR[rand(NEAR.len() as u64) as usize]
                    } else {
                        b'a' + rand(26) as u8
                    }
                })
                .collect();
            assert_eq!(
                quote_or_backslash(&text),
                memchr::memchr2(b'"', b'\\', &text),
                "{text:?}"
            );
            let want = text
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            assert_eq!(quote_backslash_or_control(&text), want, "{text:?}");
        }
    }
}
