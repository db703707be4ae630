//! `POST /v1/events`: the HTTP intake.
//!
//! Request: credentials (see [`crate::auth`]; role `service` or an API key), a `Content-Type`
//! naming the framing (see [`super::framing`]) and the body. Steps: authenticate (401/403),
//! check the media type (415), read at most `ingest.max_body_bytes` (413), split and validate
//! every event (400 naming index, field and reason; 413 over `ingest.max_batch_events`), check
//! them against the credential's grant (403 for a type or source it does not hold) and the time
//! window (400 naming `time`), stamp the credential as `publisher`, enrich, append, and answer
//! once the broker acknowledged every event:
//!
//! ```json
//! 200 {"accepted": 2, "events": [{"id": "…", "partition": 3, "offset": 41}, …]}
//! ```
//!
//! Errors are RFC 9457 problem details. A broker failure is 503: some events may already be
//! appended, and sending the same request again is safe (ids are idempotency keys).

use super::{admit, decode, framing, too_large, Intake};
use crate::auth::Caller;
use crate::kafka::Appended;
use crate::server::{Admits, ApiError, AppState, Audit, Budget, Policy, Routes, ServiceCaller};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use utoipa_axum::routes;

/// The intake's routes. Any service credential may publish; the cost of a request is bounded
/// by the body and batch limits, and each credential's request rate by
/// `ingest.requests_per_minute` (429 with `Retry-After`).
pub(crate) fn router(intake: Arc<Intake>) -> Router<AppState> {
    let publish = Policy::new(Admits::Service, Budget::Intake, Audit::No);
    let (router, _) = Routes::new()
        .add(publish, routes!(post_events))
        .split(utoipa::openapi::OpenApi::default());
    router.layer(Extension(intake))
}

/// The answer to an accepted request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Accepted {
    accepted: usize,
    #[schema(value_type = Vec<Object>)]
    events: Vec<Appended>,
}

fn count_request(outcome: &'static str) {
    metrics::counter!("authtrail_ingest_requests_total", "outcome" => outcome).increment(1);
}

/// Append events (role `service` or an API key).
#[utoipa::path(post, path = "/v1/events", tag = "intake",
    responses((status = 200, description = "Every event appended", body = Accepted)))]
async fn post_events(
    Extension(intake): Extension<Arc<Intake>>,
    ServiceCaller(caller): ServiceCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let started = Instant::now();
    let result = handle(&intake, &caller, &headers, body).await;
    match &result {
        Ok(a) => {
            count_request("accepted");
            tracing::info!(caller = ?caller.subject, events = a.accepted, elapsed_ms = started.elapsed().as_millis() as u64, "events accepted");
        }
        Err(e) => {
            let slug = e.kind().slug();
            count_request(slug);
            tracing::info!(caller = ?caller.subject, status = e.status().as_u16(), problem = slug, detail = %crate::telemetry::escaped(e), "events refused");
        }
    }
    result.map(Json)
}

async fn handle(
    intake: &Arc<Intake>,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let limits = intake.limits();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let framing =
        framing(content_type).inspect_err(|_| reject_request("unsupported_media_type"))?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limits.max_body_bytes as u64 {
            reject_request("too_large");
            return Err(too_large("request body", limits.max_body_bytes, "bytes"));
        }
    }
    let bytes = read_limited(body, limits.max_body_bytes)
        .await
        .inspect_err(|p| {
            if p.status() == StatusCode::PAYLOAD_TOO_LARGE {
                reject_request("too_large")
            }
        })?;
    let events = decode(framing, &bytes, limits).inspect_err(|p| {
        if p.status() == StatusCode::PAYLOAD_TOO_LARGE {
            reject_request("too_many")
        }
    })?;
    admit(&events, &caller.grant, chrono::Utc::now(), limits)?;
    let count = events.len();
    let appended = intake
        .submit(events, &caller.publisher())
        .await
        .map_err(|e| ApiError::BrokerUnavailable(e.to_string()))?;
    Ok(Accepted {
        accepted: count,
        events: appended,
    })
}

/// A refusal before events could be told apart.
fn reject_request(reason: &'static str) {
    metrics::counter!("authtrail_ingest_events_rejected_total", "type" => "unknown", "reason" => reason)
        .increment(1);
}

/// Reads the body, refusing more than `limit` bytes without buffering them.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedBody(format!("reading the body failed: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large("request body", limit, "bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
