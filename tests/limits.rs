//! Per-key limits through the real binary on two workers: exact 429 counts for bursts over
//! `rpm` and `max_streams` in both dialects, the 429's body and headers as each SDK reads them,
//! nothing upstream for a refused request, and `tpm` charged from the usage providers report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;

/// `(key name, secret, limits)` of every key the tests use; each test spends its own keys.
const KEYS: &[(&str, &str, &str)] = &[
    ("rpm-openai", "sk-rpm-openai", "rpm = 10"),
    ("rpm-anthropic", "sk-rpm-anthropic", "rpm = 10"),
    ("streams", "sk-streams", "max_streams = 3"),
    ("tpm-openai", "sk-tpm-openai", "tpm = 100"),
    ("tpm-anthropic", "sk-tpm-anthropic", "tpm = 100"),
    ("free", "sk-free", ""),
];

/// A burst this much over a limit of 10 (`rpm`).
const BURST: usize = 25;
/// The requests-per-minute limit the burst runs into.
const RPM: usize = 10;

fn env_name(key: &str) -> String {
    format!("RW_TEST_LIMIT_{}", key.to_uppercase().replace('-', "_"))
}

/// Mock + gateway (two workers) with the standard providers and every key in [`KEYS`].
fn limited_setup() -> (Proc, Proc) {
    let m = mock(&[]);
    let mut cfg = format!("[server]\nworkers = 2\n\n{}", standard_providers(&m));
    for (name, _, limits) in KEYS {
        cfg.push_str(&format!(
            "\n[[key]]\nname = \"{name}\"\nkey_env = \"{}\"\n{limits}\n",
            env_name(name)
        ));
    }
    let names: Vec<(String, &str)> = KEYS
        .iter()
        .map(|(name, secret, _)| (env_name(name), *secret))
        .collect();
    let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
    env.extend(names.iter().map(|(n, s)| (n.as_str(), *s)));
    let g = gateway_env(&cfg, &env);
    (m, g)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    OpenAi,
    Anthropic,
}

/// One chat request of `dialect` with `secret`, on a fresh connection.
fn call(
    addr: std::net::SocketAddr,
    dialect: Dialect,
    secret: &str,
    prompt: &str,
    stream: bool,
) -> Response {
    let bearer = format!("Bearer {secret}");
    match dialect {
        Dialect::OpenAi => request(
            addr,
            &post(
                "/v1/chat/completions",
                &[("authorization", &bearer)],
                &openai_body("gpt", prompt, stream),
            ),
        ),
        Dialect::Anthropic => {
            // Room for every token a `mock:tokens=N` prompt asks for.
            let mut body: serde_json::Value =
                serde_json::from_str(&anthropic_body("claude", prompt, stream)).unwrap();
            body["max_tokens"] = 1024.into();
            request(
                addr,
                &post(
                    "/v1/messages",
                    &[("x-api-key", secret), ("anthropic-version", "2023-06-01")],
                    &body.to_string(),
                ),
            )
        }
    }
}

/// Run `n` calls at once (released together by a barrier), each on its own connection.
fn burst<F>(n: usize, f: F) -> Vec<Response>
where
    F: Fn(usize) -> Response + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let gate = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (f, gate) = (f.clone(), gate.clone());
            std::thread::spawn(move || {
                gate.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The worker a response came from: `rw-PPPPPPPPPPPPPPPP-WW-NNNNNNNNNN`.
fn worker_of(r: &Response) -> String {
    let id = r.header("x-ringway-request-id").unwrap();
    id.split('-').nth(2).unwrap().to_owned()
}

/// OpenAI's reset duration (`6s`, `5.994s`, `1m0s`, `20ms`) in milliseconds.
fn openai_duration_ms(text: &str) -> u64 {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().unwrap();
    }
    let (mins, rest) = match text.split_once('m') {
        Some((m, rest)) => (m.parse::<u64>().unwrap(), rest),
        None => (0, text),
    };
    let secs: f64 = rest.strip_suffix('s').unwrap().parse().unwrap();
    mins * 60_000 + (secs * 1000.0).round() as u64
}

/// `2025-01-15T14:24:00Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && text.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && text
            .bytes()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

/// Check a 429 of `limit` (`requests` or `tokens`) in `dialect`.
fn assert_rate_limited(r: &Response, dialect: Dialect, unit: &str) {
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let retry_ms: u64 = r.header("retry-after-ms").unwrap().parse().unwrap();
    assert!(retry >= 1 && retry * 1000 >= retry_ms && retry_ms > (retry - 1) * 1000);
    match dialect {
        Dialect::OpenAi => {
            assert_eq!(v["error"]["type"], unit, "{v}");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
            assert!(v["error"]["param"].is_null());
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit reached"));
        }
        Dialect::Anthropic => {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit reached"));
        }
    }
}

/// The three headers of `unit` (`requests` / `tokens`) in `dialect`: (limit, remaining, reset).
fn limit_headers<'r>(
    r: &'r Response,
    dialect: Dialect,
    unit: &str,
) -> Option<(&'r str, &'r str, &'r str)> {
    let names = match dialect {
        Dialect::OpenAi => [
            format!("x-ratelimit-limit-{unit}"),
            format!("x-ratelimit-remaining-{unit}"),
            format!("x-ratelimit-reset-{unit}"),
        ],
        Dialect::Anthropic => [
            format!("anthropic-ratelimit-{unit}-limit"),
            format!("anthropic-ratelimit-{unit}-remaining"),
            format!("anthropic-ratelimit-{unit}-reset"),
        ],
    };
    Some((
        r.header(&names[0])?,
        r.header(&names[1])?,
        r.header(&names[2])?,
    ))
}

/// Wait for every worker's metrics to be published, then scrape.
fn metrics(g: &Proc) -> String {
    std::thread::sleep(Duration::from_millis(1500));
    let r = request(
        g.addr,
        &get("/metrics", &[("authorization", "Bearer sk-free")]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn rpm_burst_is_refused_exactly_on_two_workers_in_both_dialects() {
    let (m, g) = limited_setup();
    let addr = g.addr;
    let mut workers = BTreeSet::new();
    for (dialect, key, secret) in [
        (Dialect::OpenAi, "rpm-openai", "sk-rpm-openai"),
        (Dialect::Anthropic, "rpm-anthropic", "sk-rpm-anthropic"),
    ] {
        let rs = burst(BURST, move |i| {
            call(addr, dialect, secret, &format!("hi {i}"), false)
        });
        let (ok, refused): (Vec<&Response>, Vec<&Response>) =
            rs.iter().partition(|r| r.status == 200);
        assert_eq!(
            (ok.len(), refused.len()),
            (RPM, BURST - RPM),
            "{key}: {:?}",
            rs.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        workers.extend(rs.iter().map(worker_of));
        for r in &refused {
            assert_rate_limited(r, dialect, "requests");
            let (limit, remaining, reset) = limit_headers(r, dialect, "requests").unwrap();
            assert_eq!((limit, remaining), ("10", "0"), "{key}");
            // Full again a minute after the burst at most; the next request fits within 6 s.
            let retry_ms: u64 = r.header("retry-after-ms").unwrap().parse().unwrap();
            assert!(retry_ms <= 6000, "{retry_ms}");
            match dialect {
                Dialect::OpenAi => {
                    let ms = openai_duration_ms(reset);
                    assert!((54_000..=60_000).contains(&ms), "{reset}");
                }
                Dialect::Anthropic => assert!(is_rfc3339_utc(reset), "{reset}"),
            }
            assert!(limit_headers(r, dialect, "tokens").is_none());
        }
        // Each admitted request was told what was left after it: 9 down to 0, once each.
        let left: BTreeSet<u64> = ok
            .iter()
            .map(|r| {
                limit_headers(r, dialect, "requests")
                    .unwrap()
                    .1
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(left, (0..RPM as u64).collect(), "{key}");
    }
    assert!(
        workers.len() >= 2,
        "every request landed on one worker ({workers:?}): the limit was not tested across workers"
    );
    // Nothing upstream for a refused request.
    assert_eq!(mock_requests(&m).len(), 2 * RPM);

    // The Responses dialect gets OpenAI's shape; the exhausted key is refused there too.
    let r = request(
        addr,
        &post(
            "/v1/responses",
            &[("authorization", "Bearer sk-rpm-openai")],
            r#"{"model":"gpt","input":"hi"}"#,
        ),
    );
    assert_rate_limited(&r, Dialect::OpenAi, "requests");
    // A key without limits is not held back, and gets no rate-limit headers of ours.
    let rs = burst(BURST, move |_| {
        call(addr, Dialect::OpenAi, "sk-free", "hi", false)
    });
    assert!(rs.iter().all(|r| r.status == 200));
    assert!(rs
        .iter()
        .all(|r| r.header("x-ratelimit-limit-requests").is_none()));
    assert_eq!(mock_requests(&m).len(), 2 * RPM + BURST);

    let text = metrics(&g);
    for key in ["rpm-openai", "rpm-anthropic"] {
        let extra = usize::from(key == "rpm-openai");
        let line = format!(
            "ringway_rate_limited_total{{key=\"{key}\",limit=\"requests\"}} {}\n",
            BURST - RPM + extra
        );
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    assert!(!text.contains("ringway_rate_limited_total{key=\"free\""));
}

#[test]
fn max_streams_refuses_exactly_while_streams_are_open() {
    const STREAMS: usize = 3;
    const TRIES: usize = 10;
    let (m, g) = limited_setup();
    let addr = g.addr;
    // Each stream lasts about 3 s (10 tokens 300 ms apart): every try lands while the first
    // three are open. Dialects alternate.
    let dialect = |i: usize| {
        if i.is_multiple_of(2) {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        }
    };
    let slow = "mock:tokens=10 mock:itl=300";
    let side = std::thread::spawn(move || {
        // While they stream: a non-streaming request of the same key takes no slot.
        std::thread::sleep(Duration::from_millis(1000));
        call(addr, Dialect::OpenAi, "sk-streams", "not a stream", false)
    });
    let rs = burst(TRIES, move |i| {
        call(addr, dialect(i), "sk-streams", slow, true)
    });
    let plain = side.join().unwrap();
    assert_eq!(plain.status, 200, "{}", plain.text());
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        STREAMS,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        TRIES - STREAMS,
        "{statuses:?}"
    );
    for (i, r) in rs.iter().enumerate() {
        if r.status == 429 {
            assert_rate_limited(r, dialect(i), "requests");
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(r.text().contains("Concurrent stream limit reached"));
        } else {
            // The streams ran to their end.
            assert!(r.text().contains("w10"), "{}", r.text());
        }
    }
    // The slots are back once the streams ended (the gateway lets go right after the last
    // byte; give it a moment).
    std::thread::sleep(Duration::from_millis(300));
    let rs = burst(STREAMS, move |i| {
        call(addr, dialect(i), "sk-streams", "again", true)
    });
    assert!(
        rs.iter().all(|r| r.status == 200),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(mock_requests(&m).len(), STREAMS + 1 + STREAMS);
    let text = metrics(&g);
    let line = format!(
        "ringway_rate_limited_total{{key=\"streams\",limit=\"streams\"}} {}\n",
        TRIES - STREAMS
    );
    assert!(text.contains(&line), "{line} not in:\n{text}");
}

/// Passes once the log phase charges each request's usage (`charge_key_tokens` in
/// `src/proxy/mod.rs`, wired to the usage the exchange records).
#[test]
fn tpm_refuses_once_the_usage_reported_is_charged() {
    const FOLLOWING: usize = 5;
    let (m, g) = limited_setup();
    let addr = g.addr;
    for (dialect, secret, stream) in [
        (Dialect::OpenAi, "sk-tpm-openai", false),
        (Dialect::Anthropic, "sk-tpm-anthropic", true),
    ] {
        // A full bucket of 100 admits the first request, which reports 150 output tokens
        // (and its input): the key is then in deficit for about a minute.
        let r = call(addr, dialect, secret, "mock:tokens=150", stream);
        assert_eq!(r.status, 200, "{}", r.text());
        let (limit, remaining, _) = limit_headers(&r, dialect, "tokens").unwrap();
        assert_eq!((limit, remaining), ("100", "100"));
        if !stream {
            let v = r.json();
            assert!(
                v["usage"]["completion_tokens"].as_u64().unwrap() >= 150,
                "{v}"
            );
        }
        // The charge lands as the request is logged, just after its last byte.
        std::thread::sleep(Duration::from_millis(500));
        let rs = burst(FOLLOWING, move |_| call(addr, dialect, secret, "hi", false));
        for r in &rs {
            assert_rate_limited(r, dialect, "tokens");
            let (limit, remaining, _) = limit_headers(r, dialect, "tokens").unwrap();
            assert_eq!((limit, remaining), ("100", "0"));
            // The deficit (50 tokens and the input's) refills at 100 a minute.
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((30..=60).contains(&retry), "{retry}");
        }
    }
    assert_eq!(mock_requests(&m).len(), 2);
    let text = metrics(&g);
    for key in ["tpm-openai", "tpm-anthropic"] {
        let line =
            format!("ringway_rate_limited_total{{key=\"{key}\",limit=\"tokens\"}} {FOLLOWING}\n");
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
}

/// Route limits, output-token rates and budgets on one node (no Redis): a route's `rpm` holds
/// for every key together; `output_tpm` refuses once the output reported used it; a budget in
/// dollars runs out at its price and says so as OpenAI says a spent quota; a budgeted key may
/// not reach an unpriced model.
#[test]
fn route_limits_output_rates_and_budgets_on_one_node() {
    let m = mock(&[]);
    let cfg = format!(
        "[server]\nworkers = 2\n\n{}\n\
         [[route]]\nmodel = \"narrow\"\ntargets = [\"mo/mock-gpt-up\"]\nrpm = 4\n\n\
         [[key]]\nname = \"a\"\nkey_env = \"RW_TEST_RL_A\"\n\n\
         [[key]]\nname = \"b\"\nkey_env = \"RW_TEST_RL_B\"\noutput_tpm = 30\n\n\
         [[key]]\nname = \"c\"\nkey_env = \"RW_TEST_RL_C\"\n\n\
         [[key]]\nname = \"spender\"\nkey_env = \"RW_TEST_RL_S\"\n\
         [key.budget]\nusd = 0.05\nperiod = \"day\"\nreserve_output_tokens = 16\n\n\
         [[price]]\nmodel = \"mock-gpt-up\"\ninput = 100.0\noutput = 200.0\n",
        standard_providers(&m)
    );
    let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
    env.extend([
        ("RW_TEST_RL_A", "sk-rl-a"),
        ("RW_TEST_RL_B", "sk-rl-b"),
        ("RW_TEST_RL_C", "sk-rl-c"),
        ("RW_TEST_RL_S", "sk-rl-s"),
    ]);
    let g = gateway_env(&cfg, &env);
    let narrow = |secret: &str| {
        request(
            g.addr,
            &post(
                "/v1/chat/completions",
                &[("authorization", &format!("Bearer {secret}"))],
                &openai_body("narrow", "hi", false),
            ),
        )
    };
    // Two keys share the route's 4 a minute.
    let statuses: Vec<u16> = [
        "sk-rl-a", "sk-rl-c", "sk-rl-a", "sk-rl-c", "sk-rl-a", "sk-rl-c",
    ]
    .iter()
    .map(|s| narrow(s).status)
    .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let r = narrow("sk-rl-a");
    assert_rate_limited(&r, Dialect::OpenAi, "requests");
    assert!(r.text().contains("route `narrow`"), "{}", r.text());

    // Output tokens: admitted while some are left, then refused until they refill.
    let mut outputs = 0;
    let mut refused = None;
    for _ in 0..20 {
        let r = call(g.addr, Dialect::OpenAi, "sk-rl-b", "mock:tokens=12", false);
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        outputs += r.json()["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let r = refused.expect("output_tpm never refused");
    assert!(outputs >= 30, "refused after {outputs} output tokens");
    assert_rate_limited(&r, Dialect::OpenAi, "tokens");
    assert!(r.text().contains("output tokens per min"), "{}", r.text());

    // $0.05 at $100/M input and $200/M output: a few requests, then a spent budget.
    let (mut spent, mut passed) = (0.0, 0);
    let spent_out = loop {
        let r = call(g.addr, Dialect::OpenAi, "sk-rl-s", "spend", false);
        if r.status != 200 {
            break r;
        }
        let u = &r.json()["usage"];
        spent += u["prompt_tokens"].as_f64().unwrap() * 100e-6
            + u["completion_tokens"].as_f64().unwrap() * 200e-6;
        passed += 1;
        assert!(passed < 500, "the budget never ran out");
    };
    assert_eq!(spent_out.status, 429, "{}", spent_out.text());
    let v = spent_out.json();
    assert_eq!(v["error"]["type"], "insufficient_quota", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Budget exhausted for key `spender`: $0.05 per day"));
    // Within the budget, give or take the last request's reservation (body / 4 + 16 tokens).
    assert!(
        spent <= 0.05 && spent > 0.04,
        "spent ${spent:.4} in {passed} requests"
    );
    // Anthropic's clients get their own shape for it.
    let r = call(g.addr, Dialect::Anthropic, "sk-rl-s", "spend", false);
    assert_eq!(r.status, 403, "claude has no price: {}", r.text());
    assert!(r.text().contains("has no price"), "{}", r.text());
}
