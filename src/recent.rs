//! A few results a thread computed last, found again by the exact bytes they were computed
//! from: an agent resends the same tools and the same entities every turn, and a result that
//! is a function of those bytes alone need not be computed twice on the same worker.
//!
//! The key is compared whole, never by a hash, so no input can be taken for another. Each
//! use is a `thread_local!` (per worker, no lock) holding a [`Recent`].

use std::cell::RefCell;

/// At most `N` results, each kept only when its key and weight together stay within
/// `max_bytes`; the oldest goes first.
#[derive(Debug)]
pub struct Recent<V, const N: usize> {
    kept: RefCell<Vec<(Box<[u8]>, V)>>,
    max_bytes: usize,
}

impl<V: Clone, const N: usize> Recent<V, N> {
    /// An empty set that keeps results of at most `max_bytes` (key and value together).
    pub const fn new(max_bytes: usize) -> Recent<V, N> {
        Recent {
            kept: RefCell::new(Vec::new()),
            max_bytes,
        }
    }

    /// The result kept for `key`, or `make()`'s, kept when it fits. `weight` says how many
    /// bytes a result holds, so that what a thread keeps stays under `N × max_bytes`.
    pub fn get_or(&self, key: &[u8], weight: impl Fn(&V) -> usize, make: impl FnOnce() -> V) -> V {
        if key.len() > self.max_bytes {
            return make();
        }
        // A failed borrow (`make` using this set) only means the result is made anew.
        let found = self.kept.try_borrow().ok().and_then(|kept| {
            kept.iter()
                .find(|(k, _)| **k == *key)
                .map(|(_, v)| v.clone())
        });
        if let Some(v) = found {
            return v;
        }
        let v = make();
        if key.len().saturating_add(weight(&v)) <= self.max_bytes {
            // `make` may itself have used this set: borrowed again only now.
            if let Ok(mut kept) = self.kept.try_borrow_mut() {
                if kept.len() >= N {
                    kept.remove(0);
                }
                kept.push((Box::from(key), v.clone()));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_result_is_made_once_per_key_and_the_oldest_goes_first() {
        let recent: Recent<usize, 2> = Recent::new(64);
        let made = Cell::new(0);
        let make = |v: usize| {
            made.set(made.get() + 1);
            v
        };
        assert_eq!(recent.get_or(b"a", |_| 1, || make(1)), 1);
        assert_eq!(recent.get_or(b"a", |_| 1, || make(9)), 1);
        assert_eq!(made.get(), 1);
        assert_eq!(recent.get_or(b"b", |_| 1, || make(2)), 2);
        assert_eq!(recent.get_or(b"c", |_| 1, || make(3)), 3);
        // `a` was the oldest: made again.
        assert_eq!(recent.get_or(b"a", |_| 1, || make(4)), 4);
        assert_eq!(recent.get_or(b"c", |_| 1, || make(5)), 3);
        assert_eq!(made.get(), 4);
    }

    #[test]
    fn a_key_that_merely_starts_like_another_is_not_it() {
        let recent: Recent<usize, 4> = Recent::new(64);
        assert_eq!(recent.get_or(b"ab", |_| 0, || 1), 1);
        assert_eq!(recent.get_or(b"a", |_| 0, || 2), 2);
        assert_eq!(recent.get_or(b"abc", |_| 0, || 3), 3);
    }

    #[test]
    fn results_past_the_bound_are_made_every_time() {
        let recent: Recent<usize, 4> = Recent::new(8);
        let made = Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            7
        };
        // Too long a key, and a key whose result weighs too much.
        recent.get_or(&[0; 9], |_| 0, make);
        recent.get_or(&[0; 9], |_| 0, make);
        recent.get_or(b"k", |_| 8, make);
        recent.get_or(b"k", |_| 8, make);
        assert_eq!(made.get(), 4);
        recent.get_or(b"k", |_| 7, make);
        recent.get_or(b"k", |_| 7, make);
        assert_eq!(made.get(), 5);
    }
}
