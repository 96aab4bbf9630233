//! A provider's own credential scrubbed out of what that provider sends back (error bodies,
//! response headers, in-stream error events, error messages quoting them): a provider that
//! echoes the gateway's key in an "invalid key" answer must not hand it to a client or a log.
//! Pure: bytes in, bytes out.
//!
//! What counts as the credential (each replaced with [`REDACTED`]):
//! - any run of at least [`MIN_FRAGMENT_BYTES`] consecutive bytes of the key: the whole key,
//!   or a prefix, suffix or middle part a provider quotes. An Aho-Corasick automaton over the
//!   key's windows of that length (built once per provider when the config loads) finds them,
//!   and each match is extended for as long as the text goes on matching the key;
//! - a masked echo: a run of at least [`MIN_MASK_RUN`] mask characters (`*` or `•`) next to a
//!   start of the key before it or an end of the key after it, of at least
//!   [`MIN_VISIBLE_BYTES`] (`sk-proj-****…abcd`, `sk-ab******wxyz`, `****wxyz`). The visible
//!   part that matches goes with the mask.
//!
//! Shorter fragments (an 8-byte window of a random key matches chance text about never; a
//! 4-byte suffix alone would match ordinary words) are left, and a key shorter than
//! [`MIN_FRAGMENT_BYTES`] is not scrubbed at all: such a key is no secret anyway.

use std::ops::Range;

use aho_corasick::{AhoCorasick, Input, MatchKind};

/// Shortest run of a key's bytes that is scrubbed wherever it appears.
pub const MIN_FRAGMENT_BYTES: usize = 8;

/// Fewest mask characters (`*`, `•`) in a row that make a masked echo.
pub const MIN_MASK_RUN: usize = 3;

/// Fewest visible bytes of the key beside a mask for it to be the key's masked echo.
pub const MIN_VISIBLE_BYTES: usize = 2;

/// How far beside a mask its visible part is read.
const MAX_VISIBLE_BYTES: usize = 64;

/// What a scrubbed credential reads as: JSON-string and header-value safe.
pub const REDACTED: &str = "[redacted]";

/// `•` in UTF-8.
const BULLET: &[u8] = "\u{2022}".as_bytes();

/// One credential's matcher.
#[derive(Debug)]
pub struct Scrubber {
    key: Vec<u8>,
    windows: AhoCorasick,
    /// Where in the key each window pattern starts.
    starts: Vec<usize>,
}

impl Scrubber {
    /// The matcher for `key`; None for a key shorter than [`MIN_FRAGMENT_BYTES`]. Err: the
    /// automaton could not be built (a key far beyond any real one).
    pub fn new(key: &[u8]) -> Result<Option<Scrubber>, String> {
        if key.len() < MIN_FRAGMENT_BYTES {
            return Ok(None);
        }
        let mut seen = std::collections::HashSet::new();
        let mut patterns = Vec::new();
        let mut starts = Vec::new();
        for (i, w) in key.windows(MIN_FRAGMENT_BYTES).enumerate() {
            // A window the key repeats is matched at its first place.
            if seen.insert(w) {
                patterns.push(w);
                starts.push(i);
            }
        }
        let windows = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .map_err(|e| format!("cannot build the credential matcher: {e}"))?;
        Ok(Some(Scrubber {
            key: key.to_vec(),
            windows,
            starts,
        }))
    }

    /// `text` with the credential scrubbed; None when there was nothing to scrub (the common
    /// case costs a scan and no allocation).
    pub fn scrub(&self, text: &[u8]) -> Option<Vec<u8>> {
        // Too short to hold a fragment or a masked echo (most header values).
        if text.len() < MIN_MASK_RUN + MIN_VISIBLE_BYTES {
            return None;
        }
        let mut spans = Vec::new();
        self.fragments(text, &mut spans);
        self.masked(text, &mut spans);
        if spans.is_empty() {
            return None;
        }
        spans.sort_by_key(|s| s.start);
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for span in spans {
            if span.end <= at {
                continue;
            }
            if span.start >= at {
                out.extend_from_slice(text.get(at..span.start).unwrap_or_default());
                out.extend_from_slice(REDACTED.as_bytes());
            }
            // Overlapping the one before: that marker covers it.
            at = span.end;
        }
        out.extend_from_slice(text.get(at..).unwrap_or_default());
        Some(out)
    }

    /// [`Scrubber::scrub`] for text (the scrubbed spans are ASCII or whole characters, so
    /// text stays text).
    pub fn scrub_str(&self, text: &str) -> Option<String> {
        self.scrub(text.as_bytes())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Runs of at least [`MIN_FRAGMENT_BYTES`] of the key.
    fn fragments(&self, text: &[u8], spans: &mut Vec<Range<usize>>) {
        let mut at = 0;
        while at < text.len() {
            let Some(m) = self.windows.find(Input::new(text).range(at..)) else {
                break;
            };
            let mut end = m.end();
            let mut k = self
                .starts
                .get(m.pattern().as_usize())
                .map_or(self.key.len(), |s| s + MIN_FRAGMENT_BYTES);
            while let (Some(a), Some(b)) = (text.get(end), self.key.get(k)) {
                if a != b {
                    break;
                }
                end += 1;
                k += 1;
            }
            spans.push(m.start()..end);
            at = end;
        }
    }

    /// Masked echoes: a mask run with a start of the key before it or an end after it.
    fn masked(&self, text: &[u8], spans: &mut Vec<Range<usize>>) {
        let mut i = 0;
        while let Some(p) = text
            .get(i..)
            .and_then(|t| memchr::memchr2(b'*', BULLET[0], t))
        {
            let start = i + p;
            let mut end = start;
            let mut run = 0;
            loop {
                if text.get(end) == Some(&b'*') {
                    end += 1;
                } else if text.get(end..end + BULLET.len()) == Some(BULLET) {
                    end += BULLET.len();
                } else {
                    break;
                }
                run += 1;
            }
            if run == 0 {
                // A lead byte of some other character.
                i = start + 1;
                continue;
            }
            if run >= MIN_MASK_RUN {
                let before = visible_before(text, start);
                let after = visible_after(text, end);
                let head = before.len() >= MIN_VISIBLE_BYTES && self.key.starts_with(before);
                let tail = after.len() >= MIN_VISIBLE_BYTES && self.key.ends_with(after);
                if head || tail {
                    let from = if head { start - before.len() } else { start };
                    let to = if tail { end + after.len() } else { end };
                    spans.push(from..to);
                }
            }
            i = end;
        }
    }
}

/// Bytes a key is made of, as far as a masked echo's visible part goes.
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The key-like bytes right before `at` (at most [`MAX_VISIBLE_BYTES`]).
fn visible_before(text: &[u8], at: usize) -> &[u8] {
    let head = text.get(..at).unwrap_or_default();
    let n = head
        .iter()
        .rev()
        .take(MAX_VISIBLE_BYTES)
        .take_while(|b| key_byte(**b))
        .count();
    head.get(at - n..).unwrap_or_default()
}

/// The key-like bytes from `at` on (at most [`MAX_VISIBLE_BYTES`]).
fn visible_after(text: &[u8], at: usize) -> &[u8] {
    let tail = text.get(at..).unwrap_or_default();
    let n = tail
        .iter()
        .take(MAX_VISIBLE_BYTES)
        .take_while(|b| key_byte(**b))
        .count();
    tail.get(..n).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";

    fn scrub(text: &str) -> String {
        let s = Scrubber::new(KEY.as_bytes()).unwrap().unwrap();
        s.scrub_str(text).unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn the_key_and_its_fragments_go() {
        assert_eq!(scrub(KEY), REDACTED);
        assert_eq!(scrub(&format!("key {KEY}.")), "key [redacted].");
        // A prefix, a suffix, a middle part of 8 bytes or more.
        assert_eq!(scrub("got sk-proj-Ab3dE here"), "got [redacted] here");
        assert_eq!(scrub("ends ...Uv1wXy4z"), "ends ...[redacted]");
        assert_eq!(scrub("mid Ij9kLm2nOp!"), "mid [redacted]!");
        // Twice, and back to back.
        assert_eq!(
            scrub(&format!("{KEY}{KEY} and {KEY}")),
            "[redacted][redacted] and [redacted]"
        );
        // In JSON: still JSON, the message scrubbed.
        let body = format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}."}}}}"#);
        let v: serde_json::Value = serde_json::from_str(&scrub(&body)).unwrap();
        assert_eq!(
            v["error"]["message"],
            "Incorrect API key provided: [redacted]."
        );
    }

    #[test]
    fn masked_echoes_go() {
        for (text, want) in [
            (
                "Incorrect API key provided: sk-proj-****************4z.",
                "Incorrect API key provided: [redacted].",
            ),
            ("key sk-pr*******wXy4z!", "key [redacted]!"),
            ("key ••••••••Xy4z", "key [redacted]"),
            ("key ****y4z and more", "key [redacted] and more"),
            ("key sk-******** (masked)", "key [redacted] (masked)"),
        ] {
            assert_eq!(scrub(text), want, "{text}");
        }
    }

    #[test]
    fn ordinary_text_stays() {
        let s = Scrubber::new(KEY.as_bytes()).unwrap().unwrap();
        for text in [
            "",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com.",
            "sk-proj",
            "Ab3dEf6",
            "**bold** text",
            "a *** b",
            "****abcd",
            "x****y",
            "Uv1wXy4",
            "caf\u{e9} \u{2022}\u{2022}",
        ] {
            assert_eq!(s.scrub(text.as_bytes()), None, "{text}");
        }
        // Short keys are not scrubbed (they would match ordinary words).
        assert!(Scrubber::new(b"short").unwrap().is_none());
    }
}
