//! The one gateway error: what failed, which side, whether it may be retried, and the
//! context a client is told (message, parameter, a precise code). It renders nothing: each
//! dialect writes it in its own body and stream frame (`crate::dialect`).

use std::borrow::Cow;
use std::fmt;

/// Which side of the proxy a failure belongs to. Feeds logs and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse.
    Client,
    /// The provider failed or misbehaved.
    Upstream,
    /// Our own fault (configuration, bugs).
    Internal,
}

impl Side {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        }
    }
}

/// May the request be sent again (to the same or the next target)?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Never: the answer would be the same, or the provider may have acted on it.
    No,
    /// Yes, nothing reached the provider or it told us to retry.
    Yes,
    /// Only because the connection was a reused keep-alive one that the peer had closed:
    /// a fresh connection is expected to work.
    ReusedOnly,
}

/// A flat list of everything that can go wrong. `as_str` is the metrics/log label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed HTTP or an unusable request (generic 400).
    BadRequest,
    /// The request body is not valid JSON or lacks a required field.
    InvalidBody,
    /// The request head exceeded the configured bound.
    HeadTooLarge,
    /// The request body exceeded `server.max_body_bytes`.
    BodyTooLarge,
    /// The client took too long to send the request head.
    HeaderTimeout,
    /// The client stalled while sending the body.
    BodyTimeout,
    /// No or wrong gateway key.
    Unauthorized,
    /// The key may not use this model.
    Forbidden,
    /// A residency tier refuses the request: the key may not use the tier, or no target
    /// of the model is inside it (403; nothing goes upstream).
    TierRefused,
    /// No route and no `provider/model` match.
    ModelNotFound,
    /// The key's rate or stream limit refused the request (429).
    RateLimited,
    /// Unknown path.
    NotFound,
    /// Known path, wrong method.
    MethodNotAllowed,
    /// The request's format cannot be served by the routed provider's format.
    FormatMismatch,
    /// The request uses a feature that cannot be expressed for the routed provider.
    Unsupported,
    /// TCP connect to the provider failed.
    UpstreamConnect,
    /// TLS handshake with the provider failed.
    UpstreamTls,
    /// Connect (TCP + TLS) did not finish in time.
    ConnectTimeout,
    /// The provider sent no response head in time.
    FirstByteTimeout,
    /// The provider went silent between body chunks.
    IdleTimeout,
    /// The connection to the provider broke (reset, EOF) mid-exchange.
    UpstreamReset,
    /// The provider's bytes are not valid HTTP/SSE/JSON as expected.
    UpstreamProtocol,
    /// A request pinned to its route's first target (`allow_fallbacks: false`) that the
    /// target could not serve (503, naming it).
    PinnedTargetUnavailable,
    /// A provider's credentials are not available (missing env var).
    ProviderCredentials,
    /// A cloud provider's credentials could not be had at run time (a fetch failed, or the
    /// cloud refused them): 502, naming the provider.
    UpstreamCredentials,
    /// The worker's budget for answers held whole (`server.max_buffered_bytes`) is spent.
    BufferBudget,
    /// A bounded pool of helper work (large token counts) is full: retry shortly.
    Busy,
    /// The gateway is draining (SIGTERM) and this request ran past the drain's time.
    ShuttingDown,
    /// Anything that is our fault.
    Internal,
}

impl ErrorKind {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::InvalidBody => "invalid_body",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::HeaderTimeout => "header_timeout",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::TierRefused => "tier_refused",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::FormatMismatch => "format_mismatch",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::UpstreamConnect => "upstream_connect",
            ErrorKind::UpstreamTls => "upstream_tls",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::FirstByteTimeout => "first_byte_timeout",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::UpstreamReset => "upstream_reset",
            ErrorKind::UpstreamProtocol => "upstream_protocol",
            ErrorKind::PinnedTargetUnavailable => "pinned_target_unavailable",
            ErrorKind::ProviderCredentials => "provider_credentials",
            ErrorKind::UpstreamCredentials => "upstream_credentials",
            ErrorKind::BufferBudget => "buffer_budget",
            ErrorKind::Busy => "busy",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal",
        }
    }

    /// Which side failed.
    pub fn side(self) -> Side {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::InvalidBody
            | ErrorKind::HeadTooLarge
            | ErrorKind::BodyTooLarge
            | ErrorKind::HeaderTimeout
            | ErrorKind::BodyTimeout
            | ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::TierRefused
            | ErrorKind::ModelNotFound
            | ErrorKind::RateLimited
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::FormatMismatch
            | ErrorKind::Unsupported => Side::Client,
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTls
            | ErrorKind::ConnectTimeout
            | ErrorKind::FirstByteTimeout
            | ErrorKind::IdleTimeout
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamProtocol
            | ErrorKind::UpstreamCredentials
            | ErrorKind::PinnedTargetUnavailable => Side::Upstream,
            ErrorKind::ProviderCredentials
            | ErrorKind::Internal
            | ErrorKind::BufferBudget
            | ErrorKind::Busy
            | ErrorKind::ShuttingDown => Side::Internal,
        }
    }

    /// The HTTP status the client gets when this happens before the response started.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::InvalidBody
            | ErrorKind::FormatMismatch
            | ErrorKind::Unsupported => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden | ErrorKind::TierRefused => 403,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::HeaderTimeout | ErrorKind::BodyTimeout => 408,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::HeadTooLarge => 431,
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamProtocol
            | ErrorKind::UpstreamCredentials => 502,
            ErrorKind::ConnectTimeout | ErrorKind::FirstByteTimeout | ErrorKind::IdleTimeout => 504,
            ErrorKind::ProviderCredentials | ErrorKind::Internal => 500,
            ErrorKind::BufferBudget
            | ErrorKind::Busy
            | ErrorKind::ShuttingDown
            | ErrorKind::PinnedTargetUnavailable => 503,
        }
    }

    /// Default retry decision; call sites refine it (a reused connection, say).
    pub fn retry(self) -> Retry {
        match self {
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTls
            | ErrorKind::ConnectTimeout
            | ErrorKind::BufferBudget
            | ErrorKind::Busy => Retry::Yes,
            _ => Retry::No,
        }
    }
}

/// The gateway's error: a kind, a message the client may read, and the decisions the proxy
/// needs (retry, whether the client already received bytes).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    retry: Retry,
    param: Option<Cow<'static, str>>,
    /// OpenAI `error.code` when the kind's default is not precise enough.
    code: Option<&'static str>,
    /// OpenAI `error.type` when the kind's default is not precise enough.
    openai_type: Option<&'static str>,
    cause: Option<Box<dyn std::error::Error + 'static>>,
}

/// Result alias for gateway code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a client-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            retry: kind.retry(),
            param: None,
            code: None,
            openai_type: None,
            cause: None,
        }
    }

    /// Attach the underlying cause (logged, never shown to the client).
    pub fn with_cause(mut self, cause: impl std::error::Error + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Override the retry decision.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Name the request parameter at fault (OpenAI `error.param`).
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Set the OpenAI `error.code` (`unsupported_value`, say) over the kind's default.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Set the OpenAI `error.type` (`tokens` for a token rate limit) over the kind's default.
    pub fn with_openai_type(mut self, t: &'static str) -> Self {
        self.openai_type = Some(t);
        self
    }

    /// The OpenAI `error.type` set over the kind's default, if any.
    pub fn openai_type_override(&self) -> Option<&'static str> {
        self.openai_type
    }

    /// The OpenAI `error.code` set over the kind's default, if any.
    pub fn code_override(&self) -> Option<&'static str> {
        self.code
    }

    /// The request parameter at fault, if named.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The retry decision.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The client-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status for a response that has not started yet.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
