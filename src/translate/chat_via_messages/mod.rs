//! Chat Completions clients served by a Messages provider: the request written as a Messages
//! body, the answer and the stream read back as Chat Completions (spec §2-§8).

mod kept;
pub(super) mod request;
pub(super) mod response;
pub(super) mod stream;
pub(super) mod tools;
