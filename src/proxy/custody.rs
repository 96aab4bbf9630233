//! `GET /v1/custody/{request_id}` and `GET /v1/usage`: the custody store's lookups. The
//! store's reader thread answers them (see `crate::custody`), never the writer; the worker only
//! polls for the answer with its runtime's timer, so a slow database never blocks a worker.
//!
//! Who sees what: a record goes to the key that made the request and to admin keys; any other
//! caller gets the same 404 as for an id that does not exist (no existence leak). Usage sums
//! cover every key for an admin key, only the caller's own rows otherwise. A gateway without
//! keys has no callers to tell apart: everyone reaching it sees everything, as with its other
//! endpoints (bind it to loopback, as the embedded default does, or configure keys).

use std::time::{Duration, SystemTime};

use super::ctx::Ctx;
use super::endpoint;
use super::state::Exchange;
use crate::calendar::DAY_MS;
use crate::config::GatewayKey;
use crate::custody::store::{Scope, UsageQuery};
use crate::custody::{Pending, LOOKUP_WAIT};
use crate::error::{Error, ErrorKind};

/// Longest request id looked up (ours are at most
/// [`MAX_REQUEST_ID_BYTES`](super::ctx::MAX_REQUEST_ID_BYTES); a longer one cannot exist).
pub(super) const MAX_ID_BYTES: usize = 128;
const _: () = assert!(super::ctx::MAX_REQUEST_ID_BYTES <= MAX_ID_BYTES);
/// Most rows one usage answer holds; more are cut and `truncated` says so.
pub const MAX_USAGE_ROWS: usize = 10_000;
/// The range `GET /v1/usage` sums when the query names no `from`.
const DEFAULT_RANGE: i64 = 30 * DAY_MS;

/// What an admin answer is: status, content type, body.
type Answered = (u16, &'static str, Vec<u8>);

fn not_found() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "no custody record with this request id",
    )
}

/// May `key` read a record made by the key named `owner`?
fn may_see(key: Option<&GatewayKey>, owner: Option<&str>) -> bool {
    match key {
        // No keys configured: no callers to tell apart.
        None => true,
        Some(k) => k.admin || owner == Some(k.name.as_str()),
    }
}

/// Wait for the reader's answer without blocking the worker. Giving up drops `pending`, which
/// tells the reader not to run it.
async fn wait<T>(pending: Option<Pending<T>>) -> Result<T, Error> {
    let Some(pending) = pending else {
        return Err(Error::new(
            ErrorKind::Busy,
            "the custody store is busy; retry shortly",
        ));
    };
    let Some(answer) = super::lookup::answer(pending, LOOKUP_WAIT).await else {
        return Err(Error::new(
            ErrorKind::Busy,
            "the custody store did not answer in time; retry shortly",
        ));
    };
    answer.map_err(|e| {
        if crate::cluster::postgres::unreachable() {
            // Said once in the log by the thread that saw it go; a retry may find it back.
            return Error::new(
                ErrorKind::Busy,
                "the custody store (PostgreSQL) is unreachable; retry shortly",
            );
        }
        crate::log::error(format_args!("custody lookup failed: {e}"));
        Error::new(ErrorKind::Internal, "the custody store failed; see the log")
    })
}

fn off() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "the custody store is off (see `[custody]` in the config)",
    )
}

/// `GET /v1/custody/{request_id}`.
pub(super) async fn record(
    _ctx: &Ctx,
    ex: &mut Exchange<'_>,
    key: Option<&GatewayKey>,
) -> Result<Answered, Error> {
    if !crate::custody::enabled() {
        return Err(off());
    }
    let id = ex
        .head
        .path()
        .strip_prefix(endpoint::CUSTODY_PREFIX)
        .and_then(endpoint::percent_decode)
        .unwrap_or_default();
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(not_found());
    }
    match wait(crate::custody::get(&id)).await? {
        Some(stored) if may_see(key, stored.key.as_deref()) => {
            Ok((200, "application/json", stored.json.into_bytes()))
        }
        _ => Err(not_found()),
    }
}

/// `GET /v1/usage?from=…&to=…`.
pub(super) async fn usage(
    _ctx: &Ctx,
    ex: &mut Exchange<'_>,
    key: Option<&GatewayKey>,
) -> Result<Answered, Error> {
    if !crate::custody::enabled() {
        return Err(off());
    }
    let now = crate::calendar::unix_millis(SystemTime::now());
    let (from_ms, to_ms) = range(ex.head.query(), now)?;
    let scope = match key {
        Some(k) if !k.admin => Scope::Key(k.name.clone()),
        _ => Scope::All,
    };
    let rows = wait(crate::custody::usage(UsageQuery {
        from_ms,
        to_ms,
        scope,
        limit: MAX_USAGE_ROWS,
    }))
    .await?;
    let stamp = |ms: i64| {
        let mut out = Vec::with_capacity(24);
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        crate::calendar::rfc3339_millis(&mut out, t);
        String::from_utf8(out).unwrap_or_default()
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "object": "usage",
        "from": stamp(from_ms),
        "to": stamp(to_ms),
        "data": rows.rows,
        "truncated": rows.truncated,
    }))
    .unwrap_or_default();
    Ok((200, "application/json", body))
}

/// `[from, to)` in Unix milliseconds from the query. `to` defaults to `now`, `from` to
/// [`DEFAULT_RANGE`] before `to`. A bare day as `to` includes that whole day.
fn range(query: Option<&str>, now: i64) -> Result<(i64, i64), Error> {
    let mut from = None;
    let mut to = None;
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        let parsed = endpoint::percent_decode(value)
            .and_then(|v| crate::calendar::parse_instant(&v))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::BadRequest,
                    format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD day"),
                )
                .with_param(if name == "from" { "from" } else { "to" })
            })?;
        *slot = Some(parsed);
    }
    let to_ms = match to {
        Some((ms, true)) => ms.saturating_add(DAY_MS),
        Some((ms, false)) => ms,
        None => now,
    };
    let from_ms = from.map_or(to_ms.saturating_sub(DEFAULT_RANGE), |(ms, _)| ms);
    if from_ms >= to_ms {
        return Err(
            Error::new(ErrorKind::BadRequest, "`from` must be before `to`").with_param("from"),
        );
    }
    Ok((from_ms, to_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_ranges() {
        let day = 20_000 * DAY_MS;
        let d = crate::calendar::day_of(day);
        assert_eq!(
            range(Some(&format!("from={d}&to={d}")), 0).unwrap(),
            (day, day + DAY_MS)
        );
        assert_eq!(
            range(Some(&format!("from={d}T01:00:00%2B01:00&x=1")), day + 5).unwrap(),
            (day, day + 5)
        );
        assert_eq!(range(None, day).unwrap(), (day - DEFAULT_RANGE, day));
        assert!(range(Some("from=yesterday"), day).is_err());
        assert!(range(Some(&format!("from={d}&to={d}T00:00:00Z")), day).is_err());
    }

    #[test]
    fn who_may_see_a_record() {
        assert!(may_see(None, Some("a")));
        assert!(may_see(None, None));
    }
}
