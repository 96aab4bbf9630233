//! Test harness: start the real `ringway` binary (gateway and mock provider) on 127.0.0.1:0,
//! find their ports from the log, and talk raw HTTP/1.1 to them over std sockets.
//! `RINGWAY_TEST_DRIVER=epoll|io_uring` picks the driver for every process started here.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod postgres;
pub mod redis;
pub mod shared;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read timeout for test clients: generous, a failing test should fail, not hang.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringway")
}

/// The driver under test (`auto` when unset).
pub fn driver() -> String {
    std::env::var("RINGWAY_TEST_DRIVER").unwrap_or_else(|_| "auto".into())
}

/// A running child process that is killed on drop.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: mpsc::Receiver<String>,
    /// The log line that announced the address.
    pub banner: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Log lines so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

/// Spawn `cmd` and wait for a stderr line containing `marker` followed by `http(s)://ADDR`.
pub fn spawn_and_wait(mut cmd: Command, marker: &str) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ringway");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var("RINGWAY_TEST_ECHO").is_ok() {
                eprintln!("[child] {line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(i) = line.find(marker) {
                    let rest = &line[i + marker.len()..];
                    let rest = rest.trim_start();
                    let rest = rest
                        .strip_prefix("http://")
                        .or_else(|| rest.strip_prefix("https://"))
                        .unwrap_or(rest);
                    let addr_text: String =
                        rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let addr = addr_text
                        .parse()
                        .unwrap_or_else(|_| panic!("bad addr in {line:?}"));
                    return Proc {
                        child,
                        addr,
                        log: rx,
                        banner: line.clone(),
                    };
                }
                seen.push(line);
            }
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "process did not start (exit {status:?}); log:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
}

/// Start the mock provider with extra flags.
pub fn mock(extra: &[&str]) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args([
        "mock-upstream",
        "--listen",
        "127.0.0.1:0",
        "--driver",
        &driver(),
    ]);
    cmd.args(extra);
    spawn_and_wait(cmd, "mock provider listening on")
}

static CONFIG_SEQ: AtomicUsize = AtomicUsize::new(0);

/// This test process's own temp directory, made empty on first use. The process id alone does
/// not make it unique: in a container, a run's test binary gets the same pid as the last run's,
/// and a database file left by that run would be opened again (records counted twice).
fn temp_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("ringway-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A unique temp file path for this test process.
pub fn temp_path(name: &str) -> PathBuf {
    let n = CONFIG_SEQ.fetch_add(1, Ordering::Relaxed);
    temp_dir().join(format!("{n}-{name}"))
}

/// A test CA and a `localhost` certificate it signed (rcgen), as PEM text.
pub struct TestCerts {
    pub ca: String,
    pub leaf: String,
    /// The leaf's private key.
    pub key: String,
}

pub fn test_certs() -> TestCerts {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    TestCerts {
        ca: ca.pem(),
        leaf: leaf.pem(),
        key: leaf_key.serialize_pem(),
    }
}

/// Write `toml` to a temp file and return its path.
pub fn write_config(toml: &str) -> PathBuf {
    let p = temp_path("config.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

/// Start the gateway with `toml` (a `[server]` table is prepended unless the text has one;
/// listen and driver are always forced).
pub fn gateway(toml: &str) -> Proc {
    gateway_env(toml, &[])
}

pub fn gateway_env(toml: &str, env: &[(&str, &str)]) -> Proc {
    let text = if toml.contains("[server]") {
        toml.to_owned()
    } else {
        format!("[server]\nworkers = 2\n\n{toml}")
    };
    let path = write_config(&text);
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config"]).arg(&path);
    cmd.args(["--listen", "127.0.0.1:0", "--driver", &driver()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_and_wait(cmd, "listening on")
}

/// Providers `mo` (openai kind) and `ma` (anthropic kind) on `mock`, routes `gpt` and `claude`.
pub fn standard_providers(mock: &Proc) -> String {
    format!(
        r#"
[[provider]]
name = "mo"
kind = "openai"
base_url = "http://{0}/v1"
api_key_env = "RW_TEST_OPENAI_KEY"

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{0}"
api_key_env = "RW_TEST_ANTHROPIC_KEY"

[[route]]
model = "gpt"
targets = ["mo/mock-gpt-up"]

[[route]]
model = "claude"
targets = ["ma/mock-claude-up"]
"#,
        mock.addr
    )
}

/// Config after [`standard_providers`]: a provider `dead` on a closed port and a route `fb`
/// whose first target is on it and second on the mock, so that it falls back.
pub const DEAD_FIRST_ROUTE: &str = r#"[[provider]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
api_key_env = "RW_TEST_OPENAI_KEY"

[[route]]
model = "fb"
targets = ["dead/never-up", "mo/mock-gpt-up"]
"#;

pub const PROVIDER_KEYS: &[(&str, &str)] = &[
    ("RW_TEST_OPENAI_KEY", "sk-provider-openai"),
    ("RW_TEST_ANTHROPIC_KEY", "sk-provider-anthropic"),
];

/// Mock + gateway with the standard providers and `extra` config.
pub fn setup(extra: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_env(
        &format!("{extra}\n{}", standard_providers(&m)),
        PROVIDER_KEYS,
    );
    (m, g)
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads responses incrementally (keep-alive, pipelining, streams),
/// over TCP or any other byte stream (a TLS client stream in tests/tls.rs).
pub struct Client<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Client {
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }
}

impl<S: Read + Write> Client<S> {
    /// Wrap a connected stream of any kind.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Read more bytes; false on EOF.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        // A signal to the test process (a child server started or stopped by the test) can
        // interrupt the read before anything arrived: read again.
        let read = loop {
            match self.stream.read(&mut tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            // A TLS peer that closes without close_notify reads as UnexpectedEof.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                false
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// True once the peer closed the connection (reads EOF, after any buffered bytes).
    pub fn is_closed(&mut self) -> bool {
        !self.fill()
    }

    /// Read one response head; returns (status, headers).
    pub fn read_head(&mut self) -> Option<(u16, Vec<(String, String)>)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap();
                    let hs = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    self.buf.drain(..n);
                    if status == 100 {
                        continue;
                    }
                    return Some((status, hs));
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill() {
                        return None;
                    }
                }
                Err(e) => panic!(
                    "bad response head: {e}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Read one whole response.
    pub fn read_response(&mut self) -> Option<Response> {
        let (status, headers) = self.read_head()?;
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk() {
                body.extend_from_slice(&chunk);
            }
            body
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill(), "EOF inside a content-length body");
            }
            self.buf.drain(..len).collect()
        } else {
            while self.fill() {}
            std::mem::take(&mut self.buf)
        };
        Some(Response {
            status,
            headers,
            body,
            chunked,
        })
    }

    /// Read one chunk of a chunked body; None at the last chunk.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size_line = String::from_utf8_lossy(&self.buf[..i]).to_string();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
                if size == 0 {
                    while !self.buf.starts_with(b"0\r\n\r\n") {
                        assert!(self.fill(), "EOF in last chunk");
                    }
                    self.buf.drain(..5);
                    return None;
                }
                while self.buf.len() < i + 2 + size + 2 {
                    assert!(self.fill(), "EOF inside a chunk");
                }
                let data = self.buf[i + 2..i + 2 + size].to_vec();
                assert_eq!(&self.buf[i + 2 + size..i + 4 + size], b"\r\n");
                self.buf.drain(..i + 4 + size);
                return Some(data);
            }
            assert!(self.fill(), "EOF before the last chunk");
        }
    }
}

/// Build a POST request.
pub fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

pub fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nhost: test\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send_raw(raw);
    c.read_response().expect("no response")
}

/// POST an OpenAI chat request with no extra headers on a fresh connection.
pub fn chat_openai(addr: SocketAddr, model: &str, prompt: &str, stream: bool) -> Response {
    request(
        addr,
        &post(
            "/v1/chat/completions",
            &[],
            &openai_body(model, prompt, stream),
        ),
    )
}

/// POST an Anthropic messages request with no extra headers on a fresh connection.
pub fn chat_anthropic(addr: SocketAddr, model: &str, prompt: &str, stream: bool) -> Response {
    request(
        addr,
        &post("/v1/messages", &[], &anthropic_body(model, prompt, stream)),
    )
}

pub fn openai_body(model: &str, prompt: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string()
}

pub fn anthropic_body(model: &str, prompt: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    })
    .to_string()
}

/// What the mock recorded (`GET /mock/requests`).
pub fn mock_requests(mock: &Proc) -> Vec<serde_json::Value> {
    let r = request(mock.addr, &get("/mock/requests", &[]));
    assert_eq!(r.status, 200);
    r.json().as_array().unwrap().clone()
}

/// Split an SSE body into (event, data) pairs.
pub fn sse_events(body: &[u8]) -> Vec<(Option<String>, String)> {
    // Events end with a blank line in any of SSE's line endings (Google's are CRLF).
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.trim_start().to_owned());
            }
        }
        if event.is_some() || !data.is_empty() {
            out.push((event, data.join("\n")));
        }
    }
    out
}

/// A raw upstream for framings and faults the mock does not produce: answers each of its first
/// 8 connections' first request with `response`, then closes. Returns its address.
pub fn raw_upstream(response: impl Into<Vec<u8>>) -> SocketAddr {
    let response: Vec<u8> = response.into();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            read_one_request(&mut s);
            let _ = s.write_all(&response);
        }
    });
    addr
}

/// Read one request (head and Content-Length body) off `s`; false if it closed first.
pub fn read_one_request(s: &mut TcpStream) -> bool {
    read_request(s).is_some()
}

/// One request off `s`, head and Content-Length body, as its bytes (and any that followed in
/// the same reads); None if it closed first.
pub fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    read_request_paced(s, None)
}

/// [`read_request`] that, with `pace` = (n, pause), sleeps `pause` after every n reads of 8 KB:
/// a provider slow to take a body.
pub fn read_request_paced(
    s: &mut TcpStream,
    pace: Option<(usize, std::time::Duration)>,
) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; if pace.is_some() { 8192 } else { 16384 }];
    let mut reads = 0;
    loop {
        let n = Read::read(s, &mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        reads += 1;
        if let Some((every, pause)) = pace {
            if reads % every == 0 {
                std::thread::sleep(pause);
            }
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= i + 4 + len {
                return Some(buf);
            }
        }
    }
}

/// The body of a request [`read_request`] read.
pub fn request_body(raw: &[u8]) -> &[u8] {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    &raw[at..]
}

/// Send `sig` (a name such as `TERM`) to the process with kill(1).
pub fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &p.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Wait for the process to exit; its status, or None if it is still running at `within`.
pub fn exit_within(p: &mut Proc, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = p.child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Set the mock's fault table.
pub fn set_faults(mock: &Proc, table: &serde_json::Value) {
    let r = request(mock.addr, &post("/mock/faults", &[], &table.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Clear the mock's request log.
pub fn clear_records(mock: &Proc) {
    let raw = b"DELETE /mock/requests HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(request(mock.addr, raw).status, 200);
}

/// Run `ringway check --config` on `toml`; (success, stdout, stderr, the file's path).
pub fn check(toml: &str) -> (bool, String, String, String) {
    check_env(toml, &[])
}

/// [`check`] with these environment variables set.
pub fn check_env(toml: &str, env: &[(&str, &str)]) -> (bool, String, String, String) {
    let path = write_config(toml);
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

/// `ringway check` refuses `toml`, naming the file then `line_and_path`, and saying `reason`.
pub fn check_refuses(toml: &str, line_and_path: &str, reason: &str) {
    let (ok, out, err, file) = check(toml);
    assert!(!ok, "accepted:\n{toml}\n{out}");
    assert!(
        err.contains(&format!("{file}{line_and_path}")) && err.contains(reason),
        "{toml}\n{err}"
    );
}

/// Run `promtool check metrics` on `text`; fails (never skips) when promtool is missing.
pub fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}): install it with `apt-get install -y prometheus` \
             (Debian/Ubuntu; .ci/run does this), or put a promtool binary on PATH"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lines of the access log file at `path`, once it has at least `n` (within 15 s): the
/// log is written by a helper thread, so a test waits for it rather than racing it.
pub fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
