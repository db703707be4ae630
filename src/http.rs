//! The HTTP server behind `authtrail serve`: one state type, one router per feature.
//!
//! This module holds the operational routes every deployment needs — `/healthz` (the process
//! runs), `/readyz` (broker and database answer) and `/metrics` (Prometheus). The intake
//! ([`crate::ingest::http`]), the query API ([`crate::api`]) and the dashboard ([`crate::web`])
//! add their routers to [`router`].

use crate::config::Config;
use crate::kafka;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    pool: PgPool,
    /// Who may call; accepts nothing until [`AppState::with_verifier`].
    verifier: Arc<crate::auth::Verifier>,
    /// The event intake (`POST /v1/events`); 503 without it.
    intake: Option<Arc<crate::ingest::Intake>>,
    /// The query API (`/api/v1/...`); 503 without it.
    api: Option<Arc<crate::api::Api>>,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> Self {
        AppState {
            inner: Arc::new(Inner {
                config,
                pool,
                verifier: Arc::new(crate::auth::Verifier::disabled()),
                intake: None,
                api: None,
            }),
        }
    }
    /// The same state with `verifier` authenticating callers.
    pub fn with_verifier(self, verifier: Arc<crate::auth::Verifier>) -> Self {
        self.rebuild(|i| i.verifier = verifier)
    }
    /// The same state with the event intake.
    pub fn with_intake(self, intake: Arc<crate::ingest::Intake>) -> Self {
        self.rebuild(|i| i.intake = Some(intake))
    }
    /// The same state with the query API.
    pub fn with_api(self, api: Arc<crate::api::Api>) -> Self {
        self.rebuild(|i| i.api = Some(api))
    }
    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            config: self.inner.config.clone(),
            pool: self.inner.pool.clone(),
            verifier: self.inner.verifier.clone(),
            intake: self.inner.intake.clone(),
            api: self.inner.api.clone(),
        };
        change(&mut inner);
        AppState {
            inner: Arc::new(inner),
        }
    }
    pub fn verifier(&self) -> &Arc<crate::auth::Verifier> {
        &self.inner.verifier
    }
    pub fn intake(&self) -> Option<&Arc<crate::ingest::Intake>> {
        self.inner.intake.as_ref()
    }
    pub fn api(&self) -> Option<&Arc<crate::api::Api>> {
        self.inner.api.as_ref()
    }
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let swagger_ui = state.config().api.swagger_ui;
    let web = crate::web::router(&state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::ingest::http::router())
        .merge(crate::api::router(swagger_ui))
        .merge(crate::replay::http::router())
        .merge(web)
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http server listening (/healthz, /readyz, /metrics)");
    // Open event streams never end by themselves: close them when shutdown begins.
    let api = state.api().cloned();
    let shutdown = async move {
        shutdown.await;
        if let Some(api) = api {
            api.close();
        }
    };
    // Answers go out as soon as they are written (no Nagle delay behind an unacknowledged
    // segment).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; draining");
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
    let no_geoip = state
        .intake()
        .is_some_and(|i| i.enricher().geoip().databases().is_empty());
    let enrichment = match (state.intake(), no_geoip) {
        (None, _) => "off (no intake)",
        (Some(_), true) => "degraded: no GeoIP database (ingest.geoip_databases): events get no country or city, and the new-country rule never fires",
        (Some(_), false) => "ok",
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
