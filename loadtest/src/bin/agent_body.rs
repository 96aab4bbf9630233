//! `agent-body`: writes one agent-size request body to stdout, for oha, curl or a bench.
//!
//! ```text
//! agent-body chat|messages|responses SIZE [--model M] [--stream]
//! ```
//! SIZE is bytes, or KB with a `k` suffix (`300k`).

#[allow(
    dead_code,
    reason = "shared by the benches and this command, each using a part"
)]
#[path = "../agent.rs"]
mod agent;

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "usage: agent-body chat|messages|responses SIZE [--model M] [--stream]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut shape = None;
    let mut size = None;
    let mut model = String::from("agent");
    let mut stream = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stream" => stream = true,
            "--model" => match it.next() {
                Some(m) => model.clone_from(m),
                None => return fail("--model needs a value"),
            },
            s if shape.is_none() => match agent::Shape::parse(s) {
                Some(k) => shape = Some(k),
                None => return fail(&format!("unknown format {s:?}")),
            },
            s if size.is_none() => match agent::parse_size(s) {
                Some(n) => size = Some(n),
                None => return fail(&format!("bad size {s:?}")),
            },
            s => return fail(&format!("unexpected argument {s:?}")),
        }
    }
    let (Some(shape), Some(size)) = (shape, size) else {
        return fail("a format and a size are required");
    };
    let body = agent::body(shape, size, &model, stream);
    match std::io::stdout().lock().write_all(&body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write: {e}")),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("agent-body: {why}\n{USAGE}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::agent::{body, parse_size, Shape, SIZES};
    use serde_json::Value;

    #[test]
    fn bodies_are_valid_json_of_the_size_asked_in_their_format() {
        for shape in Shape::ALL {
            for &size in &SIZES {
                let b = body(shape, size, "m", true);
                assert!(b.len() >= size, "{shape:?} {size}: {}", b.len());
                assert!(b.len() < size + 2048, "{shape:?} {size}: {}", b.len());
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                let list = match shape {
                    Shape::Responses => &v["input"],
                    _ => &v["messages"],
                };
                assert!(list.as_array().is_some_and(|l| l.len() > 4), "{shape:?}");
                assert_eq!(v["model"], "m");
                // The same arguments, the same bytes.
                assert_eq!(b, body(shape, size, "m", true));
            }
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("300k"), Some(300 * 1024));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
    }
}
