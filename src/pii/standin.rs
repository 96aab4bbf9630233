//! Drawing stand-ins: realistic, format-preserving, deterministic per key.
//!
//! A stand-in is drawn from HMAC-SHA256(key secret, kind ‖ original ‖ attempt): the same
//! original under the same key always gets the same stand-in (a multi-turn conversation stays
//! consistent), and the caller re-draws with the next attempt number on a collision.
//!
//! Every stand-in is printable ASCII without `"`, `\`, `/`, `<`, `>`, `&` or `'`, so no JSON
//! serialiser (not even one escaping `/` or HTML characters, or all non-ASCII) writes it
//! differently: the restorer finds it in raw JSON text at any depth. Values come from ranges
//! that are fictional or reserved for documentation, so a leaked stand-in harms nobody.

use ring::hmac;

use super::detect::{iban_mod97, luhn_digit};
use super::Kind;

/// Built-in first names for name stand-ins (and email local parts).
const FIRST: &[&str] = &[
    "Avery", "Blake", "Camila", "Dario", "Elena", "Farid", "Greta", "Hugo", "Ingrid", "Jonas",
    "Keiko", "Lucas", "Marisol", "Nikolai", "Odette", "Priya", "Quentin", "Rosa", "Soren", "Talia",
    "Umar", "Vera", "Wendell", "Ximena", "Yusuf", "Zora", "Anika", "Bruno", "Clara", "Desmond",
    "Esme", "Felix",
];

/// Built-in family names for two-word name stand-ins.
const LAST: &[&str] = &[
    "Abbott",
    "Brennan",
    "Castillo",
    "Dunmore",
    "Eriksen",
    "Fairweather",
    "Galloway",
    "Hartley",
    "Iverson",
    "Jarrow",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Pemberton",
    "Quinlan",
    "Rasmussen",
    "Sandoval",
    "Thorne",
    "Underhill",
    "Valdez",
    "Whitlock",
    "Yardley",
];

/// Built-in place names: plausible, and not any one well-known city.
const PLACES: &[&str] = &[
    "Alderbrook",
    "Bramford",
    "Cedarvale",
    "Dunhollow",
    "Eastwick",
    "Fernhill",
    "Glenmoor",
    "Harrowgate",
    "Ivybridge",
    "Juniper Falls",
    "Kingsmere",
    "Larkspur",
    "Millbrook",
    "Northcote",
    "Oakridge",
    "Pinecrest",
    "Queensbury",
    "Ravenscar",
    "Stonehaven",
    "Thornbury",
];

/// Reserved example domains (RFC 2606), never anyone's mailbox.
const MAIL_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

/// IPv4 documentation networks (RFC 5737): TEST-NET-1, -2 and -3.
const IPV4_NETS: &[[u8; 3]] = &[[192, 0, 2], [198, 51, 100], [203, 0, 113]];

/// A stream of pseudo-random bytes from the HMAC of one (kind, original, attempt).
pub struct Draw<'k> {
    key: &'k hmac::Key,
    seed: Vec<u8>,
    block: u32,
    buf: [u8; 32],
    at: usize,
}

impl<'k> Draw<'k> {
    /// The stream for `original` of `kind` at re-draw `attempt`.
    pub fn new(key: &'k hmac::Key, kind: Kind, original: &str, attempt: u32) -> Draw<'k> {
        let mut seed = Vec::with_capacity(original.len() + 16);
        seed.extend_from_slice(kind.label().as_bytes());
        seed.push(0);
        seed.extend_from_slice(original.as_bytes());
        seed.push(0);
        seed.extend_from_slice(&attempt.to_le_bytes());
        let mut d = Draw {
            key,
            seed,
            block: 0,
            buf: [0; 32],
            at: 32,
        };
        d.refill();
        d
    }

    fn refill(&mut self) {
        let mut msg = self.seed.clone();
        msg.extend_from_slice(&self.block.to_le_bytes());
        let tag = hmac::sign(self.key, &msg);
        self.buf.copy_from_slice(tag.as_ref());
        self.block = self.block.wrapping_add(1);
        self.at = 0;
    }

    fn byte(&mut self) -> u8 {
        if self.at >= self.buf.len() {
            self.refill();
        }
        let b = self.buf[self.at];
        self.at += 1;
        b
    }

    /// A value in `0..n` (n ≥ 1; slight modulo bias is fine for stand-ins).
    fn below(&mut self, n: usize) -> usize {
        let v = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]);
        v as usize % n.max(1)
    }

    fn digit(&mut self) -> u8 {
        self.below(10) as u8
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("x")
    }
}

/// The stand-in for `original` of `kind`. Pure: same inputs, same output.
pub fn stand_in(kind: Kind, original: &str, d: &mut Draw<'_>) -> String {
    match kind {
        Kind::Email => email(d),
        Kind::Phone => phone(original, d),
        Kind::Card => card(original, d),
        Kind::Ssn => ssn(d),
        Kind::Sin => sin(original, d),
        Kind::Ipv4 => ipv4(d),
        Kind::Ipv6 => ipv6(d),
        Kind::Iban => iban(original, d),
        Kind::Name => name(original, d),
        Kind::Place => d.pick(PLACES).to_string(),
        Kind::Regex => shape_of(original, d),
    }
}

fn email(d: &mut Draw<'_>) -> String {
    let first = d.pick(FIRST).to_ascii_lowercase();
    let last = d.pick(LAST).to_ascii_lowercase();
    let n = d.below(100);
    let domain = d.pick(MAIL_DOMAINS);
    format!("{first}.{last}{n:02}@{domain}")
}

/// Keeps the layout (separators, parentheses, a leading `+`, country code) and draws the
/// rest: NANP numbers become 555-01XX (reserved for fiction), others keep their country
/// code or trunk 0 and get drawn digits.
fn phone(original: &str, d: &mut Draw<'_>) -> String {
    let digits: Vec<u8> = original.bytes().filter(u8::is_ascii_digit).collect();
    let plus = original.starts_with('+');
    let nanp = (!plus && digits.len() == 10)
        || (plus && digits.len() == 11 && digits.first() == Some(&b'1'));
    let fresh: Vec<u8> = if nanp {
        let off = usize::from(plus);
        let mut v = digits.clone();
        // Area code drawn from 2xx..9xx, exchange 555, line 0100..0199.
        let area = [b'2' + d.below(8) as u8, b'0' + d.digit(), b'0' + d.digit()];
        let line = [
            b'5',
            b'5',
            b'5',
            b'0',
            b'1',
            b'0' + d.digit(),
            b'0' + d.digit(),
        ];
        v[off..off + 3].copy_from_slice(&area);
        v[off + 3..off + 10].copy_from_slice(&line);
        v
    } else {
        // Keep the country code (up to 3 digits after `+`; 2 are kept, a good guess for most
        // of Europe) or the trunk 0, draw the rest.
        let keep = if plus { 2 } else { 1 };
        digits
            .iter()
            .enumerate()
            .map(|(i, &b)| if i < keep { b } else { b'0' + d.digit() })
            .collect()
    };
    refill_digits(original, &fresh)
}

/// `original` with its digits replaced, in order, by `digits`.
fn refill_digits(original: &str, digits: &[u8]) -> String {
    let mut it = digits.iter();
    original
        .bytes()
        .map(|b| {
            if b.is_ascii_digit() {
                it.next().copied().unwrap_or(b'0')
            } else {
                b
            }
        })
        .map(char::from)
        .collect()
}

/// Same length and grouping, a test-card prefix (4000 for Visa-length numbers, 3700 for
/// 15-digit Amex-like ones), Luhn-valid.
fn card(original: &str, d: &mut Draw<'_>) -> String {
    let n = original.bytes().filter(u8::is_ascii_digit).count();
    let prefix: &[u8] = if n == 15 {
        &[3, 7, 0, 0]
    } else {
        &[4, 0, 0, 0]
    };
    let mut v: Vec<u8> = prefix.to_vec();
    while v.len() + 1 < n {
        v.push(d.digit());
    }
    v.push(luhn_digit(&v));
    let ascii: Vec<u8> = v.iter().map(|x| b'0' + x).collect();
    refill_digits(original, &ascii)
}

/// Area 900–999 is never issued as an SSN: well-formed, clearly not a real person's.
fn ssn(d: &mut Draw<'_>) -> String {
    let area = 900 + d.below(100);
    let group = 1 + d.below(99);
    let serial = 1 + d.below(9999);
    format!("{area:03}-{group:02}-{serial:04}")
}

/// Leading 0 is never issued as a SIN; Luhn-valid, the original's separator.
fn sin(original: &str, d: &mut Draw<'_>) -> String {
    let mut v = vec![0u8];
    while v.len() < 8 {
        v.push(d.digit());
    }
    v.push(luhn_digit(&v));
    let ascii: Vec<u8> = v.iter().map(|x| b'0' + x).collect();
    refill_digits(original, &ascii)
}

fn ipv4(d: &mut Draw<'_>) -> String {
    let net = IPV4_NETS
        .get(d.below(IPV4_NETS.len()))
        .copied()
        .unwrap_or([192, 0, 2]);
    let host = 1 + d.below(254);
    format!("{}.{}.{}.{host}", net[0], net[1], net[2])
}

/// In 2001:db8::/32, the IPv6 documentation prefix (RFC 3849).
fn ipv6(d: &mut Draw<'_>) -> String {
    let g: Vec<String> = (0..4).map(|_| format!("{:x}", d.below(0x10000))).collect();
    format!("2001:db8:{}:{}::{}:{}", g[0], g[1], g[2], g[3])
}

/// Same country, length and grouping; letters stay letters and digits digits; correct
/// check digits.
fn iban(original: &str, d: &mut Draw<'_>) -> String {
    let compact: Vec<u8> = original.bytes().filter(|b| *b != b' ').collect();
    let mut v: Vec<u8> = compact
        .iter()
        .enumerate()
        .map(|(i, &b)| match (i, b) {
            (0..=1, _) => b,
            (2..=3, _) => b'0',
            (_, b'A'..=b'Z') => b'A' + d.below(26) as u8,
            _ => b'0' + d.digit(),
        })
        .collect();
    let check = 98 - iban_mod97(&v).unwrap_or(0);
    if v.len() >= 4 {
        v[2] = b'0' + (check / 10) as u8;
        v[3] = b'0' + (check % 10) as u8;
    }
    let mut it = v.into_iter();
    original
        .bytes()
        .map(|b| {
            if b == b' ' {
                b' '
            } else {
                it.next().unwrap_or(b'0')
            }
        })
        .map(char::from)
        .collect()
}

/// As many words as the original: a first name, then family names.
fn name(original: &str, d: &mut Draw<'_>) -> String {
    let words = original.split_whitespace().count().max(1);
    let mut out = d.pick(FIRST).to_string();
    for _ in 1..words {
        out.push(' ');
        out.push_str(d.pick(LAST));
    }
    out
}

/// For operator regexes: the same shape, character class for character class (digits,
/// upper- and lower-case letters); safe punctuation is kept, anything else becomes `-`.
/// An original that reads as a number (`912345`, `-1.5e3`) gets one: its exponent letter is
/// kept and a first digit that is not 0 stays so. A number in a tool call's input then stays
/// a number instead of turning into a string the tool's schema may refuse.
fn shape_of(original: &str, d: &mut Draw<'_>) -> String {
    let number = super::body::is_number(original);
    let lead = original.bytes().position(|b| b.is_ascii_digit());
    original
        .char_indices()
        .map(|(i, c)| match c {
            '1'..='9' if number && Some(i) == lead => char::from(b'1' + d.below(9) as u8),
            '0'..='9' => char::from(b'0' + d.digit()),
            'e' | 'E' if number => c,
            'A'..='Z' => char::from(b'A' + d.below(26) as u8),
            c if c.is_alphabetic() => char::from(b'a' + d.below(26) as u8),
            ' ' | '.' | '-' | '_' | ':' | '+' | '@' | '#' | ',' => c,
            _ => '-',
        })
        .collect()
}

/// Whether `s` is safe as a stand-in: ASCII with no character any JSON serialiser escapes.
pub fn escape_invariant(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !b"\"\\/<>&'".contains(&b))
}
