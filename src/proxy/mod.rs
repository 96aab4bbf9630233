//! The request pipeline, phases in order: dispatch by path → authenticate → read body →
//! inspect JSON → route → send upstream (retrying a stale pooled connection once) → relay the
//! response. Until the first byte goes to the client an error is a clean client-format
//! response; after it, an in-stream error frame and a clean end.

mod budget;
mod estimate;
mod relay;
mod translated;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{ApiKey, Config, GatewayKey, Provider};
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::format::Format;
use crate::http1::{self, Method, RequestHead, ResponseBody};
use crate::server::conn::ClientConn;
use crate::upstream::{Conn, DnsCache, Pool};

/// Per-worker state shared by all of the worker's connections (single thread: `Rc`/`Cell`).
pub struct Ctx {
    /// The config snapshot.
    pub config: Arc<Config>,
    /// Idle upstream connections.
    pub pool: Pool,
    /// Resolver cache.
    pub dns: DnsCache,
    /// Worker index (in request ids and logs).
    pub worker: usize,
    /// Counts workers that are up (shared with the runtime; read only by /readyz).
    pub ready: Arc<AtomicUsize>,
    /// Process-unique prefix for request ids.
    pub id_prefix: u32,
    next_id: Cell<u64>,
    /// This worker's counters and histograms.
    pub metrics: crate::metrics::Worker,
    /// Where workers publish metrics snapshots for scrapes.
    pub hub: Arc<crate::metrics::Hub>,
    /// Translation options per provider (index = provider index).
    translate_opts: Vec<crate::translate::Options>,
    /// simd-json's reusable buffers: one set per worker, never rebuilt per request.
    json_scratch: RefCell<crate::json::SimdScratch>,
    /// Bytes of answers held whole (for translation) on this worker, and their bound.
    pub buffers: budget::BufferBudget,
}

impl Ctx {
    /// Build a worker's context.
    pub fn new(
        config: Arc<Config>,
        worker: usize,
        ready: Arc<AtomicUsize>,
        id_prefix: u32,
        hub: Arc<crate::metrics::Hub>,
    ) -> Rc<Ctx> {
        let pool = Pool::new(
            config.providers.len(),
            config.pool_max_idle,
            config.pool_idle_timeout,
        );
        let translate_opts = config
            .providers
            .iter()
            .map(|p| config.translate_options(p))
            .collect();
        let buffers = budget::BufferBudget::new(config.server.max_buffered_bytes);
        Rc::new(Ctx {
            buffers,
            config,
            pool,
            dns: DnsCache::default(),
            worker,
            ready,
            id_prefix,
            next_id: Cell::new(0),
            json_scratch: RefCell::new(crate::json::SimdScratch::new()),
            translate_opts,
            metrics: crate::metrics::Worker::default(),
            hub,
        })
    }

    fn request_id(&self) -> String {
        let n = self.next_id.get();
        self.next_id.set(n.wrapping_add(1));
        // rw-PPPPPPPP-WW-NNNNNNNNNN, hex; written by hand: this runs for every request.
        let mut id = String::with_capacity(26);
        id.push_str("rw-");
        push_hex(&mut id, u64::from(self.id_prefix), 8);
        id.push('-');
        push_hex(&mut id, (self.worker & 0xff) as u64, 2);
        id.push('-');
        push_hex(&mut id, n, 10);
        id
    }
}

/// Append the low `digits` hex digits of `v`.
fn push_hex(out: &mut String, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (v >> (i * 4)) & 0xf;
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
}

/// What the connection loop does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// Stop writing, discard what the client still sends (bounded), then close.
    DrainAndClose,
}

/// The API a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Chat(Format),
    CountTokens,
    Models,
    /// `GET /v1/models/{id}`: one route, as both SDKs' `models.retrieve` parse it.
    Model,
    Health,
    Ready,
    Metrics,
}

impl Endpoint {
    /// Metrics label.
    fn label(self) -> &'static str {
        match self {
            Endpoint::Chat(Format::OpenAi) => "chat_completions",
            Endpoint::Chat(Format::Anthropic) => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::Models => "models",
            Endpoint::Model => "model",
            Endpoint::Health => "healthz",
            Endpoint::Ready => "readyz",
            Endpoint::Metrics => "metrics",
        }
    }
}

fn endpoint(path: &str) -> Option<(Endpoint, Method)> {
    Some(match path {
        "/v1/chat/completions" | "/chat/completions" => {
            (Endpoint::Chat(Format::OpenAi), Method::Post)
        }
        // `/v1/v1/…`: the Anthropic SDK given a base URL ending in `/v1`, as several
        // gateways' docs say; only the Anthropic SDK's paths get that alias.
        "/v1/messages" | "/v1/v1/messages" => (Endpoint::Chat(Format::Anthropic), Method::Post),
        "/v1/messages/count_tokens" | "/v1/v1/messages/count_tokens" => {
            (Endpoint::CountTokens, Method::Post)
        }
        "/v1/models" | "/models" | "/v1/v1/models" => (Endpoint::Models, Method::Get),
        "/healthz" => (Endpoint::Health, Method::Get),
        "/readyz" => (Endpoint::Ready, Method::Get),
        "/metrics" => (Endpoint::Metrics, Method::Get),
        p if model_id_in_path(p).is_some() => (Endpoint::Model, Method::Get),
        _ => return None,
    })
}

/// A request in flight: what every response needs to say.
struct Exchange<'h> {
    head: &'h RequestHead,
    format: Format,
    request_id: String,
    keep_alive: Cell<bool>,
    /// `(provider, upstream model)` once routed.
    routed: Option<(String, String)>,
    /// Metrics label of the endpoint.
    endpoint: &'static str,
    /// When the request head was complete.
    started: Instant,
    /// Status of the response head sent (0 = none yet).
    status: Cell<u16>,
    /// Set by a relay when the response broke after it started.
    failed_midway: Cell<Option<ErrorKind>>,
    /// Set by a relay when the first SSE event went out.
    first_event: Cell<Option<Duration>>,
    /// The request body has been read (or there is none).
    body_read: Cell<bool>,
}

impl Exchange<'_> {
    /// Headers every response carries.
    fn standard_headers(&self) -> Vec<(&str, &[u8])> {
        let mut h: Vec<(&str, &[u8])> = Vec::with_capacity(4);
        h.push(("x-ringway-request-id", self.request_id.as_bytes()));
        if let Some((p, m)) = &self.routed {
            h.push(("x-ringway-provider", p.as_bytes()));
            h.push(("x-ringway-model", m.as_bytes()));
        }
        h
    }
}

/// Serve one request whose head has been read. Writes the whole response.
pub async fn handle(ctx: &Ctx, conn: &mut ClientConn, head: &RequestHead) -> After {
    let anthropic_headers =
        head.header("anthropic-version").is_some() || head.header("x-api-key").is_some();
    let mut ex = Exchange {
        head,
        format: Format::sniff(head.path().as_bytes(), anthropic_headers),
        request_id: ctx.request_id(),
        keep_alive: Cell::new(head.keep_alive()),
        routed: None,
        endpoint: endpoint(head.path()).map_or("other", |(e, _)| e.label()),
        started: Instant::now(),
        status: Cell::new(0),
        failed_midway: Cell::new(None),
        first_event: Cell::new(None),
        body_read: Cell::new(head.framing() == http1::Framing::None),
    };
    let result = pipeline(ctx, conn, &mut ex).await;
    let after = finish(ctx, conn, &mut ex, result).await;
    record(ctx, &ex);
    after
}

/// Record what happened to one request.
fn record(ctx: &Ctx, ex: &Exchange<'_>) {
    let m = &ctx.metrics;
    m.request(ex.endpoint, ex.status.get(), ex.started.elapsed());
    if let Some(kind) = ex.failed_midway.get() {
        m.error(kind.as_str(), kind.side().as_str());
    }
    if let Some(t) = ex.first_event.get() {
        m.first_event(t);
    }
}

async fn finish(
    ctx: &Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    result: std::result::Result<(), Failure>,
) -> After {
    let head = ex.head;
    match result {
        Ok(()) => {}
        Err(Failure::BeforeResponse(_)) if conn.broken => {
            // A write already failed (or timed out) part-way: the client cannot be answered.
            return After::Close;
        }
        Err(Failure::BeforeResponse(e)) => {
            ctx.metrics
                .error(e.kind().as_str(), e.kind().side().as_str());
            if e.kind().side() != crate::error::Side::Client {
                crate::log::warn(format_args!("{} {} -> {}", ex.request_id, head.path(), e));
            }
            if write_error(conn, ex, &e).await.is_err() {
                return After::Close;
            }
        }
        Err(Failure::AfterResponse) => return After::Close,
        Err(Failure::Ended) => {}
        Err(Failure::Respond(status, body)) => {
            if respond(conn, ex, status, "application/json", &body)
                .await
                .is_err()
            {
                return After::Close;
            }
        }
    }
    if conn.broken {
        After::Close
    } else if !ex.body_read.get() {
        // Answered without reading the body: the connection cannot carry another request,
        // and closing with unread bytes would turn our answer into a reset.
        After::DrainAndClose
    } else if ex.keep_alive.get() {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// How a pipeline failed.
enum Failure {
    /// Nothing was sent yet: answer with this error.
    BeforeResponse(Error),
    /// The response had started and could not be completed (the client is gone, or a body
    /// broke where it has no way to say so): the client connection must close.
    AfterResponse,
    /// The response is complete for the client (a stream that ended with its format's error
    /// event and a clean end) but the provider connection is not reusable.
    Ended,
    /// Nothing was sent yet: answer with this status and this body already in the client's format.
    Respond(u16, Vec<u8>),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::BeforeResponse(e)
    }
}

async fn pipeline(
    ctx: &Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
) -> std::result::Result<(), Failure> {
    let head = ex.head;
    let Some((endpoint, method)) = endpoint(head.path()) else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no such endpoint: {} {}",
                method_name(head.method()),
                head.path()
            ),
        )
        .into());
    };
    if head.method() != method {
        return Err(Error::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "{} {} is not allowed; use {}",
                method_name(head.method()),
                head.path(),
                method_name(method)
            ),
        )
        .into());
    }
    match endpoint {
        Endpoint::Health => {
            respond(conn, ex, 200, "text/plain; charset=utf-8", b"ok\n").await?;
            Ok(())
        }
        Endpoint::Ready => {
            let up = ctx.ready.load(Ordering::Acquire);
            let (status, body): (u16, &[u8]) = if up >= ctx.config.server.workers {
                (200, b"ready\n")
            } else {
                (503, b"starting\n")
            };
            respond(conn, ex, status, "text/plain; charset=utf-8", body).await?;
            Ok(())
        }
        Endpoint::Models => {
            authenticate(ctx, head)?;
            let body = models_body(&ctx.config);
            respond(conn, ex, 200, "application/json", &body).await?;
            Ok(())
        }
        Endpoint::Model => {
            authenticate(ctx, head)?;
            let id = model_id_in_path(head.path())
                .and_then(percent_decode)
                .unwrap_or_default();
            let object = match ctx.config.resolve(&id) {
                Some(crate::config::Resolved::Route(route)) => Some(model_object(route)),
                // `provider/model` works for chat, so it is a model here too; nothing is
                // known of its capabilities.
                Some(crate::config::Resolved::Direct(_)) if check_model(&id).is_ok() => {
                    Some(model_object(&crate::config::Route {
                        model: id.clone(),
                        targets: Vec::new(),
                        capabilities: crate::config::Capabilities::default(),
                    }))
                }
                _ => None,
            };
            let Some(object) = object else {
                return Err(Error::new(
                    ErrorKind::ModelNotFound,
                    "The model does not exist or is not routed by this gateway",
                )
                .with_param("model")
                .into());
            };
            let body = serde_json::to_vec(&object).unwrap_or_default();
            respond(conn, ex, 200, "application/json", &body).await?;
            Ok(())
        }
        Endpoint::Metrics => {
            authenticate(ctx, head)?;
            let own = ctx.metrics.snapshot(ctx.pool.idle_count());
            let merged = ctx.hub.merged(ctx.worker, own);
            let text = crate::metrics::render(&merged, ctx.ready.load(Ordering::Acquire));
            respond(
                conn,
                ex,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.as_bytes(),
            )
            .await?;
            Ok(())
        }
        Endpoint::Chat(format) => {
            ex.format = format;
            chat(ctx, conn, ex, format, false).await
        }
        Endpoint::CountTokens => {
            ex.format = Format::Anthropic;
            chat(ctx, conn, ex, Format::Anthropic, true).await
        }
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Patch => "PATCH",
        Method::Other => "this method",
    }
}

/// Check the gateway key (when keys are configured).
fn authenticate<'c>(ctx: &'c Ctx, head: &RequestHead) -> Result<Option<&'c GatewayKey>> {
    let keys = &ctx.config.keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let presented =
        crate::auth::presented_key(head.header("authorization"), head.header("x-api-key"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    "missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
                )
            })?;
    crate::auth::authenticate(keys, presented)
        .map(Some)
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "invalid API key"))
}

async fn chat(
    ctx: &Ctx,
    conn: &mut ClientConn,
    ex: &mut Exchange<'_>,
    format: Format,
    count_tokens: bool,
) -> std::result::Result<(), Failure> {
    let head = ex.head;
    let key = authenticate(ctx, head)?;
    let cfg = &ctx.config;
    let body = conn
        .read_body(
            head,
            cfg.server.max_body_bytes,
            cfg.server.body_read_timeout,
            cfg.server.body_timeout,
        )
        .await?;
    ex.body_read.set(true);
    let info = crate::json::inspect_request(&body, &mut ctx.json_scratch.borrow_mut())
        .map_err(|e| Error::new(ErrorKind::InvalidBody, e.to_string()))?;
    check_model(&info.model)?;
    check_shape(&info, format, count_tokens)?;
    if let Some(k) = key {
        if !k.allows(&info.model) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("key `{}` may not use model `{}`", k.name, info.model),
            )
            .into());
        }
    }
    let resolved = cfg.resolve(&info.model).ok_or_else(|| {
        Error::new(
            ErrorKind::ModelNotFound,
            format!(
                "The model `{}` does not exist or is not routed by this gateway",
                info.model
            ),
        )
        .with_param("model")
    })?;
    // Fallback across targets comes with the retry policy; the first target serves.
    let Some(target) = resolved.targets().first().cloned() else {
        return Err(Error::new(ErrorKind::Internal, "route has no targets").into());
    };
    let Some(provider) = cfg.provider(target.provider) else {
        return Err(Error::new(ErrorKind::Internal, "route names an unknown provider").into());
    };
    ex.routed = Some((provider.name.clone(), target.model.clone()));
    if count_tokens {
        if provider.kind != Format::Anthropic {
            // No count_tokens upstream: ringway estimates it (see `estimate`).
            return estimate::answer(conn, ex, body).await;
        }
        let body = splice_model(body, &info, &target.model)?;
        let path = provider.path_for("/v1/messages/count_tokens");
        let (up, resp) = exchange(ctx, target.provider, provider, ex, &path, body).await?;
        return relay::relay(ctx, conn, ex, &target, provider, up, resp).await;
    }
    let path = match provider.kind {
        Format::OpenAi => provider.path_for("/chat/completions"),
        Format::Anthropic => provider.path_for("/v1/messages"),
    };
    if provider.kind == format {
        // Same format: only the model value changes, spliced in place.
        let body = splice_model(body, &info, &target.model)?;
        let (up, resp) = exchange(ctx, target.provider, provider, ex, &path, body).await?;
        return relay::relay(ctx, conn, ex, &target, provider, up, resp).await;
    }
    let provider_opts = &ctx.translate_opts[target.provider];
    // A target may override its provider's thinking style; copy the options only then.
    let opts = if target.thinking_style == provider_opts.thinking_style {
        std::borrow::Cow::Borrowed(provider_opts)
    } else {
        std::borrow::Cow::Owned(crate::translate::Options {
            thinking_style: target.thinking_style,
            ..provider_opts.clone()
        })
    };
    let translated = match format {
        Format::OpenAi => {
            crate::translate::openai_to_anthropic_request(&body, &target.model, &opts)
        }
        Format::Anthropic => {
            crate::translate::anthropic_to_openai_request(&body, &target.model, &opts)
        }
    };
    let (upstream_body, mut meta) = match translated {
        Ok(t) => t,
        Err(e) => {
            let rendered = translated::render_translate_error(format, &e);
            return Err(Failure::Respond(e.status, rendered));
        }
    };
    meta.created = unix_now();
    if provider.kind == Format::OpenAi && head.header("anthropic-beta").is_some() {
        // Features an `anthropic-beta` header turns on do not exist at an OpenAI provider.
        meta.dropped.push("anthropic-beta");
    }
    // The client's body is translated; its buffer need not live as long as the response.
    drop(body);
    ctx.metrics
        .translated(format.as_str(), provider.kind.as_str());
    let (up, resp) = exchange(
        ctx,
        target.provider,
        provider,
        ex,
        &path,
        Bytes::from(upstream_body),
    )
    .await?;
    translated::relay(ctx, conn, ex, &target, provider, up, resp, &meta).await
}

pub use crate::format::MAX_MODEL_ID_BYTES;

/// A client's model id is echoed in `x-ringway-model` and sent upstream: refuse, where it
/// enters, one that is too long or holds a control character (CR, LF, NUL, DEL, C1).
fn check_model(model: &str) -> Result<()> {
    crate::format::check_model_id(model)
        .map_err(|p| Error::new(ErrorKind::InvalidBody, format!("`model` {p}")).with_param("model"))
}

/// The fields every request of the client's API needs, checked from what the body's
/// validation already gathered: a request the provider would refuse costs no upstream call.
fn check_shape(info: &crate::json::RequestInfo, format: Format, count_tokens: bool) -> Result<()> {
    use crate::json::FieldShape;
    let problem = match (info.messages, format) {
        (FieldShape::Absent, Format::OpenAi) => Some(("messages", "`messages` is required")),
        (FieldShape::Absent, Format::Anthropic) => Some(("messages", "messages: Field required")),
        (FieldShape::Array, _) => None,
        (_, Format::OpenAi) => Some(("messages", "`messages` must be an array")),
        (_, Format::Anthropic) => Some(("messages", "messages: Input should be a valid list")),
    };
    let problem = problem.or(match (format, count_tokens, info.max_tokens) {
        (Format::Anthropic, false, FieldShape::Absent) => {
            Some(("max_tokens", "max_tokens: Field required"))
        }
        (Format::Anthropic, false, FieldShape::Number) => None,
        (Format::Anthropic, false, _) => {
            Some(("max_tokens", "max_tokens: Input should be a valid integer"))
        }
        _ => None,
    });
    match problem {
        None => Ok(()),
        Some((param, message)) => {
            Err(Error::new(ErrorKind::InvalidBody, message).with_param(param))
        }
    }
}

fn splice_model(body: Bytes, info: &crate::json::RequestInfo, model: &str) -> Result<Bytes> {
    if info.model == model {
        return Ok(body);
    }
    crate::json::splice_string(&body, info.model_span.clone(), model)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "model span outside the body"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Send the request and read the response head. A pooled connection that turns out to have
/// been closed by the provider (nothing at all came back) is retried exactly once, on a fresh
/// connection; any other failure is final, since the provider may have acted on the request.
async fn exchange(
    ctx: &Ctx,
    provider_index: usize,
    provider: &Provider,
    ex: &Exchange<'_>,
    path: &str,
    body: Bytes,
) -> Result<(Conn, crate::upstream::ResponseHead)> {
    // Build the request first: a missing credential must not cost a connect.
    let req = upstream_request(provider, ex, path, body.len())?;
    let pooled = ctx.pool.take(provider_index);
    let mut up = match pooled {
        Some(c) => c,
        None => connect(ctx, provider).await?,
    };
    match send_and_read_head(&mut up, provider, req, body.clone()).await {
        Ok(head) => Ok((up, head)),
        Err(e) if e.retry() == Retry::ReusedOnly => {
            drop(up);
            // Rebuilt, not cloned up front: the retry is rare, the request runs every time.
            let req = upstream_request(provider, ex, path, body.len())?;
            let mut fresh = connect(ctx, provider).await?;
            let head = send_and_read_head(&mut fresh, provider, req, body).await?;
            Ok((fresh, head))
        }
        Err(e) => Err(e),
    }
}

/// A new provider connection. Boxed: connecting (TLS handshake, connect timer) is the largest
/// state a request goes through, and every connection task is allocated at its largest
/// state's size for its whole life, streams included; a pooled connection skips this.
async fn connect(ctx: &Ctx, provider: &Provider) -> Result<Conn> {
    Box::pin(Conn::connect(provider, &ctx.dns)).await
}

async fn send_and_read_head(
    up: &mut Conn,
    provider: &Provider,
    req: Vec<u8>,
    body: Bytes,
) -> Result<crate::upstream::ResponseHead> {
    up.send(req, body, provider.first_byte_timeout).await?;
    up.read_head(provider.first_byte_timeout).await
}

/// The upstream request head for a `body_len`-byte JSON body: provider credentials, never the
/// client's. Room is left for a small body to be appended behind it.
fn upstream_request(
    provider: &Provider,
    ex: &Exchange<'_>,
    path: &str,
    body_len: usize,
) -> Result<Vec<u8>> {
    let head = ex.head;
    let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(8 + head.header_count().min(8));
    let mut add = |name, value| fields.push((name, value));
    add("host", provider.authority.as_bytes());
    add("content-type", b"application/json");
    add("x-ringway-request-id", ex.request_id.as_bytes());
    // The headers copied by hand below still answer to the provider's `drop_headers`.
    let keep = |name: &str| !crate::headers::dropped(name, &provider.drop_headers);
    if let Some(accept) = head.header("accept").filter(|_| keep("accept")) {
        add("accept", accept);
    }
    add(
        "user-agent",
        head.header("user-agent")
            .filter(|_| keep("user-agent"))
            .unwrap_or(b"ringway"),
    );
    match &provider.api_key {
        ApiKey::None => {}
        ApiKey::Value(name, value) => add(name.as_str(), value.as_bytes()),
        ApiKey::Missing(var) => {
            return Err(Error::new(
                ErrorKind::ProviderCredentials,
                format!("provider `{}` has no API key: environment variable {var} is not set on the gateway", provider.name),
            ))
        }
    }
    if provider.kind == Format::Anthropic {
        let version = head
            .header("anthropic-version")
            .unwrap_or(provider.anthropic_version.as_bytes());
        add("anthropic-version", version);
        if let Some(beta) = head
            .header("anthropic-beta")
            .filter(|_| keep("anthropic-beta"))
        {
            add("anthropic-beta", beta);
        }
    }
    // The client's end-to-end headers, by policy (crate::headers): the default set plus the
    // provider's `forward_headers`, minus its `drop_headers`; never hop-by-hop, credentials,
    // the gateway's own, or the other provider kind's.
    for (name, value) in head.headers() {
        if crate::headers::forward(
            name,
            provider.kind,
            &provider.forward_headers,
            &provider.drop_headers,
        ) && http1::is_valid_field_value(value)
        {
            add(name, value);
        }
    }
    // Every value is header-safe already: forwarded client values passed httparse, which
    // refuses control bytes and folded lines (http1 tests), and the configured ones (authority,
    // API key, anthropic_version) were checked when the config loaded. The writer checks again.
    let mut out = Vec::with_capacity(512 + body_len.min(crate::upstream::COALESCE_BODY_BYTES));
    http1::write_request_head(&mut out, "POST", path, &fields, body_len as u64).map_err(|r| {
        Error::new(
            ErrorKind::Internal,
            format!("the gateway refused to write the upstream request: {r}"),
        )
    })?;
    Ok(out)
}

/// A complete small response.
async fn respond(
    conn: &mut ClientConn,
    ex: &Exchange<'_>,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<()> {
    let mut headers = ex.standard_headers();
    headers.push(("content-type", content_type.as_bytes()));
    let headers_ok = write_head(
        conn,
        ex,
        status,
        &headers,
        ResponseBody::Length(body.len() as u64),
    );
    if headers_ok {
        conn.wbuf.extend_from_slice(body);
    }
    conn.flush().await
}

/// Write a response head into `conn.wbuf` (cleared first) and record its status. The writer
/// refuses a header that could split the response (CR, LF, NUL, a bad name); values are checked
/// where they enter too, so that is a bug upstream of here: the client then gets a complete 500
/// in its format instead, `wbuf` holds it, the connection is marked to close and this returns
/// false: the caller flushes and sends nothing more.
fn write_head(
    conn: &mut ClientConn,
    ex: &Exchange<'_>,
    status: u16,
    headers: &[(&str, &[u8])],
    body: ResponseBody,
) -> bool {
    conn.wbuf.clear();
    let refused = match http1::write_response_head(
        &mut conn.wbuf,
        status,
        headers,
        body,
        ex.keep_alive.get(),
    ) {
        Ok(()) => {
            ex.status.set(status);
            return true;
        }
        Err(refused) => refused,
    };
    let name = headers
        .get(refused.index)
        .map(|(n, _)| *n)
        .filter(|n| http1::is_token(n.as_bytes()))
        .unwrap_or("<unprintable>");
    crate::log::error(format_args!(
        "{} refused to write response header `{name}`: {refused}",
        ex.request_id
    ));
    ex.keep_alive.set(false);
    ex.status.set(500);
    let e = Error::new(
        ErrorKind::Internal,
        "the gateway refused to write a response header holding control characters",
    );
    let body = e.body(ex.format);
    let fallback: [(&str, &[u8]); 2] = [
        ("x-ringway-request-id", ex.request_id.as_bytes()),
        ("content-type", b"application/json"),
    ];
    conn.wbuf.clear();
    if http1::write_response_head(
        &mut conn.wbuf,
        500,
        &fallback,
        ResponseBody::Length(body.len() as u64),
        false,
    )
    .is_ok()
    {
        conn.wbuf.extend_from_slice(&body);
    }
    false
}

async fn write_error(conn: &mut ClientConn, ex: &Exchange<'_>, e: &Error) -> Result<()> {
    let body = e.body(ex.format);
    respond(conn, ex, e.status(), "application/json", &body).await
}

/// Answer a request whose head could not be read or parsed, then the caller closes.
pub async fn write_head_failure(ctx: &Ctx, conn: &mut ClientConn, e: &Error, seen: &[u8]) {
    let first_line = seen.split(|b| *b == b'\n').next().unwrap_or_default();
    let path = first_line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let format = Format::sniff(
        path,
        memchr::memmem::find(seen, b"anthropic-version").is_some(),
    );
    let request_id = ctx.request_id();
    let headers: [(&str, &[u8]); 2] = [
        ("x-ringway-request-id", request_id.as_bytes()),
        ("content-type", b"application/json"),
    ];
    let body = e.body(format);
    conn.wbuf.clear();
    // Only our own id and a constant: the writer cannot refuse them, and if it ever did
    // there would be nothing safe to say, so the connection just closes.
    if http1::write_response_head(
        &mut conn.wbuf,
        e.status(),
        &headers,
        ResponseBody::Length(body.len() as u64),
        false,
    )
    .is_ok()
    {
        conn.wbuf.extend_from_slice(&body);
        let _ = conn.flush().await;
    }
}

/// `{id}` of `/v1/models/{id}` (or `/models/{id}`, the OpenAI SDK's form without `/v1`, or
/// `/v1/v1/models/{id}`, the Anthropic SDK's with a `/v1` base URL), still
/// percent-encoded; None for any other path, or an empty id.
fn model_id_in_path(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/models/"))
        .or_else(|| path.strip_prefix("/v1/v1/models/"))?;
    (!id.is_empty()).then_some(id)
}

/// Decode `%XX` escapes (SDKs encode path parameters); None for a bad escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One route as a model object with the fields both SDKs read: OpenAI's (`id`, `object`,
/// `created`, `owned_by`) and Anthropic's (`id`, `type`, `display_name`, `created_at`).
fn model_object(r: &crate::config::Route) -> serde_json::Value {
    let c = &r.capabilities;
    serde_json::json!({
        "id": r.model,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "display_name": r.model,
        "owned_by": "ringway",
        "capabilities": {
            "vision": c.vision,
            "tools": c.tools,
            "thinking": c.thinking,
            "context_window": c.context_window,
            "max_output": c.max_output,
        },
    })
}

/// `GET /v1/models`: OpenAI's list shape, with the fields Anthropic's SDK reads as well.
fn models_body(cfg: &Config) -> Vec<u8> {
    let data: Vec<serde_json::Value> = cfg.routes.iter().map(model_object).collect();
    let first = cfg.routes.first().map(|r| r.model.as_str());
    let last = cfg.routes.last().map(|r| r.model.as_str());
    serde_json::to_vec(&serde_json::json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": first,
        "last_id": last,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_in_paths() {
        assert_eq!(model_id_in_path("/v1/models/gpt"), Some("gpt"));
        assert_eq!(model_id_in_path("/models/a%2Fb"), Some("a%2Fb"));
        assert_eq!(model_id_in_path("/v1/models/"), None);
        assert_eq!(model_id_in_path("/v1/models"), None);
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn model_ids_are_checked_where_they_enter() {
        assert!(check_model("claude-sonnet-4-5-20250929").is_ok());
        assert!(check_model(&"m".repeat(MAX_MODEL_ID_BYTES)).is_ok());
        for bad in [
            "openai/x\r\nSet-Cookie: pwned=1".to_owned(),
            "a\0b".to_owned(),
            "tab\there".to_owned(),
            "del\u{7f}".to_owned(),
            "c1\u{85}".to_owned(),
            "m".repeat(MAX_MODEL_ID_BYTES + 1),
        ] {
            let e = check_model(&bad).unwrap_err();
            assert_eq!(e.status(), 400);
            let body: serde_json::Value = serde_json::from_slice(&e.body(Format::OpenAi)).unwrap();
            assert_eq!(body["error"]["param"], "model");
        }
    }
}
