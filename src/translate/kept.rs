//! Tools lists converted once per worker and found again by their exact bytes: an agent
//! sends the same tools every turn, and each request translation that reads tools keeps what
//! it made of them here (`responses::kept`, `messages_via_chat::kept`,
//! `chat_via_messages::kept`). What is kept is a function of the tools' bytes and the form
//! alone, never of the request, the key or the tenant; a list the translation refuses is kept
//! as refused, and the request goes the plain way, whose error is the one given.

use std::cell::Cell;
use std::rc::Rc;
use std::thread::LocalKey;

use crate::recent::Recent;

/// Tools lists kept per form: an agent's session uses one, a worker serves a few sessions'
/// agents at once.
pub(super) const TOOLS_KEPT: usize = 4;
/// A list is kept only when its bytes and what is kept of it (every byte held) together stay
/// under this: a thread keeps at most 4 × 512 KB per form (four forms: Responses tools for
/// Chat and for Messages, Messages tools for Chat, Chat tools for Messages).
pub(super) const TOOLS_KEPT_MAX_BYTES: usize = 512 * 1024;

/// One form's kept lists.
pub(super) type KeptSet<V> = Recent<Option<Rc<V>>, TOOLS_KEPT>;

thread_local! {
    /// Set by [`without_kept`].
    static MADE_EACH_TIME: Cell<bool> = const { Cell::new(false) };
    /// Translations on this thread that found their tools kept (see [`kept_tools_used`]).
    static USED: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with every translation making everything itself, nothing kept by an earlier one
/// (tools, conversations): the plain path the kept one is compared with (differential tests,
/// the fuzz targets).
pub fn without_kept<R>(f: impl FnOnce() -> R) -> R {
    let before = MADE_EACH_TIME.with(|m| m.replace(true));
    let out = f();
    MADE_EACH_TIME.with(|m| m.set(before));
    out
}

/// Whether translations may take what earlier ones kept (not within [`without_kept`]).
pub(super) fn kept_on() -> bool {
    !MADE_EACH_TIME.with(Cell::get)
}

/// How many translations on this thread found their tools kept by an earlier one so far: a
/// test's way to tell that the kept tools did the work.
pub fn kept_tools_used() -> u64 {
    USED.with(Cell::get)
}

/// What `make` makes of `raw` (a request's `tools` bytes), made once per worker in `set`;
/// None when `make` refuses them, or while [`without_kept`] runs.
pub(super) fn kept_in<V: 'static>(
    set: &'static LocalKey<KeptSet<V>>,
    raw: &[u8],
    weight: impl Fn(&V) -> usize,
    make: impl FnOnce() -> Option<V>,
) -> Option<Rc<V>> {
    if MADE_EACH_TIME.with(Cell::get) {
        return None;
    }
    let made = Cell::new(false);
    let kept = set.with(|s| {
        s.get_or(
            raw,
            |k| k.as_ref().map_or(0, |k| weight(k)),
            || {
                made.set(true);
                make().map(Rc::new)
            },
        )
    });
    if kept.is_some() && !made.get() {
        USED.with(|n| n.set(n.get() + 1));
    }
    kept
}
