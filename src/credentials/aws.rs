//! AWS credentials without the SDK: keys from the environment, from a profile of the shared
//! `credentials`/`config` files, or from a container credentials endpoint; Bedrock API keys
//! (bearer). Parsers are pure; the caller reads the files and the clock.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{check_value, Source};

/// SigV4 keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// `AKIA…`/`ASIA…`.
    pub access_key_id: String,
    /// The secret half.
    pub secret_access_key: String,
    /// Temporary credentials' session token (sent as `x-amz-security-token`).
    pub session_token: Option<String>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Keys {
    // Never the secret or the token: Debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .field("expires", &self.expires)
            .finish()
    }
}

impl Keys {
    /// Keys whose every part may go into a header (checked where they enter).
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        expires: Option<SystemTime>,
        origin: &str,
    ) -> Result<Keys, String> {
        check_value(access_key_id, &format!("{origin}: access key id"))?;
        check_value(secret_access_key, &format!("{origin}: secret access key"))?;
        if let Some(t) = session_token {
            check_value(t, &format!("{origin}: session token"))?;
        }
        Ok(Keys {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: session_token.map(str::to_owned),
            expires,
        })
    }
}

/// The environment variable of Bedrock API keys.
pub const BEDROCK_BEARER_ENV: &str = "AWS_BEARER_TOKEN_BEDROCK";
/// The container credentials endpoint's host for a relative URI (ECS).
const CONTAINER_HOST: &str = "http://169.254.170.2";

/// The keys of one profile as the two shared files give them (the credentials file's value
/// wins for a key both have). `Ok(None)`: no such profile in either file.
pub fn profile_keys(
    credentials_file: Option<&str>,
    config_file: Option<&str>,
    profile: &str,
) -> Result<Option<Keys>, String> {
    let mut merged: HashMap<String, String> = HashMap::new();
    let mut found = false;
    if let Some(text) = config_file {
        if let Some(s) = ini_section(text, profile, true) {
            found = true;
            merged.extend(s);
        }
    }
    if let Some(text) = credentials_file {
        if let Some(s) = ini_section(text, profile, false) {
            found = true;
            merged.extend(s);
        }
    }
    if !found {
        return Ok(None);
    }
    let get = |k: &str| merged.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let origin = format!("profile `{profile}`");
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            Keys::new(id, secret, get("aws_session_token"), None, &origin).map(Some)
        }
        _ => {
            let how = [
                "role_arn",
                "credential_process",
                "sso_session",
                "sso_start_url",
            ]
            .into_iter()
            .chain(["web_identity_token_file", "credential_source"])
            .find(|k| get(k).is_some());
            Err(match how {
                Some(k) => format!(
                    "profile `{profile}` uses {k}, which ringway does not support; give it keys \
                     (aws_access_key_id, aws_secret_access_key) or use the container endpoint \
                     (aws_credentials_url)"
                ),
                None => format!(
                    "profile `{profile}` has no aws_access_key_id and aws_secret_access_key"
                ),
            })
        }
    }
}

/// The `region` a profile's config file section gives, if any.
pub fn profile_region(config_file: &str, profile: &str) -> Option<String> {
    ini_section(config_file, profile, true)?
        .remove("region")
        .filter(|r| !r.is_empty())
}

/// The `key = value` pairs (keys lower-case, values trimmed) of one profile's section: in the
/// credentials file `[name]`, in the config file `[profile name]` (`[default]` or
/// `[profile default]` for the default). Indented lines (sub-properties) and comments are
/// skipped; later sections of the same name add to earlier ones.
pub fn ini_section(
    text: &str,
    profile: &str,
    config_file: bool,
) -> Option<HashMap<String, String>> {
    let mut out: Option<HashMap<String, String>> = None;
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.split(']').next() else {
                inside = false;
                continue;
            };
            let name = name.trim();
            let name = if config_file {
                match name.strip_prefix("profile") {
                    Some(n) if n.starts_with([' ', '\t']) => n.trim(),
                    _ if name == "default" => name,
                    _ => "",
                }
            } else {
                name
            };
            inside = !name.is_empty() && name == profile;
            if inside {
                out.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let (Some((k, v)), Some(map)) = (line.split_once('='), out.as_mut()) {
            map.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

/// A container credentials endpoint's answer:
/// `{"AccessKeyId","SecretAccessKey","Token","Expiration":"RFC 3339"}`.
pub fn container_keys(body: &[u8], origin: &str) -> Result<Keys, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("{origin}: not JSON ({e})"))?;
    let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
    if let (None, Some(msg)) = (field("AccessKeyId"), field("message")) {
        let code = field("code").unwrap_or("error");
        return Err(format!("{origin}: {code}: {}", super::clip(msg)));
    }
    let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
        return Err(format!(
            "{origin}: no AccessKeyId and SecretAccessKey in the answer"
        ));
    };
    let expires =
        match field("Expiration") {
            None => None,
            Some(e) => Some(rfc3339(e).ok_or_else(|| {
                format!("{origin}: Expiration `{}` is not RFC 3339", super::clip(e))
            })?),
        };
    Keys::new(id, secret, field("Token"), expires, origin)
}

/// An RFC 3339 instant with a time (`2026-11-25T16:00:00Z`).
pub fn rfc3339(s: &str) -> Option<SystemTime> {
    match crate::calendar::parse_instant(s)? {
        (_, true) => None,
        (ms, false) => Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).ok()?)),
    }
}

/// Where a Bedrock provider's credential comes from (the chain of the config docs).
/// A container credentials endpoint over plain http must be this host or the container
/// agents' link-local addresses (ECS 169.254.170.2, EKS Pod Identity 169.254.170.23 and
/// fd00:ec2::23), as AWS's SDKs require: the authorization token and the keys travel in the
/// clear. Anything else must be https.
fn container_host_allowed(u: &super::fetch::Url) -> Result<(), String> {
    const AGENTS: [&str; 3] = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"];
    let local = |h: &str| match h.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip.is_loopback()
                || AGENTS
                    .iter()
                    .any(|a| a.parse::<std::net::IpAddr>().ok() == Some(ip))
        }
        Err(_) => h == "localhost",
    };
    if u.tls || local(&u.host) {
        Ok(())
    } else {
        Err(format!(
            "http to `{}` would send credentials in the clear: use https, or a loopback or container agent address",
            super::clip(&u.host)
        ))
    }
}

pub(super) fn resolve(
    profile: Option<&str>,
    credentials_url: Option<&str>,
    api_key_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Source, String> {
    let token_from_env = |env: &dyn Fn(&str) -> Option<String>| ContainerToken {
        file: env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").filter(|s| !s.is_empty()),
        value: env("AWS_CONTAINER_AUTHORIZATION_TOKEN").filter(|s| !s.is_empty()),
    };
    if let Some(url) = credentials_url {
        let u = super::fetch::Url::parse(url).map_err(|e| format!("aws_credentials_url: {e}"))?;
        container_host_allowed(&u).map_err(|e| format!("aws_credentials_url: {e}"))?;
        return Ok(Source::AwsContainer {
            url: url.to_owned(),
            token: token_from_env(env),
        });
    }
    if let Some(var) = api_key_env {
        let v = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("api_key_env names {var}, which is not set in the environment")
        })?;
        check_value(&v, var)?;
        return Ok(Source::Static(
            super::Secret::Bearer(v),
            format!("env {var}"),
        ));
    }
    // A profile the config names explicitly wins over the environment's keys, as the AWS
    // CLI's --profile does: the operator chose it for this provider.
    if profile.is_none() {
        if let Some(v) = env(BEDROCK_BEARER_ENV).filter(|v| !v.is_empty()) {
            check_value(&v, BEDROCK_BEARER_ENV)?;
            return Ok(Source::Static(
                super::Secret::Bearer(v),
                format!("env {BEDROCK_BEARER_ENV}"),
            ));
        }
        let id = env("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty());
        let secret = env("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => {
                let token = env("AWS_SESSION_TOKEN").filter(|v| !v.is_empty());
                let keys = Keys::new(&id, &secret, token.as_deref(), None, "environment")?;
                return Ok(Source::Static(super::Secret::Aws(keys), "env".to_owned()));
            }
            (Some(_), None) => {
                return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
            }
            (None, Some(_)) => {
                return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
            }
            (None, None) => {}
        }
    }
    let named = profile
        .map(str::to_owned)
        .or_else(|| env("AWS_PROFILE").filter(|v| !v.is_empty()));
    let name = named.clone().unwrap_or_else(|| "default".to_owned());
    let home = env("HOME").unwrap_or_default();
    let path = |var: &str, tail: &str| {
        env(var)
            .filter(|v| !v.is_empty())
            .or_else(|| (!home.is_empty()).then(|| format!("{home}/.aws/{tail}")))
    };
    let read = |p: Option<String>| -> Result<Option<String>, String> {
        let Some(p) = p else { return Ok(None) };
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {p}: {e}")),
        }
    };
    let creds_text = read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?;
    let config_text = read(path("AWS_CONFIG_FILE", "config"))?;
    match profile_keys(creds_text.as_deref(), config_text.as_deref(), &name) {
        Ok(Some(keys)) => {
            return Ok(Source::Static(
                super::Secret::Aws(keys),
                format!("profile {name}"),
            ))
        }
        Ok(None) if named.is_some() => {
            let key = if profile.is_some() {
                "aws_profile"
            } else {
                "AWS_PROFILE"
            };
            return Err(format!(
                "{key} names profile `{name}`, which is in neither the credentials nor the config file"
            ));
        }
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    let url = env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .filter(|v| !v.is_empty())
        .or_else(|| {
            env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .filter(|v| v.starts_with('/'))
                .map(|rel| format!("{CONTAINER_HOST}{rel}"))
        });
    if let Some(url) = url {
        let u = super::fetch::Url::parse(&url)
            .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_*_URI: {e}"))?;
        container_host_allowed(&u).map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_*_URI: {e}"))?;
        return Ok(Source::AwsContainer {
            url,
            token: token_from_env(env),
        });
    }
    Err(
        "no AWS credentials found: set api_key_env or AWS_BEARER_TOKEN_BEDROCK (Bedrock API \
         key), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile with keys in \
         ~/.aws/credentials (aws_profile), or aws_credentials_url"
            .to_owned(),
    )
}

/// The `Authorization` value a container endpoint wants, read at each fetch (EKS rotates the
/// file).
#[derive(Clone, Debug, Default)]
pub(crate) struct ContainerToken {
    file: Option<String>,
    value: Option<String>,
}

impl ContainerToken {
    pub(crate) fn read(&self) -> Result<Option<String>, String> {
        if let Some(p) = &self.file {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {p}: {e}"))?;
            let t = t.trim().to_owned();
            check_value(&t, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")?;
            return Ok(Some(t));
        }
        if let Some(t) = &self.value {
            check_value(t, "AWS_CONTAINER_AUTHORIZATION_TOKEN")?;
        }
        Ok(self.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_from_the_credentials_file_wins_over_the_config_file() {
        let creds =
            "# comment\n[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key=sdef\n\n\
                     [work]\n; note\naws_access_key_id = AKIDWORK \naws_secret_access_key = swork\n\
                     aws_session_token = tok\n";
        let config = "[default]\nregion = us-east-1\n[profile work]\nregion = ca-central-1\n\
                      aws_access_key_id = AKIDCONFIG\ns3 =\n  max_concurrent_requests = 20\n";
        let k = profile_keys(Some(creds), Some(config), "work")
            .unwrap()
            .unwrap();
        assert_eq!(k.access_key_id, "AKIDWORK");
        assert_eq!(k.secret_access_key, "swork");
        assert_eq!(k.session_token.as_deref(), Some("tok"));
        let d = profile_keys(Some(creds), Some(config), "default")
            .unwrap()
            .unwrap();
        assert_eq!(d.access_key_id, "AKIDDEF");
        assert_eq!(
            profile_keys(Some(creds), Some(config), "nope").unwrap(),
            None
        );
        assert_eq!(
            profile_region(config, "work").as_deref(),
            Some("ca-central-1")
        );
        assert_eq!(
            profile_region(config, "default").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(profile_region(config, "nope"), None);
    }

    #[test]
    fn config_file_sections_need_the_profile_prefix() {
        let config = "[work]\naws_access_key_id = A\naws_secret_access_key = B\n\
                      [profile other]\naws_access_key_id = C\naws_secret_access_key = D\n\
                      [profile default]\naws_access_key_id = E\naws_secret_access_key = F\n";
        assert_eq!(profile_keys(None, Some(config), "work").unwrap(), None);
        let o = profile_keys(None, Some(config), "other").unwrap().unwrap();
        assert_eq!(o.access_key_id, "C");
        let d = profile_keys(None, Some(config), "default")
            .unwrap()
            .unwrap();
        assert_eq!(d.access_key_id, "E");
        // In the credentials file, `[profile x]` is not profile x.
        assert_eq!(profile_keys(Some(config), None, "other").unwrap(), None);
    }

    #[test]
    fn profiles_that_need_an_sdk_get_a_clear_error() {
        let config = "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n\
                      [profile sso]\nsso_session = corp\n[profile empty]\nregion = us-east-1\n";
        let e = profile_keys(None, Some(config), "role").unwrap_err();
        assert!(e.contains("profile `role` uses role_arn"), "{e}");
        let e = profile_keys(None, Some(config), "sso").unwrap_err();
        assert!(e.contains("uses sso_session"), "{e}");
        let e = profile_keys(None, Some(config), "empty").unwrap_err();
        assert!(e.contains("has no aws_access_key_id"), "{e}");
    }

    #[test]
    fn header_hostile_values_are_refused_where_they_enter() {
        let creds = "[x]\naws_access_key_id = AKID WITH SPACE\naws_secret_access_key = s\n";
        let e = profile_keys(Some(creds), None, "x").unwrap_err();
        assert!(e.contains("access key id"), "{e}");
        assert!(Keys::new("A", "s\r\nx-evil: 1", None, None, "t").is_err());
        assert!(Keys::new(
            "A",
            &"s".repeat(super::super::MAX_SECRET_LEN + 1),
            None,
            None,
            "t"
        )
        .is_err());
        assert!(Keys::new("A", "s", Some(""), None, "t").is_err());
    }

    #[test]
    fn container_answers() {
        let k = container_keys(
            br#"{"AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-25T16:00:00Z"}"#,
            "c",
        )
        .unwrap();
        assert_eq!(k.access_key_id, "ASIA1");
        assert_eq!(k.session_token.as_deref(), Some("t"));
        assert_eq!(
            k.expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_795_622_400))
        );
        let e = container_keys(br#"{"code":"AccessDenied","message":"no"}"#, "c").unwrap_err();
        assert_eq!(e, "c: AccessDenied: no");
        assert!(container_keys(b"<html>", "c").is_err());
        let e = container_keys(
            br#"{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"2026-11-25"}"#,
            "c",
        )
        .unwrap_err();
        assert!(e.contains("not RFC 3339"), "{e}");
        assert_eq!(
            rfc3339("2026-11-25T17:00:00+01:00"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_622_400))
        );
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_chain_picks_the_first_source_that_exists() {
        let env = env_of(&[
            ("MY_KEY", "ABSKmine"),
            ("AWS_BEARER_TOKEN_BEDROCK", "ABSKenv"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("HOME", "/nonexistent-ringway-home"),
        ]);
        let src = |p, u, k| resolve(p, u, k, &env).map(|s| s.describe());
        assert_eq!(src(None, None, Some("MY_KEY")).unwrap(), "env MY_KEY");
        assert_eq!(
            src(None, None, None).unwrap(),
            "env AWS_BEARER_TOKEN_BEDROCK"
        );
        assert_eq!(
            src(None, Some("http://127.0.0.1:9/creds"), Some("MY_KEY")).unwrap(),
            "container http://127.0.0.1:9/creds"
        );
        let e = src(None, None, Some("UNSET_KEY")).unwrap_err();
        assert!(e.contains("api_key_env names UNSET_KEY"), "{e}");
        let keys_only = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]);
        assert_eq!(
            resolve(None, None, None, &keys_only).unwrap().describe(),
            "env"
        );
        let half = env_of(&[("AWS_ACCESS_KEY_ID", "AKID")]);
        assert!(resolve(None, None, None, &half).is_err());
        let nothing = env_of(&[("HOME", "/nonexistent-ringway-home")]);
        let e = resolve(None, None, None, &nothing).unwrap_err();
        assert!(e.contains("no AWS credentials found"), "{e}");
        let e = resolve(Some("work"), None, None, &nothing).unwrap_err();
        assert!(e.contains("aws_profile names profile `work`"), "{e}");
        let relative = env_of(&[
            ("HOME", "/nonexistent-ringway-home"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/abc"),
        ]);
        assert_eq!(
            resolve(None, None, None, &relative).unwrap().describe(),
            "container http://169.254.170.2/v2/creds/abc"
        );
        // Plain http only to this host or the container agents.
        let err = resolve(None, Some("http://evil.example/creds"), None, &|_| None).unwrap_err();
        assert!(err.contains("in the clear"), "{err}");
        for ok in [
            "https://creds.example/x",
            "http://127.0.0.1:9/x",
            "http://[fd00:ec2::23]/x",
            "http://169.254.170.23/v1/credentials",
        ] {
            assert!(resolve(None, Some(ok), None, &|_| None).is_ok(), "{ok}");
        }
    }

    #[test]
    fn profiles_come_from_the_files_the_environment_names() {
        let dir = std::env::temp_dir().join(format!("ringway-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("credentials");
        std::fs::write(
            &creds,
            "[work]\naws_access_key_id=AKIDW\naws_secret_access_key=sw\n",
        )
        .unwrap();
        let creds_path = creds.display().to_string();
        let env = move |k: &str| match k {
            "AWS_SHARED_CREDENTIALS_FILE" => Some(creds_path.clone()),
            "AWS_PROFILE" => Some("work".to_owned()),
            _ => None,
        };
        let s = resolve(None, None, None, &env).unwrap();
        assert_eq!(s.describe(), "profile work");
        let e = resolve(Some("other"), None, None, &env).unwrap_err();
        assert!(e.contains("aws_profile names profile `other`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
