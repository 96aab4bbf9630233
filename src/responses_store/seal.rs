//! Encryption at rest for stored responses: the store key, the owner tag a row is filed under,
//! and sealing a row's payload with AES-256-GCM (ring). Pure: the caller (the writer thread)
//! draws each nonce.
//!
//! From the 32-byte store key three keys are derived with HMAC-SHA256 under distinct labels:
//! the AEAD key, the key that turns an [`Owner`] into the tag stored beside its rows (so the
//! database holds nothing computed from a gateway key without the store key), and a check value
//! that tells, when the store opens, whether its rows were sealed under this key. Each row is
//! sealed with a random 96-bit nonce (one key seals up to 2^32 rows safely) and its id, owner
//! tag and previous response id as associated data: a row copied under another id or owner,
//! or spliced into another chain, does not open.

use std::fmt;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;

/// Bytes of a nonce, stored in front of each sealed payload.
pub const NONCE_BYTES: usize = NONCE_LEN;
/// Associated data's version label.
const AAD_LABEL: &[u8] = b"ringway/responses/row/v1";

/// Who a stored response belongs to: the identity of the gateway key that made it. Only the
/// same identity reads, lists or deletes it. Cheap to copy; the wiring chooses the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// A kind byte, then 32 bytes.
    bytes: [u8; 33],
}

impl Owner {
    /// A gateway key, by the SHA-256 of its secret (`GatewayKey::sha256`): the rows follow the
    /// secret, so a new secret under an old name (a rotation after a leak) does not inherit
    /// the old one's conversations. The recommended identity.
    pub fn key_hash(sha256: &[u8; 32]) -> Owner {
        Owner::of(1, sha256)
    }

    /// A gateway key, by its configured name: the rows follow the name across rotations.
    pub fn key_name(name: &str) -> Owner {
        Owner::of(2, &crate::auth::sha256(name.as_bytes()))
    }

    /// The one caller of a gateway without keys.
    pub fn keyless() -> Owner {
        Owner::of(0, &[0u8; 32])
    }

    fn of(kind: u8, digest: &[u8; 32]) -> Owner {
        let mut bytes = [0u8; 33];
        bytes[0] = kind;
        bytes[1..].copy_from_slice(digest);
        Owner { bytes }
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Owner(..)")
    }
}

/// An owner as stored: HMAC-SHA256 of the [`Owner`] under a key derived from the store key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnerTag(pub [u8; 32]);

/// The store key and what is derived from it. Never printed.
pub struct StoreKey {
    aead: LessSafeKey,
    owner: hmac::Key,
    check: [u8; 32],
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), label);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

impl StoreKey {
    /// The key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> Option<StoreKey> {
        let aead =
            UnboundKey::new(&AES_256_GCM, &derive(bytes, b"ringway/responses/seal/v1")).ok()?;
        Some(StoreKey {
            aead: LessSafeKey::new(aead),
            owner: hmac::Key::new(
                hmac::HMAC_SHA256,
                &derive(bytes, b"ringway/responses/owner/v1"),
            ),
            check: derive(bytes, b"ringway/responses/check/v1"),
        })
    }

    /// The value that says which key sealed a store's rows (kept beside them).
    pub fn check(&self) -> [u8; 32] {
        self.check
    }

    /// The tag `owner`'s rows are filed under.
    pub fn owner_tag(&self, owner: &Owner) -> OwnerTag {
        let tag = hmac::sign(&self.owner, &owner.bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        OwnerTag(out)
    }

    /// `plain` sealed for the row `id` of `owner` continuing `prev`: nonce ‖ ciphertext ‖ tag.
    /// None only if ring refuses (it does not for these sizes).
    pub fn seal(
        &self,
        nonce: [u8; NONCE_BYTES],
        id: &str,
        owner: &OwnerTag,
        prev: Option<&str>,
        plain: &[u8],
    ) -> Option<Vec<u8>> {
        let mut buf = Vec::with_capacity(NONCE_BYTES + plain.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(id, owner, prev)),
                buf.get_mut(NONCE_BYTES..)?,
            )
            .ok()?;
        buf.extend_from_slice(tag.as_ref());
        Some(buf)
    }

    /// The plain bytes of a row sealed by [`seal`](Self::seal) with the same id, owner and
    /// previous id under this key; None for anything else.
    pub fn open(
        &self,
        id: &str,
        owner: &OwnerTag,
        prev: Option<&str>,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES + AES_256_GCM.tag_len() {
            return None;
        }
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(sealed.get(..NONCE_BYTES)?);
        let mut body = sealed.get(NONCE_BYTES..)?.to_vec();
        let n = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(id, owner, prev)),
                &mut body,
            )
            .ok()?
            .len();
        body.truncate(n);
        Some(body)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// The associated data of a row: label, then each field length-prefixed (so no two field
/// lists give the same bytes).
fn aad(id: &str, owner: &OwnerTag, prev: Option<&str>) -> Vec<u8> {
    let prev = prev.unwrap_or("");
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 24 + id.len() + prev.len() + 32);
    a.extend_from_slice(AAD_LABEL);
    for field in [id.as_bytes(), &owner.0, prev.as_bytes()] {
        a.extend_from_slice(&(field.len() as u64).to_be_bytes());
        a.extend_from_slice(field);
    }
    a
}

/// A store key as an operator writes it in the environment: 64 hex digits, or 32 bytes in
/// base64 (standard or URL-safe, padded or not). Surrounding whitespace is ignored.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let bytes: Vec<u8> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        t.as_bytes()
            .chunks_exact(2)
            .map(|p| {
                let s = std::str::from_utf8(p).ok()?;
                u8::from_str_radix(s, 16).ok()
            })
            .collect::<Option<Vec<u8>>>()?
    } else {
        let b = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(t.trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))
            })
            .ok()?;
        b
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_open_only_with_their_key_id_owner_and_previous_id() {
        let k = StoreKey::new(&[1u8; 32]).unwrap();
        let other = StoreKey::new(&[2u8; 32]).unwrap();
        let alice = k.owner_tag(&Owner::key_hash(&[7u8; 32]));
        let bob = k.owner_tag(&Owner::key_hash(&[8u8; 32]));
        let s = k
            .seal([9u8; 12], "resp_1", &alice, Some("resp_0"), b"secret text")
            .unwrap();
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            k.open("resp_1", &alice, Some("resp_0"), &s).unwrap(),
            b"secret text"
        );
        assert_eq!(k.open("resp_2", &alice, Some("resp_0"), &s), None);
        assert_eq!(k.open("resp_1", &bob, Some("resp_0"), &s), None);
        assert_eq!(k.open("resp_1", &alice, None, &s), None);
        assert_eq!(k.open("resp_1", &alice, Some("resp_9"), &s), None);
        assert_eq!(other.open("resp_1", &alice, Some("resp_0"), &s), None);
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert_eq!(k.open("resp_1", &alice, Some("resp_0"), &t), None, "{i}");
        }
        for cut in 0..s.len() {
            assert_eq!(k.open("resp_1", &alice, Some("resp_0"), &s[..cut]), None);
        }
    }

    #[test]
    fn owners_differ_by_kind_and_value_and_tags_by_store_key() {
        let k = StoreKey::new(&[1u8; 32]).unwrap();
        let tags = [
            k.owner_tag(&Owner::keyless()),
            k.owner_tag(&Owner::key_hash(&[0u8; 32])),
            k.owner_tag(&Owner::key_name("team-a")),
            k.owner_tag(&Owner::key_name("team-b")),
        ];
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let k2 = StoreKey::new(&[3u8; 32]).unwrap();
        assert_ne!(k2.owner_tag(&Owner::keyless()), tags[0]);
        assert_ne!(k.check(), k2.check());
    }

    #[test]
    fn keys_parse_from_hex_or_base64() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_key(&hex), Some([0xab; 32]));
        assert_eq!(parse_key(&format!(" {hex}\n")), Some([0xab; 32]));
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xfb; 32]);
        assert_eq!(parse_key(&b64), Some([0xfb; 32]));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(parse_key(&url), Some([0xfb; 32]));
        for bad in ["", "ab", &"ab".repeat(31), &"zz".repeat(32), "not base64!"] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert_eq!(parse_key(&short), None);
    }
}
