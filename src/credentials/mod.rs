//! Cloud credentials for the Bedrock and Vertex providers: where each provider's secret comes
//! from (AWS keys or a bearer, Google access tokens), resolved at start, and kept fresh off the
//! workers by one refresher thread; workers read the current secret lock-free.

pub mod aws;
pub mod fetch;
pub mod google;
mod refresher;
pub mod sigv4;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use crate::offload::{Gone, Pending};

/// Longest secret (key, token) accepted from any source.
pub const MAX_SECRET_LEN: usize = 8 * 1024;

/// What signs/authorizes one request right now.
pub enum Secret {
    /// SigV4 keys.
    Aws(aws::Keys),
    /// A bearer value sent as `Authorization: Bearer <token>` (Bedrock API key, Google access
    /// token).
    Bearer(String),
}

impl std::fmt::Debug for Secret {
    // Never the value: Debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Aws(k) => k.fmt(f),
            Secret::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// How a provider's credential is found (from config; the environment is read through a
/// closure so tests can fake it).
#[derive(Clone, Debug)]
pub enum Spec {
    Aws {
        profile: Option<String>,
        credentials_url: Option<String>,
        api_key_env: Option<String>,
    },
    Google {
        credentials_file: Option<PathBuf>,
        metadata_url: Option<String>,
        api_key_env: Option<String>,
    },
}

/// What [`Credential::get`] found.
pub enum Get {
    /// A valid secret.
    Ready(Arc<Secret>),
    /// The first fetch (or the refresh of an expired secret) is in flight.
    Wait(Pending<Result<Arc<Secret>, String>>),
    /// The last fetch failed and nothing valid is held: why, naming the provider.
    Failed(String),
}

impl Gone for Result<Arc<Secret>, String> {
    fn gone() -> Self {
        Err("the credentials refresher thread is gone".to_owned())
    }
}

/// How early and how persistently a credential is refreshed (tests shorten these).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Refresh this long before expiry (or at half life if that is sooner).
    pub lead: Duration,
    /// First wait after a failed fetch; doubles per failure.
    pub backoff_start: Duration,
    /// Longest wait between failed fetches.
    pub backoff_max: Duration,
    /// A secret this close to its expiry is no longer handed out (a request signed with it
    /// could arrive after it expired).
    pub margin: Duration,
}

impl Tuning {
    /// Refresh 5 minutes ahead; retry after 1 s, doubling to 60 s; stop using 10 s early.
    pub const DEFAULT: Tuning = Tuning {
        lead: Duration::from_secs(300),
        backoff_start: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        margin: Duration::from_secs(10),
    };
}

/// Where a credential comes from.
pub(crate) enum Source {
    /// Known at start, never refreshed; the text says where from.
    Static(Secret, String),
    /// A container credentials endpoint (ECS/EKS).
    AwsContainer {
        url: String,
        token: aws::ContainerToken,
    },
    GoogleServiceAccount(Box<google::ServiceAccount>),
    GoogleUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
        quota_project: Option<String>,
    },
    /// The metadata server's token URL.
    GoogleMetadata {
        url: String,
    },
}

impl std::fmt::Debug for Source {
    // Only where from: the secrets stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Source {
    /// Where it came from, for metrics and logs.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Static(_, from) => from.clone(),
            Source::AwsContainer { url, .. } => format!("container {url}"),
            Source::GoogleServiceAccount(sa) => format!("service account {}", sa.client_email),
            Source::GoogleUser { .. } => "authorized user".to_owned(),
            Source::GoogleMetadata { url } => format!("metadata {url}"),
        }
    }

    /// One fetch (blocking: the refresher thread only): the secret and when it expires.
    fn fetch(&self, now: SystemTime) -> Result<(Secret, Option<SystemTime>), String> {
        match self {
            Source::Static(..) => Err("a static credential is not fetched".into()),
            Source::AwsContainer { url, token } => {
                let origin = format!("AWS credentials from {url}");
                let fail = |e: String| format!("{origin} failed: {e}");
                let u = fetch::Url::parse(url).map_err(fail)?;
                let auth = token.read().map_err(fail)?;
                let headers: Vec<(&str, &str)> = auth
                    .as_deref()
                    .map(|a| ("authorization", a))
                    .into_iter()
                    .chain([("accept", "application/json")])
                    .collect();
                let r = fetch::request("GET", &u, &headers, b"").map_err(fail)?;
                if r.status != 200 {
                    let why =
                        String::from_utf8_lossy(r.body.get(..200).unwrap_or(&r.body)).into_owned();
                    return Err(fail(format!("HTTP {}: {}", r.status, clip(&why))));
                }
                let keys = aws::container_keys(&r.body, &origin)?;
                let expires = keys.expires;
                Ok((Secret::Aws(keys), expires))
            }
            _ => {
                let (token, expires) = google::fetch_token(self, now)?;
                Ok((Secret::Bearer(token), Some(expires)))
            }
        }
    }
}

/// A secret and when it stops working.
struct Held {
    secret: Arc<Secret>,
    expires: Option<SystemTime>,
    /// Finds the part of the secret that travels (a bearer token, a session token) in what
    /// the provider sends back; made once per secret, off the workers.
    scrubber: Option<Arc<crate::scrub::Scrubber>>,
}

impl Held {
    /// A secret as held, with its scrubber.
    fn new(secret: Arc<Secret>, expires: Option<SystemTime>) -> Held {
        let travels = match &*secret {
            Secret::Bearer(token) => Some(token.as_bytes()),
            Secret::Aws(keys) => keys.session_token.as_deref().map(str::as_bytes),
        };
        let scrubber = travels
            .and_then(|t| crate::scrub::Scrubber::new(t).ok().flatten())
            .map(Arc::new);
        Held {
            secret,
            expires,
            scrubber,
        }
    }

    fn usable_at(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires.is_none_or(|e| now + margin < e)
    }
}

/// One provider's live credential, shared by all workers; reads are lock-free.
pub struct Credential {
    provider: String,
    source_name: String,
    source: Source,
    /// Identifies it to the refresher.
    id: u64,
    held: ArcSwapOption<Held>,
    /// The last fetch's error (None once one succeeds).
    failure: ArcSwapOption<String>,
    /// Successful fetches so far: a request for a fresh secret made before the latest fetch
    /// is answered by it (that is what makes concurrent refreshes one fetch).
    generation: AtomicU64,
    tuning: Tuning,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("provider", &self.provider)
            .field("source", &self.source_name)
            .finish()
    }
}

impl Credential {
    /// Resolve the source at start or reload, synchronously (reads the environment and files,
    /// parses a service account key): an error naming the config key, variable or file and
    /// the cause when nothing usable is found. Static sources are ready at once; fetched ones
    /// get their first fetch started on the refresher thread.
    pub fn start(
        provider: &str,
        spec: &Spec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<Credential>, String> {
        Credential::start_tuned(provider, spec, env, Tuning::DEFAULT)
    }

    /// What [`Credential::start`] checks, without starting anything (for `ringway check`):
    /// where the credential would come from, or why nothing usable was found. Nothing is
    /// fetched: a container endpoint or token exchange that fails shows at run time.
    pub fn check(
        provider: &str,
        spec: &Spec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        resolve(provider, spec, env).map(|s| s.describe())
    }

    pub(crate) fn start_tuned(
        provider: &str,
        spec: &Spec,
        env: &dyn Fn(&str) -> Option<String>,
        tuning: Tuning,
    ) -> Result<Arc<Credential>, String> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let source = resolve(provider, spec, env)?;
        let (held, source) = match source {
            Source::Static(secret, from) => {
                let held = Held::new(Arc::new(secret), None);
                // The secret moves into `held`; the source keeps only its name.
                (
                    Some(Arc::new(held)),
                    Source::Static(Secret::Bearer(String::new()), from),
                )
            }
            other => (None, other),
        };
        let fetched = held.is_none();
        let source_name = source.describe();
        // A reload of a fetched credential from the same source starts with the running one's
        // secret while its own first fetch runs: requests after the reload do not wait, and a
        // rotated key file is read at once all the same.
        let same = format!("{provider}\n{spec:?}\n{source_name}\n{tuning:?}");
        let held = match (&held, live::find(&same)) {
            (None, Some(running)) => running.held.load_full(),
            _ => held,
        };
        let cred = Arc::new(Credential {
            provider: provider.to_owned(),
            source_name,
            source,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            held: ArcSwapOption::new(held),
            failure: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            tuning,
        });
        if fetched && !RESOLVE_ONLY.load(Ordering::Relaxed) {
            refresher::register(&cred).map_err(|e| format!("provider `{provider}`: {e}"))?;
            live::keep(same, &cred);
        }
        Ok(cred)
    }

    /// Never blocks: Ready when a valid secret is held; Wait when the first fetch (or the
    /// refresh of an expired secret) is in flight; Failed when the last fetch failed and
    /// nothing valid is held.
    pub fn get(&self) -> Get {
        if let Some(h) = self.held.load().as_ref() {
            if h.usable_at(SystemTime::now(), self.tuning.margin) {
                return Get::Ready(h.secret.clone());
            }
        }
        if let Some(e) = self.failure.load().as_ref() {
            return Get::Failed(format!("provider `{}`: {e}", self.provider));
        }
        match refresher::want(self) {
            Ok(p) => Get::Wait(p),
            Err(e) => Get::Failed(format!("provider `{}`: {e}", self.provider)),
        }
    }

    /// A 401 said the held secret is bad: fetch anew now (however many callers ask at once,
    /// one fetch). A static secret cannot be fetched anew: the answer is the same secret.
    pub fn refresh(&self) -> Pending<Result<Arc<Secret>, String>> {
        if matches!(self.source, Source::Static(..)) {
            let held = self.held.load_full();
            return Pending::ready(
                held.map(|h| h.secret.clone())
                    .ok_or_else(|| format!("provider `{}`: no credential", self.provider)),
            );
        }
        match refresher::want(self) {
            Ok(p) => p,
            Err(e) => Pending::ready(Err(format!("provider `{}`: {e}", self.provider))),
        }
    }

    /// The project billed for an authorized user's calls (`quota_project_id`), for Vertex's
    /// `x-goog-user-project` header.
    pub fn quota_project(&self) -> Option<&str> {
        match &self.source {
            Source::GoogleUser { quota_project, .. } => quota_project.as_deref(),
            _ => None,
        }
    }

    /// Finds the secret now held (the part that travels) in what the provider sends back.
    pub fn scrubber(&self) -> Option<Arc<crate::scrub::Scrubber>> {
        self.held.load().as_ref().and_then(|h| h.scrubber.clone())
    }

    /// Where it came from: "env", "profile work", "container http://…", "service account
    /// x@y", "metadata …", "static".
    pub fn source(&self) -> &str {
        &self.source_name
    }
}

/// The source `spec` names, its errors naming the provider.
fn resolve(
    provider: &str,
    spec: &Spec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Source, String> {
    match spec {
        Spec::Aws {
            profile,
            credentials_url,
            api_key_env,
        } => aws::resolve(
            profile.as_deref(),
            credentials_url.as_deref(),
            api_key_env.as_deref(),
            env,
        ),
        Spec::Google {
            credentials_file,
            metadata_url,
            api_key_env,
        } => google::resolve(
            credentials_file.as_deref(),
            metadata_url.as_deref(),
            api_key_env.as_deref(),
            env,
        ),
    }
    .map_err(|e| format!("provider `{provider}`: {e}"))
}

/// Set by commands that only validate a config (`check`, `reload --config`): credentials are
/// resolved (files read, keys parsed) but nothing is fetched.
static RESOLVE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, this process resolves credentials without fetching them.
pub fn resolve_only() {
    RESOLVE_ONLY.store(true, Ordering::Relaxed);
}

/// The fetched credentials alive in this process, by provider and source, so a reload with
/// the same source reuses the running one. Touched only when a config is compiled (the
/// control thread), never on a request.
mod live {
    use std::sync::{Arc, Mutex, Weak};

    use super::Credential;

    /// (provider, spec, source and tuning, the credential).
    static LIVE: Mutex<Vec<(String, Weak<Credential>)>> = Mutex::new(Vec::new());

    pub(super) fn find(same: &str) -> Option<Arc<Credential>> {
        let mut live = LIVE.lock().ok()?;
        live.retain(|(_, w)| w.strong_count() > 0);
        live.iter()
            .find(|(k, _)| k == same)
            .and_then(|(_, w)| w.upgrade())
    }

    pub(super) fn keep(same: String, cred: &Arc<Credential>) {
        if let Ok(mut live) = LIVE.lock() {
            live.push((same, Arc::downgrade(cred)));
        }
    }
}

/// Check a value that will reach a header: 1 to [`MAX_SECRET_LEN`] visible ASCII characters
/// (no spaces, no control bytes). `what` names it in the error (never the value).
pub(crate) fn check_value(v: &str, what: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if v.len() > MAX_SECRET_LEN {
        return Err(format!("{what} is longer than {MAX_SECRET_LEN} bytes"));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{what} has spaces, control or non-ASCII characters"
        ));
    }
    Ok(())
}

/// `s` shortened for an error message, control characters replaced.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 200;
    s.chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
