//! Responses over a WebSocket through the real binary: the upgrade (its key checked, 426 when
//! off), warm-ups, continuations from the connection's memory with `store: false`, several
//! responses on one connection, bad messages answered with an `error` event, ping/pong, close.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-ws-key";

fn gateway_ws(m: &Proc, extra: &str) -> Proc {
    gateway_env(
        &format!(
            "{extra}\n[[key]]\nname = \"a\"\nkey_env = \"RW_WS_KEY\"\n{}",
            standard_providers(m)
        ),
        &[
            ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
            ("RW_TEST_ANTHROPIC_KEY", "sk-provider-anthropic"),
            ("RW_WS_KEY", KEY),
        ],
    )
}

struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
}

/// Open the WebSocket; Err(status line and body) when the upgrade is refused.
fn connect(g: &Proc, key: &str) -> Result<Ws, (u16, String)> {
    let mut s = TcpStream::connect(g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "GET /v1/responses HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {key}\r\nopenai-beta: responses_websockets=2026-02-06\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let rest = buf[end + 4..].to_vec();
    if status != 101 {
        let mut body = rest;
        let _ = s.read_to_end(&mut body);
        return Err((status, String::from_utf8_lossy(&body).to_string()));
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    Ok(Ws { s, buf: rest })
}

impl Ws {
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_fragment(true, opcode, payload);
    }

    fn send_fragment(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let mask = [1u8, 2, 3, 4];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).unwrap();
    }

    fn send(&mut self, v: &Value) {
        self.send_frame(1, v.to_string().as_bytes());
    }

    /// The next frame: (opcode, payload); None when the connection closed.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let op = self.buf[0] & 0x0f;
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                assert_eq!(self.buf[1] & 0x80, 0, "a server frame is never masked");
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((op, payload));
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Events up to and including a terminal one (`response.completed`, `.failed`,
    /// `.incomplete`, `error`).
    fn events(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let (op, payload) = self.frame().expect("connection closed mid-response");
            assert_eq!(op, 1, "{}", String::from_utf8_lossy(&payload));
            let v: Value = serde_json::from_slice(&payload).unwrap();
            let t = v["type"].as_str().unwrap().to_owned();
            out.push(v);
            if matches!(
                t.as_str(),
                "response.completed" | "response.failed" | "response.incomplete" | "error"
            ) {
                return out;
            }
        }
    }
}

fn completed(events: &[Value]) -> &Value {
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{events:?}");
    &last["response"]
}

fn last_upstream(m: &Proc) -> Value {
    let all = mock_requests(m);
    let body = &all.last().unwrap()["body"];
    match body.as_str() {
        Some(s) => serde_json::from_str(s).unwrap(),
        None => body.clone(),
    }
}

#[test]
fn codex_style_session_warm_up_turns_and_continuations_on_one_connection() {
    let m = mock(&[]);
    let g = gateway_ws(&m, "");
    for model in ["gpt", "claude"] {
        let mut ws = connect(&g, KEY).unwrap();
        // A warm-up: answered without a provider, its input remembered.
        ws.send(
            &json!({"type": "response.create", "model": model, "stream": true,
            "store": false, "generate": false,
            "input": [{"type": "message", "role": "developer",
                       "content": [{"type": "input_text", "text": "base-instructions-otter"}]}]}),
        );
        let ev = ws.events();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0]["type"], "response.created");
        let warm = completed(&ev)["id"].as_str().unwrap().to_owned();
        let before = mock_requests(&m).len();
        // The turn continues the warm-up with store: false: the provider gets both.
        ws.send(&json!({"type": "response.create", "model": model, "stream": true,
            "store": false, "previous_response_id": warm,
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "first-ask-heron mock:tokens=3"}]}]}));
        let ev = ws.events();
        let first = completed(&ev).clone();
        assert!(
            ev.iter().any(|e| e["type"] == "response.output_text.delta"),
            "{ev:?}"
        );
        assert_eq!(
            mock_requests(&m).len(),
            before + 1,
            "the warm-up called no provider"
        );
        let sent = last_upstream(&m).to_string();
        assert!(sent.contains("base-instructions-otter"), "{sent}");
        assert!(sent.contains("first-ask-heron"), "{sent}");
        // Then another continuation: the whole chain, the answer included.
        ws.send(
            &json!({"type": "response.create", "model": model, "stream": true,
            "store": false, "previous_response_id": first["id"],
            "input": [{"role": "user", "content": "second-ask-ibis"}]}),
        );
        let ev = ws.events();
        let sent = last_upstream(&m).to_string();
        let said = first["output"][0]["content"][0]["text"].as_str().unwrap();
        for word in [
            "base-instructions-otter",
            "first-ask-heron",
            said,
            "second-ask-ibis",
        ] {
            assert!(sent.contains(word), "{model} {word}: {sent}");
        }
        // Remote compaction over the socket, continuing the chain: exactly one compaction item.
        let second = completed(&ev).clone();
        ws.send(
            &json!({"type": "response.create", "model": model, "store": false,
            "previous_response_id": second["id"], "input": [{"type": "compaction_trigger"}]}),
        );
        let ev = ws.events();
        let out = completed(&ev)["output"].as_array().unwrap().clone();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["type"], "compaction", "{out:?}");
        // An id this connection does not hold (and no store has): the API's error event,
        // and the connection goes on.
        ws.send(
            &json!({"type": "response.create", "model": model, "store": false,
            "previous_response_id": "resp_elsewhere", "input": "x"}),
        );
        let ev = ws.events();
        let e = ev.last().unwrap();
        assert_eq!(e["type"], "error", "{ev:?}");
        assert_eq!(e["status"], 400);
        assert_eq!(e["error"]["code"], "previous_response_not_found");
        // Bad messages: an error event each, the connection open.
        for bad in [
            b"not json".to_vec(),
            br#"{"type":"response.cancel"}"#.to_vec(),
            br#"{"type":"response.create","model":"gpt","input":7}"#.to_vec(),
        ] {
            ws.send_frame(1, &bad);
            let ev = ws.events();
            assert_eq!(ev.last().unwrap()["type"], "error", "{ev:?}");
        }
        // A message in fragments, a ping between them.
        let text = json!({"type": "response.create", "model": model,
            "input": "fragmented mock:tokens=1"})
        .to_string();
        let (a, b) = text.as_bytes().split_at(10);
        ws.send_fragment(false, 1, a);
        ws.send_frame(9, b"mid");
        ws.send_fragment(true, 0, b);
        assert_eq!(ws.frame(), Some((10, b"mid".to_vec())));
        completed(&ws.events());
        // Ping → pong; then a fresh turn still works; close → close.
        ws.send_frame(9, b"hi");
        assert_eq!(ws.frame(), Some((10, b"hi".to_vec())));
        ws.send(&json!({"type": "response.create", "model": model,
            "input": "fresh mock:tokens=1"}));
        completed(&ws.events());
        ws.send_frame(8, &1000u16.to_be_bytes());
        let (op, payload) = ws.frame().unwrap();
        assert_eq!(op, 8);
        assert_eq!(&payload[..2], &1000u16.to_be_bytes());
    }
}

#[test]
fn the_upgrade_is_refused_like_a_post_and_426_when_off() {
    let m = mock(&[]);
    let g = gateway_ws(&m, "");
    let Err((status, body)) = connect(&g, "sk-wrong") else {
        panic!("upgraded with a wrong key")
    };
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_api_key"), "{body}");
    let off = gateway_ws(&m, "[server]\nworkers = 1\nresponses_websocket = false\n");
    let Err((status, _)) = connect(&off, KEY) else {
        panic!("upgraded while off")
    };
    assert_eq!(status, 426);
    // A message over `server.max_body_bytes`: closed with 1009.
    let small = gateway_ws(&m, "[server]\nworkers = 1\nmax_body_bytes = 2048\n");
    let mut ws = connect(&small, KEY).unwrap();
    ws.send(&json!({"type": "response.create", "model": "gpt", "input": "x".repeat(4096)}));
    let (op, payload) = ws.frame().unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1009u16.to_be_bytes());
    // A frame that breaks the RFC (unmasked): closed with 1002.
    let mut ws = connect(&g, KEY).unwrap();
    ws.s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let (op, payload) = ws.frame().unwrap();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
}
