//! Where stored responses are kept, as rows: the [`ResponseBackend`] the writer thread writes
//! through and the [`ResponseReader`] the reader thread looks up through. A row is sealed
//! before it reaches a backend, so a backend sees ids, owner tags, sizes and times, never
//! content. SQLite ([`super::sqlite`]) is the embedded one; PostgreSQL ([`super::postgres`]),
//! shared by several nodes, implements the same calls.
//!
//! The rows of a conversation form chains: a row continuing another (`prev`) holds only what
//! its turn added, and a chain is at most [`MAX_CHAIN`] rows long (the writer starts a new one
//! with the whole conversation when it would grow longer). An ancestor is kept (`kept_until`)
//! as long as its longest-kept descendant; what clients see of a row (`visible_until`) is its
//! own retention, or nothing after a delete.

use super::seal::OwnerTag;

/// Most rows in one chain, so rebuilding a conversation opens at most this many rows.
pub const MAX_CHAIN: u32 = 32;

/// What a store failure says (it is logged, never shown to a client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row's plain columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMeta {
    /// The response id.
    pub id: String,
    /// The response it continues (same owner); None: the row holds the whole conversation.
    pub prev: Option<String>,
    /// Rows before it in its chain (0 for a row without `prev`).
    pub depth: u32,
    /// Unix milliseconds it was written.
    pub created_ms: i64,
    /// Lookups by clients see it until then (0 after a delete).
    pub visible_until_ms: i64,
    /// It is removed at this time (never before any row continuing it).
    pub kept_until_ms: i64,
    /// Bytes of its conversation's items through its output (what a continuation rebuilds).
    pub conv_bytes: u64,
}

/// A row with its sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    pub meta: RowMeta,
    pub sealed: Vec<u8>,
}

/// A row to write, and the item ids it can be found by.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub meta: RowMeta,
    pub owner: OwnerTag,
    pub sealed: Vec<u8>,
    /// Ids of the items the row holds (input and output).
    pub items: Vec<String>,
}

/// What a prune removed, and the stored bytes left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows past `kept_until`.
    pub expired: u64,
    /// Rows removed, oldest first, to get under the size bound.
    pub evicted: u64,
    /// Sealed bytes stored afterwards.
    pub bytes: u64,
}

/// The writing side. `&mut self`: one writer thread owns it.
pub trait ResponseBackend: Send {
    /// Make `check` (the store key's check value) the store's; rows sealed under another key
    /// cannot be opened, so they are removed. Returns how many went.
    fn adopt_key(&mut self, check: &[u8; 32]) -> Result<u64, StoreError>;
    /// The row `id` of `owner`, visible or not.
    fn head(&mut self, owner: &OwnerTag, id: &str) -> Result<Option<RowMeta>, StoreError>;
    /// The rows from `id` back along `prev`, newest first, at most `max`; stops early at a
    /// missing row (the caller sees the chain does not end at a row without `prev`).
    fn chain(&mut self, owner: &OwnerTag, id: &str, max: u32)
        -> Result<Vec<SealedRow>, StoreError>;
    /// Write a row (one transaction: the row, its item ids, and `kept_until` of its ancestors
    /// raised to its own). False when the id is already stored (the stored row stays).
    fn insert(&mut self, row: &NewRow) -> Result<bool, StoreError>;
    /// Delete the visible row `id` of `owner`; false when there is none. A row other rows
    /// continue is hidden instead, and goes with the last of them; hidden ancestors that
    /// nothing continues any more go with it.
    fn delete(&mut self, owner: &OwnerTag, id: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// Remove rows past `kept_until`, then, while the sealed bytes exceed `max_bytes`, the
    /// rows kept the shortest (a descendant before its ancestors) down to `target_bytes`.
    fn prune(
        &mut self,
        now_ms: i64,
        max_bytes: u64,
        target_bytes: u64,
    ) -> Result<Pruned, StoreError>;
    /// Sealed bytes stored.
    fn total_bytes(&mut self) -> Result<u64, StoreError>;
    /// A handle for lookups on another thread while this one writes.
    fn reader(&self) -> Result<Box<dyn ResponseReader>, StoreError>;
}

/// The reading side. `&mut self`: one reader thread owns it.
pub trait ResponseReader: Send {
    /// As [`ResponseBackend::chain`], read in one snapshot.
    fn chain(&mut self, owner: &OwnerTag, id: &str, max: u32)
        -> Result<Vec<SealedRow>, StoreError>;
    /// The id of the newest visible row of `owner` that holds the item `item_id`.
    fn item_row(
        &mut self,
        owner: &OwnerTag,
        item_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError>;
}
