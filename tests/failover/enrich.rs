//! The enrichment stage (`authtrail enrich`) SIGKILLed at random points while raw events flow:
//! every valid raw event appears in the events topic exactly once, every invalid one in the
//! rejected topic exactly once (read committed).
//!
//! `AUTHTRAIL_TEST_ENRICH_EXACTLY_ONCE=false` runs the same test with the stage's Kafka
//! transaction switched off (`enrich.exactly_once = false`: output flushed, then offsets
//! committed); it then fails with events appended twice.

use super::common::projection::stream;
use super::common::TestTopic;
use authtrail::ingest::stage::Rejection;
use authtrail_events::Event;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One `authtrail enrich` process.
struct Stage {
    child: std::process::Child,
    log: PathBuf,
}

impl Stage {
    fn spawn(config: &Path, log: &Path) -> Stage {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("--config")
            .arg(config)
            .arg("enrich")
            .env_remove("AUTHTRAIL_KAFKA_BROKERS")
            .env_remove("AUTHTRAIL_DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Stage {
            child,
            log: log.to_owned(),
        }
    }

    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the stage exited by itself ({status}); log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// How many raw messages the stage's group has committed (sum over partitions).
async fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let (brokers, group, topic) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = client(&brokers).set("group.id", &group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        match c.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .filter_map(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
                .sum(),
            Err(_) => 0,
        }
    })
    .await
    .unwrap()
}

/// The `i`-th raw message: mostly valid events, every 25th invalid in one of several ways.
/// Returns the bytes and whether they may be appended (the types only authtrail's API appends
/// may not).
fn raw_message(i: usize, e: &Event) -> (Vec<u8>, bool) {
    let mut v: serde_json::Value = serde_json::from_slice(&e.to_json_bytes()).unwrap();
    if i % 25 != 7 {
        let api_only =
            ["admin.action", "security_event.reviewed"].contains(&e.event_type().as_str());
        return (serde_json::to_vec(&v).unwrap(), !api_only);
    }
    match (i / 25) % 4 {
        0 => v["type"] = "login.bogus".into(),
        1 => v["publisher"] = "api-key:someone-else".into(),
        2 => v["data"]["ip"] = "999.1.1.1".into(),
        _ => return (b"{not json".to_vec(), false),
    }
    (serde_json::to_vec(&v).unwrap(), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrichment_stage_sigkilled_at_random_points_appends_each_raw_event_exactly_once() {
    let exactly_once = std::env::var("AUTHTRAIL_TEST_ENRICH_EXACTLY_ONCE")
        .map(|v| v != "false" && v != "0")
        .unwrap_or(true);
    let events_topic = TestTopic::new(6).await;
    let raw = TestTopic::new(4).await;
    let rejected = TestTopic::new(2).await;
    let brokers = events_topic.config.brokers.clone();
    let suffix = Uuid::new_v4().simple().to_string();
    let group = format!("enrich-{suffix}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authtrail.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
brokers = "{brokers}"
topic = "{events}"
partitions = 6

[enrich]
raw_topic = "{raw}"
rejected_topic = "{rejected}"
group_id = "{group}"
transactional_id = "enrich-{suffix}"
instance_id = "enrich-{suffix}"
exactly_once = {exactly_once}
batch_max_messages = 300
backfill = true
"#,
            events = events_topic.name(),
            raw = raw.name(),
            rejected = rejected.name(),
        ),
    )
    .unwrap();
    let log = dir.path().join("enrich.log");

    // 23 000 raw events of 200 users, 920 of them invalid and some of types only the API appends.
    let events = stream(23, 200, 23_000);
    let messages: Vec<(String, Vec<u8>, bool)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (bytes, valid) = raw_message(i, e);
            (e.partition_key(), bytes, valid)
        })
        .collect();
    let valid_ids: BTreeSet<String> = events
        .iter()
        .zip(&messages)
        .filter(|(_, m)| m.2)
        .map(|(e, _)| e.id.to_string())
        .collect();
    let invalid_count = messages.iter().filter(|m| !m.2).count();
    assert!(valid_ids.len() >= 20_000, "{}", valid_ids.len());

    // The publisher: any language's client with librdkafka's default partitioner, paced by
    // the stage's restarts (chunk k waits for the (k/2)-th start), so that the stage is killed
    // while raw events flow and each new stage has work.
    let (starts_tx, starts_rx) = tokio::sync::watch::channel(0usize);
    let publisher = {
        let brokers = brokers.clone();
        let raw_topic = raw.name().to_owned();
        let messages = messages.clone();
        tokio::spawn(async move {
            let producer: FutureProducer = client(&brokers)
                .set("enable.idempotence", "true")
                .create()
                .unwrap();
            let mut placed: BTreeMap<(i32, i64), bool> = BTreeMap::new();
            let mut starts_rx = starts_rx;
            for (k, chunk) in messages.chunks(800).enumerate() {
                let _ = starts_rx.wait_for(|n| *n >= k / 2).await;
                let sends = chunk.iter().map(|(key, bytes, _)| {
                    producer.send(
                        FutureRecord::to(&raw_topic).key(key).payload(bytes),
                        Duration::from_secs(30),
                    )
                });
                for (result, (_, _, valid)) in futures::future::join_all(sends)
                    .await
                    .into_iter()
                    .zip(chunk)
                {
                    let d = result.map_err(|(e, _)| e).unwrap();
                    placed.insert((d.partition, d.offset), *valid);
                }
            }
            placed
        })
    };

    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let total = messages.len() as i64;
    let mut kills_while_flowing = 0;
    let mut kill_points = vec![];
    for start in 1..=14 {
        let mut stage = Stage::spawn(&config, &log);
        let _ = starts_tx.send(start);
        let before = committed(&brokers, &group, raw.name(), 4).await;
        // Once this stage commits batches, kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            stage.assert_running();
            let now = committed(&brokers, &group, raw.name(), 4).await;
            if now > before || (now >= total && publisher.is_finished()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no progress within 120 s; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        stage.assert_running();
        let flowing = !publisher.is_finished();
        stage.sigkill();
        kills_while_flowing += usize::from(flowing);
        kill_points.push(committed(&brokers, &group, raw.name(), 4).await);
    }
    let _ = starts_tx.send(usize::MAX);
    let placed = publisher.await.unwrap();
    assert!(
        kills_while_flowing >= 10,
        "only {kills_while_flowing} kills landed while raw events flowed: {kill_points:?}"
    );

    // The last stage runs until everything is committed.
    let mut last = Stage::spawn(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(180);
    while committed(&brokers, &group, raw.name(), 4).await < total {
        last.assert_running();
        assert!(Instant::now() < deadline, "the stage did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last.sigkill();

    let appended: Vec<Vec<u8>> = events_topic
        .read_to_end()
        .await
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for bytes in &appended {
        let e = authtrail_events::parse(bytes).expect("the stage appends valid events");
        assert_eq!(
            e.publisher.as_deref(),
            Some(format!("kafka:{}", raw.name()).as_str()),
            "stamped by the stage"
        );
        *seen.entry(e.id.to_string()).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} events appended more than once (first: {:?}); kills at {kill_points:?}",
        doubled.len(),
        doubled.first()
    );
    let got: BTreeSet<String> = seen.into_keys().collect();
    let missing: Vec<&String> = valid_ids.difference(&got).collect();
    if !missing.is_empty() {
        let rejected_ids: BTreeMap<String, String> = rejected
            .read_to_end()
            .await
            .iter()
            .map(|m| serde_json::from_slice::<Rejection>(&m.payload).unwrap())
            .filter_map(|r| Some((r.id.clone()?, format!("{}: {}", r.field, r.reason))))
            .collect();
        panic!(
            "{} valid raw events missing from the events topic; first {} (rejected as: {:?}); {} appended",
            missing.len(),
            missing[0],
            rejected_ids.get(missing[0]),
            appended.len()
        );
    }
    assert_eq!(got.len(), valid_ids.len(), "nothing else was appended");

    let rejections: Vec<Vec<u8>> = rejected
        .read_to_end()
        .await
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let mut where_: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for bytes in &rejections {
        let r: Rejection = serde_json::from_slice(bytes).unwrap();
        assert!(!r.field.is_empty() && !r.reason.is_empty(), "{r:?}");
        *where_.entry((r.partition, r.offset)).or_default() += 1;
    }
    assert!(
        where_.values().all(|n| *n == 1),
        "a raw event rejected more than once"
    );
    let expected: BTreeSet<(i32, i64)> = placed
        .iter()
        .filter(|(_, valid)| !**valid)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(expected.len(), invalid_count);
    assert_eq!(
        where_.into_keys().collect::<BTreeSet<_>>(),
        expected,
        "exactly the invalid raw events were rejected"
    );
}
