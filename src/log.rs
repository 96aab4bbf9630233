//! Minimal leveled logging to stderr. One line per message, prefixed with the level; the
//! level comes from `RINGWAY_LOG` (`error`, `warn`, `info`, `debug`; default `info`).

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);

/// Read `RINGWAY_LOG` once at start.
pub fn init_from_env() {
    let level = match std::env::var("RINGWAY_LOG").as_deref() {
        Ok("error") => 0,
        Ok("warn") => 1,
        Ok("debug") => 3,
        _ => 2,
    };
    LEVEL.store(level, Ordering::Relaxed);
}

fn emit(level: u8, tag: &str, args: std::fmt::Arguments<'_>) {
    if level <= LEVEL.load(Ordering::Relaxed) {
        eprintln!("ringway {tag}: {args}");
    }
}

/// Something failed and the operator should know.
pub fn error(args: std::fmt::Arguments<'_>) {
    emit(0, "error", args);
}

/// Something went wrong with one request or connection.
pub fn warn(args: std::fmt::Arguments<'_>) {
    emit(1, "warn", args);
}

/// Start-up and lifecycle facts.
pub fn info(args: std::fmt::Arguments<'_>) {
    emit(2, "info", args);
}

/// Detail for debugging.
pub fn debug(args: std::fmt::Arguments<'_>) {
    emit(3, "debug", args);
}
