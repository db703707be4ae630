//! RFC 9457 problem details: the one error body of every authtrail HTTP API.
//!
//! A [`Problem`] is `application/problem+json` with `type`, `title`, `status`, `detail` and any
//! extension members (e.g. `errors: [{index, field, reason}]` for a refused batch, `limit` for a
//! 413). Details name the field and the reason; they never echo a credential or a secret value.

use super::error::ProblemKind;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The media type of a problem body.
pub(crate) const CONTENT_TYPE: &str = "application/problem+json";

/// One problem body. Handlers return [`super::ApiError`], which becomes one of these in one
/// place; build one directly only for a kind of [`ProblemKind`].
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub(crate) status: StatusCode,
    /// A short slug; the `type` member is `urn:authtrail:problem:<slug>`.
    slug: &'static str,
    title: String,
    pub(crate) detail: String,
    /// Extension members, serialised next to the standard ones.
    extensions: Map<String, Value>,
    /// Extra response headers (e.g. `WWW-Authenticate` on a 401).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of `kind` (its status, slug and title) with `detail`.
    pub(crate) fn of(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem {
            status: kind.status(),
            slug: kind.slug(),
            title: kind.title().to_owned(),
            detail: detail.into(),
            extensions: Map::new(),
            headers: Vec::new(),
        }
    }

    /// The same problem answered with another status of its kind (a JSON syntax error is 400,
    /// a JSON shape error 422: both `invalid-body`).
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds an extension member (`errors`, `limit`, ...).
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// Adds a header with a computed value (e.g. `Retry-After`).
    pub(crate) fn with_header_value(
        mut self,
        name: header::HeaderName,
        value: HeaderValue,
    ) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `type` URI.
    fn type_uri(&self) -> String {
        format!("urn:authtrail:problem:{}", self.slug)
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.type_uri().into());
        m.insert("title".into(), self.title.clone().into());
        m.insert("status".into(), self.status.as_u16().into());
        m.insert("detail".into(), self.detail.clone().into());
        for (k, v) in &self.extensions {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

/// An RFC 9457 problem (`application/problem+json`), as every error of the HTTP APIs answers:
/// the schema of the document's error responses.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemDoc {
    /// `urn:authtrail:problem:<slug>`.
    #[serde(rename = "type")]
    type_: String,
    title: String,
    status: u16,
    detail: String,
}
