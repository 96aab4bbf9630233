//! Usage reading per dialect, and the key scan against a full parse (the oracle) on bodies
//! with keys in hostile places.

use super::*;
use serde_json::{json, Value};

fn u(input: u64, output: u64, cache_read: u64, cache_write: u64, reasoning: u64) -> Usage {
    Usage {
        input,
        output,
        cache_read,
        cache_write,
        reasoning,
    }
}

/// A JSON object with its members in the given order (the providers' order; `json!` sorts).
fn ordered(members: &[(&str, Value)], pretty: bool) -> String {
    let sep = if pretty { ",\n  " } else { "," };
    let colon = if pretty { ": " } else { ":" };
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}{colon}{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", inner.join(sep))
}

fn stop(m: &Metered) -> Option<&str> {
    m.stop.as_ref().map(StopReason::as_str)
}

#[test]
fn openai_body() {
    let body = json!({
        "id": "c", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "say \"usage\": {}"},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 8},
                  "completion_tokens_details": {"reasoning_tokens": 4}},
        "system_fingerprint": null
    });
    let m = from_body(Format::OpenAi, body.to_string().as_bytes());
    assert_eq!(m.usage, Some(u(20, 9, 8, 0, 4)));
    assert_eq!(stop(&m), Some("length"));
}

#[test]
fn anthropic_body_adds_cache_back_into_input() {
    let body = json!({
        "id": "m", "type": "message", "role": "assistant",
        "content": [{"type": "tool_use", "id": "t", "name": "f",
                     "input": {"usage": {"input_tokens": 999}, "stop_reason": "nope"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 30,
                  "cache_creation_input_tokens": 5}
    });
    let m = from_body(Format::Anthropic, body.to_string().as_bytes());
    assert_eq!(m.usage, Some(u(45, 7, 30, 5, 0)));
    assert_eq!(stop(&m), Some("tool_use"));
}

#[test]
fn responses_body_status_and_incomplete_reason() {
    let body = |status: &str, details: Value| {
        ordered(
            &[
                ("id", json!("resp_1")),
                ("object", json!("response")),
                ("created_at", json!(1)),
                ("status", json!(status)),
                ("incomplete_details", details),
                (
                    "output",
                    json!([{"type": "message", "status": "incomplete", "content": []}]),
                ),
                (
                    "usage",
                    json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2},
                           "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 25},
                           "total_tokens": 42}),
                ),
                ("metadata", json!({})),
            ],
            false,
        )
    };
    let m = from_body(
        Format::Responses,
        body("incomplete", json!({"reason": "max_output_tokens"})).as_bytes(),
    );
    assert_eq!(m.usage, Some(u(12, 30, 2, 0, 25)));
    assert_eq!(stop(&m), Some("max_output_tokens"));
    let done = body("completed", Value::Null);
    assert_eq!(
        stop(&from_body(Format::Responses, done.as_bytes())),
        Some("completed")
    );
}

#[test]
fn no_usage_no_numbers() {
    for (f, b) in [
        (Format::OpenAi, r#"{"choices":[],"usage":null}"#),
        (Format::Anthropic, r#"{"content":[]}"#),
        (Format::Responses, "not json at all"),
        (Format::OpenAi, r#"{"usage":{"weird":1}}"#),
        (Format::OpenAi, r#"{"usage":{"prompt_tokens":-1}}"#),
        (Format::OpenAi, ""),
    ] {
        assert_eq!(from_body(f, b.as_bytes()).usage, None, "{b}");
    }
}

#[test]
fn parts_never_exceed_their_whole() {
    let m = from_body(
        Format::OpenAi,
        br#"{"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":{"reasoning_tokens":7}}}"#,
    );
    assert_eq!(m.usage, Some(u(3, 2, 3, 0, 2)));
}

#[test]
fn stop_reasons_are_cleaned_and_bounded() {
    assert_eq!(StopReason::new("end_turn").unwrap().as_str(), "end_turn");
    assert_eq!(StopReason::new("a\"b\n{c}").unwrap().as_str(), "abc");
    assert_eq!(
        StopReason::new(&"x".repeat(500)).unwrap().as_str().len(),
        MAX_STOP_REASON_BYTES
    );
    assert!(StopReason::new("\u{1F600} \n").is_none());
}

fn feed(format: Format, events: &[(Option<&str>, String)]) -> Metered {
    let mut m = Meter::new(format);
    for (name, data) in events {
        m.on_event(name.map(str::as_bytes), data.as_bytes());
    }
    m.metered()
}

#[test]
fn openai_stream_final_usage_chunk() {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"{{"id":"c","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"usage":null}}"#
        )
    };
    let events = vec![
        (None, chunk(r#"{"role":"assistant","content":""}"#, "null")),
        (None, chunk(r#"{"content":"\"usage\":{\"prompt_tokens\":5}"}"#, "null")),
        (None, chunk("{}", "\"stop\"")),
        (
            None,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}"#
                .to_owned(),
        ),
        (None, "[DONE]".to_owned()),
    ];
    let m = feed(Format::OpenAi, &events);
    assert_eq!(m.usage, Some(u(11, 3, 0, 0, 0)));
    assert_eq!(stop(&m), Some("stop"));
    // Without the usage chunk (the client did not ask): the stop reason alone.
    let m = feed(Format::OpenAi, &events[..3]);
    assert_eq!(m.usage, None);
    assert_eq!(stop(&m), Some("stop"));
}

#[test]
fn anthropic_stream_delta_usage_is_cumulative_output() {
    let start = r#"{"type":"message_start","message":{"id":"m","content":[],"stop_reason":null,"usage":{"input_tokens":10,"cache_read_input_tokens":20,"cache_creation_input_tokens":0,"output_tokens":1}}}"#;
    let events = vec![
        (Some("message_start"), start.to_owned()),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"\"usage\":{\"output_tokens\":99}"}}"#
                .to_owned(),
        ),
        (
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":4}}"#
                .to_owned(),
        ),
        (
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":0,"output_tokens":6}}"#
                .to_owned(),
        ),
        (Some("message_stop"), r#"{"type":"message_stop"}"#.to_owned()),
    ];
    let m = feed(Format::Anthropic, &events);
    assert_eq!(m.usage, Some(u(30, 6, 20, 0, 0)));
    assert_eq!(stop(&m), Some("end_turn"));
    // No event lines: the type is read from the data's front.
    let bare: Vec<(Option<&str>, String)> = events.iter().map(|(_, d)| (None, d.clone())).collect();
    assert_eq!(feed(Format::Anthropic, &bare), m);
}

#[test]
fn responses_stream_terminal_events() {
    for (kind, status, reason, want) in [
        ("response.completed", "completed", "null", "completed"),
        (
            "response.incomplete",
            "incomplete",
            r#"{"reason":"content_filter"}"#,
            "content_filter",
        ),
        ("response.failed", "failed", "null", "failed"),
    ] {
        let data = format!(
            r#"{{"type":"{kind}","sequence_number":9,"response":{{"id":"resp","object":"response","status":"{status}","incomplete_details":{reason},"output":[{{"type":"message","status":"completed"}}],"usage":{{"input_tokens":7,"output_tokens":5,"output_tokens_details":{{"reasoning_tokens":2}},"input_tokens_details":{{"cached_tokens":1}}}}}}}}"#
        );
        let delta = r#"{"type":"response.output_text.delta","delta":"\"usage\":{}"}"#.to_owned();
        let m = feed(
            Format::Responses,
            &[
                (Some("response.output_text.delta"), delta),
                (Some(kind), data.clone()),
            ],
        );
        assert_eq!(m.usage, Some(u(7, 5, 1, 0, 2)), "{kind}");
        assert_eq!(stop(&m), Some(want), "{kind}");
        assert_eq!(
            feed(Format::Responses, &[(None, data)]),
            m,
            "{kind} without event:"
        );
    }
}

/// The oracle: the body parsed whole, usage and stop read from the tree.
fn oracle(format: Format, body: &Value) -> Metered {
    let usage = body
        .get("usage")
        .filter(|u| u.is_object())
        .and_then(|u| serde_json::from_value::<Raw>(u.clone()).ok())
        .filter(Raw::any)
        .map(|r| r.usage(format));
    let s = |v: Option<&Value>| v.and_then(Value::as_str).and_then(StopReason::new);
    let stop = match format {
        Format::OpenAi => s(body["choices"]
            .as_array()
            .and_then(|c| c.last())
            .and_then(|c| c.get("finish_reason"))),
        Format::Anthropic => s(body.get("stop_reason")),
        Format::Responses => s(body["incomplete_details"].get("reason")).or(s(body.get("status"))),
        Format::Gemini => s(body["candidates"][0].get("finishReason")),
    };
    Metered {
        usage,
        stop,
        estimated: false,
    }
}

/// Random bodies whose text and tool inputs hold the searched keys in every way a provider
/// could put them there: the scan agrees with the whole parse, and a relayed body read
/// through the head/tail windows in random reads agrees too.
/// A seeded xorshift: `next(n)` is a number in `0..n`.
fn xorshift(seed: u64) -> impl Fn(u64) -> u64 {
    let state = std::cell::Cell::new(seed);
    move |n| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % n.max(1)
    }
}

#[test]
fn scan_agrees_with_a_full_parse() {
    let next = xorshift(0x9e37_79b9_7f4a_7c15);
    let nasty = [
        "\"usage\":{\"prompt_tokens\":1}",
        "{\"usage\": {\"input_tokens\": 5}, \"stop_reason\": \"x\"}",
        "\"finish_reason\":\"tool_calls\"",
        "\"status\":\"failed\"",
        "plain words",
    ];
    for case in 0..400 {
        let format = [Format::OpenAi, Format::Anthropic, Format::Responses][(case % 3) as usize];
        let text: String = (0..next(6))
            .map(|_| nasty[next(nasty.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
            + &"pad ".repeat(next(3) as usize * 3000);
        let n = |k: u64| json!(next(k));
        let tool_input = json!({"usage": {"prompt_tokens": 77, "input_tokens": 77},
                                "stop_reason": "inner", "finish_reason": "inner", "status": "inner"});
        let with_usage = next(4) != 0;
        let pretty = next(2) == 0;
        let usage = match format {
            Format::OpenAi => json!({"prompt_tokens": n(5000), "completion_tokens": n(900),
                "prompt_tokens_details": {"cached_tokens": n(100)},
                "completion_tokens_details": {"reasoning_tokens": n(100)}}),
            Format::Anthropic => json!({"input_tokens": n(5000), "output_tokens": n(900),
                "cache_read_input_tokens": n(100), "cache_creation_input_tokens": n(100)}),
            Format::Responses => json!({"input_tokens": n(5000), "output_tokens": n(900),
                "input_tokens_details": {"cached_tokens": n(100)},
                "output_tokens_details": {"reasoning_tokens": n(100)}}),
            Format::Gemini => unreachable!("the cases are the three JSON-usage dialects"),
        };
        let mut members: Vec<(&str, Value)> = match format {
            Format::OpenAi => vec![
                ("id", json!("c")),
                (
                    "choices",
                    json!([{"index": 0, "message": {"content": text,
                    "tool_calls": [{"function": {"arguments": tool_input.to_string()}}]},
                    "finish_reason": (["stop", "length", "tool_calls"][next(3) as usize])}]),
                ),
            ],
            Format::Anthropic => vec![
                ("id", json!("m")),
                (
                    "content",
                    json!([{"type": "text", "text": text},
                                   {"type": "tool_use", "input": tool_input}]),
                ),
                (
                    "stop_reason",
                    json!((["end_turn", "tool_use", "max_tokens"][next(3) as usize])),
                ),
            ],
            Format::Responses => vec![
                ("id", json!("resp")),
                ("object", json!("response")),
                (
                    "status",
                    json!((["completed", "incomplete"][next(2) as usize])),
                ),
                (
                    "incomplete_details",
                    if next(2) == 0 {
                        json!(null)
                    } else {
                        json!({"reason": "max_output_tokens"})
                    },
                ),
                (
                    "output",
                    json!([{"type": "message", "status": "completed", "content": [{"text": text}]},
                                  {"type": "function_call", "arguments": tool_input.to_string()}]),
                ),
            ],
            Format::Gemini => unreachable!("the cases are the three JSON-usage dialects"),
        };
        if with_usage {
            members.push(("usage", usage));
        }
        if format == Format::Responses {
            members.push(("metadata", json!({"k": "v"})));
        }
        let text = ordered(&members, pretty);
        let bytes = text.as_bytes().to_vec();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let want = oracle(format, &body);
        assert_eq!(from_body(format, &bytes), want, "case {case}");
        let mut meter = BodyMeter::new(format);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let take = (1 + next(9000) as usize).min(rest.len());
            meter.push(&rest[..take]);
            rest = &rest[take..];
        }
        assert_eq!(meter.finish(), want, "case {case}, windows");
    }
}

/// The byte-at-a-time walk `net_depth` replaced: the reference it must agree with.
fn net_depth_reference(bytes: &[u8]) -> i64 {
    let mut depth = 0i64;
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// Random runs of the bytes that matter (quotes, backslashes, brackets) among filler, cut
/// anywhere (an unterminated string or a trailing backslash included): the fast walk agrees
/// with the reference on every one.
#[test]
fn net_depth_agrees_with_the_byte_walk() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"\"\\{}[]a :,\n";
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 90) as usize;
        let mut s = Vec::with_capacity(len);
        let mut y = x;
        for _ in 0..len {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            s.push(alphabet[(y % alphabet.len() as u64) as usize]);
        }
        assert_eq!(
            net_depth(&s),
            net_depth_reference(&s),
            "{:?}",
            String::from_utf8_lossy(&s)
        );
    }
    let long = format!(
        "{{\"a\":[{}],\"b\":\"{}\\\"}}\"}}",
        "{},".repeat(500),
        "x".repeat(5000)
    );
    assert_eq!(
        net_depth(long.as_bytes()),
        net_depth_reference(long.as_bytes())
    );
    assert_eq!(net_depth(long.as_bytes()), 0);
}

/// The hand reader of a usage object against serde's derive (the oracle) on random valid
/// objects: known keys with counts, nulls, floats, negatives, huge numbers, nested junk,
/// escaped key names, any whitespace. Same fields read, or both refuse.
#[test]
fn usage_reader_agrees_with_serde() {
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    let keys = [
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "total_tokens",
        "prompt\\u005ftokens",
        "server_tool_use",
    ];
    let details = [
        "prompt_tokens_details",
        "completion_tokens_details",
        "input_tokens_details",
        "output_tokens_details",
    ];
    let values = [
        "0",
        "17",
        "null",
        "1.5",
        "-3",
        "18446744073709551615",
        "18446744073709551616",
        "1e3",
        "\"7\"",
        "true",
        "[1,{\"a\":[]}]",
        "{\"web_search_requests\":0}",
        "\"x\\\"}\"",
    ];
    let ws = ["", " ", "\n  "];
    for _ in 0..5_000 {
        let mut members = Vec::new();
        for _ in 0..next(7) {
            let w = ws[next(3) as usize];
            if next(4) == 0 {
                // Each inner key at most once (the derive refuses repeats there too).
                let inner: Vec<String> = ["cached_tokens", "reasoning_tokens", "audio_tokens"]
                    .iter()
                    .filter_map(|k| {
                        let v = values[next(6) as usize];
                        (next(2) == 0).then(|| format!("\"{k}\":{w}{v}"))
                    })
                    .collect();
                let v = if next(5) == 0 {
                    "null".to_string()
                } else {
                    format!("{{{}}}", inner.join(","))
                };
                members.push(format!("{w}\"{}\"{w}:{w}{v}", details[next(4) as usize]));
            } else {
                let k = keys[next(keys.len() as u64) as usize];
                let v = values[next(values.len() as u64) as usize];
                members.push(format!("{w}\"{k}\"{w}:{w}{v}{w}"));
            }
        }
        let body = format!("{{{}}} trailing", members.join(","));
        let fast = read::usage_at(body.as_bytes(), 0).map(|(r, _)| r);
        let mut de = serde_json::Deserializer::from_slice(body.as_bytes());
        let oracle = Raw::deserialize(&mut de).ok();
        // serde's derive refuses a repeated known field; the reader keeps the last (as
        // `serde_json::Value` does). Compare only where no known field repeats.
        let known: Vec<&str> = keys.iter().chain(details.iter()).copied().collect();
        let repeats = known.iter().any(|k| {
            let needle = format!("\"{k}\"");
            body.matches(&needle).count()
                + usize::from(*k == "prompt_tokens")
                    * body.matches("\"prompt\\u005ftokens\"").count()
                > 1
        });
        if repeats {
            continue;
        }
        assert_eq!(format!("{fast:?}"), format!("{oracle:?}"), "{body}");
    }
}

#[test]
fn stop_reason_read_as_bytes_or_unescaped() {
    assert_eq!(
        read::stop_at(br#""end_turn","#, 0).unwrap().as_str(),
        "end_turn"
    );
    assert_eq!(
        read::stop_at(br#""tool\u005fuse""#, 0).unwrap().as_str(),
        "tool_use"
    );
    assert!(read::stop_at(b"null", 0).is_none());
    assert!(read::stop_at(br#""unterminated"#, 0).is_none());
}

/// A value the reader accepts is balanced as the depth walk counts it: junk glued to a
/// literal (`x{`) is refused, not skipped over.
#[test]
fn usage_reader_refuses_brackets_glued_to_a_literal() {
    assert!(read::usage_at(br#"{"a":x{},"input_tokens":1}"#, 0).is_none());
    assert!(read::usage_at(br#"{"a":nul],"input_tokens":1}"#, 0).is_none());
    let (raw, end) = read::usage_at(br#"{"a":[{"b":"}"}],"input_tokens":1} tail"#, 0).unwrap();
    assert_eq!(raw.input_tokens, Some(1));
    assert_eq!(end, 34, "just past the object");
}

/// `Meter::defer` + `settle` (a batch read from its newest chunk back) leaves exactly what
/// `Meter::on_event` leaves after reading every chunk in order, after every batch: streams of
/// OpenAI chunks with stop reasons and usage in any chunk (several per batch, nulls, nested
/// look-alikes, continuous usage as some servers send), cut into batches anywhere, with and
/// without looking for the usage-only chunk, and with one byte of a chunk changed.
#[test]
fn deferred_batches_read_like_every_chunk_in_order() {
    let next = xorshift(0x2545_f491_4f6c_dd1d);
    let chunk = |finish: &str, usage: &str, text: &str| {
        format!(
            r#"{{"id":"c","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":{finish}}}],"usage":{usage}}}"#
        )
    };
    let finishes = [
        "null",
        "null",
        "null",
        "\"stop\"",
        "\"length\"",
        "\"tool_calls\"",
    ];
    let texts = [
        "hi",
        r#"\"usage\":{\"prompt_tokens\":5}"#,
        r#"\"finish_reason\":\"x\""#,
        "",
    ];
    let mut checked = 0usize;
    for case in 0..3000 {
        let n = 1 + next(14) as usize;
        let mut events: Vec<Bytes> = (0..n)
            .map(|_| {
                let usage = match next(5) {
                    0 => format!(
                        r#"{{"prompt_tokens":{},"completion_tokens":{}}}"#,
                        next(900),
                        next(900)
                    ),
                    1 => r#"{"prompt_tokens_details":null}"#.to_owned(),
                    _ => "null".to_owned(),
                };
                let c = match next(9) {
                    0 => format!(r#"{{"id":"c","choices":[],"usage":{usage}}}"#),
                    1 => "[DONE]".to_owned(),
                    2 => r#"{"error":{"message":"x"},"usage":{"prompt_tokens":1}}"#.to_owned(),
                    _ => chunk(
                        finishes[next(finishes.len() as u64) as usize],
                        &usage,
                        texts[next(texts.len() as u64) as usize],
                    ),
                };
                Bytes::from(c)
            })
            .collect();
        if case % 2 == 1 {
            // One byte changed somewhere: what either reading makes of it, both make.
            let i = next(n as u64) as usize;
            let mut b = events[i].to_vec();
            if !b.is_empty() {
                let at = next(b.len() as u64) as usize;
                b[at] = b"{}[]\":,0 n\\x"[next(12) as usize];
            }
            events[i] = Bytes::from(b);
        }
        let find_usage_only = next(2) == 0;
        let mut each = Meter::new(Format::OpenAi);
        let mut batched = Meter::new(Format::OpenAi);
        let mut at = 0;
        while at < n {
            let end = (at + 1 + next(6) as usize).min(n);
            for ev in &events[at..end] {
                let carried = each.on_event(None, ev);
                let usage_only = batched.defer(None, ev, find_usage_only);
                assert_eq!(
                    usage_only,
                    find_usage_only && carried && openai_usage_only(ev),
                    "case {case}: usage-only, {ev:?}"
                );
            }
            assert_eq!(
                batched.metered(),
                each.metered(),
                "case {case}: after events {at}..{end} of {events:?}"
            );
            checked += 1;
            at = end;
        }
    }
    assert!(checked > 6000);
}

/// A stream cut short: the meter says whether its provider's final usage came (OpenAI's usage
/// chunk, Anthropic's `message_delta`, a Responses closing event), and counts the events it
/// read; `cut_short` keeps every figure the provider said and fills in the rest.
#[test]
fn a_stream_cut_short_knows_what_its_provider_said() {
    let defer_all = |format: Format, events: &[(Option<&str>, &str)]| {
        let mut m = Meter::new(format);
        for (name, data) in events {
            m.defer(
                name.map(str::as_bytes),
                &Bytes::copy_from_slice(data.as_bytes()),
                true,
            );
        }
        m
    };
    let role = r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
    let text = r#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#;
    let usage_chunk =
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3}}"#;
    // OpenAI, cut after two content chunks: nothing final; 3 events read.
    let mut m = defer_all(Format::OpenAi, &[(None, role), (None, text), (None, text)]);
    assert!(!m.said_final_usage());
    assert_eq!(m.events(), 3);
    assert_eq!(m.metered().usage, None);
    assert_eq!(
        cut_short(m.metered().usage, 1200, m.events()),
        u(1200, 3, 0, 0, 0)
    );
    // The usage chunk came: final, whatever followed it.
    let mut m = defer_all(Format::OpenAi, &[(None, text), (None, usage_chunk)]);
    assert!(m.said_final_usage());

    // Anthropic: `message_start`'s input is the provider's; the output is not final until a
    // `message_delta` says it.
    let start = r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":20,"output_tokens":1}}}"#;
    let delta =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
    let mut m = defer_all(
        Format::Anthropic,
        &[
            (Some("message_start"), start),
            (Some("content_block_delta"), delta),
            (Some("content_block_delta"), delta),
        ],
    );
    assert!(!m.said_final_usage());
    let said = m.metered().usage;
    assert_eq!(said, Some(u(30, 1, 20, 0, 0)));
    assert_eq!(cut_short(said, 999, m.events()), u(30, 3, 20, 0, 0));
    let end = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}"#;
    let mut m = defer_all(
        Format::Anthropic,
        &[(Some("message_start"), start), (Some("message_delta"), end)],
    );
    assert!(m.said_final_usage());

    // Responses: only a closing event says usage.
    let mut m = defer_all(
        Format::Responses,
        &[(
            Some("response.output_text.delta"),
            r#"{"type":"response.output_text.delta","delta":"Hi"}"#,
        )],
    );
    assert!(!m.said_final_usage());
    assert_eq!(m.events(), 1);
    // A provider output above the event count is kept.
    assert_eq!(cut_short(Some(u(0, 40, 0, 0, 7)), 5, 2), u(5, 40, 0, 0, 7));
}
