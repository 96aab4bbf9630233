//! Translation cost per byte: request bodies both ways (an agent conversation with tools and
//! tool results, and a request carrying a 1 MB image), a Codex-like Responses request to both
//! provider kinds, and whole streams both ways and to Responses events (thinking, text in
//! small deltas, a tool call), events pre-decoded so only translation is measured.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::format::Format;
use ringway::seal::SealKey;
use ringway::translate::responses::{
    responses_request, AnthropicToResponsesStream, ChatToResponsesStream, ResponsesMeta,
};
use ringway::translate::{
    anthropic_to_openai_request, check, openai_to_anthropic_request, AnthropicToOpenAiStream,
    OpenAiToAnthropicStream, Options, RequestMeta,
};
use serde_json::{json, Value};

/// Turns of (user, assistant tool call, tool result) in the agent conversation.
const AGENT_TURNS: usize = 40;
/// Text deltas in the benchmark streams (a ~1,500-token answer).
const STREAM_DELTAS: usize = 400;
/// Size of the base64 image payload.
const IMAGE_BYTES: usize = 1 << 20;
/// User/assistant turns in the Codex-like Responses request.
const RESPONSES_TURNS: usize = 3;
/// The provider name sealed reasoning is bound to in the Responses benches.
const PROVIDER: &str = "anthropic-main";

fn tool_schema() -> Value {
    json!({"type":"object","properties":{"path":{"type":"string","description":"File to read"},
        "start_line":{"type":"integer"},"end_line":{"type":"integer"}},"required":["path"]})
}

/// An OpenAI agent loop: system prompt, tools, and many tool-call rounds.
fn openai_agent_request() -> Vec<u8> {
    let mut messages = vec![
        json!({"role":"system","content":"You are a coding agent. Read files before editing. Explain briefly. ".repeat(20)}),
    ];
    for t in 0..AGENT_TURNS {
        messages.push(json!({"role":"user","content":format!("Step {t}: look at src/module_{t}.rs and tell me what the parse function does — résumé ✅")}));
        messages.push(json!({"role":"assistant","content":"Reading the file.","tool_calls":[{"id":format!("call_{t:04}"),"type":"function",
            "function":{"name":"read_file","arguments":format!("{{\"path\":\"src/module_{t}.rs\",\"start_line\":1,\"end_line\":200}}")}}]}));
        messages.push(json!({"role":"tool","tool_call_id":format!("call_{t:04}"),"content":"fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n".repeat(6)}));
    }
    let tools: Vec<Value> = ["read_file", "write_file", "list_dir", "run_tests"]
        .iter()
        .map(|n| json!({"type":"function","function":{"name":n,"description":"Workspace tool","parameters":tool_schema()}}))
        .collect();
    serde_json::to_vec(
        &json!({"model":"agent","messages":messages,"tools":tools,"tool_choice":"auto",
        "max_completion_tokens":8192,"stream":true,"stream_options":{"include_usage":true}}),
    )
    .unwrap_or_default()
}

/// The same conversation in Anthropic form (with cache breakpoints and tool_result blocks).
fn anthropic_agent_request() -> Vec<u8> {
    let mut messages = Vec::new();
    for t in 0..AGENT_TURNS {
        let mut user = vec![
            json!({"type":"text","text":format!("Step {t}: look at src/module_{t}.rs and tell me what the parse function does — résumé ✅")}),
        ];
        if t > 0 {
            user.insert(0, json!({"type":"tool_result","tool_use_id":format!("toolu_{:04}", t - 1),
                "content":"fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n".repeat(6)}));
        }
        messages.push(json!({"role":"user","content":user}));
        messages.push(json!({"role":"assistant","content":[{"type":"text","text":"Reading the file."},
            {"type":"tool_use","id":format!("toolu_{t:04}"),"name":"read_file","input":{"path":format!("src/module_{t}.rs"),"start_line":1,"end_line":200}}]}));
    }
    messages.push(json!({"role":"user","content":[{"type":"tool_result","tool_use_id":format!("toolu_{:04}", AGENT_TURNS - 1),"content":"ok"}]}));
    let tools: Vec<Value> = ["read_file", "write_file", "list_dir", "run_tests"]
        .iter()
        .map(|n| json!({"name":n,"description":"Workspace tool","input_schema":tool_schema()}))
        .collect();
    serde_json::to_vec(&json!({"model":"agent","max_tokens":8192,"stream":true,
        "system":[{"type":"text","text":"You are a coding agent. Read files before editing. Explain briefly. ".repeat(20),"cache_control":{"type":"ephemeral"}}],
        "messages":messages,"tools":tools}))
    .unwrap_or_default()
}

/// The six function tools of the Codex-like request, each with its own JSON schema.
fn codex_tools() -> Value {
    json!([
        {"type":"function","name":"shell","description":"Runs a shell command and returns its output.","strict":false,
         "parameters":{"type":"object","properties":{
            "command":{"type":"array","items":{"type":"string"},"description":"The command and its arguments"},
            "workdir":{"type":"string","description":"Working directory"},
            "timeout_ms":{"type":"number","description":"Timeout in milliseconds"},
            "with_escalated_permissions":{"type":"boolean"},
            "justification":{"type":"string","description":"Why escalation is needed"}},
          "required":["command"],"additionalProperties":false}},
        {"type":"function","name":"read_file","description":"Reads a file, or a range of its lines.","strict":false,
         "parameters":{"type":"object","properties":{
            "path":{"type":"string","description":"File to read"},
            "offset":{"type":"integer","minimum":1},"limit":{"type":"integer","minimum":1}},
          "required":["path"],"additionalProperties":false}},
        {"type":"function","name":"list_dir","description":"Lists a directory.","strict":false,
         "parameters":{"type":"object","properties":{
            "dir_path":{"type":"string","description":"Directory"},
            "depth":{"type":"integer","minimum":1,"maximum":5}},
          "required":["dir_path"],"additionalProperties":false}},
        {"type":"function","name":"grep_files","description":"Finds files whose contents match a pattern.","strict":false,
         "parameters":{"type":"object","properties":{
            "pattern":{"type":"string","description":"Regular expression"},
            "include":{"type":"string","description":"Glob of files to search"},
            "path":{"type":"string","description":"Where to search"},"limit":{"type":"integer"}},
          "required":["pattern"],"additionalProperties":false}},
        {"type":"function","name":"apply_patch","description":"Edits files with a patch in the apply_patch format.","strict":false,
         "parameters":{"type":"object","properties":{
            "input":{"type":"string","description":"The whole patch, from *** Begin Patch to *** End Patch"}},
          "required":["input"],"additionalProperties":false}},
        {"type":"function","name":"update_plan","description":"Updates the task plan.","strict":false,
         "parameters":{"type":"object","properties":{
            "explanation":{"type":"string"},
            "plan":{"type":"array","items":{"type":"object","properties":{
                "step":{"type":"string"},"status":{"type":"string","enum":["pending","in_progress","completed"]}},
              "required":["step","status"],"additionalProperties":false}}},
          "required":["plan"],"additionalProperties":false}}
    ])
}

/// A Codex-like Responses request: instructions, a developer message, user/assistant turns,
/// a function call and its output, six function tools, reasoning with encrypted content.
fn responses_codex_request() -> Vec<u8> {
    let text = |role: &str, kind: &str, t: String| json!({"type":"message","role":role,"content":[{"type":kind,"text":t}]});
    let mut input = vec![
        text("developer", "input_text", "<permissions instructions>Filesystem sandboxing: workspace-write. Approval policy: on-request. Network access is restricted.</permissions instructions>".repeat(4)),
        text("user", "input_text", "<environment_context><cwd>/home/dev/project</cwd><shell>bash</shell></environment_context>".to_owned()),
    ];
    for t in 0..RESPONSES_TURNS {
        input.push(text("user", "input_text", format!("Step {t}: look at src/module_{t}.rs and tell me what the parse function does — résumé ✅")));
        input.push(text("assistant", "output_text", format!("The parse function in src/module_{t}.rs builds an AST from tokens; it returns an error on the first unexpected token. ").repeat(3)));
    }
    input.push(text(
        "user",
        "input_text",
        "Now run the tests and fix what fails.".to_owned(),
    ));
    input.push(json!({"type":"function_call","call_id":"call_Bench01","name":"shell",
        "arguments":r#"{"command":["cargo","test","--all-targets"],"workdir":"/home/dev/project","timeout_ms":120000}"#}));
    input.push(json!({"type":"function_call_output","call_id":"call_Bench01",
        "output":"running 42 tests\ntest parse::tests::empty ... ok\ntest parse::tests::nested ... FAILED\n".repeat(8)}));
    serde_json::to_vec(&json!({"model":"gpt-5-codex",
        "instructions":"You are Codex, a coding agent. Read files before editing. Keep changes minimal and explain them briefly. ".repeat(20),
        "input":input,"tools":codex_tools(),"tool_choice":"auto","parallel_tool_calls":false,
        "reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,
        "include":["reasoning.encrypted_content"],"prompt_cache_key":"019a7c1e-5b3f-7d42-9c11-bench"}))
    .unwrap_or_default()
}

fn base64_payload() -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u32 = 0x9e37_79b9;
    (0..IMAGE_BYTES)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            char::from(B64[(state >> 26) as usize])
        })
        .collect()
}

fn openai_image_request() -> Vec<u8> {
    serde_json::to_vec(&json!({"model":"vision","messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},
        {"type":"image_url","image_url":{"url":format!("data:image/png;base64,{}", base64_payload())}}]}]}))
    .unwrap_or_default()
}

fn anthropic_image_request() -> Vec<u8> {
    serde_json::to_vec(&json!({"model":"vision","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":base64_payload()}}]}]}))
    .unwrap_or_default()
}

/// Word-sized pieces of an answer, as both APIs stream them.
fn piece(i: usize) -> String {
    const WORDS: [&str; 8] = [
        " the", " parser", " reads", " tokens", ",", " then", " builds", " an AST",
    ];
    format!(
        "{}{}",
        WORDS[i % WORDS.len()],
        if i % 50 == 49 { "\n\n" } else { "" }
    )
}

/// (event name, data) of an Anthropic stream: thinking, text, tool call; padded like the API.
fn anthropic_stream() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut ev: Vec<Value> = vec![
        json!({"type":"message_start","message":{"id":"msg_01Bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12000,"cache_creation_input_tokens":0,"cache_read_input_tokens":10000,"output_tokens":1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
    ];
    for i in 0..STREAM_DELTAS / 4 {
        ev.push(json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":piece(i)}}));
    }
    ev.push(json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"Eq".repeat(200)}}));
    ev.push(json!({"type":"content_block_stop","index":0}));
    ev.push(
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
    );
    for i in 0..STREAM_DELTAS {
        ev.push(json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":piece(i)}}));
    }
    ev.push(json!({"type":"content_block_stop","index":1}));
    ev.push(json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01Bench","name":"write_file","input":{}}}));
    for i in 0..STREAM_DELTAS / 8 {
        ev.push(json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":if i == 0 { "{\"content\": \"".to_owned() } else { piece(i) }}}));
    }
    ev.push(json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"}"}}));
    ev.push(json!({"type":"content_block_stop","index":2}));
    ev.push(json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":1500}}));
    ev.push(json!({"type":"message_stop"}));
    ev.iter()
        .enumerate()
        .map(|(i, v)| {
            let mut data = serde_json::to_vec(v).unwrap_or_default();
            data.pop();
            data.extend(std::iter::repeat_n(b' ', i % 13)); // the API's anti-side-channel padding
            data.push(b'}');
            let name = v["type"].as_str().unwrap_or("").as_bytes().to_vec();
            (Some(name), data)
        })
        .collect()
}

/// (event name, data) of an OpenAI stream: text chunks then a tool call, usage, `[DONE]`.
fn openai_stream() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id":"chatcmpl-Bench","object":"chat.completion.chunk","created":1761000000,"model":"gpt-4.1","system_fingerprint":"fp_bench",
            "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}],"usage":null,"obfuscation":"abcd"})
    };
    let mut ev = vec![chunk(
        json!({"role":"assistant","content":"","refusal":null}),
        Value::Null,
    )];
    for i in 0..STREAM_DELTAS {
        ev.push(chunk(json!({"content":piece(i)}), Value::Null));
    }
    ev.push(chunk(json!({"tool_calls":[{"index":0,"id":"call_Bench","type":"function","function":{"name":"write_file","arguments":""}}]}), Value::Null));
    for i in 0..STREAM_DELTAS / 8 {
        ev.push(chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":piece(i)}}]}),
            Value::Null,
        ));
    }
    ev.push(chunk(json!({}), json!("tool_calls")));
    ev.push(json!({"id":"chatcmpl-Bench","object":"chat.completion.chunk","created":1761000000,"model":"gpt-4.1","choices":[],
        "usage":{"prompt_tokens":12000,"completion_tokens":1500,"total_tokens":13500,"prompt_tokens_details":{"cached_tokens":10000}}}));
    let mut out: Vec<(Option<Vec<u8>>, Vec<u8>)> = ev
        .iter()
        .map(|v| (None, serde_json::to_vec(v).unwrap_or_default()))
        .collect();
    out.push((None, b"[DONE]".to_vec()));
    out
}

/// Bytes of the SSE text the events came from (`event:`/`data:` lines plus blank line).
fn wire_len(events: &[(Option<Vec<u8>>, Vec<u8>)]) -> u64 {
    events
        .iter()
        .map(|(e, d)| e.as_ref().map_or(0, |e| e.len() + 8) + d.len() + 8)
        .sum::<usize>() as u64
}

fn requests(c: &mut Criterion) {
    let opts = Options::default();
    let mut g = c.benchmark_group("translate_request");
    g.measurement_time(Duration::from_secs(3));
    let o = openai_agent_request();
    g.throughput(Throughput::Bytes(o.len() as u64));
    g.bench_function("o2a", |b| {
        b.iter(|| openai_to_anthropic_request(black_box(&o), "claude-sonnet-4-5", &opts))
    });
    let a = anthropic_agent_request();
    g.throughput(Throughput::Bytes(a.len() as u64));
    g.bench_function("a2o", |b| {
        b.iter(|| anthropic_to_openai_request(black_box(&a), "gpt-4.1", &opts))
    });
    let oi = openai_image_request();
    g.throughput(Throughput::Bytes(oi.len() as u64));
    g.bench_function("o2a_image_1mb", |b| {
        b.iter(|| openai_to_anthropic_request(black_box(&oi), "claude-sonnet-4-5", &opts))
    });
    let ai = anthropic_image_request();
    g.throughput(Throughput::Bytes(ai.len() as u64));
    g.bench_function("a2o_image_1mb", |b| {
        b.iter(|| anthropic_to_openai_request(black_box(&ai), "gpt-4.1", &opts))
    });
    let ropts = Options {
        seal: SealKey::from_bytes(&[7; 32]),
        provider: PROVIDER.into(),
        ..Options::default()
    };
    let r = responses_codex_request();
    for (model, provider) in [
        ("gpt-4.1", Format::OpenAi),
        ("claude-sonnet-4-5", Format::Anthropic),
    ] {
        // Measure the translation, not an early refusal.
        let t = responses_request(&r, model, provider, &ropts);
        assert!(t.is_ok(), "{provider:?}: {:?}", t.err());
    }
    g.throughput(Throughput::Bytes(r.len() as u64));
    g.bench_function("r2c", |b| {
        b.iter(|| responses_request(black_box(&r), "gpt-4.1", Format::OpenAi, &ropts))
    });
    g.bench_function("r2a", |b| {
        b.iter(|| {
            responses_request(
                black_box(&r),
                "claude-sonnet-4-5",
                Format::Anthropic,
                &ropts,
            )
        })
    });
    g.finish();
}

fn streams(c: &mut Criterion) {
    let meta = RequestMeta {
        include_usage: true,
        upstream_model: "m".into(),
        created: 1_761_000_000,
        ..RequestMeta::default()
    };
    let mut g = c.benchmark_group("translate_stream");
    g.measurement_time(Duration::from_secs(3));
    let a = anthropic_stream();
    g.throughput(Throughput::Bytes(wire_len(&a)));
    g.bench_function("a2o", |b| {
        b.iter(|| {
            let mut m = AnthropicToOpenAiStream::new(&meta);
            let mut out = Vec::with_capacity(256 * 1024);
            for (e, d) in &a {
                m.on_event(e.as_deref(), black_box(d), &mut out);
            }
            m.finish(&mut out);
            out
        })
    });
    let o = openai_stream();
    g.throughput(Throughput::Bytes(wire_len(&o)));
    g.bench_function("o2a", |b| {
        b.iter(|| {
            let mut m = OpenAiToAnthropicStream::new(&meta);
            let mut out = Vec::with_capacity(256 * 1024);
            for (e, d) in &o {
                m.on_event(e.as_deref(), black_box(d), &mut out);
            }
            m.finish(&mut out);
            out
        })
    });
    // A Responses client that asked for summaries and encrypted reasoning (sealed per block).
    let rmeta = RequestMeta {
        stream: true,
        upstream_model: "m".into(),
        created: 1_761_000_000,
        responses: Some(Box::new(ResponsesMeta {
            id: "resp_01Bench".into(),
            summary: true,
            encrypted: true,
            seal: SealKey::from_bytes(&[7; 32]),
            provider: PROVIDER.into(),
            ..ResponsesMeta::default()
        })),
        ..RequestMeta::default()
    };
    let a2r = || {
        let mut m = AnthropicToResponsesStream::new(&rmeta);
        let mut out = Vec::with_capacity(256 * 1024);
        for (e, d) in &a {
            m.on_event(e.as_deref(), black_box(d), &mut out);
        }
        m.finish(&mut out);
        out
    };
    let c2r = || {
        let mut m = ChatToResponsesStream::new(&rmeta);
        let mut out = Vec::with_capacity(256 * 1024);
        for (e, d) in &o {
            m.on_event(e.as_deref(), black_box(d), &mut out);
        }
        m.finish(&mut out);
        out
    };
    // Measure whole answers, not a stream cut short by an early failure.
    for (name, out) in [("a2r", a2r()), ("c2r", c2r())] {
        let last = check::check_responses_stream(&out, true);
        let completed = last.as_ref().is_ok_and(|v| {
            v.as_ref()
                .is_some_and(|v| v["type"] == "response.completed")
        });
        assert!(completed, "{name}: {last:?}");
    }
    g.throughput(Throughput::Bytes(wire_len(&a)));
    g.bench_function("a2r", |b| b.iter(a2r));
    g.throughput(Throughput::Bytes(wire_len(&o)));
    g.bench_function("c2r", |b| b.iter(c2r));
    g.finish();
}

/// One OpenAI stream's chunks read by the hand reader that the translators use, and by serde,
/// the reference it declines to (a ratio on one machine in one run).
fn chunks(c: &mut Criterion) {
    let o = openai_stream();
    let mut g = c.benchmark_group("openai_chunk");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(o.len() as u64));
    g.bench_function("hand", |b| {
        b.iter(|| {
            o.iter()
                .filter(|(_, d)| ringway::wire::openai_chunk(black_box(d)).is_ok())
                .count()
        })
    });
    g.bench_function("serde", |b| {
        b.iter(|| {
            o.iter()
                .filter(|(_, d)| {
                    std::str::from_utf8(black_box(d)).is_ok_and(|t| {
                        serde_json::from_str::<ringway::wire::openai::Chunk<'_>>(t).is_ok()
                    })
                })
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, requests, streams, chunks);
criterion_main!(benches);
