//! The hand-written Anthropic event reader never disagrees with serde: whenever it reads an
//! event, serde reads the same one (compared by their Debug forms), and through
//! `anthropic_event` the answer is serde's, error or value, for any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::wire::anthropic::StreamEvent;

fuzz_target!(|data: &[u8]| {
    let reference = serde_json::from_slice::<StreamEvent<'_>>(data).map(|e| format!("{e:?}"));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(e) = ringway::wire::chunk::read_anthropic_event(text) {
            assert_eq!(
                Ok(format!("{e:?}")),
                reference.as_ref().map_err(|_| ()).cloned()
            );
        }
    }
    let through = ringway::wire::anthropic_event(data).map(|e| format!("{e:?}"));
    assert_eq!(through.ok(), reference.ok());
});
