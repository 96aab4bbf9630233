//! A request body translated for a target: the memory its translation may take is charged to
//! the worker's budget for bodies held whole before any is taken (413 when no budget could
//! take it, 503 when this worker's is spent now), and a large body is translated on a helper
//! thread, so that neither the worker's memory nor its other requests depend on one body.

use std::borrow::Cow;

use bytes::Bytes;

use super::budget::{self, Charge};
use super::ctx::Ctx;
use super::state::Op;
use crate::error::{Error, ErrorKind, Result};
use crate::json::{with_checked, with_notes, with_scope, Checked, StringSpans};
use crate::rt::pool::{self, PoolError};
use crate::translate::{Options, Pair, RequestMeta, Room, Shared, TranslateError};
use crate::upstream::OutBody;

/// Bodies up to this size are read and translated on the worker (about half a millisecond for
/// both at 512 KiB in a release build: `cargo bench --bench agent`); larger ones on a helper
/// thread, so that a 30 MB body, whose JSON alone takes 140 ms to read, never holds up the
/// worker's other requests. Agent turns of a few hundred KB stay here: a trip to a helper
/// costs a socket pair and two thread handoffs, its queue is shared by the whole process (200
/// concurrent 300 KB turns filled it and got 503s), and memory freed on another thread's heap
/// comes back later.
pub const INLINE_TRANSLATION_MAX_BYTES: usize = 512 * 1024;

/// The translated body for `model` at a provider that speaks `pair.provider`, its meta, and
/// the charge its bytes hold against the worker's budget while it is kept for sending. With
/// `lend`, its long strings are lent from `body` (which its parts then keep alive): only for
/// the client's body, which is held (and charged) anyway, never for a copy made of it. With
/// `utf8` (admission's check of the client's body), the reader takes that body as text
/// without checking it again; any other body is checked. What the translation keeps of the
/// conversation for the next turn is kept under `scope` (the key's).
pub(super) async fn request<'c>(
    ctx: &'c Ctx,
    (body, strings, lend, utf8): (&Bytes, &StringSpans, bool, Option<&Checked>),
    scope: u64,
    op: Op,
    model: &str,
    pair: Pair,
    opts: Cow<'_, Options>,
) -> Result<(OutBody, RequestMeta, Charge<'c>)> {
    let bound = crate::translate::request_memory_bound(body.len());
    let limit = ctx.buffers.limit();
    if bound > limit {
        return Err(too_large(body.len(), bound, limit));
    }
    // Charged before the first byte is reserved: many large translations on one worker add
    // up to its budget and no further.
    let mut charge = ctx.buffers.charge();
    if !charge.resize(bound) {
        return Err(budget::exhausted(limit, "bodies"));
    }
    let translated = if body.len() <= INLINE_TRANSLATION_MAX_BYTES {
        with_scope(scope, || {
            translate((body, strings, utf8), op, model, pair, &opts, (bound, lend))
        })
    } else {
        let (body, model, opts) = (body.clone(), model.to_owned(), opts.into_owned());
        let (strings, utf8) = (strings.clone(), utf8.cloned());
        pool::run(move || {
            let admitted = (&body[..], &strings, utf8.as_ref());
            with_scope(scope, || {
                translate(admitted, op, &model, pair, &opts, (bound, lend))
            })
        })
        .await
        .map_err(pool_error)?
    };
    let (shared, meta) = translated.map_err(|e| match e.is_over_budget() {
        true => too_large(body.len(), bound, limit),
        false => Error::from(e),
    })?;
    // The translation's scratch is gone: only the body kept for sending stays charged
    // (shrinking always succeeds).
    charge.resize(shared.held);
    // The parts: its own bytes and the spans of this body it lent.
    let parts = shared.parts(body).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            "a translated body was joined with another source",
        )
    })?;
    Ok((OutBody::pieces(parts), meta, charge))
}

/// The error for work the helper threads could not take (503 when their queue is full).
pub(super) fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Busy => Error::new(
            ErrorKind::Busy,
            "the gateway is reading or translating too many large requests at once; retry shortly",
        ),
        PoolError::Unavailable(why) => Error::new(
            ErrorKind::Internal,
            format!("the request could not be read or translated: {why}"),
        ),
    }
}

/// One translation, within `room` bytes of buffers, with what admission learnt of the body:
/// the inspection's notes of where long strings end spare it a second scan, and the check of
/// its UTF-8 a second check (each used only while it reads this very body: see
/// `json::with_notes`, `json::with_checked`).
fn translate(
    (body, strings, utf8): (&[u8], &StringSpans, Option<&Checked>),
    op: Op,
    model: &str,
    pair: Pair,
    opts: &Options,
    budget: (usize, bool),
) -> std::result::Result<(Shared, RequestMeta), TranslateError> {
    with_checked(utf8, || {
        with_notes(body, strings, || {
            translate_noted(body, op, model, pair, opts, budget)
        })
    })
}

/// [`translate`] once the notes and check are known to the thread.
fn translate_noted(
    body: &[u8],
    op: Op,
    model: &str,
    pair: Pair,
    opts: &Options,
    (room, lend): (usize, bool),
) -> std::result::Result<(Shared, RequestMeta), TranslateError> {
    let room = Room::new(room);
    if op == Op::Compact {
        // The summary is asked of the provider in its own dialect.
        return crate::translate::responses::compact_request_within(
            body,
            model,
            pair.provider,
            opts,
            &room,
        )
        .map(|(b, m)| (Shared::of_vec(b), m));
    }
    if lend {
        pair.request_shared(body, model, opts, &room)
    } else {
        crate::translate::without_lending(|| pair.request_shared(body, model, opts, &room))
    }
}

/// The 413 for a body whose translation no budget of this size could hold.
fn too_large(len: usize, bound: usize, limit: usize) -> Error {
    Error::new(
        ErrorKind::BodyTooLarge,
        format!(
            "this request ({len} bytes) is too large to translate for its target: its translation may hold up to {bound} bytes, more than server.max_buffered_bytes = {limit} per worker allows; nothing was sent"
        ),
    )
}
