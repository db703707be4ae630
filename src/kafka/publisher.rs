//! [`Publisher`]: appends validated events to the events topic.

use super::producer_config;
use crate::config::KafkaConfig;
use authtrail_events::Event;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The CloudEvents Kafka binding's content type for structured mode.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// Where an event landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub id: Uuid,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the producer shut down before the broker answered")]
    Canceled,
    /// Personal data could not be encrypted (nothing was appended).
    #[error("encrypting personal data: {0}")]
    Privacy(String),
}

/// Appends events to the events topic.
///
/// Contract: [`Publisher::publish`] and [`Publisher::publish_all`] resolve only after the broker
/// acknowledged every event (`acks=all`) and return where each landed. The producer is
/// idempotent, so its internal retries neither duplicate nor reorder; each message's key is
/// [`Event::partition_key`], so one user's events stay ordered in one partition. When a call
/// fails, some of its events may already be appended: publishing them again is safe, because an
/// event id is one fact however often it appears (the projections deduplicate by id).
///
/// Cheap to share: wrap in an `Arc`, all methods take `&self`.
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
    content_type_header: bool,
}

impl Publisher {
    /// Creates the producer. Does not contact the broker (see [`super::ensure_topic`]).
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Publisher {
            producer: producer_config(cfg).create()?,
            topic: cfg.topic.clone(),
            content_type_header: cfg.content_type_header,
        })
    }

    /// Appends one event.
    pub async fn publish(&self, event: &Event) -> Result<Appended, PublishError> {
        let mut out = self.publish_all(std::slice::from_ref(event)).await?;
        Ok(out.pop().expect("one result per event"))
    }

    /// Appends events in order and resolves when all are acknowledged; results are in input
    /// order. Applies back-pressure when the producer's queue is full instead of failing.
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<Appended>, PublishError> {
        let started = Instant::now();
        let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::with_capacity(events.len());
        let mut results: Vec<Option<Appended>> = vec![None; events.len()];
        for (i, event) in events.iter().enumerate() {
            let payload = event.to_json_bytes();
            let key = event.partition_key();
            loop {
                let mut record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
                if self.content_type_header {
                    record = record.headers(OwnedHeaders::new().insert(Header {
                        key: "content-type",
                        value: Some(CONTENT_TYPE),
                    }));
                }
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back((i, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // Wait for the oldest in-flight message, which frees queue space.
                        match pending.pop_front() {
                            Some((j, delivery)) => {
                                results[j] = Some(settle(events[j].id, delivery).await?)
                            }
                            None => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        for (j, delivery) in pending {
            results[j] = Some(settle(events[j].id, delivery).await?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!("authtrail_publish_seconds").record(elapsed);
        for event in events {
            metrics::counter!("authtrail_events_published_total", "type" => event.event_type().as_str())
                .increment(1);
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every event settled"))
            .collect())
    }

    /// Waits until everything queued has been delivered (used at shutdown).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

async fn settle(id: Uuid, delivery: DeliveryFuture) -> Result<Appended, PublishError> {
    match delivery.await {
        Ok(Ok(d)) => Ok(Appended {
            id,
            partition: d.partition,
            offset: d.offset,
        }),
        Ok(Err((e, _))) => {
            metrics::counter!("authtrail_publish_failures_total").increment(1);
            Err(e.into())
        }
        Err(_) => Err(PublishError::Canceled),
    }
}
