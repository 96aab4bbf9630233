#![no_main]
//! Upstream error translation, both directions: any status in 100..=599 and any body bytes
//! give a body in the client's error format and the status spec §15 assigns; a body that is
//! not JSON is quoted in the message.

use libfuzzer_sys::fuzz_target;
use ringway::translate::{anthropic_to_openai_error, openai_to_anthropic_error};

#[path = "common/shape.rs"]
mod shape;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 100 + u16::from_le_bytes(*status) % 500;
    // A non-error status from the upstream is a protocol break: 502.
    let want = if status >= 400 { status } else { 502 };
    let quoted = serde_json::from_slice::<serde_json::Value>(body).is_err();
    let prefix = format!("upstream returned HTTP {want}");

    let (s, out) = openai_to_anthropic_error(status, body);
    let message = shape::anthropic_error(&out);
    // Only a pass-through keeps 503; a rendered 503 becomes Anthropic's 529.
    let renamed = if want == 503 && out != body {
        529
    } else {
        want
    };
    assert_eq!(s, renamed);
    assert!(!quoted || message.starts_with(&prefix), "{message}");

    let (s, out) = anthropic_to_openai_error(status, body);
    let message = shape::openai_error(&out);
    assert_eq!(s, if want == 529 { 503 } else { want });
    assert!(!quoted || message.starts_with(&prefix), "{message}");
});
