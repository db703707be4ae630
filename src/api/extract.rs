//! Extractors that refuse bad input with RFC 9457 problem details (axum's own answer plain text).

use crate::problem::Problem;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A bad parameter: 400 naming it and why.
pub fn bad_param(name: &str, reason: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        "Invalid parameter",
        format!("{name}: {reason}"),
    )
    .with("parameter", name)
}

/// `axum::extract::Query` with a problem-details rejection (unknown parameters are refused too,
/// where the target type says `deny_unknown_fields`).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // serde's message names the field and the reason; it never holds credentials.
                let reason = e.body_text();
                let reason = reason
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&reason);
                Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-parameter",
                    "Invalid parameter",
                    reason.to_owned(),
                ))
            }
            Err(e) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                e.body_text(),
            )),
        }
    }
}

/// `axum::Json` with a problem-details rejection.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid body",
                e.body_text(),
            )),
            Err(e) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "Invalid body",
                e.body_text(),
            )),
        }
    }
}
