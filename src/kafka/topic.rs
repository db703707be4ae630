//! Topic administration: make sure the events topic exists with its configured partitions.

use super::admin_config;
use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("creating topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic {0} did not become visible in the broker's metadata within {1:?}")]
    NotVisible(String, Duration),
}

/// Creates `kafka.topic` with `kafka.partitions` partitions when it is missing and waits until
/// the broker reports it. An existing topic is left as it is (partitions are never changed:
/// that would move users between partitions). Returns the topic's partition count.
pub async fn ensure_topic(cfg: &KafkaConfig) -> Result<i32, TopicError> {
    ensure_topic_retaining(cfg, None).await
}

/// Like [`ensure_topic`], creating the topic with `retention_ms` (`None`: forever) when it is
/// missing. An existing topic keeps its settings.
pub async fn ensure_topic_retaining(
    cfg: &KafkaConfig,
    retention_ms: Option<i64>,
) -> Result<i32, TopicError> {
    // Most starts find the topic: ask the metadata first (needs no create permission).
    if let Ok(Some(partitions)) = topic_partitions(cfg).await {
        tracing::info!(topic = %cfg.topic, partitions, created = false, "topic ready");
        return Ok(partitions);
    }
    let admin: AdminClient<DefaultClientContext> = admin_config(cfg).create()?;
    let retention = retention_ms.unwrap_or(-1).to_string();
    let topic = NewTopic::new(
        &cfg.topic,
        cfg.partitions,
        TopicReplication::Fixed(cfg.replication_factor),
    )
    // Authentication history is kept forever: the log is the system of record.
    .set("retention.ms", &retention)
    .set("retention.bytes", "-1");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = match admin.create_topics([&topic], &opts).await?.pop() {
        Some(Ok(_)) => true,
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => false,
        Some(Err((name, code))) => return Err(TopicError::Create { topic: name, code }),
    };
    let partitions = wait_for_partitions(cfg, Duration::from_secs(30)).await?;
    if partitions != cfg.partitions {
        tracing::warn!(
            topic = %cfg.topic,
            partitions,
            configured = cfg.partitions,
            "topic exists with a different partition count; keeping it"
        );
    }
    tracing::info!(topic = %cfg.topic, partitions, created, "topic ready");
    Ok(partitions)
}

async fn wait_for_partitions(cfg: &KafkaConfig, limit: Duration) -> Result<i32, TopicError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        match topic_partitions(cfg).await {
            Ok(Some(n)) if n > 0 => return Ok(n),
            Ok(_) | Err(_) if start.elapsed() < limit => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Ok(_) => return Err(TopicError::NotVisible(cfg.topic.clone(), limit)),
            Err(e) => return Err(e),
        }
    }
}

/// The partition count of `kafka.topic`, or `None` when the broker does not know the topic.
pub(crate) async fn topic_partitions(cfg: &KafkaConfig) -> Result<Option<i32>, TopicError> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = admin_config(&cfg).create()?;
        let metadata = rdkafka::consumer::Consumer::fetch_metadata(
            &consumer,
            Some(&cfg.topic),
            Duration::from_secs(5),
        )?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == cfg.topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32))
    })
    .await
    .expect("metadata task does not panic")
}
