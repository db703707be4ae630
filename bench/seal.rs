//! Sealing and verifying against the real broker and database, with the broker's read rate of
//! the same topic in the same run as the baseline:
//!
//! 1. **read**: a plain consumer reads every record (no hashing, no database);
//! 2. **seal**: the seal worker seals every record (digests, chain, a signed checkpoint every
//!    `BENCH_SEAL_EVERY` records per partition, each stored in PostgreSQL and published);
//! 3. **verify**: `authtrail verify` of the whole topic against those checkpoints.
//!
//! Run: `./dev with cargo bench --bench seal` (`BENCH_EVENTS`, default 1 000 000;
//! `BENCH_PARTITIONS`, default 12; `BENCH_SEAL_EVERY`, default 1 000).

use authtrail::config::{Config, KafkaConfig};
use authtrail::seal::verify::{verify, VerifyArgs};
use authtrail::seal::worker::Sealer;
use common::{env_usize, fresh_db};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench seal");
    let brokers = std::env::var("AUTHTRAIL_KAFKA_BROKERS").expect("AUTHTRAIL_KAFKA_BROKERS");
    let n = env_usize("BENCH_EVENTS", 1_000_000);
    let partitions = env_usize("BENCH_PARTITIONS", 12) as i32;
    let every = env_usize("BENCH_SEAL_EVERY", 1_000);
    let kafka = KafkaConfig {
        brokers,
        topic: format!("bench-seal-{}", uuid::Uuid::new_v4().simple()),
        partitions,
        content_type_header: common::content_type_header(),
        ..KafkaConfig::default()
    };
    authtrail::kafka::ensure_topic(&kafka).await.unwrap();
    let events = common::seeded_events(n);
    let publisher = authtrail::kafka::Publisher::new(&kafka).unwrap();
    for chunk in events.chunks(20_000) {
        publisher.publish_all(chunk).await.unwrap();
    }
    drop(events);
    println!(
        "seal benchmark: {n} events in {partitions} partitions, a checkpoint every {every} records"
    );

    // 1. The broker's read rate.
    let t = Instant::now();
    let read = read_all(&kafka, n).await;
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "read:   {read} records in {read_s:>6.1} s  {:>9.0} rec/s",
        read as f64 / read_s
    );

    // 2. Sealing.
    let (db, pool) = fresh_db(&admin, "authtrail_bench_seal").await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("seal.pem");
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    std::fs::write(
        &key_path,
        key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = Config {
        kafka: kafka.clone(),
        database: db,
        ..Config::default()
    };
    config.seal.topic = format!("{}-seals", kafka.topic);
    config.seal.every_records = every;
    config.seal.signing_key = Some(key_path);
    Sealer::ensure_topic(&config).await.unwrap();
    let sealer = Sealer::new(
        &config,
        pool.clone(),
        authtrail::seal::worker::signing_key(&config).unwrap(),
    )
    .unwrap();
    let t = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(sealer.run(async move {
        let _ = stopped.await;
    }));
    loop {
        let sealed: Option<i64> = sqlx::query_scalar(
            "SELECT sum(last_offset + 1)::bigint FROM seal_heads WHERE topic = $1",
        )
        .bind(&kafka.topic)
        .fetch_one(&pool)
        .await
        .unwrap();
        if sealed.unwrap_or(0) >= n as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seal_s = t.elapsed().as_secs_f64();
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    println!(
        "seal:   {n} records in {seal_s:>6.1} s  {:>9.0} rec/s  (÷ read = {:.2})",
        n as f64 / seal_s,
        read_s / seal_s
    );

    // 3. Verifying.
    let t = Instant::now();
    let report = verify(&config, &pool, &VerifyArgs::default())
        .await
        .unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.verified, n as u64);
    println!(
        "verify: {n} records in {verify_s:>6.1} s  {:>9.0} rec/s  (÷ read = {:.2}), {} checkpoints",
        n as f64 / verify_s,
        read_s / verify_s,
        report.checkpoints
    );
}

/// Reads every record of the topic once; returns how many.
async fn read_all(kafka: &KafkaConfig, n: usize) -> usize {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set(
                "group.id",
                format!("bench-read-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..kafka.partitions {
            tpl.add_partition_offset(&kafka.topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut read = 0;
        while read < n {
            if let Some(m) = c.poll(Duration::from_secs(10)) {
                m.unwrap();
                read += 1;
            }
        }
        read
    })
    .await
    .unwrap()
}
