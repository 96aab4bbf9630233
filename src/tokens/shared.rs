//! The process's one o200k_base tokenizer, built once on a helper thread so that no worker
//! spends the build (a 3.6 MB vocabulary into hash maps) on a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

static TOKENIZER: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
static STARTED: AtomicBool = AtomicBool::new(false);

/// Start building the tokenizer on a helper thread, once per process; later calls do
/// nothing. Returns at once.
pub fn start_loading() {
    if STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ringway-tokenizer".into())
        .spawn(|| {
            let started = std::time::Instant::now();
            let built = build();
            match &built {
                Ok(_) => crate::log::info(format_args!(
                    "count_tokens tokenizer (o200k_base) ready in {} ms",
                    started.elapsed().as_millis()
                )),
                Err(e) => crate::log::warn(format_args!(
                    "{e}; count_tokens for OpenAI-kind models will fail"
                )),
            }
            let _ = TOKENIZER.set(built);
        });
    if let Err(e) = spawned {
        let _ = TOKENIZER.set(Err(format!("cannot start the tokenizer thread: {e}")));
    }
}

/// The tokenizer once built (or why it could not be); `None` while it is still building or
/// before [`start_loading`]. Never waits.
pub fn get() -> Option<Result<&'static CoreBPE, &'static str>> {
    TOKENIZER.get().map(|r| r.as_ref().map_err(String::as_str))
}

/// Build it here, on the calling thread (the helper thread, a bench, a test).
pub fn build() -> Result<CoreBPE, String> {
    // The crate's builder unwraps its own embedded data; a panic there must not leave the
    // cell empty forever, so it becomes an error.
    match std::panic::catch_unwind(tiktoken_rs::o200k_base) {
        Ok(Ok(bpe)) => Ok(bpe),
        Ok(Err(e)) => Err(format!("cannot build the o200k_base tokenizer: {e}")),
        Err(_) => Err("building the o200k_base tokenizer panicked".into()),
    }
}
