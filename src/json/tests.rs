//! Differential tests. Each case checks the serde_json parser, the simd-json parser, and a
//! plain recursive-descent reference parser against one another. Splicing is checked by
//! round-tripping through the reference tree and through `serde_json::Value`.

use std::fmt;

use serde_json::Value;

use super::simd_path::{collect, Refusal};
use super::*;

/// A JSON tree from the reference parser. Numbers keep their text and objects keep duplicate
/// keys.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// A deliberately plain recursive-descent parser. It is the oracle for the rules in the
/// module docs.
struct RefParser<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: usize,
}

impl RefParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, s: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + s.len()) == Some(s) {
            self.i += s.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<J> {
        match self.peek()? {
            b'{' => {
                self.i += 1;
                self.max_depth = self.max_depth.max(depth + 1);
                let mut entries = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Some(J::Obj(entries));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    self.eat(b":")?;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    entries.push((key, v));
                    self.ws();
                    match self.bump()? {
                        b',' => {}
                        b'}' => return Some(J::Obj(entries)),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.max_depth = self.max_depth.max(depth + 1);
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Some(J::Arr(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.bump()? {
                        b',' => {}
                        b']' => return Some(J::Arr(items)),
                        _ => return None,
                    }
                }
            }
            b'"' => self.string().map(J::Str),
            b't' => self.eat(b"true").map(|()| J::Bool(true)),
            b'f' => self.eat(b"false").map(|()| J::Bool(false)),
            b'n' => self.eat(b"null").map(|()| J::Null),
            _ => self.number(),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<J> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(J::Num(
            String::from_utf8(self.b[start..self.i].to_vec()).ok()?,
        ))
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut n = 0;
        for _ in 0..4 {
            n = n * 16 + char::from(self.bump()?).to_digit(16)?;
        }
        Some(n)
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b"\"")?;
        let mut out = Vec::new();
        loop {
            match self.bump()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = match self.bump()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xd800..0xdc00).contains(&hi) {
                                self.eat(b"\\u")?;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?
                            } else {
                                char::from_u32(hi)?
                            }
                        }
                        _ => return None,
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

/// Parses a whole document with the reference parser.
fn ref_parse(body: &[u8]) -> Result<J, JsonError> {
    let syntax = || JsonError::Syntax("reference".into());
    std::str::from_utf8(body).map_err(|_| syntax())?;
    let mut p = RefParser {
        b: body,
        i: 0,
        max_depth: 0,
    };
    p.ws();
    let v = p.value(0).ok_or_else(syntax)?;
    p.ws();
    if p.i != body.len() {
        return Err(syntax());
    }
    if p.max_depth > MAX_JSON_DEPTH {
        return Err(JsonError::TooDeep);
    }
    Ok(v)
}

/// New model names to splice in. They cover quotes, backslashes, controls, non-ASCII and
/// astral characters.
const NEW_MODELS: &[&str] = &[
    "claude-haiku-4-5",
    r#"quo"te"#,
    r"back\slash\",
    "ünï/模型😀",
    "ctl\n\t\u{1}\u{1f}",
];

/// The reference: the rules from the module docs, applied as plainly as possible to the
/// [`ref_parse`] tree. The span is not checked here; [`check`] checks it separately.
fn reference(body: &[u8]) -> Result<(String, bool), JsonError> {
    let J::Obj(entries) = ref_parse(body)? else {
        return Err(JsonError::NotObject);
    };
    let field = |name: &str| -> Vec<&J> {
        entries
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    };
    let model = match field("model").as_slice() {
        [] => return Err(JsonError::MissingModel),
        [J::Str(s)] => s.clone(),
        [_] => return Err(JsonError::ModelNotString),
        _ => return Err(JsonError::DuplicateModel),
    };
    if model.is_empty() {
        return Err(JsonError::EmptyModel);
    }
    let stream = match field("stream").as_slice() {
        [] | [J::Null] => false,
        [J::Bool(b)] => *b,
        [_] => return Err(JsonError::StreamNotBool),
        _ => return Err(JsonError::DuplicateStream),
    };
    Ok((model, stream))
}

/// Error kind, ignoring the message text.
fn class(r: &Result<impl fmt::Debug, JsonError>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(JsonError::Syntax(_)) => "Syntax".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs both parsers and the reference on `body` and checks that they agree. Returns the
/// result. If the body is accepted, also checks the span and splicing for every
/// [`NEW_MODELS`] entry.
fn check(body: &[u8], scratch: &mut SimdScratch) -> Result<RequestInfo, JsonError> {
    let shown = String::from_utf8_lossy(body);
    let serde = inspect_request_serde(body);
    let simd = inspect_request_simd(body, scratch);
    assert_eq!(serde, simd, "serde vs simd on {shown}");
    let scan = super::scan::inspect_request_scan(body);
    assert_eq!(
        scan.clone().map(unsealed),
        serde.clone().map(unsealed),
        "scan vs serde on {shown}"
    );
    assert_eq!(inspect_request(body), scan, "inspect_request on {shown}");
    // Both builds of the string scan (SSE2, and AVX2 where the CPU has it) gather the same.
    if let Some(lanes) = super::mask::Avx2::detect() {
        assert_eq!(
            format!("{:?}", super::scan::collect_on(body, Some(lanes))),
            format!("{:?}", super::scan::collect_on(body, None)),
            "AVX2 vs SSE2 scan on {shown}"
        );
    }
    // The seal note: exact where the scanner decides (a token opens with the mark), else a
    // search for `"rw1.`; never a miss.
    if let (Ok(scan), Ok(serde)) = (&scan, &serde) {
        let exact = opens_with_mark(body);
        assert_eq!(
            serde.may_hold_seal,
            crate::seal::may_hold_seal(body),
            "{shown}"
        );
        if super::scan::collect(body).is_ok() {
            assert_eq!(scan.may_hold_seal, exact, "seal note on {shown}");
        }
        assert!(scan.may_hold_seal || !exact, "seal note on {shown}");
    }
    let want = reference(body);
    assert_eq!(
        class(&serde),
        class(&want),
        "vs reference on {shown}: {serde:?} / {want:?}"
    );

    // simd-json must never accept what the reference rejects. When the reference accepts a
    // document, simd-json must too, except for numbers it cannot represent.
    match collect(body, scratch) {
        Ok(_) => assert!(
            !matches!(want, Err(JsonError::Syntax(_) | JsonError::TooDeep)),
            "simd-json accepted {shown}"
        ),
        Err(Refusal::NotObject) => assert_eq!(want, Err(JsonError::NotObject)),
        Err(Refusal::Tape) => panic!("unexpected tape shape on {shown}"),
        Err(Refusal::Parse) => assert!(
            matches!(want, Err(JsonError::Syntax(_) | JsonError::TooDeep))
                || has_extreme_number(body),
            "simd-json refused {shown}"
        ),
    }

    // The scanner accepts exactly the valid objects: what it refuses, serde_json decides, so
    // a refusal of a valid one would only cost time, but it must be rare (a number shape it
    // does not know, say), and an acceptance of an invalid one would be a wrong answer.
    let valid_object = !matches!(
        want,
        Err(JsonError::Syntax(_) | JsonError::TooDeep | JsonError::NotObject)
    );
    assert_eq!(
        super::scan::collect(body).is_ok(),
        valid_object,
        "scan on {shown}: {want:?}"
    );

    if let (Ok(info), Ok((model, stream))) = (&serde, &want) {
        assert_eq!(&info.model, model);
        assert_eq!(info.stream, *stream);
        let token: String = serde_json::from_slice(&body[info.model_span.clone()]).unwrap();
        assert_eq!(&token, model, "span on {shown}");
        let tree = ref_parse(body).unwrap();
        // `Value` refuses numbers beyond f64 and 128 levels of nesting, so it only checks
        // the documents it can read.
        let original = serde_json::from_slice::<Value>(body).ok();
        for new in NEW_MODELS {
            let spliced = splice_string(body, info.model_span.clone(), new).unwrap();
            let mut expected = tree.clone();
            if let J::Obj(entries) = &mut expected {
                for (k, v) in entries.iter_mut() {
                    if k == "model" {
                        *v = J::Str((*new).to_owned());
                    }
                }
            }
            assert_eq!(
                ref_parse(&spliced),
                Ok(expected),
                "splice of {new:?} into {shown}"
            );
            if let Some(original) = &original {
                let mut expected = original.clone();
                expected["model"] = Value::String((*new).to_owned());
                let got: Value = serde_json::from_slice(&spliced).unwrap();
                assert_eq!(got, expected, "splice of {new:?} into {shown}");
            }
            // The spliced body is itself a valid request with the new model.
            let again = inspect_request_serde(&spliced).unwrap();
            assert_eq!(again.model, *new);
            assert_eq!(again.model_span.start, info.model_span.start);
            assert_eq!(again, inspect_request_simd(&spliced, scratch).unwrap());
        }
    }
    serde
}

/// True if the body may hold a number simd-json refuses: a run of 19 or more digits (may not
/// fit i64/u64), or an exponent of three or more digits (may overflow f64).
fn has_extreme_number(body: &[u8]) -> bool {
    let long_run = body
        .split(|b| !b.is_ascii_digit())
        .any(|run| run.len() >= 19);
    let big_exponent = body.iter().enumerate().any(|(i, b)| {
        let rest = body.get(i + 1..).unwrap_or_default();
        let rest = rest
            .strip_prefix(b"+")
            .or(rest.strip_prefix(b"-"))
            .unwrap_or(rest);
        matches!(b, b'e' | b'E') && rest.iter().take_while(|d| d.is_ascii_digit()).count() >= 3
    });
    long_run || big_exponent
}

/// `info` without its seal note (which the parsers make in two ways).
fn unsealed(info: RequestInfo) -> RequestInfo {
    RequestInfo {
        may_hold_seal: false,
        ..info
    }
}

/// Whether a string token of a valid `body` opens with the seal mark: a `"rw1.` whose quote
/// is not escaped (a closing quote is never followed by `r` in valid JSON).
fn opens_with_mark(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"\"rw1.").any(|at| {
        let backslashes = body[..at].iter().rev().take_while(|&&c| c == b'\\').count();
        backslashes % 2 == 0
    })
}

fn ok(body: &str) -> RequestInfo {
    check(body.as_bytes(), &mut SimdScratch::new()).unwrap()
}

fn err(body: &[u8]) -> JsonError {
    check(body, &mut SimdScratch::new()).unwrap_err()
}

/// A realistic OpenAI chat request: system and user turns, escapes, CJK and emoji, a tool with
/// a nested `model` property, and metadata with its own `model`.
fn chat_request(model_json: &str, stream: &str) -> String {
    format!(
        r#"{{
  "messages": [
    {{"role": "system", "content": "You are terse.\nQuote: \"hi\" \\ path C:\\tmp"}},
    {{"role": "user", "content": "翻訳して: こんにちは 😀 \ud83d\ude00 \u00e9", "name": "u1"}},
    {{"role": "assistant", "content": null, "tool_calls": [{{"id": "c1", "type": "function",
      "function": {{"name": "lookup", "arguments": "{{\"model\":\"inner\"}}"}}}}]}},
    {{"role": "tool", "tool_call_id": "c1", "content": "{{\"model\": \"tool-said\"}}"}}
  ],
  "model": {model_json},
  "tools": [{{"type": "function", "function": {{"name": "lookup", "parameters":
    {{"type": "object", "properties": {{"model": {{"type": "string"}}}}, "required": ["model"]}}}}}}],
  "metadata": {{"model": "meta", "trace": [1, -2.5e-3, 1E+2, true, false, null]}},
  "temperature": 0.2,
  "stream": {stream}
}}"#
    )
}

#[test]
fn finds_model_in_realistic_requests() {
    let info = ok(&chat_request(r#""fast""#, "true"));
    assert_eq!(info.model, "fast");
    assert!(info.stream);
    let info = ok(&chat_request(
        r#""gpt\u002d4o \"x\" \\ 模型 \ud83d\ude00""#,
        "false",
    ));
    assert_eq!(info.model, "gpt-4o \"x\" \\ 模型 😀");
    assert!(!info.stream);
    assert_eq!(ok(&chat_request(r#""m""#, "null")).model, "m");
}

#[test]
fn model_first_middle_last_and_whitespace_forms() {
    for body in [
        r#"{"model":"m","messages":[]}"#,
        r#"{"messages":[],"model":"m"}"#,
        r#"{"a":1,"model":"m","b":2}"#,
        "\t\r\n {\n\t\"model\"\r\n:\t\"m\"\n}\r\n\t ",
        r#"{"model":"m"}"#,
        " {  \"x\" : { \"model\" : \"no\" } , \"model\" : \"m\" } ",
    ] {
        assert_eq!(ok(body).model, "m", "{body}");
    }
}

#[test]
fn the_seal_note_finds_string_tokens_that_open_with_the_mark() {
    for (body, sealed) in [
        (r#"{"model":"m","x":"rw1.abc"}"#, true),
        (r#"{"model":"m","x":[{"y":["rw1."]}]}"#, true),
        (r#"{"rw1.k":1,"model":"m"}"#, true),
        (r#"{"model":"rw1.m"}"#, true),
        // After an escaped quote: text, not a token.
        (r#"{"model":"m","x":"say \"rw1.abc\" "}"#, false),
        (r#"{"model":"m","x":"\\","y":"rw1.abc"}"#, true),
        (
            r#"{"model":"m","x":"a rw1.b","y":"rw1","z":"rw1,x"}"#,
            false,
        ),
        (r#"{"model":"m","x":"\\rw1.b","y":"\\\\"}"#, false),
        (r#"{"model":"m","x":"r\u0077\u0031.b"}"#, false),
    ] {
        // Through `check` (every parser, the note's rules), then the gateway's own answer.
        ok(body);
        assert_eq!(
            inspect_request(body.as_bytes()).unwrap().may_hold_seal,
            sealed,
            "{body}"
        );
        // Past the first 64-byte mask, and at a mask's last bytes.
        for pad in [0, 40, 57, 58, 59, 60, 61, 62, 63, 64, 65, 200] {
            let padded = body.replacen(
                r#""model":"m""#,
                &format!(r#""p":"{}","model":"m""#, "a".repeat(pad)),
                1,
            );
            ok(&padded);
            let info = inspect_request(padded.as_bytes()).unwrap();
            assert_eq!(info.may_hold_seal, sealed, "{padded}");
        }
    }
}

#[test]
fn escaped_keys_are_the_same_key() {
    let info = ok(r#"{"mod\u0065l":"m"}"#);
    assert_eq!(info.model, "m");
    assert_eq!(ok(r#"{"\u006d\u006F\u0064\u0065\u006c":"m"}"#).model, "m");
    assert!(!ok(r#"{"model":"m","str\u0065am":false}"#).stream);
    assert!(ok(r#"{"model":"m","str\u0065am":true}"#).stream);
    assert_eq!(
        err(br#"{"model":"a","mod\u0065l":"b"}"#),
        JsonError::DuplicateModel
    );
    assert_eq!(
        err(br#"{"model":"a","mod\u0065l":"a"}"#),
        JsonError::DuplicateModel
    );
    // Not the same key: different case, or a different character.
    assert_eq!(err(br#"{"Model":"a"}"#), JsonError::MissingModel);
    assert_eq!(err(br#"{"model ":"a"}"#), JsonError::MissingModel);
}

#[test]
fn nested_model_keys_are_ignored() {
    assert_eq!(
        err(br#"{"messages":[{"model":"x"}],"metadata":{"model":"y"}}"#),
        JsonError::MissingModel
    );
    let info = ok(r#"{"metadata":{"model":"inner"},"model":"outer","tools":[{"model":1}]}"#);
    assert_eq!(info.model, "outer");
}

#[test]
fn field_errors() {
    assert_eq!(err(br#"{}"#), JsonError::MissingModel);
    assert_eq!(err(br#"{"model":null}"#), JsonError::ModelNotString);
    assert_eq!(err(br#"{"model":1}"#), JsonError::ModelNotString);
    assert_eq!(err(br#"{"model":["m"]}"#), JsonError::ModelNotString);
    assert_eq!(err(br#"{"model":{"id":"m"}}"#), JsonError::ModelNotString);
    assert_eq!(err(br#"{"model":""}"#), JsonError::EmptyModel);
    assert_eq!(
        err(br#"{"model":"a","model":"b"}"#),
        JsonError::DuplicateModel
    );
    assert_eq!(
        err(br#"{"model":1,"model":"b"}"#),
        JsonError::DuplicateModel
    );
    assert_eq!(
        err(br#"{"model":"m","stream":"true"}"#),
        JsonError::StreamNotBool
    );
    assert_eq!(
        err(br#"{"model":"m","stream":1}"#),
        JsonError::StreamNotBool
    );
    assert_eq!(
        err(br#"{"model":"m","stream":[true]}"#),
        JsonError::StreamNotBool
    );
    assert_eq!(
        err(br#"{"model":"m","stream":{}}"#),
        JsonError::StreamNotBool
    );
    assert_eq!(
        err(br#"{"model":"m","stream":true,"stream":true}"#),
        JsonError::DuplicateStream
    );
    // Validation comes first: an invalid document is a syntax error even with a bad model.
    assert!(matches!(
        err(br#"{"model":1,"x":tru}"#),
        JsonError::Syntax(_)
    ));
    assert!(matches!(
        err(br#"{"model":"a","model":"b",}"#),
        JsonError::Syntax(_)
    ));
    // Other duplicate keys are allowed.
    assert_eq!(
        ok(r#"{"model":"m","n":1,"n":2,"messages":[],"messages":[]}"#).model,
        "m"
    );
}

#[test]
fn not_objects() {
    for body in [
        &b"[]"[..],
        b"[{\"model\":\"m\"}]",
        b"\"model\"",
        b"1",
        b"null",
        b" true ",
    ] {
        assert_eq!(
            err(body),
            JsonError::NotObject,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn invalid_documents() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        br#"{"model":"m""#,
        br#"{"model":"m"#,
        br#"{"model":"m",}"#,
        br#"{"model":"m"} x"#,
        br#"{"model":"m"}{}"#,
        b"{\"model\":\"m\"}\x00",
        br#"{"model":"m"},"#,
        br#"["a",]"#,
        br#"{'model':'m'}"#,
        br#"{"model":"m","t":NaN}"#,
        br#"{"model":"m","t":01}"#,
        br#"{"model":"m","t":1.}"#,
        br#"{"model":"m","t":.5}"#,
        br#"{"model":"m"/*c*/}"#,
        b"\xef\xbb\xbf{\"model\":\"m\"}",
        b"\x0c{\"model\":\"m\"}",
        b"{\"model\":\"m\xff\"}",
        b"{\"model\":\"m\",\"c\":\"\xed\xa0\x80\"}",
        b"{\"model\":\"m\",\"c\xc3\":1}",
        b"{\"model\":\"m\t\"}",
        br#"{"model":"m","c":"\x41"}"#,
        br#"{"model":"\ud800"}"#,
        br#"{"model":"\udc00x"}"#,
        br#"{"model":"m","c":"\ud83d"}"#,
        br#"{"model":"m","c":"\ud83d\u0041"}"#,
        br#"{"model":"m","c":"\ud83d\ue000"}"#,
        br#"{"model":"m","c":"\udbff\uffff"}"#,
        br#"{"model":"m","c":"\ud83d\ud83d\ude00"}"#,
        br#"{"model":"m","c":["\ude00"]}"#,
        br#"{"model":"m","\ud800":1}"#,
        br#"{"model":"m","c":{"\ud800":1}}"#,
        br#"{"model":"m","c":"\u12"}"#,
        br#"{"model":"m","c":"\uzzzz"}"#,
        br#"["\ud800"]"#,
        b"[1",
        b"{\"a\" 1}",
        b"{1:2}",
    ];
    for body in cases {
        let e = err(body);
        assert!(
            matches!(e, JsonError::Syntax(_)),
            "{}: {e:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn syntax_messages_carry_a_position() {
    let e = err(br#"{"model":"m" "x":1}"#);
    assert_eq!(
        e.to_string(),
        "request body is not valid JSON: expected `,` or `}` at line 1 column 14"
    );
}

#[test]
fn numbers_are_checked_for_shape_only() {
    for n in [
        "0",
        "-0",
        "1.5e-3",
        "1E+2",
        "4.9e-325",
        "1.7976931348623157e308",
        "18446744073709551615",
        "-9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "1e400",
        "-1.5E+999999999999",
        "0.000000000000000000000000000000000000001e-400",
    ] {
        let body = format!(r#"{{"model":"m","seed":{n}}}"#);
        assert_eq!(ok(&body).model, "m", "{n}");
    }
    for n in [
        "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1_000", "Infinity", "-NaN",
    ] {
        let body = format!(r#"{{"model":"m","seed":{n}}}"#);
        assert!(matches!(err(body.as_bytes()), JsonError::Syntax(_)), "{n}");
    }
}

#[test]
fn depth_limit_is_shared() {
    let nest = |levels: usize| {
        // The top-level object is level 1; `levels - 1` arrays go inside it.
        let inner = levels - 1;
        format!(
            r#"{{"model":"m","x":{}1{}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    };
    assert_eq!(ok(&nest(MAX_JSON_DEPTH)).model, "m");
    assert_eq!(err(nest(MAX_JSON_DEPTH + 1).as_bytes()), JsonError::TooDeep);
    assert_eq!(
        err(nest(MAX_JSON_DEPTH + 50).as_bytes()),
        JsonError::TooDeep
    );
    let deep_model = format!(r#"{{"model":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    assert_eq!(err(deep_model.as_bytes()), JsonError::TooDeep);
    let deep_stream = format!(
        r#"{{"model":"m","stream":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(err(deep_stream.as_bytes()), JsonError::TooDeep);
    // Siblings do not add up: 500 objects and arrays side by side are two levels deep.
    let wide = format!(r#"{{"model":"m","x":[{}[]]}}"#, "{},[],".repeat(500));
    assert_eq!(ok(&wide).model, "m");
    // Past serde_json's own recursion limit and simd-json's default one.
    assert_eq!(err(nest(1100).as_bytes()), JsonError::TooDeep);
    // A syntax error outranks depth, wherever it is.
    let deep_then_bad = nest(MAX_JSON_DEPTH + 1).replace(r#""m""#, r#""\udc00""#);
    assert!(matches!(
        err(deep_then_bad.as_bytes()),
        JsonError::Syntax(_)
    ));
    let deep_then_trailing = format!("{} x", nest(MAX_JSON_DEPTH + 1));
    assert!(matches!(
        err(deep_then_trailing.as_bytes()),
        JsonError::Syntax(_)
    ));
}

#[test]
fn every_truncation_of_a_valid_request_is_rejected() {
    let body = chat_request(r#""fa\"st""#, "true");
    let bytes = body.as_bytes();
    let mut scratch = SimdScratch::new();
    assert!(check(bytes, &mut scratch).is_ok());
    for cut in 0..bytes.len() {
        let r = check(&bytes[..cut], &mut scratch);
        assert!(
            matches!(r, Err(JsonError::Syntax(_))),
            "cut at {cut}: {r:?}"
        );
    }
}

/// A tiny deterministic PRNG (xorshift64*), so the tests need no crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Generates random JSON text. It reaches the parsers' corners: every whitespace byte, escape
/// forms, raw and escaped non-ASCII, surrogate pairs, big integers, and `model` and `stream`
/// keys at every depth.
struct Gen {
    rng: Rng,
    out: String,
}

/// Pieces of string content, raw or escaped.
const STRING_PIECES: &[&str] = &[
    "a",
    "hello",
    " ",
    "model",
    "stream",
    "模型",
    "こんにちは",
    "😀",
    "é",
    "\u{7f}",
    "\u{2028}",
    r"\n",
    r"\t",
    r"\r",
    r"\b",
    r"\f",
    r"\/",
    r#"\""#,
    r"\\",
    r"\u0000",
    r"\u001f",
    r"\u00e9",
    r"\u6a21",
    r"\uD83D\uDE00",
    r"\ud83e\udd16",
    r"\uFFFF",
    r"\u0022",
    r"\u005c",
    "data:image/png;base64,iVBORw0KGgo=",
];

/// Keys that may appear, including `model` and `stream` spelled raw and escaped.
const KEYS: &[&str] = &[
    "messages",
    "role",
    "content",
    "model",
    "stream",
    r"mod\u0065l",
    r"\u0073tream",
    "tools",
    "metadata",
    "temperature",
    "",
    "ключ",
    r"\ud83d\ude00",
];

const WHITESPACE: &[&str] = &["", "", "", " ", "\n", "\t", "\r\n", "  \n\t "];

impl Gen {
    fn ws(&mut self) {
        let w = *self.rng.pick(WHITESPACE);
        self.out.push_str(w);
    }

    fn string(&mut self) {
        self.out.push('"');
        for _ in 0..self.rng.below(5) {
            let p = *self.rng.pick(STRING_PIECES);
            self.out.push_str(p);
        }
        self.out.push('"');
    }

    fn number(&mut self) {
        let n = match self.rng.below(9) {
            0 => "0".to_owned(),
            1 => "-0".to_owned(),
            2 => format!("{}", self.rng.next() % 1000),
            3 => format!("-{}.{}", self.rng.next() % 100, self.rng.next() % 1000),
            4 => format!("{}e{}", self.rng.next() % 10, self.rng.below(40)),
            5 => format!("{}.5E-{}", self.rng.next() % 10, self.rng.below(300)),
            6 => format!("{}", self.rng.next()),
            7 => "1e400".to_owned(),
            _ => "-123456789012345678901234567890".to_owned(),
        };
        self.out.push_str(&n);
    }

    fn value(&mut self, depth: usize) {
        let kind = if depth > 5 {
            self.rng.below(5)
        } else {
            self.rng.below(8)
        };
        match kind {
            0 => {
                let lit = *self.rng.pick(&["null", "true", "false"]);
                self.out.push_str(lit);
            }
            1 => self.number(),
            2..=4 => self.string(),
            5 | 6 => self.object(depth + 1, None),
            _ => {
                self.out.push('[');
                let n = self.rng.below(4);
                for i in 0..n {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.ws();
                    self.value(depth + 1);
                    self.ws();
                }
                self.ws();
                self.out.push(']');
            }
        }
    }

    /// An object. At the top level, `model_at` places a `model` key at that position.
    fn object(&mut self, depth: usize, model_at: Option<usize>) {
        self.out.push('{');
        let n = self.rng.below(6);
        let mut first = true;
        for i in 0..=n {
            if model_at == Some(i) {
                if !first {
                    self.out.push(',');
                }
                first = false;
                self.ws();
                let key = if self.rng.chance(80) {
                    "model"
                } else {
                    r"mod\u0065l"
                };
                self.out.push('"');
                self.out.push_str(key);
                self.out.push('"');
                self.ws();
                self.out.push(':');
                self.ws();
                if self.rng.chance(90) {
                    self.string();
                } else {
                    self.value(depth);
                }
                self.ws();
            }
            if i == n {
                break;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            self.ws();
            let key = *self.rng.pick(KEYS);
            self.out.push('"');
            self.out.push_str(key);
            self.out.push('"');
            self.ws();
            self.out.push(':');
            self.ws();
            if key == "stream" && self.rng.chance(70) {
                let lit = *self.rng.pick(&["true", "false", "null"]);
                self.out.push_str(lit);
            } else {
                self.value(depth);
            }
            self.ws();
        }
        self.out.push('}');
    }

    fn document(&mut self) -> String {
        self.out.clear();
        self.ws();
        let model_at = if self.rng.chance(90) {
            Some(self.rng.below(6))
        } else {
            None
        };
        self.object(1, model_at);
        self.ws();
        self.out.clone()
    }
}

#[test]
fn random_documents_agree_with_the_reference() {
    let mut g = Gen {
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        out: String::new(),
    };
    let mut scratch = SimdScratch::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..4000 {
        let doc = g.document();
        assert!(
            ref_parse(doc.as_bytes()).is_ok(),
            "generator made invalid JSON: {doc}"
        );
        let r = check(doc.as_bytes(), &mut scratch);
        *counts.entry(class(&r)).or_default() += 1;
    }
    // The generator must reach both accepted documents and each field error.
    for kind in [
        "Ok",
        "MissingModel",
        "DuplicateModel",
        "ModelNotString",
        "StreamNotBool",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 20,
            "{kind}: {counts:?}"
        );
    }
}

#[test]
fn random_mutations_agree_with_the_reference() {
    let mut g = Gen {
        rng: Rng(0x2545_f491_4f6c_dd1d),
        out: String::new(),
    };
    let mut scratch = SimdScratch::new();
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut doc = g.document().into_bytes();
        if doc.is_empty() {
            continue;
        }
        for _ in 0..=g.rng.below(2) {
            let at = g.rng.below(doc.len());
            match g.rng.below(4) {
                0 => doc[at] = *g.rng.pick(b"{}[]\",:\\u0 \x00\xff\xc3\xed"),
                1 => {
                    doc.remove(at);
                }
                2 => doc.insert(at, *g.rng.pick(b"{}[]\",:\\\x80")),
                _ => doc.truncate(at),
            }
            if doc.is_empty() {
                break;
            }
        }
        if check(&doc, &mut scratch).is_err() {
            rejected += 1;
        }
    }
    assert!(
        rejected > 1000,
        "mutations should mostly break documents: {rejected}"
    );
}

#[test]
fn messages_and_max_tokens_shapes_agree() {
    let mut scratch = SimdScratch::new();
    for (body, messages, max_tokens) in [
        (
            r#"{"model":"m","messages":[],"max_tokens":5}"#,
            FieldShape::Array,
            FieldShape::Number,
        ),
        (
            r#"{"model":"m","messages":"hi","max_tokens":"5"}"#,
            FieldShape::Other,
            FieldShape::Other,
        ),
        (
            r#"{"model":"m","messages":null,"max_tokens":-1.5e3}"#,
            FieldShape::Other,
            FieldShape::Number,
        ),
        (r#"{"model":"m"}"#, FieldShape::Absent, FieldShape::Absent),
        (
            r#"{"model":"m","messages":{"0":1},"max_tokens":[1]}"#,
            FieldShape::Other,
            FieldShape::Array,
        ),
        (
            r#"{"model":"m","messages":[1],"messages":"x"}"#,
            FieldShape::Array,
            FieldShape::Absent,
        ),
        (
            r#"{"model":"m","x":{"messages":[]}}"#,
            FieldShape::Absent,
            FieldShape::Absent,
        ),
    ] {
        let info = check(body.as_bytes(), &mut scratch).unwrap();
        assert_eq!(
            (info.messages, info.max_tokens),
            (messages, max_tokens),
            "{body}"
        );
    }
}

#[test]
fn privacy_tier_is_found_by_both_parsers_alike() {
    let long = "t".repeat(MAX_GATEWAY_TEXT_BYTES + 1);
    let cases: Vec<(String, TextField)> = vec![
        (r#"{"model":"m"}"#.into(), TextField::Absent),
        (
            r#"{"model":"m","privacy_tier":"canada_managed"}"#.into(),
            TextField::Text("canada_managed".into()),
        ),
        // Keys are compared unescaped, as everywhere: an escaped key is still the field.
        (
            r#"{"privacy\u005ftier":"c\u0061","model":"m"}"#.into(),
            TextField::Text("ca".into()),
        ),
        (
            r#"{"model":"m","privacy_tier":"a","privacy_tier":"b"}"#.into(),
            TextField::Text("a".into()),
        ),
        (
            r#"{"model":"m","privacy_tier":null}"#.into(),
            TextField::Other,
        ),
        (
            r#"{"model":"m","privacy_tier":["ca"]}"#.into(),
            TextField::Other,
        ),
        (
            format!(r#"{{"model":"m","privacy_tier":"{long}"}}"#),
            TextField::Other,
        ),
        // Nested keys are never looked at.
        (
            r#"{"model":"m","metadata":{"privacy_tier":"x"}}"#.into(),
            TextField::Absent,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(ok(&body).privacy_tier, want, "{body}");
    }
}

#[test]
fn the_pii_flag_is_read_by_both_paths_with_its_key_unescaped() {
    for (body, want) in [
        (
            &br#"{"model":"m","pii_substitution":true}"#[..],
            Flag::Bool(true),
        ),
        (
            br#"{"model":"m","pii\u005fsubstitution":true}"#,
            Flag::Bool(true),
        ),
        (br#"{"model":"m","pii_substitution":"yes"}"#, Flag::Other),
        (
            br#"{"model":"m","x":{"pii_substitution":true}}"#,
            Flag::Absent,
        ),
        (br#"{"model":"m","note":"pii_substitution"}"#, Flag::Absent),
    ] {
        let simd = inspect_request(body).unwrap();
        let serde = serde_path::inspect_request_serde(body).unwrap();
        assert_eq!(
            simd.pii_substitution,
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            serde.pii_substitution,
            want,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Ends of the value and of the string token at the start of `bytes`, as serde's reader finds
/// them (None where serde refuses).
fn serde_end<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<usize> {
    let mut it = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    it.next()?.ok()?;
    Some(it.byte_offset())
}

/// The shared cursor skips a value exactly where serde's reader ends it, on random documents
/// and values (escapes, surrogates, big numbers, every white space) followed by what may
/// follow a value; and every cut inside a string or container is refused by both.
#[test]
fn cursor_skips_values_where_serde_ends_them() {
    use cursor::Cursor;
    use serde::de::IgnoredAny;
    let mut g = Gen {
        rng: Rng(0x0c0f_fee0_dd15_ea5e),
        out: String::new(),
    };
    let mut cuts = 0;
    for n in 0..3000 {
        if n % 2 == 0 {
            g.document();
        } else {
            g.out.clear();
            g.ws();
            g.value(1);
        }
        let tail = *g.rng.pick(&["", ",", "]", "}", " ,1", "\n:"]);
        let doc = format!("{}{tail}", g.out);
        let bytes = doc.as_bytes();
        let want = serde_end::<IgnoredAny>(bytes).expect("generated JSON");
        let mut c = Cursor::new(bytes, 0);
        c.skip_ws();
        let start = c.pos();
        assert!(c.skip_value(MAX_JSON_DEPTH).is_some(), "{doc}");
        assert_eq!(c.pos(), want, "{doc}");
        let nested_or_string = matches!(bytes[start], b'"' | b'{' | b'[');
        if nested_or_string && n < 300 {
            for cut in start + 1..want {
                let short = &bytes[..cut];
                assert!(Cursor::new(short, start)
                    .skip_value(MAX_JSON_DEPTH)
                    .is_none());
                assert!(serde_end::<IgnoredAny>(short).is_none(), "{cut} {doc}");
                cuts += 1;
            }
        }
    }
    assert!(cuts > 5000, "{cuts}");
}

/// String tokens with a quote, backslash or control byte dropped in: wherever serde reads the
/// string, both cursor walks end where serde ends; the strict walk refuses only what serde
/// refuses too (control bytes, no end).
#[test]
fn cursor_strings_end_where_serde_ends_them() {
    use cursor::Cursor;
    let mut g = Gen {
        rng: Rng(0x5eed_1e55_ca5e_f00d),
        out: String::new(),
    };
    let (mut agreed, mut refused) = (0, 0);
    for _ in 0..20_000 {
        g.out.clear();
        g.string();
        let mut token = g.out.clone().into_bytes();
        if g.rng.chance(70) {
            let at = 1 + g.rng.below(token.len() - 1);
            token.insert(at, *g.rng.pick(b"\"\\\x01\x1fx\x7f"));
        }
        let serde = serde_end::<String>(&token);
        let loose = Cursor::new(&token, 0).string().map(|t| t.quoted().end);
        let mut strict = Cursor::new(&token, 0);
        let strict = strict.strict_string().map(|t| (t.quoted().end, t.escaped));
        if let Some(end) = serde {
            assert_eq!(loose, Some(end), "{token:?}");
            let escaped = token[1..end - 1].contains(&b'\\');
            assert_eq!(strict, Some((end, escaped)), "{token:?}");
            agreed += 1;
        }
        if strict.is_none() {
            assert_eq!(serde, None, "{token:?}");
            refused += 1;
        }
    }
    assert!(agreed > 8000 && refused > 1000, "{agreed} {refused}");
}

/// Nesting up to the bound is skipped, one level more is refused, and brackets inside strings
/// do not count.
#[test]
fn cursor_depth_bound_is_exact() {
    use cursor::Cursor;
    let nest = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
    for inner in ["", r#""]]]\"[[[""#, "1", r#"{"a":"}"}"#] {
        let levels = MAX_JSON_DEPTH - usize::from(inner.starts_with('{'));
        let ok = nest(levels, inner);
        let mut c = Cursor::new(ok.as_bytes(), 0);
        assert!(c.skip_value(MAX_JSON_DEPTH).is_some(), "{inner}");
        assert_eq!(c.pos(), ok.len());
        let deep = nest(levels + 1, inner);
        assert!(Cursor::new(deep.as_bytes(), 0)
            .skip_value(MAX_JSON_DEPTH)
            .is_none());
    }
}

/// Each member `members` finds is one serde reads: the same keys, and each value span holds
/// the value serde gives the key (the last one, for a key given twice).
#[test]
fn members_of_random_documents_are_serdes() {
    let mut g = Gen {
        rng: Rng(0x1234_5678_9abc_def1),
        out: String::new(),
    };
    for _ in 0..2000 {
        let doc = g.document();
        let Ok(Value::Object(want)) = serde_json::from_str::<Value>(&doc) else {
            continue;
        };
        let got = members(doc.as_bytes()).expect("a valid object");
        let mut last = serde_json::Map::new();
        for m in &got {
            let value: Value = serde_json::from_slice(&doc.as_bytes()[m.value.clone()]).unwrap();
            last.insert(m.key.clone(), value);
        }
        assert_eq!(last, want, "{doc}");
    }
}
