//! A JSON document as a tree of byte spans: strings are located, never copied, and numbers are
//! never converted, so a rewrite can splice only the strings it changes and keep every other
//! byte as it was written (a 30-digit `seed` or `0.10000000000000000001` stays exact).
//!
//! The parser validates as it goes (RFC 8259 grammar, UTF-8 in strings, escapes well formed,
//! at most [`MAX_JSON_DEPTH`] deep, nothing after the value) and returns `None` on anything
//! else, so it can also take a provider's body that was never checked. Strings are decoded on
//! demand with [`decode`].

use std::borrow::Cow;
use std::ops::Range;

use super::cursor::Cursor;
use super::scan::Scanner;
use super::MAX_JSON_DEPTH;

/// One value of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A string: the span of its token, quotes included.
    Str(Range<usize>),
    /// An array's items, in order.
    Array(Vec<Node>),
    /// An object's members, in order, duplicates kept.
    Object(Vec<Entry>),
    /// A number, `true`, `false` or `null`: its span.
    Scalar(Range<usize>),
}

/// One `"key": value` member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped (keys are compared as a reader of the document sees them).
    pub key: Cow<'static, str>,
    /// The key's token, quotes included.
    pub key_span: Range<usize>,
    /// The value.
    pub value: Node,
}

impl Entry {
    /// The key, unescaped.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Node {
    /// The first member named `key`, when this is an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    /// The string's decoded text, when this is a string.
    pub fn as_str<'b>(&self, body: &'b [u8]) -> Option<Cow<'b, str>> {
        match self {
            Node::Str(span) => decode(body, span.clone()),
            _ => None,
        }
    }
}

/// A key as decoded: the ones the APIs' bodies are made of without an allocation (an agent's
/// 300 KB body has ~600 keys, nearly all of these).
fn key_of(body: &[u8], span: Range<usize>) -> Option<Cow<'static, str>> {
    let inner = body.get(span.start + 1..span.end.checked_sub(1)?)?;
    let common = match inner {
        b"type" => "type",
        b"text" => "text",
        b"role" => "role",
        b"content" => "content",
        b"name" => "name",
        b"id" => "id",
        b"description" => "description",
        b"function" => "function",
        b"arguments" => "arguments",
        b"tool_calls" => "tool_calls",
        b"tool_call_id" => "tool_call_id",
        b"tool_use_id" => "tool_use_id",
        b"input" => "input",
        b"parameters" => "parameters",
        b"properties" => "properties",
        b"required" => "required",
        b"items" => "items",
        b"cache_control" => "cache_control",
        b"call_id" => "call_id",
        b"output" => "output",
        _ => return decode(body, span).map(|k| Cow::Owned(k.into_owned())),
    };
    Some(Cow::Borrowed(common))
}

/// Parses `body` into its tree; `None` unless it is exactly one valid JSON value.
pub fn parse(body: &[u8]) -> Option<Node> {
    let mut left = usize::MAX;
    parse_within(body, &mut left)
}

/// [`parse`] building at most `*left` values, counted down across calls (one budget for
/// several texts): `None` with `*left == 0` means the budget ran out, not that the text is
/// not JSON. A tree costs memory per value, so a caller facing hostile bodies bounds it.
pub fn parse_within(body: &[u8], left: &mut usize) -> Option<Node> {
    // Once for the whole text (what notes vouch for is not read again): then string tokens
    // need only their escapes and control characters checked (outside strings, valid JSON is
    // ASCII).
    if !super::utf8::known(body) && !super::spans::is_utf8(body) {
        return None;
    }
    let mut p = Parser {
        c: Cursor::new(body, 0),
        s: Scanner::new(body, 0),
        left: *left,
    };
    p.c.skip_ws();
    let node = p.value(1);
    *left = p.left;
    let node = node?;
    p.c.skip_ws();
    (p.c.pos() == body.len()).then_some(node)
}

/// The text of the string token at `span` (quotes included), unescaped. Borrowed when it has
/// no escape. `None` if the span is not a well-formed string token (a lone surrogate escape
/// included).
pub fn decode(body: &[u8], span: Range<usize>) -> Option<Cow<'_, str>> {
    let token = body.get(span)?;
    let inner = token.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let inner = simdutf8::basic::from_utf8(inner).ok()?;
    if memchr::memchr(b'\\', inner.as_bytes()).is_none()
        // Every byte looked at, without an early exit, so the test is done in vector lanes.
        && !inner.bytes().fold(false, |c, b| c | (b < 0x20) | (b == b'"'))
    {
        return Some(Cow::Borrowed(inner));
    }
    super::escape::unescape(inner).map(Cow::Owned)
}

struct Parser<'b> {
    c: Cursor<'b>,
    /// Crosses string tokens (the mask scan admission checks bodies with).
    s: Scanner<'b>,
    /// Values that may still be built.
    left: usize,
}

impl Parser<'_> {
    fn value(&mut self, depth: usize) -> Option<Node> {
        self.left = self.left.checked_sub(1)?;
        match self.c.peek()? {
            b'"' => self.string().map(Node::Str),
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Option<Node> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.c.eat(b'{')?;
        self.c.skip_ws();
        let mut entries = Vec::new();
        if self.c.eat(b'}').is_some() {
            return Some(Node::Object(entries));
        }
        loop {
            let key_span = self.string()?;
            let key = key_of(self.c.bytes(), key_span.clone())?;
            self.c.expect(b':')?;
            self.c.skip_ws();
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_span,
                value,
            });
            self.c.skip_ws();
            match self.c.peek()? {
                b',' => {
                    self.c.advance(1);
                    self.c.skip_ws();
                }
                b'}' => {
                    self.c.advance(1);
                    return Some(Node::Object(entries));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Node> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        self.c.eat(b'[')?;
        self.c.skip_ws();
        let mut items = Vec::new();
        if self.c.eat(b']').is_some() {
            return Some(Node::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.c.skip_ws();
            match self.c.peek()? {
                b',' => {
                    self.c.advance(1);
                    self.c.skip_ws();
                }
                b']' => {
                    self.c.advance(1);
                    return Some(Node::Array(items));
                }
                _ => return None,
            }
        }
    }

    /// A string token: its span. Escapes and control characters are checked by the scan,
    /// UTF-8 once for the whole text ([`parse_within`]).
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.c.pos();
        if self.c.peek()? != b'"' {
            return None;
        }
        self.s.i = start;
        if self.s.string().is_err() {
            return self.lenient_string(start);
        }
        self.c.seek(self.s.i);
        Some(start..self.s.i)
    }

    /// A string token the scan refused, read again byte by byte: one with a lone surrogate
    /// escape (`\ud800`), which a model's answer can hold, is taken (only that string is
    /// then left undecoded by [`decode`]); anything else the scan refuses is refused here too.
    #[cold]
    fn lenient_string(&mut self, start: usize) -> Option<Range<usize>> {
        let b = self.c.bytes();
        let mut i = start + 1;
        loop {
            let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
            if b.get(i..at)?.iter().any(|&c| c < 0x20) {
                return None;
            }
            i = at + 1;
            if b.get(at) == Some(&b'"') {
                self.c.seek(i);
                return Some(start..i);
            }
            match b.get(i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                b'u' if b.get(i + 1..i + 5)?.iter().all(u8::is_ascii_hexdigit) => i += 5,
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<Node> {
        let start = self.c.pos();
        self.c.literal(word)?;
        Some(Node::Scalar(start..self.c.pos()))
    }

    fn number(&mut self) -> Option<Node> {
        let start = self.c.pos();
        self.c.number()?;
        Some(Node::Scalar(start..self.c.pos()))
    }
}

/// Builds `body` with each `(span, text)` in `edits` replaced by `text` written as a JSON
/// string, everything else byte for byte. Spans must be in order and must not overlap
/// (`None` otherwise: the caller paired spans with the wrong body).
pub fn splice_strings(body: &[u8], edits: &[(Range<usize>, &str)]) -> Option<Vec<u8>> {
    let extra: usize = edits.iter().map(|(_, t)| super::escaped_len(t)).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    for (span, text) in edits {
        if span.start < at || span.end < span.start {
            return None;
        }
        out.extend_from_slice(body.get(at..span.start)?);
        super::write_json_string(&mut out, text);
        at = span.end;
    }
    out.extend_from_slice(body.get(at..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_serde_accepts_and_refuses_the_rest() {
        let good = [
            r#"{"a":[1,-0.5e+3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"],"b":{}}"#,
            " [ ] ",
            r#""\ud83d\ude00""#,
            "123456789012345678901234567890",
            "0.10000000000000000001",
            r#"{"a":1,"a":2}"#,
        ];
        for doc in good {
            assert!(parse(doc.as_bytes()).is_some(), "{doc}");
            assert!(
                serde_json::from_str::<serde_json::Value>(doc).is_ok(),
                "{doc}"
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"{",
            b"[1,]",
            b"{\"a\" 1}",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b"tru",
            b"\"a\nb\"",
            b"\"\\x\"",
            b"\"\\u12g4\"",
            b"\"\xff\"",
            b"{} {}",
            b"{\"a\":1,}",
        ];
        for doc in bad {
            assert!(parse(doc).is_none(), "{}", String::from_utf8_lossy(doc));
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_JSON_DEPTH).as_bytes()).is_some());
        assert!(parse(deep(MAX_JSON_DEPTH + 1).as_bytes()).is_none());
    }

    /// A lone surrogate (which serde_json refuses) leaves its own string undecoded, not the
    /// document unread: an answer's other strings are still restored.
    #[test]
    fn a_lone_surrogate_costs_only_its_string() {
        let body = br#"{"a":"x\ud800y","b":"caf\u00e9 \n","c":["\udc00"]}"#;
        let Some(Node::Object(entries)) = parse(body) else {
            panic!("not parsed");
        };
        let text = |i: usize| match &entries[i].value {
            Node::Str(span) => decode(body, span.clone()),
            Node::Array(items) => items[0].as_str(body),
            _ => panic!("shape"),
        };
        assert_eq!(text(0), None);
        assert_eq!(text(1).as_deref(), Some("café \n"));
        assert_eq!(text(2), None);
        // What the byte walk takes is still well-formed: a bad escape, a control character
        // or a short `\u` is refused as before.
        for bad in [
            &br#"{"a":"\ud80"}"#[..],
            br#"{"a":"\q"}"#,
            b"{\"a\":\"\x01\"}",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn spans_point_at_the_tokens_and_keys_are_decoded() {
        let body = br#"{"m\u006fdel" : "a\"b", "n":[1.50,"c"]}"#;
        let tree = parse(body).unwrap();
        let Node::Object(entries) = &tree else {
            panic!()
        };
        assert_eq!(entries[0].key, "model");
        assert_eq!(&body[entries[0].key_span.clone()], br#""m\u006fdel""#);
        let Node::Str(s) = &entries[0].value else {
            panic!()
        };
        assert_eq!(&body[s.clone()], br#""a\"b""#);
        assert_eq!(tree.get("model").unwrap().as_str(body).unwrap(), "a\"b");
        let Some(Node::Array(items)) = tree.get("n") else {
            panic!()
        };
        let at = body.windows(4).position(|w| w == b"1.50").unwrap();
        assert_eq!(items[0], Node::Scalar(at..at + 4));
        assert!(decode(br#""\ud800""#, 0..8).is_none());
    }

    #[test]
    fn keys_read_as_serde_reads_them_whether_common_or_not() {
        let body =
            r#"{"type":1,"ty\u0070e":2,"text\n":3,"tool_use_id":4,"x":5,"é":6,"items":[],"":7}"#;
        let want: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).unwrap();
        let Some(Node::Object(entries)) = parse(body.as_bytes()) else {
            panic!("an object");
        };
        let keys: Vec<&str> = entries.iter().map(Entry::key).collect();
        let mut want: Vec<&str> = want.keys().map(String::as_str).collect();
        let mut got = keys.clone();
        got.sort_unstable();
        got.dedup();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(keys.len(), 8);
        assert!(matches!(entries[0].key, Cow::Borrowed("type")));
        assert!(matches!(entries[1].key, Cow::Owned(_)));
    }

    #[test]
    fn splicing_keeps_every_other_byte() {
        let body =
            br#"{"seed": 123456789012345678901234567890, "t": "x", "p": 0.10000000000000000001}"#;
        let tree = parse(body).unwrap();
        let Some(Node::Str(span)) = tree.get("t") else {
            panic!()
        };
        let out = splice_strings(body, &[(span.clone(), "y\"z")]).unwrap();
        assert_eq!(
            out,
            br#"{"seed": 123456789012345678901234567890, "t": "y\"z", "p": 0.10000000000000000001}"#
        );
        // Spans out of order, or reversed: paired with the wrong body.
        assert!(splice_strings(body, &[(10..12, ""), (2..4, "")]).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..3;
        assert!(splice_strings(body, &[(reversed, "")]).is_none());
    }
}
