//! Reading the events topic directly: partition metadata, watermarks, offsets for times, and a
//! reader thread that streams a range of every partition (assign, no consumer group, no commits).

use crate::config::KafkaConfig;
use crate::kafka::admin_config;
use crate::projector::LogMessage;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer that reads by assignment only: a group id is set because librdkafka wants one,
/// but nothing joins a group and nothing is committed.
fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = admin_config(cfg);
    c.set(
        "group.id",
        format!("authtrail-replay-{}", uuid::Uuid::new_v4().simple()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("enable.partition.eof", "true")
    // Only committed records, like the projector: an aborted transaction of the enrichment
    // stage is not part of the log.
    .set("isolation.level", "read_committed")
    .set("auto.offset.reset", "earliest");
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

/// The partitions of the topic (error when the broker does not know it).
pub async fn partitions(cfg: &KafkaConfig) -> anyhow::Result<Vec<i32>> {
    match crate::kafka::topic_partitions(cfg).await? {
        Some(n) => Ok((0..n).collect()),
        None => bail!("topic {} does not exist on {}", cfg.topic, cfg.brokers),
    }
}

/// `(low, high)` watermarks of every partition.
pub async fn watermarks(
    cfg: &KafkaConfig,
    partitions: &[i32],
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let cfg = cfg.clone();
    let partitions = partitions.to_vec();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = consumer_config(&cfg).create()?;
        partitions
            .iter()
            .map(|&p| {
                let w = c
                    .fetch_watermarks(&cfg.topic, p, TIMEOUT)
                    .with_context(|| format!("watermarks of partition {p}"))?;
                Ok((p, w))
            })
            .collect()
    })
    .await?
}

/// Per partition, the first offset whose broker timestamp is at or after `time`; the high
/// watermark when there is none.
pub async fn offsets_for_time(
    cfg: &KafkaConfig,
    partitions: &[i32],
    time: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let marks = watermarks(cfg, partitions).await?;
    let cfg = cfg.clone();
    let partitions = partitions.to_vec();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = consumer_config(&cfg).create()?;
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(&cfg.topic, p, Offset::Offset(time.timestamp_millis()))?;
        }
        let got = c
            .offsets_for_times(tpl, TIMEOUT)
            .context("offsets for times")?;
        let mut out = BTreeMap::new();
        for e in got.elements() {
            tracing::debug!(partition = e.partition(), answer = ?e.offset(), %time, "offsets for times");
            let (low, high) = marks[&e.partition()];
            let resolved = resolve_answer(e.offset(), low, high)
                .with_context(|| format!("offsets for times, partition {}", e.partition()))?;
            out.insert(e.partition(), resolved);
        }
        Ok(out)
    })
    .await?
}

/// Turns a broker's offsets-for-times answer into an offset in `[low, high]`: the first offset
/// with a timestamp at or after the time, or -1 (`End`) when there is none, which is the high
/// watermark. Answers below the low watermark (retention moved the start) are the start.
fn resolve_answer(answer: Offset, low: i64, high: i64) -> anyhow::Result<i64> {
    Ok(match answer {
        Offset::End | Offset::Invalid => high,
        Offset::Offset(o) if o < 0 => high,
        Offset::Offset(o) => o.clamp(low, high),
        other => bail!("unexpected answer {other:?}"),
    })
}

/// What to read of one partition: `[start, end)`, or from `start` on when `end` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub partition: i32,
    pub start: i64,
    pub end: Option<i64>,
}

/// What the reader thread sends.
#[derive(Debug)]
pub enum Chunk {
    /// Messages in offset order per partition.
    Messages(Vec<LogMessage>),
    /// Every partition with an end has reached it (never sent when following).
    Done,
}

/// Reads `ranges` on a thread of its own and sends chunks of up to `chunk` messages. Stops when
/// every bounded range is read (after sending [`Chunk::Done`]), when the receiver is dropped, or
/// when `stop` is set. Ranges with `end <= start` are not read at all.
pub fn spawn_reader(
    cfg: &KafkaConfig,
    ranges: Vec<Range>,
    chunk: usize,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("authtrail-log-reader".into())
        .spawn(move || read(&cfg, ranges, chunk.max(1), tx, stop))
        .expect("spawn reader thread")
}

fn read(
    cfg: &KafkaConfig,
    ranges: Vec<Range>,
    chunk: usize,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let c: BaseConsumer = consumer_config(cfg).create()?;
    let mut tpl = TopicPartitionList::new();
    // Partition → end (None: follow).
    let mut open: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    for r in &ranges {
        if r.end.is_some_and(|e| e <= r.start) {
            continue;
        }
        tpl.add_partition_offset(&cfg.topic, r.partition, Offset::Offset(r.start))?;
        open.insert(r.partition, r.end);
    }
    let bounded = |open: &BTreeMap<i32, Option<i64>>| open.values().any(Option::is_some);
    let follow = open.values().any(Option::is_none);
    if open.is_empty() {
        let _ = tx.blocking_send(Chunk::Done);
        return Ok(());
    }
    c.assign(&tpl)?;
    let mut buf: Vec<LogMessage> = Vec::with_capacity(chunk);
    let mut done_sent = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let flush = match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                if let Some(Some(end)) = open.get(&p).copied() {
                    if m.offset() < end {
                        buf.push(LogMessage::from(&m));
                    }
                    if m.offset() + 1 >= end {
                        open.remove(&p);
                        let mut t = TopicPartitionList::new();
                        t.add_partition(&cfg.topic, p);
                        let _ = c.incremental_unassign(&t);
                    }
                } else if open.contains_key(&p) {
                    buf.push(LogMessage::from(&m));
                }
                buf.len() >= chunk
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // At the high watermark: a bounded range ends here even when its last offsets
                // hold no message (transaction markers, compaction).
                if let Some(Some(end)) = open.get(&p).copied() {
                    let at = c
                        .position()
                        .ok()
                        .and_then(|pos| {
                            pos.find_partition(&cfg.topic, p)
                                .and_then(|e| e.offset().to_raw())
                        })
                        .unwrap_or(-1);
                    if at >= end || at < 0 {
                        open.remove(&p);
                    }
                }
                true
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "log reader: consumer error (librdkafka retries)");
                true
            }
            None => true,
        };
        if flush && !buf.is_empty() {
            let out = std::mem::replace(&mut buf, Vec::with_capacity(chunk));
            if tx.blocking_send(Chunk::Messages(out)).is_err() {
                return Ok(());
            }
        }
        if !done_sent && !bounded(&open) && buf.is_empty() {
            done_sent = true;
            if tx.blocking_send(Chunk::Done).is_err() || !follow {
                return Ok(());
            }
        }
    }
}

pub(crate) use crate::kafka::murmur2_partition;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_for_times_answers_resolve_within_the_watermarks() {
        // None at or after the time: -1, the end.
        assert_eq!(resolve_answer(Offset::End, 0, 40).unwrap(), 40);
        assert_eq!(resolve_answer(Offset::Offset(-1), 0, 40).unwrap(), 40);
        // The log starts at or after the time.
        assert_eq!(resolve_answer(Offset::Offset(0), 0, 40).unwrap(), 0);
        // Retention moved the start: answers below it are the start.
        assert_eq!(resolve_answer(Offset::Offset(3), 7, 40).unwrap(), 7);
        // In the middle; an empty partition.
        assert_eq!(resolve_answer(Offset::Offset(12), 0, 40).unwrap(), 12);
        assert_eq!(resolve_answer(Offset::Offset(0), 0, 0).unwrap(), 0);
    }
}
