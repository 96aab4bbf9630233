//! The `Compiler` every section extends (the file's text and name), and `ConfigError`: each
//! error names the file, line and key path.

use std::fmt;
use std::ops::Range;

/// A config error: file, line, key path and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Key path such as `route[2].targets[0]`; empty for a TOML syntax error.
    pub path: String,
    /// The reason.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| memchr::memchr_iter(b'\n', b).count())
        + 1
}

/// Compiles one parsed file; each section's file adds its own `impl Compiler` block.
pub(super) struct Compiler<'t> {
    /// The file's text (spans point into it).
    pub(super) text: &'t str,
    /// The file's name, for errors.
    pub(super) file: &'t str,
}

impl Compiler<'_> {
    /// An error at `span` of the file: the line is counted from the text.
    pub(super) fn err(
        &self,
        span: Range<usize>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(line_of(self.text, span.start)),
            path: path.into(),
            message: message.into(),
        }
    }
}

/// 32 bytes written as 64 hex digits (a key's SHA-256, a seal key).
pub(super) fn hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}
