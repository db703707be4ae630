//! The schema: migrations apply to a fresh database (created if missing) and re-apply as no-ops.

mod common;

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let db = common::TestDb::new().await;
    let pool = authtrail::db::migrate(&db.config)
        .await
        .expect("first migrate");
    let again = authtrail::db::migrate(&db.config)
        .await
        .expect("second migrate");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&again)
    .await
    .unwrap();
    for t in ["projection_checkpoints", "dead_letters", "_sqlx_migrations"] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, authtrail::db::MIGRATOR.iter().count());
    pool.close().await;
    again.close().await;
}
