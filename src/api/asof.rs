//! `GET /api/v1/admin/as-of/{time}/users/{id}/sessions` (admin): one user's sessions and trusted
//! devices as they were at `time`, folded from the log on demand
//! ([`crate::replay::asof::user_sessions_at`]); the live tables are not read.

use super::user_id;
use crate::replay::asof::user_sessions_at;
pub(crate) use crate::replay::asof::AsOfCache;
use crate::server::{AdminUser, Admits, ApiError, AppState, Audit, Budget, Policy, Routes, Target};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Policy::new(
            Admits::Admin,
            Budget::Read,
            Audit::Read("sessions.as_of", Target::PathId),
        ),
        routes!(user_sessions),
    )
}

/// One user's sessions and trusted devices as they were at `time` (admin), folded from the log.
#[utoipa::path(get, path = "/api/v1/admin/as-of/{time}/users/{id}/sessions", tag = "admin",
    params(
        ("time" = DateTime<Utc>, Path, description = "The instant (RFC 3339)"),
        ("id" = String, Path, description = "User id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's sessions and devices at `time`, and where the log was read up to", body = serde_json::Value),
    ))]
async fn user_sessions(
    State(state): State<AppState>,
    Extension(cache): Extension<AsOfCache>,
    AdminUser(caller): AdminUser,
    Path((time, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let time: DateTime<Utc> = time
        .parse()
        .map_err(|e| ApiError::param("time", format!("{time:?} is not an RFC 3339 time: {e}")))?;
    let id = user_id("id", &id)?;
    tracing::info!(admin = %caller.subject, user = %id, %time, "as-of query");
    let config = state.config();
    match user_sessions_at(&config.kafka, &config.projector.rules(), &cache, id, time).await {
        Ok(answer) => Ok(Json(
            serde_json::to_value(answer.as_ref()).map_err(|_| ApiError::Internal)?,
        )),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "as-of query failed");
            Err(ApiError::LogUnavailable)
        }
    }
}
