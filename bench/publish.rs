//! Publish throughput: events/s through `Publisher` vs. a bare rdkafka producer sending the same
//! bytes with the same settings, in the same run against the same broker.
//!
//! Run with `./dev with cargo bench --bench publish` (needs `AUTHTRAIL_KAFKA_BROKERS`).
//! `BENCH_EVENTS` (default 200000) and `BENCH_ROUNDS` (default 3) tune it. Each round uses a fresh
//! 12-partition topic per contender; contenders alternate so drift hits both.

use authtrail::config::KafkaConfig;
use authtrail::kafka::{self, Publisher};
use authtrail_events::Event;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let v = json!({
                "specversion": "1.0",
                "id": uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 | i as u128),
                "source": "/services/auth-api",
                "type": "login.succeeded",
                "time": "2026-11-24T09:15:02.120Z",
                "subject": format!("user-{:05}", i % 10_000),
                "schemaversion": 1,
                "data": {
                    "session_id": format!("sess_{i:012}"),
                    "login_method": "password",
                    "expires_at": "2026-11-24T21:15:02Z",
                    "identifier": format!("user{}@example.com", i % 10_000),
                    "refresh_token_id": format!("rt_{i:016x}"),
                    "ip": "81.2.69.142",
                    "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                    "device_id": format!("dev_{:08x}", i % 30_000),
                    "otp_required": false,
                    "roles": ["user"]
                }
            });
            authtrail_events::parse_value(v).expect("bench event is valid")
        })
        .collect()
}

async fn fresh_topic(base: &KafkaConfig, tag: &str) -> KafkaConfig {
    let cfg = KafkaConfig {
        topic: format!("bench-{tag}-{}", uuid::Uuid::new_v4().simple()),
        ..base.clone()
    };
    kafka::ensure_topic(&cfg).await.expect("create bench topic");
    cfg
}

const CHUNK: usize = 5_000;

async fn run_publisher(cfg: &KafkaConfig, events: &[Event]) -> f64 {
    let publisher = Publisher::new(cfg).unwrap();
    let start = Instant::now();
    for chunk in events.chunks(CHUNK) {
        publisher.publish_all(chunk).await.unwrap();
    }
    events.len() as f64 / start.elapsed().as_secs_f64()
}

async fn run_bare(cfg: &KafkaConfig, messages: &[(String, Vec<u8>)]) -> f64 {
    let producer: FutureProducer = kafka::producer_config(cfg).create().unwrap();
    let start = Instant::now();
    for chunk in messages.chunks(CHUNK) {
        let mut pending = Vec::with_capacity(chunk.len());
        for (key, payload) in chunk {
            let mut record = FutureRecord::to(&cfg.topic).key(key).payload(payload);
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((_, r)) => {
                        record = r;
                        if let Some(f) = pending.pop() {
                            f.await.unwrap().unwrap();
                        }
                    }
                }
            }
        }
        for f in pending {
            f.await.unwrap().unwrap();
        }
    }
    messages.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let base = KafkaConfig {
        brokers: std::env::var("AUTHTRAIL_KAFKA_BROKERS")
            .expect("AUTHTRAIL_KAFKA_BROKERS: run via ./dev with cargo bench --bench publish"),
        ..KafkaConfig::default()
    };
    let n = env_usize("BENCH_EVENTS", 200_000);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let events = events(n);
    let messages: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| (e.partition_key(), e.to_json_bytes()))
        .collect();
    let avg_bytes = messages.iter().map(|m| m.1.len()).sum::<usize>() / n;
    println!("publish benchmark: {n} events of ~{avg_bytes} bytes, {rounds} rounds, compression {}, brokers {}", base.compression, base.brokers);
    let (mut bare, mut ours) = (vec![], vec![]);
    for round in 1..=rounds {
        let b = run_bare(&fresh_topic(&base, "bare").await, &messages).await;
        let p = run_publisher(&fresh_topic(&base, "publisher").await, &events).await;
        println!(
            "round {round}: bare rdkafka {b:>9.0} ev/s   Publisher {p:>9.0} ev/s   ratio {:.3}",
            p / b
        );
        bare.push(b);
        ours.push(p);
    }
    let (b, p) = (median(bare), median(ours));
    println!(
        "median: bare rdkafka {b:.0} ev/s, Publisher {p:.0} ev/s, Publisher/bare = {:.3}",
        p / b
    );
}
