//! Finding PII entities in plain text: built-in detectors (a regex finds a candidate, a check
//! confirms it), operator regexes, and dictionary terms on an Aho-Corasick automaton.
//!
//! Detectors are conservative: a candidate must also pass its checksum or issuing rule (Luhn
//! for cards and SINs, mod-97 for IBANs, the SSA rules for SSNs, a real parse for addresses),
//! and numbers glued to other digits or letters are left alone. A false positive costs little
//! (the stand-in is restored in the answer), but it changes what the model reads.
//!
//! An entity whose text has a character JSON escapes (`"`, `\`, control characters) is never
//! substituted (the session refuses the request instead): originals and stand-ins are then the
//! same bytes escaped or not, which is what lets the restorer work on JSON text at any nesting
//! depth (see `restore`).

use std::net::{Ipv4Addr, Ipv6Addr};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use regex_automata::{meta, Anchored, Input};

use super::{Kind, MAX_ENTITY_BYTES};

/// One entity found in a text: its kind and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// What it is.
    pub kind: Kind,
    /// Where it is in the text given to [`Detector::find`].
    pub range: std::ops::Range<usize>,
}

/// Why an operator regex or dictionary was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorError(pub String);

/// The longest dictionary term accepted, in bytes: terms are names and places, and a bound
/// keeps the restorer's holdback (the longest stand-in) small.
pub const MAX_TERM_BYTES: usize = 64;

/// Most dictionary terms across all dictionaries: the automaton is built once at config load
/// and shared by every request; the bound keeps its memory predictable.
pub const MAX_TERMS: usize = 200_000;

/// Shortest dictionary term, in characters: one- and two-letter terms would match inside
/// ordinary words' neighbourhoods far too often.
pub const MIN_TERM_CHARS: usize = 3;

/// Compiled operator regexes are limited to this size (the regex crate's own limit is 10 MiB;
/// a pattern that large is a mistake, and it would be compiled on every worker).
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// A dictionary term and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The term as written in the dictionary.
    pub text: String,
    /// `Kind::Name` or `Kind::Place` (anything else is treated as a place-like term).
    pub kind: Kind,
}

/// The compiled detectors: built once (per config), shared read-only by every request.
#[derive(Debug)]
pub struct Detector {
    builtin: Vec<(Kind, meta::Regex)>,
    operator: Vec<Regex>,
    terms: Option<AhoCorasick>,
    term_kinds: Vec<Kind>,
}

/// A config's detectors, compiled when first needed: a gateway where no key, route or `[pii]`
/// switch turns substitution on still honours a request's own flag, but does not hold the
/// compiled automata (about 2 MB) until one asks. Where policy turns it on, the config
/// compiles them at load ([`LazyDetector::ready`]).
#[derive(Debug)]
pub struct LazyDetector {
    operator: Vec<Regex>,
    terms: Vec<Term>,
    built: std::sync::OnceLock<Result<Detector, DetectorError>>,
}

impl LazyDetector {
    /// Sources (already validated) compiled on first use.
    pub fn later(operator: Vec<Regex>, terms: Vec<Term>) -> LazyDetector {
        LazyDetector {
            operator,
            terms,
            built: std::sync::OnceLock::new(),
        }
    }

    /// Detectors compiled now.
    pub fn ready(d: Detector) -> LazyDetector {
        let built = std::sync::OnceLock::new();
        let _ = built.set(Ok(d));
        LazyDetector {
            operator: Vec::new(),
            terms: Vec::new(),
            built,
        }
    }

    /// The compiled detectors (compiling them on the first call; a worker that races another
    /// to it waits for the one compile).
    pub fn get(&self) -> Result<&Detector, &DetectorError> {
        self.built
            .get_or_init(|| Detector::assemble(self.operator.clone(), &self.terms))
            .as_ref()
    }

    /// Compiled already?
    pub fn is_ready(&self) -> bool {
        self.built.get().is_some()
    }
}

/// The built-in candidate patterns. Each is confirmed by [`confirm`]; the regex only finds
/// the shape. Digits are ASCII `[0-9]`: Unicode `\d` also matches other scripts' digits, which
/// no confirmation step reads (one such request panicked a worker). Word boundaries are ASCII:
/// a Unicode boundary sees no edge between `は` or `é` and a Latin letter, so an address
/// written right after one was missed or only partly replaced.
const BUILTIN: &[(Kind, &str)] = &[
    (
        Kind::Email,
        r"(?i)(?-u:\b)[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z]{2,24}(?-u:\b)",
    ),
    // 13 to 19 digits, grouped by single spaces or dashes.
    (
        Kind::Card,
        r"(?-u:\b)[2-6][0-9]{3}(?:[ -]?[0-9]{1,6}){2,5}(?-u:\b)",
    ),
    (
        Kind::Iban,
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)",
    ),
    (Kind::Ssn, r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)"),
    (
        Kind::Sin,
        r"(?-u:\b)[0-9]{3}[ -][0-9]{3}[ -][0-9]{3}(?-u:\b)",
    ),
    // E.164 (with optional grouping), NANP with separators, and national formats that start
    // with a trunk 0 and group by spaces (most of Europe).
    (
        Kind::Phone,
        r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}|\(?(?-u:\b)[2-9][0-9]{2}\)?[ .-]?[2-9][0-9]{2}[ .-][0-9]{4}|(?-u:\b)0[0-9]{1,4}(?: [0-9]{2,4}){2,4})(?-u:\b)",
    ),
    (
        Kind::Ipv6,
        r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?::[0-9]{1,3}(?:\.[0-9]{1,3}){3})?",
    ),
    (Kind::Ipv4, r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)"),
];

impl Detector {
    /// Compiles the built-in detectors with the operator's regexes and dictionary terms.
    pub fn new(regexes: &[String], terms: &[Term]) -> Result<Detector, DetectorError> {
        let operator = regexes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                operator_regex(p).map_err(|e| DetectorError(format!("regexes[{i}]: {}", e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Detector::assemble(operator, terms)
    }

    /// The built-in detectors with operator regexes already compiled (by [`operator_regex`])
    /// and dictionary terms.
    pub fn assemble(operator: Vec<Regex>, terms: &[Term]) -> Result<Detector, DetectorError> {
        let mut builtin = Vec::with_capacity(BUILTIN.len());
        for (kind, pattern) in BUILTIN {
            let re = meta::Regex::new(pattern)
                .map_err(|e| DetectorError(format!("built-in {} pattern: {e}", kind.label())))?;
            builtin.push((*kind, re));
        }
        if terms.len() > MAX_TERMS {
            return Err(DetectorError(format!(
                "more than {MAX_TERMS} dictionary terms"
            )));
        }
        for t in terms {
            check_term(&t.text)?;
        }
        let (terms, term_kinds) = if terms.is_empty() {
            (None, Vec::new())
        } else {
            // Terms are folded as the text is (`fold`), ASCII letters by the automaton itself.
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(
                    terms
                        .iter()
                        .map(|t| t.text.chars().map(fold).collect::<String>()),
                )
                .map_err(|e| DetectorError(format!("dictionary: {e}")))?;
            (Some(ac), terms.iter().map(|t| t.kind).collect())
        };
        Ok(Detector {
            builtin,
            operator,
            terms,
            term_kinds,
        })
    }

    /// Only the built-in detectors: no operator regex, no dictionary. Then a text in which
    /// no built-in pattern can match ([`super::lines::any`]) holds no entity.
    pub fn builtin_only(&self) -> bool {
        self.operator.is_empty() && self.terms.is_none()
    }

    /// All entities in `text`, in order, never overlapping. A candidate inside another is
    /// covered by it (the longer wins, then the earlier detector; dictionary and operator
    /// regexes go last); two that only overlap become one. A match glued to a word is widened
    /// to the word. Entities the session cannot replace are returned too, for it to refuse.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut all: Vec<(Found, usize)> = Vec::new();
        self.builtin_in_lines(text, &mut all);
        let rank = self.builtin.len();
        for re in &self.operator {
            for m in re.find_iter(text) {
                if !m.is_empty() {
                    all.push((
                        Found {
                            kind: Kind::Regex,
                            range: m.range(),
                        },
                        rank,
                    ));
                }
            }
        }
        if let Some(ac) = &self.terms {
            // Non-ASCII letters are matched in a case-folded copy of the text, with a map from
            // its byte offsets back to the text's (a folded letter may be shorter or longer).
            let folded = Folded::new(text);
            let haystack = folded.as_ref().map_or(text, |f| f.text.as_str());
            for m in ac.find_iter(haystack) {
                let kind = self
                    .term_kinds
                    .get(m.pattern().as_usize())
                    .copied()
                    .unwrap_or(Kind::Place);
                let range = match &folded {
                    Some(f) => match (f.offset(m.start()), f.offset(m.end())) {
                        (Some(s), Some(e)) => s..e,
                        _ => continue,
                    },
                    None => m.range(),
                };
                if word_bounded(text, range.start, range.end) {
                    all.push((Found { kind, range }, rank + 1));
                }
            }
        }
        // Nothing found is dropped here: an entity that cannot be replaced (a character JSON
        // escapes, too long) is the session's to refuse, never a reason to send it as it is.
        all.sort_by_key(|(f, rank)| (f.range.start, std::cmp::Reverse(f.range.len()), *rank));
        let (mut run, mut widened) = (0..0, false);
        for (f, _) in &mut all {
            if !restorable(text, &f.range) {
                widened = true;
                // Inside the last word widened: the same word, not scanned again (a long run
                // of digits under `\d{6}` would otherwise be walked once per match).
                if !(run.start <= f.range.start && f.range.end <= run.end) {
                    run = whole_word(text, &f.range);
                }
                f.range = run.clone();
                // Only a shape-preserving stand-in fits a widened text (built-in and dictionary
                // matches are never glued: their patterns and checks see to it).
                f.kind = Kind::Regex;
            }
        }
        if widened {
            all.sort_by_key(|(f, rank)| (f.range.start, std::cmp::Reverse(f.range.len()), *rank));
        }
        let mut out: Vec<Found> = Vec::with_capacity(all.len());
        // Greedy by start: a candidate inside the kept one is covered by it (a card's digits
        // contain phone-shaped runs; the card wins). One that runs past its end joins it: the
        // two become one entity with a shape-preserving stand-in, since keeping either alone
        // would send the other's uncovered part as written (`Patient: \w+` over a dictionary
        // name `Jane Doe` would leave `Doe`).
        for (f, _) in all {
            match out.last_mut() {
                Some(last) if f.range.start < last.range.end => {
                    if f.range.end > last.range.end {
                        last.range.end = f.range.end;
                        last.kind = Kind::Regex;
                    }
                }
                _ => out.push(f),
            }
        }
        out
    }

    /// The built-in detectors' confirmed matches in `text`, each with its detector's rank.
    ///
    /// No built-in pattern matches a line feed, so a text's matches are its lines' matches,
    /// and each pattern needs two or three bytes in an order (`lines`) that most lines of
    /// an agent's text (source files, tool output) lack. A pattern runs only over the runs of
    /// lines that have them. Measured on a 300 KB agent body with five entities (callgrind,
    /// `benches/agent.rs` `chat_pii`): the eight patterns, each run over every text whole,
    /// were 14.5 million instructions of 30 per request, about 47 a byte.
    fn builtin_in_lines(&self, text: &str, all: &mut Vec<(Found, usize)>) {
        super::lines::runs(text.as_bytes(), |rank, lines| {
            self.builtin_in(rank, text, lines, all);
        });
    }

    /// Built-in detector `rank`'s confirmed matches in the lines `lines` of `text` (line
    /// feeds on both sides, or the text's ends), searched with the whole text in view.
    ///
    /// A shape can run on into what is not part of the entity (a phone number glued to more
    /// digits and dots) and be refused whole, where what it starts with would be confirmed:
    /// the search then tries the shorter matches from the same start, longest first, and
    /// else goes on from the next character (not from the refused match's end, which would
    /// hide an entity inside it). Only the first was tried before, so such a number stayed
    /// in one string while the same number elsewhere was replaced (fuzz target
    /// `pii_substitute`).
    fn builtin_in(
        &self,
        rank: usize,
        text: &str,
        lines: std::ops::Range<usize>,
        all: &mut Vec<(Found, usize)>,
    ) {
        let Some((kind, re)) = self.builtin.get(rank) else {
            return;
        };
        let mut at = lines.start;
        while at < lines.end {
            let Some(m) = re.search(&Input::new(text).range(at..lines.end)) else {
                return;
            };
            let mut end = m.end();
            let confirmed = loop {
                if m.start() < end && confirm(*kind, text, m.start()..end) {
                    break Some(end);
                }
                let shorter = Input::new(text)
                    .range(m.start()..end.saturating_sub(1).max(m.start()))
                    .anchored(Anchored::Yes);
                match re.search(&shorter) {
                    Some(s) if s.end() < end && s.start() < s.end() => end = s.end(),
                    _ => break None,
                }
            };
            at = match confirmed {
                Some(end) => {
                    all.push((
                        Found {
                            kind: *kind,
                            range: m.start()..end,
                        },
                        rank,
                    ));
                    end
                }
                None => next_char(text, m.start()),
            };
        }
    }
}

/// The byte offset of the character after the one at `i` (the text's end past it).
fn next_char(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|t| t.chars().next())
        .map_or(text.len(), |c| i + c.len_utf8())
}

/// An operator regex, compiled within [`MAX_REGEX_BYTES`]; one that matches the empty string
/// is refused (it would match between every two characters).
pub fn operator_regex(pattern: &str) -> Result<Regex, DetectorError> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| DetectorError(e.to_string()))?;
    if re.is_match("") {
        return Err(DetectorError("matches the empty string".into()));
    }
    Ok(re)
}

/// A dictionary term must be plain text a stand-in can replace.
pub fn check_term(t: &str) -> Result<(), DetectorError> {
    if t.len() > MAX_TERM_BYTES {
        return Err(DetectorError(format!(
            "term {t:?}: longer than {MAX_TERM_BYTES} bytes"
        )));
    }
    if t.chars().count() < MIN_TERM_CHARS {
        return Err(DetectorError(format!(
            "term {t:?}: shorter than {MIN_TERM_CHARS} characters"
        )));
    }
    if !substitutable(t) || t.trim() != t {
        return Err(DetectorError(format!(
            "term {t:?}: has quotes, backslashes, control characters or outer spaces"
        )));
    }
    Ok(())
}

/// Whether an entity may be substituted: it has no character JSON escapes, so it is written
/// the same raw or inside a JSON string at any depth.
pub fn substitutable(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Whether `c` glues to a neighbouring word: a letter or digit of a script written with spaces
/// between words. Punctuation, symbols and spaces of any kind never glue, and neither do Han,
/// kana, hangul and the other scripts written without spaces (`患者García` holds the name
/// `García`). The restorer only refuses a stand-in beside an ASCII letter or digit, a subset
/// of these, so a term substituted by this rule is always restored.
fn glues(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    c.is_alphanumeric() && !unspaced(c)
}

/// Scripts written without spaces between words: a name runs straight into the next word.
fn unspaced(c: char) -> bool {
    matches!(u32::from(c),
        0x0E00..=0x0EFF // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1100..=0x11FF // Hangul Jamo
        | 0x1780..=0x17FF // Khmer
        | 0x2E80..=0x2FDF // CJK radicals
        | 0x3005..=0x3007 | 0x3021..=0x3029 | 0x3038..=0x303C
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3100..=0x31FF // Bopomofo, Hangul compatibility Jamo, Katakana extensions
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF // CJK ideographs
        | 0xA960..=0xA97F | 0xAC00..=0xD7FF // Hangul
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFFDC // halfwidth kana and hangul
        | 0x1B000..=0x1B16F // kana supplements
        | 0x20000..=0x3FFFF // CJK ideographs, supplementary planes
    )
}

/// The character before byte `i` of `text`, if any.
fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|t| t.chars().next_back())
}

/// The character at byte `i` of `text`, if any.
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|t| t.chars().next())
}

/// The restorer's boundary rule, applied before substituting: an entity that starts (ends)
/// with an ASCII letter or digit must not follow (precede) one, or its stand-in would be glued
/// to a word and the restorer would rightly leave it alone. Built-in patterns already keep
/// this; operator regexes need not (`MRN\d{6}` matches inside `MRN654321x`).
fn restorable(text: &str, range: &std::ops::Range<usize>) -> bool {
    let bytes = text.as_bytes();
    let word = |i: Option<usize>| {
        i.and_then(|i| bytes.get(i))
            .is_some_and(u8::is_ascii_alphanumeric)
    };
    let (first, last) = (Some(range.start), range.end.checked_sub(1));
    let glued_before = word(first) && word(range.start.checked_sub(1));
    let glued_after = word(last) && word(Some(range.end));
    !glued_before && !glued_after
}

/// `range` widened to the ASCII letters and digits around it: the whole word is the entity,
/// so its stand-in has word edges on both sides and is restored. Widened by at most
/// [`MAX_ENTITY_BYTES`] and one byte more on each side, which keeps the work per match bounded;
/// a word longer than that is refused by the session as too long, never cut.
fn whole_word(text: &str, range: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    let bytes = text.as_bytes();
    let word = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let (mut start, mut end) = (range.start, range.end);
    while start > 0 && word(start - 1) && range.start - start <= MAX_ENTITY_BYTES {
        start -= 1;
    }
    while word(end) && end - range.end <= MAX_ENTITY_BYTES {
        end += 1;
    }
    // ASCII bytes only were added: both ends are still character boundaries.
    start..end
}

/// True when `text[start..end]` is not glued to a word on either side: neither neighbour
/// [`glues`].
fn word_bounded(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(glues) && !char_at(text, end).is_some_and(glues)
}

/// A character's case fold for dictionary matching: its lowercase where that is one character,
/// else itself. ASCII is left alone (the automaton ignores ASCII case itself).
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(f), None) => f,
        _ => c,
    }
}

/// A text with its non-ASCII letters folded, and where each of its bytes came from.
struct Folded {
    text: String,
    /// Per byte of `text` (and one past its end): the offset in the original text.
    from: Vec<usize>,
}

impl Folded {
    /// `None` when folding changes nothing (always so for ASCII text).
    fn new(text: &str) -> Option<Folded> {
        if text.is_ascii() || text.chars().all(|c| fold(c) == c) {
            return None;
        }
        let mut f = Folded {
            text: String::with_capacity(text.len()),
            from: Vec::with_capacity(text.len() + 1),
        };
        for (i, c) in text.char_indices() {
            let c = fold(c);
            f.text.push(c);
            f.from.extend(std::iter::repeat_n(i, c.len_utf8()));
        }
        f.from.push(text.len());
        Some(f)
    }

    /// The original offset of byte `i` of the folded text.
    fn offset(&self, i: usize) -> Option<usize> {
        self.from.get(i).copied()
    }
}

/// The checks a regex cannot make.
fn confirm(kind: Kind, text: &str, range: std::ops::Range<usize>) -> bool {
    let s = &text[range.clone()];
    let bytes = text.as_bytes();
    let before = range
        .start
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .copied();
    let after = bytes.get(range.end).copied();
    // A number continued by `.digit`, `-digit` or glued to a letter is part of something else
    // (a version string, a longer identifier).
    let glued = |b: Option<u8>| {
        b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    // After it, a full stop or a dash is only glued when more of the word follows: one that
    // ends a sentence or a clause (`SSN 123-45-6789.`) is not.
    let glued_after = match after {
        Some(b'.' | b'-') => bytes
            .get(range.end + 1)
            .is_some_and(u8::is_ascii_alphanumeric),
        b => glued(b),
    };
    match kind {
        Kind::Email => true,
        Kind::Card => {
            let digits: Vec<u8> = digits_of(s);
            (13..=19).contains(&digits.len())
                && one_separator(s)
                && luhn_ok(&digits)
                && !glued(before)
                && !after.is_some_and(|b| b.is_ascii_alphanumeric())
        }
        Kind::Iban => iban_ok(s),
        Kind::Ssn => {
            let d = digits_of(s);
            // The pattern has nine ASCII digits; anything else is not an SSN (never index).
            let (Some(a), Some(g), Some(sr)) = (d.get(0..3), d.get(3..5), d.get(5..9)) else {
                return false;
            };
            let area = num(a);
            let group = num(g);
            let serial = num(sr);
            area != 0
                && area != 666
                && area < 900
                && group != 0
                && serial != 0
                && !glued(before)
                && !glued_after
        }
        Kind::Sin => {
            let d = digits_of(s);
            // 0 is never issued and 8 marks business numbers; the check digit is Luhn.
            d.len() == 9
                && one_separator(s)
                && d.first().is_some_and(|&first| first != 0 && first != 8)
                && luhn_ok(&d)
                && !glued(before)
                && !glued_after
        }
        Kind::Phone => {
            let d = digits_of(s);
            // E.164 allows 15 digits at most; fewer than 8 is an extension or a code. A national
            // number (trunk 0) has at least 10 digits in the countries whose format we accept;
            // nine spaced digits are more likely a SIN or a reference.
            let least = if s.starts_with('0') { 10 } else { 8 };
            (least..=15).contains(&d.len())
                && !glued(before)
                && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
                && balanced_parens(s)
        }
        Kind::Ipv4 => s.parse::<Ipv4Addr>().is_ok() && !glued(before) && !glued_after,
        Kind::Ipv6 => {
            let hexlike = |b: Option<u8>| {
                b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'.')
            };
            // At least three groups with digits: `a::b` is far more often code than an address.
            s.parse::<Ipv6Addr>().is_ok()
                && s.split(':').filter(|g| !g.is_empty()).count() >= 3
                && !hexlike(before)
                && !hexlike(after)
        }
        Kind::Regex | Kind::Name | Kind::Place => true,
    }
}

/// The decimal digits of `s`, as values 0..=9.
pub(super) fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |n, &x| n * 10 + u32::from(x))
}

/// Grouping uses one kind of separator: `4111 1111-1111 1111` is not a card a person wrote.
fn one_separator(s: &str) -> bool {
    !(s.contains(' ') && s.contains('-'))
}

fn balanced_parens(s: &str) -> bool {
    s.matches('(').count() == s.matches(')').count()
}

/// The Luhn check over digit values, check digit last.
pub fn luhn_ok(digits: &[u8]) -> bool {
    luhn_sum(digits).is_multiple_of(10)
}

fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

/// The check digit that makes `body` (without it) pass Luhn.
pub fn luhn_digit(body: &[u8]) -> u8 {
    let mut with = body.to_vec();
    with.push(0);
    let sum = luhn_sum(&with);
    ((10 - sum % 10) % 10) as u8
}

/// Shortest and longest IBAN in use (Norway 15, Saint Lucia/Russia up to 33; 34 is the limit).
const IBAN_LEN: std::ops::RangeInclusive<usize> = 15..=34;

/// An IBAN in print form (groups of four) or compact, with a valid mod-97 checksum.
fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    IBAN_LEN.contains(&compact.len()) && iban_mod97(&compact) == Some(1)
}

/// The IBAN remainder: the first four characters moved to the end, letters as 10..=35.
pub fn iban_mod97(compact: &[u8]) -> Option<u32> {
    if compact.len() < 4 {
        return None;
    }
    let (head, tail) = compact.split_at(4);
    let mut r: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        r = if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        };
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        let d = Detector::new(&[], &[]).unwrap();
        d.find(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.range]))
            .collect()
    }

    /// Every built-in pattern over the whole text: the reference the line filter must match.
    fn builtin_whole(d: &Detector, text: &str) -> Vec<(Found, usize)> {
        let mut all = Vec::new();
        for rank in 0..d.builtin.len() {
            d.builtin_in(rank, text, 0..text.len(), &mut all);
        }
        all.sort_by_key(|(f, rank)| (f.range.start, *rank));
        all
    }

    #[test]
    fn the_line_filter_bits_follow_the_builtin_order() {
        let order: Vec<Kind> = BUILTIN.iter().map(|(k, _)| *k).collect();
        let want = [
            Kind::Email,
            Kind::Card,
            Kind::Iban,
            Kind::Ssn,
            Kind::Sin,
            Kind::Phone,
            Kind::Ipv6,
            Kind::Ipv4,
        ];
        assert_eq!(order, want);
        assert_eq!(BUILTIN.len(), super::super::lines::PATTERNS);
        for (line, kind) in [
            ("a@b", Kind::Email),
            ("4111", Kind::Card),
            ("DE4", Kind::Iban),
            ("1-", Kind::Ssn),
            ("1 2", Kind::Sin),
            ("+4", Kind::Phone),
            ("a:1", Kind::Ipv6),
            ("1.2", Kind::Ipv4),
        ] {
            let rank = want.iter().position(|k| *k == kind).unwrap();
            assert_ne!(
                super::super::lines::possible(line.as_bytes()) & 1 << rank,
                0,
                "{line}"
            );
        }
        assert_eq!(
            super::super::lines::possible(b"fn main() { let x = y; } // ok: a, b"),
            0
        );
    }

    /// Texts built from entity pieces, near misses, line feeds and agent-like code: the
    /// line-filtered run finds exactly what every pattern over the whole text finds.
    #[test]
    fn the_line_filter_finds_what_the_whole_text_runs_find() {
        const PIECES: [&str; 35] = [
            "jane.roe@corp.test",
            "ops@corp",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500005555555559",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "123-45-6789",
            "046 454 286",
            "046-454-286",
            "(415) 555-2671",
            "+44 20 7946 0958",
            "+1.415.555.2671",
            "020 7946 0958",
            "2001:db8::8a2e:370:7334",
            "::1",
            "fe80::1%",
            "10.20.30.40",
            "192.168.0.1",
            "1.2.3",
            "\n",
            "\n",
            " ",
            "-",
            ".",
            ":",
            "std::io::Read",
            "12\tlet x = 7;",
            "2001:0db8:85a3:1234:abcd:8a2e:0370:7334",
            "::ffff:10.0.0.1",
            "1:2::3.4.5.6",
            "64:ff9b::192.0.2.33",
            "A:B:C:D:E:F:1:2",
            "fe80::1:2",
            "1::2:3",
        ];
        let d = Detector::new(&[], &[]).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut found = 0;
        for _ in 0..4_000 {
            let mut text = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 12) {
                let pick = (x >> (k * 5 % 60)) as usize ^ k as usize;
                text.push_str(PIECES[pick % PIECES.len()]);
                if pick.is_multiple_of(3) {
                    text.push(if pick.is_multiple_of(2) { ' ' } else { 'é' });
                }
            }
            let mut lines = Vec::new();
            d.builtin_in_lines(&text, &mut lines);
            lines.sort_by_key(|(f, rank)| (f.range.start, *rank));
            let whole = builtin_whole(&d, &text);
            assert_eq!(lines, whole, "{text:?}");
            found += whole.len();
        }
        assert!(found > 2_000, "{found}");
    }

    /// A shape refused whole hides no entity it starts with or holds (fuzz target
    /// `pii_substitute`: the phone number below was replaced where `RV` followed it and sent
    /// as written where digits and an address did).
    #[test]
    fn a_refused_match_hides_no_shorter_one() {
        let glued = "++44 20 7946 095810.20.30.40jane.doe@corp.example.io";
        let found = kinds(glued);
        // Found, and joined with what overlaps it into one entity.
        assert!(
            found.iter().any(|(_, t)| t.contains("+44 20 7946")),
            "{found:?}"
        );
        assert_eq!(kinds("+44 20 7946 0958RV"), [(Kind::Phone, "+44 20 7946")]);
        let d = Detector::new(&[], &[]).unwrap();
        let mut s = super::super::Session::new(&d, b"k");
        let out = s.substitute(&["+44 20 7946 0958RV", glued]);
        for text in out.iter().flatten() {
            assert!(!text.contains("+44 20 7946"), "{text}");
        }
    }

    #[test]
    fn finds_each_builtin_kind() {
        assert_eq!(
            kinds("mail jane.doe+x@mail.example.org now"),
            [(Kind::Email, "jane.doe+x@mail.example.org")]
        );
        assert_eq!(
            kinds("card 4111 1111 1111 1111."),
            [(Kind::Card, "4111 1111 1111 1111")]
        );
        assert_eq!(
            kinds("card 4111-1111-1111-1111"),
            [(Kind::Card, "4111-1111-1111-1111")]
        );
        assert_eq!(
            kinds("amex 378282246310005"),
            [(Kind::Card, "378282246310005")]
        );
        assert_eq!(kinds("ssn 123-45-6789"), [(Kind::Ssn, "123-45-6789")]);
        assert_eq!(kinds("sin 046 454 286"), []);
        assert_eq!(kinds("sin 130 692 544"), [(Kind::Sin, "130 692 544")]);
        assert_eq!(
            kinds("call +1 415 555 2671 today"),
            [(Kind::Phone, "+1 415 555 2671")]
        );
        assert_eq!(
            kinds("call (415) 555-2671"),
            [(Kind::Phone, "(415) 555-2671")]
        );
        assert_eq!(
            kinds("ring 020 7946 0958"),
            [(Kind::Phone, "020 7946 0958")]
        );
        assert_eq!(kinds("host 10.1.2.3 up"), [(Kind::Ipv4, "10.1.2.3")]);
        assert_eq!(
            kinds("host fe80::1ff:fe23:4567:890a up"),
            [(Kind::Ipv6, "fe80::1ff:fe23:4567:890a")]
        );
        assert_eq!(
            kinds("iban GB82 WEST 1234 5698 7654 32"),
            [(Kind::Iban, "GB82 WEST 1234 5698 7654 32")]
        );
        assert_eq!(
            kinds("iban DE89370400440532013000"),
            [(Kind::Iban, "DE89370400440532013000")]
        );
    }

    #[test]
    fn refuses_lookalikes() {
        // Luhn fails, SSN rules fail, a version string, a date, a time, a bad IBAN checksum.
        assert_eq!(kinds("4111 1111 1111 1112"), []);
        assert_eq!(
            kinds("000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000"),
            []
        );
        assert_eq!(kinds("version 1.2.3.4.5 and 300.1.1.1"), []);
        assert_eq!(kinds("on 2024-01-15 at 12:30:45"), []);
        assert_eq!(kinds("GB83 WEST 1234 5698 7654 32"), []);
        assert_eq!(kinds("std::io::Result and a::b::c"), []);
        assert_eq!(kinds("order 12345678 of 1234"), []);
    }

    #[test]
    fn dictionary_and_operator_regexes() {
        let terms = [
            Term {
                text: "Jane Doe".into(),
                kind: Kind::Name,
            },
            Term {
                text: "Toronto".into(),
                kind: Kind::Place,
            },
        ];
        let d = Detector::new(&["EMP-\\d{6}".into()], &terms).unwrap();
        let text = "jane doe of Toronto, badge EMP-123456; Torontonian";
        let got: Vec<_> = d
            .find(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.range]))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Name, "jane doe"),
                (Kind::Place, "Toronto"),
                (Kind::Regex, "EMP-123456")
            ]
        );
        // An operator regex match glued to a word is widened to the word (a stand-in glued
        // to a word could not be restored), within bounds; overlapping matches become one.
        let found = |t: &str| -> Vec<(Kind, String)> {
            d.find(t)
                .into_iter()
                .map(|f| (f.kind, t[f.range].to_string()))
                .collect()
        };
        assert_eq!(found("XEMP-123456"), [(Kind::Regex, "XEMP-123456".into())]);
        assert_eq!(
            found("a EMP-123456b7 c"),
            [(Kind::Regex, "EMP-123456b7".into())]
        );
        let long = format!("id {}EMP-123456{} end", "x".repeat(300), "y".repeat(300));
        let got = found(&long);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].1.len() > crate::pii::MAX_ENTITY_BYTES,
            "refused later as too long"
        );
        assert!(got[0].1.contains("EMP-123456"));
        let d2 = Detector::new(&["Patient: \\w+".into()], &terms).unwrap();
        let t = "Patient: Jane Doe, Toronto";
        let got: Vec<_> = d2
            .find(t)
            .into_iter()
            .map(|f| (f.kind, &t[f.range]))
            .collect();
        assert_eq!(
            got,
            [(Kind::Regex, "Patient: Jane Doe"), (Kind::Place, "Toronto")]
        );
        // An operator match holding a character JSON escapes is returned for the session to
        // refuse.
        let d3 = Detector::new(&["Ref:\\s\\d{4}".into()], &[]).unwrap();
        assert_eq!(d3.find("Ref:\n1234").len(), 1);
        assert!(Detector::new(&["(".into()], &[]).is_err());
        assert!(Detector::new(&["a*".into()], &[]).is_err());
        let bad = [Term {
            text: "a\"b".into(),
            kind: Kind::Name,
        }];
        assert!(Detector::new(&[], &bad).is_err());
    }

    #[test]
    fn checksums() {
        assert!(luhn_ok(&digits_of("4111111111111111")));
        assert_eq!(luhn_digit(&digits_of("411111111111111")), 1);
        assert_eq!(iban_mod97(b"GB82WEST12345698765432"), Some(1));
    }
}
