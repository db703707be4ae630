//! My devices (`/api/v1/auth/devices/{id}/...`): name one, trust it, untrust it.
//!
//! A device is mine when one of my sessions was opened on it or I have trusted or named it
//! before (a row in `trusted_devices`); any other id answers 404, so one user cannot touch, or
//! learn of, another's device. Each command appends one event about me (`device.renamed`,
//! `device.trusted`, `device.untrusted`, publisher `authtrail:api`) and the projection makes it
//! true ([`super::commands`]); the event is the audit record, as for revoking my own sessions.

use super::commands::{CommandAccepted, WaitParam};
use super::{Api, Ctx};
use crate::server::audit::event;
use crate::server::extract::{Json, Query};
use crate::server::problem::ProblemDoc;
use crate::server::{Admits, ApiError, Audit, Budget, Person, Policy, Routes};
use authtrail_events::data::{DeviceRenamed, DeviceTrust, NonEmpty, OpaqueId};
use authtrail_events::EventData;
use axum::extract::Path;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    let my_command = Policy::new(Admits::Person, Budget::Command, Audit::No);
    Routes::new()
        .add(my_command, routes!(rename))
        .add(my_command, routes!(trust, untrust))
}

/// Longest device name (characters) a user may give.
const MAX_NAME_CHARS: usize = 64;

/// A new name for one of my devices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    /// 1 to 64 characters, not only white space, no control or format characters; leading
    /// and trailing white space is dropped.
    #[schema(schema_with = name_schema)]
    name: String,
}

/// What the contract refuses in any string besides C0 and C1 controls: the Unicode format
/// characters of the Basic Multilingual Plane (`authtrail_events::parse::is_format_char`). The
/// name's schema excludes both, so that a schema-valid name is accepted.
const REFUSED: &str = "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb";

fn name_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .pattern(Some(format!("^[^{REFUSED}]*[^\\s{REFUSED}][^{REFUSED}]*$")))
        .build()
}

/// Ids that cannot be a device id are no device of mine either: 404, like unknown ones.
fn device_id(id: &str) -> Result<OpaqueId, ApiError> {
    OpaqueId::try_from(id.to_owned()).map_err(|_| ApiError::NotFound("device"))
}

fn device_name(name: &str) -> Result<NonEmpty, ApiError> {
    let bad = |reason: &str| ApiError::InvalidBody {
        reason: format!("name: {reason}"),
        syntax: false,
    };
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("must be at most 64 characters"));
    }
    if name.chars().any(authtrail_events::parse::is_refused_char) {
        return Err(bad("must not contain control or format characters"));
    }
    NonEmpty::try_from(name.to_owned()).map_err(|e| bad(&e))
}

/// `Some(name)` when `device` is `user`'s, with the name they or their auth service gave it
/// (if any); `None` when it is not theirs.
async fn my_device(
    api: &Api,
    user: &str,
    device: &OpaqueId,
) -> Result<Option<Option<String>>, ApiError> {
    let found: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT (SELECT device_name FROM trusted_devices WHERE user_id = $1 AND device_id = $2)
         WHERE EXISTS (SELECT 1 FROM trusted_devices WHERE user_id = $1 AND device_id = $2)
            OR EXISTS (SELECT 1 FROM sessions WHERE user_id = $1 AND device_id = $2)",
    )
    .bind(user)
    .bind(device.as_str())
    .fetch_optional(api.pool())
    .await?;
    Ok(found.map(|(name,)| name))
}

/// The name of `user`'s `device` (see [`my_device`]); 404 when it is not theirs.
async fn mine_or_404(api: &Api, user: &str, device: &OpaqueId) -> Result<Option<String>, ApiError> {
    my_device(api, user, device)
        .await?
        .ok_or(ApiError::NotFound("device"))
}

/// Name one of my devices: appends `device.renamed`. Sessions and lists show the name instead
/// of the one parsed from the user agent.
#[utoipa::path(put, path = "/api/v1/auth/devices/{id}/name", tag = "me",
    params(("id" = String, Path, description = "Device id (a session's `device_id`); any other is 404"), WaitParam),
    request_body = RenameRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Renamed and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Rename appended to the log", body = CommandAccepted),
        (status = 404, description = "No such device of mine", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Bad body", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn rename(
    Ctx(api): Ctx,
    Person(caller): Person,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
    Json(req): Json<RenameRequest>,
) -> Result<CommandAccepted, ApiError> {
    let device = device_id(&id)?;
    let device_name = device_name(&req.name)?;
    mine_or_404(&api, &caller.subject, &device).await?;
    let e = event(
        &caller.subject,
        EventData::DeviceRenamed(DeviceRenamed {
            device_id: device,
            device_name,
        }),
    );
    api.command(vec![e], w.wait).await
}

async fn set_trust(
    api: &Api,
    user: &str,
    id: &str,
    trusted: bool,
    wait: bool,
) -> Result<CommandAccepted, ApiError> {
    let device = device_id(id)?;
    let name = mine_or_404(api, user, &device).await?;
    let d = DeviceTrust {
        device_id: device,
        device_name: name,
    };
    let data = if trusted {
        EventData::DeviceTrusted(d)
    } else {
        EventData::DeviceUntrusted(d)
    };
    api.command(vec![event(user, data)], wait).await
}

/// Trust one of my devices: appends `device.trusted`.
#[utoipa::path(put, path = "/api/v1/auth/devices/{id}/trust", tag = "me",
    params(("id" = String, Path, description = "Device id (a session's `device_id`); any other is 404"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Trusted and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Trust appended to the log", body = CommandAccepted),
        (status = 404, description = "No such device of mine", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn trust(
    Ctx(api): Ctx,
    Person(caller): Person,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    set_trust(&api, &caller.subject, &id, true, w.wait).await
}

/// Stop trusting one of my devices: appends `device.untrusted`.
#[utoipa::path(delete, path = "/api/v1/auth/devices/{id}/trust", tag = "me",
    params(("id" = String, Path, description = "Device id (a session's `device_id`); any other is 404"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Untrusted and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Untrust appended to the log", body = CommandAccepted),
        (status = 404, description = "No such device of mine", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn untrust(
    Ctx(api): Ctx,
    Person(caller): Person,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    set_trust(&api, &caller.subject, &id, false, w.wait).await
}
