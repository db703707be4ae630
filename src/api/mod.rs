//! The query API (`/api/v1/...`): what users and admins read and do.
//!
//! It reads the projections and never writes them: every state change it offers (revoke one or
//! all sessions, force logout, review a security event) is appended to the log as an event whose
//! `subject` is the affected user, and the projection makes it true (`commands`). Every admin
//! read or write is itself appended as an `admin.action` event: each route declares its audit
//! and rate limit with its `Policy`.
//!
//! Layout: one module per feature, each with its handlers and its SQL —
//! `sessions` (mine and the admin's), `devices` (naming and trusting mine), `history` (login attempts, suspicious ones),
//! `security` (security events, reviews), `alerts` (detection's alerts, their review, my
//! security notices), `stats` (dashboards), `introspect` (the auth
//! service's `validateSession`), `stream` (SSE of newly projected security events and alerts),
//! `asof` (one user's sessions as they were at a time, folded from the log). Shared:
//! [`pagination`] (opaque keyset cursors), `openapi` (the document and Swagger UI). Callers,
//! limits, audit and errors are the server layer's ([`crate::server`]).
//!
//! Callers: see [`crate::auth`]. User routes take a person's JWT (`user`, `admin`,
//! `super_admin`); a session id of another user answers 404. Admin routes take `admin` or
//! `super_admin`. Introspection takes role `service` (or an intake API key).

mod alerts;
mod asof;
mod commands;
mod devices;
mod erasure;
mod history;
mod introspect;
mod openapi;
pub mod pagination;
mod params;
mod security;
mod sessions;
mod stats;
mod stream;

use crate::config::Config;
use crate::kafka::Publisher;
use crate::server::{ApiError, AppState, Routes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::{Extension, Router};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The query API's shared parts. Build with [`Api::new`] inside a Tokio runtime and hand it to
/// [`router`].
pub(crate) struct Api {
    config: crate::config::ApiConfig,
    /// A pool of its own: every statement bounded by `api.statement_timeout_ms`, and the
    /// projector's connections are not the API's to take.
    pool: PgPool,
    publisher: Arc<Publisher>,
    /// Seals the personal members of commands' events (a device's new name) when `encrypt`,
    /// opens the log for as-of answers, and is evicted by `forget`.
    keys: Option<Arc<crate::privacy::Keyring>>,
    encrypt: bool,
    /// The checkpoint set and topic read-your-writes waits on.
    projection: String,
    topic: String,
    /// Bumped on every projector `NOTIFY`: waiters and streams re-check when it changes.
    projected: Arc<watch::Sender<u64>>,
    /// Set when the server shuts down: open streams end, so graceful shutdown can finish.
    closing: std::sync::atomic::AtomicBool,
    /// The event streams' shared poller feed and per-caller counts.
    streams: stream::Streams,
    /// Dropped with the `Api`: stops the listener task.
    _stop: oneshot::Sender<()>,
}

impl Api {
    /// Opens the API's pool and starts listening for projected batches.
    pub(crate) fn new(
        config: &Config,
        publisher: Arc<Publisher>,
        keys: Option<Arc<crate::privacy::Keyring>>,
    ) -> anyhow::Result<Arc<Api>> {
        let options = PgConnectOptions::from_str(&config.database.url)?.options([(
            "statement_timeout",
            config.api.statement_timeout_ms.to_string(),
        )]);
        let pool = crate::db::pool_options(config.database.max_connections, Duration::from_secs(5))
            .connect_lazy_with(options);
        let (projected, _) = watch::channel(0u64);
        let projected = Arc::new(projected);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(pool.clone(), projected.clone(), stopped));
        let api = Arc::new(Api {
            config: config.api.clone(),
            pool,
            publisher,
            keys,
            encrypt: config.privacy.encrypt,
            projection: config.projector.projection.clone(),
            topic: config.kafka.topic.clone(),
            projected,
            closing: std::sync::atomic::AtomicBool::new(false),
            streams: stream::Streams::new(config.api.streams_per_caller),
            _stop: stop,
        });
        tokio::spawn(stream::follow(Arc::downgrade(&api)));
        Ok(api)
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn keys(&self) -> Option<&Arc<crate::privacy::Keyring>> {
        self.keys.as_ref()
    }

    fn config(&self) -> &crate::config::ApiConfig {
        &self.config
    }

    /// A receiver that changes after every projected batch (and on [`Api::close`]).
    fn projected(&self) -> watch::Receiver<u64> {
        self.projected.subscribe()
    }

    /// Ends the open event streams (called when the server begins its graceful shutdown, which
    /// would otherwise wait for them forever).
    pub(crate) fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.projected.send_modify(|n| *n += 1);
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Forwards the projector's `NOTIFY` into [`Api::projected`]; reconnects on failure. Waiters
/// re-check at least every second, so a notification lost during a reconnect only delays them.
async fn listen(pool: PgPool, projected: Arc<watch::Sender<u64>>, mut stop: oneshot::Receiver<()>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(crate::projector::NOTIFY_CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "api: LISTEN failed; retrying");
                    tokio::select! { _ = &mut stop => return, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "api: cannot connect for LISTEN; retrying");
                tokio::select! { _ = &mut stop => return, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Anything projected while we were not listening is found by the re-check.
        projected.send_modify(|n| *n += 1);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                n = listener.try_recv() => match n {
                    Ok(Some(_)) => projected.send_modify(|n| *n += 1),
                    // The connection dropped; notifications may have been lost.
                    Ok(None) => projected.send_modify(|n| *n += 1),
                    Err(e) => {
                        tracing::warn!(error = %e, "api: LISTEN connection failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// The query API for a handler (its router carries it as a request extension).
struct Ctx(Arc<Api>);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<Api>>()
            .cloned()
            .map(Ctx)
            .ok_or_else(|| {
                tracing::error!("query API route without the Api extension");
                ApiError::Internal
            })
    }
}

/// Every route of the query API, each with its policy.
fn routes() -> Routes {
    sessions::routes()
        .merge(history::routes())
        .merge(security::routes())
        .merge(stats::routes())
        .merge(introspect::routes())
        .merge(stream::routes())
        .merge(asof::routes())
        .merge(devices::routes())
        .merge(alerts::routes())
        .merge(erasure::routes())
}

/// The query API's routes, the OpenAPI document at `/api/v1/openapi.json` and (when
/// `swagger_ui`) Swagger UI at `/api/v1/docs`.
pub(crate) fn router(api: Arc<Api>, swagger_ui: bool) -> Router<AppState> {
    let (routes, _) = routes().split(openapi::base());
    let asof = asof::AsOf::new(api.config().asof_concurrency, api.keys().cloned());
    routes
        .layer(Extension(api))
        .layer(Extension(asof))
        .merge(openapi::router(swagger_ui))
}

pub(crate) use crate::server::extract::user_id;
