//! OTLP/HTTP protobuf encoding of `ExportTraceServiceRequest`
//! (opentelemetry/proto/collector/trace/v1): one resource (the service), one instrumentation
//! scope (ringway), the spans. Pure: spans in, bytes out. Written by hand (varints and
//! length-delimited fields, ~150 lines) rather than generated: the message set is small and
//! fixed, and a protobuf crate with its build step would outweigh it.

use super::span::{Attributes, Event, Span, Value};

/// The instrumentation scope's name.
pub const SCOPE: &str = "ringway";

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// Encode one export request for `spans` of the service `service` (its resource also says
/// `telemetry.sdk.*` and the gateway's version) into `out`.
pub fn encode(service: &str, spans: &[Span], out: &mut Vec<u8>) {
    // ExportTraceServiceRequest.resource_spans = 1
    nested(out, 1, |rs| {
        // ResourceSpans.resource = 1 { attributes = 1 }
        nested(rs, 1, |r| {
            attribute(r, 1, "service.name", &Value::Str(service.to_owned()));
            attribute(r, 1, "telemetry.sdk.name", &Value::Str(SCOPE.to_owned()));
            attribute(
                r,
                1,
                "telemetry.sdk.language",
                &Value::Str("rust".to_owned()),
            );
            let version = env!("CARGO_PKG_VERSION").to_owned();
            attribute(r, 1, "service.version", &Value::Str(version));
        });
        // ResourceSpans.scope_spans = 2
        nested(rs, 2, |ss| {
            // ScopeSpans.scope = 1 { name = 1, version = 2 }
            nested(ss, 1, |sc| {
                string(sc, 1, SCOPE);
                string(sc, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                // ScopeSpans.spans = 2
                nested(ss, 2, |s| encode_span(s, span));
            }
        });
    });
}

fn encode_span(out: &mut Vec<u8>, span: &Span) {
    bytes(out, 1, &span.trace_id);
    bytes(out, 2, &span.span_id);
    if let Some(state) = &span.trace_state {
        string(out, 3, state);
    }
    if let Some(parent) = &span.parent {
        bytes(out, 4, parent);
    }
    string(out, 5, &span.name);
    key(out, 6, VARINT);
    varint(out, span.kind as u64);
    fixed64(out, 7, span.start);
    fixed64(out, 8, span.end);
    attributes(out, 9, &span.attributes);
    for event in &span.events {
        nested(out, 11, |e| encode_event(e, event));
    }
    // Status { message = 2, code = 3 }
    nested(out, 15, |st| {
        if !span.message.is_empty() {
            string(st, 2, &span.message);
        }
        if span.status as u64 != 0 {
            key(st, 3, VARINT);
            varint(st, span.status as u64);
        }
    });
}

fn encode_event(out: &mut Vec<u8>, event: &Event) {
    fixed64(out, 1, event.time);
    string(out, 2, event.name);
    attributes(out, 3, &event.attributes);
}

fn attributes(out: &mut Vec<u8>, field: u32, attrs: &Attributes) {
    for (k, v) in attrs {
        attribute(out, field, k, v);
    }
}

/// A `KeyValue { key = 1, value = 2 }` as field `field`.
fn attribute(out: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    nested(out, field, |kv| {
        string(kv, 1, k);
        nested(kv, 2, |any| any_value(any, v));
    });
}

/// `AnyValue`: string 1, bool 2, int 3, double 4, array 5 (`ArrayValue { values = 1 }`).
fn any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => string(out, 1, s),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::Int(n) => {
            key(out, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            varint(out, *n as u64);
        }
        Value::Double(d) => fixed64(out, 4, d.to_bits()),
        Value::StrList(list) => nested(out, 5, |arr| {
            for s in list {
                nested(arr, 1, |any| string(any, 1, s));
            }
        }),
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// A length-delimited message: written in place, then its length put in front (the bytes
/// behind shift once per level; a few levels, on the exporter thread).
fn nested(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let mark = out.len();
    body(out);
    let mut len = Vec::with_capacity(5);
    varint(&mut len, (out.len() - mark) as u64);
    out.splice(mark..mark, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::span::{Code, Kind};

    /// A protobuf field as a test reads it: (field, wire type, payload).
    fn fields(mut b: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn read_varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let k = read_varint(&mut b);
            let (field, wire) = (k >> 3, (k & 7) as u8);
            let payload = match wire {
                0 => read_varint(&mut b).to_le_bytes().to_vec(),
                1 => {
                    let p = b[..8].to_vec();
                    b = &b[8..];
                    p
                }
                2 => {
                    let n = read_varint(&mut b) as usize;
                    let p = b[..n].to_vec();
                    b = &b[n..];
                    p
                }
                w => panic!("wire type {w}"),
            };
            out.push((field, wire, payload));
        }
        out
    }

    #[test]
    fn an_export_request_nests_resource_scope_and_spans() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            trace_state: None,
            name: "chat m".repeat(40),
            kind: Kind::Server,
            start: 1_700_000_000_000_000_000,
            end: 1_700_000_000_500_000_000,
            attributes: vec![
                ("gen_ai.usage.input_tokens", Value::Int(-1)),
                ("s", Value::StrList(vec!["stop".into()])),
            ],
            events: vec![Event {
                time: 5,
                name: "gen_ai.first_token",
                attributes: vec![],
            }],
            status: Code::Error,
            message: "boom".into(),
        };
        let mut out = Vec::new();
        encode("svc", &[span.clone(), span], &mut out);
        let top = fields(&out);
        assert_eq!(top.len(), 1);
        let rs = fields(&top[0].2);
        assert_eq!(rs.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        let scope_spans = fields(&rs[1].2);
        assert_eq!(scope_spans.iter().filter(|f| f.0 == 2).count(), 2);
        let s = fields(&scope_spans[1].2);
        assert_eq!(s[0], (1, 2, vec![1; 16]));
        assert_eq!(s[2], (4, 2, vec![3; 8]));
        assert_eq!(s[3].2, "chat m".repeat(40).into_bytes());
        assert_eq!(
            s[5],
            (7, 1, 1_700_000_000_000_000_000u64.to_le_bytes().to_vec())
        );
        let kv = fields(&s[7].2);
        let any = fields(&kv[1].2);
        assert_eq!(any[0].0, 3);
        assert_eq!(any[0].2, u64::MAX.to_le_bytes().to_vec());
        let status = fields(&s.last().unwrap().2);
        assert_eq!(
            status,
            [
                (2, 2, b"boom".to_vec()),
                (3, 0, 2u64.to_le_bytes().to_vec())
            ]
        );
    }
}
