//! Several nodes on one PostgreSQL (`[cluster] postgres`), through the real binary: custody
//! written on node A read on node B with today's authorization rules, usage sums equal on both;
//! a Responses conversation started on A continued, retrieved and deleted on B, hidden from
//! another key; PostgreSQL stopped under load and started again (no request fails, the records
//! buffered meanwhile are written after, drops counted when the buffer is small); start-up
//! errors as `FILE:LINE: key.path: reason`. Also: the custody usage queries give SQLite's
//! answers row for row, and (ignored, run by hand) the rate one node writes custody rows at.
//! A real server from Debian's packages, started per test in a temp directory
//! (`common::postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::*;
use serde_json::{json, Value};

const KEY_A: &str = "sk-cluster-team-a-11";
const KEY_B: &str = "sk-cluster-team-b-22";
const KEY_ADMIN: &str = "sk-cluster-admin-33";
/// 64 hex digits: the store key every node shares.
const STORE_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
/// How long a test waits for something another process writes.
const WAIT: Duration = Duration::from_secs(15);

fn config(m: &Proc, node: &str, url: &str, cluster_extra: &str) -> String {
    format!(
        r#"
[access_log]
enabled = false

[cluster]
node_id = "{node}"
postgres = "{url}"
{cluster_extra}

[responses.store]
key_env = "RW_TEST_STORE_KEY"

{}
[[key]]
name = "team-a"
key_env = "RW_TEST_CLUSTER_A"

[[key]]
name = "team-b"
key_env = "RW_TEST_CLUSTER_B"

[[key]]
name = "ops"
key_env = "RW_TEST_CLUSTER_ADMIN"
admin = true
"#,
        standard_providers(m)
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    let mut all = PROVIDER_KEYS.to_vec();
    all.extend_from_slice(&[
        ("RW_TEST_CLUSTER_A", KEY_A),
        ("RW_TEST_CLUSTER_B", KEY_B),
        ("RW_TEST_CLUSTER_ADMIN", KEY_ADMIN),
        ("RW_TEST_STORE_KEY", STORE_KEY),
    ]);
    all
}

fn node(m: &Proc, name: &str, url: &str, cluster_extra: &str) -> Proc {
    gateway_env(&config(m, name, url, cluster_extra), &env())
}

fn auth(key: &str) -> String {
    format!("Bearer {key}")
}

fn chat(g: &Proc, key: &str, stream: bool) -> Response {
    let mut body = json!({
        "model": "gpt",
        "stream": stream,
        "messages": [{"role": "user", "content": "cluster please"}],
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    let a = auth(key);
    request(
        g.addr,
        &post(
            "/v1/chat/completions",
            &[("authorization", &a)],
            &body.to_string(),
        ),
    )
}

fn call(g: &Proc, key: &str, method: &str, path: &str) -> Response {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\ncontent-length: 0\r\n\r\n",
        auth(key)
    );
    request(g.addr, raw.as_bytes())
}

fn request_id(r: &Response) -> String {
    r.header("x-ringway-request-id").unwrap().to_owned()
}

/// `GET path` as `key` until it answers 200 (another node's writer commits a moment after its
/// answer), then its JSON.
fn eventually(g: &Proc, key: &str, path: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = call(g, key, "GET", path);
        if r.status == 200 {
            return r.json();
        }
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(Instant::now() < deadline, "{path}: never found");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn metrics(g: &Proc) -> String {
    call(g, KEY_ADMIN, "GET", "/metrics").text()
}

fn metric(g: &Proc, series: &str) -> f64 {
    metrics(g)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
}

/// Rows of `ids` in the custody table.
fn custody_rows(pg: &Postgres, db: &str, ids: &[String]) -> Vec<String> {
    pg.client(db)
        .query(
            "SELECT id FROM ringway_custody WHERE id = ANY($1) ORDER BY id",
            &[&ids],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn custody_written_on_one_node_is_read_on_the_other_and_usage_is_the_same_on_both() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let m = mock(&[]);
    let a = node(&m, "gw-a", &url, "");
    let b = node(&m, "gw-b", &url, "");

    let mut on_a = Vec::new();
    for stream in [false, true, false] {
        let r = chat(&a, KEY_A, stream);
        assert_eq!(r.status, 200, "{}", r.text());
        on_a.push(r);
    }
    let r = chat(&b, KEY_B, true);
    assert_eq!(r.status, 200, "{}", r.text());
    let on_b = r;

    // A's record, on B: its owner and the admin read it; team-b gets the 404 of a missing id.
    let id = request_id(&on_a[1]);
    let rec = eventually(&b, KEY_A, &format!("/v1/custody/{id}"));
    assert_eq!(rec["id"], id);
    assert_eq!(rec["node"], "gw-a");
    assert_eq!(rec["key"], "team-a");
    assert_eq!(rec["stream"], true);
    assert!(n(&rec["usage"]["output"]) > 0, "{rec}");
    assert_eq!(
        eventually(&b, KEY_ADMIN, &format!("/v1/custody/{id}"))["node"],
        "gw-a"
    );
    let other = call(&b, KEY_B, "GET", &format!("/v1/custody/{id}"));
    let missing = call(&b, KEY_A, "GET", "/v1/custody/rw-00000000-00-0000000000");
    assert_eq!((other.status, missing.status), (404, 404));
    assert_eq!(other.body, missing.body, "no existence leak");
    // B's own record says B, read on A.
    let theirs = eventually(&a, KEY_B, &format!("/v1/custody/{}", request_id(&on_b)));
    assert_eq!(theirs["node"], "gw-b");
    // Every record is in before the sums are compared.
    for r in &on_a {
        eventually(&b, KEY_ADMIN, &format!("/v1/custody/{}", request_id(r)));
    }

    let all_a = call(&a, KEY_ADMIN, "GET", "/v1/usage").json();
    let all_b = call(&b, KEY_ADMIN, "GET", "/v1/usage").json();
    assert_eq!(all_a["data"], all_b["data"], "the same sums on both nodes");
    let rows = all_a["data"].as_array().unwrap();
    let total = |rows: &[Value], f: &str| rows.iter().map(|r| n(&r[f])).sum::<u64>();
    assert_eq!(total(rows, "requests"), 4, "{all_a}");
    let usage_of = |r: &Response| -> u64 {
        let v = if r
            .header("content-type")
            .unwrap_or("")
            .contains("event-stream")
        {
            let events = sse_events(&r.body);
            let last = events
                .iter()
                .rev()
                .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
                .find(|v| v["usage"].is_object())
                .unwrap();
            last["usage"]["completion_tokens"].clone()
        } else {
            r.json()["usage"]["completion_tokens"].clone()
        };
        n(&v)
    };
    let want: u64 = on_a.iter().map(usage_of).sum::<u64>() + usage_of(&on_b);
    assert_eq!(total(rows, "output_tokens"), want, "{all_a}");
    // A key sees only its own rows, on either node.
    for g in [&a, &b] {
        let mine = call(g, KEY_A, "GET", "/v1/usage").json();
        let rows = mine["data"].as_array().unwrap();
        assert!(rows.iter().all(|r| r["key"] == "team-a"), "{mine}");
        assert_eq!(total(rows, "requests"), 3, "{mine}");
    }
    // The table names each node.
    let nodes: Vec<(String, i64)> = pg
        .client("shared")
        .query(
            "SELECT node, COUNT(*) FROM ringway_custody GROUP BY node ORDER BY node",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(nodes, vec![("gw-a".into(), 3), ("gw-b".into(), 1)]);
}

fn create(g: &Proc, key: &str, body: &Value) -> Response {
    let a = auth(key);
    request(
        g.addr,
        &post("/v1/responses", &[("authorization", &a)], &body.to_string()),
    )
}

#[test]
fn a_conversation_started_on_one_node_continues_on_the_other() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let m = mock(&[]);
    let a = node(&m, "gw-a", &url, "");
    let b = node(&m, "gw-b", &url, "");

    let r = create(
        &a,
        KEY_A,
        &json!({"model": "gpt", "input": "first-turn-apple mock:tokens=3"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let id = first["id"].as_str().unwrap().to_owned();
    let answer = first["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    // Visible on B once A's writer committed it.
    let got = eventually(&b, KEY_A, &format!("/v1/responses/{id}"));
    assert_eq!(got["id"], id);
    // Continued on B: the provider gets the whole conversation.
    let r = create(
        &b,
        KEY_A,
        &json!({"model": "gpt", "previous_response_id": id,
                "input": [{"role": "user", "content": "second-turn-pear"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json();
    let sent = mock_requests(&m)
        .iter()
        .rev()
        .find(|q| q["model"] == "mock-gpt-up")
        .unwrap()["body"]
        .to_string();
    let (apple, said, pear) = (
        sent.find("first-turn-apple"),
        sent.find(&answer),
        sent.find("second-turn-pear"),
    );
    assert!(
        apple.is_some() && apple < said && said < pear,
        "the whole conversation, in order: {sent}"
    );
    // B's turn, retrieved on A with its input items (the whole conversation).
    let second_id = second["id"].as_str().unwrap();
    let got = eventually(&a, KEY_A, &format!("/v1/responses/{second_id}"));
    assert_eq!(got["previous_response_id"], id);
    let items = eventually(&a, KEY_A, &format!("/v1/responses/{second_id}/input_items"));
    let text = items.to_string();
    assert!(
        text.contains("first-turn-apple") && text.contains("second-turn-pear"),
        "{text}"
    );
    // Another key: not found on either node.
    for g in [&a, &b] {
        for rid in [id.as_str(), second_id] {
            let r = call(g, KEY_B, "GET", &format!("/v1/responses/{rid}"));
            assert_eq!(r.status, 404, "{}", r.text());
        }
    }
    // Deleted on B (A stored it): gone on A too; the turn that continued it still works.
    let r = call(&b, KEY_A, "DELETE", &format!("/v1/responses/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], true);
    let r = call(&a, KEY_A, "GET", &format!("/v1/responses/{id}"));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = call(&a, KEY_B, "DELETE", &format!("/v1/responses/{second_id}"));
    assert_eq!(r.status, 404, "another key cannot delete it: {}", r.text());
    assert_eq!(
        call(&a, KEY_A, "GET", &format!("/v1/responses/{second_id}")).status,
        200
    );
    // Sealed at rest: the database never holds the words.
    let leaked: i64 = pg
        .client("shared")
        .query_one(
            "SELECT COUNT(*) FROM ringway_responses
             WHERE position('apple'::bytea IN sealed) > 0 OR position('pear'::bytea IN sealed) > 0",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
}

/// Requests sent from `threads` threads until `stop`; each answer's status and request id.
fn load(
    g: &Proc,
    threads: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(u16, String)>>> {
    (0..threads)
        .map(|i| {
            let addr = g.addr;
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut c = Client::connect(addr);
                let a = auth(KEY_A);
                let body = openai_body("gpt", &format!("load {i}"), i % 2 == 0);
                while !stop.load(Ordering::Relaxed) {
                    c.send_raw(&post(
                        "/v1/chat/completions",
                        &[("authorization", &a)],
                        &body,
                    ));
                    let r = c.read_response().expect("an answer");
                    let id = r.header("x-ringway-request-id").unwrap_or("").to_owned();
                    seen.push((r.status, id));
                }
                seen
            })
        })
        .collect()
}

#[test]
fn postgres_restarted_under_load_fails_no_request_and_the_buffer_is_written_after() {
    let mut pg = Postgres::start();
    let url = pg.database("shared");
    let m = mock(&[]);
    let g = node(&m, "gw-a", &url, "");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&g, 4, &stop);
    std::thread::sleep(Duration::from_millis(300));
    pg.stop();
    // While it is down: a lookup answers 503 at once (in the client's format), not a hang.
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let r = call(&g, KEY_A, "GET", "/v1/custody/rw-00000000-00-0000000000");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert!(metric(&g, "ringway_custody_buffered") > 0.0, "records wait");
    pg.restart();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<(u16, String)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(seen.len() > 50, "load ran: {}", seen.len());
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    // Every record is written once the database is back: the ones buffered meanwhile too.
    let ids: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = custody_rows(&pg, "shared", &ids);
        if rows.len() == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} records written; buffered {}",
            rows.len(),
            ids.len(),
            metric(&g, "ringway_custody_buffered")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The gauge follows the writer's next round: the rows can be visible a moment before.
    let deadline = Instant::now() + WAIT;
    while metric(&g, "ringway_custody_buffered") > 0.0 {
        assert!(Instant::now() < deadline, "{}", metrics(&g));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(
            &g,
            "ringway_custody_buffer_dropped_total{reason=\"postgres_unreachable\"}"
        ),
        0.0
    );
    assert_eq!(metric(&g, "ringway_custody_write_failed_total"), 0.0);
    // And lookups answer again.
    let r = call(&g, KEY_A, "GET", &format!("/v1/custody/{}", ids[0]));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_small_buffer_keeps_the_newest_records_and_counts_the_oldest_dropped() {
    let mut pg = Postgres::start();
    let url = pg.database("shared");
    let m = mock(&[]);
    let g = node(&m, "gw-a", &url, "postgres_buffer_records = 1000");
    pg.stop();
    let mut c = Client::connect(g.addr);
    let a = auth(KEY_A);
    let body = openai_body("gpt", "outage", false);
    let mut ids = Vec::new();
    for _ in 0..1300 {
        c.send_raw(&post(
            "/v1/chat/completions",
            &[("authorization", &a)],
            &body,
        ));
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(request_id(&r));
    }
    let dropped = "ringway_custody_buffer_dropped_total{reason=\"postgres_unreachable\"}";
    let deadline = Instant::now() + WAIT;
    while metric(&g, dropped) < 300.0 {
        assert!(Instant::now() < deadline, "{}", metrics(&g));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&g, dropped), 300.0);
    assert_eq!(metric(&g, "ringway_custody_buffered"), 1000.0);
    assert_eq!(metric(&g, "ringway_custody_dropped_total"), 0.0);
    pg.restart();
    let deadline = Instant::now() + WAIT;
    while metric(&g, "ringway_custody_buffered") > 0.0 {
        assert!(Instant::now() < deadline, "{}", metrics(&g));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The oldest went; the newest 1000 are written.
    let mut newest = ids[300..].to_vec();
    newest.sort();
    assert_eq!(custody_rows(&pg, "shared", &ids), newest);
}

#[test]
fn start_up_errors_name_the_file_line_and_key() {
    // Refused shapes, by `ringway check` and by `serve`.
    let base = "[[provider]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[cluster]\n";
    check_refuses(
        &format!("{base}postgres = \"mysql://x/y\"\n"),
        ":7: cluster.postgres",
        "expected postgres://",
    );
    check_refuses(
        &format!("{base}postgres = \"postgres://u@h/db?sslmode=require\"\n"),
        ":7: cluster.postgres",
        "sslmode",
    );
    // Postgres without the shared store key: the responses store names the key it needs.
    check_refuses(
        &format!("{base}postgres = \"postgres://u@h/db\"\n"),
        ":7: responses.store.key_env",
        "required with [cluster] postgres",
    );
    // Unreachable at start: serve refuses within the probe's bound, naming the line.
    let port = closed_port();
    let text = format!(
        "{base}node_id = \"x\"\npostgres = \"postgres://ringway@127.0.0.1:{port}/x\"\n\n[responses.store]\nenabled = false\n"
    );
    let path = write_config(&text);
    let started = Instant::now();
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{}:8: cluster.postgres: cannot reach PostgreSQL",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains("listening on"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_node_with_another_store_key_is_refused_and_deletes_nothing() {
    let pg = Postgres::start();
    let url = pg.database("shared");
    let m = mock(&[]);
    let a = node(&m, "gw-a", &url, "");
    let r = create(
        &a,
        KEY_A,
        &json!({"model": "gpt", "input": "kept mock:tokens=1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    eventually(&a, KEY_A, &format!("/v1/responses/{id}"));
    let path = write_config(&format!(
        "[server]\nworkers = 1\n{}",
        config(&m, "gw-b", &url, "")
    ));
    let mut envs = env();
    envs.retain(|(k, _)| *k != "RW_TEST_STORE_KEY");
    let out = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .envs(envs)
        .env("RW_TEST_STORE_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("sealed under another key"), "{err}");
    assert!(err.contains("nothing was deleted"), "{err}");
    let kept: i64 = pg
        .client("shared")
        .query_one("SELECT COUNT(*) FROM ringway_responses", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
    assert_eq!(
        call(&a, KEY_A, "GET", &format!("/v1/responses/{id}")).status,
        200
    );
}

mod differential {
    //! The custody store's usage queries on PostgreSQL against SQLite's, fed the same records.

    use super::*;
    use ringway::custody::store::{CustodyStore, Scope, Sqlite, UsageQuery};
    use ringway::custody::{Attempt, Record};
    use ringway::usage::Usage;

    const DAY_MS: i64 = 86_400_000;

    fn store_url(url: &str) -> ringway::cluster::StoreUrl {
        ringway::cluster::StoreUrl {
            url: url.to_owned(),
            file: "t.toml".into(),
            line: Some(1),
            path: "cluster.postgres".into(),
        }
    }

    /// A deterministic spread of records: keys and routes with and without values, upper and
    /// lower case and non-ASCII (orders differ by collation), several days, repeated ids.
    fn records() -> Vec<Record> {
        let keys = [
            None,
            Some("B"),
            Some("a"),
            Some("é"),
            Some("a-b"),
            Some("Z"),
        ];
        let routes = [None, Some("fast"), Some("Fast"), Some("direct"), Some("ü")];
        let day0 = 20_100 * DAY_MS;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..1500)
            .map(|i| {
                let r = next();
                Record {
                    // Every 97th id repeats an earlier one: the first record stays.
                    id: format!("rw-{}", if i % 97 == 96 { i - 50 } else { i }),
                    time_ms: day0 + (r % (5 * DAY_MS as u64)) as i64,
                    node: "gw-t".into(),
                    key: keys[(r >> 8) as usize % keys.len()].map(str::to_owned),
                    route: routes[(r >> 16) as usize % routes.len()].map(str::to_owned),
                    dialect: "openai",
                    status: 200,
                    usage: (r % 7 != 0).then_some(Usage {
                        input: r % 1000,
                        output: (r >> 20) % 500,
                        cache_read: (r >> 30) % 50,
                        cache_write: (r >> 40) % 20,
                        reasoning: (r >> 50) % 30,
                    }),
                    attempts: vec![Attempt {
                        target: "p/m".into(),
                        status: Some(200),
                        ..Attempt::default()
                    }],
                    ..Record::default()
                }
            })
            .collect()
    }

    #[test]
    fn usage_on_postgres_matches_sqlite_row_for_row() {
        let pg = Postgres::start();
        let url = store_url(&pg.database("diff"));
        let path = temp_path("diff.db");
        let mut lite = Sqlite::open(&path).unwrap();
        let mut shared = ringway::custody::postgres::Postgres::open(&url, 10_000).unwrap();
        let all = records();
        for batch in all.chunks(512) {
            lite.write_batch(batch).unwrap();
            shared.write_batch(batch).unwrap();
        }
        assert_eq!(shared.backlog(), 0);
        let mut lr = lite.reader().unwrap();
        let mut pr = shared.reader().unwrap();
        let day0 = 20_100 * DAY_MS;
        let mut compared = 0;
        for scope in [
            Scope::All,
            Scope::Key("a".into()),
            Scope::Key("é".into()),
            Scope::Key("nobody".into()),
        ] {
            for (from, to) in [
                (day0, day0 + 5 * DAY_MS),
                (day0 + DAY_MS / 2, day0 + 3 * DAY_MS + 7),
                (0, i64::MAX),
            ] {
                for limit in [1, 7, 10_000] {
                    let q = UsageQuery {
                        from_ms: from,
                        to_ms: to,
                        scope: scope.clone(),
                        limit,
                    };
                    let want = lr.usage(&q).unwrap();
                    let got = pr.usage(&q).unwrap();
                    assert_eq!(got, want, "{q:?}");
                    compared += want.rows.len();
                }
            }
        }
        assert!(compared > 100, "the queries found rows: {compared}");
        for id in ["rw-0", "rw-46", "rw-1499", "rw-missing"] {
            let (want, got) = (lr.get(id).unwrap(), pr.get(id).unwrap());
            assert_eq!(got.as_ref().map(|s| &s.key), want.as_ref().map(|s| &s.key));
            assert_eq!(got.is_some(), id != "rw-missing");
            if let (Some(w), Some(g)) = (want, got) {
                let (w, g): (Value, Value) = (
                    serde_json::from_str(&w.json).unwrap(),
                    serde_json::from_str(&g.json).unwrap(),
                );
                assert_eq!(g, w);
                assert_eq!(g["node"], "gw-t");
            }
        }
        // Retention: the same rows go from both.
        let cut = day0 + 2 * DAY_MS;
        assert_eq!(shared.prune(cut).unwrap(), lite.prune(cut).unwrap());
        let q = UsageQuery {
            from_ms: 0,
            to_ms: i64::MAX,
            scope: Scope::All,
            limit: 10_000,
        };
        assert_eq!(pr.usage(&q).unwrap(), lr.usage(&q).unwrap());
    }

    /// Two nodes migrating one database at the same moment: both start, the tables are made
    /// once, and the schema version is recorded once.
    #[test]
    fn nodes_starting_together_migrate_once() {
        let pg = Postgres::start();
        let url = store_url(&pg.database("race"));
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    ringway::custody::postgres::Postgres::open(&url, 1000).map(|_| ())
                })
            })
            .collect();
        for o in opened {
            o.join().unwrap().unwrap();
        }
        let versions: Vec<(String, i32)> = pg
            .client("race")
            .query("SELECT component, version FROM ringway_schema", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // Every step ran once: the version is the number of steps.
        let steps = i32::try_from(ringway::custody::postgres::MIGRATIONS.len()).unwrap();
        assert_eq!(versions, vec![("custody".to_owned(), steps)]);
    }

    /// Two nodes pruning the shared responses store at the same moment evict what one would:
    /// the store ends just under the target (90% of `max_bytes`), not twice as far below it.
    #[test]
    fn nodes_pruning_responses_together_evict_once() {
        use ringway::responses_store::backend::{NewRow, ResponseBackend, RowMeta};
        use ringway::responses_store::seal::OwnerTag;
        let pg = Postgres::start();
        let url = store_url(&pg.database("evict"));
        let mut first = ringway::responses_store::postgres::Postgres::open(&url, "gw-a").unwrap();
        let now = 1_800_000_000_000i64;
        for i in 0..200 {
            let row = NewRow {
                meta: RowMeta {
                    id: format!("resp_{i:04}"),
                    prev: None,
                    depth: 0,
                    created_ms: now,
                    visible_until_ms: now + 1000,
                    // Kept the shortest first: evicted in id order.
                    kept_until_ms: now + 1000 + i,
                    conv_bytes: 10,
                },
                owner: OwnerTag([7; 32]),
                sealed: vec![0xa5; 1000],
                items: vec![format!("msg_{i}")],
            };
            assert!(first.insert(&row).unwrap());
        }
        assert_eq!(first.total_bytes().unwrap(), 200_000);
        let (max, target) = (150_000u64, 135_000u64);
        let pruners: Vec<_> = (0..4)
            .map(|n| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let mut b = ringway::responses_store::postgres::Postgres::open(
                        &url,
                        &format!("gw-{n}"),
                    )
                    .unwrap();
                    b.prune(now, max, target).unwrap()
                })
            })
            .collect();
        let evicted: u64 = pruners.into_iter().map(|p| p.join().unwrap().evicted).sum();
        assert_eq!(evicted, 65, "evicted by all the nodes together");
        assert_eq!(first.total_bytes().unwrap(), 135_000);
        // The items of the evicted rows went with them; the oldest kept is the 66th.
        let left: Vec<String> = pg
            .client("evict")
            .query(
                "SELECT response_id FROM ringway_response_items ORDER BY response_id LIMIT 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(left, vec!["resp_0065".to_owned()]);
    }
}
