//! Per-worker accept loop and the per-connection request loop (keep-alive, pipelining: requests
//! already buffered are served in order, each response written before the next is parsed).

pub mod conn;

use std::rc::Rc;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

use crate::proxy::{self, After, Ctx};
use conn::{ClientConn, HeadOutcome};

/// Pause after an accept error (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Accept connections forever, one task per connection.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let ctx = ctx.clone();
                monoio::spawn(async move { serve_connection(stream, &ctx).await });
            }
            Err(e) => {
                crate::log::warn(format_args!("worker {}: accept failed: {e}", ctx.worker));
                monoio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Serve requests on one connection until it closes or a response says close.
pub async fn serve_connection(stream: TcpStream, ctx: &Ctx) {
    // Responses are written whole or per SSE event; Nagle would delay each of them.
    let _ = stream.set_nodelay(true);
    let mut conn = ClientConn::new(stream);
    conn.write_timeout = ctx.config.server.write_timeout;
    loop {
        let head = match conn.read_head(&ctx.config.server).await {
            Ok(h) => h,
            Err(HeadOutcome::Closed) => return,
            Err(HeadOutcome::Failed(e, seen)) => {
                proxy::write_head_failure(ctx, &mut conn, &e, &seen).await;
                conn.drain_and_close().await;
                return;
            }
        };
        match proxy::handle(ctx, &mut conn, &head).await {
            After::KeepAlive => {}
            After::Close => return,
            After::DrainAndClose => {
                conn.drain_and_close().await;
                return;
            }
        }
    }
}
