//! Custody records in PostgreSQL, shared by every node of a cluster (`[cluster] postgres`):
//! the writer's [`Postgres`] and the reader's [`PostgresReader`], each on its own connection
//! ([`crate::cluster::postgres::Link`]), used only on the custody threads.
//!
//! **Writes.** A batch is one statement: the records' columns as arrays, unnested into one
//! multi-row `INSERT … ON CONFLICT (id) DO NOTHING` (the first record of an id stays, as in
//! SQLite), prepared once per connection, so a batch of [`BATCH_RECORDS`] costs one round trip
//! and one commit.
//!
//! **Outage.** Records the database cannot take (unreachable, shutting down, timing out) wait
//! in a bounded backlog on the writer thread, oldest first; past `[cluster]
//! postgres_buffer_records` the oldest are dropped and counted
//! (`ringway_custody_buffer_dropped_total{reason="postgres_unreachable"}`). The writer tries
//! again when the connection's backoff allows, and writes the backlog in order, at most
//! [`DRAIN_STATEMENTS`] statements per wake-up so that new records keep flowing. A batch the
//! database refuses (not a connection problem) is lost and counted as a failed write, never
//! retried forever. Workers never wait for any of this: they only `try_send`.
//!
//! **Several nodes.** Ids are unique per node (64 random bits), every row names its node, and
//! retention is pruned by one node at a time (a transaction-scoped advisory lock; the others
//! skip that round). The usage queries match SQLite's results row for row: text columns
//! compare bytewise (`COLLATE "C"`, SQLite's `BINARY`) and rows without a key or route sort
//! first, as in SQLite.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use postgres::Statement;

use super::store::{
    CustodyReader, CustodyStore, Scope, StoreError, Stored, UsageQuery, UsageRow, UsageRows,
};
use super::{Record, BATCH_RECORDS, BUFFERED, BUFFER_DROPPED, WRITE_FAILED};
use crate::cluster::postgres::{Failure, Link};
use crate::cluster::StoreUrl;

/// Most insert statements the writer runs per wake-up while it works off a backlog: a backlog
/// of 100k records after an outage goes in pieces of this many batches, between which the new
/// records are taken from the channel.
pub const DRAIN_STATEMENTS: usize = 8;
/// The advisory lock the node pruning custody holds for its transaction.
const PRUNE_LOCK: i64 = 0x7277_6375_7374_7031;

/// This build's custody tables, one step per version (`ringway_schema`, component
/// `custody`). Steps are only ever appended.
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS ringway_custody (
    id          TEXT COLLATE \"C\" PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    day         TEXT COLLATE \"C\" NOT NULL,
    key         TEXT COLLATE \"C\",
    route       TEXT COLLATE \"C\",
    node        TEXT COLLATE \"C\" NOT NULL,
    status      INTEGER NOT NULL,
    input       BIGINT NOT NULL,
    output      BIGINT NOT NULL,
    cache_read  BIGINT NOT NULL,
    cache_write BIGINT NOT NULL,
    reasoning   BIGINT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ringway_custody_time ON ringway_custody (time_ms);
CREATE INDEX IF NOT EXISTS ringway_custody_key_time ON ringway_custody (key, time_ms);
",
    "
ALTER TABLE ringway_custody ADD COLUMN IF NOT EXISTS ledger TEXT NOT NULL DEFAULT '';
",
];

const INSERT: &str = "
INSERT INTO ringway_custody
    (id, time_ms, day, key, route, node, status, input, output, cache_read, cache_write,
     reasoning, record, ledger)
SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::int4[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
                     $13::text[], $14::text[])
ON CONFLICT (id) DO NOTHING";

const USAGE_ALL: &str = "
SELECT key, route, day, COUNT(*), SUM(input)::int8, SUM(output)::int8, SUM(cache_read)::int8,
       SUM(cache_write)::int8, SUM(reasoning)::int8
FROM ringway_custody
WHERE time_ms >= $1 AND time_ms < $2
GROUP BY key, route, day
ORDER BY day, key NULLS FIRST, route NULLS FIRST
LIMIT $3";

/// One key's usage: searched on `(key, time_ms)`, as SQLite's own statement for it.
const USAGE_KEY: &str = "
SELECT key, route, day, COUNT(*), SUM(input)::int8, SUM(output)::int8, SUM(cache_read)::int8,
       SUM(cache_write)::int8, SUM(reasoning)::int8
FROM ringway_custody
WHERE key = $4 AND time_ms >= $1 AND time_ms < $2
GROUP BY key, route, day
ORDER BY day, key NULLS FIRST, route NULLS FIRST
LIMIT $3";

/// A record as its row's columns (the JSON built once, when it is handed over).
struct Row {
    id: String,
    time_ms: i64,
    day: String,
    key: Option<String>,
    route: Option<String>,
    node: String,
    status: i32,
    tokens: [i64; 5],
    json: String,
    /// The ledger as `code:field,…` (its own column, to filter on).
    ledger: String,
}

/// PostgreSQL text cannot hold NUL; a name with one (none of ours has) loses it rather than
/// failing its whole batch.
fn text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_owned()
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Row {
    fn of(r: &Record) -> Result<Row, String> {
        let u = r.usage.unwrap_or_default();
        Ok(Row {
            id: text(&r.id),
            time_ms: r.time_ms,
            day: crate::calendar::day_of(r.time_ms),
            key: r.key.as_deref().map(text),
            route: r.route.as_deref().map(text),
            node: text(&r.node),
            status: i32::from(r.status),
            tokens: [
                to_i64(u.input),
                to_i64(u.output),
                to_i64(u.cache_read),
                to_i64(u.cache_write),
                to_i64(u.reasoning),
            ],
            json: serde_json::to_string(r).map_err(|e| e.to_string())?,
            ledger: text(&r.ledger.compact()),
        })
    }
}

/// The writer's side: its connection, its prepared insert and the backlog.
pub struct Postgres {
    link: Link,
    url: StoreUrl,
    insert: Option<Statement>,
    backlog: VecDeque<Row>,
    /// Most records the backlog holds.
    capacity: usize,
}

impl Postgres {
    /// Connect to `url` and bring the tables to this build's version: for `serve` at start, on
    /// the main thread. The error is the config's (`FILE:LINE: cluster.postgres: reason`).
    pub fn open(url: &StoreUrl, buffer_records: usize) -> Result<Postgres, String> {
        let mut link = Link::new(url, "custody writer", false).map_err(|e| url.error(e))?;
        crate::cluster::postgres::open(&mut link, url, "custody", MIGRATIONS)?;
        Ok(Postgres {
            link,
            url: url.clone(),
            insert: None,
            backlog: VecDeque::new(),
            capacity: buffer_records.max(1),
        })
    }

    /// Records waiting for the database.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Add a record to the back of the backlog, dropping the oldest when it is full.
    fn hold(&mut self, row: Row) {
        if self.backlog.len() >= self.capacity {
            self.backlog.pop_front();
            BUFFER_DROPPED.count("custody records buffered while PostgreSQL is unreachable");
        }
        self.backlog.push_back(row);
    }

    /// Write the backlog from its front, a batch per statement, at most `statements` of them;
    /// stop at the first sign that the database is unreachable.
    fn drain(&mut self, statements: usize) {
        for _ in 0..statements {
            let n = self.backlog.len().min(BATCH_RECORDS);
            if n == 0 {
                break;
            }
            match self.insert_front(n) {
                Ok(written) => {
                    if written < n as u64 {
                        crate::log::warn(format_args!(
                            "custody: {} record(s) whose id is already stored were not written",
                            n as u64 - written
                        ));
                    }
                    self.backlog.drain(..n);
                }
                // The link said so in the log (once) and runs its backoff.
                Err(Failure::Unreachable(_)) => break,
                Err(Failure::Refused(e)) => {
                    crate::log::error(format_args!("custody: write failed: {e}"));
                    for _ in 0..n {
                        WRITE_FAILED.count("custody store write failed: records");
                    }
                    self.backlog.drain(..n);
                }
            }
        }
        BUFFERED.store(self.backlog.len() as u64, Ordering::Relaxed);
    }

    /// Insert the first `n` rows of the backlog in one statement; the rows written (an id
    /// already stored is not).
    fn insert_front(&mut self, n: usize) -> Result<u64, Failure> {
        let (client, fresh) = self.link.client()?;
        if fresh || self.insert.is_none() {
            match client.prepare(INSERT) {
                Ok(s) => self.insert = Some(s),
                Err(e) => return Err(self.link.failed(&e)),
            }
        }
        let Some(insert) = self.insert.as_ref() else {
            return Err(Failure::Refused("no prepared insert".into()));
        };
        let rows = self.backlog.range(..n);
        let ids: Vec<&str> = rows.clone().map(|r| r.id.as_str()).collect();
        let times: Vec<i64> = rows.clone().map(|r| r.time_ms).collect();
        let days: Vec<&str> = rows.clone().map(|r| r.day.as_str()).collect();
        let keys: Vec<Option<&str>> = rows.clone().map(|r| r.key.as_deref()).collect();
        let routes: Vec<Option<&str>> = rows.clone().map(|r| r.route.as_deref()).collect();
        let nodes: Vec<&str> = rows.clone().map(|r| r.node.as_str()).collect();
        let statuses: Vec<i32> = rows.clone().map(|r| r.status).collect();
        let token = |i: usize| -> Vec<i64> { rows.clone().map(|r| r.tokens[i]).collect() };
        let (input, output, cache_read, cache_write, reasoning) =
            (token(0), token(1), token(2), token(3), token(4));
        let json: Vec<&str> = rows.clone().map(|r| r.json.as_str()).collect();
        let ledgers: Vec<&str> = rows.clone().map(|r| r.ledger.as_str()).collect();
        let result = client.execute(
            insert,
            &[
                &ids,
                &times,
                &days,
                &keys,
                &routes,
                &nodes,
                &statuses,
                &input,
                &output,
                &cache_read,
                &cache_write,
                &reasoning,
                &json,
                &ledgers,
            ],
        );
        match result {
            Ok(written) => {
                self.link.ok();
                Ok(written)
            }
            Err(e) => {
                let f = self.link.failed(&e);
                if matches!(f, Failure::Unreachable(_)) {
                    // A new connection prepares its own.
                    self.insert = None;
                }
                Err(f)
            }
        }
    }
}

fn store_error(f: Failure) -> StoreError {
    StoreError(f.to_string())
}

impl CustodyStore for Postgres {
    /// Queue the records behind any backlog and write what the database takes now; a record
    /// it cannot take waits (bounded), so this never fails for an outage.
    fn write_batch(&mut self, records: &[Record]) -> Result<(), StoreError> {
        for r in records {
            match Row::of(r) {
                Ok(row) => self.hold(row),
                Err(e) => {
                    WRITE_FAILED.count("custody store write failed: records");
                    crate::log::error(format_args!("custody: record {} not written: {e}", r.id));
                }
            }
        }
        self.drain(DRAIN_STATEMENTS);
        Ok(())
    }

    fn prune(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let (client, _) = self.link.client().map_err(store_error)?;
        let run = |client: &mut postgres::Client| -> Result<u64, postgres::Error> {
            let mut tx = client.transaction()?;
            // Another node pruning now: it removes the same rows; this one skips the round.
            let mine: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])?
                .try_get(0)?;
            if !mine {
                return Ok(0);
            }
            let n = tx.execute(
                "DELETE FROM ringway_custody WHERE time_ms < $1",
                &[&before_ms],
            )?;
            tx.commit()?;
            Ok(n)
        };
        match run(client) {
            Ok(n) => Ok(n),
            Err(e) => Err(store_error(self.link.failed(&e))),
        }
    }

    fn reader(&self) -> Result<Box<dyn CustodyReader>, StoreError> {
        Ok(Box::new(
            PostgresReader::new(&self.url).map_err(StoreError)?,
        ))
    }

    fn retry_in(&self) -> Option<std::time::Duration> {
        (!self.backlog.is_empty()).then(|| self.link.retry_in())
    }

    fn retry(&mut self) {
        self.drain(DRAIN_STATEMENTS);
    }
}

/// The reader's side: its own read-only session, connected at the first lookup (and again after
/// a failure, no sooner than the backoff allows: a lookup during an outage fails at once).
pub struct PostgresReader {
    link: Link,
}

impl PostgresReader {
    pub fn new(url: &StoreUrl) -> Result<PostgresReader, String> {
        Ok(PostgresReader {
            link: Link::new(url, "custody reader", true)?,
        })
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let (client, _) = self.link.client().map_err(store_error)?;
        match f(client) {
            Ok(v) => {
                self.link.ok();
                Ok(v)
            }
            Err(e) => Err(store_error(self.link.failed(&e))),
        }
    }
}

impl CustodyReader for PostgresReader {
    fn get(&mut self, id: &str) -> Result<Option<Stored>, StoreError> {
        self.run(|c| {
            c.query_opt(
                "SELECT key, record FROM ringway_custody WHERE id = $1",
                &[&id],
            )?
            .map(|row| {
                Ok(Stored {
                    key: row.try_get(0)?,
                    json: row.try_get(1)?,
                })
            })
            .transpose()
        })
    }

    fn usage(&mut self, uq: &UsageQuery) -> Result<UsageRows, StoreError> {
        // One more than the limit: says whether rows were cut.
        let fetch = i64::try_from(uq.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = self.run(|c| match &uq.scope {
            Scope::All => c.query(USAGE_ALL, &[&uq.from_ms, &uq.to_ms, &fetch]),
            Scope::Key(k) => c.query(USAGE_KEY, &[&uq.from_ms, &uq.to_ms, &fetch, k]),
        })?;
        let mut out = Vec::with_capacity(rows.len().min(uq.limit));
        for row in &rows {
            let n = |i: usize| row.try_get::<_, i64>(i).map(to_u64);
            let read = || -> Result<UsageRow, postgres::Error> {
                Ok(UsageRow {
                    key: row.try_get(0)?,
                    route: row.try_get(1)?,
                    day: row.try_get(2)?,
                    requests: n(3)?,
                    input_tokens: n(4)?,
                    output_tokens: n(5)?,
                    cache_read_tokens: n(6)?,
                    cache_write_tokens: n(7)?,
                    reasoning_tokens: n(8)?,
                })
            };
            out.push(read().map_err(|e| StoreError(e.to_string()))?);
        }
        let truncated = out.len() > uq.limit;
        out.truncate(uq.limit);
        Ok(UsageRows {
            rows: out,
            truncated,
        })
    }
}
