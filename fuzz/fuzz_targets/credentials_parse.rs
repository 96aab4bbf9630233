//! Cloud credential answers and files through their parsers (the first byte picks one): never
//! a panic, and whatever is accepted is fit for a header (visible ASCII, bounded) or, for a
//! URL, a host and an origin-form target without spaces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::credentials::{aws, fetch, google, MAX_SECRET_LEN};

fn header_fit(v: &str) {
    assert!(!v.is_empty() && v.len() <= MAX_SECRET_LEN && v.bytes().all(|b| b.is_ascii_graphic()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match pick % 5 {
        0 => {
            let (creds, config) = text.split_once('\u{0}').unwrap_or((&text, ""));
            if let Ok(Some(k)) = aws::profile_keys(Some(creds), Some(config), "default") {
                header_fit(&k.access_key_id);
                header_fit(&k.secret_access_key);
                k.session_token.as_deref().map(header_fit);
            }
            let _ = aws::profile_region(config, "default");
        }
        1 => {
            if let Ok(k) = aws::container_keys(rest, "fuzz") {
                header_fit(&k.access_key_id);
                header_fit(&k.secret_access_key);
                k.session_token.as_deref().map(header_fit);
            }
        }
        2 => {
            if let Ok((token, _)) = google::token_answer(200, rest, "fuzz") {
                header_fit(&token);
            }
        }
        3 => {
            let _ = google::parse_file(rest, "fuzz");
            let _ = aws::rfc3339(&text);
        }
        _ => {
            if let Ok(u) = fetch::Url::parse(&text) {
                assert!(!u.host.is_empty());
                assert!(u.target.starts_with('/'));
                assert!(!u.target.bytes().any(|b| b <= b' '));
            }
        }
    }
});
