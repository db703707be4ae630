//! PostgreSQL: the connection pool and the forward-only migrations in `migrations/`.

use crate::config::DatabaseConfig;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;
use std::time::Duration;

/// Every migration in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens a pool. Connections are made lazily; a bad URL fails here, an unreachable server on use.
fn pool(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    pool_options(cfg.max_connections, Duration::from_secs(10)).connect_lazy(&cfg.url)
}

/// A connection idle for longer than this is pinged before it is handed out. Under load
/// connections come back within milliseconds and are not pinged; a server restart takes
/// longer than this, so every connection that outlived one is pinged (and replaced) first.
pub const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Options for every pool of the service.
///
/// sqlx pings each connection when it returns to the pool; its default pings it again when it
/// is taken out, which is one more round trip to the server on every query (a third of the
/// API's per-request database traffic, measured in `bench/api.rs`). Here only a connection that
/// sat idle for [`IDLE_PING_AFTER`] is pinged; a broken one is discarded and the pool hands out
/// another.
pub(crate) fn pool_options(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Creates the database if it does not exist, then applies pending migrations.
pub async fn migrate(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    if !Postgres::database_exists(&cfg.url).await? {
        Postgres::create_database(&cfg.url).await?;
        tracing::info!(url = %crate::config::redact_url(&cfg.url), "created database");
    }
    let pool = pool(cfg)?;
    MIGRATOR.run(&pool).await?;
    tracing::info!(
        migrations = MIGRATOR.iter().count(),
        "database schema up to date"
    );
    Ok(pool)
}

/// `name` as a quoted SQL identifier: in double quotes, with `"` doubled. Every identifier
/// written into SQL text (schema and table names of rebuilds, as-of builds, erasure) goes
/// through here; values are bound as parameters.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.name`, both quoted.
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}
