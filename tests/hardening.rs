//! What an adversarial probe and a new user found (header injection, a shared port, buffered
//! answers without a bound, stream endings, request targets and bodies, accept failures, model
//! lookup, tool-call arguments, config values and errors, the docs' config blocks and links, upstream
//! framing, TLS certificate and key files), each tested through the real binary over real
//! sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

// ---------- 1. response-header injection ----------

/// Every hostile model goes to both chat endpoints and count_tokens, streaming and not.
const HOSTILE_MODELS: [&str; 4] = [
    "openai/x\r\nSet-Cookie: pwned=1",
    "anthropic/x\r\n\r\nHTTP/1.1 200 OK\r\nx-forged: 1\r\n\r\n",
    "openai/nul\u{0}here",
    "openai/del\u{7f}",
];

/// Send `raw` with `connection: close` and return every byte the gateway wrote.
fn exchange_raw(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The bytes hold exactly one response whose head has no forged field.
fn assert_one_clean_response(
    bytes: &[u8],
    want_status: u16,
    forbidden: &[&str],
    what: &str,
) -> serde_json::Value {
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "{what}: exactly one response: {text:?}"
    );
    let head_end = text.find("\r\n\r\n").unwrap();
    let head = &text[..head_end];
    assert!(
        head.starts_with(&format!("HTTP/1.1 {want_status} ")),
        "{what}: {head}"
    );
    for forged in ["set-cookie", "x-forged", "x-evil"].iter().chain(forbidden) {
        assert!(
            !head.to_ascii_lowercase().contains(forged),
            "{what}: head must not carry {forged}: {head}"
        );
    }
    assert!(!head.contains('\0'), "{what}: NUL in head");
    serde_json::from_str(&text[head_end + 4..]).unwrap()
}

#[test]
fn hostile_model_names_never_reach_a_header() {
    let (_m, g) = setup("");
    for model in HOSTILE_MODELS {
        for stream in [false, true] {
            for (path, body) in [
                ("/v1/chat/completions", openai_body(model, "hi", stream)),
                ("/v1/messages", anthropic_body(model, "hi", stream)),
                (
                    "/v1/messages/count_tokens",
                    anthropic_body(model, "hi", false),
                ),
            ] {
                let raw = post(path, &[("connection", "close")], &body);
                let what = format!("{path} stream={stream} model={model:?}");
                let v = assert_one_clean_response(
                    &exchange_raw(g.addr, &raw),
                    400,
                    &["x-ringway-model", "x-ringway-provider"],
                    &what,
                );
                if path.starts_with("/v1/messages") {
                    assert_eq!(v["type"], "error", "{what}");
                    assert!(
                        v["error"]["message"].as_str().unwrap().contains("model"),
                        "{what}: {v}"
                    );
                } else {
                    assert_eq!(v["error"]["param"], "model", "{what}");
                }
            }
        }
    }
}

#[test]
fn a_megabyte_model_name_is_a_400_not_a_megabyte_header() {
    let (_m, g) = setup("");
    let model = format!("openai/{}", "m".repeat(1 << 20));
    let raw = post(
        "/v1/chat/completions",
        &[("connection", "close")],
        &openai_body(&model, "hi", false),
    );
    let bytes = exchange_raw(g.addr, &raw);
    assert!(bytes.len() < 4096, "answer is small: {} bytes", bytes.len());
    let v = assert_one_clean_response(&bytes, 400, &["x-ringway-model"], "1 MB model");
    assert_eq!(v["error"]["param"], "model");
    // A model at the documented bound still routes (and its id reaches the header intact).
    let ok_model = format!("mo/{}", "m".repeat(256 - 3));
    let r = chat_openai(g.addr, &ok_model, "hi", false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ringway-model"), Some(&ok_model[3..]));
}

/// Good models on every path still carry the routing headers (success, error, stream).
#[test]
fn routing_headers_on_success_error_and_stream() {
    let (_m, g) = setup("");
    for (r, model) in [
        (chat_openai(g.addr, "gpt", "hi", false), "mock-gpt-up"),
        (chat_openai(g.addr, "gpt", "hi", true), "mock-gpt-up"),
        (
            chat_anthropic(g.addr, "claude", "hi", true),
            "mock-claude-up",
        ),
        (chat_openai(g.addr, "claude", "hi", false), "mock-claude-up"),
        (
            chat_openai(g.addr, "claude", "mock:status=429", false),
            "mock-claude-up",
        ),
        (chat_anthropic(g.addr, "gpt", "hi", true), "mock-gpt-up"),
    ] {
        assert_eq!(r.header("x-ringway-model"), Some(model));
        assert!(r.header("x-ringway-provider").is_some());
    }
}

/// A provider header value with a control byte is refused where it enters (the provider head
/// decoder), so it cannot reach the client: a 502 in the client's format.
#[test]
fn provider_header_with_a_control_byte_is_a_502() {
    for stream in [false, true] {
        let up = raw_upstream(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-evil: a\x00b\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec(),
        );
        let g = gateway(&format!(
            "[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{up}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
        ));
        let raw = post(
            "/v1/chat/completions",
            &[("connection", "close")],
            &openai_body("r", "hi", stream),
        );
        let v = assert_one_clean_response(&exchange_raw(g.addr, &raw), 502, &[], "x-evil");
        assert!(v["error"]["message"].is_string());
    }
}

// ---------- 1b. the gateway's provider credentials never reach a client ----------

const OPENAI_KEY: &str = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
const ANTHROPIC_KEY: &str = "sk-ant-api03-Zy9xWv8uTs7rQp6oNm5lKj4iHg3fEd2cB1a";

/// `text` holds none of `key`: not whole, not masked as the mock masks it, and no run of 8
/// of its bytes.
fn assert_no_key(text: &str, key: &str, case: &str) {
    let masked = format!(
        "{}{}{}",
        &key[..5],
        "*".repeat(key.len() - 9),
        &key[key.len() - 4..]
    );
    assert!(!text.contains(&masked), "{case}: masked key in {text}");
    assert!(
        !text.contains(&format!("***{}", &key[key.len() - 4..])),
        "{case}: {text}"
    );
    for w in key.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!text.contains(w), "{case}: {w:?} of the key in {text}");
    }
}

/// A provider whose 401 quotes the key it was sent (whole and masked, in its body and in
/// headers): the client gets the 401 with the key scrubbed, same format or translated.
#[test]
fn a_provider_echoing_its_key_does_not_hand_it_to_the_client() {
    let m = mock(&[]);
    set_faults(&m, &serde_json::json!({"*": "echo_key"}));
    let g = gateway_env(
        &standard_providers(&m),
        &[
            ("RW_TEST_OPENAI_KEY", OPENAI_KEY),
            ("RW_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY),
        ],
    );
    let cases = [
        ("/v1/chat/completions", "gpt", OPENAI_KEY, "same format"),
        (
            "/v1/chat/completions",
            "claude",
            ANTHROPIC_KEY,
            "translated",
        ),
        (
            "/v1/messages",
            "claude",
            ANTHROPIC_KEY,
            "same format, anthropic",
        ),
        (
            "/v1/messages",
            "gpt",
            OPENAI_KEY,
            "translated, anthropic client",
        ),
    ];
    for (path, model, key, case) in cases {
        for stream in [false, true] {
            let body = if path == "/v1/messages" {
                anthropic_body(model, "hi", stream)
            } else {
                openai_body(model, "hi", stream)
            };
            let raw = exchange_raw(g.addr, &post(path, &[("connection", "close")], &body));
            let text = String::from_utf8_lossy(&raw).into_owned();
            let case = format!("{case} stream={stream}");
            assert!(text.starts_with("HTTP/1.1 401 "), "{case}: {text}");
            assert_no_key(&text, key, &case);
            // Scrubbed, not dropped: the client still reads what the provider said.
            assert!(
                text.contains("Incorrect API key provided: [redacted]"),
                "{case}: {text}"
            );
            assert!(
                text.contains("x-ratelimit-key: [redacted]"),
                "{case}: {text}"
            );
        }
    }
    // The mock did get the key (the echo was real).
    let seen = mock_requests(&m);
    assert!(seen
        .iter()
        .any(|s| s["headers"]["authorization"] == format!("Bearer {OPENAI_KEY}")));
    // Nor does the gateway's log carry it.
    let log = g.drain_log().join("\n");
    assert_no_key(&log, OPENAI_KEY, "log");
    assert_no_key(&log, ANTHROPIC_KEY, "log");
}

/// A provider's in-stream error event that quotes the key, after a 200: scrubbed too, relayed
/// or translated.
#[test]
fn a_stream_error_event_echoing_the_key_is_scrubbed() {
    let event = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"usage\":{{\"input_tokens\":1,\"output_tokens\":0}}}}}}\n\nevent: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"key {ANTHROPIC_KEY} revoked\"}}}}\n\n"
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{event}",
        event.len()
    );
    for (path, body) in [
        ("/v1/messages", anthropic_body("r", "hi", true)),
        ("/v1/chat/completions", openai_body("r", "hi", true)),
    ] {
        let up = raw_upstream(response.clone().into_bytes());
        let g = gateway_env(
            &format!(
                "[[provider]]\nname = \"raw\"\nkind = \"anthropic\"\nbase_url = \"http://{up}\"\napi_key_env = \"RW_TEST_ANTHROPIC_KEY\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
            ),
            &[("RW_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)],
        );
        let raw = exchange_raw(g.addr, &post(path, &[("connection", "close")], &body));
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 "), "{path}: {text}");
        assert!(text.contains("[redacted]"), "{path}: {text}");
        assert_no_key(&text, ANTHROPIC_KEY, path);
    }
}

// ---------- 2. a second gateway on a busy port ----------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve_on(addr: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", addr, "--driver", &driver()]);
    cmd.args(["--mock-listen", "127.0.0.1:0"]);
    cmd.args(extra);
    cmd
}

#[test]
fn a_second_gateway_on_a_busy_port_refuses_to_start() {
    let addr = format!("127.0.0.1:{}", free_port());
    let first = spawn_and_wait(serve_on(&addr, &[]), "listening on");
    let mut second = serve_on(&addr, &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit by itself, promptly; one still running after 10 s is serving the port.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second gateway started on the busy port {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "second serve must fail");
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("already listening") && err.contains("--reuse-port"),
        "{err}"
    );
    // The first one is still the only one serving.
    assert_eq!(request(first.addr, &get("/healthz", &[])).status, 200);
    // Asked for explicitly, the port is shared (the zero-downtime restart).
    let second = spawn_and_wait(serve_on(&addr, &["--reuse-port"]), "listening on");
    assert_eq!(second.addr, first.addr);
    assert_eq!(request(second.addr, &get("/healthz", &[])).status, 200);
}

// ---------- 3. a worker-wide budget for answers held whole ----------

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A provider that answers every request with `body` (a whole JSON answer, Content-Length
/// framed), sending the first half at once and the rest after `pause`: the gateway holds
/// each answer's budget charge for that long, so concurrent answers surely overlap.
fn slow_provider(body: Vec<u8>, pause: Duration) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let body = std::sync::Arc::new(body);
    std::thread::spawn(move || {
        for s in l.incoming().take(64) {
            let Ok(mut s) = s else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                read_one_request(&mut s);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let half = body.len() / 2;
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body[..half]);
                std::thread::sleep(pause);
                let _ = s.write_all(&body[half..]);
            });
        }
    });
    addr
}

#[test]
fn buffered_answers_stay_within_the_worker_budget() {
    const BUDGET: u64 = 5 << 20;
    // An answer is charged with room for its translation (about 2.1 x its size): one fits.
    const ANSWER: usize = 2_000_000;
    const CLIENTS: usize = 16;
    let text = "a".repeat(ANSWER);
    let anthropic_answer = serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "x",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    });
    let openai_answer = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    });
    let pause = Duration::from_millis(800);
    let slow_a = slow_provider(anthropic_answer.to_string().into_bytes(), pause);
    let slow_o = slow_provider(openai_answer.to_string().into_bytes(), pause);
    let m = mock(&[]);
    let g = gateway_env(
        &format!(
            "[server]\nworkers = 1\nmax_buffered_bytes = {BUDGET}\n\n{}\n\
             [[provider]]\nname = \"sa\"\nkind = \"anthropic\"\nbase_url = \"http://{slow_a}\"\n\n\
             [[provider]]\nname = \"so\"\nkind = \"openai\"\nbase_url = \"http://{slow_o}/v1\"\n\n\
             [[route]]\nmodel = \"slow-claude\"\ntargets = [\"sa/x\"]\n\n\
             [[route]]\nmodel = \"slow-gpt\"\ntargets = [\"so/x\"]\n",
            standard_providers(&m)
        ),
        PROVIDER_KEYS,
    );
    // Warm up: one small translated answer so the allocator's steady state is in the baseline.
    let r = chat_openai(g.addr, "claude", "hi", false);
    assert_eq!(r.status, 200);
    let before = vm_hwm_kib(g.child.id());
    let addr = g.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                // Both directions: OpenAI client to the Anthropic provider and back.
                if i % 2 == 0 {
                    chat_openai(addr, "slow-claude", "hi", false)
                } else {
                    chat_anthropic(addr, "slow-gpt", "hi", false)
                }
            })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for (i, c) in clients.into_iter().enumerate() {
        let r = c.join().unwrap();
        match r.status {
            200 => {
                served += 1;
                assert!(r.body.len() > ANSWER);
            }
            503 => {
                refused += 1;
                let v = r.json();
                if i % 2 == 0 {
                    assert_eq!(v["error"]["code"], "gateway_overloaded", "{v}");
                } else {
                    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
                }
            }
            s => panic!("unexpected status {s}: {}", r.text()),
        }
    }
    let after = vm_hwm_kib(g.child.id());
    let rise = (after.saturating_sub(before)) * 1024;
    // The documented bound: the budget (answers and their translations), plus a constant for
    // parse scratch and the allocator (freed pages are returned to the OS with a delay).
    let bound = BUDGET + (8 << 20);
    assert!(served >= 1, "at least one answer fits the budget");
    assert!(
        refused >= 1,
        "16 x 2 MB answers held 0.8 s each cannot all fit 5 MiB at once"
    );
    assert!(
        rise <= bound,
        "peak RSS rose {} MiB, bound {} MiB (served {served}, refused {refused})",
        rise >> 20,
        bound >> 20
    );
    // The budget is given back: the same request works again alone.
    let r = chat_openai(g.addr, "slow-claude", "hi", false);
    assert_eq!(r.status, 200);
}

// ---------- 4 and 5. translated streams: one error frame, and the connection is kept ----------

/// A provider stream whose second event is larger than the gateway's 4 MiB event limit.
fn oversized_event_stream(anthropic: bool) -> Vec<u8> {
    let first: &[u8] = if anthropic {
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n"
    } else {
        b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"
    };
    let mut body = first.to_vec();
    body.extend_from_slice(b"data: ");
    body.extend(std::iter::repeat_n(b'x', 5 << 20));
    body.extend_from_slice(b"\n\n");
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec();
    out.extend_from_slice(&body);
    out
}

#[test]
fn oversized_provider_event_gives_one_error_frame_in_either_direction() {
    for client_anthropic in [false, true] {
        let up = raw_upstream(oversized_event_stream(!client_anthropic));
        let (kind, base) = if client_anthropic {
            ("openai", format!("http://{up}/v1"))
        } else {
            ("anthropic", format!("http://{up}"))
        };
        let g = gateway(&format!(
            "[[provider]]\nname = \"raw\"\nkind = \"{kind}\"\nbase_url = \"{base}\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
        ));
        let r = if client_anthropic {
            chat_anthropic(g.addr, "r", "hi", true)
        } else {
            chat_openai(g.addr, "r", "hi", true)
        };
        assert_eq!(r.status, 200);
        let events = sse_events(&r.body);
        let errors = events
            .iter()
            .filter(|(e, d)| e.as_deref() == Some("error") || d.starts_with("{\"error\""))
            .count();
        assert_eq!(errors, 1, "client_anthropic={client_anthropic}: {events:?}");
    }
}

/// After a stream that ended with an error event and a clean end, the same connection serves
/// the next request: same-format and translated, both client formats.
#[test]
fn connection_is_kept_after_a_stream_ends_with_an_error_event() {
    let (_m, g) = setup("");
    for (path, model) in [
        ("/v1/chat/completions", "gpt"),
        ("/v1/chat/completions", "claude"),
        ("/v1/messages", "claude"),
        ("/v1/messages", "gpt"),
    ] {
        let body = |prompt: &str, stream: bool| {
            if path == "/v1/messages" {
                anthropic_body(model, prompt, stream)
            } else {
                openai_body(model, prompt, stream)
            }
        };
        let mut c = Client::connect(g.addr);
        c.send_raw(&post(path, &[], &body("mock:reset", true)));
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200);
        let last = sse_events(&r.body).last().cloned().unwrap();
        assert!(
            last.0.as_deref() == Some("error") || last.1.starts_with("{\"error\""),
            "{path} {model}: ends with an error event: {last:?}"
        );
        assert_eq!(r.header("connection"), None, "{path} {model}: no close");
        c.send_raw(&post(path, &[], &body("again", false)));
        let r = c.read_response().expect("the connection was kept");
        assert_eq!(r.status, 200, "{path} {model}");
    }
}

// ---------- 6. absolute-form request targets ----------

#[test]
fn absolute_form_targets_are_served() {
    let (_m, g) = setup("");
    let r = request(g.addr, &get(&format!("http://{}/healthz", g.addr), &[]));
    assert_eq!(r.status, 200);
    let raw = post(
        "HTTP://gateway.example/v1/chat/completions",
        &[],
        &openai_body("gpt", "hi", false),
    );
    let r = request(g.addr, &raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
}

// ---------- 7. request bodies: declared sizes and a whole-body deadline ----------

#[test]
fn a_chunk_larger_than_the_body_limit_is_413_at_once() {
    let (_m, g) =
        setup("[server]\nworkers = 1\nmax_body_bytes = 4096\nbody_read_timeout_ms = 20000\n");
    for size in ["ffffffffffffffff", "1001"] {
        let mut c = Client::connect(g.addr);
        c.send_raw(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n{size}\r\n{{\"model\":"
            )
            .as_bytes(),
        );
        let r = c.read_response().unwrap();
        // At once: waiting for the chunk would end in the 20 s read timeout's 408 instead.
        assert_eq!(r.status, 413, "declared chunk {size}: {}", r.text());
    }
}

#[test]
fn a_trickling_body_is_cut_off_by_the_whole_body_deadline() {
    let (_m, g) =
        setup("[server]\nworkers = 1\nbody_read_timeout_ms = 1000\nbody_timeout_ms = 1500\n");
    let body = openai_body("gpt", "hi", false);
    let mut c = Client::connect(g.addr);
    c.send_raw(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let start = Instant::now();
    // One byte every 300 ms never trips the 1 s silence timeout; the deadline must.
    let mut stream = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in body.as_bytes().iter().take(20) {
            if stream.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let r = c.read_response().unwrap();
    let took = start.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("within 1500 ms"));
    // The message names the whole-body deadline (the trickle would go on for 6 s, then the
    // silence timeout answer differently); it did not fire early.
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    let _ = writer.join();
}

// ---------- 8. accept failures back off and warn at a bounded rate ----------

#[test]
fn running_out_of_file_descriptors_is_logged_at_a_bounded_rate_and_recovers() {
    let m = mock(&[]);
    let path = write_config(&format!(
        "[server]\nworkers = 1\n\n{}",
        standard_providers(&m)
    ));
    let mut cmd = Command::new("sh");
    // A low descriptor limit, so a few dozen connections exhaust it.
    cmd.arg("-c").arg(format!(
        "ulimit -n 48 && exec {} serve --config {} --listen 127.0.0.1:0 --driver {}",
        bin(),
        path.display(),
        driver()
    ));
    for (k, v) in PROVIDER_KEYS {
        cmd.env(k, v);
    }
    let g = spawn_and_wait(cmd, "listening on");
    let held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(g.addr).ok())
        .collect();
    assert!(held.len() >= 60, "connections queued: {}", held.len());
    std::thread::sleep(Duration::from_secs(3));
    let warnings = g
        .drain_log()
        .into_iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (1..=2).contains(&warnings),
        "accept failures are logged, at most once per period: {warnings} warnings in 3 s"
    );
    drop(held);
    // Recovery: once descriptors are free, requests are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(g.addr, &get("/healthz", &[]));
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "gateway did not recover");
    }
}

// ---------- 11. GET /v1/models/{id} ----------

#[test]
fn a_single_model_is_served_in_both_sdk_shapes() {
    let (_m, g) = setup("");
    let list = request(g.addr, &get("/v1/models", &[])).json();
    for path in ["/v1/models/gpt", "/models/gpt", "/v1/models/%67pt"] {
        let r = request(g.addr, &get(path, &[]));
        assert_eq!(r.status, 200, "{path}");
        let v = r.json();
        assert_eq!(v["id"], "gpt");
        assert_eq!(v["object"], "model");
        assert_eq!(v["type"], "model");
        assert!(v["created"].is_number() && v["created_at"].is_string());
        assert!(v["owned_by"].is_string() && v["display_name"].is_string());
        let listed = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "gpt");
        assert_eq!(Some(&v), listed, "same object as in the list");
    }
    // A `provider/model` id works for chat, so it is a model here too (capabilities unknown).
    let r = request(g.addr, &get("/v1/models/mo%2Fmock-gpt-up", &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "mo/mock-gpt-up");
    assert!(r.json()["capabilities"]["vision"].is_null());
    let r = request(g.addr, &get("/v1/models/nope", &[]));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let r = request(
        g.addr,
        &get("/v1/models/nope", &[("anthropic-version", "2023-06-01")]),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
}

// ---------- base URLs users already have (the Anthropic SDK with a `/v1` base URL) ----------

#[test]
fn doubled_v1_paths_reach_the_anthropic_endpoints_only() {
    let (_m, g) = setup("");
    let r = request(
        g.addr,
        &post(
            "/v1/v1/messages",
            &[],
            &anthropic_body("claude", "hi", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let r = request(
        g.addr,
        &post("/v1/v1/messages", &[], &anthropic_body("gpt", "hi", true)),
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("event: message_stop"));
    let r = request(
        g.addr,
        &post(
            "/v1/v1/messages/count_tokens",
            &[],
            &anthropic_body("claude", "hi", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["input_tokens"].is_number());
    assert_eq!(request(g.addr, &get("/v1/v1/models", &[])).status, 200);
    assert_eq!(request(g.addr, &get("/v1/v1/models/gpt", &[])).status, 200);
    // Nothing else under /v1/v1/ is invented.
    let r = request(
        g.addr,
        &post(
            "/v1/v1/chat/completions",
            &[],
            &openai_body("gpt", "hi", false),
        ),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["type"],
        "error",
        "an Anthropic-SDK path gets its error format"
    );
    // The OpenAI SDK's form without /v1 keeps working.
    let r = request(
        g.addr,
        &post("/chat/completions", &[], &openai_body("gpt", "hi", false)),
    );
    assert_eq!(r.status, 200);
}

// ---------- A: tool-call arguments an Anthropic provider cannot take ----------

#[test]
fn invalid_tool_call_arguments_are_a_400_and_never_sent_upstream() {
    let (m, g) = setup("");
    let body = serde_json::json!({
        "model": "claude",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "one moment"},
            {"role": "assistant", "tool_calls": [{
                "id": "call_bad",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{{{not json"}
            }]},
            {"role": "tool", "tool_call_id": "call_bad", "content": "?"}
        ]
    })
    .to_string();
    let r = request(g.addr, &post("/v1/chat/completions", &[], &body));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(
        v["error"]["param"], "messages[2].tool_calls[0].function.arguments",
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tool call 0") && message.contains("call_bad"),
        "{message}"
    );
    assert!(mock_requests(&m).is_empty(), "the provider got the request");
}

// ---------- B: config values that reach response headers ----------

/// One provider `p` and one route, with `name`, route model and target spliced in (TOML
/// basic strings, so `\r\n` here is a CR LF in the value).
fn header_config(name: &str, route: &str, target: &str) -> String {
    format!(
        "[[provider]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[route]]\nmodel = \"{route}\"\ntargets = [\"{target}\"]\n"
    )
}

#[test]
fn check_refuses_config_values_that_would_break_headers() {
    let (ok, out, err, _) = check(&header_config("p", "fast", "p/m1"));
    assert!(ok && out.contains("p/m1"), "{out}{err}");

    for (toml, line_and_path, reason) in [
        (
            header_config("p\\r\\nX-Injected: 1", "fast", "p/m1"),
            ":2: provider[0].name: ",
            "invalid provider name",
        ),
        (
            header_config("p:8080", "fast", "p:8080/m1"),
            ":2: provider[0].name: ",
            "invalid provider name",
        ),
        (
            header_config("p", "fast", "p/m1\\r\\nX-Injected: 1"),
            ":8: route[0].targets[0]: ",
            "control characters",
        ),
        (
            header_config("p", "fast\\nX-Injected: 1", "p/m1"),
            ":7: route[0].model: ",
            "control characters",
        ),
        (
            header_config("p", "fast", &format!("p/{}", "m".repeat(257))),
            ":8: route[0].targets[0]: ",
            "longer than 256 bytes",
        ),
    ] {
        check_refuses(&toml, line_and_path, reason);
    }
}

// ---------- C: parser errors name the key path ----------

#[test]
fn check_names_the_key_path_of_parser_errors() {
    let provider =
        "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";
    for (toml, expected) in [
        (
            format!("{provider}\n[[provider]]\nname = \"q\"\nkindd = \"openai\"\n"),
            ":8: provider[1].kindd: unknown key; did you mean `kind`?",
        ),
        (
            format!("[server]\nworkers = \"two\"\n\n{provider}"),
            ":2: server.workers: expected a whole number (0 or more), found string `\"two\"`",
        ),
        (
            format!("{provider}\n[[route]]\nmodel = \"fast\"\n"),
            ":6: route[0].targets: required key is missing",
        ),
    ] {
        let (ok, _, err, file) = check(&toml);
        assert!(!ok, "accepted:\n{toml}");
        assert!(err.contains(&format!("{file}{expected}")), "{toml}\n{err}");
    }
}

// ---------- D: the documentation's config blocks and links ----------

/// The pages a user reads: README.md and every docs/*.md, as (path from the repository root,
/// text), in a stable order.
fn doc_pages() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 6, "docs/ holds {docs:?}");
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// A page's ```toml blocks: (first line number, info string after `toml`, text).
fn toml_blocks(page: &str, text: &str) -> Vec<(usize, String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```toml") {
                    open = Some((n + 2, info.trim().to_owned(), String::new()));
                }
            }
            Some(block) if line.trim_start().starts_with("```") => blocks.push(block),
            Some((at, info, mut text)) => {
                text.push_str(line);
                text.push('\n');
                open = Some((at, info, text));
            }
        }
    }
    assert!(open.is_none(), "{page}: unclosed ```toml block");
    blocks
}

/// Every ```toml block in README.md and docs/*.md passes `ringway check` as copied; a block
/// marked ```toml partial (a fragment meant to be merged into a full file) must at least
/// parse, and one marked ```toml codex (Codex's own config file) must parse and name its
/// providers.
#[test]
fn every_documented_config_block_passes_check() {
    // The blocks' state directory is the systemd unit's (contrib/ringway.service); check
    // wants it to exist, as serve does, so here it is one that does.
    let state = temp_path("var-lib-ringway");
    std::fs::create_dir_all(&state).unwrap();
    let state = format!("{}/", state.display());
    let mut checked = 0;
    let mut readme_checked = 0;
    for (page, doc) in doc_pages() {
        for (line, info, text) in toml_blocks(&page, &doc) {
            match info.as_str() {
                "" => {
                    // The variables the docs name for secrets a fleet shares.
                    let (ok, out, err, _) = check_env(
                        &text.replace("/var/lib/ringway/", &state),
                        &[("RINGWAY_RESPONSES_KEY", &"ab".repeat(32))],
                    );
                    assert!(
                        ok,
                        "{page}:{line}: ringway check refused this block:\n{err}{out}\n{text}"
                    );
                    checked += 1;
                    if page == "README.md" {
                        readme_checked += 1;
                    }
                }
                "partial" => {
                    if let Err(e) = text.parse::<toml::Table>() {
                        panic!("{page}:{line}: partial block is not TOML: {e}\n{text}");
                    }
                }
                "codex" => {
                    // Another program's file (Codex's config.toml): TOML that points Codex here.
                    let table: toml::Table = text
                        .parse()
                        .unwrap_or_else(|e| panic!("{page}:{line}: codex block is not TOML: {e}"));
                    assert!(
                        table.contains_key("model_providers"),
                        "{page}:{line}: codex block without model_providers"
                    );
                }
                other => panic!("{page}:{line}: unknown toml block marker {other:?}"),
            }
        }
    }
    // The README's overview and the reference's whole file, tiers, custody, stores, ...
    assert!(readme_checked >= 1, "README.md lost its config overview");
    assert!(
        checked >= 6,
        "expected the documented configs, checked {checked}"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (letters, digits, `-` and
/// `_` kept), spaces as `-`; a repeated heading gets `-1`, `-2`, ...
fn heading_anchors(text: &str) -> std::collections::HashSet<String> {
    let mut anchors = std::collections::HashSet::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// A page's relative link targets outside code: (line number, target as written).
fn relative_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans are not links: drop what is between backticks.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].trim();
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push((n + 1, target.to_owned()));
            }
            rest = &rest[end..];
        }
    }
    links
}

/// Every relative link in README.md and docs/*.md names a file or directory that exists, and
/// a `#fragment` names a heading of the Markdown page it points to.
#[test]
fn every_documented_relative_link_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut resolved = 0;
    for (page, doc) in doc_pages() {
        let dir = root.join(&page).parent().unwrap().to_path_buf();
        for (line, target) in relative_links(&doc) {
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                root.join(&page)
            } else {
                dir.join(path)
            };
            assert!(
                file.exists(),
                "{page}:{line}: link `{target}` names {} which does not exist",
                file.display()
            );
            if let Some(fragment) = fragment {
                assert!(
                    file.extension().is_some_and(|e| e == "md"),
                    "{page}:{line}: link `{target}` has a fragment but is not a Markdown page"
                );
                let anchors = heading_anchors(&std::fs::read_to_string(&file).unwrap());
                assert!(
                    anchors.contains(fragment),
                    "{page}:{line}: link `{target}`: no heading `#{fragment}` in {}",
                    file.display()
                );
            }
            resolved += 1;
        }
    }
    assert!(
        resolved >= 40,
        "expected the docs' links, resolved {resolved}"
    );
}

// ---------- E: upstream framing read as strictly as a client's ----------

#[test]
fn upstream_content_length_with_a_sign_is_a_502_in_the_client_format() {
    let upstream = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: +5\r\n\r\n{}   ",
    );
    let g = gateway(&format!(
        "[[provider]]\nname = \"raw\"\nkind = \"openai\"\nbase_url = \"http://{upstream}/v1\"\n\n[[route]]\nmodel = \"r\"\ntargets = [\"raw/x\"]\n"
    ));
    let r = chat_openai(g.addr, "r", "hi", false);
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert!(v["error"]["message"].is_string(), "OpenAI error shape: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Length"),
        "{v}"
    );

    let r = chat_anthropic(g.addr, "r", "hi", false);
    assert_eq!(r.status, 502, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "Anthropic error shape: {v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

// ---------- F: [server.tls] files read and checked at load ----------

/// A `localhost` certificate and its key (PEM), and the key of another certificate.
fn tls_files(dir: &std::path::Path) -> (String, String, String) {
    let mut pems = Vec::new();
    for _ in 0..2 {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        pems.push((cert.pem(), key.serialize_pem()));
    }
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    (
        write("cert.pem", &pems[0].0),
        write("key.pem", &pems[0].1),
        write("other.key", &pems[1].1),
    )
}

fn tls_config(cert: &str, key: &str) -> String {
    format!("[server.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n")
}

#[test]
fn check_and_serve_refuse_a_missing_unreadable_or_mismatched_certificate_or_key() {
    let dir = temp_path("tls-files");
    let (cert, key, other_key) = tls_files(&dir);
    let (ok, out, err, _) = check(&tls_config(&cert, &key));
    assert!(ok, "{out}{err}");
    assert!(out.contains("listen https://"), "{out}");
    let missing = dir.join("missing.pem").display().to_string();
    let a_dir = dir.display().to_string();
    for (toml, expected) in [
        (
            tls_config(&missing, &key),
            format!(":2: server.tls.cert: cannot read {missing}: "),
        ),
        (
            tls_config(&a_dir, &key),
            format!(":2: server.tls.cert: cannot read {a_dir}: "),
        ),
        (
            tls_config(&key, &key),
            format!(":2: server.tls.cert: no certificate in {key}"),
        ),
        (
            tls_config(&cert, &missing),
            format!(":3: server.tls.key: cannot read {missing}: "),
        ),
        (
            tls_config(&cert, &cert),
            format!(":3: server.tls.key: no private key in {cert}"),
        ),
        (
            tls_config(&cert, &other_key),
            format!(
                ":3: server.tls.key: the private key in {other_key} does not belong to the certificate in {cert}"
            ),
        ),
        (
            format!("{}handshake_timeout_ms = 0\n", tls_config(&cert, &key)),
            ":4: server.tls.handshake_timeout_ms: must be greater than 0".to_owned(),
        ),
        (
            format!("[server.tls]\ncert = \"{cert}\"\n"),
            ":1: server.tls.key: required key is missing".to_owned(),
        ),
        (
            "[server]\nplain_listen = \"127.0.0.1:0\"\n".to_owned(),
            ":2: server.plain_listen: needs [server.tls]".to_owned(),
        ),
        (
            format!(
                "[server]\nlisten = \"127.0.0.1:4443\"\nplain_listen = \"127.0.0.1:4443\"\n\n{}",
                tls_config(&cert, &key)
            ),
            ":3: server.plain_listen: 127.0.0.1:4443 is server.listen's port too".to_owned(),
        ),
        (
            format!(
                "[server]\nlisten = \"0.0.0.0:4443\"\nplain_listen = \"127.0.0.1:4443\"\n\n{}",
                tls_config(&cert, &key)
            ),
            ":3: server.plain_listen: 127.0.0.1:4443 is server.listen's port too".to_owned(),
        ),
    ] {
        let (ok, out, err, file) = check(&toml);
        assert!(!ok, "accepted:\n{toml}\n{out}");
        assert!(
            err.contains(&format!("{file}{expected}")),
            "{toml}\nwant {file}{expected}\ngot {err}"
        );
        // serve refuses the same file with the same message, and never starts.
        let path = write_config(&toml);
        let out = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--driver", &driver()])
            .output()
            .unwrap();
        let serve_err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "serve started with:\n{toml}");
        assert!(
            serve_err.contains(&format!("{}{expected}", path.display())),
            "{serve_err}"
        );
        assert!(!serve_err.contains("listening on"), "{serve_err}");
    }
}

/// `ringway check --config CONFIG` run from `/` (not the config's directory).
fn check_from_root(config: &std::path::Path) -> std::process::Output {
    Command::new(bin())
        .args(["check", "--config"])
        .arg(config)
        .current_dir("/")
        .output()
        .unwrap()
}

#[test]
fn tls_paths_are_relative_to_the_config_file() {
    let dir = temp_path("tls-relative");
    tls_files(&dir);
    let config = dir.join("ringway.toml");
    std::fs::write(&config, tls_config("cert.pem", "key.pem")).unwrap();
    // Run from elsewhere: the files are found beside the config, not in the working directory.
    let out = check_from_root(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&config, tls_config("cert.pem", "nope.pem")).unwrap();
    let out = check_from_root(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            ":3: server.tls.key: cannot read {}: ",
            dir.join("nope.pem").display()
        )),
        "{err}"
    );
}
