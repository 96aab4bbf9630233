//! Hardening through the real binary: refused tool-call arguments, config values that reach
//! headers, config error key paths, README config blocks, strict upstream framing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

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

/// Run `ringway check --config` on `toml`; (success, stdout, stderr, the file's path).
fn check(toml: &str) -> (bool, String, String, String) {
    let path = write_config(toml);
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

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
        let (ok, out, err, file) = check(&toml);
        assert!(!ok, "accepted:\n{toml}\n{out}");
        assert!(
            err.contains(&format!("{file}{line_and_path}")) && err.contains(reason),
            "{toml}\n{err}"
        );
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

// ---------- D: README's config blocks ----------

/// README's ```toml blocks: (first line number, info string after `toml`, text).
fn readme_toml_blocks() -> Vec<(usize, String, String)> {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (n, line) in readme.lines().enumerate() {
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
    assert!(open.is_none(), "README.md: unclosed ```toml block");
    blocks
}

/// Every ```toml block in README.md passes `ringway check` as copied; a block marked
/// ```toml partial (a fragment meant to be merged into a full file) must at least parse.
#[test]
fn every_readme_config_block_passes_check() {
    let blocks = readme_toml_blocks();
    let mut checked = 0;
    for (line, info, text) in &blocks {
        match info.as_str() {
            "" => {
                let (ok, out, err, _) = check(text);
                assert!(
                    ok,
                    "README.md:{line}: ringway check refused this block:\n{err}{out}\n{text}"
                );
                checked += 1;
            }
            "partial" => {
                if let Err(e) = text.parse::<toml::Table>() {
                    panic!("README.md:{line}: partial block is not TOML: {e}\n{text}");
                }
            }
            other => panic!("README.md:{line}: unknown toml block marker {other:?}"),
        }
    }
    assert!(
        checked >= 2,
        "expected the full config examples, found {blocks:?}"
    );
}

// ---------- E: upstream framing read as strictly as a client's ----------

/// A fake provider on raw TCP: answers each of the next `n` connections' first request
/// with `response`, then closes.
fn raw_upstream(response: &'static [u8], n: usize) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            // Read the head and its Content-Length body before answering.
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            loop {
                let got = s.read(&mut tmp).unwrap_or(0);
                if got == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..got]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
            let _ = s.write_all(response);
        }
    });
    addr
}

#[test]
fn upstream_content_length_with_a_sign_is_a_502_in_the_client_format() {
    let upstream = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: +5\r\n\r\n{}   ",
        2,
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
