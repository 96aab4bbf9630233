//! Restored thinking that still goes back to its provider exactly as signed.
//!
//! A provider signs the thinking text it wrote, and a client sends the block back with that
//! signature in a later turn; the provider refuses any other text. When restore changes a
//! thinking block's text (stand-ins back to originals), the block's `signature` is replaced by
//! a gateway seal ([`Purpose::PiiThinking`], so the client holds an opaque string) carrying the
//! provider's signature, the edits that undo the restore (offset in the restored text, length
//! of the original, the stand-in) and a SHA-256 of the restored text. When the block comes back,
//! [`unseal_body`] opens the seal, checks the text is the one restored, undoes the edits and
//! puts the provider's signature back: the provider reads the very bytes it signed.
//!
//! A block nothing was restored in keeps the provider's signature byte for byte. The edits one
//! seal carries are bounded ([`MAX_THINKING_EDITS_BYTES`]); past the bound nothing more of that
//! block is restored (its later stand-ins reach the client as the provider wrote them, and the
//! request's set counts it). A stand-in is never left in a restored text without its edit, so
//! what the client holds always undoes exactly.
//!
//! Pure: the key comes in as a value, nothing here reads config or does IO.

use std::ops::Range;
use std::sync::Arc;

use crate::json::tree::{self, Entry, Node};
use crate::seal::{Purpose, SealKey, MAX_SEALED_BYTES};

use super::body::MAX_VALUES;
use super::restore::{edit_cost, Mode, RestoreSet, Restorer};

/// Most bytes the edits of one thinking block's seal take (each is [`edit_cost`]: the
/// stand-in and 8 bytes). The client carries the seal back every turn; a block that mentions
/// its stand-ins more often than this allows is restored up to the bound only.
pub const MAX_THINKING_EDITS_BYTES: usize = 16 * 1024;

/// Longest provider signature sealed. A streamed one arrives in an event of at most 4 MiB;
/// a whole answer's block with a longer one is left unrestored.
pub const MAX_THINKING_SIGNATURE_BYTES: usize = 4 * 1024 * 1024;

/// Version, digest, signature length, edit count.
const HEADER_BYTES: usize = 1 + 32 + 4 + 4;

/// The format of the sealed plain text.
const VERSION: u8 = 1;

// Every seal made here opens: the largest plain text, in base64 with its nonce and tag, is
// within what `SealKey::open` reads.
const _: () = assert!(
    (HEADER_BYTES + MAX_THINKING_SIGNATURE_BYTES + MAX_THINKING_EDITS_BYTES + 12 + 16) * 4 / 3 + 8
        <= MAX_SEALED_BYTES
);

/// A restorer for one thinking text, bounded as a seal needs.
pub(super) fn restorer(set: Arc<RestoreSet>) -> Restorer {
    Restorer::recording(set, Mode::Text, MAX_THINKING_EDITS_BYTES)
}

/// The seal that replaces `provider_signature` once `r` (a [`restorer`]) changed the text.
/// `None` only if the system's random source fails.
pub(super) fn seal(key: &SealKey, provider_signature: &str, r: &Restorer) -> Option<String> {
    let digest = r.digest()?;
    let edits = r.edits();
    let mut plain = Vec::with_capacity(
        HEADER_BYTES
            + provider_signature.len()
            + edits
                .iter()
                .map(|e| edit_cost(e.stand_in.len()))
                .sum::<usize>(),
    );
    plain.push(VERSION);
    plain.extend_from_slice(&digest);
    plain.extend_from_slice(&u32::try_from(provider_signature.len()).ok()?.to_le_bytes());
    plain.extend_from_slice(provider_signature.as_bytes());
    plain.extend_from_slice(&u32::try_from(edits.len()).ok()?.to_le_bytes());
    for e in &edits {
        // The restorer books only offsets that fit (`Record::take`); originals and stand-ins
        // are at most a few hundred bytes.
        plain.extend_from_slice(&u32::try_from(e.at).ok()?.to_le_bytes());
        plain.extend_from_slice(&u16::try_from(e.original_len).ok()?.to_le_bytes());
        plain.extend_from_slice(&u16::try_from(e.stand_in.len()).ok()?.to_le_bytes());
        plain.extend_from_slice(e.stand_in);
    }
    key.seal(Purpose::PiiThinking, &plain)
}

/// A whole thinking block's text restored, and the seal for its signature: `None` when
/// nothing in it was restored (or it could not be sealed, then it is left as it is).
pub(super) fn restore_block(
    set: &Arc<RestoreSet>,
    key: &SealKey,
    text: &str,
    signature: &str,
) -> Option<(String, String)> {
    if !set.may_hold(text.as_bytes()) {
        return None;
    }
    if signature.len() > MAX_THINKING_SIGNATURE_BYTES {
        set.note_cut_short();
        return None;
    }
    let mut r = restorer(set.clone());
    let mut out = r.push(text.as_bytes());
    r.finish_into(&mut out);
    if r.cut_short() {
        set.note_cut_short();
    }
    if !r.changed() {
        return None;
    }
    let Some(sealed) = seal(key, signature, &r) else {
        set.note_cut_short();
        return None;
    };
    // Originals replace whole stand-ins (ASCII) in UTF-8 text.
    Some((String::from_utf8(out).ok()?, sealed))
}

/// An opened seal: the provider's signature and how to undo the restore.
#[derive(Debug, PartialEq, Eq)]
struct Opened {
    signature: String,
    digest: [u8; 32],
    /// `(offset in the restored text, original length, stand-in)`, in order.
    edits: Vec<(usize, usize, Vec<u8>)>,
}

/// Reads the sealed plain text front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    }

    fn u16(&mut self) -> Option<usize> {
        let b: [u8; 2] = self.take(2)?.try_into().ok()?;
        Some(usize::from(u16::from_le_bytes(b)))
    }
}

fn open(key: &SealKey, sealed: &str) -> Option<Opened> {
    let plain = key.open(Purpose::PiiThinking, sealed)?;
    let mut r = Reader(&plain);
    if r.take(1)? != [VERSION] {
        return None;
    }
    let digest: [u8; 32] = r.take(32)?.try_into().ok()?;
    let n = r.u32()?;
    let signature = String::from_utf8(r.take(n)?.to_vec()).ok()?;
    let count = r.u32()?;
    // Each edit takes at least 8 bytes: a count the rest cannot hold is refused before any
    // allocation.
    if count > r.0.len() / 8 {
        return None;
    }
    let mut edits = Vec::with_capacity(count);
    for _ in 0..count {
        let (at, len, n) = (r.u32()?, r.u16()?, r.u16()?);
        edits.push((at, len, r.take(n)?.to_vec()));
    }
    r.0.is_empty().then_some(Opened {
        signature,
        digest,
        edits,
    })
}

impl Opened {
    /// The provider's text from the restored `text`; `None` when `text` is not the one
    /// restored.
    fn undo(&self, text: &[u8]) -> Option<String> {
        if ring::digest::digest(&ring::digest::SHA256, text).as_ref() != self.digest {
            return None;
        }
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (pos, len, stand_in) in &self.edits {
            out.extend_from_slice(text.get(at..*pos)?);
            out.extend_from_slice(stand_in);
            at = pos.checked_add(*len)?;
        }
        out.extend_from_slice(text.get(at..)?);
        String::from_utf8(out).ok()
    }
}

/// Why a request's thinking blocks could not be given back to the provider as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealError {
    /// The field holds a gateway seal this gateway cannot open (another key, forged, cut).
    Unopenable(String),
    /// The block's text is not the text restored in it (its signature covers that text).
    TextChanged(String),
    /// A block with a sealed signature has no single `thinking` text or `signature`.
    Malformed(String),
}

impl UnsealError {
    /// The field named in the client's error.
    pub fn field(&self) -> &str {
        match self {
            UnsealError::Unopenable(f)
            | UnsealError::TextChanged(f)
            | UnsealError::Malformed(f) => f,
        }
    }
}

impl std::fmt::Display for UnsealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsealError::Unopenable(field) => write!(
                f,
                "{field}: this thinking block's signature was sealed by a ringway gateway but cannot be opened here: it was sealed by another server or under another key (give every gateway instance the same [responses] seal_key_env)"
            ),
            UnsealError::TextChanged(field) => write!(
                f,
                "{field}: the text of this thinking block is not the text the gateway gave the client (its signature covers that text exactly); send thinking blocks back unchanged"
            ),
            UnsealError::Malformed(field) => write!(
                f,
                "{field}: a thinking block with a sealed signature must hold exactly one `thinking` text and one `signature`"
            ),
        }
    }
}

/// Where thinking blocks come back: a turn's `content`, an OpenAI client's `thinking_blocks`.
const BLOCK_LISTS: &[&str] = &["content", "thinking_blocks"];

/// Gives every thinking block of `body` whose signature this gateway sealed back its
/// provider's text and signature. `Ok(None)`: nothing sealed in it (the body is unchanged).
/// Any turn of `messages` is read, whatever its role: a sealed block is ours wherever it is.
pub fn unseal_body(body: &[u8], key: &SealKey) -> Result<Option<Vec<u8>>, UnsealError> {
    if !crate::seal::may_hold_seal(body) {
        return Ok(None);
    }
    let mut left = MAX_VALUES;
    let Some(root) = tree::parse_within(body, &mut left) else {
        // A body that does not parse is refused by the stages that read it. One too big to
        // read here goes on as it is: `"rw1.` may be only text in it, with PII on the
        // substitution refuses a body this big, and with it off a seal left in a block only
        // makes the provider refuse the signature (a block still under our seal is never
        // taken for a signed one: `body::signed_members`).
        return Ok(None);
    };
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    if let Some(Node::Array(turns)) = root.get("messages") {
        for (m, turn) in turns.iter().enumerate() {
            let Node::Object(members) = turn else {
                continue;
            };
            for list in members.iter().filter(|e| BLOCK_LISTS.contains(&e.key())) {
                let Node::Array(blocks) = &list.value else {
                    continue;
                };
                for (b, block) in blocks.iter().enumerate() {
                    if let Node::Object(entries) = block {
                        let at = format!("messages[{m}].{}[{b}]", list.key);
                        unseal_block(body, key, entries, &at, &mut edits)?;
                    }
                }
            }
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|(r, _)| r.start);
    let edits: Vec<(Range<usize>, &str)> =
        edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
    // The spans come from this body, in order and apart: splicing cannot fail.
    Ok(tree::splice_strings(body, &edits))
}

/// One block: when its signature is a seal of ours, the edits that give back the provider's
/// text and signature.
fn unseal_block(
    body: &[u8],
    key: &SealKey,
    entries: &[Entry],
    at: &str,
    edits: &mut Vec<(Range<usize>, String)>,
) -> Result<(), UnsealError> {
    let strings = |name: &str| -> Vec<(Range<usize>, String)> {
        entries
            .iter()
            .filter(|e| e.key == name)
            .filter_map(|e| match &e.value {
                Node::Str(span) => {
                    let text = tree::decode(body, span.clone())?;
                    Some((span.clone(), text.into_owned()))
                }
                _ => None,
            })
            .collect()
    };
    let signatures = strings("signature");
    if !signatures.iter().any(|(_, s)| SealKey::is_ours(s)) {
        return Ok(());
    }
    let field = |name: &str| format!("{at}.{name}");
    // A duplicate member would let the provider read another text than the one checked.
    let texts = strings("thinking");
    let ([(sig_span, sealed)], [(text_span, text)]) = (signatures.as_slice(), texts.as_slice())
    else {
        return Err(UnsealError::Malformed(field("signature")));
    };
    if entries
        .iter()
        .filter(|e| e.key == "signature" || e.key == "thinking")
        .count()
        != 2
    {
        return Err(UnsealError::Malformed(field("signature")));
    }
    let opened = open(key, sealed).ok_or_else(|| UnsealError::Unopenable(field("signature")))?;
    let provider_text = opened
        .undo(text.as_bytes())
        .ok_or_else(|| UnsealError::TextChanged(field("thinking")))?;
    edits.push((text_span.clone(), provider_text));
    edits.push((sig_span.clone(), opened.signature));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Holder;
    use serde_json::{json, Value};

    const STAND_IN: &str = "avery.thorne42@example.com";
    const ORIGINAL: &str = "jane.doe@corp.example.io";

    fn key() -> SealKey {
        SealKey::from_bytes(&[0x42; 32])
            .unwrap()
            .for_holder(Holder::Key([0x42; 32]))
    }

    fn set() -> Arc<RestoreSet> {
        RestoreSet::sealing(
            [(STAND_IN, ORIGINAL), ("10.0.0.7", "192.168.40.2")],
            Some(key()),
        )
        .unwrap()
    }

    /// The provider's text, restored in pieces cut at `cuts`, sealed; then undone.
    fn round_trip(provider: &str, cuts: &[usize]) -> (String, String) {
        let set = set();
        let mut r = restorer(set);
        let mut restored = Vec::new();
        let mut from = 0;
        for &c in cuts.iter().chain([provider.len()].iter()) {
            restored.extend(r.push(&provider.as_bytes()[from..c]));
            from = c;
        }
        r.finish_into(&mut restored);
        let restored = String::from_utf8(restored).unwrap();
        let sealed = seal(&key(), "c2lnbmF0dXJl", &r).unwrap();
        let opened = open(&key(), &sealed).unwrap();
        assert_eq!(opened.signature, "c2lnbmF0dXJl");
        let back = opened.undo(restored.as_bytes()).unwrap();
        (restored, back)
    }

    #[test]
    fn undoing_the_edits_gives_back_the_provider_text_for_any_split() {
        let provider = format!(
            "{STAND_IN} wrote from 10.0.0.7; é {STAND_IN}x {STAND_IN}. Also 10.0.0.77 and x{STAND_IN} {STAND_IN}"
        );
        let (whole, back) = round_trip(&provider, &[]);
        assert_eq!(back, provider);
        assert!(
            whole.starts_with(ORIGINAL) && whole.ends_with(ORIGINAL),
            "{whole}"
        );
        assert!(whole.contains("from 192.168.40.2;"), "{whole}");
        // Every split in two and in three (char boundaries only: deltas are strings).
        let bounds: Vec<usize> = (0..=provider.len())
            .filter(|&i| provider.is_char_boundary(i))
            .collect();
        for &i in &bounds {
            let (restored, back) = round_trip(&provider, &[i]);
            assert_eq!(back, provider, "cut at {i}");
            assert_eq!(restored, whole, "cut at {i}");
        }
        for &i in bounds.iter().step_by(3) {
            for &j in bounds.iter().filter(|&&j| j >= i).step_by(5) {
                let (restored, back) = round_trip(&provider, &[i, j]);
                assert_eq!(
                    (restored.as_str(), back.as_str()),
                    (whole.as_str(), provider.as_str())
                );
            }
        }
    }

    #[test]
    fn the_edits_are_bounded_and_what_is_restored_still_undoes_exactly() {
        let provider = format!("{STAND_IN} ").repeat(2000);
        let (restored, back) = round_trip(&provider, &[7, 1000, 30_000]);
        assert_eq!(back, provider);
        let fit = MAX_THINKING_EDITS_BYTES / edit_cost(STAND_IN.len());
        assert_eq!(restored.matches(ORIGINAL).count(), fit);
        assert_eq!(restored.matches(STAND_IN).count(), 2000 - fit);
        // Restored up to the bound, then left: every original comes before every stand-in.
        assert!(restored.rfind(ORIGINAL).unwrap() < restored.find(STAND_IN).unwrap());
        let set = set();
        let (text, sealed) = restore_block(&set, &key(), &provider, "sig").unwrap();
        assert_eq!(text, restored);
        assert_eq!(set.thinking_cut_short(), 1);
        assert!(
            sealed.len() < MAX_THINKING_EDITS_BYTES * 4 / 3 + 200,
            "{}",
            sealed.len()
        );
    }

    #[test]
    fn a_changed_text_or_a_tampered_seal_is_refused() {
        let provider = format!("mail {STAND_IN} now");
        let set = set();
        let (text, sealed) = restore_block(&set, &key(), &provider, "c2ln").unwrap();
        assert_eq!(text, format!("mail {ORIGINAL} now"));
        let opened = open(&key(), &sealed).unwrap();
        assert_eq!(opened.undo(text.as_bytes()).unwrap(), provider);
        assert_eq!(opened.undo(b"mail jane.doe@corp.example.io now!"), None);
        assert_eq!(opened.undo(provider.as_bytes()), None);
        // Another key, another purpose, one character changed: not opened.
        let other = SealKey::from_bytes(&[0x43; 32])
            .unwrap()
            .for_holder(Holder::Key([0x42; 32]));
        assert_eq!(open(&other, &sealed), None);
        // The same key bound to another gateway key: not opened either.
        let other_holder = SealKey::from_bytes(&[0x42; 32])
            .unwrap()
            .for_holder(Holder::Key([0x43; 32]));
        assert_eq!(open(&other_holder, &sealed), None);
        let reasoning = key().seal(Purpose::Reasoning, b"\x01").unwrap();
        assert_eq!(open(&key(), &reasoning), None);
        let mut forged = sealed.clone().into_bytes();
        let last = forged.len() - 3;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(&key(), std::str::from_utf8(&forged).unwrap()), None);
        // Nothing to restore: no seal, the provider's signature stays.
        assert_eq!(restore_block(&set, &key(), "nothing here", "c2ln"), None);
    }

    #[test]
    fn plain_texts_that_are_not_ours_are_refused_without_panic() {
        // Sealed by us with the right purpose but not this format: cut, padded, counts
        // larger than the rest.
        let k = key();
        for plain in [
            &b""[..],
            &[2u8; 41][..],
            &[1u8; 10][..],
            &[&[1u8][..], &[0; 32], &[0, 0, 0, 0], &[255, 255, 255, 255]].concat()[..],
            &[&[1u8][..], &[0; 32], &[9, 0, 0, 0], b"abc"].concat()[..],
            &[&[1u8][..], &[0; 32], &[0, 0, 0, 0], &[0, 0, 0, 0], b"x"].concat()[..],
        ] {
            let sealed = k.seal(Purpose::PiiThinking, plain).unwrap();
            assert_eq!(open(&k, &sealed), None, "{plain:?}");
        }
        // Edits past the text's end or going backwards: undo refuses, never panics.
        let bad = Opened {
            signature: String::new(),
            digest: ring::digest::digest(&ring::digest::SHA256, b"abc")
                .as_ref()
                .try_into()
                .unwrap(),
            edits: vec![(2, 5, b"x".to_vec())],
        };
        assert_eq!(bad.undo(b"abc"), None);
        let back = Opened {
            edits: vec![(2, 1, b"x".to_vec()), (1, 1, b"y".to_vec())],
            ..bad
        };
        assert_eq!(back.undo(b"abc"), None);
    }

    #[test]
    fn whole_answers_restore_thinking_and_seal_only_what_changed() {
        let provider = format!("They wrote {STAND_IN}.");
        let block =
            |text: &str, sig: &str| json!({"type": "thinking", "thinking": text, "signature": sig});
        let anthropic = json!({"content": [
            block(&provider, "c2lnMQ=="),
            block("nothing of theirs", "c2lnMg=="),
            {"type": "redacted_thinking", "data": STAND_IN},
            {"type": "text", "text": format!("to {STAND_IN}")}]});
        let openai = json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "content": format!("to {STAND_IN}"), "reasoning_content": provider,
            "thinking_blocks": [block(&provider, "c2lnMQ==")]}}]});
        let restored = provider.replace(STAND_IN, ORIGINAL);
        for (body, blocks) in [
            (anthropic, "/content"),
            (openai, "/choices/0/message/thinking_blocks"),
        ] {
            // Without a key thinking is left as the provider wrote it.
            let plain = RestoreSet::new([(STAND_IN, ORIGINAL)]).unwrap();
            let v: Value =
                serde_json::from_slice(&plain.restore_document(body.to_string().as_bytes()))
                    .unwrap();
            assert_eq!(v.pointer(blocks).unwrap()[0], block(&provider, "c2lnMQ=="));

            let out = set().restore_document(body.to_string().as_bytes());
            let v: Value = serde_json::from_slice(&out).unwrap();
            let got = v.pointer(blocks).unwrap().as_array().unwrap();
            assert_eq!(got[0]["thinking"], restored.as_str());
            let sealed = got[0]["signature"].as_str().unwrap();
            assert!(SealKey::is_ours(sealed), "{sealed}");
            if got.len() > 1 {
                assert_eq!(
                    got[1], body["content"][1],
                    "nothing restored: byte for byte"
                );
                assert_eq!(got[2]["data"], STAND_IN, "redacted thinking is opaque");
            }
            let back = json!({"messages": [{"role": "assistant", "content": [got[0].clone()]}]});
            let back = unseal_body(back.to_string().as_bytes(), &key())
                .unwrap()
                .unwrap();
            let back: Value = serde_json::from_slice(&back).unwrap();
            assert_eq!(
                back["messages"][0]["content"][0],
                block(&provider, "c2lnMQ==")
            );
        }
    }

    #[test]
    fn a_body_gets_the_provider_text_and_signature_back_in_both_dialects() {
        let provider = format!("They wrote {STAND_IN}; I use help@mock.example.net.");
        let set = set();
        let (text, sealed) = restore_block(&set, &key(), &provider, "c2lnbmF0dXJl").unwrap();
        let body = json!({"model": "m", "messages": [
            {"role": "user", "content": format!("mail {ORIGINAL}")},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": text, "signature": sealed},
                {"type": "thinking", "thinking": provider, "signature": "cHJvdmlkZXI="},
                {"type": "text", "text": "ok"}]},
            {"role": "assistant", "content": "x", "thinking_blocks": [
                {"type": "thinking", "thinking": text, "signature": sealed}]}]})
        .to_string();
        let out = unseal_body(body.as_bytes(), &key()).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        for block in [
            &v["messages"][1]["content"][0],
            &v["messages"][2]["thinking_blocks"][0],
        ] {
            assert_eq!(block["thinking"], provider.as_str());
            assert_eq!(block["signature"], "c2lnbmF0dXJl");
        }
        // Everything else is the client's bytes.
        let mut want: Value = serde_json::from_str(&body).unwrap();
        want["messages"][1]["content"][0] =
            json!({"type": "thinking", "thinking": provider, "signature": "c2lnbmF0dXJl"});
        want["messages"][2]["thinking_blocks"][0] = want["messages"][1]["content"][0].clone();
        assert_eq!(v, want);
        // Nothing sealed: unchanged, not even parsed.
        assert_eq!(unseal_body(br#"{"messages":[]}"#, &key()), Ok(None));

        let refused = |block: Value| {
            let body = json!({"messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}, block]}]});
            unseal_body(body.to_string().as_bytes(), &key()).unwrap_err()
        };
        let changed = refused(
            json!({"type": "thinking", "thinking": format!("{text} "), "signature": sealed}),
        );
        assert_eq!(
            changed,
            UnsealError::TextChanged("messages[1].content[1].thinking".into())
        );
        let other = SealKey::from_bytes(&[1; 32])
            .unwrap()
            .for_holder(Holder::Key([0x42; 32]));
        let (_, foreign) = restore_block(&set, &other, &provider, "c2ln").unwrap();
        let unopenable =
            refused(json!({"type": "thinking", "thinking": text, "signature": foreign}));
        assert_eq!(unopenable.field(), "messages[1].content[1].signature");
        assert!(matches!(unopenable, UnsealError::Unopenable(_)));
        assert!(unopenable.to_string().contains("seal_key_env"));
        let dup = format!(
            r#"{{"messages":[{{"role":"assistant","content":[{{"type":"thinking","thinking":{t},"thinking":"x","signature":"{sealed}"}}]}}]}}"#,
            t = serde_json::to_string(&text).unwrap()
        );
        assert!(matches!(
            unseal_body(dup.as_bytes(), &key()),
            Err(UnsealError::Malformed(_))
        ));
    }
}
