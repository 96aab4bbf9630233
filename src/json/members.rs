//! The members of a validated top-level JSON object as byte spans, and removing one by
//! splicing: how a gateway-only field (`allow_fallbacks`) leaves a body that is otherwise
//! forwarded byte for byte. Runs only on bodies that mention such a field.

use std::ops::Range;

/// One `"key": value` member of the top-level object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The key, unescaped (keys are compared as the provider reads them).
    pub key: String,
    /// From the key's opening quote to the value's last byte.
    pub span: Range<usize>,
    /// The value's bytes.
    pub value: Range<usize>,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// End (exclusive) of the string token opening at `i`. Jumps from one quote or backslash to
/// the next (memchr2): most of a Codex-sized request is string bytes (instructions, file
/// contents), and a byte-at-a-time walk made one pass over a 74 KB body cost ~47 µs, paid by
/// every Responses request two or three times (issue 28's measurement).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b.get(at)? == &b'"' {
            return Some(at + 1);
        }
        // A backslash: the byte after it is escaped, whatever it is.
        i = at + 2;
    }
}

/// End (exclusive) of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            // A number or a literal: up to the next delimiter.
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The members of `body`'s top-level object, in order. `body` must already be validated
/// (`inspect_request`); None if it is not an object after all.
pub fn members(body: &[u8]) -> Option<Vec<Member>> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(body, i + 1);
    let mut out = Vec::new();
    if body.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let key_start = i;
        let key_end = string_end(body, i)?;
        let key: String = serde_json::from_slice(body.get(key_start..key_end)?).ok()?;
        i = skip_ws(body, key_end);
        if body.get(i) != Some(&b':') {
            return None;
        }
        let v = skip_ws(body, i + 1);
        let v_end = value_end(body, v)?;
        out.push(Member {
            key,
            span: key_start..v_end,
            value: v..v_end,
        });
        i = skip_ws(body, v_end);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// `body` without the members named `key` (and the commas that joined them), everything
/// else byte for byte. Returns the removed members' values too.
pub fn remove_members(body: &[u8], key: &str) -> Option<(Vec<u8>, Vec<Range<usize>>)> {
    let all = members(body)?;
    let (Some(first), Some(last)) = (all.first(), all.last()) else {
        return Some((body.to_vec(), Vec::new()));
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(body.get(..first.span.start)?);
    let mut values = Vec::new();
    let mut wrote_any = false;
    for (n, m) in all.iter().enumerate() {
        if m.key == key {
            values.push(m.value.clone());
            continue;
        }
        if wrote_any {
            // The separator that preceded this member in the body (a comma and whitespace).
            let prev_end = all
                .get(n.wrapping_sub(1))
                .map_or(m.span.start, |p| p.span.end);
            out.extend_from_slice(body.get(prev_end..m.span.start)?);
        }
        out.extend_from_slice(body.get(m.span.clone())?);
        wrote_any = true;
    }
    out.extend_from_slice(body.get(last.span.end..)?);
    Some((out, values))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn without(body: &str, key: &str) -> Value {
        let mut v: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
        v.remove(key);
        Value::Object(v)
    }

    #[test]
    fn removal_matches_a_serde_round_trip() {
        let cases = [
            r#"{"allow_fallbacks":false}"#,
            r#"{"allow_fallbacks":false,"model":"m"}"#,
            r#"{"model":"m","allow_fallbacks":false}"#,
            r#"{ "model" : "m" , "allow_fallbacks" : false , "x" : [1,{"allow_fallbacks":true}] }"#,
            r#"{"a":"}\"{","allow_fallbacks":true,"b":{"c":[]},"allow_fallbacks":false,"d":-1.5e3}"#,
            r#"{"allow_fallbacks":false,"allow_fallbacks":false,"m":null}"#,
            r#"{"allow_\u0066allbacks":false,"model":"m"}"#,
            r#"{"model":"m"}"#,
        ];
        for body in cases {
            let (out, _) = remove_members(body.as_bytes(), "allow_fallbacks").unwrap();
            let got: Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{body} -> {} ({e})", String::from_utf8_lossy(&out)));
            // Duplicate keys: serde keeps the last, so compare only keys other than it.
            assert_eq!(got, without(body, "allow_fallbacks"), "{body}");
        }
        // Untouched bytes stay as they were.
        let (out, values) = remove_members(
            br#"{"model" :"m",  "allow_fallbacks": false ,"stream":true}"#,
            "allow_fallbacks",
        )
        .unwrap();
        assert_eq!(out, br#"{"model" :"m" ,"stream":true}"#);
        assert_eq!(values.len(), 1);
    }

    /// The byte-at-a-time scan `string_end` replaced, as the reference.
    fn string_end_reference(b: &[u8], mut i: usize) -> Option<usize> {
        i += 1;
        loop {
            match b.get(i)? {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
    }

    #[test]
    fn string_end_agrees_with_a_byte_scan_on_every_prefix() {
        // Escapes everywhere (a trailing backslash, an escaped quote or backslash at a cut, a
        // long run with none), each string cut at every length so unterminated ones are met.
        let mut long = String::from("\"");
        for i in 0..300 {
            long.push_str(if i % 37 == 0 {
                "\\\\\\\""
            } else {
                "fn x() {}\\n"
            });
        }
        long.push('"');
        let cases = [
            r#""""#,
            r#""a""#,
            r#""\"""#,
            r#""\\""#,
            r#""\\\"x""#,
            r#""\u0022"""#,
            "\"\\",
            "\"abc\\",
            long.as_str(),
        ];
        for case in cases {
            let b = case.as_bytes();
            for cut in 0..=b.len() {
                let p = &b[..cut];
                assert_eq!(
                    string_end(p, 0),
                    string_end_reference(p, 0),
                    "{case:?} cut {cut}"
                );
            }
            let mut padded = b"xy".to_vec();
            padded.extend_from_slice(b);
            padded.extend_from_slice(b",\"z\"");
            assert_eq!(
                string_end(&padded, 2),
                string_end_reference(&padded, 2),
                "{case:?}"
            );
        }
    }

    #[test]
    fn members_of_nested_documents() {
        let body = br#"{"a":{"b":"}"},"c":[1,[2]],"d":"x\"y"}"#;
        let m = members(body).unwrap();
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(&body[m[2].value.clone()], br#""x\"y""#);
        assert!(members(b"[1]").is_none());
        assert_eq!(members(b" {} ").unwrap(), vec![]);
    }
}
