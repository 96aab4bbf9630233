//! `[responses.store]`: the TOML section as written ([`RawStore`]), its checks, and the compiled
//! [`Settings`] the store starts from. Errors name the key path.

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::sqlite::Location;
use super::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_QUEUE_BYTES, DEFAULT_READ_QUEUE,
    DEFAULT_RETENTION_HOURS, DEFAULT_WRITE_QUEUE,
};

/// `retention_hours` accepted: an hour to OpenAI's own 30 days.
pub const RETENTION_HOURS_RANGE: RangeInclusive<u32> = 1..=720;
/// `max_bytes` accepted: 1 MiB to 1 TiB.
pub const MAX_BYTES_RANGE: RangeInclusive<u64> = (1 << 20)..=(1 << 40);
/// Smallest `max_response_bytes` accepted (the largest is `max_bytes`).
pub const MIN_RESPONSE_BYTES: u64 = 1 << 10;

/// `[responses.store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Store responses whose request leaves `store` unset or true. Default true.
    pub enabled: Option<bool>,
    /// The SQLite file (created if missing; `-wal` and `-shm` files beside it). Unset: kept in
    /// the process's memory, gone when it exits.
    pub path: Option<Spanned<String>>,
    /// Hours a response is kept after it was stored (1 to 720). Default 24.
    pub retention_hours: Option<Spanned<u32>>,
    /// Sealed bytes kept; past it the responses kept the shortest go first. Default 256 MiB.
    pub max_bytes: Option<Spanned<u64>>,
    /// Largest response stored, its whole conversation counted; larger ones are not stored.
    /// Default 8 MiB.
    pub max_response_bytes: Option<Spanned<u64>>,
    /// Environment variable holding the store key: 64 hex digits or 32 bytes in base64.
    /// Unset: a key is drawn at start and stored responses do not survive a restart. Needs
    /// `path`.
    pub key_env: Option<Spanned<String>>,
}

/// The store key's 32 bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(pub [u8; 32]);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes(..)")
    }
}

/// `[responses.store]`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A file, or the process's memory.
    pub location: Location,
    /// Hours a response is visible after it was stored.
    pub retention_hours: u32,
    /// Sealed bytes kept.
    pub max_bytes: u64,
    /// Largest response stored (object and whole conversation).
    pub max_response_bytes: u64,
    /// The store key; None: drawn at start.
    pub key: Option<KeyBytes>,
    /// Responses that may wait for the writer.
    pub write_queue: usize,
    /// Bytes of responses that may wait for the writer.
    pub queue_bytes: u64,
    /// Lookups that may wait for the reader.
    pub read_queue: usize,
    /// In the PostgreSQL of `[cluster] postgres`, shared with the other nodes (`location` is
    /// not used).
    pub shared: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: Location::Memory,
            retention_hours: DEFAULT_RETENTION_HOURS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            key: None,
            write_queue: DEFAULT_WRITE_QUEUE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            read_queue: DEFAULT_READ_QUEUE,
            shared: false,
        }
    }
}

impl Settings {
    /// One line for the start-up summary (`ringway check`).
    pub fn describe(&self) -> String {
        let place = match &self.location {
            _ if self.shared => "in PostgreSQL ([cluster] postgres)".into(),
            Location::File(p) => p.display().to_string(),
            Location::Memory => "in memory".into(),
        };
        let key = if self.key.is_some() {
            "key from the environment"
        } else {
            "key drawn at start: gone at restart"
        };
        format!(
            "responses store {place} (retention {} h, max {} bytes, {} per response, {key})",
            self.retention_hours, self.max_bytes, self.max_response_bytes
        )
    }
}

/// A refused setting: where (byte span in the file), which key, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub span: Range<usize>,
    pub path: String,
    pub message: String,
}

/// Compile the section found at `section` (`responses.store`): None when `enabled = false`.
/// `shared`: `[cluster] postgres` is set, so the store is there (a path is not used, and
/// `key_env` does not need one).
pub fn compile(
    raw: &RawStore,
    section: &str,
    shared: bool,
) -> Result<Option<Settings>, SettingsError> {
    let err = |span: Range<usize>, key: &str, message: String| SettingsError {
        span,
        path: format!("{section}.{key}"),
        message,
    };
    let mut s = Settings {
        shared,
        ..Settings::default()
    };
    if let Some(h) = &raw.retention_hours {
        if !RETENTION_HOURS_RANGE.contains(h.get_ref()) {
            return Err(err(
                h.span(),
                "retention_hours",
                format!(
                    "must be {} to {} (hours)",
                    RETENTION_HOURS_RANGE.start(),
                    RETENTION_HOURS_RANGE.end()
                ),
            ));
        }
        s.retention_hours = *h.get_ref();
    }
    if let Some(m) = &raw.max_bytes {
        if !MAX_BYTES_RANGE.contains(m.get_ref()) {
            return Err(err(
                m.span(),
                "max_bytes",
                format!(
                    "must be {} to {} (bytes)",
                    MAX_BYTES_RANGE.start(),
                    MAX_BYTES_RANGE.end()
                ),
            ));
        }
        s.max_bytes = *m.get_ref();
    }
    match &raw.max_response_bytes {
        Some(m) if *m.get_ref() < MIN_RESPONSE_BYTES || *m.get_ref() > s.max_bytes => {
            return Err(err(
                m.span(),
                "max_response_bytes",
                format!(
                    "must be {MIN_RESPONSE_BYTES} to max_bytes ({}) (bytes)",
                    s.max_bytes
                ),
            ));
        }
        Some(m) => s.max_response_bytes = *m.get_ref(),
        // A small max_bytes caps the default too.
        None => s.max_response_bytes = s.max_response_bytes.min(s.max_bytes),
    }
    if let Some(p) = &raw.path {
        let path = p.get_ref();
        if path.is_empty() || path.contains('\0') {
            return Err(err(
                p.span(),
                "path",
                "must be a file path (not empty, no NUL byte)".into(),
            ));
        }
        s.location = Location::File(PathBuf::from(path));
    }
    if let Some(var) = &raw.key_env {
        if raw.path.is_none() && !shared {
            return Err(err(
                var.span(),
                "key_env",
                "needs `path`: without one, stored responses are kept in memory and a fixed key \
                 would not make them survive a restart"
                    .into(),
            ));
        }
        let Ok(value) = std::env::var(var.get_ref()) else {
            return Err(err(
                var.span(),
                "key_env",
                format!("environment variable {} is not set", var.get_ref()),
            ));
        };
        let key = super::seal::parse_key(&value).ok_or_else(|| {
            err(
                var.span(),
                "key_env",
                format!(
                    "environment variable {} must hold 32 bytes: 64 hex digits or base64",
                    var.get_ref()
                ),
            )
        })?;
        s.key = Some(KeyBytes(key));
    }
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Settings>, SettingsError> {
        let raw: RawStore = toml::from_str(text).unwrap();
        compile(&raw, "responses.store", false)
    }

    #[test]
    fn defaults_keep_responses_in_memory_for_a_day() {
        let s = parse("").unwrap().unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.location, Location::Memory);
        assert_eq!(s.retention_hours, 24);
        assert!(s.key.is_none());
        assert_eq!(parse("enabled = false").unwrap(), None);
        assert!(s.describe().contains("in memory"), "{}", s.describe());
    }

    #[test]
    fn values_are_taken_and_checked_with_their_key_path() {
        let s = parse(
            "path = \"/var/lib/ringway/responses.db\"\nretention_hours = 2\n\
             max_bytes = 10485760\nmax_response_bytes = 65536",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.location,
            Location::File("/var/lib/ringway/responses.db".into())
        );
        assert_eq!(
            (s.retention_hours, s.max_bytes, s.max_response_bytes),
            (2, 10 << 20, 64 << 10)
        );
        // A small max_bytes caps the default per-response bound.
        let small = parse("max_bytes = 2097152").unwrap().unwrap();
        assert_eq!(small.max_response_bytes, 2 << 20);
        for (text, key) in [
            ("retention_hours = 0", "retention_hours"),
            ("retention_hours = 721", "retention_hours"),
            ("max_bytes = 1000", "max_bytes"),
            ("max_response_bytes = 10", "max_response_bytes"),
            (
                "max_bytes = 2097152\nmax_response_bytes = 4194304",
                "max_response_bytes",
            ),
            ("path = \"\"", "path"),
            ("key_env = \"RINGWAY_TEST_STORE_KEY_UNUSED\"", "key_env"),
            (
                "path = \"x.db\"\nkey_env = \"RINGWAY_TEST_STORE_KEY_UNSET_9\"",
                "key_env",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.path, format!("responses.store.{key}"), "{text}: {e:?}");
        }
    }

    #[test]
    fn the_key_comes_from_the_environment() {
        // Variables only this test sets.
        std::env::set_var("RINGWAY_TEST_STORE_KEY_HEX", "cd".repeat(32));
        std::env::set_var("RINGWAY_TEST_STORE_KEY_BAD", "not a key");
        let s = parse("path = \"x.db\"\nkey_env = \"RINGWAY_TEST_STORE_KEY_HEX\"")
            .unwrap()
            .unwrap();
        assert_eq!(s.key, Some(KeyBytes([0xcd; 32])));
        assert_eq!(format!("{:?}", s.key), "Some(KeyBytes(..))");
        let e = parse("path = \"x.db\"\nkey_env = \"RINGWAY_TEST_STORE_KEY_BAD\"").unwrap_err();
        assert!(e.message.contains("64 hex digits"), "{e:?}");
    }
}
