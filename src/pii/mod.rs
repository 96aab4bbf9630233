//! PII substitution: personal data in a prompt is swapped for realistic stand-ins before the
//! request leaves, and the stand-ins are swapped back in the answer.
//!
//! Pure and sans-IO (no config, no sockets), like `translate`:
//! - `detect`: the detectors (built-in kinds with checksums, operator regexes, dictionaries);
//! - `standin`: deterministic, format-preserving, escape-invariant stand-ins;
//! - [`Session`]: one request's substitution, the map stand-in → original and counts by kind;
//! - `restore`: the streaming restorer over the session's stand-ins;
//! - `document`: restoring a whole JSON answer string by string; `events`: an SSE stream;
//! - `thinking`: restored thinking that still goes back to its provider exactly as signed
//!   (the sealed signature, and undoing it in a later request).
//!
//! The invariant the layers share: an original is only substituted when it has no character
//! JSON escapes, and a stand-in is printable ASCII without one either. Both are then the same
//! bytes in plain text, in a JSON string and in JSON inside a JSON string (tool arguments).
//! Request bodies and whole answers are not re-serialised: only the strings that changed are
//! written back.

mod body;
mod detect;
mod document;
mod events;
mod lines;
mod plain;
mod restore;
mod standin;
#[cfg(test)]
mod tests;
mod thinking;

use std::collections::HashMap;
use std::sync::Arc;

use ring::hmac;

use crate::seal::SealKey;

pub use body::{
    parse as parse_body, substitute as substitute_body, substitute_spliced, BodyError, Parsed,
    FLAG, MAX_VALUES,
};
pub use detect::{
    check_term, luhn_ok, operator_regex, substitutable, Detector, DetectorError, Found,
    LazyDetector, Term, MAX_REGEX_BYTES, MAX_TERMS, MAX_TERM_BYTES, MIN_TERM_CHARS,
};
pub use events::EventRestorer;
pub use restore::{Edit, Mode, RestoreSet, Restorer};
pub use standin::escape_invariant;
pub use thinking::{
    unseal_body, UnsealError, MAX_THINKING_EDITS_BYTES, MAX_THINKING_SIGNATURE_BYTES,
};

/// Whether a JSON string's inside can be searched still escaped (its escape count, when no
/// built-in pattern can match in it), as this CPU's filter says and as the masks' filter
/// says: for the fuzz target that holds the two equal.
#[doc(hidden)]
pub fn plain_escapes_both(inner: &[u8]) -> (Option<usize>, Option<usize>) {
    lines::plain_escapes_both(inner)
}

/// What an entity is. The label is what counts and the custody record show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An email address.
    Email,
    /// A phone number (E.164, NANP, European national formats).
    Phone,
    /// A payment card number, Luhn-checked.
    Card,
    /// A US Social Security number.
    Ssn,
    /// A Canadian Social Insurance number, Luhn-checked.
    Sin,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An IBAN, mod-97-checked.
    Iban,
    /// A match of an operator regex.
    Regex,
    /// A dictionary term that is a person's name.
    Name,
    /// A dictionary term that is a place (or any other term).
    Place,
}

/// Every kind, in the order counts are listed.
pub const KINDS: [Kind; 11] = [
    Kind::Email,
    Kind::Phone,
    Kind::Card,
    Kind::Ssn,
    Kind::Sin,
    Kind::Ipv4,
    Kind::Ipv6,
    Kind::Iban,
    Kind::Regex,
    Kind::Name,
    Kind::Place,
];

impl Kind {
    /// The stable label for counts, metrics and the custody record.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "credit_card",
            Kind::Ssn => "us_ssn",
            Kind::Sin => "ca_sin",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Iban => "iban",
            Kind::Regex => "regex",
            Kind::Name => "name",
            Kind::Place => "place",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Entities replaced in one request, by kind (occurrences, not distinct values). Never the
/// values themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts([u32; KINDS.len()]);

impl Counts {
    /// The count for one kind.
    pub fn get(&self, kind: Kind) -> u32 {
        self.0.get(kind.index()).copied().unwrap_or(0)
    }

    /// Total entities replaced.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// `(label, count)` for each kind with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        KINDS
            .iter()
            .map(|k| (k.label(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
    }

    fn add(&mut self, kind: Kind) {
        if let Some(n) = self.0.get_mut(kind.index()) {
            *n = n.saturating_add(1);
        }
    }
}

/// Re-draws tried before falling back to a synthetic stand-in: realistic values come from
/// small lists (names, documentation ranges), so a long prompt can exhaust them.
pub const MAX_REDRAWS: u32 = 32;

/// Synthetic re-draws tried after [`MAX_REDRAWS`]; each is 64 bits of HMAC, so running out
/// means something is badly wrong, and the entity is then left as it is.
pub const MAX_SYNTHETIC_REDRAWS: u32 = 8;

/// The longest entity substituted, in bytes. It bounds the restorer's holdback (stand-ins
/// are about as long as their originals) and an operator regex that matches whole
/// paragraphs.
pub const MAX_ENTITY_BYTES: usize = 256;

/// One stand-in and the original it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// What went upstream.
    pub stand_in: String,
    /// What the client wrote.
    pub original: String,
    /// What it is.
    pub kind: Kind,
}

/// One request's substitution: which stand-in replaced which original, and counts by kind.
#[derive(Debug)]
pub struct Session<'d> {
    detector: &'d Detector,
    key: hmac::Key,
    pairs: Vec<Pair>,
    by_original: HashMap<(Kind, String), usize>,
    counts: Counts,
    /// Prompt bytes compared so far while drawing stand-ins (bounded by [`MAX_SCAN_BYTES`]).
    scanned: usize,
    /// Why an entity found could not be replaced (the first reason): the request must not
    /// go upstream.
    unreplaced: Option<Unreplaced>,
    /// Whose request this is, for what the worker keeps of it (`plain`): a digest of the key.
    scope: u64,
}

/// One text of a request's prompt, as [`Session::substitute_texts`] takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text<'a> {
    /// The text itself.
    Decoded(&'a str),
    /// A JSON string token (quotes included) that holds no entity: only built-in detectors
    /// are on, the token has no `\u` escape, and either no byte a built-in pattern needs is
    /// in it ([`lines::any`]) or the detectors found nothing in it on an earlier request
    /// (`plain`). The short escapes stand for `"`, `\`, `/` and control characters, none of
    /// which a stand-in holds, so a stand-in in the decoded text is in the token too. It is
    /// decoded only if a stand-in's bytes are in it.
    Escaped {
        /// The token.
        token: &'a [u8],
        /// The length of its decoded text.
        len: usize,
        /// No byte a built-in pattern needs is in it.
        needless: bool,
    },
}

impl Text<'_> {
    /// The decoded text's length.
    fn len(&self) -> usize {
        match self {
            Text::Decoded(t) => t.len(),
            Text::Escaped { len, .. } => *len,
        }
    }

    /// Whether the decoded text holds the needle `finder` searches for. A stand-in holds no
    /// character an escape stands for (`standin`), so it is in the decoded text only where
    /// its bytes are in the token; where they are, the token is decoded to be sure. One that
    /// does not decode (never, for a token the parser took) counts as holding it.
    ///
    /// `needy`: the needle itself has bytes a built-in pattern needs. Then it is in no
    /// escaped text that has none of them (`needless`), whose bytes would hold the needle's
    /// if it were there.
    fn contains(&self, finder: &memchr::memmem::Finder<'_>, needy: bool) -> bool {
        match self {
            Text::Decoded(t) => finder.find(t.as_bytes()).is_some(),
            Text::Escaped { needless: true, .. } if needy => false,
            Text::Escaped { token, .. } => {
                finder.find(token).is_some()
                    && crate::json::tree::decode(token, 0..token.len())
                        .is_none_or(|t| finder.find(t.as_bytes()).is_some())
            }
        }
    }
}

/// Why a request's entities could not all be replaced. Each names what a client or operator
/// can change; the values themselves are never named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreplaced {
    /// The request's text is over [`MAX_TEXT_BYTES`].
    TooMuchText,
    /// More than [`MAX_ENTITIES`] distinct entities.
    TooMany(Kind),
    /// An entity (with the word around it, for a match inside one) over [`MAX_ENTITY_BYTES`].
    TooLong(Kind),
    /// An entity holding a quote, a backslash or a control character: it could not be
    /// restored byte for byte in escaped text, so it is not replaced.
    Unescapable(Kind),
    /// No free stand-in could be drawn within the scanning budget.
    NoStandIn(Kind),
}

impl std::fmt::Display for Unreplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreplaced::TooMuchText => write!(
                f,
                "the request holds more than {MAX_TEXT_BYTES} bytes of text to search"
            ),
            Unreplaced::TooMany(k) => write!(
                f,
                "a `{}` entity is beyond the {MAX_ENTITIES} distinct entities one request may hold",
                k.label()
            ),
            Unreplaced::TooLong(k) => write!(
                f,
                "a `{}` entity (with the word it is part of) is longer than {MAX_ENTITY_BYTES} bytes",
                k.label()
            ),
            Unreplaced::Unescapable(k) => write!(
                f,
                "a `{}` entity holds a quote, a backslash or a control character",
                k.label()
            ),
            Unreplaced::NoStandIn(k) => {
                write!(f, "no free stand-in could be drawn for a `{}` entity", k.label())
            }
        }
    }
}

/// Distinct entities one request may hold. Each new one is checked against the whole prompt,
/// so the work grows with both; past this the request is refused, never sent half-replaced.
pub const MAX_ENTITIES: usize = 512;
/// Prompt bytes one request's stand-in draws may compare in all (about 50 ms of memmem);
/// past it the request is refused rather than hold the worker.
pub const MAX_SCAN_BYTES: usize = 512 * 1024 * 1024;
/// Text one request may hold for substitution (all its conversation strings together).
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

impl<'d> Session<'d> {
    /// A session keyed by `secret` (per gateway key: the same secret gives the same stand-ins).
    pub fn new(detector: &'d Detector, secret: &[u8]) -> Session<'d> {
        Session {
            detector,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            pairs: Vec::new(),
            by_original: HashMap::new(),
            counts: Counts::default(),
            unreplaced: None,
            scanned: 0,
            scope: crate::json::scope_of(secret),
        }
    }

    /// Whose request this is (a digest of the session's key).
    pub(crate) fn scope(&self) -> u64 {
        self.scope
    }

    /// Only built-in detectors are on (see [`Text::Escaped`]).
    pub(crate) fn builtin_only(&self) -> bool {
        self.detector.builtin_only()
    }

    /// Did an entity stay unreplaced? Then the request must be refused: its original would
    /// reach the provider.
    pub fn incomplete(&self) -> bool {
        self.unreplaced.is_some()
    }

    /// Why the request is incomplete (the first entity that could not be replaced).
    pub fn unreplaced(&self) -> Option<Unreplaced> {
        self.unreplaced
    }

    fn refuse(&mut self, why: Unreplaced) {
        self.unreplaced.get_or_insert(why);
    }

    /// Substitutes entities in every text of one request at once: all of them are the
    /// "prompt" no stand-in may collide with. Returns, per text, the new text, or `None` when
    /// it had nothing to replace.
    pub fn substitute(&mut self, texts: &[&str]) -> Vec<Option<String>> {
        let texts: Vec<Text<'_>> = texts.iter().map(|t| Text::Decoded(t)).collect();
        self.substitute_texts(&texts)
    }

    /// [`Session::substitute`] over texts some of which are still JSON-escaped.
    ///
    /// Two phases: every text is searched first, then stand-ins are drawn. A draw must not
    /// hold any original of the request (`1EMP-123456` could draw `7CSR-939827` while
    /// `939827` is another entity in the prompt: that original would then go upstream inside
    /// the stand-in), and the originals are only all known once every text is searched.
    pub(crate) fn substitute_texts(&mut self, texts: &[Text<'_>]) -> Vec<Option<String>> {
        if texts.iter().map(Text::len).sum::<usize>() > MAX_TEXT_BYTES {
            self.refuse(Unreplaced::TooMuchText);
            return vec![None; texts.len()];
        }
        let (found, originals) = self.find_all(texts);
        if self.unreplaced.is_some() {
            // Refused: nothing of this request goes upstream, so no draw is worth its work.
            return vec![None; texts.len()];
        }
        texts
            .iter()
            .zip(&found)
            .map(|(text, found)| {
                let Text::Decoded(text) = *text else {
                    return None;
                };
                if found.is_empty() || self.unreplaced.is_some() {
                    return None;
                }
                let mut out = String::with_capacity(text.len());
                let mut at = 0;
                for f in found {
                    let original = text.get(f.range.clone()).unwrap_or_default();
                    let Some(i) = self.stand_in_for(f.kind, original, texts, &originals) else {
                        let why = if self.pairs.len() >= MAX_ENTITIES {
                            Unreplaced::TooMany(f.kind)
                        } else {
                            Unreplaced::NoStandIn(f.kind)
                        };
                        self.refuse(why);
                        return None;
                    };
                    out.push_str(text.get(at..f.range.start).unwrap_or_default());
                    out.push_str(&self.pairs[i].stand_in);
                    at = f.range.end;
                    self.counts.add(f.kind);
                }
                out.push_str(text.get(at..).unwrap_or_default());
                Some(out)
            })
            .collect()
    }

    /// The entities of each text (none for an escaped one: no detector can match in it, see
    /// [`Text::Escaped`]), each checked to be replaceable, and the distinct originals; the
    /// first entity that is not replaceable refuses the request. More than [`MAX_ENTITIES`]
    /// distinct originals refuses it too, before any draw.
    fn find_all<'t>(&mut self, texts: &[Text<'t>]) -> (Vec<Vec<detect::Found>>, Vec<&'t str>) {
        let mut distinct: std::collections::HashSet<(Kind, &str)> = Default::default();
        let mut originals = Vec::new();
        let mut all = Vec::with_capacity(texts.len());
        for text in texts {
            let Text::Decoded(text) = *text else {
                all.push(Vec::new());
                continue;
            };
            let found = if self.unreplaced.is_some() {
                Vec::new()
            } else {
                self.detector.find(text)
            };
            for f in &found {
                // The detector's ranges are on character boundaries of this text; a miss is a
                // bug, and the request is refused rather than sent with it.
                let Some(original) = text.get(f.range.clone()) else {
                    self.refuse(Unreplaced::Unescapable(f.kind));
                    break;
                };
                let why = if original.len() > MAX_ENTITY_BYTES {
                    Some(Unreplaced::TooLong(f.kind))
                } else if !substitutable(original) {
                    Some(Unreplaced::Unescapable(f.kind))
                } else if distinct.insert((f.kind, original)) {
                    originals.push(original);
                    (distinct.len() > MAX_ENTITIES).then_some(Unreplaced::TooMany(f.kind))
                } else {
                    None
                };
                if let Some(why) = why {
                    self.refuse(why);
                    break;
                }
            }
            all.push(found);
        }
        (all, originals)
    }

    /// The pair index for `original`, drawing a stand-in the first time it is seen: one not
    /// in the prompt, holding no original of the request, and apart from every other
    /// stand-in (neither holds the other).
    fn stand_in_for(
        &mut self,
        kind: Kind,
        original: &str,
        prompt: &[Text<'_>],
        originals: &[&str],
    ) -> Option<usize> {
        if let Some(&i) = self.by_original.get(&(kind, original.to_string())) {
            return Some(i);
        }
        if self.pairs.len() >= MAX_ENTITIES {
            return None;
        }
        // Every draw is checked against the whole prompt: a prompt built to make draws collide
        // (all of a small stand-in pool written out) must not hold a worker for long.
        let prompt_bytes: usize = prompt.iter().map(Text::len).sum();
        let scanned = std::cell::Cell::new(self.scanned);
        let usable = |s: &str, pairs: &[Pair]| {
            scanned.set(scanned.get().saturating_add(prompt_bytes));
            scanned.get() <= MAX_SCAN_BYTES
                && !s.is_empty()
                && escape_invariant(s)
                && !originals.iter().any(|o| s.contains(o))
                // One searcher per draw, vector-prefiltered: `str::contains` over a 300 KB
                // prompt cost ~200,000 instructions a draw (callgrind). Built-in stand-ins
                // have the bytes their pattern needs, so escaped texts are skipped for them.
                && {
                    let finder = memchr::memmem::Finder::new(s);
                    let needy = lines::plain_escapes(s.as_bytes()).is_none();
                    !prompt.iter().any(|t| t.contains(&finder, needy))
                }
                && !pairs
                    .iter()
                    .any(|p| p.stand_in.contains(s) || s.contains(p.stand_in.as_str()))
        };
        let mut chosen = None;
        for attempt in 0..MAX_REDRAWS {
            let mut d = standin::Draw::new(&self.key, kind, original, attempt);
            let s = standin::stand_in(kind, original, &mut d);
            if usable(&s, &self.pairs) {
                chosen = Some(s);
                break;
            }
        }
        if chosen.is_none() {
            for attempt in 0..MAX_SYNTHETIC_REDRAWS {
                let tag = hmac::sign(
                    &self.key,
                    &[original.as_bytes(), &attempt.to_le_bytes()].concat(),
                );
                let hex: String = tag
                    .as_ref()
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let s = format!("{}-{hex}", kind.label());
                if usable(&s, &self.pairs) {
                    chosen = Some(s);
                    break;
                }
            }
        }
        self.scanned = scanned.get();
        let stand_in = chosen?;
        self.pairs.push(Pair {
            stand_in,
            original: original.to_string(),
            kind,
        });
        let i = self.pairs.len() - 1;
        self.by_original.insert((kind, original.to_string()), i);
        Some(i)
    }

    /// Counts of what was replaced, by kind.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The stand-ins drawn so far.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The compiled restore set, or `None` when nothing was substituted. Thinking is left as
    /// the provider wrote it.
    pub fn restore_set(&self) -> Option<Arc<RestoreSet>> {
        self.restore_set_sealing(None)
    }

    /// [`Session::restore_set`] that also restores signed thinking, sealing each changed
    /// block's signature under `seal` (see `thinking`).
    pub fn restore_set_sealing(&self, seal: Option<SealKey>) -> Option<Arc<RestoreSet>> {
        RestoreSet::sealing(
            self.pairs
                .iter()
                .map(|p| (p.stand_in.as_str(), p.original.as_str())),
            seal,
        )
    }
}
