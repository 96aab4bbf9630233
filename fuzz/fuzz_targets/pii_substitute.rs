#![no_main]
//! PII substitution on the request side, on the path admission takes: the body checked by the
//! request inspector, the `pii_substitution` flag taken out (`parse_body`), then every
//! conversation string substituted in place (`substitute_body`) in one `Session`.
//!
//! The input is either a raw body (it starts with `{` or white space; the byte 0xFF then an
//! index inserts an entity, as in `pii_restore`), or, for any other first byte, the recipe of
//! a body in one of the three dialects: Chat Completions, Messages or Responses, with entities,
//! escapes (`\u00e9`, `\u0040`…) beside them, tool-call `arguments` and tool results as JSON
//! text (nested, `ensure_ascii`-escaped or not), Anthropic `input` objects and signed
//! thinking blocks.
//!
//! Asserted, besides no panic (and, on the same body, that searching strings still escaped
//! with only the built-in detectors on gives what decoding every string gives, on a first
//! pass and on a second that finds long strings kept, and that the inspection's notes of
//! where long strings end, moved with the tokens substitution rewrote, are right for the
//! output):
//! - a body the inspector admits is substituted (never refused as unreadable), its output is
//!   admitted too with the same `model` and `stream`, and the flag is gone from it; a body
//!   that is valid JSON stays valid JSON;
//! - the output has the input's structure, and restoring each of its strings (decoded, and
//!   the strings, keys and numbers of JSON text inside it, as deep as substitution opens it)
//!   with the session's restore set gives back the input's string; nothing substituted means
//!   not one byte changed, an entity counted means some did;
//! - unless the session says the request is incomplete (admission then refuses it), the
//!   detector finds no original of the session's pairs in any string that was searched:
//!   in a recipe body every string but the signed members of thinking blocks (which must come
//!   out byte for byte as they went in); in a raw body, the strings that changed (which
//!   strings are searched there is the walker's business, not restated here).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ringway::json::tree::{self, Node};
use ringway::json::{
    inspect_request, inspect_request_simd, members, with_notes, JsonError, SimdScratch,
};
use ringway::pii::{
    parse_body, substitute_body, substitute_spliced, Detector, Mode, RestoreSet, Session, FLAG,
};

/// Levels of JSON text inside a string that substitution opens (`body::MAX_JSON_TEXT_DEPTH`).
const MAX_JSON_TEXT_DEPTH: usize = 4;

#[path = "common/entities.rs"]
mod entities;
use entities::{detector, ENTITIES};

/// Written as they are inside a JSON string with 0xFE then an index (recipe bodies only):
/// escapes next to entities, and entities spelt with escapes.
const ESCAPES: &[&str] = &[
    r"\u00e9",
    r"\u0040",
    r"\u0041",
    r"\n",
    r#"\""#,
    r"\\",
    r"\/",
    r"\ud83d\ude00",
    r"\u00a0",
    r"\t",
    r"\u0020",
    r"jane.doe\u0040corp.example.io",
    r"J\u0061ne Doe",
    r"Garc\u00eda",
    r"\u0034111 1111 1111 1111",
    r"EMP\u002d123456",
];

/// Numbers in JSON text: cards and an operator-regex match written as numbers, and numbers
/// no f64 holds.
const NUMBERS: &[&str] = &[
    "4111111111111111",
    "912345",
    "378282246310005",
    "1.50",
    "-0",
    "123456789012345678901234567890",
    "1e400",
    "0.10000000000000000001",
];

/// The recipe's bytes, read front to back; zeros once it runs out.
struct Src<'a>(&'a [u8]);

impl Src<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }

    /// The inside of a JSON string token (escaped as written), up to a 0x00 byte.
    fn text(&mut self) -> String {
        let mut out = String::new();
        while let Some((&b, rest)) = self.0.split_first() {
            self.0 = rest;
            match b {
                0 => break,
                0xff => out.push_str(ENTITIES[usize::from(self.byte()) % ENTITIES.len()]),
                0xfe => out.push_str(ESCAPES[usize::from(self.byte()) % ESCAPES.len()]),
                b'"' => out.push_str(r#"\""#),
                b'\\' => out.push_str(r"\\"),
                b if b < 0x20 => out.push_str(&format!("\\u{b:04x}")),
                // Latin-1: `é` is 0xE9.
                b => out.push(char::from(b)),
            }
        }
        out
    }

    /// A string token: plain text, or now and then JSON text written into a string.
    fn string(&mut self, depth: usize) -> String {
        let s = self.byte();
        if s >= 0xc0 && depth < 6 {
            quote(&self.doc(depth + 1), s & 1 == 1)
        } else {
            format!("\"{}\"", self.text())
        }
    }

    /// JSON text in a string (tool-call arguments, a tool's result).
    fn json_string(&mut self, depth: usize) -> String {
        let ascii = self.byte() & 1 == 1;
        quote(&self.doc(depth + 1), ascii)
    }

    /// A JSON object or array of content.
    fn doc(&mut self, depth: usize) -> String {
        let n = 1 + usize::from(self.byte() % 4);
        let array = self.byte() % 4 == 0;
        let items: Vec<String> = (0..n)
            .map(|_| {
                let v = self.value(depth);
                if array {
                    v
                } else {
                    format!("\"{}\": {v}", self.text())
                }
            })
            .collect();
        if array {
            format!("[{}]", items.join(", "))
        } else {
            format!("{{{}}}", items.join(", "))
        }
    }

    fn value(&mut self, depth: usize) -> String {
        match self.byte() % 6 {
            1 => NUMBERS[usize::from(self.byte()) % NUMBERS.len()].to_owned(),
            2 => "null".to_owned(),
            3 if depth < 6 => self.doc(depth + 1),
            4 => format!("[{}, {}]", self.string(depth), self.string(depth)),
            _ => self.string(depth),
        }
    }
}

/// `s` as a JSON string token; `ascii`: everything beyond ASCII as `\u` escapes (and `/` as
/// `\/`), as `ensure_ascii` serialisers write it.
fn quote(s: &str, ascii: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str(r#"\""#),
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '/' if ascii => out.push_str(r"\/"),
            c if u32::from(c) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A body of one of the three dialects from the recipe.
fn recipe(src: &mut Src<'_>) -> String {
    let flags = src.byte();
    let dialect = flags % 3;
    let mut top = Vec::new();
    top.push(
        match dialect {
            0 => r#""model":"gpt-4o""#,
            1 => r#""model":"claude-sonnet-4-5","max_tokens":1024"#,
            _ => r#""model":"gpt-5""#,
        }
        .to_owned(),
    );
    if flags & 0x08 != 0 {
        top.push(format!("\"{FLAG}\":true"));
    }
    let mut turns = Vec::new();
    while turns.is_empty() || (!src.done() && turns.len() < 10) {
        let k = src.byte();
        let turn = match (dialect, k % 6) {
            (0, 0) => format!(r#"{{"role":"system","content":{}}}"#, src.string(0)),
            (0, 1) => format!(r#"{{"role":"user","content":{}}}"#, src.string(0)),
            (0, 2) => format!(
                r#"{{"role":"user","name":{},"content":[{{"type":"text","text":{}}},{{"type":"image_url","image_url":{{"url":"https://example.com/a.png","detail":"low"}}}}]}}"#,
                src.string(0),
                src.string(0)
            ),
            (0, 3) => format!(
                r#"{{"role":"assistant","content":{},"tool_calls":[{{"id":"call_1","type":"function","function":{{"name":"send","arguments":{}}}}}]}}"#,
                src.string(0),
                src.json_string(0)
            ),
            (0, 4) => format!(
                r#"{{"role":"tool","tool_call_id":"call_1","content":{}}}"#,
                src.string(0)
            ),
            (0, _) => format!(
                r#"{{"role":"assistant","content":{},"thinking_blocks":[{{"type":"thinking","thinking":{},"signature":"c2ln"}}]}}"#,
                src.string(0),
                src.string(0)
            ),
            (1, 0) => format!(r#"{{"role":"user","content":{}}}"#, src.string(0)),
            (1, 1) => format!(
                r#"{{"role":"user","content":[{{"type":"text","text":{}}},{{"type":"tool_result","tool_use_id":"toolu_1","content":{}}}]}}"#,
                src.string(0),
                src.string(0)
            ),
            (1, 2) => format!(
                r#"{{"role":"assistant","content":[{{"type":"thinking","thinking":{},"signature":"c2ln"}},{{"type":"text","text":{}}}]}}"#,
                src.string(0),
                src.string(0)
            ),
            (1, 3) => format!(
                r#"{{"role":"assistant","content":[{{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}}]}}"#,
                src.doc(1)
            ),
            (1, 4) => format!(
                r#"{{"role":"user","content":[{{"type":"document","source":{{"type":"text","media_type":"text/plain","data":{}}}}}]}}"#,
                src.string(0)
            ),
            (1, _) => format!(
                r#"{{"role":"assistant","content":[{{"type":"redacted_thinking","data":{}}},{{"type":"text","text":{}}}]}}"#,
                src.string(0),
                src.string(0)
            ),
            (_, 0) => format!(
                r#"{{"role":"user","content":[{{"type":"input_text","text":{}}}]}}"#,
                src.string(0)
            ),
            (_, 1) => format!(
                r#"{{"type":"message","role":"assistant","content":[{{"type":"output_text","text":{}}}]}}"#,
                src.string(0)
            ),
            (_, 2) => format!(
                r#"{{"type":"function_call","call_id":"fc_1","name":"send","arguments":{}}}"#,
                src.json_string(0)
            ),
            (_, 3) => format!(
                r#"{{"type":"function_call_output","call_id":"fc_1","output":{}}}"#,
                src.string(0)
            ),
            (_, 4) => format!(r#"{{"role":"developer","content":{}}}"#, src.string(0)),
            (_, _) => format!(
                r#"{{"type":"reasoning","id":"rs_1","summary":[{{"type":"summary_text","text":{}}}],"encrypted_content":"gAAAAB"}}"#,
                src.string(0)
            ),
        };
        turns.push(turn);
    }
    let key = if dialect == 2 { "input" } else { "messages" };
    top.push(format!("\"{key}\":[{}]", turns.join(",\n ")));
    if flags & 0x10 != 0 {
        top.push(match dialect {
            0 => format!(r#""user":{}"#, src.string(0)),
            1 => format!(r#""system":[{{"type":"text","text":{}}}]"#, src.string(0)),
            _ => format!(r#""instructions":{}"#, src.string(0)),
        });
    }
    if flags & 0x20 != 0 {
        top.push(match dialect {
            0 => format!(
                r#""tools":[{{"type":"function","function":{{"name":"lookup","description":{},"parameters":{{"type":"object","properties":{{"to":{{"type":"string","description":{},"enum":[{}]}}}},"required":["to"]}}}}}}]"#,
                src.string(0),
                src.string(0),
                src.string(0)
            ),
            1 => format!(r#""metadata":{{"user_id":{}}}"#, src.string(0)),
            _ => format!(
                r#""text":{{"format":{{"type":"json_schema","name":"out","schema":{{"type":"object","properties":{{"to":{{"type":"string","description":{}}}}}}}}}}},"safety_identifier":{}"#,
                src.string(0),
                src.string(0)
            ),
        });
    }
    format!("{{{}}}", top.join(",\n "))
}

/// A string's decoded text, and the strings, keys and numbers of JSON text in it, as deep as
/// substitution opens it (`body::json_pieces`).
#[derive(Debug)]
enum Flat {
    Leaf(String),
    Doc(Vec<Flat>),
}

fn flatten(text: &str, depth: usize) -> Flat {
    if depth < MAX_JSON_TEXT_DEPTH {
        let first = text
            .bytes()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if matches!(first, Some(b'{' | b'[' | b'"')) {
            if let Some(root) = tree::parse(text.as_bytes()) {
                let mut items = Vec::new();
                if collect(text.as_bytes(), &root, depth + 1, &mut items).is_some() {
                    return Flat::Doc(items);
                }
            }
        }
    }
    Flat::Leaf(text.to_owned())
}

fn collect(text: &[u8], node: &Node, depth: usize, out: &mut Vec<Flat>) -> Option<()> {
    match node {
        Node::Str(span) => out.push(flatten(&tree::decode(text, span.clone())?, depth)),
        Node::Scalar(span) => {
            let token = std::str::from_utf8(text.get(span.clone())?).ok()?;
            if token.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                out.push(Flat::Leaf(token.to_owned()));
            }
        }
        Node::Array(items) => {
            for i in items {
                collect(text, i, depth, out)?;
            }
        }
        Node::Object(entries) => {
            for e in entries {
                out.push(flatten(&tree::decode(text, e.key_span.clone())?, depth));
                collect(text, &e.value, depth, out)?;
            }
        }
    }
    Some(())
}

fn leaves<'f>(f: &'f Flat, out: &mut Vec<&'f str>) {
    match f {
        Flat::Leaf(s) => out.push(s),
        Flat::Doc(items) => items.iter().for_each(|i| leaves(i, out)),
    }
}

/// The output's `got` restored is the input's `want`, piece for piece.
fn restores_to(want: &Flat, got: &Flat, set: Option<&Arc<RestoreSet>>) {
    match (want, got) {
        (Flat::Leaf(w), Flat::Leaf(g)) => {
            let back = match set {
                Some(set) => String::from_utf8(set.restore_with(g.as_bytes(), Mode::Text))
                    .expect("restored text is UTF-8"),
                None => g.clone(),
            };
            assert_eq!(&back, w, "restored {g:?} is not the input's string");
        }
        (Flat::Doc(w), Flat::Doc(g)) => {
            assert_eq!(w.len(), g.len(), "JSON text changed shape: {w:?} -> {g:?}");
            w.iter().zip(g).for_each(|(w, g)| restores_to(w, g, set));
        }
        _ => panic!("JSON text in a string changed kind: {want:?} -> {got:?}"),
    }
}

/// The value spans of the signed members of thinking blocks in assistant turns (recipe
/// bodies have no duplicate keys, so `get` sees what the walker sees).
fn signed_spans(body: &[u8], root: &Node) -> HashSet<(usize, usize)> {
    let mut out = HashSet::new();
    let Some(Node::Array(turns)) = root.get("messages") else {
        return out;
    };
    for turn in turns {
        if turn.get("role").and_then(|r| r.as_str(body)).as_deref() != Some("assistant") {
            continue;
        }
        for key in ["content", "thinking_blocks"] {
            let Some(Node::Array(blocks)) = turn.get(key) else {
                continue;
            };
            for b in blocks {
                let members: &[&str] = match b.get("type").and_then(|t| t.as_str(body)).as_deref() {
                    Some("thinking") => &["thinking", "signature"],
                    Some("redacted_thinking") => &["data"],
                    _ => &[],
                };
                for m in members {
                    if let Some(Node::Str(span)) = b.get(m) {
                        out.insert((span.start, span.end));
                    }
                }
            }
        }
    }
    out
}

struct Check<'a> {
    input: &'a [u8],
    output: &'a [u8],
    /// Every string is searched (a recipe body) but these spans of the input.
    recipe: Option<HashSet<(usize, usize)>>,
    set: Option<Arc<RestoreSet>>,
    /// The originals to look for; `None` when the session is incomplete.
    originals: Option<HashSet<&'a str>>,
    detector: &'a Detector,
}

impl Check<'_> {
    fn node(&self, a: &Node, b: &Node) {
        match (a, b) {
            (Node::Str(x), Node::Str(y)) => self.string(x, y),
            (Node::Scalar(x), Node::Scalar(y)) => {
                let (before, after) = (&self.input[x.clone()], &self.output[y.clone()]);
                if before != after {
                    // A number in data the client wrote (a tool call's input) may be an
                    // entity: its stand-in restores to it, and nothing else ever changes.
                    let set = self
                        .set
                        .as_ref()
                        .unwrap_or_else(|| panic!("a number changed with nothing substituted"));
                    assert_eq!(
                        set.restore_all(after),
                        before,
                        "a changed number does not restore"
                    );
                }
            }
            (Node::Array(x), Node::Array(y)) => {
                assert_eq!(x.len(), y.len(), "an array changed length");
                x.iter().zip(y).for_each(|(a, b)| self.node(a, b));
            }
            (Node::Object(x), Node::Object(y)) => {
                assert_eq!(x.len(), y.len(), "an object changed size");
                for (a, b) in x.iter().zip(y) {
                    self.string(&a.key_span, &b.key_span);
                    self.node(&a.value, &b.value);
                }
            }
            _ => panic!("a value changed kind: {a:?} -> {b:?}"),
        }
    }

    fn string(&self, x: &Range<usize>, y: &Range<usize>) {
        let (raw_in, raw_out) = (&self.input[x.clone()], &self.output[y.clone()]);
        let changed = raw_in != raw_out;
        let searched = match &self.recipe {
            Some(signed) if signed.contains(&(x.start, x.end)) => {
                assert!(!changed, "a signed thinking member was rewritten");
                return;
            }
            Some(_) => true,
            None => changed,
        };
        if !searched {
            return;
        }
        let Some(want) = tree::decode(self.input, x.clone()) else {
            panic!("an input string that does not decode was rewritten");
        };
        let got = tree::decode(self.output, y.clone()).expect("a rewritten string decodes");
        let (want, got) = (flatten(&want, 0), flatten(&got, 0));
        restores_to(&want, &got, self.set.as_ref());
        let Some(originals) = &self.originals else {
            return;
        };
        let mut texts = Vec::new();
        leaves(&got, &mut texts);
        for t in texts {
            for f in self.detector.find(t) {
                let found = &t[f.range];
                assert!(
                    !originals.contains(found),
                    "original {found:?} reached the provider in {t:?}"
                );
            }
        }
    }
}

fn run(detector: &Detector, body: &[u8], secret: u8, recipe: bool) {
    let mut scratch = SimdScratch::new();
    let inspected = inspect_request_simd(body, &mut scratch);
    let valid = !matches!(inspected, Err(JsonError::Syntax(_) | JsonError::TooDeep));
    if recipe {
        assert!(
            inspected.is_ok(),
            "recipe body refused ({inspected:?}): {}",
            String::from_utf8_lossy(body)
        );
    }
    let Ok(parsed) = parse_body(body) else {
        return;
    };
    let mut session = Session::new(detector, &[secret]);
    let result = substitute_body(&parsed.body, &mut session);
    if !valid {
        return;
    }
    let Ok(out) = result else {
        // Admission answers 500 for this: the inspector let the body in, the span parser not.
        assert!(
            inspected.is_err(),
            "an admitted body could not be substituted"
        );
        return;
    };
    notes_move_with_the_splices(&parsed.body, &out, detector, secret);
    let again = inspect_request_simd(&out, &mut scratch);
    match &inspected {
        Ok(info) => {
            let again = again.expect("the substituted body is refused");
            assert_eq!(
                (&again.model, again.stream),
                (&info.model, info.stream),
                "model or stream changed"
            );
        }
        Err(_) => assert!(
            !matches!(again, Err(JsonError::Syntax(_) | JsonError::TooDeep)),
            "the substituted body is not JSON: {again:?}"
        ),
    }
    if let Some(m) = members(&out) {
        assert!(m.iter().all(|m| m.key != FLAG), "the flag went upstream");
    }
    let pairs = session.pairs();
    if pairs.is_empty() {
        assert_eq!(
            out, parsed.body,
            "nothing substituted, yet the body changed"
        );
    }
    if session.counts().total() > 0 {
        assert_ne!(
            out, parsed.body,
            "entities counted, yet the body is unchanged"
        );
    }
    let (Some(a), Some(b)) = (tree::parse(&parsed.body), tree::parse(&out)) else {
        panic!("the span parser refuses a body it substituted or wrote");
    };
    let check = Check {
        input: &parsed.body,
        output: &out,
        recipe: recipe.then(|| signed_spans(&parsed.body, &a)),
        set: session.restore_set(),
        originals: (!session.incomplete())
            .then(|| pairs.iter().map(|p| p.original.as_str()).collect()),
        detector,
    };
    check.node(&a, &b);
}

/// As admission does: the body substituted with its inspection's notes, which then move with
/// the rewritten tokens and are trusted by the inspection of the output. The same output as
/// without notes; every moved note where a plain scan finds its string; the output inspected
/// with them reads as without them.
fn notes_move_with_the_splices(body: &[u8], out: &[u8], detector: &Detector, secret: u8) {
    let Ok(info) = inspect_request(body) else {
        return;
    };
    let mut session = Session::new(detector, &[secret]);
    let spliced = with_notes(body, &info.strings, || {
        substitute_spliced(body, &mut session)
    });
    let (noted_out, splices) = spliced.expect("an inspected body substituted with its notes");
    assert_eq!(noted_out, out, "the notes changed what substitution wrote");
    let moved = info.strings.spliced(&splices, out);
    assert!(moved.hold_in(out), "a moved note is wrong");
    let plain = inspect_request(out);
    let noted = with_notes(out, &moved, || inspect_request(out));
    assert_eq!(
        noted, plain,
        "the moved notes changed the output's inspection"
    );
}

/// Only the built-in detectors on, where strings no pattern can match in are searched still
/// escaped (and long ones found clean before are kept), against the same detectors with a
/// never-matching operator regex, where every string is decoded: the same body out, the same
/// stand-ins, the same refusal.
fn escaped_search_is_decoded_search(body: &[u8], secret: u8) {
    static D: OnceLock<Option<(Detector, Detector)>> = OnceLock::new();
    let Some((builtin, decoding)) = D
        .get_or_init(|| {
            let builtin = Detector::new(&[], &[]).ok()?;
            let decoding = Detector::new(&["x\\b\\Bx".into()], &[]).ok()?;
            Some((builtin, decoding))
        })
        .as_ref()
    else {
        return;
    };
    let Ok(parsed) = parse_body(body) else {
        return;
    };
    let mut a = Session::new(builtin, &[secret]);
    let mut b = Session::new(decoding, &[secret]);
    let x = substitute_body(&parsed.body, &mut a);
    let y = substitute_body(&parsed.body, &mut b);
    assert_eq!(x, y, "searching escaped strings changed the body");
    assert_eq!(
        a.pairs(),
        b.pairs(),
        "searching escaped strings changed the stand-ins"
    );
    assert_eq!(a.incomplete(), b.incomplete());
    // Again on this thread: the long strings the first pass cleared or searched clean are
    // found kept (`pii::plain`), and give what decoding gives.
    let mut c = Session::new(builtin, &[secret]);
    let z = substitute_body(&parsed.body, &mut c);
    assert_eq!(z, y, "kept strings changed the body");
    assert_eq!(c.pairs(), b.pairs(), "kept strings changed the stand-ins");
    assert_eq!(c.incomplete(), b.incomplete());
}

fuzz_target!(|data: &[u8]| {
    let Some(detector) = detector() else { return };
    match data.first() {
        None => {}
        Some(b'{' | b' ' | b'\t' | b'\n' | b'\r') => {
            let mut body = Vec::with_capacity(data.len() * 2);
            let mut it = data.iter();
            while let Some(&b) = it.next() {
                match (b, it.clone().next()) {
                    (0xff, Some(&i)) => {
                        it.next();
                        body.extend_from_slice(
                            ENTITIES[usize::from(i) % ENTITIES.len()].as_bytes(),
                        );
                    }
                    _ => body.push(b),
                }
            }
            run(detector, &body, b'k', false);
            escaped_search_is_decoded_search(&body, b'k');
        }
        Some(&secret) => {
            let mut src = Src(&data[1..]);
            let body = recipe(&mut src);
            run(detector, body.as_bytes(), secret, true);
            escaped_search_is_decoded_search(body.as_bytes(), secret);
        }
    }
});
