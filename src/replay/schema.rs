//! Projections built into a PostgreSQL schema of their own (rebuild, as-of), with the live
//! projector's sink: the same [`apply_batch`], the same migrations, another `search_path`.

use crate::config::{Config, DatabaseConfig};
use crate::projector::{apply_batch, Cache, LogMessage, Outcome};
use anyhow::{bail, Context};
use authtrail_projections::{Rules, TopicPartition};
use sqlx::postgres::{PgConnectOptions, PgPool};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

pub(crate) use crate::db::{ident, qualified};

/// The tables one projection owns: its read tables, its deduplication set, its dead letters
/// and its checkpoints. They are built, compared and swapped together.
pub const PROJECTION_TABLES: &[&str] = &[
    "sessions",
    "login_history",
    "security_events",
    "security_event_reviews",
    "trusted_devices",
    "user_profiles",
    "daily_login_stats",
    "alert_signals",
    "alerts",
    "processed_events",
    "dead_letters",
    "projection_checkpoints",
    "projection_epochs",
];

/// Tables of [`PROJECTION_TABLES`] that hold the workers' bookkeeping, not projected content:
/// moved with the rest, never compared or counted.
pub(crate) const BOOKKEEPING_TABLES: &[&str] = &["projection_epochs"];

/// Refuses schema names that are not plain lower-case identifiers, the live schema's included:
/// a name that would need quoting (`Prod`, `a.b`, `x"; DROP ...`) is a configuration mistake
/// or an attack, and an unquoted `Prod` would silently address `prod`. Names are quoted in SQL
/// all the same ([`ident`]).
pub(crate) fn check_name(schema: &str) -> anyhow::Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!("schema name {schema:?}: use lower-case letters, digits and _ (at most 63)");
    }
    Ok(())
}

/// A pool whose connections resolve unqualified names in `schema` only (temporary tables
/// still come first): the sink, unchanged, reads and writes that schema's tables.
fn schema_pool(db: &DatabaseConfig, schema: &str) -> anyhow::Result<PgPool> {
    check_name(schema)?;
    let options = PgConnectOptions::from_str(&db.url)
        .context("database url")?
        .options([("search_path", ident(schema))]);
    Ok(
        crate::db::pool_options(db.max_connections.max(5), Duration::from_secs(10))
            .connect_lazy_with(options),
    )
}

/// Creates `schema` (if missing) and applies the migrations inside it: the same tables, views
/// and functions as the live schema, empty. Returns a pool bound to it.
pub(crate) async fn prepare(
    db: &DatabaseConfig,
    main: &PgPool,
    schema: &str,
) -> anyhow::Result<PgPool> {
    check_name(schema)?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)))
        .execute(main)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    let pool = schema_pool(db, schema)?;
    crate::db::MIGRATOR
        .run(&pool)
        .await
        .with_context(|| format!("migrating schema {schema}"))?;
    Ok(pool)
}

/// The checkpoints of `projection` on `topic` in `schema` (`None`: the pool's own schema).
pub(crate) async fn checkpoints(
    pool: &PgPool,
    schema: Option<&str>,
    projection: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let table = match schema {
        Some(s) => qualified(s, "projection_checkpoints"),
        None => ident("projection_checkpoints"),
    };
    let rows: Vec<(i32, i64)> = sqlx::query_as(&format!(
        "SELECT partition, next_offset FROM {table} WHERE projection = $1 AND topic = $2"
    ))
    .bind(projection)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The table of a schema that remembers the definitions of its deferred indexes.
const DEFERRED_INDEXES: &str = "_authtrail_deferred_indexes";

/// Indexes the sink's own lookups use (state loads, deduplication, upserts); every other
/// secondary index of the projection tables only serves readers and can be built once at the
/// end of a bulk build instead of maintained row by row. Indexes backing constraints and unique
/// indexes are never deferred. If the sink's lookups change, a missing index here only slows a
/// rebuild; it never changes a result.
const SINK_INDEXES: &[&str] = &[
    "sessions_user_activity",
    "sessions_open",
    "login_history_user",
    "login_history_failures",
    "alerts_subject",
    "alert_signals_event",
];

/// Drops the reader-only indexes of the projection tables in `schema`, remembering their
/// definitions in `schema._authtrail_deferred_indexes` (so a resumed build still restores them).
pub(crate) async fn defer_indexes(pool: &PgPool, schema: &str) -> anyhow::Result<usize> {
    check_name(schema)?;
    let deferred = qualified(schema, DEFERRED_INDEXES);
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {deferred} (name text PRIMARY KEY, def text NOT NULL)"
    ))
    .execute(&mut *tx)
    .await?;
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         WHERE t.relnamespace = $1::text::regnamespace AND t.relname = ANY($2)
           AND NOT x.indisunique AND NOT x.indisprimary AND i.relname <> ALL($3)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)",
    )
    .bind(schema)
    .bind(PROJECTION_TABLES)
    .bind(SINK_INDEXES)
    .fetch_all(&mut *tx)
    .await?;
    for (name, def) in &defs {
        sqlx::query(&format!(
            "INSERT INTO {deferred} VALUES ($1, $2) ON CONFLICT DO NOTHING"
        ))
        .bind(name)
        .bind(def)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DROP INDEX {}", qualified(schema, name)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(defs.len())
}

/// Builds the indexes [`defer_indexes`] dropped.
pub(crate) async fn restore_indexes(pool: &PgPool, schema: &str) -> anyhow::Result<usize> {
    check_name(schema)?;
    let deferred = qualified(schema, DEFERRED_INDEXES);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&deferred)
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(0);
    }
    let defs: Vec<(String, String)> =
        sqlx::query_as(&format!("SELECT name, def FROM {deferred} ORDER BY name"))
            .fetch_all(pool)
            .await?;
    // Two at a time (each index is one sort on one core).
    use futures::TryStreamExt;
    futures::stream::iter(defs.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(2, |(name, def)| {
            let deferred = &deferred;
            async move {
                // The definitions are read back from a table: run only what pg_get_indexdef wrote.
                if !def.starts_with("CREATE INDEX ") || def.contains(';') {
                    bail!("deferred index {name:?}: not an index definition: {def:?}");
                }
                let mut tx = pool.begin().await?;
                let def = def.replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1);
                sqlx::query(&def)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| def.clone())?;
                sqlx::query(&format!("DELETE FROM {deferred} WHERE name = $1"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .await?;
    Ok(defs.len())
}

/// Applies one batch through the live sink in its own transaction, retrying transient errors
/// with backoff (at most 8 attempts). `cache` is the state cache of the caller's worker (each
/// worker its own partitions).
///
/// `relaxed` commits without waiting for the WAL flush (`synchronous_commit = off`): for a
/// build whose checkpoints live with its rows, a server crash loses at most the last commits
/// as a whole, and the build resumes from the checkpoints that survived.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub(crate) async fn apply(
    pool: &PgPool,
    projection: &str,
    rules: &Rules,
    batch: &[LogMessage],
    floors: &BTreeMap<TopicPartition, i64>,
    relaxed: bool,
    cache: &mut Cache,
    keys: Option<&crate::privacy::Keyring>,
) -> anyhow::Result<Outcome> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r: Result<Outcome, sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            if relaxed {
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
            }
            let o = apply_batch(&mut tx, projection, rules, batch, floors, cache, keys).await?;
            tx.commit().await?;
            cache.committed(rules);
            Ok(o)
        }
        .await;
        match r {
            Ok(o) => {
                if let Some(gap) = o.gaps.first() {
                    bail!(
                        "{}: batch starts at offset {}, checkpoint is {}",
                        gap.topic_partition(),
                        gap.first,
                        gap.expected
                    );
                }
                return Ok(o);
            }
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "batch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("applying a batch"),
        }
    }
}

/// Row count and content hash of every projection table of `schema` (columns recording wall
/// clock time excluded), the same digest the tests use.
///
/// The hash does not depend on row order: it is the md5 of the count and of two sums of 64-bit
/// hashes of each row's text (`hashtextextended`, two seeds). Unlike an ordered `string_agg`,
/// it needs no sort and no single string of the whole table (which PostgreSQL caps at 1 GB:
/// about 3 M login attempts), and measured at 1 M events it takes half the time.
pub async fn table_hashes(
    conn: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<BTreeMap<String, (i64, String)>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for table in PROJECTION_TABLES {
        if BOOKKEEPING_TABLES.contains(table) {
            continue;
        }
        let row = match *table {
            "dead_letters" => {
                "(topic, partition, \"offset\", message_key, payload, error_field, error)::text"
            }
            "projection_checkpoints" => "(projection, topic, partition, next_offset)::text",
            _ => "x::text",
        };
        let sql = format!(
            "SELECT count(*), md5(count(*) || ':' || coalesce(sum(hashtextextended(r, 0)::numeric), 0) \
                                 || ':' || coalesce(sum(hashtextextended(r, 1)::numeric), 0)) \
             FROM (SELECT {row} FROM {} x) AS t(r)",
            qualified(schema, table)
        );
        let got: (i64, String) = sqlx::query_as(&sql).fetch_one(&mut *conn).await?;
        out.insert((*table).to_owned(), got);
    }
    Ok(out)
}

/// The rules and projection name of the live projector.
pub(crate) fn projection_of(config: &Config) -> (String, Rules) {
    (
        config.projector.projection.clone(),
        config.projector.rules(),
    )
}
