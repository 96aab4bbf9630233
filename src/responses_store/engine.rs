//! The store's logic over a backend, one half per thread: the [`Writer`] (what a row holds,
//! chain or whole conversation, sealing, size bounds, pruning, deletes) and the [`Reader`]
//! (opening rows, rebuilding a conversation, finding items, paging input items). Time comes in
//! as a parameter; the writer draws nonces from its [`Nonces`].

use std::collections::HashMap;
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::value::RawValue;

use super::backend::{
    NewRow, Pruned, ResponseBackend, ResponseReader, RowMeta, SealedRow, StoreError, MAX_CHAIN,
};
use super::items::{
    id_base, items_bytes, list_body, listing_id, output_items, Items, Page, Payload, Side,
};
use super::seal::{Owner, OwnerTag, StoreKey, NONCE_BYTES};

/// Most sealed bytes one item lookup opens (its rows, each once): an item is read from the
/// newest row that holds it, so a real conversation's references open one or two rows; a
/// lookup naming items scattered over many large rows stops here and says so.
pub const MAX_OPEN_BYTES: u64 = 64 << 20;
/// Most item ids one lookup takes.
pub const MAX_ITEM_LOOKUPS: usize = 4096;

/// Where nonces come from: the system's random source in production, a counter in tests.
pub trait Nonces: Send {
    /// A fresh nonce; None when the source fails.
    fn next(&mut self) -> Option<[u8; NONCE_BYTES]>;
}

/// Nonces from the system's random source (96 random bits each).
pub struct SystemNonces(SystemRandom);

impl SystemNonces {
    pub fn new() -> SystemNonces {
        SystemNonces(SystemRandom::new())
    }
}

impl Default for SystemNonces {
    fn default() -> Self {
        SystemNonces::new()
    }
}

impl Nonces for SystemNonces {
    fn next(&mut self) -> Option<[u8; NONCE_BYTES]> {
        let mut n = [0u8; NONCE_BYTES];
        self.0.fill(&mut n).ok()?;
        Some(n)
    }
}

/// The bounds the writer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a response is visible (and kept, unless a later turn keeps it longer).
    pub retention_ms: i64,
    /// Sealed bytes stored; past it, the rows kept the shortest go first.
    pub max_bytes: u64,
    /// Largest response stored: its object, its whole conversation's input items (what a
    /// continuation rebuilds), in bytes of JSON.
    pub max_response_bytes: u64,
}

impl Limits {
    /// What an eviction brings the store down to: 90% of `max_bytes`, so one eviction makes
    /// room for many responses rather than one.
    fn target_bytes(&self) -> u64 {
        self.max_bytes - self.max_bytes / 10
    }
}

/// One response to store.
#[derive(Debug)]
pub struct Put {
    /// `resp_…`.
    pub id: String,
    /// The gateway key that made it.
    pub owner: Owner,
    /// Its `previous_response_id`, when it continued one.
    pub previous: Option<String>,
    /// This turn's input items as the client sent them, each `item_reference` replaced by its
    /// item; without the conversation `previous` brought (the store has that).
    pub input: Vec<Box<RawValue>>,
    /// The complete response object as the client got it (its `output` holds the output
    /// items).
    pub response: Box<RawValue>,
}

impl Put {
    /// Bytes it holds (for the write queue's bound and the early size check).
    pub fn bytes(&self) -> u64 {
        items_bytes(&self.input) + self.response.get().len() as u64
    }
}

/// What became of a [`Put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written: a row of this many sealed bytes.
    Stored { bytes: u64 },
    /// A response with this id is already stored; it stays as it was.
    Exists,
    /// Larger than `max_response_bytes` (this many bytes with its conversation): not stored.
    TooBig { bytes: u64 },
    /// Its previous response is gone (deleted or pruned since the request read it): the
    /// conversation cannot be rebuilt, so it is not stored.
    PreviousGone,
}

/// The rebuilt conversation of a response: what a request continuing it sends before its own
/// input.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Its input items, then its output items, in order, as stored.
    pub items: Vec<Box<RawValue>>,
    /// Their bytes as JSON.
    pub bytes: u64,
}

/// A row's payload, opened; an error when it does not open (tampered with, or not sealed for
/// this id, owner and chain).
fn open_row(key: &StoreKey, owner: &OwnerTag, row: &SealedRow) -> Result<Payload, StoreError> {
    let plain = key
        .open(&row.meta.id, owner, row.meta.prev.as_deref(), &row.sealed)
        .ok_or_else(|| {
            StoreError(format!(
                "stored response {} does not open: it was altered",
                row.meta.id
            ))
        })?;
    serde_json::from_slice(&plain)
        .map_err(|e| StoreError(format!("stored response {}: {e}", row.meta.id)))
}

/// The items of a chain (`rows` newest first, as [`ResponseBackend::chain`] gives them), the
/// newest row's output included when `head_output`; None when the chain is cut (a row of it is
/// missing), which the caller treats as not found.
fn assemble(
    key: &StoreKey,
    owner: &OwnerTag,
    rows: &[SealedRow],
    head_output: bool,
) -> Result<Option<Items>, StoreError> {
    if rows.last().is_none_or(|r| r.meta.prev.is_some()) {
        if let Some(head) = rows.first() {
            crate::log::warn(format_args!(
                "responses store: the conversation of {} is cut (a row is missing)",
                head.meta.id
            ));
        }
        return Ok(None);
    }
    let mut items = Items::default();
    for (i, row) in rows.iter().enumerate().rev() {
        let payload = open_row(key, owner, row)?;
        items
            .add(&row.meta.id, payload, i != 0 || head_output)
            .map_err(StoreError)?;
    }
    Ok(Some(items))
}

/// The writing half, owned by the writer thread.
pub struct Writer {
    backend: Box<dyn ResponseBackend>,
    key: Arc<StoreKey>,
    limits: Limits,
    nonces: Box<dyn Nonces>,
    /// Sealed bytes stored.
    total: u64,
}

impl Writer {
    /// The writer over `backend`; rows sealed under another key are removed (their count is
    /// returned beside it).
    pub fn new(
        mut backend: Box<dyn ResponseBackend>,
        key: Arc<StoreKey>,
        limits: Limits,
        nonces: Box<dyn Nonces>,
    ) -> Result<(Writer, u64), StoreError> {
        let removed = backend.adopt_key(&key.check())?;
        let total = backend.total_bytes()?;
        Ok((
            Writer {
                backend,
                key,
                limits,
                nonces,
                total,
            },
            removed,
        ))
    }

    /// A reader over the same store.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Ok(Reader {
            reader: self.backend.reader()?,
            key: self.key.clone(),
        })
    }

    /// Sealed bytes stored.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Store `p` at `now_ms`. A continuation holds only its own turn while its chain is shorter
    /// than [`MAX_CHAIN`]; the turn that would make it longer holds the whole conversation
    /// (opened from the chain) and starts a new one. Over `max_bytes` afterwards, the store is
    /// pruned.
    pub fn put(&mut self, p: Put, now_ms: i64) -> Result<PutOutcome, StoreError> {
        let owner = self.key.owner_tag(&p.owner);
        let base = id_base(&p.id);
        let outputs = output_items(&p.response).map_err(StoreError)?;
        let own_ids: Vec<String> = p
            .input
            .iter()
            .enumerate()
            .map(|(i, item)| listing_id(item, base, Side::Input, i))
            .collect();
        let out_ids = outputs
            .iter()
            .enumerate()
            .map(|(i, item)| listing_id(item, base, Side::Output, i));
        let (in_bytes, out_bytes) = (items_bytes(&p.input), items_bytes(&outputs));
        let parent = match &p.previous {
            None => None,
            Some(prev) => match self.backend.head(&owner, prev)? {
                Some(m) => Some(m),
                None => return Ok(PutOutcome::PreviousGone),
            },
        };
        let prior = parent.as_ref().map_or(0, |m| m.conv_bytes);
        let size = prior + in_bytes + p.response.get().len() as u64;
        if size > self.limits.max_response_bytes {
            return Ok(PutOutcome::TooBig { bytes: size });
        }
        let (input, ids, prev, depth) = match parent {
            None => (p.input, own_ids, None, 0),
            Some(m) if m.depth + 1 < MAX_CHAIN => (p.input, own_ids, Some(m.id), m.depth + 1),
            Some(m) => {
                let rows = self.backend.chain(&owner, &m.id, MAX_CHAIN)?;
                let Some(mut all) = assemble(&self.key, &owner, &rows, true)? else {
                    return Ok(PutOutcome::PreviousGone);
                };
                all.items.extend(p.input);
                all.ids.extend(own_ids);
                (all.items, all.ids, None, 0)
            }
        };
        let mut items: Vec<String> = ids.clone();
        items.extend(out_ids);
        let plain = serde_json::to_vec(&Payload {
            input,
            ids,
            response: p.response,
        })
        .map_err(|e| StoreError(e.to_string()))?;
        let nonce = self
            .nonces
            .next()
            .ok_or_else(|| StoreError("the system's random source failed".into()))?;
        let sealed = self
            .key
            .seal(nonce, &p.id, &owner, prev.as_deref(), &plain)
            .ok_or_else(|| StoreError("sealing failed".into()))?;
        let until = now_ms.saturating_add(self.limits.retention_ms);
        let row = NewRow {
            meta: RowMeta {
                id: p.id,
                prev,
                depth,
                created_ms: now_ms,
                visible_until_ms: until,
                kept_until_ms: until,
                conv_bytes: prior + in_bytes + out_bytes,
            },
            owner,
            items,
            sealed,
        };
        if !self.backend.insert(&row)? {
            return Ok(PutOutcome::Exists);
        }
        let bytes = row.sealed.len() as u64;
        self.total += bytes;
        if self.total > self.limits.max_bytes {
            self.prune(now_ms)?;
        }
        Ok(PutOutcome::Stored { bytes })
    }

    /// Delete the response `id` of `owner`; false when it has none visible.
    pub fn delete(&mut self, owner: &Owner, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let tag = self.key.owner_tag(owner);
        let gone = self.backend.delete(&tag, id, now_ms)?;
        if gone {
            self.total = self.backend.total_bytes()?;
        }
        Ok(gone)
    }

    /// Remove what is past its time, then what is over the size bound.
    pub fn prune(&mut self, now_ms: i64) -> Result<Pruned, StoreError> {
        let p = self
            .backend
            .prune(now_ms, self.limits.max_bytes, self.limits.target_bytes())?;
        self.total = p.bytes;
        Ok(p)
    }
}

/// The reading half, owned by the reader thread.
pub struct Reader {
    reader: Box<dyn ResponseReader>,
    key: Arc<StoreKey>,
}

/// What item lookups found, in the order asked.
#[derive(Debug, Clone, Default)]
pub struct FoundItems {
    /// Each item as stored; None when not found (never stored, another key's, expired,
    /// deleted).
    pub items: Vec<Option<Box<RawValue>>>,
    /// The lookup stopped at [`MAX_OPEN_BYTES`] or [`MAX_ITEM_LOOKUPS`]: the items after the
    /// cut are None without having been looked for.
    pub cut: bool,
}

impl Reader {
    /// A reader over `reader` with `key` (the writer's [`Writer::reader`] makes the usual one).
    pub fn new(reader: Box<dyn ResponseReader>, key: Arc<StoreKey>) -> Reader {
        Reader { reader, key }
    }

    /// The visible row `id` of `owner` and its chain (`max` rows), newest first; None when it
    /// is not visible to `owner` at `now_ms`.
    fn visible(
        &mut self,
        owner: &OwnerTag,
        id: &str,
        max: u32,
        now_ms: i64,
    ) -> Result<Option<Vec<SealedRow>>, StoreError> {
        let rows = self.reader.chain(owner, id, max)?;
        Ok(rows
            .first()
            .is_some_and(|head| head.meta.visible_until_ms > now_ms)
            .then_some(rows))
    }

    /// The response object of `id`, as the client got it.
    pub fn response(
        &mut self,
        owner: &Owner,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let tag = self.key.owner_tag(owner);
        let Some(rows) = self.visible(&tag, id, 1, now_ms)? else {
            return Ok(None);
        };
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(
            open_row(&self.key, &tag, row)?.response.get().to_owned(),
        ))
    }

    /// The conversation a request continuing `id` (its `previous_response_id`) picks up.
    pub fn conversation(
        &mut self,
        owner: &Owner,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<Conversation>, StoreError> {
        let tag = self.key.owner_tag(owner);
        let Some(rows) = self.visible(&tag, id, MAX_CHAIN, now_ms)? else {
            return Ok(None);
        };
        let bytes = rows.first().map_or(0, |r| r.meta.conv_bytes);
        Ok(
            assemble(&self.key, &tag, &rows, true)?.map(|c| Conversation {
                items: c.items,
                bytes,
            }),
        )
    }

    /// The items `ids` (for `item_reference`s), each read from the newest visible response of
    /// `owner` that holds it.
    pub fn items(
        &mut self,
        owner: &Owner,
        ids: &[String],
        now_ms: i64,
    ) -> Result<FoundItems, StoreError> {
        let tag = self.key.owner_tag(owner);
        let mut found = FoundItems::default();
        let mut opened: HashMap<String, Items> = HashMap::new();
        let mut spent = 0u64;
        for (n, id) in ids.iter().enumerate() {
            if found.cut || n >= MAX_ITEM_LOOKUPS {
                found.cut = true;
                found.items.push(None);
                continue;
            }
            let Some(row_id) = self.reader.item_row(&tag, id, now_ms)? else {
                found.items.push(None);
                continue;
            };
            if !opened.contains_key(&row_id) {
                let rows = self.reader.chain(&tag, &row_id, 1)?;
                let Some(row) = rows.first() else {
                    found.items.push(None);
                    continue;
                };
                spent += row.sealed.len() as u64;
                if spent > MAX_OPEN_BYTES {
                    found.cut = true;
                    found.items.push(None);
                    continue;
                }
                let mut own = Items::default();
                own.add(&row_id, open_row(&self.key, &tag, row)?, true)
                    .map_err(StoreError)?;
                opened.insert(row_id.clone(), own);
            }
            let item = opened
                .get(&row_id)
                .and_then(|own| own.find(id))
                .map(|raw| raw.to_owned());
            found.items.push(item);
        }
        Ok(found)
    }

    /// `page` of the input items of `id` (its whole conversation before its output) as the
    /// list object.
    pub fn input_items(
        &mut self,
        owner: &Owner,
        id: &str,
        page: &Page,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let tag = self.key.owner_tag(owner);
        let Some(rows) = self.visible(&tag, id, MAX_CHAIN, now_ms)? else {
            return Ok(None);
        };
        Ok(assemble(&self.key, &tag, &rows, false)?.map(|items| list_body(&items, page)))
    }
}
