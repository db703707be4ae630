//! PostgreSQL: the connection pool and the forward-only migrations in `migrations/`.

use crate::config::DatabaseConfig;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Postgres;
use std::time::Duration;

/// Every migration in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens a pool. Connections are made lazily; a bad URL fails here, an unreachable server on use.
pub fn pool(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy(&cfg.url)
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
