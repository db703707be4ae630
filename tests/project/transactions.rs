//! An events topic written in Kafka transactions, as the enrichment stage writes it: the
//! projector reads committed only — every committed event once, no aborted one — and steps
//! over transaction markers and aborted records without seeking back to prove them empty.

use super::common::projection::{config, export, migrated, reference, stream, wait_caught_up};
use super::common::TestTopic;
use authtrail::projector::Projector;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_are_projected_and_aborted_ones_are_not_without_seeking_back() {
    let topic = TestTopic::new(3).await;
    let events = stream(31, 60, 3_000);
    let mut c = authtrail::kafka::producer_config(&topic.config);
    c.set(
        "transactional.id",
        format!("test-{}", uuid::Uuid::new_v4().simple()),
    );
    let producer: FutureProducer = c.create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    // Transactions of 1 to 40 events (the first of 60, so every partition starts with committed
    // data); every fifth one is aborted.
    let mut committed = Vec::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let (mut at, mut n) = (0usize, 0usize);
    while at < events.len() {
        let size = if n == 0 { 60 } else { 1 + (n * 7) % 40 };
        let chunk = &events[at..(at + size).min(events.len())];
        producer.begin_transaction().unwrap();
        let mut placed = Vec::new();
        for e in chunk {
            let (key, value) = (e.partition_key(), e.to_json_bytes());
            let d = producer
                .send(
                    FutureRecord::to(topic.name()).key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            placed.push((d.partition, d.offset));
        }
        if n % 5 == 3 {
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
        } else {
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
            committed.extend_from_slice(chunk);
            for (p, o) in placed {
                let e = next.entry(p).or_default();
                *e = (*e).max(o + 1);
            }
        }
        at += chunk.len();
        n += 1;
    }
    assert!(committed.len() < events.len(), "some transactions aborted");

    let (db, pool) = migrated().await;
    let mut cfg = config(&topic, &db, "transactional");
    // Small batches, so that many start right after a marker or an aborted transaction.
    cfg.projector.batch_max_messages = 25;
    let projector = Projector::new(cfg.clone(), pool.clone()).unwrap();
    let seeks = projector.gap_seeks();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    // Each partition's checkpoint ends after its last committed event.
    let total: i64 = next.values().sum();
    wait_caught_up(&pool, topic.name(), total, Duration::from_secs(180)).await;
    let _ = stop.send(());
    worker.await.unwrap().unwrap();

    let processed: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(processed, committed.len() as i64, "committed events only");
    assert_eq!(
        export(&pool).await,
        reference(&committed, &cfg.projector.rules())
    );
    assert_eq!(
        seeks.load(Ordering::SeqCst),
        0,
        "markers and aborted records stepped over without seeking back"
    );
}
