//! Security events for admins: the filtered list (with review state, from the view
//! `security_events_reviewed`) and the review command (`security_event.reviewed`).

use super::commands::{CommandAccepted, WaitParam};
use super::pagination::{Page, PageRequest};
use super::{Api, Ctx};
use crate::auth::{Caller, Role};
use crate::server::audit::Audited;
use crate::server::extract::Query;
use crate::server::problem::ProblemDoc;
use crate::server::{AdminUser, Admits, ApiError, Audit, Budget, Policy, Routes, Target};
use authtrail_projections::rows::Severity;
use axum::extract::Path;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("security_events.list", Target::QueryUser),
            ),
            routes!(list_events),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Command,
                Audit::Command("security_events.review"),
            ),
            routes!(review),
        )
}

/// The taxonomy of security events.
pub(crate) const EVENT_TYPES: &[&str] = &[
    "login_success",
    "login_failure",
    "otp_sent",
    "otp_verified",
    "otp_failed",
    "session_revoked",
    "device_trusted",
    "device_revoked",
    "password_changed",
    "account_locked",
    "account_unlocked",
    "suspicious_activity",
    "admin_action",
];

/// One security event with its review state.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub(crate) struct SecurityEventView {
    pub(crate) id: Uuid,
    user_id: Option<String>,
    /// One of the taxonomy (`login_failure`, `suspicious_activity`, `admin_action`, ...).
    event_type: String,
    /// `info`, `warning`, `error` or `critical`.
    severity: String,
    description: String,
    ip: Option<String>,
    user_agent: Option<String>,
    device_name: Option<String>,
    location: Option<String>,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// The log event this security event was derived from.
    source_event_id: Uuid,
    occurred_at: DateTime<Utc>,
    reviewed: bool,
    reviewed_by: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
}

pub(crate) const SELECT: &str = "SELECT id, user_id, event_type, severity, description, ip, \
     user_agent, device_name, location, metadata, source_event_id, occurred_at, reviewed, \
     reviewed_by, reviewed_at FROM security_events_reviewed WHERE true";

const LIST: &str = "security_events";

/// Filters of the security-event list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `info`, `warning`, `error` or `critical`.
    #[param(inline)]
    severity: Option<Severity>,
    /// One event type of the taxonomy.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = super::params::security_event_type)]
    event_type: Option<String>,
    /// Only this user's events.
    user: Option<String>,
    /// Only events not yet reviewed.
    #[serde(default)]
    unreviewed_only: bool,
    /// At or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

async fn list(
    api: &Api,
    f: &ListQuery,
    page: &PageRequest,
) -> Result<Page<SecurityEventView>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    if let Some(s) = f.severity {
        q.push(" AND severity = ").push_bind(s.as_str());
    }
    if let Some(t) = &f.event_type {
        q.push(" AND event_type = ").push_bind(t.clone());
    }
    if let Some(u) = &f.user {
        q.push(" AND user_id = ").push_bind(u.clone());
    }
    if f.unreviewed_only {
        q.push(" AND NOT reviewed");
    }
    if let Some(t) = f.since {
        q.push(" AND occurred_at >= ").push_bind(t);
    }
    page.push_order(&mut q, "occurred_at", "id", "::uuid");
    let rows: Vec<SecurityEventView> = q.build_query_as().fetch_all(api.pool()).await?;
    Ok(page.page(LIST, rows, |r| (r.occurred_at, r.id.to_string())))
}

/// Security events, newest first, filtered (admin).
#[utoipa::path(get, path = "/api/v1/admin/security-events", tag = "admin",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of security events", body = Page<SecurityEventView>),
    ))]
async fn list_events(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<SecurityEventView>>, ApiError> {
    if let Some(t) = &q.event_type {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::param(
                "type",
                format!("use one of {}", EVENT_TYPES.join(", ")),
            ));
        }
    }
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    Ok(Json(list(&api, &q, &page).await?))
}

/// Who may review a security event: reviewing `admin_action` events is reserved to
/// super_admin, and nobody reviews an event about themselves (its user) or about their own
/// action (an `admin_action` whose actor they are).
fn check_may_review(
    reviewer: &Caller,
    user: Option<&str>,
    event_type: &str,
    actor: Option<&str>,
) -> Result<(), ApiError> {
    let me = reviewer.subject.as_str();
    let refusal = if user == Some(me) {
        Some("nobody reviews a security event about themselves")
    } else if event_type == "admin_action" && actor == Some(me) {
        Some("nobody reviews a security event about their own action")
    } else if event_type == "admin_action" && reviewer.role != Role::SuperAdmin {
        Some("only a super_admin reviews admin_action events")
    } else {
        None
    };
    match refusal {
        Some(why) => {
            tracing::info!(reviewer = %me, event_type, why, "review refused");
            Err(ApiError::NotPermitted(why))
        }
        None => Ok(()),
    }
}

/// Mark a security event reviewed (admin): appends `security_event.reviewed` (subject the
/// event's user) and the `admin.action` record. The earliest review stands. Reviewing an
/// `admin_action` event takes a super_admin; nobody reviews an event about themselves or their
/// own action (403).
#[utoipa::path(post, path = "/api/v1/admin/security-events/{id}/review", tag = "admin",
    params(("id" = Uuid, Path, description = "Security event id"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Review recorded and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Review appended to the log", body = CommandAccepted),
        (status = 404, description = "No such security event", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn review(
    Ctx(api): Ctx,
    AdminUser(admin): AdminUser,
    audited: Audited,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::param("id", "not a UUID"))?;
    let found: Option<(Option<String>, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT user_id, reviewed, event_type, metadata->>'actor'
         FROM security_events_reviewed WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(api.pool())
    .await?;
    let Some((user, already, event_type, actor)) = found else {
        return Err(ApiError::NotFound("security event"));
    };
    check_may_review(&admin, user.as_deref(), &event_type, actor.as_deref())?;
    let details = json!({"security_event_id": id, "already_reviewed": already});
    api.review(&audited, user.as_deref(), id, details, w.wait)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CredentialKind;

    fn caller(sub: &str, role: Role) -> Caller {
        Caller {
            subject: sub.into(),
            session_id: Some("s".into()),
            role,
            via: CredentialKind::Jwt,
            expires_at: None,
            grant: crate::auth::Grant::none(),
        }
    }

    #[test]
    fn reviews_of_oneself_and_of_admin_actions_are_refused() {
        let admin = caller("ann", Role::Admin);
        let root = caller("rob", Role::SuperAdmin);
        let refused =
            |c: &Caller, user, kind, actor| check_may_review(c, user, kind, actor).is_err();
        assert!(!refused(&admin, Some("u1"), "login_failure", None));
        assert!(refused(&admin, Some("ann"), "login_failure", None));
        assert!(refused(&root, Some("rob"), "suspicious_activity", None));
        assert!(refused(&admin, Some("u1"), "admin_action", Some("zed")));
        assert!(!refused(&root, Some("u1"), "admin_action", Some("ann")));
        assert!(refused(&root, Some("u1"), "admin_action", Some("rob")));
        assert!(!refused(&admin, None, "login_failure", None));
    }
}
