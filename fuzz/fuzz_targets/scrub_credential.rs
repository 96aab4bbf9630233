//! Provider bytes through the credential scrubber: never a panic, and for a key of 8 bytes or
//! more that shares no byte with the marker, no run of 8 of its bytes survives in the output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::scrub::{Scrubber, MIN_FRAGMENT_BYTES, REDACTED};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (key, text) = rest.split_at(usize::from(n).min(rest.len()));
    let Ok(Some(s)) = Scrubber::new(key) else {
        return;
    };
    let out = s.scrub(text);
    let out = out.as_deref().unwrap_or(text);
    if key.iter().any(|b| REDACTED.as_bytes().contains(b)) {
        return;
    }
    for w in key.windows(MIN_FRAGMENT_BYTES) {
        assert!(
            !out.windows(MIN_FRAGMENT_BYTES).any(|o| o == w),
            "a run of the key survived"
        );
    }
});
