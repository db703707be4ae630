//! The Kafka side of `forget`: the topics that hold what direct publishers sent, in the clear.
//!
//! - `enrich.raw_topic`: records the enrichment stage has committed are in the events topic
//!   (encrypted) already; they are deleted (`DeleteRecords`) below the stage's committed offsets,
//!   for everyone: the raw topic is an input buffer, not a record.
//! - `enrich.rejected_topic`: a partition holding a rejection of the person's (keyed by them or
//!   naming them as `subject`) is deleted up to and including the last such rejection.
//!
//! Kafka deletes only prefixes of a partition, so both reach records of other people too; both
//! topics are diagnostics with a retention of days. Raw records the stage has not consumed yet
//! stay until it has (they are then appended encrypted) and their retention passes.

use crate::config::{Config, KafkaConfig};
use crate::kafka::admin_config;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Records deleted from the input topics, per topic and partition: the new log start.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InputsErased {
    pub deleted_below: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// Deletes the processed raw records and the person's rejections (see the module docs). Topics
/// that do not exist are skipped.
pub async fn erase_inputs(config: &Config, subject: &str) -> anyhow::Result<InputsErased> {
    let mut out = InputsErased::default();
    let raw = topic_config(&config.kafka, &config.enrich.raw_topic);
    if let Some(n) = crate::kafka::topic_partitions(&raw).await? {
        let group = config.enrich.group_id.clone();
        let cfg = raw.clone();
        let committed = tokio::task::spawn_blocking(move || committed(&cfg, &group, n)).await??;
        delete_below(&raw, &committed).await?;
        if !committed.is_empty() {
            out.deleted_below.insert(raw.topic.clone(), committed);
        }
    }
    let rejected = topic_config(&config.kafka, &config.enrich.rejected_topic);
    if let Some(n) = crate::kafka::topic_partitions(&rejected).await? {
        let cfg = rejected.clone();
        let subject = subject.to_owned();
        let ends = tokio::task::spawn_blocking(move || rejections_of(&cfg, n, &subject)).await??;
        delete_below(&rejected, &ends).await?;
        if !ends.is_empty() {
            out.deleted_below.insert(rejected.topic.clone(), ends);
        }
    }
    Ok(out)
}

fn topic_config(kafka: &KafkaConfig, topic: &str) -> KafkaConfig {
    KafkaConfig {
        topic: topic.to_owned(),
        ..kafka.clone()
    }
}

/// The offsets `group` has committed on `cfg.topic` (partitions without one are left out).
fn committed(
    cfg: &KafkaConfig,
    group: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = admin_config(cfg)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(&cfg.topic, p);
    }
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) if o > 0 => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Per partition, the offset after the last rejection of `subject`'s.
fn rejections_of(
    cfg: &KafkaConfig,
    partitions: i32,
    subject: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer<QuietEof> = admin_config(cfg)
        .set("group.id", "authtrail-forget")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create_with_context(QuietEof)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&cfg.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    // End of partition, not the high watermark: a partition written in transactions ends with
    // a marker that is never delivered.
    let mut open: std::collections::BTreeSet<i32> = (0..partitions).collect();
    let mut ends = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !open.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading {} took over 120 s",
            cfg.topic
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if names(m.key(), m.payload(), subject) => {
                ends.insert(m.partition(), m.offset() + 1);
            }
            Some(Ok(_)) => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(ends)
}

/// A consumer context that does not log the end-of-partition events this scan asks for
/// (librdkafka reports them as errors).
struct QuietEof;

impl rdkafka::ClientContext for QuietEof {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// Whether a rejection is about `subject`: keyed by it, or its raw value names it as `subject`.
fn names(key: Option<&[u8]>, payload: Option<&[u8]>, subject: &str) -> bool {
    if key == Some(subject.as_bytes()) {
        return true;
    }
    let Some(rejection) = payload.and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
    else {
        return false;
    };
    let raw = match (
        rejection.get("value").and_then(|v| v.as_str()),
        rejection.get("value_base64").and_then(|v| v.as_str()),
    ) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default()
        }
        (None, None) => return false,
    };
    match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(v) => v.get("subject").and_then(|s| s.as_str()) == Some(subject),
        // Not JSON: any mention of the subject as a JSON string counts.
        Err(_) => {
            let quoted = serde_json::to_string(subject).expect("a string serialises");
            raw.windows(quoted.len()).any(|w| w == quoted.as_bytes())
        }
    }
}

async fn delete_below(cfg: &KafkaConfig, offsets: &BTreeMap<i32, i64>) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = admin_config(cfg).create()?;
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(&cfg.topic, p, Offset::Offset(o))?;
    }
    let done = admin
        .delete_records(
            &tpl,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for e in done.elements() {
        if let Err(err) = e.error() {
            anyhow::bail!("deleting {}/{} records: {err}", cfg.topic, e.partition());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::names;
    use serde_json::json;

    #[test]
    fn a_rejection_is_the_persons_when_keyed_by_or_naming_them() {
        let rejection = |value: &str| {
            json!({"field": "data.ip", "reason": "x", "topic": "raw", "partition": 0, "offset": 1, "value": value, "size": 1}).to_string()
        };
        assert!(names(Some(b"u1"), None, "u1"));
        assert!(names(
            None,
            Some(rejection(r#"{"subject":"u1","data":{}}"#).as_bytes()),
            "u1"
        ));
        assert!(!names(
            None,
            Some(rejection(r#"{"subject":"u10","data":{}}"#).as_bytes()),
            "u1"
        ));
        assert!(names(
            None,
            Some(rejection(r#"{"subject":"u1", broken"#).as_bytes()),
            "u1"
        ));
        assert!(!names(
            None,
            Some(rejection(r#"{"subject":"u12", broken"#).as_bytes()),
            "u1"
        ));
        assert!(!names(Some(b"u2"), Some(b"not json"), "u1"));
    }
}
