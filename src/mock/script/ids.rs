//! Deterministic ids: message, request, tool-call and signature strings, paddings and
//! obfuscation, all drawn from a hash of the request body (no clock, no randomness).

use super::step::Api;

/// Length of the deterministic thinking signature (a multiple of 4 so it looks like base64).
pub(super) const SIGNATURE_LEN: usize = 152;

pub(super) const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

// Salts separate the id streams drawn from one body hash.
const SALT_MSG: u64 = 1;
const SALT_REQ: u64 = 2;
const SALT_CHATCMPL: u64 = 3;
const SALT_FINGERPRINT: u64 = 4;
const SALT_SIGNATURE: u64 = 5;
const SALT_TOOLU: u64 = 0x100;
const SALT_CALL: u64 = 0x200;
pub(super) const SALT_PAD: u64 = 0x1_0000;
pub(super) const SALT_OBFUSCATION: u64 = 0x2_0000;

/// A length as the `u64` that salts and token counts are (saturating).
pub(super) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Ids, paddings and signatures derived from a hash of the request body.
pub(super) struct Ids {
    seed: u64,
}

impl Ids {
    pub(super) fn new(body: &[u8]) -> Self {
        // FNV-1a: tiny, stable across platforms and Rust versions (std's hasher is not).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in body {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self { seed: h }
    }

    /// splitmix64 of (seed, salt): a well-mixed number per salt.
    pub(super) fn number(&self, salt: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn text(&self, salt: u64, len: usize, alphabet: &[u8]) -> String {
        let modulus = count(alphabet.len()).max(1);
        (0..len)
            .map(|i| {
                let n = self.number(salt.wrapping_mul(1 << 20).wrapping_add(count(i)));
                let at = usize::try_from(n % modulus).unwrap_or(0);
                char::from(alphabet.get(at).copied().unwrap_or(b'x'))
            })
            .collect()
    }

    pub(super) fn message(&self) -> String {
        format!("msg_01{}", self.text(SALT_MSG, 22, BASE62))
    }

    pub(super) fn toolu(&self, i: usize) -> String {
        format!("toolu_01{}", self.text(SALT_TOOLU + count(i), 22, BASE62))
    }

    pub(super) fn anthropic_request(&self) -> String {
        format!("req_011C{}", self.text(SALT_REQ, 20, BASE62))
    }

    pub(super) fn signature(&self) -> String {
        self.text(SALT_SIGNATURE, SIGNATURE_LEN, BASE64)
    }

    pub(super) fn chatcmpl(&self) -> String {
        format!("chatcmpl-{}", self.text(SALT_CHATCMPL, 29, BASE62))
    }

    pub(super) fn call(&self, i: usize) -> String {
        format!("call_{}", self.text(SALT_CALL + count(i), 24, BASE62))
    }

    pub(super) fn fingerprint(&self) -> String {
        format!("fp_{}", self.text(SALT_FINGERPRINT, 10, HEX))
    }

    fn openai_request(&self) -> String {
        format!("req_{}", self.text(SALT_REQ, 32, HEX))
    }

    pub(super) fn request_header(&self, api: Api) -> (&'static str, String) {
        match api {
            Api::OpenAiChat => ("x-request-id", self.openai_request()),
            _ => ("request-id", self.anthropic_request()),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::mock::script::testing::*;
    use crate::mock::script::CREATED_UNIX;
    use serde_json::json;

    #[test]
    fn same_body_same_steps_and_different_bodies_different_ids() {
        let bodies = [
            (
                Api::AnthropicMessages,
                anthropic("one two", json!({"stream": true})),
            ),
            (Api::AnthropicMessages, anthropic("one two", json!({}))),
            (
                Api::OpenAiChat,
                openai(
                    "one two",
                    json!({"stream": true, "stream_options": {"include_usage": true}}),
                ),
            ),
            (
                Api::OpenAiChat,
                openai("one two", json!({"tools": [weather_tool_openai()]})),
            ),
            (
                Api::AnthropicMessages,
                anthropic(
                    "mock:thinking",
                    json!({"stream": true, "tools": [weather_tool_anthropic()]}),
                ),
            ),
        ];
        for (api, body) in &bodies {
            assert_eq!(run(*api, body), run(*api, body));
        }
        let a = fixed(&run(Api::AnthropicMessages, &anthropic("one", json!({})))).2;
        let b = fixed(&run(Api::AnthropicMessages, &anthropic("two", json!({})))).2;
        assert_ne!(a["id"], b["id"]);
        let a = fixed(&run(Api::OpenAiChat, &openai("one", json!({})))).2;
        let b = fixed(&run(Api::OpenAiChat, &openai("two", json!({})))).2;
        assert_ne!(a["id"], b["id"]);
        assert_eq!(a["created"], CREATED_UNIX);
    }
}
