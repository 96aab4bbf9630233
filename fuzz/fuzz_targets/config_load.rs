#![no_main]
//! Config compiler: no panic on any text; an accepted config names providers and models only
//! with strings that may go into a header (model ids are echoed in `x-ringway-model`). Inputs
//! starting with 0 are three strings (split at 0xff) dropped into a valid config as provider
//! name, route model and target model, so any string reaches the checks, escapes and all.

use libfuzzer_sys::fuzz_target;
use ringway::config::Config;
use ringway::http1::is_valid_field_value;

/// A TOML basic string holding `s`, whatever it contains.
fn toml_str(s: &[u8]) -> String {
    let escaped: String = String::from_utf8_lossy(s)
        .chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_control() => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect();
    format!("\"{escaped}\"")
}

fuzz_target!(|data: &[u8]| {
    let text = match data.split_first() {
        Some((0, rest)) => {
            let mut parts = rest.splitn(3, |&b| b == 0xff);
            let mut next = || parts.next().unwrap_or_default();
            let (provider, route, model) = (next(), next(), next());
            let target = [provider, b"/", model].concat();
            format!(
                "[[provider]]\nname = {}\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
                 [[route]]\nmodel = {}\ntargets = [{}]\n",
                toml_str(provider),
                toml_str(route),
                toml_str(&target)
            )
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    let Ok(config) = Config::from_toml(&text, "fuzz.toml") else {
        return;
    };
    for p in &config.providers {
        assert!(
            is_valid_field_value(p.name.as_bytes()),
            "provider {:?}",
            p.name
        );
    }
    for r in config.routing.routes() {
        assert!(
            is_valid_field_value(r.model.as_bytes()),
            "route {:?}",
            r.model
        );
        for t in &r.targets {
            assert!(
                is_valid_field_value(t.model.as_bytes()),
                "target {:?}",
                t.model
            );
        }
    }
    let _ = config.describe();
});
