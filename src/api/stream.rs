//! `GET /api/v1/admin/security-events/stream`: Server-Sent Events of security events and alerts
//! as the projection records them.
//!
//! One poller ([`follow`]) serves every open stream: after each projected batch (the
//! projector's `NOTIFY`, re-checked every second while a stream is open) it reads the security
//! events derived from the log offsets the checkpoints advanced over (`processed_events` knows
//! each event's offset) once, and broadcasts them with their log positions. A stream remembers
//! the checkpoints when it opens and sends only what lies at or beyond them: nothing projected
//! before it opened is sent, and nothing after is missed or sent twice. A stream too slow to
//! keep up with the broadcast ends (`event: end`, `reason: lagged`) rather than skip events.
//!
//! Alerts have no log position of their own and change in place (an alert grows: its count,
//! `last_seen` and evidence change under a stable id), so the poller finds them through the
//! events that made them: the signals (`alert_signals`) of the events the checkpoints advanced
//! over, and the alerts of the same rule × subject whose episode (`first_seen`..`last_seen`)
//! holds such a signal. The signals and the alerts they touch are written in the transaction
//! that advances the checkpoint, so every alert written or grown by a batch is found with that
//! batch, as it stands after it (`event: alert`). An alert carries the latest position per
//! partition of the events behind its change; a stream sends it when any of them lies at or
//! beyond the stream's start. An alert an episode merge replaced (its first event changed, so
//! its id) is not announced as gone: the alert that replaced it is sent.
//!
//! Bounded: at most `api.streams_per_caller` open streams per caller (then 429). A stream ends
//! when its token expires or its session ends (checked every second, as requests are), and when
//! the server shuts down.

use super::alerts::{AlertView, COLUMNS as ALERT_COLUMNS};
use super::security::SecurityEventView;
use super::{Api, Ctx};
use crate::auth::Caller;
use crate::server::{
    AdminUser, Admits, ApiError, AppState, Audit, Authenticator, Budget, Policy, Routes, Target,
};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use sqlx::FromRow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};
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

/// Projected batches the broadcast holds for streams that have not read them yet; a stream
/// further behind ends (`lagged`).
const FEED_BATCHES: usize = 256;
/// How long opening a stream waits for the poller's first look at the checkpoints.
const START_WAIT: Duration = Duration::from_secs(5);

/// A security event with the log position of the event it was derived from.
#[derive(Debug, FromRow)]
struct SecurityItem {
    partition: i32,
    log_offset: i64,
    #[sqlx(flatten)]
    event: SecurityEventView,
}

/// An alert written or grown by an advance, with the latest position, per partition, of the
/// events of the advance behind it.
#[derive(Debug, FromRow)]
struct AlertItem {
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    #[sqlx(flatten)]
    alert: AlertView,
}

/// What a stream sends.
#[derive(Debug, Clone)]
enum Payload {
    SecurityEvent(SecurityEventView),
    Alert(AlertView),
}

/// A payload with the log positions it stems from (one for a security event).
#[derive(Debug)]
struct Item {
    positions: Vec<(i32, i64)>,
    payload: Payload,
}

/// What every stream shares: the poller's broadcast and the open streams per caller.
pub(crate) struct Streams {
    feed: broadcast::Sender<Arc<Vec<Item>>>,
    /// Set once the poller has read the checkpoints (it broadcasts from there on).
    started: watch::Sender<bool>,
    open: Mutex<HashMap<String, usize>>,
    per_caller: usize,
}

impl Streams {
    pub(crate) fn new(per_caller: usize) -> Streams {
        Streams {
            feed: broadcast::channel(FEED_BATCHES).0,
            started: watch::channel(false).0,
            open: Mutex::new(HashMap::new()),
            per_caller,
        }
    }
}

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
/// order, then the alerts written or grown by those events (see the module's doc).
async fn between(api: &Api, from: &Positions, to: &Positions) -> Result<Vec<Item>, sqlx::Error> {
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
    let events: Vec<SecurityItem> = sqlx::query_as(
        "SELECT pe.partition, pe.\"offset\" AS log_offset,
                e.id, e.user_id, e.event_type, e.severity, e.description, e.ip, e.user_agent,
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
    .await?;
    let alerts: Vec<AlertItem> = sqlx::query_as(&format!(
        "WITH batch AS (
             SELECT pe.partition, pe.\"offset\", pe.event_id
             FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS w(p, lo, hi)
             JOIN processed_events pe
               ON pe.topic = $1 AND pe.partition = w.p AND pe.\"offset\" >= w.lo AND pe.\"offset\" < w.hi
         ), touched AS (
             SELECT t.id, array_agg(t.partition) AS partitions, array_agg(t.\"offset\") AS offsets
             FROM (SELECT al.id, b.partition, max(b.\"offset\") AS \"offset\"
                   FROM batch b
                   JOIN alert_signals s ON s.event_id = b.event_id
                   JOIN alerts al ON al.rule = s.rule AND al.subject = s.subject
                                 AND s.at BETWEEN al.first_seen AND al.last_seen
                   GROUP BY al.id, b.partition) t
             GROUP BY t.id
         )
         SELECT t.partitions, t.offsets, {ALERT_COLUMNS}
         FROM touched t JOIN alerts_reviewed a ON a.id = t.id
         ORDER BY a.last_seen, a.id"
    ))
    .bind(&api.topic)
    .bind(&parts)
    .bind(&lows)
    .bind(&highs)
    .fetch_all(api.pool())
    .await?;
    let events = events.into_iter().map(|i| Item {
        positions: vec![(i.partition, i.log_offset)],
        payload: Payload::SecurityEvent(i.event),
    });
    let alerts = alerts.into_iter().map(|i| Item {
        positions: i.partitions.into_iter().zip(i.offsets).collect(),
        payload: Payload::Alert(i.alert),
    });
    Ok(events.chain(alerts).collect())
}

/// The one poller: follows the checkpoints for as long as the [`Api`] lives and broadcasts
/// the security events of each advance, read once for every open stream. With no stream open
/// it only follows the checkpoints, on projected batches alone.
pub(crate) async fn follow(api: Weak<Api>) {
    let Some(mut projected) = api.upgrade().map(|a| a.projected()) else {
        return;
    };
    let mut at: Option<Positions> = None;
    loop {
        let listening = {
            let Some(api) = api.upgrade() else { return };
            if api.is_closing() {
                return;
            }
            advance(&api, &mut at).await;
            api.streams.feed.receiver_count() > 0
        };
        // A projected batch; while streams listen, also a re-check after a second (a lost
        // notification).
        let woke = if listening {
            match tokio::time::timeout(Duration::from_secs(1), projected.changed()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        } else {
            projected.changed().await
        };
        if woke.is_err() {
            return;
        }
        projected.borrow_and_update();
    }
}

/// One look at the checkpoints: broadcasts what lies between `at` and them when a stream
/// listens (the count is read after the checkpoints, so a stream that opened before they were
/// read gets the batch), then moves `at`. On a database error `at` stays, to be retried.
async fn advance(api: &Api, at: &mut Option<Positions>) {
    let now = match positions(api).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "stream poller: reading checkpoints");
            return;
        }
    };
    match at.as_ref() {
        Some(prev) if *prev == now => return,
        Some(prev) if api.streams.feed.receiver_count() > 0 => match read(api, prev, &now).await {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                let _ = api.streams.feed.send(Arc::new(found));
            }
            Err(e) => {
                tracing::warn!(error = %e, "stream poller: reading security events; retrying");
                return;
            }
        },
        _ => {}
    }
    *at = Some(now);
    api.streams.started.send_replace(true);
}

/// [`between`], counted per topic (`authtrail_api_stream_feed_reads_total`): one read per
/// projected advance, however many streams are open.
async fn read(api: &Api, from: &Positions, to: &Positions) -> Result<Vec<Item>, sqlx::Error> {
    metrics::counter!("authtrail_api_stream_feed_reads_total", "topic" => api.topic.clone())
        .increment(1);
    between(api, from, to).await
}

/// One open stream of a caller: counted per caller and in `authtrail_api_streams` until dropped
/// (the client went away or the stream ended).
struct Slot {
    api: Arc<Api>,
    caller: String,
}

impl Slot {
    fn take(api: &Arc<Api>, caller: &str) -> Result<Slot, ApiError> {
        let streams = &api.streams;
        let mut open = streams.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(caller.to_owned()).or_insert(0);
        if *n >= streams.per_caller {
            tracing::info!(subject = ?caller, limit = streams.per_caller, "stream refused: too many open");
            return Err(ApiError::TooManyStreams {
                limit: streams.per_caller,
            });
        }
        *n += 1;
        metrics::gauge!("authtrail_api_streams").increment(1.0);
        Ok(Slot {
            api: api.clone(),
            caller: caller.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("authtrail_api_streams").decrement(1.0);
        let mut open = self
            .api
            .streams
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// Why a stream ended by itself (the `reason` of its last event, `end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    TokenExpired,
    SessionEnded,
    Lagged,
}

impl End {
    fn event(self) -> Event {
        let reason = match self {
            End::TokenExpired => "token_expired",
            End::SessionEnded => "session_ended",
            End::Lagged => "lagged",
        };
        Event::default()
            .event("end")
            .data(format!("{{\"reason\":\"{reason}\"}}"))
    }
}

struct Cursor {
    slot: Slot,
    auth: Authenticator,
    caller: Caller,
    /// The checkpoints when the stream opened: only events at or beyond them are sent.
    from: Positions,
    feed: broadcast::Receiver<Arc<Vec<Item>>>,
    pending: VecDeque<Payload>,
    /// When the token expires.
    expires: Option<tokio::time::Instant>,
    /// Every second: the server closing? the session ended?
    tick: tokio::time::Interval,
    ended: bool,
}

fn sse(p: &Payload) -> Event {
    let e = Event::default();
    match p {
        Payload::SecurityEvent(v) => e.event("security_event").id(v.id.to_string()).json_data(v),
        Payload::Alert(a) => e.event("alert").id(a.id.to_string()).json_data(a),
    }
    .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// A one-second interval whose first tick is a second away (a late tick is not made up).
fn every_second() -> tokio::time::Interval {
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The instant a JWT `exp` (Unix seconds) falls at.
fn deadline(exp: u64) -> tokio::time::Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_sub(now);
    tokio::time::Instant::now() + left
}

impl Cursor {
    /// The next thing to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(sse(&e));
            }
            let expires = self.expires;
            let expiry = async move {
                match expires {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = self.feed.recv() => match got {
                    Ok(batch) => self.take(&batch),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(behind = n, "stream: too slow for the feed; ending it");
                        return Some(self.end(End::Lagged));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = expiry => return Some(self.end(End::TokenExpired)),
                _ = self.tick.tick() => {
                    if self.slot.api.is_closing() {
                        // The server is shutting down.
                        return None;
                    }
                    // A database that does not answer ends no stream; a refused session does.
                    if let Err(ApiError::Unauthorized) = self.auth.check_session(&self.caller).await {
                        return Some(self.end(End::SessionEnded));
                    }
                }
            }
        }
    }

    /// Queues the batch's security events at or beyond the stream's start, and its alerts
    /// with a change at or beyond it.
    fn take(&mut self, batch: &[Item]) {
        let from = &self.from;
        self.pending.extend(
            batch
                .iter()
                .filter(|i| {
                    i.positions
                        .iter()
                        .any(|(p, o)| *o >= from.get(p).copied().unwrap_or(0))
                })
                .map(|i| i.payload.clone()),
        );
    }

    fn end(&mut self, why: End) -> Event {
        tracing::info!(subject = ?self.caller.subject, reason = ?why, "stream ended");
        self.ended = true;
        why.event()
    }
}

/// Newly projected security events as Server-Sent Events (`event: security_event`, `id` = the
/// security event id, `data` = the event as in the list) and alerts as detection writes or grows
/// them (`event: alert`, `id` = the alert id, `data` = the alert as in `/api/v1/admin/alerts`)
/// (admin). At most
/// `api.streams_per_caller` open per caller. The stream ends with `event: end` (`data`
/// `{"reason": "token_expired" | "session_ended" | "lagged"}`) when the token expires, its
/// session ends, or it fell too far behind.
#[utoipa::path(get, path = "/api/v1/admin/security-events/stream", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A `text/event-stream` of security events (and `alert` events), until the token expires or its session ends", content_type = "text/event-stream", body = SecurityEventView),
    ))]
async fn stream(
    Ctx(api): Ctx,
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = Slot::take(&api, &admin.subject)?;
    let mut started = api.streams.started.subscribe();
    match tokio::time::timeout(START_WAIT, started.wait_for(|s| *s)).await {
        Ok(Ok(_)) => {}
        _ => {
            return Err(ApiError::Busy {
                detail: "the event feed has not started",
                retry_after: 1,
            })
        }
    }
    // Subscribed before the checkpoints are read: every batch beyond them reaches the stream.
    let feed = api.streams.feed.subscribe();
    let from = positions(&api).await?;
    let keepalive = Duration::from_secs(api.config().stream_keepalive_secs);
    let cursor = Cursor {
        slot,
        auth: state.authenticator().clone(),
        expires: admin.expires_at.map(deadline),
        caller: admin,
        from,
        feed,
        pending: VecDeque::new(),
        tick: every_second(),
        ended: false,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        let e = c.next().await?;
        Some((Ok(e), c))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(keepalive)))
}
