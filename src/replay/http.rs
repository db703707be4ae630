//! `GET /api/v1/admin/as-of/{time}/users/{id}/sessions` (admin): one user's sessions and trusted
//! devices as they were at `time`, folded from the log on demand (see [`super::asof`]); the live
//! tables are not read.

use super::asof::{user_sessions_at, AsOfCache};
use crate::auth::AdminUser;
use crate::http::AppState;
use crate::problem::Problem;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};

/// The time-travel routes, with their answer cache.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/as-of/{time}/users/{id}/sessions",
            get(user_sessions),
        )
        .layer(Extension(AsOfCache::default()))
}

async fn user_sessions(
    State(state): State<AppState>,
    Extension(cache): Extension<AsOfCache>,
    AdminUser(caller): AdminUser,
    Path((time, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let time: DateTime<Utc> = time.parse().map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-time",
            "Invalid time",
            format!("{time:?} is not an RFC 3339 time: {e}"),
        )
    })?;
    if id.is_empty() || id.len() > 200 {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-user",
            "Invalid user id",
            "the user id must be 1 to 200 characters",
        ));
    }
    tracing::info!(admin = %caller.subject, user = %id, %time, "as-of query");
    let config = state.config();
    match user_sessions_at(&config.kafka, &config.projector.rules(), &cache, &id, time).await {
        Ok(answer) => Ok(Json(answer.as_ref()).into_response()),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "as-of query failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "log-unavailable",
                "Log unavailable",
                "the events log could not be read; retry later",
            ))
        }
    }
}
