//! Time to first token on loopback: from the request written to the first SSE event read,
//! directly to the mock provider vs through ringway (same format and translated), measured
//! side by side in one run. Starts the real binaries; the mock answers with no artificial delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

struct Proc(Child, SocketAddr);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], marker: &str) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Owned by `Proc` from here on, so it is killed and reaped on every path.
    let mut proc = Proc(child, SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut lines = BufReader::new(proc.0.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("process exited").unwrap();
        if let Some(i) = line.find(marker) {
            let rest = line[i + marker.len()..]
                .trim()
                .trim_start_matches("http://");
            proc.1 = rest.split_whitespace().next().unwrap().parse().unwrap();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return proc;
        }
    }
}

/// One keep-alive connection that sends a streaming request and times the first event.
struct Conn {
    s: TcpStream,
    req: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr, path: &str, body: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        Conn {
            s,
            req,
            buf: Vec::with_capacity(16384),
        }
    }

    /// Send, return the time to the first `data:` line, then read the rest of the response.
    fn ttft(&mut self) -> Duration {
        self.buf.clear();
        let start = Instant::now();
        self.s.write_all(&self.req).unwrap();
        let mut tmp = [0u8; 16384];
        let mut first = None;
        loop {
            let n = self.s.read(&mut tmp).unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&tmp[..n]);
            if first.is_none() && memchr::memmem::find(&self.buf, b"data:").is_some() {
                first = Some(start.elapsed());
            }
            if self.buf.ends_with(b"0\r\n\r\n") {
                return first.expect("no event");
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mock = spawn(
        &["mock-upstream", "--listen", "127.0.0.1:0"],
        "listening on",
    );
    let cfg = std::env::temp_dir().join(format!("ringway-ttft-{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        format!(
            "[server]\nworkers = 1\n[[provider]]\nname = \"mo\"\nkind = \"openai\"\nbase_url = \"http://{0}/v1\"\n\
             [[provider]]\nname = \"ma\"\nkind = \"anthropic\"\nbase_url = \"http://{0}\"\n\
             [[route]]\nmodel = \"gpt\"\ntargets = [\"mo/mock-gpt\"]\n[[route]]\nmodel = \"claude\"\ntargets = [\"ma/mock-claude\"]\n",
            mock.1
        ),
    )
    .unwrap();
    let gw = spawn(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        "listening on",
    );
    let body = |model: &str| {
        format!(
            r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"mock:tokens=4"}}]}}"#
        )
    };
    let mut g = c.benchmark_group("ttft");
    g.measurement_time(Duration::from_secs(5));
    for (name, addr, path, model) in [
        ("direct_openai", mock.1, "/v1/chat/completions", "mock-gpt"),
        ("gateway_openai", gw.1, "/v1/chat/completions", "gpt"),
        (
            "gateway_translated_openai_to_anthropic",
            gw.1,
            "/v1/chat/completions",
            "claude",
        ),
    ] {
        let mut conn = Conn::new(addr, path, &body(model));
        conn.ttft();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| conn.ttft()).sum());
        });
    }
    g.finish();
    let _ = std::fs::remove_file(cfg);
}

criterion_group!(benches, bench);
criterion_main!(benches);
