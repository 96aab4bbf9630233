//! Stored responses in SQLite: in a file (WAL mode, as the custody store) or, without a path,
//! in the process's memory (SQLite's `memdb`, gone when the process ends). The writer thread
//! owns a [`Sqlite`]; the reader thread its own read-only [`SqliteReader`] connection.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::backend::{
    NewRow, Pruned, ResponseBackend, ResponseReader, RowMeta, SealedRow, StoreError, MAX_CHAIN,
};
use super::seal::OwnerTag;

/// Longest a statement waits on a lock held by the other connection (in memory, the writer's
/// commit and a read exclude each other for their moment) or by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Rows looked at per round of size eviction.
const EVICT_ROUND: i64 = 64;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file (created if missing; `-wal` and `-shm` beside it).
    File(PathBuf),
    /// The process's memory.
    Memory,
}

/// The tables. `responses`: one row per stored response (see [`RowMeta`]); `sealed` is nonce ‖
/// ciphertext ‖ tag, `bytes` its length. `response_items`: which rows hold which item ids (an
/// item repeated in later turns is held by each). `meta`: the store key's check value.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS responses (
    id            TEXT PRIMARY KEY NOT NULL,
    owner         BLOB NOT NULL,
    prev          TEXT,
    depth         INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    visible_until INTEGER NOT NULL,
    kept_until    INTEGER NOT NULL,
    conv_bytes    INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    sealed        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_prev ON responses(prev);
CREATE INDEX IF NOT EXISTS responses_kept ON responses(kept_until, depth DESC);
CREATE TABLE IF NOT EXISTS response_items (
    owner       BLOB NOT NULL,
    item_id     TEXT NOT NULL,
    response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
    PRIMARY KEY (owner, item_id, response_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS response_items_response ON response_items(response_id);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
";

const ROW_COLUMNS: &str =
    "id, prev, depth, created_ms, visible_until, kept_until, conv_bytes, sealed";

/// The writer's connection.
pub struct Sqlite {
    conn: Connection,
    /// How the reader opens the same database.
    target: String,
    flags: OpenFlags,
    wal: bool,
}

/// The reader's read-only connection.
pub struct SqliteReader {
    conn: Connection,
}

/// Tells apart the in-memory stores of one process (tests open several).
static MEMORY_STORES: AtomicU64 = AtomicU64::new(0);

impl Sqlite {
    /// Open (or create) the store at `location` and its tables.
    pub fn open(location: &Location) -> Result<Sqlite, StoreError> {
        let (target, flags, wal) = match location {
            Location::File(p) => (
                p.to_string_lossy().into_owned(),
                OpenFlags::SQLITE_OPEN_NO_MUTEX,
                true,
            ),
            Location::Memory => {
                let n = MEMORY_STORES.fetch_add(1, Ordering::Relaxed);
                (
                    format!(
                        "file:/ringway-responses-{}-{n}?vfs=memdb",
                        std::process::id()
                    ),
                    OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                    false,
                )
            }
        };
        let place = || match location {
            Location::File(p) => p.display().to_string(),
            Location::Memory => "(in memory)".into(),
        };
        let conn = Connection::open_with_flags(
            &target,
            flags | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| StoreError(format!("responses store {}: {e}", place())))?;
        if wal {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError(format!(
                    "responses store {}: WAL mode refused (journal_mode is {mode})",
                    place()
                )));
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Sqlite {
            conn,
            target,
            flags,
            wal,
        })
    }
}

impl SqliteReader {
    fn open(target: &str, flags: OpenFlags, wal: bool) -> Result<SqliteReader, StoreError> {
        let conn = Connection::open_with_flags(target, flags | OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError(format!("responses store (reader): {e}")))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if wal {
            let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError(format!(
                    "responses store: the reader needs WAL mode (journal_mode is {mode})"
                )));
            }
        }
        Ok(SqliteReader { conn })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn meta_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<RowMeta> {
    Ok(RowMeta {
        id: row.get(0)?,
        prev: row.get(1)?,
        depth: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
        created_ms: row.get(3)?,
        visible_until_ms: row.get(4)?,
        kept_until_ms: row.get(5)?,
        conv_bytes: to_u64(row.get(6)?),
    })
}

/// The chain from `id` back, newest first (see [`ResponseBackend::chain`]).
fn chain(
    conn: &Connection,
    owner: &OwnerTag,
    id: &str,
    max: u32,
) -> Result<Vec<SealedRow>, StoreError> {
    let mut q = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM responses WHERE id = ?1 AND owner = ?2"
    ))?;
    let mut rows = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(id) = next.take() {
        if rows.len() >= max as usize {
            break;
        }
        let row = q
            .query_row(params![id, &owner.0[..]], |r| {
                Ok(SealedRow {
                    meta: meta_of(r)?,
                    sealed: r.get(7)?,
                })
            })
            .optional()?;
        let Some(row) = row else { break };
        next = row.meta.prev.clone();
        rows.push(row);
    }
    Ok(rows)
}

impl ResponseBackend for Sqlite {
    fn adopt_key(&mut self, check: &[u8; 32]) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let stored: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM meta WHERE name = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let mut removed = 0;
        if stored.as_deref() != Some(&check[..]) {
            if stored.is_some() {
                removed = tx.execute("DELETE FROM responses", [])? as u64;
                tx.execute("DELETE FROM response_items", [])?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('key_check', ?1)",
                [&check[..]],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    fn head(&mut self, owner: &OwnerTag, id: &str) -> Result<Option<RowMeta>, StoreError> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM responses WHERE id = ?1 AND owner = ?2"
        ))?;
        Ok(q.query_row(params![id, &owner.0[..]], meta_of).optional()?)
    }

    fn chain(
        &mut self,
        owner: &OwnerTag,
        id: &str,
        max: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        chain(&self.conn, owner, id, max)
    }

    fn insert(&mut self, row: &NewRow) -> Result<bool, StoreError> {
        let m = &row.meta;
        let tx = self.conn.transaction()?;
        {
            let written = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO responses
                     (id, owner, prev, depth, created_ms, visible_until, kept_until, conv_bytes,
                      bytes, sealed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    m.id,
                    &row.owner.0[..],
                    m.prev,
                    i64::from(m.depth),
                    m.created_ms,
                    m.visible_until_ms,
                    m.kept_until_ms,
                    to_i64(m.conv_bytes),
                    row.sealed.len() as i64,
                    row.sealed,
                ])?;
            if written == 0 {
                return Ok(false);
            }
            let mut item = tx.prepare_cached(
                "INSERT OR IGNORE INTO response_items (owner, item_id, response_id)
                 VALUES (?1, ?2, ?3)",
            )?;
            for id in &row.items {
                item.execute(params![&row.owner.0[..], id, m.id])?;
            }
            // The ancestors live as long as their newest descendant (a chain is MAX_CHAIN long
            // at most, so this is as many point updates).
            let mut raise = tx.prepare_cached(
                "UPDATE responses SET kept_until = MAX(kept_until, ?1)
                 WHERE id = ?2 AND owner = ?3 RETURNING prev",
            )?;
            let mut next = m.prev.clone();
            let mut steps = 0;
            while let Some(id) = next.take() {
                if steps >= MAX_CHAIN {
                    break;
                }
                steps += 1;
                next = raise
                    .query_row(params![m.kept_until_ms, id, &row.owner.0[..]], |r| {
                        r.get::<_, Option<String>>(0)
                    })
                    .optional()?
                    .flatten();
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn delete(&mut self, owner: &OwnerTag, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let o = &owner.0[..];
        let found: Option<(Option<String>, i64)> = tx
            .query_row(
                "SELECT prev, visible_until FROM responses WHERE id = ?1 AND owner = ?2",
                params![id, o],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((mut prev, _)) = found.filter(|(_, visible_until)| *visible_until > now_ms) else {
            return Ok(false);
        };
        let continued = |tx: &rusqlite::Transaction<'_>, id: &str| -> rusqlite::Result<bool> {
            tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM responses WHERE prev = ?1)",
                [id],
                |r| r.get(0),
            )
        };
        if continued(&tx, id)? {
            tx.execute(
                "UPDATE responses SET visible_until = 0 WHERE id = ?1 AND owner = ?2",
                params![id, o],
            )?;
        } else {
            tx.execute(
                "DELETE FROM responses WHERE id = ?1 AND owner = ?2",
                params![id, o],
            )?;
            // Ancestors kept only for this row (hidden: deleted or past their own retention)
            // go with it, up to the first that is visible or still continued.
            let mut steps = 0;
            while let Some(p) = prev.take() {
                if steps >= MAX_CHAIN {
                    break;
                }
                steps += 1;
                let up: Option<(Option<String>, i64)> = tx
                    .query_row(
                        "SELECT prev, visible_until FROM responses WHERE id = ?1 AND owner = ?2",
                        params![p, o],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                match up {
                    Some((pp, v)) if v <= now_ms && !continued(&tx, &p)? => {
                        tx.execute(
                            "DELETE FROM responses WHERE id = ?1 AND owner = ?2",
                            params![p, o],
                        )?;
                        prev = pp;
                    }
                    _ => break,
                }
            }
        }
        tx.commit()?;
        Ok(true)
    }

    fn prune(
        &mut self,
        now_ms: i64,
        max_bytes: u64,
        target_bytes: u64,
    ) -> Result<Pruned, StoreError> {
        let tx = self.conn.transaction()?;
        let mut out = Pruned {
            expired: tx.execute("DELETE FROM responses WHERE kept_until <= ?1", [now_ms])? as u64,
            ..Pruned::default()
        };
        let mut total = to_u64(tx.query_row(
            "SELECT COALESCE(SUM(bytes), 0) FROM responses",
            [],
            |r| r.get(0),
        )?);
        if total > max_bytes {
            let mut oldest = tx.prepare_cached(
                "SELECT id, bytes FROM responses ORDER BY kept_until, depth DESC LIMIT ?1",
            )?;
            let mut remove = tx.prepare_cached("DELETE FROM responses WHERE id = ?1")?;
            'evict: while total > target_bytes {
                let round: Vec<(String, i64)> = oldest
                    .query_map([EVICT_ROUND], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                if round.is_empty() {
                    break;
                }
                for (id, bytes) in round {
                    remove.execute([&id])?;
                    out.evicted += 1;
                    total = total.saturating_sub(to_u64(bytes));
                    if total <= target_bytes {
                        break 'evict;
                    }
                }
            }
        }
        tx.commit()?;
        out.bytes = total;
        Ok(out)
    }

    fn total_bytes(&mut self) -> Result<u64, StoreError> {
        Ok(to_u64(self.conn.query_row(
            "SELECT COALESCE(SUM(bytes), 0) FROM responses",
            [],
            |r| r.get(0),
        )?))
    }

    fn reader(&self) -> Result<Box<dyn ResponseReader>, StoreError> {
        Ok(Box::new(SqliteReader::open(
            &self.target,
            self.flags,
            self.wal,
        )?))
    }
}

impl ResponseReader for SqliteReader {
    fn chain(
        &mut self,
        owner: &OwnerTag,
        id: &str,
        max: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        // One snapshot: a prune between two of the point reads cannot cut the chain.
        let tx = self.conn.transaction()?;
        let rows = chain(&tx, owner, id, max)?;
        tx.finish()?;
        Ok(rows)
    }

    fn item_row(
        &mut self,
        owner: &OwnerTag,
        item_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT r.id FROM response_items i JOIN responses r ON r.id = i.response_id
             WHERE i.owner = ?1 AND i.item_id = ?2 AND r.visible_until > ?3
             ORDER BY r.created_ms DESC LIMIT 1",
        )?;
        Ok(
            q.query_row(params![&owner.0[..], item_id, now_ms], |r| r.get(0))
                .optional()?,
        )
    }
}
