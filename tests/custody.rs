//! The custody store through the real binary: a record per request written and read back by
//! `GET /v1/custody/{id}` (streamed, translated, failed over), who may read it (owner, admin;
//! anyone else the same 404 as a missing id), `/v1/usage` sums against the records and the
//! mock's usage, records surviving a restart, and a stalled writer not slowing the workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY_A: &str = "sk-custody-team-a-11";
const KEY_B: &str = "sk-custody-team-b-22";
const KEY_ADMIN: &str = "sk-custody-admin-33";
/// How long a test waits for a record to be written.
const WAIT: Duration = Duration::from_secs(10);

/// Mock and gateway with the custody store in `db`, three keys, the standard providers and a
/// route `fb` whose first target is dead (so it fails over).
fn setup_custody(db: &std::path::Path, custody_extra: &str, env: &[(&str, &str)]) -> (Proc, Proc) {
    let m = mock(&[]);
    let g = gateway_on(&m, db, custody_extra, env);
    (m, g)
}

fn config(m: &Proc, db: &std::path::Path, custody_extra: &str) -> String {
    format!(
        r#"
[access_log]
enabled = false

[custody]
path = "{}"
{custody_extra}

{}
{DEAD_FIRST_ROUTE}
[[key]]
name = "team-a"
key_env = "RW_TEST_CUSTODY_A"

[[key]]
name = "team-b"
key_env = "RW_TEST_CUSTODY_B"

[[key]]
name = "ops"
key_env = "RW_TEST_CUSTODY_ADMIN"
admin = true
"#,
        db.display(),
        standard_providers(m)
    )
}

fn gateway_on(m: &Proc, db: &std::path::Path, custody_extra: &str, env: &[(&str, &str)]) -> Proc {
    let mut all = PROVIDER_KEYS.to_vec();
    all.extend_from_slice(&[
        ("RW_TEST_CUSTODY_A", KEY_A),
        ("RW_TEST_CUSTODY_B", KEY_B),
        ("RW_TEST_CUSTODY_ADMIN", KEY_ADMIN),
    ]);
    all.extend_from_slice(env);
    gateway_env(&config(m, db, custody_extra), &all)
}

fn bearer(key: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {key}"))]
}

fn openai(g: &Proc, key: &str, model: &str, stream: bool) -> Response {
    let mut body = json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "custody please"}],
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    let h = bearer(key);
    request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[(h[0].0, h[0].1.as_str())],
            &body.to_string(),
        ),
    )
}

fn request_id(r: &Response) -> String {
    r.header("x-ringway-request-id")
        .expect("a request id")
        .to_owned()
}

fn lookup(g: &Proc, key: &str, id: &str) -> Response {
    let h = bearer(key);
    request(
        g.addr,
        &get(&format!("/v1/custody/{id}"), &[(h[0].0, h[0].1.as_str())]),
    )
}

/// The record of `id` as `key` sees it, once written (bounded wait: written after the answer).
fn record(g: &Proc, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = lookup(g, key, id);
        if r.status == 200 {
            return r.json();
        }
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(Instant::now() < deadline, "no record for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn usage(g: &Proc, key: &str, query: &str) -> Value {
    let h = bearer(key);
    let r = request(
        g.addr,
        &get(&format!("/v1/usage?{query}"), &[(h[0].0, h[0].1.as_str())]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[test]
fn records_of_streamed_translated_and_failed_over_requests_read_back_by_their_owner_only() {
    let db = temp_path("custody.db");
    let (_m, g) = setup_custody(&db, "", &[]);

    // Streamed, same dialect.
    let streamed = openai(&g, KEY_A, "gpt", true);
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    // Translated: an Anthropic client on an OpenAI-kind provider.
    let translated = request(
        g.addr,
        &post(
            "/v1/messages",
            &[("x-api-key", KEY_A), ("anthropic-version", "2023-06-01")],
            &anthropic_body("gpt", "custody please", false),
        ),
    );
    assert_eq!(translated.status, 200, "{}", translated.text());
    // Failed over: the first target refuses connections, the second serves.
    let failed_over = openai(&g, KEY_A, "fb", false);
    assert_eq!(failed_over.status, 200, "{}", failed_over.text());

    let s = record(&g, KEY_A, &request_id(&streamed));
    assert_eq!(s["id"], request_id(&streamed));
    assert_eq!(s["key"], "team-a");
    assert_eq!(s["dialect"], "openai");
    assert_eq!(s["route"], "gpt");
    assert_eq!(s["stream"], true);
    assert_eq!(s["status"], 200);
    assert_eq!(s["error"], Value::Null);
    assert_eq!(s["tier"], Value::Null);
    assert_eq!(s["pii"], json!({}));
    assert_eq!(s["served_by"], "mo/mock-gpt-up");
    assert!(s["ttft_ms"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["duration_ms"].as_f64().unwrap() >= s["ttft_ms"].as_f64().unwrap());
    assert!(s["time"].as_str().unwrap().starts_with(&today()), "{s}");
    let attempts = s["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{s}");
    assert_eq!(attempts[0]["target"], "mo/mock-gpt-up");
    assert_eq!(attempts[0]["status"], 200);
    assert_eq!(attempts[0]["region"], Value::Null);
    assert!(n(&s["usage"]["output"]) > 0, "{s}");
    assert!(!s.to_string().contains(KEY_A), "never the key");
    assert!(
        !s.to_string().contains("custody please"),
        "never the prompt"
    );

    let t = record(&g, KEY_A, &request_id(&translated));
    assert_eq!(t["dialect"], "anthropic");
    assert_eq!(t["stream"], false);
    assert_eq!(t["ttft_ms"], Value::Null);
    assert_eq!(t["served_by"], "mo/mock-gpt-up");
    let client = &translated.json()["usage"];
    assert_eq!(n(&t["usage"]["output"]), n(&client["output_tokens"]), "{t}");

    let f = record(&g, KEY_A, &request_id(&failed_over));
    let attempts = f["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{f}");
    let (last, before) = attempts.split_last().unwrap();
    for a in before {
        assert_eq!(a["target"], "dead/never-up", "{f}");
        assert_eq!(a["failure"], "connect", "{f}");
        assert_eq!(a["status"], Value::Null, "{f}");
    }
    assert_eq!(last["target"], "mo/mock-gpt-up");
    assert_eq!(last["status"], 200);
    assert_eq!(last["failure"], Value::Null);
    assert!(last["start_ms"].as_f64().unwrap() >= before[0]["start_ms"].as_f64().unwrap());
    assert_eq!(f["served_by"], "mo/mock-gpt-up");
    let client = &failed_over.json()["usage"];
    assert_eq!(n(&f["usage"]["input"]), n(&client["prompt_tokens"]));
    assert_eq!(n(&f["usage"]["output"]), n(&client["completion_tokens"]));

    // Another key: the same 404 as an id that does not exist. An admin key reads it.
    let other = lookup(&g, KEY_B, &request_id(&streamed));
    let missing = lookup(&g, KEY_A, "rw-00000000-00-0000000000");
    assert_eq!((other.status, missing.status), (404, 404));
    assert_eq!(other.body, missing.body, "no existence leak");
    assert_eq!(
        record(&g, KEY_ADMIN, &request_id(&streamed))["key"],
        "team-a"
    );
    // No key at all: the gateway has keys, so a 401.
    let anonymous = request(
        g.addr,
        &get(&format!("/v1/custody/{}", request_id(&streamed)), &[]),
    );
    assert_eq!(anonymous.status, 401);

    // Usage: team-a's three requests summed as the records say (the mock's numbers).
    let records = [&s, &t, &f];
    let sum = |field: &str| records.iter().map(|r| n(&r["usage"][field])).sum::<u64>();
    let day = today();
    let mine = usage(&g, KEY_A, &format!("from={day}&to={day}"));
    let rows = mine["data"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["key"] == "team-a"), "{mine}");
    let total = |rows: &[Value], field: &str| rows.iter().map(|r| n(&r[field])).sum::<u64>();
    assert_eq!(total(rows, "requests"), 3, "{mine}");
    assert_eq!(total(rows, "input_tokens"), sum("input"), "{mine}");
    assert_eq!(total(rows, "output_tokens"), sum("output"), "{mine}");
    assert_eq!(total(rows, "cache_read_tokens"), sum("cache_read"));
    assert_eq!(total(rows, "reasoning_tokens"), sum("reasoning"));
    let per_route: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["route"].as_str().unwrap(), n(&r["requests"])))
        .collect();
    assert_eq!(per_route, vec![("fb", 1), ("gpt", 2)], "{mine}");
    assert_eq!(mine["truncated"], false);
    // team-b made none and sees none of team-a's; the admin sees team-a's.
    let theirs = usage(&g, KEY_B, &format!("from={day}"));
    assert_eq!(theirs["data"], json!([]), "{theirs}");
    let all = usage(&g, KEY_ADMIN, "");
    let rows = all["data"].as_array().unwrap();
    assert_eq!(total(rows, "requests"), 3, "{all}");
    // A day before any record: nothing. A bad date: 400.
    let empty = usage(&g, KEY_ADMIN, "from=2001-01-01&to=2001-01-02");
    assert_eq!(empty["data"], json!([]));
    let h = bearer(KEY_A);
    let bad = request(
        g.addr,
        &get("/v1/usage?from=last-week", &[(h[0].0, h[0].1.as_str())]),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
}

/// The record is not read back before the stop: the drained exit's flush writes it.
#[test]
fn records_survive_a_restart() {
    let db = temp_path("restart.db");
    let m = mock(&[]);
    let mut g = gateway_on(&m, &db, "", &[]);
    let r = openai(&g, KEY_A, "gpt", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = request_id(&r);
    signal(&g, "TERM");
    assert!(
        exit_within(&mut g, Duration::from_secs(10)).is_some(),
        "exits after SIGTERM"
    );
    drop(g);
    let g = gateway_on(&m, &db, "", &[]);
    let again = lookup(&g, KEY_A, &id);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], id);
    assert_eq!(again.json()["key"], "team-a");
}

fn metric(g: &Proc, name: &str) -> f64 {
    let h = bearer(KEY_ADMIN);
    let r = request(g.addr, &get("/metrics", &[(h[0].0, h[0].1.as_str())]));
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
}

/// Latencies (ms) of `rounds` requests to each gateway, one keep-alive connection each,
/// interleaved (a round sends one request to each, starting with a different gateway each
/// round), so that the machine's own noise (other jobs on a shared 2-core box) falls on all
/// of them alike instead of on whichever ran during a busy second. Each list comes back sorted.
fn interleaved_latencies(gateways: &[&Proc], rounds: usize) -> Vec<Vec<f64>> {
    let body = openai_body("gpt", "stall?", false);
    let req = post(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {KEY_A}"))],
        &body,
    );
    let mut clients: Vec<Client> = gateways.iter().map(|g| Client::connect(g.addr)).collect();
    let mut out = vec![Vec::with_capacity(rounds); gateways.len()];
    for round in 0..rounds {
        for j in 0..gateways.len() {
            let at = (round + j) % gateways.len();
            let t = Instant::now();
            clients[at].send_raw(&req);
            let r = clients[at].read_response().expect("a response");
            assert_eq!(r.status, 200, "{}", r.text());
            out[at].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    for l in &mut out {
        l.sort_by(f64::total_cmp);
    }
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The median, 99th percentile and maximum of sorted latencies, for the log.
fn spread(sorted: &[f64]) -> String {
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(sorted, 0.5),
        pct(sorted, 0.99),
        pct(sorted, 1.0)
    )
}

/// The same request sequence, side by side, against three gateways: the store off, on with a
/// healthy writer, and on with a writer that sleeps `STALL_MS` before each batch (the test
/// hook) and a channel of 8 records. The stall outlasts the client's read timeout, so a
/// request or a lookup that waited on the writer even once fails the test: every one answered
/// is the proof, with no clock (the latencies are logged; how fast belongs in the benches).
/// The overflow is dropped, counted in `ringway_custody_dropped_total` and logged.
#[test]
fn a_stalled_writer_does_not_slow_the_workers() {
    const STALL_MS: u64 = 60_000;
    const REQUESTS: usize = 200;
    /// Records the stalled writer can take in one stall: the one it holds, and the channel.
    const TAKEN_PER_STALL: usize = 1 + 8;
    let m = mock(&[]);
    let off = gateway_on(&m, &temp_path("baseline.db"), "enabled = false", &[]);
    let healthy = gateway_on(&m, &temp_path("healthy.db"), "", &[]);
    let stall = STALL_MS.to_string();
    let g = gateway_on(
        &m,
        &temp_path("stalled.db"),
        "channel_records = 8",
        &[("RINGWAY_TEST_CUSTODY_STALL_MS", stall.as_str())],
    );
    let started = Instant::now();
    let lat = interleaved_latencies(&[&off, &healthy, &g], REQUESTS);
    let elapsed = started.elapsed();
    let (off_lat, fine, on) = (&lat[0], &lat[1], &lat[2]);
    let healthy_dropped = metric(&healthy, "ringway_custody_dropped_total");
    let dropped = metric(&g, "ringway_custody_dropped_total");
    eprintln!("{REQUESTS} requests each, interleaved, in {elapsed:?}:");
    eprintln!("custody off:     {}", spread(off_lat));
    eprintln!(
        "custody on:      {}  dropped {healthy_dropped}",
        spread(fine)
    );
    eprintln!("writer stalled:  {}  dropped {dropped}", spread(on));
    assert_eq!(healthy_dropped, 0.0, "a healthy writer keeps up");
    // Every request beside the stalled writer was answered (`interleaved_latencies` reads
    // each, within the client's read timeout, far below one stall).
    // Every record the writer could not take was dropped, and counted: it takes at most
    // `TAKEN_PER_STALL` per stall begun, and at least the channel's 8.
    let stalls = 1 + (elapsed.as_millis() / u128::from(STALL_MS)) as usize;
    let most_taken = (TAKEN_PER_STALL * stalls).min(REQUESTS);
    assert!(
        dropped >= (REQUESTS - most_taken) as f64 && dropped <= (REQUESTS - 8) as f64,
        "dropped {dropped} of {REQUESTS} in {stalls} stall(s)"
    );
    // And said so in the log (the warning is rate-limited, the first one is immediate).
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("custody writer is behind"))
    {
        assert!(
            Instant::now() < deadline,
            "no \"custody writer is behind\" warning in the log:\n{}",
            seen.join("\n")
        );
        seen.extend(g.drain_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A lookup while the writer is stalled answers (before the stall ends, or the client's
    // read would time out): the reader has its own thread and connection, and the writer's
    // full channel is not its queue.
    let h = bearer(KEY_ADMIN);
    let r = request(
        g.addr,
        &get(
            "/v1/custody/rw-00000000-00-0000000000",
            &[(h[0].0, h[0].1.as_str())],
        ),
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Now, in Unix milliseconds.
fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Records written into the file before the gateway starts (through the library's store, as
/// another node would): the one past `retention_days` is removed at start, the recent one
/// stays and reads back.
#[test]
fn retention_removes_old_records_at_start() {
    use ringway::custody::store::{CustodyStore, Sqlite};
    use ringway::custody::Record;
    let db = temp_path("retention.db");
    let now_ms = unix_ms();
    const DAY: i64 = 86_400_000;
    {
        let mut store = Sqlite::open(&db).unwrap();
        let old = |id: &str, age_days: i64| Record {
            id: id.into(),
            time_ms: now_ms - age_days * DAY,
            key: Some("team-a".into()),
            dialect: "openai",
            status: 200,
            ..Record::default()
        };
        store
            .write_batch(&[old("rw-old", 10), old("rw-recent", 2)])
            .unwrap();
    }
    let m = mock(&[]);
    let g = gateway_on(&m, &db, "retention_days = 7", &[]);
    let recent = lookup(&g, KEY_ADMIN, "rw-recent");
    assert_eq!(recent.status, 200, "{}", recent.text());
    assert_eq!(recent.json()["key"], "team-a");
    assert_eq!(lookup(&g, KEY_ADMIN, "rw-old").status, 404);
    let all = usage(&g, KEY_ADMIN, "from=2000-01-01");
    let rows = all["data"].as_array().unwrap();
    assert_eq!(
        rows.iter().map(|r| n(&r["requests"])).sum::<u64>(),
        1,
        "{all}"
    );
}

#[test]
fn a_tiered_request_records_its_tier_and_where_each_attempt_ran() {
    let db = temp_path("tiered.db");
    let m = mock(&[]);
    let text = format!(
        r#"
[custody]
path = "{}"

[[tier]]
name = "canada"
jurisdictions = ["CA"]

[[provider]]
name = "ca-oa"
kind = "openai"
base_url = "http://{}/v1"
api_key_env = "RW_TEST_OPENAI_KEY"
region = "ca-central-1"
jurisdiction = "CA"

[[route]]
model = "gpt"
targets = ["ca-oa/mock-gpt-up"]

[[key]]
name = "team-a"
key_env = "RW_TEST_CUSTODY_A"
"#,
        db.display(),
        m.addr
    );
    let mut env = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_CUSTODY_A", KEY_A));
    let g = gateway_env(&text, &env);
    let h = bearer(KEY_A);
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[(h[0].0, h[0].1.as_str()), ("x-privacy-tier", "canada")],
            &openai_body("gpt", "where did this go", false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ringway-jurisdiction"), Some("CA"));
    let rec = record(&g, KEY_A, &request_id(&r));
    assert_eq!(rec["tier"], "canada", "{rec}");
    let attempt = &rec["attempts"][0];
    assert_eq!(attempt["region"], "ca-central-1", "{rec}");
    assert_eq!(attempt["jurisdiction"], "CA", "{rec}");
    assert_eq!(rec["served_by"], "ca-oa/mock-gpt-up", "{rec}");
}

#[test]
fn the_record_counts_the_pii_replaced_by_kind_never_the_values() {
    let db = temp_path("pii.db");
    let m = mock(&[]);
    let text = format!(
        "[custody]\npath = \"{}\"\n\n[pii]\nenabled = true\n{}\n[[key]]\nname = \"team-a\"\nkey_env = \"RW_TEST_CUSTODY_A\"\n",
        db.display(),
        standard_providers(&m)
    );
    let mut env = PROVIDER_KEYS.to_vec();
    env.push(("RW_TEST_CUSTODY_A", KEY_A));
    let g = gateway_env(&text, &env);
    let h = bearer(KEY_A);
    let prompt = "mail jane.roe@corp.test or jim.poe@corp.test from 10.1.2.3";
    let r = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[(h[0].0, h[0].1.as_str())],
            &openai_body("gpt", prompt, false),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = record(&g, KEY_A, &request_id(&r));
    assert_eq!(rec["pii"]["email"], 2, "{rec}");
    assert_eq!(rec["pii"]["ipv4"], 1, "{rec}");
    let stored = rec.to_string();
    assert!(
        !stored.contains("jane.roe") && !stored.contains("10.1.2.3"),
        "{stored}"
    );
}

/// Rows in the big store: a usage query over them takes long enough (about a second on a
/// debug build) that a writer answering it would hold up every record behind it.
const BIG_ROWS: usize = 200_000;

/// A database file, with its WAL files, removed when dropped (the big one is ~100 MB).
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

/// A store holding [`BIG_ROWS`] records of ten `bulk-*` keys over five routes and the 20 days
/// before the last hour (1000 usage rows), written through the library's store.
fn big_db(name: &str) -> Scratch {
    use ringway::custody::store::{CustodyStore, Sqlite};
    use ringway::custody::Record;
    let db = Scratch(temp_path(name));
    let now_ms = unix_ms();
    let t = Instant::now();
    let mut store = Sqlite::open(&db.0).unwrap();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..BIG_ROWS {
        let at = i as i64;
        batch.push(Record {
            id: format!("rw-bulk-{i}"),
            // An hour ago and older: never in the traffic's own counts below.
            time_ms: now_ms - 3_600_000 - (at / 50 % 20) * 86_400_000 - at % 50,
            key: Some(format!("bulk-{}", i % 10)),
            route: Some(format!("r{}", i / 10 % 5)),
            dialect: "openai",
            status: 200,
            usage: Some(ringway::usage::Usage {
                input: 10,
                output: 3,
                ..Default::default()
            }),
            ..Record::default()
        });
        if batch.len() == batch.capacity() {
            store.write_batch(&batch).unwrap();
            batch.clear();
        }
    }
    store.write_batch(&batch).unwrap();
    eprintln!("{BIG_ROWS} records written in {:?}", t.elapsed());
    db
}

fn sum_requests(v: &Value) -> u64 {
    v["data"]
        .as_array()
        .map_or(0, |rows| rows.iter().map(|r| n(&r["requests"])).sum())
}

/// Lookups have their own connection and thread. With usage queries over [`BIG_ROWS`]
/// records running the whole time, requests go on (paced, a few hundred a second) and every
/// record is written: none dropped from a small (128) channel, all read back. Were the queries
/// on the writer's thread, each would hold the writer for its whole length (about a second)
/// and the channel would overflow. The channel leaves the writer ~300 ms of slack for the
/// disk's own stalls (an fsync behind other jobs' writes was seen to take 90 ms). Then the
/// lookups' own queue (`read_queue = 2`) under a burst of those queries: past it, a lookup is
/// refused at once with a 503 in the caller's format, never left to wait.
#[test]
fn a_big_usage_query_neither_holds_up_records_nor_queues_without_bound() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const REQUESTS: usize = 300;
    /// Pause between two requests.
    const PACE: Duration = Duration::from_millis(2);
    const CALLERS: usize = 12;
    /// Usage queries at most while waiting for one answered whole.
    const MAX_QUERIES: usize = 20;
    let db = big_db("big.db");
    let m = mock(&[]);
    let g = gateway_on(&m, &db.0, "channel_records = 128\nread_queue = 2", &[]);
    let addr = g.addr;
    let admin_get = |path: &str| {
        let h = bearer(KEY_ADMIN);
        get(path, &[(h[0].0, h[0].1.as_str())])
    };
    let all_usage = admin_get("/v1/usage?from=2000-01-01");
    // One record written first: the writer's first commit (starting the WAL) is behind it.
    let first = openai(&g, KEY_A, "gpt", false);
    assert_eq!(first.status, 200, "{}", first.text());
    record(&g, KEY_A, &request_id(&first));

    let stop = Arc::new(AtomicBool::new(false));
    let querying = {
        let stop = stop.clone();
        let raw = all_usage.clone();
        std::thread::spawn(move || {
            let mut done: Vec<(u16, u64, f64, String)> = Vec::new();
            // Queries back to back until the traffic ends, and on until one whole query was
            // answered (a slow machine may see some cut by the lookup deadline), boundedly.
            let answered = |d: &[(u16, u64, f64, String)]| d.iter().any(|q| q.0 == 200);
            while !stop.load(Ordering::Relaxed) || (!answered(&done) && done.len() < MAX_QUERIES) {
                let t = Instant::now();
                let r = request(addr, &raw);
                let summed = if r.status == 200 {
                    sum_requests(&r.json())
                } else {
                    0
                };
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                done.push((r.status, summed, ms, r.text()));
            }
            done
        })
    };
    // Let the first query start before the traffic does.
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let mut client = Client::connect(addr);
    let raw = post(
        "/v1/chat/completions",
        &[("authorization", &format!("Bearer {KEY_A}"))],
        &openai_body("gpt", "while a big query runs", false),
    );
    let mut lat = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let sent = Instant::now();
        client.send_raw(&raw);
        let r = client.read_response().expect("a response");
        assert_eq!(r.status, 200, "{}", r.text());
        lat.push(sent.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(PACE);
    }
    lat.sort_by(f64::total_cmp);
    let traffic = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let queries = querying.join().unwrap();
    let dropped = metric(&g, "ringway_custody_dropped_total");
    let mut took: Vec<f64> = queries.iter().map(|q| q.2).collect();
    took.sort_by(f64::total_cmp);
    eprintln!(
        "{REQUESTS} requests in {traffic:?} ({}) beside {} usage queries over {BIG_ROWS} rows ({}); dropped {dropped}",
        spread(&lat),
        queries.len(),
        spread(&took)
    );
    assert_eq!(dropped, 0.0, "records dropped while usage queries ran");
    // Each query answered whole, or cut by the lookup deadline with its own 503 (a loaded
    // machine: 5 s was seen); at least one answered.
    assert!(
        queries.iter().any(|q| q.0 == 200),
        "no usage query answered: {queries:?}"
    );
    for (status, summed, _, text) in &queries {
        if *status == 200 {
            assert!(*summed >= BIG_ROWS as u64, "{queries:?}");
        } else {
            assert_eq!(*status, 503, "a usage query failed: {queries:?}");
            assert!(text.contains("did not answer in time"), "{text}");
        }
    }
    // Every record of the traffic is written (bounded wait: written after the answers).
    let day = today();
    let deadline = Instant::now() + WAIT;
    loop {
        let written = sum_requests(&usage(&g, KEY_A, &format!("from={day}")));
        if written == REQUESTS as u64 + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{written} of {} records written",
            REQUESTS + 1
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A burst of big queries, half from OpenAI-style callers, half Anthropic-style.
    let start = Arc::new(std::sync::Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let start = start.clone();
            let anthropic = i % 2 == 1;
            let raw = if anthropic {
                get(
                    "/v1/usage?from=2000-01-01",
                    &[
                        ("x-api-key", KEY_ADMIN),
                        ("anthropic-version", "2023-06-01"),
                    ],
                )
            } else {
                all_usage.clone()
            };
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                start.wait();
                let t = Instant::now();
                c.send_raw(&raw);
                let r = c.read_response().expect("a response");
                (anthropic, r, t.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let busy: Vec<_> = answers.iter().filter(|a| a.1.status == 503).collect();
    let served = answers.iter().filter(|a| a.1.status == 200).count();
    eprintln!(
        "{CALLERS} concurrent usage queries: {served} answered, {} refused busy",
        busy.len()
    );
    assert!(served >= 1, "none answered");
    assert_eq!(served + busy.len(), CALLERS, "only 200 or 503");
    assert!(!busy.is_empty(), "a full queue refuses");
    // A full queue refuses before any wait (its own message); a lookup that was queued and
    // then waited past its time says so instead. Which one a caller gets depends on the
    // machine's speed, so the test asks for at least one refusal of the first kind and reads
    // the message, not a clock.
    assert!(
        busy.iter()
            .any(|(_, r, _)| r.text().contains("custody store is busy")),
        "a full queue refuses at once: {:?}",
        busy.iter()
            .map(|(_, r, took)| (r.text(), *took))
            .collect::<Vec<_>>()
    );
    for (anthropic, r, _) in &busy {
        let v = r.json();
        if *anthropic {
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
        } else {
            assert_eq!(v["error"]["code"], "gateway_overloaded", "{v}");
        }
        let text = v.to_string();
        assert!(
            text.contains("custody store is busy") || text.contains("did not answer in time"),
            "says the store is busy: {v}"
        );
    }
}

/// Requests refused at authentication (no key, a wrong key; either dialect) leave no
/// record: anyone reaching the port could otherwise fill the disk. They still count in the
/// metrics. Everything after authentication keeps its record: a tier refusal (403), an
/// unknown model (404), a success.
#[test]
fn requests_refused_at_authentication_leave_no_record() {
    let db = temp_path("unauthenticated.db");
    let m = mock(&[]);
    let g = gateway_on(
        &m,
        &db,
        "[[tier]]\nname = \"canada\"\njurisdictions = [\"CA\"]",
        &[],
    );
    let body = openai_body("gpt", "who are you", false);
    let refused: Vec<Response> = [
        post("/v1/chat/completions", &[], &body),
        post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-not-a-key")],
            &body,
        ),
        post(
            "/v1/messages",
            &[
                ("x-api-key", "sk-not-a-key"),
                ("anthropic-version", "2023-06-01"),
            ],
            &anthropic_body("gpt", "who are you", false),
        ),
    ]
    .iter()
    .map(|raw| request(g.addr, raw))
    .collect();
    for r in &refused {
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let h = bearer(KEY_A);
    let auth = [(h[0].0, h[0].1.as_str())];
    let tier = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[auth[0], ("x-privacy-tier", "canada")],
            &body,
        ),
    );
    assert_eq!(tier.status, 403, "{}", tier.text());
    let unknown = request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &auth,
            &openai_body("no-such-model", "hi", false),
        ),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let ok = openai(&g, KEY_A, "gpt", false);
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The records after authentication are written (the success's last).
    assert_eq!(record(&g, KEY_A, &request_id(&tier))["status"], 403);
    assert_eq!(record(&g, KEY_A, &request_id(&unknown))["status"], 404);
    assert_eq!(record(&g, KEY_A, &request_id(&ok))["status"], 200);
    // By then the refused ones, handed over (or not) before, would be written too.
    for r in &refused {
        let looked = lookup(&g, KEY_ADMIN, &request_id(r));
        assert_eq!(looked.status, 404, "a record of a 401: {}", looked.text());
    }
    let all = usage(&g, KEY_ADMIN, "");
    assert_eq!(sum_requests(&all), 3, "{all}");
    // Still counted: the 401s in the responses and in the records left out (a worker's counts
    // reach another worker's scrape within a second).
    let h = bearer(KEY_ADMIN);
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = request(g.addr, &get("/metrics", &[(h[0].0, h[0].1.as_str())])).text();
        let sum = |prefix: &str, with: &str| -> f64 {
            scrape
                .lines()
                .filter(|l| l.starts_with(prefix) && l.contains(with))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let unauthorized = sum("ringway_requests_total{", "status=\"401\"");
        let skipped = sum("ringway_custody_unauthenticated_total ", "");
        if (unauthorized, skipped) == (3.0, 3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "401s {unauthorized}, skipped {skipped}: {scrape}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The kinds of token as the record, `/v1/usage` (with `_tokens`) and the `gen_ai_token_type`
/// label name them, in the order of [`token_counts`].
const TOKEN_KINDS: [&str; 5] = ["input", "output", "cache_read", "cache_write", "reasoning"];

fn token_counts(u: &ringway::usage::Usage) -> [u64; 5] {
    [u.input, u.output, u.cache_read, u.cache_write, u.reasoning]
}

/// Every kind of token counted through each client dialect (chat, messages, responses) on
/// each provider kind, streamed and not. The mock reports counts the test sets (`mock:input=`
/// …), different for each request so a count taken from the wrong request or added twice
/// shows in the sums. Each provider says them its own way: OpenAI puts the cached part inside
/// `prompt_tokens` and the reasoning inside `completion_tokens`, and has no cache-write field;
/// Anthropic reports the cached parts beside `input_tokens` (added back) and no reasoning
/// count, its thinking block (streamed as text to the client) being part of `output_tokens`.
/// Thinking is counted once: output is the answer's 5 words plus the reasoning, never more.
/// The record, the `/v1/usage` sums and the `ringway_tokens_total` series must all agree.
#[test]
fn every_token_kind_is_counted_once_through_each_dialect_and_provider() {
    let db = temp_path("tokens.db");
    let (_m, g) = setup_custody(&db, "", &[]);
    let bearer_a = format!("Bearer {KEY_A}");
    // (route, provider) → summed expectation.
    let mut want: Vec<((&str, &str), [u64; 5])> =
        vec![(("gpt", "mo"), [0; 5]), (("claude", "ma"), [0; 5])];
    let mut k = 0u64;
    for (route, provider) in [("gpt", "mo"), ("claude", "ma")] {
        let anthropic_provider = provider == "ma";
        for client in ["chat", "messages", "responses"] {
            for stream in [false, true] {
                let (input, cache_read, cache_write, reasoning) =
                    (1000 + 100 * k, 100 + k, 50 + 2 * k, 7 + k);
                k += 1;
                let prompt = format!(
                    "tokens please mock:tokens=5 mock:thinking mock:input={input} \
                     mock:cache_read={cache_read} mock:cache_write={cache_write} \
                     mock:reasoning={reasoning}"
                );
                let raw = match client {
                    // A streamed chat client that does not ask for usage: the gateway asks.
                    "chat" => post(
                        "/v1/chat/completions",
                        &[("authorization", &bearer_a)],
                        &openai_body(route, &prompt, stream),
                    ),
                    "messages" => post(
                        "/v1/messages",
                        &[("x-api-key", KEY_A), ("anthropic-version", "2023-06-01")],
                        &anthropic_body(route, &prompt, stream),
                    ),
                    _ => post(
                        "/v1/responses",
                        &[("authorization", &bearer_a)],
                        &json!({"model": route, "input": prompt, "stream": stream}).to_string(),
                    ),
                };
                let r = request(g.addr, &raw);
                let what = format!("{client} client, {provider} provider, stream {stream}");
                assert_eq!(r.status, 200, "{what}: {}", r.text());
                assert!(r.text().contains("w5"), "{what}: {}", r.text());
                let expected = ringway::usage::Usage {
                    input,
                    output: 5 + reasoning,
                    cache_read,
                    cache_write: if anthropic_provider { cache_write } else { 0 },
                    reasoning: if anthropic_provider { 0 } else { reasoning },
                };
                let rec = record(&g, KEY_A, &request_id(&r));
                let expected = token_counts(&expected);
                for (kind, n) in TOKEN_KINDS.into_iter().zip(expected) {
                    assert_eq!(rec["usage"][kind], n, "{what}: usage.{kind}: {rec}");
                }
                assert_eq!(
                    rec["served_by"],
                    format!("{provider}/mock-{route}-up"),
                    "{rec}"
                );
                if let Some((_, sum)) = want.iter_mut().find(|(s, _)| s.0 == route) {
                    for (total, n) in sum.iter_mut().zip(expected) {
                        *total += n;
                    }
                }
            }
        }
    }

    // `/v1/usage`: one row per route (the whole range, so a test across midnight still sums).
    let sums = usage(&g, KEY_A, "from=2000-01-01");
    let rows = sums["data"].as_array().unwrap();
    for ((route, _), t) in &want {
        let of_route: Vec<&Value> = rows.iter().filter(|r| r["route"] == *route).collect();
        let total = |field: &str| of_route.iter().map(|r| n(&r[field])).sum::<u64>();
        assert_eq!(total("requests"), 6, "{route}: {sums}");
        for (kind, n) in TOKEN_KINDS.into_iter().zip(*t) {
            assert_eq!(
                total(&format!("{kind}_tokens")),
                n,
                "{route} {kind}: {sums}"
            );
        }
    }

    // The metrics: other workers publish about once a second, so scrape until all arrived.
    let h = bearer(KEY_ADMIN);
    let series = |text: &str, route: &str, provider: &str, kind: &str| -> Option<u64> {
        let name = format!(
            "ringway_tokens_total{{route=\"{route}\",provider=\"{provider}\",key=\"team-a\",gen_ai_token_type=\"{kind}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.parse().ok())
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let text = request(g.addr, &get("/metrics", &[(h[0].0, h[0].1.as_str())])).text();
        let mut wrong = Vec::new();
        for ((route, provider), t) in &want {
            for (kind, n) in TOKEN_KINDS.into_iter().zip(*t) {
                let got = series(&text, route, provider, kind);
                if got != Some(n) {
                    wrong.push(format!("{route}/{provider} {kind}: {got:?}, want {n}"));
                }
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{wrong:#?}\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
