//! The gateway's own token counts, o200k_base estimates (see [`crate::tokens`]): count_tokens
//! for a model an OpenAI-kind provider serves (such providers have no such endpoint), and the
//! prompt of a stream cut short before its provider said its usage.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tiktoken_rs::CoreBPE;

use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;

/// How often a request that arrived before the tokenizer was built looks again. The worker
/// sleeps on its timer meanwhile, so its other connections go on.
pub const TOKENIZER_POLL: Duration = Duration::from_millis(5);

/// Longest a request waits for the tokenizer (building takes well under a second in a
/// release build); past it the request fails rather than hang on a build that never ends.
pub const TOKENIZER_WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Bodies up to this size are counted on the worker (about 10 ms at the measured 27 MiB/s);
/// larger ones on a helper thread, so a 32 MB body cannot stall the worker for seconds.
pub const INLINE_ESTIMATE_MAX_BYTES: usize = 256 * 1024;

/// Most large bodies counted on helper threads at once, process-wide; past it a count gets a
/// 503 to retry rather than a thread of its own.
pub const MAX_ESTIMATE_THREADS: usize = 4;

/// How often a request waiting for a helper thread's count looks for it.
pub const ESTIMATE_POLL: Duration = Duration::from_millis(1);

/// Large counts running on helper threads now.
static ESTIMATES_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A cut-short stream's request body up to this size is counted on the worker (1.4 ms at the
/// 11.5 MiB/s `benches/tokens.rs` measured for a Chat agent body on a busy 2-core host, 3.5 ms
/// for text with no whitespace, the tokenizer's worst case); a larger one on a helper thread.
/// Smaller than count_tokens' bound: nobody waits for this count, and whoever sends the body
/// chooses it.
pub const INLINE_CUT_SHORT_BYTES: usize = 16 * 1024;

/// Most bytes of a cut-short stream's prompt text put through the tokenizer (at most about
/// 0.2 s of a helper thread, worst-case text); text past it is counted at the rate measured on
/// what went through.
pub const CUT_SHORT_TEXT_BYTES: usize = 1024 * 1024;

/// Longest a cut-short stream waits for the tokenizer to be built (on first use); past it, or
/// when every helper thread is busy with a large body, the prompt is counted as one token per
/// [`crate::usage::BYTES_PER_TOKEN_GUESS`] bytes.
pub const CUT_SHORT_TOKENIZER_WAIT: Duration = Duration::from_secs(10);

/// The answer `{"input_tokens": N}` for an Anthropic count_tokens body.
pub(super) async fn count(format: Format, body: Bytes) -> Result<Vec<u8>> {
    let bpe = tokenizer(TOKENIZER_WAIT_LIMIT).await?;
    let estimate = move |body: &[u8]| match format {
        Format::Gemini => crate::tokens::estimate_request(format, body, bpe, usize::MAX),
        _ => crate::tokens::estimate_anthropic_request(body, bpe),
    };
    let n = if body.len() <= INLINE_ESTIMATE_MAX_BYTES {
        estimate(&body).map_err(|e| e.to_string())
    } else {
        off_worker(move || estimate(&body).map_err(|e| e.to_string())).await?
    }
    .map_err(|e| Error::new(ErrorKind::InvalidBody, e))?;
    // In the asking client's own shape: Gemini's `countTokens` or Anthropic's count_tokens.
    Ok(match format {
        Format::Gemini => format!("{{\"totalTokens\":{n}}}"),
        _ => format!("{{\"input_tokens\":{n}}}"),
    }
    .into_bytes())
}

/// The input tokens of a request (`body`, in the client's dialect `format`) whose stream was
/// cut short before its provider said its usage. Never fails: where the tokenizer cannot be
/// had in time, a helper thread is not free, or the body cannot be read, the figure is its
/// size in [`crate::usage::BYTES_PER_TOKEN_GUESS`]-byte tokens. `hurry`: a drain's time is
/// up (the process exits a moment later): the tokenizer is not waited for.
pub(super) async fn cut_short_prompt(format: Format, body: Bytes, hurry: bool) -> u64 {
    let by_size = (body.len() as u64).div_ceil(crate::usage::BYTES_PER_TOKEN_GUESS);
    let wait = if hurry {
        Duration::ZERO
    } else {
        CUT_SHORT_TOKENIZER_WAIT
    };
    let Ok(bpe) = tokenizer(wait).await else {
        return by_size;
    };
    let counted = if body.len() <= INLINE_CUT_SHORT_BYTES {
        crate::tokens::estimate_request(format, &body, bpe, CUT_SHORT_TEXT_BYTES)
            .map_err(|e| e.to_string())
    } else {
        match off_worker(move || {
            crate::tokens::estimate_request(format, &body, bpe, CUT_SHORT_TEXT_BYTES)
                .map_err(|e| e.to_string())
        })
        .await
        {
            Ok(counted) => counted,
            Err(_) => return by_size,
        }
    };
    counted.unwrap_or(by_size)
}

/// Count a large body on a helper thread (`work`); the worker's task waits on its timer.
async fn off_worker(
    work: impl FnOnce() -> std::result::Result<u64, String> + Send + 'static,
) -> Result<std::result::Result<u64, String>> {
    if ESTIMATES_RUNNING.fetch_add(1, Ordering::AcqRel) >= MAX_ESTIMATE_THREADS {
        ESTIMATES_RUNNING.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::new(
            ErrorKind::Busy,
            "the gateway is counting too many large requests at once; retry shortly",
        ));
    }
    let answer: Arc<OnceLock<std::result::Result<u64, String>>> = Arc::new(OnceLock::new());
    let out = answer.clone();
    let spawned = std::thread::Builder::new()
        .name("ringway-count".into())
        .spawn(move || {
            let _ = out.set(work());
            ESTIMATES_RUNNING.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        ESTIMATES_RUNNING.fetch_sub(1, Ordering::AcqRel);
        return Err(
            Error::new(ErrorKind::Internal, "cannot start a counting thread").with_cause(e),
        );
    }
    loop {
        if let Some(result) = answer.get() {
            return Ok(result.clone());
        }
        crate::rt::timer::sleep(ESTIMATE_POLL).await;
    }
}

/// The shared tokenizer, waiting (without blocking the worker, at most `wait`) while it is
/// being built.
async fn tokenizer(wait: Duration) -> Result<&'static CoreBPE> {
    // Built on first use, on a helper thread: it costs ~45 MiB, which a gateway that is never
    // asked to count tokens for an OpenAI-kind model, and never has such a stream cut short,
    // should not pay (idle RSS stays ~11 MB). The first such request waits ~0.2 s for it on
    // the worker's timer, never blocking it.
    crate::tokens::shared::start_loading();
    let deadline = Instant::now() + wait;
    loop {
        match crate::tokens::shared::get() {
            Some(Ok(bpe)) => return Ok(bpe),
            Some(Err(e)) => return Err(Error::new(ErrorKind::Internal, e.to_owned())),
            None if Instant::now() >= deadline => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "the tokenizer for token counts is still being built",
                ))
            }
            None => crate::rt::timer::sleep(TOKENIZER_POLL).await,
        }
    }
}
