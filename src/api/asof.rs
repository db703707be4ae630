//! `GET /api/v1/admin/as-of/{time}/users/{id}/sessions` (admin): one user's sessions and trusted
//! devices as they were at `time`, folded from the log on demand
//! ([`crate::replay::asof::user_sessions_at`]); the live tables are not read.
//!
//! Each uncached answer folds a whole log partition, so the route is bounded: at most
//! `api.asof_concurrency` folds run at once (another request gets 503 with `Retry-After` at
//! once, it does not queue), and `time` is taken in whole seconds, so answers are cached per
//! second, not per microsecond a caller can vary.

use super::user_id;
use crate::replay::asof::{user_sessions_at, AsOfCache};
use crate::server::{AdminUser, Admits, ApiError, AppState, Audit, Budget, Policy, Routes, Target};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Arc;
use tokio::sync::Semaphore;
use utoipa_axum::routes;

/// The route's shared parts: recent answers, and the permits for folds running at once.
#[derive(Clone)]
pub(crate) struct AsOf {
    cache: AsOfCache,
    running: Arc<Semaphore>,
    keys: Option<Arc<crate::privacy::Keyring>>,
}

impl AsOf {
    pub(crate) fn new(concurrency: usize, keys: Option<Arc<crate::privacy::Keyring>>) -> AsOf {
        AsOf {
            cache: AsOfCache::default(),
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            keys,
        }
    }
}

/// The instant an as-of query answers for: `time` without its fraction of a second.
fn whole_second(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(0)
}

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
/// At most `api.asof_concurrency` run at once (else 503 with `Retry-After`).
#[utoipa::path(get, path = "/api/v1/admin/as-of/{time}/users/{id}/sessions", tag = "admin",
    params(
        ("time" = DateTime<Utc>, Path, description = "The instant (RFC 3339); a fraction of a second is dropped"),
        ("id" = String, Path, description = "User id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's sessions and devices at `time`, and where the log was read up to", body = serde_json::Value),
    ))]
async fn user_sessions(
    State(state): State<AppState>,
    Extension(asof): Extension<AsOf>,
    AdminUser(caller): AdminUser,
    Path((time, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let time: DateTime<Utc> = time
        .parse()
        .map_err(|e| ApiError::param("time", format!("{time:?} is not an RFC 3339 time: {e}")))?;
    let time = whole_second(time);
    let id = user_id("id", &id)?;
    let Ok(_permit) = asof.running.clone().try_acquire_owned() else {
        metrics::counter!("authtrail_asof_busy_total").increment(1);
        return Err(ApiError::Busy {
            detail: "as many as-of queries as api.asof_concurrency allows are running",
            retry_after: 2,
        });
    };
    tracing::info!(admin = ?caller.subject, user = ?id, %time, "as-of query");
    let config = state.config();
    match user_sessions_at(
        &config.kafka,
        &config.projector.rules(),
        &asof.cache,
        id,
        time,
        asof.keys.as_deref(),
    )
    .await
    {
        Ok(answer) => Ok(Json(
            serde_json::to_value(answer.as_ref()).map_err(|_| ApiError::Internal)?,
        )),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::escaped(&format!("{e:#}")), "as-of query failed");
            Err(ApiError::LogUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instant_is_taken_in_whole_seconds() {
        let t: DateTime<Utc> = "2026-01-01T12:00:00.999999Z".parse().unwrap();
        let u: DateTime<Utc> = "2026-01-01T12:00:00.000001Z".parse().unwrap();
        assert_eq!(whole_second(t), whole_second(u));
        assert_eq!(
            whole_second(t),
            "2026-01-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
