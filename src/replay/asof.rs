//! Time travel: the projections as they were at an instant of event time.
//!
//! - `authtrail as-of TIME` folds every event with `time <= TIME` (the log up to the end offsets
//!   captured at start) into a named schema through the live sink, then prints a summary.
//! - [`user_sessions_at`] answers one user's sessions and trusted devices at TIME without a
//!   database: it reads only the user's partition and folds it in memory with the pure fold
//!   ([`authtrail_projections::memory::Tables`]); [`AsOfCache`] keeps recent answers.

use super::log::{self, Chunk, Range};
use super::schema;
use crate::config::{Config, KafkaConfig};
use crate::projector::LogMessage;
use anyhow::Context;
use authtrail_events::Event;
use authtrail_projections::memory::Tables;
use authtrail_projections::rows::{Session, TrustedDevice};
use authtrail_projections::{Rules, TopicPartition};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// `authtrail as-of` arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AsOfArgs {
    /// The instant (RFC 3339, event time): events at or before it are projected.
    time: DateTime<Utc>,
    /// The schema to build into (default `authtrail_asof_<YYYYMMDDhhmmss>` of TIME). An
    /// existing schema is continued (its checkpoints say how far it got).
    #[arg(long)]
    schema: Option<String>,
    /// Messages per transaction (default: `projector.batch_max_messages`).
    #[arg(long)]
    batch: Option<usize>,
}

/// What `authtrail as-of` built.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct AsOfSummary {
    schema: String,
    time: String,
    /// Messages read and events projected (event time at or before TIME).
    read: u64,
    projected: u64,
    /// Rows per table.
    rows: BTreeMap<String, i64>,
    /// Sessions by status at TIME.
    sessions_by_status: BTreeMap<String, i64>,
}

fn default_schema(time: DateTime<Utc>) -> String {
    format!("authtrail_asof_{}", time.format("%Y%m%d%H%M%S"))
}

/// Runs `authtrail as-of` and prints its summary.
pub(crate) async fn run(config: Config, args: AsOfArgs) -> anyhow::Result<AsOfSummary> {
    let pool = crate::db::migrate(&config.database)
        .await
        .context("migrating the database")?;
    let schema_name = args
        .schema
        .clone()
        .unwrap_or_else(|| default_schema(args.time));
    let batch = args
        .batch
        .unwrap_or(config.projector.batch_max_messages)
        .max(1);
    let s = build(&config, &pool, args.time, &schema_name, batch).await?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(s)
}

/// Builds the projections as of `time` into `schema_name`.
async fn build(
    config: &Config,
    pool: &PgPool,
    time: DateTime<Utc>,
    schema_name: &str,
    batch: usize,
) -> anyhow::Result<AsOfSummary> {
    let spool = schema::prepare(&config.database, pool, schema_name).await?;
    let keys = crate::privacy::Keyring::from_config(config)?;
    let (projection, rules) = schema::projection_of(config);
    let topic = config.kafka.topic.clone();
    let partitions = log::partitions(&config.kafka).await?;
    let marks = log::watermarks(&config.kafka, &partitions).await?;
    let done = schema::checkpoints(&spool, None, &projection, &topic).await?;
    let ranges: Vec<Range> = partitions
        .iter()
        .map(|&p| Range {
            partition: p,
            start: done.get(&p).copied().unwrap_or(0).max(marks[&p].0),
            end: Some(marks[&p].1),
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = log::spawn_reader(&config.kafka, ranges, batch, tx, stop.clone());
    let mut summary = AsOfSummary {
        schema: schema_name.to_owned(),
        time: time.to_rfc3339(),
        ..Default::default()
    };
    let mut cache = crate::projector::Cache::new(config.projector.state_cache_sessions);
    while let Some(chunk) = rx.recv().await {
        let Chunk::Messages(msgs) = chunk else { break };
        summary.read += msgs.len() as u64;
        // Keep the events up to TIME. The skipped offsets hold nothing for this projection: the
        // sink is told so through its floors, which let a partition continue past them.
        let kept: Vec<LogMessage> = msgs
            .into_iter()
            .filter(|m| {
                authtrail_events::parse(m.payload.as_deref().unwrap_or_default())
                    .is_ok_and(|e| e.time <= time)
            })
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut floors: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for m in &kept {
            floors.entry(m.topic_partition()).or_insert(m.offset);
        }
        let o = schema::apply(
            &spool,
            &projection,
            &rules,
            &kept,
            &floors,
            true,
            &mut cache,
            keys.as_deref(),
        )
        .await?;
        summary.projected += o.projected as u64;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    match tokio::task::spawn_blocking(move || reader.join()).await? {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("log reader panicked"),
    }
    for t in schema::PROJECTION_TABLES
        .iter()
        .filter(|t| !schema::BOOKKEEPING_TABLES.contains(t))
    {
        let table = schema::qualified(schema_name, t);
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await?;
        summary.rows.insert((*t).to_owned(), n);
    }
    let statuses: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT {}(s, $1), count(*) FROM {} s GROUP BY 1",
        schema::qualified(schema_name, "session_status"),
        schema::qualified(schema_name, "sessions")
    ))
    .bind(time)
    .fetch_all(pool)
    .await?;
    summary.sessions_by_status = statuses.into_iter().collect();
    spool.close().await;
    Ok(summary)
}

/// One session as it was at the instant.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct SessionAt {
    status: &'static str,
    #[serde(flatten)]
    session: Session,
}

/// A user's sessions and trusted devices at an instant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct UserAt {
    user_id: String,
    as_of: DateTime<Utc>,
    /// Where the answer was read up to: `(partition, end offset)`.
    partition: i32,
    end_offset: i64,
    events_folded: usize,
    sessions: Vec<SessionAt>,
    devices: Vec<TrustedDevice>,
}

/// Recent answers keyed by `(user, instant, partition end offset)`: an answer stays valid while
/// the partition did not grow (a later event could still carry an earlier event time).
#[derive(Clone)]
pub(crate) struct AsOfCache {
    inner: moka::sync::Cache<(String, i64, i64, i64), Arc<UserAt>>,
}

impl Default for AsOfCache {
    fn default() -> Self {
        AsOfCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(256)
                .time_to_live(std::time::Duration::from_secs(600))
                .build(),
        }
    }
}

/// Answers one user's sessions and devices at `time` from the log alone (cached).
pub(crate) async fn user_sessions_at(
    kafka: &KafkaConfig,
    rules: &Rules,
    cache: &AsOfCache,
    user: &str,
    time: DateTime<Utc>,
    keys: Option<&crate::privacy::Keyring>,
) -> anyhow::Result<Arc<UserAt>> {
    let partitions = log::partitions(kafka).await?;
    let partition = log::murmur2_partition(user.as_bytes(), partitions.len() as i32);
    let (low, high) = log::watermarks(kafka, &[partition]).await?[&partition];
    // A forget changes the answer without changing the log: the erasures count is in the key.
    let erasures = match keys {
        Some(k) => k.erasures_of(user).await?,
        None => 0,
    };
    let key = (user.to_owned(), time.timestamp_micros(), high, erasures);
    if let Some(hit) = cache.inner.get(&key) {
        metrics::counter!("authtrail_asof_cache_hits_total").increment(1);
        return Ok(hit);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = log::spawn_reader(
        kafka,
        vec![Range {
            partition,
            start: low,
            end: Some(high),
        }],
        5000,
        tx,
        stop.clone(),
    );
    let mut events: Vec<Event> = vec![];
    while let Some(chunk) = rx.recv().await {
        let Chunk::Messages(msgs) = chunk else { break };
        events.extend(
            msgs.iter()
                .filter_map(|m| authtrail_events::parse(m.payload.as_deref()?).ok())
                .filter(|e| e.time <= time),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    match tokio::task::spawn_blocking(move || reader.join()).await? {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("log reader panicked"),
    }
    crate::privacy::open_or_refuse(keys, &mut events).await?;
    // The whole partition is folded, in offset order, as the live projector folds it: the
    // answer then cannot depend on which of the partition's events name this user.
    let mut tables = Tables::default();
    tables.apply_batch(rules, &events);
    let mut sessions: Vec<SessionAt> = tables
        .sessions
        .into_values()
        .filter(|s| s.user_id == user)
        .map(|s| SessionAt {
            status: s.status_at(time).as_str(),
            session: s,
        })
        .collect();
    sessions.sort_by(|a, b| {
        (a.session.created_at, &a.session.session_id)
            .cmp(&(b.session.created_at, &b.session.session_id))
    });
    let devices: Vec<TrustedDevice> = tables
        .devices
        .into_iter()
        .filter(|((u, _), _)| u == user)
        .map(|(_, d)| d)
        .collect();
    let answer = Arc::new(UserAt {
        user_id: user.to_owned(),
        as_of: time,
        partition,
        end_offset: high,
        events_folded: events.len(),
        sessions,
        devices,
    });
    cache.inner.insert(key, answer.clone());
    Ok(answer)
}
