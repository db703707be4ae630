//! Projection workers against the real broker and database: the SQL sink equals the reference
//! model, poison messages are set aside, SIGKILL at random points neither loses nor doubles an
//! event, and two workers split the partitions and survive one being killed.

mod common;

use authtrail_events::Event;
use authtrail_projections::gen::StreamGen;
use authtrail_projections::memory::Tables;
use common::projection::{
    checkpoint_total, config, export, project_all, table_hashes, wait_beyond, wait_caught_up,
};
use common::{TestDb, TestTopic};
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::process::{Child, Command, Stdio};

use std::time::Duration;

fn stream(seed: u64, users: usize, n: usize) -> Vec<Event> {
    StreamGen::new(seed, users, "2026-11-01T00:00:00Z".parse().unwrap()).take(n)
}

async fn migrated() -> (TestDb, sqlx::PgPool) {
    let db = TestDb::new().await;
    let pool = authtrail::db::migrate(&db.config).await.unwrap();
    (db, pool)
}

async fn publish(topic: &TestTopic, events: &[Event]) {
    let publisher = topic.publisher();
    for chunk in events.chunks(2000) {
        publisher.publish_all(chunk).await.unwrap();
    }
}

fn reference(events: &[Event], rules: &authtrail_projections::Rules) -> Tables {
    let mut t = Tables::default();
    t.apply_batch(rules, events);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sink_equals_the_reference_model_whatever_the_batch_size() {
    let topic = TestTopic::new(12).await;
    let events = stream(11, 40, 4000);
    publish(&topic, &events).await;

    let (db_small, small) = migrated().await;
    let mut cfg = config(&topic, &db_small, "sink-small");
    cfg.projector.batch_max_messages = 97;
    project_all(&cfg, &small, events.len() as i64).await;

    let (db_big, big) = migrated().await;
    let mut cfg_big = config(&topic, &db_big, "sink-big");
    cfg_big.projector.batch_max_messages = 5000;
    project_all(&cfg_big, &big, events.len() as i64).await;

    let expected = reference(&events, &cfg.projector.rules());
    let got = export(&small).await;
    assert_eq!(got.sessions.len(), expected.sessions.len());
    assert_eq!(got.sessions, expected.sessions);
    assert_eq!(got.login_history, expected.login_history);
    assert_eq!(got.security_events, expected.security_events);
    assert_eq!(got, expected);
    assert_eq!(
        table_hashes(&small).await.remove("sessions"),
        table_hashes(&big).await.remove("sessions")
    );
    let (mut a, mut b) = (table_hashes(&small).await, table_hashes(&big).await);
    // The consumer groups differ, not the checkpoints: both passed every message.
    a.remove("projection_checkpoints");
    b.remove("projection_checkpoints");
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_dead_letters_and_the_partition_keeps_flowing() {
    let topic = TestTopic::new(1).await;
    let events = stream(3, 3, 6);
    let producer: FutureProducer = authtrail::kafka::producer_config(&topic.config)
        .create()
        .unwrap();
    let mut bad_json = b"{\"specversion\":\"1.0\",".to_vec();
    bad_json.extend_from_slice(b"truncated");
    let invalid = serde_json::to_vec(
        &serde_json::json!({"specversion": "1.0", "id": "x", "type": "login.succeeded"}),
    )
    .unwrap();
    let mut payloads: Vec<Vec<u8>> = events[..3].iter().map(Event::to_json_bytes).collect();
    payloads.push(bad_json.clone());
    payloads.push(invalid.clone());
    payloads.extend(events[3..].iter().map(Event::to_json_bytes));
    for p in &payloads {
        producer
            .send(
                FutureRecord::to(topic.name()).key("k").payload(p),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let (db, pool) = migrated().await;
    project_all(&config(&topic, &db, "poison"), &pool, payloads.len() as i64).await;

    let dead: Vec<(i32, i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT partition, \"offset\", payload, error_field FROM dead_letters ORDER BY \"offset\"",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0].0, dead[0].1, &dead[0].2, dead[0].3.as_str()),
        (0, 3, &bad_json, "(event)")
    );
    assert_eq!(
        (dead[1].1, &dead[1].2, dead[1].3.as_str()),
        (4, &invalid, "id")
    );
    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(projected, 6, "the events after the poison were projected");
    assert_eq!(
        export(&pool).await,
        reference(&events, &authtrail_projections::Rules::default())
    );
}

/// A worker process, killed when dropped (a failing test must not leave it running).
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `authtrail project` as a process of its own.
fn spawn_worker(cfg: &authtrail::config::Config, log: &std::path::Path) -> Worker {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("project")
        .env("AUTHTRAIL_KAFKA_BROKERS", &cfg.kafka.brokers)
        .env("AUTHTRAIL_KAFKA_TOPIC", &cfg.kafka.topic)
        .env(
            "AUTHTRAIL_KAFKA_PARTITIONS",
            cfg.kafka.partitions.to_string(),
        )
        .env("AUTHTRAIL_DATABASE_URL", &cfg.database.url)
        .env("AUTHTRAIL_PROJECTOR_GROUP_ID", &cfg.projector.group_id)
        .env(
            "AUTHTRAIL_PROJECTOR_SESSION_TIMEOUT_MS",
            cfg.projector.session_timeout_ms.to_string(),
        )
        .env(
            "AUTHTRAIL_PROJECTOR_BATCH_MAX_MESSAGES",
            cfg.projector.batch_max_messages.to_string(),
        )
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Worker)
        .unwrap()
}

fn sigkill(worker: &mut Worker) {
    // SIGKILL: no shutdown hook, no flush — the crash the transactions must survive.
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_neither_loses_nor_doubles_an_event() {
    let topic = TestTopic::new(12).await;
    let events = stream(21, 200, 20_000);
    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "crash");
    cfg.projector.batch_max_messages = 200;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("worker.log");
    eprintln!("worker log: {}", log.display());

    publish(&topic, &events).await;
    let mut rng = rand_chacha_like(7);
    let total = events.len() as i64;
    let mut kill_points = vec![];
    for kill in 0..12 {
        // A fresh consumer group per restart: the killed member's session does not hold the
        // partitions until it times out, and the new worker seeks to the checkpoints.
        cfg.projector.group_id = format!("crash-{kill}");
        let mut worker = spawn_worker(&cfg, &log);
        let before = checkpoint_total(&pool, topic.name()).await;
        if before >= total {
            break;
        }
        // Once this worker is committing batches, kill it at a random moment.
        wait_beyond(&pool, topic.name(), before, Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        if let Some(status) = worker.0.try_wait().unwrap() {
            panic!(
                "worker exited by itself ({status}); log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        sigkill(&mut worker);
        kill_points.push(checkpoint_total(&pool, topic.name()).await);
    }
    let mid_way = kill_points.iter().filter(|k| **k < total).count();
    assert!(
        mid_way >= 10,
        "only {mid_way} kills landed before the end: {kill_points:?}"
    );
    cfg.projector.group_id = "crash-last".into();
    let mut last = spawn_worker(&cfg, &log);
    wait_caught_up(
        &pool,
        topic.name(),
        events.len() as i64,
        Duration::from_secs(300),
    )
    .await;
    sigkill(&mut last);

    // A clean single pass over the same log gives the same tables.
    let (db_clean, clean) = migrated().await;
    let mut clean_cfg = config(&topic, &db_clean, "clean");
    clean_cfg.projector.batch_max_messages = 5000;
    project_all(&clean_cfg, &clean, events.len() as i64).await;
    let (mut a, mut b) = (table_hashes(&pool).await, table_hashes(&clean).await);
    assert_eq!(
        a["processed_events"].0,
        events.len() as i64,
        "every event projected once"
    );
    a.remove("projection_checkpoints");
    b.remove("projection_checkpoints");
    assert_eq!(a, b);
    assert_eq!(
        export(&pool).await,
        reference(&events, &cfg.projector.rules())
    );
    drop(db_clean);
}

fn rand_chacha_like(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_the_partitions_and_one_takes_over_when_the_other_dies() {
    let topic = TestTopic::new(12).await;
    let events = stream(5, 150, 12_000);
    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "pair");
    cfg.projector.batch_max_messages = 200;
    let logs = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let mut a = spawn_worker(&cfg, &log_a);
    let mut b = spawn_worker(&cfg, &log_b);
    let assigned = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("partitions assigned") && !l.contains("partitions=[]"))
    };
    // Both workers hold partitions before the events arrive (await the condition, bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(assigned(&log_a) && assigned(&log_b)) {
        assert!(
            std::time::Instant::now() < deadline,
            "both workers never held partitions:\nA:\n{}\nB:\n{}",
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::task::yield_now().await;
        std::thread::park_timeout(Duration::from_millis(50));
    }
    publish(&topic, &events).await;
    // Kill A once the pair is under way; B must take A's partitions over.
    wait_beyond(
        &pool,
        topic.name(),
        (events.len() / 4) as i64,
        Duration::from_secs(120),
    )
    .await;
    sigkill(&mut a);
    wait_caught_up(
        &pool,
        topic.name(),
        events.len() as i64,
        Duration::from_secs(180),
    )
    .await;
    sigkill(&mut b);
    let log = std::fs::read_to_string(&log_b).unwrap();
    assert!(
        log.matches("partitions assigned").count() >= 2,
        "B never received A's partitions:\n{log}"
    );

    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(processed, events.len() as i64);
    assert_eq!(
        export(&pool).await,
        reference(&events, &cfg.projector.rules())
    );
}
