//! Bodies checked to be UTF-8 once, then taken as text wherever their bytes are read again.
//!
//! Admission checks a body's UTF-8 (SIMD, about a third of an instruction a byte) and a
//! translation's reader needs the body as `&str`: checked again, that was 6% of a 300 KB
//! translation's instructions. A [`Checked`] is made only by checking, and holds the bytes it
//! checked: `Bytes` never change while shared, so while it is held, any slice of those bytes
//! cut at character boundaries is UTF-8 ([`inspect_checked`] makes one from an inspection
//! whose scan checked every byte, without a second look). [`with_checked`] makes one known to
//! the readers on this thread for the length of a call; [`known_text`] then gives a slice of
//! it as text after an O(1) check of where it lies. A body made afterwards (a rewrite, a copy)
//! lies elsewhere and is checked as before.

use std::cell::{Cell, RefCell};

use bytes::Bytes;

/// Bytes checked to be UTF-8 (held: they cannot change or go while this lives).
#[derive(Clone)]
pub struct Checked(Bytes);

impl Checked {
    /// `body` when it is UTF-8.
    pub fn new(body: &Bytes) -> Option<Self> {
        simdutf8::basic::from_utf8(body).ok()?;
        Some(Self(body.clone()))
    }
}

thread_local! {
    /// The body [`inspect_checked`] runs an inspection of (its address and length), and
    /// whether that inspection's scan checked every byte of it.
    static ASKED: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
    static VOUCHED: Cell<bool> = const { Cell::new(false) };
    /// The checked bytes this thread's readers may take as text, set by [`with_checked`].
    static CHECKED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// Texts [`known_text`] vouched for on this thread (see [`known_uses`]).
    static USES: Cell<u64> = const { Cell::new(0) };
}

/// How many texts this thread took as known UTF-8 so far: a test's way to tell that a reader
/// did not check a body again.
pub fn known_uses() -> u64 {
    USES.with(Cell::get)
}

/// Runs `inspect`, an inspection of `body`, and gives `body` as [`Checked`] when it is UTF-8:
/// without checking it again when the inspection's scan checked every byte of it (the bytes
/// it took as kept were checked when they were kept: see `json::kept`), else by checking it
/// here.
pub fn inspect_checked<R>(body: &Bytes, inspect: impl FnOnce() -> R) -> (R, Option<Checked>) {
    /// Forgets the body asked about, also when `inspect` unwinds.
    struct Forget;
    impl Drop for Forget {
        fn drop(&mut self) {
            ASKED.with(|a| a.set(None));
            VOUCHED.with(|v| v.set(false));
        }
    }
    ASKED.with(|a| a.set(Some((body.as_ptr().addr(), body.len()))));
    VOUCHED.with(|v| v.set(false));
    let forget = Forget;
    let out = inspect();
    let vouched = VOUCHED.with(Cell::get);
    drop(forget);
    let checked = match vouched {
        true => Some(Checked(body.clone())),
        false => Checked::new(body),
    };
    (out, checked)
}

/// Whether `bytes` are UTF-8 (ASCII first: most runs between an agent's long strings are).
pub(super) fn valid(bytes: &[u8]) -> bool {
    bytes.is_ascii() || simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Said by a scan that checked every byte of `text` to be UTF-8: when `text` is the body
/// [`inspect_checked`] asks about, it needs no check of its own.
pub(super) fn vouch(text: &[u8]) {
    if ASKED.with(Cell::get) == Some((text.as_ptr().addr(), text.len())) {
        VOUCHED.with(|v| v.set(true));
    }
}

/// Runs `f` with `checked` known to [`known_text`] on this thread (and put back as it was when
/// `f` returns or unwinds).
pub fn with_checked<R>(checked: Option<&Checked>, f: impl FnOnce() -> R) -> R {
    let Some(checked) = checked else {
        return f();
    };
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            // The one replaced is dropped after the borrow ends.
            drop(CHECKED.with(|c| c.replace(previous)));
        }
    }
    let previous = CHECKED.with(|c| c.replace(Some(checked.0.clone())));
    let _restore = Restore(previous);
    f()
}

/// `text` as a `str` when it is the checked body known on this thread or a slice of it cut at
/// character boundaries; None otherwise (the caller checks it itself).
pub fn known_text(text: &[u8]) -> Option<&str> {
    if text.is_empty() {
        return Some("");
    }
    let inside = CHECKED.with(|c| {
        let checked = c.borrow();
        let whole: &[u8] = checked.as_deref()?;
        let start = text.as_ptr().addr().checked_sub(whole.as_ptr().addr())?;
        let end = start.checked_add(text.len())?;
        if end > whole.len() {
            return None;
        }
        // A character boundary: the end of the bytes, or a byte that does not continue a
        // character (std's own test).
        let boundary = |at: usize| whole.get(at).is_none_or(|&b| (b as i8) >= -0x40);
        Some(boundary(start) && boundary(end))
    });
    if inside != Some(true) {
        return None;
    }
    USES.with(|u| u.set(u.get() + 1));
    #[expect(
        unsafe_code,
        reason = "the bytes were checked when the Checked holding them was made"
    )]
    // SAFETY: `text` is not empty and lies wholly within the bytes of a `Checked` held in
    // CHECKED: two live borrows that overlap in address are the same memory, and those bytes
    // were checked to be UTF-8 when the `Checked` was made. `Bytes` never changes bytes it
    // shares (the clone held is a share), so they are UTF-8 still, and `text` is cut at
    // character boundaries at both ends, so it is UTF-8 too. Its borrow keeps it as it is.
    Some(unsafe { std::str::from_utf8_unchecked(text) })
}

/// Whether `text` is known to be UTF-8 by [`known_text`].
pub fn known(text: &[u8]) -> bool {
    known_text(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slices_of_the_checked_bytes_at_boundaries_are_known() {
        let body = Bytes::from("{\"a\":\"héllo\"}".as_bytes().to_vec());
        let checked = Checked::new(&body).unwrap();
        let copy = body.to_vec();
        assert!(
            known_text(&body).is_none(),
            "nothing known outside with_checked"
        );
        with_checked(Some(&checked), || {
            assert_eq!(known_text(&body), Some("{\"a\":\"héllo\"}"));
            assert_eq!(known_text(&body[6..12]), Some("héllo"));
            // é is two bytes (7 and 8): a cut inside it is not a boundary.
            assert!(known_text(&body[6..8]).is_none());
            assert!(known_text(&body[8..10]).is_none());
            // Equal bytes elsewhere are not the checked ones.
            assert!(known_text(&copy).is_none());
        });
        assert!(known_text(&body).is_none(), "put back after the call");
    }

    #[test]
    fn bytes_that_are_not_utf8_make_no_checked() {
        assert!(Checked::new(&Bytes::from_static(b"{\"a\":\"\xff\"}")).is_none());
        assert!(Checked::new(&Bytes::from_static(b"{\"a\":\"\xc3\"}")).is_none());
    }

    #[test]
    fn nested_calls_put_back_the_outer_body() {
        let outer = Bytes::from(b"outer text".to_vec());
        let inner = Bytes::from(b"inner text".to_vec());
        let (o, i) = (Checked::new(&outer).unwrap(), Checked::new(&inner).unwrap());
        with_checked(Some(&o), || {
            with_checked(Some(&i), || {
                assert!(known(&inner));
                assert!(!known(&outer));
            });
            assert!(known(&outer));
            assert!(!known(&inner));
        });
    }
}
