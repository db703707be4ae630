//! Seals against the real broker and database: a sealed topic verifies; copies of it with one
//! change each (a flipped byte, a deleted record, two records swapped, an injected record)
//! verify against the original's seals only up to the changed offset, which is named; forged,
//! unsigned and missing checkpoints are reported; checkpoints of a rotated-out key still verify
//! with its public key.

use super::common::projection::{migrated, publish, stream};
use super::common::{Raw, TestTopic};
use authtrail::config::Config;
use authtrail::seal::verify::{verify, Problem, Report, VerifyArgs};
use authtrail::seal::worker::{signing_key, Sealer};
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `key`'s private (0600) and public PEM files into `dir`.
fn key_files(dir: &Path, name: &str, seed: u8) -> (PathBuf, PathBuf) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    std::fs::write(
        &private,
        key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

/// Runs a sealer until every record of `topic` is sealed.
async fn seal_all(cfg: &Config, pool: &PgPool, topic: &TestTopic) {
    Sealer::ensure_topic(cfg).await.unwrap();
    let sealer = Sealer::new(cfg, pool.clone(), signing_key(cfg).unwrap()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(sealer.run(async move {
        let _ = stopped.await;
    }));
    let ends = topic.end_offsets().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let heads: Vec<(i32, i64)> =
            sqlx::query_as("SELECT partition, last_offset FROM seal_heads WHERE topic = $1")
                .bind(topic.name())
                .fetch_all(pool)
                .await
                .unwrap();
        let sealed = ends
            .iter()
            .enumerate()
            .all(|(p, end)| heads.contains(&(p as i32, end - 1)));
        if sealed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not sealed within 120 s: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

/// A copy of `original` (same partitions, keys, values and timestamps) with `change` applied
/// to partition 0's records.
async fn copy_with(original: &TestTopic, change: impl Fn(&mut Vec<Raw>)) -> TestTopic {
    let copy = TestTopic::new(original.config.partitions).await;
    let mut records = original.read_to_end().await;
    records.sort_by_key(|r| (r.partition, r.offset));
    let (mut p0, rest): (Vec<Raw>, Vec<Raw>) = records.into_iter().partition(|r| r.partition == 0);
    change(&mut p0);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &copy.config.brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for r in p0.iter().chain(&rest) {
        let mut record = FutureRecord::to(copy.name())
            .partition(r.partition)
            .key(&r.key)
            .payload(&r.payload);
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    copy
}

async fn check(cfg: &Config, pool: &PgPool, topic: &str, sealed_as: &str) -> Report {
    let args = VerifyArgs {
        topic: Some(topic.to_owned()),
        sealed_as: Some(sealed_as.to_owned()),
        ..VerifyArgs::default()
    };
    verify(cfg, pool, &args).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tampering_is_named_at_its_offset_and_bad_checkpoints_are_reported() {
    let original = TestTopic::new(2).await;
    let events = stream(41, 40, 600);
    publish(&original, &events).await;
    let (_db, pool) = migrated().await;
    let keys = tempfile::tempdir().unwrap();
    let (private1, public1) = key_files(keys.path(), "seal-1", 1);
    let mut cfg = Config {
        kafka: original.config.clone(),
        ..Config::default()
    };
    cfg.seal.topic = format!("{}-seals", original.name());
    cfg.seal.every_records = 40;
    cfg.seal.every_secs = 1;
    cfg.seal.key_id = "seal-1".into();
    cfg.seal.signing_key = Some(private1.clone());
    seal_all(&cfg, &pool, &original).await;

    let clean = check(&cfg, &pool, original.name(), original.name()).await;
    assert!(clean.ok(), "{:?}", clean.problems);
    assert_eq!(clean.verified, 600);
    assert_eq!(clean.unsealed, 0);

    // Partition 0 holds a few hundred records; tamper at offset 123.
    let at = 123usize;
    let first = |r: Report| r.problems.first().cloned();
    let named = Some(Problem::RecordDiffers {
        partition: 0,
        offset: at as i64,
        sealed_offset: at as i64,
    });
    let flipped = copy_with(&original, |rs| rs[at].payload[40] ^= 0x01).await;
    assert_eq!(
        first(check(&cfg, &pool, flipped.name(), original.name()).await),
        named,
        "flipped byte"
    );
    let deleted = copy_with(&original, |rs| {
        rs.remove(at);
    })
    .await;
    assert_eq!(
        first(check(&cfg, &pool, deleted.name(), original.name()).await),
        named,
        "deleted record"
    );
    let swapped = copy_with(&original, |rs| rs.swap(at, at + 1)).await;
    assert_eq!(
        first(check(&cfg, &pool, swapped.name(), original.name()).await),
        named,
        "swapped records"
    );
    let injected = copy_with(&original, |rs| {
        let mut evil = rs[at].clone();
        evil.payload = b"{\"injected\":true}".to_vec();
        rs.insert(at, evil);
    })
    .await;
    assert_eq!(
        first(check(&cfg, &pool, injected.name(), original.name()).await),
        named,
        "injected record"
    );
    let faithful = copy_with(&original, |_| {}).await;
    assert!(
        check(&cfg, &pool, faithful.name(), original.name())
            .await
            .ok(),
        "an exact copy verifies"
    );

    // Bad checkpoints in the database: forged (the head changed), unsigned, missing.
    let second: i64 = sqlx::query_scalar(
        "SELECT first_offset FROM seal_checkpoints WHERE topic = $1 AND partition = 0
         ORDER BY first_offset OFFSET 1 LIMIT 1",
    )
    .bind(original.name())
    .fetch_one(&pool)
    .await
    .unwrap();
    let tamper = |sql: &'static str| {
        let pool = pool.clone();
        let topic = original.name().to_owned();
        async move {
            sqlx::query(sql)
                .bind(topic)
                .bind(second)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    tamper("UPDATE seal_checkpoints SET body = jsonb_set(body, '{head}', to_jsonb(repeat('0', 64))) WHERE topic = $1 AND partition = 0 AND first_offset = $2").await;
    let r = check(&cfg, &pool, original.name(), original.name()).await;
    assert!(
        matches!(r.problems[..], [Problem::CheckpointForged { partition: 0, first_offset, .. }] if first_offset == second),
        "{:?}",
        r.problems
    );
    tamper("UPDATE seal_checkpoints SET body = jsonb_set(body, '{signature}', '\"\"') WHERE topic = $1 AND partition = 0 AND first_offset = $2").await;
    let r = check(&cfg, &pool, original.name(), original.name()).await;
    assert!(
        matches!(r.problems[..], [Problem::CheckpointUnsigned { partition: 0, first_offset, .. }] if first_offset == second),
        "{:?}",
        r.problems
    );
    tamper("DELETE FROM seal_checkpoints WHERE topic = $1 AND partition = 0 AND first_offset = $2")
        .await;
    let r = check(&cfg, &pool, original.name(), original.name()).await;
    assert!(
        matches!(r.problems[..], [Problem::CheckpointsMissing { partition: 0, before_offset, .. }] if before_offset > second),
        "{:?}",
        r.problems
    );

    // Rotation: new events sealed with seal-2; seal-1's checkpoints verify with its public key.
    let rotated = TestTopic::new(1).await;
    publish(&rotated, &events[..100]).await;
    let mut cfg1 = cfg.clone();
    cfg1.kafka = rotated.config.clone();
    seal_all(&cfg1, &pool, &rotated).await;
    publish(&rotated, &events[100..200]).await;
    let (private2, _) = key_files(keys.path(), "seal-2", 2);
    let mut cfg2 = cfg1.clone();
    cfg2.seal.key_id = "seal-2".into();
    cfg2.seal.signing_key = Some(private2);
    seal_all(&cfg2, &pool, &rotated).await;
    let without_old = check(&cfg2, &pool, rotated.name(), rotated.name()).await;
    assert!(
        matches!(without_old.problems[0], Problem::CheckpointForged { .. }),
        "seal-1's checkpoints need seal-1's public key: {:?}",
        without_old.problems
    );
    cfg2.seal.public_keys.insert("seal-1".into(), public1);
    let rotated_ok = check(&cfg2, &pool, rotated.name(), rotated.name()).await;
    assert!(rotated_ok.ok(), "{:?}", rotated_ok.problems);
    assert_eq!(rotated_ok.verified, 200);
}
