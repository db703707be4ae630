//! `POST /api/v1/sessions/introspect`: the auth service's `validateSession` (RFC 7662 style).
//!
//! One primary-key lookup and the status function: `{"active": true, ...}` for a session active
//! now, and exactly `{"active": false}` for anything else — unknown, expired, idle, revoked,
//! logged out — so the answer reveals nothing about sessions that do not grant access.

use super::Ctx;
use crate::server::extract::Json as JsonBody;
use crate::server::problem::ProblemDoc;
use crate::server::ApiError;
use crate::server::{Admits, Audit, Budget, Introspector, Policy, Routes};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Policy::new(Admits::Introspect, Budget::Introspect, Audit::No),
        routes!(introspect),
    )
}

/// The session to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IntrospectRequest {
    session_id: String,
}

/// The answer: exactly `{"active": false}`, or `"active": true` with the session's facts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum Introspection {
    Active(Active),
    Inactive(Inactive),
}

/// An active session.
#[derive(Debug, Serialize, ToSchema)]
struct Active {
    /// Always `true`.
    active: bool,
    #[serde(flatten)]
    session: ActiveSession,
}

/// Anything else — unknown, expired, idle, revoked, logged out — says nothing more.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Inactive {
    /// Always `false`.
    active: bool,
}

const INACTIVE: Introspection = Introspection::Inactive(Inactive { active: false });

/// What the auth service needs to know about an active session.
#[derive(Debug, Serialize, FromRow, ToSchema)]
struct ActiveSession {
    session_id: String,
    /// The user (`sub`).
    user: String,
    /// When the session stops being active without further events: the earliest of the
    /// credentials' expiry, the absolute and the idle expiry.
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    login_method: Option<String>,
    roles: Vec<String>,
    trusted_device: bool,
    suspicious: bool,
}

/// Check whether a session is active now (role `service`).
#[utoipa::path(post, path = "/api/v1/sessions/introspect", tag = "service",
    request_body = IntrospectRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "`{\"active\": false}` exactly, or the active session", body = Introspection),
        (status = 400, description = "The body is not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Bad body", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn introspect(
    Ctx(api): Ctx,
    Introspector(_caller): Introspector,
    JsonBody(req): JsonBody<IntrospectRequest>,
) -> Result<Json<Introspection>, ApiError> {
    if req.session_id.is_empty() || req.session_id.len() > authtrail_events::data::MAX_ID_LEN {
        return Ok(Json(INACTIVE));
    }
    let row: Option<ActiveSession> = sqlx::query_as(
        "SELECT session_id, user_id AS user,
                least(expires_at, absolute_expires_at, idle_expires_at) AS expires_at,
                created_at, last_activity_at, login_method, roles, trusted_device, suspicious
         FROM sessions s
         WHERE session_id = $1 AND session_status(s, now()) = 'active'",
    )
    .bind(&req.session_id)
    .fetch_optional(api.pool())
    .await?;
    metrics::counter!("authtrail_api_introspections_total", "active" => if row.is_some() { "true" } else { "false" })
        .increment(1);
    Ok(Json(match row {
        Some(session) => Introspection::Active(Active {
            active: true,
            session,
        }),
        None => INACTIVE,
    }))
}
