//! What integration tests need: the real broker (own topic per test) and the real PostgreSQL
//! (own database per test). Addresses come from the environment that `./dev test` sets.
#![allow(dead_code)]

pub mod api;
pub mod app;
pub mod projection;
pub mod services;

use authtrail::config::{DatabaseConfig, KafkaConfig};
use authtrail::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub fn brokers() -> String {
    std::env::var("AUTHTRAIL_KAFKA_BROKERS").expect(
        "AUTHTRAIL_KAFKA_BROKERS is not set: run the suite with ./dev test, which starts a broker",
    )
}

/// A topic of its own for one test.
pub struct TestTopic {
    pub config: KafkaConfig,
}

impl TestTopic {
    pub async fn new(partitions: i32) -> TestTopic {
        TestTopic::on(&brokers(), partitions).await
    }

    /// A topic of its own on the broker at `brokers` (a test's private broker).
    pub async fn on(brokers: &str, partitions: i32) -> TestTopic {
        let config = KafkaConfig {
            brokers: brokers.to_owned(),
            topic: format!("test-{}", Uuid::new_v4().simple()),
            partitions,
            ..KafkaConfig::default()
        };
        let got = kafka::ensure_topic(&config)
            .await
            .expect("create test topic");
        assert_eq!(got, partitions);
        TestTopic { config }
    }

    /// A topic that exists already (made by the code under test), to read it.
    #[allow(dead_code)]
    pub async fn existing(brokers: &str, topic: &str) -> TestTopic {
        let config = KafkaConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            ..KafkaConfig::default()
        };
        let partitions = authtrail::replay::log::partitions(&config)
            .await
            .expect("the topic exists")
            .len() as i32;
        TestTopic {
            config: KafkaConfig {
                partitions,
                ..config
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.config.topic
    }

    pub fn publisher(&self) -> kafka::Publisher {
        kafka::Publisher::new(&self.config).expect("producer")
    }

    /// High watermark of every partition: how many messages each holds.
    pub async fn end_offsets(&self) -> Vec<i64> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = consumer_config(&config).create().unwrap();
            (0..config.partitions)
                .map(|p| {
                    c.fetch_watermarks(&config.topic, p, Duration::from_secs(10))
                        .unwrap()
                        .1
                })
                .collect()
        })
        .await
        .unwrap()
    }

    /// Reads every partition from the beginning with a consumer of its own until `expected`
    /// messages arrived (panics after `timeout` naming how many did).
    pub async fn read(&self, expected: usize, timeout: Duration) -> Vec<Raw> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = consumer_config(&config).create().unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..config.partitions {
                tpl.add_partition_offset(&config.topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let deadline = Instant::now() + timeout;
            let mut out = Vec::with_capacity(expected);
            while out.len() < expected {
                assert!(
                    Instant::now() < deadline,
                    "read {} of {expected} messages from {} within {timeout:?}",
                    out.len(),
                    config.topic
                );
                match c.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => out.push(raw(&m)),
                    Some(Err(e)) => panic!("consumer error: {e}"),
                    None => {}
                }
            }
            out
        })
        .await
        .unwrap()
    }

    /// Every committed message of every partition, read from the beginning to the last stable
    /// offset (read committed: aborted transactions are skipped).
    pub async fn read_to_end(&self) -> Vec<Raw> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = consumer_config(&config)
                .set("enable.partition.eof", "true")
                .set("isolation.level", "read_committed")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..config.partitions {
                tpl.add_partition_offset(&config.topic, p, Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            let mut open: std::collections::BTreeSet<i32> = (0..config.partitions).collect();
            let mut out = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !open.is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "reading {} to its end took over 120 s",
                    config.topic
                );
                match c.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => out.push(raw(&m)),
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                        open.remove(&p);
                    }
                    Some(Err(e)) => panic!("consumer error: {e}"),
                    None => {}
                }
            }
            out
        })
        .await
        .unwrap()
    }
}

fn raw(m: &rdkafka::message::BorrowedMessage<'_>) -> Raw {
    Raw {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().unwrap_or_default().to_vec(),
        payload: m.payload().unwrap_or_default().to_vec(),
        timestamp: m.timestamp().to_millis(),
        content_type: m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == "content-type")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        }),
    }
}

fn consumer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set(
            "group.id",
            format!("test-reader-{}", Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    c
}

/// One message as stored.
#[derive(Debug, Clone)]
pub struct Raw {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub content_type: Option<String>,
    /// The broker's timestamp (ms since the epoch), when the message has one.
    pub timestamp: Option<i64>,
}

/// The partition of a key under Kafka's default partitioner (the library's implementation;
/// the publish and ingest tests check the broker placed every message there).
#[allow(unused_imports)] // not every test binary uses it
pub use authtrail::kafka::murmur2_partition;

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub config: DatabaseConfig,
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin_url = std::env::var("AUTHTRAIL_TEST_DATABASE_URL").expect(
            "AUTHTRAIL_TEST_DATABASE_URL is not set: run the suite with ./dev test, which finds or starts PostgreSQL",
        );
        let name = format!("authtrail_test_{}", Uuid::new_v4().simple());
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("database URL ends in /dbname");
        TestDb {
            config: DatabaseConfig {
                url: format!("{base}/{name}"),
                max_connections: 5,
            },
            admin_url,
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop from a thread of its own: Drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

/// A contract-valid event from its parts; its id is `Uuid::from_u128(id)`, so tests can name it.
pub fn event(
    id: u128,
    ty: &str,
    time: chrono::DateTime<chrono::Utc>,
    subject: &str,
    data: serde_json::Value,
) -> authtrail_events::Event {
    let v = serde_json::json!({
        "specversion": "1.0",
        "id": Uuid::from_u128(id).to_string(),
        "source": "/services/auth-api",
        "type": ty,
        "time": time.to_rfc3339(),
        "subject": subject,
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": data,
    });
    authtrail_events::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

/// The examples shipped with the contract, as `(file name, bytes)`.
pub fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/examples");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A `Write` a test reads back (log lines, exports): clones share one buffer.
#[derive(Clone, Default)]
pub struct Buf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
