//! Conversations kept per worker: what a request translation made of a long conversation (its
//! writer's state after the last element), found again by the elements' exact bytes. An
//! agent resends its whole conversation every turn, a few KB added at the end; the turn's
//! translation then starts where the last one ended and reads only what is new.
//!
//! A conversation is kept twice over: after its last element, and (where the sink reads
//! elements raw) before it. Claude Code moves its cache mark onto the newest turn each time, so
//! the element that was last changes while all before it stay: the next turn starts from the
//! state before it.
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
/// the last's end), how many, and the writer's state after them (and before the last).
pub(super) struct Kept<S> {
    scope: u64,
    form: u8,
    opts: Options,
    lend_from: usize,
    elements: Vec<u8>,
    count: usize,
    state: S,
    before: Option<Before<S>>,
    weight: usize,
    used: u64,
}

/// The state after all a conversation's elements but its last: `count` of them, ending
/// `len` bytes from the first's start.
pub(super) struct Before<S> {
    count: usize,
    len: usize,
    state: S,
}

/// One form's kept conversations.
pub(super) type Store<S> = RefCell<Vec<Kept<S>>>;

/// What a translation reading a conversation knows of where it is: the settings its kept
/// state must match, and where its elements start in the body once the first is seen.
pub(super) struct Keeping<'r, S> {
    body: &'r [u8],
    opts: Options,
    lend_from: usize,
    scope: u64,
    /// Which of a store's forms the state is of (a store may hold more than one).
    form: u8,
    /// Where the first element starts in `body`.
    first: Option<usize>,
    /// Where the last element ends in `body` (None: not looked for yet; Some(None): not found).
    end: Option<Option<usize>>,
    /// Elements taken from a kept conversation, and the bytes they span.
    resumed: (usize, usize),
    /// The kept conversation they were taken from (when it was last used).
    from: Option<u64>,
    /// The state before the last element, once it is reached.
    before: Option<Before<S>>,
}

impl<'r, S: 'static> Keeping<'r, S> {
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
            end: None,
            resumed: (0, 0),
            from: None,
            before: None,
        })
    }

    /// The kept conversation whose elements `first` (the body's first element) opens, if
    /// any: `resume` is handed its state and where its elements start in the body, and says
    /// whether it took it. How many elements it covers (0: none taken), and the bytes they
    /// span from `first`'s start.
    fn resume(
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
            // Each kept conversation opens the body whole, or all but its last element (one
            // compare of its bytes tells which).
            let (at, count, len, whole) = kept
                .iter()
                .enumerate()
                .filter(|(_, k)| self.matches(k))
                .filter_map(|(at, k)| {
                    let alike = crate::json::common_prefix(&k.elements, rest);
                    if opens(rest, k.elements.len(), alike) {
                        return Some((at, k.count, k.elements.len(), true));
                    }
                    let b = k.before.as_ref()?;
                    opens(rest, b.len, alike).then_some((at, b.count, b.len, false))
                })
                .max_by_key(|found| found.1)?;
            let k = kept.get_mut(at)?;
            let state = if whole {
                &k.state
            } else {
                &k.before.as_ref()?.state
            };
            if !resume(state, base) {
                // It would fail again: it goes.
                kept.swap_remove(at);
                return None;
            }
            k.used = tick();
            Some((count, len, k.used))
        });
        let Some((count, len, from)) = taken else {
            return (0, 0);
        };
        USED.with(|n| n.set(n.get() + 1));
        self.resumed = (count, len);
        self.from = Some(from);
        (count, len)
    }

    /// Where element `i`, `element` (a span of the body), starts when it is the body's last,
    /// comes after those resumed, and the conversation is one to keep: the state before it is
    /// to be kept, from the first element's start (the first of the pair) to there.
    fn last_at(&mut self, i: usize, element: &str) -> Option<(usize, usize)> {
        let base = self.first?;
        if i == 0 || i < self.resumed.0 {
            return None;
        }
        let at = element
            .as_ptr()
            .addr()
            .checked_sub(self.body.as_ptr().addr())?;
        let end = (*self
            .end
            .get_or_insert_with(|| elements_end(self.body, base)))?;
        // Only where the whole would be kept (see `end`): no state is copied to be dropped.
        let kept = end.checked_sub(base)?;
        let keeps = (KEEP_FROM.with(Cell::get)..=KEPT_MAX_BYTES).contains(&kept);
        (keeps && at.checked_add(element.len()) == Some(end) && at > base).then_some((base, at))
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
        self.from = None;
        self.before = None;
        self.end = None;
    }

    fn matches(&self, k: &Kept<S>) -> bool {
        k.scope == self.scope
            && k.form == self.form
            && k.lend_from == self.lend_from
            && k.opts == self.opts
    }

    /// The conversation read has `count` elements: kept (`state()` taking the writer's state,
    /// given where the elements start and end in the body), with the state before its last
    /// when that was kept, when it is long enough and has more than it resumed, in place of
    /// the one it resumed.
    fn end(
        &mut self,
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
        let Some(end) = *self
            .end
            .get_or_insert_with(|| elements_end(self.body, base))
        else {
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
        let before = self
            .before
            .take()
            .filter(|b| b.count.checked_add(1) == Some(count) && b.len < elements.len());
        let weight = elements.len().max(self.resumed.1) * 2
            + weigh(&state)
            + before.as_ref().map_or(0, |b| weigh(&b.state));
        if weight > KEPT_MAX_BYTES {
            return;
        }
        let _ = store.with(|s| {
            let mut kept = s.try_borrow_mut().ok()?;
            // The conversation this one went on from gives way to it (its bytes reused: they
            // are this one's first).
            let mut bytes = Vec::new();
            if let Some(at) = kept
                .iter()
                .position(|k| self.matches(k) && Some(k.used) == self.from)
            {
                bytes = kept.swap_remove(at).elements;
                bytes.truncate(self.resumed.1);
            }
            // Its bytes were compared with this body's where they were resumed.
            if bytes.len() != self.resumed.1 {
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
                before,
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
    keeping: impl Fn(&mut T) -> &mut Option<Keeping<'r, S>>,
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

/// [`Keeping::end`] for a sink whose keeping `keeping` finds: `state` takes its state, given
/// where the elements start and end in the body.
pub(super) fn end_sink<'r, T, S: 'static>(
    sink: &mut T,
    keeping: impl Fn(&mut T) -> &mut Option<Keeping<'r, S>>,
    store: &'static LocalKey<Store<S>>,
    count: usize,
    weigh: impl Fn(&S) -> usize,
    state: impl FnOnce(&T, usize, usize) -> Option<S>,
) {
    let Some(mut k) = keeping(sink).take() else {
        return;
    };
    k.end(store, count, weigh, |base, end| state(sink, base, end));
    *keeping(sink) = Some(k);
}

/// Keeps the sink's state before element `i`, `element`, when it is the conversation's last
/// (see [`Keeping::end`]): `state` takes it, given where the elements start and where the one
/// before `element` ends. Called before the element is read.
pub(super) fn before_last<'r, T, S: 'static>(
    sink: &mut T,
    keeping: impl Fn(&mut T) -> &mut Option<Keeping<'r, S>>,
    i: usize,
    element: &str,
    state: impl FnOnce(&T, usize, usize) -> Option<S>,
) {
    let Some(mut k) = keeping(sink).take() else {
        return;
    };
    if let Some((base, at)) = k.last_at(i, element) {
        // Its lent spans checked against the very bytes a later body is compared on.
        k.before = element_before(k.body, at)
            .filter(|&to| to > base)
            .and_then(|to| Some((to - base, state(sink, base, to)?)))
            .map(|(len, state)| Before {
                count: i,
                len,
                state,
            });
    }
    *keeping(sink) = Some(k);
}

/// Where the element before the one starting at `at` of `body` ends (past its last byte).
fn element_before(body: &[u8], at: usize) -> Option<usize> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let comma = body.get(..at)?.iter().rposition(|b| !ws(b))?;
    if body.get(comma) != Some(&b',') {
        return None;
    }
    let last = body.get(..comma)?.iter().rposition(|b| !ws(b))?;
    Some(last + 1)
}

impl<S> Kept<S> {
    /// The bytes it holds.
    #[allow(dead_code, reason = "read by tests")]
    pub(super) fn weight(&self) -> usize {
        self.weight
    }
}

/// Whether `rest` (a body from its conversation's first element on), which opens with `alike`
/// bytes of a kept conversation's, opens with `len` of them as whole elements: the next
/// element's comma or the array's end follows.
fn opens(rest: &[u8], len: usize, alike: usize) -> bool {
    if len == 0 || len > alike {
        return false;
    }
    let after = rest.get(len..).unwrap_or_default();
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
        let opens = |rest: &[u8], kept: &[u8]| {
            opens(rest, kept.len(), crate::json::common_prefix(kept, rest))
        };
        assert!(opens(br#"{"a":1},{"b":2}]"#, br#"{"a":1}"#));
        assert!(opens(br#"{"a":1} ]"#, br#"{"a":1}"#));
        // The same bytes, then more of the same element: not an element's end.
        assert!(!opens(br#"{"a":1}2,{}]"#, br#"{"a":1}"#));
        assert!(!opens(br#"{"a":1}"#, br#"{"a":1}"#));
        assert!(!opens(br#"{"a":2},{}]"#, br#"{"a":1}"#));
        assert!(!opens(b"]", b""));
        // All but the last of a kept conversation's elements.
        let kept = br#"{"a":1},{"b":2}"#;
        let rest = br#"{"a":1},{"b":3}]"#;
        let alike = crate::json::common_prefix(kept, rest);
        assert!(!super::opens(rest, kept.len(), alike));
        assert!(super::opens(rest, 7, alike));
        assert!(!super::opens(rest, 6, alike));
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

    #[test]
    fn the_element_before_ends_before_its_comma() {
        let body = br#"[{"a":1} , "x",3]"#;
        assert_eq!(element_before(body, 11), Some(8));
        assert_eq!(element_before(body, 15), Some(14));
        // The first element has none before it.
        assert_eq!(element_before(body, 1), None);
    }
}
