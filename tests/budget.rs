//! Translation under the worker's memory budget (`server.max_buffered_bytes`), through the
//! real binary: a request whose translation could not fit is refused in the client's format
//! before anything reaches the provider (413 when no budget of this size could take it, 503
//! while the budget is busy); a large translation does not hold up the worker's other
//! requests; a translated Responses stream whose held answer outgrows the budget ends with
//! the Responses error event.

mod common;

use std::time::Duration;

use common::*;

/// A Chat body of `n` short messages (alternating sides), the last one from the user saying
/// `last`.
fn chat_body(model: &str, n: usize, last: &str) -> String {
    let mut messages: Vec<serde_json::Value> = (0..n.saturating_sub(1))
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            serde_json::json!({"role": role, "content": "x"})
        })
        .collect();
    messages.push(serde_json::json!({"role": "user", "content": last}));
    serde_json::json!({"model": model, "max_tokens": 16, "messages": messages}).to_string()
}

fn gateway_with_budget(m: &Proc, budget: usize) -> Proc {
    gateway_env(
        &format!(
            "[server]\nworkers = 1\nmax_buffered_bytes = {budget}\n\n{}",
            standard_providers(m)
        ),
        PROVIDER_KEYS,
    )
}

#[test]
fn a_translation_no_budget_could_hold_is_a_413_in_the_clients_format_and_nothing_is_sent() {
    let m = mock(&[]);
    // 1 MiB: a body of 400 kB may need three times itself to translate.
    let g = gateway_with_budget(&m, 1 << 20);
    let big = chat_body("claude", 12_000, "hi");
    assert!(big.len() > 350_000, "{}", big.len());
    // An OpenAI client to the Anthropic-kind provider: OpenAI's error shape.
    let r = request(g.addr, &post("/v1/chat/completions", &[], &big));
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "request_too_large", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_buffered_bytes"), "{message}");
    // An Anthropic client to the OpenAI-kind provider: Anthropic's error shape.
    let big_anthropic = chat_body("gpt", 12_000, "hi");
    let r = request(g.addr, &post("/v1/messages", &[], &big_anthropic));
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "request_too_large", "{v}");
    // A Responses client to a Chat provider.
    let items: Vec<serde_json::Value> = (0..12_000)
        .map(|_| serde_json::json!({"role": "user", "content": "x"}))
        .collect();
    let responses = serde_json::json!({"model": "gpt", "input": items}).to_string();
    let r = request(g.addr, &post("/v1/responses", &[], &responses));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    assert!(
        mock_requests(&m).is_empty(),
        "nothing reached the provider: {:?}",
        mock_requests(&m)
    );
    // The same bodies relayed in their own format are not translated, and go through.
    let r = request(g.addr, &post("/v1/chat/completions", &[], &big_anthropic));
    assert_eq!(r.status, 200, "{}", r.text());
    // And a small translated request still fits.
    assert_eq!(chat_openai(g.addr, "claude", "hi", false).status, 200);
}

/// Wait until the mock has seen `n` requests (within 10 s).
fn wait_for_requests(m: &Proc, n: usize) {
    for _ in 0..400 {
        if mock_requests(m).len() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(mock_requests(m).len(), n, "the mock's requests");
}

/// A 1.5 MB Chat request for `model` answered after 4 s, and once the provider has it, a
/// second one: the second's response (now), the first's (to join), and the second's body.
fn second_while_first_waits(
    g: &Proc,
    m: &Proc,
    model: &str,
) -> (Response, std::thread::JoinHandle<Response>, String) {
    let slow = chat_body(model, 48_000, "mock:ttft=4000 slow");
    let quick = chat_body(model, 48_000, "quick");
    assert!(slow.len() > 1_400_000 && quick.len() > 1_400_000);
    let addr = g.addr;
    let first =
        std::thread::spawn(move || request(addr, &post("/v1/chat/completions", &[], &slow)));
    wait_for_requests(m, 1);
    let second = request(g.addr, &post("/v1/chat/completions", &[], &quick));
    (second, first, quick)
}

#[test]
fn a_translation_that_fits_only_alone_waits_with_a_503_while_the_budget_is_busy() {
    let m = mock(&[]);
    // 5.5 MiB: one 1.5 MB body's translation fits (three times it), not beside another
    // translated body of that size kept for its provider. A Vertex target keeps its body
    // until the answer comes (a cloud may need it again: a refreshed credential, a beta it
    // refused), so the first request holds its charge for seconds.
    let g = gateway_env(
        &format!(
            "[server]\nworkers = 1\nmax_buffered_bytes = 5767168\n\n\
             [[provider]]\nname = \"vertex\"\nkind = \"vertex\"\nproject = \"mock-project\"\n\
             region = \"us-east5\"\nbase_url = \"http://{m}\"\napi_key_env = \"RW_VERTEX_TOKEN\"\n\n\
             [[route]]\nmodel = \"vclaude\"\ntargets = [\"vertex/claude-haiku-4-5@20251001\"]\n",
            m = m.addr
        ),
        &[("RW_VERTEX_TOKEN", "mock-static-token")],
    );
    let (r, first, quick) = second_while_first_waits(&g, &m, "vclaude");
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "gateway_overloaded", "{v}");
    assert_eq!(mock_requests(&m).len(), 1, "the refused body was not sent");
    assert_eq!(first.join().unwrap().status, 200);
    // With the budget given back, the same request goes through.
    let r = request(g.addr, &post("/v1/chat/completions", &[], &quick));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_translated_body_written_to_its_provider_no_longer_holds_the_budget() {
    let m = mock(&[]);
    // The budget of the test above: at an Anthropic-kind provider the first translation is
    // let go (and its charge with it) once written, so the second fits while the first
    // still waits for its answer.
    let g = gateway_with_budget(&m, 5_767_168);
    let (r, first, _) = second_while_first_waits(&g, &m, "claude");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!first.is_finished(), "the first answer is still awaited");
    assert_eq!(first.join().unwrap().status, 200);
}

/// A listener on 127.0.0.1 whose accept queue is full: a connect to it hangs (its SYNs are
/// dropped) until the connector gives up. Returned with the connections that fill it.
fn unanswering_listener() -> std::io::Result<(socket2::Socket, Vec<std::net::TcpStream>)> {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    l.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    l.listen(0)?;
    let addr = l
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP address"))?;
    // Never accepted: once the queue holds what its backlog allows, a connect waits.
    let mut fill = Vec::new();
    while let Ok(c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        fill.push(c);
        assert!(fill.len() < 8, "the accept queue never filled");
    }
    Ok((l, fill))
}

#[test]
fn a_translated_body_is_not_held_while_its_connection_is_made() {
    let m = mock(&[]);
    let (stuck, _fill) = unanswering_listener().unwrap();
    let stuck_addr = stuck.local_addr().unwrap().as_socket().unwrap();
    // The budget of the tests above: one 1.5 MB translation with its scratch, not beside
    // another translated body. The first request's provider takes 10 s not to answer its
    // connect; a body made before the connect would hold its charge all that time. (With
    // 3 s, CI's loaded 2 cores once took longer than that over the second request.)
    let g = gateway_env(
        &format!(
            "[server]\nworkers = 1\nmax_buffered_bytes = 5767168\n\n{}\n             [[provider]]\nname = \"stuck\"\nkind = \"anthropic\"\nbase_url = \"http://{stuck_addr}\"\n             api_key_env = \"RW_TEST_ANTHROPIC_KEY\"\nconnect_timeout_ms = 10000\n\n             [[route]]\nmodel = \"stuck-claude\"\ntargets = [\"stuck/claude-up\"]\nretries = 0\n",
            standard_providers(&m)
        ),
        PROVIDER_KEYS,
    );
    let slow = chat_body("stuck-claude", 48_000, "never sent");
    let quick = chat_body("claude", 48_000, "quick");
    assert!(slow.len() > 1_400_000 && quick.len() > 1_400_000);
    let addr = g.addr;
    let first =
        std::thread::spawn(move || request(addr, &post("/v1/chat/completions", &[], &slow)));
    // Read, admitted and connecting well within this.
    std::thread::sleep(Duration::from_millis(1000));
    let r = request(g.addr, &post("/v1/chat/completions", &[], &quick));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!first.is_finished(), "the first is still connecting");
    let first = first.join().unwrap();
    assert_eq!(first.status, 504, "{}", first.text());
    assert_eq!(
        mock_requests(&m).len(),
        1,
        "only the second reached a provider"
    );
}

#[test]
fn a_small_request_sent_during_a_large_translation_on_the_same_worker_is_answered_first() {
    let m = mock(&[]);
    let g = gateway_with_budget(&m, 128 << 20);
    // 600k messages (about 18 MB) whose last one the translator refuses: the whole body is
    // translated before the refusal, and nothing else (no provider) delays its answer.
    let mut big = chat_body("claude", 600_000, "x");
    let tail = r#"{"content":"x","role":"user"}]"#;
    assert!(
        big.ends_with(&format!("{tail},\"model\":\"claude\"}}")),
        "{}",
        &big[big.len() - 80..]
    );
    big = big.replace(tail, r#"{"content":"x","role":"nobody"}]"#);
    let addr = g.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    let big_tx = tx.clone();
    let big_one = std::thread::spawn(move || {
        // Its translation takes seconds in a debug build, more on a 2-core machine whose
        // other stages run beside the tests: waited for longer than an answer usually is.
        let mut c = Client::connect(addr);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        c.send_raw(&post("/v1/chat/completions", &[], &big));
        let r = c.read_response().expect("no response");
        big_tx.send("big").unwrap();
        r
    });
    // Well inside the big body's translation (seconds in a debug build): the order of the
    // answers is what is asserted, not a time.
    std::thread::sleep(Duration::from_millis(700));
    let small_one = std::thread::spawn(move || {
        let r = chat_openai(addr, "gpt", "hi", false);
        tx.send("small").unwrap();
        r
    });
    let first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    let small = small_one.join().unwrap();
    let big = big_one.join().unwrap();
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(big.status, 400, "{}", big.text());
    assert!(big.text().contains("unknown role"), "{}", big.text());
    assert_eq!(
        (first, second),
        ("small", "big"),
        "the small request waited for the large translation"
    );
}

#[test]
fn a_responses_stream_whose_held_answer_outgrows_the_budget_ends_with_the_error_event() {
    let m = mock(&[]);
    // 2 MiB: a 1 MB answer held for the final event (charged sixteen times over) cannot fit.
    let g = gateway_with_budget(&m, 2 << 20);
    let body = serde_json::json!({
        "model": "gpt", "stream": true, "input": "mock:big=1000000",
    })
    .to_string();
    let r = request(g.addr, &post("/v1/responses", &[], &body));
    assert_eq!(r.status, 200, "{}", r.text());
    let events = sse_events(&r.body);
    let (last_event, last_data) = events.last().unwrap().clone();
    assert_eq!(
        last_event.as_deref(),
        Some("response.failed"),
        "{last_data}"
    );
    let v: serde_json::Value = serde_json::from_str(&last_data).unwrap();
    let message = v["response"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_buffered_bytes"), "{message}");
    assert!(
        !events
            .iter()
            .any(|(e, _)| e.as_deref() == Some("response.completed")),
        "no completed event after the failure"
    );
    // Deltas went out before the end: the client saw the stream start properly.
    assert!(events
        .iter()
        .any(|(e, _)| e.as_deref() == Some("response.output_text.delta")));
    // The budget is given back when the stream ends: a short answer streams to its end.
    let small = serde_json::json!({"model": "gpt", "stream": true, "input": "hi"}).to_string();
    let r = request(g.addr, &post("/v1/responses", &[], &small));
    let events = sse_events(&r.body);
    assert_eq!(
        events.last().unwrap().0.as_deref(),
        Some("response.completed"),
        "{}",
        r.text()
    );
}
