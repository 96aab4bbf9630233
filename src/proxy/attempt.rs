//! One attempt: a candidate target gets the request (its body spliced or translated for it),
//! and what comes back is either an answer to commit to, or a miss saying why and whether the
//! same target may be tried again. Nothing here writes to the client.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::admit::{splice_model, Admitted};
use super::budget::Charge;
use super::ctx::Ctx;
use super::pump::Stream;
use super::state::{Exchange, Failure, Op};
use super::{convert, estimate};
use crate::config::{ApiKey, Provider};
use crate::credentials::Secret;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::format::Format;
use crate::http1::{self, BodyCodec, BodyFraming, ResponseHead};
use crate::routing::{Next, Outcome, Policy, Target};
use crate::translate::{Code, Ledger, Pair, RequestMeta};
use crate::upstream::{Conn, OutBody};
use crate::usage::Metered;

/// Largest upstream body read whole for translation (non-streaming answers).
pub const MAX_TRANSLATED_BODY: usize = 64 * 1024 * 1024;

/// Largest provider error body read (to render it in the client's dialect, or to hold it while
/// the next target is tried): a longer one is cut after the read that passes this, the rest
/// left unread, and the client still gets the provider's status with what was read quoted (a
/// cut body is never valid JSON, so it is re-rendered).
pub const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// Room reserved beyond the provider's answer for its translation (ids, field names and
/// usage differ in length between the formats).
const TRANSLATED_SLACK_BYTES: usize = 4096;

/// The request as one target gets it.
pub(super) enum Prepared {
    /// Send `body` to `path`.
    Send {
        path: String,
        body: OutBody,
        /// Set when the body was translated: what the answer's translation needs.
        meta: Option<Rc<RequestMeta>>,
        /// The gateway added `stream_options.include_usage` (same-format OpenAI stream): the
        /// usage chunk is read, not relayed.
        hide_usage: bool,
        /// The betas a cloud kind is sent (None: the client's header as it is, or none).
        betas: Option<SentBetas>,
    },
    /// count_tokens for a provider without that endpoint: the gateway estimates.
    Estimate,
}

/// The `anthropic-beta` values a cloud kind is sent, and where: the header (Vertex) or the
/// body's `anthropic_beta` (Bedrock).
#[derive(Clone, Debug, Default)]
pub(super) struct SentBetas {
    values: Vec<String>,
    in_header: bool,
}

/// The request body for `target`, made ready for its provider's kind: a cloud kind's reshaped
/// (see [`for_cloud`]).
async fn prepare<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    req: &Admitted,
    target: &Target,
    provider: &Provider,
    pair: Pair,
    held: &mut Option<Charge<'c>>,
) -> Result<Prepared> {
    let prepared = prepare_body(ctx, ex, req, target, provider, pair, held).await?;
    match prepared {
        Prepared::Send {
            path,
            body,
            meta,
            hide_usage,
            ..
        } if provider.kind.model_in_path() && pair.provider == Format::Anthropic => {
            let (body, meta, betas) = for_cloud(ctx, ex, req.op, provider, &body.to_bytes(), meta)?;
            Ok(Prepared::Send {
                path,
                body: body.into(),
                meta,
                hide_usage,
                betas,
            })
        }
        other => Ok(other),
    }
}

/// A body for a cloud kind (Bedrock, Vertex): `model` in the path not the body, the cloud's
/// `anthropic_version`, the client's betas the cloud knows (in the body or the header), what
/// it would refuse left out and reported; Bedrock's token count wrapped as its API wants it.
fn for_cloud(
    ctx: &Ctx,
    ex: &Exchange<'_>,
    op: Op,
    provider: &Provider,
    body: &[u8],
    meta: Option<Rc<RequestMeta>>,
) -> Result<(Bytes, Option<Rc<RequestMeta>>, Option<SentBetas>)> {
    use crate::provider::{claude_body, Betas, Kind};
    let client_betas = ex
        .head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case("anthropic-beta"))
        .map(|(_, v)| v);
    let (mut kept, dropped, in_header) = match provider.kind.betas() {
        Betas::HeaderAllowed(allow, renames) => {
            let (k, d) = claude_body::split_betas(client_betas, allow, renames);
            (k, d, true)
        }
        Betas::BodyAllowed(allow, renames) => {
            let (k, d) = claude_body::split_betas(client_betas, allow, renames);
            (k, d, false)
        }
        Betas::Header | Betas::None => (Vec::new(), Vec::new(), false),
    };
    if let Some(beta) = provider.kind.implied_beta(body) {
        if !kept.iter().any(|b| b == beta) {
            kept.push(beta.to_owned());
        }
    }
    let shape = provider
        .kind
        .shape(op, if in_header { &[] } else { &kept })
        .ok_or_else(|| Error::new(ErrorKind::Internal, "a cloud kind without a body shape"))?;
    let (mut out, members) = claude_body::reshape(body, &shape).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidBody,
            "the request body is not a JSON object",
        )
    })?;
    if op == Op::CountTokens && provider.kind == Kind::Bedrock {
        out = claude_body::bedrock_count_tokens(&out);
    }
    if !dropped.is_empty() {
        ctx.metrics.betas_dropped(&provider.name, dropped.len());
    }
    let meta = if members.is_empty() && dropped.is_empty() {
        meta
    } else {
        let mut meta = meta.unwrap_or_default();
        let ledger = &mut Rc::make_mut(&mut meta).ledger;
        for m in members {
            ledger.note(Code::MemberRefused, m);
        }
        for b in &dropped {
            ledger.note(Code::BetaRemoved, format!("anthropic-beta={b}"));
        }
        Some(meta)
    };
    let betas = (!kept.is_empty()).then_some(SentBetas {
        values: kept,
        in_header,
    });
    Ok((Bytes::from(out), meta, betas))
}

/// The request body for `target`: the model spliced in (same dialect) or translated. A
/// translated body's charge against the worker's budget goes to `held` (to be kept while the
/// body is).
async fn prepare_body<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    req: &Admitted,
    target: &Target,
    provider: &Provider,
    pair: Pair,
    held: &mut Option<Charge<'c>>,
) -> Result<Prepared> {
    // A token count across dialects is the gateway's estimate: the provider's count
    // endpoint takes only its own dialect (and a Gemini one would need the whole translation).
    let counted_elsewhere = req.op == Op::CountTokens
        && !pair.is_passthrough()
        && (pair.provider == Format::Gemini || pair.client == Format::Gemini);
    let path = provider
        .path(pair.provider, req.op, &target.model, req.info.stream)
        .filter(|_| !counted_elsewhere);
    let Some(path) = path else {
        // No such operation upstream (count_tokens): ringway estimates it (see `estimate`).
        return Ok(Prepared::Estimate);
    };
    // A kind that names the model in its path drops it from the body (Gemini's bodies never
    // had one): splicing it in first would copy the whole body for nothing.
    let same_dialect_body = || {
        if pair.provider == Format::Gemini
            || provider
                .kind
                .shape(req.op, &[])
                .is_some_and(|s| !s.keep_model)
        {
            Ok(OutBody::from(req.body.clone()))
        } else {
            splice_model(&req.body, &req.info, &target.model)
        }
    };
    if req.op == Op::CountTokens {
        return Ok(Prepared::Send {
            path,
            body: same_dialect_body()?,
            meta: None,
            hide_usage: false,
            betas: None,
        });
    }
    if pair.provider == Format::Responses {
        // Native Responses: items this gateway sealed are dropped first (rare: a conversation
        // that moved here from a translated route; its compaction items were opened at
        // admission).
        let native = crate::translate::responses::native_request(&req.body, &target.model)?;
        if native.is_some() || req.dropped_reasoning {
            let (body, mut dropped) = match native {
                Some((body, dropped)) => (OutBody::from(body), dropped),
                None => (
                    splice_model(&req.body, &req.info, &target.model)?,
                    Vec::new(),
                ),
            };
            if req.dropped_reasoning && !dropped.contains(&"input.reasoning") {
                dropped.push("input.reasoning");
            }
            let mut meta = RequestMeta::default();
            for field in dropped {
                // What native Responses leaves out is sealed reasoning it cannot carry.
                meta.ledger.note(Code::SignatureDropped, field);
            }
            return Ok(Prepared::Send {
                path,
                body,
                meta: Some(Rc::new(meta)),
                hide_usage: false,
                betas: None,
            });
        }
    }
    if pair.is_passthrough() {
        // Same dialect: only the model value changes, spliced in place.
        let body = without_signatures(ctx, req, pair, same_dialect_body()?, &target.model);
        // A Gemini stream asked for without `alt=sse` is asked of the provider as SSE and
        // written to the client as the JSON array it asked for.
        if gemini_json_array(ex, req) {
            let meta = RequestMeta {
                gemini_json_array: true,
                ..RequestMeta::default()
            };
            return Ok(Prepared::Send {
                path,
                body,
                meta: Some(Rc::new(meta)),
                hide_usage: false,
                betas: None,
            });
        }
        // An OpenAI stream says its usage only when asked: the gateway asks (as its
        // translations do), and keeps the answer to itself when the client had not.
        if pair.provider == Format::OpenAi && req.info.stream {
            if let Some(asked) = crate::json::with_include_usage(&body.to_bytes()) {
                return Ok(Prepared::Send {
                    path,
                    body: asked.into(),
                    meta: None,
                    hide_usage: true,
                    betas: None,
                });
            }
        }
        return Ok(Prepared::Send {
            path,
            body,
            meta: None,
            hide_usage: false,
            betas: None,
        });
    }
    // A target may override its provider's thinking style, and a Responses client's seals
    // are bound to its gateway key; copy the options only then.
    let mut opts = std::borrow::Cow::Borrowed(&provider.translate);
    if target.thinking_style != opts.thinking_style {
        opts.to_mut().thinking_style = target.thinking_style;
    }
    if pair.client == Format::Responses
        || pair.provider == Format::Gemini
        || pair.client == Format::Gemini
    {
        opts.to_mut().seal = Some(ctx.config.translate.seal.for_holder(req.holder));
    }
    if pair.client == Format::Gemini {
        // Gemini's paths, not its bodies, say whether the answer streams.
        opts.to_mut().path_stream = req.info.stream;
    }
    let body = &without_signatures(ctx, req, pair, req.body.clone().into(), "").to_bytes();
    // The inspection's notes say where the client's body has its long strings: a body with
    // signatures taken out (or swapped) is another one, and is read without them.
    let unchanged = body.as_ptr() == req.body.as_ptr() && body.len() == req.body.len();
    let unnoted = crate::json::StringSpans::default();
    let strings = if unchanged {
        &req.info.strings
    } else {
        &unnoted
    };
    // Charged to the worker's budget first, and run off the worker when the body is large.
    let (body, mut meta, charge) = convert::request(
        ctx,
        (body, strings, unchanged, req.utf8.as_ref()),
        ex.scope(),
        req.op,
        &target.model,
        pair,
        opts,
    )
    .await?;
    *held = Some(charge);
    meta.created = super::ctx::unix_now();
    meta.gemini_json_array = gemini_json_array(ex, req);
    if let Some(r) = meta.responses.as_deref_mut() {
        r.id = crate::translate::responses::ResponsesMeta::response_id(&ex.request_id);
        r.pii = crate::translate::responses::SealPii {
            on: req.pii_on,
            restore: ex.pii.clone(),
        };
        if let Some(previous) = super::stored::kept(&ex.store) {
            r.keep = true;
            // Just made: the meta holds the only reference, so nothing is copied.
            let echo = std::sync::Arc::make_mut(&mut r.echo);
            echo.store = "true".to_owned();
            if let Some(id) = previous.and_then(|id| serde_json::to_string(&id).ok()) {
                echo.previous_response_id = id;
            }
        }
    }
    if req.dropped_reasoning {
        meta.ledger.note(Code::SignatureDropped, "input.reasoning");
    }
    if !provider.kind.versioned_by_anthropic_headers() && ex.head.header("anthropic-beta").is_some()
    {
        // Features an `anthropic-beta` header turns on do not exist at an OpenAI provider.
        meta.ledger.note(Code::BetaRemoved, "anthropic-beta");
    }
    Ok(Prepared::Send {
        path,
        body,
        meta: Some(Rc::new(meta)),
        hide_usage: false,
        betas: None,
    })
}

/// Does a Gemini client stream without `alt=sse` (the JSON-array form)?
fn gemini_json_array(ex: &Exchange<'_>, req: &Admitted) -> bool {
    ex.format == Format::Gemini
        && req.info.stream
        && !crate::dialect::gemini::wants_sse(ex.head.query())
}

/// `body` (the client's, with `spliced` put in for its model, or as it came) without the
/// thought signatures its tool call ids carry, for a provider that does not speak Gemini: a
/// conversation that moved here from a Gemini provider (the signatures this gateway sealed
/// for this client are taken out; anything else stays as sent). For a Gemini provider, the
/// thinking carried in `thoughtSignature`s is swapped for the dummy.
fn without_signatures(
    ctx: &Ctx,
    req: &Admitted,
    pair: Pair,
    body: OutBody,
    spliced: &str,
) -> OutBody {
    use crate::translate::gemini;
    if pair.provider == Format::Gemini {
        // A Gemini client's history from another provider: the thinking this gateway carried
        // in its signatures means nothing to Gemini, which gets the documented dummy instead.
        return match gemini::swap_carried_thinking(&body.to_bytes()) {
            Some(swapped) => OutBody::from(swapped),
            None => body,
        };
    }
    // Admission searched the client's body for the separator every carried signature follows
    // (an agent's resent bytes when they were first kept): most bodies are not searched here.
    let separator = crate::seal::SIGNATURE_SEPARATOR;
    if !req.info.may_carry_signature && !spliced.contains(separator) {
        return body;
    }
    let key = ctx.config.translate.seal.for_holder(req.holder);
    let opens = |t: &str| gemini::GeminiSeal::opens_for_any_provider(&key, t);
    match gemini::strip_carried_signatures(&body.to_bytes(), &opens) {
        Some(stripped) => OutBody::from(stripped),
        None => body,
    }
}

/// How an answer's body reaches the client.
pub(super) enum Body<'c> {
    /// An event stream, primed up to its first content event when a fallback was possible.
    Stream(Box<Stream>),
    /// A same-dialect body relayed as read (`prefix`: what was read before commit, charged
    /// to the worker's budget until it is written).
    Plain {
        codec: BodyCodec,
        prefix: Vec<u8>,
        charge: Charge<'c>,
    },
    /// Read whole (and rendered in the client's dialect) already; `json`: the body is ours,
    /// so its content type is JSON whatever the provider said.
    Whole {
        bytes: Vec<u8>,
        json: bool,
        charge: Charge<'c>,
    },
}

/// What an attempt got back, ready to commit to.
pub(super) struct Answer<'c> {
    pub provider: &'c Provider,
    pub pair: Pair,
    /// The status the client gets.
    pub status: u16,
    /// The provider's head (None for a gateway estimate).
    pub head: Option<ResponseHead>,
    /// The provider's connection while the body is still to be read (a body read whole has
    /// given it back to the pool already).
    pub conn: Option<Conn>,
    pub body: Body<'c>,
    pub meta: Option<Rc<RequestMeta>>,
    /// Request sent → response head.
    pub ttfb: Duration,
    /// Did the target work (anything but a status the route retries)? None: no provider was
    /// asked (a gateway estimate).
    pub healthy: Option<bool>,
    /// Index of the target in its route (set by the failover loop).
    pub target: usize,
    /// Usage and stop reason of a body read whole, from the provider's bytes (a stream's or a
    /// relayed body's are read by the pump).
    pub metered: crate::usage::Metered,
}

/// Why an attempt produced nothing to commit to.
pub(super) struct Miss<'c> {
    pub error: Error,
    /// Metrics label of the fallback reason.
    pub reason: &'static str,
    /// The same target may get the request again: nothing reached it, or it asked for a retry.
    pub same_target: bool,
    /// The provider's `retry-after-ms` / `retry-after`.
    pub retry_after: Option<Duration>,
    /// Count this against the target's breaker.
    pub target_failed: bool,
    /// No other attempt can help (the gateway's own limits, the request's deadline).
    pub terminal: bool,
    /// The provider's own error answer, given to the client if nothing better comes.
    pub answer: Option<Answer<'c>>,
}

impl Miss<'_> {
    /// A failure before any response head.
    pub fn from_error(e: Error) -> Self {
        let kind = e.kind();
        let (reason, same_target, target_failed, terminal) = match kind {
            ErrorKind::UpstreamConnect | ErrorKind::UpstreamTls | ErrorKind::ConnectTimeout => {
                ("connect", true, true, false)
            }
            ErrorKind::UpstreamReset => ("reset", false, true, false),
            ErrorKind::FirstByteTimeout => ("first_byte_timeout", false, true, false),
            ErrorKind::IdleTimeout => ("idle_timeout", false, true, false),
            ErrorKind::UpstreamProtocol => ("protocol", false, true, false),
            ErrorKind::ProviderCredentials | ErrorKind::UpstreamCredentials => {
                ("credentials", false, false, false)
            }
            // Too large to translate for this target: another may take the body as it is.
            ErrorKind::InvalidBody | ErrorKind::Unsupported | ErrorKind::BodyTooLarge => {
                ("untranslatable", false, false, false)
            }
            _ => ("gateway", false, false, true),
        };
        Miss {
            error: e,
            reason,
            same_target,
            retry_after: None,
            target_failed,
            terminal,
            answer: None,
        }
    }

    /// What the failover plan hears of it.
    pub fn outcome(&self) -> Outcome {
        Outcome::Missed {
            same_target: self.same_target,
            retry_after: self.retry_after,
            terminal: self.terminal,
        }
    }
}

/// Metrics label for a retried status.
fn status_reason(status: u16) -> &'static str {
    match status {
        429 => "status_429",
        500 => "status_500",
        502 => "status_502",
        503 => "status_503",
        504 => "status_504",
        529 => "status_529",
        _ => "status_other",
    }
}

/// The request made ready for one target: kept for that target's retries.
pub(super) struct Ready<'c> {
    pub provider: &'c Provider,
    pub pair: Pair,
    pub prepared: Prepared,
    /// A translated body's charge against the worker's budget: held (never read) while the
    /// body is kept, let go with it.
    _held: Option<Charge<'c>>,
    /// Its body was lent to a send ([`Ready::lend`]): a later send makes it again.
    lent: bool,
    /// The connection its first send goes out on, reached before the body was translated;
    /// goes with the lent body.
    reached: Option<Reached>,
}

/// A connection reached for a lent body before it was made, or the error reaching one gave,
/// and how long that took (the send's time to first byte counts it, as when it connected
/// itself).
pub(super) struct Reached {
    conn: Result<Conn>,
    took: Duration,
}

impl Reached {
    /// A connection to `provider`: a pooled one, else (or when `fresh`) a new one.
    async fn new(ctx: &Ctx, provider: &Provider, deadline: Instant, fresh: bool) -> Reached {
        let start = Instant::now();
        let conn = reach(ctx, provider, deadline, fresh).await;
        Reached {
            conn,
            took: start.elapsed(),
        }
    }

    /// Back to the pool unused (a body that was not lent after all, or a refused request).
    fn give_back(self, ctx: &Ctx, provider: &Provider) {
        if let Ok(up) = self.conn {
            ctx.pool.put(&provider.pool_key, up);
        }
    }
}

/// A translated body lent to a send, with its charge: once written it is let go, so that a
/// request waiting for its answer (seconds, for a model that thinks) holds the client's body
/// only, not its translation too. Should the send need it again (a pooled connection the
/// provider had closed), or the target get a retry, it is made again from the client's body:
/// a translation costs well under a millisecond, and only on those rarer paths.
pub(super) struct Lent<'c> {
    body: OutBody,
    held: Option<Charge<'c>>,
    /// The connection reached for it before it was made, or the error reaching one gave.
    reached: Option<Reached>,
}

/// When a send of `lent` began: its connection was reached before its body was made, and
/// the time that took is the send's, as when a send connects itself.
pub(super) fn began(lent: Option<&Lent<'_>>) -> Instant {
    let took = lent
        .and_then(|l| l.reached.as_ref())
        .map_or(Duration::ZERO, |r| r.took);
    Instant::now()
        .checked_sub(took)
        .unwrap_or_else(Instant::now)
}

impl<'c> Ready<'c> {
    /// The body, for the next send: only a translated one (a same-format body shares the
    /// client's bytes, so keeping it costs nothing), and only at a kind that never sends a
    /// body twice by itself (a cloud sends again with a fresh credential or without a refused
    /// beta). Once lent, later sends make it again.
    pub fn lend(&mut self) -> Option<Lent<'c>> {
        if self._held.is_none() || self.provider.cloud_credential.is_some() {
            return None;
        }
        let Prepared::Send {
            body, betas: None, ..
        } = &mut self.prepared
        else {
            return None;
        };
        self.lent = true;
        Some(Lent {
            body: std::mem::replace(body, OutBody::from(Bytes::new())),
            held: self._held.take(),
            reached: self.reached.take(),
        })
    }
}

/// Make the request ready for `target` at `provider`, in the dialect pair they make.
pub(super) async fn ready<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    req: &Admitted,
    target: &Target,
    provider: &'c Provider,
    reach_by: Option<Instant>,
) -> Result<Ready<'c>> {
    let pair = Pair::new(ex.format, provider.speaks(ex.format, &target.model));
    // A body to be translated and lent is made only once a connection can take it: while
    // connects are made, a request holds the client's body alone. Made first, 200 translated
    // requests on one worker (more than the pool keeps) each held both bodies while theirs
    // connected, and peak RSS went past 2 × their bodies. A failed connect is kept for the
    // first send, which meets it as it would have met it there. Not reached: a target the
    // breaker would pass over (`reach_by` None), or a request refused whatever the provider
    // (no key for it, a body too large to translate at all).
    let lends = !pair.is_passthrough()
        && req.op != Op::CountTokens
        && provider.cloud_credential.is_none()
        && !matches!(provider.api_key, ApiKey::Missing(_))
        && crate::translate::request_memory_bound(req.body.len()) <= ctx.buffers.limit();
    let reached = match reach_by {
        Some(deadline) if lends => Some(Reached::new(ctx, provider, deadline, false).await),
        _ => None,
    };
    let mut held = None;
    let prepared = prepare(ctx, ex, req, target, provider, pair, &mut held).await;
    // A connection reached for a body that will not be lent (one refused, or not translated
    // after all) goes back to the pool unused.
    let give_back = |reached: Option<Reached>| {
        if let Some(r) = reached {
            r.give_back(ctx, provider);
        }
    };
    let (prepared, reached) = match prepared {
        Ok(p) if held.is_some() => (p, reached),
        Ok(p) => {
            give_back(reached);
            (p, None)
        }
        Err(e) => {
            give_back(reached);
            return Err(e);
        }
    };
    // Counted here, once per target: a body made again for a retry is the same translation.
    if held.is_some() {
        ctx.metrics
            .translated(pair.client.as_str(), pair.provider.as_str());
    }
    if let Prepared::Send {
        meta: Some(meta), ..
    } = &prepared
    {
        if let Err(e) = strict(ctx, ex, req, provider, meta) {
            give_back(reached);
            return Err(e);
        }
    }
    Ok(Ready {
        provider,
        pair,
        prepared,
        _held: held,
        lent: false,
        reached,
    })
}

/// Under `strict_translation` (the key's or the route's), a request whose translation for
/// this target holds a lossy ledger entry is refused before anything is sent: a 400 naming
/// the field and the code. Like any target the request cannot be made ready for, the next
/// target may still serve it (one that needs no lossy translation); the refused ledger is
/// kept for the record.
fn strict(
    ctx: &Ctx,
    ex: &Exchange<'_>,
    req: &Admitted,
    provider: &Provider,
    meta: &RequestMeta,
) -> Result<()> {
    let Some(lossy) = meta.ledger.first_lossy() else {
        return Ok(());
    };
    // The route is looked up only for a lossy translation: strictness costs nothing else.
    if !req.strict_key && !route_strict(ctx, &req.info.model) {
        return Ok(());
    }
    *ex.response.ledger.borrow_mut() = meta.ledger.clone();
    let field = lossy.field.as_ref();
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "strict_translation: `{field}` cannot be carried to provider `{}` as sent ({}); nothing was sent",
            provider.name,
            lossy.code.as_str()
        ),
    )
    .with_param(field.to_owned())
    .with_code("lossy_translation"))
}

/// Does the route the client named ask for `strict_translation`?
fn route_strict(ctx: &Ctx, model: &str) -> bool {
    match ctx.config.resolve(model) {
        Some(crate::routing::Resolved::Route(r) | crate::routing::Resolved::Within(r, _)) => {
            r.strict_translation
        }
        _ => false,
    }
}

/// One send: the request made ready for a target, under its route's policy.
pub(super) struct Try<'a, 'c> {
    pub req: &'a Admitted,
    pub target: &'a Target,
    pub ready: &'a Ready<'c>,
    pub policy: &'a Policy,
    /// The attempts that could follow this one: with none, a retryable status or a slow
    /// stream is committed to as it is.
    pub next: Next,
    /// The route's deadline for an answer to start.
    pub deadline: Instant,
    /// The body, lent for this send only ([`Ready::lend`]); None: the ready request's.
    pub lent: Option<Lent<'c>>,
}

/// What every answer of one send says besides its status, head, connection and body.
struct Reply<'c> {
    provider: &'c Provider,
    pair: Pair,
    meta: Option<Rc<RequestMeta>>,
    /// Request sent → response head.
    ttfb: Duration,
    /// Finds the gateway's credential for this provider in what it sends back: its static key,
    /// or the cloud credential held when the request was sent.
    scrubber: Option<Arc<crate::scrub::Scrubber>>,
}

impl<'c> Reply<'c> {
    fn answer(
        &self,
        status: u16,
        head: ResponseHead,
        conn: Option<Conn>,
        body: Body<'c>,
        healthy: bool,
    ) -> Answer<'c> {
        Answer {
            provider: self.provider,
            pair: self.pair,
            status,
            head: Some(head),
            conn,
            body,
            meta: self.meta.clone(),
            ttfb: self.ttfb,
            healthy: Some(healthy),
            target: 0,
            metered: Metered::default(),
        }
    }

    /// A 2xx answer read whole, with the usage metered from the provider's body.
    fn whole(
        &self,
        head: ResponseHead,
        bytes: Vec<u8>,
        json: bool,
        charge: Charge<'c>,
        metered: Metered,
    ) -> Answer<'c> {
        let body = Body::Whole {
            bytes,
            json,
            charge,
        };
        Answer {
            metered,
            ..self.answer(head.status, head, None, body, true)
        }
    }
}

/// A provider's response whose head has been read.
struct Response {
    up: Conn,
    head: ResponseHead,
    codec: BodyCodec,
}

/// Send the request made ready for a target and read until there is something to commit to:
/// the head (with, for a stream that may still fall back, its first content event), or the
/// whole body when it is translated or an error.
pub(super) async fn run<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    mut at: Try<'_, 'c>,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Prepared::Send {
        path,
        body,
        meta,
        hide_usage,
        betas,
    } = &at.ready.prepared
    else {
        return estimated(ctx, &at).await;
    };
    let provider = at.ready.provider;
    let sent = began(at.lent.as_ref());
    let first_byte = first_byte_timeout(provider, at.policy, at.req.info.stream);
    let secret = cloud_secret(provider, None, at.deadline)
        .await
        .map_err(|e| miss_by(e, at.deadline))?;
    let outgoing = |body| Outgoing {
        path,
        body,
        lean: false,
        held: None,
        reached: None,
        betas: betas.clone().unwrap_or_default(),
        stream: at.req.info.stream,
        secret: secret.clone(),
    };
    // A lent body goes with its one write; a send after one that took it (a retry), or
    // one that needs it again (a pooled connection the provider had closed), makes it again.
    let lent = match at.lent.take() {
        None if at.ready.lent => Some(remade(ctx, ex, &at, false).await?),
        lent => lent,
    };
    let lean = lent.is_some();
    let lean_out = |Lent {
                        body,
                        held,
                        reached,
                    }| Outgoing {
        lean: true,
        held,
        reached,
        ..outgoing(body)
    };
    let sent_once = match lent {
        Some(lent) => send(ctx, ex, &at, provider, lean_out(lent), first_byte).await,
        None => send(ctx, ex, &at, provider, outgoing(body.clone()), first_byte).await,
    };
    let Sent {
        up,
        mut head,
        early,
        refused,
    } = match sent_once {
        Err(m) if lean && m.error.retry() == Retry::ReusedOnly => {
            let out = lean_out(remade(ctx, ex, &at, true).await?);
            send(ctx, ex, &at, provider, out, first_byte).await?
        }
        other => other?,
    };
    // Betas the cloud refused by name were left out of the send that answered: reported with
    // the rest of what the kind refused.
    let meta = match meta {
        Some(m) if !refused.is_empty() => {
            let mut m = m.clone();
            note_refused(&mut Rc::make_mut(&mut m).ledger, refused);
            Some(m)
        }
        None if !refused.is_empty() => {
            let mut m = RequestMeta::default();
            note_refused(&mut m.ledger, refused);
            Some(Rc::new(m))
        }
        other => other.clone(),
    };
    let scrubber = provider.scrubber.clone().or_else(|| {
        provider
            .cloud_credential
            .as_deref()
            .and_then(crate::credentials::Credential::scrubber)
    });
    let reply = Reply {
        provider,
        pair: at.ready.pair,
        meta,
        ttfb: sent.elapsed(),
        scrubber,
    };
    if let Some(s) = &reply.scrubber {
        // The provider's headers reach the client: never with the gateway's credential.
        head.replace_values(|v| s.scrub(v));
    }
    ctx.metrics.upstream(&provider.name, head.status);
    let ok = (200..300).contains(&head.status);
    let stream = head.is_event_stream()
        || provider
            .kind
            .framing()
            .announced_by(head.header("content-type"));
    let res = Response {
        up,
        codec: BodyCodec::new(head.framing),
        head,
    };
    if !ok {
        return error_answer(ctx, &at, &reply, res, early).await;
    }
    if stream {
        return stream_answer(ctx, ex, &at, &reply, res, *hide_usage).await;
    }
    if at.req.op == Op::CountTokens
        && provider.kind.model_in_path()
        && reply.pair.client == Format::Anthropic
    {
        return cloud_token_count(ctx, &at, &reply, res).await;
    }
    match reply
        .meta
        .as_deref()
        .filter(|_| !reply.pair.is_passthrough())
    {
        Some(meta) => translated_answer(ctx, &at, &reply, res, meta).await,
        None => same_dialect_answer(ctx, ex, &at, &reply, res).await,
    }
}

/// The body of `at` made again, lent to one send like the first (see [`Lent`]), once a
/// connection can take it (a new one when `fresh`: a pooled one had been closed under it).
async fn remade<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    at: &Try<'_, 'c>,
    fresh: bool,
) -> std::result::Result<Lent<'c>, Miss<'c>> {
    let mut held = None;
    let (ready, req) = (at.ready, at.req);
    let reached = Reached::new(ctx, ready.provider, at.deadline, fresh).await;
    let again = prepare(
        ctx,
        ex,
        req,
        at.target,
        ready.provider,
        ready.pair,
        &mut held,
    )
    .await;
    let again = match again {
        Ok(again) => again,
        Err(e) => {
            reached.give_back(ctx, ready.provider);
            // The target is not at fault, and another may take the request as it is (as when
            // a target cannot be made ready in the first place): the worker's budget or its
            // helpers being busy now ends this target's sends, not the request.
            let mut m = miss_by(e, at.deadline);
            m.same_target = false;
            m.target_failed = false;
            m.terminal = m.reason == "request_timeout";
            return Err(m);
        }
    };
    match again {
        Prepared::Send { body, .. } => Ok(Lent {
            body,
            held,
            reached: Some(reached),
        }),
        Prepared::Estimate => Err(Miss::from_error(Error::new(
            ErrorKind::Internal,
            "a request made ready to send became an estimate",
        ))),
    }
}

/// Betas a cloud refused by name (`anthropic-beta=VALUE` each), in the ledger.
fn note_refused(ledger: &mut Ledger, refused: Vec<String>) {
    for r in refused {
        ledger.note(Code::BetaRemoved, r);
    }
}

/// count_tokens for a provider without that endpoint: the gateway's estimate, a whole answer.
async fn estimated<'c>(
    ctx: &'c Ctx,
    at: &Try<'_, 'c>,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let bytes = estimate::count(at.ready.pair.client, at.req.body.clone())
        .await
        .map_err(|e| Miss {
            terminal: true,
            ..Miss::from_error(e)
        })?;
    Ok(Answer {
        provider: at.ready.provider,
        pair: at.ready.pair,
        status: 200,
        head: None,
        conn: None,
        body: Body::Whole {
            bytes,
            json: true,
            charge: ctx.buffers.charge(),
        },
        meta: None,
        ttfb: Duration::ZERO,
        healthy: None,
        target: 0,
        metered: Metered::default(),
    })
}

/// An error status: its body read (bounded) and rendered in the client's dialect, and held
/// whole either way: given to the client now, or kept while the next attempt is made. A status
/// the route retries is a miss while another attempt could follow.
async fn error_answer<'c>(
    ctx: &'c Ctx,
    at: &Try<'_, 'c>,
    reply: &Reply<'c>,
    res: Response,
    early: Option<Early<'c>>,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Response {
        mut up,
        head,
        mut codec,
    } = res;
    let (provider, status) = (reply.provider, head.status);
    let (raw, mut charge) = match early {
        Some(e) => {
            codec = e.codec;
            (e.raw, e.charge)
        }
        None => {
            let mut charge = ctx.buffers.charge();
            let raw = read_prefix(
                &mut up,
                &mut codec,
                provider,
                &mut charge,
                at.deadline,
                MAX_ERROR_BODY_BYTES,
            )
            .await
            .map_err(|e| miss_by(e, at.deadline))?;
            (raw, charge)
        }
    };
    // Relayed or rendered, quoted or not: the gateway's credential is not in it.
    let raw = match reply.scrubber.as_deref().and_then(|s| s.scrub(&raw)) {
        Some(clean) => clean,
        None => raw,
    };
    // A cloud's own error shapes (AWS's, Google's) read as its dialect's first.
    let aws_type = head
        .header("x-amzn-errortype")
        .and_then(|v| std::str::from_utf8(v).ok());
    let raw = provider.kind.anthropic_error(aws_type, &raw).unwrap_or(raw);
    let (client_status, rendered) = reply.pair.error(status, &raw);
    let json = rendered.is_some();
    let bytes = rendered.unwrap_or(raw);
    if !charge.resize(bytes.capacity()) {
        return Err(Miss::from_error(charge.exhausted()));
    }
    let retry_after = crate::routing::backoff::retry_after(
        head.header("retry-after-ms"),
        head.header("retry-after"),
    );
    release(ctx, provider, up, head.reusable && codec.is_done());
    let retryable = at.policy.retries_status(status);
    let body = Body::Whole {
        bytes,
        json,
        charge,
    };
    let answer = reply.answer(client_status, head, None, body, !retryable);
    if !retryable || !(at.next.same_target || at.next.other_target) {
        return Ok(answer);
    }
    Err(Miss {
        error: Error::new(
            ErrorKind::UpstreamProtocol,
            format!("provider `{}` answered {status}", provider.name),
        ),
        reason: status_reason(status),
        same_target: true,
        retry_after,
        target_failed: true,
        terminal: false,
        answer: Some(answer),
    })
}

/// An event stream. One that fails before content can only move to another target (the
/// provider answered 200 and may have acted on the request): it is primed only when one is
/// left.
async fn stream_answer<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    at: &Try<'_, 'c>,
    reply: &Reply<'c>,
    res: Response,
    hide_usage: bool,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Response {
        mut up,
        head,
        codec,
    } = res;
    let provider = reply.provider;
    let mut stream = Box::new(Stream::new(reply.pair, reply.meta.as_deref(), codec));
    stream.framed(provider.kind.framing());
    stream.charge_held(ctx.buffers.clone());
    if hide_usage {
        stream.hide_usage_chunk();
    }
    if let Some(set) = &ex.pii {
        stream.restore_pii(set.clone());
    }
    if let Some(s) = &reply.scrubber {
        stream.scrub_errors(s.clone());
    }
    if super::trace::exports_content(ex) {
        stream.keep_completion();
    }
    if at.next.other_target {
        let first_token = at
            .policy
            .first_token_timeout
            .filter(|_| at.next.other_admissible);
        if let Err(miss) = stream
            .prime(&mut up, provider, first_token, at.deadline)
            .await
        {
            // The message may quote the provider's error event.
            let error = match reply
                .scrubber
                .as_deref()
                .and_then(|s| s.scrub_str(miss.error.message()))
            {
                Some(clean) => Error::new(miss.error.kind(), clean),
                None => miss.error,
            };
            return Err(Miss {
                reason: miss.reason,
                // The provider answered 200 and may have acted on the request.
                same_target: false,
                ..Miss::from_error(error)
            });
        }
    }
    let status = head.status;
    Ok(reply.answer(status, head, Some(up), Body::Stream(stream), true))
}

/// A cloud's token count, read whole and said as Anthropic's `{"input_tokens":N}` (Bedrock
/// counts in its own shape; Vertex's is Anthropic's already).
async fn cloud_token_count<'c>(
    ctx: &'c Ctx,
    at: &Try<'_, 'c>,
    reply: &Reply<'c>,
    res: Response,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Response {
        mut up,
        head,
        mut codec,
    } = res;
    let provider = reply.provider;
    let mut charge = ctx.buffers.charge();
    let raw = read_whole(
        &mut up,
        &mut codec,
        provider,
        head.framing,
        &mut charge,
        at.deadline,
    )
    .await?;
    release(ctx, provider, up, head.reusable && codec.is_done());
    let bytes = provider.kind.token_count(&raw).ok_or_else(|| {
        Miss::from_error(Error::new(
            ErrorKind::UpstreamProtocol,
            format!(
                "provider `{}` answered a token count without a count",
                provider.name
            ),
        ))
    })?;
    Ok(reply.whole(head, bytes, true, charge, Metered::default()))
}

/// A same-dialect answer. While another target could still serve, one up to
/// [`MAX_HELD_ANSWER_BYTES`] is read whole before commit, so a provider that breaks mid-body
/// costs a fallback, not a truncated answer; beyond that (or with nothing left to fall back
/// to) it is relayed as it is read.
async fn same_dialect_answer<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    at: &Try<'_, 'c>,
    reply: &Reply<'c>,
    res: Response,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Response {
        mut up,
        head,
        mut codec,
    } = res;
    let (provider, pair) = (reply.provider, reply.pair);
    let mut prefix = Vec::new();
    let mut charge = ctx.buffers.charge();
    // A stored Responses answer is read whole too: it is kept before it goes out.
    let keep = pair.client == Format::Responses && ex.store.borrow().is_some();
    if ex.pii.is_some() || keep {
        // PII on: the answer is restored whole (a stand-in may straddle any read, and the
        // restored body has another length), so it is read whole, within the translated
        // answers' bound.
        let bytes = read_whole(
            &mut up,
            &mut codec,
            provider,
            head.framing,
            &mut charge,
            at.deadline,
        )
        .await?;
        release(ctx, provider, up, head.reusable && codec.is_done());
        let metered = crate::usage::from_body(pair.provider, &bytes);
        return Ok(reply.whole(head, bytes, false, charge, metered));
    }
    if at.next.other_target {
        prefix = read_prefix(
            &mut up,
            &mut codec,
            provider,
            &mut charge,
            at.deadline,
            MAX_HELD_ANSWER_BYTES,
        )
        .await
        .map_err(|e| body_miss(e, at.deadline))?;
        if codec.is_done() {
            release(ctx, provider, up, head.reusable);
            let metered = crate::usage::from_body(pair.provider, &prefix);
            return Ok(reply.whole(head, prefix, false, charge, metered));
        }
    }
    let status = head.status;
    let body = Body::Plain {
        codec,
        prefix,
        charge,
    };
    Ok(reply.answer(status, head, Some(up), body, true))
}

/// A whole answer in another dialect: read (charged to the worker's budget), translated.
async fn translated_answer<'c>(
    ctx: &'c Ctx,
    at: &Try<'_, 'c>,
    reply: &Reply<'c>,
    res: Response,
    meta: &RequestMeta,
) -> std::result::Result<Answer<'c>, Miss<'c>> {
    let Response {
        mut up,
        head,
        mut codec,
    } = res;
    let (provider, pair) = (reply.provider, reply.pair);
    let mut charge = ctx.buffers.charge();
    let mut raw = read_whole(
        &mut up,
        &mut codec,
        provider,
        head.framing,
        &mut charge,
        at.deadline,
    )
    .await?;
    // The answer is about as long as what it translates: reserve (and charge) that before
    // translating, so the worker's answers stay within the budget while both exist. Only one
    // translation runs on a worker at a time; its parse scratch (strings with escapes) is the
    // documented constant beyond the budget. A body read in chunks grew geometrically: hold
    // (and charge) only its length.
    if raw.capacity() > raw.len() + TRANSLATED_SLACK_BYTES {
        raw.shrink_to_fit();
    }
    let estimate = translation_estimate(raw.len());
    if !charge.resize(raw.capacity() + estimate) {
        return Err(Miss {
            terminal: true,
            ..Miss::from_error(refusal(&charge, raw.len()))
        });
    }
    // Usage is read from the provider's answer, before it becomes the client's dialect.
    let metered = crate::usage::from_body(pair.provider, &raw);
    let mut out = Vec::with_capacity(estimate);
    meta.finished.set(super::ctx::unix_now());
    if let Err(e) = pair.response_into(&raw, meta, &mut out) {
        return Err(Miss::from_error(Error::from(e)));
    }
    // The answer now lives in `out`: charge only that.
    drop(raw);
    if out.capacity() > out.len() + TRANSLATED_SLACK_BYTES {
        out.shrink_to_fit();
    }
    if !charge.resize(out.capacity()) {
        return Err(Miss {
            terminal: true,
            ..Miss::from_error(charge.exhausted())
        });
    }
    release(ctx, provider, up, head.reusable && codec.is_done());
    Ok(reply.whole(head, out, true, charge, metered))
}

/// A provider connection whose response was read to its end (on one that may carry another)
/// goes back to the pool.
pub(super) fn release(ctx: &Ctx, provider: &Provider, mut up: Conn, reusable_and_done: bool) {
    if reusable_and_done {
        up.served += 1;
        ctx.pool.put(&provider.pool_key, up);
    }
}

/// The next body chunk, within the provider's idle timeout and the request's deadline (its
/// expiry is the deadline's error: the answer has not started for the client).
async fn read_before(
    up: &mut Conn,
    codec: &mut BodyCodec,
    provider: &Provider,
    deadline: Instant,
) -> Result<Option<Bytes>> {
    let wait = within(provider.idle_timeout, deadline);
    if wait.is_zero() {
        return Err(deadline_passed());
    }
    match up.read_chunk(codec, wait).await {
        Err(e) if e.kind() == ErrorKind::IdleTimeout && Instant::now() >= deadline => {
            Err(deadline_passed())
        }
        r => r,
    }
}

/// The request's deadline (`request_timeout_ms`) passed before its answer started.
fn deadline_passed() -> Error {
    Error::new(
        ErrorKind::FirstByteTimeout,
        "no provider answer started within the route's request_timeout_ms",
    )
}

/// The miss of a request whose deadline passed before it could be sent again.
pub(super) fn deadline_miss() -> Miss<'static> {
    Miss {
        reason: "request_timeout",
        terminal: true,
        target_failed: false,
        ..Miss::from_error(deadline_passed())
    }
}

/// A miss; the last one when the request's deadline has passed.
fn miss_by(e: Error, deadline: Instant) -> Miss<'static> {
    let mut m = Miss::from_error(e);
    if Instant::now() >= deadline {
        // Cut short by the request's own deadline: not the target's failure.
        m.terminal = true;
        m.reason = "request_timeout";
        m.target_failed = false;
    }
    m
}

/// A 2xx answer's body failed before commit: the provider may have acted, so only another
/// target may be tried; the worker's own budget or the deadline end the request.
fn body_miss(e: Error, deadline: Instant) -> Miss<'static> {
    let budget = e.kind() == ErrorKind::BufferBudget;
    let mut m = miss_by(e, deadline);
    m.same_target = false;
    if budget {
        m.reason = "gateway";
        m.terminal = true;
        m.target_failed = false;
    } else if !m.terminal {
        m.reason = "reset_mid_body";
    }
    m
}

/// Largest same-dialect answer held whole before commit (so a break mid-body can still fall
/// back); a larger one is relayed as read.
pub const MAX_HELD_ANSWER_BYTES: usize = 1024 * 1024;

/// Read a body until it ends or at least `max` bytes are held (charged to the worker's
/// budget; at most one read beyond `max`); `codec.is_done()` tells which. Same-dialect answers
/// held before commit and provider error bodies are read this way.
async fn read_prefix(
    up: &mut Conn,
    codec: &mut BodyCodec,
    provider: &Provider,
    charge: &mut Charge<'_>,
    deadline: Instant,
    max: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < max {
        match read_before(up, codec, provider, deadline).await? {
            Some(d) => {
                if !charge.resize(out.len() + d.len()) {
                    return Err(charge.exhausted());
                }
                out.extend_from_slice(&d);
            }
            None => break,
        }
    }
    Ok(out)
}

/// Read a whole provider body: at most `max` bytes (a 502), and only while the worker's
/// budget has room (a 503). Memory is charged before it is reserved, with room for a
/// translation of the same size.
async fn read_all(
    up: &mut Conn,
    body: &mut BodyCodec,
    provider: &Provider,
    declared: Option<u64>,
    max: usize,
    charge: &mut Charge<'_>,
    deadline: Instant,
) -> std::result::Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::BeforeResponse(Error::new(
            ErrorKind::UpstreamProtocol,
            format!("provider response exceeds {max} bytes"),
        ))
    };
    let mut out: Vec<u8> = Vec::new();
    if let Some(n) = declared {
        // A declared length is reserved (and charged) once, exactly, before any byte is read.
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(too_large)?;
        // Charged with room for its translation too: two answers that each got their body in
        // but not their translation would otherwise both be refused after reading.
        if !charge.resize(n + translation_estimate(n)) {
            return Err(Failure::BeforeResponse(refusal(charge, n)));
        }
        out.reserve_exact(n);
    }
    loop {
        match read_before(up, body, provider, deadline).await {
            Ok(Some(d)) => {
                let need = out.len() + d.len();
                if need > max {
                    return Err(too_large());
                }
                if need > out.capacity() {
                    // Grow geometrically, as Vec would, but charge the capacity first.
                    let cap = need.max(out.capacity().saturating_mul(2).min(max));
                    if !charge.resize(cap) {
                        return Err(Failure::BeforeResponse(refusal(charge, need)));
                    }
                    out.reserve_exact(cap - out.len());
                }
                out.extend_from_slice(&d);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
    }
}

/// A 2xx answer's whole body, as [`read_all`] reads it (its declared length, if any, reserved
/// up front; at most [`MAX_TRANSLATED_BODY`]); a failure is the miss of a body that broke
/// before commit.
async fn read_whole(
    up: &mut Conn,
    codec: &mut BodyCodec,
    provider: &Provider,
    framing: BodyFraming,
    charge: &mut Charge<'_>,
    deadline: Instant,
) -> std::result::Result<Vec<u8>, Miss<'static>> {
    let declared = match framing {
        BodyFraming::Length(n) => Some(n),
        _ => None,
    };
    let read = read_all(
        up,
        codec,
        provider,
        declared,
        MAX_TRANSLATED_BODY,
        charge,
        deadline,
    )
    .await;
    match read {
        Ok(raw) => Ok(raw),
        Err(Failure::BeforeResponse(e)) => Err(body_miss(e, deadline)),
        Err(_) => Err(Miss::from_error(Error::new(
            ErrorKind::Internal,
            "read failed",
        ))),
    }
}

/// Bytes reserved for the translation of an `n`-byte answer.
fn translation_estimate(n: usize) -> usize {
    n + n / 8 + TRANSLATED_SLACK_BYTES
}

/// Why an answer of `n` bytes cannot be held: the worker is busy with others (503, retry),
/// or it could never fit the budget with its translation, even alone (502: retrying the
/// same request cannot help).
fn refusal(charge: &Charge<'_>, n: usize) -> Error {
    if n + translation_estimate(n) > charge.limit() {
        return Error::new(
            ErrorKind::UpstreamProtocol,
            format!(
                "the provider's answer ({n} bytes or more) is too large to translate within server.max_buffered_bytes = {} per worker",
                charge.limit()
            ),
        );
    }
    charge.exhausted()
}

/// How long a provider may take to send its response head, and the config key that says so:
/// a stream's head comes before its answer, so it gets its own, shorter, budget (the route's
/// over the provider's); a whole answer's head comes only when the answer is done.
fn first_byte_timeout(
    provider: &Provider,
    policy: &Policy,
    stream: bool,
) -> (Duration, &'static str) {
    if stream {
        (
            policy
                .stream_first_byte_timeout
                .unwrap_or(provider.stream_first_byte_timeout),
            "stream_first_byte_timeout_ms",
        )
    } else {
        (provider.first_byte_timeout, "first_byte_timeout_ms")
    }
}

/// Send the request and read the response head. A pooled connection that turns out to have
/// been closed by the provider (nothing at all came back) is retried exactly once, on a fresh
/// connection; any other failure goes back to the failover loop, which decides.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    ctx: &Ctx,
    target: &Target,
    provider: &Provider,
    ex: &Exchange<'_>,
    out: &mut Outgoing<'_>,
    first_byte: (Duration, &'static str),
    deadline: Instant,
) -> Result<(Conn, ResponseHead)> {
    // Build the request first: a missing credential must not cost a connect.
    let req = upstream_request(provider, ex, out)?;
    let mut up = match out.reached.take() {
        Some(reached) => reached.conn?,
        None => reach(ctx, provider, deadline, false).await?,
    };
    count_send(ctx, ex, target);
    if out.lean {
        // The only reference: gone once written, and its charge with it. A pooled
        // connection's `ReusedOnly` failure goes back to `run`, which makes the body again.
        let body = std::mem::replace(&mut out.body, OutBody::from(Bytes::new()));
        let held = out.held.take();
        let head = send_and_read_head(&mut up, req, (body, held), first_byte, deadline).await?;
        return Ok((up, head));
    }
    let body = out.body.clone();
    match send_and_read_head(&mut up, req, (body.clone(), None), first_byte, deadline).await {
        Ok(head) => Ok((up, head)),
        Err(e) if e.retry() == Retry::ReusedOnly => {
            drop(up);
            // Rebuilt, not cloned up front: the retry is rare, the request runs every time.
            let req = upstream_request(provider, ex, out)?;
            let mut fresh = connect(ctx, provider, deadline).await?;
            count_send(ctx, ex, target);
            let head =
                send_and_read_head(&mut fresh, req, (body, None), first_byte, deadline).await?;
            Ok((fresh, head))
        }
        Err(e) => Err(e),
    }
}

/// The `accept` headers a cloud kind is sent: Bedrock's stream is event-stream frames whose
/// payloads are JSON; everything else JSON (Vertex streams SSE whatever `accept` says).
fn cloud_accept(
    kind: crate::provider::Kind,
    stream: bool,
) -> &'static [(&'static str, &'static [u8])] {
    match kind {
        crate::provider::Kind::Bedrock if stream => &[
            ("accept", b"application/vnd.amazon.eventstream"),
            ("x-amzn-bedrock-accept", b"application/json"),
        ],
        _ => &[("accept", b"application/json")],
    }
}

/// A cloud credential as headers: `Authorization: Bearer …`, or SigV4's (`x-amz-date`,
/// `x-amz-security-token`, `authorization`) signed over the final body and exactly the path
/// and headers that are sent (host, content-type, the accept headers).
#[allow(clippy::type_complexity)]
fn cloud_auth(
    provider: &Provider,
    out: &Outgoing<'_>,
) -> Result<(Option<String>, Vec<(&'static str, String)>)> {
    use crate::credentials::{sigv4, Secret};
    match out.secret.as_deref() {
        None => Ok((None, Vec::new())),
        Some(Secret::Bearer(token)) => Ok((Some(format!("Bearer {token}")), Vec::new())),
        Some(Secret::Aws(keys)) => {
            let mut signed: Vec<(&str, &str)> = vec![("content-type", "application/json")];
            for (name, value) in cloud_accept(provider.kind, out.stream) {
                signed.push((name, std::str::from_utf8(value).unwrap_or_default()));
            }
            let headers = sigv4::sign(
                keys,
                &provider.cloud_region,
                crate::provider::bedrock::SIGNING_NAME,
                "POST",
                &provider.authority,
                out.path,
                &signed,
                &sigv4::sha256_hex(&out.body.to_bytes()),
                std::time::SystemTime::now(),
            )
            .map_err(|e| {
                Error::new(
                    ErrorKind::UpstreamCredentials,
                    format!("provider `{}`: {e}", provider.name),
                )
            })?;
            Ok((None, headers))
        }
    }
}

/// One more request sent to `target` (counted before the send, whatever becomes of it).
fn count_send(ctx: &Ctx, ex: &Exchange<'_>, target: &Target) {
    ex.attempts
        .sends
        .set(ex.attempts.sends.get().saturating_add(1));
    ctx.metrics.attempt(&target.label);
}

/// A new provider connection. Boxed: connecting (TLS handshake, connect timer) is the largest
/// state a request goes through, and every connection task is allocated at its largest
/// state's size for its whole life, streams included; a pooled connection skips this.
/// A connection to `provider`: a pooled one, else (or when `fresh`) a new one.
async fn reach(ctx: &Ctx, provider: &Provider, deadline: Instant, fresh: bool) -> Result<Conn> {
    if !fresh {
        if let Some(c) = ctx.pool.take(&provider.pool_key) {
            return Ok(c);
        }
    }
    connect(ctx, provider, deadline).await
}

async fn connect(ctx: &Ctx, provider: &Provider, deadline: Instant) -> Result<Conn> {
    let limit = within(provider.connect_timeout, deadline);
    Box::pin(Conn::connect(provider, &ctx.dns, limit)).await
}

/// `timeout`, cut to what is left before `deadline`: the request's deadline rides on the
/// provider's own timers rather than adding one per request.
fn within(timeout: Duration, deadline: Instant) -> Duration {
    timeout.min(deadline.saturating_duration_since(Instant::now()))
}

/// Send the request and read the head, within `first_byte` (its timeout, and the config key
/// named when it fires: the one to raise).
async fn send_and_read_head(
    up: &mut Conn,
    req: Vec<u8>,
    (body, held): (OutBody, Option<Charge<'_>>),
    (timeout, key): (Duration, &'static str),
    deadline: Instant,
) -> Result<ResponseHead> {
    // Cut short by the request's deadline, that deadline is the one that fired.
    let named = |e: Error, wait: Duration| {
        if e.kind() != ErrorKind::FirstByteTimeout {
            return e;
        }
        let key = if wait < timeout {
            "request_timeout_ms"
        } else {
            key
        };
        Error::new(e.kind(), format!("{} ({key})", e.message()))
    };
    let wait = within(timeout, deadline);
    up.send(req, body, wait).await.map_err(|e| named(e, wait))?;
    // Written: a lent body is gone, so is its charge (see `Lent`).
    drop(held);
    let wait = within(timeout, deadline);
    up.read_head(wait).await.map_err(|e| named(e, wait))
}

/// A send that answered: the response head, and what the cloud cures cost.
struct Sent<'c> {
    up: Conn,
    head: ResponseHead,
    /// An error body already read (to see whether it named a beta).
    early: Option<Early<'c>>,
    /// `anthropic-beta=…` entries the cloud refused by name and the last send left out.
    refused: Vec<String>,
}

/// An error body read before its answer was made (with the codec that read it and its charge).
struct Early<'c> {
    raw: Vec<u8>,
    codec: BodyCodec,
    charge: Charge<'c>,
}

/// Send `out` to `provider` and read the head. A cloud's two refusals that one more send can
/// cure are cured here, once each: a credential it stopped accepting (fetched anew; refused
/// again, the gateway's credential fails, a 502 naming the provider), and a 400 naming a beta
/// it does not know (sent again without it).
async fn send<'c>(
    ctx: &'c Ctx,
    ex: &Exchange<'_>,
    at: &Try<'_, 'c>,
    provider: &Provider,
    mut out: Outgoing<'_>,
    first_byte: (Duration, &'static str),
) -> std::result::Result<Sent<'c>, Miss<'c>> {
    let deadline = at.deadline;
    let miss = |e| miss_by(e, deadline);
    let (mut up, mut head) = exchange(ctx, at.target, provider, ex, &mut out, first_byte, deadline)
        .await
        .map_err(miss)?;
    if credential_refused(provider, &head) {
        drop(up);
        out.secret = cloud_secret(provider, out.secret.as_deref(), deadline)
            .await
            .map_err(miss)?;
        (up, head) = exchange(ctx, at.target, provider, ex, &mut out, first_byte, deadline)
            .await
            .map_err(miss)?;
        if credential_refused(provider, &head) {
            ctx.metrics.upstream(&provider.name, head.status);
            let aws = head.header("x-amzn-errortype").map(String::from_utf8_lossy);
            let why = aws.as_deref().map_or(String::new(), |t| {
                format!(" ({})", t.split(':').next().unwrap_or_default())
            });
            return Err(Miss::from_error(Error::new(
                ErrorKind::UpstreamCredentials,
                format!(
                    "provider `{}` refused the gateway's credentials: {}{why}",
                    provider.name, head.status
                ),
            )));
        }
    }
    if head.status != 400 || out.betas.values.is_empty() {
        return Ok(Sent {
            up,
            head,
            early: None,
            refused: Vec::new(),
        });
    }
    // A 400 with betas sent: does it name one (or say a beta flag is wrong, naming none)?
    let mut codec = BodyCodec::new(head.framing);
    let mut charge = ctx.buffers.charge();
    let raw = read_prefix(
        &mut up,
        &mut codec,
        provider,
        &mut charge,
        deadline,
        MAX_ERROR_BODY_BYTES,
    )
    .await
    .map_err(miss)?;
    let refused = crate::provider::claude_body::refused_betas(&raw, &out.betas.values);
    if refused.is_empty() {
        return Ok(Sent {
            up,
            head,
            early: Some(Early { raw, codec, charge }),
            refused,
        });
    }
    ctx.metrics.upstream(&provider.name, head.status);
    ctx.metrics.betas_dropped(&provider.name, refused.len());
    release(ctx, provider, up, head.reusable && codec.is_done());
    out.betas.values.retain(|b| !refused.contains(b));
    if !out.betas.in_header {
        out.body = OutBody::from(
            crate::provider::claude_body::with_betas(&out.body.to_bytes(), &out.betas.values)
                .ok_or_else(|| {
                    Miss::from_error(Error::new(
                        ErrorKind::Internal,
                        "a cloud body without its betas",
                    ))
                })?,
        );
    }
    let (up, head) = exchange(ctx, at.target, provider, ex, &mut out, first_byte, deadline)
        .await
        .map_err(miss)?;
    Ok(Sent {
        up,
        head,
        early: None,
        refused: refused
            .iter()
            .map(|b| format!("anthropic-beta={b}"))
            .collect(),
    })
}

/// What goes to the provider in one send.
struct Outgoing<'a> {
    path: &'a str,
    body: OutBody,
    /// The body is lent ([`Lent`]): the send takes it, and it is gone once written.
    lean: bool,
    /// A lent body's charge against the worker's budget, let go with it.
    held: Option<Charge<'a>>,
    /// A lent body's connection, reached before it was made.
    reached: Option<Reached>,
    /// The betas a cloud kind gets instead of the client's header.
    betas: SentBetas,
    /// The client asked for a stream (a cloud kind's `accept` says so).
    stream: bool,
    /// A cloud kind's credential: SigV4 keys or a bearer token.
    secret: Option<Arc<Secret>>,
}

/// The cloud credential of `provider` (None for other kinds): the one held, or the first
/// fetch's (or an expired one's refresh) waited for within the deadline; never fetched on the
/// worker. `refused`: the cloud just refused this one, so a fresh one is fetched (one fetch
/// however many requests ask).
async fn cloud_secret(
    provider: &Provider,
    refused: Option<&Secret>,
    deadline: Instant,
) -> Result<Option<Arc<Secret>>> {
    use crate::credentials::Get;
    let Some(credential) = &provider.cloud_credential else {
        return Ok(None);
    };
    // The client learns which provider's credentials failed; the why (files, URLs, accounts,
    // the endpoint's words) is the operator's, in the gateway's log (the refresher logs it).
    let failed = |_why: String| {
        Error::new(
            ErrorKind::UpstreamCredentials,
            format!(
                "provider `{}`: the gateway's credentials for it are unavailable (its log says why)",
                provider.name
            ),
        )
    };
    let pending = match (refused, credential.get()) {
        (None, Get::Ready(s)) => return Ok(Some(s)),
        (None, Get::Failed(why)) => return Err(failed(why)),
        (None, Get::Wait(p)) => p,
        (Some(_), _) => credential.refresh(),
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    match super::lookup::answer(pending, wait).await {
        Some(Ok(s)) => Ok(Some(s)),
        Some(Err(why)) => Err(failed(why)),
        None => Err(Error::new(
            ErrorKind::UpstreamCredentials,
            format!(
                "provider `{}`: the gateway's credentials for it were not ready before the request's deadline",
                provider.name
            ),
        )),
    }
}

/// Did the cloud refuse the gateway's credential (rather than the request)? Vertex: 401;
/// Bedrock: an AWS auth error type.
fn credential_refused(provider: &Provider, head: &ResponseHead) -> bool {
    provider.cloud_credential.is_some()
        && provider.kind.credential_refused(
            head.status,
            head.header("x-amzn-errortype")
                .and_then(|v| std::str::from_utf8(v).ok()),
        )
}

/// The upstream request head for a JSON body: provider credentials, never the client's (a
/// Bedrock request signed over the final body). Room is left for a small body to be appended
/// behind it.
fn upstream_request(provider: &Provider, ex: &Exchange<'_>, out: &Outgoing<'_>) -> Result<Vec<u8>> {
    let (path, body_len) = (out.path, out.body.len());
    let head = ex.head;
    let cloud = provider.kind.model_in_path();
    // A cloud credential's header values, owned here so the fields can borrow them.
    let (bearer, signed) = cloud_auth(provider, out)?;
    let header_betas = out.betas.values.join(",");
    // This attempt's span as the provider's parent (in place of the client's), when asked.
    let traceparent = super::trace::outgoing(ex, || out.body.to_bytes());
    let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(12 + head.header_count().min(8));
    let mut add = |name, value| fields.push((name, value));
    add("host", provider.authority.as_bytes());
    add("content-type", b"application/json");
    add("x-ringway-request-id", ex.request_id.as_bytes());
    if let Some(tp) = &traceparent {
        add("traceparent", tp);
    }
    if cloud {
        // What the cloud answers in is the gateway's choice, not the client's.
        for (name, value) in cloud_accept(provider.kind, out.stream) {
            add(name, value);
        }
    }
    if let Some(b) = &bearer {
        add("authorization", b.as_bytes());
    }
    // Google bills a user credential's calls to the project its file names.
    if let Some(project) = provider
        .cloud_credential
        .as_deref()
        .and_then(|c| c.quota_project())
    {
        add("x-goog-user-project", project.as_bytes());
    }
    for (name, value) in &signed {
        add(name, value.as_bytes());
    }
    // Headers the client's `Connection` nominates are hop-by-hop: they stop here, before any
    // policy (admission refused a client that nominates too many; past the bound every name
    // counts as nominated).
    let hop = crate::headers::Nominated::parse(
        head.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v),
    );
    // The headers copied by hand below still answer to the provider's `drop_headers`.
    let keep =
        |name: &str| !hop.contains(name) && !crate::headers::dropped(name, &provider.drop_headers);
    if let Some(accept) = head.header("accept").filter(|_| !cloud && keep("accept")) {
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
    if provider.kind.versioned_by_anthropic_headers() {
        let version = head
            .header("anthropic-version")
            .filter(|_| !hop.contains("anthropic-version"))
            .unwrap_or(provider.anthropic_version.as_bytes());
        add("anthropic-version", version);
        if let Some(beta) = head
            .header("anthropic-beta")
            .filter(|_| keep("anthropic-beta"))
        {
            add("anthropic-beta", beta);
        }
    }
    if out.betas.in_header && !out.betas.values.is_empty() {
        add("anthropic-beta", header_betas.as_bytes());
    }
    // The client's end-to-end headers, by policy (crate::headers): the default set plus the
    // provider's `forward_headers`, minus its `drop_headers`; never hop-by-hop, credentials,
    // the gateway's own, or the other provider kind's.
    for (name, value) in head.headers() {
        if crate::headers::forward(
            name,
            provider.kind.dialect(),
            &provider.forward_headers,
            &provider.drop_headers,
        ) && !hop.contains(name)
            && http1::is_valid_field_value(value)
            && !(traceparent.is_some() && name.eq_ignore_ascii_case("traceparent"))
        {
            add(name, value);
        }
    }
    // Every value is header-safe already: forwarded client values passed httparse, which
    // refuses control bytes and folded lines (http1 tests), the configured ones (authority,
    // API key, anthropic_version) were checked when the config loaded, cloud credentials when
    // they were fetched, and betas are the allowlist's. The writer checks again.
    let mut out = Vec::with_capacity(512 + body_len.min(crate::upstream::COALESCE_BODY_BYTES));
    http1::write_request_head(&mut out, "POST", path, &fields, body_len as u64).map_err(|r| {
        Error::new(
            ErrorKind::Internal,
            format!("the gateway refused to write the upstream request: {r}"),
        )
    })?;
    Ok(out)
}
