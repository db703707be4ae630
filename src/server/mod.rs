//! The server layer: what every HTTP feature shares and no feature should write twice.
//!
//! - `AppState`: configuration, the database pool, the [`Verifier`], the rate limits and the
//!   audit publisher. Features (`ingest`, `api`, `web`) take it as their router state and add
//!   their own parts as request extensions; nothing here knows a feature.
//! - `caller`: who may call, as extractor types ([`AuthUser`], [`AdminUser`], ...).
//! - `routes`: a route is added with its `Policy` (who, which rate limit, audited or not);
//!   one route layer enforces it, records metrics and marks answers `no-store`.
//! - `error`: the one error type [`ApiError`] and the catalogue of problem types;
//!   `problem`: the RFC 9457 body; `extract`: query and JSON extractors answering problems.
//! - `limit`: per-caller budgets; [`audit`]: `admin.action` records of the API's own use.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`; `run` serves a router until shutdown.

pub mod audit;
mod caller;
mod error;
pub(crate) mod extract;
mod limit;
pub mod ops;
pub(crate) mod problem;
mod routes;

pub use caller::{AdminUser, AuthUser, Authenticator, ServiceCaller, SuperAdminUser};
pub(crate) use caller::{Admits, Introspector, Person};
pub use error::{ApiError, ProblemKind};
pub(crate) use limit::Budget;
pub use problem::Problem;
pub(crate) use routes::{Audit, Policy, Routes, Target};

use crate::auth::Verifier;
use crate::config::Config;
use crate::kafka::Publisher;
use authtrail_events::Event;
use axum::extract::FromRef;
use axum::serve::ListenerExt;
use axum::{Extension, Router};
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Shared by every handler and by the route layer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    pool: PgPool,
    /// Credentials, and the session state a person's token is checked against.
    authenticator: Authenticator,
    limits: limit::Limits,
    readiness: ops::Readiness,
    /// Where audit records go (the intake's publisher: one producer per process).
    publisher: Arc<Publisher>,
    enrichment: ops::Enrichment,
}

impl AppState {
    /// The state of a server (call inside a Tokio runtime: the limits start their housekeeping).
    pub(crate) fn new(
        config: Config,
        pool: PgPool,
        verifier: Arc<Verifier>,
        publisher: Arc<Publisher>,
        enrichment: ops::Enrichment,
    ) -> Self {
        let limits = limit::Limits::new(&config);
        // The read tables exist where the query API runs (the only routes admitting persons).
        let sessions = config.api.enabled.then(|| pool.clone());
        let authenticator = Authenticator::new(verifier, config.auth.require_sid, sessions);
        AppState {
            inner: Arc::new(Inner {
                config,
                pool,
                authenticator,
                limits,
                readiness: ops::Readiness::default(),
                publisher,
                enrichment,
            }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub(crate) fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    fn readiness(&self) -> &ops::Readiness {
        &self.inner.readiness
    }

    pub(crate) fn limits(&self) -> &limit::Limits {
        &self.inner.limits
    }

    pub(crate) fn enrichment(&self) -> ops::Enrichment {
        self.inner.enrichment
    }

    /// Appends one audit record; the request fails (503) when it cannot be appended.
    pub(crate) async fn append_audit(&self, record: Event) -> Result<(), ApiError> {
        match self.inner.publisher.publish(&record).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be appended");
                Err(ApiError::LogUnavailable)
            }
        }
    }

    /// `router` with this state, and the state in every request's extensions (the route layer
    /// reads it there: it is built before the state exists); every answer, 404s included, says
    /// `X-Content-Type-Options: nosniff`.
    pub(crate) fn finish(&self, router: Router<AppState>) -> Router {
        router
            .layer(Extension(self.clone()))
            .layer(axum::middleware::map_response(nosniff))
            .with_state(self.clone())
    }
}

/// `X-Content-Type-Options: nosniff` on every answer of the server — API, intake, operations,
/// dashboard, problems and 404s: a browser never runs a body as another type than the one it is
/// declared (a JSON answer echoing a parameter read as HTML or script).
async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator().clone()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub(crate) async fn run(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http server listening (/healthz, /readyz, /metrics)");
    // Answers go out as soon as they are written (no Nagle delay behind an unacknowledged
    // segment).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // The peer's address reaches the handlers (`/metrics` answers loopback peers only).
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
