//! Where custody records are kept: the [`CustodyStore`] the writer thread writes through, the
//! [`CustodyReader`] it hands the reader thread for lookups, and the embedded implementation,
//! SQLite in a file ([`Sqlite`], [`SqliteReader`]). The store for several nodes
//! ([`super::postgres`], a shared PostgreSQL) implements the same calls; nothing else in the
//! gateway knows which store it has. Stores are used only by the writer and reader threads,
//! never on a worker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::Record;

/// Longest a statement waits on a lock held by another connection to the same file (another
/// process reading it with the sqlite3 shell, say) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a store failure says (it is logged, never shown to a client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// One stored record: whose it is (for the lookup's access check) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The gateway key's name that made the request (None: no keys were configured).
    pub key: Option<String>,
    /// The record as `GET /v1/custody/{id}` returns it.
    pub json: String,
}

/// Whose rows a usage query may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every key's (an admin key, or a gateway without keys).
    All,
    /// Only this key's.
    Key(String),
}

/// A usage query: `[from_ms, to_ms)` in Unix milliseconds, at most `limit` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub scope: Scope,
    pub limit: usize,
}

/// Sums of one (key, route, UTC day).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub key: Option<String>,
    pub route: Option<String>,
    pub day: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// A usage answer: its rows (day, key, route order), and whether more were cut at the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRows {
    pub rows: Vec<UsageRow>,
    pub truncated: bool,
}

/// The custody store's writing side. `&mut self`: one writer thread owns it.
pub trait CustodyStore: Send {
    /// Write `records` together (one transaction: all or none). A record whose id is already
    /// stored replaces it.
    fn write_batch(&mut self, records: &[Record]) -> Result<(), StoreError>;
    /// Remove records older than `before_ms`; returns how many went.
    fn prune(&mut self, before_ms: i64) -> Result<u64, StoreError>;
    /// A handle for lookups, used on another thread while this one writes (so a long usage
    /// query never holds up the records).
    fn reader(&self) -> Result<Box<dyn CustodyReader>, StoreError>;
    /// When the store holds records back (its database unreachable): how long until it wants
    /// [`CustodyStore::retry`]. None: nothing is held back (a file store never holds any).
    fn retry_in(&self) -> Option<Duration> {
        None
    }
    /// Try again to write what is held back.
    fn retry(&mut self) {}
}

/// The custody store's reading side. `&mut self`: one reader thread owns it.
pub trait CustodyReader: Send {
    /// The record of request `id`.
    fn get(&mut self, id: &str) -> Result<Option<Stored>, StoreError>;
    /// Tokens and requests per key, route and day.
    fn usage(&mut self, q: &UsageQuery) -> Result<UsageRows, StoreError>;
}

/// The table: the columns the lookups filter and sum on, and the record's JSON as it is
/// returned. `id` is the primary key (its index); `time_ms` has its own for ranges and
/// retention, and `(key, time_ms)` serves a key's own usage. `IF NOT EXISTS`: a file made by
/// an older version gets the indexes it lacks when it is opened.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS custody (
    id          TEXT PRIMARY KEY NOT NULL,
    time_ms     INTEGER NOT NULL,
    day         TEXT NOT NULL,
    key         TEXT,
    route       TEXT,
    status      INTEGER NOT NULL,
    input       INTEGER NOT NULL,
    output      INTEGER NOT NULL,
    cache_read  INTEGER NOT NULL,
    cache_write INTEGER NOT NULL,
    reasoning   INTEGER NOT NULL,
    record      TEXT NOT NULL,
    node        TEXT NOT NULL DEFAULT '',
    ledger      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS custody_time ON custody(time_ms);
CREATE INDEX IF NOT EXISTS custody_key_time ON custody(key, time_ms);
";

/// Usage over every key: the range is searched on `custody_time`.
const USAGE_ALL: &str = "
SELECT key, route, day, COUNT(*), SUM(input), SUM(output), SUM(cache_read), SUM(cache_write),
       SUM(reasoning)
FROM custody
WHERE time_ms >= ?1 AND time_ms < ?2
GROUP BY key, route, day
ORDER BY day, key, route
LIMIT ?3";

/// Usage of one key (`?4`): the key and the range are searched on `custody_key_time`. Its own
/// statement, not `(all OR key = ?)` in one: a condition that may hold for every row cannot
/// pick an index, so one key's sums would walk every key's rows in the range.
const USAGE_KEY: &str = "
SELECT key, route, day, COUNT(*), SUM(input), SUM(output), SUM(cache_read), SUM(cache_write),
       SUM(reasoning)
FROM custody
WHERE key = ?4 AND time_ms >= ?1 AND time_ms < ?2
GROUP BY key, route, day
ORDER BY day, key, route
LIMIT ?3";

/// SQLite in one file, in WAL mode (readers never wait for the writer; a batch is one
/// append to the log) with `synchronous = NORMAL` (a committed batch survives the process
/// dying; a power cut may lose the last batches, never corrupt the file).
pub struct Sqlite {
    conn: Connection,
    /// Where it is, for the reader's own connection.
    path: PathBuf,
}

/// A read-only connection to the file a [`Sqlite`] writes: in WAL mode it reads a consistent
/// snapshot while the writer goes on committing.
pub struct SqliteReader {
    conn: Connection,
}

impl Sqlite {
    /// Open (or create) the database at `path` and its table.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("custody store {}: {e}", path.display())))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "custody store {}: WAL mode refused (journal_mode is {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SCHEMA)?;
        add_column(&conn, "node")?;
        add_column(&conn, "ledger")?;
        Ok(Sqlite {
            conn,
            path: path.to_owned(),
        })
    }
}

/// A file made before records named their node (`node`) or held their translation ledger
/// (`ledger`: `code:field,…`) gets the text column, empty for its old rows.
fn add_column(conn: &Connection, name: &'static str) -> Result<(), StoreError> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('custody') WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if !has {
        // `name` is one of ours, never input.
        conn.execute_batch(&format!(
            "ALTER TABLE custody ADD COLUMN {name} TEXT NOT NULL DEFAULT ''"
        ))?;
    }
    Ok(())
}

impl SqliteReader {
    /// Open `path` read-only. Refused unless the file is in WAL mode: in any other journal
    /// mode a reader and the writer lock each other out.
    pub fn open(path: &Path) -> Result<SqliteReader, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError(format!("custody store {} (reader): {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "custody store {}: the reader needs WAL mode (journal_mode is {mode})",
                path.display()
            )));
        }
        Ok(SqliteReader { conn })
    }
}

/// The usage statement for `scope`, and the key it binds (as `?4`) if any.
fn usage_statement(scope: &Scope) -> (&'static str, Option<&str>) {
    match scope {
        Scope::All => (USAGE_ALL, None),
        Scope::Key(k) => (USAGE_KEY, Some(k.as_str())),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl CustodyStore for Sqlite {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                // A record is never replaced: ids do not repeat (64 random bits per process),
                // and if one ever did, the first record stays as it was written.
                "INSERT OR IGNORE INTO custody
                 (id, time_ms, day, key, route, status, input, output, cache_read, cache_write,
                  reasoning, record, node, ledger)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for r in records {
                let json = serde_json::to_string(r).map_err(|e| StoreError(e.to_string()))?;
                let u = r.usage.unwrap_or_default();
                let written = insert.execute(params![
                    r.id,
                    r.time_ms,
                    crate::calendar::day_of(r.time_ms),
                    r.key,
                    r.route,
                    r.status,
                    to_i64(u.input),
                    to_i64(u.output),
                    to_i64(u.cache_read),
                    to_i64(u.cache_write),
                    to_i64(u.reasoning),
                    json,
                    r.node,
                    r.ledger.compact(),
                ])?;
                if written == 0 {
                    crate::log::warn(format_args!(
                        "custody: a record with id {} is already stored; the new one was not written",
                        r.id
                    ));
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn prune(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM custody WHERE time_ms < ?1", [before_ms])?;
        Ok(n as u64)
    }

    fn reader(&self) -> Result<Box<dyn CustodyReader>, StoreError> {
        Ok(Box::new(SqliteReader::open(&self.path)?))
    }
}

impl CustodyReader for SqliteReader {
    fn get(&mut self, id: &str) -> Result<Option<Stored>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT key, record FROM custody WHERE id = ?1")?;
        Ok(q.query_row([id], |row| {
            Ok(Stored {
                key: row.get(0)?,
                json: row.get(1)?,
            })
        })
        .optional()?)
    }

    fn usage(&mut self, uq: &UsageQuery) -> Result<UsageRows, StoreError> {
        let (sql, key) = usage_statement(&uq.scope);
        // One more than the limit: says whether rows were cut.
        let fetch = i64::try_from(uq.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut q = self.conn.prepare_cached(sql)?;
        let map = |row: &rusqlite::Row<'_>| {
            Ok(UsageRow {
                key: row.get(0)?,
                route: row.get(1)?,
                day: row.get(2)?,
                requests: to_u64(row.get(3)?),
                input_tokens: to_u64(row.get(4)?),
                output_tokens: to_u64(row.get(5)?),
                cache_read_tokens: to_u64(row.get(6)?),
                cache_write_tokens: to_u64(row.get(7)?),
                reasoning_tokens: to_u64(row.get(8)?),
            })
        };
        let mut rows = match key {
            None => q.query_map(params![uq.from_ms, uq.to_ms, fetch], map)?,
            Some(k) => q.query_map(params![uq.from_ms, uq.to_ms, fetch, k], map)?,
        }
        .collect::<Result<Vec<_>, _>>()?;
        let truncated = rows.len() > uq.limit;
        rows.truncate(uq.limit);
        Ok(UsageRows { rows, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::DAY_MS;
    use crate::custody::Attempt;
    use crate::usage::Usage;

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ringway-custody-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
        }
        p
    }

    fn record(id: &str, key: &str, route: &str, time_ms: i64, input: u64, output: u64) -> Record {
        Record {
            id: id.into(),
            time_ms,
            key: Some(key.into()),
            route: Some(route.into()),
            dialect: "openai",
            status: 200,
            usage: Some(Usage {
                input,
                output,
                cache_read: 1,
                cache_write: 0,
                reasoning: 2,
            }),
            attempts: vec![Attempt {
                target: "p/m".into(),
                status: Some(200),
                ..Attempt::default()
            }],
            ..Record::default()
        }
    }

    #[test]
    fn records_round_trip_and_sum_per_key_route_and_day() {
        let path = temp_db("sums.db");
        let mut s = Sqlite::open(&path).unwrap();
        let day0 = 20_000 * DAY_MS;
        s.write_batch(&[
            record("a", "k1", "fast", day0 + 5, 10, 3),
            record("b", "k1", "fast", day0 + 6, 20, 4),
            record("c", "k2", "fast", day0 + 7, 1, 1),
            record("d", "k1", "fast", day0 + DAY_MS, 100, 50),
            record("e", "k1", "slow", day0 + 2 * DAY_MS, 7, 7),
        ])
        .unwrap();
        let mut s = s.reader().unwrap();
        let got = s.get("b").unwrap().unwrap();
        assert_eq!(got.key.as_deref(), Some("k1"));
        let v: serde_json::Value = serde_json::from_str(&got.json).unwrap();
        assert_eq!(v["id"], "b");
        assert_eq!(v["usage"]["input"], 20);
        assert_eq!(v["attempts"][0]["target"], "p/m");
        assert_eq!(s.get("nope").unwrap(), None);

        let q = |scope, from_ms, to_ms, limit| UsageQuery {
            from_ms,
            to_ms,
            scope,
            limit,
        };
        let all = s
            .usage(&q(Scope::All, day0, day0 + 3 * DAY_MS, 100))
            .unwrap();
        assert!(!all.truncated);
        assert_eq!(all.rows.len(), 4);
        let first = &all.rows[0];
        assert_eq!(
            (first.key.as_deref(), first.day.as_str(), first.requests),
            (Some("k1"), crate::calendar::day_of(day0).as_str(), 2)
        );
        assert_eq!((first.input_tokens, first.output_tokens), (30, 7));
        assert_eq!((first.cache_read_tokens, first.reasoning_tokens), (2, 4));
        let own = s
            .usage(&q(Scope::Key("k2".into()), day0, day0 + 3 * DAY_MS, 100))
            .unwrap();
        assert_eq!(own.rows.len(), 1);
        assert_eq!(own.rows[0].key.as_deref(), Some("k2"));
        // The range's end is exclusive; the limit cuts and says so.
        let one_day = s.usage(&q(Scope::All, day0, day0 + DAY_MS, 100)).unwrap();
        assert_eq!(one_day.rows.len(), 2);
        let cut = s.usage(&q(Scope::All, day0, day0 + 3 * DAY_MS, 3)).unwrap();
        assert!(cut.truncated);
        assert_eq!(cut.rows.len(), 3);
    }

    #[test]
    fn prune_removes_only_older_records_and_the_file_survives_a_reopen() {
        let path = temp_db("prune.db");
        let now = 20_500 * DAY_MS;
        {
            let mut s = Sqlite::open(&path).unwrap();
            s.write_batch(&[
                record("old", "k", "r", now - 40 * DAY_MS, 1, 1),
                record("new", "k", "r", now - DAY_MS, 1, 1),
            ])
            .unwrap();
            assert_eq!(s.prune(now - 30 * DAY_MS).unwrap(), 1);
        }
        let s = Sqlite::open(&path).unwrap();
        let mut r = s.reader().unwrap();
        assert_eq!(r.get("old").unwrap(), None);
        assert!(r.get("new").unwrap().is_some());
    }

    #[test]
    fn a_repeated_id_never_replaces_the_stored_record() {
        let path = temp_db("dup.db");
        let mut s = Sqlite::open(&path).unwrap();
        s.write_batch(&[record("same", "alice", "r", 1_000, 1, 1)])
            .unwrap();
        // In a later batch and inside one: the first record stays, the batch still commits.
        s.write_batch(&[
            record("same", "mallory", "r", 2_000, 9, 9),
            record("other", "bob", "r", 2_000, 1, 1),
        ])
        .unwrap();
        let mut r = s.reader().unwrap();
        assert_eq!(
            r.get("same").unwrap().unwrap().key.as_deref(),
            Some("alice")
        );
        assert!(r.get("other").unwrap().is_some());
    }

    /// What SQLite plans for a usage query of `scope`: the `detail` of each step.
    fn plan(conn: &Connection, scope: &Scope) -> String {
        let (sql, key) = usage_statement(scope);
        let mut q = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let detail = |row: &rusqlite::Row<'_>| row.get::<_, String>(3);
        let steps: Vec<String> = match key {
            None => q.query_map(params![0, 1, 10], detail),
            Some(k) => q.query_map(params![0, 1, 10, k], detail),
        }
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
        steps.join("; ")
    }

    /// Both usage statements search an index (never scan the table), including on a file
    /// made before `custody_key_time` existed: opening it adds the index.
    #[test]
    fn usage_queries_search_their_indexes_also_on_an_older_file() {
        let path = temp_db("plan.db");
        {
            // The table and index as the first version made them.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE custody (id TEXT PRIMARY KEY NOT NULL, time_ms INTEGER NOT NULL,
                   day TEXT NOT NULL, key TEXT, route TEXT, status INTEGER NOT NULL,
                   input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read INTEGER NOT NULL,
                   cache_write INTEGER NOT NULL, reasoning INTEGER NOT NULL, record TEXT NOT NULL);
                 CREATE INDEX custody_time ON custody(time_ms);",
            )
            .unwrap();
        }
        let s = Sqlite::open(&path).unwrap();
        let all = plan(&s.conn, &Scope::All);
        assert!(
            all.contains("SEARCH custody USING INDEX custody_time (time_ms>? AND time_ms<?)"),
            "{all}"
        );
        let own = plan(&s.conn, &Scope::Key("team-a".into()));
        assert!(
            own.contains(
                "SEARCH custody USING INDEX custody_key_time (key=? AND time_ms>? AND time_ms<?)"
            ),
            "{own}"
        );
        for p in [&all, &own] {
            assert!(!p.contains("SCAN custody"), "{p}");
        }
    }

    /// The reader reads while the writer commits: a usage query stepping through its rows
    /// (a read transaction held open) does not stop a batch from being written, and it goes
    /// on seeing its snapshot; the next lookup sees the batch.
    #[test]
    fn the_reader_reads_while_the_writer_commits_and_cannot_write() {
        let path = temp_db("concurrent.db");
        let mut s = Sqlite::open(&path).unwrap();
        let day0 = 20_000 * DAY_MS;
        let before: Vec<Record> = (0..50)
            .map(|i| record(&format!("r{i}"), &format!("k{i}"), "fast", day0 + i, 1, 1))
            .collect();
        s.write_batch(&before).unwrap();
        let reader = SqliteReader::open(&path).unwrap();
        {
            let mut q = reader
                .conn
                .prepare("SELECT id FROM custody ORDER BY id")
                .unwrap();
            let mut rows = q.query([]).unwrap();
            assert!(rows.next().unwrap().is_some(), "a read transaction is open");
            // Without WAL the write would wait out the busy timeout, then fail (the unwrap).
            s.write_batch(&[record("late", "k", "fast", day0, 1, 1)])
                .unwrap();
            let mut seen = 1;
            while rows.next().unwrap().is_some() {
                seen += 1;
            }
            assert_eq!(seen, 50, "the snapshot the read began with");
        }
        let mut reader = reader;
        assert!(reader.get("late").unwrap().is_some());
        let refused = reader.conn.execute("DELETE FROM custody", []);
        assert!(refused.is_err(), "a read-only connection");
    }

    /// A file made before records named their node gets the column when it is opened; its
    /// old rows say "" and new ones their node, in the column and in the JSON.
    #[test]
    fn an_older_file_gets_the_node_column() {
        let path = temp_db("node.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE custody (id TEXT PRIMARY KEY NOT NULL, time_ms INTEGER NOT NULL,
                   day TEXT NOT NULL, key TEXT, route TEXT, status INTEGER NOT NULL,
                   input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read INTEGER NOT NULL,
                   cache_write INTEGER NOT NULL, reasoning INTEGER NOT NULL, record TEXT NOT NULL);
                 INSERT INTO custody VALUES ('old', 1, '1970-01-01', 'k', 'r', 200, 1, 1, 0, 0, 0,
                   '{\"id\":\"old\"}');",
            )
            .unwrap();
        }
        let mut s = Sqlite::open(&path).unwrap();
        let mut r = record("new", "k", "r", 2, 1, 1);
        r.node = "gw-b".into();
        r.ledger.note(crate::translate::Code::ParamDropped, "top_k");
        s.write_batch(&[r]).unwrap();
        // Opening it again does not add the column twice.
        drop(s);
        let s = Sqlite::open(&path).unwrap();
        let nodes: Vec<(String, String)> = s
            .conn
            .prepare("SELECT id, node FROM custody ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            nodes,
            vec![("new".into(), "gw-b".into()), ("old".into(), String::new())]
        );
        // The ledger column came with this open too: empty for the old row.
        let ledgers: Vec<String> = s
            .conn
            .prepare("SELECT ledger FROM custody ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            ledgers,
            vec!["param_dropped:top_k".to_owned(), String::new()]
        );
        let got = s.reader().unwrap().get("new").unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&got.json).unwrap();
        assert_eq!(v["node"], "gw-b");
        assert_eq!(
            v["ledger"],
            serde_json::json!([{"code": "param_dropped", "field": "top_k", "lossy": true}])
        );
    }

    #[test]
    fn the_reader_refuses_a_file_not_in_wal_mode() {
        let path = temp_db("rollback.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE custody (id TEXT)")
            .unwrap();
        let e = SqliteReader::open(&path).err().unwrap();
        assert!(e.0.contains("WAL"), "{e}");
    }
}
