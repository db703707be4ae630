//! `POST /api/v1/admin/users/{id}/forget` (super_admin): erase a person
//! ([`crate::privacy::forget`]). The audit record is appended first, so the log says who asked
//! even when the erasure then fails (asking again is safe).

use super::commands::unavailable;
use super::{user_id, Ctx};
use crate::privacy::forget::{forget_everywhere, Erasure};
use crate::server::audit::Audited;
use crate::server::{Admits, ApiError, AppState, Audit, Budget, Policy, Routes, SuperAdminUser};
use axum::extract::Path;
use axum::extract::State;
use axum::Json;
use serde_json::json;
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Policy::new(
            Admits::SuperAdmin,
            Budget::Command,
            Audit::Command("user.forget"),
        ),
        routes!(forget_user),
    )
}

/// Forget a user (super_admin): destroys the user's data keys, so the personal members of
/// every event about them (identifier, IP, user agent, city, coordinates, device name) are
/// unreadable in every copy of the log, purges their rows from the read tables, and deletes
/// raw records the enrichment stage has consumed and the user's rejections. Replays and
/// rebuilds afterwards show their events redacted. Appends an `admin.action` (`user.forget`).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/forget", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Keys destroyed and rows purged; the erasure record", body = serde_json::Value),
        (status = 403, description = "Not a super_admin, or erasure is not configured (`privacy.master_key_file`)"),
        (status = 503, description = "The log is unavailable (nothing was erased)"),
    ))]
async fn forget_user(
    State(state): State<AppState>,
    Ctx(api): Ctx,
    SuperAdminUser(admin): SuperAdminUser,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<Json<Erasure>, ApiError> {
    let id = user_id("id", &id)?.to_owned();
    let (true, Some(keys)) = (state.config().privacy.encrypt, api.keys()) else {
        tracing::warn!("forget refused: privacy.master_key_file is not set");
        return Err(ApiError::NotPermitted(
            "erasure needs encryption: set privacy.master_key_file and privacy.encrypt",
        ));
    };
    api.publisher
        .publish(&audited.event(Some(&id), json!({})))
        .await
        .map_err(unavailable)?;
    let erasure = forget_everywhere(
        state.config(),
        api.pool(),
        Some(keys),
        &id,
        &format!("api:{}", admin.subject),
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %crate::telemetry::escaped(&format!("{e:#}")), "forget failed");
        ApiError::Internal
    })?;
    Ok(Json(erasure))
}
