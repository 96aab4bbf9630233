//! The framing fields of a message head (Content-Length, Transfer-Encoding), read with one
//! set of rules for both directions: requests from clients and responses from providers. Two
//! parsers that disagree on where a body ends are what request smuggling is made of, so each
//! side feeds its header fields here and only applies its own policy (RFC 9112 §6.3) to the
//! result.

use std::fmt;

use super::Framing;

/// Why the framing fields of a head cannot be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// A Content-Length value that is not `1*DIGIT` (no sign, no inner whitespace), overflows
    /// u64, is an empty list, or differs from another Content-Length value.
    BadContentLength,
    /// Transfer-Encoding whose final coding is not `chunked`, `chunked` applied twice, an
    /// empty Transfer-Encoding, or any Transfer-Encoding in an HTTP/1.0 message.
    BadTransferEncoding,
    /// Transfer-Encoding ends in `chunked` but also lists a coding we do not implement
    /// (`gzip, chunked`): the framing is known, the content is not usable.
    UnsupportedTransferCoding,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FramingError::BadContentLength => "invalid Content-Length",
            FramingError::BadTransferEncoding => "invalid Transfer-Encoding",
            FramingError::UnsupportedTransferCoding => "unsupported transfer coding",
        })
    }
}

impl std::error::Error for FramingError {}

/// The framing fields of one head, fed one header field at a time with [`observe`].
///
/// [`observe`]: FramingFields::observe
#[derive(Clone, Debug, Default)]
pub struct FramingFields {
    content_length: Option<u64>,
    /// Any Transfer-Encoding field seen, even one with an empty value.
    te_present: bool,
    te_chunked_count: u32,
    te_last_is_chunked: bool,
    te_other: bool,
}

impl FramingFields {
    /// Take one header field; fields other than Content-Length and Transfer-Encoding are
    /// ignored. A bad Content-Length is refused at once.
    pub fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), FramingError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            for item in list_items(value) {
                let n = parse_decimal(item).ok_or(FramingError::BadContentLength)?;
                if self.content_length.is_some_and(|prev| prev != n) {
                    return Err(FramingError::BadContentLength);
                }
                self.content_length = Some(n);
            }
            // An all-empty list (`Content-Length: ,`) carries no length: malformed.
            if self.content_length.is_none() {
                return Err(FramingError::BadContentLength);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te_present = true;
            for item in list_items(value) {
                let chunked = item.eq_ignore_ascii_case(b"chunked");
                if chunked {
                    self.te_chunked_count += 1;
                } else {
                    self.te_other = true;
                }
                self.te_last_is_chunked = chunked;
            }
        }
        Ok(())
    }

    /// The agreed Content-Length, if any was sent.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Was any Transfer-Encoding field sent?
    pub fn has_transfer_encoding(&self) -> bool {
        self.te_present
    }

    /// The framing these fields announce for a message of HTTP/1.`minor_version`:
    /// Transfer-Encoding (which must end in one `chunked`) wins over Content-Length;
    /// neither is [`Framing::None`]. Whether both together are acceptable, and what no
    /// framing means, is the caller's policy.
    pub fn framing(&self, minor_version: u8) -> Result<Framing, FramingError> {
        if !self.te_present {
            return Ok(self.content_length.map_or(Framing::None, Framing::Length));
        }
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        if minor_version == 0 || !self.te_last_is_chunked || self.te_chunked_count != 1 {
            return Err(FramingError::BadTransferEncoding);
        }
        if self.te_other {
            return Err(FramingError::UnsupportedTransferCoding);
        }
        Ok(Framing::Chunked)
    }
}

/// Non-empty elements of a comma-separated field value, OWS trimmed (RFC 9110 §5.6.1).
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `1*DIGIT` as u64; `None` for empty, non-digit (a sign included) or overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Framing of a head with these `(name, value)` fields, as HTTP/1.`minor`.
    fn framing(minor: u8, fields: &[(&str, &str)]) -> Result<Framing, FramingError> {
        let mut f = FramingFields::default();
        for (name, value) in fields {
            f.observe(name.as_bytes(), value.as_bytes())?;
        }
        f.framing(minor)
    }

    #[test]
    fn content_length_values() {
        use FramingError::BadContentLength as Bad;
        for (value, expected) in [
            ("0", Ok(Framing::Length(0))),
            ("5", Ok(Framing::Length(5))),
            ("007", Ok(Framing::Length(7))),
            (" 5\t", Ok(Framing::Length(5))),
            ("5, 5", Ok(Framing::Length(5))),
            ("5,", Ok(Framing::Length(5))),
            ("18446744073709551615", Ok(Framing::Length(u64::MAX))),
            ("+5", Err(Bad)),
            ("-5", Err(Bad)),
            ("-0", Err(Bad)),
            ("5 5", Err(Bad)),
            ("5\t5", Err(Bad)),
            ("1_000", Err(Bad)),
            ("0x10", Err(Bad)),
            ("1.0", Err(Bad)),
            ("1e3", Err(Bad)),
            ("٣", Err(Bad)),
            ("", Err(Bad)),
            (",", Err(Bad)),
            ("5, 6", Err(Bad)),
            ("18446744073709551616", Err(Bad)),
        ] {
            assert_eq!(
                framing(1, &[("Content-Length", value)]),
                expected,
                "{value:?}"
            );
        }
        // Duplicate fields must agree.
        let two = |a, b| framing(1, &[("Content-Length", a), ("content-length", b)]);
        assert_eq!(two("3", "3"), Ok(Framing::Length(3)));
        assert_eq!(two("3", "03"), Ok(Framing::Length(3)));
        assert_eq!(two("3", "4"), Err(Bad));
        assert_eq!(two("3", "+3"), Err(Bad));
    }

    #[test]
    fn transfer_encoding_values() {
        use FramingError::{BadTransferEncoding as Bad, UnsupportedTransferCoding as Unsupported};
        for (value, expected) in [
            ("chunked", Ok(Framing::Chunked)),
            ("Chunked", Ok(Framing::Chunked)),
            (" , chunked", Ok(Framing::Chunked)),
            ("gzip, chunked", Err(Unsupported)),
            ("gzip", Err(Bad)),
            ("identity", Err(Bad)),
            ("chunked, gzip", Err(Bad)),
            ("chunked, chunked", Err(Bad)),
            ("chunkedx", Err(Bad)),
            ("", Err(Bad)),
        ] {
            assert_eq!(
                framing(1, &[("Transfer-Encoding", value)]),
                expected,
                "{value:?}"
            );
        }
        // Every field counts: `chunked` must come last, once, across all of them.
        let te = |a, b| framing(1, &[("Transfer-Encoding", a), ("transfer-encoding", b)]);
        assert_eq!(te("gzip", "chunked"), Err(Unsupported));
        assert_eq!(te("chunked", "gzip"), Err(Bad));
        assert_eq!(te("chunked", "chunked"), Err(Bad));
        // HTTP/1.0 has no Transfer-Encoding.
        assert_eq!(framing(0, &[("Transfer-Encoding", "chunked")]), Err(Bad));
        // Transfer-Encoding wins over Content-Length; the caller sees both.
        let mut f = FramingFields::default();
        assert_eq!(f.observe(b"Content-Length", b"3"), Ok(()));
        assert_eq!(f.observe(b"Transfer-Encoding", b"chunked"), Ok(()));
        assert_eq!(f.framing(1), Ok(Framing::Chunked));
        assert!(f.has_transfer_encoding() && f.content_length() == Some(3));
        assert_eq!(framing(1, &[("X-Other", "+5")]), Ok(Framing::None));
    }

    #[test]
    fn decimal_parser() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"123"), Some(123));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"  "), b"");
    }
}
