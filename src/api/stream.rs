//! `GET /api/v1/admin/security-events/stream`: Server-Sent Events of security events as the
//! projection records them.
//!
//! Exact and in log order: the stream remembers the projection's checkpoint per partition when
//! it opens; after each projected batch (the projector's `NOTIFY`, re-checked every second) it
//! reads the security events derived from the log offsets the checkpoints advanced over
//! (`processed_events` knows each event's offset). Nothing projected before the stream opened is
//! sent, and nothing after is missed or sent twice.

use super::security::SecurityEventView;
use super::{Api, Ctx};
use crate::server::{AdminUser, Admits, ApiError, Audit, Budget, Policy, Routes, Target};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Policy::new(
            Admits::Admin,
            Budget::Read,
            Audit::Read("security_events.stream", Target::None),
        ),
        routes!(stream),
    )
}

/// Partition → next offset, as the checkpoints say.
type Positions = BTreeMap<i32, i64>;

async fn positions(api: &Api) -> Result<Positions, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1 AND topic = $2",
    )
    .bind(&api.projection)
    .bind(&api.topic)
    .fetch_all(api.pool())
    .await?;
    Ok(rows.into_iter().collect())
}

/// The security events derived from the log between `from` and `to` (per partition), in log
/// order.
async fn between(
    api: &Api,
    from: &Positions,
    to: &Positions,
) -> Result<Vec<SecurityEventView>, sqlx::Error> {
    let mut parts = Vec::new();
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for (p, hi) in to {
        let lo = from.get(p).copied().unwrap_or(0);
        if *hi > lo {
            parts.push(*p);
            lows.push(lo);
            highs.push(*hi);
        }
    }
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT e.id, e.user_id, e.event_type, e.severity, e.description, e.ip, e.user_agent,
                e.device_name, e.location, e.metadata, e.source_event_id, e.occurred_at,
                e.reviewed, e.reviewed_by, e.reviewed_at
         FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS w(p, lo, hi)
         JOIN processed_events pe
           ON pe.topic = $1 AND pe.partition = w.p AND pe.\"offset\" >= w.lo AND pe.\"offset\" < w.hi
         JOIN security_events_reviewed e ON e.source_event_id = pe.event_id
         ORDER BY pe.partition, pe.\"offset\", e.id",
    )
    .bind(&api.topic)
    .bind(&parts)
    .bind(&lows)
    .bind(&highs)
    .fetch_all(api.pool())
    .await
}

/// Counts open streams; decremented when the client goes away (the stream is dropped).
struct Open;

impl Open {
    fn new() -> Open {
        metrics::gauge!("authtrail_api_streams").increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("authtrail_api_streams").decrement(1.0);
    }
}

struct Cursor {
    _open: Open,
    api: Arc<Api>,
    at: Positions,
    projected: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<SecurityEventView>,
}

fn sse(e: &SecurityEventView) -> Event {
    Event::default()
        .event("security_event")
        .id(e.id.to_string())
        .json_data(e)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// Newly projected security events as Server-Sent Events (`event: security_event`, `id` = the
/// security event id, `data` = the event as in the list) (admin).
#[utoipa::path(get, path = "/api/v1/admin/security-events/stream", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream` of security events", content_type = "text/event-stream", body = SecurityEventView),
    ))]
async fn stream(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut projected = api.projected();
    projected.borrow_and_update();
    let at = positions(&api).await?;
    let keepalive = Duration::from_secs(api.config().stream_keepalive_secs);
    let state = Cursor {
        _open: Open::new(),
        api,
        at,
        projected,
        pending: VecDeque::new(),
    };
    let events = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok(sse(&e)), st));
            }
            // A projected batch, or a re-check after a second (a lost notification).
            let woke = tokio::time::timeout(Duration::from_secs(1), st.projected.changed()).await;
            if matches!(woke, Ok(Err(_))) || st.api.is_closing() {
                // The server is shutting down.
                return None;
            }
            st.projected.borrow_and_update();
            let now = match positions(&st.api).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "stream: reading checkpoints");
                    continue;
                }
            };
            if now == st.at {
                continue;
            }
            match between(&st.api, &st.at, &now).await {
                Ok(found) => {
                    st.pending.extend(found);
                    st.at = now;
                }
                Err(e) => tracing::warn!(error = %e, "stream: reading security events; retrying"),
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(keepalive)))
}
