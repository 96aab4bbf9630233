//! Where a request translation writes: output buffers whose capacity is taken from one
//! [`Room`], so that what a translation reserves never passes the share of the worker's budget
//! it was charged (a write past it fails with [`TranslateError::over_budget`]), and the pieces
//! a translated body is assembled from (its top-level members around the conversation written
//! element by element). Long stretches of the client's body that a translation writes as they
//! stand (a file an agent read, as a JSON string) are lent, not copied: the translated body is
//! its own bytes with spans of the client's between them, sent as they are.

use std::cell::Cell;
use std::io;

use serde::Serialize;

use super::{TranslateError, OUT_SLACK_BYTES};

/// Smallest capacity an output buffer grows to (growth is geometric from there).
const MIN_GROWTH: usize = 4096;

/// Shortest write out of the source that a buffer lends rather than copies: below it, a copy
/// costs less than the part it would add to the body's writes.
pub const LEND_MIN_BYTES: usize = 4096;

thread_local! {
    /// The shortest write buffers made on this thread lend (see [`lending_from`]).
    static LEND_FROM: Cell<usize> = const { Cell::new(LEND_MIN_BYTES) };
}

/// Runs `f` with every translation's output copied whole (nothing lent): the plain path the
/// lending one is compared with (differential tests, the fuzz target).
pub fn without_lending<R>(f: impl FnOnce() -> R) -> R {
    lending_from(usize::MAX, f)
}

/// Runs `f` with buffers lending writes of `min` bytes or more: small bodies' strings lent too,
/// for tests and the fuzz target to cross every seam a lent span makes.
pub fn lending_from<R>(min: usize, f: impl FnOnce() -> R) -> R {
    let before = LEND_FROM.with(|n| n.replace(min.max(1)));
    let out = f();
    LEND_FROM.with(|n| n.set(before));
    out
}

/// A span of the source that sits, unwritten, in an output: before the byte at `at` of the
/// buffer (after the spans before it with the same `at`), `len` bytes from `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lent {
    pub at: usize,
    pub from: usize,
    pub len: usize,
}

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
///
/// A buffer [`Out::lending`] a source keeps a write of [`LEND_MIN_BYTES`] or more that lies
/// within the source as a [`Lent`] span rather than a copy. Positions its methods take and
/// give count the lent bytes as written.
pub(crate) struct Out<'r> {
    buf: Vec<u8>,
    room: &'r Room,
    /// Placeholder bytes at the start of `buf` kept for [`Out::place_front`].
    front: usize,
    /// Where what was written starts in `buf` (past what the front did not take).
    start: usize,
    /// What lent spans are taken from (empty: nothing is lent).
    source: &'r [u8],
    /// The lent spans, in order.
    lent: Vec<Lent>,
    /// The shortest write lent.
    lend_from: usize,
    /// Their bytes, all told.
    lent_len: usize,
}

impl<'r> Out<'r> {
    /// An empty buffer with `capacity` reserved (less when the room has less).
    pub fn with_capacity(room: &'r Room, capacity: usize) -> Out<'r> {
        let mut out = Out {
            buf: Vec::new(),
            room,
            front: 0,
            start: 0,
            source: &[],
            lent: Vec::new(),
            lend_from: usize::MAX,
            lent_len: 0,
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

    /// Lends spans of `source` from here on (unless [`without_lending`] is on).
    pub fn lending(mut self, source: &'r [u8]) -> Out<'r> {
        self.lend_from = LEND_FROM.with(Cell::get);
        self.source = source;
        self
    }

    /// The shortest write it lends (`usize::MAX`: it lends none).
    pub(crate) fn lends_from(&self) -> usize {
        if self.source.is_empty() {
            usize::MAX
        } else {
            self.lend_from
        }
    }

    /// Where `data` starts in the source, if it lies within it.
    #[inline]
    fn in_source(&self, data: &[u8]) -> Option<usize> {
        let from = data
            .as_ptr()
            .addr()
            .checked_sub(self.source.as_ptr().addr())?;
        (from.checked_add(data.len())? <= self.source.len()).then_some(from)
    }

    /// Lends `len` bytes of the source from `from` at the end.
    #[cold]
    fn lend(&mut self, from: usize, len: usize) {
        let at = self.buf.len();
        match self.lent.last_mut() {
            // Right behind the last span, in the source too: the same span, longer.
            Some(last) if last.at == at && last.from + last.len == from => last.len += len,
            _ => self.lent.push(Lent { at, from, len }),
        }
        self.lent_len += len;
    }

    /// The index in `buf` of position `p` (as [`Out::len`] counts), and how many spans lie
    /// wholly before it; `Err` with the span's index when `p` falls inside a lent span. Looked
    /// for from the end, where a translation's moves happen.
    fn locate(&self, p: usize) -> Result<(usize, usize), usize> {
        // Lent bytes of the spans after the one looked at.
        let mut after = 0;
        for (i, s) in self.lent.iter().enumerate().rev() {
            let before = self.lent_len - after - s.len;
            let starts = s.at.saturating_sub(self.start) + before;
            if p >= starts + s.len {
                return Ok((self.start + p - before - s.len, i + 1));
            }
            if p > starts {
                return Err(i);
            }
            after += s.len;
        }
        Ok((self.start + p, 0))
    }

    /// Writes every lent span into the buffer (positions do not change): for what must read
    /// or move the bytes as they are.
    fn settle_lent(&mut self) -> Result<(), TranslateError> {
        if self.lent.is_empty() {
            return Ok(());
        }
        self.reserve(self.lent_len)?;
        let own = self.buf.len();
        self.buf.resize(own + self.lent_len, 0);
        // From the back: each own stretch moves up past the spans before it, each span is
        // copied in below it.
        let (mut end, mut own_end) = (self.buf.len(), own);
        for s in self.lent.iter().rev() {
            let stretch = own_end - s.at;
            self.buf.copy_within(s.at..own_end, end - stretch);
            end -= stretch;
            let Some(src) = self.source.get(s.from..s.from + s.len) else {
                return Err(TranslateError::internal("a lent span ran past its source"));
            };
            self.buf[end - s.len..end].copy_from_slice(src);
            end -= s.len;
            own_end = s.at;
        }
        self.lent.clear();
        self.lent_len = 0;
        Ok(())
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

    /// Appends `data` (lent when it is a long stretch of the source).
    #[inline(always)]
    pub fn put(&mut self, data: &[u8]) -> Result<(), TranslateError> {
        if data.len() >= self.lend_from {
            if let Some(from) = self.in_source(data) {
                self.lend(from, data.len());
                return Ok(());
            }
        }
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

    /// Appends what `other` wrote; its lent spans are lent here too when both lend from one
    /// source (else copied).
    pub fn put_out(&mut self, other: &Out<'_>) -> Result<(), TranslateError> {
        let one_source = other.source.as_ptr() == self.source.as_ptr()
            && other.source.len() == self.source.len();
        let cut = || TranslateError::internal("a lent span ran past its buffer");
        let mut at = other.start;
        for s in &other.lent {
            self.put(other.buf.get(at..s.at).ok_or_else(cut)?)?;
            let src = other.source.get(s.from..s.from + s.len).ok_or_else(cut)?;
            if one_source {
                self.lend(s.from, s.len);
            } else {
                self.put(src)?;
            }
            at = s.at;
        }
        self.put(other.buf.get(at..).ok_or_else(cut)?)
    }

    /// Inserts `data` at `at` (the bytes after it move up, once; a lent span it falls in is
    /// cut in two).
    pub fn insert(&mut self, at: usize, data: &[u8]) -> Result<(), TranslateError> {
        self.reserve(data.len())?;
        let (at, after) = match self.locate(at.min(self.len())) {
            Ok(found) => found,
            Err(i) => {
                self.split(i, at);
                (self.lent[i].at, i + 1)
            }
        };
        let len = self.buf.len();
        self.buf.resize(len + data.len(), 0);
        self.buf.copy_within(at..len, at + data.len());
        self.buf[at..at + data.len()].copy_from_slice(data);
        for s in &mut self.lent[after..] {
            s.at += data.len();
        }
        Ok(())
    }

    /// Cuts lent span `i` in two at position `p` (inside it).
    fn split(&mut self, i: usize, p: usize) {
        let before: usize = self.lent[..i].iter().map(|s| s.len).sum();
        let s = self.lent[i];
        let head = p.saturating_sub(s.at.saturating_sub(self.start) + before);
        self.lent[i].len = head;
        self.lent.insert(
            i + 1,
            Lent {
                at: s.at,
                from: s.from + head,
                len: s.len - head,
            },
        );
    }

    /// Bytes written (the front kept counts until it is placed; lent spans count).
    pub fn len(&self) -> usize {
        self.buf.len() - self.start + self.lent_len
    }

    /// What has been written (lent spans written in first).
    pub fn bytes(&mut self) -> Result<&[u8], TranslateError> {
        self.settle_lent()?;
        Ok(self.buf.get(self.start..).unwrap_or_default())
    }

    /// The byte at position `p`, wherever it is.
    pub fn byte_at(&self, p: usize) -> Option<u8> {
        match self.locate(p) {
            Ok((at, i)) => match self.lent.get(i) {
                // Spans sitting right here come first.
                Some(s) if s.at == at => self.source.get(s.from).copied(),
                _ => self.buf.get(at).copied(),
            },
            Err(i) => {
                let before: usize = self.lent[..i].iter().map(|s| s.len).sum();
                let s = self.lent[i];
                let into = p.saturating_sub(s.at.saturating_sub(self.start) + before);
                self.source.get(s.from + into).copied()
            }
        }
    }

    /// Sets the byte at position `p`, one of the buffer's own (else the spans are written in
    /// first).
    pub fn set_byte(&mut self, p: usize, b: u8) -> Result<(), TranslateError> {
        let own = match self.locate(p) {
            Ok((at, i)) if self.lent.get(i).is_none_or(|s| s.at != at) => Some(at),
            _ => None,
        };
        let at = match own {
            Some(at) => at,
            None => {
                self.settle_lent()?;
                self.start + p
            }
        };
        match self.buf.get_mut(at) {
            Some(byte) => *byte = b,
            None => return Err(TranslateError::internal("a byte past the end was set")),
        }
        Ok(())
    }

    /// Takes out the bytes from `from` to `to` (those after move down).
    pub fn remove(&mut self, from: usize, to: usize) -> Result<(), TranslateError> {
        let (Ok((a, i)), Ok((b, j))) = (self.locate(from), self.locate(to)) else {
            self.settle_lent()?;
            self.buf.drain(self.start + from..self.start + to);
            return Ok(());
        };
        if i != j {
            // Spans inside the range go with it: written in, then taken out.
            self.settle_lent()?;
            self.buf.drain(self.start + from..self.start + to);
            return Ok(());
        }
        self.buf.drain(a..b);
        for s in &mut self.lent[i..] {
            s.at -= b - a;
        }
        Ok(())
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        let (at, keep) = match self.locate(len.min(self.len())) {
            Ok(found) => found,
            Err(i) => {
                self.split(i, len);
                (self.lent[i].at, i + 1)
            }
        };
        for s in self.lent.drain(keep..) {
            self.lent_len -= s.len;
        }
        self.buf.truncate(at);
    }

    /// The last byte, taken off.
    pub fn pop(&mut self) -> Option<u8> {
        if let Some(s) = self.lent.last_mut().filter(|s| s.at == self.buf.len()) {
            let byte = self.source.get(s.from + s.len - 1).copied();
            s.len -= 1;
            self.lent_len -= 1;
            if s.len == 0 {
                self.lent.pop();
            }
            return byte;
        }
        if self.buf.len() > self.start {
            self.buf.pop()
        } else {
            None
        }
    }

    /// What was written so far, to be written again into another buffer (see
    /// `translate::conversations`): None when its front was placed already, or a span it
    /// lends lies outside `base..end` of the source (the bytes of the elements kept, which
    /// are all a later body is known to share).
    pub(crate) fn kept(&self, base: usize, end: usize) -> Option<KeptOut> {
        if self.start != 0 {
            return None;
        }
        let mut lent = self.lent.clone();
        for s in &mut lent {
            if s.from < base || s.from.checked_add(s.len)? > end {
                return None;
            }
            s.from -= base;
        }
        Some(KeptOut {
            front: self.front,
            own: self.buf.get(self.front..)?.into(),
            lent,
            lent_len: self.lent_len,
        })
    }

    /// Writes `kept` into this buffer, which nothing was written to yet: its front room as
    /// it was (positions the writer kept count it), its lent spans placed from `base` of
    /// this buffer's source.
    pub(crate) fn resume(&mut self, kept: &KeptOut, base: usize) -> Result<(), TranslateError> {
        let unfit = || TranslateError::internal("a kept buffer does not fit this one");
        if self.start != 0 || !self.lent.is_empty() || self.buf.len() != self.front {
            return Err(unfit());
        }
        if !kept.lent.is_empty() && self.lend_from == usize::MAX {
            return Err(unfit());
        }
        let mut lent = kept.lent.clone();
        for s in &mut lent {
            s.from = s.from.checked_add(base).ok_or_else(unfit)?;
            if s.from.checked_add(s.len).ok_or_else(unfit)? > self.source.len() {
                return Err(unfit());
            }
        }
        self.buf.clear();
        self.reserve(kept.front + kept.own.len())?;
        self.buf.resize(kept.front, b' ');
        self.buf.extend_from_slice(&kept.own);
        self.front = kept.front;
        self.lent = lent;
        self.lent_len = kept.lent_len;
        Ok(())
    }

    /// Empties the buffer (its capacity, and charge, kept for reuse; a front room not placed
    /// yet is kept again, a placed one is not).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.buf.resize(self.front, b' ');
        self.start = 0;
        self.lent.clear();
        self.lent_len = 0;
    }

    /// The bytes, leaving the room's accounting (the caller charges them from here on). A
    /// buffer whose front room was not all taken moves its bytes down once here: a caller
    /// that can take [`Out::into_shared`] does not.
    pub fn into_vec(mut self) -> Result<Vec<u8>, TranslateError> {
        self.settle_lent()?;
        let mut buf = std::mem::take(&mut self.buf);
        self.room.give(buf.capacity());
        buf.drain(..self.start.min(buf.len()));
        Ok(buf)
    }

    /// The bytes as shared ones, without moving them (see [`Out::into_vec`]), with the spans
    /// of the source lent between them.
    pub fn into_shared(mut self) -> Shared {
        let buf = std::mem::take(&mut self.buf);
        self.room.give(buf.capacity());
        let held = buf.capacity();
        let start = self.start.min(buf.len());
        let mut lent = std::mem::take(&mut self.lent);
        for s in &mut lent {
            s.at = s.at.saturating_sub(start);
        }
        Shared {
            own: bytes::Bytes::from(buf).slice(start..),
            held,
            lent,
            source: (self.source.as_ptr().addr(), self.source.len()),
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
        self.0
            .put(data)
            .map_err(|_| io::Error::other("over the translation's budget"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What an [`Out`] had written, kept for another to resume from ([`Out::kept`]): its bytes
/// past the front room it kept, and its lent spans, placed from the start of the kept
/// elements in the source.
#[derive(Clone, Debug)]
pub(crate) struct KeptOut {
    front: usize,
    own: Box<[u8]>,
    lent: Vec<Lent>,
    lent_len: usize,
}

impl KeptOut {
    /// The bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        self.own.len() + self.lent.len() * std::mem::size_of::<Lent>()
    }
}

/// A translated body as shared bytes (read from where they were written) with spans of the
/// source it was translated from lent between them, and how many bytes of memory hold its own.
#[derive(Debug)]
pub struct Shared {
    own: bytes::Bytes,
    lent: Vec<Lent>,
    /// The source's address and length: the lent spans are read from no other.
    source: (usize, usize),
    pub held: usize,
}

impl Shared {
    /// `v` as it is.
    pub fn of_vec(v: Vec<u8>) -> Shared {
        let held = v.capacity();
        Shared {
            own: bytes::Bytes::from(v),
            lent: Vec::new(),
            source: (0, 0),
            held,
        }
    }

    /// The body's length.
    pub fn len(&self) -> usize {
        self.own.len() + self.lent.iter().map(|s| s.len).sum::<usize>()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many spans of the source it lends.
    pub fn lent_spans(&self) -> usize {
        self.lent.len()
    }

    /// Whether `source` is the one the spans were lent from (any source, when none was).
    fn is_source(&self, source: &[u8]) -> bool {
        self.lent.is_empty() || self.source == (source.as_ptr().addr(), source.len())
    }

    /// The body's parts, in order: its own bytes and `source`'s lent spans, none copied. None
    /// when `source` is not the body it was translated from.
    pub fn parts(&self, source: &bytes::Bytes) -> Option<Vec<bytes::Bytes>> {
        if !self.is_source(source) {
            return None;
        }
        let mut parts = Vec::with_capacity(2 * self.lent.len() + 1);
        let mut own = 0;
        for s in &self.lent {
            if s.at > own {
                parts.push(self.own.slice(own..s.at));
            }
            parts.push(source.slice(s.from..s.from + s.len));
            own = s.at;
        }
        if own < self.own.len() || parts.is_empty() {
            parts.push(self.own.slice(own..));
        }
        Some(parts)
    }

    /// The body in one vector of its own (moved down once when it does not start its buffer;
    /// lent spans copied from `source`, which must be the body it was translated from).
    pub fn into_vec(self, source: &[u8]) -> Result<Vec<u8>, TranslateError> {
        let wrong = || TranslateError::internal("a translated body was joined with another source");
        if !self.is_source(source) {
            return Err(wrong());
        }
        if self.lent.is_empty() {
            return Ok(Vec::from(self.own));
        }
        let mut out = Vec::with_capacity(self.len());
        let mut own = 0;
        for s in &self.lent {
            out.extend_from_slice(self.own.get(own..s.at).ok_or_else(wrong)?);
            out.extend_from_slice(source.get(s.from..s.from + s.len).ok_or_else(wrong)?);
            own = s.at;
        }
        out.extend_from_slice(self.own.get(own..).ok_or_else(wrong)?);
        Ok(out)
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

/// A piece of a body written after its conversation: bytes, or what a buffer wrote.
pub(crate) enum Piece<'a, 'r> {
    Bytes(&'a [u8]),
    Out(&'a Out<'r>),
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
    after: &[Piece<'_, '_>],
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
    if out.len() > 0 && out.byte_at(out.len() - 1) == Some(b',') {
        out.pop();
    }
    out.byte(b']')?;
    for piece in after {
        match piece {
            Piece::Bytes(b) => out.put(b)?,
            Piece::Out(o) => out.put_out(o)?,
        }
    }
    // `tail` as an object, `{…}`: its opening brace becomes the comma before its members, and
    // its closing one closes the body (an empty one leaves only that).
    let at = out.len();
    out.json(tail)?;
    let last = out.len().checked_sub(1).and_then(|p| out.byte_at(p));
    match (out.len() - at, out.byte_at(at), last) {
        (2, Some(b'{'), Some(b'}')) => {
            out.truncate(at);
            out.byte(b'}')
        }
        (3.., Some(b'{'), Some(b'}')) => out.set_byte(at, b','),
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
            assert_eq!(a.bytes().unwrap().len(), 40);
        }
        assert_eq!(room.left(), 100, "dropping gives the room back");
        let mut c = Out::with_capacity(&room, 1000);
        assert_eq!(room.left(), 0, "a reservation is cut to the room");
        c.put(&[0; 100]).unwrap();
        assert!(c.put(&[0]).is_err());
        let v = c.into_vec().unwrap();
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
            assert!(out.bytes().unwrap().starts_with(lead));
            out.byte(b']').unwrap();
            let vec = {
                let mut again = Out::with_front(&room, 8, front);
                again.put(out.bytes().unwrap()).unwrap();
                again.place_front(b"").unwrap();
                again.into_vec().unwrap()
            };
            let shared = out.into_shared();
            assert!(shared.held >= shared.len());
            assert_eq!(shared.parts(&bytes::Bytes::new()).unwrap().concat(), vec);
            shared.into_vec(&[]).unwrap()
        };
        for (front, clear) in [(0, false), (2, false), (3, false), (16, false), (16, true)] {
            // Fits the room (16, 3 just), does not (2, 0): the same bytes either way.
            assert_eq!(shared(front, b"[0,", clear), b"[0,1,9,2]", "front {front}");
            assert_eq!(shared(front, b"", clear), b"1,9,2]", "front {front}");
        }
        assert_eq!(room.left(), usize::MAX, "every buffer gave its room back");
    }

    #[test]
    fn lent_spans_read_and_move_as_the_copied_bytes_would() {
        // A source with a distinct byte everywhere (as far as a small cycle allows).
        let source: bytes::Bytes = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        let room = Room::unlimited();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let mut lent_any = false;
        for round in 0..300 {
            let front = [0, 3, 64][round % 3];
            let mut out = Out::with_front(&room, 16, front).lending(&source);
            let mut model = vec![b' '; front];
            for _ in 0..40 {
                match next(9) {
                    0..=2 => {
                        // A long stretch of the source: lent.
                        let len = LEND_MIN_BYTES + next(3 * LEND_MIN_BYTES);
                        let from = next(source.len() - len);
                        out.put(&source[from..from + len]).unwrap();
                        model.extend_from_slice(&source[from..from + len]);
                    }
                    3 => {
                        let data = vec![b'a' + next(26) as u8; 1 + next(40)];
                        out.put(&data).unwrap();
                        model.extend_from_slice(&data);
                    }
                    4 => {
                        let at = next(model.len() + 1);
                        let data = vec![b'A' + next(26) as u8; 1 + next(9)];
                        out.insert(at, &data).unwrap();
                        model.splice(at..at, data.iter().copied());
                    }
                    5 if !model.is_empty() => {
                        let len = model.len() - next(model.len().min(5000) + 1);
                        out.truncate(len);
                        model.truncate(len);
                    }
                    6 => assert_eq!(out.pop(), model.pop()),
                    7 if !model.is_empty() => {
                        let from = next(model.len());
                        let to = from + next((model.len() - from).min(30) + 1);
                        out.remove(from, to).unwrap();
                        model.drain(from..to);
                    }
                    8 if !model.is_empty() => {
                        let at = next(model.len());
                        assert_eq!(out.byte_at(at), Some(model[at]), "round {round}");
                        out.set_byte(at, b'#').unwrap();
                        model[at] = b'#';
                    }
                    _ => {}
                }
                assert_eq!(out.len(), model.len(), "round {round}");
            }
            assert_eq!(out.byte_at(model.len()), None);
            let lead = b"{\"m\":[";
            out.place_front(lead).unwrap();
            if front >= lead.len() {
                model.drain(..front - lead.len());
                model[..lead.len()].copy_from_slice(lead);
            } else {
                model.splice(front..front, lead.iter().copied());
                model.drain(..front);
            }
            assert_eq!(out.len(), model.len(), "round {round}");
            // Read and moved with its spans in place, then written in: the same bytes.
            let shared = out.into_shared();
            assert_eq!(shared.len(), model.len(), "round {round}");
            lent_any |= shared.lent_spans() > 0;
            let parts = shared.parts(&source).unwrap();
            assert_eq!(parts.concat(), model, "round {round}");
            let other = bytes::Bytes::from(source.to_vec());
            assert!(shared.lent_spans() == 0 || shared.parts(&other).is_none());
            assert_eq!(shared.into_vec(&source).unwrap(), model, "round {round}");
        }
        assert!(lent_any);
        assert_eq!(room.left(), usize::MAX, "every buffer gave its room back");
    }

    #[test]
    fn a_shared_body_is_its_parts_and_joins_back() {
        let source = bytes::Bytes::from(vec![b'x'; 3 * LEND_MIN_BYTES]);
        let room = Room::unlimited();
        let mut out = Out::with_front(&room, 8, 8).lending(&source);
        out.put(b"[\"").unwrap();
        out.put(&source[10..10 + LEND_MIN_BYTES]).unwrap();
        // Right behind it in the source: one span.
        out.put(&source[10 + LEND_MIN_BYTES..10 + 2 * LEND_MIN_BYTES])
            .unwrap();
        out.put(b"\",").unwrap();
        out.put(&source[..LEND_MIN_BYTES - 1]).unwrap();
        out.put(b"]").unwrap();
        out.place_front(b"{").unwrap();
        let shared = out.into_shared();
        assert_eq!(shared.lent_spans(), 1, "the short stretch is copied");
        let parts = shared.parts(&source).unwrap();
        let flat = parts.concat();
        assert_eq!(parts.len(), 3);
        assert!(
            parts[1].as_ptr() == source[10..].as_ptr(),
            "lent, not copied"
        );
        let mut want = b"{[\"".to_vec();
        want.extend_from_slice(&[b'x'; 2 * LEND_MIN_BYTES]);
        want.extend_from_slice(b"\",");
        want.extend_from_slice(&[b'x'; LEND_MIN_BYTES - 1]);
        want.push(b']');
        assert_eq!(flat, want);
        assert_eq!(shared.into_vec(&source).unwrap(), want);
        // Without lending, nothing is lent.
        let mut out = without_lending(|| Out::with_capacity(&room, 0).lending(&source));
        out.put(&source[..LEND_MIN_BYTES]).unwrap();
        assert_eq!(out.into_shared().lent_spans(), 0);
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
            &[Piece::Bytes(br#","s":"#), Piece::Bytes(br#""x""#)],
            &tail,
        )
        .unwrap();
        assert_eq!(
            out.bytes().unwrap(),
            br#"{"model":"m","messages":[0,1,2],"s":"x","n":1}"#
        );
        let mut out = Out::with_capacity(&room, 0);
        let empty = serde_json::json!({});
        assemble(&mut out, b"{}", "input", b"", &[], &empty).unwrap();
        assert_eq!(out.bytes().unwrap(), br#"{"input":[]}"#);
        let mut out = Out::with_capacity(&room, 0);
        assemble(&mut out, b"{}", "input", b"7,", &[], &empty).unwrap();
        assert_eq!(out.bytes().unwrap(), br#"{"input":[7]}"#);
    }
}
