//! The refresher against local endpoints playing the container credentials endpoint, a token
//! endpoint and a metadata server.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::*;

/// Generous bound for anything the refresher thread does (never reached when it works).
const PATIENCE: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_millis(10);

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
}

/// A server answering request `n` (1-based) with `answer(n, request)`, one connection at a
/// time.
fn serve(answer: impl Fn(usize, &str) -> String + Send + 'static) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Head, then as much body as content-length says.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let out = answer(n, &String::from_utf8_lossy(&req));
            let _ = s.write_all(out.as_bytes());
        }
    });
    Server { url, hits }
}

fn ok_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::new();
    crate::calendar::rfc3339_millis(&mut out, t);
    String::from_utf8(out).unwrap()
}

fn keys_json(n: usize, expires: SystemTime) -> String {
    format!(
        r#"{{"AccessKeyId":"ASIA{n}","SecretAccessKey":"s{n}","Token":"t{n}","Expiration":"{}"}}"#,
        rfc3339(expires)
    )
}

fn container(url: &str) -> Spec {
    Spec::Aws {
        profile: None,
        credentials_url: Some(url.to_owned()),
        api_key_env: None,
    }
}

fn quick() -> Tuning {
    Tuning {
        lead: Duration::from_secs(300),
        backoff_start: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        margin: Duration::ZERO,
    }
}

fn answer(p: &Pending<Result<Arc<Secret>, String>>) -> Result<Arc<Secret>, String> {
    let until = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < until {
        if let Some(a) = p.try_take() {
            return a;
        }
        std::thread::sleep(STEP);
    }
    panic!("no answer within {PATIENCE:?}");
}

fn until(mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "condition not met within {PATIENCE:?}"
        );
        std::thread::sleep(STEP);
    }
}

fn key_id(s: &Secret) -> String {
    match s {
        Secret::Aws(k) => k.access_key_id.clone(),
        Secret::Bearer(b) => b.clone(),
    }
}

fn ready(c: &Credential) -> Option<String> {
    match c.get() {
        Get::Ready(s) => Some(key_id(&s)),
        _ => None,
    }
}

#[test]
fn the_first_fetch_is_waited_for_then_ready() {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let server = serve(move |n, req| {
        assert!(req.starts_with("GET /creds HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("\r\nauthorization: container-token\r\n"),
            "{req}"
        );
        let _ = gate.lock().unwrap().recv();
        ok_json(&keys_json(n, SystemTime::now() + Duration::from_secs(3600)))
    });
    let env =
        |k: &str| (k == "AWS_CONTAINER_AUTHORIZATION_TOKEN").then(|| "container-token".to_owned());
    let c = Credential::start_tuned(
        "bedrock",
        &container(&format!("{}/creds", server.url)),
        &env,
        quick(),
    )
    .unwrap();
    assert_eq!(c.source(), format!("container {}/creds", server.url));
    // The endpoint has not answered: nothing to sign with yet, and no failure either.
    let Get::Wait(p) = c.get() else {
        panic!("expected Wait before the first answer")
    };
    open.send(()).unwrap();
    let s = answer(&p).unwrap();
    assert_eq!(key_id(&s), "ASIA1");
    match &*s {
        Secret::Aws(k) => assert_eq!(k.session_token.as_deref(), Some("t1")),
        Secret::Bearer(_) => panic!("not a bearer"),
    }
    assert_eq!(ready(&c).as_deref(), Some("ASIA1"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn expiring_keys_are_refreshed_before_they_expire() {
    // Each answer lives 8 s: the refresh comes at half life, 4 s before the expiry.
    let server = serve(|n, _| ok_json(&keys_json(n, SystemTime::now() + Duration::from_secs(8))));
    let c =
        Credential::start_tuned("bedrock", &container(&server.url), &|_| None, quick()).unwrap();
    until(|| ready(&c).is_some());
    // From the first answer to the second, every read is served: no request ever waits.
    until(|| {
        let now = ready(&c);
        assert!(now.is_some(), "a read found no usable keys");
        now.as_deref() == Some("ASIA2")
    });
}

#[test]
fn concurrent_refreshes_make_one_fetch() {
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let server = serve(move |n, _| {
        if n == 2 {
            let _ = gate.lock().unwrap().recv();
        }
        ok_json(&keys_json(n, SystemTime::now() + Duration::from_secs(3600)))
    });
    let c =
        Credential::start_tuned("bedrock", &container(&server.url), &|_| None, quick()).unwrap();
    until(|| ready(&c).is_some());
    // Eight workers saw a 401: one asks first and its fetch is under way (the endpoint holds
    // it) when the seven others ask; they join it rather than start their own.
    let mut pending = vec![c.refresh()];
    until(|| server.hits.load(Ordering::SeqCst) == 2);
    pending.extend((0..7).map(|_| c.refresh()));
    open.send(()).unwrap();
    for p in &pending {
        assert_eq!(key_id(&answer(p).unwrap()), "ASIA2");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    assert_eq!(ready(&c).as_deref(), Some("ASIA2"));
}

#[test]
fn a_failing_refresh_keeps_the_old_keys_until_they_expire_then_fails() {
    // A whole second: the endpoint's RFC 3339 time says no fractions, and the expiry read back
    // must be the one compared with.
    let in_3s = (SystemTime::now() + Duration::from_secs(3))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first_expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(in_3s);
    let server = serve(move |n, _| {
        if n == 1 {
            ok_json(&keys_json(n, first_expiry))
        } else {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nbusy".to_owned()
        }
    });
    let c =
        Credential::start_tuned("bedrock", &container(&server.url), &|_| None, quick()).unwrap();
    until(|| ready(&c).is_some());
    // Refreshes fail (and are retried) while the first keys are still served.
    until(|| server.hits.load(Ordering::SeqCst) >= 3);
    let before = SystemTime::now();
    let got = ready(&c);
    if before + Duration::from_millis(500) < first_expiry {
        assert_eq!(got.as_deref(), Some("ASIA1"));
    }
    let mut failed = String::new();
    until(|| match c.get() {
        Get::Failed(e) => {
            failed = e;
            true
        }
        _ => false,
    });
    assert!(
        SystemTime::now() >= first_expiry,
        "failed before the keys expired"
    );
    assert!(
        failed.starts_with("provider `bedrock`: AWS credentials from http://"),
        "{failed}"
    );
    assert!(failed.contains("HTTP 500: busy"), "{failed}");
}

#[test]
fn an_unreachable_endpoint_fails_the_waiter_and_then_get() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/creds", l.local_addr().unwrap().port());
    drop(l);
    let c = Credential::start_tuned("bedrock", &container(&url), &|_| None, quick()).unwrap();
    let first = match c.get() {
        Get::Wait(p) => answer(&p).unwrap_err(),
        Get::Failed(e) => e,
        Get::Ready(_) => panic!("nothing to be ready with"),
    };
    assert!(
        first.starts_with(&format!(
            "provider `bedrock`: AWS credentials from {url} failed: "
        )),
        "{first}"
    );
    until(|| matches!(c.get(), Get::Failed(_)));
}

#[test]
fn a_service_account_token_is_exchanged_and_cached() {
    let sa_file = std::env::temp_dir().join(format!("ringway-sa-{}.json", std::process::id()));
    let server_key: Arc<Mutex<Vec<u8>>> = Arc::default();
    let key = server_key.clone();
    let server = serve(move |n, req| {
        assert!(req.starts_with("POST /token HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("content-type: application/x-www-form-urlencoded"),
            "{req}"
        );
        let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
        let assertion = body
            .strip_prefix(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
            )
            .unwrap();
        let (signed, sig) = assertion.rsplit_once('.').unwrap();
        let sig =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        let pk = key.lock().unwrap().clone();
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pk)
            .verify(signed.as_bytes(), &sig)
            .unwrap();
        ok_json(&format!(
            r#"{{"access_token":"mock-token-{n}","expires_in":3600,"token_type":"Bearer"}}"#
        ))
    });
    let json = google::tests::sa_json(&format!("{}/token", server.url));
    std::fs::write(&sa_file, &json).unwrap();
    match google::parse_file(json.as_bytes(), "t").unwrap() {
        google::File::ServiceAccount(sa) => *server_key.lock().unwrap() = sa.public_key().to_vec(),
        google::File::AuthorizedUser { .. } => panic!("a service account"),
    }
    let spec = Spec::Google {
        credentials_file: Some(sa_file.clone()),
        metadata_url: None,
        api_key_env: None,
    };
    let c = Credential::start_tuned("vertex", &spec, &|_| None, quick()).unwrap();
    assert_eq!(
        c.source(),
        "service account ringway@p.iam.gserviceaccount.com"
    );
    until(|| ready(&c).is_some());
    assert_eq!(ready(&c).as_deref(), Some("mock-token-1"));
    assert_eq!(ready(&c).as_deref(), Some("mock-token-1"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_file(&sa_file);
}

#[test]
fn the_metadata_server_must_say_it_is_one() {
    let server = serve(|n, req| {
        assert!(req.starts_with(
            "GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\r\n"
        ));
        assert!(req.contains("\r\nmetadata-flavor: Google\r\n"), "{req}");
        let body = format!(r#"{{"access_token":"mock-token-{n}","expires_in":3600}}"#);
        let flavor = if n == 1 {
            "metadata-flavor: Google\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 200 OK\r\n{flavor}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    });
    let spec = Spec::Google {
        credentials_file: None,
        metadata_url: Some(server.url.clone()),
        api_key_env: None,
    };
    let c = Credential::start_tuned("vertex", &spec, &|_| None, quick()).unwrap();
    until(|| ready(&c).is_some());
    assert_eq!(ready(&c).as_deref(), Some("mock-token-1"));
    // The second answer lacks the header: refused, the held token still served.
    let e = answer(&c.refresh()).unwrap_err();
    assert!(e.contains("lacks Metadata-Flavor"), "{e}");
    assert_eq!(ready(&c).as_deref(), Some("mock-token-1"));
}

#[test]
fn static_secrets_are_ready_at_once_and_refresh_to_themselves() {
    let env = |k: &str| (k == "AWS_BEARER_TOKEN_BEDROCK").then(|| "ABSKkey".to_owned());
    let spec = Spec::Aws {
        profile: None,
        credentials_url: None,
        api_key_env: None,
    };
    let c = Credential::start("bedrock", &spec, &env).unwrap();
    assert_eq!(c.source(), "env AWS_BEARER_TOKEN_BEDROCK");
    assert_eq!(
        Credential::check("bedrock", &spec, &env).as_deref(),
        Ok("env AWS_BEARER_TOKEN_BEDROCK")
    );
    let e = Credential::check("bedrock", &spec, &|k| {
        (k == "HOME").then(|| "/nonexistent".into())
    })
    .unwrap_err();
    assert!(
        e.starts_with("provider `bedrock`: no AWS credentials found"),
        "{e}"
    );
    assert_eq!(ready(&c).as_deref(), Some("ABSKkey"));
    assert_eq!(key_id(&answer(&c.refresh()).unwrap()), "ABSKkey");
    let e = Credential::start(
        "vertex",
        &Spec::Google {
            credentials_file: None,
            metadata_url: None,
            api_key_env: Some("NOPE".into()),
        },
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        e,
        "provider `vertex`: api_key_env names NOPE, which is not set in the environment"
    );
}

#[test]
fn a_dropped_credential_is_not_kept_alive_by_the_refresher() {
    let server =
        serve(|n, _| ok_json(&keys_json(n, SystemTime::now() + Duration::from_secs(3600))));
    let c =
        Credential::start_tuned("bedrock", &container(&server.url), &|_| None, quick()).unwrap();
    until(|| ready(&c).is_some());
    let weak = Arc::downgrade(&c);
    drop(c);
    // The refresher may still be publishing the fetch that made it ready, holding it for
    // that moment (CI saw it on a loaded machine): gone soon after, not kept.
    until(|| weak.upgrade().is_none());
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let k = aws::Keys::new("AKID", "very-secret", Some("tok-secret"), None, "t").unwrap();
    let shown = format!(
        "{:?} {:?}",
        Secret::Aws(k),
        Secret::Bearer("bearer-secret".into())
    );
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn keys_that_arrive_expired_are_a_failure_not_a_refresh_loop() {
    let server = serve(|n, _| ok_json(&keys_json(n, SystemTime::now() - Duration::from_secs(60))));
    let c =
        Credential::start_tuned("bedrock", &container(&server.url), &|_| None, quick()).unwrap();
    let e = match c.get() {
        Get::Wait(p) => answer(&p).unwrap_err(),
        Get::Failed(e) => e,
        Get::Ready(_) => panic!("expired keys are not ready"),
    };
    assert!(e.contains("gave credentials that expire at"), "{e}");
    until(|| matches!(c.get(), Get::Failed(_)));
}

#[test]
fn a_reload_starts_with_the_running_secret_while_it_fetches_its_own() {
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let server = serve(move |n, _| {
        if n > 1 {
            // The reload's own fetch is slow: nobody should wait for it.
            std::thread::sleep(Duration::from_millis(1500));
        }
        ok_json(&keys_json(n, expires))
    });
    let spec = container(&server.url);
    let first = Credential::start_tuned("reloaded", &spec, &|_| None, quick()).unwrap();
    until(|| ready(&first).is_some());
    let second = Credential::start_tuned("reloaded", &spec, &|_| None, quick()).unwrap();
    // At once, before the second fetch answers: the running secret.
    assert_eq!(ready(&second).as_deref(), Some("ASIA1"));
    // Then its own.
    until(|| ready(&second).as_deref() == Some("ASIA2"));
    // Another provider with the same source does not borrow it.
    let other = Credential::start_tuned("other", &spec, &|_| None, quick()).unwrap();
    assert!(ready(&other).is_none());
}

#[test]
fn a_hostile_token_lifetime_is_bounded() {
    let (_, life) = super::google::token_answer(
        200,
        br#"{"access_token":"x","expires_in":18446744073709551615}"#,
        "t",
    )
    .unwrap();
    assert_eq!(
        life,
        Duration::from_secs(super::google::MAX_TOKEN_LIFE_SECS)
    );
}

#[test]
fn a_slow_endpoint_holds_up_only_its_own_credential() {
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let slow = serve(move |n, _| {
        std::thread::sleep(Duration::from_secs(3));
        ok_json(&keys_json(n, expires))
    });
    let fast = serve(move |n, _| ok_json(&keys_json(n, expires)));
    let a = Credential::start_tuned("slow", &container(&slow.url), &|_| None, quick()).unwrap();
    let b = Credential::start_tuned("fast", &container(&fast.url), &|_| None, quick()).unwrap();
    until(|| ready(&b).is_some());
    // The fast one is served while the slow one's fetch still runs.
    assert!(
        ready(&a).is_none(),
        "the fast credential waited for the slow fetch"
    );
    until(|| ready(&a).is_some());
}
