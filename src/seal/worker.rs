//! The seal worker: follows every partition of the events topic (read committed), extends each
//! partition's chain and writes a signed [`Checkpoint`] every `seal.every_records` records or
//! `seal.every_secs` seconds — to PostgreSQL, then to the seals topic.
//!
//! Contract: a partition's chain only moves forward by compare-and-swap on `seal_heads` in
//! the transaction that stores the checkpoint, so a second sealer (or a restarted one) can
//! never fork or interleave a chain; on a lost race the worker reloads where the chain stands.
//! Records after the last checkpoint are the unsealed window: a restart reads them again.

use super::chain::{digest, genesis, link, Checkpoint, Hash, Record, SealKey};
use crate::config::{Config, KafkaConfig};
use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where a partition's chain stands and what is not sealed yet.
struct Open {
    /// Head of the last checkpoint (or genesis) and its last offset (-1: none).
    sealed_head: Hash,
    sealed_last: i64,
    /// The unsealed records since.
    head: Hash,
    offsets: Vec<i64>,
    digests: Vec<Hash>,
    since: Option<Instant>,
}

pub struct Sealer {
    kafka: KafkaConfig,
    pool: PgPool,
    key: SealKey,
    producer: FutureProducer,
    seals_topic: String,
    every_records: usize,
    every: Duration,
}

/// The signing key of `config`, refusing a file others may read.
pub fn signing_key(config: &Config) -> anyhow::Result<SealKey> {
    let path = config
        .seal
        .signing_key
        .as_ref()
        .context("seal.signing_key is not set")?;
    let pem = crate::config::read_private_file(path, "seal.signing_key")?;
    let pem = String::from_utf8(pem).context("seal.signing_key is not UTF-8 PEM")?;
    SealKey::from_pkcs8_pem(config.seal.key_id.clone(), &pem)
        .with_context(|| format!("seal.signing_key {}", path.display()))
}

impl Sealer {
    pub fn new(config: &Config, pool: PgPool, key: SealKey) -> anyhow::Result<Sealer> {
        let seals = KafkaConfig {
            topic: config.seal.topic.clone(),
            ..config.kafka.clone()
        };
        Ok(Sealer {
            kafka: config.kafka.clone(),
            pool,
            key,
            producer: crate::kafka::producer_config(&seals).create()?,
            seals_topic: config.seal.topic.clone(),
            every_records: config.seal.every_records,
            every: Duration::from_secs(config.seal.every_secs),
        })
    }

    /// Creates the seals topic when missing.
    pub async fn ensure_topic(config: &Config) -> anyhow::Result<()> {
        let seals = KafkaConfig {
            topic: config.seal.topic.clone(),
            ..config.kafka.clone()
        };
        crate::kafka::ensure_topic(&seals)
            .await
            .with_context(|| format!("ensuring topic {}", seals.topic))?;
        Ok(())
    }

    /// Seals until `stop`; then seals what is open and returns. A failure (broker, database,
    /// a lost race) starts over from the stored heads after a pause.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        use futures::FutureExt;
        // Shared: polled again after it resolved, it stays resolved.
        let stop = Box::pin(stop).shared();
        loop {
            match self.run_once(stop.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    metrics::counter!("authtrail_seal_restarts_total").increment(1);
                    tracing::warn!(error = format!("{e:#}"), "seal: starting over in 1 s");
                    tokio::select! {
                        _ = stop.clone() => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn run_once(&self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        self.republish().await?;
        let topic = self.kafka.topic.clone();
        let partitions = crate::kafka::topic_partitions(&self.kafka)
            .await?
            .context("the events topic does not exist")?;
        let mut open: BTreeMap<i32, Open> = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let o = self.load(p).await?;
            let from = if o.sealed_last < 0 {
                Offset::Beginning
            } else {
                Offset::Offset(o.sealed_last + 1)
            };
            tpl.add_partition_offset(&topic, p, from)?;
            open.insert(p, o);
        }
        let mut c = crate::kafka::admin_config(&self.kafka);
        c.set("group.id", "authtrail-seal")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // A stored position the log no longer has is an error, never a silent jump.
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = c.create()?;
        consumer.assign(&tpl)?;
        tracing::info!(%topic, partitions, "seal worker running");
        let tick = Duration::from_millis(200);
        loop {
            let received = tokio::select! {
                _ = stop.as_mut() => {
                    for p in open.keys().copied().collect::<Vec<_>>() {
                        self.seal(p, &mut open).await?;
                    }
                    tracing::info!("seal worker stopped");
                    return Ok(());
                }
                r = tokio::time::timeout(tick, consumer.recv()) => r,
            };
            if let Ok(m) = received {
                let m = m?;
                let p = m.partition();
                let Some(o) = open.get_mut(&p) else { continue };
                let d = digest(&Record {
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    key: m.key(),
                    value: m.payload(),
                });
                o.head = link(&o.head, &d);
                o.offsets.push(m.offset());
                o.digests.push(d);
                o.since.get_or_insert_with(Instant::now);
                metrics::counter!("authtrail_seal_records_total").increment(1);
                if o.offsets.len() >= self.every_records {
                    self.seal(p, &mut open).await?;
                }
            }
            let due: Vec<i32> = open
                .iter()
                .filter(|(_, o)| o.since.is_some_and(|s| s.elapsed() >= self.every))
                .map(|(p, _)| *p)
                .collect();
            for p in due {
                self.seal(p, &mut open).await?;
            }
        }
    }

    /// Where partition `p`'s chain stands (creating its head row at genesis).
    async fn load(&self, p: i32) -> anyhow::Result<Open> {
        let topic = &self.kafka.topic;
        sqlx::query(
            "INSERT INTO seal_heads (topic, partition, last_offset, head) VALUES ($1, $2, -1, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(topic)
        .bind(p)
        .bind(genesis(topic, p).to_vec())
        .execute(&self.pool)
        .await?;
        let (last, head): (i64, Vec<u8>) = sqlx::query_as(
            "SELECT last_offset, head FROM seal_heads WHERE topic = $1 AND partition = $2",
        )
        .bind(topic)
        .bind(p)
        .fetch_one(&self.pool)
        .await?;
        let head: Hash = head
            .try_into()
            .map_err(|_| anyhow::anyhow!("seal_heads.head of partition {p} is not 32 bytes"))?;
        Ok(Open {
            sealed_head: head,
            sealed_last: last,
            head,
            offsets: Vec::new(),
            digests: Vec::new(),
            since: None,
        })
    }

    /// Signs and stores the open records of partition `p` as one checkpoint.
    async fn seal(&self, p: i32, open: &mut BTreeMap<i32, Open>) -> anyhow::Result<()> {
        let Some(o) = open.get_mut(&p) else {
            return Ok(());
        };
        if o.offsets.is_empty() {
            o.since = None;
            return Ok(());
        }
        let mut c = Checkpoint {
            topic: self.kafka.topic.clone(),
            partition: p,
            first_offset: o.offsets[0],
            last_offset: *o.offsets.last().expect("non-empty"),
            offsets: std::mem::take(&mut o.offsets),
            digests: std::mem::take(&mut o.digests),
            prev_head: o.sealed_head,
            head: o.head,
            key_id: String::new(),
            signature: Vec::new(),
            sealed_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.key.sign(&mut c);
        let body = serde_json::to_value(&c)?;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE seal_heads SET last_offset = $3, head = $4
             WHERE topic = $1 AND partition = $2 AND head = $5 AND last_offset = $6",
        )
        .bind(&c.topic)
        .bind(p)
        .bind(c.last_offset)
        .bind(c.head.to_vec())
        .bind(c.prev_head.to_vec())
        .bind(o.sealed_last)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            anyhow::bail!(
                "partition {p}: the chain moved under this sealer (another sealer runs?)"
            );
        }
        sqlx::query(
            "INSERT INTO seal_checkpoints
               (topic, partition, first_offset, last_offset, records, head, key_id, sealed_at, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8 / 1000.0), $9)",
        )
        .bind(&c.topic)
        .bind(p)
        .bind(c.first_offset)
        .bind(c.last_offset)
        .bind(c.offsets.len() as i32)
        .bind(c.head.to_vec())
        .bind(&c.key_id)
        .bind(c.sealed_at_ms as f64)
        .bind(&body)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        o.sealed_head = c.head;
        o.sealed_last = c.last_offset;
        o.since = None;
        metrics::counter!("authtrail_seal_checkpoints_total").increment(1);
        self.publish(&c, &body).await
    }

    /// The topic copy of a stored checkpoint; marked published once acknowledged.
    async fn publish(&self, c: &Checkpoint, body: &serde_json::Value) -> anyhow::Result<()> {
        let key = format!("{}/{}", c.topic, c.partition);
        let payload = serde_json::to_vec(body)?;
        self.producer
            .send(
                FutureRecord::to(&self.seals_topic)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
        sqlx::query(
            "UPDATE seal_checkpoints SET published = true
             WHERE topic = $1 AND partition = $2 AND first_offset = $3",
        )
        .bind(&c.topic)
        .bind(c.partition)
        .bind(c.first_offset)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Publishes checkpoints stored before a crash took their topic copy.
    async fn republish(&self) -> anyhow::Result<()> {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT body FROM seal_checkpoints WHERE topic = $1 AND NOT published
             ORDER BY partition, first_offset",
        )
        .bind(&self.kafka.topic)
        .fetch_all(&self.pool)
        .await?;
        for body in rows {
            let c: Checkpoint = serde_json::from_value(body.clone())?;
            self.publish(&c, &body).await?;
        }
        Ok(())
    }
}
