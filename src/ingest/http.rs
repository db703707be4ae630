//! `POST /v1/events`: the HTTP intake.
//!
//! Request: credentials (see [`crate::auth`]; role `service` or an API key), a `Content-Type`
//! naming the framing (see [`super::framing`]) and the body. Steps: authenticate (401/403),
//! check the media type (415), read at most `ingest.max_body_bytes` (413), split and validate
//! every event (400 naming index, field and reason; 413 over `ingest.max_batch_events`), enrich,
//! append, and answer once the broker acknowledged every event:
//!
//! ```json
//! 200 {"accepted": 2, "events": [{"id": "…", "partition": 3, "offset": 41}, …]}
//! ```
//!
//! Errors are RFC 9457 problem details. A broker failure is 503: some events may already be
//! appended, and sending the same request again is safe (ids are idempotency keys).

use super::{decode, framing, too_large, Intake};
use crate::auth::ServiceCaller;
use crate::http::AppState;
use crate::kafka::Appended;
use crate::problem::Problem;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// The intake's routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(post_events))
}

/// The answer to an accepted request.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub events: Vec<Appended>,
}

fn not_configured() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "intake-unavailable",
        "Intake unavailable",
        "this server was started without the event intake",
    )
}

fn count_request(outcome: &'static str) {
    metrics::counter!("authtrail_ingest_requests_total", "outcome" => outcome).increment(1);
}

async fn post_events(
    State(state): State<AppState>,
    ServiceCaller(caller): ServiceCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, Problem> {
    let started = Instant::now();
    let Some(intake) = state.intake().cloned() else {
        return Err(not_configured());
    };
    let result = handle(&intake, &headers, body).await;
    match &result {
        Ok(a) => {
            count_request("accepted");
            tracing::info!(caller = %caller.subject, events = a.accepted, elapsed_ms = started.elapsed().as_millis() as u64, "events accepted");
        }
        Err(p) => {
            count_request(p.slug);
            tracing::info!(caller = %caller.subject, status = p.status.as_u16(), problem = p.slug, detail = %p.detail, "events refused");
        }
    }
    result.map(Json)
}

async fn handle(
    intake: &Arc<Intake>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Problem> {
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
            if p.status == StatusCode::PAYLOAD_TOO_LARGE {
                reject_request("too_large")
            }
        })?;
    let events = decode(framing, &bytes, limits).inspect_err(|p| {
        if p.status == StatusCode::PAYLOAD_TOO_LARGE {
            reject_request("too_many")
        }
    })?;
    let count = events.len();
    let appended = intake.submit(events).await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker-unavailable",
            "Broker unavailable",
            format!("appending to the log failed ({e}); some events may be appended: sending the same request again is safe"),
        )
        .with_header(header::RETRY_AFTER, "1")
    })?;
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
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed request body",
                format!("reading the body failed: {e}"),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(too_large("request body", limit, "bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
