//! Stored responses in PostgreSQL, shared by every node of a cluster (`[cluster] postgres`), so
//! that a conversation started on one node continues on another: the writer's [`Postgres`] and
//! the reader's [`PostgresReader`], each on its own connection
//! ([`crate::cluster::postgres::Link`]), used only on the store's threads.
//!
//! Rows arrive sealed (the backend sees ids, owner tags, sizes and times, never content), so
//! every node must hold the same store key: [`ResponseBackend::adopt_key`] records the key's
//! check value once and refuses a node with another key, instead of deleting what the other
//! nodes stored (SQLite's answer for its own file).
//!
//! A chain is read in one statement (a recursive walk along `prev`, at most `max` rows), so it
//! is one snapshot and one round trip; raising the ancestors' `kept_until` on insert is one
//! statement too. Pruning (age, then `max_bytes`) is done by one node at a time: the others
//! find the advisory lock taken and skip that round, so two nodes never evict twice the bytes.
//! Each node counts the store's size from its last prune plus its own writes since, so the
//! shared store can exceed `max_bytes` by what the other nodes wrote within one
//! [`super::PRUNE_EVERY`].

use postgres::Client;

use super::backend::{
    NewRow, Pruned, ResponseBackend, ResponseReader, RowMeta, SealedRow, StoreError, MAX_CHAIN,
};
use super::seal::OwnerTag;
use crate::cluster::postgres::{Failure, Link};
use crate::cluster::StoreUrl;

/// Rows looked at per round of size eviction (as SQLite's).
const EVICT_ROUND: i64 = 64;
/// The advisory lock the node pruning stored responses holds for its transaction.
const PRUNE_LOCK: i64 = 0x7277_7265_7370_7031;
/// The advisory lock held while a node records or checks the store key.
const KEY_LOCK: i64 = 0x7277_7265_736b_6579;

/// This build's tables, one step per version (`ringway_schema`, component `responses`). Steps
/// are only ever appended. `sealed` is stored uncompressed: ciphertext does not compress.
pub const MIGRATIONS: &[&str] = &["
CREATE TABLE IF NOT EXISTS ringway_responses (
    id            TEXT COLLATE \"C\" PRIMARY KEY,
    owner         BYTEA NOT NULL,
    prev          TEXT COLLATE \"C\",
    depth         INTEGER NOT NULL,
    created_ms    BIGINT NOT NULL,
    visible_until BIGINT NOT NULL,
    kept_until    BIGINT NOT NULL,
    conv_bytes    BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    node          TEXT COLLATE \"C\" NOT NULL,
    sealed        BYTEA NOT NULL
);
ALTER TABLE ringway_responses ALTER COLUMN sealed SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS ringway_responses_prev ON ringway_responses (prev);
CREATE INDEX IF NOT EXISTS ringway_responses_kept ON ringway_responses (kept_until, depth DESC);
CREATE TABLE IF NOT EXISTS ringway_response_items (
    owner       BYTEA NOT NULL,
    item_id     TEXT COLLATE \"C\" NOT NULL,
    response_id TEXT COLLATE \"C\" NOT NULL
                REFERENCES ringway_responses (id) ON DELETE CASCADE,
    PRIMARY KEY (owner, item_id, response_id)
);
CREATE INDEX IF NOT EXISTS ringway_response_items_response
    ON ringway_response_items (response_id);
CREATE TABLE IF NOT EXISTS ringway_meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
"];

/// The row `$1` of owner `$2` and its ancestors along `prev`, at most `$3` rows, newest first.
const CHAIN: &str = "
WITH RECURSIVE walk AS (
    SELECT id, prev, depth, created_ms, visible_until, kept_until, conv_bytes, sealed, 1 AS n
    FROM ringway_responses WHERE id = $1 AND owner = $2
  UNION ALL
    SELECT r.id, r.prev, r.depth, r.created_ms, r.visible_until, r.kept_until, r.conv_bytes,
           r.sealed, w.n + 1
    FROM ringway_responses r JOIN walk w ON r.id = w.prev
    WHERE r.owner = $2 AND w.n < $3
)
SELECT id, prev, depth, created_ms, visible_until, kept_until, conv_bytes, sealed
FROM walk ORDER BY n";

/// Raise `kept_until` to `$3` on the row `$1` of owner `$2` and its ancestors (at most `$4`).
const RAISE: &str = "
WITH RECURSIVE up AS (
    SELECT id, prev, 1 AS n FROM ringway_responses WHERE id = $1 AND owner = $2
  UNION ALL
    SELECT r.id, r.prev, up.n + 1
    FROM ringway_responses r JOIN up ON r.id = up.prev
    WHERE r.owner = $2 AND up.n < $4
)
UPDATE ringway_responses SET kept_until = GREATEST(kept_until, $3)
WHERE owner = $2 AND id IN (SELECT id FROM up)";

const ROW_COLUMNS: &str =
    "id, prev, depth, created_ms, visible_until, kept_until, conv_bytes, sealed";

/// PostgreSQL text cannot hold NUL: an id with one was never stored (and cannot be looked
/// up without an error), so it is treated as not found.
fn storable(s: &str) -> bool {
    !s.contains('\0')
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn meta_of(row: &postgres::Row) -> Result<RowMeta, postgres::Error> {
    Ok(RowMeta {
        id: row.try_get(0)?,
        prev: row.try_get(1)?,
        depth: u32::try_from(row.try_get::<_, i32>(2)?).unwrap_or(u32::MAX),
        created_ms: row.try_get(3)?,
        visible_until_ms: row.try_get(4)?,
        kept_until_ms: row.try_get(5)?,
        conv_bytes: to_u64(row.try_get(6)?),
    })
}

fn chain(
    c: &mut impl postgres::GenericClient,
    owner: &OwnerTag,
    id: &str,
    max: u32,
) -> Result<Vec<SealedRow>, postgres::Error> {
    if max == 0 || !storable(id) {
        return Ok(Vec::new());
    }
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    let rows = c.query(CHAIN, &[&id, &&owner.0[..], &max])?;
    rows.iter()
        .map(|r| {
            Ok(SealedRow {
                meta: meta_of(r)?,
                sealed: r.try_get(7)?,
            })
        })
        .collect()
}

fn total(c: &mut impl postgres::GenericClient) -> Result<u64, postgres::Error> {
    let row = c.query_one(
        "SELECT COALESCE(SUM(bytes), 0)::int8 FROM ringway_responses",
        &[],
    )?;
    Ok(to_u64(row.try_get(0)?))
}

/// Run `f` on the link's connection; a failure becomes the store's error, and an unreachable
/// database drops the connection (the link's backoff decides the next attempt).
fn run<T>(
    link: &mut Link,
    f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
) -> Result<T, StoreError> {
    let (client, _) = link.client().map_err(store_error)?;
    match f(client) {
        Ok(v) => {
            link.ok();
            Ok(v)
        }
        Err(e) => Err(store_error(link.failed(&e))),
    }
}

fn store_error(f: Failure) -> StoreError {
    StoreError(format!("PostgreSQL: {f}"))
}

/// The writer's side.
pub struct Postgres {
    link: Link,
    url: StoreUrl,
    /// This node's id, written into its rows.
    node: String,
}

impl Postgres {
    /// Connect to `url` and bring the tables to this build's version: for `serve` at start, on
    /// the main thread. The error is the config's (`FILE:LINE: cluster.postgres: reason`).
    pub fn open(url: &StoreUrl, node: &str) -> Result<Postgres, String> {
        let mut link = Link::new(url, "responses writer", false).map_err(|e| url.error(e))?;
        crate::cluster::postgres::open(&mut link, url, "responses", MIGRATIONS)?;
        Ok(Postgres {
            link,
            url: url.clone(),
            node: node.to_owned(),
        })
    }
}

impl ResponseBackend for Postgres {
    /// The first node records its key's check value; every later one must match it. A
    /// mismatch is refused, never resolved by deleting: the rows are the other nodes'.
    fn adopt_key(&mut self, check: &[u8; 32]) -> Result<u64, StoreError> {
        let stored = run(&mut self.link, |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])?;
            let stored: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT value FROM ringway_meta WHERE name = 'responses_key_check'",
                    &[],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            if stored.is_none() {
                tx.execute(
                    "INSERT INTO ringway_meta (name, value) VALUES ('responses_key_check', $1)",
                    &[&&check[..]],
                )?;
            }
            tx.commit()?;
            Ok(stored)
        })?;
        match stored {
            Some(v) if v.as_slice() != &check[..] => Err(StoreError(
                "the shared PostgreSQL holds responses sealed under another key: every node \
                 must set [responses.store] key_env to the same key (nothing was deleted)"
                    .into(),
            )),
            _ => Ok(0),
        }
    }

    fn head(&mut self, owner: &OwnerTag, id: &str) -> Result<Option<RowMeta>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        run(&mut self.link, |c| {
            c.query_opt(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM ringway_responses WHERE id = $1 AND owner = $2"
                ),
                &[&id, &&owner.0[..]],
            )?
            .map(|r| meta_of(&r))
            .transpose()
        })
    }

    fn chain(
        &mut self,
        owner: &OwnerTag,
        id: &str,
        max: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        run(&mut self.link, |c| chain(c, owner, id, max))
    }

    fn insert(&mut self, row: &NewRow) -> Result<bool, StoreError> {
        let m = &row.meta;
        if !storable(&m.id) || m.prev.as_deref().is_some_and(|p| !storable(p)) {
            return Err(StoreError(format!("response id {:?} holds a NUL", m.id)));
        }
        let node = self.node.as_str();
        run(&mut self.link, |c| {
            let mut tx = c.transaction()?;
            let o = &row.owner.0[..];
            let written = tx.execute(
                "INSERT INTO ringway_responses
                 (id, owner, prev, depth, created_ms, visible_until, kept_until, conv_bytes,
                  bytes, node, sealed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &m.id,
                    &o,
                    &m.prev,
                    &i32::try_from(m.depth).unwrap_or(i32::MAX),
                    &m.created_ms,
                    &m.visible_until_ms,
                    &m.kept_until_ms,
                    &to_i64(m.conv_bytes),
                    &to_i64(row.sealed.len() as u64),
                    &node,
                    &row.sealed,
                ],
            )?;
            if written == 0 {
                return Ok(false);
            }
            // An item id with a NUL cannot be stored or looked up; the row is still stored.
            let items: Vec<&str> = row
                .items
                .iter()
                .map(String::as_str)
                .filter(|i| storable(i))
                .collect();
            if !items.is_empty() {
                tx.execute(
                    "INSERT INTO ringway_response_items (owner, item_id, response_id)
                     SELECT $1, i, $3 FROM UNNEST($2::text[]) AS i
                     ON CONFLICT DO NOTHING",
                    &[&o, &items, &m.id],
                )?;
            }
            if let Some(prev) = &m.prev {
                let max = i32::try_from(MAX_CHAIN).unwrap_or(i32::MAX);
                tx.execute(RAISE, &[prev, &o, &m.kept_until_ms, &max])?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn delete(&mut self, owner: &OwnerTag, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        run(&mut self.link, |c| {
            let mut tx = c.transaction()?;
            let o = &owner.0[..];
            let found = tx.query_opt(
                "SELECT prev, visible_until FROM ringway_responses
                 WHERE id = $1 AND owner = $2 FOR UPDATE",
                &[&id, &o],
            )?;
            let Some(found) = found else {
                return Ok(false);
            };
            let (mut prev, visible_until): (Option<String>, i64) =
                (found.try_get(0)?, found.try_get(1)?);
            if visible_until <= now_ms {
                return Ok(false);
            }
            let continued =
                |tx: &mut postgres::Transaction<'_>, id: &str| -> Result<bool, postgres::Error> {
                    tx.query_one(
                        "SELECT EXISTS (SELECT 1 FROM ringway_responses WHERE prev = $1)",
                        &[&id],
                    )?
                    .try_get(0)
                };
            if continued(&mut tx, id)? {
                tx.execute(
                    "UPDATE ringway_responses SET visible_until = 0 WHERE id = $1 AND owner = $2",
                    &[&id, &o],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM ringway_responses WHERE id = $1 AND owner = $2",
                    &[&id, &o],
                )?;
                // Ancestors kept only for this row (hidden: deleted or past their own
                // retention) go with it, up to the first that is visible or still continued.
                let mut steps = 0;
                while let Some(p) = prev.take() {
                    if steps >= MAX_CHAIN {
                        break;
                    }
                    steps += 1;
                    let up = tx.query_opt(
                        "SELECT prev, visible_until FROM ringway_responses
                         WHERE id = $1 AND owner = $2 FOR UPDATE",
                        &[&p, &o],
                    )?;
                    let Some(up) = up else { break };
                    let (pp, v): (Option<String>, i64) = (up.try_get(0)?, up.try_get(1)?);
                    if v <= now_ms && !continued(&mut tx, &p)? {
                        tx.execute(
                            "DELETE FROM ringway_responses WHERE id = $1 AND owner = $2",
                            &[&p, &o],
                        )?;
                        prev = pp;
                    }
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn prune(
        &mut self,
        now_ms: i64,
        max_bytes: u64,
        target_bytes: u64,
    ) -> Result<Pruned, StoreError> {
        run(&mut self.link, |c| {
            let mut tx = c.transaction()?;
            let mine: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])?
                .try_get(0)?;
            if !mine {
                // Another node is pruning now; this one only learns the size.
                let bytes = total(&mut tx)?;
                return Ok(Pruned {
                    bytes,
                    ..Pruned::default()
                });
            }
            let mut out = Pruned {
                expired: tx.execute(
                    "DELETE FROM ringway_responses WHERE kept_until <= $1",
                    &[&now_ms],
                )?,
                ..Pruned::default()
            };
            let mut bytes = total(&mut tx)?;
            if bytes > max_bytes {
                'evict: while bytes > target_bytes {
                    let round = tx.query(
                        "SELECT id, bytes FROM ringway_responses
                         ORDER BY kept_until, depth DESC LIMIT $1",
                        &[&EVICT_ROUND],
                    )?;
                    if round.is_empty() {
                        break;
                    }
                    let mut gone: Vec<String> = Vec::with_capacity(round.len());
                    for r in &round {
                        gone.push(r.try_get(0)?);
                        bytes = bytes.saturating_sub(to_u64(r.try_get(1)?));
                        if bytes <= target_bytes {
                            break;
                        }
                    }
                    out.evicted +=
                        tx.execute("DELETE FROM ringway_responses WHERE id = ANY($1)", &[&gone])?;
                    if bytes <= target_bytes {
                        break 'evict;
                    }
                }
            }
            tx.commit()?;
            out.bytes = bytes;
            Ok(out)
        })
    }

    fn total_bytes(&mut self) -> Result<u64, StoreError> {
        run(&mut self.link, total)
    }

    fn reader(&self) -> Result<Box<dyn ResponseReader>, StoreError> {
        Ok(Box::new(
            PostgresReader::new(&self.url).map_err(StoreError)?,
        ))
    }
}

/// The reader's side: its own read-only session, connected at the first lookup.
pub struct PostgresReader {
    link: Link,
}

impl PostgresReader {
    pub fn new(url: &StoreUrl) -> Result<PostgresReader, String> {
        Ok(PostgresReader {
            link: Link::new(url, "responses reader", true)?,
        })
    }
}

impl ResponseReader for PostgresReader {
    fn chain(
        &mut self,
        owner: &OwnerTag,
        id: &str,
        max: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        // One statement: one snapshot, so a prune cannot cut the chain halfway.
        run(&mut self.link, |c| chain(c, owner, id, max))
    }

    fn item_row(
        &mut self,
        owner: &OwnerTag,
        item_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        if !storable(item_id) {
            return Ok(None);
        }
        run(&mut self.link, |c| {
            c.query_opt(
                "SELECT r.id FROM ringway_response_items i
                 JOIN ringway_responses r ON r.id = i.response_id
                 WHERE i.owner = $1 AND i.item_id = $2 AND r.visible_until > $3
                 ORDER BY r.created_ms DESC LIMIT 1",
                &[&&owner.0[..], &item_id, &now_ms],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })
    }
}
