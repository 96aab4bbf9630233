//! What writing a conversation straight from its JSON shares among the dialects
//! (`messages_via_chat::direct`, `responses::direct`): the switch that turns it off for the
//! plain path it is compared with, the count of what it wrote, and the token reads that take
//! a string only where the typed reading would keep it as written.

use std::cell::Cell;
use std::ops::Range;

use crate::json::{Token, Tokens};

thread_local! {
    /// Set by [`without_direct`].
    static OFF: Cell<bool> = const { Cell::new(false) };
    /// Turns and items written direct (see [`direct_turns`]).
    static TURNS: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with every turn and item translated typed: the plain path the direct one is
/// compared with (differential tests, the fuzz targets).
pub fn without_direct<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the setting before back, also when `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            OFF.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OFF.with(|o| o.replace(true)));
    f()
}

/// How many turns and items this thread wrote straight from their JSON so far: a test's way
/// to tell that the direct path did the work.
pub fn direct_turns() -> u64 {
    TURNS.with(Cell::get)
}

/// One more written direct.
pub(super) fn count() {
    TURNS.with(|n| n.set(n.get() + 1));
}

/// Whether conversations are written direct ([`without_direct`] is not running).
pub(super) fn on() -> bool {
    !OFF.with(Cell::get)
}

/// A string the typed reading keeps as written (`wire::Str::of_json`): none that it decodes,
/// one with an escape that is, or may be, `\u` (it looks for the two bytes, `\\u` too, where
/// admission's note does not say otherwise).
pub(super) fn kept_string(t: &mut Tokens<'_>) -> Option<Range<usize>> {
    let token = t.string()?;
    if token.escaped {
        let json = t.text(token.quoted.clone())?;
        let maybe_u = token.unicode
            || (!crate::json::noted_without_unicode(json)
                && memchr::memmem::find(json.as_bytes(), b"\\u").is_some());
        if maybe_u {
            return None;
        }
    }
    Some(token.quoted)
}

/// A string with no escape at all (a type, a name).
pub(super) fn plain_string(t: &mut Tokens<'_>) -> Option<Range<usize>> {
    let token = t.string()?;
    (!token.escaped).then_some(token.quoted)
}

/// A value that is there (not `null`, which the typed reading takes as absent).
pub(super) fn present(t: &mut Tokens<'_>) -> Option<Range<usize>> {
    if t.peek()? == b'n' {
        return None;
    }
    t.value()
}

/// The key `token` names, when it has no escape.
pub(super) fn key<'t>(t: &Tokens<'t>, token: &Token) -> Option<&'t [u8]> {
    if token.escaped {
        return None;
    }
    t.bytes().get(token.inner())
}
