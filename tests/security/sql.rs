//! See `main.rs`. Identifiers written into SQL: the rebuild's schema names (the live one too)
//! pass one check, and every identifier is quoted.

use crate::common::projection::{config, migrated};
use crate::common::TestTopic;
use authtrail::replay::rebuild::{self, Options};
use authtrail::replay::schema;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

fn no_swap() -> Options {
    Options {
        schema: None,
        drop_old: false,
        swap: false,
        batch: 100,
        progress_bar: false,
        lock_distance: 1000,
        fast: true,
        workers: 1,
        cache_sessions: 1000,
    }
}

/// The live schema is whatever the database URL's or the role's `search_path` names, and the
/// rebuild writes it into SQL. A schema named `Audit` (valid, when quoted) is written unquoted
/// as `Audit.projection_checkpoints`, which PostgreSQL folds to `audit.projection_checkpoints`:
/// a schema someone else created, whose checkpoints the rebuild would then chase, and whose
/// tables a swap would lock and fill. The name is refused before anything is created, like any
/// other schema name that would need quoting; a quoted reader addresses the real schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_schema_that_would_need_quoting_is_refused_before_a_rebuild_touches_anything() {
    let topic = TestTopic::new(1).await;
    let (db, pool) = migrated().await;
    // The live tables in schema "Audit"; a decoy "audit" with checkpoints of its own.
    for sql in [
        r#"ALTER SCHEMA public RENAME TO "Audit""#,
        "CREATE SCHEMA public",
        "CREATE SCHEMA audit",
        r#"CREATE TABLE audit.projection_checkpoints (LIKE "Audit".projection_checkpoints)"#,
        r#"INSERT INTO "Audit".projection_checkpoints (projection, topic, partition, next_offset)
           VALUES ('decoy-check', 'decoy-check', 0, 7)"#,
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let options = PgConnectOptions::from_str(&db.config.url)
        .unwrap()
        .options([("search_path", "\"Audit\"")]);
    let live = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&live)
        .await
        .unwrap();
    assert_eq!(current, "Audit");

    let cfg = config(&topic, &db, "sql-live-schema");
    let err = rebuild::rebuild(&cfg, &live, &no_swap(), None)
        .await
        .expect_err("a rebuild against live schema \"Audit\" must be refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("\"Audit\"") && text.contains("lower-case"),
        "refused for another reason: {text}"
    );
    let created: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'authtrail_rebuild_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        created.is_empty(),
        "the refused rebuild created {created:?}"
    );

    // Names that only quoting would carry are refused as the target too (from a live schema
    // that passes: the new, empty `public`).
    for hostile in ["Rebuild", "x\"; DROP SCHEMA audit CASCADE; --", "a.b", ""] {
        let opts = Options {
            schema: Some(hostile.to_owned()),
            ..no_swap()
        };
        let err = rebuild::rebuild(&cfg, &pool, &opts, None)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("lower-case"),
            "{hostile:?}: {err:#}"
        );
    }

    // Identifiers are quoted: the hashes of "Audit" are those of "Audit", not of the decoy.
    let mut conn = pool.acquire().await.unwrap();
    let hashes = schema::table_hashes(&mut conn, "Audit").await.unwrap();
    assert_eq!(hashes["projection_checkpoints"].0, 1, "{hashes:?}");
    let decoy: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.projection_checkpoints")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(decoy, 0, "the decoy was written to");
}
