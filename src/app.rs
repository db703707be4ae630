//! The composition root: [`Application::build`] turns a [`Config`] into the running parts of
//! `authtrail serve` — topics, schema, clients, state, routers, the projector and the enrichment
//! stage. `serve`, the tests and the benchmarks all build the application here, so what they
//! exercise is what runs.

use crate::alerts::Dispatcher;
use crate::api::Api;
use crate::auth::Verifier;
use crate::config::Config;
use crate::ingest::stage::Stage;
use crate::ingest::Intake;
use crate::projector::Projector;
use crate::server::ops::Enrichment;
use crate::server::{self, AppState};
use anyhow::Context;
use axum::Router;
use sqlx::PgPool;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// `web.demo` mints tokens for anyone who can reach the server: only a server that listens on
/// loopback alone (every address `http.listen` resolves to) may offer it.
async fn demo_only_on_loopback(config: &Config) -> anyhow::Result<()> {
    if !config.web.demo {
        return Ok(());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.http.listen)
        .await
        .with_context(|| format!("http.listen {:?}", config.http.listen))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "web.demo mints tokens for any user or admin to anyone who can reach the server, so it needs http.listen on a loopback address (127.0.0.1 or [::1]), not {:?}",
            config.http.listen
        );
    }
    Ok(())
}

/// A built server: listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    intake: Arc<Intake>,
    api: Option<Arc<Api>>,
    projector: Option<Projector>,
    dispatcher: Option<Dispatcher>,
    stage: Option<Stage>,
    sealer: Option<crate::seal::worker::Sealer>,
}

impl Application {
    /// Ensures the topic, migrates the database (when the query API or the projector runs:
    /// an intake-only server never touches the schema), binds `http.listen` (port 0 picks a free
    /// one) and builds every part the configuration enables. Refuses `web.demo` unless
    /// `http.listen` is a loopback address.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let _ = crate::telemetry::metrics();
        demo_only_on_loopback(&config).await?;
        crate::kafka::ensure_topic(&config.kafka)
            .await
            .with_context(|| {
                format!(
                    "ensuring topic {} on {}",
                    config.kafka.topic, config.kafka.brokers
                )
            })?;
        // The alert dispatcher runs where the server uses the database.
        let dispatching = config.alerts.enabled && (config.api.enabled || config.projector.enabled);
        if dispatching {
            let alerts = crate::alerts::topic_config(&config);
            crate::kafka::ensure_topic(&alerts).await.with_context(|| {
                format!("ensuring topic {} on {}", alerts.topic, alerts.brokers)
            })?;
        }
        if config.enrich.enabled {
            Stage::ensure_topics(&config).await?;
        }
        let pool = if config.api.enabled || config.projector.enabled || config.seal.enabled {
            crate::db::migrate(&config.database)
                .await
                .context("migrating the database")?
        } else {
            crate::db::pool_options(
                config.database.max_connections,
                std::time::Duration::from_secs(5),
            )
            .connect_lazy(&config.database.url)
            .context("database.url")?
        };
        let listener = TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("binding {}", config.http.listen))?;
        let intake = Arc::new(Intake::from_config(&config).context("setting up the event intake")?);
        if let (true, Some(keys)) = (
            config.api.enabled || config.projector.enabled || config.seal.enabled,
            intake.keys(),
        ) {
            keys.check()
                .await
                .context("checking privacy.master_key_file")?;
        }
        let verifier =
            Arc::new(Verifier::from_config(&config.auth).context("setting up authentication")?);
        if !verifier.enabled() {
            tracing::warn!(
                "no JWT key and no API key configured: every POST /v1/events and /api/v1 request is refused (401)"
            );
        }
        let api = if config.api.enabled {
            Some(Api::new(
                &config,
                intake.publisher().clone(),
                intake.keys().cloned(),
            )?)
        } else {
            None
        };
        let projector = if config.projector.enabled {
            Some(Projector::new(config.clone(), pool.clone())?)
        } else {
            None
        };
        let dispatcher = if dispatching {
            Some(
                Dispatcher::new(&config, pool.clone(), intake.publisher().clone())
                    .context("setting up the alert dispatcher")?,
            )
        } else {
            None
        };
        let stage = if config.enrich.enabled {
            Some(Stage::new(&config, intake.clone()).context("setting up the enrichment stage")?)
        } else {
            None
        };
        let sealer = if config.seal.enabled {
            let key = crate::seal::worker::signing_key(&config)?;
            crate::seal::worker::Sealer::ensure_topic(&config).await?;
            Some(crate::seal::worker::Sealer::new(
                &config,
                pool.clone(),
                key,
            )?)
        } else {
            None
        };
        let enrichment = if intake.enricher().geoip().databases().is_empty() {
            Enrichment::NoGeoip
        } else {
            Enrichment::Ok
        };
        let state = AppState::new(
            config.clone(),
            pool.clone(),
            verifier,
            intake.publisher().clone(),
            enrichment,
        );
        let router = state.finish(routes(&config, &intake, api.as_ref()));
        Ok(Application {
            listener,
            router,
            pool,
            intake,
            api,
            projector,
            dispatcher,
            stage,
            sealer,
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The database pool (migrated, unless neither the API nor the projector runs).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The intake, for callers that append without HTTP.
    pub fn intake(&self) -> &Arc<Intake> {
        &self.intake
    }

    /// Serves (and projects, and dispatches alerts) until `stop` resolves; then the server
    /// drains in-flight requests and ends open event streams, the projector commits the batch in
    /// hand and the alert dispatcher finishes its batch and releases its lock.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop.await;
            let _ = tx.send(true);
        });
        let api = self.api.clone();
        let server_stop = {
            let rx = rx.clone();
            async move {
                crate::signal::stopped(rx).await;
                // Open event streams never end by themselves.
                if let Some(api) = api {
                    api.close();
                }
            }
        };
        let projector = self
            .projector
            .map(|p| tokio::spawn(p.run(crate::signal::stopped(rx.clone()))));
        let dispatcher = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(crate::signal::stopped(rx.clone()))));
        let stage = self
            .stage
            .map(|s| tokio::spawn(s.run(crate::signal::stopped(rx.clone()))));
        let sealer = self
            .sealer
            .map(|s| tokio::spawn(s.run(crate::signal::stopped(rx))));
        server::run(self.router, self.listener, server_stop).await?;
        if let Some(p) = projector {
            p.await??;
        }
        // Stopped, it releases its lock: another process's dispatcher takes over.
        if let Some(d) = dispatcher {
            d.await??;
        }
        // Stopped, it commits or aborts the batch in hand and leaves its group.
        if let Some(s) = stage {
            s.await??;
        }
        // Stopped, it seals what it holds.
        if let Some(s) = sealer {
            s.await??;
        }
        Ok(())
    }
}

/// Every route: operations, the intake, the query API (when enabled) and the dashboard.
fn routes(config: &Config, intake: &Arc<Intake>, api: Option<&Arc<Api>>) -> Router<AppState> {
    let mut router = server::ops::router()
        .merge(crate::ingest::http::router(intake.clone()))
        .merge(crate::web::router(&config.web));
    if let Some(api) = api {
        router = router.merge(crate::api::router(api.clone(), config.api.swagger_ui));
    }
    router
}
