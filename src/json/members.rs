//! The members of a validated top-level JSON object as byte spans, and removing one by
//! splicing: how a gateway-only field (`allow_fallbacks`) leaves a body that is otherwise
//! forwarded byte for byte, and how a Responses request's stored-response fields are found.

use std::ops::Range;

use super::cursor::Cursor;
use super::scan::Scanner;
use super::MAX_JSON_DEPTH;

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

/// The members of `body`'s top-level object, in order. `body` must already be validated
/// (`inspect_request`); None if it is not an object after all.
pub fn members(body: &[u8]) -> Option<Vec<Member>> {
    let mut c = Cursor::new(body, 0);
    c.expect(b'{')?;
    c.skip_ws();
    let mut out = Vec::new();
    if c.eat(b'}').is_some() {
        return Some(out);
    }
    loop {
        let key = c.string()?.quoted();
        let key_start = key.start;
        let key: String = serde_json::from_slice(body.get(key)?).ok()?;
        c.expect(b':')?;
        c.skip_ws();
        let v = c.pos();
        // The scanner crosses strings a block at a time (a Responses `input` is most of an
        // agent's body: the byte-at-a-time skip cost ~3 instructions a byte of it). Where it
        // refuses (a lone surrogate, which serde_json's validation lets by in skipped
        // values), the plain skip decides; a validated body nests at most MAX_JSON_DEPTH
        // deep, so that skip never stops short.
        let mut scan = Scanner::new(body, v);
        match scan.value() {
            Ok(()) => c.advance(scan.i - v),
            Err(_) => c.skip_value(MAX_JSON_DEPTH)?,
        }
        let v_end = c.pos();
        out.push(Member {
            key,
            span: key_start..v_end,
            value: v..v_end,
        });
        c.skip_ws();
        match c.peek()? {
            b',' => {
                c.advance(1);
                c.skip_ws();
            }
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

    #[test]
    fn spans_are_serde_jsons_and_what_the_scanner_refuses_is_skipped_plainly() {
        // A lone surrogate (the scanner refuses it; serde_json's raw values keep it), escapes
        // across block boundaries, nesting.
        let body = concat!(
            r#"{"a":"x\ud800y","b":[1,{"c":"\\\""}],"long":"#,
            r#""0123456789abcdef\n0123456789abcdef\"0123456789\\abcdef","#,
            r#""d":{"e":[[],{}]} , "f":-1.5e3}"#
        );
        let m = members(body.as_bytes()).unwrap();
        let theirs: Vec<(String, &serde_json::value::RawValue)> =
            serde_json::from_str::<std::collections::BTreeMap<String, _>>(body)
                .unwrap()
                .into_iter()
                .collect();
        let mut ours: Vec<(String, &str)> = m
            .iter()
            .map(|m| (m.key.clone(), &body[m.value.clone()]))
            .collect();
        ours.sort();
        let theirs: Vec<(String, &str)> = theirs.into_iter().map(|(k, v)| (k, v.get())).collect();
        assert_eq!(ours, theirs);
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
