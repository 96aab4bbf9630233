//! Google's side of authentication as the mock plays it: the OAuth token endpoint (`POST
//! /token`: RS256 JWT-bearer assertions verified against the service account's public key,
//! and the `refresh_token` grant), a GCE metadata server, and the store of tokens the mock
//! issued that Vertex requests must present. The clock is a parameter.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};

use super::cloud::{form_value, json_reply, reply, unix};
use super::script::Step;

/// The refresh token the `refresh_token` grant accepts (authorized_user credentials).
pub const MOCK_REFRESH_TOKEN: &str = "mock-refresh-token";
/// A bearer Vertex always accepts.
pub const MOCK_STATIC_TOKEN: &str = "mock-static-token";
/// Longest JWT lifetime Google accepts (`exp - iat`).
pub const MAX_JWT_LIFETIME_SECS: i64 = 3600;
/// How far `iat` may be from the mock's clock.
pub const MAX_IAT_SKEW_SECS: i64 = 300;
/// Tokens remembered; the oldest are forgotten (then refused) past this.
pub const MAX_ISSUED_TOKENS: usize = 65_536;
/// Default `--google-token-ttl`.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3599;
/// The project id the metadata server reports.
pub const MOCK_PROJECT: &str = "mock-project";

const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// The service account whose JWTs the token endpoint accepts.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// `client_email`: the JWT's `iss`.
    pub client_email: String,
    /// `token_uri`: an accepted `aud` (as is the mock's own `/token` URL).
    pub token_uri: String,
    /// PKCS#1 `RSAPublicKey` DER of the key.
    pub public_key: Vec<u8>,
}

impl ServiceAccount {
    /// Reads a service_account JSON file (its PKCS#8 PEM private key gives the public half).
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| format!("{path}: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{path}: no {k:?}"))
        };
        let pem = field("private_key")?;
        let key = rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(|e| format!("{path}: private_key: {e}"))?
            .ok_or_else(|| format!("{path}: private_key holds no key"))?;
        let rustls::pki_types::PrivateKeyDer::Pkcs8(der) = key else {
            return Err(format!("{path}: private_key is not PKCS#8"));
        };
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("{path}: private_key: {e}"))?;
        Ok(Self {
            client_email: field("client_email")?,
            token_uri: field("token_uri")?,
            public_key: pair.public_key().as_ref().to_vec(),
        })
    }
}

/// The tokens the mock issued and when each expires.
#[derive(Debug, Default)]
pub struct Tokens {
    next: u64,
    issued: BTreeMap<u64, i64>,
}

impl Tokens {
    /// Issues `mock-token-<n>`, valid `ttl` seconds from `now`.
    pub fn issue(&mut self, now: SystemTime, ttl: u64) -> String {
        self.next += 1;
        let expires = unix(now).saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX / 2));
        self.issued.insert(self.next, expires);
        while self.issued.len() > MAX_ISSUED_TOKENS {
            self.issued.pop_first();
        }
        format!("mock-token-{}", self.next)
    }

    /// Whether `token` is one the mock issued and still valid (or the static token).
    pub fn accepts(&self, token: &str, now: SystemTime) -> bool {
        if token == MOCK_STATIC_TOKEN {
            return true;
        }
        token
            .strip_prefix("mock-token-")
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| self.issued.get(&n))
            .is_some_and(|exp| *exp > unix(now))
    }

    /// Forgets every issued token (they answer 401 until new ones are fetched).
    pub fn revoke(&mut self) {
        self.issued.clear();
    }
}

fn token_json(tokens: &mut Tokens, now: SystemTime, ttl: u64) -> Value {
    json!({
        "access_token": tokens.issue(now, ttl),
        "expires_in": ttl,
        "token_type": "Bearer",
    })
}

fn grant_error(error: &str, description: &str) -> Vec<Step> {
    json_reply(
        400,
        Vec::new(),
        &json!({"error": error, "error_description": description}),
    )
}

/// `POST /token`. `host` is the request's Host header: `http://{host}/token` is an accepted
/// `aud` besides the account's `token_uri` (tests learn the mock's port after it started).
pub fn token_endpoint(
    account: Option<&ServiceAccount>,
    tokens: &mut Tokens,
    body: &[u8],
    host: &str,
    now: SystemTime,
    ttl: u64,
) -> Vec<Step> {
    match form_value(body, "grant_type").as_deref() {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(account) = account else {
                return grant_error(
                    "invalid_grant",
                    "mock: started without --google-service-account",
                );
            };
            let assertion = form_value(body, "assertion").unwrap_or_default();
            match verify_jwt(account, &assertion, host, now) {
                Ok(()) => json_reply(200, Vec::new(), &token_json(tokens, now, ttl)),
                Err(description) => grant_error("invalid_grant", description),
            }
        }
        Some("refresh_token") => {
            if form_value(body, "refresh_token").as_deref() == Some(MOCK_REFRESH_TOKEN) {
                json_reply(200, Vec::new(), &token_json(tokens, now, ttl))
            } else {
                grant_error("invalid_grant", "Bad Request")
            }
        }
        other => grant_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", other.unwrap_or_default()),
        ),
    }
}

/// Checks an RS256 JWT as Google's token endpoint does: signature, `iss`, `aud`, times.
fn verify_jwt(
    account: &ServiceAccount,
    jwt: &str,
    host: &str,
    now: SystemTime,
) -> Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid JWT: malformed");
    };
    let header: Value = b64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: malformed header")?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err("Invalid JWT Signature.");
    }
    let signature = b64.decode(s).map_err(|_| "Invalid JWT Signature.")?;
    let signed = jwt.get(..h.len() + 1 + c.len()).unwrap_or_default();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let claims: Value = b64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT: malformed claims")?;
    let claim = |k: &str| claims.get(k).and_then(Value::as_str);
    if claim("iss") != Some(account.client_email.as_str()) {
        return Err("Invalid JWT: iss is not the service account's client_email");
    }
    let aud = claim("aud").unwrap_or_default();
    let own = [
        format!("http://{host}/token"),
        format!("https://{host}/token"),
    ];
    if aud != account.token_uri && !own.iter().any(|o| o == aud) {
        return Err("Invalid JWT: Failed audience check.");
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err(SHORT_LIVED);
    };
    let now = unix(now);
    if exp <= iat
        || exp - iat > MAX_JWT_LIFETIME_SECS
        || (iat - now).abs() > MAX_IAT_SKEW_SECS
        || exp <= now
    {
        return Err(SHORT_LIVED);
    }
    Ok(())
}

/// The metadata server (`/computeMetadata/v1/…`); `None`: not one of its paths.
pub fn metadata(
    path: &str,
    flavor: Option<&[u8]>,
    tokens: &mut Tokens,
    now: SystemTime,
    ttl: u64,
) -> Option<Vec<Step>> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let known = matches!(
        path,
        "/computeMetadata/v1/instance/service-accounts/default/token"
            | "/computeMetadata/v1/project/project-id"
    );
    if !known {
        return None;
    }
    if flavor != Some(b"Google") {
        return Some(reply(
            403,
            vec![("content-type", "text/html; charset=UTF-8".to_owned())],
            b"Missing Metadata-Flavor:Google header.".to_vec(),
        ));
    }
    let flavor = ("metadata-flavor", "Google".to_owned());
    Some(if path.ends_with("/token") {
        json_reply(200, vec![flavor], &token_json(tokens, now, ttl))
    } else {
        reply(
            200,
            vec![("content-type", "application/text".to_owned()), flavor],
            MOCK_PROJECT.as_bytes().to_vec(),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_expire_and_revoke() {
        let now = SystemTime::now();
        let mut t = Tokens::default();
        let a = t.issue(now, 10);
        assert_eq!(a, "mock-token-1");
        assert!(t.accepts(&a, now));
        assert!(!t.accepts(&a, now + Duration::from_secs(11)));
        assert!(!t.accepts("mock-token-2", now));
        assert!(t.accepts(MOCK_STATIC_TOKEN, now));
        t.revoke();
        assert!(!t.accepts(&a, now));
        let b = t.issue(now, 10);
        assert!(t.accepts(&b, now));
    }
}
