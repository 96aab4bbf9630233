//! Streams cut short are charged for what the provider will bill (issue 27, item 1), through
//! the real binary: a client closes its stream after the first content event, before an
//! OpenAI-kind (or native Responses) provider said its usage, which such providers say only at
//! the end. The custody record holds an estimate of the prompt (marked so), `/v1/usage` sums
//! it, `ringway_tokens_total` counts it, and the key's `tpm` refuses the next request. Chat,
//! Messages and Responses clients; the provider's connection is closed at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// How long a test waits for a record or a metric to appear.
const WAIT: Duration = Duration::from_secs(20);
/// Words in most prompts: o200k_base makes each ` word` one token. About 6 KB: counted on
/// the worker.
const PROMPT_WORDS: usize = 1200;
/// Words in a prompt counted on a helper thread (a body over 16 KiB).
const LONG_PROMPT_WORDS: usize = 4000;
/// The keys' tokens per minute: a full bucket admits the first request, whose prompt alone is
/// three times this.
const TPM: u64 = 400;
const ADMIN: &str = "sk-cut-admin";

/// `(key name, secret)` of the limited keys, one per client dialect (each spends its own
/// bucket).
const KEYS: &[(&str, &str)] = &[
    ("cut-chat", "sk-cut-chat"),
    ("cut-messages", "sk-cut-messages"),
    ("cut-responses", "sk-cut-responses"),
    ("cut-native", "sk-cut-native"),
];

fn env_name(key: &str) -> String {
    format!("RW_TEST_{}", key.to_uppercase().replace('-', "_"))
}

/// Mock, gateway (two workers, custody on) with the standard providers, a native Responses
/// provider on `native` and every key in [`KEYS`] limited to [`TPM`].
fn setup(native: SocketAddr) -> (Proc, Proc) {
    let m = mock(&[]);
    let db = temp_path("cut-short.db");
    let mut cfg = format!(
        r#"[server]
workers = 2

[access_log]
enabled = false

[custody]
path = "{}"

{}
[[provider]]
name = "native"
kind = "openai"
base_url = "http://{native}/v1"
responses = "native"

[[route]]
model = "native"
targets = ["native/up-native"]

[[key]]
name = "ops"
key_env = "RW_TEST_CUT_ADMIN"
admin = true
"#,
        db.display(),
        standard_providers(&m)
    );
    for (name, _) in KEYS {
        cfg.push_str(&format!(
            "\n[[key]]\nname = \"{name}\"\nkey_env = \"{}\"\ntpm = {TPM}\n",
            env_name(name)
        ));
    }
    let names: Vec<(String, &str)> = KEYS.iter().map(|(n, s)| (env_name(n), *s)).collect();
    let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_CUT_ADMIN", ADMIN));
    env.extend(names.iter().map(|(n, s)| (n.as_str(), *s)));
    let g = gateway_env(&cfg, &env);
    (m, g)
}

/// A prompt of `words` one-token words; the mock streams 40 words 100 ms apart.
fn prompt(words: usize) -> String {
    let mut p = String::from("mock:tokens=40 mock:itl=100");
    for _ in 0..words {
        p.push_str(" word");
    }
    p
}

/// A streamed request of `client`'s dialect for `model`, sent with `secret`.
fn streamed(client: &str, model: &str, secret: &str, prompt: &str, stream: bool) -> Vec<u8> {
    let bearer = format!("Bearer {secret}");
    match client {
        "chat" => post(
            "/v1/chat/completions",
            &[("authorization", &bearer)],
            &openai_body(model, prompt, stream),
        ),
        "messages" => post(
            "/v1/messages",
            &[("x-api-key", secret), ("anthropic-version", "2023-06-01")],
            &anthropic_body(model, prompt, stream),
        ),
        _ => post(
            "/v1/responses",
            &[("authorization", &bearer)],
            &json!({"model": model, "input": prompt, "stream": stream}).to_string(),
        ),
    }
}

/// Send `raw`, read the stream's head and events up to the one holding `first` (the first
/// content), then close the connection with the rest unread. The request id.
fn stream_then_close(addr: SocketAddr, raw: &[u8], first: &str) -> String {
    let mut c = Client::connect(addr);
    c.send_raw(raw);
    let (status, headers) = c.read_head().expect("a head");
    let id = headers
        .iter()
        .find(|(n, _)| n == "x-ringway-request-id")
        .map(|(_, v)| v.clone())
        .expect("a request id");
    assert_eq!(status, 200, "{headers:?}");
    let mut seen = String::new();
    while !seen.contains(first) {
        let chunk = c
            .read_chunk()
            .expect("the stream ended before its first content");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(c);
    id
}

fn get_as(g: &Proc, secret: &str, path: &str) -> Response {
    request(
        g.addr,
        &get(path, &[("authorization", &format!("Bearer {secret}"))]),
    )
}

/// The record of `id`, once written.
fn record(g: &Proc, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get_as(g, ADMIN, &format!("/v1/custody/{id}"));
        if r.status == 200 {
            return r.json();
        }
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(Instant::now() < deadline, "no record for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A series' value in a scrape.
fn series(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// An upstream speaking native Responses: each request gets a stream of 50 text deltas 100 ms
/// apart, then `response.completed` with usage. Returns its address and, per connection, how
/// many deltas it wrote before the gateway closed it (50: it was never closed early).
fn native_upstream() -> (SocketAddr, Arc<Mutex<Vec<usize>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let written = Arc::new(Mutex::new(Vec::new()));
    let log = written.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                if !read_one_request(&mut s) {
                    return;
                }
                let n = serve_native(&mut s);
                log.lock().unwrap().push(n);
            });
        }
    });
    (addr, written)
}

/// One native Responses stream on `s`, chunked; how many deltas went out before a write
/// failed.
fn serve_native(s: &mut TcpStream) -> usize {
    fn send(s: &mut TcpStream, kind: &str, mut body: Value) -> std::io::Result<()> {
        body["type"] = kind.into();
        let data = format!("event: {kind}\ndata: {body}\n\n");
        s.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
        s.flush()
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let created = json!({"response": {"id": "resp_n", "object": "response", "status": "in_progress", "output": []}});
    if send(s, "response.created", created).is_err() {
        return 0;
    }
    for i in 1..=50 {
        let delta = json!({"item_id": "msg_n", "output_index": 0, "content_index": 0, "delta": format!(" w{i}")});
        if send(s, "response.output_text.delta", delta).is_err() {
            return i - 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = json!({"response": {"id": "resp_n", "object": "response", "status": "completed", "output": [],
                                   "usage": {"input_tokens": 3, "output_tokens": 50, "total_tokens": 53}}});
    let _ = send(s, "response.completed", done);
    let _ = s.write_all(b"0\r\n\r\n");
    50
}

/// `client` streams `route` with key `KEYS[k]` and a prompt of `words` words, and closes after
/// its first content: the record, the sums, the metrics and the key's `tpm` all hold the
/// prompt's estimate.
fn cut_short_is_charged(client: &str, route: &str, k: usize, words: usize) {
    let (native, written) = native_upstream();
    let (m, g) = setup(native);
    let (key, secret) = KEYS[k];
    let what = format!("{client} client, route {route}");
    let id = stream_then_close(
        g.addr,
        &streamed(client, route, secret, &prompt(words), true),
        "w1",
    );
    let rec = record(&g, &id);
    assert_eq!(rec["status"], 200, "{what}: {rec}");
    assert_eq!(rec["stream"], true, "{what}: {rec}");
    let input = rec["usage"]["input"].as_u64().unwrap_or(0);
    // The tokenizer's count: a word a token, and a few for the message around them (a count
    // by size would be over 1,500).
    assert!(
        (words as u64..words as u64 + 60).contains(&input),
        "{what}: {rec}"
    );
    assert_eq!(rec["usage_estimated"], true, "{what}: {rec}");
    // At least the content the client saw was counted as output.
    assert!(
        rec["usage"]["output"].as_u64().unwrap_or(0) >= 1,
        "{what}: {rec}"
    );

    // `/v1/usage` sums it.
    let sums = get_as(&g, secret, "/v1/usage?from=2000-01-01").json();
    let rows = sums["data"].as_array().unwrap();
    let summed: u64 = rows
        .iter()
        .map(|r| r["input_tokens"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(summed, input, "{what}: {sums}");

    // The key's tokens per minute are spent: the next request is refused before anything goes
    // upstream.
    let sent_before = mock_requests(&m).len();
    let next = request(g.addr, &streamed(client, route, secret, "hi", false));
    assert_eq!(next.status, 429, "{what}: {}", next.text());
    assert!(next.text().contains("tokens"), "{what}: {}", next.text());
    assert_eq!(mock_requests(&m).len(), sent_before, "{what}");
    // What was charged is owed: the key is admitted again once the bucket has refilled all
    // but its last minute of it (a full bucket is a minute's worth), so a client that cuts
    // every stream short averages `tpm` over time.
    let output = rec["usage"]["output"].as_u64().unwrap_or(0);
    let owed_s = (input + output) * 60 / TPM - 60;
    let retry: u64 = next.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry.abs_diff(owed_s) <= 5,
        "{what}: retry-after {retry}, owed {owed_s} s"
    );

    // The metrics count the tokens, and that they were estimated.
    let provider = if route == "native" { "native" } else { "mo" };
    let labels = format!("route=\"{route}\",provider=\"{provider}\",key=\"{key}\"");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get_as(&g, ADMIN, "/metrics").text();
        let tokens = series(
            &text,
            &format!("ringway_tokens_total{{{labels},gen_ai_token_type=\"input\"}} "),
        );
        let estimated = series(
            &text,
            &format!("ringway_usage_estimated_total{{{labels}}} "),
        );
        if tokens == Some(input) && estimated == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: tokens {tokens:?}, estimated {estimated:?}, want {input} and 1\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    if route == "native" {
        // The provider's connection was closed as the client left, not read to its end.
        let deadline = Instant::now() + WAIT;
        while written.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let cut = written.lock().unwrap().clone();
        assert_eq!(cut.len(), 1, "{cut:?}");
        assert!(
            cut[0] < 50,
            "the provider's stream was read to its end: {cut:?}"
        );
    }
}

#[test]
fn a_chat_stream_closed_after_its_first_content_is_charged_its_prompt() {
    cut_short_is_charged("chat", "gpt", 0, PROMPT_WORDS);
}

#[test]
fn a_messages_stream_to_an_openai_kind_provider_closed_early_is_charged_its_prompt() {
    cut_short_is_charged("messages", "gpt", 1, LONG_PROMPT_WORDS);
}

#[test]
fn a_responses_stream_to_an_openai_kind_provider_closed_early_is_charged_its_prompt() {
    cut_short_is_charged("responses", "gpt", 2, PROMPT_WORDS);
}

#[test]
fn a_native_responses_stream_closed_early_is_charged_and_its_provider_let_go() {
    cut_short_is_charged("responses", "native", 3, LONG_PROMPT_WORDS);
}

/// A stream that ends as it should keeps the provider's own figures, not marked estimated;
/// that includes a usage chunk the client did not ask for (read by the gateway, not relayed).
#[test]
fn a_stream_read_to_its_end_keeps_the_providers_figures() {
    let (native, _) = native_upstream();
    let (_m, g) = setup(native);
    let (_, secret) = KEYS[0];
    let r = request(
        g.addr,
        &streamed("chat", "gpt", secret, "mock:tokens=3 mock:input=77", true),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("\"usage\":{"), "{}", r.text());
    let rec = record(&g, r.header("x-ringway-request-id").unwrap());
    assert_eq!(rec["usage_estimated"], false, "{rec}");
    assert_eq!(rec["usage"]["input"], 77, "{rec}");
    assert_eq!(rec["usage"]["output"], 3, "{rec}");
}

/// A stream a drain's end cuts is charged too, before the process exits: the tokenizer is not
/// waited for then, so a process that never built it counts the prompt by its size.
#[test]
fn a_stream_cut_by_a_drain_is_charged_before_the_process_exits() {
    let m = mock(&[]);
    let db = temp_path("cut-drain.db");
    let cfg = format!(
        "[server]\nworkers = 1\ndrain_timeout_ms = 600\n\n[access_log]\nenabled = false\n\n\
         [custody]\npath = \"{}\"\n{}\n[[key]]\nname = \"ops\"\nkey_env = \"RW_TEST_CUT_ADMIN\"\nadmin = true\n",
        db.display(),
        standard_providers(&m)
    );
    let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_CUT_ADMIN", ADMIN));
    let mut g = gateway_env(&cfg, &env);
    let body = openai_body(
        "gpt",
        &prompt(PROMPT_WORDS).replace("mock:tokens=40", "mock:tokens=200"),
        true,
    );
    let raw = post(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        &body,
    );
    let addr = g.addr;
    let stream = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send_raw(&raw);
        c.read_response().expect("a response")
    });
    std::thread::sleep(Duration::from_millis(400));
    signal(&g, "TERM");
    let r = stream.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("shutting down"), "{}", r.text());
    let id = r.header("x-ringway-request-id").unwrap().to_owned();
    let status = exit_within(&mut g, Duration::from_secs(10)).expect("exits after the drain");
    assert!(status.success(), "{status:?}");

    // The record was written before the exit: read it back from a new process on the file.
    let g = gateway_env(&cfg, &env);
    let rec = record(&g, &id);
    assert_eq!(rec["usage_estimated"], true, "{rec}");
    assert_eq!(
        rec["usage"]["input"],
        (body.len() as u64).div_ceil(4),
        "{rec}"
    );
    assert!(rec["usage"]["output"].as_u64().unwrap() >= 1, "{rec}");
}
