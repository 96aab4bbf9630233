//! Where a request translation writes: output buffers whose capacity is taken from one
//! [`Room`], so that what a translation reserves never passes the share of the worker's budget
//! it was charged (a write past it fails with [`TranslateError::over_budget`]), and the pieces
//! a translated body is assembled from (its top-level members around the conversation written
//! element by element).

use std::cell::Cell;
use std::io;

use serde::Serialize;

use super::TranslateError;

/// Smallest capacity an output buffer grows to (growth is geometric from there).
const MIN_GROWTH: usize = 4096;

/// Bytes a request translation may still reserve for the buffers it writes.
#[derive(Debug)]
pub struct Room {
    left: Cell<usize>,
}

impl Room {
    /// Room for `bytes` of output buffers.
    pub fn new(bytes: usize) -> Room {
        Room {
            left: Cell::new(bytes),
        }
    }

    /// No bound (callers with no budget: tests, benches, the unbudgeted entry points).
    pub fn unlimited() -> Room {
        Room::new(usize::MAX)
    }

    /// Bytes not taken yet.
    pub fn left(&self) -> usize {
        self.left.get()
    }

    fn take(&self, n: usize) -> bool {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                true
            }
            None => false,
        }
    }

    fn give(&self, n: usize) {
        self.left.set(self.left.get().saturating_add(n));
    }
}

/// A growing byte buffer charged to a [`Room`] by its capacity (while it grows, the old and
/// the new allocation are both charged: that is what the allocator holds during the copy).
pub(crate) struct Out<'r> {
    buf: Vec<u8>,
    room: &'r Room,
}

impl<'r> Out<'r> {
    /// An empty buffer with `capacity` reserved (less when the room has less).
    pub fn with_capacity(room: &'r Room, capacity: usize) -> Out<'r> {
        let mut out = Out {
            buf: Vec::new(),
            room,
        };
        let capacity = capacity.min(room.left());
        if capacity > 0 && room.take(capacity) {
            out.buf.reserve_exact(capacity);
            // The allocator is asked for exactly this; anything else is accounted as it is.
            out.settle(capacity);
        }
        out
    }

    /// Makes the room's charge match the buffer's real capacity after charging `charged`.
    fn settle(&mut self, charged: usize) {
        let real = self.buf.capacity();
        if real > charged {
            // Rare (an allocator rounding up): the room may go to zero, never negative.
            let extra = real - charged;
            if !self.room.take(extra) {
                self.room.left.set(0);
            }
        } else {
            self.room.give(charged - real);
        }
    }

    /// Room for `n` more bytes: grows geometrically within the room, or fails.
    fn reserve(&mut self, n: usize) -> Result<(), TranslateError> {
        let len = self.buf.len();
        let need = len.checked_add(n).ok_or_else(TranslateError::over_budget)?;
        let cap = self.buf.capacity();
        if need <= cap {
            return Ok(());
        }
        let left = self.room.left();
        let want = need.max(cap.saturating_mul(2)).max(MIN_GROWTH);
        // Growing copies into a new allocation: both are held until the copy is done.
        let new_cap = if want <= left { want } else { need };
        if new_cap > left || !self.room.take(new_cap) {
            return Err(TranslateError::over_budget());
        }
        self.buf.reserve_exact(new_cap - len);
        // The old allocation is freed now.
        self.room.give(cap);
        self.settle(new_cap);
        Ok(())
    }

    /// Appends `data`.
    pub fn put(&mut self, data: &[u8]) -> Result<(), TranslateError> {
        self.reserve(data.len())?;
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Appends one byte.
    pub fn byte(&mut self, b: u8) -> Result<(), TranslateError> {
        self.put(&[b])
    }

    /// Appends `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TranslateError> {
        serde_json::to_writer(&mut *self, value).map_err(|e| {
            if e.is_io() {
                TranslateError::over_budget()
            } else {
                TranslateError::internal(e.to_string())
            }
        })
    }

    /// Inserts `data` at `at` (the bytes after it move up).
    pub fn insert(&mut self, at: usize, data: &[u8]) -> Result<(), TranslateError> {
        self.reserve(data.len())?;
        let at = at.min(self.buf.len());
        self.buf.splice(at..at, data.iter().copied());
        Ok(())
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// What has been written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Mutable access to what has been written (for moves within it; it never grows here).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// The last byte, taken off.
    pub fn pop(&mut self) -> Option<u8> {
        self.buf.pop()
    }

    /// Empties the buffer (its capacity, and charge, kept for reuse).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The bytes, leaving the room's accounting (the caller charges them from here on).
    pub fn into_vec(mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.buf);
        self.room.give(buf.capacity());
        buf
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.room.give(self.buf.capacity());
    }
}

impl io::Write for Out<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.reserve(data.len())
            .map_err(|_| io::Error::other("over the translation's budget"))?;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A serialized top-level object (`{…}`) without its braces: empty when it had no member.
pub(crate) fn members(object: &[u8]) -> &[u8] {
    object
        .strip_prefix(b"{")
        .and_then(|o| o.strip_suffix(b"}"))
        .unwrap_or_default()
}

/// Serializes `value` (a struct whose big members were left out) to bytes.
pub(crate) fn object<T: Serialize>(value: &T) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(value).map_err(|e| TranslateError::internal(e.to_string()))
}

/// The body: `{` + `head`'s members + `"name":` + the member written in `out` + `tail`'s
/// members + `}`, built in `out` (the head goes in front of what it holds).
pub(crate) fn assemble(
    out: &mut Out<'_>,
    head: &[u8],
    name: &str,
    tail: &[u8],
) -> Result<(), TranslateError> {
    let head = members(head);
    let mut front = Vec::with_capacity(head.len() + name.len() + 5);
    front.push(b'{');
    front.extend_from_slice(head);
    if !head.is_empty() {
        front.push(b',');
    }
    front.push(b'"');
    front.extend_from_slice(name.as_bytes());
    front.extend_from_slice(b"\":");
    out.insert(0, &front)?;
    let tail = members(tail);
    if !tail.is_empty() {
        out.byte(b',')?;
        out.put(tail)?;
    }
    out.byte(b'}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn buffers_grow_within_their_room_and_give_it_back() {
        let room = Room::new(100);
        {
            let mut a = Out::with_capacity(&room, 10);
            assert_eq!(room.left(), 90);
            a.put(&[1; 10]).unwrap();
            a.put(&[2; 30]).unwrap();
            assert!(room.left() <= 60, "{}", room.left());
            let mut b = Out::with_capacity(&room, 0);
            assert!(b.put(&[3; 70]).is_err(), "more than the room");
            assert!(b.write_all(&[3; 70]).is_err());
            assert_eq!(a.bytes().len(), 40);
        }
        assert_eq!(room.left(), 100, "dropping gives the room back");
        let mut c = Out::with_capacity(&room, 1000);
        assert_eq!(room.left(), 0, "a reservation is cut to the room");
        c.put(&[0; 100]).unwrap();
        assert!(c.put(&[0]).is_err());
        let v = c.into_vec();
        assert_eq!(v.len(), 100);
        assert_eq!(room.left(), 100);
    }

    #[test]
    fn assembled_bodies_keep_member_order() {
        let room = Room::unlimited();
        let mut out = Out::with_capacity(&room, 0);
        out.put(b"[1,2]").unwrap();
        assemble(&mut out, br#"{"model":"m"}"#, "messages", br#"{"n":1}"#).unwrap();
        assert_eq!(out.bytes(), br#"{"model":"m","messages":[1,2],"n":1}"#);
        let mut out = Out::with_capacity(&room, 0);
        out.put(b"[]").unwrap();
        assemble(&mut out, b"{}", "input", b"{}").unwrap();
        assert_eq!(out.bytes(), br#"{"input":[]}"#);
    }
}
