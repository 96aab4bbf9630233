//! Reload under load: the real loadtest drives the real gateway at a fixed rate (plain and
//! translated streams) while the config flips between two versions ten times through the admin
//! endpoint (a route added, the provider's base URL changed, a key removed). No request may
//! fail, each new config must be visible as soon as the reload answers, and a bad file must
//! change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const LOAD_KEY: &str = "rw-load-key";
const ADMIN_KEY: &str = "rw-admin-key";
const TEMP_KEY: &str = "rw-temp-key";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `cmd` and return it with the address its log announces after `marker`.
fn spawn(mut cmd: Command, marker: &str) -> (Killed, SocketAddr) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("exited before listening").unwrap();
        if let Some(i) = line.find(marker) {
            let rest = line[i + marker.len()..]
                .trim()
                .trim_start_matches("http://");
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), addr)
}

/// One request on its own connection: (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, key: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {key}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

fn config(mock: SocketAddr, flipped: bool) -> String {
    let host = if flipped { "localhost" } else { "127.0.0.1" };
    let mut text = format!(
        "[server]\nworkers = 2\n\n[[provider]]\nname = \"mo\"\nkind = \"openai\"\nbase_url = \"http://{host}:{}/v1\"\n\n[[route]]\nmodel = \"gpt\"\ntargets = [\"mo/up-gpt\"]\n\n[[key]]\nname = \"load\"\nkey_env = \"RW_LOAD\"\n\n[[key]]\nname = \"ops\"\nkey_env = \"RW_ADMIN\"\nadmin = true\n",
        mock.port()
    );
    if flipped {
        text.push_str("\n[[route]]\nmodel = \"added\"\ntargets = [\"mo/up-added\"]\n");
    } else {
        text.push_str("\n[[key]]\nname = \"temp\"\nkey_env = \"RW_TEMP\"\n");
    }
    text
}

fn loadtest(url: &str, json: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg(url)
        .args([
            "--duration",
            "6",
            "--warmup",
            "0",
            "--phases",
            "1",
            "--quiet",
        ])
        .args(["--model", "gpt", "--header"])
        .arg(format!("authorization: Bearer {LOAD_KEY}"))
        .args(extra)
        .arg("--json")
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let ringway = common::ringway_bin();
    let dir = std::env::temp_dir().join(format!("reload-under-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(&ringway);
    cmd.args(["mock-upstream", "--listen", "127.0.0.1:0", "--itl-ms", "5"]);
    let (_mock, mock) = spawn(cmd, "mock provider listening on");
    let path = dir.join("ringway.toml");
    std::fs::write(&path, config(mock, false)).unwrap();
    let mut cmd = Command::new(&ringway);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("RW_LOAD", LOAD_KEY)
        .env("RW_ADMIN", ADMIN_KEY)
        .env("RW_TEMP", TEMP_KEY);
    let (_gateway, gw) = spawn(cmd, "listening on");
    let url = format!("http://{gw}");

    let plain_json = dir.join("plain.json");
    let stream_json = dir.join("stream.json");
    let plain = loadtest(&url, &plain_json, &["--rate", "150"]);
    // Streams translated (Anthropic client, OpenAI-kind provider), in flight across reloads.
    let streams = loadtest(
        &url,
        &stream_json,
        &["--rate", "50", "--stream", "--format", "anthropic"],
    );

    std::thread::sleep(Duration::from_millis(500));
    for flip in 1..=10u64 {
        let flipped = flip % 2 == 1;
        std::fs::write(&path, config(mock, flipped)).unwrap();
        let (status, body) = call(gw, "POST", "/admin/reload", ADMIN_KEY);
        assert_eq!(status, 200, "reload {flip}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["generation"], flip + 1, "{body}");
        // Visible at once, on whichever worker answers.
        for _ in 0..4 {
            let (_, models) = call(gw, "GET", "/v1/models", ADMIN_KEY);
            assert_eq!(
                models.contains("\"added\""),
                flipped,
                "reload {flip}: {models}"
            );
            let (temp, _) = call(gw, "GET", "/v1/models", TEMP_KEY);
            assert_eq!(temp, if flipped { 401 } else { 200 }, "reload {flip}");
        }
        std::thread::sleep(Duration::from_millis(350));
    }
    // A bad file: refused with its line, and nothing changes.
    std::fs::write(&path, "[server]\nworkers = 0\n").unwrap();
    let (status, body) = call(gw, "POST", "/admin/reload", ADMIN_KEY);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(":2: server.workers"), "{body}");
    let (_, models) = call(gw, "GET", "/v1/models", ADMIN_KEY);
    assert!(!models.contains("\"added\""), "{models}");
    let (temp, _) = call(gw, "GET", "/v1/models", TEMP_KEY);
    assert_eq!(temp, 200, "the last good config still serves");

    for (child, json, least) in [(plain, &plain_json, 600), (streams, &stream_json, 200)] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        let t = &doc["targets"]["target"];
        assert_eq!(t["errors"], 0, "{}", t["errors_by_kind"]);
        assert!(t["ok"].as_u64().unwrap() >= least, "{t}");
        // For the record (visible with --nocapture): how much traffic crossed the reloads.
        eprintln!("{}: {} ok, 0 errors", json.display(), t["ok"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
