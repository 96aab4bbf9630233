//! Google credentials without google-auth: a service account's RS256 JWT exchanged at its
//! token URI, an authorized user's refresh-token grant, the metadata server, or a static token.
//! The file parsers and the JWT builder are pure (the caller gives the time).

use std::time::{Duration, SystemTime};

use base64::Engine;

use super::{check_value, clip, fetch, Secret, Source};

/// The OAuth scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint (authorized_user files without a token_uri).
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for a service account's JWT (Google's maximum).
const JWT_LIFETIME: u64 = 3600;
/// Largest credentials file read.
const MAX_FILE: u64 = 64 * 1024;
/// The metadata server's token path.
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A service account key (`"type": "service_account"`).
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccount {
    /// The key's public half (PKCS#1 RSAPublicKey DER), for verifying its JWTs.
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref()
    }
}

/// What a Google credentials file holds.
#[derive(Debug)]
pub enum File {
    ServiceAccount(Box<ServiceAccount>),
    /// gcloud's application-default credentials (`"type": "authorized_user"`).
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
        /// `quota_project_id`: the project billed, sent as `x-goog-user-project`.
        quota_project: Option<String>,
    },
}

/// Parse a credentials JSON file's text; `origin` names it in errors.
pub fn parse_file(text: &[u8], origin: &str) -> Result<File, String> {
    let v: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("{origin}: not JSON ({e})"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{origin}: no `{k}`"))
    };
    match v.get("type").and_then(serde_json::Value::as_str) {
        Some("service_account") => {
            let pem = field("private_key")?;
            let der = pem_pkcs8(pem).ok_or_else(|| {
                format!("{origin}: private_key is not a PEM `PRIVATE KEY` (PKCS#8)")
            })?;
            let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
                .map_err(|e| format!("{origin}: private_key is not a usable RSA key ({e})"))?;
            let token_uri = v
                .get("token_uri")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(TOKEN_URI);
            fetch::Url::parse(token_uri).map_err(|e| format!("{origin}: token_uri: {e}"))?;
            Ok(File::ServiceAccount(Box::new(ServiceAccount {
                client_email: field("client_email")?.to_owned(),
                private_key_id: field("private_key_id").ok().map(str::to_owned),
                token_uri: token_uri.to_owned(),
                key,
            })))
        }
        Some("authorized_user") => {
            let token_uri = v
                .get("token_uri")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(TOKEN_URI);
            fetch::Url::parse(token_uri).map_err(|e| format!("{origin}: token_uri: {e}"))?;
            Ok(File::AuthorizedUser {
                client_id: field("client_id")?.to_owned(),
                client_secret: field("client_secret")?.to_owned(),
                refresh_token: field("refresh_token")?.to_owned(),
                token_uri: token_uri.to_owned(),
                quota_project: match field("quota_project_id") {
                    Ok(q) => {
                        check_value(q, &format!("{origin}: quota_project_id"))?;
                        Some(q.to_owned())
                    }
                    Err(_) => None,
                },
            })
        }
        Some(other) => Err(format!(
            "{origin}: credentials of type `{}` are not supported (service_account or \
             authorized_user)",
            clip(other)
        )),
        None => Err(format!("{origin}: no `type`")),
    }
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pem_pkcs8(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let b64: String = pem
        .get(start..end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The signed JWT a service account exchanges for an access token, issued at `now` (Unix
/// seconds): header `{"alg":"RS256","typ":"JWT","kid"}`, claims iss/scope/aud/iat/exp.
pub fn jwt(sa: &ServiceAccount, now: u64) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let (Some(kid), Some(h)) = (&sa.private_key_id, header.as_object_mut()) {
        h.insert("kid".into(), kid.clone().into());
    }
    let claims = serde_json::json!({
        "iss": sa.client_email,
        "scope": SCOPE,
        "aud": sa.token_uri,
        "iat": now,
        "exp": now + JWT_LIFETIME,
    });
    let mut out = b64.encode(header.to_string());
    out.push('.');
    out.push_str(&b64.encode(claims.to_string()));
    let mut sig = vec![0u8; sa.key.public().modulus_len()];
    sa.key
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            out.as_bytes(),
            &mut sig,
        )
        .map_err(|_| "RS256 signing failed".to_owned())?;
    out.push('.');
    out.push_str(&b64.encode(sig));
    Ok(out)
}

/// A token endpoint's (or the metadata server's) answer: the access token and its lifetime.
pub fn token_answer(status: u16, body: &[u8], origin: &str) -> Result<(String, Duration), String> {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(serde_json::Value::as_str)
    };
    if status != 200 {
        let why = match (field("error"), field("error_description")) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.to_owned(),
            _ => String::from_utf8_lossy(body.get(..200).unwrap_or(body)).into_owned(),
        };
        return Err(format!("{origin}: HTTP {status}: {}", clip(&why)));
    }
    let token = field("access_token").ok_or_else(|| format!("{origin}: no access_token"))?;
    check_value(token, &format!("{origin}: access_token"))?;
    let secs = v
        .as_ref()
        .and_then(|v| v.get("expires_in"))
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("{origin}: no expires_in"))?;
    // A token endpoint's word on lifetime is bounded: an absurd one must not overflow a clock
    // (or keep a token past any real one's life).
    Ok((
        token.to_owned(),
        Duration::from_secs(secs.min(MAX_TOKEN_LIFE_SECS)),
    ))
}

/// Longest token lifetime believed (Google's access tokens last an hour; 12 h is the most a
/// service account can be granted).
pub const MAX_TOKEN_LIFE_SECS: u64 = 24 * 3600;

/// Where a Vertex provider's credential comes from (the chain of the config docs).
pub(super) fn resolve(
    credentials_file: Option<&std::path::Path>,
    metadata_url: Option<&str>,
    api_key_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Source, String> {
    if let Some(var) = api_key_env {
        let v = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("api_key_env names {var}, which is not set in the environment")
        })?;
        check_value(&v, var)?;
        return Ok(Source::Static(Secret::Bearer(v), "static".to_owned()));
    }
    let (path, key) = match credentials_file {
        Some(p) => (Some(p.to_path_buf()), "google_credentials"),
        None => (
            env("GOOGLE_APPLICATION_CREDENTIALS")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
    };
    if let Some(path) = path {
        let origin = format!("{key} {}", path.display());
        let text = read_bounded(&path).map_err(|e| format!("{origin}: {e}"))?;
        return Ok(match parse_file(&text, &origin)? {
            File::ServiceAccount(sa) => Source::GoogleServiceAccount(sa),
            File::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
                quota_project,
            } => Source::GoogleUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
                quota_project,
            },
        });
    }
    let (url, key) = match metadata_url {
        Some(u) => (Some(u.to_owned()), "google_metadata_url"),
        None => (
            env("GCE_METADATA_HOST").filter(|v| !v.is_empty()).map(|h| {
                if h.contains("://") {
                    h
                } else {
                    format!("http://{h}")
                }
            }),
            "GCE_METADATA_HOST",
        ),
    };
    if let Some(url) = url {
        let base = url.trim_end_matches('/');
        let full = format!("{base}{METADATA_TOKEN_PATH}");
        fetch::Url::parse(&full).map_err(|e| format!("{key}: {e}"))?;
        return Ok(Source::GoogleMetadata { url: full });
    }
    Err(
        "no Google credentials found: set api_key_env (a static access token), \
         google_credentials or GOOGLE_APPLICATION_CREDENTIALS (a service_account or \
         authorized_user JSON file), or google_metadata_url / GCE_METADATA_HOST"
            .to_owned(),
    )
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    Ok(text)
}

/// One token fetch: the answer's token and when it expires.
pub(super) fn fetch_token(
    source: &Source,
    now: SystemTime,
) -> Result<(String, SystemTime), String> {
    let (response, origin) = match source {
        Source::GoogleServiceAccount(sa) => {
            let assertion = jwt(sa, crate::calendar::unix_secs(now))?;
            let body = fetch::form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ]);
            let origin = format!("token exchange at {}", sa.token_uri);
            (post_form(&sa.token_uri, &body, &origin)?, origin)
        }
        Source::GoogleUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
            ..
        } => {
            let body = fetch::form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("refresh_token", refresh_token),
            ]);
            let origin = format!("refresh-token grant at {token_uri}");
            (post_form(token_uri, &body, &origin)?, origin)
        }
        Source::GoogleMetadata { url } => {
            let origin = format!("metadata server {url}");
            let u = fetch::Url::parse(url)?;
            let r = fetch::request("GET", &u, &[("metadata-flavor", "Google")], b"")
                .map_err(|e| format!("{origin}: {e}"))?;
            // A proxy or captive portal answering in its place does not say this.
            if r.status == 200 && r.header("metadata-flavor") != Some(&b"Google"[..]) {
                return Err(format!(
                    "{origin}: the answer lacks Metadata-Flavor: Google"
                ));
            }
            (r, origin)
        }
        _ => return Err("not a Google token source".into()),
    };
    let (token, life) = token_answer(response.status, &response.body, &origin)?;
    let expires = now
        .checked_add(life)
        .ok_or_else(|| format!("{origin}: expires_in out of range"))?;
    Ok((token, expires))
}

fn post_form(url: &str, body: &str, origin: &str) -> Result<fetch::Response, String> {
    let u = fetch::Url::parse(url)?;
    fetch::request(
        "POST",
        &u,
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .map_err(|e| format!("{origin}: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const TEST_KEY: &str = include_str!("testdata/sa_key.pem");

    pub(crate) fn sa_json(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid-1",
            "private_key": TEST_KEY,
            "client_email": "ringway@p.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn sa() -> ServiceAccount {
        match parse_file(sa_json(TOKEN_URI).as_bytes(), "t").unwrap() {
            File::ServiceAccount(sa) => *sa,
            File::AuthorizedUser { .. } => unreachable!(),
        }
    }

    #[test]
    fn a_jwt_carries_the_claims_and_verifies_with_the_public_key() {
        let sa = sa();
        let t = jwt(&sa, 1_795_618_800).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg":"RS256","typ":"JWT","kid":"kid-1"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "ringway@p.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_795_618_800u64,
                "exp": 1_795_622_400u64,
            })
        );
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            sa.public_key(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = b64.decode(parts[2]).unwrap();
        key.verify(signed.as_bytes(), &sig).unwrap();
        assert!(key.verify(b"other", &sig).is_err());
    }

    #[test]
    fn credentials_files() {
        let user = br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","quota_project_id":"billing"}"#;
        match parse_file(user, "f").unwrap() {
            File::AuthorizedUser {
                token_uri,
                refresh_token,
                quota_project,
                ..
            } => {
                assert_eq!(token_uri, TOKEN_URI);
                assert_eq!(refresh_token, "r");
                assert_eq!(quota_project.as_deref(), Some("billing"));
            }
            File::ServiceAccount(_) => panic!("not a service account"),
        }
        let e = parse_file(br#"{"type":"external_account"}"#, "f").unwrap_err();
        assert!(e.contains("`external_account` are not supported"), "{e}");
        let e = parse_file(br#"{"type":"authorized_user","client_id":"c"}"#, "f").unwrap_err();
        assert_eq!(e, "f: no `client_secret`");
        let bad_key = sa_json(TOKEN_URI).replace("MII", "XXX");
        assert!(parse_file(bad_key.as_bytes(), "f").is_err());
        let e = parse_file(b"{", "f").unwrap_err();
        assert!(e.starts_with("f: not JSON"), "{e}");
    }

    #[test]
    fn token_answers() {
        let (t, life) = token_answer(
            200,
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            "o",
        )
        .unwrap();
        assert_eq!((t.as_str(), life), ("ya29.x", Duration::from_secs(3599)));
        let e = token_answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            "o",
        )
        .unwrap_err();
        assert_eq!(e, "o: HTTP 400: invalid_grant: Invalid JWT Signature.");
        assert!(token_answer(200, br#"{"access_token":"a b","expires_in":1}"#, "o").is_err());
        assert!(token_answer(200, br#"{"access_token":"a"}"#, "o").is_err());
    }

    #[test]
    fn the_chain() {
        let env = |k: &str| match k {
            "VERTEX_TOKEN" => Some("mock-static-token".to_owned()),
            "GCE_METADATA_HOST" => Some("169.254.169.254".to_owned()),
            _ => None,
        };
        let d = |r: Result<Source, String>| r.map(|s| s.describe());
        assert_eq!(
            d(resolve(None, None, Some("VERTEX_TOKEN"), &env)).unwrap(),
            "static"
        );
        assert_eq!(
            d(resolve(None, None, None, &env)).unwrap(),
            "metadata http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
        );
        let e = d(resolve(
            Some(std::path::Path::new("/nonexistent/sa.json")),
            None,
            None,
            &env,
        ))
        .unwrap_err();
        assert!(
            e.starts_with("google_credentials /nonexistent/sa.json: "),
            "{e}"
        );
        let e = d(resolve(None, None, None, &|_| None)).unwrap_err();
        assert!(e.contains("no Google credentials found"), "{e}");
        let e = d(resolve(None, None, Some("UNSET"), &|_| None)).unwrap_err();
        assert!(e.contains("api_key_env names UNSET"), "{e}");
    }
}
