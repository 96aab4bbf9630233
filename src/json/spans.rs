//! Where a validated body's long strings and containers end: noted by the scanning parser when
//! the body is inspected at admission, and read back by the fast reader while the same body is
//! translated, so the translation crosses each long string in one step instead of scanning it
//! again, and takes a long value it only carries (a tool's schema, `tools` whole) as it is.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Shortest string token noted (quotes included): one mask crosses a shorter one anyway, and
/// the notes stay small (at most 12 bytes per 64 of body).
pub const MIN_NOTED: usize = 64;

/// One noted token: a string's opening quote and the byte after its closing quote, and
/// whether it holds an escape; or an array's or object's opening bracket and the byte after
/// its closing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) escaped: bool,
    /// A string that may hold a `\u` escape (false: none of its escapes is one).
    pub(super) unicode: bool,
    pub(super) container: bool,
}

/// The long string tokens of one inspected body, in order. A cache beside what the body says,
/// not part of it: two inspections compare equal whatever their notes.
#[derive(Clone, Default)]
pub struct StringSpans {
    spans: Option<Arc<[Span]>>,
    /// Whether the noted body holds the thought-signature separator
    /// (`seal::SIGNATURE_SEPARATOR`), when the notes know: the inspection that took them
    /// searched for it, and a splice that adds none keeps the answer (see
    /// [`StringSpans::spliced`]). An inspection of the body with these notes gives it instead of
    /// searching the whole body again.
    separator: Option<bool>,
}

impl StringSpans {
    pub(super) fn new(spans: Vec<Span>) -> Self {
        Self {
            spans: (!spans.is_empty()).then(|| spans.into()),
            separator: None,
        }
    }

    /// These notes, knowing whether their body holds the separator.
    pub(super) fn knowing_separator(self, holds: bool) -> Self {
        Self {
            separator: Some(holds),
            ..self
        }
    }

    /// How many tokens are noted.
    pub fn len(&self) -> usize {
        self.spans.as_deref().map_or(0, <[Span]>::len)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` notes the same tokens, each as this does (inspections compare equal
    /// whatever their notes: tests compare the notes with this).
    pub fn same_notes(&self, other: &StringSpans) -> bool {
        self.each() == other.each()
    }
}

/// One token of a body replaced by another in a new body: where it was, where it is now, and
/// for a string token written, whether it holds an escape (`None`: a bare token, a number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// The token's span in the old body.
    pub before: Range<usize>,
    /// Its replacement's span in the new body.
    pub after: Range<usize>,
    /// `Some(escaped)` when the replacement is a string token.
    pub escaped: Option<bool>,
}

impl StringSpans {
    /// The notes of the new body that `splices` (in body order, apart, each a whole token)
    /// made from the noted one: an untouched string moves with the bytes before it, a noted
    /// string replaced by a string is noted where and as it is now, a container's brackets
    /// each move with the bytes before them, anything else is dropped.
    /// Splices out of order or overlapping give no notes: a note is trusted by every reader,
    /// and none is better than a wrong one.
    ///
    /// `new` is the new body, which the caller vouches `splices` made: every byte of it
    /// outside the `after` ranges (in order, apart) is the old body's, in order. A body
    /// without the signature separator keeps that answer when no separator lies across a
    /// replacement or its edges in `new`: a PII request's second inspection then searches a
    /// few bytes around each stand-in instead of the whole body.
    pub fn spliced(&self, splices: &[Splice], new: &[u8]) -> StringSpans {
        let Some(spans) = self.spans.as_deref() else {
            return StringSpans::default();
        };
        let ordered = splices
            .windows(2)
            .all(|w| w[0].before.end <= w[1].before.start)
            && splices.iter().all(|s| s.before.start <= s.before.end);
        if !ordered {
            return StringSpans::default();
        }
        let mut out = Vec::with_capacity(spans.len());
        let mut next = splices.iter().peekable();
        // Where the bytes after the last splice passed moved to: new = old + after - before.
        let (mut before, mut after) = (0usize, 0usize);
        for span in spans {
            let (start, end) = (span.start as usize, span.end as usize);
            if span.container {
                // Its brackets move with the bytes before each; a splice over either drops it.
                let close = end.checked_sub(1).and_then(|close| moved(splices, close));
                if let (Some(start), Some(close)) = (moved(splices, start), close) {
                    if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(close + 1)) {
                        out.push(Span {
                            start,
                            end,
                            escaped: false,
                            unicode: false,
                            container: true,
                        });
                    }
                }
                continue;
            }
            while let Some(s) = next.next_if(|s| s.before.end <= start) {
                (before, after) = (s.before.end, s.after.end);
            }
            let moved = match next.peek() {
                // A string written in its place: any escape it holds may be a `\u`.
                Some(s) if s.before.start < end => match s.escaped {
                    Some(escaped) if s.before == (start..end) => {
                        Some((s.after.start, s.after.end, escaped, escaped))
                    }
                    _ => None,
                },
                _ => (start - before)
                    .checked_add(after)
                    .zip((end - before).checked_add(after))
                    .map(|(a, b)| (a, b, span.escaped, span.unicode)),
            };
            let Some((start, end, escaped, unicode)) = moved else {
                continue;
            };
            if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) {
                out.push(Span {
                    start,
                    end,
                    escaped,
                    unicode,
                    container: false,
                });
            }
        }
        let separator =
            (self.separator == Some(false) && none_across(splices, new)).then_some(false);
        StringSpans {
            separator,
            ..StringSpans::new(out)
        }
    }
}

/// Whether no signature separator in `new` overlaps a replacement (`after`, in order) or
/// straddles one of its edges: any other separator in `new` lies within bytes copied whole
/// from the old body. False when a replacement is not within `new`.
fn none_across(splices: &[Splice], new: &[u8]) -> bool {
    let reach = crate::seal::SIGNATURE_SEPARATOR.len() - 1;
    splices.iter().all(|s| {
        let around =
            s.after.start.saturating_sub(reach)..s.after.end.saturating_add(reach).min(new.len());
        new.get(s.after.clone()).is_some()
            && new
                .get(around)
                .is_some_and(|w| crate::seal::find_signature_separator(w).is_none())
    })
}

/// Where byte `x` of a body is after `splices` (ordered, apart), unless one of them replaced
/// it.
fn moved(splices: &[Splice], x: usize) -> Option<usize> {
    let k = splices.partition_point(|s| s.before.end <= x);
    if splices.get(k).is_some_and(|s| s.before.start <= x) {
        return None;
    }
    match k.checked_sub(1).and_then(|k| splices.get(k)) {
        Some(s) => (x - s.before.end).checked_add(s.after.end),
        None => Some(x),
    }
}

impl StringSpans {
    /// The notes, in body order.
    pub(super) fn each(&self) -> &[Span] {
        self.spans.as_deref().unwrap_or_default()
    }
}

impl PartialEq for StringSpans {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StringSpans {}

impl fmt::Debug for StringSpans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StringSpans({})", self.len())
    }
}

/// The noted body's address and length, its notes, and whether it holds the separator when
/// the notes know.
type Noted = Option<(usize, usize, Arc<[Span]>, Option<bool>)>;

thread_local! {
    /// The body whose notes this thread's readers may use (its address and length), set by
    /// [`with_notes`] for the length of one call.
    static NOTED: RefCell<Noted> = const { RefCell::new(None) };
    /// Tokens this thread's readers crossed by a note (see [`notes_used`]).
    static USED: Cell<u64> = const { Cell::new(0) };
}

/// How many tokens (strings, containers) this thread's readers crossed by a note so far: a test's way to
/// tell that the notes did the work.
pub fn notes_used() -> u64 {
    USED.with(Cell::get)
}

/// Runs `f` with `spans` (from inspecting `body`) known to every fast read of `body`, or of a
/// slice of it, on this thread. Reads of other text do not see them. The notes are dropped
/// when `f` returns (or unwinds), so they never outlive the borrow of `body`.
pub fn with_notes<R>(body: &[u8], notes: &StringSpans, f: impl FnOnce() -> R) -> R {
    let Some(spans) = notes.spans.clone() else {
        return f();
    };
    struct Restore(Noted);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            NOTED.with(|n| *n.borrow_mut() = previous);
            forget_crossed();
        }
    }
    let noted = (body.as_ptr() as usize, body.len(), spans, notes.separator);
    let previous = NOTED.with(|n| n.replace(Some(noted)));
    // What a scanner crossed before is not said of this body (nor, below, after it).
    forget_crossed();
    let _restore = Restore(previous);
    f()
}

/// Where `text` starts in the body noted as `(addr, len)`, when it is that body or a slice of
/// it.
fn offset_in(text: &[u8], addr: usize, len: usize) -> Option<usize> {
    let offset = (text.as_ptr() as usize).checked_sub(addr)?;
    (offset.checked_add(text.len())? <= len).then_some(offset)
}

/// The notes for reading `text`, when it is the noted body or a slice of it.
pub(super) fn notes_for(text: &[u8]) -> Option<Known> {
    NOTED.with(|n| {
        let noted = n.borrow();
        let (addr, len, spans, separator) = noted.as_ref()?;
        let offset = offset_in(text, *addr, *len)?;
        let next = spans.partition_point(|s| (s.start as usize) < offset);
        Some(Known {
            spans: spans.clone(),
            next,
            offset,
            len: text.len(),
            // Said of the whole body only.
            separator: separator.filter(|_| offset == 0 && text.len() == *len),
        })
    })
}

/// Whether `text` is UTF-8, reading only the bytes outside the outermost notes of it (when it
/// is the noted body or a slice of it). A note vouches for its token whole, as every reader
/// trusts it: its bytes were checked by the inspection that noted them, or, moved by
/// [`StringSpans::spliced`], are those bytes or a string written from text. After a body's
/// inspection, what is left to read is its skeleton: a few hundred bytes of a 300 KB agent
/// body, where a second inspection of it read all 300 (most of that inspection's time).
pub(super) fn is_utf8(text: &[u8]) -> bool {
    let utf8 = super::utf8::valid;
    let Some(known) = notes_for(text) else {
        return simdutf8::basic::from_utf8(text).is_ok();
    };
    // A note starts at a quote or bracket and ends after one: the gaps are cut between
    // characters.
    !any_gap(text, &known, false, |gap| !utf8(gap))
}

/// Whether `needle` occurs in `text` outside its noted string tokens, when `text` is the noted
/// body or a slice of it and the needle holds no quote; else anywhere in it. A name the body
/// gives as a short string token (an item's `type`, a key) is found this way without
/// reading the long texts an agent's body is mostly made of: a long string holds it only as
/// text, never as such a token.
pub fn contains_outside_strings(text: &[u8], needle: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(needle);
    let Some(known) = notes_for(text).filter(|_| !needle.contains(&b'"')) else {
        return finder.find(text).is_some();
    };
    // A match cannot run into a token: the needle holds no quote, the token opens with one.
    any_gap(text, &known, true, |gap| finder.find(gap).is_some())
}

/// Whether `f` holds for any run of `text` outside its outermost notes (with `strings_only`,
/// outside its string notes: a noted container's inside is a run too). A note reaching past
/// the text is not this text's: what it covers in the text is read.
fn any_gap(
    text: &[u8],
    known: &Known,
    strings_only: bool,
    mut f: impl FnMut(&[u8]) -> bool,
) -> bool {
    let mut at = 0;
    for s in known.spans.get(known.next..).unwrap_or_default() {
        if strings_only && s.container {
            continue;
        }
        let (Some(start), Some(end)) = (
            (s.start as usize).checked_sub(known.offset),
            (s.end as usize).checked_sub(known.offset),
        ) else {
            continue;
        };
        if start >= known.len {
            break;
        }
        // Inside a note already passed, or reaching past the text.
        if start < at || end > known.len {
            continue;
        }
        if text.get(at..start).is_some_and(&mut f) {
            return true;
        }
        at = end;
    }
    text.get(at..).is_some_and(f)
}

/// A reader's walk through the notes: string tokens are asked for in order, so the next one
/// is nearly always the one asked for.
pub(super) struct Known {
    spans: Arc<[Span]>,
    next: usize,
    /// Where the text read starts in the noted body.
    offset: usize,
    /// The length of the text read: a note that ends past it is not this text's.
    len: usize,
    /// Whether the text read holds the signature separator, when it is the whole noted body
    /// and its notes know.
    separator: Option<bool>,
}

impl Known {
    /// Whether the text read holds the signature separator, when the notes know.
    pub(super) fn separator(&self) -> Option<bool> {
        self.separator
    }

    /// The string token opening at `at` (in the text read): where it ends, whether it holds
    /// an escape and whether one may be a `\u`, when it is noted.
    #[inline]
    pub(super) fn end_of(&mut self, at: usize) -> Option<(usize, bool, bool)> {
        self.take(at, false)
    }

    /// The array or object opening at `at` (in the text read): where it ends, when noted.
    #[inline]
    pub(super) fn container_end(&mut self, at: usize) -> Option<usize> {
        self.take(at, true).map(|s| s.0)
    }

    /// The note of the token of that kind opening at `at`: its end (in the text read),
    /// whether it holds an escape and whether one may be a `\u`.
    #[inline]
    fn take(&mut self, at: usize, container: bool) -> Option<(usize, bool, bool)> {
        let abs = at.checked_add(self.offset)?;
        // A reader that went back (a restart) looks the place up again.
        if self
            .next
            .checked_sub(1)
            .and_then(|p| self.spans.get(p))
            .is_some_and(|s| s.start as usize >= abs)
        {
            self.next = self.spans.partition_point(|s| (s.start as usize) < abs);
        }
        // Notes inside a container crossed in one step are passed here, one at a time.
        while self
            .spans
            .get(self.next)
            .is_some_and(|s| (s.start as usize) < abs)
        {
            self.next += 1;
        }
        let s = self.spans.get(self.next)?;
        if s.start as usize != abs || s.container != container {
            return None;
        }
        let end = (s.end as usize)
            .checked_sub(self.offset)
            .filter(|&end| end <= self.len)?;
        self.next += 1;
        USED.with(|n| n.set(n.get() + 1));
        Some((end, s.escaped, s.unicode))
    }
}

thread_local! {
    /// The string token this thread's scanner crossed last by its note (address and length)
    /// and whether it may hold a `\u` escape.
    static CROSSED: Cell<(usize, usize, bool)> = const { Cell::new((0, 0, true)) };
}

/// Records that `token` (a string token, quotes included) was crossed by its note.
#[inline]
pub(super) fn crossed(token: &[u8], unicode: bool) {
    CROSSED.with(|c| c.set((token.as_ptr() as usize, token.len(), unicode)));
}

fn forget_crossed() {
    CROSSED.with(|c| c.set((0, 0, true)));
}

/// Whether the string token `token` (quotes included) is known to hold no `\u` escape: it is
/// the very token (same address, same length) a reader crossed last by its note while this
/// body is noted, in the noted body, and the note says so. A reader that decodes strings then
/// need not search them for one. (The record is forgotten when a body's notes are given and
/// taken back, and must lie in the body noted now: memory freed and used again for other
/// text is never taken for the token crossed.)
pub fn noted_without_unicode(token: &str) -> bool {
    CROSSED.with(Cell::get) == (token.as_ptr() as usize, token.len(), false)
        && NOTED.with(|n| {
            n.try_borrow().is_ok_and(|noted| {
                noted
                    .as_ref()
                    .and_then(|(addr, len, _, _)| offset_in(token.as_bytes(), *addr, *len))
                    .is_some()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{de, inspect_request};

    fn body() -> String {
        let long = |c: &str| c.repeat(40);
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}},{{"role":"assistant","content":"{}"}}],"note":"{}"}}"#,
            long("line\\n"),
            long("quote \\\" é "),
            long("plain "),
        )
    }

    /// xorshift64*, so a failure reproduces from its seed.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A string token's inside: short or long, plain or with escapes and non-ASCII.
    fn inside(x: &mut u64) -> String {
        const PIECES: &[&str] = &[
            "plain ", "line\\n", "q\\\"", "é", "\\u00e9", "0", "tab\\t", "__rw", "ts__",
        ];
        let n = [0, 3, 9, 30][(next(x) % 4) as usize] + (next(x) % 8) as usize;
        (0..n)
            .map(|_| PIECES[(next(x) % PIECES.len() as u64) as usize])
            .collect()
    }

    #[test]
    fn spliced_notes_are_where_a_fresh_inspection_finds_them() {
        let (mut checked, mut moved, mut rewritten) = (0, 0, 0);
        // Bodies whose splices added a signature separator, and whose answer the notes gave.
        let (mut separator_added, mut separator_known) = (0, 0);
        for seed in 1..1_500u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            // A body of turns whose contents are string tokens or numbers, their spans kept.
            let mut body = String::from(r#"{"model":"m","messages":["#);
            let mut tokens = Vec::new();
            for i in 0..1 + next(&mut x) % 12 {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(r#"{"role":"user","content":"#);
                let start = body.len();
                if next(&mut x).is_multiple_of(6) {
                    body.push_str(&(next(&mut x) % 100_000).to_string());
                } else {
                    body.push_str(&format!("\"{}\"", inside(&mut x)));
                }
                tokens.push(start..body.len());
                body.push('}');
            }
            body.push_str(r#"],"note":""#);
            body.push_str(&inside(&mut x));
            body.push_str(r#""}"#);
            let old = inspect_request(body.as_bytes()).unwrap();
            // Some tokens replaced by strings (any length, escaped or not) or bare numbers.
            let mut new = String::new();
            let mut splices = Vec::new();
            let mut at = 0;
            let chosen: Vec<_> = tokens
                .iter()
                .filter(|_| next(&mut x).is_multiple_of(3))
                .collect();
            for t in chosen {
                new.push_str(&body[at..t.start]);
                let start = new.len();
                let escaped = if next(&mut x).is_multiple_of(5) {
                    new.push_str(&(next(&mut x) % 1_000).to_string());
                    None
                } else {
                    let text = inside(&mut x);
                    new.push_str(&format!("\"{text}\""));
                    Some(text.contains('\\'))
                };
                splices.push(Splice {
                    before: t.clone(),
                    after: start..new.len(),
                    escaped,
                });
                at = t.end;
            }
            new.push_str(&body[at..]);
            let fresh = inspect_request(new.as_bytes()).unwrap();
            let derived = old.strings.spliced(&splices, new.as_bytes());
            let derived_spans = derived.spans.as_deref().unwrap_or_default();
            // Every note is right: a reader trusts it.
            assert!(derived.hold_in(new.as_bytes()), "seed {seed}: {new}");
            for span in derived_spans {
                checked += 1;
                if splices.iter().any(|s| s.after.start == span.start as usize) {
                    rewritten += 1;
                } else {
                    moved += 1;
                }
            }
            // Every string a fresh inspection notes and no splice wrote is noted still, and
            // every container no splice was made inside (whether a container is noted
            // depends only on what it holds).
            for span in fresh.strings.spans.as_deref().unwrap_or_default() {
                let touched = splices.iter().any(|s| {
                    s.after.start > span.start as usize && s.after.end < span.end as usize
                });
                if span.container && touched {
                    continue;
                }
                if splices.iter().all(|s| s.after.start != span.start as usize) {
                    assert!(
                        derived_spans.iter().any(|d| d.start == span.start
                            && d.end == span.end
                            && d.escaped == span.escaped
                            && d.container == span.container),
                        "seed {seed}: {new}"
                    );
                }
            }
            // Inspected with them, the new body reads as without them, and is noted alike.
            let read = with_notes(new.as_bytes(), &derived, || inspect_request(new.as_bytes()));
            let read = read.unwrap();
            assert_eq!(read, fresh, "seed {seed}");
            assert_eq!(read.may_hold_seal, fresh.may_hold_seal);
            assert_eq!(
                read.may_carry_signature, fresh.may_carry_signature,
                "seed {seed}: {new}"
            );
            separator_added += usize::from(!old.may_carry_signature && fresh.may_carry_signature);
            separator_known += usize::from(derived.separator.is_some());
            assert!(read.strings.len() >= fresh.strings.len(), "seed {seed}");
        }
        assert!(
            moved > 1_500 && rewritten > 400,
            "{checked} {moved} {rewritten}"
        );
        assert!(
            separator_added > 20 && separator_known > 300,
            "{separator_added} {separator_known}"
        );
    }

    #[test]
    fn utf8_is_read_outside_the_outermost_notes_and_only_there() {
        // Long strings (noted), a long container (noted), and short strings and keys (not).
        let mut body = format!(
            r#"{{"model":"m","tools":[{}],"messages":[{{"role":"user","content":"é {}"}}],"note":"é","n":1}}"#,
            r#"{"name":"t","description":"é é"},"#.repeat(12) + "1",
            "line\\n".repeat(20),
        )
        .into_bytes();
        let notes = inspect_request(&body).unwrap().strings;
        let each: Vec<(usize, usize)> = notes
            .each()
            .iter()
            .map(|s| (s.start as usize, s.end as usize))
            .collect();
        assert!(each.len() >= 2, "{each:?}");
        let ranges = [(0, body.len()), (1, body.len() - 3), (40, 120)];
        let (mut outside, mut inside) = (0, 0);
        for p in 0..body.len() {
            // In a note that lies in the text read (a slice sees only those).
            let noted_in = |a: usize, b: usize| {
                each.iter()
                    .any(|&(s, e)| a <= s && e <= b && (s..e).contains(&p))
            };
            let noted = noted_in(0, body.len());
            let was = body[p];
            // A byte that is never valid UTF-8, written where `body` is (the notes are for
            // its address).
            body[p] = 0xff;
            for &(a, b) in &ranges {
                if !(a..b).contains(&p) {
                    continue;
                }
                let text = &body[a..b];
                let read = with_notes(&body, &notes, || is_utf8(text));
                // Inside a note the bytes are vouched for: not read again.
                assert_eq!(read, noted_in(a, b), "byte {p} of {a}..{b}");
                assert!(!is_utf8(text), "byte {p} without notes");
            }
            if noted {
                inside += 1;
            } else {
                outside += 1;
            }
            body[p] = was;
        }
        assert!(outside > 40 && inside > 400, "{outside} {inside}");
        assert!(with_notes(&body, &notes, || is_utf8(&body)));
    }

    #[test]
    fn a_name_is_searched_for_outside_the_noted_strings_only() {
        // The name as text in long strings (noted), in a long container (noted: its inside
        // is still searched), and as a short string token.
        let long = format!("see item_reference {}", "x".repeat(80));
        let body = |token: &str| {
            format!(
                r#"{{"model":"m","input":[{}{{"type":"message","content":"{long}"}},{{"type":"{token}","id":"a"}}],"x":"{long}"}}"#,
                r#"{"type":"message","role":"user","content":"hi"},"#.repeat(8)
            )
        };
        for (token, found) in [("item_reference", true), ("item_referencf", false)] {
            let body = body(token);
            let body = body.as_bytes();
            let notes = inspect_request(body).unwrap().strings;
            assert!(
                notes.each().iter().any(|s| s.container),
                "the input is noted"
            );
            assert!(notes.each().iter().filter(|s| !s.container).count() >= 2);
            let at = body.windows(8).position(|w| w == br#""input":"#).unwrap() + 8;
            let end = body.windows(5).position(|w| w == br#"],"x""#).unwrap() + 1;
            // The body, a slice to its end, the input, and a slice inside the input (notes
            // reaching past a slice are not used: what they cover in it is read).
            for text in [body, &body[at..], &body[at..end], &body[at + 5..end - 3]] {
                let seen = with_notes(body, &notes, || {
                    contains_outside_strings(text, b"item_reference")
                });
                assert_eq!(seen, found, "{token}");
                // Without notes (or with a needle holding a quote) the whole text is read.
                assert!(contains_outside_strings(text, b"item_reference"));
            }
            let quoted = with_notes(body, &notes, || {
                contains_outside_strings(body, b"see item_reference \"")
            });
            assert!(!quoted, "no such text");
            let quoted = with_notes(body, &notes, || {
                contains_outside_strings(body, b"}],\"x\":\"see")
            });
            assert!(quoted, "a needle with a quote is looked for everywhere");
        }
    }

    #[test]
    fn splices_out_of_order_or_overlapping_give_no_notes() {
        let text = body();
        let info = inspect_request(text.as_bytes()).unwrap();
        let s = |a: usize, b: usize| Splice {
            before: a..b,
            after: a..b,
            escaped: Some(false),
        };
        // Three long strings, `messages` and its two turns.
        assert_eq!(info.strings.spliced(&[], b"").len(), 6);
        assert!(info.strings.spliced(&[s(5, 9), s(1, 2)], b"").is_empty());
        assert!(info.strings.spliced(&[s(1, 6), s(5, 9)], b"").is_empty());
        assert_eq!(info.strings.spliced(&[s(1, 2), s(5, 9)], b"").len(), 6);
    }

    #[test]
    fn notes_are_used_only_for_the_noted_body_and_read_alike() {
        let text = body();
        let info = inspect_request(text.as_bytes()).unwrap();
        assert_eq!(info.strings.len(), 6, "{:?}", info.strings);
        let plain: serde_json::Value = serde_json::from_str(&text).unwrap();
        let used = notes_used();
        let read = with_notes(text.as_bytes(), &info.strings, || {
            de::from_str::<serde_json::Value>(&text).unwrap()
        });
        assert_eq!(read, plain);
        assert_eq!(notes_used() - used, 3);
        // A slice of the body (a member's value): its strings are found at their offsets.
        let at = text.find("[{").unwrap();
        let end = text.find("],").unwrap() + 1;
        let slice = &text[at..end];
        let used = notes_used();
        let read = with_notes(text.as_bytes(), &info.strings, || {
            de::from_str::<serde_json::Value>(slice).unwrap()
        });
        assert_eq!(read, plain["messages"]);
        assert_eq!(notes_used() - used, 2);
        // The same bytes in another buffer are not the noted body; nor is anything after
        // the call returns.
        let copy = text.clone();
        let used = notes_used();
        let read = with_notes(text.as_bytes(), &info.strings, || {
            de::from_str::<serde_json::Value>(&copy).unwrap()
        });
        assert_eq!(read, plain);
        de::from_str::<serde_json::Value>(&text).unwrap();
        assert_eq!(notes_used(), used);
    }

    #[test]
    fn a_string_note_says_whether_it_may_hold_a_unicode_escape_and_is_checked_for_it() {
        let long = |c: &str| c.repeat(30);
        let body = format!(
            r#"{{"model":"m","a":"{}","b":"{}","c":"{}","d":"{}"}}"#,
            long("caf\\u00e9 "),
            long("a\\\\u00e9 "),
            long("line\\n"),
            long("plain "),
        );
        let info = inspect_request(body.as_bytes()).unwrap();
        let notes = info.strings.each();
        assert_eq!(notes.len(), 4);
        let unicode: Vec<bool> = notes.iter().map(|n| n.unicode).collect();
        // `\\u00e9` is a backslash, then text.
        assert_eq!(unicode, [true, false, false, false]);
        assert!(info.strings.hold_in(body.as_bytes()));
        // A note that says there is none where there is one is wrong.
        let mut wrong: Vec<Span> = notes.to_vec();
        wrong[0].unicode = false;
        assert!(!StringSpans::new(wrong).hold_in(body.as_bytes()));
        // Saying there may be one is never wrong.
        let mut loose: Vec<Span> = notes.to_vec();
        loose.iter_mut().for_each(|n| n.unicode = true);
        assert!(StringSpans::new(loose).hold_in(body.as_bytes()));
        // A reader crossing each string by its note learns that of it, and only of it.
        let (first, second) = (notes[0], notes[1]);
        with_notes(body.as_bytes(), &info.strings, || {
            let token = |n: Span| &body[n.start as usize..n.end as usize];
            let mut s = crate::json::scan::Scanner::new(body.as_bytes(), first.start as usize);
            s.string().unwrap();
            assert!(!noted_without_unicode(token(first)));
            let mut s = crate::json::scan::Scanner::new(body.as_bytes(), second.start as usize);
            s.string().unwrap();
            assert!(noted_without_unicode(token(second)));
            // The same text elsewhere is not that token.
            let copy = token(second).to_owned();
            assert!(!noted_without_unicode(&copy));
            assert!(!noted_without_unicode(&token(second)[1..]));
        });
        // Nor is it once the notes are taken back, nor under another body's notes.
        let second_token = &body[second.start as usize..second.end as usize];
        assert!(!noted_without_unicode(second_token));
        let other = body.clone();
        with_notes(other.as_bytes(), &info.strings, || {
            assert!(!noted_without_unicode(second_token));
        });
    }

    /// A value a reader only carries (a raw value, an ignored member) is taken whole by its
    /// container's note: the same text as without notes, and the notes inside it passed.
    #[test]
    fn a_reader_takes_a_noted_container_whole() {
        #[derive(serde::Deserialize)]
        struct Request<'a> {
            #[serde(borrow)]
            tools: &'a serde_json::value::RawValue,
            #[serde(default)]
            after: Option<String>,
        }
        let schema = r#"{"type":"object","properties":{"path":{"type":"string","description":"Where the file is"}}}"#;
        let tools: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    r#"{{"name":"tool_{i}","description":"{}","input_schema":{schema}}}"#,
                    "says what it does ".repeat(i % 4 * 5)
                )
            })
            .collect();
        let text = format!(
            r#"{{"model":"m","tools":[{}],"ignored":{{"a":[{}]}},"after":"{}"}}"#,
            tools.join(","),
            tools.join(","),
            "x".repeat(100)
        );
        let info = inspect_request(text.as_bytes()).unwrap();
        let containers = info.strings.each().iter().filter(|s| s.container).count();
        assert!(containers >= 3, "{:?}", info.strings);
        assert!(info.strings.hold_in(text.as_bytes()));
        let plain: Request<'_> = de::from_str(&text).unwrap();
        let used = notes_used();
        let read: Request<'_> = with_notes(text.as_bytes(), &info.strings, || {
            de::from_str(&text).unwrap()
        });
        assert_eq!(read.tools.get(), plain.tools.get());
        assert_eq!(read.after, plain.after);
        // `tools` and `ignored` in one step each, then the long string after them.
        assert_eq!(notes_used() - used, 3);
        // A note that is wrong for the text would be trusted: `hold_in` finds it wrong.
        let mut moved = info.strings.each().to_vec();
        if let Some(c) = moved.iter_mut().find(|s| s.container) {
            c.end -= 1;
        }
        assert!(!StringSpans::new(moved).hold_in(text.as_bytes()));
    }

    /// Containers nested past the room for their notes (each holds the long string, so each
    /// is placed): the notes taken are all right, and those past the room are not taken.
    #[test]
    fn nesting_past_the_room_for_notes_leaves_every_note_right() {
        for depth in [10, 70, 120] {
            for tail in ["", r#","x""#, r#",{"k":[1,2,3]}"#] {
                let text = format!(
                    r#"{{"model":"m","n":"{}","a":{}"{}"{}{}}}"#,
                    "y".repeat(80),
                    "[".repeat(depth),
                    "z".repeat(70),
                    tail,
                    "]".repeat(depth)
                );
                let info = inspect_request(text.as_bytes()).unwrap();
                assert!(info.strings.hold_in(text.as_bytes()), "{depth} {tail}");
                let containers = info.strings.each().iter().filter(|s| s.container).count();
                let room = text.len() / 128 + 64;
                assert_eq!(containers, depth.min(room), "{depth} {tail}");
                let plain: serde_json::Value = serde_json::from_str(&text).unwrap();
                let read = with_notes(text.as_bytes(), &info.strings, || {
                    de::from_str::<serde_json::Value>(&text).unwrap()
                });
                assert_eq!(read, plain);
            }
        }
    }

    #[test]
    fn a_reader_that_goes_back_finds_its_place_again() {
        let text = body();
        let info = inspect_request(text.as_bytes()).unwrap();
        let spans = info.strings.spans.clone().unwrap();
        let mut known = Known {
            spans: spans.clone(),
            next: 0,
            offset: 0,
            len: text.len(),
            separator: None,
        };
        let starts: Vec<usize> = spans
            .iter()
            .filter(|s| !s.container)
            .map(|s| s.start as usize)
            .collect();
        for &s in starts.iter().rev().chain(&starts) {
            let (end, _, _) = known.end_of(s).unwrap();
            assert_eq!(text.as_bytes()[end - 1], b'"');
            assert!(known.end_of(s + 1).is_none());
        }
        assert!(known.end_of(0).is_none());
        // Text cut short of a noted string's end does not take the note.
        let last = *spans.iter().rfind(|s| !s.container).unwrap();
        let mut cut = Known {
            spans,
            next: 0,
            offset: 0,
            len: last.end as usize - 1,
            separator: None,
        };
        assert!(cut.end_of(last.start as usize).is_none());
    }
}
