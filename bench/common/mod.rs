//! What the database-side benches share: settings from the environment, a fresh migrated
//! database, and a seeded log held in memory as the consumer would hand it over.

#![allow(dead_code)] // not every bench uses every helper

use authtrail::config::DatabaseConfig;
use authtrail::events::Event;
use authtrail::projector::LogMessage;
use authtrail_projections::gen::StreamGen;
use sqlx::{Connection, PgConnection, PgPool};

/// `BENCH_CONTENT_TYPE_HEADER`: whether benches publish with the CloudEvents `content-type`
/// header, as the configuration's default does; `0` leaves it out (to measure what it costs).
pub fn content_type_header() -> bool {
    std::env::var("BENCH_CONTENT_TYPE_HEADER").map_or(true, |v| v != "0")
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Drops and recreates database `name` next to `admin`'s, migrated.
pub async fn fresh_db(admin: &str, name: &str) -> (DatabaseConfig, PgPool) {
    let mut c = PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let cfg = DatabaseConfig {
        url: format!("{base}/{name}"),
        max_connections: 4,
    };
    let pool = authtrail::db::migrate(&cfg).await.unwrap();
    (cfg, pool)
}

/// `n` seeded events of every type, one user per 50 events.
pub fn seeded_events(n: usize) -> Vec<Event> {
    StreamGen::new(
        42,
        (n / 50).max(10),
        "2026-01-01T00:00:00Z".parse().unwrap(),
    )
    .take(n)
}

/// The log `events` make on `topic`, as the consumer hands it over: partitioned by key with
/// Kafka's partitioner, offsets per partition, interleaved in publish order.
pub fn log_of(events: &[Event], partitions: i32, topic: &str) -> Vec<LogMessage> {
    let mut next = vec![0i64; partitions as usize];
    events
        .iter()
        .map(|e| {
            let key = e.partition_key();
            let p = authtrail::kafka::murmur2_partition(key.as_bytes(), partitions);
            next[p as usize] += 1;
            LogMessage {
                topic: topic.into(),
                partition: p,
                offset: next[p as usize] - 1,
                key: Some(key.into_bytes()),
                payload: Some(e.to_json_bytes()),
            }
        })
        .collect()
}

/// The live projector's write path minus the broker: `messages` in batches of `batch`, each
/// split into `lanes` concurrent transactions ([`authtrail::projector::split_lanes`], one state
/// cache per lane), as `Projector` applies a consumed batch. Returns the seconds taken and the
/// phases (summed over lanes: with lanes > 1 they add up to more than the wall time).
#[allow(clippy::too_many_arguments)] // the bench settings, spelt out at each call
pub async fn project_live(
    pool: &PgPool,
    projection: &str,
    rules: &authtrail_projections::Rules,
    messages: &[LogMessage],
    batch: usize,
    lanes: usize,
    cache_sessions: usize,
    label: &str,
    keys: Option<&authtrail::privacy::Keyring>,
) -> (f64, authtrail::projector::Phases) {
    use authtrail::projector::{apply_batch, split_lanes, Cache, Phases};
    use std::time::Instant;
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut phases = Phases::default();
    let mut caches: Vec<Cache> = (0..lanes.max(1))
        .map(|_| Cache::new(cache_sessions))
        .collect();
    for (i, chunk) in messages.chunks(batch).enumerate() {
        let parts = split_lanes(chunk.to_vec(), lanes);
        let outs = futures::future::join_all(parts.iter().zip(caches.iter_mut()).map(
            |(part, cache)| async move {
                let mut tx = pool.begin().await.unwrap();
                let out = apply_batch(
                    &mut tx,
                    projection,
                    rules,
                    part,
                    &Default::default(),
                    cache,
                    keys,
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                cache.committed(rules);
                out
            },
        ))
        .await;
        for out in &outs {
            assert!(out.gaps.is_empty());
            phases.add(&out.phases);
        }
        if last_report.elapsed().as_secs() >= 10 {
            let done = (i + 1) * batch;
            eprintln!(
                "  {label}: {done}/{} events, {:.0} ev/s",
                messages.len(),
                done as f64 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    (start.elapsed().as_secs_f64(), phases)
}

/// The projection's tables (read tables, dedupe set, dead letters, checkpoints).
pub use authtrail::replay::schema::PROJECTION_TABLES as TABLES;

/// The physical limit of the sink: the final rows in `pool`'s tables, written with
/// `COPY ... FROM STDIN` into the same, empty tables of a fresh database `name`, in one
/// transaction. Returns the seconds the writing took (reading the rows out is not counted).
pub async fn copy_baseline(admin: &str, pool: &PgPool, name: &str) -> f64 {
    use futures::StreamExt;
    let (copy_cfg, copy_pool) = fresh_db(admin, name).await;
    let mut dumps = vec![];
    {
        let mut src = pool.acquire().await.unwrap();
        for t in TABLES {
            let mut out = src
                .copy_out_raw(&format!("COPY {t} TO STDOUT"))
                .await
                .unwrap();
            let mut data = Vec::new();
            while let Some(chunk) = out.next().await {
                data.extend_from_slice(&chunk.unwrap());
            }
            dumps.push((*t, data));
        }
    }
    let mut dst = PgConnection::connect(&copy_cfg.url).await.unwrap();
    let start = std::time::Instant::now();
    let mut tx = sqlx::Connection::begin(&mut dst).await.unwrap();
    for (t, data) in &dumps {
        let mut copy = tx
            .copy_in_raw(&format!("COPY {t} FROM STDIN"))
            .await
            .unwrap();
        copy.send(data.as_slice()).await.unwrap();
        copy.finish().await.unwrap();
    }
    tx.commit().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    drop(copy_pool);
    secs
}
