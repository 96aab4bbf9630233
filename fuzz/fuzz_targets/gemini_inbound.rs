#![no_main]
//! The Gemini dialect's inbound parsers on any path and query: `call` reads
//! `/{version}/models/{model}:{method}` back into exactly the path it came from (a model with
//! no `/`, the method's stream flag), never also a models path; `models_path` names a model
//! the path ends with and that reads back alike; `query_key` is a whole `key=` parameter and
//! `wants_sse` a whole `alt=sse` one. (The proxy's percent-decoding of the model is private to
//! `proxy`; what it is given is `call`'s model, checked here.) No panics.

use libfuzzer_sys::fuzz_target;
use ringway::dialect::gemini::{call, is_gemini_caller, models_path, query_key, wants_sse};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = s.split_once('?').map_or((s, None), |(p, q)| (p, Some(q)));
    if let Some(c) = call(path) {
        let version = &path[..path.len() - c.model.len() - c.call.path.len()];
        assert_eq!(format!("{version}{}{}", c.model, c.call.path), path);
        assert!(!c.model.is_empty() && !c.model.contains('/') && version.ends_with("/models/"));
        assert_eq!(c.stream, c.call.path == ":streamGenerateContent");
        assert_eq!(
            models_path(path),
            None,
            "{path} is a call and a models path"
        );
    }
    if let Some(Some(m)) = models_path(path) {
        assert!(path.ends_with(m) && !m.is_empty() && !m.contains([':', '/']));
        assert_eq!(models_path(&format!("/v1beta/models/{m}")), Some(Some(m)));
    }
    if let Some(q) = query {
        let key = query_key(q);
        assert!(
            key.is_none_or(|k| !k.contains('&') && q.split('&').any(|kv| kv == format!("key={k}")))
        );
        assert_eq!(wants_sse(Some(q)), q.split('&').any(|kv| kv == "alt=sse"));
        assert!(wants_sse(Some(&format!("{q}&alt=sse"))));
        assert_eq!(
            is_gemini_caller(path, false, Some(q)),
            path.starts_with("/v1beta/") || key.is_some()
        );
    }
});
