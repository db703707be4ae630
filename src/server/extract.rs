//! Extractors that refuse bad input with problem details (axum's own answer plain text).

use super::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::extract::Query` with a problem-details rejection (unknown parameters are refused too,
/// where the target type says `deny_unknown_fields`).
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // serde's message names the field and the reason; it never holds credentials.
                let reason = e.body_text();
                let reason = reason
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&reason);
                Err(ApiError::InvalidQuery(reason.to_owned()))
            }
            Err(e) => Err(ApiError::InvalidQuery(e.body_text())),
        }
    }
}

/// `axum::Json` with a problem-details rejection.
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType {
                detail: "send Content-Type: application/json".to_owned(),
                accepted: None,
            }),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::InvalidBody {
                reason: e.body_text(),
                syntax: false,
            }),
            Err(e) => Err(ApiError::InvalidBody {
                reason: e.body_text(),
                syntax: true,
            }),
        }
    }
}

/// The most characters a user id may have: the contract's limit for an event's `subject`, which
/// every user id becomes when a command or an audit record names it.
pub(crate) const MAX_USER_ID_CHARS: usize = authtrail_events::parse::MAX_KEY_CHARS;

/// The format characters (Unicode Cf) of the Basic Multilingual Plane, as a regex class body
/// (`authtrail_events::parse::is_format_char` has them all).
macro_rules! format_chars_bmp {
    () => {
        r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    };
}

/// The OpenAPI pattern of a user id: not blank, no control characters, no format characters
/// (what the contract accepts as a `subject`; the few format characters beyond the Basic
/// Multilingual Plane, which an ECMA-262 class without the `u` flag cannot name, are refused by
/// [`user_id`] alone).
pub(crate) const USER_ID_PATTERN: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f",
    format_chars_bmp!(),
    r"]*[^\s\x00-\x1f\x7f-\x9f",
    format_chars_bmp!(),
    r"][^\x00-\x1f\x7f-\x9f",
    format_chars_bmp!(),
    r"]*$"
);

/// A user id from parameter `name`, checked as the contract checks a `subject`.
pub(crate) fn user_id<'a>(name: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.trim().is_empty()
        || id.chars().count() > MAX_USER_ID_CHARS
        || id.chars().any(authtrail_events::parse::is_refused_char)
    {
        return Err(ApiError::param(
            name,
            format!("a user id is 1 to {MAX_USER_ID_CHARS} characters, not blank, without control or format characters"),
        ));
    }
    Ok(id)
}
