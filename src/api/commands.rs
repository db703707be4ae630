//! Commands go to the log, not the tables: append the event(s), answer where they landed, and —
//! with `?wait=true` — wait until the projection's checkpoint has passed them (read-your-writes).
//!
//! Waiting is exact: the projector writes `projection_checkpoints.next_offset` in the same
//! transaction as the rows a batch produced, so `next_offset > offset` of every appended event
//! means their effects are visible. Wake-ups come from the projector's `NOTIFY`; the waiter
//! re-checks at least every second in case a notification was lost.

use super::Api;
use crate::kafka::Appended;
use crate::server::audit::{check_contract, event, non_empty};
use crate::server::ApiError;
use authtrail_events::data::{OpaqueId, SecurityEventReviewed, SessionRevoked};
use authtrail_events::kind::RevokeScope;
use authtrail_events::Event;
use authtrail_events::EventData;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `?wait=true`: answer only once the projection shows the command's effect.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitParam {
    /// Wait (bounded by `api.wait_timeout_ms`) until the projection has applied the appended
    /// event: 200 then, 504 on timeout. Without it the answer is 202 at once.
    #[serde(default)]
    pub(crate) wait: bool,
}

/// Where a command's event landed in the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct CommandAccepted {
    /// The appended event's id.
    event_id: Uuid,
    event_type: String,
    partition: i32,
    offset: i64,
    /// True when the answer waited for the projection (`?wait=true`) and it has applied the event.
    projected: bool,
}

impl IntoResponse for CommandAccepted {
    fn into_response(self) -> Response {
        let status = if self.projected {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        (status, axum::Json(self)).into_response()
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "api: appending to the log failed");
    ApiError::LogUnavailable
}

/// A `session.revoked` event about `user`'s sessions.
pub(crate) fn revoke(
    user: &str,
    scope: RevokeScope,
    session_id: Option<&str>,
    reason: &str,
    by: &str,
) -> Result<Event, ApiError> {
    let session_id = session_id
        .map(|s| OpaqueId::try_from(s.to_owned()).map_err(|e| ApiError::param("session_id", e)))
        .transpose()?;
    Ok(event(
        user,
        EventData::SessionRevoked(SessionRevoked {
            scope,
            session_id,
            reason: non_empty(reason),
            revoked_by: non_empty(by),
        }),
    ))
}

/// A `security_event.reviewed` event.
pub(crate) fn reviewed(subject: &str, security_event_id: Uuid, reviewer: &str) -> Event {
    event(
        subject,
        EventData::SecurityEventReviewed(SecurityEventReviewed {
            security_event_id,
            reviewer: non_empty(reviewer),
        }),
    )
}

impl Api {
    /// A review of `target` (a security event or an alert) by the audited caller, and its
    /// `admin.action` record with `details`: both keyed by the target's user (else the
    /// reviewer), so that the first review in the log stands.
    pub(crate) async fn review(
        &self,
        audited: &crate::server::audit::Audited,
        user: Option<&str>,
        target: Uuid,
        details: serde_json::Value,
        wait: bool,
    ) -> Result<CommandAccepted, ApiError> {
        let reviewer = &audited.caller.subject;
        let subject = user.unwrap_or(reviewer);
        let reviewed = reviewed(subject, target, reviewer);
        let audit = audited.event(Some(subject), details);
        self.command(vec![reviewed, audit], wait).await
    }

    /// Appends `events` in order (one `subject` keeps them in one partition, in order); the
    /// answer names the first. With `wait`, waits for the projection to pass all of them.
    pub(crate) async fn command(
        &self,
        events: Vec<Event>,
        wait: bool,
    ) -> Result<CommandAccepted, ApiError> {
        for e in &events {
            check_contract(e)?;
        }
        let mut events = events;
        if let (true, Some(keys)) = (self.encrypt, &self.keys) {
            keys.seal_all(&mut events).await.map_err(unavailable)?;
        }
        let first_type = events[0].event_type().as_str().to_owned();
        let appended = self
            .publisher
            .publish_all(&events)
            .await
            .map_err(unavailable)?;
        let head = appended[0];
        tracing::info!(event_id = %head.id, event_type = %first_type, partition = head.partition, offset = head.offset, "api: command appended");
        let mut accepted = CommandAccepted {
            event_id: head.id,
            event_type: first_type,
            partition: head.partition,
            offset: head.offset,
            projected: false,
        };
        if wait {
            let timeout = Duration::from_millis(self.config.wait_timeout_ms);
            if self.wait_projected(&appended, timeout).await? {
                accepted.projected = true;
            } else {
                metrics::counter!("authtrail_api_wait_timeouts_total").increment(1);
                return Err(ApiError::ProjectionTimeout {
                    timeout_ms: timeout.as_millis(),
                    event_id: head.id.to_string(),
                    partition: head.partition,
                    offset: head.offset,
                });
            }
        }
        Ok(accepted)
    }

    /// Whether the projection has passed every appended position.
    async fn projected_past(&self, appended: &[Appended]) -> Result<bool, ApiError> {
        let partitions: Vec<i32> = appended.iter().map(|a| a.partition).collect();
        let offsets: Vec<i64> = appended.iter().map(|a| a.offset).collect();
        let passed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM unnest($3::int[], $4::bigint[]) AS w(p, o)
             JOIN projection_checkpoints c
               ON c.projection = $1 AND c.topic = $2 AND c.partition = w.p AND c.next_offset > w.o",
        )
        .bind(&self.projection)
        .bind(&self.topic)
        .bind(&partitions)
        .bind(&offsets)
        .fetch_one(&self.pool)
        .await?;
        Ok(passed as usize == appended.len())
    }

    /// Waits until the projection has passed every appended position; false on timeout.
    async fn wait_projected(
        &self,
        appended: &[Appended],
        timeout: Duration,
    ) -> Result<bool, ApiError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut projected = self.projected();
        loop {
            projected.borrow_and_update();
            if self.projected_past(appended).await? {
                metrics::histogram!("authtrail_api_wait_seconds")
                    .record(started.elapsed().as_secs_f64());
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let _ =
                tokio::time::timeout(left.min(Duration::from_secs(1)), projected.changed()).await;
        }
    }
}
