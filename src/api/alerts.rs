//! Alerts (issue 19): what detection found, for admins (the filtered list from the view
//! `alerts_reviewed`, one alert with its evidence, the review command) and, for every person,
//! their own security notices (alerts about their account plus the security events they should
//! know of).
//!
//! An alert grows while its episode lasts (its `count`, `last_seen` and evidence change; its id
//! stays), so the list is ordered by `last_seen`: an alert that grows while a client pages may
//! move ahead of the page boundary and be missed by that walk (it is at the top of the next
//! one). Every alert that does not change while the client pages is returned exactly once.

use super::commands::{CommandAccepted, WaitParam};
use super::pagination::{Page, PageRequest};
use super::params::PageQuery;
use super::{Api, Ctx};
use crate::auth::{Caller, Role};
use crate::server::audit::Audited;
use crate::server::extract::Query;
use crate::server::problem::ProblemDoc;
use crate::server::{AdminUser, Admits, ApiError, Audit, Budget, Person, Policy, Routes, Target};
use authtrail_projections::detect::Rule;
use authtrail_projections::rows::Severity;
use axum::extract::Path;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("alerts.list", Target::QueryUser),
            ),
            routes!(list_alerts),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Read,
                Audit::Read("alerts.get", Target::None),
            ),
            routes!(get_alert),
        )
        .add(
            Policy::new(
                Admits::Admin,
                Budget::Command,
                Audit::Command("alerts.review"),
            ),
            routes!(review),
        )
        .add(
            Policy::new(Admits::Person, Budget::Read, Audit::No),
            routes!(my_notices),
        )
}

/// The rules whose alerts a person is told of (about their own account).
const NOTICE_RULES: &[&str] = &[
    "new_device",
    "new_country",
    "impossible_travel",
    "session_hijack",
];

/// One alert with its review state.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub(crate) struct AlertView {
    pub(crate) id: Uuid,
    /// The rule that raised it (`brute_force`, `new_device`, ...).
    rule: String,
    /// `info`, `warning`, `error` or `critical`.
    severity: String,
    /// What the rule counts about: an account, a network, `*` (everyone), ...
    subject: String,
    /// The account, when the alert is about one.
    user_id: Option<String>,
    ip: Option<String>,
    session_id: Option<String>,
    title: String,
    description: String,
    /// Events behind it.
    count: i64,
    /// Distinct accounts among them.
    accounts: i64,
    /// Distinct addresses among them.
    ips: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// `open` or `reviewed`.
    status: String,
    reviewed_by: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
}

/// The columns of [`AlertView`] from `alerts_reviewed` aliased `a`.
pub(crate) const COLUMNS: &str = "a.id, a.rule, a.severity, a.subject, a.user_id, a.ip, \
     a.session_id, a.title, a.description, a.count, a.accounts, a.ips, a.first_seen, \
     a.last_seen, a.metadata, CASE WHEN a.reviewed THEN 'reviewed' ELSE 'open' END AS status, \
     a.reviewer AS reviewed_by, a.reviewed_at";

const LIST: &str = "alerts";
const NOTICES: &str = "notices";

/// Review state filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    Open,
    Reviewed,
}

/// The stored names of the rules.
fn rule_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Rule::ALL.iter().map(|r| r.as_str())))
        .into()
}

/// Filters of the alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// One detection rule.
    #[param(schema_with = rule_schema)]
    rule: Option<String>,
    /// `info`, `warning`, `error` or `critical`.
    #[param(inline)]
    severity: Option<Severity>,
    /// `open` (not reviewed) or `reviewed`.
    #[param(inline)]
    status: Option<Status>,
    /// Only alerts about this user.
    user: Option<String>,
    /// Only alerts about this IP address.
    #[param(schema_with = super::params::ip_address)]
    ip: Option<String>,
    /// Last seen at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(schema_with = super::params::cursor)]
    cursor: Option<String>,
}

async fn list(api: &Api, f: &ListQuery, page: &PageRequest) -> Result<Page<AlertView>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM alerts_reviewed a WHERE true"
    ));
    if let Some(r) = &f.rule {
        q.push(" AND a.rule = ").push_bind(r.clone());
    }
    if let Some(s) = f.severity {
        q.push(" AND a.severity = ").push_bind(s.as_str());
    }
    match f.status {
        Some(Status::Open) => {
            q.push(" AND NOT a.reviewed");
        }
        Some(Status::Reviewed) => {
            q.push(" AND a.reviewed");
        }
        None => {}
    }
    if let Some(u) = &f.user {
        q.push(" AND a.user_id = ").push_bind(u.clone());
    }
    if let Some(ip) = &f.ip {
        q.push(" AND a.ip = ").push_bind(ip.clone());
    }
    if let Some(t) = f.since {
        q.push(" AND a.last_seen >= ").push_bind(t);
    }
    page.push_order(&mut q, "a.last_seen", "a.id", "::uuid");
    let rows: Vec<AlertView> = q.build_query_as().fetch_all(api.pool()).await?;
    Ok(page.page(LIST, rows, |r| (r.last_seen, r.id.to_string())))
}

/// Alerts, most recently seen first, filtered (admin).
#[utoipa::path(get, path = "/api/v1/admin/alerts", tag = "admin",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of alerts", body = Page<AlertView>),
    ))]
async fn list_alerts(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<AlertView>>, ApiError> {
    if let Some(r) = &q.rule {
        if Rule::parse(r).is_none() {
            let names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
            return Err(ApiError::param(
                "rule",
                format!("use one of {}", names.join(", ")),
            ));
        }
    }
    if let Some(ip) = &q.ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| ApiError::param("ip", "not an IP address"))?;
    }
    let page = PageRequest::new(LIST, q.limit, q.cursor.as_deref())?;
    Ok(Json(list(&api, &q, &page).await?))
}

/// What the read tables know of one event behind an alert: its login attempt (by event id),
/// else the security event derived from it. Events neither records (a session refresh, say)
/// carry only their id.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
struct EvidenceView {
    event_id: Uuid,
    /// `login_history`, `security_events`, or absent when neither holds the event.
    found_in: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    /// `login_success` / `login_failure` for login attempts, else the security event's type.
    kind: Option<String>,
    user_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    location: Option<String>,
    description: Option<String>,
}

/// One alert and its evidence, in time order.
#[derive(Debug, Serialize, ToSchema)]
struct AlertDetail {
    #[serde(flatten)]
    alert: AlertView,
    /// At most `projector.detection.evidence_max` events (the first ones).
    evidence: Vec<EvidenceView>,
}

async fn find(api: &Api, id: Uuid) -> Result<Option<(AlertView, Vec<Uuid>)>, ApiError> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        alert: AlertView,
        evidence: Vec<Uuid>,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, a.evidence FROM alerts_reviewed a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(api.pool())
    .await?;
    Ok(row.map(|r| (r.alert, r.evidence)))
}

async fn evidence(api: &Api, ids: &[Uuid]) -> Result<Vec<EvidenceView>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT e.event_id,
                CASE WHEN l.id IS NOT NULL THEN 'login_history'
                     WHEN s.id IS NOT NULL THEN 'security_events' END AS found_in,
                COALESCE(l.attempted_at, s.occurred_at) AS occurred_at,
                CASE WHEN l.id IS NULL THEN s.event_type
                     WHEN l.success THEN 'login_success' ELSE 'login_failure' END AS kind,
                COALESCE(l.user_id, s.user_id) AS user_id,
                COALESCE(l.ip, s.ip) AS ip,
                COALESCE(l.user_agent, s.user_agent) AS user_agent,
                CASE WHEN l.id IS NULL THEN s.location
                     ELSE NULLIF(concat_ws(', ', l.city, l.country), '') END AS location,
                CASE WHEN l.id IS NULL THEN s.description
                     WHEN l.success THEN 'Signed in' || COALESCE(' with ' || l.login_method, '')
                     ELSE 'Failed sign-in' || COALESCE(': ' || l.failure_reason, '') END
                  AS description
         FROM unnest($1::uuid[]) WITH ORDINALITY AS e(event_id, n)
         LEFT JOIN login_history l ON l.id = e.event_id
         LEFT JOIN LATERAL (
             SELECT id, event_type, user_id, ip, user_agent, location, description, occurred_at
             FROM security_events WHERE source_event_id = e.event_id ORDER BY id LIMIT 1
         ) s ON l.id IS NULL
         ORDER BY e.n",
    )
    .bind(ids)
    .fetch_all(api.pool())
    .await?)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::param("id", "not a UUID"))
}

/// One alert with what the read tables know of each event behind it (admin).
#[utoipa::path(get, path = "/api/v1/admin/alerts/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "Alert id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert and its evidence", body = AlertDetail),
        (status = 404, description = "No such alert", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn get_alert(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let id = parse_id(&id)?;
    let Some((alert, ids)) = find(&api, id).await? else {
        return Err(ApiError::NotFound("alert"));
    };
    let evidence = evidence(&api, &ids).await?;
    Ok(Json(AlertDetail { alert, evidence }))
}

/// Who may review an alert, as for security events (`security::check_may_review`): nobody
/// reviews an alert about themselves (its user, or an account it says was compromised), and
/// alerts about an admin or super_admin — and every `privileged_login` alert — are a
/// super_admin's to review (an admin could otherwise clear the alerts about a fellow admin's
/// account, or about the use of admin powers).
fn check_may_review(
    reviewer: &Caller,
    user: Option<&str>,
    compromised: &[String],
    privileged: bool,
) -> Result<(), ApiError> {
    let me = reviewer.subject.as_str();
    let refusal = if user == Some(me) || compromised.iter().any(|c| c == me) {
        Some("nobody reviews an alert about themselves")
    } else if privileged && reviewer.role != Role::SuperAdmin {
        Some("only a super_admin reviews alerts about admins and privileged logins")
    } else {
        None
    };
    match refusal {
        Some(why) => {
            tracing::info!(reviewer = %me, why, "alert review refused");
            Err(ApiError::NotPermitted(why))
        }
        None => Ok(()),
    }
}

/// Mark an alert reviewed (admin): appends `security_event.reviewed` naming the alert (subject
/// the alert's user) and the `admin.action` record. The earliest review stands. Nobody reviews
/// an alert about themselves; alerts about an admin or super_admin (whom authtrail knows by the
/// roles their sessions were opened with) and `privileged_login` alerts take a super_admin (403).
#[utoipa::path(post, path = "/api/v1/admin/alerts/{id}/review", tag = "admin",
    params(("id" = Uuid, Path, description = "Alert id"), WaitParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Review recorded and projected (`wait=true`)", body = CommandAccepted),
        (status = 202, description = "Review appended to the log", body = CommandAccepted),
        (status = 404, description = "No such alert", body = ProblemDoc, content_type = "application/problem+json"),
    ))]
async fn review(
    Ctx(api): Ctx,
    AdminUser(admin): AdminUser,
    audited: Audited,
    Path(id): Path<String>,
    Query(w): Query<WaitParam>,
) -> Result<CommandAccepted, ApiError> {
    let id = parse_id(&id)?;
    /// What deciding a review takes to know of the alert.
    #[derive(FromRow)]
    struct Found {
        user_id: Option<String>,
        reviewed: bool,
        rule: String,
        /// Accounts `metadata.compromised` names.
        compromised: Vec<String>,
        /// Whether the user's sessions were opened with an admin role.
        admin_user: bool,
    }
    let found: Option<Found> = sqlx::query_as(
        "SELECT a.user_id, a.reviewed, a.rule,
                ARRAY(SELECT c->>'user_id' FROM jsonb_array_elements(
                        CASE WHEN jsonb_typeof(a.metadata->'compromised') = 'array'
                             THEN a.metadata->'compromised' ELSE '[]' END) c
                      WHERE c->>'user_id' IS NOT NULL) AS compromised,
                EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = a.user_id
                          AND s.roles && ARRAY['admin', 'super_admin']::text[]) AS admin_user
         FROM alerts_reviewed a WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(api.pool())
    .await?;
    let Some(Found {
        user_id: user,
        reviewed: already,
        rule,
        compromised,
        admin_user,
    }) = found
    else {
        return Err(ApiError::NotFound("alert"));
    };
    let privileged = admin_user || rule == Rule::PrivilegedLogin.as_str();
    check_may_review(&admin, user.as_deref(), &compromised, privileged)?;
    let details = json!({"alert_id": id, "rule": rule, "already_reviewed": already});
    api.review(&audited, user.as_deref(), id, details, w.wait)
        .await
}

/// One security notice: an alert about the caller's account or a security event they should
/// know of.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
struct NoticeView {
    /// The alert's or the security event's id.
    id: Uuid,
    /// `alert` or `security_event`.
    source: String,
    /// The alert's rule, or the security event's type.
    kind: String,
    /// `info`, `warning`, `error` or `critical`.
    severity: String,
    title: String,
    description: String,
    ip: Option<String>,
    user_agent: Option<String>,
    location: Option<String>,
    /// Events behind it (1 for a security event).
    count: i64,
    first_seen: DateTime<Utc>,
    /// When it was last seen: the list's order.
    occurred_at: DateTime<Utc>,
}

/// My security notices, newest first: alerts about my account (a new device or country,
/// impossible travel, a hijacked session), my password changes, and sessions of mine that
/// policy ended.
#[utoipa::path(get, path = "/api/v1/auth/alerts", tag = "me",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of my security notices", body = Page<NoticeView>),
    ))]
async fn my_notices(
    Ctx(api): Ctx,
    Person(caller): Person,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<NoticeView>>, ApiError> {
    let page = PageRequest::new(NOTICES, q.limit, q.cursor.as_deref())?;
    let rules: Vec<String> = NOTICE_RULES.iter().map(|r| (*r).to_owned()).collect();
    let mut b = QueryBuilder::<Postgres>::new(
        "SELECT * FROM (
           SELECT id, 'alert' AS source, rule AS kind, severity, title, description, ip,
                  NULL::text AS user_agent, NULL::text AS location, count, first_seen,
                  last_seen AS occurred_at
           FROM alerts WHERE user_id = ",
    );
    b.push_bind(caller.subject.clone())
        .push(" AND rule = ANY(")
        .push_bind(rules)
        .push(
            ")
           UNION ALL
           SELECT id, 'security_event', event_type, severity,
                  CASE event_type WHEN 'password_changed' THEN 'Password changed'
                       ELSE 'Session ended by policy' END,
                  description, ip, user_agent, location, 1, occurred_at, occurred_at
           FROM security_events WHERE user_id = ",
        )
        .push_bind(caller.subject.clone())
        .push(
            " AND (event_type = 'password_changed'
                  OR (event_type = 'session_revoked' AND metadata->>'revoked_by' = 'system:policy'))
         ) n WHERE true",
        );
    page.push_order(&mut b, "n.occurred_at", "n.id", "::uuid");
    let rows: Vec<NoticeView> = b.build_query_as().fetch_all(api.pool()).await?;
    Ok(Json(page.page(NOTICES, rows, |r| {
        (r.occurred_at, r.id.to_string())
    })))
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
    fn reviews_of_oneself_and_of_privileged_alerts_are_refused() {
        let admin = caller("ann", Role::Admin);
        let root = caller("rob", Role::SuperAdmin);
        let none: &[String] = &[];
        let refused = |c: &Caller, user, comp: &[String], privileged| {
            check_may_review(c, user, comp, privileged).is_err()
        };
        assert!(!refused(&admin, Some("u1"), none, false));
        assert!(!refused(&admin, None, none, false));
        assert!(refused(&admin, Some("ann"), none, false));
        assert!(refused(&admin, None, &["ann".to_owned()], false));
        assert!(refused(&root, Some("rob"), none, true));
        assert!(refused(&admin, Some("u1"), none, true));
        assert!(!refused(&root, Some("u1"), none, true));
    }
}
