//! Conversations kept per worker: what a request translation made of a long conversation (its
//! writer's state after the last element), found again by the elements' exact bytes. An
//! agent resends its whole conversation every turn, a few KB added at the end; the turn's
//! translation then starts where the last one ended and reads only what is new.
//!
//! What is kept is a function of the elements' bytes, the translation's settings and how its
//! buffers lend (all compared whole, never by a hash), and is found only under the API key it
//! was kept under (`json::with_scope`): one tenant's conversation is never another's to time.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use super::{Options, TranslateError};

/// Conversations kept per store and thread: an agent's session uses one, and a worker serves
/// a few sessions' agents at once.
pub(super) const CONVERSATIONS_KEPT: usize = 2;
/// Shortest conversation kept (its elements' bytes): below it, a translation costs about
/// what keeping and comparing it would.
pub(super) const KEPT_MIN_BYTES: usize = 4 * 1024;
/// Longest kept: elements (counted twice: the buffer they are kept in may have grown to
/// that) and state together. A thread keeps at most 2 × 4 MB per store (three: Chat →
/// Messages, Messages → Chat, and Responses to either).
pub(super) const KEPT_MAX_BYTES: usize = 4 * 1024 * 1024;

thread_local! {
    /// Translations on this thread that resumed a kept conversation (see
    /// [`kept_conversations_used`]).
    static USED: Cell<u64> = const { Cell::new(0) };
    static TICK: Cell<u64> = const { Cell::new(0) };
    /// The shortest conversation kept on this thread (see [`keeping_from`]).
    static KEEP_FROM: Cell<usize> = const { Cell::new(KEPT_MIN_BYTES) };
}

/// Runs `f` with conversations of `min` bytes or more kept: small bodies' too, for tests and
/// the fuzz targets to resume any conversation.
pub fn keeping_from<R>(min: usize, f: impl FnOnce() -> R) -> R {
    let before = KEEP_FROM.with(|k| k.replace(min.max(1)));
    let out = f();
    KEEP_FROM.with(|k| k.set(before));
    out
}

/// How many translations on this thread started where a kept conversation ended so far: a
/// test's way to tell that the kept state did the work.
pub fn kept_conversations_used() -> u64 {
    USED.with(Cell::get)
}

fn tick() -> u64 {
    TICK.with(|t| {
        t.set(t.get() + 1);
        t.get()
    })
}

/// One conversation kept: what it was kept under, its elements' bytes (the first's start to
/// the last's end), how many, and the writer's state after them.
pub(super) struct Kept<S> {
    scope: u64,
    form: u8,
    opts: Options,
    lend_from: usize,
    elements: Vec<u8>,
    count: usize,
    state: S,
    weight: usize,
    used: u64,
}

/// One form's kept conversations.
pub(super) type Store<S> = RefCell<Vec<Kept<S>>>;

/// What a translation reading a conversation knows of where it is: the settings its kept
/// state must match, and where its elements start in the body once the first is seen.
pub(super) struct Keeping<'r> {
    body: &'r [u8],
    opts: Options,
    lend_from: usize,
    scope: u64,
    /// Which of a store's forms the state is of (a store may hold more than one).
    form: u8,
    /// Where the first element starts in `body`.
    first: Option<usize>,
    /// Elements taken from a kept conversation, and the bytes they span.
    resumed: (usize, usize),
}

impl<'r> Keeping<'r> {
    /// Keeping for a translation of `body` with `opts`, its buffers lending from `lend_from`
    /// bytes (`usize::MAX`: not lending), under the scope `json::with_scope` set; None
    /// outside one, and while [`super::without_kept`] runs.
    pub(super) fn new(body: &'r [u8], opts: &Options, lend_from: usize) -> Option<Self> {
        let scope = crate::json::kept_scope()?;
        if !super::kept::kept_on() {
            return None;
        }
        Some(Keeping {
            body,
            opts: opts.clone(),
            lend_from,
            scope,
            form: 0,
            first: None,
            resumed: (0, 0),
        })
    }

    /// The kept conversation whose elements `first` (the body's first element) opens, if
    /// any: `resume` is handed its state and where its elements start in the body, and says
    /// whether it took it. How many elements it covers (0: none taken), and the bytes they
    /// span from `first`'s start.
    pub(super) fn resume<S: 'static>(
        &mut self,
        store: &'static LocalKey<Store<S>>,
        first: &str,
        resume: impl FnOnce(&S, usize) -> bool,
    ) -> (usize, usize) {
        let Some(base) = first
            .as_ptr()
            .addr()
            .checked_sub(self.body.as_ptr().addr())
            .filter(|&at| at < self.body.len())
        else {
            return (0, 0);
        };
        self.first = Some(base);
        let rest = self.body.get(base..).unwrap_or_default();
        let taken = store.with(|s| {
            let mut kept = s.try_borrow_mut().ok()?;
            let (at, k) = kept
                .iter_mut()
                .enumerate()
                .filter(|(_, k)| self.matches(k) && opens(rest, &k.elements))
                .max_by_key(|(_, k)| k.count)?;
            if !resume(&k.state, base) {
                // It would fail again: it goes.
                kept.swap_remove(at);
                return None;
            }
            k.used = tick();
            Some((k.count, k.elements.len()))
        });
        let Some(taken) = taken else {
            return (0, 0);
        };
        USED.with(|n| n.set(n.get() + 1));
        self.resumed = taken;
        taken
    }

    /// Keeping state of `form` (one of those its store holds), found only by keeping of it.
    pub(super) fn in_form(mut self, form: u8) -> Self {
        self.form = form;
        self
    }

    /// The conversation is read again from its start (nothing resumed).
    pub(super) fn restart(&mut self) {
        self.first = None;
        self.resumed = (0, 0);
    }

    fn matches<S>(&self, k: &Kept<S>) -> bool {
        k.scope == self.scope
            && k.form == self.form
            && k.lend_from == self.lend_from
            && k.opts == self.opts
    }

    /// The conversation read has `count` elements: kept (`state()` taking the writer's state,
    /// given where the elements start and end in the body) when it is long enough and has
    /// more than it resumed, in place of the one it resumed.
    pub(super) fn end<S: 'static>(
        &self,
        store: &'static LocalKey<Store<S>>,
        count: usize,
        weigh: impl Fn(&S) -> usize,
        state: impl FnOnce(usize, usize) -> Option<S>,
    ) {
        let Some(base) = self.first else {
            return;
        };
        if count <= self.resumed.0 {
            return;
        }
        let Some(end) = elements_end(self.body, base) else {
            return;
        };
        let Some(elements) = self.body.get(base..end) else {
            return;
        };
        if elements.len() < KEEP_FROM.with(Cell::get) || elements.len() > KEPT_MAX_BYTES {
            return;
        }
        let Some(state) = state(base, end) else {
            return;
        };
        let weight = elements.len().max(self.resumed.1) * 2 + weigh(&state);
        if weight > KEPT_MAX_BYTES {
            return;
        }
        let _ = store.with(|s| {
            let mut kept = s.try_borrow_mut().ok()?;
            // The conversation this one went on from gives way to it (its bytes reused: they
            // are this one's first).
            let mut bytes = Vec::new();
            if let Some(at) = kept.iter().position(|k| {
                self.matches(k) && k.count == self.resumed.0 && k.elements.len() == self.resumed.1
            }) {
                bytes = kept.swap_remove(at).elements;
            }
            if bytes.len() != self.resumed.1 || !elements.starts_with(&bytes) {
                bytes.clear();
            }
            bytes.extend_from_slice(elements.get(bytes.len()..)?);
            if kept.len() >= CONVERSATIONS_KEPT {
                let oldest = kept.iter().enumerate().min_by_key(|(_, k)| k.used)?.0;
                kept.swap_remove(oldest);
            }
            kept.push(Kept {
                scope: self.scope,
                form: self.form,
                opts: self.opts.clone(),
                lend_from: self.lend_from,
                elements: bytes,
                count,
                state,
                weight,
                used: tick(),
            });
            Some(())
        });
    }
}

/// [`Keeping::resume`] for a sink whose keeping `keeping` finds: `restore` puts the kept
/// state into the sink, and where that fails `restart` has it read its conversation from the
/// start (nothing of the state stays).
pub(super) fn resume_sink<'r, T, S: 'static>(
    sink: &mut T,
    keeping: impl Fn(&mut T) -> &mut Option<Keeping<'r>>,
    store: &'static LocalKey<Store<S>>,
    first: &str,
    restore: impl FnOnce(&mut T, &S, usize) -> Result<(), TranslateError>,
    restart: impl FnOnce(&mut T),
) -> (usize, usize) {
    let Some(mut k) = keeping(sink).take() else {
        return (0, 0);
    };
    let mut failed = false;
    let taken = k.resume(store, first, |kept, base| {
        failed = restore(sink, kept, base).is_err();
        !failed
    });
    *keeping(sink) = Some(k);
    if failed {
        restart(sink);
    }
    taken
}

impl<S> Kept<S> {
    /// The bytes it holds.
    #[allow(dead_code, reason = "read by tests")]
    pub(super) fn weight(&self) -> usize {
        self.weight
    }
}

/// Whether `rest` (a body from its conversation's first element on) opens with the elements
/// `kept`, whole: the same bytes, then the next element's comma or the array's end.
fn opens(rest: &[u8], kept: &[u8]) -> bool {
    if kept.is_empty() || !rest.starts_with(kept) {
        return false;
    }
    let after = rest.get(kept.len()..).unwrap_or_default();
    matches!(
        after
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
        Some(b',' | b']')
    )
}

/// Where the last element of the array whose first element starts at `first` of `body` ends
/// (checked JSON: the array crossed by its note when admission noted it).
fn elements_end(body: &[u8], first: usize) -> Option<usize> {
    let open = body
        .get(..first)?
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    if body.get(open) != Some(&b'[') {
        return None;
    }
    let close = crate::json::value_end(body, open)?.checked_sub(1)?;
    let last = body
        .get(..close)?
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    (last >= first).then_some(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_elements_open_a_body_only_whole() {
        assert!(opens(br#"{"a":1},{"b":2}]"#, br#"{"a":1}"#));
        assert!(opens(br#"{"a":1} ]"#, br#"{"a":1}"#));
        // The same bytes, then more of the same element: not an element's end.
        assert!(!opens(br#"{"a":1}2,{}]"#, br#"{"a":1}"#));
        assert!(!opens(br#"{"a":1}"#, br#"{"a":1}"#));
        assert!(!opens(br#"{"a":2},{}]"#, br#"{"a":1}"#));
        assert!(!opens(b"]", b""));
    }

    #[test]
    fn elements_end_where_the_last_one_does() {
        let body = br#"{"m":[ {"a":1}, "x" ] ,"z":1}"#;
        let first = 7;
        assert_eq!(elements_end(body, first), Some(19));
        assert_eq!(&body[first..19], br#"{"a":1}, "x""#);
        // Not the first element of an array.
        assert_eq!(elements_end(body, 8), None);
    }
}
