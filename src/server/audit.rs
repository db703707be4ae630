//! The audit trail of the API itself: every admin read and write is appended to the log as an
//! `admin.action` event, like any other fact.
//!
//! Reads are recorded by the route layer (`super::routes`) while the handler runs; the answer
//! goes out only once the record is appended (no audit, no data). Commands append their record
//! together with the command's own events in one publish ([`Audited`]), so the log never holds a
//! revocation without the admin who made it.

use super::ApiError;
use crate::auth::Caller;
use authtrail_events::data::{AdminAction, NonEmpty};
use authtrail_events::{Event, EventData};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The `source` of every event the API appends (under `/authtrail/`, which no publisher may
/// claim).
const SOURCE: &str = "/authtrail/api";
/// The `publisher` stamped on every event the API appends (credentials are stamped
/// `api-key:…` or `service:…`, so no credential can be mistaken for it).
pub(crate) const PUBLISHER: &str = "authtrail:api";

/// An event the API appends about `subject`.
pub(crate) fn event(subject: &str, data: EventData) -> Event {
    Event {
        id: Uuid::new_v4(),
        source: SOURCE.to_owned(),
        time: Utc::now(),
        subject: Some(subject.to_owned()),
        publisher: Some(PUBLISHER.to_owned()),
        personal: None,
        data,
    }
}

/// `s`, or `unknown` when empty (the contract's non-empty strings).
pub(crate) fn non_empty(s: &str) -> NonEmpty {
    NonEmpty::try_from(s.to_owned()).unwrap_or_else(|_| {
        NonEmpty::try_from("unknown".to_owned()).expect("a literal is not empty")
    })
}

/// An `admin.action` event: `admin` did `action` (about `target`, when one user is concerned).
/// Its subject is the target user, else the admin.
pub(crate) fn admin_action(
    admin: &Caller,
    action: &str,
    target: Option<&str>,
    details: Value,
) -> Event {
    let details: Option<Map<String, Value>> = match details {
        Value::Object(m) if !m.is_empty() => Some(m),
        _ => None,
    };
    event(
        target.unwrap_or(&admin.subject),
        EventData::AdminAction(AdminAction {
            action: non_empty(action),
            actor: non_empty(&admin.subject),
            target_user: target.map(str::to_owned),
            details,
        }),
    )
}

/// The API builds its events directly; they must still pass the contract's parser, or the
/// projector would set them aside as dead letters. A value from the request that breaks the
/// contract (an over-long user id, say) is the caller's 400, named by field.
pub(crate) fn check_contract(event: &Event) -> Result<(), ApiError> {
    authtrail_events::parse(&event.to_json_bytes())
        .map(|_| ())
        .map_err(|e| {
            ApiError::param(
                "request",
                format!(
                    "the resulting {} event would be invalid: {e}",
                    event.event_type()
                ),
            )
        })
}

/// The audit record an audited command must append with its events: who, and the action its
/// route declared. Only the route layer creates one, for a route declared
/// `super::routes::Audit::Command`.
#[derive(Debug, Clone)]
pub struct Audited {
    pub(crate) caller: Caller,
    pub(crate) action: &'static str,
}

impl Audited {
    /// The `admin.action` event of this command, about `target`.
    pub(crate) fn event(&self, target: Option<&str>, details: Value) -> Event {
        admin_action(&self.caller, self.action, target, details)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Audited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Audited>().cloned().ok_or_else(|| {
            tracing::error!(
                path = ?parts.uri.path(),
                "a handler asks for an audit record but its route is not declared an audited command"
            );
            ApiError::Internal
        })
    }
}
