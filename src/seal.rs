//! Sealing what a client must carry between turns but may neither read nor forge: an
//! Anthropic thinking block (with its signature) in a Responses `reasoning` item's
//! `encrypted_content`, a compaction summary in a `compaction` item, and in place of a
//! thinking block's signature whose text PII restore changed, the provider's signature with
//! the edits that undo the restore (`pii::thinking`), and a Gemini thought signature in a tool
//! call id (`translate::gemini`).
//!
//! AES-256-GCM (ring) with a random 96-bit nonce per seal; the purpose and the holder (the
//! gateway key the request authenticated with) are bound as associated data, so a reasoning
//! seal cannot pass as a compaction one, and one key's items do not open for another (the
//! failure is the same as for a forged item). The sealed text is
//! `rw1.` + base64url(nonce ‖ ciphertext ‖ tag). With random nonces one key seals safely up to
//! 2^32 items; keys come from config (shared by every instance behind one name) or are drawn at
//! start (seals then last as long as the process). The configured key itself is a master that
//! neither seals nor opens: only a copy bound to a [`Holder`] does.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every sealed value (version 1 of the format).
const PREFIX: &str = "rw1.";

/// The bytes every sealed value opens with: a body with no string token opening with them
/// holds no seal of this gateway as written.
pub const MARK: &[u8] = PREFIX.as_bytes();

/// Longest sealed value opened, in bytes: a thinking block is far smaller; the bound keeps a
/// hostile item from costing a large decode.
pub const MAX_SEALED_BYTES: usize = 8 << 20;

/// What a seal protects; bound into it, so one kind cannot be replayed as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A provider's reasoning (thinking blocks).
    Reasoning,
    /// A conversation summary made by the gateway.
    Compaction,
    /// A thinking block's provider signature and the PII restore's inverse edits.
    PiiThinking,
    /// A Gemini thought signature carried in a tool call id, with the provider it came from.
    ThoughtSignature,
    /// Anthropic thinking blocks carried to a Gemini client in a `thoughtSignature`.
    ThinkingCarrier,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Reasoning => b"ringway/reasoning/v1",
            Purpose::Compaction => b"ringway/compaction/v1",
            Purpose::PiiThinking => b"ringway/pii-thinking/v1",
            Purpose::ThoughtSignature => b"ringway/thought-signature/v1",
            Purpose::ThinkingCarrier => b"ringway/thinking-carrier/v1",
        }
    }
}

/// Whom a seal is made for: bound into it, so it opens only for the same holder.
///
/// A gateway key is named by the SHA-256 of its secret, not by its configured name: a name
/// can be renamed or given to another tenant later, a secret cannot, and the digest is what
/// the configuration already holds. A new secret for the same name is a new holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No gateway keys are configured: every client is the same (anonymous) holder.
    Open,
    /// The gateway key whose secret has this SHA-256.
    Key([u8; 32]),
}

/// Longest associated data: the longest purpose label, a holder tag and a digest.
const MAX_AAD_BYTES: usize = 64;

/// The associated data of a seal: purpose label, then the holder.
fn associated(purpose: Purpose, holder: Holder, buf: &mut [u8; MAX_AAD_BYTES]) -> Option<&[u8]> {
    let label = purpose.label();
    let (tag, id): (u8, &[u8]) = match &holder {
        Holder::Open => (b'o', &[]),
        Holder::Key(digest) => (b'k', digest),
    };
    let n = label.len() + 2 + id.len();
    let out = buf.get_mut(..n)?;
    let (l, rest) = out.split_at_mut(label.len());
    l.copy_from_slice(label);
    let (sep, rest) = rest.split_at_mut(2);
    sep.copy_from_slice(&[b'/', tag]);
    rest.copy_from_slice(id);
    Some(out)
}

/// A sealing key. Cheap to clone (shared); compared by fingerprint and holder, never printed.
/// Seals and opens only once bound to a holder ([`SealKey::for_holder`]).
#[derive(Clone)]
pub struct SealKey {
    key: Arc<LessSafeKey>,
    fingerprint: [u8; 8],
    holder: Option<Holder>,
}

impl SealKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<SealKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(digest.as_ref().get(..8)?);
        Some(SealKey {
            key: Arc::new(LessSafeKey::new(key)),
            fingerprint,
            holder: None,
        })
    }

    /// This key bound to `holder`: what it seals opens only for the same holder (a copy of
    /// the shared key; no work per request beyond that).
    pub fn for_holder(&self, holder: Holder) -> SealKey {
        SealKey {
            holder: Some(holder),
            ..self.clone()
        }
    }

    /// A fresh random key (seals made with it open only in this process).
    pub fn random() -> Option<SealKey> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        SealKey::from_bytes(&bytes)
    }

    /// `plain` sealed for `purpose` and this key's holder. None if the key is bound to no
    /// holder, or the system's random source fails.
    pub fn seal(&self, purpose: Purpose, plain: &[u8]) -> Option<String> {
        let mut aad_buf = [0u8; MAX_AAD_BYTES];
        let aad = associated(purpose, self.holder?, &mut aad_buf)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                buf.get_mut(NONCE_LEN..)?,
            )
            .ok()?;
        buf.extend_from_slice(tag.as_ref());
        let mut out = String::with_capacity(PREFIX.len() + buf.len() * 4 / 3 + 4);
        out.push_str(PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
        Some(out)
    }

    /// The plain bytes of a value this key sealed for `purpose` and this key's holder; None
    /// for anything else (another key, another holder, another purpose, a forged or cut
    /// value, not ours at all), and always None unbound. The cases are not told apart.
    pub fn open(&self, purpose: Purpose, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED_BYTES {
            return None;
        }
        let mut aad_buf = [0u8; MAX_AAD_BYTES];
        let aad = associated(purpose, self.holder?, &mut aad_buf)?;
        let b64 = sealed.strip_prefix(PREFIX)?;
        let mut buf = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        if buf.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(buf.get(..NONCE_LEN)?);
        let body = buf.get_mut(NONCE_LEN..)?;
        let plain_len = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .ok()?
            .len();
        buf.drain(..NONCE_LEN);
        buf.truncate(plain_len);
        Some(buf)
    }

    /// Does this value look like one of ours (any key)? Used to tell a foreign provider's
    /// encrypted content from a seal made under another key.
    pub fn is_ours(sealed: &str) -> bool {
        sealed.starts_with(PREFIX)
    }

    /// The prefix every sealed value opens with (`rw1.`): a carrier whose alphabet has no `.`
    /// (a tool call id) leaves it out and puts it back before opening.
    pub const PREFIX: &'static str = PREFIX;
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl PartialEq for SealKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.holder == other.holder
    }
}

impl Eq for SealKey {}

/// Between a tool call's id and the Gemini thought signature sealed into it:
/// `<id>__rwts__<token>` (`translate::chat_via_gemini`). Only `[A-Za-z0-9_]`, so the id stays
/// legal wherever ids are checked; and no quote or bracket, so it never straddles the edge of
/// a JSON value.
pub const SIGNATURE_SEPARATOR: &str = "__rwts__";

/// Where `bytes` first holds [`SIGNATURE_SEPARATOR`], searched with a searcher built once: a
/// body without one carries no thought signature.
pub fn find_signature_separator(bytes: &[u8]) -> Option<usize> {
    static SEPARATOR: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(SIGNATURE_SEPARATOR.as_bytes()));
    SEPARATOR.find(bytes)
}

/// Could `body` hold a gateway seal (a string opening with `rw1.`)? The searcher is built
/// once: every request body with a turn is asked.
pub fn may_hold_seal(body: &[u8]) -> bool {
    static SEAL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"rw1."));
    SEAL.find(body).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Holder = Holder::Key([0xa; 32]);

    fn bound(bytes: u8) -> SealKey {
        SealKey::from_bytes(&[bytes; 32]).unwrap().for_holder(A)
    }

    #[test]
    fn seals_open_only_with_their_key_and_purpose() {
        let k = bound(0xab);
        let other = bound(0xcd);
        let s = k
            .seal(Purpose::Reasoning, b"thinking and signature")
            .unwrap();
        assert!(s.starts_with("rw1."));
        assert!(!s.contains("thinking"));
        assert_eq!(
            k.open(Purpose::Reasoning, &s).unwrap(),
            b"thinking and signature"
        );
        assert_eq!(k.open(Purpose::Compaction, &s), None);
        assert_eq!(other.open(Purpose::Reasoning, &s), None);
        // Two seals of the same text differ (fresh nonce) and both open.
        let t = k
            .seal(Purpose::Reasoning, b"thinking and signature")
            .unwrap();
        assert_ne!(s, t);
        assert!(k.open(Purpose::Reasoning, &t).is_some());
    }

    #[test]
    fn seals_open_only_for_their_holder_and_never_unbound() {
        let master = SealKey::from_bytes(&[0x11; 32]).unwrap();
        assert_eq!(master.seal(Purpose::Compaction, b"x"), None);
        let b = Holder::Key([0xb; 32]);
        for purpose in [
            Purpose::Reasoning,
            Purpose::Compaction,
            Purpose::PiiThinking,
        ] {
            let a_key = master.for_holder(A);
            let s = a_key.seal(purpose, b"a's summary").unwrap();
            assert_eq!(a_key.open(purpose, &s).unwrap(), b"a's summary");
            assert_eq!(
                master.for_holder(A).open(purpose, &s).unwrap(),
                b"a's summary"
            );
            assert_eq!(master.open(purpose, &s), None, "unbound");
            assert_eq!(master.for_holder(b).open(purpose, &s), None);
            assert_eq!(master.for_holder(Holder::Open).open(purpose, &s), None);
            let open = master.for_holder(Holder::Open).seal(purpose, b"o").unwrap();
            assert_eq!(a_key.open(purpose, &open), None);
            assert!(master
                .for_holder(Holder::Open)
                .open(purpose, &open)
                .is_some());
        }
        assert_ne!(master.for_holder(A), master.for_holder(b));
        assert_ne!(master, master.for_holder(A));
        assert_eq!(master.for_holder(A), master.for_holder(A));
    }

    #[test]
    fn forged_or_cut_seals_are_refused() {
        let k = bound(7);
        let s = k.seal(Purpose::Reasoning, b"abc").unwrap();
        // Flip each character of the payload in turn: none opens.
        let b64 = &s[PREFIX.len()..];
        for i in 0..b64.len() {
            let mut forged: Vec<u8> = b64.bytes().collect();
            forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
            let forged = format!("{PREFIX}{}", String::from_utf8(forged).unwrap());
            assert_eq!(k.open(Purpose::Reasoning, &forged), None, "{i}");
        }
        for cut in 0..s.len() {
            assert_eq!(k.open(Purpose::Reasoning, &s[..cut]), None, "{cut}");
        }
        for junk in ["", "rw1.", "rw1.!!!!", "gAAAAABnot-ours", "rw2.AAAA"] {
            assert_eq!(k.open(Purpose::Reasoning, junk), None, "{junk}");
        }
    }

    #[test]
    fn keys_compare_by_fingerprint() {
        assert_eq!(
            SealKey::from_bytes(&[1u8; 32]),
            SealKey::from_bytes(&[1u8; 32])
        );
        assert_ne!(
            SealKey::from_bytes(&[1u8; 32]),
            SealKey::from_bytes(&[2u8; 32])
        );
        assert_ne!(SealKey::random(), SealKey::random());
    }
}
