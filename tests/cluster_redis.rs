//! Two nodes sharing one real Redis (Debian's `redis-server`, started here on 127.0.0.1 with a
//! throwaway directory): one request limit, one token budget and one stream limit held across
//! both within the stated bounds, in all three dialects, streamed and not; Redis killed under
//! load and started again (no request hangs, limits fall back to each node's share, budgets
//! refuse as configured, one log line per change, what was spent meanwhile settled); and a
//! node that cannot reach its Redis at start refuses to start with the config line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::*;

const KEYS: &[(&str, &str)] = &[
    ("rl", "sk-cluster-rl"),
    ("bt", "sk-cluster-bt"),
    ("st", "sk-cluster-st"),
    ("free", "sk-cluster-free"),
];

fn env_name(key: &str) -> String {
    format!("RW_TEST_CLUSTER_{}", key.to_uppercase())
}

/// One node: two workers, `node_id`, this Redis, the standard providers and the keys with
/// `limits` (key name → its lines).
fn node(
    id: &str,
    redis: &Redis,
    mock: &Proc,
    limits: &[(&str, &str)],
    cluster_extra: &str,
) -> Proc {
    let mut cfg = format!(
        "[server]\nworkers = 2\n\n[cluster]\nnode_id = \"{id}\"\nredis = \"{}\"\n{cluster_extra}\n{}",
        redis.url(),
        standard_providers(mock)
    );
    for (name, _) in KEYS {
        let lines = limits
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, l)| *l);
        cfg.push_str(&format!(
            "\n[[key]]\nname = \"{name}\"\nkey_env = \"{}\"\n{lines}\n",
            env_name(name)
        ));
    }
    let names: Vec<(String, &str)> = KEYS.iter().map(|(n, s)| (env_name(n), *s)).collect();
    let mut env: Vec<(&str, &str)> = PROVIDER_KEYS.to_vec();
    env.extend(names.iter().map(|(n, s)| (n.as_str(), *s)));
    gateway_env(&cfg, &env)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Chat,
    Messages,
    Responses,
}

const DIALECTS: [Dialect; 3] = [Dialect::Chat, Dialect::Messages, Dialect::Responses];

/// One model call of `dialect`, streamed or not, with `secret`, on a fresh connection.
fn call(addr: SocketAddr, dialect: Dialect, secret: &str, prompt: &str, stream: bool) -> Response {
    let bearer = format!("Bearer {secret}");
    let (path, headers, body): (&str, Vec<(&str, &str)>, String) = match dialect {
        Dialect::Chat => {
            let mut b: serde_json::Value =
                serde_json::from_str(&openai_body("gpt", prompt, stream)).unwrap();
            if stream {
                b["stream_options"] = serde_json::json!({"include_usage": true});
            }
            (
                "/v1/chat/completions",
                vec![("authorization", bearer.as_str())],
                b.to_string(),
            )
        }
        Dialect::Messages => {
            let mut b: serde_json::Value =
                serde_json::from_str(&anthropic_body("claude", prompt, stream)).unwrap();
            b["max_tokens"] = 1024.into();
            (
                "/v1/messages",
                vec![("x-api-key", secret), ("anthropic-version", "2023-06-01")],
                b.to_string(),
            )
        }
        Dialect::Responses => (
            "/v1/responses",
            vec![("authorization", bearer.as_str())],
            serde_json::json!({"model": "gpt", "input": prompt, "stream": stream, "store": false})
                .to_string(),
        ),
    };
    request(addr, &post(path, &headers, &body))
}

/// The tokens (input + output) an answer reports, streamed or not.
fn usage_of(r: &Response, dialect: Dialect, stream: bool) -> u64 {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    if !stream {
        let j = r.json();
        return match dialect {
            Dialect::Chat => n(&j["usage"]["prompt_tokens"]) + n(&j["usage"]["completion_tokens"]),
            Dialect::Messages | Dialect::Responses => {
                n(&j["usage"]["input_tokens"]) + n(&j["usage"]["output_tokens"])
            }
        };
    }
    let mut total = 0;
    for (_, data) in sse_events(&r.body) {
        let Ok(j) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        total += match dialect {
            Dialect::Chat => n(&j["usage"]["prompt_tokens"]) + n(&j["usage"]["completion_tokens"]),
            Dialect::Messages => {
                n(&j["message"]["usage"]["input_tokens"]) + n(&j["usage"]["output_tokens"])
            }
            Dialect::Responses if j["type"] == "response.completed" => {
                n(&j["response"]["usage"]["input_tokens"])
                    + n(&j["response"]["usage"]["output_tokens"])
            }
            Dialect::Responses => 0,
        };
    }
    total
}

/// `threads` threads share `total` calls; call `i` goes to `addrs[i % len]` as `f` says.
/// Every answer with its index and how long it took.
fn hammer<F>(total: usize, threads: usize, f: F) -> Vec<(usize, Response, Duration)>
where
    F: Fn(usize) -> Response + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, next, out) = (f.clone(), next.clone(), out.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let r = f(i);
                out.lock().unwrap().push((i, r, t.elapsed()));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut v = std::mem::take(&mut *out.lock().unwrap());
    v.sort_by_key(|(i, _, _)| *i);
    v
}

#[test]
fn two_nodes_hold_one_request_limit_in_every_dialect() {
    const RPM: f64 = 600.0;
    const CALLS: usize = 960;
    let redis = Redis::start();
    let m = mock(&[]);
    let limits = [("rl", "rpm = 600")];
    let a = node("gw-a", &redis, &m, &limits, "");
    let b = node("gw-b", &redis, &m, &limits, "");
    let addrs = [a.addr, b.addr];
    let started = Instant::now();
    let rs = hammer(CALLS, 12, move |i| {
        let dialect = DIALECTS[i / 2 % 3];
        call(
            addrs[i % 2],
            dialect,
            "sk-cluster-rl",
            "hello",
            (i / 6) % 2 == 1,
        )
    });
    let took = started.elapsed().as_secs_f64();
    let passed = rs.iter().filter(|(_, r, _)| r.status == 200).count();
    let refused: Vec<_> = rs.iter().filter(|(_, r, _)| r.status == 429).collect();
    assert_eq!(passed + refused.len(), CALLS, "only 200s and 429s");
    // GCRA over the run: the full bucket plus what refilled while it ran.
    let allowed = RPM + RPM * took / 60.0;
    let bound = (allowed * 1.02).ceil() as usize;
    eprintln!(
        "admitted {passed} of {CALLS} in {took:.2}s: limit allows {allowed:.1}, bound {bound}"
    );
    assert!(passed <= bound, "{passed} admitted, over {bound}");
    // Leases held unspent by the other node cost at most a block each (3 of 600).
    assert!(
        passed as f64 >= RPM - 6.0,
        "{passed} admitted: far under the limit"
    );
    // Both nodes admitted and refused: the limit is one, not one per node.
    for addr in addrs {
        let (ok, no) = rs
            .iter()
            .enumerate()
            .fold((0, 0), |(ok, no), (i, (_, r, _))| {
                if addrs[i % 2] != addr {
                    (ok, no)
                } else if r.status == 200 {
                    (ok + 1, no)
                } else {
                    (ok, no + 1)
                }
            });
        assert!(ok > 100 && no > 100, "{addr}: {ok} admitted, {no} refused");
    }
    // Every dialect, streamed and not, was refused in its own format.
    for (i, r, _) in &refused {
        let dialect = DIALECTS[i / 2 % 3];
        assert!(r.header("retry-after").is_some());
        let j = r.json();
        match dialect {
            Dialect::Chat | Dialect::Responses => {
                assert_eq!(j["error"]["code"], "rate_limit_exceeded", "{j}")
            }
            Dialect::Messages => assert_eq!(j["error"]["type"], "rate_limit_error", "{j}"),
        }
    }
    // The lease traffic is a small part of the request traffic.
    let text = String::from_utf8(get_metrics(a.addr)).unwrap();
    assert!(
        text.contains("ringway_cluster_redis_round_trips_total"),
        "{text}"
    );
}

#[test]
fn two_nodes_hold_one_token_budget() {
    const BUDGET: u64 = 6000;
    const RESERVE: u64 = 64;
    let redis = Redis::start();
    let m = mock(&[]);
    let limits = [(
        "bt",
        "[key.budget]\ntokens = 6000\nperiod = \"day\"\nreserve_output_tokens = 64",
    )];
    let a = node("gw-a", &redis, &m, &limits, "");
    let b = node("gw-b", &redis, &m, &limits, "");
    let addrs = [a.addr, b.addr];
    let rs = hammer(600, 8, move |i| {
        let dialect = DIALECTS[i / 2 % 3];
        call(
            addrs[i % 2],
            dialect,
            "sk-cluster-bt",
            "spend it",
            (i / 6) % 2 == 1,
        )
    });
    let mut spent = 0;
    let mut largest = 0;
    for (i, r, _) in &rs {
        let (dialect, stream) = (DIALECTS[i / 2 % 3], (i / 6) % 2 == 1);
        match r.status {
            200 => {
                let u = usage_of(r, dialect, stream);
                assert!(u > 0, "usage of {dialect:?} stream={stream}: {}", r.text());
                spent += u;
                largest = largest.max(u);
            }
            429 => assert!(
                r.text().contains("Budget exhausted for key `bt`"),
                "{}",
                r.text()
            ),
            s => panic!("status {s}: {}", r.text()),
        }
    }
    // A lease is the larger of 0.5% of the budget and one reservation (the body over four
    // plus the output reserve); each node may run one lease over, and a request's usage
    // beyond its reservation.
    let reservation = 400 / 4 + RESERVE;
    let bound = BUDGET + 2 * (reservation.max(BUDGET / 200) + largest);
    eprintln!("spent {spent} of a budget of {BUDGET} (bound {bound})");
    assert!(spent <= bound, "spent {spent}, over {bound}");
    assert!(
        spent >= BUDGET * 9 / 10,
        "spent {spent}: far under the budget"
    );
    // Redis holds the period's count: the budget is spent there too.
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let used: u64 = redis
        .cli(&["HGET", &format!("ringway:b:bt:d:{day}"), "t"])
        .parse()
        .unwrap();
    assert!(used >= BUDGET * 9 / 10, "redis counts {used}");
}

#[test]
fn two_nodes_hold_one_token_rate() {
    const TPM: f64 = 3000.0;
    const THREADS: usize = 6;
    let redis = Redis::start();
    let m = mock(&[]);
    let limits = [("bt", "tpm = 3000")];
    let a = node("gw-a", &redis, &m, &limits, "");
    let b = node("gw-b", &redis, &m, &limits, "");
    let addrs = [a.addr, b.addr];
    let started = Instant::now();
    let rs = hammer(300, THREADS, move |i| {
        let dialect = DIALECTS[i / 2 % 3];
        call(
            addrs[i % 2],
            dialect,
            "sk-cluster-bt",
            "count me",
            (i / 6) % 2 == 1,
        )
    });
    let took = started.elapsed().as_secs_f64();
    let (mut spent, mut largest, mut refused) = (0, 0, 0);
    for (i, r, _) in &rs {
        let (dialect, stream) = (DIALECTS[i / 2 % 3], (i / 6) % 2 == 1);
        match r.status {
            200 => {
                let u = usage_of(r, dialect, stream);
                spent += u;
                largest = largest.max(u);
            }
            429 => {
                assert!(r.text().contains("tokens per min"), "{}", r.text());
                refused += 1;
            }
            s => panic!("status {s}: {}", r.text()),
        }
    }
    // Usage is known only afterwards: as on one node, what the requests in flight when the
    // bucket empties use comes on top (a client's next request can be admitted a moment before
    // its last answer's usage is charged: two per client), plus one lease block (0.5%) per node.
    let allowed = TPM + TPM * took / 60.0;
    let bound = allowed + 2.0 * 15.0 + (2 * THREADS) as f64 * largest as f64;
    eprintln!("spent {spent} tokens in {took:.2}s: rate allows {allowed:.0}, bound {bound:.0}; {refused} refused");
    assert!((spent as f64) <= bound, "spent {spent}, over {bound}");
    assert!(
        spent as f64 >= TPM * 0.9,
        "spent {spent}: far under the rate"
    );
    assert!(refused > 0);
}

#[test]
fn two_nodes_hold_one_stream_limit() {
    let redis = Redis::start();
    let m = mock(&[]);
    let limits = [("st", "max_streams = 4")];
    let a = node("gw-a", &redis, &m, &limits, "");
    let b = node("gw-b", &redis, &m, &limits, "");
    let addrs = [a.addr, b.addr];
    // Streams of about 2 s, arriving 100 ms apart, alternating nodes: exactly 4 are open at
    // once, wherever they land.
    let slow = "mock:tokens=8 mock:itl=250";
    let handles: Vec<_> = (0..10)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(100));
            let addr = addrs[i % 2];
            std::thread::spawn(move || call(addr, DIALECTS[i % 3], "sk-cluster-st", slow, true))
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // Once they ended, the slots are free again on both nodes.
    std::thread::sleep(Duration::from_millis(500));
    for addr in addrs {
        let r = call(addr, Dialect::Chat, "sk-cluster-st", "again", true);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// The rate-limited key's GCRA counter in Redis (its rpm of 60,000).
const SETTLED_KEY: &str = "ringway:r:k:rl:rpm:60000";

#[test]
fn redis_killed_under_load_falls_back_and_settles() {
    let mut redis = Redis::start();
    let m = mock(&[]);
    let limits = [
        ("rl", "rpm = 60000"),
        (
            "bt",
            "[key.budget]\ntokens = 100000\nperiod = \"day\"\nreserve_output_tokens = 64",
        ),
    ];
    let a = node("gw-a", &redis, &m, &limits, "");
    let b = node("gw-b", &redis, &m, &limits, "");
    let addrs = [a.addr, b.addr];
    let started = Instant::now();
    let load = std::thread::spawn(move || {
        let mut out = Vec::new();
        while started.elapsed() < Duration::from_millis(4500) {
            let at = started.elapsed();
            let rs = hammer(16, 8, move |i| {
                let secret = if i % 2 == 0 {
                    "sk-cluster-rl"
                } else {
                    "sk-cluster-bt"
                };
                call(
                    addrs[i / 2 % 2],
                    DIALECTS[i % 3],
                    secret,
                    "under load",
                    i % 4 == 1,
                )
            });
            out.extend(rs.into_iter().map(|(i, r, took)| (at, i, r, took)));
        }
        out
    });
    std::thread::sleep(Duration::from_millis(1200));
    redis.stop();
    std::thread::sleep(Duration::from_millis(900));
    // Not required by default: still ready, and says Redis is down.
    let ready = request(a.addr, &get("/readyz", &[]));
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(ready.text().contains("redis: down"), "{}", ready.text());
    std::thread::sleep(Duration::from_millis(900));
    redis.resume();
    // What the nodes spent while Redis was down is settled into the restarted Redis by their
    // first pipelines: the request counter then holds units not yet refilled. It expires once
    // the rate has caught up (a few hundred ms at this load), so it is looked for at once and
    // while the load runs, not after.
    let mut settled = false;
    while !load.is_finished() && !settled {
        settled = redis.cli(&["EXISTS", SETTLED_KEY]) == "1";
        std::thread::sleep(Duration::from_millis(10));
    }
    let rs = load.join().unwrap();
    let (mut rl_ok, mut bt_down, mut bt_ok_after) = (0, 0, 0);
    for (at, i, r, took) in &rs {
        // No request waits on Redis: each is answered at the gateway's own pace.
        assert!(*took < Duration::from_secs(2), "call took {took:?}");
        if i % 2 == 0 {
            assert_eq!(
                r.status,
                200,
                "the rate-limited key keeps its local share (at {at:?}): {}",
                r.text()
            );
            rl_ok += 1;
        } else {
            match r.status {
                200 if *at > Duration::from_millis(3800) => bt_ok_after += 1,
                200 => {}
                503 => {
                    assert!(
                        r.text().contains("shared store that is unreachable"),
                        "{}",
                        r.text()
                    );
                    bt_down += 1;
                }
                s => panic!("status {s}: {}", r.text()),
            }
        }
    }
    eprintln!("{} calls: {rl_ok} rate-limited key ok; budget key: {bt_down} refused while down, {bt_ok_after} ok after", rs.len());
    assert!(bt_down > 0, "budgets fail closed while Redis is down");
    assert!(bt_ok_after > 0, "budgets work again once Redis is back");
    // One line per change per node: down once, back once.
    // One line per change per node: down once, back once (the line at start may come
    // before or after the address line the harness waits for).
    for n in [&a, &b] {
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            log.extend(n.drain_log().into_iter().filter(|l| l.contains("redis: ")));
            let down = log.iter().position(|l| l.contains("redis: unreachable"));
            if down.is_some_and(|i| log.len() > i + 1) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        log.extend(n.drain_log().into_iter().filter(|l| l.contains("redis: ")));
        let down = log.iter().position(|l| l.contains("redis: unreachable"));
        let after: Vec<&String> = down.map_or(vec![], |i| log[i + 1..].iter().collect());
        assert_eq!(
            log.iter().filter(|l| l.contains("unreachable")).count(),
            1,
            "{log:#?}"
        );
        assert!(
            after.len() == 1 && after[0].contains("redis: reachable"),
            "{log:#?}"
        );
    }
    assert!(
        settled,
        "nothing settled into {SETTLED_KEY} while the load ran after the restart"
    );
}

#[test]
fn readyz_follows_a_required_redis() {
    let mut redis = Redis::start();
    let m = mock(&[]);
    let n = node("gw-r", &redis, &m, &[], "ready_requires = [\"redis\"]");
    let readyz = |want: u16, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = request(n.addr, &get("/readyz", &[]));
            if r.status == want && r.text().contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "{}: {}", r.status, r.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    readyz(200, "redis: up");
    redis.stop();
    readyz(503, "redis unreachable");
    redis.resume();
    readyz(200, "redis: up");
    let text = String::from_utf8(get_metrics(n.addr)).unwrap();
    assert!(
        text.contains("ringway_cluster_store_state_changes_total{store=\"redis\"} 2"),
        "{text}"
    );
}

#[test]
fn a_node_that_cannot_reach_its_redis_does_not_start() {
    let port = closed_port();
    let path = write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[cluster]\nnode_id = \"gw-a\"\nredis = \"redis://127.0.0.1:{port}/0\"\n"
    ));
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--driver", &driver()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:6: cluster.redis: Redis at redis://127.0.0.1:{port}/0 unreachable",
        path.display()
    );
    assert!(err.contains(&want), "{err}");
    // A bad URL is refused by `check` already.
    check_refuses(
        "[cluster]\nredis = \"http://127.0.0.1:6379\"\n",
        ":2: cluster.redis",
        "expected redis://",
    );
}

fn get_metrics(addr: SocketAddr) -> Vec<u8> {
    request(
        addr,
        &get("/metrics", &[("authorization", "Bearer sk-cluster-free")]),
    )
    .body
}
