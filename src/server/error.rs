//! The one error type of every handler ([`ApiError`]) and the catalogue of problem types
//! ([`ProblemKind`]): each kind's status, slug and title are written here once, and the mapping
//! from an error to its RFC 9457 body happens in one place (`From<ApiError> for Problem`).

use super::problem::Problem;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Every problem type the HTTP APIs answer. The `type` member is `urn:authtrail:problem:<slug>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Unauthorized,
    Forbidden,
    NotFound,
    InvalidParameter,
    InvalidBody,
    MalformedBody,
    InvalidEvent,
    EventNotPermitted,
    UnsupportedMediaType,
    TooLarge,
    Conflict,
    SessionNotActive,
    NoCurrentSession,
    RateLimited,
    Internal,
    LogUnavailable,
    BrokerUnavailable,
    Timeout,
    Busy,
    ProjectionTimeout,
    DemoDisabled,
    DemoUnavailable,
}

impl ProblemKind {
    /// Every kind (for the catalogue's own test: slugs are unique).
    pub const ALL: [ProblemKind; 22] = [
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::NotFound,
        ProblemKind::InvalidParameter,
        ProblemKind::InvalidBody,
        ProblemKind::MalformedBody,
        ProblemKind::InvalidEvent,
        ProblemKind::EventNotPermitted,
        ProblemKind::UnsupportedMediaType,
        ProblemKind::TooLarge,
        ProblemKind::Conflict,
        ProblemKind::SessionNotActive,
        ProblemKind::NoCurrentSession,
        ProblemKind::RateLimited,
        ProblemKind::Internal,
        ProblemKind::LogUnavailable,
        ProblemKind::BrokerUnavailable,
        ProblemKind::Timeout,
        ProblemKind::Busy,
        ProblemKind::ProjectionTimeout,
        ProblemKind::DemoDisabled,
        ProblemKind::DemoUnavailable,
    ];

    /// Status, slug and title.
    const fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use ProblemKind::*;
        match self {
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            InvalidParameter => (
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
            ),
            InvalidBody => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid body",
            ),
            MalformedBody => (
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
            ),
            InvalidEvent => (StatusCode::BAD_REQUEST, "invalid-event", "Invalid event"),
            EventNotPermitted => (
                StatusCode::FORBIDDEN,
                "event-not-permitted",
                "Event not permitted for this credential",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
            ),
            Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
            SessionNotActive => (
                StatusCode::CONFLICT,
                "session-not-active",
                "Session not active",
            ),
            NoCurrentSession => (
                StatusCode::CONFLICT,
                "no-current-session",
                "No current session",
            ),
            RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            LogUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "log-unavailable",
                "Event log unavailable",
            ),
            BrokerUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "broker-unavailable",
                "Broker unavailable",
            ),
            Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Query timed out",
            ),
            Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy"),
            ProjectionTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "projection-timeout",
                "Projection did not catch up in time",
            ),
            DemoDisabled => (
                StatusCode::NOT_FOUND,
                "demo-disabled",
                "Demo sign-in disabled",
            ),
            DemoUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "demo-unavailable",
                "Demo sign-in unavailable",
            ),
        }
    }

    pub(crate) const fn status(self) -> StatusCode {
        self.parts().0
    }

    pub(crate) const fn slug(self) -> &'static str {
        self.parts().1
    }

    pub(crate) const fn title(self) -> &'static str {
        self.parts().2
    }
}

/// What went wrong in a request. Handlers return it; the answer is its problem body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a bad credential. The answer never says which, nor echoes it.
    #[error(
        "missing or invalid credentials: send Authorization: Bearer <jwt> or X-API-Key: <key>"
    )]
    Unauthorized,
    /// A valid caller without the role the route requires.
    #[error("this route requires role {0}")]
    Forbidden(&'static str),
    /// A caller the route admits, refused this one action (the detail says why).
    #[error("{0}")]
    NotPermitted(&'static str),
    /// Nothing of that kind (never whether it exists for someone else).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A path or query parameter (or a field the server checks itself) is invalid.
    #[error("{name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// A parameter problem serde reported, whose message names the field itself.
    #[error("{0}")]
    InvalidQuery(String),
    /// A JSON body with a value of the wrong shape (422), or not JSON at all (400).
    #[error("{reason}")]
    InvalidBody { reason: String, syntax: bool },
    #[error("{0}")]
    MalformedBody(String),
    /// Events refused by the contract or the intake's rules (400), or by the credential's grant
    /// (`forbidden`: 403), listed by index, field and reason.
    #[error("{detail}")]
    InvalidEvents {
        detail: String,
        errors: Value,
        invalid_count: usize,
        forbidden: bool,
    },
    #[error("{detail}")]
    UnsupportedMediaType {
        detail: String,
        accepted: Option<Value>,
    },
    #[error("{what} exceeds the limit of {limit} {unit}")]
    TooLarge {
        what: String,
        limit: usize,
        unit: &'static str,
    },
    #[error("the session is already {0}")]
    SessionNotActive(String),
    /// "All but my current session" from a token that names no session (`sid`).
    #[error("the token carries no sid, so there is no current session to keep; pass include_current=true")]
    NoCurrentSession,
    #[error("the {budget} rate limit for this caller is exhausted; retry after {retry_after} s")]
    RateLimited {
        budget: &'static str,
        retry_after: u64,
    },
    /// The caller already holds `limit` open event streams.
    #[error("this caller already has {limit} open event streams (api.streams_per_caller); close one and retry")]
    TooManyStreams { limit: usize },
    /// A bounded resource is in use, or a dependency did not answer; retry after `retry_after` s.
    #[error("{detail}; retry")]
    Busy {
        detail: &'static str,
        retry_after: u64,
    },
    /// A command could not be appended (the cause is logged where it happened).
    #[error("the event log is unavailable; retry")]
    LogUnavailable,
    /// The intake could not append; some events may be appended, resending is safe.
    #[error("appending to the log failed ({0}); some events may be appended: sending the same request again is safe")]
    BrokerUnavailable(String),
    #[error("the event was appended but not projected within {timeout_ms} ms; it will be")]
    ProjectionTimeout {
        timeout_ms: u128,
        event_id: String,
        partition: i32,
        offset: i64,
    },
    #[error("the demo sign-in exists only when web.demo is on (./dev run)")]
    DemoDisabled,
    #[error("{0}")]
    DemoUnavailable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Anything unexpected; the cause is logged where it happened, never sent.
    #[error("the server could not complete the request")]
    Internal,
}

impl ApiError {
    /// A bad parameter, named.
    pub(crate) fn param(name: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::InvalidParameter {
            name: name.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// The kind of problem this error answers.
    pub(crate) fn kind(&self) -> ProblemKind {
        match self {
            ApiError::Unauthorized => ProblemKind::Unauthorized,
            ApiError::Forbidden(_) | ApiError::NotPermitted(_) => ProblemKind::Forbidden,
            ApiError::NotFound(_) => ProblemKind::NotFound,
            ApiError::InvalidParameter { .. } | ApiError::InvalidQuery(_) => {
                ProblemKind::InvalidParameter
            }
            ApiError::InvalidBody { .. } => ProblemKind::InvalidBody,
            ApiError::MalformedBody(_) => ProblemKind::MalformedBody,
            ApiError::InvalidEvents {
                forbidden: false, ..
            } => ProblemKind::InvalidEvent,
            ApiError::InvalidEvents {
                forbidden: true, ..
            } => ProblemKind::EventNotPermitted,
            ApiError::UnsupportedMediaType { .. } => ProblemKind::UnsupportedMediaType,
            ApiError::TooLarge { .. } => ProblemKind::TooLarge,
            ApiError::SessionNotActive(_) => ProblemKind::SessionNotActive,
            ApiError::NoCurrentSession => ProblemKind::NoCurrentSession,
            ApiError::RateLimited { .. } | ApiError::TooManyStreams { .. } => {
                ProblemKind::RateLimited
            }
            ApiError::Busy { .. } => ProblemKind::Busy,
            ApiError::LogUnavailable => ProblemKind::LogUnavailable,
            ApiError::BrokerUnavailable(_) => ProblemKind::BrokerUnavailable,
            ApiError::ProjectionTimeout { .. } => ProblemKind::ProjectionTimeout,
            ApiError::DemoDisabled => ProblemKind::DemoDisabled,
            ApiError::DemoUnavailable(_) => ProblemKind::DemoUnavailable,
            ApiError::Database(e) => database_kind(e),
            ApiError::Internal => ProblemKind::Internal,
        }
    }

    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidBody { syntax: true, .. } => StatusCode::BAD_REQUEST,
            e => e.kind().status(),
        }
    }
}

/// Constraint and data errors (a bad value that got through) are 4xx, a cancelled statement
/// (timeout) and an exhausted pool are 503, anything else is a 500.
fn database_kind(e: &sqlx::Error) -> ProblemKind {
    if let sqlx::Error::Database(db) = e {
        let code = db.code().unwrap_or_default();
        if code.starts_with("23") {
            return ProblemKind::Conflict;
        }
        if code.starts_with("22") {
            return ProblemKind::InvalidParameter;
        }
        if code == "57014" {
            return ProblemKind::Timeout;
        }
    }
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return ProblemKind::Busy;
    }
    ProblemKind::Internal
}

/// The detail a database error may show: fixed sentences, never the database's own message.
fn database_detail(kind: ProblemKind, e: &sqlx::Error) -> &'static str {
    match kind {
        ProblemKind::Conflict => "the request conflicts with the current state",
        ProblemKind::InvalidParameter => "a parameter has a value the database cannot use",
        ProblemKind::Timeout => {
            tracing::warn!(error = %crate::telemetry::escaped(e), "api: statement cancelled (timeout)");
            "the query took too long; narrow the filters and retry"
        }
        ProblemKind::Busy => {
            tracing::warn!("api: database pool exhausted");
            "the database is busy; retry shortly"
        }
        _ => {
            tracing::error!(error = %crate::telemetry::escaped(e), "api: database error");
            "the server could not complete the request"
        }
    }
}

fn retry_after(p: Problem, secs: u64) -> Problem {
    p.with_header_value(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.to_string()).expect("digits"),
    )
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Problem {
        let kind = e.kind();
        let status = e.status();
        let detail = match &e {
            ApiError::Database(db) => database_detail(kind, db).to_owned(),
            other => other.to_string(),
        };
        let p = Problem::of(kind, detail).with_status(status);
        match e {
            ApiError::Unauthorized => p.with_header(header::WWW_AUTHENTICATE, "Bearer"),
            ApiError::InvalidParameter { name, .. } => p.with("parameter", name),
            ApiError::InvalidEvents {
                errors,
                invalid_count,
                ..
            } => p
                .with("errors", errors)
                .with("invalid_count", invalid_count),
            ApiError::UnsupportedMediaType {
                accepted: Some(a), ..
            } => p.with("accepted", a),
            ApiError::TooLarge { limit, unit, .. } => p.with("limit", limit).with("unit", unit),
            // Not `status`: that member is the HTTP status code (RFC 9457).
            ApiError::NoCurrentSession => p.with("parameter", "include_current"),
            ApiError::SessionNotActive(status) => p.with("session_status", status),
            ApiError::RateLimited { retry_after: s, .. } => {
                retry_after(p.with("retry_after", s), s)
            }
            ApiError::TooManyStreams { limit } => retry_after(p.with("limit", limit), 5),
            ApiError::Busy { retry_after: s, .. } => retry_after(p, s),
            ApiError::ProjectionTimeout {
                event_id,
                partition,
                offset,
                ..
            } => p
                .with("event_id", event_id)
                .with("partition", partition)
                .with("offset", offset),
            ApiError::LogUnavailable | ApiError::BrokerUnavailable(_) => retry_after(p, 1),
            ApiError::Database(_) if status == StatusCode::SERVICE_UNAVAILABLE => retry_after(p, 1),
            _ => p,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_slug_is_unique() {
        let slugs: HashSet<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
    }

    #[test]
    fn a_problem_names_its_parameter() {
        let p = Problem::from(ApiError::param("limit", "must be 1 to 500"));
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        assert_eq!(p.body()["parameter"], "limit");
        assert_eq!(p.detail, "limit: must be 1 to 500");
    }
}
