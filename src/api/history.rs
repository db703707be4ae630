//! Login history: my attempts, everyone's for admins (filtered), and the suspicious ones.
//! Newest first by `attempted_at` (event time), ties broken by id.

use super::pagination::{Page, PageRequest};
use super::params::PageQuery;
use super::{Api, Ctx};
use crate::server::extract::Query;
use crate::server::ApiError;
use crate::server::{AdminUser, Admits, Audit, Budget, Person, Policy, Routes, Target};
use authtrail_projections::rows::Client;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(
            Policy::new(Admits::Person, Budget::Read, Audit::No),
            routes!(list_mine),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("login_history.list", Target::QueryUser),
            ),
            routes!(admin_list),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("security.suspicious", Target::None),
            ),
            routes!(suspicious),
        )
}

/// One login attempt.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
struct LoginAttemptView {
    id: Uuid,
    /// The account, when known (a failed login of an unknown identifier has none).
    user_id: Option<String>,
    identifier: Option<String>,
    success: bool,
    login_method: Option<String>,
    failure_reason: Option<String>,
    /// Device and place (the projection's own shape).
    #[serde(flatten)]
    #[sqlx(flatten)]
    client: Client,
    otp_required: bool,
    otp_verified: bool,
    suspicious: bool,
    suspicious_reason: Option<String>,
    /// The session a successful login opened.
    session_id: Option<String>,
    attempted_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT id, user_id, identifier, success, login_method, failure_reason, \
     device_id, device_name, device_type, browser, os, ip, user_agent, country_code, country, \
     city, latitude, longitude, otp_required, otp_verified, suspicious, suspicious_reason, \
     session_id, attempted_at FROM login_history WHERE true";

const LIST: &str = "login_history";

#[derive(Debug, Default)]
struct Filter<'a> {
    user: Option<&'a str>,
    identifier: Option<&'a str>,
    success: Option<bool>,
    ip: Option<&'a str>,
    suspicious: Option<bool>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

async fn list(
    api: &Api,
    f: &Filter<'_>,
    page: &PageRequest,
) -> Result<Page<LoginAttemptView>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    if let Some(u) = f.user {
        q.push(" AND user_id = ").push_bind(u.to_owned());
    }
    if let Some(i) = f.identifier {
        q.push(" AND lower(identifier) = ")
            .push_bind(i.to_lowercase());
    }
    if let Some(s) = f.success {
        q.push(" AND success = ").push_bind(s);
    }
    if let Some(ip) = f.ip {
        q.push(" AND ip = ").push_bind(ip.to_owned());
    }
    match f.suspicious {
        // A literal predicate, so the partial index on suspicious attempts matches.
        Some(true) => {
            q.push(" AND suspicious");
        }
        Some(false) => {
            q.push(" AND NOT suspicious");
        }
        None => {}
    }
    if let Some(t) = f.since {
        q.push(" AND attempted_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND attempted_at < ").push_bind(t);
    }
    page.push_order(&mut q, "attempted_at", "id", "::uuid");
    let rows: Vec<LoginAttemptView> = q.build_query_as().fetch_all(api.pool()).await?;
    Ok(page.page(LIST, rows, |r| (r.attempted_at, r.id.to_string())))
}

/// My login attempts (successful and failed), newest first.
#[utoipa::path(get, path = "/api/v1/auth/login-history", tag = "me",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of my login attempts", body = Page<LoginAttemptView>),
    ))]
async fn list_mine(
    Ctx(api): Ctx,
    Person(caller): Person,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<LoginAttemptView>>, ApiError> {
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        user: Some(&caller.subject),
        ..Filter::default()
    };
    Ok(Json(list(&api, &f, &page).await?))
}

/// Filters of the admin login history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AdminQuery {
    /// Only this user's attempts.
    user: Option<String>,
    /// Only attempts with this identifier (case-insensitive), e.g. an email.
    identifier: Option<String>,
    /// Only successful (`true`) or failed (`false`) attempts.
    success: Option<bool>,
    /// Only attempts from this IP address.
    #[param(schema_with = super::params::ip_address)]
    ip: Option<String>,
    /// Only suspicious (`true`) or unsuspicious (`false`) attempts.
    suspicious: Option<bool>,
    /// At or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Before this instant (RFC 3339); at or before `since`, the page is empty.
    until: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

/// Login attempts of every user, filtered (admin).
#[utoipa::path(get, path = "/api/v1/admin/login-history", tag = "admin",
    params(AdminQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of login attempts", body = Page<LoginAttemptView>),
    ))]
async fn admin_list(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<AdminQuery>,
) -> Result<Json<Page<LoginAttemptView>>, ApiError> {
    if let Some(ip) = &q.ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| ApiError::param("ip", "not an IP address"))?;
    }
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        user: q.user.as_deref(),
        identifier: q.identifier.as_deref(),
        success: q.success,
        ip: q.ip.as_deref(),
        suspicious: q.suspicious,
        since: q.since,
        until: q.until,
    };
    Ok(Json(list(&api, &f, &page).await?))
}

/// Query of the suspicious attempts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SuspiciousQuery {
    /// At or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

/// Login attempts flagged suspicious (repeated failures, new country), newest first (admin).
#[utoipa::path(get, path = "/api/v1/admin/security/suspicious", tag = "admin",
    params(SuspiciousQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of suspicious login attempts", body = Page<LoginAttemptView>),
    ))]
async fn suspicious(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<SuspiciousQuery>,
) -> Result<Json<Page<LoginAttemptView>>, ApiError> {
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    let f = Filter {
        suspicious: Some(true),
        since: q.since,
        ..Filter::default()
    };
    Ok(Json(list(&api, &f, &page).await?))
}
