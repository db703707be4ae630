//! The query API (`/api/v1/...`): what users and admins read and do.
//!
//! It reads the projections and never writes them: every state change it offers (revoke one or
//! all sessions, force logout, review a security event) is appended to the log as an event whose
//! `subject` is the affected user, and the projection makes it true ([`commands`]). Every admin
//! read or write is itself appended as an `admin.action` event ([`Api::audit`]).
//!
//! Layout: one module per feature, each with its handlers and its SQL —
//! [`sessions`] (mine and the admin's), [`history`] (login attempts, suspicious ones),
//! [`security`] (security events, reviews), [`stats`] (dashboards), [`introspect`] (the auth
//! service's `validateSession`), [`stream`] (SSE of newly projected security events). Shared:
//! [`pagination`] (opaque keyset cursors), [`extract`] (query/JSON extractors answering problem
//! details), [`limit`] (per-caller rate limits), [`openapi`] (the document and Swagger UI).
//!
//! Callers: see [`crate::auth`]. User routes take a person's JWT (`user`, `admin`,
//! `super_admin`); a session id of another user answers 404. Admin routes take `admin` or
//! `super_admin`. Introspection takes role `service` (or an intake API key).

pub mod commands;
pub mod extract;
pub mod history;
pub mod introspect;
pub mod limit;
pub mod openapi;
pub mod pagination;
pub mod security;
pub mod sessions;
pub mod stats;
pub mod stream;

use crate::config::Config;
use crate::http::AppState;
use crate::kafka::Publisher;
use crate::problem::Problem;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use utoipa_axum::router::OpenApiRouter;

/// The query API's shared parts. Build with [`Api::new`] inside a Tokio runtime and hand it to
/// [`AppState::with_api`].
pub struct Api {
    config: crate::config::ApiConfig,
    /// A pool of its own: every statement bounded by `api.statement_timeout_ms`, and the
    /// projector's connections are not the API's to take.
    pool: PgPool,
    publisher: Arc<Publisher>,
    /// The checkpoint set and topic read-your-writes waits on.
    projection: String,
    topic: String,
    limits: limit::Limits,
    /// Bumped on every projector `NOTIFY`: waiters and streams re-check when it changes.
    projected: Arc<watch::Sender<u64>>,
    /// Set when the server shuts down: open streams end, so graceful shutdown can finish.
    closing: std::sync::atomic::AtomicBool,
    /// Dropped with the `Api`: stops the listener task.
    _stop: oneshot::Sender<()>,
}

impl Api {
    /// Opens the API's pool and starts listening for projected batches.
    pub fn new(config: &Config, publisher: Arc<Publisher>) -> anyhow::Result<Arc<Api>> {
        let options = PgConnectOptions::from_str(&config.database.url)?.options([(
            "statement_timeout",
            config.api.statement_timeout_ms.to_string(),
        )]);
        let pool = crate::db::pool_options(config.database.max_connections, Duration::from_secs(5))
            .connect_lazy_with(options);
        let (projected, _) = watch::channel(0u64);
        let projected = Arc::new(projected);
        let (stop, stopped) = oneshot::channel();
        let limits = limit::Limits::new(&config.api);
        tokio::spawn(listen(
            pool.clone(),
            projected.clone(),
            limits.clone(),
            stopped,
        ));
        Ok(Arc::new(Api {
            config: config.api.clone(),
            pool,
            publisher,
            projection: config.projector.projection.clone(),
            topic: config.kafka.topic.clone(),
            limits,
            projected,
            closing: std::sync::atomic::AtomicBool::new(false),
            _stop: stop,
        }))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn config(&self) -> &crate::config::ApiConfig {
        &self.config
    }

    /// A receiver that changes after every projected batch (and on [`Api::close`]).
    pub fn projected(&self) -> watch::Receiver<u64> {
        self.projected.subscribe()
    }

    /// Ends the open event streams (called when the server begins its graceful shutdown, which
    /// would otherwise wait for them forever).
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.projected.send_modify(|n| *n += 1);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Forwards the projector's `NOTIFY` into [`Api::projected`]; reconnects on failure. Waiters
/// re-check at least every second, so a notification lost during a reconnect only delays them.
async fn listen(
    pool: PgPool,
    projected: Arc<watch::Sender<u64>>,
    limits: limit::Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
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
                _ = housekeeping.tick() => limits.retain_recent(),
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

/// The query API for a handler; 503 when the server runs without it.
pub struct Ctx(pub Arc<Api>);

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Problem;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        state.api().cloned().map(Ctx).ok_or_else(|| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api-unavailable",
                "Query API unavailable",
                "this server was started without the query API",
            )
        })
    }
}

/// Every route of the query API with its OpenAPI description, before splitting.
pub fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(sessions::router())
        .merge(history::router())
        .merge(security::router())
        .merge(stats::router())
        .merge(introspect::router())
        .merge(stream::router())
}

/// The query API's routes, the OpenAPI document at `/api/v1/openapi.json` and (when
/// `swagger_ui`) Swagger UI at `/api/v1/docs`, with per-route metrics.
pub fn router(swagger_ui: bool) -> Router<AppState> {
    let (routes, _) = openapi_router().split_for_parts();
    let routes = routes.route_layer(axum::middleware::from_fn(track));
    let docs = openapi::router(swagger_ui);
    routes.merge(docs)
}

/// Per-route Prometheus metrics (requests by route, method and status; latency by route), and
/// `Cache-Control: no-store` on every answer.
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    // Sessions, addresses and audit data: never kept by shared caches.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    let status = response.status().as_u16().to_string();
    metrics::histogram!("authtrail_api_request_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("authtrail_api_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// A database error as a problem: constraint and data errors (a bad value that got through) are
/// 4xx, a cancelled statement (timeout) is 503, anything else is a 500 that hides the cause
/// (logged here, never sent).
pub fn db_error(e: sqlx::Error) -> Problem {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().unwrap_or_default();
        if code.starts_with("23") {
            return Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "the request conflicts with the current state",
            );
        }
        if code.starts_with("22") {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                "a parameter has a value the database cannot use",
            );
        }
        if code == "57014" {
            tracing::warn!(error = %e, "api: statement cancelled (timeout)");
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Query timed out",
                "the query took too long; narrow the filters and retry",
            )
            .with_header(axum::http::header::RETRY_AFTER, "1");
        }
    }
    if matches!(e, sqlx::Error::PoolTimedOut) {
        tracing::warn!("api: database pool exhausted");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Busy",
            "the database is busy; retry shortly",
        )
        .with_header(axum::http::header::RETRY_AFTER, "1");
    }
    tracing::error!(error = %e, "api: database error");
    internal()
}

/// The 500 every unexpected failure answers: no internals.
pub fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the server could not complete the request",
    )
}

/// A 404 naming the kind of thing not found (never whether it exists for someone else).
pub fn not_found(what: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        format!("no such {what}"),
    )
}
