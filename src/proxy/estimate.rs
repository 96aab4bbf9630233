//! count_tokens for a model an OpenAI-kind provider serves: such providers have no such
//! endpoint, so ringway answers itself with an o200k_base estimate (see [`crate::tokens`]).

use std::time::{Duration, Instant};

use tiktoken_rs::CoreBPE;

use super::{respond, Exchange, Failure};
use crate::error::{Error, ErrorKind, Result};
use crate::server::conn::ClientConn;

/// How often a request that arrived before the tokenizer was built looks again. The worker
/// sleeps on its timer meanwhile, so its other connections go on.
pub const TOKENIZER_POLL: Duration = Duration::from_millis(5);

/// Longest a request waits for the tokenizer (building takes well under a second in a
/// release build); past it the request fails rather than hang on a build that never ends.
pub const TOKENIZER_WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Answer `{"input_tokens": N}` for an Anthropic count_tokens body.
pub(super) async fn answer(
    conn: &mut ClientConn,
    ex: &Exchange<'_>,
    body: &[u8],
) -> std::result::Result<(), Failure> {
    let bpe = tokenizer().await?;
    let n = crate::tokens::estimate_anthropic_request(body, bpe)
        .map_err(|e| Error::new(ErrorKind::InvalidBody, e.to_string()))?;
    let out = format!("{{\"input_tokens\":{n}}}");
    respond(conn, ex, 200, "application/json", out.as_bytes()).await?;
    Ok(())
}

/// The shared tokenizer, waiting (without blocking the worker) while it is being built.
async fn tokenizer() -> Result<&'static CoreBPE> {
    // Built on first use, on a helper thread: it costs ~45 MiB, which a gateway that is never
    // asked to count tokens for an OpenAI-kind model should not pay (idle RSS stays ~11 MB).
    // The first such request waits ~0.2 s for it on the worker's timer, never blocking it.
    crate::tokens::shared::start_loading();
    let deadline = Instant::now() + TOKENIZER_WAIT_LIMIT;
    loop {
        match crate::tokens::shared::get() {
            Some(Ok(bpe)) => return Ok(bpe),
            Some(Err(e)) => return Err(Error::new(ErrorKind::Internal, e.to_owned())),
            None if Instant::now() >= deadline => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "the tokenizer for count_tokens is still being built",
                ))
            }
            None => monoio::time::sleep(TOKENIZER_POLL).await,
        }
    }
}
