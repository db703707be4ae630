//! Projector throughput on ≥ 1 M events, against two baselines in the same run and database:
//!
//! - **projector**: the live path minus the broker — messages (the events' wire bytes) go
//!   through `apply_batch` exactly as the consumer hands them over: checkpoint lock, parse,
//!   dedupe, load state, pure fold, set-based writes, checkpoint; each batch in one transaction
//!   per lane, the lanes concurrently, as `Projector` does (`BENCH_LANES`, default
//!   `projector.lanes`).
//! - **(a) COPY**: the final rows the projector produced, written with `COPY ... FROM STDIN` into
//!   the same (empty) tables: the physical limit of the sink.
//! - **(b) one INSERT per event, each in its own transaction**: the naive approach (a row per
//!   event, written as it happens). Measured on a sample (`BENCH_NAIVE_EVENTS`, default 20 000)
//!   because at its rate a million would take many minutes; its events/s is a rate either way.
//! - **(b') the projector with one event per transaction**, on the same sample: the same read
//!   tables written as each event happens; what batching buys.
//!
//! The broker is left out on purpose: on the development broker (Tansu) consumption, not the
//! projector, would be measured. Run: `./dev with cargo bench --bench project`
//! (`BENCH_EVENTS`, default 1 000 000; `BENCH_BATCH`, default 5 000).

use authtrail::events::Event;
use authtrail::projector::{apply_batch, Cache, LogMessage};
use authtrail_projections::Rules;
use common::{env_usize, fresh_db};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench project");
    let n = env_usize("BENCH_EVENTS", 1_000_000);
    let batch = env_usize("BENCH_BATCH", 5_000);
    let naive_n = env_usize("BENCH_NAIVE_EVENTS", 20_000).min(n);
    // The worker's state cache (`projector.state_cache_sessions`; 0 = load every batch afresh).
    let cache_sessions = env_usize(
        "BENCH_CACHE_SESSIONS",
        authtrail::config::ProjectorConfig::default().state_cache_sessions,
    );
    let rules = Rules::default();
    // Concurrent transactions per batch, each its own partitions (`projector.lanes`).
    let lanes = env_usize(
        "BENCH_LANES",
        authtrail::config::ProjectorConfig::default().lanes,
    );

    let t = Instant::now();
    let events = common::seeded_events(n);
    // The log as the consumer sees it: 12 partitions by key, interleaved in publish order.
    let messages = common::log_of(&events, 12, "bench");
    let bytes: usize = messages
        .iter()
        .map(|m| m.payload.as_ref().unwrap().len())
        .sum();
    println!(
        "project benchmark: {n} events ({} MB), batches of {batch} in {lanes} lane(s), state cache {cache_sessions} sessions, generated in {:.1}s",
        bytes / 1_000_000,
        t.elapsed().as_secs_f64()
    );

    // Projector.
    let (_, pool) = fresh_db(&admin, "authtrail_bench_project").await;
    let projector_rate = projector(&pool, &rules, &messages, batch, lanes, cache_sessions).await;

    // (a) COPY of the same final rows into the same, empty tables.
    let copy_secs = common::copy_baseline(&admin, &pool, "authtrail_bench_copy").await;
    let copy_rate = n as f64 / copy_secs;
    println!("(a) COPY of the final rows: {copy_secs:.1}s, {copy_rate:.0} events/s equivalent");

    // (b) One INSERT per event in its own transaction.
    let naive_rate = naive_inserts(&admin, &events[..naive_n]).await;
    println!(
        "(b) one INSERT per event, own transaction ({naive_n} events): {naive_rate:.0} events/s"
    );

    // (b') The same projection, one event per transaction: what batching buys.
    let single_rate =
        one_per_transaction(&admin, &rules, &messages[..naive_n], cache_sessions).await;
    println!("(b') the projector, one event per transaction ({naive_n} events): {single_rate:.0} events/s");
    println!(
        "ratios: projector/COPY = {:.2} (target >= 0.5), projector/per-event INSERT = {:.1}x (target >= 20x)",
        projector_rate / copy_rate,
        projector_rate / naive_rate
    );
    println!(
        "        projector/one-event transactions = {:.1}x",
        projector_rate / single_rate
    );
}

/// The projector's path over `messages` into `pool`, as `Projector` applies consumed batches;
/// prints the time, the rows and the phases. Returns events per second.
async fn projector(
    pool: &PgPool,
    rules: &Rules,
    messages: &[LogMessage],
    batch: usize,
    lanes: usize,
    cache_sessions: usize,
) -> f64 {
    let n = messages.len();
    let (projector_secs, phases) = common::project_live(
        pool,
        "bench",
        rules,
        messages,
        batch,
        lanes,
        cache_sessions,
        "projector",
        None,
    )
    .await;
    let projector_rate = n as f64 / projector_secs;
    let mut rows = 0i64;
    for t in common::TABLES {
        let c: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
            .fetch_one(pool)
            .await
            .unwrap();
        rows += c;
    }
    // What the projector wrote on the way (a session changes many times; COPY writes it once).
    let written: i64 = sqlx::query_scalar(
        "SELECT sum(n_tup_ins + n_tup_upd)::bigint FROM pg_stat_user_tables WHERE relname = ANY($1)",
    )
    .bind(common::TABLES)
    .fetch_one(pool)
    .await
    .unwrap_or(0);
    println!("projector: {projector_secs:.1}s, {projector_rate:.0} events/s ({rows} final rows; ~{written} rows inserted or updated on the way)");
    let line: Vec<String> = phases
        .iter()
        .iter()
        .map(|(name, d)| format!("{name} {:.1}s", d.as_secs_f64()))
        .collect();
    println!("  phases: {}", line.join(", "));
    projector_rate
}

/// The naive way: each of `events` one INSERT in its own transaction, into a fresh database.
/// Returns events per second.
async fn naive_inserts(admin: &str, events: &[Event]) -> f64 {
    let (naive_cfg, _naive_pool) = fresh_db(admin, "authtrail_bench_naive").await;
    let mut c = PgConnection::connect(&naive_cfg.url).await.unwrap();
    sqlx::query("CREATE TABLE naive_events (id uuid PRIMARY KEY, type text NOT NULL, subject text, time timestamptz NOT NULL, data jsonb NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    let start = Instant::now();
    for e in events {
        let mut tx = c.begin().await.unwrap();
        sqlx::query("INSERT INTO naive_events VALUES ($1, $2, $3, $4, $5)")
            .bind(e.id)
            .bind(e.event_type().as_str())
            .bind(&e.subject)
            .bind(e.time)
            .bind(sqlx::types::Json(&e.data))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    events.len() as f64 / start.elapsed().as_secs_f64()
}

/// The projector's path with one event per transaction (each of `messages`), into a fresh
/// database. Returns events per second.
async fn one_per_transaction(
    admin: &str,
    rules: &Rules,
    messages: &[LogMessage],
    cache_sessions: usize,
) -> f64 {
    let (_, single_pool) = fresh_db(admin, "authtrail_bench_single").await;
    let start = Instant::now();
    let mut cache = Cache::new(cache_sessions);
    for m in messages {
        let mut tx = single_pool.begin().await.unwrap();
        apply_batch(
            &mut tx,
            "bench",
            rules,
            std::slice::from_ref(m),
            &Default::default(),
            &mut cache,
            None,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        cache.committed(rules);
    }
    messages.len() as f64 / start.elapsed().as_secs_f64()
}
