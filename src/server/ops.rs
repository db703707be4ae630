//! The operational routes every deployment needs: `/healthz` (the process runs), `/readyz`
//! (broker and database answer) and `/metrics` (Prometheus).
//!
//! Probes carry no credentials, so `/healthz` and `/readyz` are open and say no more than ok or
//! not ok (the reasons go to the log); `/readyz` answers from a check at most
//! [`READY_TTL`] old, made once however many probes arrive. `/metrics` answers loopback peers
//! (a scraper beside the server), and any peer presenting `http.metrics_token` as a bearer
//! token.

use super::{ApiError, AppState};
use crate::kafka;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long one readiness check answers `/readyz`.
pub(crate) const READY_TTL: Duration = Duration::from_secs(2);

/// What the intake can add to an event, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrichment {
    /// GeoIP and user-agent data loaded.
    Ok,
    /// No GeoIP database: events get no place, and the new-country rule never fires.
    NoGeoip,
}

/// `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The last readiness check: when, and its verdict.
#[derive(Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// `200 {"status": "ok"}` or `503 {"status": "not ok"}`, from a check at most [`READY_TTL`] old.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Held across the check: concurrent probes wait for one check instead of each making one.
    let mut last = state.readiness().last.lock().await;
    let ready = match *last {
        Some((at, ready)) if at.elapsed() < READY_TTL => ready,
        previous => {
            let ready = check(&state).await;
            if previous.map(|(_, r)| r) != Some(ready) && ready {
                tracing::info!("ready: broker and database answer");
            }
            *last = Some((Instant::now(), ready));
            ready
        }
    };
    drop(last);
    if ready {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ok" })),
        )
    }
}

/// Whether broker and database answer; the details go to the log.
async fn check(state: &AppState) -> bool {
    let kafka = match tokio::time::timeout(
        Duration::from_secs(6),
        kafka::topic_partitions(&state.config().kafka),
    )
    .await
    {
        Ok(Ok(Some(_))) => "ok".to_owned(),
        Ok(Ok(None)) => format!("topic {} missing", state.config().kafka.topic),
        Ok(Err(e)) => format!("unreachable: {e}"),
        Err(_) => "timeout".to_owned(),
    };
    let database = match tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(state.pool()),
    )
    .await
    {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!(
            "unreachable: {}",
            e.to_string().lines().next().unwrap_or("")
        ),
        Err(_) => "timeout".to_owned(),
    };
    let ready = kafka == "ok" && database == "ok";
    if !ready {
        tracing::warn!(%kafka, %database, "not ready");
    }
    // Without GeoIP the server still takes events (ready), but records no place for them:
    // logged with every check, so a deployment that forgot its GeoIP data shows it.
    if state.enrichment() == Enrichment::NoGeoip {
        tracing::warn!("enrichment degraded: no GeoIP database (ingest.geoip_databases): events get no country or city, and the new-country rule never fires");
    }
    ready
}

/// The Prometheus text, for a loopback peer or a bearer of `http.metrics_token`.
async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    if let Err(e) = metrics_allowed(&state.config().http.metrics_token, peer, request.headers()) {
        return e.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
        .into_response()
}

/// Whether `/metrics` answers this request: the configured bearer token from anywhere, else
/// only a loopback peer that no proxy forwarded (behind a proxy on the same host every peer
/// is loopback, so a forwarded request is never local).
fn metrics_allowed(
    token: &crate::config::Secret,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if peer.is_some_and(|p| p.ip().is_loopback()) && !forwarded {
        return Ok(());
    }
    if token.is_empty() {
        return Err(ApiError::NotPermitted(
            "/metrics answers loopback peers only; set http.metrics_token to scrape from elsewhere",
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    let (want, got) = (
        Sha256::digest(token.expose().as_bytes()),
        Sha256::digest(presented.as_bytes()),
    );
    if bool::from(want.ct_eq(&got)) {
        Ok(())
    } else {
        tracing::info!(peer = ?peer, "/metrics refused: no or a wrong metrics token");
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn metrics_answer_loopback_or_the_token_only() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let none = crate::config::Secret::default();
        let token = crate::config::Secret::from("scrape-token");
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
            h
        };
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(metrics_allowed(&none, Some(local), &HeaderMap::new()).is_ok());
        assert!(metrics_allowed(&none, Some(remote), &HeaderMap::new()).is_err());
        assert!(metrics_allowed(&none, None, &HeaderMap::new()).is_err());
        assert!(metrics_allowed(&none, Some(local), &forwarded).is_err());
        assert!(metrics_allowed(&token, Some(remote), &bearer("scrape-token")).is_ok());
        assert!(metrics_allowed(&token, Some(remote), &bearer("wrong")).is_err());
        assert!(metrics_allowed(&token, Some(remote), &HeaderMap::new()).is_err());
        assert!(metrics_allowed(&none, Some(remote), &bearer("")).is_err());
    }
}
