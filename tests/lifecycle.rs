//! The process's lifecycle through the real binary: config reload (SIGHUP, `ringway reload`,
//! the admin endpoint), graceful drain (SIGTERM), and a zero-downtime restart on a shared port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const USER_KEY: &str = "rw-user-key-1";
const ADMIN_KEY: &str = "rw-admin-key-1";

/// Poll until `check` holds (bounded).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn models(addr: SocketAddr, key: &str) -> Response {
    request(
        addr,
        &get("/v1/models", &[("authorization", &format!("Bearer {key}"))]),
    )
}

fn model_ids(addr: SocketAddr) -> Vec<String> {
    let r = models(addr, ADMIN_KEY);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Do both workers serve config generation `n` (by the metric)?
fn on_generation(addr: SocketAddr, n: u64) -> bool {
    let text = request(addr, &get("/metrics", &[("x-api-key", ADMIN_KEY)])).text();
    (0..2).all(|w| {
        text.contains(&format!(
            "ringway_config_generation{{worker=\"{w}\"}} {n}\n"
        ))
    })
}

fn config(mock: &Proc, host: &str, routes: &[&str], user_key: bool, pid: &str) -> String {
    let mut text = format!(
        "[server]\nworkers = 2\npid_file = \"{pid}\"\n\n[[provider]]\nname = \"mo\"\nkind = \"openai\"\nbase_url = \"http://{host}:{}/v1\"\n\n[[key]]\nname = \"ops\"\nkey_env = \"RW_ADMIN\"\nadmin = true\n",
        mock.addr.port()
    );
    if user_key {
        text.push_str("\n[[key]]\nname = \"team\"\nkey_env = \"RW_USER\"\n");
    }
    for r in routes {
        text.push_str(&format!(
            "\n[[route]]\nmodel = \"{r}\"\ntargets = [\"mo/up-{r}\"]\n"
        ));
    }
    text
}

fn start(path: &std::path::Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config"]).arg(path);
    cmd.args(["--driver", &driver()]);
    cmd.args(extra);
    cmd.env("RW_ADMIN", ADMIN_KEY).env("RW_USER", USER_KEY);
    spawn_and_wait(cmd, "listening on")
}

fn chat_on(c: &mut Client, model: &str, key: &str, prompt: &str) -> Response {
    c.send_raw(&post(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {key}"))],
        &openai_body(model, prompt, false),
    ));
    c.read_response().expect("no response")
}

#[test]
fn a_reload_swaps_the_config_keeps_unchanged_pools_and_refuses_a_bad_file() {
    let m = mock(&[]);
    let pid = temp_path("ringway.pid");
    let pid_text = pid.display().to_string();
    let path = write_config(&config(&m, "127.0.0.1", &["a"], true, &pid_text));
    let mut g = start(&path, &["--listen", "127.0.0.1:0"]);
    eventually("the pid file", || pid.exists());
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        g.child.id().to_string()
    );

    // One kept-alive client connection: it stays on one worker, so on one upstream pool.
    let mut c = Client::connect(g.addr);
    let first = chat_on(&mut c, "a", USER_KEY, "hello");
    assert_eq!(first.status, 200, "{}", first.text());
    let conn1 = first.header("x-mock-conn").unwrap().to_owned();

    // A route added, through `ringway reload --config` (validates, then SIGHUP by pid file).
    std::fs::write(&path, config(&m, "127.0.0.1", &["a", "b"], true, &pid_text)).unwrap();
    let out = Command::new(bin())
        .args(["reload", "--config"])
        .arg(&path)
        .env("RW_ADMIN", ADMIN_KEY)
        .env("RW_USER", USER_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("generation 2 on every worker", || on_generation(g.addr, 2));
    assert!(model_ids(g.addr).contains(&"b".to_owned()));
    let again = chat_on(&mut c, "b", USER_KEY, "hello");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        again.header("x-mock-conn"),
        Some(conn1.as_str()),
        "the unchanged provider's pooled connection was kept"
    );

    // The provider's base URL changed (another host name): its old connections are not used.
    // The access log turned off too, which takes a restart: the reload says so.
    let access_log_off = "\n[access_log]\nenabled = false\n";
    let text = config(&m, "localhost", &["a", "b"], true, &pid_text) + access_log_off;
    std::fs::write(&path, text).unwrap();
    g.drain_log();
    signal(&g, "HUP");
    eventually("generation 3 on every worker", || on_generation(g.addr, 3));
    let mut warned = false;
    eventually("the restart warning in the log", || {
        warned |= g
            .drain_log()
            .iter()
            .any(|l| l.contains("reload: access_log changed in the file but take(s) a restart"));
        warned
    });
    let moved = chat_on(&mut c, "a", USER_KEY, "hello");
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_ne!(moved.header("x-mock-conn"), Some(conn1.as_str()));

    // A bad file: `ringway reload --config` refuses it without signalling, and a SIGHUP sent
    // anyway is refused by the gateway with the same FILE:LINE message; the old config serves.
    std::fs::write(&path, "[server]\nworkers = 0\n").unwrap();
    let out = Command::new(bin())
        .args(["reload", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains(&format!("{}:2: server.workers", path.display())),
        "{said}"
    );
    g.drain_log();
    let out = Command::new(bin())
        .args(["reload", "--pid-file", &pid_text])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut refused = None;
    eventually("the refusal in the log", || {
        refused = g
            .drain_log()
            .into_iter()
            .find(|l| l.contains("reload refused"));
        refused.is_some()
    });
    assert!(
        refused
            .unwrap()
            .contains(&format!("{}:2: server.workers", path.display())),
        "the log names the file and line"
    );
    assert_eq!(
        model_ids(g.addr),
        ["a", "b"],
        "the running config still serves"
    );

    // The admin endpoint: admin keys only; a bad file is a 400 naming it.
    let admin = |key: &str| {
        request(
            g.addr,
            &post(
                "/admin/reload",
                &[("authorization", &format!("Bearer {key}"))],
                "",
            ),
        )
    };
    assert_eq!(admin(USER_KEY).status, 403);
    let bad = admin(ADMIN_KEY);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("server.workers"), "{}", bad.text());
    // A key removed: it is refused right after the reload answers.
    std::fs::write(&path, config(&m, "127.0.0.1", &["a"], false, &pid_text)).unwrap();
    let ok = admin(ADMIN_KEY);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["generation"], 4);
    assert_eq!(models(g.addr, USER_KEY).status, 401);
    assert_eq!(model_ids(g.addr), ["a"]);

    // A reload asked for while draining is refused at once (the head is half sent before the
    // signal: new connections are refused by then).
    let mut late = Client::connect(g.addr);
    let auth = format!("authorization: Bearer {ADMIN_KEY}\r\n");
    late.send_raw(format!("POST /admin/reload HTTP/1.1\r\nhost: t\r\n{auth}").as_bytes());
    signal(&g, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    late.send_raw(b"content-length: 0\r\n\r\n");
    // Refused, not applied (200) nor held until the exit (no answer at all).
    let refused = late.read_response().unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    let status = exit_within(&mut g, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!pid.exists(), "the pid file is removed at a clean exit");
}

/// A stream that outlives any drain timeout used here (200 tokens, 100 ms apart).
const LONG: &str = "mock:tokens=200 mock:itl=100";

/// A gateway with one worker and the standard providers, draining for `drain_ms`.
fn one_worker(m: &Proc, drain_ms: u64) -> Proc {
    let text = format!(
        "[server]\nworkers = 1\ndrain_timeout_ms = {drain_ms}\n{}",
        standard_providers(m)
    );
    gateway_env(&text, PROVIDER_KEYS)
}

/// POST a streaming `body` to `path` and read the response to its end.
fn long_stream(addr: SocketAddr, path: &str, body: String) -> Response {
    let mut c = Client::connect(addr);
    c.send_raw(&post(path, &[], &body));
    c.read_response().expect("a response")
}

#[test]
fn a_drain_lets_every_stream_finish_refuses_new_connections_and_exits_zero() {
    let m = mock(&[]);
    let text = format!(
        "[server]\nworkers = 2\ndrain_timeout_ms = 20000\n{}",
        standard_providers(&m)
    );
    let mut g = gateway_env(&text, PROVIDER_KEYS);
    const STREAMS: usize = 200;
    let started = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..STREAMS {
        let addr = g.addr;
        let started = started.clone();
        threads.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let (path, body) = if i % 2 == 0 {
                (
                    "/v1/chat/completions",
                    openai_body("gpt", "mock:tokens=20 mock:itl=100", true),
                )
            } else {
                (
                    "/v1/messages",
                    anthropic_body("claude", "mock:tokens=20 mock:itl=100", true),
                )
            };
            c.send_raw(&post(path, &[], &body));
            let (status, headers) = c.read_head().expect("a head");
            started.fetch_add(1, Ordering::SeqCst);
            assert_eq!(status, 200);
            assert!(
                headers
                    .iter()
                    .any(|(k, v)| k == "connection" && v == "close")
                    || headers.iter().all(|(k, _)| k != "connection")
            );
            let mut body = Vec::new();
            while let Some(chunk) = c.read_chunk() {
                body.extend_from_slice(&chunk);
            }
            String::from_utf8(body).unwrap()
        }));
    }
    eventually("every stream started", || {
        started.load(Ordering::SeqCst) == STREAMS
    });
    // A connection that never sends anything does not hold the drain up.
    let _silent = TcpStream::connect(g.addr).unwrap();
    // A kept-alive connection, idle between requests.
    let mut idle = Client::connect(g.addr);
    idle.send_raw(&get("/healthz", &[]));
    assert_eq!(idle.read_response().unwrap().status, 200);
    // A request whose head is half sent when the drain starts is still answered: /readyz 503.
    let mut probe = Client::connect(g.addr);
    probe.send_raw(b"GET /readyz HTTP/1.1\r\nhost: t\r\n");
    let t0 = Instant::now();
    signal(&g, "TERM");
    // The idle connection is closed as the drain starts, not when the process exits: by
    // order, not by a clock, while the process runs and streams are still going.
    assert!(idle.is_closed());
    let closed_after = t0.elapsed();
    assert!(g.child.try_wait().unwrap().is_none(), "closed by the drain");
    assert!(
        threads.iter().any(|t| !t.is_finished()),
        "the idle connection closed only after every stream ended ({closed_after:?})"
    );
    std::thread::sleep(Duration::from_millis(200).saturating_sub(closed_after));
    probe.send_raw(b"\r\n");
    let ready = probe.read_response().unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(ready.text(), "draining\n");
    assert_eq!(ready.header("connection"), Some("close"));
    eventually("new connections refused", || {
        TcpStream::connect(g.addr).is_err()
    });
    let mut done = 0;
    for t in threads {
        let body = t.join().expect("a stream failed");
        assert!(
            body.contains("[DONE]") || body.contains("message_stop"),
            "a stream was cut: {body}"
        );
        assert!(!body.contains("error"), "{body}");
        done += 1;
    }
    assert_eq!(done, STREAMS);
    // Exits once drained, not at the 20 s drain timeout: the silent connection was closed.
    // The log says which.
    let status = exit_within(&mut g, Duration::from_secs(40)).expect("exits once drained");
    assert!(status.success(), "{status:?}");
    let log = g.drain_log();
    assert!(
        log.iter().any(|l| l.contains("drained; exiting")),
        "not drained before the timeout: {log:?}"
    );
}

#[test]
fn what_outlives_the_drain_timeout_gets_its_error_and_a_second_signal_exits_at_once() {
    let m = mock(&[]);
    let mut g = one_worker(&m, 600);
    let addr = g.addr;
    let stream = std::thread::spawn(move || {
        long_stream(addr, "/v1/messages", anthropic_body("claude", LONG, true))
    });
    let waiting = std::thread::spawn(move || {
        // Stalled before any byte: still in the attempt phase when the drain's time is up.
        chat_openai(addr, "gpt", "mock:stall", false)
    });
    std::thread::sleep(Duration::from_millis(400));
    let t0 = Instant::now();
    signal(&g, "TERM");
    let r = stream.join().unwrap();
    assert_eq!(r.status, 200);
    let body = r.text();
    let events = sse_events(body.as_bytes());
    let last = events.last().unwrap();
    assert_eq!(last.0.as_deref(), Some("error"), "{body}");
    assert!(last.1.contains("shutting down"), "{body}");
    let r = waiting.join().unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "gateway_shutting_down");
    let status = exit_within(&mut g, Duration::from_secs(5)).expect("exits after the timeout");
    assert!(status.success(), "{status:?}");
    assert!(t0.elapsed() >= Duration::from_millis(600));

    // A second signal: out at once, however long the drain would still take.
    let mut g = one_worker(&m, 60_000);
    let addr = g.addr;
    // Held open (read to its end): the drain has something to wait for.
    let _long = std::thread::spawn(move || {
        long_stream(addr, "/v1/chat/completions", openai_body("gpt", LONG, true))
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&g, "TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert!(g.child.try_wait().unwrap().is_none(), "still draining");
    signal(&g, "INT");
    let status = exit_within(&mut g, Duration::from_secs(3)).expect("out at once");
    assert!(
        !status.success(),
        "a cut drain does not claim success: {status:?}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The process a request id came from: `rw-[NODE-]<prefix>-<worker>-<n>`, the prefix drawn at
/// each start (found from the right: a node id may hold dashes).
fn process_of(request_id: &str) -> String {
    request_id.rsplit('-').nth(2).unwrap_or_default().to_owned()
}

#[test]
fn a_zero_downtime_restart_loses_no_request() {
    restart_under_load("", None);
}

/// The same with cluster mode on: a node id, and Redis named (the old and the new process
/// share it, as two nodes would). Every id of both processes carries the node id.
#[test]
fn a_zero_downtime_restart_in_cluster_mode_loses_no_request() {
    let redis = common::redis::Redis::start();
    let cluster = format!(
        "[cluster]\nnode_id = \"gw-restart-1\"\nredis = \"{}\"\n",
        redis.url()
    );
    restart_under_load(&cluster, Some("gw-restart-1"));
}

fn restart_under_load(extra: &str, node: Option<&'static str>) {
    let m = mock(&[]);
    let port = free_port();
    let pid = temp_path("restart.pid");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\nreuse_port = true\ndrain_timeout_ms = 10000\npid_file = \"{}\"\n{}\n{extra}",
        pid.display(),
        standard_providers(&m)
    );
    // Whether an id names the node it should (and only then).
    let id_ok = move |id: &str| match node {
        Some(n) => id.starts_with(&format!("rw-{n}-")),
        None => id.split('-').count() == 4,
    };
    let path = write_config(&text);
    let serve = |path: &std::path::Path| {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--config"]).arg(path);
        cmd.args(["--driver", &driver()]);
        for (k, v) in PROVIDER_KEYS {
            cmd.env(k, v);
        }
        spawn_and_wait(cmd, "listening on")
    };
    let mut old = serve(&path);
    let addr = old.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for t in 0..8 {
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            let mut served = std::collections::BTreeMap::<String, usize>::new();
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                // A new connection per request, as many clients do: each lands on whichever
                // process the kernel picks.
                let stream = n.is_multiple_of(3);
                let r = if t % 2 == 0 {
                    chat_openai(addr, "gpt", "mock:tokens=5 mock:itl=20", stream)
                } else {
                    chat_anthropic(addr, "claude", "mock:tokens=5 mock:itl=20", stream)
                };
                assert_eq!(r.status, 200, "{}", r.text());
                let text = r.text();
                if stream {
                    assert!(
                        text.contains("[DONE]") || text.contains("message_stop"),
                        "{text}"
                    );
                }
                let id = r.header("x-ringway-request-id").unwrap();
                assert!(id_ok(id), "{id}");
                *served.entry(process_of(id)).or_default() += 1;
                n += 1;
            }
            served
        }));
    }
    // Two clients that keep their connection alive, as the SDKs do: a connection the server
    // closed (idle, or after a response during the drain) is reopened, and a request that got
    // no byte back on a reused connection is sent again on a new one, as HTTP clients do.
    let retried = Arc::new(AtomicUsize::new(0));
    for t in 0..2 {
        let stop = stop.clone();
        let retried = retried.clone();
        clients.push(std::thread::spawn(move || {
            let mut served = std::collections::BTreeMap::<String, usize>::new();
            let mut conn: Option<Client> = None;
            while !stop.load(Ordering::SeqCst) {
                let raw = if t == 0 {
                    post(
                        "/v1/chat/completions",
                        &[],
                        &openai_body("gpt", "mock:tokens=3", false),
                    )
                } else {
                    post(
                        "/v1/messages",
                        &[],
                        &anthropic_body("claude", "mock:tokens=3", false),
                    )
                };
                let mut reply = None;
                for _attempt in 0..2 {
                    let reused = conn.is_some();
                    let c = conn.get_or_insert_with(|| Client::connect(addr));
                    let sent = c.stream.write_all(&raw).is_ok();
                    match sent.then(|| c.read_response()).flatten() {
                        Some(r) => {
                            reply = Some(r);
                            break;
                        }
                        None => {
                            assert!(reused, "a new connection got no answer");
                            retried.fetch_add(1, Ordering::SeqCst);
                            conn = None;
                        }
                    }
                }
                let r = reply.expect("no answer after a reconnect");
                assert_eq!(r.status, 200, "{}", r.text());
                if r.header("connection") == Some("close") {
                    conn = None;
                }
                let id = r.header("x-ringway-request-id").unwrap();
                assert!(id_ok(id), "{id}");
                *served.entry(process_of(id)).or_default() += 1;
            }
            served
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    let new = serve(&path);
    std::thread::sleep(Duration::from_millis(300));
    signal(&old, "TERM");
    let status = exit_within(&mut old, Duration::from_secs(15)).expect("the old one exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&pid).unwrap().trim(),
        new.child.id().to_string(),
        "the old process left the new one's pid file alone"
    );
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    let mut by_process = std::collections::BTreeMap::<String, usize>::new();
    let mut failed = 0;
    for c in clients {
        match c.join() {
            Ok(served) => {
                for (p, n) in served {
                    *by_process.entry(p).or_default() += n;
                }
            }
            Err(_) => failed += 1,
        }
    }
    if failed > 0 {
        // Both gateways' own lines (the access log's JSON left out): a panic, a worker's
        // warning or the drain's last words say more than the client's symptom.
        for (name, p) in [("old", &old), ("new", &new)] {
            for line in p.drain_log().iter().filter(|l| !l.starts_with('{')) {
                eprintln!("[{name} gateway] {line}");
            }
        }
        panic!("{failed} client(s) failed across the restart");
    }
    // For the record (visible with --nocapture).
    eprintln!(
        "restart: {by_process:?} requests served by each process, {} resent after a kept-alive \
         connection closed unanswered",
        retried.load(Ordering::SeqCst)
    );
    assert_eq!(by_process.len(), 2, "both processes served: {by_process:?}");
    assert!(by_process.values().all(|n| *n >= 10), "{by_process:?}");
    drop(new);
}
