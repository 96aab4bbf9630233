//! The scanning parser: validates a body in one pass without building anything, eight bytes
//! at a time inside strings (where an agent's body keeps nearly all its bytes), and gathers
//! the top-level members on the way. It answers only "valid, and these are the fields";
//! anything it refuses goes to the serde_json parser, which decides (and words the error).
//! So a refusal here can cost time, never a wrong answer; an acceptance must be exact, which
//! `tests.rs` and `fuzz/fuzz_targets/json_scan.rs` check against serde_json and a reference.

use std::ops::Range;

use super::kept;
use super::mask::{block_mask, escaped, Avx2, Lanes, Narrow, BLOCK, WIDE};
use super::spans::{self, Known, Span, StringSpans, MIN_NOTED};
use super::{serde_path, Collected, FieldShape, Flag, JsonError, StreamValue, TextField};
use super::{RequestInfo, MAX_JSON_DEPTH};

/// The document is not one this scanner accepts: invalid, or valid but with something it
/// leaves to serde_json (a top-level value that is not an object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused;

type Scan<T> = Result<T, Refused>;

/// Checks a request body and finds its fields (see the module docs of `json` for the rules).
pub fn inspect_request_scan(body: &[u8]) -> Result<RequestInfo, JsonError> {
    collect_checked(body).and_then(Collected::finish)
}

/// What [`inspect_request_scan`] gathers before its field checks.
pub(super) fn collect_checked(body: &[u8]) -> Result<Collected, JsonError> {
    match collect(body) {
        Ok(c) => Ok(c),
        Err(Refused) => serde_path::collect_serde(body),
    }
}

impl StringSpans {
    /// Whether every note is right for `body`: a scan of it without notes finds each noted
    /// string token ending where noted, escaped as noted, and each noted container ending
    /// where noted. For tests and fuzz targets checking notes made some other way than by
    /// inspecting `body`.
    pub fn hold_in(&self, body: &[u8]) -> bool {
        self.each().iter().all(|n| {
            let mut s = Scanner::unnoted(body, n.start as usize);
            let read = if n.container {
                matches!(s.peek(), Some(b'{' | b'[')) && s.value().is_ok()
            } else {
                s.string() == Ok(n.escaped)
                    && (n.unicode
                        || !body
                            .get(n.start as usize..n.end as usize)
                            .is_none_or(holds_unicode_escape))
            };
            read && s.i == n.end as usize
        })
    }
}

/// Whether a string token holds a `\u` escape (a backslash that is itself escaped does not
/// open one).
pub(super) fn holds_unicode_escape(token: &[u8]) -> bool {
    let mut i = 0;
    while let Some(k) = token.get(i..).and_then(|t| memchr::memchr(b'\\', t)) {
        if token.get(i + k + 1) == Some(&b'u') {
            return true;
        }
        i += k + 2;
    }
    false
}

/// Validates `body` and gathers its top-level members, or refuses.
pub(super) fn collect(body: &[u8]) -> Scan<Collected> {
    collect_on(body, Avx2::detect())
}

/// [`collect`], with strings scanned in AVX2 lanes when given them (tests compare the two).
pub(super) fn collect_on(body: &[u8], avx2: Option<Avx2>) -> Scan<Collected> {
    // UTF-8 once for the whole body (SIMD; what notes vouch for is not read again): strings
    // then only look for quotes, backslashes and control characters, and outside strings only
    // ASCII is valid anyway. Where values may be taken as kept, after the scan, and only
    // what was not taken (kept bytes were checked when kept): nothing the scan does on bytes
    // that are not UTF-8 outlives a refusal, and the scan reads bytes, never text.
    let known = super::utf8::known(body);
    let after = !known && spans::notes_for(body).is_none() && kept::active();
    if !known && !after && !spans::is_utf8(body) {
        return Err(Refused);
    }
    let mut s = Scanner {
        b: body,
        i: 0,
        sealed: false,
        // Positions are kept in 32 bits.
        notes: u32::try_from(body.len())
            .is_ok()
            .then(|| Vec::with_capacity(body.len() / NOTE_ROOM_BYTES + 8)),
        open: Vec::with_capacity(16),
        placed: 0,
        container_room: body.len() / CONTAINER_NOTE_BYTES + 64,
        level: 0,
        // Notes of this very body, when its caller has some (a body rewritten in place
        // whose notes were moved with its tokens, `StringSpans::spliced`).
        known: spans::notes_for(body),
        taken: Vec::new(),
        signed: false,
        avx2,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(Refused);
    }
    s.i += 1;
    let mut c = Collected::default();
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            if s.peek() != Some(b'"') {
                return Err(Refused);
            }
            let key_start = s.i;
            let key_escaped = s.string()?;
            let key = key_start..s.i;
            s.ws();
            if s.peek() != Some(b':') {
                return Err(Refused);
            }
            s.i += 1;
            s.ws();
            let value_start = s.i;
            // An agent's tools and system prompt, the same every turn: taken whole when
            // checked before.
            let key_token = body.get(key.clone()).unwrap_or_default();
            let same = kept::resent(key_token);
            // An agent's conversation: the last turn's again, with this turn's at its end.
            let conversation = kept::conversation_member(key_token)
                .filter(|_| s.peek() == Some(b'[') && s.keeps_conversations());
            if let Some(member) = conversation {
                s.conversation(member)?;
            } else if !(same && s.take_kept()) {
                s.value_keeping(same)?;
            }
            gather(&mut c, body, key, key_escaped, value_start..s.i)?;
            s.ws();
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    s.ws();
                }
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return Err(Refused),
            }
        }
    }
    s.ws();
    if s.i != body.len() {
        return Err(Refused);
    }
    if after && !outside(body, &s.taken, super::utf8::valid) {
        return Err(Refused);
    }
    if !known {
        // Every byte checked: here, or when the bytes taken as kept were kept.
        super::utf8::vouch(body);
    }
    c.sealed = s.sealed;
    // Known from the notes this body was given (moved with the splices that made it), else
    // searched for where the body was not taken whole: a separator holds no quote or
    // bracket, so none lies across the edge of a taken value.
    let separator = |gap: &[u8]| crate::seal::find_signature_separator(gap).is_none();
    let known_separator = s.known.as_ref().and_then(Known::separator);
    c.signed = s.signed || known_separator.unwrap_or_else(|| !outside(body, &s.taken, separator));
    c.strings = StringSpans::new(s.notes.unwrap_or_default()).knowing_separator(c.signed);
    Ok(c)
}

/// Whether `ok` holds for every run of `body` outside the ranges `taken` (in order, apart,
/// each from an ASCII bracket or quote to just after one: cuts between characters).
fn outside(body: &[u8], taken: &[Range<usize>], ok: impl Fn(&[u8]) -> bool) -> bool {
    let mut from = 0;
    for t in taken {
        if !body.get(from..t.start).is_some_and(&ok) {
            return false;
        }
        from = t.end;
    }
    body.get(from..).is_some_and(ok)
}

/// Notes a top-level member in `c` if it is one the gateway reads. The first occurrence of
/// each key counts; `model` and `stream` are counted for the duplicate checks.
fn gather(
    c: &mut Collected,
    body: &[u8],
    key: Range<usize>,
    key_escaped: bool,
    value: Range<usize>,
) -> Scan<()> {
    let raw_key = body.get(key).ok_or(Refused)?;
    let decoded;
    let name: &[u8] = if key_escaped {
        decoded = decode(raw_key)?;
        decoded.as_bytes()
    } else {
        raw_key.get(1..raw_key.len() - 1).ok_or(Refused)?
    };
    let raw = body.get(value.clone()).ok_or(Refused)?;
    let first = raw.first().copied();
    let as_text = || -> Scan<Option<String>> {
        match first {
            Some(b'"') => decode(raw).map(Some),
            _ => Ok(None),
        }
    };
    // Bytes, not text: a member's value may be most of the body (`messages`), and checking
    // it as UTF-8 again cost ~0.8 instructions a byte of body (callgrind).
    let flag = || Flag::of_raw(raw);
    let shape = || FieldShape::of_raw(raw);
    match name {
        b"model" => {
            c.model_count += 1;
            if c.model_count == 1 {
                c.model = Some((value, as_text()?));
            }
        }
        b"stream" => {
            c.stream_count += 1;
            if c.stream_count == 1 {
                c.stream = match raw {
                    b"true" => StreamValue::Bool(true),
                    b"false" => StreamValue::Bool(false),
                    b"null" => StreamValue::Null,
                    _ => StreamValue::Other,
                };
            }
        }
        b"messages" if c.messages == FieldShape::Absent => c.messages = shape(),
        b"max_tokens" if c.max_tokens == FieldShape::Absent => c.max_tokens = shape(),
        b"allow_fallbacks" if c.allow_fallbacks == Flag::Absent => c.allow_fallbacks = flag(),
        b"pii_substitution" if c.pii_substitution == Flag::Absent => {
            c.pii_substitution = flag();
        }
        b"privacy_tier" if c.privacy_tier == TextField::Absent => {
            c.privacy_tier = match as_text()? {
                Some(t) => TextField::of_str(&t),
                None => TextField::Other,
            };
        }
        _ => {}
    }
    Ok(())
}

/// A validated string token (quotes included), decoded.
fn decode(token: &[u8]) -> Scan<String> {
    match token.get(1..token.len().saturating_sub(1)) {
        Some(inner) if !inner.contains(&b'\\') => std::str::from_utf8(inner)
            .map(str::to_owned)
            .map_err(|_| Refused),
        _ => serde_json::from_slice(token).map_err(|_| Refused),
    }
}

/// Shortest container noted (brackets included): crossing a shorter one costs a reader little
/// more than finding its note, and each note costs admission a little.
const MIN_NOTED_CONTAINER: usize = 256;

// A string `Scanner::string` settles in one sixteen-byte look is never one to note.
const _: () = assert!(BLOCK + 2 < MIN_NOTED);

/// An open container's note index while it has none.
const NOT_NOTED: usize = usize::MAX;

/// Bytes of body per long container that may be noted (64 more are, whatever the size): deep
/// nesting of long values cannot make the notes outgrow the body (agents' bodies have about
/// one long container per KB).
const CONTAINER_NOTE_BYTES: usize = 128;

/// Bytes of body per note room is made for at first: agents' bodies have one note per 170
/// to 1,000 bytes, so the notes seldom grow and copy.
const NOTE_ROOM_BYTES: usize = 256;

/// The bytes a backslash may be followed by in a two-byte escape (`\u` is apart).
pub(super) const SHORT_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let bytes = *b"\"\\/bfnrt";
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t
};

/// A cursor over a UTF-8-checked body (`de` reads with it too).
pub(super) struct Scanner<'b> {
    pub(super) b: &'b [u8],
    pub(super) i: usize,
    /// A string token seen so far opens with the seal mark (`crate::seal::MARK`).
    pub(super) sealed: bool,
    /// Where long string tokens and containers end, noted as they are checked (admission's
    /// inspection).
    notes: Option<Vec<Span>>,
    /// While notes are taken: where each container open starts, innermost last, and for the
    /// first [`Self::placed`], the index of its note.
    open: Vec<(usize, usize)>,
    /// How many of the open containers (outermost first) have their note in place.
    placed: usize,
    /// Long containers that may still be noted.
    container_room: usize,
    /// Levels above the value [`Self::value`] is called on, beyond the top-level object's: 1
    /// for an element of a member's array walked apart (`Self::conversation`).
    level: usize,
    /// Notes from an earlier inspection of this text, used instead of a scan.
    known: Option<Known>,
    /// The ranges taken whole as kept (see `json::kept`), in order: their bytes were checked
    /// to be UTF-8 when they were kept.
    taken: Vec<Range<usize>>,
    /// A range taken whole holds the thought signature separator (searched when it was kept).
    signed: bool,
    /// Present where the CPU has AVX2: strings are scanned with it.
    #[cfg_attr(
        not(target_arch = "x86_64"),
        expect(dead_code, reason = "only x86_64 has an AVX2 build of the scan")
    )]
    avx2: Option<Avx2>,
}

impl<'b> Scanner<'b> {
    /// A scanner at `i` of `b`, which takes notes from an earlier inspection of `b` when
    /// there are some (see `spans::with_notes`).
    pub(super) fn new(b: &'b [u8], i: usize) -> Self {
        Self {
            b,
            i,
            sealed: false,
            notes: None,
            open: Vec::new(),
            placed: 0,
            container_room: 0,
            level: 0,
            known: spans::notes_for(b),
            taken: Vec::new(),
            signed: false,
            avx2: Avx2::detect(),
        }
    }

    /// A scanner at `i` of `b` that takes no notes from anywhere.
    pub(super) fn unnoted(b: &'b [u8], i: usize) -> Self {
        Self {
            known: None,
            ..Self::new(b, i)
        }
    }

    #[inline(always)]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace (space, tab, LF, CR).
    #[inline(always)]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// One value, containers included, starting at a non-whitespace byte. The top-level
    /// object is level 1, so a value of one of its members starts at level 2.
    pub(super) fn value(&mut self) -> Scan<()> {
        // Admission notes long containers; a reader crosses the ones noted. Two builds of the
        // loop: one with both in it cost admission ~5% more instructions.
        if self.notes.is_some() {
            self.value_as::<true>()
        } else {
            self.value_as::<false>()
        }
    }

    /// Takes the value at the cursor whole when it is one kept (see `json::kept`), its
    /// notes added where it sits; whether it did. Only where notes are taken and there is
    /// room for its containers' notes, so the notes are those a scan would take. (A body
    /// with notes of its own, rewritten by PII substitution, takes it too: its bytes are the
    /// kept ones, and what was noted of them is right for them.)
    fn take_kept(&mut self) -> bool {
        let (Some(notes), Ok(at), Some(rest)) = (
            self.notes.as_mut(),
            u32::try_from(self.i),
            self.b.get(self.i..),
        ) else {
            return false;
        };
        let room = self.container_room;
        let mut found = None;
        let took = kept::take(rest, |f, kept| {
            if f.containers > room {
                return false;
            }
            notes.extend(kept.iter().map(|n| Span {
                start: n.start + at,
                end: n.end + at,
                ..*n
            }));
            found = Some((f.len, f.containers, f.sealed, f.signed));
            true
        });
        if let Some((len, containers, sealed, signed)) = found.filter(|_| took) {
            self.taken.push(self.i..self.i + len);
            self.i += len;
            self.container_room -= containers;
            self.sealed |= sealed;
            self.signed |= signed;
        }
        took
    }

    /// Whether a conversation array is walked element by element here: notes are taken (not
    /// known from before) and values are kept.
    fn keeps_conversations(&self) -> bool {
        self.notes.is_some() && self.known.is_none() && kept::active()
    }

    /// A conversation array (`messages`, `input`, `contents`) from its `[`, as
    /// [`Self::value`] checks and notes it, element by element: the elements it opens with
    /// alike a kept conversation's are taken whole with their notes (see
    /// `kept::take_conversation`), the rest scanned, and the whole kept for the next turn.
    fn conversation(&mut self, member: u8) -> Scan<()> {
        let start = self.i;
        let from = self.notes.as_ref().map_or(0, Vec::len);
        let room = self.container_room;
        let sealed_before = std::mem::take(&mut self.sealed);
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.sealed |= sealed_before;
            return Ok(());
        }
        self.open.push((start, NOT_NOTED));
        let mut ends: Vec<kept::End> = Vec::new();
        let taken = self.take_conversation(member, start, &mut ends);
        let walked = self.elements(start, from, room, &mut ends);
        self.sealed |= sealed_before;
        walked?;
        self.close_note();
        if let (Some(notes), Some(array)) = (self.notes.as_deref(), self.b.get(start..)) {
            let notes = notes.get(from..).unwrap_or_default();
            kept::keep_conversation(member, taken, array, start, notes, &ends);
        }
        Ok(())
    }

    /// Takes the elements the array at `start` opens with alike a kept conversation, if any,
    /// its notes added and its ends put in `ends`; the cursor is then after the last taken.
    fn take_conversation(
        &mut self,
        member: u8,
        start: usize,
        ends: &mut Vec<kept::End>,
    ) -> Option<kept::Taken> {
        let at = u32::try_from(start).ok()?;
        let array = self.b.get(start..)?;
        if array.len() < kept::KEPT_MIN_BYTES {
            return None;
        }
        let room = self.container_room;
        let notes = self.notes.as_mut()?;
        let from = notes.len();
        let mut took = None;
        let mut signed = false;
        let taken =
            kept::take_conversation(member, array, |kept_notes, kept_ends, kept_signed| {
                let Some(last) = kept_ends.last() else {
                    return false;
                };
                // Every kept note lies within the elements taken, so no position overflows.
                if last.containers as usize > room || at.checked_add(last.end).is_none() {
                    return false;
                }
                // (The array's own note, the first, is given its end when the array closes.)
                notes.extend(kept_notes.iter().map(|n| Span {
                    start: n.start + at,
                    end: n.end.min(last.end) + at,
                    ..*n
                }));
                ends.extend_from_slice(kept_ends);
                took = Some(*last);
                signed = kept_signed;
                true
            })?;
        let last = took?;
        if last.notes > 0 {
            // The first note in an array is its own, placed before any inside it.
            if let Some(open) = self.open.last_mut() {
                open.1 = from;
            }
            self.placed = self.open.len();
        }
        self.container_room -= last.containers as usize;
        self.sealed |= last.sealed;
        self.signed |= signed;
        self.i = start + last.end as usize;
        self.taken.push(start..self.i);
        Some(taken)
    }

    /// The elements of the array at `start` from the cursor (on its first element, or after
    /// the last taken one), through its `]` (left for the caller to close); each one's end
    /// put in `ends` while notes had room (`from`, `room`: the notes and room before it).
    fn elements(
        &mut self,
        start: usize,
        from: usize,
        room: usize,
        ends: &mut Vec<kept::End>,
    ) -> Scan<()> {
        // After a taken element the cursor is past it: a separator or the end comes first.
        let mut after = !ends.is_empty();
        loop {
            if after {
                self.ws();
                match self.peek().ok_or(Refused)? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                    }
                    b']' => {
                        self.i += 1;
                        return Ok(());
                    }
                    _ => return Err(Refused),
                }
            }
            after = true;
            // A number's bytes go on in a longer number: no end is kept after one.
            let delimited = !matches!(self.peek(), Some(b'-' | b'0'..=b'9'));
            self.level = 1;
            let element = self.value();
            self.level = 0;
            element?;
            let notes = self.notes.as_ref().map_or(0, Vec::len).saturating_sub(from);
            let end = self.i - start;
            // Ends a few hundred bytes apart at least, and only within what may be kept: a
            // body of tiny elements holds no more ends than a few per KB.
            let apart = end >= ends.last().map_or(0, |e| e.end as usize) + kept::END_BYTES_APART;
            if let (true, true, true, Ok(end), Ok(notes), Ok(containers)) = (
                delimited,
                apart && end <= kept::CONVERSATION_MAX_BYTES,
                self.container_room > 0,
                u32::try_from(end),
                u32::try_from(notes),
                u32::try_from(room - self.container_room),
            ) {
                ends.push(kept::End {
                    end,
                    notes,
                    containers,
                    sealed: self.sealed,
                });
            }
        }
    }

    /// [`Self::value`]; when `keep`, the value is kept with its notes (see `json::kept`), if
    /// the scan noted every long container in it (room never ran out).
    fn value_keeping(&mut self, keep: bool) -> Scan<()> {
        if !keep || self.known.is_some() || self.notes.is_none() {
            return self.value();
        }
        let (start, from, sealed) = (self.i, self.notes.as_ref().map_or(0, Vec::len), self.sealed);
        self.sealed = false;
        self.value()?;
        let own_seal = self.sealed;
        self.sealed |= sealed;
        let value = self.b.get(start..self.i).unwrap_or_default();
        let notes = self.notes.as_deref().and_then(|n| n.get(from..));
        // Only a container or a string: its bytes say where it ends, where a number's go on
        // in a longer number.
        let container = matches!(value.first(), Some(b'[' | b'{' | b'"'));
        if let (Some(notes), true, true, true) = (
            notes,
            container,
            self.container_room > 0,
            value.len() >= kept::KEPT_MIN_BYTES,
        ) {
            kept::keep(value, start, notes, own_seal);
        }
        Ok(())
    }

    /// [`Self::value`], noting long containers or crossing noted ones.
    #[inline(always)]
    fn value_as<const NOTING: bool>(&mut self) -> Scan<()> {
        // One bit per open container below the top-level object: set for an array.
        let mut arrays: u128 = 0;
        let mut depth = 0usize;
        let noting = NOTING;
        loop {
            // A value.
            match self.peek().ok_or(Refused)? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    if let Some(end) = self.noted_container(noting) {
                        // A reader crossing a container admission noted: taken whole.
                        self.i = end;
                    } else {
                        let is_array = self.peek() == Some(b'[');
                        // The top-level object is level 1: this container is level depth + 2.
                        if depth + 2 + self.level > MAX_JSON_DEPTH {
                            return Err(Refused);
                        }
                        arrays = (arrays << 1) | u128::from(is_array);
                        depth += 1;
                        let start = self.i;
                        self.i += 1;
                        self.ws();
                        let close = if is_array { b']' } else { b'}' };
                        if self.peek() == Some(close) {
                            // Empty: closed below, as after any value.
                            self.i += 1;
                            arrays >>= 1;
                            depth -= 1;
                        } else {
                            if noting {
                                self.open.push((start, NOT_NOTED));
                            }
                            if !is_array {
                                self.key()?;
                            }
                            continue;
                        }
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Refused),
            }
            // After a value: the end of the containers it closes, or the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let in_array = arrays & 1 == 1;
                match self.peek().ok_or(Refused)? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                        if !in_array {
                            self.key()?;
                        }
                        break;
                    }
                    b']' if in_array => {}
                    b'}' if !in_array => {}
                    _ => return Err(Refused),
                }
                self.i += 1;
                if noting {
                    self.close_note();
                }
                arrays >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key and its colon, leaving the cursor on the value.
    fn key(&mut self) -> Scan<()> {
        if self.peek() != Some(b'"') {
            return Err(Refused);
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return Err(Refused);
        }
        self.i += 1;
        self.ws();
        Ok(())
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> Scan<()> {
        let end = self.i + word.len();
        if self.b.get(self.i..end) != Some(word) {
            return Err(Refused);
        }
        self.i = end;
        Ok(())
    }

    /// A number, checked for shape (RFC 8259 §6).
    pub(super) fn number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Refused),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Scan<()> {
        let from = self.i;
        self.digits();
        if self.i == from {
            return Err(Refused);
        }
        Ok(())
    }

    /// A string token from its opening quote; the cursor ends after its closing quote.
    /// Returns whether it held an escape. The body is valid UTF-8 (checked first).
    ///
    /// Agents' bodies hold an escape every ~17 bytes (source files' newlines and quotes), so
    /// a window of 64 bytes is settled by arithmetic on its masks: which bytes are escaped
    /// ([`escaped`]), hence which quote closes the string and whether a control character
    /// comes first; only the escaped bytes are then looked up, one table read each. `\u`
    /// leaves the window. Measured on a 300 KB agent body (callgrind, `benches/agent.rs`
    /// `chat_same_format`): the scan went from 2.6 instructions per byte, walking the mask
    /// from escape to escape with a branch on each byte found, to 2.1, and its body's time
    /// from 88 to 77 µs.
    #[inline]
    pub(super) fn string(&mut self) -> Scan<bool> {
        self.string_token().map(|(escaped, _)| escaped)
    }

    /// [`Self::string`], also saying whether an escape in it may be a `\u` (a note says
    /// "may": it was taken by a scan that does say).
    #[inline(always)]
    pub(super) fn string_token(&mut self) -> Scan<(bool, bool)> {
        // Most string tokens are short and plain (keys, types, ids): one sixteen-byte look
        // settles them, where a window costs its six masks (never noted: too short).
        if let Some(block) = self
            .b
            .get(self.i + 1..self.i + 1 + BLOCK)
            .and_then(|x| <&[u8; BLOCK]>::try_from(x).ok())
        {
            let mask = block_mask(block);
            let k = mask.trailing_zeros() as usize;
            if block.get(k) == Some(&b'"') {
                self.note_mark(self.i + 1);
                self.i += k + 2;
                return Ok((false, false));
            }
        }
        if let Some(known) = &mut self.known {
            if let Some((end, escaped, unicode)) = known.end_of(self.i) {
                let start = self.i;
                self.note_mark(start + 1);
                self.i = end;
                if let Some(token) = self.b.get(start..end) {
                    spans::crossed(token, unicode);
                }
                self.note(start, escaped, unicode);
                return Ok((escaped, unicode));
            }
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(lanes) = self.avx2 {
            #[expect(unsafe_code, reason = "calling the AVX2 build of the scan")]
            // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`).
            return unsafe { self.string_avx2(lanes) };
        }
        self.string_with(Narrow)
    }

    /// [`Self::string`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn string_avx2(&mut self, lanes: Avx2) -> Scan<(bool, bool)> {
        self.string_with(lanes)
    }

    /// [`Self::string`] with masks taken in `lanes`.
    #[inline(always)]
    fn string_with(&mut self, lanes: impl Lanes) -> Scan<(bool, bool)> {
        let b = self.b;
        let start = self.i;
        let mut base = self.i + 1;
        let mut held_escape = false;
        let mut held_unicode = false;
        // Whether the window's first byte is escaped by a backslash ending the one before.
        let mut carry = false;
        self.note_mark(base);
        'window: loop {
            let c = lanes.classes(b, base);
            let (esc, next_carry) = escaped(c.backslash, carry);
            let close = c.quote & !esc;
            // The closing quote, a control character, or the end of the body (flagged as a
            // control character), whichever comes first; the bytes before it are the
            // string's.
            let stop = close | c.control;
            let before = stop.wrapping_sub(1) & !stop;
            held_escape |= c.backslash & before != 0;
            let mut settle = esc & before;
            if settle != 0 {
                // Only an escape that is not a short one needs a look of its own: a `\u`, or
                // one to refuse.
                settle &= !lanes.short_escapes(b, base);
            }
            while settle != 0 {
                let k = settle.trailing_zeros() as usize;
                let byte = b.get(base + k).copied().ok_or(Refused)?;
                if !SHORT_ESCAPE[usize::from(byte)] {
                    if byte != b'u' {
                        return Err(Refused);
                    }
                    held_unicode = true;
                    // From its backslash (the window's last byte before, if `k` is 0).
                    self.i = base + k - 1;
                    self.unicode_escape()?;
                    base = self.i;
                    carry = false;
                    continue 'window;
                }
                settle &= settle - 1;
            }
            if stop != 0 {
                let k = stop.trailing_zeros() as usize;
                if close >> k & 1 == 0 {
                    return Err(Refused);
                }
                self.i = base + k + 1;
                if self.i - start >= MIN_NOTED {
                    self.note(start, held_escape, held_unicode);
                }
                return Ok((held_escape, held_unicode));
            }
            carry = next_carry;
            base += WIDE;
        }
    }

    /// Whether the string token whose text opens at `at` opens with the seal mark. Four bytes
    /// per string token: admission then needs no search of the body for seals (a mark after
    /// an escaped quote is text, not a token).
    #[inline(always)]
    fn note_mark(&mut self, at: usize) {
        let mark = crate::seal::MARK;
        self.sealed |= self.b.get(at..at + mark.len()) == Some(mark);
    }

    /// Notes the string token from `start` to the cursor, when notes are taken.
    #[cold]
    fn note(&mut self, start: usize, escaped: bool, unicode: bool) {
        if self.placed < self.open.len() {
            self.place_open();
        }
        if let (Some(notes), Ok(start), Ok(end)) =
            (&mut self.notes, u32::try_from(start), u32::try_from(self.i))
        {
            notes.push(Span {
                start,
                end,
                escaped,
                unicode,
                container: false,
            });
        }
    }

    /// Where the container opening at the cursor ends, when a reader (not `noting`) has a
    /// note of it from admission.
    #[inline(always)]
    fn noted_container(&mut self, noting: bool) -> Option<usize> {
        if noting {
            return None;
        }
        self.known.as_mut()?.container_end(self.i)
    }

    /// Ends the innermost open container at the cursor (notes are taken): a placed note gets
    /// its end; an unplaced container is noted if long.
    #[inline(always)]
    fn close_note(&mut self) {
        let Some((start, at)) = self.open.pop() else {
            return;
        };
        if self.placed > self.open.len() {
            self.end_placed(at);
        } else if self.i - start >= MIN_NOTED_CONTAINER {
            self.place_open();
            self.push_container(start, self.i);
        }
    }

    /// The placed note at `at` ends at the cursor ([`NOT_NOTED`]: the room ran out, nothing
    /// to write).
    #[cold]
    fn end_placed(&mut self, at: usize) {
        self.placed = self.open.len();
        let note = self.notes.as_mut().and_then(|notes| notes.get_mut(at));
        if let (Some(note), Ok(end)) = (note, u32::try_from(self.i)) {
            note.end = end;
        }
    }

    /// Notes every open container not noted yet, outermost first, before a token inside
    /// them is noted: notes stay in order of their starts. Such a container holds a noted
    /// token, so it is long enough to be worth a note (if not always [`MIN_NOTED_CONTAINER`]
    /// long). A container is placed once, and its note gets its end when it closes.
    #[cold]
    #[inline(never)]
    fn place_open(&mut self) {
        while self.placed < self.open.len() {
            let Some(&(start, _)) = self.open.get(self.placed) else {
                return;
            };
            let Some(at) = self.push_container(start, start) else {
                // No room: no further container is noted (those open keep `NOT_NOTED`, so
                // their close writes no note's end).
                self.placed = self.open.len();
                return;
            };
            if let Some(entry) = self.open.get_mut(self.placed) {
                entry.1 = at;
            }
            self.placed += 1;
        }
    }

    /// Adds a container's note from `start` to `end` (written when it closes, if it is still
    /// open), when there is room; its index.
    fn push_container(&mut self, start: usize, end: usize) -> Option<usize> {
        let notes = self.notes.as_mut()?;
        if self.container_room == 0 {
            return None;
        }
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
            return None;
        };
        self.container_room -= 1;
        notes.push(Span {
            start,
            end,
            escaped: false,
            unicode: false,
            container: true,
        });
        Some(notes.len() - 1)
    }

    /// A `\uXXXX` escape from its backslash, surrogates in pairs (the two-byte escapes are
    /// settled in [`Self::string`]'s walk by [`SHORT_ESCAPE`]).
    fn unicode_escape(&mut self) -> Scan<()> {
        let unit = self.hex4(self.i + 2)?;
        self.i += 6;
        match unit {
            0xD800..=0xDBFF => {
                // A high surrogate: a low one must follow at once.
                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(Refused);
                }
                let low = self.hex4(self.i + 2)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(Refused);
                }
                self.i += 6;
                Ok(())
            }
            0xDC00..=0xDFFF => Err(Refused),
            _ => Ok(()),
        }
    }

    fn hex4(&self, at: usize) -> Scan<u32> {
        let digits = self.b.get(at..at + 4).ok_or(Refused)?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(Refused),
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings dense in what the scan settles (quotes, backslash runs, `\\u` escapes and
    /// surrogates, control characters, multi-byte characters) at every offset of a window:
    /// both builds of the scan accept exactly what serde_json accepts.
    #[test]
    fn both_string_scans_accept_exactly_what_serde_accepts() {
        const PIECES: [&[u8]; 14] = [
            b"a",
            b"\\",
            b"\"",
            b"\\\"",
            b"\\n",
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"\\ud83d",
            b"\\x",
            b"\x01",
            b"\xc3\xa9",
            b"\\u12",
            b"0123456789abcdef0123456789abcdef",
            b"/",
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..30_000 {
            let mut body = b"{\"k\":\"".to_vec();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 24) {
                let pick = (x >> (k % 16 * 4)) as usize ^ k as usize;
                body.extend_from_slice(PIECES[pick % PIECES.len()]);
            }
            body.extend_from_slice(b"\"}");
            let serde = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
            let plain = collect_on(&body, None).is_ok();
            assert_eq!(plain, serde, "{:?}", String::from_utf8_lossy(&body));
            if let Some(lanes) = Avx2::detect() {
                assert_eq!(collect_on(&body, Some(lanes)).is_ok(), serde);
            }
            if serde {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(accepted > 1_000 && refused > 1_000, "{accepted} {refused}");
    }

    #[test]
    fn accepts_and_refuses_as_the_rules_say() {
        for good in [
            r#"{}"#,
            r#" {"model":"m","a":[1,-2.5e+3,true,false,null,{},[],{"b":[[]]}]} "#,
            r#"{"k":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00é𝄞"}"#,
        ] {
            assert!(collect(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in [
            &b"[]"[..],
            b"{",
            b"{\"a\":1,}",
            b"{\"a\":[1,]}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\udc00\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xc3\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":tru}",
            b"{\"a\":[}",
            b"{\"a\":{]}",
            b"{\"a\":1} x",
            b"{\"a\" 1}",
            b"{1:1}",
        ] {
            assert_eq!(
                collect(bad).err(),
                Some(Refused),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
