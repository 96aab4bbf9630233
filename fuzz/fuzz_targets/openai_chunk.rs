//! The hand-written OpenAI chunk reader never disagrees with serde: whenever it reads a chunk,
//! serde reads the same one (compared by their Debug forms), and through `openai_chunk` the
//! answer is serde's, error or value, for any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::wire::openai::Chunk;

fuzz_target!(|data: &[u8]| {
    let reference = serde_json::from_slice::<Chunk<'_>>(data).map(|c| format!("{c:?}"));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(c) = ringway::wire::chunk::read(text) {
            assert_eq!(
                Ok(format!("{c:?}")),
                reference.as_ref().map_err(|_| ()).cloned()
            );
        }
    }
    let through = ringway::wire::openai_chunk(data).map(|c| format!("{c:?}"));
    assert_eq!(through.ok(), reference.ok());
});
