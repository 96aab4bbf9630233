//! TLS termination through the real binary: HTTPS in both dialects, streamed and not, over TLS
//! 1.2 and 1.3 with a client that trusts only a test CA; ALPN; handshakes that stall; plain HTTP
//! and garbage sent to the TLS port; a plain listener beside the TLS one; every PEM key form.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

type TlsClient = Client<StreamOwned<ClientConnection, TcpStream>>;

/// A test CA and a `localhost` certificate it signed, as PEM files.
struct Pki {
    ca: PathBuf,
    /// Leaf then CA.
    chain: PathBuf,
    key: PathBuf,
}

fn pki() -> Pki {
    let certs = test_certs();
    let p = Pki {
        ca: temp_path("ca.pem"),
        chain: temp_path("chain.pem"),
        key: temp_path("key.pem"),
    };
    std::fs::write(&p.ca, &certs.ca).unwrap();
    std::fs::write(&p.chain, certs.leaf + &certs.ca).unwrap();
    std::fs::write(&p.key, &certs.key).unwrap();
    p
}

/// `[server]` with TLS on `listen` (forced to 127.0.0.1:0 by the harness), `extra` lines in
/// `[server]`, and `tls_extra` lines in `[server.tls]`.
fn tls_server_with(p: &Pki, workers: usize, extra: &str, tls_extra: &str) -> String {
    format!(
        "[server]\nworkers = {workers}\n{extra}\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n{tls_extra}\n",
        p.chain.display(),
        p.key.display()
    )
}

fn tls_server(p: &Pki, workers: usize, extra: &str) -> String {
    tls_server_with(p, workers, extra, "")
}

/// Mock + gateway whose `[server]` section is `server`.
fn tls_setup(server: &str) -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_env(
        &format!("{server}\n{}", standard_providers(&m)),
        PROVIDER_KEYS,
    );
    assert!(g.banner.contains("https://"), "{}", g.banner);
    (m, g)
}

type Version = &'static rustls::SupportedProtocolVersion;

fn client_config(ca: &Path, versions: &[Version], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// The default test client: TLS 1.3 and 1.2, ALPN `http/1.1`, trusting `ca` only.
fn default_client(ca: &Path) -> Arc<rustls::ClientConfig> {
    client_config(
        ca,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[b"http/1.1"],
    )
}

/// Connect and finish the handshake (so that its failure shows here, not at the first read).
fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<TlsClient, std::io::Error> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    sock.set_nodelay(true).unwrap();
    let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Client::over(s))
}

/// The alert a handshake the server must refuse ended with; fails the test when the client
/// was served or the connection closed without an alert.
fn alert_on_refusal(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> rustls::AlertDescription {
    let e = match tls_connect(addr, cfg) {
        Ok(_) => panic!("a client the server must refuse was served"),
        Err(e) => e,
    };
    let what = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(tls)) => match *tls {
            rustls::Error::AlertReceived(alert) => alert,
            other => panic!("refused without an alert: {other}"),
        },
        _ => panic!("closed without an alert: {what}"),
    }
}

/// One request on a fresh TLS connection.
fn tls_request(addr: SocketAddr, ca: &Path, raw: &[u8]) -> Response {
    let mut c = tls_connect(addr, default_client(ca)).unwrap();
    c.send_raw(raw);
    c.read_response().expect("no response")
}

fn metrics(addr: SocketAddr, ca: &Path) -> String {
    let r = tls_request(addr, ca, &get("/metrics", &[]));
    assert_eq!(r.status, 200);
    r.text()
}

/// The value of one sample line of `/metrics`, 0 when absent.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// A chat request and what its answer must hold, for each dialect, streamed and not.
fn check_chat(c: &mut Client<impl Read + Write>, openai: bool, model: &str, stream: bool) {
    let raw = if openai {
        post(
            "/v1/chat/completions",
            &[],
            &openai_body(model, "over tls", stream),
        )
    } else {
        post(
            "/v1/messages",
            &[],
            &anthropic_body(model, "over tls", stream),
        )
    };
    c.send_raw(&raw);
    let r = c.read_response().expect("no response");
    let what = format!("openai={openai} model={model} stream={stream}");
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    if stream {
        let events = sse_events(&r.body);
        // The streamed text, put back together from its deltas.
        let text: String = events
            .iter()
            .filter_map(|(_, data)| serde_json::from_str::<serde_json::Value>(data).ok())
            .filter_map(|v| {
                let delta = if openai {
                    &v["choices"][0]["delta"]["content"]
                } else {
                    &v["delta"]["text"]
                };
                delta.as_str().map(str::to_owned)
            })
            .collect();
        assert!(text.ends_with("You said: over tls"), "{what}: {text}");
        if openai {
            assert_eq!(events.last().unwrap().1, "[DONE]", "{what}");
        } else {
            assert_eq!(
                events.last().unwrap().0.as_deref(),
                Some("message_stop"),
                "{what}"
            );
        }
    } else if openai {
        let v = r.json();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(content.ends_with("You said: over tls"), "{what}: {v}");
    } else {
        let v = r.json();
        let content = v["content"][0]["text"].as_str().unwrap();
        assert!(content.ends_with("You said: over tls"), "{what}: {v}");
    }
}

#[test]
fn https_serves_both_dialects_streamed_and_not_over_tls_1_2_and_1_3() {
    let p = pki();
    let (_m, g) = tls_setup(&tls_server(&p, 2, ""));
    for (version, want) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let cfg = client_config(&p.ca, &[version], &[b"http/1.1"]);
        // One kept-alive connection for every case: same-format and translated, both dialects.
        let mut c = tls_connect(g.addr, cfg).unwrap();
        assert_eq!(c.stream.conn.protocol_version(), Some(want));
        assert_eq!(c.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        for openai in [true, false] {
            for model in ["gpt", "claude"] {
                for stream in [false, true] {
                    check_chat(&mut c, openai, model, stream);
                }
            }
        }
    }
    let text = metrics(g.addr, &p.ca);
    assert!(sample(&text, "ringway_tls_handshakes_total") >= 1, "{text}");
}

#[test]
fn alpn_offering_only_h2_is_refused_and_no_alpn_gets_http_1_1() {
    let p = pki();
    let (_m, g) = tls_setup(&tls_server(&p, 1, ""));
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    for version in both {
        let only_h2 = client_config(&p.ca, &[version], &[b"h2"]);
        // Refused in the handshake, and told why (RFC 7301 §3.2).
        assert_eq!(
            alert_on_refusal(g.addr, only_h2),
            rustls::AlertDescription::NoApplicationProtocol,
            "{version:?}"
        );
    }
    // h2 preferred, http/1.1 offered too: http/1.1 is chosen.
    let mut c = tls_connect(g.addr, client_config(&p.ca, &both, &[b"h2", b"http/1.1"])).unwrap();
    assert_eq!(c.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    check_chat(&mut c, true, "gpt", false);
    // No ALPN at all (curl --no-alpn, old clients): served HTTP/1.1.
    let mut c = tls_connect(g.addr, client_config(&p.ca, &both, &[])).unwrap();
    assert_eq!(c.stream.conn.alpn_protocol(), None);
    check_chat(&mut c, false, "claude", true);
    let text = metrics(g.addr, &p.ca);
    assert_eq!(
        sample(
            &text,
            "ringway_tls_handshake_failures_total{reason=\"no_alpn\"}"
        ),
        2,
        "{text}"
    );
}

/// The first bytes a rustls client sends: a ClientHello record.
fn client_hello(ca: &Path) -> Vec<u8> {
    let mut conn = ClientConnection::new(
        default_client(ca),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    assert_eq!(out[0], 0x16, "a handshake record");
    out
}

#[test]
fn stalled_handshakes_are_closed_after_the_timeout_while_others_are_served() {
    const HANDSHAKE_TIMEOUT_MS: u64 = 3000;
    let p = pki();
    // One worker: the stalled handshakes and the clients served meanwhile share it.
    let (_m, g) = tls_setup(&tls_server_with(
        &p,
        1,
        "",
        &format!("handshake_timeout_ms = {HANDSHAKE_TIMEOUT_MS}"),
    ));
    let hello = client_hello(&p.ca);
    let t0 = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(g.addr).unwrap();
        if i % 2 == 1 {
            // Half a ClientHello, then nothing.
            s.write_all(&hello[..hello.len() / 2]).unwrap();
        }
        stalled.push(s);
    }
    // Meanwhile every other client is served, on the same worker.
    for openai in [true, false] {
        for stream in [false, true] {
            let mut c = tls_connect(g.addr, default_client(&p.ca)).unwrap();
            check_chat(&mut c, openai, "gpt", stream);
        }
    }
    // The stalled ones were still open while those were served (the budget is 3 s; if this
    // machine took longer than that for four requests, the test says so here).
    for s in &stalled {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let e = (&*s)
            .read(&mut b)
            .expect_err("a stalled handshake was answered or closed");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        s.set_nonblocking(false).unwrap();
    }
    // Then each is closed once its budget is spent: EOF (or a reset), never an answer.
    for mut s in stalled {
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "bytes sent to a stalled handshake: {rest:?}"
            ),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        let after = t0.elapsed();
        assert!(
            after >= Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
            "closed after {after:?}, before the handshake timeout"
        );
    }
    let text = metrics(g.addr, &p.ca);
    assert_eq!(
        sample(
            &text,
            "ringway_tls_handshake_failures_total{reason=\"timeout\"}"
        ),
        20,
        "{text}"
    );
}

#[test]
fn plain_http_to_the_tls_port_gets_a_hint_and_garbage_is_closed() {
    let p = pki();
    let (_m, g) = tls_setup(&tls_server(&p, 1, ""));
    for raw in [
        get("/healthz", &[]),
        post(
            "/v1/chat/completions",
            &[],
            &openai_body("gpt", "hi", false),
        ),
    ] {
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        s.write_all(&raw).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(text.contains("https://"), "{text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    }
    // Bytes that are neither TLS nor HTTP: rustls's decode_error alert, then closed.
    let mut s = TcpStream::connect(g.addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(b"\x00\x01\x02\x03 not tls at all\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    // An alert record: type 21, TLS 1.2 record version, 2 bytes: fatal (2), decode_error (50).
    assert_eq!(out, [21, 3, 3, 0, 2, 2, 50], "{out:?}");
    // The worker keeps serving.
    let mut c = tls_connect(g.addr, default_client(&p.ca)).unwrap();
    check_chat(&mut c, false, "claude", true);
    let text = metrics(g.addr, &p.ca);
    let failures = "ringway_tls_handshake_failures_total";
    assert_eq!(
        sample(&text, &format!("{failures}{{reason=\"plain_http\"}}")),
        2,
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("{failures}{{reason=\"protocol\"}}")),
        1,
        "{text}"
    );
}

/// The address on the `plain HTTP also listening on http://ADDR` log line.
fn plain_addr(g: &Proc) -> SocketAddr {
    let marker = "plain HTTP also listening on http://";
    loop {
        let line = g
            .log
            .recv_timeout(Duration::from_secs(10))
            .expect("no plain listener line");
        if let Some(rest) = line.split(marker).nth(1) {
            return rest.trim().parse().unwrap();
        }
    }
}

#[test]
fn a_plain_listener_beside_tls_serves_plain_http() {
    let p = pki();
    let (_m, g) = tls_setup(&tls_server(&p, 2, "plain_listen = \"127.0.0.1:0\""));
    let plain = plain_addr(&g);
    assert_ne!(plain, g.addr);
    for stream in [false, true] {
        let mut c = Client::connect(plain);
        check_chat(&mut c, true, "claude", stream);
        let mut c = tls_connect(g.addr, default_client(&p.ca)).unwrap();
        check_chat(&mut c, true, "claude", stream);
    }
    // Plain HTTP on the TLS port still gets the hint, not service.
    let r = request(g.addr, &get("/healthz", &[]));
    assert_eq!(r.status, 400);
}

/// Run `openssl` with `args`; the test fails (never skips) when it is missing: CI installs it.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command is needed by this test (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn rsa_and_ec_keys_serve_in_pkcs8_pkcs1_and_sec1_form() {
    let ca_key = temp_path("ca.key");
    let ca = temp_path("ca.pem");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        s(&ca_key),
        "-out",
        s(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=ringway test CA",
    ]);
    let ext = temp_path("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for (alg, genpkey, traditional_header) in [
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            "BEGIN RSA PRIVATE KEY",
        ),
        (
            "ec",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ][..],
            "BEGIN EC PRIVATE KEY",
        ),
    ] {
        let pkcs8 = temp_path(&format!("{alg}-pkcs8.key"));
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genpkey);
        args.extend_from_slice(&["-out", s(&pkcs8)]);
        openssl(&args);
        let traditional = temp_path(&format!("{alg}-traditional.key"));
        openssl(&[
            "pkey",
            "-in",
            s(&pkcs8),
            "-traditional",
            "-out",
            s(&traditional),
        ]);
        let csr = temp_path(&format!("{alg}.csr"));
        let cert = temp_path(&format!("{alg}.pem"));
        openssl(&[
            "req",
            "-new",
            "-key",
            s(&pkcs8),
            "-out",
            s(&csr),
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-out",
            s(&cert),
            "-days",
            "2",
            "-extfile",
            s(&ext),
        ]);
        for (key, header) in [
            (&pkcs8, "BEGIN PRIVATE KEY"),
            (&traditional, traditional_header),
        ] {
            let text = std::fs::read_to_string(key).unwrap();
            assert!(text.contains(header), "{alg}: {text}");
            let p = Pki {
                ca: ca.clone(),
                chain: cert.clone(),
                key: key.clone(),
            };
            let g = gateway(&tls_server(&p, 1, ""));
            let r = tls_request(g.addr, &ca, &get("/healthz", &[]));
            assert_eq!(r.status, 200, "{alg} {header}");
        }
    }
}

/// A timed-out read on a TLS connection (the slowloris guard, the body guard) is followed by
/// the 408 and a lingering close on the same stream: that must neither panic nor take the
/// worker down (monoio-rustls loses its buffer to a cancelled read; see server::tls).
#[test]
fn a_tls_client_that_stalls_mid_request_gets_a_408_and_the_worker_lives() {
    let p = pki();
    let (_m, g) = tls_setup(&tls_server(
        &p,
        1,
        "header_read_timeout_ms = 300\nbody_read_timeout_ms = 300",
    ));
    for partial in [
        &b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"[..],
        &b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"mo"[..],
    ] {
        let mut c = tls_connect(g.addr, default_client(&p.ca)).unwrap();
        c.send_raw(partial);
        let r = c.read_response().expect("no 408");
        assert_eq!(r.status, 408, "{}", r.text());
        assert!(c.is_closed(), "the connection is closed after the 408");
        // Same worker, next client: served.
        let mut c = tls_connect(g.addr, default_client(&p.ca)).unwrap();
        check_chat(&mut c, true, "gpt", true);
    }
}

#[test]
fn listen_moved_onto_the_plain_port_by_the_command_line_is_refused() {
    let p = pki();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write_config(&tls_server(
        &p,
        1,
        &format!("plain_listen = \"127.0.0.1:{port}\""),
    ));
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--driver",
            &driver(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served both on one port: {err}");
    assert!(err.contains("share a port"), "{err}");
}

#[test]
fn a_reload_serves_a_new_certificate_to_new_connections() {
    let (first, second) = (pki(), pki());
    let m = mock(&[]);
    let config = |p: &Pki| format!("{}\n{}", tls_server(p, 2, ""), standard_providers(&m));
    let path = write_config(&config(&first));
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--config"]).arg(&path);
    cmd.args(["--listen", "127.0.0.1:0", "--driver", &driver()]);
    for (k, v) in PROVIDER_KEYS {
        cmd.env(k, v);
    }
    let g = spawn_and_wait(cmd, "listening on");
    // A connection made before the reload keeps the certificate it was accepted with.
    let mut before = tls_connect(g.addr, default_client(&first.ca)).unwrap();
    before.send_raw(&get("/healthz", &[]));
    assert_eq!(before.read_response().unwrap().status, 200);

    std::fs::write(&path, config(&second)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // Every worker serves the new certificate within moments; no restart.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut served = 0;
    while served < 8 {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        match tls_connect(g.addr, default_client(&second.ca)) {
            Ok(_) => served += 1,
            Err(_) => {
                served = 0;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert!(
        tls_connect(g.addr, default_client(&first.ca)).is_err(),
        "a new connection no longer gets the old certificate"
    );
    before.send_raw(&get("/healthz", &[]));
    assert_eq!(before.read_response().unwrap().status, 200);
}
