//! Several nodes through the real binary: request ids and access log lines name the node
//! (`[cluster] node_id`) and keep their old shape without `[cluster]`; a node's id is a custody
//! key; `/readyz` and the cluster series of `/metrics` (checked by promtool); and the real
//! nginx, with `contrib/nginx-fleet.conf`, in front of two nodes: both serve, streams are not
//! buffered, and stopping one node loses no request.
//!
//! What `/readyz` says while a required store is down is tested in `src/cluster/report.rs`
//! by setting the store flags directly: the helper threads that set them run elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// How long a test waits for log lines or a process.
const WAIT: Duration = Duration::from_secs(15);

/// `rw-[NODE-]PPPPPPPPPPPPPPPP-WW-NNNNNNNNNN` → (node, prefix): the three hex parts are found
/// from the right, since a node id may hold dashes. Fails on any other shape.
fn split_id(id: &str) -> (Option<String>, String) {
    let rest = id.strip_prefix("rw-").unwrap_or_else(|| panic!("{id}"));
    let parts: Vec<&str> = rest.rsplitn(4, '-').collect();
    let (n, worker, prefix) = (parts[0], parts[1], parts[2]);
    for (part, len) in [(n, 10), (worker, 2), (prefix, 16)] {
        assert!(
            part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}: {part:?} is not {len} hex digits"
        );
    }
    (parts.get(3).map(|s| (*s).to_owned()), prefix.to_owned())
}

fn node_of(r: &Response) -> Option<String> {
    split_id(r.header("x-ringway-request-id").unwrap()).0
}

fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n || Instant::now() > deadline {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway on the standard providers, its access log in a file, with `extra` config.
fn node(m: &Proc, extra: &str) -> (Proc, PathBuf) {
    let log = temp_path("access.log");
    let cfg = format!(
        "[access_log]\npath = \"{}\"\n{extra}\n{}",
        log.display(),
        standard_providers(m)
    );
    (gateway_env(&cfg, PROVIDER_KEYS), log)
}

/// Requests of several kinds (each logs a line): chat, a stream, an unknown model, a head
/// that cannot be parsed, a probe.
fn traffic(g: &Proc) -> Vec<Response> {
    let rs = vec![
        chat_openai(g.addr, "gpt", "fleet one", false),
        chat_anthropic(g.addr, "claude", "fleet two", true),
        chat_openai(g.addr, "no-such-model", "fleet three", false),
        request(
            g.addr,
            b"GET /v1/models HTTP/1.1\r\nbad header line\r\n\r\n",
        ),
        request(g.addr, &get("/readyz", &[])),
    ];
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 400, 200]);
    rs
}

fn scrape(g: &Proc) -> String {
    let r = request(g.addr, &get("/metrics", &[]));
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn request_ids_and_access_log_lines_name_the_node() {
    let m = mock(&[]);
    let db = temp_path("custody.db");
    let (g, log) = node(
        &m,
        &format!(
            "[custody]\npath = \"{}\"\n\n[cluster]\nnode_id = \"gw-a.eu_1\"\n",
            db.display()
        ),
    );
    let rs = traffic(&g);
    let mut prefixes = std::collections::BTreeSet::new();
    for r in &rs {
        let id = r.header("x-ringway-request-id").unwrap();
        let (node, prefix) = split_id(id);
        assert_eq!(node.as_deref(), Some("gw-a.eu_1"), "{id}");
        assert!(id.starts_with("rw-gw-a.eu_1-"), "{id}");
        prefixes.insert(prefix);
    }
    assert_eq!(prefixes.len(), 1, "one process, one prefix: {prefixes:?}");

    let lines = wait_lines(&log, rs.len());
    assert_eq!(lines.len(), rs.len(), "{lines:#?}");
    // Lines from two workers may land in either order: matched by id.
    for r in &rs {
        let id = r.header("x-ringway-request-id").unwrap();
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:#?}"));
        assert_eq!(line["node"], "gw-a.eu_1", "{line}");
    }

    // The id with its node is a custody key (no keys configured: anyone may read it).
    let id = rs[0].header("x-ringway-request-id").unwrap();
    let deadline = Instant::now() + WAIT;
    let record = loop {
        let r = request(g.addr, &get(&format!("/v1/custody/{id}"), &[]));
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(record.status, 200, "{}", record.text());
    assert_eq!(record.json()["id"], id);

    let text = scrape(&g);
    assert!(
        text.contains("ringway_node_info{node=\"gw-a.eu_1\"} 1\n"),
        "{text}"
    );
    // No store named: no store series.
    assert!(!text.contains("ringway_cluster_store_up{"), "{text}");
    promtool_check(&text);
}

#[test]
fn without_cluster_ids_keep_their_shape_and_lines_name_the_host() {
    let m = mock(&[]);
    let (g, log) = node(&m, "");
    let rs = traffic(&g);
    for r in &rs {
        let id = r.header("x-ringway-request-id").unwrap();
        // rw-<16 hex>-<2 hex>-<10 hex>, exactly as before nodes existed.
        assert_eq!(split_id(id).0, None, "{id}");
        assert_eq!(id.len(), 33, "{id}");
    }
    let host = ringway::cluster::default_node_id();
    let lines = wait_lines(&log, rs.len());
    assert_eq!(lines.len(), rs.len(), "{lines:#?}");
    for line in &lines {
        assert_eq!(line["node"], host.as_str(), "{line}");
    }
    let text = scrape(&g);
    assert!(
        text.contains(&format!("ringway_node_info{{node=\"{host}\"}} 1\n")),
        "{text}"
    );
}

/// `[cluster]` naming Redis and PostgreSQL is served (the URLs are only checked for shape
/// here); with the store threads not reporting, nothing waits for them.
#[test]
fn a_node_with_stores_configured_is_ready_and_reports_its_id() {
    let m = mock(&[]);
    let redis = common::redis::Redis::start();
    let (g, _log) = node(
        &m,
        &format!(
            "[cluster]\nnode_id = \"gw-b\"\nredis = \"{}\"\nready_requires = [\"redis\"]\n",
            redis.url()
        ),
    );
    let r = request(g.addr, &get("/readyz", &[]));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().next(), Some("ready"));
    assert_eq!(
        request(g.addr, &get("/healthz", &[])).text(),
        "ok\n",
        "liveness says nothing of the stores"
    );
    let text = scrape(&g);
    assert!(
        text.contains("ringway_node_info{node=\"gw-b\"} 1\n"),
        "{text}"
    );
    for name in [
        "ringway_cluster_store_up",
        "ringway_cluster_store_state_changes_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
    }
    promtool_check(&text);
    assert_eq!(
        node_of(&chat_openai(g.addr, "gpt", "hi", false)).as_deref(),
        Some("gw-b")
    );
}

// ---------- nginx in front of two nodes ----------

/// A balancer (nginx or HAProxy) running a contrib file with its addresses replaced; killed on
/// drop (one process: nginx's `master_process off`, HAProxy without `-W`).
struct Balancer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A contrib file with `from` replaced by `to`; fails when the file no longer holds `from`
/// (the test must run what the file says).
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the contrib file lost {from:?}");
    text.replace(from, to)
}

fn contrib(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib")
            .join(name),
    )
    .unwrap()
}

/// The first of `paths` that exists (sbin is not on every PATH).
fn installed(paths: &[&'static str], what: &str) -> &'static str {
    paths
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("{what} is not installed (tests/setup.sh installs it)"))
}

/// Start `cmd` (a balancer listening on `port`) and wait until it accepts connections.
fn start_balancer(mut cmd: Command, port: u16, dir: PathBuf, log: &str) -> Balancer {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join(log)).unwrap()))
        .spawn()
        .unwrap();
    let mut lb = Balancer {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(lb.addr).is_err() {
        if let Some(status) = lb.child.try_wait().unwrap() {
            panic!(
                "the balancer exited {status}: {}",
                std::fs::read_to_string(lb.dir.join(log)).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the balancer did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    lb
}

fn nginx(a: SocketAddr, b: SocketAddr) -> Balancer {
    let port = free_port();
    let site = contrib("nginx-fleet.conf");
    let site = replace(&site, "10.0.0.11:4000", &a.to_string());
    let site = replace(&site, "10.0.0.12:4000", &b.to_string());
    let site = replace(&site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let dir = temp_path("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ringway.conf"), site).unwrap();
    // What Debian's /etc/nginx/nginx.conf gives a conf.d file, with every path in `dir`.
    let d = dir.display();
    let main = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/ringway.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut cmd = Command::new(installed(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx"));
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    start_balancer(cmd, port, dir, "stderr.log")
}

/// HAProxy running the HTTP (L7) frontend of `contrib/haproxy.cfg`.
fn haproxy(a: SocketAddr, b: SocketAddr) -> Balancer {
    let (port, tcp_port) = (free_port(), free_port());
    let cfg = contrib("haproxy.cfg");
    let cfg = replace(&cfg, "10.0.0.11:4000", &a.to_string());
    let cfg = replace(&cfg, "10.0.0.12:4000", &b.to_string());
    let cfg = replace(&cfg, "bind :80\n", &format!("bind 127.0.0.1:{port}\n"));
    // The TCP frontend is started too (the file as written), on a port of its own; its
    // servers are not these nodes, so its checks fail, which the HTTP side never sees.
    let cfg = replace(&cfg, "bind :443\n", &format!("bind 127.0.0.1:{tcp_port}\n"));
    // No syslog socket here.
    let cfg = replace(&cfg, "    log /dev/log local0\n", "");
    let dir = temp_path("haproxy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
    let mut cmd = Command::new(installed(
        &["/usr/sbin/haproxy", "/usr/bin/haproxy"],
        "haproxy",
    ));
    cmd.arg("-db").arg("-f").arg(dir.join("haproxy.cfg"));
    start_balancer(cmd, port, dir, "stderr.log")
}

/// Twelve calls through `lb`, both formats: which node served how many.
fn spread(lb: SocketAddr) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..12 {
        let r = if i % 2 == 0 {
            chat_openai(lb, "gpt", "through the balancer", false)
        } else {
            chat_anthropic(lb, "claude", "through the balancer", false)
        };
        assert_eq!(r.status, 200, "{}", r.text());
        *seen.entry(node_of(&r).unwrap()).or_default() += 1;
    }
    seen
}

/// Node `a` stops (SIGTERM: it drains) while four clients keep sending through `lb`: one
/// streaming, two on a new connection per request, one keeping its connection to the balancer
/// alive (whose requests the balancer may put on its connections to the nodes). Every request
/// is served, and by `survivor` once `a` is gone.
fn stop_one_under_load(lb: SocketAddr, a: &mut Proc, survivor: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut served = 0;
                let mut kept: Option<Client> = None;
                while !stop.load(Ordering::SeqCst) {
                    let prompt = format!("mock:tokens=3 client {t}");
                    let r = if t == 3 {
                        let c = kept.get_or_insert_with(|| Client::connect(lb));
                        c.send_raw(&post(
                            "/v1/chat/completions",
                            &[],
                            &openai_body("gpt", &prompt, false),
                        ));
                        let r = c.read_response().expect("the balancer answered");
                        if r.header("connection") == Some("close") {
                            kept = None;
                        }
                        r
                    } else {
                        chat_openai(lb, "gpt", &prompt, t == 0)
                    };
                    assert_eq!(r.status, 200, "{}", r.text());
                    served += 1;
                }
                served
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    signal(a, "TERM");
    let status = exit_within(a, WAIT).expect("the node exits");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let during: usize = clients
        .into_iter()
        .map(|c| c.join().expect("a request failed while a node stopped"))
        .sum();
    assert!(during > 0);
    for _ in 0..6 {
        let r = chat_openai(lb, "gpt", "after", false);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(node_of(&r).as_deref(), Some(survivor));
    }
}

#[test]
fn nginx_spreads_requests_over_two_nodes_and_survives_one_stopping() {
    let m = mock(&[]);
    let (mut a, _) = node(&m, "[cluster]\nnode_id = \"gw-a\"\n");
    let (b, _) = node(&m, "[cluster]\nnode_id = \"gw-b\"\n");
    let lb = nginx(a.addr, b.addr);
    let seen = spread(lb.addr);
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        ["gw-a", "gw-b"],
        "both nodes served: {seen:?}"
    );

    // A stream comes through event by event (proxy_buffering off): the first chunk long
    // before the last. Buffered, it would arrive whole at the end.
    let mut c = Client::connect(lb.addr);
    let t0 = Instant::now();
    c.send_raw(&post(
        "/v1/chat/completions",
        &[],
        &openai_body("gpt", "mock:tokens=8 mock:itl=150", true),
    ));
    let (status, _) = c.read_head().unwrap();
    assert_eq!(status, 200);
    let mut body = c.read_chunk().unwrap();
    let first_at = t0.elapsed();
    while let Some(chunk) = c.read_chunk() {
        body.extend_from_slice(&chunk);
    }
    let total = t0.elapsed();
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    assert!(
        total >= Duration::from_millis(900) && first_at * 3 < total,
        "first chunk at {first_at:?}, stream ended at {total:?}"
    );

    stop_one_under_load(lb.addr, &mut a, "gw-b");
}

#[test]
fn haproxy_checks_readyz_spreads_requests_and_survives_one_stopping() {
    let m = mock(&[]);
    let (mut a, a_log) = node(&m, "[cluster]\nnode_id = \"gw-a\"\n");
    let (b, _) = node(&m, "[cluster]\nnode_id = \"gw-b\"\n");
    let lb = haproxy(a.addr, b.addr);
    let seen = spread(lb.addr);
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        ["gw-a", "gw-b"],
        "both nodes served: {seen:?}"
    );
    // The health check is `GET /readyz` (every 2 s): the node's access log shows it.
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&a_log)
        .unwrap_or_default()
        .contains("\"endpoint\":\"readyz\"")
    {
        assert!(Instant::now() < deadline, "HAProxy never asked /readyz");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_one_under_load(lb.addr, &mut a, "gw-b");
}
