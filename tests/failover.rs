//! Crashes and failovers against Apache Kafka and PostgreSQL, each ending with the same check:
//! the tables equal a clean single pass over the same log (and the reference model), and every
//! event was projected exactly once.
//!
//! - a worker SIGKILLed at random points, restarted under its static member id;
//! - two workers in one group, one SIGKILLed: the survivor takes its partitions over once the
//!   dead member's session times out;
//! - the broker SIGKILLed and restarted while traffic is published and projected;
//! - PostgreSQL crashed (immediate stop) and restarted while traffic is projected;
//! - the enrichment stage SIGKILLed at random points (`failover/enrich.rs`).

mod common;
#[path = "failover/enrich.rs"]
mod enrich;

use authtrail::config::Config;
use authtrail_events::Event;
use common::projection::{
    checkpoint_total, config, export, migrated, project_all, publish, reference, stream,
    table_hashes, wait_beyond, wait_caught_up, wait_caught_up_or_show, Worker,
};
use common::services::{PrivateKafka, PrivatePostgres};
use common::TestTopic;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// The check every test here ends with: `pool` holds each of `events` exactly once, its tables
/// hash the same as a clean single pass over the same topic into a fresh database, and equal
/// the reference model of `events`.
async fn assert_exactly_once(
    topic: &TestTopic,
    pool: &sqlx::PgPool,
    cfg: &Config,
    events: &[Event],
) {
    let in_log: i64 = topic.end_offsets().await.iter().sum();
    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(processed, events.len() as i64, "every event projected once");
    let (db_clean, clean) = migrated().await;
    let mut clean_cfg = config(topic, &db_clean, "clean-pass");
    clean_cfg.projector.batch_max_messages = 5000;
    project_all(&clean_cfg, &clean, in_log).await;
    let (mut a, mut b) = (table_hashes(pool).await, table_hashes(&clean).await);
    a.remove("projection_checkpoints");
    b.remove("projection_checkpoints");
    assert_eq!(a, b, "tables differ from a clean single pass");
    assert_eq!(
        export(pool).await,
        reference(events, &cfg.projector.rules())
    );
}

/// Waits until the worker logs an assignment that satisfies `ok`.
async fn await_assignment(worker: &Worker, limit: Duration, ok: impl Fn(&[i32]) -> bool) {
    let deadline = Instant::now() + limit;
    while !worker.assigned().is_some_and(|p| ok(&p)) {
        assert!(
            Instant::now() < deadline,
            "no such assignment within {limit:?}; log:\n{}",
            worker.tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_neither_loses_nor_doubles_an_event() {
    let topic = TestTopic::new(12).await;
    let events = stream(21, 200, 20_000);
    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "crash");
    cfg.projector.batch_max_messages = 200;
    // A static member: the restarted worker takes its predecessor's place (and partitions) in
    // the group at once, without waiting for the dead session to time out.
    cfg.projector.instance_id = Some("crash-worker".into());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");

    publish(&topic, &events).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let total = events.len() as i64;
    let mut kill_points = vec![];
    for _ in 0..12 {
        let mut worker = Worker::spawn(&cfg, &log);
        let before = checkpoint_total(&pool, topic.name()).await;
        if before >= total {
            break;
        }
        // Once this worker is committing batches, kill it at a random moment.
        wait_beyond(&pool, topic.name(), before, Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        worker.assert_running();
        worker.sigkill();
        kill_points.push(checkpoint_total(&pool, topic.name()).await);
    }
    let mid_way = kill_points.iter().filter(|k| **k < total).count();
    assert!(
        mid_way >= 10,
        "only {mid_way} kills landed before the end: {kill_points:?}"
    );
    let mut last = Worker::spawn(&cfg, &log);
    wait_caught_up(&pool, topic.name(), total, Duration::from_secs(180)).await;
    last.sigkill();
    assert_exactly_once(&topic, &pool, &cfg, &events).await;
}

/// Two workers (dynamic members) split the partitions; one is SIGKILLed mid-stream and not
/// restarted. Once its session times out the group gives all partitions to the survivor, which
/// resumes each from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_takes_over_a_killed_workers_partitions_without_loss() {
    let topic = TestTopic::new(12).await;
    let events = stream(5, 150, 12_000);
    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "pair");
    cfg.projector.batch_max_messages = 200;
    cfg.projector.session_timeout_ms = 3_000;
    let logs = tempfile::tempdir().unwrap();
    let mut a = Worker::spawn(&cfg, &logs.path().join("a.log"));
    let b = Worker::spawn(&cfg, &logs.path().join("b.log"));
    let split = |p: &[i32]| !p.is_empty() && p.len() < 12;
    await_assignment(&a, Duration::from_secs(60), split).await;
    await_assignment(&b, Duration::from_secs(60), split).await;

    publish(&topic, &events).await;
    wait_beyond(
        &pool,
        topic.name(),
        (events.len() / 4) as i64,
        Duration::from_secs(120),
    )
    .await;
    a.sigkill();
    let killed_at = checkpoint_total(&pool, topic.name()).await;
    assert!(
        killed_at < events.len() as i64,
        "the kill came after the end"
    );
    await_assignment(&b, Duration::from_secs(60), |p| p.len() == 12).await;
    wait_caught_up_or_show(
        &pool,
        topic.name(),
        events.len() as i64,
        Duration::from_secs(180),
        &[&a, &b],
    )
    .await;
    drop(b);
    assert_exactly_once(&topic, &pool, &cfg, &events).await;
}

/// Traffic is published and projected through a broker of the test's own, which is SIGKILLed
/// and restarted twice mid-stream, with publishes in flight. Publishes that fail while it is
/// down are retried by the test (as an auth service would), with the same event ids; every
/// event whose publish was acknowledged must be projected exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_doubles_nothing() {
    let mut kafka = PrivateKafka::start();
    let topic = TestTopic::on(&kafka.brokers(), 6).await;
    let events = stream(31, 100, 6_000);
    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "broker-restart");
    cfg.projector.batch_max_messages = 200;
    let logs = tempfile::tempdir().unwrap();
    let _worker = Worker::spawn(&cfg, &logs.path().join("worker.log"));

    // The traffic: chunks of 200 at a steady pace, each retried until the broker acknowledged
    // it (the idempotent producer and the projector's dedupe by event id make a retried publish
    // harmless). It goes on while the broker dies, so publishes are in flight at each kill.
    let (acked_tx, mut acked) = tokio::sync::watch::channel(0usize);
    let traffic = {
        let (publisher, events) = (topic.publisher(), events.clone());
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(40));
            for chunk in events.chunks(200) {
                pace.tick().await;
                while let Err(e) = publisher.publish_all(chunk).await {
                    eprintln!("publish failed ({e}); retrying");
                }
                acked_tx.send_modify(|n| *n += chunk.len());
            }
        })
    };
    let mut restarts = 0;
    for third in 1..=2 {
        let target = third * events.len() / 3;
        acked.wait_for(|n| *n >= target).await.unwrap();
        // Kill it while the projector is mid-stream too.
        wait_beyond(&pool, topic.name(), 0, Duration::from_secs(120)).await;
        tokio::task::block_in_place(|| kafka.restart());
        restarts += 1;
    }
    traffic.await.unwrap();
    assert_eq!(restarts, 2);
    // Retried chunks may have been stored twice (a publish that timed out after the broker
    // took it): the log may hold more messages than events. Wait for all of them.
    let in_log: i64 = topic.end_offsets().await.iter().sum();
    assert!(in_log >= events.len() as i64);
    wait_caught_up(&pool, topic.name(), in_log, Duration::from_secs(180)).await;
    assert_exactly_once(&topic, &pool, &cfg, &events).await;
    eprintln!("log holds {in_log} messages for {} events", events.len());
}

/// The projector's PostgreSQL crashes (immediate stop: no checkpoint, WAL recovery on start)
/// and comes back twice while a backlog is being projected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_stream_loses_and_doubles_nothing() {
    let pg = PrivatePostgres::start();
    let topic = TestTopic::new(6).await;
    let events = stream(41, 100, 12_000);
    let db = authtrail::config::DatabaseConfig {
        url: pg.url("authtrail"),
        max_connections: 5,
    };
    authtrail::db::migrate(&db).await.unwrap().close().await;
    let mut cfg = Config {
        kafka: topic.config.clone(),
        database: db.clone(),
        ..Config::default()
    };
    cfg.projector.group_id = "pg-restart".into();
    cfg.projector.batch_max_messages = 100;
    let logs = tempfile::tempdir().unwrap();
    let worker = Worker::spawn(&cfg, &logs.path().join("worker.log"));

    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (first, rest) = events.split_at(events.len() / 2);
    publish(&topic, first).await;
    for round in 0..2 {
        // A pool of its own each round: the crash breaks every connection of the last one.
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let before = checkpoint_total(&pool, topic.name()).await;
        wait_beyond(&pool, topic.name(), before, Duration::from_secs(120)).await;
        pool.close().await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        pg.crash_and_restart();
        if round == 0 {
            // The rest arrives while the database is recovering.
            publish(&topic, rest).await;
        }
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    wait_caught_up_or_show(
        &pool,
        topic.name(),
        events.len() as i64,
        Duration::from_secs(180),
        &[&worker],
    )
    .await;
    drop(worker);
    assert_exactly_once(&topic, &pool, &cfg, &events).await;
}

/// `authtrail serve` (intake, API and projector) whose broker died stops on SIGTERM within its
/// grace period, although a request it is serving waits for the broker's acknowledgement (up to
/// `kafka.delivery_timeout_ms`, 30 s) and graceful shutdown waits for in-flight requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_within_its_grace_period_when_the_broker_is_gone() {
    let mut kafka = PrivateKafka::start();
    let topic = TestTopic::on(&kafka.brokers(), 3).await;
    let (db, _pool) = migrated().await;
    let port = common::services::free_port();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("serve")
        .env("AUTHTRAIL_KAFKA_BROKERS", kafka.brokers())
        .env("AUTHTRAIL_KAFKA_TOPIC", topic.name())
        .env("AUTHTRAIL_DATABASE_URL", &db.config.url)
        .env("AUTHTRAIL_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTHTRAIL_HTTP_SHUTDOWN_GRACE_MS", "3000")
        .env("AUTHTRAIL_AUTH_API_KEYS", common::app::TEST_API_KEY)
        // The example event is dated in the past, beyond the default age limit.
        .env("AUTHTRAIL_INGEST_MAX_AGE", "36500d")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let show = || std::fs::read_to_string(&log).unwrap_or_default();
    // Up when /readyz answers 200 (broker and database reachable).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(
            serve.try_wait().unwrap().is_none(),
            "serve exited:\n{}",
            show()
        );
        assert!(
            Instant::now() < deadline,
            "serve never became ready:\n{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The projector holds the partitions; now the broker dies, an event arrives (its request
    // waits for an acknowledgement that cannot come), then serve is asked to stop.
    kafka.kill();
    let body = common::examples()
        .into_iter()
        .find(|(n, _)| n == "login.succeeded.json")
        .unwrap()
        .1;
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/events"))
            .header("content-type", "application/json")
            .header("x-api-key", common::app::TEST_API_KEY)
            .body(body)
            .send(),
    );
    // In flight once enriched (the intake then waits for the broker).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("authtrail_enrich_seconds_count 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event never reached the intake:\n{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let asked = Instant::now();
    // Generous next to the 3 s grace: this bounds a hang, it does not time the shutdown.
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if asked.elapsed() > Duration::from_secs(20) {
            let _ = serve.kill();
            panic!(
                "serve still ran 20 s after SIGTERM (grace 3 s):\n{}",
                show()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "serve exited with {status} {:?} after SIGTERM",
        asked.elapsed()
    );
    in_flight.abort();
    assert!(
        show().contains("shutdown"),
        "serve logged nothing about its shutdown:\n{}",
        show()
    );
}
