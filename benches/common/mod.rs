//! Shared by the benches: recorded mock answers.

use std::time::Duration;

use ringway::mock::script::{plan, Api, Defaults, Step};

/// A provider's whole answer for `body` (an SSE body when it asks for a stream), as the mock
/// writes it, without its delays.
pub fn recorded(api: Api, body: &serde_json::Value) -> Vec<u8> {
    let defaults = Defaults {
        ttft: Duration::ZERO,
        inter_token: Duration::ZERO,
    };
    let mut out = Vec::new();
    for step in plan(api, body.to_string().as_bytes(), &defaults) {
        if let Step::Data(d) = step {
            out.extend_from_slice(&d);
        }
    }
    out
}
