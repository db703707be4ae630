//! Projection workers: consume the events topic in a consumer group and fold it into the read
//! tables, exactly once.
//!
//! The loop gathers a batch (what the consumer has already received, up to
//! `projector.batch_max_messages`, then up to `batch_max_wait_ms` more) and hands it to
//! [`sink::apply_batch`], which applies it in one PostgreSQL transaction together with the
//! checkpoints. The checkpoint table, not Kafka, says where each
//! partition stands: messages below it are skipped, and a batch that starts beyond it makes the
//! worker seek back. Kafka's committed offsets follow the checkpoints (for lag monitoring only).
//! Database and broker errors are retried with backoff; a message is never skipped, and one
//! that cannot be parsed goes to `dead_letters` so its partition keeps flowing.

mod alerts;
mod copy;
pub mod sink;

pub use authtrail_projections::Cache;
pub(crate) use sink::Outcome;
pub use sink::{apply_batch, LogMessage, Phases};

use sink::Gap;

use crate::config::Config;
use crate::kafka::admin_config;
use authtrail_projections::{Position, Rules, TopicPartition};
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// The PostgreSQL `NOTIFY` channel announced after every applied batch (payload: projection
/// name), so readers in any process can wait for the projection instead of polling.
pub const NOTIFY_CHANNEL: &str = "authtrail_projected";

/// The lane of a partition: a worker applies its lanes' batches in concurrent transactions,
/// each lane always the same partitions (so each lane's state cache stays exact).
pub(crate) fn lane_of(partition: i32, lanes: usize) -> usize {
    partition.rem_euclid(lanes.max(1) as i32) as usize
}

/// Splits a batch into `lanes` batches by `lane_of`, keeping the order of each partition's
/// messages (moved, not copied: this is on every batch's path).
pub fn split_lanes(batch: Vec<LogMessage>, lanes: usize) -> Vec<Vec<LogMessage>> {
    if lanes <= 1 {
        return vec![batch];
    }
    let mut out = vec![Vec::with_capacity(batch.len() / lanes + 1); lanes];
    for m in batch {
        out[lane_of(m.partition, lanes)].push(m);
    }
    out
}

/// Logs assignments and hands newly assigned partitions to the loop, which seeks them to their
/// checkpoints (the callback runs inside librdkafka's poll and must not block on the database).
#[derive(Default)]
pub(crate) struct Context {
    assigned: std::sync::Mutex<Vec<TopicPartition>>,
    /// Rebalances so far: a partition's delivery is continuous only within one.
    rebalances: std::sync::atomic::AtomicU64,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                if let Ok(mut a) = self.assigned.lock() {
                    a.extend(
                        tpl.elements()
                            .iter()
                            .map(|e| TopicPartition::new(e.topic(), e.partition())),
                    );
                }
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// Per partition: the epoch (seeks + rebalances) of the run and the offset after the last
/// message delivered in it.
#[derive(Default)]
struct Runs {
    next: std::collections::HashMap<i32, (u64, i64)>,
}

/// One projection worker.
pub struct Projector {
    config: Config,
    rules: Rules,
    pool: PgPool,
    consumer: StreamConsumer<Context>,
    /// Per partition: where the log continues past offsets that hold no data.
    floors: std::sync::Mutex<BTreeMap<TopicPartition, i64>>,
    /// Per partition: the last gap sought back from.
    last_gaps: std::sync::Mutex<BTreeMap<TopicPartition, Gap>>,
    /// Offsets librdkafka stepped over between two messages it delivered in one continuous
    /// run (no seek, no rebalance between): per partition, `from → to` where `from..to` holds
    /// no data (transaction markers of the enrichment stage, aborted records, compaction).
    skipped: std::sync::Mutex<BTreeMap<i32, BTreeMap<i64, i64>>>,
    /// Per partition: the offset after the last message this worker committed.
    committed_next: std::sync::Mutex<BTreeMap<i32, i64>>,
    /// Seeks so far (with the rebalances: what ends a continuous run).
    seeks: std::sync::atomic::AtomicU64,
    /// Gaps this worker sought back from to prove them empty.
    gap_seeks: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// What each lane keeps of the state between batches ([`lane_of`] says whose partitions).
    caches: Vec<tokio::sync::Mutex<Cache>>,
    /// Opens the personal members of sealed events (`privacy.master_key_file`).
    keys: Option<std::sync::Arc<crate::privacy::Keyring>>,
}

impl Projector {
    /// Joins the consumer group (subscribes; partitions arrive with the first poll).
    pub fn new(config: Config, pool: PgPool) -> anyhow::Result<Projector> {
        let keys = crate::privacy::Keyring::from_config(&config)?;
        let mut c = admin_config(&config.kafka);
        c.set("group.id", &config.projector.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Only committed records: the enrichment stage appends in transactions, and an
            // aborted one (a crash mid-batch) must never be projected.
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                config.projector.fetch_wait_ms.to_string(),
            )
            .set(
                "session.timeout.ms",
                config.projector.session_timeout_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.projector.session_timeout_ms / 4)
                    .max(500)
                    .to_string(),
            );
        if let Some(id) = config
            .projector
            .instance_id
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            c.set("group.instance.id", id);
        }
        for (k, v) in &config.kafka.properties {
            c.set(k, v);
        }
        let consumer: StreamConsumer<Context> = c.create_with_context(Context::default())?;
        consumer.subscribe(&[config.kafka.topic.as_str()])?;
        Ok(Projector {
            keys,
            rules: config.projector.rules(),
            pool,
            consumer,
            floors: Default::default(),
            last_gaps: Default::default(),
            skipped: Default::default(),
            committed_next: Default::default(),
            seeks: Default::default(),
            gap_seeks: Default::default(),
            caches: (0..config.projector.lanes.max(1))
                .map(|_| tokio::sync::Mutex::new(Cache::new(config.projector.state_cache_sessions)))
                .collect(),
            config,
        })
    }

    /// How many gaps the worker sought back from (to prove offsets empty), shared.
    pub fn gap_seeks(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.gap_seeks.clone()
    }

    /// Consumes until `shutdown` resolves; the batch in hand is applied before returning.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let p = &self.config.projector;
        let max = p.batch_max_messages;
        let wait = Duration::from_millis(p.batch_max_wait_ms);
        tracing::info!(topic = %self.config.kafka.topic, group = %p.group_id, batch = max, lanes = self.caches.len(), "projector started");
        let mut batch: Vec<LogMessage> = Vec::with_capacity(max);
        let mut deadline: Option<Instant> = None;
        let mut stopping = false;
        let mut runs = Runs::default();
        loop {
            let timeout = deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                biased;
                _ = &mut shutdown, if !stopping => { stopping = true; }
                r = tokio::time::timeout(timeout, self.consumer.recv()) => match r {
                    Ok(Ok(m)) => {
                        self.delivered(&mut runs, &m);
                        batch.push(LogMessage::from(&m));
                        // Then whatever librdkafka already holds, without waiting: under a
                        // backlog the batch fills at once; at a steady rate it is what arrived
                        // while the previous batch was being applied (group commit).
                        while batch.len() < max {
                            match self.consumer.recv().now_or_never() {
                                Some(Ok(m)) => {
                                    self.delivered(&mut runs, &m);
                                    batch.push(LogMessage::from(&m));
                                }
                                Some(Err(e)) => {
                                    // librdkafka may skip what it cannot read: not a run.
                                    self.seeks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    tracing::warn!(error = %e, "consumer error (librdkafka retries)");
                                }
                                None => break,
                            }
                        }
                        deadline.get_or_insert_with(|| Instant::now() + wait);
                    }
                    Ok(Err(e)) => {
                        self.seeks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tracing::warn!(error = %e, "consumer error (librdkafka retries)");
                    }
                    Err(_) => {}
                },
            }
            self.seek_new_assignments().await;
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            if !batch.is_empty() && (batch.len() >= max || due || stopping) {
                self.apply_lanes(std::mem::replace(&mut batch, Vec::with_capacity(max)))
                    .await;
                deadline = None;
            }
            if stopping {
                break;
            }
        }
        // Async: Kafka's committed offsets only mirror the checkpoints (for lag monitoring), and
        // a synchronous commit would wait for a broker that may be gone.
        if let Err(e) = self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Async)
        {
            tracing::debug!(error = %e, "final offset commit");
        }
        tracing::info!("projector stopped");
        Ok(())
    }

    /// Applies a batch as one transaction per lane, the lanes concurrently: each lane holds its
    /// own partitions, so each transaction carries its partitions' checkpoints and the lanes
    /// never wait for each other except on rows that several users share (statistics), which
    /// every transaction locks in the same (key) order.
    async fn apply_lanes(&self, batch: Vec<LogMessage>) {
        let lanes = split_lanes(batch, self.caches.len());
        futures::future::join_all(
            lanes
                .iter()
                .enumerate()
                .filter(|(_, part)| !part.is_empty())
                .map(|(lane, part)| self.apply_with_retry(lane, part)),
        )
        .await;
    }

    /// Applies one lane's batch, retrying until it commits. Never skips.
    ///
    /// A batch that starts beyond a partition's checkpoint has a gap. The worker seeks back to
    /// the checkpoint; the gap is accepted only when the broker shows the offsets hold no data:
    /// they lie below the log start (retention), or after seeking back the broker again starts
    /// the partition past them (transaction markers, compaction).
    ///
    /// A batch the database refuses for its content ([`sink::is_rejection`]) is split in halves,
    /// applied in order, down to the one message at fault, which goes to `dead_letters` with
    /// the database's reason: the partition keeps flowing and nothing else is lost.
    async fn apply_with_retry(&self, lane: usize, batch: &[LogMessage]) {
        let mut backoff = Duration::from_millis(50);
        self.continue_past_skips(batch);
        // What is still to apply: after a gap was sought back from, that partition's messages
        // come again from the consumer, so they leave this batch (applied again here, its gap
        // would look "seen again" without the offsets ever having been read after the seek).
        let mut held: Option<Vec<LogMessage>> = None;
        loop {
            let batch: &[LogMessage] = held.as_deref().unwrap_or(batch);
            let started = Instant::now();
            let floors = self.floors.lock().map(|f| f.clone()).unwrap_or_default();
            let result = match self.apply_once(lane, batch, &floors).await {
                Err(e) if sink::is_rejection(&e) && batch.len() > 1 => {
                    tracing::warn!(error = %e, messages = batch.len(), "the database refused a batch; splitting it to find the message at fault");
                    let (first, second) = batch.split_at(batch.len() / 2);
                    Box::pin(self.apply_with_retry(lane, first)).await;
                    Box::pin(self.apply_with_retry(lane, second)).await;
                    return;
                }
                Err(e) if sink::is_rejection(&e) => {
                    let m = &batch[0];
                    tracing::error!(error = %e, topic = %m.topic, partition = m.partition, offset = m.offset, "the database refused a message; dead-lettering it");
                    self.dead_letter_once(m, &e, &floors).await
                }
                other => other,
            };
            match result {
                Ok(outcome) => {
                    self.after_commit(&outcome, started);
                    let mut floors_moved = false;
                    let mut sought: Vec<(String, i32)> = Vec::new();
                    for gap in &outcome.gaps {
                        if self.resolve_gap(gap).await {
                            floors_moved = true;
                        } else {
                            sought.push((gap.topic.clone(), gap.partition));
                        }
                    }
                    if !floors_moved {
                        return;
                    }
                    // Apply what the accepted gaps held back; the rest is below its checkpoint.
                    held = Some(
                        batch
                            .iter()
                            .filter(|m| {
                                !sought
                                    .iter()
                                    .any(|(t, p)| *t == m.topic && *p == m.partition)
                            })
                            .cloned()
                            .collect(),
                    );
                }
                Err(e) => {
                    metrics::counter!("authtrail_projector_retries_total").increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "batch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Decides about a gap a committed batch reported: offsets below the log start are gone, and
    /// a gap seen again after seeking back holds no messages; either way the partition's floor
    /// moves past it (returns `true`: apply the batch again). Otherwise seeks back to where the
    /// partition continues and remembers the gap.
    async fn resolve_gap(&self, gap: &Gap) -> bool {
        let Gap {
            topic,
            partition,
            expected,
            first,
        } = gap;
        let tp = gap.topic_partition();
        let low = self.low_watermark(&tp).await;
        let repeated = self.last_gaps.lock().is_ok_and(|g| g.get(&tp) == Some(gap));
        let floor = match low {
            Some(low) if low > *expected => {
                tracing::error!(%topic, partition, expected, low, "offsets below the log start are gone; continuing from the log start");
                Some(low)
            }
            _ if repeated => {
                tracing::warn!(%topic, partition, expected, first, "offsets hold no messages (transaction markers or compaction); continuing");
                Some(*first)
            }
            _ => None,
        };
        match floor {
            Some(f) => {
                if let Ok(mut floors) = self.floors.lock() {
                    floors.insert(tp, f);
                }
                true
            }
            None => {
                if let Ok(mut g) = self.last_gaps.lock() {
                    g.insert(tp.clone(), gap.clone());
                }
                self.gap_seeks
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                metrics::counter!("authtrail_projector_gap_seeks_total").increment(1);
                self.seek(&tp.at(*expected));
                false
            }
        }
    }

    async fn dead_letter_once(
        &self,
        m: &LogMessage,
        error: &sqlx::Error,
        floors: &BTreeMap<TopicPartition, i64>,
    ) -> Result<Outcome, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let outcome = sink::dead_letter_rejected(
            &mut tx,
            &self.config.projector.projection,
            m,
            error,
            floors,
        )
        .await?;
        self.notify(&mut tx, &outcome).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        outcome: &Outcome,
    ) -> Result<(), sqlx::Error> {
        if !outcome.advanced.is_empty() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(&self.config.projector.projection)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn apply_once(
        &self,
        lane: usize,
        batch: &[LogMessage],
        floors: &BTreeMap<TopicPartition, i64>,
    ) -> Result<Outcome, sqlx::Error> {
        let mut cache = self.caches[lane].lock().await;
        let mut tx = self.pool.begin().await?;
        let outcome = apply_batch(
            &mut tx,
            &self.config.projector.projection,
            &self.rules,
            batch,
            floors,
            &mut cache,
            self.keys.as_deref(),
        )
        .await?;
        self.notify(&mut tx, &outcome).await?;
        tx.commit().await?;
        cache.committed(&self.rules);
        metrics::gauge!("authtrail_projector_cached_sessions", "lane" => lane.to_string())
            .set(cache.sessions() as f64);
        Ok(outcome)
    }

    fn after_commit(&self, outcome: &Outcome, started: Instant) {
        metrics::histogram!("authtrail_projector_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        for (phase, took) in outcome.phases.iter() {
            metrics::histogram!("authtrail_projector_phase_seconds", "phase" => phase)
                .record(took.as_secs_f64());
        }
        metrics::counter!("authtrail_projector_events_total").increment(outcome.projected as u64);
        metrics::counter!("authtrail_projector_duplicates_total")
            .increment(outcome.duplicates as u64);
        if outcome.projected + outcome.dead_letters > 0 {
            tracing::debug!(
                projected = outcome.projected,
                duplicates = outcome.duplicates,
                dead_letters = outcome.dead_letters,
                "batch applied"
            );
        }
        if let Ok(mut c) = self.committed_next.lock() {
            for next in &outcome.advanced {
                c.insert(next.partition, next.offset);
            }
        }
        // Kafka's committed offsets follow the checkpoints, for lag monitoring.
        let mut tpl = TopicPartitionList::new();
        for next in &outcome.advanced {
            let _ =
                tpl.add_partition_offset(&next.topic, next.partition, Offset::Offset(next.offset));
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                tracing::debug!(error = %e, "storing offsets (partition probably revoked)");
            }
        }
    }

    /// Notes a delivered message: when librdkafka stepped over offsets since the previous
    /// message of its partition within one continuous run, those offsets hold no data.
    fn delivered<M: Message>(&self, runs: &mut Runs, m: &M) {
        use std::sync::atomic::Ordering::SeqCst;
        let epoch = self.seeks.load(SeqCst) + self.consumer.context().rebalances.load(SeqCst);
        let (partition, offset) = (m.partition(), m.offset());
        if let Some(&(e, next)) = runs.next.get(&partition) {
            if e == epoch && offset > next {
                if let Ok(mut s) = self.skipped.lock() {
                    let per = s.entry(partition).or_default();
                    per.insert(next, offset);
                    // Only the latest ones can still be needed.
                    while per.len() > 256 {
                        per.pop_first();
                    }
                }
            }
        }
        runs.next.insert(partition, (epoch, offset + 1));
    }

    /// Before a lane's batch: a partition whose batch starts just past offsets that hold no
    /// data, right after what this worker last committed, continues there (a floor), instead of
    /// reporting a gap and seeking back to prove the offsets empty. Safe because the checkpoint
    /// is at least what this worker committed, and the skipped offsets were seen to be empty.
    fn continue_past_skips(&self, batch: &[LogMessage]) {
        let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in batch {
            let o = first
                .entry((m.topic.as_str(), m.partition))
                .or_insert(m.offset);
            *o = (*o).min(m.offset);
        }
        let (Ok(committed), Ok(mut skipped), Ok(mut floors)) = (
            self.committed_next.lock(),
            self.skipped.lock(),
            self.floors.lock(),
        ) else {
            return;
        };
        for ((topic, partition), first) in first {
            let Some(&done) = committed.get(&partition) else {
                continue;
            };
            let Some(per) = skipped.get_mut(&partition) else {
                continue;
            };
            if per.get(&done) == Some(&first) {
                let tp = TopicPartition::new(topic, partition);
                let floor = floors.entry(tp).or_insert(first);
                *floor = (*floor).max(first);
            }
            // Skips before what is committed are behind us.
            per.retain(|from, _| *from >= done);
        }
    }

    /// Seeks partitions assigned since the last call to their checkpoints, so a worker resumes
    /// exactly where the tables stand rather than where Kafka's committed offsets lag behind.
    async fn seek_new_assignments(&self) {
        let assigned: Vec<TopicPartition> = match self.consumer.context().assigned.lock() {
            Ok(mut a) if !a.is_empty() => std::mem::take(&mut *a),
            _ => return,
        };
        let (topics, partitions): (Vec<String>, Vec<i32>) = assigned
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .unzip();
        let rows: Result<Vec<(String, i32, i64)>, _> = sqlx::query_as(
            "SELECT topic, partition, next_offset FROM projection_checkpoints
             JOIN UNNEST($2::text[], $3::int[]) AS x(t, p) ON topic = x.t AND partition = x.p
             WHERE projection = $1",
        )
        .bind(&self.config.projector.projection)
        .bind(&topics)
        .bind(&partitions)
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => {
                for (topic, partition, next) in rows {
                    self.seek(&TopicPartition::new(topic, partition).at(next));
                }
            }
            // The checkpoint guard keeps this correct; seeking only saves re-reading.
            Err(e) => tracing::warn!(error = %e, "reading checkpoints for new partitions"),
        }
    }

    /// Makes the consumer continue from `to`.
    fn seek(&self, to: &Position) {
        let Position {
            topic,
            partition,
            offset,
        } = to;
        tracing::debug!(%topic, partition, offset, "seeking to checkpoint");
        self.seeks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = self.consumer.seek(
            topic,
            *partition,
            Offset::Offset(*offset),
            Duration::from_secs(5),
        ) {
            // Not assigned to us any more: its new owner starts from the checkpoint.
            tracing::debug!(error = %e, %topic, partition, "seek failed");
        }
    }

    async fn low_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        let cfg = self.config.kafka.clone();
        let TopicPartition { topic, partition } = tp.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = admin_config(&cfg).create().ok()?;
            c.fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .ok()
                .map(|w| w.0)
        })
        .await
        .ok()
        .flatten()
    }
}

/// Deletes what retention allows from the read tables (never the log). Ages count back from the
/// newest projected login attempt, not the wall clock, so a replay of an old log is not pruned
/// of rows its later events still need. Returns `(sessions, login attempts)` deleted.
pub async fn cleanup(
    pool: &PgPool,
    cfg: &crate::config::RetentionConfig,
) -> Result<(u64, u64), sqlx::Error> {
    let newest: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT max(attempted_at) FROM login_history")
            .fetch_one(pool)
            .await?;
    let Some(newest) = newest else {
        return Ok((0, 0));
    };
    // One transaction, which also tells the workers' state caches to start over.
    let mut tx = pool.begin().await?;
    sink::invalidate_caches(&mut tx).await?;
    let sessions = sqlx::query(
        "DELETE FROM sessions
         WHERE coalesce(ended_at, least(expires_at, absolute_expires_at, idle_expires_at))
               < $1 - make_interval(days => $2::int)",
    )
    .bind(newest)
    .bind(cfg.sessions_days as i32)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let history = sqlx::query(
        "DELETE FROM login_history WHERE attempted_at < $1 - make_interval(days => $2::int)",
    )
    .bind(newest)
    .bind(cfg.login_history_days as i32)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((sessions, history))
}
