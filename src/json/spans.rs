//! Where a validated body's long strings end: noted by the scanning parser when the body is
//! inspected at admission, and read back by the fast reader while the same body is translated,
//! so the translation crosses each long string in one step instead of scanning it again.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;

/// Shortest string token noted (quotes included): one mask crosses a shorter one anyway, and
/// the notes stay small (at most 12 bytes per 64 of body).
pub const MIN_NOTED: usize = 64;

/// One noted string token: its opening quote, the byte after its closing quote, and whether
/// it holds an escape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) escaped: bool,
}

/// The long string tokens of one inspected body, in order. A cache beside what the body says,
/// not part of it: two inspections compare equal whatever their notes.
#[derive(Clone, Default)]
pub struct StringSpans {
    spans: Option<Arc<[Span]>>,
}

impl StringSpans {
    pub(super) fn new(spans: Vec<Span>) -> Self {
        Self {
            spans: (!spans.is_empty()).then(|| spans.into()),
        }
    }

    /// How many string tokens are noted.
    pub fn len(&self) -> usize {
        self.spans.as_deref().map_or(0, <[Span]>::len)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// The noted body's address and length, and its notes.
type Noted = Option<(usize, usize, Arc<[Span]>)>;

thread_local! {
    /// The body whose notes this thread's readers may use (its address and length), set by
    /// [`with_notes`] for the length of one call.
    static NOTED: RefCell<Noted> = const { RefCell::new(None) };
    /// String tokens this thread's readers crossed by a note (see [`notes_used`]).
    static USED: Cell<u64> = const { Cell::new(0) };
}

/// How many string tokens this thread's readers crossed by a note so far: a test's way to
/// tell that the notes did the work.
pub fn notes_used() -> u64 {
    USED.with(Cell::get)
}

/// Runs `f` with `spans` (from inspecting `body`) known to every fast read of `body`, or of a
/// slice of it, on this thread. Reads of other text do not see them. The notes are dropped
/// when `f` returns (or unwinds), so they never outlive the borrow of `body`.
pub fn with_notes<R>(body: &[u8], spans: &StringSpans, f: impl FnOnce() -> R) -> R {
    let Some(spans) = spans.spans.clone() else {
        return f();
    };
    struct Restore(Noted);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            NOTED.with(|n| *n.borrow_mut() = previous);
        }
    }
    let previous = NOTED.with(|n| n.replace(Some((body.as_ptr() as usize, body.len(), spans))));
    let _restore = Restore(previous);
    f()
}

/// The notes for reading `text`, when it is the noted body or a slice of it.
pub(super) fn notes_for(text: &[u8]) -> Option<Known> {
    NOTED.with(|n| {
        let noted = n.borrow();
        let (addr, len, spans) = noted.as_ref()?;
        let at = text.as_ptr() as usize;
        let offset = at.checked_sub(*addr)?;
        if offset.checked_add(text.len())? > *len {
            return None;
        }
        let next = spans.partition_point(|s| (s.start as usize) < offset);
        Some(Known {
            spans: spans.clone(),
            next,
            offset,
            len: text.len(),
        })
    })
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
}

impl Known {
    /// The string token opening at `at` (in the text read): where it ends and whether it holds
    /// an escape, when it is noted.
    #[inline]
    pub(super) fn end_of(&mut self, at: usize) -> Option<(usize, bool)> {
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
        while self
            .spans
            .get(self.next)
            .is_some_and(|s| (s.start as usize) < abs)
        {
            self.next += 1;
        }
        let s = self.spans.get(self.next)?;
        if s.start as usize != abs {
            return None;
        }
        let end = (s.end as usize)
            .checked_sub(self.offset)
            .filter(|&end| end <= self.len)?;
        self.next += 1;
        USED.with(|n| n.set(n.get() + 1));
        Some((end, s.escaped))
    }
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

    #[test]
    fn notes_are_used_only_for_the_noted_body_and_read_alike() {
        let text = body();
        let info = inspect_request(text.as_bytes()).unwrap();
        assert_eq!(info.strings.len(), 3, "{:?}", info.strings);
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
    fn a_reader_that_goes_back_finds_its_place_again() {
        let text = body();
        let info = inspect_request(text.as_bytes()).unwrap();
        let spans = info.strings.spans.clone().unwrap();
        let mut known = Known {
            spans: spans.clone(),
            next: 0,
            offset: 0,
            len: text.len(),
        };
        let starts: Vec<usize> = spans.iter().map(|s| s.start as usize).collect();
        for &s in starts.iter().rev().chain(&starts) {
            let (end, _) = known.end_of(s).unwrap();
            assert_eq!(text.as_bytes()[end - 1], b'"');
            assert!(known.end_of(s + 1).is_none());
        }
        assert!(known.end_of(0).is_none());
        // Text cut short of a noted string's end does not take the note.
        let last = *spans.last().unwrap();
        let mut cut = Known {
            spans,
            next: 0,
            offset: 0,
            len: last.end as usize - 1,
        };
        assert!(cut.end_of(last.start as usize).is_none());
    }
}
