//! The gateway's own log (not the access log): leveled lines on stderr, each stamped with the
//! UTC time (RFC 3339, milliseconds). `RINGWAY_LOG` picks the level (`error`, `warn`, `info`,
//! `debug`; default `info`), `RINGWAY_LOG_FORMAT` the format: `text` (default),
//! `2026-11-25T12:00:00.123Z ringway info: message`, or `json`, one object a line,
//! `{"ts":"…","level":"info","msg":"…"}`. A message is escaped so that it stays one line.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::SystemTime;

static LEVEL: AtomicU8 = AtomicU8::new(2);
static JSON: AtomicBool = AtomicBool::new(false);

/// Room reserved for one line up front: start-up and warning lines fit, so a line allocates
/// once.
const LINE_CAPACITY: usize = 256;

/// Read `RINGWAY_LOG` and `RINGWAY_LOG_FORMAT` once at start. A value it does not know is
/// named in a warning, and the default applies.
pub fn init_from_env() {
    use std::env::VarError;
    let format = std::env::var("RINGWAY_LOG_FORMAT");
    let json = matches!(format.as_deref(), Ok("json"));
    JSON.store(json, Ordering::Relaxed);
    let level = std::env::var("RINGWAY_LOG");
    let n = match level.as_deref() {
        Ok("error") => 0,
        Ok("warn") => 1,
        Ok("debug") => 3,
        _ => 2,
    };
    LEVEL.store(n, Ordering::Relaxed);
    match format {
        Ok(v) if v == "json" || v == "text" => {}
        Err(VarError::NotPresent) => {}
        Ok(v) => warn(format_args!(
            "RINGWAY_LOG_FORMAT={v:?}: expected \"text\" or \"json\"; logging as text"
        )),
        Err(VarError::NotUnicode(v)) => warn(format_args!(
            "RINGWAY_LOG_FORMAT={v:?}: expected \"text\" or \"json\"; logging as text"
        )),
    }
    match level {
        Ok(v) if ["error", "warn", "info", "debug"].contains(&v.as_str()) => {}
        Err(VarError::NotPresent) => {}
        Ok(v) => warn(format_args!(
            "RINGWAY_LOG={v:?}: expected error, warn, info or debug; logging at info"
        )),
        Err(VarError::NotUnicode(v)) => warn(format_args!(
            "RINGWAY_LOG={v:?}: expected error, warn, info or debug; logging at info"
        )),
    }
}

/// Writes a message into the line escaped: as the inside of a JSON string, or in text with
/// control characters and backslashes escaped (a newline in a message cannot start a line
/// that looks like the log's own).
struct Escaped<'a> {
    out: &'a mut Vec<u8>,
    json: bool,
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.json {
            crate::json::write_json_escaped(self.out, s);
            return Ok(());
        }
        for c in s.chars() {
            match c {
                '\\' => self.out.extend_from_slice(b"\\\\"),
                '\n' => self.out.extend_from_slice(b"\\n"),
                '\r' => self.out.extend_from_slice(b"\\r"),
                '\t' => self.out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    let _ = write!(self.out, "\\u{{{:x}}}", u32::from(c));
                }
                c => {
                    let mut b = [0u8; 4];
                    self.out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        Ok(())
    }
}

fn emit(level: u8, tag: &str, args: fmt::Arguments<'_>) {
    if level > LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let json = JSON.load(Ordering::Relaxed);
    let mut line = Vec::with_capacity(LINE_CAPACITY);
    if json {
        line.extend_from_slice(b"{\"ts\":\"");
    }
    crate::calendar::rfc3339_millis(&mut line, SystemTime::now());
    if json {
        line.extend_from_slice(b"\",\"level\":\"");
        line.extend_from_slice(tag.as_bytes());
        line.extend_from_slice(b"\",\"msg\":\"");
    } else {
        line.extend_from_slice(b" ringway ");
        line.extend_from_slice(tag.as_bytes());
        line.extend_from_slice(b": ");
    }
    // A Display that fails leaves what it wrote; the line still closes.
    let _ = fmt::Write::write_fmt(
        &mut Escaped {
            out: &mut line,
            json,
        },
        args,
    );
    if json {
        line.extend_from_slice(b"\"}");
    }
    line.push(b'\n');
    // One write per line (stderr is unbuffered): lines of different threads never interleave.
    let _ = std::io::stderr().lock().write_all(&line);
}

/// Something failed and the operator should know.
pub fn error(args: fmt::Arguments<'_>) {
    emit(0, "error", args);
}

/// Something went wrong with one request or connection.
pub fn warn(args: fmt::Arguments<'_>) {
    emit(1, "warn", args);
}

/// Start-up and lifecycle facts.
pub fn info(args: fmt::Arguments<'_>) {
    emit(2, "info", args);
}

/// Detail for debugging.
pub fn debug(args: fmt::Arguments<'_>) {
    emit(3, "debug", args);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(json: bool, s: &str) -> String {
        let mut out = Vec::new();
        fmt::Write::write_str(
            &mut Escaped {
                out: &mut out,
                json,
            },
            s,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_leave_one_line_and_keep_the_rest() {
        assert_eq!(
            escaped(false, "a\"b\\c\nd\re\tf\u{1b}g é"),
            "a\"b\\\\c\\nd\\re\\tf\\u{1b}g é"
        );
    }

    #[test]
    fn json_escapes_read_back_as_the_message() {
        let msg = "a\"b\\c\nd\u{1}é";
        let quoted = format!("\"{}\"", escaped(true, msg));
        assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), msg);
    }
}
