//! Dashboards for admins: login counts per day, by country, by device type (from the
//! incrementally maintained `daily_login_stats`), the addresses with the most failed logins
//! and the peak usage times (from `login_history`). Windows are whole UTC days ending today,
//! except the peak usage times' (the last `days` × 24 hours, seen in the viewer's time zone).

use super::Ctx;
use crate::server::extract::Query;
use crate::server::{AdminUser, Admits, ApiError, Audit, Budget, Policy, Routes, Target};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes() -> Routes {
    let audited = |action| {
        Policy::new(
            Admits::Admin,
            Budget::Read,
            Audit::Read(action, Target::None),
        )
    };
    Routes::new()
        .add(audited("stats.logins"), routes!(logins))
        .add(audited("stats.geo"), routes!(geo))
        .add(audited("stats.devices"), routes!(devices))
        .add(audited("stats.top_failing_ips"), routes!(top_failing_ips))
        .add(audited("stats.peak_hours"), routes!(peak_hours))
}

/// Longest window (days).
const MAX_DAYS: u32 = 366;

/// The window of a statistic.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DaysQuery {
    /// Whole UTC days ending today, 1 to 366 (default 7).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
}

fn days(d: Option<u32>) -> Result<i32, ApiError> {
    let d = d.unwrap_or(7);
    if !(1..=MAX_DAYS).contains(&d) {
        return Err(ApiError::param(
            "days",
            format!("must be between 1 and {MAX_DAYS}"),
        ));
    }
    Ok(d as i32)
}

/// The first day of a window of `days` days ending today (UTC), as SQL.
const WINDOW_START: &str = "((now() AT TIME ZONE 'UTC')::date - ($1::int - 1))";

/// Counts of one day.
#[derive(Debug, Serialize, FromRow, ToSchema)]
struct DayCounts {
    day: NaiveDate,
    total: i64,
    successful: i64,
    failed: i64,
    suspicious: i64,
}

/// Login statistics over a window.
#[derive(Debug, Serialize, ToSchema)]
struct LoginStats {
    days: i32,
    since: NaiveDate,
    total: i64,
    successful: i64,
    failed: i64,
    suspicious: i64,
    /// Every day of the window, oldest first (days without logins count zero).
    per_day: Vec<DayCounts>,
}

/// Logins per day: total, successful, failed, suspicious (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats/logins", tag = "stats",
    params(DaysQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Login counts", body = LoginStats),
    ))]
async fn logins(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<DaysQuery>,
) -> Result<Json<LoginStats>, ApiError> {
    let days = days(q.days)?;
    let sql = format!(
        "SELECT d::date AS day,
                coalesce(sum(s.successes + s.failures), 0)::bigint AS total,
                coalesce(sum(s.successes), 0)::bigint AS successful,
                coalesce(sum(s.failures), 0)::bigint AS failed,
                coalesce(sum(s.suspicious), 0)::bigint AS suspicious
         FROM generate_series({WINDOW_START}, (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
         LEFT JOIN daily_login_stats s ON s.day = d::date
         GROUP BY d ORDER BY d"
    );
    let per_day = sqlx::query_as::<_, DayCounts>(&sql)
        .bind(days)
        .fetch_all(api.pool())
        .await?;
    let sum = |f: fn(&DayCounts) -> i64| per_day.iter().map(f).sum::<i64>();
    Ok(Json(LoginStats {
        days,
        since: per_day.first().map(|d| d.day).unwrap_or_default(),
        total: sum(|d| d.total),
        successful: sum(|d| d.successful),
        failed: sum(|d| d.failed),
        suspicious: sum(|d| d.suspicious),
        per_day,
    }))
}

/// Counts of one group (a country or a device type) over the window.
#[derive(Debug, Serialize, FromRow, ToSchema)]
struct GroupCounts {
    /// The country code or device type; absent when unknown.
    key: Option<String>,
    total: i64,
    successful: i64,
    failed: i64,
    suspicious: i64,
}

/// Counts per group, most logins first.
#[derive(Debug, Serialize, ToSchema)]
struct GroupStats {
    days: i32,
    /// `country_code` or `device_type`.
    group_by: String,
    groups: Vec<GroupCounts>,
}

async fn grouped(
    api: &super::Api,
    column: &'static str,
    q: DaysQuery,
) -> Result<Json<GroupStats>, ApiError> {
    let days = days(q.days)?;
    let sql = format!(
        "SELECT NULLIF({column}, '') AS key,
                sum(successes + failures)::bigint AS total, sum(successes)::bigint AS successful,
                sum(failures)::bigint AS failed, sum(suspicious)::bigint AS suspicious
         FROM daily_login_stats WHERE day >= {WINDOW_START}
         GROUP BY {column} ORDER BY total DESC, key NULLS LAST"
    );
    let groups = sqlx::query_as::<_, GroupCounts>(&sql)
        .bind(days)
        .fetch_all(api.pool())
        .await?;
    Ok(Json(GroupStats {
        days,
        group_by: column.to_owned(),
        groups,
    }))
}

/// Logins by country (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats/geo", tag = "stats",
    params(DaysQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Login counts per country", body = GroupStats),
    ))]
async fn geo(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<DaysQuery>,
) -> Result<Json<GroupStats>, ApiError> {
    grouped(&api, "country_code", q).await
}

/// Logins by device type (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats/devices", tag = "stats",
    params(DaysQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Login counts per device type", body = GroupStats),
    ))]
async fn devices(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<DaysQuery>,
) -> Result<Json<GroupStats>, ApiError> {
    grouped(&api, "device_type", q).await
}

/// Window and size of the failing-address ranking.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TopQuery {
    /// Whole UTC days ending today, 1 to 366 (default 7).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
    /// How many addresses, 1 to 500 (default 10).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// One address and its failed logins.
#[derive(Debug, Serialize, FromRow, ToSchema)]
struct FailingIp {
    ip: String,
    failures: i64,
    /// Distinct accounts (or identifiers, for unknown users) tried from it.
    accounts: i64,
    last_failure_at: DateTime<Utc>,
}

/// The ranking.
#[derive(Debug, Serialize, ToSchema)]
struct TopFailingIps {
    days: i32,
    ips: Vec<FailingIp>,
}

/// Addresses with the most failed logins in the window, most first (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats/top-failing-ips", tag = "stats",
    params(TopQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Failing addresses", body = TopFailingIps),
    ))]
async fn top_failing_ips(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<TopQuery>,
) -> Result<Json<TopFailingIps>, ApiError> {
    let days = days(q.days)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=super::pagination::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::param("limit", "must be between 1 and 500"));
    }
    let sql = format!(
        "SELECT ip, count(*)::bigint AS failures,
                count(DISTINCT coalesce(user_id, lower(identifier)))::bigint AS accounts,
                max(attempted_at) AS last_failure_at
         FROM login_history
         WHERE NOT success AND ip IS NOT NULL AND attempted_at >= ({WINDOW_START})::timestamp AT TIME ZONE 'UTC'
         GROUP BY ip ORDER BY failures DESC, ip LIMIT $2"
    );
    let ips = sqlx::query_as::<_, FailingIp>(&sql)
        .bind(days)
        .bind(i64::from(limit))
        .fetch_all(api.pool())
        .await?;
    Ok(Json(TopFailingIps { days, ips }))
}

/// Window and time zone of the peak usage times.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PeakQuery {
    /// The last `days` × 24 hours, 1 to 366 (default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u32>,
    /// The viewer's time zone, an IANA name such as `Europe/Paris` (default `UTC`); hours and
    /// weekdays are counted on its local clock.
    #[param(max_length = 64, pattern = "^[A-Za-z0-9_+/-]+$")]
    tz: Option<String>,
}

/// Successful logins in one hour of one weekday (local time).
#[derive(Debug, Serialize, FromRow, ToSchema)]
struct PeakCell {
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    weekday: i32,
    /// Hour of the day, 0 to 23.
    hour: i32,
    logins: i64,
}

/// Logins by hour of day × weekday.
#[derive(Debug, Serialize, ToSchema)]
struct PeakHours {
    days: i32,
    tz: String,
    since: DateTime<Utc>,
    total: i64,
    /// All 168 cells, Monday 00h first, then by weekday and hour.
    cells: Vec<PeakCell>,
}

/// The time zone names PostgreSQL knows (its IANA database), read once: the view is slow to
/// scan, and the set only changes with a server upgrade.
async fn time_zones(
    api: &super::Api,
) -> Result<&'static std::collections::BTreeSet<String>, ApiError> {
    static ZONES: tokio::sync::OnceCell<std::collections::BTreeSet<String>> =
        tokio::sync::OnceCell::const_new();
    ZONES
        .get_or_try_init(|| async {
            let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pg_timezone_names")
                .fetch_all(api.pool())
                .await?;
            Ok::<_, ApiError>(names.into_iter().collect())
        })
        .await
}

/// Peak usage times: successful logins by hour of day × weekday in the viewer's time zone
/// (admin).
#[utoipa::path(get, path = "/api/v1/admin/stats/peak-hours", tag = "stats",
    params(PeakQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logins per weekday and hour", body = PeakHours),
    ))]
async fn peak_hours(
    Ctx(api): Ctx,
    AdminUser(_admin): AdminUser,
    Query(q): Query<PeakQuery>,
) -> Result<Json<PeakHours>, ApiError> {
    let days = days(Some(q.days.unwrap_or(30)))?;
    let tz = q.tz.unwrap_or_else(|| "UTC".to_owned());
    if tz.len() > 64 || !time_zones(&api).await?.contains(&tz) {
        return Err(ApiError::param(
            "tz",
            "not a known IANA time zone name (e.g. Europe/Paris, UTC)",
        ));
    }
    let since: DateTime<Utc> = sqlx::query_scalar("SELECT now() - make_interval(days => $1)")
        .bind(days)
        .fetch_one(api.pool())
        .await?;
    let cells = sqlx::query_as::<_, PeakCell>(
        "SELECT wd AS weekday, hr AS hour, coalesce(c.n, 0)::bigint AS logins
         FROM generate_series(1, 7) AS wd CROSS JOIN generate_series(0, 23) AS hr
         LEFT JOIN (SELECT extract(isodow FROM attempted_at AT TIME ZONE $2)::int AS local_wd,
                           extract(hour FROM attempted_at AT TIME ZONE $2)::int AS local_hr,
                           count(*) AS n
                    FROM login_history WHERE success AND attempted_at >= $1
                    GROUP BY 1, 2) AS c ON c.local_wd = wd AND c.local_hr = hr
         ORDER BY wd, hr",
    )
    .bind(since)
    .bind(&tz)
    .fetch_all(api.pool())
    .await?;
    Ok(Json(PeakHours {
        days,
        total: cells.iter().map(|c| c.logins).sum(),
        tz,
        since,
        cells,
    }))
}
