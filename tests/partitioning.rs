//! One key, one partition, whatever the publisher's language: the committed test vectors
//! (`events/partition-vectors.tsv`) agree with the Java client's partitioner (from the
//! kafka-clients jar `./dev` resolved), with authtrail's own murmur2, and with where the broker
//! put authtrail's Publisher's messages; and a librdkafka producer left at its default
//! partitioner (`consistent_random`, CRC32) does not agree, which is why publishers in Python,
//! Go or .NET must set `partitioner=murmur2_random`.

mod common;

use common::TestTopic;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Vector {
    key: String,
    partitions: i32,
    partition: i32,
}

fn vectors() -> Vec<Vector> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/partition-vectors.tsv");
    let text = std::fs::read_to_string(path).unwrap();
    let out: Vec<Vector> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad vector line {l:?}");
            Vector {
                key: f[0].to_owned(),
                partitions: f[1].parse().unwrap(),
                partition: f[2].parse().unwrap(),
            }
        })
        .collect();
    assert!(out.len() >= 50, "too few vectors: {}", out.len());
    out
}

#[test]
fn the_vectors_are_the_java_clients_partitions() {
    let lib = std::env::var("AUTHTRAIL_DEV_KAFKA_LIB").expect(
        "AUTHTRAIL_DEV_KAFKA_LIB is not set: run the suite with ./dev test, which resolves Apache Kafka",
    );
    let program = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/partitioning/JavaPartitioner.java");
    let mut java = Command::new("java")
        .arg("-cp")
        .arg(format!("{lib}/*"))
        .arg(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java (./dev installs it)");
    let vectors = vectors();
    let input: String = vectors
        .iter()
        .map(|v| format!("{}\t{}\n", v.partitions, hex::encode(v.key.as_bytes())))
        .collect();
    java.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = java.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let java: Vec<i32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let expected: Vec<i32> = vectors.iter().map(|v| v.partition).collect();
    assert_eq!(java, expected);
}

#[test]
fn authtrails_murmur2_matches_the_vectors() {
    for v in vectors() {
        assert_eq!(
            authtrail::kafka::murmur2_partition(v.key.as_bytes(), v.partitions),
            v.partition,
            "key {:?}",
            v.key
        );
    }
}

fn event_for(key: &str, i: usize) -> authtrail_events::Event {
    common::event(
        9_000 + i as u128,
        "session.logged_out",
        chrono::Utc::now(),
        key,
        serde_json::json!({"session_id": format!("s-{i}")}),
    )
}

#[tokio::test]
async fn the_publisher_places_every_key_where_the_vectors_say() {
    let vectors = vectors();
    let topic = TestTopic::new(vectors[0].partitions).await;
    assert!(vectors
        .iter()
        .all(|v| v.partitions == vectors[0].partitions));
    let events: Vec<_> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| event_for(&v.key, i))
        .collect();
    let appended = topic.publisher().publish_all(&events).await.unwrap();
    let stored = topic.read(events.len(), Duration::from_secs(30)).await;
    for ((v, a), e) in vectors.iter().zip(&appended).zip(&events) {
        assert_eq!(a.partition, v.partition, "key {:?}", v.key);
        let m = stored
            .iter()
            .find(|m| m.partition == a.partition && m.offset == a.offset)
            .unwrap();
        assert_eq!(m.key, e.partition_key().as_bytes());
    }
}

/// librdkafka's default partitioner is not Java's: left at it, a Python, Go or .NET publisher
/// (all librdkafka) would put users in other partitions than authtrail and Java clients do.
#[tokio::test]
async fn librdkafkas_default_partitioner_disagrees_with_the_vectors() {
    let vectors = vectors();
    let topic = TestTopic::new(vectors[0].partitions).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .create()
        .unwrap();
    let mut moved = 0;
    for v in &vectors {
        let delivery = producer
            .send(
                FutureRecord::to(topic.name())
                    .key(v.key.as_bytes())
                    .payload("{}"),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        moved += usize::from(delivery.partition != v.partition);
    }
    assert!(
        moved > vectors.len() / 2,
        "only {moved} of {} keys placed elsewhere by consistent_random",
        vectors.len()
    );
}
