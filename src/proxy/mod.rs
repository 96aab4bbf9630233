//! The request path: [`handle`] takes a request whose head has been read to its answer. A
//! WebSocket upgrade of the Responses endpoint becomes a session of messages; anything else is
//! one exchange through the pipeline (`pipeline`: classify → authenticate → admit → route →
//! attempt* → commit → pump → finish, then `record`). Child modules import `ctx` and `state`
//! and each other, never this file.

mod admin;
mod admit;
mod attempt;
mod auth;
mod budget;
mod convert;
mod ctx;
mod custody;
mod endpoint;
mod estimate;
mod lookup;
mod pipeline;
pub mod pump;
mod record;
mod respond;
mod state;
mod stored;
mod trace;
mod websocket;

use crate::downstream::{ClientConn, Transport};
use crate::http1::RequestHead;

pub use crate::format::MAX_MODEL_ID_BYTES;
pub use ctx::{Ctx, WorkerState};
pub use respond::write_head_failure;
pub use state::After;

/// Serve one request whose head has been read. Writes the whole response.
pub async fn handle<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
) -> After {
    if websocket::is_upgrade(head) {
        return Box::pin(websocket::upgrade(ctx, conn, head)).await;
    }
    pipeline::exchange(ctx, conn, head).await
}
