//! Configs the section tests share, and the assertions they make about a refused one.
use super::Config;

/// A small config that compiles: two providers, one route, one key.
pub(super) const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
workers = 2

[[provider]]
name = "a"
kind = "anthropic"
base_url = "http://127.0.0.1:9/"

[[provider]]
name = "o"
kind = "openai"
base_url = "http://localhost:8080/v1"

[[route]]
model = "fast"
targets = ["a/claude-x", "o/gpt-y"]

[[key]]
name = "team"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
routes = ["fast", "o/*"]
"#;

/// `GOOD` with `from` replaced by `to` must fail at `path`, with `reason` in the message.
#[track_caller]
pub(super) fn refused(from: &str, to: &str, path: &str, reason: &str) {
    assert!(GOOD.contains(from), "{from}");
    let e = match Config::from_toml(&GOOD.replace(from, to), "t.toml") {
        Ok(_) => panic!("accepted {to:?}"),
        Err(e) => e,
    };
    assert_eq!(e.path, path, "{to:?}: {e}");
    assert!(e.line.is_some(), "{e}");
    assert!(e.message.contains(reason), "{to:?}: {e}");
}

/// `text` must fail with exactly `line: path: message`.
#[track_caller]
pub(super) fn fails(text: &str, line: usize, path: &str, message: &str) {
    let e = match Config::from_toml(text, "t.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(
        (e.line, e.path.as_str(), e.message.as_str()),
        (Some(line), path, message),
        "{text}"
    );
}
