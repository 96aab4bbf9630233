//! The streaming restorer: stand-ins back to originals, in text that arrives in pieces.
//!
//! One Aho-Corasick automaton (leftmost-longest) over a request's stand-ins, built once per
//! request. [`Restorer::push`] writes out everything that can no longer be part of a stand-in
//! and holds back only the longest suffix that could still start one (or a stand-in that
//! ends exactly at the end of the input, until the next byte shows it is not glued to a
//! word). Text with no stand-in in flight passes straight through, so time to first token is
//! unchanged.
//!
//! Pushing any split of a text gives the same output as pushing it whole. That rests on two
//! rules the session keeps when it draws stand-ins: no stand-in contains another, and every
//! stand-in and original is escape-invariant (see `detect` and `standin`). The second rule
//! also means the restorer may run on raw JSON text, a JSON string's escaped content, or the
//! JSON text inside a JSON string (tool-call arguments): the bytes are the same in all three.
//!
//! Word boundaries: a stand-in that starts (ends) with a letter or digit is only restored when
//! the byte before (after) it is not one, so `Avery` is not restored inside `Averyl`. A letter
//! right after a backslash is a JSON escape (`\nAvery`), which counts as a boundary.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

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
}

impl RestoreSet {
    /// Compiles `(stand_in, original)` pairs. `None` when there are none (nothing to restore)
    /// or the automaton cannot be built.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Arc<RestoreSet>> {
        let (mut stand_ins, mut originals) = (Vec::new(), Vec::new());
        for (s, o) in pairs {
            stand_ins.push(s.as_bytes().to_vec());
            originals.push(o.as_bytes().to_vec());
        }
        if stand_ins.is_empty() || stand_ins.iter().any(Vec::is_empty) {
            return None;
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&stand_ins)
            .ok()?;
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
        }))
    }

    /// The most bytes a [`Restorer`] ever holds back.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Restores a whole text at once.
    pub fn restore_all(self: &Arc<Self>, text: &[u8]) -> Vec<u8> {
        let mut r = Restorer::new(self.clone());
        let mut out = r.push(text);
        r.finish_into(&mut out);
        out
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

/// An ASCII letter or digit: a stand-in glued to one is part of a longer word. The detector
/// only substitutes entities that pass the same test (`detect::restorable`), so whatever was
/// substituted is restored.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// The streaming state for one text stream (one content block, one tool call's arguments).
#[derive(Debug)]
pub struct Restorer {
    set: Arc<RestoreSet>,
    pending: Vec<u8>,
    /// The last two bytes already consumed (for the word-boundary check), oldest first.
    prev: [Option<u8>; 2],
}

impl Restorer {
    /// A restorer with nothing held back.
    pub fn new(set: Arc<RestoreSet>) -> Restorer {
        Restorer {
            set,
            pending: Vec::new(),
            prev: [None, None],
        }
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
        self.prev = [None, None];
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    fn run(&mut self, out: &mut Vec<u8>, last: bool) {
        let buf = std::mem::take(&mut self.pending);
        let set = &self.set;
        // `done`: input up to here is written. `floor`: end of the last match looked at,
        // accepted or not; the whole-text search would resume there, so must we.
        let (mut done, mut floor) = (0usize, 0usize);
        let mut cut = None;
        for m in set.ac.find_iter(&buf) {
            let (s, e, p) = (m.start(), m.end(), m.pattern().as_usize());
            let (need_before, need_after) = set.bounded.get(p).copied().unwrap_or((false, false));
            if need_after && e == buf.len() && !last {
                // The next byte decides; keep the match (and what precedes it is written).
                cut = Some(s);
                break;
            }
            let before = |i: usize| -> Option<u8> {
                match s.checked_sub(i) {
                    Some(j) => buf.get(j).copied(),
                    None => self.prev.get(2 - (i - s).min(2)).copied().flatten(),
                }
            };
            let before_ok = !need_before
                || match (before(1), before(2)) {
                    (Some(b1), b2) => !is_word(b1) || b2 == Some(b'\\'),
                    (None, _) => true,
                };
            let after_ok = !need_after || !buf.get(e).is_some_and(|&b| is_word(b));
            if before_ok && after_ok {
                out.extend_from_slice(buf.get(done..s).unwrap_or_default());
                out.extend_from_slice(set.originals.get(p).map_or(&[][..], Vec::as_slice));
                done = e;
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
        // Remember the two bytes before the held-back part, for the next boundary check.
        match hold {
            0 => {}
            1 => self.prev = [self.prev[1], buf.first().copied()],
            h => self.prev = [buf.get(h - 2).copied(), buf.get(h - 1).copied()],
        }
        self.pending = buf.get(hold..).map(<[u8]>::to_vec).unwrap_or_default();
    }
}
