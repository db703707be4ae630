//! `authtrail rebuild`: every projection rebuilt from offset 0 into a fresh schema while the live
//! workers keep running, then swapped in atomically.
//!
//! 1. A schema `authtrail_rebuild_<n>` gets the migrations (same tables, views, functions) and is
//!    filled through the live sink ([`crate::projector::apply_batch`]) on a pool whose
//!    `search_path` is that schema. Its checkpoints live in it, so a crashed rebuild resumes
//!    where it stopped: run the command again (it picks up the newest unfinished rebuild).
//!    Two things make it faster than the live path without touching the sink: the indexes only
//!    readers use are dropped while building and built once at the end (their definitions are
//!    kept in the schema, so a resumed build restores them too), and its transactions commit
//!    with `synchronous_commit = off` (a server crash costs at most the last commits, and the
//!    checkpoints that survive say where to resume).
//! 2. It chases the live checkpoints (never past them), until the distance is small; then it
//!    builds the deferred indexes.
//! 3. The swap, one transaction: lock the live checkpoint table (`EXCLUSIVE`: the live workers
//!    wait, readers do not), catch up to the live checkpoints exactly, take a snapshot for the
//!    comparison of row counts and content hashes (computed after the commit, so the live workers
//!    do not wait for it), then move every projection table — and the views and functions that depend
//!    on them — from the live schema to `authtrail_old_<ts>` and from the rebuild schema to the
//!    live schema (`ALTER ... SET SCHEMA`).
//!
//! Why move tables rather than rename schemas: the live tables sit in `public` next to things
//! that are not projections (migration history, future non-projection tables), and the API, the
//! live workers and other engineers' code address them unqualified through the default
//! `search_path`. Moving the projection's tables keeps every reader and writer unchanged.
//! `SET SCHEMA` takes an `ACCESS EXCLUSIVE` lock on each table, so a query either ran before the
//! swap (old tables) or runs after it (all new tables): nothing sees a half-built or a mixed set.
//! It also invalidates cached plans, so prepared statements of live connections re-resolve
//! their names to the new tables. The live workers continue from the swapped-in checkpoints,
//! which equal the ones they had.

use super::schema::{self, PROJECTION_TABLES};
use crate::config::Config;
use crate::projector::{Cache, LogMessage};
use anyhow::{bail, Context};
use authtrail_projections::{Rules, TopicPartition};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// `authtrail rebuild` arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RebuildArgs {
    /// Build into this schema (default: resume the newest unfinished `authtrail_rebuild_<n>`,
    /// else create the next one).
    #[arg(long)]
    schema: Option<String>,
    /// Drop the replaced tables (schema `authtrail_old_<ts>`) after the swap.
    #[arg(long)]
    drop_old: bool,
    /// Build and catch up, but do not swap.
    #[arg(long)]
    no_swap: bool,
    /// Messages per transaction (default: 4 × `projector.batch_max_messages`).
    #[arg(long)]
    batch: Option<usize>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Transactions in flight at once, each applying its own partitions.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// One table compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    pub table: String,
    old_rows: i64,
    new_rows: i64,
    old_hash: String,
    new_hash: String,
}

impl Comparison {
    pub fn equal(&self) -> bool {
        self.old_rows == self.new_rows && self.old_hash == self.new_hash
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The schema built into (empty after a swap: its tables moved to the live schema).
    pub schema: String,
    /// Where the replaced live tables went (`None` without a swap).
    pub old_schema: Option<String>,
    pub dropped_old: bool,
    /// Messages applied by this run (a resumed rebuild counts only its own).
    pub messages: u64,
    seconds: f64,
    /// How long the swap held the live workers (lock wait, last catch-up, moves; the
    /// comparison runs afterwards on a snapshot).
    pub swap_seconds: f64,
    /// Where the time went: `(phase, seconds)` in order — build (apply until close to the live
    /// position), indexes (the deferred ones), swap, compare, drop.
    pub phases: Vec<(&'static str, f64)>,
    /// Per partition, where the rebuilt tables stand.
    pub checkpoints: BTreeMap<i32, i64>,
    /// Old (live) vs new per table, at the swap (empty without a swap).
    pub comparison: Vec<Comparison>,
}

impl Report {
    pub fn identical(&self) -> bool {
        self.comparison.iter().all(Comparison::equal)
    }
}

/// Options of one rebuild.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub schema: Option<String>,
    pub drop_old: bool,
    pub swap: bool,
    pub batch: usize,
    pub progress_bar: bool,
    /// Outside the lock, chase the live checkpoints until at most this many messages remain.
    pub lock_distance: u64,
    /// Defer reader-only indexes and commit without waiting for the WAL flush while building.
    pub fast: bool,
    /// Transactions in flight at once, each for its own partitions.
    pub workers: usize,
    /// Each worker's state cache, in sessions (`projector.state_cache_sessions`).
    pub cache_sessions: usize,
}

impl Options {
    pub(crate) fn from_args(config: &Config, a: &RebuildArgs) -> Options {
        Options {
            schema: a.schema.clone(),
            drop_old: a.drop_old,
            swap: !a.no_swap,
            batch: a.batch.unwrap_or_else(|| default_batch(config)).max(1),
            progress_bar: !a.no_progress && std::io::stderr().is_terminal(),
            lock_distance: 20_000,
            fast: true,
            workers: a.workers.max(1),
            cache_sessions: config.projector.state_cache_sessions,
        }
    }
}

/// A rebuild's batch when none is given: four live batches. A rebuild is all catch-up, where
/// fewer, larger transactions pay (1 M events: build phase 47.8 s at 5 000, 40.4 s at 20 000;
/// docs/benchmarks-history.md), and nobody waits for its rows to become visible.
pub fn default_batch(config: &Config) -> usize {
    config.projector.batch_max_messages.saturating_mul(4).max(1)
}

/// Runs `authtrail rebuild` and prints the report.
pub(crate) async fn run(config: Config, args: RebuildArgs) -> anyhow::Result<Report> {
    let pool = crate::db::migrate(&config.database)
        .await
        .context("migrating the database")?;
    let opts = Options::from_args(&config, &args);
    let report = rebuild(&config, &pool, &opts, None).await?;
    print_report(&report);
    Ok(report)
}

fn print_report(r: &Report) {
    eprintln!(
        "rebuild: applied {} message(s) in {:.1} s ({:.0} messages/s) into {}",
        r.messages,
        r.seconds,
        r.messages as f64 / r.seconds.max(1e-9),
        r.schema
    );
    eprintln!("time: {}", phase_line(&r.phases));
    if let Some(old) = &r.old_schema {
        eprintln!(
            "swapped in {:.2} s (live workers paused meanwhile): the previous tables are in schema {old}{}",
            r.swap_seconds,
            if r.dropped_old { " (dropped)" } else { "" }
        );
        eprintln!(
            "{:<24} {:>10} {:>10}  {:<32} {:<32} same",
            "table", "old rows", "new rows", "old hash", "new hash"
        );
        for c in &r.comparison {
            eprintln!(
                "{:<24} {:>10} {:>10}  {:<32} {:<32} {}",
                c.table,
                c.old_rows,
                c.new_rows,
                c.old_hash,
                c.new_hash,
                if c.equal() { "yes" } else { "NO" }
            );
        }
    }
}

/// `build 50.1 s, indexes 6.0 s, ...`
pub fn phase_line(phases: &[(&str, f64)]) -> String {
    phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The live schema: where the main pool's unqualified names resolve. It passes the same check
/// as every other schema name: the database URL or the role's `search_path` chooses it, and a
/// rebuild writes it into SQL.
async fn live_schema(pool: &PgPool) -> anyhow::Result<String> {
    let s: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let s = s.context("no current schema")?;
    schema::check_name(&s).context("the live schema (the database's search_path)")?;
    Ok(s)
}

/// The schema to build into: the one given, else the newest existing rebuild schema, else a new
/// one numbered after it.
async fn choose_schema(pool: &PgPool, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(s) = given {
        return Ok(s.to_owned());
    }
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^authtrail_rebuild_[0-9]+$'",
    )
    .fetch_all(pool)
    .await?;
    let newest = existing
        .iter()
        .filter_map(|s| {
            s.trim_start_matches("authtrail_rebuild_")
                .parse::<u64>()
                .ok()
        })
        .max();
    Ok(match newest {
        Some(n) => {
            tracing::info!(schema = %format!("authtrail_rebuild_{n}"), "resuming rebuild");
            format!("authtrail_rebuild_{n}")
        }
        None => {
            let used: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^authtrail_(rebuild|old)_'",
            )
            .fetch_all(pool)
            .await?;
            let next = used
                .iter()
                .filter_map(|s| s.rsplit('_').next()?.parse::<u64>().ok())
                .filter(|n| *n < 1_000_000)
                .max()
                .map_or(1, |n| n + 1);
            format!("authtrail_rebuild_{next}")
        }
    })
}

/// The rebuild's consumer side: the log from the rebuild's checkpoints on, applied up to a
/// target that only grows (the live checkpoints).
struct Builder<'a> {
    pool: PgPool,
    projection: String,
    rules: Rules,
    topic: String,
    batch: usize,
    workers: usize,
    /// One state cache per worker (a worker always takes the same partitions).
    caches: Vec<Cache>,
    relaxed: bool,
    floors: BTreeMap<TopicPartition, i64>,
    positions: BTreeMap<i32, i64>,
    pending: BTreeMap<i32, VecDeque<LogMessage>>,
    rx: tokio::sync::mpsc::Receiver<super::log::Chunk>,
    applied: u64,
    bar: Option<indicatif::ProgressBar>,
    progress: Option<&'a tokio::sync::watch::Sender<u64>>,
    /// The live schema's keyring: the rebuild opens personal members as the projector does.
    keys: Option<Arc<crate::privacy::Keyring>>,
}

impl<'a> Builder<'a> {
    /// A builder into the schema of `spool`, from the rebuild's checkpoints on, with `source`
    /// started (it reads until `stop`).
    async fn start(
        config: &Config,
        opts: &Options,
        spool: &PgPool,
        source: Source,
        stop: Arc<AtomicBool>,
        progress: Option<&'a tokio::sync::watch::Sender<u64>>,
        keys: Option<Arc<crate::privacy::Keyring>>,
    ) -> anyhow::Result<Builder<'a>> {
        let (projection, rules) = schema::projection_of(config);
        let topic = config.kafka.topic.clone();
        let positions = schema::checkpoints(spool, None, &projection, &topic)
            .await
            .context("reading the rebuild's checkpoints")?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let low = start_reading(config, opts.batch, source, &positions, tx, stop).await?;
        Ok(Builder {
            keys,
            pool: spool.clone(),
            projection,
            rules,
            batch: opts.batch,
            workers: opts.workers.max(1),
            caches: (0..opts.workers.max(1))
                .map(|_| Cache::new(opts.cache_sessions))
                .collect(),
            relaxed: opts.fast,
            // Offsets below the log start are gone (retention): the rebuild starts at the log
            // start.
            floors: low
                .iter()
                .map(|(&p, &low)| (TopicPartition::new(topic.clone(), p), low))
                .collect(),
            topic,
            positions,
            pending: BTreeMap::new(),
            rx,
            applied: 0,
            bar: opts.progress_bar.then(progress_bar),
            progress,
        })
    }

    fn reached(&self, p: i32, target: i64) -> bool {
        self.positions.get(&p).copied().unwrap_or(0) >= target
            || self
                .pending
                .get(&p)
                .and_then(VecDeque::front)
                .is_some_and(|m| m.offset >= target)
    }

    fn distance(&self, target: &BTreeMap<i32, i64>) -> u64 {
        target
            .iter()
            .map(|(p, t)| (t - self.positions.get(p).copied().unwrap_or(0)).max(0) as u64)
            .sum()
    }

    /// Applies everything below `target`.
    async fn advance(&mut self, target: &BTreeMap<i32, i64>) -> anyhow::Result<()> {
        if let Some(b) = &self.bar {
            b.set_length(target.values().map(|&t| t.max(0) as u64).sum());
        }
        loop {
            // Take what is already read, up to a batch per worker.
            let want = self.batch * self.workers;
            while self.applicable(target) < want {
                match self.rx.try_recv() {
                    Ok(super::log::Chunk::Messages(msgs)) => self.stash(msgs),
                    Ok(super::log::Chunk::Done) => {}
                    Err(_) => break,
                }
            }
            // Partitions are independent (the fold gives the same tables whichever partition
            // goes first), so each worker takes its own partitions, in their offset order.
            let mut batches: Vec<Vec<LogMessage>> = vec![Vec::new(); self.workers];
            let mut caches = std::mem::take(&mut self.caches);
            for (p, q) in self.pending.iter_mut() {
                let t = target.get(p).copied().unwrap_or(0);
                let batch = &mut batches[crate::projector::lane_of(*p, self.workers)];
                while batch.len() < self.batch && q.front().is_some_and(|m| m.offset < t) {
                    batch.extend(q.pop_front());
                }
            }
            if batches.iter().any(|b| !b.is_empty()) {
                let applied = futures::future::try_join_all(
                    batches
                        .iter()
                        .zip(caches.iter_mut())
                        .filter(|(b, _)| !b.is_empty())
                        .map(|(batch, cache)| {
                            schema::apply(
                                &self.pool,
                                &self.projection,
                                &self.rules,
                                batch,
                                &self.floors,
                                self.relaxed,
                                cache,
                                self.keys.as_deref(),
                            )
                        }),
                )
                .await;
                self.caches = caches;
                let outcomes = applied?;
                for o in &outcomes {
                    for next in &o.advanced {
                        self.positions.insert(next.partition, next.offset);
                    }
                }
                self.applied += batches.iter().map(|b| b.len() as u64).sum::<u64>();
                let done: u64 = self.positions.values().map(|&o| o.max(0) as u64).sum();
                if let Some(b) = &self.bar {
                    b.set_position(done);
                }
                if let Some(tx) = self.progress {
                    let _ = tx.send(done);
                }
                continue;
            }
            self.caches = caches;
            if target.iter().all(|(&p, &t)| self.reached(p, t)) {
                return Ok(());
            }
            match self.rx.recv().await {
                Some(super::log::Chunk::Messages(msgs)) => self.stash(msgs),
                Some(super::log::Chunk::Done) => {}
                None => bail!("the log reader stopped"),
            }
        }
    }

    fn stash(&mut self, msgs: Vec<LogMessage>) {
        for m in msgs {
            if m.topic == self.topic {
                self.pending.entry(m.partition).or_default().push_back(m);
            }
        }
    }

    /// Messages read and below the target.
    fn applicable(&self, target: &BTreeMap<i32, i64>) -> usize {
        self.pending
            .iter()
            .map(|(p, q)| {
                let t = target.get(p).copied().unwrap_or(0);
                q.iter().take_while(|m| m.offset < t).count()
            })
            .sum()
    }
}

/// Where a rebuild reads the log.
pub enum Source {
    /// The events topic (`kafka.topic`).
    Kafka,
    /// A log in memory, as the consumer would hand it over (benchmarks: the database side
    /// without the broker). Messages must carry `kafka.topic` and be in offset order per partition.
    Memory(Arc<Vec<LogMessage>>),
}

/// Rebuilds from the events topic; `progress` (if given) receives the rebuilt position (sum of
/// checkpoints) after every batch, so callers can wait for it.
pub async fn rebuild(
    config: &Config,
    pool: &PgPool,
    opts: &Options,
    progress: Option<&tokio::sync::watch::Sender<u64>>,
) -> anyhow::Result<Report> {
    rebuild_from(config, pool, opts, progress, Source::Kafka).await
}

/// [`rebuild`] from any [`Source`].
pub async fn rebuild_from(
    config: &Config,
    pool: &PgPool,
    opts: &Options,
    progress: Option<&tokio::sync::watch::Sender<u64>>,
    source: Source,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let live = live_schema(pool).await?;
    let target_schema = choose_schema(pool, opts.schema.as_deref()).await?;
    schema::check_name(&target_schema)?;
    if target_schema == live {
        bail!("cannot rebuild into the live schema {live}");
    }
    let spool = schema::prepare(&config.database, pool, &target_schema).await?;
    let deferred = if opts.fast {
        schema::defer_indexes(pool, &target_schema).await?
    } else {
        0
    };
    tracing::info!(schema = %target_schema, deferred, "building; reader-only indexes deferred");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let keys = crate::privacy::Keyring::from_config(config)?;
    let mut b = Builder::start(config, opts, &spool, source, stop, progress, keys).await?;

    // Chase the live checkpoints until close.
    loop {
        let target = schema::checkpoints(pool, Some(&live), &b.projection, &b.topic).await?;
        if b.distance(&target) <= opts.lock_distance {
            break;
        }
        b.advance(&target).await?;
    }
    let mut phases = vec![("build", started.elapsed().as_secs_f64())];
    // Close to the live position: build the deferred indexes before the last catch-up.
    let t = Instant::now();
    let restored = schema::restore_indexes(pool, &target_schema).await?;
    phases.push(("indexes", t.elapsed().as_secs_f64()));
    tracing::info!(
        restored,
        seconds = t.elapsed().as_secs_f64(),
        "deferred indexes built"
    );
    let mut report = Report {
        schema: target_schema.clone(),
        old_schema: None,
        dropped_old: false,
        messages: 0,
        seconds: 0.0,
        swap_seconds: 0.0,
        phases: vec![],
        checkpoints: BTreeMap::new(),
        comparison: vec![],
    };
    if !opts.swap {
        let target = schema::checkpoints(pool, Some(&live), &b.projection, &b.topic).await?;
        b.advance(&target).await?;
    } else {
        let swapped = swap_retrying(pool, &live, &target_schema, &mut b).await?;
        report.swap_seconds = swapped.held;
        phases.push(("swap", swapped.held));
        phases.push(("compare", swapped.compared));
        report.old_schema = Some(swapped.old);
        report.comparison = swapped.comparison;
    }
    if let Some(bar) = &b.bar {
        bar.finish_and_clear();
    }
    report.messages = b.applied;
    report.checkpoints = b.positions.clone();
    report.seconds = started.elapsed().as_secs_f64();
    drop(b);
    spool.close().await;
    let t = Instant::now();
    drop_schemas(pool, &mut report, opts.drop_old).await?;
    phases.push(("drop", t.elapsed().as_secs_f64()));
    report.phases = phases;
    Ok(report)
}

/// Starts reading `source` from `positions` (the rebuild's checkpoints) into `tx`, in chunks of
/// `batch`, until `stop`; returns where each partition's log starts.
async fn start_reading(
    config: &Config,
    batch: usize,
    source: Source,
    positions: &BTreeMap<i32, i64>,
    tx: tokio::sync::mpsc::Sender<super::log::Chunk>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    match source {
        Source::Kafka => {
            let partitions = super::log::partitions(&config.kafka).await?;
            let marks = super::log::watermarks(&config.kafka, &partitions).await?;
            let ranges: Vec<super::log::Range> = partitions
                .iter()
                .map(|&p| super::log::Range {
                    partition: p,
                    start: positions.get(&p).copied().unwrap_or(0).max(marks[&p].0),
                    end: None,
                })
                .collect();
            let _reader = super::log::spawn_reader(&config.kafka, ranges, batch, tx, stop);
            Ok(marks.iter().map(|(&p, &(low, _))| (p, low)).collect())
        }
        Source::Memory(log) => {
            let low = log.iter().fold(BTreeMap::new(), |mut m, x| {
                let e: &mut i64 = m.entry(x.partition).or_insert(x.offset);
                *e = (*e).min(x.offset);
                m
            });
            let from = positions.clone();
            tokio::spawn(async move {
                let mut chunk = Vec::with_capacity(batch);
                for m in log.iter() {
                    if m.offset >= from.get(&m.partition).copied().unwrap_or(0) {
                        chunk.push(m.clone());
                    }
                    if chunk.len() >= batch {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
                        if tx.send(super::log::Chunk::Messages(full)).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(super::log::Chunk::Messages(chunk)).await;
                // Stay open like a followed log.
                tx.closed().await;
            });
            Ok(low)
        }
    }
}

/// The rebuild's progress bar (on a terminal).
fn progress_bar() -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebuild [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// [`swap`], again after a lock conflict (at most five attempts).
async fn swap_retrying(
    pool: &PgPool,
    live: &str,
    rebuilt: &str,
    b: &mut Builder<'_>,
) -> anyhow::Result<Swapped> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match swap(pool, live, rebuilt, b).await {
            Ok(swapped) => return Ok(swapped),
            Err(e) if attempt < 5 && is_lock_conflict(&e) => {
                tracing::warn!(error = %format!("{e:#}"), "swap: lock conflict; retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

/// After a swap: drops what is left of the rebuild schema (not projection data: migration
/// history) and, with `drop_old`, the replaced tables. Nothing without a swap.
async fn drop_schemas(pool: &PgPool, report: &mut Report, drop_old: bool) -> anyhow::Result<()> {
    let Some(old) = &report.old_schema else {
        return Ok(());
    };
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        schema::ident(&report.schema)
    ))
    .execute(pool)
    .await?;
    if drop_old {
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            schema::ident(old)
        ))
        .execute(pool)
        .await?;
        report.dropped_old = true;
    }
    Ok(())
}

fn is_lock_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|c| c == "40P01" || c == "55P03")
    })
}

/// One object that moves with the projection tables.
#[derive(Debug, Clone)]
struct Movable {
    routine: bool,
    oid: sqlx::postgres::types::Oid,
    name: String,
    kind: String,
}

/// The projection tables of `schema` and every view and function depending on them (directly,
/// through their row types, or through each other). Errors when a dependent object lives in
/// another schema (it would silently keep pointing at the old tables).
async fn movables(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
) -> anyhow::Result<Vec<Movable>> {
    let rows: Vec<(bool, sqlx::postgres::types::Oid, String, String, bool)> = sqlx::query_as(
        "WITH RECURSIVE objs(classid, objid) AS (
            SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c
            WHERE c.relnamespace = $1::text::regnamespace AND c.relname = ANY($2)
          UNION
            SELECT CASE WHEN d.classid = 'pg_rewrite'::regclass THEN 'pg_class'::regclass::oid ELSE d.classid END,
                   CASE WHEN d.classid = 'pg_rewrite'::regclass THEN r.ev_class ELSE d.objid END
            FROM objs o
            LEFT JOIN pg_class oc ON o.classid = 'pg_class'::regclass AND oc.oid = o.objid
            JOIN pg_depend d ON d.deptype = 'n'
                 AND ((d.refclassid = o.classid AND d.refobjid = o.objid)
                      OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = oc.reltype))
            LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
            WHERE d.classid IN ('pg_rewrite'::regclass, 'pg_proc'::regclass)
        )
        SELECT o.classid = 'pg_proc'::regclass, o.objid,
               coalesce(c.relname, p.proname)::text, coalesce(c.relkind::text, 'f'),
               coalesce(c.relnamespace, p.pronamespace) = $1::text::regnamespace
        FROM objs o
        LEFT JOIN pg_class c ON o.classid = 'pg_class'::regclass AND c.oid = o.objid
        LEFT JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND p.oid = o.objid
        ORDER BY 1, 3",
    )
    .bind(schema)
    .bind(PROJECTION_TABLES)
    .fetch_all(&mut **tx)
    .await
    .with_context(|| format!("listing the projection objects of {schema}"))?;
    let mut out = vec![];
    for (routine, oid, name, kind, here) in rows {
        if !here {
            bail!("{name} depends on the projection tables of {schema} but lives in another schema: it would keep pointing at the old tables; move or drop it first");
        }
        out.push(Movable {
            routine,
            oid,
            name,
            kind,
        });
    }
    let found = out
        .iter()
        .filter(|m| !m.routine && (m.kind == "r" || m.kind == "p"))
        .count();
    if found != PROJECTION_TABLES.len() {
        bail!(
            "schema {schema} holds {found} of the {} projection tables",
            PROJECTION_TABLES.len()
        );
    }
    Ok(out)
}

async fn move_all(
    tx: &mut Transaction<'_, Postgres>,
    objects: &[Movable],
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    for m in objects {
        let sql = if m.routine {
            // Qualified by the search_path of the swap (pg_catalog only).
            let sig: String = sqlx::query_scalar("SELECT $1::regprocedure::text")
                .bind(m.oid)
                .fetch_one(&mut **tx)
                .await?;
            format!("ALTER ROUTINE {sig} SET SCHEMA {}", schema::ident(to))
        } else {
            let what = match m.kind.as_str() {
                "v" => "VIEW",
                "m" => "MATERIALIZED VIEW",
                "S" => "SEQUENCE",
                "f" => "FOREIGN TABLE",
                _ => "TABLE",
            };
            format!(
                "ALTER {what} {} SET SCHEMA {}",
                schema::qualified(from, &m.name),
                schema::ident(to)
            )
        };
        sqlx::query(&sql)
            .execute(&mut **tx)
            .await
            .with_context(|| sql.clone())?;
    }
    Ok(())
}

/// What a swap did.
struct Swapped {
    /// Where the replaced live tables went.
    old: String,
    /// Old vs new per table, at the swap.
    comparison: Vec<Comparison>,
    /// Seconds the live workers were held.
    held: f64,
    /// Seconds the comparison took.
    compared: f64,
}

/// The swap transaction, then the comparison of the old and the new tables as they were at the
/// swap.
async fn swap(
    pool: &PgPool,
    live: &str,
    rebuilt: &str,
    b: &mut Builder<'_>,
) -> anyhow::Result<Swapped> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '30s'")
        .execute(&mut *tx)
        .await?;
    catch_up_locked(pool, &mut tx, live, rebuilt, b).await?;

    // Both schemas now stand at the same checkpoints and neither moves until the commit: a
    // snapshot taken here sees exactly that state. The comparison reads it after the swap, so
    // the live workers do not wait for the hashing. The snapshot must not touch the tables
    // before the commit (it would hold a lock the moves wait for).
    let (snapshot, snapshot_id) = export_snapshot(pool).await?;

    let old = move_tables(&mut tx, live, rebuilt).await?;
    tx.commit().await?;
    let held = started.elapsed().as_secs_f64();
    tracing::info!(%old, new = %rebuilt, held, "swapped the rebuilt projection in");
    let started = Instant::now();
    let comparison = compare(pool, snapshot, &snapshot_id, &old, live).await?;
    Ok(Swapped {
        old,
        comparison,
        held,
        compared: started.elapsed().as_secs_f64(),
    })
}

/// In the swap transaction `tx`: locks the live checkpoint table (the live workers wait from
/// here, as their batches lock checkpoint rows; readers do not) and applies the rebuild up to
/// exactly those checkpoints.
async fn catch_up_locked(
    pool: &PgPool,
    tx: &mut Transaction<'_, Postgres>,
    live: &str,
    rebuilt: &str,
    b: &mut Builder<'_>,
) -> anyhow::Result<()> {
    let checkpoints = schema::qualified(live, "projection_checkpoints");
    sqlx::query(&format!("LOCK TABLE {checkpoints} IN EXCLUSIVE MODE"))
        .execute(&mut **tx)
        .await?;
    let rows: Vec<(i32, i64)> = sqlx::query_as(&format!(
        "SELECT partition, next_offset FROM {checkpoints} WHERE projection = $1 AND topic = $2"
    ))
    .bind(&b.projection)
    .bind(&b.topic)
    .fetch_all(&mut **tx)
    .await?;
    let target: BTreeMap<i32, i64> = rows.into_iter().collect();
    b.advance(&target).await?;
    let rebuilt_at = schema::checkpoints(pool, Some(rebuilt), &b.projection, &b.topic).await?;
    let behind: Vec<_> = target
        .iter()
        .filter(|(p, t)| rebuilt_at.get(p).copied().unwrap_or(0) < **t)
        .collect();
    if !behind.is_empty() {
        bail!("rebuild did not reach the live checkpoints: {behind:?}");
    }
    Ok(())
}

/// A read-only snapshot of the database as it is now, and its id (exported, so that the old and
/// the new tables can be hashed side by side, on two connections that see the same snapshot).
async fn export_snapshot(
    pool: &PgPool,
) -> anyhow::Result<(Transaction<'static, Postgres>, String)> {
    let mut snapshot = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await?;
    let snapshot_id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *snapshot)
        .await?;
    if !snapshot_id
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        bail!("unexpected snapshot id {snapshot_id:?}");
    }
    Ok((snapshot, snapshot_id))
}

/// In the swap transaction `tx`: moves the projection tables (and what depends on them) from
/// the live schema to a new `authtrail_old_<ts>` and from `rebuilt` to the live schema, and
/// gives the projections a new epoch. Returns the old schema's name.
async fn move_tables(
    tx: &mut Transaction<'_, Postgres>,
    live: &str,
    rebuilt: &str,
) -> anyhow::Result<String> {
    // Names print qualified from here on.
    sqlx::query("SET LOCAL search_path TO pg_catalog")
        .execute(&mut **tx)
        .await?;
    let old_objects = movables(tx, live).await?;
    let new_objects = movables(tx, rebuilt).await?;
    let names = |v: &[Movable]| {
        v.iter()
            .map(|m| (m.routine, m.name.clone()))
            .collect::<Vec<_>>()
    };
    if names(&old_objects) != names(&new_objects) {
        bail!(
            "the live schema and the rebuild differ in their objects: {:?} vs {:?}",
            names(&old_objects),
            names(&new_objects)
        );
    }
    let old = format!(
        "authtrail_old_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f")
    );
    // Batches built before a person was forgotten (while the rebuild ran) hold their personal
    // data: purge those people from the rebuild as `forget` purged them from the live tables.
    // The rebuild schema's migrations ran before its first batch.
    let built_since: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(&format!(
        "SELECT min(installed_on) FROM {}",
        schema::qualified(rebuilt, "_sqlx_migrations")
    ))
    .fetch_one(&mut **tx)
    .await?;
    if let Some(since) = built_since {
        for subject in crate::privacy::forget::forgotten_since(tx, live, since).await? {
            crate::privacy::forget::purge(tx, rebuilt, &subject).await?;
            tracing::info!("rebuild: purged a subject forgotten while it was built");
        }
    }
    sqlx::query(&format!("CREATE SCHEMA {}", schema::ident(&old)))
        .execute(&mut **tx)
        .await?;
    move_all(tx, &old_objects, live, &old).await?;
    move_all(tx, &new_objects, rebuilt, live).await?;
    // The live workers' state caches hold the old tables' rows: a new epoch makes them start
    // over on the rebuilt ones.
    sqlx::query(&format!(
        "INSERT INTO {} (projection, epoch)
         SELECT projection, gen_random_uuid()
         FROM (SELECT DISTINCT projection FROM {}) p
         ON CONFLICT (projection) DO UPDATE SET epoch = EXCLUDED.epoch",
        schema::qualified(live, "projection_epochs"),
        schema::qualified(live, "projection_checkpoints")
    ))
    .execute(&mut **tx)
    .await?;
    Ok(old)
}

/// Row counts and content hashes of the old tables (schema `old`) against the new ones (the
/// live schema) as of `snapshot` (exported as `snapshot_id`), after the swap committed.
async fn compare(
    pool: &PgPool,
    mut snapshot: Transaction<'static, Postgres>,
    snapshot_id: &str,
    old: &str,
    live: &str,
) -> anyhow::Result<Vec<Comparison>> {
    // Names resolve in today's catalog (old tables in `old`, rebuilt ones in the live schema),
    // rows as of the snapshot: both at the swap's checkpoints.
    let mut twin = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *twin)
        .await?;
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'"))
        .execute(&mut *twin)
        .await?;
    let (old_hashes, new_hashes) = tokio::try_join!(
        schema::table_hashes(&mut snapshot, old),
        schema::table_hashes(&mut twin, live)
    )?;
    twin.rollback().await?;
    snapshot.rollback().await?;
    Ok(old_hashes
        .iter()
        .map(|(t, (or, oh))| {
            let (nr, nh) = new_hashes.get(t).cloned().unwrap_or_default();
            Comparison {
                table: t.clone(),
                old_rows: *or,
                new_rows: nr,
                old_hash: oh.clone(),
                new_hash: nh,
            }
        })
        .collect())
}

struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
