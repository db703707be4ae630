//! The enrichment stage: the door for publishers that write to Kafka themselves.
//!
//! Direct publishers (any language, any partitioner) write CloudEvents to `enrich.raw_topic`.
//! The stage consumes that topic in a group, judges each message with the same contract and
//! admission rules as the HTTP intake ([`judge`]), prepares admitted events exactly as the
//! intake does ([`Intake::prepare`]: publisher stamp, GeoIP, user agent), keys them by
//! subject and appends them to the events topic; refused ones go to `enrich.rejected_topic`
//! as a [`Rejection`] naming field and reason. Output events keep their input id.
//!
//! Contract (`enrich.exactly_once`, the default): a batch's output records and the raw
//! offsets that produced them commit in **one Kafka transaction** (consume-transform-produce).
//! A crash anywhere aborts the open transaction, which consumers reading committed never see,
//! and the next owner of the partitions resumes from the committed offsets: every raw message
//! yields its output exactly once. The transactional id is stable per instance, so a
//! restarted instance fences its predecessor and aborts its transaction at once; the group
//! generation carried with the offsets (KIP-447) fences an instance that lost its partitions.
//!
//! The loop is blocking (librdkafka's transaction calls are) and runs on a thread of its own.

use crate::auth::Grant;
use crate::config::{Config, KafkaConfig};
use crate::ingest::{refusal, Intake, Limits};
use crate::kafka::CONTENT_TYPE;
use authtrail_events::{ContractError, Event};
use base64::Engine;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one transaction call (init, offsets, commit, abort) may block.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What authtrail stamps as `publisher` on events that came through the raw topic.
fn stamp(raw_topic: &str) -> String {
    format!("kafka:{raw_topic}")
}

/// The record sent to the rejected topic for a raw message that was not appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The attribute or data field at fault (`(message)` when the message has no value).
    pub field: String,
    pub reason: String,
    /// The event's `id` when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where the raw message was.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The raw message's value as sent (at most 64 KiB): UTF-8 text in `value`, anything else
    /// base64 in `value_base64`, so it can be fixed and sent again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The raw value's size in bytes; a value over 64 KiB is not copied.
    #[serde(default)]
    pub size: usize,
    /// The raw value's SHA-256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What becomes of one raw message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Append(Box<Event>),
    Reject { field: String, reason: String },
}

/// The contract, then the admission rules of the HTTP intake, for one raw message (pure).
pub(crate) fn judge(
    payload: Option<&[u8]>,
    grant: &Grant,
    now: DateTime<Utc>,
    limits: Limits,
) -> Verdict {
    let Some(bytes) = payload else {
        return Verdict::Reject {
            field: "(message)".into(),
            reason: "has no value; send one CloudEvent as JSON".into(),
        };
    };
    match authtrail_events::parse(bytes) {
        Err(ContractError { field, reason }) => Verdict::Reject { field, reason },
        Ok(e) => match refusal(&e, grant, now, limits) {
            Some(r) => Verdict::Reject {
                field: r.field.to_owned(),
                reason: r.reason,
            },
            None => Verdict::Append(Box::new(e)),
        },
    }
}

fn rejection(m: &OwnedMessage, field: String, reason: String) -> Rejection {
    #[derive(Deserialize)]
    struct PeekId {
        id: Option<serde_json::Value>,
    }
    let payload = m.payload();
    let id = payload
        .and_then(|b| serde_json::from_slice::<PeekId>(b).ok())
        .and_then(|p| p.id)
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| s.len() <= authtrail_events::data::MAX_ID_LEN);
    // A value larger than any valid event is not copied (a rejection must fit in a message):
    // its size and SHA-256 identify it in the raw topic.
    let kept = payload.filter(|b| b.len() <= authtrail_events::MAX_EVENT_BYTES);
    let (value, value_base64) = match kept.map(std::str::from_utf8) {
        None => (None, None),
        Some(Ok(text)) => (Some(text.to_owned()), None),
        Some(Err(_)) => (
            None,
            kept.map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        ),
    };
    Rejection {
        field,
        reason,
        id,
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        value,
        value_base64,
        size: payload.map_or(0, <[u8]>::len),
        sha256: payload.map(|b| hex::encode(sha2::Sha256::digest(b))),
    }
}

/// Counts rebalances, so a batch gathered across one is dropped: after a rebalance the
/// consumer starts every partition it holds again from the committed offsets.
#[derive(Default)]
struct GroupContext {
    rebalances: AtomicU64,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "enrich: partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "enrich: partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "enrich: rebalance error"),
        }
    }
}

type RawConsumer = BaseConsumer<GroupContext>;

/// What [`Stage::gather`] got.
enum Gathered {
    Nothing,
    Batch(Vec<OwnedMessage>),
    /// Gathered across a rebalance: to be read again.
    Rebalanced(Vec<OwnedMessage>),
}

/// Counts records the broker did not take: a flush returns once nothing is queued, delivered
/// or not, so the at-least-once path checks this before committing offsets.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(error = %e, "enrich: a record was not delivered");
        }
    }
}

type OutProducer = BaseProducer<Deliveries>;

#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Setup(String),
}

/// The enrichment stage (see the module documentation).
pub struct Stage {
    kafka: KafkaConfig,
    settings: crate::config::EnrichConfig,
    intake: Arc<Intake>,
    grant: Grant,
    stamp: String,
}

impl Stage {
    /// The stage for `config`, appending through `intake`'s enrichment. Does not contact the
    /// broker (see [`Stage::ensure_topics`]).
    pub fn new(config: &Config, intake: Arc<Intake>) -> anyhow::Result<Stage> {
        let e = &config.enrich;
        let mut scopes = vec![crate::auth::Scope::Publish];
        if e.backfill {
            scopes.push(crate::auth::Scope::Backfill);
        }
        let grant = Grant::new(&scopes, e.types.as_deref(), &e.sources)
            .map_err(|err| anyhow::anyhow!("enrich.types / enrich.sources: {err}"))?;
        Ok(Stage {
            kafka: config.kafka.clone(),
            settings: e.clone(),
            intake,
            grant,
            stamp: stamp(&e.raw_topic),
        })
    }

    /// Creates the raw and rejected topics when missing (as many partitions as the events
    /// topic). Raw events are kept `kafka.raw_retention` (7 days): the events topic is the
    /// record; rejected ones are kept like the log, forever.
    pub async fn ensure_topics(config: &Config) -> anyhow::Result<()> {
        use anyhow::Context;
        for (topic, retention_ms) in [
            (&config.enrich.raw_topic, Some(7 * 24 * 3_600_000_i64)),
            (&config.enrich.rejected_topic, None),
        ] {
            let cfg = KafkaConfig {
                topic: topic.clone(),
                ..config.kafka.clone()
            };
            crate::kafka::ensure_topic_retaining(&cfg, retention_ms)
                .await
                .with_context(|| format!("ensuring topic {topic} on {}", cfg.brokers))?;
        }
        Ok(())
    }

    /// Runs until `stop` resolves: then the batch in hand commits (or aborts) and the consumer
    /// leaves its group. A broken client (fenced, fatal error) is replaced after a pause; the
    /// new one resumes from the committed offsets.
    pub async fn run(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stopping = Arc::new(AtomicBool::new(false));
        {
            let stopping = stopping.clone();
            tokio::spawn(async move {
                stop.await;
                stopping.store(true, Ordering::SeqCst);
            });
        }
        let stage = Arc::new(self);
        let mut pause = Duration::from_millis(500);
        loop {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (s, flag) = (stage.clone(), stopping.clone());
            let runtime = tokio::runtime::Handle::current();
            // A thread outside the runtime: the loop blocks in librdkafka calls.
            std::thread::Builder::new()
                .name("authtrail-enrich".into())
                .spawn(move || {
                    let _ = tx.send(s.run_blocking(&flag, &runtime));
                })?;
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err(StageError::Setup("the stage thread panicked".into())));
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if stopping.load(Ordering::SeqCst) => {
                    tracing::warn!(error = %e, "enrich: stopped with an error");
                    return Ok(());
                }
                Err(e) => {
                    metrics::counter!("authtrail_enrich_restarts_total").increment(1);
                    tracing::error!(error = %e, pause_ms = pause.as_millis() as u64, "enrich: restarting the stage's clients");
                    let until = Instant::now() + pause;
                    while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if stopping.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn consumer(&self) -> Result<RawConsumer, StageError> {
        let mut c = crate::kafka::admin_config(&self.kafka);
        c.set("group.id", &self.settings.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Raw publishers may use transactions too: only their committed records count.
            .set("isolation.level", "read_committed")
            .set(
                "session.timeout.ms",
                self.settings.session_timeout_ms.to_string(),
            )
            .set("enable.partition.eof", "false");
        if let Some(id) = self
            .settings
            .instance_id
            .as_deref()
            .filter(|i| !i.is_empty())
        {
            c.set("group.instance.id", id);
        }
        let consumer: RawConsumer = c.create_with_context(GroupContext::default())?;
        consumer.subscribe(&[self.settings.raw_topic.as_str()])?;
        Ok(consumer)
    }

    fn producer(&self) -> Result<OutProducer, StageError> {
        let mut c = crate::kafka::producer_config(&self.kafka);
        if self.settings.exactly_once {
            c.set("transactional.id", self.settings.transactional_id())
                .set(
                    "transaction.timeout.ms",
                    self.settings.transaction_timeout_ms.to_string(),
                );
            let delivery: u64 = c
                .get("message.timeout.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30_000);
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            if delivery > self.settings.transaction_timeout_ms {
                c.set(
                    "message.timeout.ms",
                    self.settings.transaction_timeout_ms.to_string(),
                );
            }
        }
        let producer: OutProducer = c.create_with_context(Deliveries::default())?;
        if self.settings.exactly_once {
            // Fences an earlier instance with this transactional id and aborts its open
            // transaction, so what it had in flight is never seen by read-committed consumers.
            producer.init_transactions(TXN_CALL_TIMEOUT)?;
        }
        Ok(producer)
    }

    fn run_blocking(
        &self,
        stopping: &AtomicBool,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), StageError> {
        let consumer = self.consumer()?;
        let producer = self.producer()?;
        tracing::info!(
            raw_topic = %self.settings.raw_topic,
            events_topic = %self.kafka.topic,
            rejected_topic = %self.settings.rejected_topic,
            group = %self.settings.group_id,
            exactly_once = self.settings.exactly_once,
            "enrichment stage running"
        );
        while !stopping.load(Ordering::SeqCst) {
            let batch = match self.gather(&consumer, stopping) {
                Gathered::Batch(b) => b,
                Gathered::Nothing => continue,
                Gathered::Rebalanced(b) => {
                    // Read again from where it started (an eager rebalance restarts every
                    // partition from its committed offset anyway; this also holds under another
                    // protocol an operator configured).
                    if let Err(e) = rewind(&consumer, &b) {
                        tracing::debug!(error = %e, "enrich: rewinding after a rebalance");
                    }
                    continue;
                }
            };
            if let Err(e) = self.forward(&consumer, &producer, &batch, runtime) {
                if self.settings.exactly_once {
                    metrics::counter!("authtrail_enrich_aborts_total").increment(1);
                    tracing::warn!(error = %e, messages = batch.len(), "enrich: batch aborted");
                    if let Err(abort) = producer.abort_transaction(TXN_CALL_TIMEOUT) {
                        // Fatal or fenced: a new producer (init_transactions) recovers.
                        return Err(abort.into());
                    }
                }
                rewind(&consumer, &batch)?;
                if is_fatal(&e) {
                    return Err(e);
                }
            }
        }
        tracing::info!("enrichment stage stopped");
        Ok(())
    }

    /// The next batch: what the consumer holds, up to `batch_max_messages`, gathered for at
    /// most `batch_max_wait_ms` after the first message. `None` when there is nothing, or when
    /// a rebalance happened meanwhile (the partitions start again from their committed
    /// offsets, so what was gathered would come twice).
    fn gather(&self, consumer: &RawConsumer, stopping: &AtomicBool) -> Gathered {
        let generation = consumer.context().rebalances.load(Ordering::SeqCst);
        let mut batch: Vec<OwnedMessage> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let max = self.settings.batch_max_messages;
        while batch.len() < max {
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(d) => d.saturating_duration_since(Instant::now()),
            };
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    batch.push(m.detach());
                    deadline.get_or_insert_with(|| {
                        Instant::now() + Duration::from_millis(self.settings.batch_max_wait_ms)
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "enrich: consumer error");
                    if batch.is_empty() {
                        return Gathered::Nothing;
                    }
                    break;
                }
                None if batch.is_empty() => {
                    if stopping.load(Ordering::SeqCst)
                        || consumer.context().rebalances.load(Ordering::SeqCst) != generation
                    {
                        return Gathered::Nothing;
                    }
                }
                None => break,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        if consumer.context().rebalances.load(Ordering::SeqCst) != generation {
            tracing::info!(
                messages = batch.len(),
                "enrich: rebalance while gathering; the batch is read again"
            );
            return Gathered::Rebalanced(batch);
        }
        if batch.is_empty() {
            Gathered::Nothing
        } else {
            Gathered::Batch(batch)
        }
    }

    /// Judges and prepares `batch`, appends its output and commits its raw offsets: in one
    /// transaction when `exactly_once`.
    fn forward(
        &self,
        consumer: &RawConsumer,
        producer: &OutProducer,
        batch: &[OwnedMessage],
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), StageError> {
        let now = Utc::now();
        let failed_before = producer.context().failed.load(Ordering::SeqCst);
        let limits = self.intake.limits();
        let mut events: Vec<Event> = Vec::new();
        let mut rejected: Vec<(Rejection, &OwnedMessage)> = Vec::new();
        for m in batch {
            match judge(m.payload(), &self.grant, now, limits) {
                Verdict::Append(e) => events.push(*e),
                Verdict::Reject { field, reason } => {
                    rejected.push((rejection(m, field, reason), m))
                }
            }
        }
        runtime
            .block_on(self.intake.prepare(&mut events, &self.stamp))
            .map_err(|e| StageError::Setup(e.to_string()))?;
        if self.settings.exactly_once {
            producer.begin_transaction()?;
        }
        for e in &events {
            let key = e.partition_key();
            let value = e.to_json_bytes();
            send(
                producer,
                &self.kafka.topic,
                key.as_bytes(),
                &value,
                self.kafka.content_type_header,
            )?;
        }
        for (r, m) in &rejected {
            let value = serde_json::to_vec(r).expect("a rejection serialises");
            send(
                producer,
                &self.settings.rejected_topic,
                m.key().unwrap_or_default(),
                &value,
                false,
            )?;
        }
        let offsets = next_offsets(batch)?;
        if self.settings.exactly_once {
            let group = consumer
                .group_metadata()
                .ok_or_else(|| StageError::Setup("the consumer has no group metadata".into()))?;
            producer.send_offsets_to_transaction(&offsets, &group, TXN_CALL_TIMEOUT)?;
            producer.commit_transaction(TXN_CALL_TIMEOUT)?;
        } else {
            producer.flush(TXN_CALL_TIMEOUT)?;
            if producer.context().failed.load(Ordering::SeqCst) != failed_before {
                return Err(StageError::Setup(
                    "records of the batch were not delivered; it is read again".into(),
                ));
            }
            consumer.commit(&offsets, rdkafka::consumer::CommitMode::Sync)?;
        }
        metrics::counter!("authtrail_enrich_events_total", "outcome" => "appended")
            .increment(events.len() as u64);
        metrics::counter!("authtrail_enrich_events_total", "outcome" => "rejected")
            .increment(rejected.len() as u64);
        if let Some((first, _)) = rejected.first() {
            tracing::info!(
                rejected = rejected.len(),
                first_field = %first.field,
                first_reason = %first.reason,
                first_partition = first.partition,
                first_offset = first.offset,
                "enrich: raw events rejected"
            );
        }
        Ok(())
    }
}

/// Queues one record, waiting for room when the producer's queue is full.
fn send(
    producer: &OutProducer,
    topic: &str,
    key: &[u8],
    value: &[u8],
    content_type_header: bool,
) -> Result<(), StageError> {
    loop {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        if content_type_header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some(CONTENT_TYPE),
            }));
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(100));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Per partition of `batch`, the offset after its last message: what to commit.
fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, StageError> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let o = next.entry((m.topic(), m.partition())).or_insert(0);
        *o = (*o).max(m.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

/// After an aborted batch: each of its partitions goes back to the batch's first message, so
/// the batch is read again.
fn rewind(consumer: &RawConsumer, batch: &[OwnedMessage]) -> Result<(), StageError> {
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let o = first.entry((m.topic(), m.partition())).or_insert(i64::MAX);
        *o = (*o).min(m.offset());
    }
    let assigned = consumer.assignment()?;
    for ((topic, partition), offset) in first {
        // A partition the consumer no longer holds restarts from its committed offset with
        // its next owner.
        if assigned.find_partition(topic, partition).is_some() {
            consumer.seek(topic, partition, Offset::Offset(offset), TXN_CALL_TIMEOUT)?;
        }
    }
    Ok(())
}

/// Whether the producer can no longer be used (fenced, or librdkafka says fatal).
fn is_fatal(e: &StageError) -> bool {
    match e {
        StageError::Kafka(KafkaError::Transaction(t)) => t.is_fatal(),
        StageError::Kafka(k) => matches!(
            k.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced)
        ),
        StageError::Setup(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;
    use crate::config::IngestConfig;

    fn example(name: &str) -> serde_json::Value {
        let path = format!("{}/events/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn judged(v: &serde_json::Value, now: DateTime<Utc>) -> Verdict {
        let grant = Grant::new(&[Scope::Publish], None, &[]).unwrap();
        let limits = Limits::from(&IngestConfig::default());
        judge(Some(&serde_json::to_vec(v).unwrap()), &grant, now, limits)
    }

    fn rejected_field(v: Verdict) -> String {
        match v {
            Verdict::Reject { field, .. } => field,
            Verdict::Append(e) => panic!("appended {}", e.id),
        }
    }

    #[test]
    fn a_rejection_copies_at_most_an_events_worth_of_the_value() {
        let message = |value: Vec<u8>| {
            OwnedMessage::new(
                Some(value),
                Some(b"k".to_vec()),
                "raw".into(),
                rdkafka::Timestamp::NotAvailable,
                1,
                7,
                None,
            )
        };
        let small = rejection(&message(b"{\"id\":\"x\"}".to_vec()), "f".into(), "r".into());
        assert_eq!(small.value.as_deref(), Some("{\"id\":\"x\"}"));
        assert_eq!((small.id.as_deref(), small.size), (Some("x"), 10));
        let huge = vec![b'a'; authtrail_events::MAX_EVENT_BYTES + 1];
        let r = rejection(&message(huge.clone()), "(event)".into(), "too large".into());
        assert_eq!(
            (&r.value, &r.value_base64, r.size),
            (&None, &None, huge.len())
        );
        assert_eq!(
            r.sha256.as_deref(),
            Some(hex::encode(sha2::Sha256::digest(&huge)).as_str())
        );
        assert!(serde_json::to_vec(&r).unwrap().len() < 1024);
    }

    #[test]
    fn the_stage_admits_what_the_intake_admits_and_names_what_it_refuses() {
        let v = example("login.succeeded.json");
        let time: DateTime<Utc> = v["time"].as_str().unwrap().parse().unwrap();
        let now = time + chrono::TimeDelta::minutes(1);
        match judged(&v, now) {
            Verdict::Append(e) => assert_eq!(e.id.to_string(), v["id"]),
            other => panic!("{other:?}"),
        }
        let mut stamped = v.clone();
        stamped["publisher"] = "api-key:other".into();
        assert_eq!(rejected_field(judged(&stamped, now)), "publisher");
        // Ciphertext is authtrail's to make: a publisher's would be trusted as sealed.
        let mut sealed = v.clone();
        sealed["personaldata"] = "a256gcm.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
        assert_eq!(rejected_field(judged(&sealed, now)), "personaldata");
        // Older than ingest.max_age without backfill, and ahead of the clock.
        assert_eq!(
            rejected_field(judged(&v, time + chrono::TimeDelta::days(8))),
            "time"
        );
        assert_eq!(
            rejected_field(judged(&v, time - chrono::TimeDelta::minutes(5))),
            "time"
        );
        let reviewed = example("security_event.reviewed.json");
        let t: DateTime<Utc> = reviewed["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(rejected_field(judged(&reviewed, t)), "type");
        let mut bad = v.clone();
        bad["data"]["ip"] = "999.1.1.1".into();
        assert_eq!(rejected_field(judged(&bad, now)), "data.ip");
        let grant = Grant::new(&[Scope::Publish], None, &[]).unwrap();
        let limits = Limits::from(&IngestConfig::default());
        assert_eq!(
            rejected_field(judge(None, &grant, now, limits)),
            "(message)"
        );
        assert_eq!(
            rejected_field(judge(Some(b"\xff\xfe"), &grant, now, limits)),
            "(event)"
        );
    }
}
