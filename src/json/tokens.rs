//! A walk over JSON text a reader has checked already, member by member: for translators
//! that write what they read as spans of it. Strings are crossed as the readers cross them
//! (sixteen bytes at a time, a long one by admission's note of it).

use std::ops::Range;

use super::scan::Scanner;

/// A string token found by [`Tokens::string`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token, quotes included.
    pub quoted: Range<usize>,
    /// It holds an escape.
    pub escaped: bool,
    /// An escape in it may be a `\u` (never false when one is).
    pub unicode: bool,
}

impl Token {
    /// The bytes between the quotes.
    pub fn inner(&self) -> Range<usize> {
        self.quoted.start + 1..self.quoted.end.saturating_sub(1)
    }
}

/// A position in checked JSON text. Every step returns `None` where the text is not what it
/// asks for, so a reader is a chain of `?`; the text being checked, `None` means another
/// shape, never a broken one.
pub struct Tokens<'b> {
    s: Scanner<'b>,
    text: &'b str,
}

impl<'b> Tokens<'b> {
    /// A walk from offset `at` of `text` (the body admission noted, or a slice of it, for its
    /// notes to be used).
    pub fn new(text: &'b str, at: usize) -> Self {
        Tokens {
            s: Scanner::new(text.as_bytes(), at),
            text,
        }
    }

    /// The text walked.
    pub fn bytes(&self) -> &'b [u8] {
        self.s.b
    }

    /// The text of span `r` (a token's or a value's: cut between characters).
    pub fn text(&self, r: std::ops::Range<usize>) -> Option<&'b str> {
        self.text.get(r)
    }

    /// The next byte past whitespace, not taken.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.s.ws();
        self.s.peek()
    }

    /// Takes `byte`, the next past whitespace.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.s.i += 1)
    }

    /// Takes `word` (`true`, `null`, …), next past whitespace.
    #[inline]
    pub fn word(&mut self, word: &[u8]) -> Option<()> {
        self.s.ws();
        self.s.literal(word).ok()
    }

    /// Takes the string token next past whitespace.
    #[inline]
    pub fn string(&mut self) -> Option<Token> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.s.i;
        let (escaped, unicode) = self.s.string_token().ok()?;
        Some(Token {
            quoted: start..self.s.i,
            escaped,
            unicode,
        })
    }

    /// Takes the value next past whitespace: its span.
    #[inline]
    pub fn value(&mut self) -> Option<Range<usize>> {
        self.s.ws();
        let start = self.s.i;
        self.s.value().ok()?;
        Some(start..self.s.i)
    }

    /// The members of the object next past whitespace, each key handed to `member` with the
    /// walk on its value, which `member` takes.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Token) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.s.i += 1,
                b'}' => {
                    self.s.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of the array next past whitespace, each handed to `element` with the walk
    /// on it, which `element` takes.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.s.i += 1,
                b']' => {
                    self.s.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}
