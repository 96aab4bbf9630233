//! Admission: the gateway key, the body (bounded), its JSON (validated, `model` found), the
//! fields every request of its API needs, the key's model allow-list, its limits, and the
//! client's own failover choice (`allow_fallbacks`), and the residency tier it runs under
//! (`privacy_tier` / `x-privacy-tier`, the key's and the server's defaults). Nothing here
//! reaches a provider.

use bytes::Bytes;

use super::ctx::Ctx;
use super::state::{Exchange, Failure, Op};
use super::{convert, record, stored};
use crate::config::GatewayKey;
use crate::downstream::{ClientConn, Transport};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::headers::PRIVACY_TIER_HEADER;
use crate::http1::RequestHead;
use crate::json::{Checked, Flag, RequestInfo, TextField};
use crate::routing::Resolved;
use crate::seal::Holder;
use crate::upstream::OutBody;

/// A request let in.
pub(super) struct Admitted {
    /// The body as it goes upstream (gateway-only fields removed).
    pub body: Bytes,
    /// The body's bytes as checked to be UTF-8 by its inspection, for the translation's reader
    /// (None where the inspection read it by notes: the reader checks it then).
    pub utf8: Option<Checked>,
    /// What its JSON says.
    pub info: RequestInfo,
    /// May the request move to other targets when its first one fails?
    pub fallbacks: bool,
    /// What the client asks for.
    pub op: Op,
    /// The residency tier it runs under (index into `Config::tiers`); None: unrestricted.
    pub tier: Option<usize>,
    /// Whose the request's seals are (its gateway key): what the gateway seals for the
    /// client opens only for that holder.
    pub holder: Holder,
    /// PII substitution was on for the request.
    pub pii_on: bool,
    /// Sealed reasoning items taken out at admission (PII on; see `open_sealed_items`).
    pub dropped_reasoning: bool,
    /// The key asks for `strict_translation` (its route may too: `attempt::strict`).
    pub strict_key: bool,
}

/// The header that opts a request out of fallbacks.
pub const ALLOW_FALLBACKS_HEADER: &str = "x-ringway-allow-fallbacks";

/// Let a model call in, or say why not (401, 403, 400, 408, 413, 429).
pub(super) async fn admit<S: Transport>(
    ctx: &Ctx,
    conn: &mut ClientConn<S>,
    ex: &mut Exchange<'_>,
    op: Op,
    key: Option<&GatewayKey>,
) -> std::result::Result<Admitted, Failure> {
    let head = ex.head;
    let header_fallbacks = fallbacks_header(head)?;
    connection_options(head)?;
    // Checked before the body is read: a bad header costs no body.
    let header_tier = tier_header(ctx, head)?;
    let cfg = &ctx.config;
    // Gemini's paths name the model and whether the answer streams; its bodies do not.
    let path_model = path_model(ex)?;
    // What admission keeps of a body (its `tools`, checked) is kept per key.
    let scope = key.map_or(0, |k| crate::json::scope_of(k.name.as_bytes()));
    let mut body = conn
        .read_body(
            head,
            cfg.server.max_body_bytes,
            cfg.server.body_read_timeout,
            cfg.server.body_timeout,
        )
        .await?;
    ex.body_read.set(true);
    let (mut info, mut utf8) = inspect(&body, &path_model, scope).await?;
    let body_fallbacks = match info.allow_fallbacks {
        Flag::Absent => true,
        Flag::Bool(b) => {
            // A gateway-only field: cut out by splicing, the rest byte for byte.
            let (cut, _) =
                crate::json::remove_members(&body, "allow_fallbacks").ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "cannot remove `allow_fallbacks`")
                })?;
            body = Bytes::from(cut);
            (info, utf8) = inspect(&body, &path_model, scope).await?;
            b
        }
        Flag::Other => {
            return Err(Error::new(
                ErrorKind::InvalidBody,
                "`allow_fallbacks` must be a boolean",
            )
            .with_param("allow_fallbacks")
            .into())
        }
    };
    let body_tier = match std::mem::take(&mut info.privacy_tier) {
        TextField::Absent => None,
        field => {
            // A gateway-only field: cut out by splicing, the rest byte for byte, whichever
            // tier wins (a provider never learns the gateway's tiers).
            let (cut, _) = crate::json::remove_members(&body, "privacy_tier")
                .ok_or_else(|| Error::new(ErrorKind::Internal, "cannot remove `privacy_tier`"))?;
            body = Bytes::from(cut);
            (info, utf8) = inspect(&body, &path_model, scope).await?;
            let text = match &field {
                TextField::Text(t) => Some(t.as_str()),
                _ => None,
            };
            Some(known_tier(ctx, text, TierSource::Body)?)
        }
    };
    check_model(&info.model)?;
    // `previous_response_id` and `item_reference`s become the whole input here, before
    // anything reads the items (seals, PII), so every provider kind gets a plain request.
    if ex.format == Format::Responses && op == Op::Chat {
        let read = (&body, &info.strings);
        if let Some(expanded) = stored::admit(ctx, key, &info.model, read, &ex.store).await? {
            body = expanded;
            (info, utf8) = inspect(&body, &path_model, scope).await?;
        }
    }
    // Everything sealed for the client is bound to its gateway key (the digest of its
    // secret: a rename keeps it, another key or tenant cannot open it). The bound key is
    // made only where a seal is made or opened (it shares the gateway's key).
    let holder = match key {
        Some(k) => Holder::Key(k.sha256),
        None => Holder::Open,
    };
    let seal = || cfg.translate.seal.for_holder(holder);
    // Noted by the inspection, which read every string token.
    let may_hold_seal = info.may_hold_seal;
    // Thinking blocks whose signature the gateway sealed (it restored their text) get their
    // provider's text and signature back, whether or not PII is on for this request: the
    // provider must read exactly what it signed. A body with no seal costs one search.
    if may_hold_seal && matches!(ex.format, Format::OpenAi | Format::Anthropic) {
        match crate::pii::unseal_body(&body, &seal()) {
            Ok(None) => {}
            Ok(Some(unsealed)) => {
                body = Bytes::from(unsealed);
                (info, utf8) = inspect(&body, &path_model, scope).await?;
            }
            Err(e) => {
                let err = Error::new(ErrorKind::InvalidBody, e.to_string());
                return Err(err.with_param(e.field().to_owned()).into());
            }
        }
    }
    // Compaction items the gateway sealed are opened here, before PII substitution reads
    // the body, so their summaries are substituted with the rest (whatever route or policy
    // made them). A body with no seal costs one search.
    if may_hold_seal && ex.format == Format::Responses {
        if let Some(opened) = crate::translate::responses::open_sealed_items(&body, &seal(), None)
            .map_err(Error::from)?
        {
            body = Bytes::from(opened.body);
            (info, utf8) = inspect(&body, &path_model, scope).await?;
        }
    }
    let mut dropped_reasoning = false;
    // PII: on by config for the key or route, or by the request's own flag (which can only
    // turn it on). The flag is taken out either way; when on, the strings with entities are
    // rewritten in place, every other byte kept.
    // Routes named in `pii.routes` are matched after resolution (aliases, `provider/model`).
    let resolved = if cfg.pii.routes.is_empty() {
        None
    } else {
        cfg.resolve(&info.model)
    };
    let pii_policy = cfg.pii.on_for(key, resolved.as_ref());
    let mut pii_on = false;
    // The inspector already read the top-level keys (escapes decoded): no second pass over
    // the body to look for the flag.
    if pii_policy || info.pii_substitution != Flag::Absent {
        // Without the flag there is nothing to take out (the inspector read every top-level
        // key): the body is shared, not searched and copied again.
        let parsed = (info.pii_substitution != Flag::Absent)
            .then(|| crate::pii::parse_body(&body))
            .transpose()
            .map_err(|e| match e {
                crate::pii::BodyError::FlagNotBool => Error::new(
                    ErrorKind::InvalidBody,
                    "`pii_substitution` must be a boolean",
                )
                .with_param("pii_substitution"),
                crate::pii::BodyError::NotObject => {
                    Error::new(ErrorKind::InvalidBody, "the body must be a JSON object")
                }
                crate::pii::BodyError::TooManyValues => too_many_values(),
            })?;
        let on = pii_policy || parsed.as_ref().and_then(|p| p.flag) == Some(true);
        let detector = cfg.pii.detector.get().map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("the PII detectors could not be compiled: {}", e.0),
            )
        })?;
        let mut session =
            crate::pii::Session::new(detector, &cfg.pii.key_secret(key.map(|k| k.name.as_str())));
        pii_on = on;
        // The inspected body itself, until the flag is taken out or sealed items are opened:
        // then the inspection's notes still describe it.
        let mut noted = parsed.is_none();
        let mut text = parsed.map_or_else(|| body.clone(), |p| Bytes::from(p.body));
        if on && ex.format == Format::Responses {
            // Sealed reasoning whose thinking cannot be substituted under its signature and
            // may hold originals does not go upstream.
            let holds_entity = |t: &str| !detector.find(t).is_empty();
            if let Some(opened) =
                crate::translate::responses::open_sealed_items(&text, &seal(), Some(&holds_entity))
                    .map_err(Error::from)?
            {
                text = Bytes::from(opened.body);
                noted = false;
                dropped_reasoning = opened.dropped_reasoning;
            }
        }
        // Notes for the body that goes on, moved with the tokens substitution rewrote: the
        // inspection below crosses each long string in one step instead of scanning 300 KB
        // again (~9% of a PII request's CPU, perf).
        let mut notes = None;
        body = if on {
            // The inspection's notes of where long strings end let the span parser cross them
            // in one step, when `text` is the inspected body. Once the flag is taken out or
            // sealed items are opened, every byte after has moved: the notes would describe
            // other tokens, so none are given.
            let unnoted = crate::json::StringSpans::default();
            let given = if noted { &info.strings } else { &unnoted };
            let (out, splices) = crate::json::with_notes(&text, given, || {
                crate::pii::substitute_spliced(&text, &mut session)
            })
            .map_err(|e| match e {
                crate::pii::BodyError::TooManyValues => too_many_values(),
                // The body was validated above: a body the span parser refuses is a bug, and
                // it must not go upstream unsubstituted.
                _ => Error::new(
                    ErrorKind::Internal,
                    "the body could not be read for PII substitution",
                ),
            })?;
            // With them, whether the body holds the signature separator (searched around
            // each stand-in only).
            notes = noted.then(|| info.strings.spliced(&splices, &out));
            Bytes::from(out)
        } else {
            text
        };
        if let Some(why) = session.unreplaced() {
            return Err(Error::new(
                ErrorKind::InvalidBody,
                format!(
                    "PII substitution could not replace every entity in this request: {why} (at most {} distinct entities of at most {} bytes each, without quotes, backslashes or control characters, in at most {} bytes of text); nothing was sent to the provider",
                    crate::pii::MAX_ENTITIES,
                    crate::pii::MAX_ENTITY_BYTES,
                    crate::pii::MAX_TEXT_BYTES
                ),
            )
            .into());
        }
        ex.pii_counts = session.counts();
        // Thinking is restored too: its signature is sealed under the gateway's key, so the
        // block can go back to the provider as it was signed (`pii::thinking`).
        ex.pii = session.restore_set_sealing(Some(seal()));
        (info, utf8) = inspect_noted(&body, &path_model, notes, scope).await?;
    }
    ex.model = Some(info.model.clone());
    check_shape(&info, ex.format, op)?;
    if let Some(k) = key {
        if !k.allows(&info.model) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("key `{}` may not use model `{}`", k.name, info.model),
            )
            .into());
        }
    }
    let tier = choose_tier(ctx, key, header_tier.or(body_tier))?;
    ex.tier = tier.and_then(|i| cfg.tiers.get(i)).map(|t| t.name.clone());
    // Token counts are free upstream and not generation: not held to any limit.
    if op != Op::CountTokens {
        limit(ctx, ex, key, &info, body.len())?;
    }
    Ok(Admitted {
        body,
        utf8,
        info,
        fallbacks: body_fallbacks && header_fallbacks,
        op,
        tier,
        holder,
        pii_on,
        dropped_reasoning,
        strict_key: key.is_some_and(|k| k.strict_translation),
    })
}

/// What a body's JSON says: read on the worker when small, on a helper thread when large (tens of milliseconds for 6 MB), so that a large body does not
/// hold up the worker's other requests.
async fn inspect(
    body: &Bytes,
    path_model: &Option<(String, bool)>,
    scope: u64,
) -> Result<(RequestInfo, Option<Checked>)> {
    inspect_noted(body, path_model, None, scope).await
}

/// [`inspect`] of a body whose long strings' ends are known already (`notes`, from an
/// earlier inspection moved with the tokens rewritten since): those are crossed, not scanned.
async fn inspect_noted(
    body: &Bytes,
    path_model: &Option<(String, bool)>,
    notes: Option<crate::json::StringSpans>,
    scope: u64,
) -> Result<(RequestInfo, Option<Checked>)> {
    let read = move |body: &Bytes, path_model: &Option<(String, bool)>, notes: Option<_>| {
        let read = || {
            crate::json::with_scope(scope, || match path_model {
                Some((model, stream)) => {
                    crate::json::inspect_request_path_model(body, model, *stream)
                }
                None => crate::json::inspect_request(body),
            })
        };
        match notes {
            // What the notes vouch for is not read again: the reader checks the body itself.
            Some(notes) => (crate::json::with_notes(body, &notes, read), None),
            // Checked once, here: the inspection and the translation's reader take it as
            // text (see `json::Checked`).
            None => crate::json::inspect_checked(body, read),
        }
    };
    let (info, utf8) = if body.len() <= convert::INLINE_TRANSLATION_MAX_BYTES {
        read(body, path_model, notes)
    } else {
        let body = body.clone();
        let path_model = path_model.clone();
        crate::rt::pool::run(move || read(&body, &path_model, notes))
            .await
            .map_err(convert::pool_error)?
    };
    let info = info.map_err(|e| Error::new(ErrorKind::InvalidBody, e.to_string()))?;
    Ok((info, utf8))
}

/// A Gemini call's model (decoded, without `models/`) and whether it streams, from its path;
/// None for the other dialects, whose bodies say both.
fn path_model(ex: &Exchange<'_>) -> Result<Option<(String, bool)>> {
    if ex.format != Format::Gemini {
        return Ok(None);
    }
    let Some(call) = crate::dialect::gemini::call(ex.head.path()) else {
        return Ok(None);
    };
    let model = super::endpoint::percent_decode(call.model).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidBody,
            "the model in the path is not valid percent-encoded UTF-8",
        )
        .with_param("model")
    })?;
    let model = model.strip_prefix("models/").unwrap_or(&model).to_owned();
    if model.is_empty() {
        return Err(
            Error::new(ErrorKind::InvalidBody, "the path names no model").with_param("model"),
        );
    }
    Ok(Some((model, call.stream)))
}

/// The 400 for a body with more JSON values than PII substitution searches.
fn too_many_values() -> Error {
    Error::new(
        ErrorKind::InvalidBody,
        format!(
            "PII substitution searches at most {} JSON values per request (JSON text inside strings included); nothing was sent to the provider",
            crate::pii::MAX_VALUES
        ),
    )
}

/// Where a tier name came from, for the 400 that refuses it.
#[derive(Clone, Copy)]
enum TierSource {
    Header,
    Body,
}

/// `x-privacy-tier`, when sent: a known tier's index.
fn tier_header(ctx: &Ctx, head: &RequestHead) -> Result<Option<usize>> {
    match head.header(PRIVACY_TIER_HEADER) {
        None => Ok(None),
        Some(v) => {
            let text = std::str::from_utf8(v.trim_ascii()).ok();
            known_tier(ctx, text, TierSource::Header).map(Some)
        }
    }
}

/// A tier name as the client sent it: checked where it enters (a label: bounded, no byte
/// that could reach a header or log line unescaped), then looked up. Unknown or malformed
/// is a 400; only a well-formed name is echoed back.
fn known_tier(ctx: &Ctx, text: Option<&str>, source: TierSource) -> Result<usize> {
    let (what, param) = match source {
        TierSource::Header => (PRIVACY_TIER_HEADER, None),
        TierSource::Body => ("privacy_tier", Some("privacy_tier")),
    };
    let with_param = |e: Error| match param {
        Some(p) => e.with_param(p),
        None => e,
    };
    let Some(name) = text.filter(|t| crate::routing::tier::is_label(t)) else {
        return Err(with_param(Error::new(
            ErrorKind::BadRequest,
            format!(
                "`{what}` must be a tier name: 1 to {} of A-Z a-z 0-9 . _ -",
                crate::routing::tier::MAX_LABEL_BYTES
            ),
        )));
    };
    ctx.config.tier(name).ok_or_else(|| {
        with_param(Error::new(
            ErrorKind::BadRequest,
            format!("unknown privacy tier `{name}` (in `{what}`)"),
        ))
        .with_code("unknown_privacy_tier")
    })
}

/// The tier a request runs under: the one it names (the header over the body field: a
/// header is what a platform sidecar or an SDK's default headers set for every call, and both
/// were checked to be known tiers), else its key's default, else the server's. A key with
/// `tiers` runs only inside one of them: a tier it may not use, or no tier at all, is a 403
/// naming the tier (or the choice).
fn choose_tier(ctx: &Ctx, key: Option<&GatewayKey>, named: Option<usize>) -> Result<Option<usize>> {
    let tiers = &ctx.config.tiers;
    let allowed = |i: usize| {
        key.and_then(|k| k.tiers.as_ref())
            .is_none_or(|ts| ts.contains(&i))
    };
    let server_default = ctx.config.server.default_tier.filter(|i| allowed(*i));
    let chosen = named
        .or(key.and_then(|k| k.default_tier))
        .or(server_default);
    let Some(k) = key else {
        return Ok(chosen);
    };
    let Some(list) = &k.tiers else {
        return Ok(chosen);
    };
    let name = |i: usize| tiers.get(i).map_or("?", |t| t.name.as_str());
    match chosen {
        Some(i) if list.contains(&i) => Ok(Some(i)),
        Some(i) => Err(Error::new(
            ErrorKind::TierRefused,
            format!("key `{}` may not use privacy tier `{}`", k.name, name(i)),
        )
        .with_param("privacy_tier")),
        None => Err(Error::new(
            ErrorKind::TierRefused,
            format!(
                "key `{}` must name a privacy tier (`privacy_tier` or `{PRIVACY_TIER_HEADER}`): one of {}",
                k.name,
                list.iter()
                    .map(|i| format!("`{}`", name(*i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_param("privacy_tier")),
    }
}

/// Hold the request to its key's and its route's limits and its key's budget, last of
/// admission's checks (a request they refuse uses none of its budget) and before anything goes
/// upstream: a ticket on the exchange (its stream slots, its budget reservation, the headers
/// every response gets), or a 429 in the client's dialect with `retry-after` and the limits'
/// headers (a 503 when the shared store is down and the config refuses then).
fn limit(
    ctx: &Ctx,
    ex: &mut Exchange<'_>,
    key: Option<&GatewayKey>,
    info: &RequestInfo,
    body_len: usize,
) -> Result<()> {
    let resolved = ctx.config.resolve(&info.model);
    let route = match &resolved {
        Some(Resolved::Route(r) | Resolved::Within(r, _)) => Some(r.model.as_str()),
        _ => None,
    };
    let reserve = match key {
        Some(k) if k.budget.is_some() => reservation(ctx, k, resolved.as_ref(), body_len)?,
        _ => crate::limits::Reservation::default(),
    };
    match ctx
        .limits
        .admit(key.map(|k| k.name.as_str()), route, info.stream, reserve)
    {
        Ok(None) => Ok(()),
        Ok(Some(ticket)) => {
            ticket.headers(ex.format, &mut ex.limit_headers);
            ex.limits = Some(ticket);
            Ok(())
        }
        Err(refused) => {
            // Routing comes after admission, but the log line of a refused request still
            // says which route it was for.
            ex.route = resolved.as_ref().map(record::route_label);
            let (name, scope) = refused.whose();
            let label = match scope {
                crate::limits::Scope::Key => name.to_owned(),
                crate::limits::Scope::Route => format!("route:{name}"),
            };
            ctx.metrics.rate_limited(&label, refused.limit.as_str());
            refused.headers(ex.format, &mut ex.limit_headers);
            Err(refused.error())
        }
    }
}

/// Input tokens reserved per byte of request body: about four bytes a token in the text
/// models read, so a body's size over four is a fair guess before the provider counts.
pub(super) const BODY_BYTES_PER_TOKEN: u64 = 4;

/// What a request of budgeted key `k` reserves: its body's size in tokens plus the key's
/// output reserve, at the highest prices among the targets it may go to. A key with a money
/// budget may only reach priced models: an unpriced one would spend without a count.
fn reservation(
    ctx: &Ctx,
    k: &GatewayKey,
    resolved: Option<&Resolved<'_>>,
    body_len: usize,
) -> Result<crate::limits::Reservation> {
    let Some(budget) = k.budget else {
        return Ok(crate::limits::Reservation::default());
    };
    let input = (body_len as u64).div_ceil(BODY_BYTES_PER_TOKEN);
    let output = budget.reserve_output_tokens;
    let (mut in_price, mut out_price) = (0u64, 0u64);
    for t in resolved.map_or(&[][..], |r| r.targets()) {
        let provider = ctx
            .config
            .provider(t.provider)
            .map_or("", |p| p.name.as_str());
        match ctx.config.prices.find(provider, &t.model) {
            Some(p) => {
                in_price = in_price.max(p.input);
                out_price = out_price.max(p.output);
            }
            None if budget.nano_usd.is_some() => {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    format!(
                        "key `{}` has a budget in dollars and model `{}` of provider `{provider}` has no price ([[price]])",
                        k.name, t.model
                    ),
                )
                )
            }
            None => {}
        }
    }
    Ok(crate::limits::Reservation {
        tokens: input.saturating_add(output),
        nano_usd: input
            .saturating_mul(in_price)
            .saturating_add(output.saturating_mul(out_price)),
    })
}

/// A `Connection` header may nominate at most [`crate::headers::MAX_CONNECTION_OPTIONS`]
/// header names (which are then never forwarded): more is refused, not guessed at.
fn connection_options(head: &RequestHead) -> Result<()> {
    let nominated = crate::headers::Nominated::parse(
        head.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v),
    );
    if nominated.overflowed() {
        return Err(Error::new(
            ErrorKind::BadRequest,
            format!(
                "the Connection header nominates more than {} header names",
                crate::headers::MAX_CONNECTION_OPTIONS
            ),
        ));
    }
    Ok(())
}

/// `x-ringway-allow-fallbacks: false` opts out; `true` or no header keeps the default.
fn fallbacks_header(head: &RequestHead) -> Result<bool> {
    match head.header(ALLOW_FALLBACKS_HEADER) {
        None => Ok(true),
        Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"true") => Ok(true),
        Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"false") => Ok(false),
        Some(_) => Err(Error::new(
            ErrorKind::BadRequest,
            format!("`{ALLOW_FALLBACKS_HEADER}` must be `true` or `false`"),
        )),
    }
}

/// A client's model id is echoed in `x-ringway-model` and sent upstream: refuse, where it
/// enters, one that is too long or holds a control character (CR, LF, NUL, DEL, C1).
pub(super) fn check_model(model: &str) -> Result<()> {
    crate::format::check_model_id(model)
        .map_err(|p| Error::new(ErrorKind::InvalidBody, format!("`model` {p}")).with_param("model"))
}

/// The fields every request of the client's API needs (see `Format::check_shape`).
fn check_shape(info: &crate::json::RequestInfo, format: Format, op: Op) -> Result<()> {
    match format.check_shape(info, op) {
        None => Ok(()),
        Some((param, message)) => {
            Err(Error::new(ErrorKind::InvalidBody, message).with_param(param))
        }
    }
}

pub(super) fn splice_model(
    body: &Bytes,
    info: &crate::json::RequestInfo,
    model: &str,
) -> Result<OutBody> {
    if info.model == model {
        return Ok(OutBody::from(body.clone()));
    }
    // Kept in parts: an agent's body is written to the provider without a copy.
    OutBody::spliced_string(body, info.model_span.clone(), model)
        .ok_or_else(|| Error::new(ErrorKind::Internal, "model span outside the body"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::MAX_MODEL_ID_BYTES;

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
            let body: serde_json::Value =
                serde_json::from_slice(&Format::OpenAi.error_body(&e)).unwrap();
            assert_eq!(body["error"]["param"], "model");
        }
    }
}
