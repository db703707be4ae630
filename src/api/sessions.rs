//! Sessions: mine (`/api/v1/auth/sessions`) and everyone's for admins (`/api/v1/admin/...`).
//!
//! Status is evaluated against "now" in the query (`session_status(s, now())`, the SQL twin of
//! the fold's `Session::status_at`), from the facts the projection recorded and the idle and
//! absolute expiries it computed with the configured timeouts. Lists are newest first by
//! `created_at` (see [`super::pagination`]). Revocations are appended as `session.revoked`
//! events ([`super::commands`]).

use super::commands::{self, CommandAccepted, WaitParam};
use super::pagination::{Page, PageRequest};
use super::{user_id, Api, Ctx};
use crate::auth::{Caller, Role};
use crate::server::audit::Audited;
use crate::server::extract::Query;
use crate::server::problem::ProblemDoc;
use crate::server::{AdminUser, Admits, ApiError, Audit, Budget, Person, Policy, Routes, Target};
use authtrail_events::kind::RevokeScope;
use authtrail_projections::rows::Client;
use authtrail_projections::rows::SessionStatus;
use axum::extract::Path;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    let mine = Policy::new(Admits::Person, Budget::Read, Audit::No);
    let my_command = Policy::new(Admits::Person, Budget::Command, Audit::No);
    let admin_command =
        |action| Policy::new(Admits::Admin, Budget::Command, Audit::Command(action));
    Routes::new()
        .add(mine, routes!(list_mine))
        .add(mine, routes!(get_mine))
        .add(my_command, routes!(revoke_mine))
        .add(my_command, routes!(revoke_one_of_mine))
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("sessions.list", Target::QueryUser),
            ),
            routes!(admin_list),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("sessions.list_user", Target::PathId),
            ),
            routes!(admin_list_user),
        )
        .add(
            admin_command("sessions.force_logout"),
            routes!(admin_force_logout),
        )
        .add(admin_command("sessions.revoke"), routes!(admin_revoke))
}

/// Which sessions a list shows: one status, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StatusFilter {
    #[default]
    Active,
    All,
    Expired,
    IdleExpired,
    Revoked,
    LoggedOut,
}

/// One session as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
struct SessionView {
    session_id: String,
    user_id: String,
    /// Status now: `active`, `expired`, `idle_expired`, `revoked` or `logged_out`.
    status: String,
    /// True for the session the caller's token belongs to (`sid`).
    #[sqlx(skip)]
    current: bool,
    login_method: Option<String>,
    identifier: Option<String>,
    /// The name the person (or their auth service) gave the device (`device.renamed`,
    /// `device.trusted`), shown instead of the one parsed from the user agent.
    custom_name: Option<String>,
    /// Device and place (the projection's own shape).
    #[serde(flatten)]
    #[sqlx(flatten)]
    client: Client,
    created_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    /// When the current credentials expire (each refresh extends it).
    expires_at: DateTime<Utc>,
    /// No refresh extends the session past this (absolute timeout).
    absolute_expires_at: DateTime<Utc>,
    /// Without activity the session ends here (idle timeout).
    idle_expires_at: DateTime<Utc>,
    refresh_count: i32,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
    revoked_by: Option<String>,
    logged_out_at: Option<DateTime<Utc>>,
    /// Whether the device is trusted now (falls back to the flag recorded at login).
    trusted_device: bool,
    otp_required: bool,
    otp_verified: bool,
    suspicious: bool,
    suspicious_reason: Option<String>,
}

const SELECT: &str = "SELECT s.session_id, s.user_id, session_status(s, now()) AS status, \
     s.login_method, s.identifier, s.device_id, s.device_name, td.device_name AS custom_name, \
     s.device_type, s.browser, s.os, \
     s.ip, s.user_agent, s.country_code, s.country, s.city, s.latitude, s.longitude, \
     s.created_at, s.last_activity_at, s.expires_at, s.absolute_expires_at, s.idle_expires_at, \
     s.refresh_count, s.revoked_at, s.revoked_reason, s.revoked_by, s.logged_out_at, \
     coalesce(td.trusted, s.trusted_device) AS trusted_device, s.otp_required, s.otp_verified, \
     s.suspicious, s.suspicious_reason \
     FROM sessions s LEFT JOIN trusted_devices td \
       ON td.user_id = s.user_id AND td.device_id = s.device_id \
     WHERE true";

const LIST: &str = "sessions";

/// Filters of the session lists (all optional).
#[derive(Debug, Default)]
struct Filter<'a> {
    user: Option<&'a str>,
    status: StatusFilter,
    ip: Option<&'a str>,
    country: Option<&'a str>,
    device_type: Option<&'a str>,
    since: Option<DateTime<Utc>>,
}

fn push_status(q: &mut QueryBuilder<'_, Postgres>, status: StatusFilter) {
    let s = match status {
        StatusFilter::All => return,
        // `ended_at IS NULL` lets the partial index on open sessions help.
        StatusFilter::Active => {
            q.push(" AND s.ended_at IS NULL AND session_status(s, now()) = 'active'");
            return;
        }
        StatusFilter::Expired => SessionStatus::Expired,
        StatusFilter::IdleExpired => SessionStatus::IdleExpired,
        StatusFilter::Revoked => SessionStatus::Revoked,
        StatusFilter::LoggedOut => SessionStatus::LoggedOut,
    };
    q.push(" AND session_status(s, now()) = ")
        .push_bind(s.as_str());
}

async fn list(
    api: &Api,
    f: &Filter<'_>,
    page: &PageRequest,
) -> Result<Page<SessionView>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    if let Some(u) = f.user {
        q.push(" AND s.user_id = ").push_bind(u.to_owned());
    }
    push_status(&mut q, f.status);
    if let Some(ip) = f.ip {
        q.push(" AND s.ip = ").push_bind(ip.to_owned());
    }
    if let Some(c) = f.country {
        q.push(" AND s.country_code = ")
            .push_bind(c.to_ascii_uppercase());
    }
    if let Some(d) = f.device_type {
        q.push(" AND s.device_type = ").push_bind(d.to_owned());
    }
    if let Some(t) = f.since {
        q.push(" AND s.created_at >= ").push_bind(t);
    }
    page.push_order(&mut q, "s.created_at", "s.session_id", "");
    let rows: Vec<SessionView> = q.build_query_as().fetch_all(api.pool()).await?;
    Ok(page.page(LIST, rows, |s| (s.created_at, s.session_id.clone())))
}

/// One session, if it exists (and belongs to `user`, when given).
async fn one(api: &Api, id: &str, user: Option<&str>) -> Result<Option<SessionView>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push(" AND s.session_id = ").push_bind(id.to_owned());
    if let Some(u) = user {
        q.push(" AND s.user_id = ").push_bind(u.to_owned());
    }
    q.build_query_as()
        .fetch_optional(api.pool())
        .await
        .map_err(ApiError::from)
}

fn mark_current(mut page: Page<SessionView>, caller: &Caller) -> Page<SessionView> {
    for s in &mut page.items {
        s.current = caller.session_id.as_deref() == Some(s.session_id.as_str());
    }
    page
}

fn not_active(s: &SessionView) -> ApiError {
    ApiError::SessionNotActive(s.status.clone())
}

/// Acting on an admin's or a super_admin's sessions is reserved to super_admin. Whether `user`
/// is one is what authtrail holds: the roles any of their sessions was opened with (the login
/// event's `data.roles`).
async fn check_power_over(api: &Api, admin: &Caller, user: &str) -> Result<(), ApiError> {
    if admin.role == Role::SuperAdmin {
        return Ok(());
    }
    let privileged: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sessions
                        WHERE user_id = $1 AND roles && ARRAY['admin', 'super_admin']::text[])",
    )
    .bind(user)
    .fetch_one(api.pool())
    .await?;
    if privileged {
        tracing::info!(admin = %admin.subject, %user, "refused: acting on an admin's sessions");
        return Err(ApiError::NotPermitted(
            "only a super_admin may act on the sessions of an admin or super_admin",
        ));
    }
    Ok(())
}

/// Query of "my sessions".
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MineQuery {
    /// `active` (default), `all`, or one status.
    #[serde(default)]
    #[param(inline)]
    status: StatusFilter,
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

/// My sessions, newest first; `current` marks the one my token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "me",
    params(MineQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of my sessions", body = Page<SessionView>),
    ))]
async fn list_mine(
    Ctx(api): Ctx,
    Person(caller): Person,
    Query(q): Query<MineQuery>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        user: Some(&caller.subject),
        status: q.status,
        ..Filter::default()
    };
    Ok(Json(mark_current(list(&api, &f, &page).await?, &caller)))
}

/// One of my sessions (404 for any session that is not mine).
#[utoipa::path(get, path = "/api/v1/auth/sessions/{id}", tag = "me",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 404, description = "No such session of mine", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn get_mine(
    Ctx(api): Ctx,
    Person(caller): Person,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let mut s = one(&api, &id, Some(&caller.subject))
        .await?
        .ok_or_else(|| ApiError::NotFound("session"))?;
    s.current = caller.session_id.as_deref() == Some(s.session_id.as_str());
    Ok(Json(s))
}

/// Revoke one of my sessions: appends `session.revoked` (scope `one`).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "me",
    params(("id" = String, Path, description = "Session id"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Revocation appended to the log", body = CommandAccepted),
        (status = 404, description = "No such session of mine", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The session has already ended", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn revoke_one_of_mine(
    Ctx(api): Ctx,
    Person(caller): Person,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    let s = one(&api, &id, Some(&caller.subject))
        .await?
        .ok_or_else(|| ApiError::NotFound("session"))?;
    if s.status != SessionStatus::Active.as_str() {
        return Err(not_active(&s));
    }
    let e = commands::revoke(
        &caller.subject,
        RevokeScope::One,
        Some(&s.session_id),
        "user_request",
        &caller.subject,
    )?;
    api.command(vec![e], w.wait).await
}

/// Query of "log out everywhere".
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RevokeMineQuery {
    /// Also end the session this token belongs to (default: keep it).
    #[serde(default)]
    include_current: bool,
    /// See `wait` on the other commands.
    #[serde(default)]
    wait: bool,
}

/// Revoke all my sessions except the current one (`sid`), or all with `include_current=true`:
/// appends `session.revoked` (scope `all_except` or `all`).
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "me",
    params(RevokeMineQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Revocation appended to the log", body = CommandAccepted),
        (status = 409, description = "The token names no current session to keep (no `sid`): pass `include_current=true`", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn revoke_mine(
    Ctx(api): Ctx,
    Person(caller): Person,
    Query(q): Query<RevokeMineQuery>,
) -> Result<CommandAccepted, ApiError> {
    let e = if q.include_current {
        commands::revoke(
            &caller.subject,
            RevokeScope::All,
            None,
            "user_request",
            &caller.subject,
        )?
    } else {
        let Some(sid) = caller.session_id.as_deref() else {
            return Err(ApiError::NoCurrentSession);
        };
        commands::revoke(
            &caller.subject,
            RevokeScope::AllExcept,
            Some(sid),
            "user_request",
            &caller.subject,
        )?
    };
    api.command(vec![e], q.wait).await
}

/// Filters of the admin session list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AdminQuery {
    /// Only this user's sessions.
    user: Option<String>,
    /// `active` (default), `all`, or one status.
    #[serde(default)]
    #[param(inline)]
    status: StatusFilter,
    /// Only sessions from this IP address.
    #[param(schema_with = super::params::ip_address)]
    ip: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[param(schema_with = super::params::country_code)]
    country: Option<String>,
    /// `desktop`, `mobile`, `tablet`, `bot` or `unknown`.
    #[param(schema_with = super::params::device_type)]
    device_type: Option<String>,
    /// Only sessions created at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

fn check_admin_filters(q: &AdminQuery) -> Result<(), ApiError> {
    if let Some(ip) = &q.ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| ApiError::param("ip", "not an IP address"))?;
    }
    if let Some(c) = &q.country {
        if c.len() != 2 || !c.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ApiError::param(
                "country",
                "use a two-letter ISO 3166-1 code",
            ));
        }
    }
    if let Some(d) = &q.device_type {
        d.parse::<authtrail_events::kind::DeviceType>()
            .map_err(|e| ApiError::param("device_type", e))?;
    }
    Ok(())
}

/// All sessions, filtered (admin).
#[utoipa::path(get, path = "/api/v1/admin/sessions", tag = "admin",
    params(AdminQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of sessions", body = Page<SessionView>),
    ))]
async fn admin_list(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<AdminQuery>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    check_admin_filters(&q)?;
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        user: q.user.as_deref(),
        status: q.status,
        ip: q.ip.as_deref(),
        country: q.country.as_deref(),
        device_type: q.device_type.as_deref(),
        since: q.since,
    };
    Ok(Json(list(&api, &f, &page).await?))
}

/// Query of one user's sessions (admin).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AdminUserQuery {
    /// `all` (default here), `active`, or one status.
    #[param(inline)]
    status: Option<StatusFilter>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

/// One user's sessions, every status by default (admin).
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id"), AdminUserQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the user's sessions", body = Page<SessionView>),
    ))]
async fn admin_list_user(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Path(user): Path<String>,
    Query(q): Query<AdminUserQuery>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let user = user_id("id", &user)?;
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        user: Some(user),
        status: q.status.unwrap_or(StatusFilter::All),
        ..Filter::default()
    };
    Ok(Json(list(&api, &f, &page).await?))
}

/// Revoke any session (admin): appends `session.revoked` (scope `one`, subject the session's
/// user) and the `admin.action` record.
#[utoipa::path(delete, path = "/api/v1/admin/sessions/{id}", tag = "admin",
    params(("id" = String, Path, description = "Session id"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Revocation appended to the log", body = CommandAccepted),
        (status = 404, description = "No such session", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "The session has already ended", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn admin_revoke(
    Ctx(api): Ctx,
    AdminUser(admin): AdminUser,
    audited: Audited,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    let s = one(&api, &id, None)
        .await?
        .ok_or_else(|| ApiError::NotFound("session"))?;
    check_power_over(&api, &admin, &s.user_id).await?;
    if s.status != SessionStatus::Active.as_str() {
        return Err(not_active(&s));
    }
    let revoke = commands::revoke(
        &s.user_id,
        RevokeScope::One,
        Some(&s.session_id),
        "admin_revoke",
        &admin.subject,
    )?;
    let audit = audited.event(
        Some(&s.user_id),
        json!({"session_id": s.session_id, "revoke_event_id": revoke.id}),
    );
    api.command(vec![revoke, audit], w.wait).await
}

/// Log a user out everywhere (admin): appends `session.revoked` (scope `all`) and the
/// `admin.action` record.
#[utoipa::path(delete, path = "/api/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Revocation appended to the log", body = CommandAccepted),
    ))]
async fn admin_force_logout(
    Ctx(api): Ctx,
    AdminUser(admin): AdminUser,
    audited: Audited,
    Path(user): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    let user = user_id("id", &user)?;
    check_power_over(&api, &admin, user).await?;
    let revoke = commands::revoke(
        user,
        RevokeScope::All,
        None,
        "admin_force_logout",
        &admin.subject,
    )?;
    let audit = audited.event(Some(user), json!({"revoke_event_id": revoke.id}));
    api.command(vec![revoke, audit], w.wait).await
}
