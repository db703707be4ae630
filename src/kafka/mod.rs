//! Kafka: the one place that turns [`KafkaConfig`] into clients.
//!
//! authtrail speaks only the Kafka protocol through librdkafka (rdkafka); production,
//! development, CI and the benchmarks all run Apache Kafka.

mod publisher;
mod topic;

pub use publisher::{Appended, PublishError, Publisher, CONTENT_TYPE};
pub(crate) use topic::topic_partitions;
pub use topic::{ensure_topic, ensure_topic_retaining, TopicError};

use crate::config::KafkaConfig;
use rdkafka::ClientConfig;

/// Settings shared by every client; `kafka.properties` are applied last, so operators can
/// override anything (security, timeouts) without a code change.
fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id);
    c
}

/// The producer settings that make appends safe: idempotence (no duplicates or reordering on
/// retry), `acks=all`, and a bounded delivery timeout so `publish` always resolves.
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(cfg);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        // The Java client's partitioner: a publisher in any language that keys by user id
        // lands each user in the same partition as authtrail does.
        .set("partitioner", "murmur2_random")
        .set("compression.type", &cfg.compression)
        .set("linger.ms", cfg.linger_ms.to_string())
        .set("message.timeout.ms", cfg.delivery_timeout_ms.to_string());
    apply_properties(&mut c, cfg);
    c
}

fn apply_properties(c: &mut ClientConfig, cfg: &KafkaConfig) {
    for (key, value) in &cfg.properties {
        c.set(key, value);
    }
}

/// Admin and metadata clients.
pub(crate) fn admin_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(cfg);
    apply_properties(&mut c, cfg);
    c
}

/// Kafka's default partitioner for keyed messages (Java client and librdkafka `murmur2_random`,
/// which the publisher uses): the partition of a key.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len();
    let mut h: u32 = 0x9747_b28c ^ len as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}
