//! Rebuild throughput vs. the live projector on the same log, same run.
//!
//! `BENCH_SOURCE=memory` (default): the database side, without the broker — the log is generated
//! in memory (partitioned by key like the producer) and handed over in consumer order to
//! (a) the live projector's write path (`apply_batch`, one transaction per batch, into `public`)
//! and (b) `rebuild_from` (the rebuild with its own schema, deferred reader-only indexes, relaxed
//! commits, index build, comparison and swap). On the development broker (Tansu), fetching is
//! ~700 ev/s here, so with the broker in the loop both contenders would measure Tansu.
//!
//! `BENCH_SOURCE=broker`: end to end with the real broker:
//! 1. publish `BENCH_EVENTS` (default 1 000 000) seeded events to a fresh topic;
//! 2. **read**: the log reader alone (no database) — the broker's ceiling for both contenders;
//! 3. **live projector**: `Projector` (consumer group, batches, `apply_batch`) from an empty
//!    database until its checkpoints cover the log; then **COPY** of its final rows into empty
//!    tables (the sink's physical limit), and the ratio of the two;
//! 4. **rebuild**: `authtrail rebuild` (own consumer, same `apply_batch` into a fresh schema with
//!    deferred reader-only indexes and relaxed commits, index build, swap) with the live tables as
//!    the target; then, with `BENCH_PLAIN_REBUILD=1`, a rebuild without those two measures.
//!
//! Run: `./dev with cargo bench --bench rebuild` (needs `AUTHTRAIL_KAFKA_BROKERS` and
//! `AUTHTRAIL_TEST_DATABASE_URL`; `BENCH_PARTITIONS`, default 12; `BENCH_BATCH`, default 5 000;
//! `BENCH_REBUILD_BATCH`, the rebuild's own, default `rebuild::default_batch`, 4 × `BENCH_BATCH`;
//! `BENCH_WORKERS`, default 2; `BENCH_BATCH_WAIT_MS`, the live worker's `batch_max_wait_ms`;
//! `BENCH_CONTENT_TYPE_HEADER=0` publishes without the CloudEvents header).

use authtrail::config::{Config, KafkaConfig};
use authtrail::events::Event;
use authtrail::projector::{Projector, NOTIFY_CHANNEL};
use authtrail::replay::log::{self, Chunk, Range};
use authtrail::replay::rebuild::{self, Options, Source};
use common::{env_usize, fresh_db};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

async fn checkpoint_total(pool: &PgPool, topic: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM projection_checkpoints WHERE topic = $1",
    )
    .bind(topic)
    .fetch_one(pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_SOURCE").is_ok_and(|s| s == "broker") {
        broker().await
    } else {
        memory().await
    }
}

async fn memory() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench rebuild");
    let n = env_usize("BENCH_EVENTS", 1_000_000);
    let partitions = env_usize("BENCH_PARTITIONS", 12) as i32;
    let batch = env_usize("BENCH_BATCH", 5_000);
    let topic = "bench";
    let t = Instant::now();
    let events = common::seeded_events(n);
    let messages = common::log_of(&events, partitions, topic);
    drop(events);
    let messages = Arc::new(messages);
    println!(
        "rebuild benchmark (database side, log in memory): {n} events, {partitions} partitions, live batches of {batch}; generated in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let (db, pool) = fresh_db(&admin, "authtrail_bench_rebuild").await;
    let mut config = Config {
        database: db,
        ..Config::default()
    };
    config.kafka.topic = topic.into();
    config.projector.batch_max_messages = batch;
    let rules = config.projector.rules();
    let projection = config.projector.projection.clone();

    let (live_s, _) = common::project_live(
        &pool,
        &projection,
        &rules,
        &messages,
        batch,
        config.projector.lanes,
        config.projector.state_cache_sessions,
        "live",
        None,
    )
    .await;
    println!(
        "live projector path: {live_s:>7.1} s  {:>8.0} ev/s",
        n as f64 / live_s
    );

    let opts = rebuild_options(
        &config,
        env_usize("BENCH_REBUILD_BATCH", rebuild::default_batch(&config)),
    );
    let t = Instant::now();
    let report = rebuild::rebuild_from(
        &config,
        &pool,
        &opts,
        None,
        Source::Memory(messages.clone()),
    )
    .await
    .unwrap();
    let rebuild_s = t.elapsed().as_secs_f64();
    assert_eq!(report.messages as usize, n);
    println!(
        "rebuild:             {rebuild_s:>7.1} s  {:>8.0} ev/s  (identical to live: {}; swap held the live workers {:.1} s)",
        n as f64 / rebuild_s,
        report.identical(),
        report.swap_seconds
    );
    println!(
        "  batches of {}, {} workers: {}",
        opts.batch,
        opts.workers,
        rebuild::phase_line(&report.phases)
    );
    println!("ratio rebuild/live: {:.2}x", live_s / rebuild_s);
    plain_rebuild(&config, &pool, opts, Source::Memory(messages.clone()), n).await;
    pool.close().await;
}

/// With `BENCH_PLAIN_REBUILD=1`, a rebuild like `opts` but without deferred indexes and relaxed
/// commits (one worker), for comparison.
async fn plain_rebuild(config: &Config, pool: &PgPool, opts: Options, source: Source, n: usize) {
    if !std::env::var("BENCH_PLAIN_REBUILD").is_ok_and(|v| v == "1") {
        return;
    }
    let opts = Options {
        schema: Some("authtrail_rebuild_plain".into()),
        fast: false,
        workers: 1,
        ..opts
    };
    let t = Instant::now();
    let report = rebuild::rebuild_from(config, pool, &opts, None, source)
        .await
        .unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "rebuild, indexes kept and synchronous commits: {s:>7.1} s  {:>8.0} ev/s  (identical: {})",
        n as f64 / s,
        report.identical()
    );
}

/// The rebuild's options in these benchmarks: swapped in over the live tables (dropped), in
/// batches of `batch`, `BENCH_WORKERS` workers (default 2).
fn rebuild_options(config: &Config, batch: usize) -> Options {
    Options {
        schema: Some("authtrail_rebuild_bench".into()),
        drop_old: true,
        swap: true,
        batch,
        progress_bar: false,
        lock_distance: 20_000,
        fast: true,
        workers: env_usize("BENCH_WORKERS", 2),
        cache_sessions: config.projector.state_cache_sessions,
    }
}

async fn broker() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench rebuild");
    let brokers = std::env::var("AUTHTRAIL_KAFKA_BROKERS").expect("AUTHTRAIL_KAFKA_BROKERS");
    let n = env_usize("BENCH_EVENTS", 1_000_000);
    let partitions = env_usize("BENCH_PARTITIONS", 12) as i32;
    let batch = env_usize("BENCH_BATCH", 5_000);

    let kafka = KafkaConfig {
        brokers,
        topic: format!("bench-rebuild-{}", uuid::Uuid::new_v4().simple()),
        partitions,
        content_type_header: common::content_type_header(),
        ..KafkaConfig::default()
    };
    authtrail::kafka::ensure_topic(&kafka).await.unwrap();
    let t = Instant::now();
    let events = common::seeded_events(n);
    println!(
        "rebuild benchmark: {n} events, {partitions} partitions, batches of {batch}; generated in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    publish(&kafka, events).await;

    // The broker's ceiling: read everything, no database.
    let read_s = read_all(&kafka, batch, n).await;

    // Live projector.
    let (db, pool) = fresh_db(&admin, "authtrail_bench_rebuild").await;
    let mut config = Config {
        kafka: kafka.clone(),
        database: db.clone(),
        ..Config::default()
    };
    config.projector.group_id = format!("bench-{}", uuid::Uuid::new_v4().simple());
    config.projector.batch_max_messages = batch;
    config.projector.batch_max_wait_ms = env_usize(
        "BENCH_BATCH_WAIT_MS",
        config.projector.batch_max_wait_ms as usize,
    ) as u64;
    let live_s = live_projector(&config, &pool, n).await;
    // The sink's physical limit on the same rows: the live projector ÷ COPY.
    let copy_s = common::copy_baseline(&admin, &pool, "authtrail_bench_copy").await;
    println!(
        "COPY of the final rows: {copy_s:>7.1} s  {:>8.0} ev/s equivalent; live projector (from the broker) / COPY = {:.2}",
        n as f64 / copy_s,
        copy_s / live_s
    );

    // Rebuild, swapping in over the live tables.
    let opts = rebuild_options(&config, batch);
    let t = Instant::now();
    let report = rebuild::rebuild(&config, &pool, &opts, None).await.unwrap();
    let rebuild_s = t.elapsed().as_secs_f64();
    assert_eq!(report.messages as usize, n);
    println!(
        "rebuild:        {rebuild_s:>7.1} s  {:>8.0} ev/s  (identical to live: {})",
        n as f64 / rebuild_s,
        report.identical()
    );
    println!(
        "  of which the swap (live workers paused): {:.1} s; {}",
        report.swap_seconds,
        rebuild::phase_line(&report.phases)
    );
    println!(
        "ratio rebuild/live: {:.2}x; rebuild/read ceiling: {:.2}",
        live_s / rebuild_s,
        read_s / rebuild_s
    );
    plain_rebuild(&config, &pool, opts, Source::Kafka, n).await;
    pool.close().await;
}

/// Publishes `events` to `kafka`'s topic, in chunks, and prints the rate.
async fn publish(kafka: &KafkaConfig, events: Vec<Event>) {
    let n = events.len();
    let t = Instant::now();
    let publisher = authtrail::kafka::Publisher::new(kafka).unwrap();
    for (i, chunk) in events.chunks(5_000).enumerate() {
        publisher.publish_all(chunk).await.unwrap();
        if (i + 1) % 40 == 0 {
            eprintln!("  published {}", (i + 1) * 5_000);
        }
    }
    drop(publisher);
    drop(events);
    let publish_s = t.elapsed().as_secs_f64();
    println!(
        "publish:        {publish_s:>7.1} s  {:>8.0} ev/s",
        n as f64 / publish_s
    );
}

/// Reads the whole topic (`n` messages) with the log reader, no database; prints the rate and
/// returns the seconds taken.
async fn read_all(kafka: &KafkaConfig, batch: usize, n: usize) -> f64 {
    let parts = log::partitions(kafka).await.unwrap();
    let marks = log::watermarks(kafka, &parts).await.unwrap();
    let t = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let ranges = parts
        .iter()
        .map(|&p| Range {
            partition: p,
            start: 0,
            end: Some(marks[&p].1),
        })
        .collect();
    let _reader = log::spawn_reader(kafka, ranges, batch, tx, Arc::new(AtomicBool::new(false)));
    let mut read = 0usize;
    while let Some(Chunk::Messages(m)) = rx.recv().await {
        read += m.len();
    }
    assert_eq!(read, n);
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "read (no db):   {read_s:>7.1} s  {:>8.0} ev/s",
        n as f64 / read_s
    );
    read_s
}

/// Runs a live `Projector` from an empty database until its checkpoints cover the topic's `n`
/// messages; prints the rate and returns the seconds taken.
async fn live_projector(config: &Config, pool: &PgPool, n: usize) -> f64 {
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let t = Instant::now();
    let projector = Projector::new(config.clone(), pool.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    let mut last = Instant::now();
    loop {
        let done = checkpoint_total(pool, &config.kafka.topic).await;
        if done >= n as i64 {
            break;
        }
        if last.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "  live: {done}/{n}, {:.0} ev/s",
                done as f64 / t.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await;
    }
    let live_s = t.elapsed().as_secs_f64();
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    println!(
        "live projector: {live_s:>7.1} s  {:>8.0} ev/s  (batch_max_wait_ms={})",
        n as f64 / live_s,
        config.projector.batch_max_wait_ms
    );
    live_s
}
