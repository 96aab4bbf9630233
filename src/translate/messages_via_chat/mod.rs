//! Messages clients served by a Chat Completions provider: the request written as a Chat
//! Completions body, the answer and the stream read back as Messages (spec §2-§8).

pub(super) mod direct;
mod kept;
pub(super) mod request;
pub(super) mod response;
pub(super) mod stream;
mod tools;
