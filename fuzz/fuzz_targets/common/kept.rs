//! A conversation kept by an earlier request and resumed (`translate::conversations`): under a
//! key's scope, as the gateway keeps it, with every string lent, the first run of a body keeps
//! its conversation and the second resumes it; so does the next turn, the body grown by one
//! element before one of its last `]`, and that turn changed (resumed from the state before
//! it). Each must give what the body translated afresh gives.

use ringway::translate::{keeping_from, lending_from, without_kept};

/// A turn appended before a `]` of the body (one of them closes its conversation).
const MORE: &[u8] = br#",{"role":"user","content":"more"}"#;
/// [`MORE`] changed (its content an array, as a moved cache mark changes a turn).
const OTHER: &[u8] = br#",{"role":"user","content":[{"type":"text","text":"more"}]}"#;

/// Checks `run` (a translation of the body it is given, as bytes, meta or error) against
/// itself afresh, kept and resumed, for `input` and for `input` grown by a turn.
pub fn resumed_alike<T: PartialEq + std::fmt::Debug>(input: &[u8], run: &dyn Fn(&[u8]) -> T) {
    ringway::json::with_scope(1, || {
        keeping_from(1, || {
            lending_from(1, || {
                let afresh = without_kept(|| run(input));
                let _ = run(input);
                assert_eq!(run(input), afresh, "kept and afresh differ");
                let closes = input.iter().enumerate().rev().filter(|(_, &b)| b == b']');
                for (at, _) in closes.take(3) {
                    let grown = [&input[..at], MORE, &input[at..]].concat();
                    let _ = run(input);
                    let kept = run(&grown);
                    assert_eq!(kept, without_kept(|| run(&grown)), "a grown turn differs");
                    // The turn last there comes changed: from the state before it.
                    let other = [&input[..at], OTHER, &input[at..]].concat();
                    let kept = run(&other);
                    assert_eq!(kept, without_kept(|| run(&other)), "a changed turn differs");
                }
            })
        })
    });
}
