//! The operational routes every deployment needs: `/healthz` (the process runs), `/readyz`
//! (broker and database answer) and `/metrics` (Prometheus). Unauthenticated by design: probes
//! and scrapers carry no credentials, and nothing here reveals user data.

use super::AppState;
use crate::kafka;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

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

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
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
    // Without GeoIP the server still takes events (ready), but records no place for them:
    // said here, so a deployment that forgot its GeoIP data shows it on every probe.
    let no_geoip = state.enrichment() == Enrichment::NoGeoip;
    let enrichment = match state.enrichment() {
        Enrichment::NoGeoip => "degraded: no GeoIP database (ingest.geoip_databases): events get no country or city, and the new-country rule never fires",
        Enrichment::Ok => "ok",
    };
    let ready = kafka == "ok" && database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = match (ready, no_geoip) {
        (false, _) => "not ready",
        (true, true) => "degraded",
        (true, false) => "ready",
    };
    (
        status,
        Json(json!({
            "status": word,
            "checks": { "kafka": kafka, "database": database, "enrichment": enrichment },
        })),
    )
}

async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
