//! Custody rows per second that one node's writer puts into PostgreSQL: batches of 512 records
//! through the writer's own path (`custody::postgres::Postgres::write_batch`), into a
//! throwaway server from Debian's packages (fsync on, as a production server keeps it).
//! `cargo bench --bench custody_postgres` prints the rate; it needs the `postgresql` package
//! (tests/setup.sh installs it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::postgres::Postgres;
use ringway::custody::postgres::Postgres as Store;
use ringway::custody::store::CustodyStore;
use ringway::custody::{Attempt, Record};
use ringway::usage::Usage;

/// Batches written, and records in each (the writer's batch size).
const ROUNDS: usize = 200;
const BATCH: usize = 512;

#[expect(
    clippy::print_stdout,
    reason = "the measured rate is this bench's output"
)]
#[expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up has nothing to report"
)]
fn main() {
    let pg = Postgres::start_with(&[]);
    let url = ringway::cluster::StoreUrl {
        url: pg.database("rate"),
        file: "bench.toml".into(),
        line: Some(1),
        path: "cluster.postgres".into(),
    };
    let mut store = Store::open(&url, 100_000).unwrap();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let batch: Vec<Record> = (0..BATCH).map(|i| record(round, i)).collect();
        store.write_batch(&batch).unwrap();
    }
    let took = started.elapsed();
    assert_eq!(store.backlog(), 0, "every batch was written");
    let rows: i64 = pg
        .client("rate")
        .query_one("SELECT COUNT(*) FROM ringway_custody", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, ROUNDS * BATCH, "every record is a row");
    println!(
        "custody rows into PostgreSQL: {rows} in {:.2} s = {:.0} rows/s",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
}

/// A record as a served request leaves it: a key, a route, usage, one attempt.
fn record(round: usize, i: usize) -> Record {
    Record {
        id: format!("rw-{round}-{i}"),
        time_ms: 1_740_000_000_000 + (round * BATCH + i) as i64,
        node: "gw-bench".into(),
        key: Some(format!("key-{}", i % 8)),
        route: Some("fast".into()),
        dialect: "openai",
        status: 200,
        usage: Some(Usage {
            input: 1200 + i as u64,
            output: 300,
            cache_read: 64,
            cache_write: 0,
            reasoning: 16,
        }),
        attempts: vec![Attempt {
            target: "p/m".into(),
            status: Some(200),
            ..Attempt::default()
        }],
        ..Record::default()
    }
}
