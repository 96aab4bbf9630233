//! Sealing what a client must carry between turns but may neither read nor forge: an
//! Anthropic thinking block (with its signature) in a Responses `reasoning` item's
//! `encrypted_content`, a compaction summary in a `compaction` item, and in place of a
//! thinking block's signature whose text PII restore changed, the provider's signature with
//! the edits that undo the restore (`pii::thinking`).
//!
//! AES-256-GCM (ring) with a random 96-bit nonce per seal; the purpose is bound as associated
//! data, so a reasoning seal cannot pass as a compaction one. The sealed text is
//! `rw1.` + base64url(nonce ‖ ciphertext ‖ tag). With random nonces one key seals safely up to
//! 2^32 items; keys come from config (shared by every instance behind one name) or are drawn at
//! start (seals then last as long as the process).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every sealed value (version 1 of the format).
const PREFIX: &str = "rw1.";

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
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Reasoning => b"ringway/reasoning/v1",
            Purpose::Compaction => b"ringway/compaction/v1",
            Purpose::PiiThinking => b"ringway/pii-thinking/v1",
        }
    }
}

/// A sealing key. Cheap to clone (shared); compared by fingerprint, never printed.
#[derive(Clone)]
pub struct SealKey {
    key: Arc<LessSafeKey>,
    fingerprint: [u8; 8],
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
        })
    }

    /// A fresh random key (seals made with it open only in this process).
    pub fn random() -> Option<SealKey> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        SealKey::from_bytes(&bytes)
    }

    /// `plain` sealed for `purpose`. None only if the system's random source fails.
    pub fn seal(&self, purpose: Purpose, plain: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.aad()),
                buf.get_mut(NONCE_LEN..)?,
            )
            .ok()?;
        buf.extend_from_slice(tag.as_ref());
        let mut out = String::with_capacity(PREFIX.len() + buf.len() * 4 / 3 + 4);
        out.push_str(PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
        Some(out)
    }

    /// The plain bytes of a value this key sealed for `purpose`; None for anything else
    /// (another key, another purpose, a forged or cut value, not ours at all).
    pub fn open(&self, purpose: Purpose, sealed: &str) -> Option<Vec<u8>> {
        if sealed.len() > MAX_SEALED_BYTES {
            return None;
        }
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
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.aad()),
                body,
            )
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
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl PartialEq for SealKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for SealKey {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_only_with_their_key_and_purpose() {
        let k = SealKey::from_bytes(&[0xab; 32]).unwrap();
        let other = SealKey::from_bytes(&[0xcd; 32]).unwrap();
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
    fn forged_or_cut_seals_are_refused() {
        let k = SealKey::from_bytes(&[7u8; 32]).unwrap();
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
