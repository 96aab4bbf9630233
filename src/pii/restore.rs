//! The streaming restorer: stand-ins back to originals, in text that arrives in pieces.
//!
//! One Aho-Corasick automaton (leftmost-longest) over a request's stand-ins, built once per
//! request. [`Restorer::push`] writes out everything that can no longer be part of a stand-in
//! and holds back only the longest suffix that could still start one (or a stand-in that
//! ends exactly at the end of the input, until the next character shows it is not glued to a
//! word). Text with no stand-in in flight passes straight through, so time to first token is
//! unchanged.
//!
//! Pushing any split of a text gives the same output as pushing it whole. That rests on two
//! rules the session keeps when it draws stand-ins: no stand-in contains another, and every
//! stand-in and original is escape-invariant (see `detect` and `standin`). The second rule
//! also means the restorer may run on a decoded string, on JSON text (tool-call arguments) or
//! on a raw JSON body: a stand-in is the same bytes in all of them.
//!
//! Word boundaries: a stand-in that starts (ends) with a letter or digit is only restored when
//! the character before (after) it is not one, so `Avery` is not restored inside `Averyl`.
//! What "the character" is depends on the [`Mode`]: in JSON text an escape is read as the
//! character it stands for (`\n`, `\"` and `\u00e9` are not letters, `\u0041` is), and a
//! match that starts inside an escape (`ora` after `\n`) is not a stand-in at all: restoring
//! it would break the escape.
//!
//! A recording restorer ([`Restorer::recording`], for signed thinking text) also keeps what
//! undoes its work: where in its output each original went and which stand-in it replaced,
//! and a digest of everything it wrote; its edits are bounded, and past the bound it restores
//! nothing more (see `thinking`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::seal::SealKey;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// How a text's bytes are read at a stand-in's edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain text (a decoded JSON string): each byte is what it says.
    Text,
    /// JSON text (tool-call arguments, a raw JSON body): escapes are read as the characters
    /// they stand for.
    Json,
}

/// Bytes of an escape (`\uXXX`, one short of whole) that may follow a held-back stand-in.
const ESCAPE_LOOKAHEAD: usize = 5;

/// Where a JSON escape stands, reading forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// Not in an escape.
    Out,
    /// Right after an escaping backslash.
    Backslash,
    /// In `\uXXXX`: hex digits read so far and their value.
    Hex(u8, u32),
}

/// The reading state after the bytes consumed so far: inside an escape or not, and whether
/// the last character was a letter or digit.
#[derive(Debug, Clone, Copy)]
struct Edge {
    esc: Esc,
    word: bool,
}

impl Edge {
    const START: Edge = Edge {
        esc: Esc::Out,
        word: false,
    };

    fn advance(&mut self, mode: Mode, bytes: &[u8]) {
        match mode {
            Mode::Text => {
                if let Some(&b) = bytes.last() {
                    self.word = is_word(b);
                }
            }
            Mode::Json => bytes.iter().for_each(|&b| self.step(b)),
        }
    }

    fn step(&mut self, b: u8) {
        match self.esc {
            Esc::Out if b == b'\\' => self.esc = Esc::Backslash,
            Esc::Out => self.word = is_word(b),
            Esc::Backslash if b == b'u' => self.esc = Esc::Hex(0, 0),
            // `\"`, `\\`, `\/` and the control escapes: none is a letter or digit.
            Esc::Backslash => *self = Edge::START,
            Esc::Hex(n, v) => match char::from(b).to_digit(16) {
                Some(d) if n == 3 => {
                    let c = v * 16 + d;
                    self.esc = Esc::Out;
                    self.word = u8::try_from(c).is_ok_and(is_word);
                }
                Some(d) => self.esc = Esc::Hex(n + 1, v * 16 + d),
                // Not an escape after all (the text is not JSON): read the byte afresh.
                None => {
                    self.esc = Esc::Out;
                    self.step(b);
                }
            },
        }
    }
}

/// Is the character starting `rest` a letter or digit? `None` when more bytes are needed to
/// tell (an escape cut short at the end of the input, or no byte at all).
fn starts_with_word(mode: Mode, rest: &[u8]) -> Option<bool> {
    match (mode, rest) {
        (_, []) => None,
        (Mode::Json, [b'\\', tail @ ..]) => match tail {
            [] => None,
            [b'u', hex @ ..] => {
                let hex = hex.get(..4).unwrap_or(hex);
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Some(false);
                }
                if hex.len() < 4 {
                    return None;
                }
                let v = hex
                    .iter()
                    .filter_map(|&h| char::from(h).to_digit(16))
                    .fold(0u32, |v, d| v * 16 + d);
                Some(u8::try_from(v).is_ok_and(is_word))
            }
            _ => Some(false),
        },
        (_, [b, ..]) => Some(is_word(*b)),
    }
}

/// The stand-ins of one request and their originals, compiled for search.
#[derive(Debug)]
pub struct RestoreSet {
    ac: AhoCorasick,
    originals: Vec<Vec<u8>>,
    /// Per pattern: must the byte before / after be a non-word byte.
    bounded: Vec<(bool, bool)>,
    /// The stand-ins, to test held-back suffixes against.
    stand_ins: Vec<Vec<u8>>,
    /// Bytes a stand-in may start with: most positions are ruled out with one lookup.
    starts: [bool; 256],
    longest: usize,
    /// Seals restored thinking blocks' signatures (see `thinking`); without it thinking is
    /// left as the provider wrote it.
    seal: Option<SealKey>,
    /// Thinking blocks of this request whose restore stopped short of the end (the edits
    /// bound) or that could not be sealed and were left unrestored.
    thinking_cut_short: AtomicU32,
}

impl RestoreSet {
    /// Compiles `(stand_in, original)` pairs. `None` when there are none (nothing to restore)
    /// or the automaton cannot be built.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Arc<RestoreSet>> {
        RestoreSet::sealing(pairs, None)
    }

    /// [`RestoreSet::new`] that also restores signed thinking, sealing each changed block's
    /// signature under `seal` (none: thinking is left as the provider wrote it).
    pub fn sealing<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        seal: Option<SealKey>,
    ) -> Option<Arc<RestoreSet>> {
        let (mut stand_ins, mut originals) = (Vec::new(), Vec::new());
        for (s, o) in pairs {
            stand_ins.push(s.as_bytes().to_vec());
            originals.push(o.as_bytes().to_vec());
        }
        if stand_ins.is_empty() || stand_ins.iter().any(Vec::is_empty) {
            return None;
        }
        let ac = automaton(&stand_ins)?;
        let word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        let bounded = stand_ins
            .iter()
            .map(|s| (word(s.first()), word(s.last())))
            .collect();
        let mut starts = [false; 256];
        for s in &stand_ins {
            if let Some(&b) = s.first() {
                starts[usize::from(b)] = true;
            }
        }
        let longest = stand_ins.iter().map(Vec::len).max().unwrap_or(0);
        Some(Arc::new(RestoreSet {
            ac,
            originals,
            bounded,
            stand_ins,
            starts,
            longest,
            seal,
            thinking_cut_short: AtomicU32::new(0),
        }))
    }

    /// The key thinking signatures are sealed under, when thinking is restored.
    pub fn seal_key(&self) -> Option<&SealKey> {
        self.seal.as_ref()
    }

    /// Thinking blocks not restored to their end: the edits bound was reached, or the seal
    /// could not be made. The stand-ins past that point reached the client as they are.
    pub fn thinking_cut_short(&self) -> u32 {
        self.thinking_cut_short.load(Ordering::Relaxed)
    }

    pub(super) fn note_cut_short(&self) {
        self.thinking_cut_short.fetch_add(1, Ordering::Relaxed);
    }

    /// The most bytes a [`Restorer`] ever holds back: the longest stand-in, and in JSON text
    /// the start of an escape after it that decides its boundary (`\u004`).
    pub fn longest(&self) -> usize {
        self.longest + ESCAPE_LOOKAHEAD
    }

    /// Restores a whole text at once, read as JSON text (a raw body, an event's data).
    pub fn restore_all(self: &Arc<Self>, text: &[u8]) -> Vec<u8> {
        self.restore_with(text, Mode::Json)
    }

    /// Restores a whole text at once, read as `mode` says.
    pub fn restore_with(self: &Arc<Self>, text: &[u8], mode: Mode) -> Vec<u8> {
        let mut r = Restorer::with_mode(self.clone(), mode);
        let mut out = r.push(text);
        r.finish_into(&mut out);
        out
    }

    /// Could `text` hold a stand-in at all? One pass of the automaton, for skipping the many
    /// strings of a document that hold none.
    pub fn may_hold(&self, text: &[u8]) -> bool {
        self.ac.is_match(text)
    }

    /// Whether `tail` is a proper prefix of some stand-in (so more input could complete it).
    fn could_start(&self, tail: &[u8]) -> bool {
        tail.first().is_some_and(|&b| self.starts[usize::from(b)])
            && self
                .stand_ins
                .iter()
                .any(|s| s.len() > tail.len() && s.starts_with(tail))
    }
}

/// Automata this worker built last, by their stand-ins: an agent's turn resends the entities
/// of every earlier turn, so consecutive requests of a conversation draw the same stand-ins.
const AUTOMATA_KEPT: usize = 4;
/// An automaton is kept only when it and its stand-ins weigh at most this.
const AUTOMATON_KEPT_MAX_BYTES: usize = 64 * 1024;

thread_local! {
    static AUTOMATA: crate::recent::Recent<Option<AhoCorasick>, AUTOMATA_KEPT> =
        const { crate::recent::Recent::new(AUTOMATON_KEPT_MAX_BYTES) };
}

/// The automaton over `stand_ins` (a clone shares it), kept for the next request with the
/// same stand-ins: building it was 6% of a 300 KB PII request's CPU (perf), for the few KB
/// of answer it searches.
fn automaton(stand_ins: &[Vec<u8>]) -> Option<AhoCorasick> {
    let mut key = Vec::with_capacity(stand_ins.iter().map(|s| s.len() + 4).sum());
    for s in stand_ins {
        // Length-prefixed: `ab`,`c` and `a`,`bc` are different sets.
        key.extend_from_slice(&u32::try_from(s.len()).ok()?.to_le_bytes());
        key.extend_from_slice(s);
    }
    AUTOMATA.with(|kept| {
        kept.get_or(
            &key,
            |ac| ac.as_ref().map_or(0, AhoCorasick::memory_usage),
            || {
                // A contiguous NFA, not the DFA the builder picks for a few patterns: the DFA
                // took several times as long to build, and the prefilter does most of the
                // search of a few KB either way.
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(stand_ins)
                    .ok()
            },
        )
    })
}

/// An ASCII letter or digit: a stand-in glued to one is part of a longer word. The detector
/// only substitutes entities that pass the same test (`detect::restorable`; a match glued to a
/// word is widened to the word), so whatever was substituted is restored.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// The streaming state for one text stream (one content block, one tool call's arguments).
#[derive(Debug)]
pub struct Restorer {
    set: Arc<RestoreSet>,
    mode: Mode,
    pending: Vec<u8>,
    /// The reading state at the start of `pending` (for the word-boundary check).
    edge: Edge,
    /// What undoes the restore, when recording (boxed: most restorers do not record).
    record: Option<Box<Record>>,
}

/// What a recording restorer did: its edits in output order, the bytes and the digest of
/// what it wrote, and how much more its edits may take.
struct Record {
    /// `(offset in the output where the original starts, pattern)`.
    edits: Vec<(usize, usize)>,
    written: usize,
    digest: ring::digest::Context,
    /// Encoded bytes the edits may still take (see [`edit_cost`]).
    budget: usize,
    /// A stand-in was left as it is for want of budget: nothing after it is restored.
    full: bool,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("edits", &self.edits.len())
            .field("written", &self.written)
            .field("full", &self.full)
            .finish()
    }
}

impl Record {
    /// May pattern `p` be restored at `at` in the output? Books it when so.
    fn take(&mut self, at: usize, p: usize, stand_in_len: usize) -> bool {
        let cost = edit_cost(stand_in_len);
        if self.full || u32::try_from(at).is_err() || cost > self.budget {
            self.full = true;
            return false;
        }
        self.budget -= cost;
        self.edits.push((at, p));
        true
    }
}

/// One restore a recording restorer made: at `at` of its output, `original_len` bytes of
/// original stand where the provider wrote `stand_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<'a> {
    /// Offset in the restored text.
    pub at: usize,
    /// Length of the original written there.
    pub original_len: usize,
    /// What the provider wrote there.
    pub stand_in: &'a [u8],
}

impl Restorer {
    /// A restorer for plain text, with nothing held back.
    pub fn new(set: Arc<RestoreSet>) -> Restorer {
        Restorer::with_mode(set, Mode::Text)
    }

    /// A restorer for text read as `mode` says, with nothing held back.
    pub fn with_mode(set: Arc<RestoreSet>, mode: Mode) -> Restorer {
        Restorer {
            set,
            mode,
            pending: Vec::new(),
            edge: Edge::START,
            record: None,
        }
    }

    /// A restorer that records how to undo what it restores (see [`Restorer::edits`]), its
    /// edits taking at most `budget` encoded bytes; past that it restores nothing more.
    pub fn recording(set: Arc<RestoreSet>, mode: Mode, budget: usize) -> Restorer {
        let mut r = Restorer::with_mode(set, mode);
        r.record = Some(Box::new(Record {
            edits: Vec::new(),
            written: 0,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            budget,
            full: false,
        }));
        r
    }

    /// The restores made so far, in output order (none when not recording).
    pub fn edits(&self) -> Vec<Edit<'_>> {
        let Some(r) = &self.record else {
            return Vec::new();
        };
        r.edits
            .iter()
            .map(|&(at, p)| Edit {
                at,
                original_len: self.set.originals.get(p).map_or(0, Vec::len),
                stand_in: self.set.stand_ins.get(p).map_or(&[][..], Vec::as_slice),
            })
            .collect()
    }

    /// Has a recording restorer restored anything?
    pub fn changed(&self) -> bool {
        self.record.as_ref().is_some_and(|r| !r.edits.is_empty())
    }

    /// A recording restorer left a stand-in as it was for want of budget.
    pub fn cut_short(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.full)
    }

    /// SHA-256 of everything a recording restorer wrote so far.
    pub fn digest(&self) -> Option<[u8; 32]> {
        let d = self.record.as_ref()?.digest.clone().finish();
        d.as_ref().try_into().ok()
    }

    /// Feeds `input` and returns what can be written now.
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + self.pending.len());
        self.push_into(input, &mut out);
        out
    }

    /// Feeds `input`, appending what can be written now to `out`.
    pub fn push_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        self.run(out, false);
    }

    /// Ends the stream: everything held back is written, restored where it is a stand-in.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// [`Restorer::finish`] appending to `out`. The restorer is empty afterwards and may be
    /// reused for a new stream.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        self.run(out, true);
        self.edge = Edge::START;
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    fn run(&mut self, out: &mut Vec<u8>, last: bool) {
        let buf = std::mem::take(&mut self.pending);
        let (set, mode) = (&self.set, self.mode);
        let record = &mut self.record;
        let start = out.len();
        // `done`: input up to here is written. `floor`: end of the last match looked at,
        // accepted or not; the whole-text search would resume there, so must we. `edge`: the
        // reading state before `buf[read]`.
        let (mut done, mut floor, mut read) = (0usize, 0usize, 0usize);
        let mut edge = self.edge;
        let mut cut = None;
        for m in set.ac.find_iter(&buf) {
            let (s, e, p) = (m.start(), m.end(), m.pattern().as_usize());
            let (need_before, need_after) = set.bounded.get(p).copied().unwrap_or((false, false));
            edge.advance(mode, buf.get(read..s).unwrap_or_default());
            read = s;
            let after = starts_with_word(mode, buf.get(e..).unwrap_or_default());
            if need_after && after.is_none() && !last {
                // The next character decides; keep the match (and what precedes it is written).
                cut = Some(s);
                break;
            }
            // A match that starts inside an escape is part of the escape, not a stand-in.
            let before_ok = edge.esc == Esc::Out && !(need_before && edge.word);
            let after_ok = !need_after || after != Some(true);
            if before_ok && after_ok {
                out.extend_from_slice(buf.get(done..s).unwrap_or_default());
                done = s;
                let take = match record.as_deref_mut() {
                    None => true,
                    Some(r) => r.take(r.written + (out.len() - start), p, e - s),
                };
                // Not taken: the stand-in stays in `buf` and goes out as it is.
                if take {
                    out.extend_from_slice(set.originals.get(p).map_or(&[][..], Vec::as_slice));
                    done = e;
                }
            }
            floor = e;
        }
        let hold = match cut {
            Some(s) => s,
            None if last => buf.len(),
            None => {
                let from = floor.max(buf.len().saturating_sub(set.longest.saturating_sub(1)));
                (from..buf.len())
                    .find(|&i| set.could_start(&buf[i..]))
                    .unwrap_or(buf.len())
            }
        };
        let hold = hold.max(done);
        out.extend_from_slice(buf.get(done..hold).unwrap_or_default());
        // The reading state where the held-back part starts, for the next boundary check.
        edge.advance(mode, buf.get(read..hold).unwrap_or_default());
        self.edge = edge;
        if let Some(r) = record.as_deref_mut() {
            let wrote = out.get(start..).unwrap_or_default();
            r.digest.update(wrote);
            r.written += wrote.len();
        }
        self.pending = buf.get(hold..).map(<[u8]>::to_vec).unwrap_or_default();
    }
}
/// Encoded bytes of one edit whose stand-in is `stand_in_len` bytes: offset (u32), the
/// original's length (u16), the stand-in's length (u16) and the stand-in (a thinking
/// block's seal carries them; the restorer books what they will take).
pub(super) fn edit_cost(stand_in_len: usize) -> usize {
    8 + stand_in_len
}
