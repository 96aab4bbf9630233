//! OTLP traces through the real binary, decoded by the official OpenTelemetry protobuf
//! definitions (tests/otlp/receiver.py, the `opentelemetry-proto` package in the test venv):
//! the spans of a streamed, translated, failed-over call; content (streamed answers' too) only
//! where a route opts in, and only stand-ins under PII; a collector that is down, and one that
//! is slow (`queue_full`); reloads that move the endpoint or turn tracing on and off while
//! requests run; bad `[tracing]` keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::Value;

/// The Python receiver: its port, and each export request it decoded.
struct Receiver {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start() -> Receiver {
        Receiver::start_with(&[])
    }

    /// The receiver with its own arguments (`--delay SECONDS`: it answers each export late).
    fn start_with(args: &[&str]) -> Receiver {
        let root = env!("CARGO_MANIFEST_DIR");
        let python = format!("{root}/.venv/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "{python} is missing: run tests/setup.sh (the venv holds opentelemetry-proto)"
        );
        let mut child = Command::new(python)
            .arg(format!("{root}/tests/otlp/receiver.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).unwrap();
        let port = banner
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver said {banner:?}"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap();
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Receiver {
            child,
            port,
            lines,
            seen: Vec::new(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every span received so far.
    fn spans(&mut self) -> Vec<Value> {
        self.seen.extend(self.lines.try_iter());
        let mut out = Vec::new();
        for line in &self.seen {
            assert!(line.get("decode_error").is_none(), "{line}");
            for rs in line["request"]["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        out
    }

    /// Wait (at most 10 s) until `want` spans of trace `trace` (hex) are in.
    fn trace(&mut self, trace: &str, want: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| hex(&s["traceId"]) == trace)
                .collect();
            if spans.len() >= want || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// json_format writes bytes fields as base64: as hex here.
fn hex(v: &Value) -> String {
    let b = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An attribute's value as json_format writes it (ints are strings there).
fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn attr_str(span: &Value, key: &str) -> Option<String> {
    attr(span, key).map(|v| {
        v.get("stringValue")
            .or(v.get("intValue"))
            .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
            .unwrap_or_else(|| v.to_string())
    })
}

fn event_names(span: &Value) -> Vec<String> {
    span["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Held by the tests that keep clients busy for seconds (a slow collector, reloads): run side
/// by side on two cores, the reload test's exporter fell behind its own margin.
static BUSY: std::sync::Mutex<()> = std::sync::Mutex::new(());

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Providers on the mock, a dead one, and routes: `tr` (OpenAI clients to Anthropic targets,
/// the first answering 503), `open` (exports content).
fn config(mock: &Proc, tracing: &str) -> String {
    format!(
        r#"[server]
workers = 2

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{m}"

[[provider]]
name = "mo"
kind = "openai"
base_url = "http://{m}/v1"

[[route]]
model = "tr"
targets = ["ma/flaky-1", "ma/good-2"]
retries = 0
breaker_failures = 0

[[route]]
model = "open"
targets = ["mo/open-up"]

{tracing}
"#,
        m = mock.addr
    )
}

fn traced_chat(
    addr: std::net::SocketAddr,
    model: &str,
    prompt: &str,
    stream: bool,
    tp: &str,
) -> Response {
    request(
        addr,
        &post(
            "/v1/chat/completions",
            &[("traceparent", tp), ("tracestate", "vendor=x,other=y")],
            &with_seed(&openai_body(model, prompt, stream)),
        ),
    )
}

/// A Chat body with `seed`, which Anthropic has no equivalent of: a ledger entry.
fn with_seed(body: &str) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["seed"] = Value::from(7);
    v.to_string()
}

#[test]
fn a_streamed_translated_failed_over_call_is_one_server_span_with_an_attempt_span_each() {
    let mut rx = Receiver::start();
    let m = mock(&[]);
    set_faults(&m, &serde_json::json!({"flaky-1": "status=503"}));
    let g = gateway(&config(
        &m,
        &format!(
            "[tracing]\nendpoint = \"{}\"\ngzip = true\npropagate = true\nservice_name = \"rw-test\"\nheaders = {{ authorization = \"Bearer otlp-secret\" }}\ncontent_routes = [\"open\"]\n",
            rx.endpoint()
        ),
    ));
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let r = traced_chat(g.addr, "tr", "my secret prompt", true, &tp);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("[DONE]"), "{}", r.text());
    assert_eq!(r.header("x-ringway-attempts"), Some("2"));
    let spans = rx.trace(TRACE, 3);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .expect("a server span");
    // RINGWAY_TRACE_SAMPLE=FILE keeps the decoded export (a sample for the docs).
    if let Ok(file) = std::env::var("RINGWAY_TRACE_SAMPLE") {
        std::fs::write(file, serde_json::to_string_pretty(&rx.seen).unwrap()).unwrap();
    }
    assert_eq!(server["name"], "chat tr");
    // The incoming context is continued.
    assert_eq!(hex(&server["parentSpanId"]), PARENT);
    assert_eq!(server["traceState"], "vendor=x,other=y");
    for (k, v) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "anthropic"),
        ("gen_ai.request.model", "tr"),
        ("gen_ai.response.model", "good-2"),
        ("server.address", "127.0.0.1"),
        ("http.response.status_code", "200"),
        ("ringway.dialect", "openai"),
        ("ringway.attempts", "2"),
    ] {
        assert_eq!(attr_str(server, k).as_deref(), Some(v), "{k}: {server:#}");
    }
    for k in [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
    ] {
        assert!(attr(server, k).is_some(), "{k}: {server:#}");
    }
    assert!(attr_str(server, "gen_ai.usage.output_tokens").unwrap() != "0");
    // The translation ledger: `seed` had nowhere to go.
    let ledger =
        &attr(server, "ringway.translation.ledger").expect("a ledger")["arrayValue"]["values"];
    assert!(
        ledger
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["stringValue"] == "param_dropped:seed"),
        "{server:#}"
    );
    let reasons = &attr(server, "gen_ai.response.finish_reasons").unwrap()["arrayValue"]["values"];
    assert_eq!(reasons[0]["stringValue"], "end_turn", "{server:#}");
    let events = event_names(server);
    assert!(
        events.contains(&"ringway.first_token".to_owned()),
        "{events:?}"
    );
    assert!(events.contains(&"ringway.commit".to_owned()), "{events:?}");
    // No content: the route did not opt in.
    assert!(
        !server.to_string().contains("my secret prompt"),
        "{server:#}"
    );
    assert!(
        events.iter().all(|e| !e.starts_with("gen_ai.content")),
        "{events:?}"
    );

    // One client span per attempt, children of the server span, in order.
    let server_id = hex(&server["spanId"]);
    let mut attempts: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "SPAN_KIND_CLIENT")
        .collect();
    attempts.sort_by_key(|s| attr_str(s, "ringway.attempt.index"));
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        assert_eq!(hex(&a["parentSpanId"]), server_id);
    }
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(first["name"], "chat flaky-1");
    assert_eq!(
        attr_str(first, "ringway.attempt.target").as_deref(),
        Some("ma/flaky-1")
    );
    assert_eq!(attr_str(first, "error.type").as_deref(), Some("status_503"));
    assert_eq!(
        attr_str(first, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(
        attr(first, "ringway.attempt.retried").unwrap()["boolValue"],
        true
    );
    assert_eq!(first["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(second["name"], "chat good-2");
    assert_eq!(
        attr_str(second, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(second, "ringway.attempt.retried").unwrap()["boolValue"],
        false
    );
    assert!(attr(second, "error.type").is_none());

    // Each provider request carried its attempt span as the parent.
    let id = r.header("x-ringway-request-id").unwrap();
    let sent: Vec<String> = mock_requests(&m)
        .iter()
        .filter(|q| q["headers"]["x-ringway-request-id"] == id)
        .map(|q| {
            q["headers"]["traceparent"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let want: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{TRACE}-{}-01", hex(&a["spanId"])))
        .collect();
    assert_eq!(sent, want);

    // The export: gzip, the configured header and service name.
    let line = &rx.seen[0];
    assert_eq!(line["path"], "/v1/traces");
    assert_eq!(line["headers"]["content-encoding"], "gzip");
    assert_eq!(line["headers"]["authorization"], "Bearer otlp-secret");
    let resource = &line["request"]["resourceSpans"][0]["resource"];
    assert!(resource.to_string().contains("rw-test"), "{resource}");

    // A route that opts in exports the prompt (as sent upstream) and the answer.
    let tp2 = "00-11111111111111111111111111111111-2222222222222222-01";
    let r = traced_chat(g.addr, "open", "tell me about otters", false, tp2);
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = rx.trace("11111111111111111111111111111111", 2);
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .unwrap();
    let events = event_names(server);
    assert!(
        events.contains(&"gen_ai.content.prompt".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"gen_ai.content.completion".to_owned()),
        "{events:?}"
    );
    assert!(server.to_string().contains("tell me about otters"));

    // An unsampled parent is not traced, and its traceparent goes on as the client sent it.
    let tp3 = "00-33333333333333333333333333333333-4444444444444444-00";
    let r = traced_chat(g.addr, "open", "hi", false, tp3);
    assert_eq!(r.status, 200);
    let id = r.header("x-ringway-request-id").unwrap().to_owned();
    let q = mock_requests(&m)
        .into_iter()
        .find(|q| q["headers"]["x-ringway-request-id"] == id.as_str())
        .unwrap();
    assert_eq!(q["headers"]["traceparent"], tp3);
    std::thread::sleep(Duration::from_millis(300));
    let unsampled = "33333333333333333333333333333333";
    assert!(rx.spans().iter().all(|s| hex(&s["traceId"]) != unsampled));
}

/// The server span of trace `trace` (hex), once it is in.
fn server_span(rx: &mut Receiver, trace: &str) -> Value {
    let spans = rx.trace(trace, 2);
    spans
        .into_iter()
        .find(|s| s["kind"] == "SPAN_KIND_SERVER")
        .unwrap_or_else(|| panic!("no server span in trace {trace}"))
}

/// The text of the server span's `gen_ai.content.{what}` event (`prompt` or `completion`).
fn content(span: &Value, what: &str) -> Option<String> {
    let name = format!("gen_ai.content.{what}");
    let key = format!("gen_ai.{what}");
    span["events"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name.as_str())
        .and_then(|e| attr_str(e, &key))
}

/// Content leaves only where a route opts in (`content_routes` or `trace_content = true`), a
/// streamed answer's completion with it, and under PII substitution only stand-ins leave.
#[test]
fn content_is_exported_where_a_route_opts_in_streamed_too_and_only_as_stand_ins() {
    const EMAIL: &str = "jane.doe@corp.example.io";
    let mut rx = Receiver::start();
    let m = mock(&[]);
    let g = gateway(&config(
        &m,
        &format!(
            "[[route]]\nmodel = \"flag\"\ntargets = [\"mo/flag-up\"]\ntrace_content = true\n\n\
             [[route]]\nmodel = \"plain\"\ntargets = [\"mo/plain-up\"]\ntrace_content = false\n\n\
             [[route]]\nmodel = \"private\"\ntargets = [\"mo/private-up\"]\ntrace_content = true\n\n\
             [pii]\nroutes = [\"private\"]\n\n\
             [tracing]\nendpoint = \"{}\"\ncontent_routes = [\"open\"]\n",
            rx.endpoint()
        ),
    ));
    let tp = |n: u8| format!("00-{}-{PARENT}-01", format!("{n:x}").repeat(32));

    // A streamed answer on a listed route: the prompt as sent, the provider's events as sent.
    let r = traced_chat(g.addr, "open", "tell me about otters", true, &tp(1));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("otters"), "{}", r.text());
    let server = server_span(&mut rx, &"1".repeat(32));
    let prompt = content(&server, "prompt").expect("a prompt");
    assert!(prompt.contains("tell me about otters"), "{prompt}");
    let completion = content(&server, "completion").expect("a streamed completion");
    assert!(completion.contains("otters"), "{completion}");
    assert!(completion.starts_with("data: "), "{completion}");
    assert!(completion.contains("[DONE]"), "{completion}");

    // `trace_content = true` opts a route in (a whole answer here, a stream on `private`).
    let r = traced_chat(g.addr, "flag", "tell me about beavers", false, &tp(2));
    assert_eq!(r.status, 200, "{}", r.text());
    let server = server_span(&mut rx, &"2".repeat(32));
    assert!(content(&server, "prompt").is_some_and(|p| p.contains("tell me about beavers")));
    assert!(content(&server, "completion").is_some_and(|c| c.contains("beavers")));

    // A route that does not opt in exports none, streamed or not.
    for (n, stream) in [(3, true), (4, false)] {
        let r = traced_chat(g.addr, "plain", "tell me about badgers", stream, &tp(n));
        assert_eq!(r.status, 200, "{}", r.text());
        let server = server_span(&mut rx, &n.to_string().repeat(32));
        assert!(!server.to_string().contains("badgers"), "{server:#}");
        let events = event_names(&server);
        assert!(
            events.iter().all(|e| !e.starts_with("gen_ai.content")),
            "{events:?}"
        );
    }

    // PII on: the client gets its original back; the span holds only the stand-in, in the
    // prompt and in the streamed completion that echoes it.
    let r = traced_chat(
        g.addr,
        "private",
        &format!("mail {EMAIL} now"),
        true,
        &tp(5),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(EMAIL), "not restored: {}", r.text());
    let server = server_span(&mut rx, &"5".repeat(32));
    let prompt = content(&server, "prompt").expect("a prompt");
    let completion = content(&server, "completion").expect("a streamed completion");
    assert!(
        prompt.contains("mail ") && prompt.contains(" now"),
        "{prompt}"
    );
    assert!(
        completion.contains("mail") && completion.contains("now"),
        "{completion}"
    );
    assert!(!server.to_string().contains(EMAIL), "{server:#}");
    assert!(
        !server.to_string().contains("corp.example.io"),
        "{server:#}"
    );
}

fn metric(addr: std::net::SocketAddr, line_start: &str) -> u64 {
    let text = request(addr, &get("/metrics", &[])).text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing_and_drops_are_counted() {
    let m = mock(&[]);
    let dead = closed_port();
    let g = gateway(&config(
        &m,
        &format!("[tracing]\nendpoint = \"http://127.0.0.1:{dead}/v1/traces\"\n"),
    ));
    for i in 0..20 {
        let r = chat_openai(g.addr, "open", "hello", i % 2 == 0);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let dropped = loop {
        let n = metric(
            g.addr,
            "ringway_trace_spans_dropped_total{reason=\"export_failed\"}",
        );
        if n >= 20 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(dropped >= 20, "{dropped}");
    assert_eq!(metric(g.addr, "ringway_trace_spans_exported_total"), 0);
}

/// A collector that takes each export and answers late (past the exporter's 5 s read
/// timeout): the queue fills, batches are dropped as `queue_full`, and requests go on at
/// their own pace.
#[test]
fn a_slow_collector_fills_the_queue_and_drops_are_counted_as_queue_full() {
    let _busy = BUSY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _rx = Receiver::start_with(&["--delay", "30"]);
    let m = mock(&[]);
    let g = gateway(&config(
        &m,
        &format!("[tracing]\nendpoint = \"{}\"\n", _rx.endpoint()),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = g.addr;
    // Paced: a batch leaves each worker per tick (20 ms) that saw a call, so a few calls per
    // tick fill the queue within one stalled export, without loading the machine.
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = chat_openai(addr, "open", "hello", false);
                    if r.status != 200 {
                        failures.push(r.text());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                failures
            })
        })
        .collect();
    let full = "ringway_trace_spans_dropped_total{reason=\"queue_full\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped = loop {
        let n = metric(g.addr, full);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let failures = c.join().unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(dropped > 0, "no queue_full drops in 30 s");
    assert_eq!(metric(g.addr, "ringway_trace_spans_exported_total"), 0);
}

fn on_generation(addr: std::net::SocketAddr, n: u64) -> bool {
    let text = request(addr, &get("/metrics", &[])).text();
    (0..2).all(|w| {
        text.contains(&format!(
            "ringway_config_generation{{worker=\"{w}\"}} {n}\n"
        ))
    })
}

#[test]
fn tracing_follows_reloads_with_no_request_lost() {
    let _busy = BUSY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut a = Receiver::start();
    let mut b = Receiver::start();
    let m = mock(&[]);
    let path = temp_path("tracing-reload.toml");
    std::fs::write(&path, config(&m, "")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config"]).arg(&path);
    cmd.args(["--listen", "127.0.0.1:0", "--driver", &driver()]);
    let g = spawn_and_wait(cmd, "listening on");
    // Clients that never stop while the config changes under them.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let addr = g.addr;
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = chat_openai(addr, "open", "hello", i % 2 == 0);
                    if r.status != 200 {
                        failures.push(r.text());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    let settle = |generation: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !on_generation(addr, generation) {
            assert!(Instant::now() < deadline, "generation {generation}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < before + 20 {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    settle(1);
    // On, to A.
    let on = |r: &Receiver| config(&m, &format!("[tracing]\nendpoint = \"{}\"\n", r.endpoint()));
    std::fs::write(&path, on(&a)).unwrap();
    signal(&g, "HUP");
    settle(2);
    // Moved to B.
    std::fs::write(&path, on(&b)).unwrap();
    signal(&g, "HUP");
    settle(3);
    let in_a = a.settled_count();
    // Off.
    std::fs::write(
        &path,
        config(&m, "[tracing]\nenabled = false\nendpoint = \"http://x\"\n"),
    )
    .unwrap();
    signal(&g, "HUP");
    settle(4);
    // Spans made before the switch may still be on their way (queued, or in an export).
    let in_b = b.settled_count();
    settle(4);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let failures = c.join().unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    assert!(in_a > 0, "A got no spans");
    assert!(in_b > 0, "B got no spans");
    assert_eq!(b.trace_count(), in_b, "spans after tracing was turned off");
    assert_eq!(a.trace_count(), in_a, "A kept getting spans after the move");
}

impl Receiver {
    /// The spans received, counted once the count has stood still for half a second (the
    /// exporter sends every 20 ms; what was made before a switch may still be on its way),
    /// within ten seconds.
    fn settled_count(&mut self) -> usize {
        let mut count = self.trace_count();
        let start = std::time::Instant::now();
        let mut last_move = start;
        while last_move.elapsed() < Duration::from_millis(500)
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.trace_count();
            if now != count {
                count = now;
                last_move = std::time::Instant::now();
            }
        }
        count
    }

    fn trace_count(&mut self) -> usize {
        self.spans().len()
    }
}

#[test]
fn bad_tracing_keys_are_file_line_key_path_errors() {
    let base = "[[provider]]\nname = \"mo\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[[route]]\nmodel = \"a\"\ntargets = [\"mo/x\"]\n\n[tracing]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n";
    check_refuses(
        &format!("{base}sample_ratio = 2.0\n"),
        ":12: tracing.sample_ratio",
        "must be from 0.0 to 1.0",
    );
    check_refuses(
        &format!("{base}content_routes = [\"b\"]\n"),
        ":12: tracing.content_routes[0]",
        "not a route",
    );
    check_refuses(
        &base.replace(
            "targets = [\"mo/x\"]\n",
            "targets = [\"mo/x\"]\ntrace_content = \"yes\"\n",
        ),
        ":9: route[0].trace_content",
        "expected true or false",
    );
    check_refuses(
        "[tracing]\nendpoint = \"grpc://collector:4317\"\n",
        ":2: tracing.endpoint",
        "not an http:// or https:// URL",
    );
    check_refuses(
        "[tracing]\nendpoint = \"http://c/v1/traces\"\nheaders = { \"bad name\" = \"x\" }\n",
        ":3: tracing.headers.bad name",
        "not a header name",
    );
    let (ok, out, err, _) = check(&format!("{base}sample_ratio = 0.01\n"));
    assert!(ok, "{out}{err}");
}
