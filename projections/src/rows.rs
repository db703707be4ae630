//! The rows of the read tables, as plain values. Field names are the column names; the SQL sink
//! in the main crate writes them as they are (serde → `COPY`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The device and place of a login or session, as the event said (enriched at ingest). The
/// query API shows it as it is (feature `api`: read from SQL, described in OpenAPI).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(sqlx::FromRow, utoipa::ToSchema))]
pub struct Client {
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub device_type: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub country_code: Option<String>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// One session: everything the auth services track about it, as facts. Status is not stored: queries evaluate
/// it against "now" from these facts (see [`Session::status_at`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub user_id: String,
    pub login_method: Option<String>,
    pub identifier: Option<String>,
    /// Where and on what (columns of their own in the table).
    #[serde(flatten)]
    pub client: Client,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// When the current credentials expire (extended by each refresh).
    pub expires_at: DateTime<Utc>,
    /// `created_at` + the absolute timeout: no refresh extends a session past it.
    pub absolute_expires_at: DateTime<Utc>,
    /// `last_activity_at` + the idle timeout.
    pub idle_expires_at: DateTime<Utc>,
    pub refresh_count: i32,
    pub refresh_token_id: Option<String>,
    /// Every refresh-token id this session has rotated away from; presenting one again is reuse.
    pub rotated_refresh_token_ids: Vec<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    pub revoked_by: Option<String>,
    pub logged_out_at: Option<DateTime<Utc>>,
    /// `revoked_at` or `logged_out_at`, whichever came first.
    pub ended_at: Option<DateTime<Utc>>,
    pub trusted_device: bool,
    pub otp_required: bool,
    pub otp_verified: bool,
    pub roles: Vec<String>,
    pub suspicious: bool,
    pub suspicious_reason: Option<String>,
    pub metadata: serde_json::Value,
    /// The event that created the row and the last event that changed it.
    pub first_event_id: Uuid,
    pub last_event_id: Uuid,
}

/// Session status at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Expired,
    IdleExpired,
    Revoked,
    LoggedOut,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Expired => "expired",
            SessionStatus::IdleExpired => "idle_expired",
            SessionStatus::Revoked => "revoked",
            SessionStatus::LoggedOut => "logged_out",
        }
    }
}

impl Session {
    /// The status at `t`. The SQL view `session_status` computes the same thing in queries.
    pub fn status_at(&self, t: DateTime<Utc>) -> SessionStatus {
        match (self.revoked_at, self.logged_out_at) {
            (Some(r), Some(l)) if l < r && l <= t => return SessionStatus::LoggedOut,
            (Some(r), _) if r <= t => return SessionStatus::Revoked,
            (_, Some(l)) if l <= t => return SessionStatus::LoggedOut,
            _ => {}
        }
        if t >= self.expires_at || t >= self.absolute_expires_at {
            SessionStatus::Expired
        } else if t >= self.idle_expires_at {
            SessionStatus::IdleExpired
        } else {
            SessionStatus::Active
        }
    }

    pub fn is_active_at(&self, t: DateTime<Utc>) -> bool {
        self.status_at(t) == SessionStatus::Active
    }

    /// The last instant the session can be active without a new event.
    pub fn horizon(&self) -> DateTime<Utc> {
        self.expires_at
            .min(self.absolute_expires_at)
            .min(self.idle_expires_at)
    }
}

/// One login attempt, success or failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginAttempt {
    /// The event id.
    pub id: Uuid,
    pub user_id: Option<String>,
    /// The partition key of the attempt: the user, or for unknown users the lower-cased
    /// identifier. Failed-attempt rules count per key.
    pub subject_key: String,
    pub identifier: Option<String>,
    pub success: bool,
    pub login_method: Option<String>,
    pub failure_reason: Option<String>,
    /// Where and on what (columns of their own in the table).
    #[serde(flatten)]
    pub client: Client,
    pub otp_required: bool,
    pub otp_verified: bool,
    pub suspicious: bool,
    pub suspicious_reason: Option<String>,
    pub session_id: Option<String>,
    pub attempted_at: DateTime<Utc>,
}

impl LoginAttempt {
    /// What the rules remember of it when it is a successful login (`crate::state::PastLogin`).
    pub fn past_login(&self) -> crate::state::PastLogin {
        let c = &self.client;
        let place = match (&c.city, &c.country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (None, Some(country)) => Some(country.clone()),
            (Some(city), None) => Some(city.clone()),
            (None, None) => c.country_code.clone(),
        };
        crate::state::PastLogin {
            at: self.attempted_at,
            event_id: self.id,
            country_code: c.country_code.clone(),
            device: c.device_id.clone().or_else(|| c.user_agent.clone()),
            ip: c.ip.clone(),
            point: c.latitude.zip(c.longitude),
            place,
            flagged: false,
        }
    }
}

/// One security event (its type in the taxonomy × severity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Deterministic: UUIDv5 of the source event id and the kind, so replays give the same ids.
    pub id: Uuid,
    pub user_id: Option<String>,
    pub event_type: String,
    pub severity: Severity,
    pub description: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_name: Option<String>,
    /// "City, Country" when known.
    pub location: Option<String>,
    pub metadata: serde_json::Value,
    pub source_event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

/// How serious a security event is; stored (and serialised) as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    /// Allowed by the table; no rule raises it yet.
    Error,
    Critical,
}

impl Severity {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An admin's review of a security event. Kept apart from the event so that the two can be
/// projected in either order (they may come from different partitions).
///
/// The first review in the log stands. All reviews of one security event share a partition
/// (their key is the security event's id), so "first" is the log's order, never the
/// producer's `time`: a review cannot be backdated to beat one already recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub security_event_id: Uuid,
    pub reviewer: String,
    pub reviewed_at: DateTime<Utc>,
    pub review_event_id: Uuid,
}

/// A device a user trusts (or trusted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedDevice {
    pub user_id: String,
    pub device_id: String,
    pub device_name: Option<String>,
    pub trusted: bool,
    pub trusted_at: Option<DateTime<Utc>>,
    pub untrusted_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl TrustedDevice {
    /// A device first seen at `t`: no name, trusted or not, no trust change recorded yet.
    pub fn first_seen(user_id: &str, device_id: &str, trusted: bool, t: DateTime<Utc>) -> Self {
        TrustedDevice {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            device_name: None,
            trusted,
            trusted_at: None,
            untrusted_at: None,
            updated_at: t,
        }
    }
}

/// What the projection knows of a user across sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub user_id: String,
    pub first_login_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub successful_logins: i64,
    pub failed_logins: i64,
    pub locked: bool,
    pub locked_reason: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub password_changed_at: Option<DateTime<Utc>>,
}

impl UserProfile {
    pub fn new(user_id: &str) -> Self {
        UserProfile {
            user_id: user_id.to_owned(),
            first_login_at: None,
            last_login_at: None,
            successful_logins: 0,
            failed_logins: 0,
            locked: false,
            locked_reason: None,
            locked_until: None,
            password_changed_at: None,
        }
    }
}

/// Per-day login counts by country and device type: an additive delta (the sink adds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatCounts {
    pub successes: i64,
    pub failures: i64,
    pub suspicious: i64,
}

/// Key of [`StatCounts`]: empty strings stand for "unknown".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatKey {
    pub day: NaiveDate,
    pub country_code: String,
    pub device_type: String,
}
