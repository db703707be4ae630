//! Reconciliation: what is on the alerts topic but not recorded in `alert_deliveries`.
//!
//! The dispatcher produces a batch, waits for the broker's acknowledgements, then records the
//! batch in one statement. A crash (or a lost database connection, or a failed produce whose
//! message may have landed all the same) between the two leaves messages on the topic that the
//! table does not know. Before a dispatcher publishes anything it reads every partition from
//! the highest recorded offset + 1 (the beginning when none is recorded) to the end,
//! `read_committed`, and records every alert id found: those alerts are not published again.
//! Recorded offsets only grow within a partition (batches are recorded whole, and a failed
//! batch is never recorded in part), so nothing unrecorded lies below the highest recorded one.

use super::Delivered;
use crate::config::KafkaConfig;
use crate::replay::log::{self, Chunk, Range};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use uuid::Uuid;

/// What reconciliation needs of an alert on the topic.
#[derive(serde::Deserialize)]
struct OnTopic {
    id: Uuid,
    data: RuleOf,
}

#[derive(serde::Deserialize)]
struct RuleOf {
    rule: String,
}

/// Reads `alerts` (the alerts topic's client settings) past what `conn` has recorded and returns
/// what it found there: alert, rule and position.
pub(super) async fn unrecorded(
    conn: &mut PgConnection,
    alerts: &KafkaConfig,
) -> anyhow::Result<Vec<(Delivered, String)>> {
    let recorded: BTreeMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
        "SELECT partition, max(\"offset\") FROM alert_deliveries WHERE topic = $1 GROUP BY partition",
    )
    .bind(&alerts.topic)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let mut cfg = alerts.clone();
    // Only what producers committed (no transactions today; this keeps it true if they come).
    cfg.properties
        .insert("isolation.level".into(), "read_committed".into());
    let partitions = log::partitions(&cfg).await?;
    let marks = log::watermarks(&cfg, &partitions).await?;
    let ranges: Vec<Range> = partitions
        .iter()
        .map(|&p| {
            let (low, high) = marks[&p];
            let after = recorded.get(&p).map_or(0, |o| o + 1);
            Range {
                partition: p,
                start: after.max(low),
                end: Some(high),
            }
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = log::spawn_reader(&cfg, ranges, 500, tx, stop);
    let mut found = vec![];
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Chunk::Messages(messages) => {
                for m in messages {
                    let parsed = m
                        .payload
                        .as_deref()
                        .and_then(|p| serde_json::from_slice::<OnTopic>(p).ok());
                    match parsed {
                        Some(a) => found.push((
                            Delivered {
                                alert_id: a.id,
                                partition: m.partition,
                                offset: m.offset,
                            },
                            a.data.rule,
                        )),
                        None => tracing::warn!(
                            topic = %cfg.topic, partition = m.partition, offset = m.offset,
                            "alerts topic: a message that is not an alert; skipped"
                        ),
                    }
                }
            }
            Chunk::Done => break,
        }
    }
    drop(rx);
    tokio::task::spawn_blocking(move || reader.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the alerts topic reader panicked"))??;
    Ok(found)
}
