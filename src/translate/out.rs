//! Where a request translation writes: output buffers whose capacity is taken from one
//! [`Room`], so that what a translation reserves never passes the share of the worker's budget
//! it was charged (a write past it fails with [`TranslateError::over_budget`]), and the pieces
//! a translated body is assembled from (its top-level members around the conversation written
//! element by element).

use std::cell::Cell;
use std::io;

use serde::Serialize;

use super::{TranslateError, OUT_SLACK_BYTES};

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
///
/// A buffer made [`Out::with_front`] keeps room at its start for what goes in front of what is
/// written (a body's first members, known only once its conversation is read), so that
/// [`assemble`] need not move the conversation: what it writes is then read from `start`.
pub(crate) struct Out<'r> {
    buf: Vec<u8>,
    room: &'r Room,
    /// Placeholder bytes at the start of `buf` kept for [`Out::place_front`].
    front: usize,
    /// Where what was written starts in `buf` (past what the front did not take).
    start: usize,
}

impl<'r> Out<'r> {
    /// An empty buffer with `capacity` reserved (less when the room has less).
    pub fn with_capacity(room: &'r Room, capacity: usize) -> Out<'r> {
        let mut out = Out {
            buf: Vec::new(),
            room,
            front: 0,
            start: 0,
        };
        let capacity = capacity.min(room.left());
        if capacity > 0 && room.take(capacity) {
            out.buf.reserve_exact(capacity);
            // The allocator is asked for exactly this; anything else is accounted as it is.
            out.settle(capacity);
        }
        out
    }

    /// An empty buffer with `capacity` reserved after `front` bytes kept for what goes in
    /// front of it ([`Out::place_front`]); they read as spaces until then.
    pub fn with_front(room: &'r Room, capacity: usize, front: usize) -> Out<'r> {
        let mut out = Out::with_capacity(room, capacity.saturating_add(front));
        if out.buf.capacity() >= front {
            out.buf.resize(front, b' ');
            out.front = front;
        }
        out
    }

    /// Puts `data` in front of everything written, in the room kept for it when it fits
    /// (nothing moves), else by moving what was written once.
    pub fn place_front(&mut self, data: &[u8]) -> Result<(), TranslateError> {
        let kept = std::mem::take(&mut self.front);
        let Some(at) = kept.checked_sub(data.len()).filter(|_| self.start == 0) else {
            self.insert(kept.saturating_sub(self.start), data)?;
            // The room kept is left unused in front.
            self.start = self.start.max(kept).min(self.buf.len());
            return Ok(());
        };
        match self.buf.get_mut(at..kept) {
            Some(room) => room.copy_from_slice(data),
            None => return Err(TranslateError::internal("a buffer's front was cut")),
        }
        self.start = at;
        Ok(())
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

    /// Room for `n` more bytes: at once when the capacity has it, else [`Out::grow`].
    #[inline(always)]
    fn reserve(&mut self, n: usize) -> Result<(), TranslateError> {
        if self.buf.capacity() - self.buf.len() >= n {
            return Ok(());
        }
        self.grow(n)
    }

    /// Grows geometrically (by half) within the room, or fails.
    #[cold]
    fn grow(&mut self, n: usize) -> Result<(), TranslateError> {
        let len = self.buf.len();
        let need = len.checked_add(n).ok_or_else(TranslateError::over_budget)?;
        let cap = self.buf.capacity();
        let left = self.room.left();
        // Growing copies into a new allocation: both are held until the copy is done, so the
        // new one must fit beside the old. Near the room's end it takes what is left rather
        // than creep up by the bytes asked for.
        if need > left {
            return Err(TranslateError::over_budget());
        }
        let new_cap = need
            .max(cap.saturating_add(cap / 2))
            .max(MIN_GROWTH)
            .min(left);
        if !self.room.take(new_cap) {
            return Err(TranslateError::over_budget());
        }
        self.buf.reserve_exact(new_cap - len);
        // The old allocation is freed now.
        self.room.give(cap);
        self.settle(new_cap);
        Ok(())
    }

    /// Appends `data`.
    #[inline]
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
        serde_json::to_writer(Writer(self), value).map_err(|e| {
            if e.is_io() {
                TranslateError::over_budget()
            } else {
                TranslateError::internal(e.to_string())
            }
        })
    }

    /// Inserts `data` at `at` (the bytes after it move up, once).
    pub fn insert(&mut self, at: usize, data: &[u8]) -> Result<(), TranslateError> {
        self.reserve(data.len())?;
        let at = self.start.saturating_add(at).min(self.buf.len());
        let len = self.buf.len();
        self.buf.resize(len + data.len(), 0);
        self.buf.copy_within(at..len, at + data.len());
        self.buf[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Bytes written (the front kept counts until it is placed).
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// What has been written.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Mutable access to what has been written (for moves within it; it never grows here).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start.saturating_add(len));
    }

    /// The last byte, taken off.
    pub fn pop(&mut self) -> Option<u8> {
        if self.buf.len() > self.start {
            self.buf.pop()
        } else {
            None
        }
    }

    /// Empties the buffer (its capacity, and charge, kept for reuse; a front room not placed
    /// yet is kept again, a placed one is not).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.resize(self.front, b' ');
        self.start = 0;
    }

    /// The bytes, leaving the room's accounting (the caller charges them from here on). A
    /// buffer whose front room was not all taken moves its bytes down once here: a caller
    /// that can take [`Out::into_shared`] does not.
    pub fn into_vec(mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        self.room.give(buf.capacity());
        buf.drain(..self.start.min(buf.len()));
        buf
    }

    /// The bytes as shared ones, without moving them (see [`Out::into_vec`]).
    pub fn into_shared(mut self) -> Shared {
        let buf = std::mem::take(&mut self.buf);
        self.room.give(buf.capacity());
        let held = buf.capacity();
        let start = self.start.min(buf.len());
        Shared {
            bytes: bytes::Bytes::from(buf).slice(start..),
            held,
        }
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.room.give(self.buf.capacity());
    }
}

/// The serializer's writer into an [`Out`] (its own type, so the room check inlines into the
/// serializer's every write).
struct Writer<'o, 'r>(&'o mut Out<'r>);

impl io::Write for Writer<'_, '_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data).map(|()| data.len())
    }

    #[inline(always)]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.0.reserve(data.len()).is_err() {
            return Err(io::Error::other("over the translation's budget"));
        }
        self.0.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A translated body as shared bytes (read from where they were written), and how many bytes
/// of memory hold them.
#[derive(Debug)]
pub struct Shared {
    pub bytes: bytes::Bytes,
    pub held: usize,
}

impl Shared {
    /// `v` as it is.
    pub fn of_vec(v: Vec<u8>) -> Shared {
        let held = v.capacity();
        Shared {
            bytes: bytes::Bytes::from(v),
            held,
        }
    }

    /// The bytes in a vector of their own (moved down once when they do not start their
    /// buffer).
    pub fn into_vec(self) -> Vec<u8> {
        Vec::from(self.bytes)
    }
}

/// Most room a conversation's buffer keeps in front for the members before it.
const FRONT_ROOM_MAX: usize = 16 * 1024;

/// Room a conversation's buffer keeps in front whatever the body's size: a model name and
/// the few members that go before the conversation.
const FRONT_ROOM_MIN: usize = 512;

/// The room a conversation's buffer keeps in front ([`Out::with_front`]) for a body of
/// `body_len` bytes: enough, from 110 KB on, for the members that go before the
/// conversation with a system prompt among them (Claude Code's is 7 KB). Where they do not
/// fit, the conversation moves once, as it always did: a smaller body's conversation is
/// cheap to move, and the room is written (as spaces) whether it is taken or not.
pub(crate) fn front_room(body_len: usize) -> usize {
    (body_len / 16).min(FRONT_ROOM_MAX) + FRONT_ROOM_MIN
}

/// The first capacity of an output buffer for a body of `body_len` bytes expected to grow by
/// at most `num / den`, with [`OUT_SLACK_BYTES`] beyond.
pub(crate) fn first_capacity(body_len: usize, num: usize, den: usize) -> usize {
    (body_len / den)
        .saturating_mul(num)
        .saturating_add(OUT_SLACK_BYTES)
}

/// A serialized top-level object (`{…}`) without its braces: empty when it had no member.
pub(crate) fn members(object: &[u8]) -> &[u8] {
    object
        .strip_prefix(b"{")
        .and_then(|o| o.strip_suffix(b"}"))
        .unwrap_or_default()
}

/// Scratch capacity a thread keeps for [`object`] between requests.
const SCRATCH_KEPT_BYTES: usize = 256 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Serializes `value` (a struct whose big members were left out) to bytes. Written into this
/// thread's scratch, then copied out at its size: the tools an agent sends (tens of KB) grew
/// a fresh buffer from nothing, copied at each doubling, every request.
pub(crate) fn object<T: Serialize>(value: &T) -> Result<Vec<u8>, TranslateError> {
    let fail = |e: serde_json::Error| TranslateError::internal(e.to_string());
    SCRATCH.with(|scratch| {
        // Never taken twice on a thread (no `Serialize` here calls back); if it were, a
        // fresh buffer does.
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            return serde_json::to_vec(value).map_err(fail);
        };
        buf.clear();
        let written = serde_json::to_writer(&mut *buf, value).map_err(fail);
        let out = written.map(|()| buf.to_vec());
        if buf.capacity() > SCRATCH_KEPT_BYTES {
            *buf = Vec::new();
        }
        out
    })
}

/// The body, in `out`, which holds the elements of the array member `name`, each followed
/// by a comma: `{`, `head`'s members, `"name":[`, `first` (elements followed by commas too),
/// the elements, `]`, `after`'s pieces (members, each after a comma), `tail`'s members, `}`.
/// What `out` held moves once; `tail` (the tools an agent sends: tens of KB) is written in
/// place, where it went through a buffer of its own and was copied twice.
pub(crate) fn assemble<T: Serialize>(
    out: &mut Out<'_>,
    head: &[u8],
    name: &str,
    first: &[u8],
    after: &[&[u8]],
    tail: &T,
) -> Result<(), TranslateError> {
    let head = members(head);
    let mut front = Vec::with_capacity(head.len() + name.len() + first.len() + 6);
    front.push(b'{');
    front.extend_from_slice(head);
    if !head.is_empty() {
        front.push(b',');
    }
    front.push(b'"');
    front.extend_from_slice(name.as_bytes());
    front.extend_from_slice(b"\":[");
    front.extend_from_slice(first);
    out.place_front(&front)?;
    // The last element's comma.
    if out.bytes().last() == Some(&b',') {
        out.pop();
    }
    out.byte(b']')?;
    for piece in after {
        out.put(piece)?;
    }
    // `tail` as an object, `{…}`: its opening brace becomes the comma before its members, and
    // its closing one closes the body (an empty one leaves only that).
    let at = out.len();
    out.json(tail)?;
    match out.bytes().get(at..) {
        Some(b"{}") => {
            out.truncate(at);
            out.byte(b'}')
        }
        Some([b'{', .., b'}']) => {
            if let Some(brace) = out.bytes_mut().get_mut(at) {
                *brace = b',';
            }
            Ok(())
        }
        _ => Err(TranslateError::internal(
            "a body's members were not an object",
        )),
    }
}

#[cfg(test)]
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
            assert!(Writer(&mut b).write_all(&[3; 70]).is_err());
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
    fn a_front_goes_in_its_room_or_moves_what_was_written_once() {
        let room = Room::unlimited();
        let shared = |front: usize, lead: &[u8], clear: bool| {
            let mut out = Out::with_front(&room, 8, front);
            assert_eq!(out.len(), front, "the room kept reads as written");
            if clear {
                out.put(b"gone").unwrap();
                out.clear();
                assert_eq!(out.len(), front, "cleared, the room is kept again");
            }
            out.put(b"1,2,").unwrap();
            let at = out.len() - 2;
            out.insert(at, b"9,").unwrap();
            assert_eq!(out.pop(), Some(b','));
            out.place_front(lead).unwrap();
            assert!(out.bytes().starts_with(lead));
            out.byte(b']').unwrap();
            let vec = {
                let mut again = Out::with_front(&room, 8, front);
                again.put(out.bytes()).unwrap();
                again.place_front(b"").unwrap();
                again.into_vec()
            };
            let shared = out.into_shared();
            assert!(shared.held >= shared.bytes.len());
            assert_eq!(shared.bytes, vec);
            shared.into_vec()
        };
        for (front, clear) in [(0, false), (2, false), (3, false), (16, false), (16, true)] {
            // Fits the room (16, 3 just), does not (2, 0): the same bytes either way.
            assert_eq!(shared(front, b"[0,", clear), b"[0,1,9,2]", "front {front}");
            assert_eq!(shared(front, b"", clear), b"1,9,2]", "front {front}");
        }
        assert_eq!(room.left(), usize::MAX, "every buffer gave its room back");
    }

    #[test]
    fn assembled_bodies_keep_member_order() {
        let room = Room::unlimited();
        let mut out = Out::with_capacity(&room, 0);
        out.put(b"1,2,").unwrap();
        let head = br#"{"model":"m"}"#;
        let tail = serde_json::json!({"n": 1});
        assemble(
            &mut out,
            head,
            "messages",
            b"0,",
            &[br#","s":"#, br#""x""#],
            &tail,
        )
        .unwrap();
        assert_eq!(
            out.bytes(),
            br#"{"model":"m","messages":[0,1,2],"s":"x","n":1}"#
        );
        let mut out = Out::with_capacity(&room, 0);
        let empty = serde_json::json!({});
        assemble(&mut out, b"{}", "input", b"", &[], &empty).unwrap();
        assert_eq!(out.bytes(), br#"{"input":[]}"#);
        let mut out = Out::with_capacity(&room, 0);
        assemble(&mut out, b"{}", "input", b"7,", &[], &empty).unwrap();
        assert_eq!(out.bytes(), br#"{"input":[7]}"#);
    }
}
