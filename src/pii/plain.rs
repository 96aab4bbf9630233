//! Long string tokens a worker found no built-in pattern can match in, found again by their
//! bytes: an agent's turn resends every file and tool result of the turns before it, and the
//! filter that clears them (`body::escaped_text_len`) was the largest part of a PII
//! request's own work (10% of its worker CPU at 300 KB, perf).
//!
//! A token is found by a probe of its length and three slices of it, and taken only when all
//! its bytes are the kept ones, so no token is ever taken for another. Only tokens with no
//! entity are kept: those the filter cleared (nothing a detector could match), and those the
//! built-in detectors searched and found nothing in (a tool's description with a number in
//! it, resent every turn). They are kept only for the API key that sent them, so a client
//! cannot learn by timing what another key's prompts say.

use std::collections::{HashMap, VecDeque};

/// Shorter tokens are filtered again: the filter costs them about what a lookup does.
const KEPT_MIN_BYTES: usize = 512;
/// Token bytes one worker keeps in all; past this the oldest go first.
const KEPT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Bytes each of the probe's slices holds.
const SLICE: usize = 16;

/// Where a token is looked for: who sent it, how long it is, its first, middle and last bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Probe {
    scope: u64,
    len: usize,
    head: [u8; SLICE],
    mid: [u8; SLICE],
    tail: [u8; SLICE],
}

impl Probe {
    fn of(scope: u64, token: &[u8]) -> Option<Probe> {
        let slice =
            |at: usize| -> Option<[u8; SLICE]> { token.get(at..at + SLICE)?.try_into().ok() };
        let len = token.len();
        Some(Probe {
            scope,
            len,
            head: slice(0)?,
            mid: slice((len / 2).checked_sub(SLICE / 2)?)?,
            tail: slice(len.checked_sub(SLICE)?)?,
        })
    }
}

/// What is known of a kept token: it holds no entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Clear {
    /// The length of its decoded text.
    pub len: usize,
    /// The filter cleared it: no byte a built-in pattern needs is in it. Otherwise the
    /// detectors searched it and found nothing, and its bytes may hold a needy stand-in.
    pub needless: bool,
}

#[derive(Debug, Default)]
struct Kept {
    tokens: HashMap<Probe, (Box<[u8]>, Clear)>,
    /// Probes in the order they were first kept (each once).
    order: VecDeque<Probe>,
    bytes: usize,
}

thread_local! {
    static KEPT: std::cell::RefCell<Kept> = std::cell::RefCell::new(Kept::default());
    /// Tokens found kept on this thread so far (see [`hits`]).
    static HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many tokens this thread found kept so far: a test's way to tell that the kept
/// results did the work.
#[cfg(test)]
pub(super) fn hits() -> u64 {
    HITS.with(std::cell::Cell::get)
}

/// What is kept of `token` for `scope`, else `filter(token)`, kept for the next request
/// `scope` sends with the same token when it is `Some` (the filter found no byte a pattern
/// needs: no entity).
pub(super) fn cleared(
    scope: u64,
    token: &[u8],
    filter: impl FnOnce(&[u8]) -> Option<usize>,
) -> Option<Clear> {
    let clear = |len| Clear {
        len,
        needless: true,
    };
    let Some(probe) = probe(scope, token) else {
        return filter(token).map(clear);
    };
    // Never borrowed across a call out of here; a failed borrow only means no lookup.
    let found = KEPT.with(|k| {
        k.try_borrow().ok().and_then(|k| {
            k.tokens
                .get(&probe)
                .filter(|(kept, _)| **kept == *token)
                .map(|&(_, clear)| clear)
        })
    });
    if found.is_some() {
        HITS.with(|h| h.set(h.get() + 1));
        return found;
    }
    let found = clear(filter(token)?);
    keep(probe, token, found);
    Some(found)
}

/// Keeps `token`, whose decoded text of `len` bytes the built-in detectors found no entity
/// in, for the next request `scope` sends with it, when it is long enough to keep and
/// `keepable(token)`. The caller vouches that it is not searched as JSON text, and
/// `keepable` that it has no `\u` escape (so a stand-in in its decoded text is in its bytes
/// too, see `Text::contains`); it is asked only of a token long enough, so the short strings
/// every request has are not read again.
pub(super) fn searched(scope: u64, token: &[u8], len: usize, keepable: impl FnOnce(&[u8]) -> bool) {
    if let Some(probe) = probe(scope, token).filter(|_| keepable(token)) {
        let needless = false;
        keep(probe, token, Clear { len, needless });
    }
}

/// The probe `token` is kept under, when it is long enough to be kept.
fn probe(scope: u64, token: &[u8]) -> Option<Probe> {
    (token.len() >= KEPT_MIN_BYTES)
        .then(|| Probe::of(scope, token))
        .flatten()
}

fn keep(probe: Probe, token: &[u8], clear: Clear) {
    KEPT.with(|k| {
        if let Ok(mut k) = k.try_borrow_mut() {
            k.keep(probe, token, clear);
        }
    });
}

impl Kept {
    fn keep(&mut self, probe: Probe, token: &[u8], clear: Clear) {
        if token.len() > KEPT_MAX_BYTES / 4 {
            return;
        }
        match self.tokens.insert(probe, (Box::from(token), clear)) {
            // Same probe, other bytes: replaced where it stands in the order.
            Some((old, _)) => self.bytes -= old.len(),
            None => self.order.push_back(probe),
        }
        self.bytes += token.len();
        while self.bytes > KEPT_MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((old, _)) = self.tokens.remove(&oldest) {
                self.bytes -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn token(fill: u8, len: usize) -> Vec<u8> {
        let mut t = vec![fill; len];
        t[0] = b'"';
        t[len - 1] = b'"';
        t
    }

    #[test]
    fn a_cleared_token_is_filtered_once_per_scope_and_only_for_its_own_bytes() {
        let filtered = Cell::new(0);
        let filter = |t: &[u8]| {
            filtered.set(filtered.get() + 1);
            Some(t.len() - 2)
        };
        let a = token(b'a', 2000);
        assert_eq!(cleared(1, &a, filter).map(|c| c.len), Some(1998));
        assert_eq!(cleared(1, &a, filter).map(|c| c.len), Some(1998));
        assert_eq!(filtered.get(), 1);
        // Another key: filtered for itself.
        assert_eq!(cleared(2, &a, filter).map(|c| c.len), Some(1998));
        assert_eq!(filtered.get(), 2);
        // The same probe (length, ends, middle) with one byte between changed is not it.
        let mut b = a.clone();
        b[100] = b'b';
        assert_eq!(cleared(1, &b, |_| Some(7)).map(|c| c.len), Some(7));
        assert_eq!(cleared(1, &b, |_| Some(8)).map(|c| c.len), Some(7));
        // Replaced under its probe: `a` is filtered again.
        assert_eq!(cleared(1, &a, filter).map(|c| c.len), Some(1998));
        assert_eq!(filtered.get(), 3);
    }

    #[test]
    fn a_token_searched_clean_is_kept_as_such_for_its_scope_only() {
        let a = token(b'7', 3000);
        searched(4, &a, 2998, |_| true);
        let filtered = Cell::new(0);
        let filter = |_: &[u8]| {
            filtered.set(filtered.get() + 1);
            None
        };
        let clear = Clear {
            len: 2998,
            needless: false,
        };
        assert_eq!(cleared(4, &a, filter), Some(clear));
        assert_eq!(filtered.get(), 0);
        // Not for another key, and not a token of other bytes under the same probe.
        assert_eq!(cleared(5, &a, |_| None), None);
        let mut b = a.clone();
        b[100] = b'8';
        assert_eq!(cleared(4, &b, |_| None), None);
        // Too short to keep: not even asked whether it may be kept.
        let short = token(b'7', KEPT_MIN_BYTES - 1);
        let asked = Cell::new(false);
        searched(4, &short, 1, |_| {
            asked.set(true);
            true
        });
        assert!(!asked.get());
        assert_eq!(cleared(4, &short, |_| None), None);
        // Long, but not keepable (a `\u` escape in it).
        let c = token(b'6', 3000);
        searched(4, &c, 2998, |_| false);
        assert_eq!(cleared(4, &c, |_| None), None);
    }

    #[test]
    fn a_token_not_cleared_or_short_is_never_kept() {
        let filtered = Cell::new(0);
        let none = |_: &[u8]| {
            filtered.set(filtered.get() + 1);
            None
        };
        let a = token(b'x', 4000);
        assert_eq!(cleared(3, &a, none), None);
        assert_eq!(cleared(3, &a, none), None);
        let short = token(b'x', KEPT_MIN_BYTES - 1);
        // Shorter than a probe's slices too.
        assert_eq!(cleared(3, b"\"\"", |_| Some(0)).map(|c| c.len), Some(0));
        let some = |_: &[u8]| {
            filtered.set(filtered.get() + 1);
            Some(1)
        };
        cleared(3, &short, some);
        cleared(3, &short, some);
        assert_eq!(filtered.get(), 4);
    }

    #[test]
    fn what_a_worker_keeps_stays_within_its_bound() {
        for i in 0..40u32 {
            let mut t = token(b'z', 256 * 1024);
            t[1..5].copy_from_slice(&i.to_le_bytes());
            cleared(9, &t, |_| Some(0));
        }
        KEPT.with(|k| {
            let k = k.borrow();
            assert!(k.bytes <= KEPT_MAX_BYTES, "{}", k.bytes);
            assert_eq!(
                k.bytes,
                k.tokens.values().map(|(t, _)| t.len()).sum::<usize>()
            );
            assert_eq!(k.order.len(), k.tokens.len());
        });
    }
}
