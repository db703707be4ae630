//! Helpers for projection tests: run the projector (in-process or as a process), wait until it
//! has caught up with the log, and read the tables back for comparison.

use super::{TestDb, TestTopic};
use authtrail::config::Config;
use authtrail::projector::{Projector, NOTIFY_CHANNEL};
use authtrail_events::Event;
use authtrail_projections::gen::StreamGen;
use authtrail_projections::memory::Tables;
use authtrail_projections::rows::{
    LoginAttempt, Review, SecurityEvent, Session, StatCounts, StatKey, TrustedDevice, UserProfile,
};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `n` events of `users` users from the seeded generator, starting 2026-11-01.
pub fn stream(seed: u64, users: usize, n: usize) -> Vec<Event> {
    StreamGen::new(seed, users, "2026-11-01T00:00:00Z".parse().unwrap()).take(n)
}

/// A database of the test's own, migrated.
pub async fn migrated() -> (TestDb, PgPool) {
    let db = TestDb::new().await;
    let pool = authtrail::db::migrate(&db.config).await.unwrap();
    (db, pool)
}

/// Appends `events` to the test's topic, in chunks.
pub async fn publish(topic: &TestTopic, events: &[Event]) {
    let publisher = topic.publisher();
    for chunk in events.chunks(2000) {
        publisher.publish_all(chunk).await.unwrap();
    }
}

/// The tables the reference model (in memory) folds `events` into.
pub fn reference(events: &[Event], rules: &authtrail_projections::Rules) -> Tables {
    let mut t = Tables::default();
    t.apply_batch(rules, events);
    t
}

/// Waits until the checkpoints of `topic` add up to `total`; when they do not in time, panics
/// with the checkpoints and the tails of the workers' logs.
pub async fn wait_caught_up_or_show(
    pool: &PgPool,
    topic: &str,
    total: i64,
    timeout: Duration,
    workers: &[&Worker],
) {
    let caught_up = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(wait_caught_up(
        pool, topic, total, timeout,
    )))
    .await;
    if caught_up.is_err() {
        let logs: Vec<String> = workers
            .iter()
            .map(|w| format!("{}:\n{}", w.log.display(), w.tail(30)))
            .collect();
        panic!(
            "not caught up; checkpoints {:?}\n{}",
            checkpoints(pool, topic).await,
            logs.join("\n")
        );
    }
}

/// A configuration pointing at the test's topic and database.
pub fn config(topic: &TestTopic, db: &TestDb, group: &str) -> Config {
    let mut c = Config {
        kafka: topic.config.clone(),
        database: db.config.clone(),
        ..Config::default()
    };
    c.projector.group_id = group.to_owned();
    c
}

/// Sum of the checkpoints of `topic`: how many messages the projection has passed.
pub async fn checkpoint_total(pool: &PgPool, topic: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM projection_checkpoints WHERE topic = $1",
    )
    .bind(topic)
    .fetch_one(pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

/// Waits (woken by the projector's NOTIFY, no polling sleeps) until the checkpoints of `topic`
/// add up to `total`.
pub async fn wait_caught_up(pool: &PgPool, topic: &str, total: i64, timeout: Duration) {
    let done = wait_checkpoints(pool, topic, timeout, |done| done >= total).await;
    assert_eq!(
        done, total,
        "checkpoints passed more messages than the topic holds"
    );
}

/// Waits until the checkpoints of `topic` add up to more than `above`; returns the sum.
pub async fn wait_beyond(pool: &PgPool, topic: &str, above: i64, timeout: Duration) -> i64 {
    wait_checkpoints(pool, topic, timeout, |done| done > above).await
}

async fn wait_checkpoints(
    pool: &PgPool,
    topic: &str,
    timeout: Duration,
    ok: impl Fn(i64) -> bool,
) -> i64 {
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        let done = checkpoint_total(pool, topic).await;
        if ok(done) {
            return done;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "projection of {topic} stood at {done} messages after {timeout:?}"
        );
        // A notification, or re-check at least every second.
        let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), listener.recv()).await;
    }
}

/// Runs an in-process projector until the topic's `total` messages are projected.
pub async fn project_all(config: &Config, pool: &PgPool, total: i64) {
    let projector = Projector::new(config.clone(), pool.clone()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(projector.run(async move {
        let _ = rx.await;
    }));
    wait_caught_up(pool, &config.kafka.topic, total, Duration::from_secs(180)).await;
    let _ = tx.send(());
    worker.await.unwrap().unwrap();
}

/// The read tables as the reference model's values.
pub async fn export(pool: &PgPool) -> Tables {
    let mut t = Tables::default();
    let sessions: Vec<Json<Session>> = sqlx::query_scalar("SELECT row_to_json(s) FROM sessions s")
        .fetch_all(pool)
        .await
        .unwrap();
    t.sessions = sessions
        .into_iter()
        .map(|s| (s.0.session_id.clone(), s.0))
        .collect();
    let history: Vec<Json<LoginAttempt>> =
        sqlx::query_scalar("SELECT row_to_json(h) FROM login_history h")
            .fetch_all(pool)
            .await
            .unwrap();
    t.login_history = history.into_iter().map(|h| (h.0.id, h.0)).collect();
    let events: Vec<Json<SecurityEvent>> =
        sqlx::query_scalar("SELECT row_to_json(e) FROM security_events e")
            .fetch_all(pool)
            .await
            .unwrap();
    t.security_events = events.into_iter().map(|e| (e.0.id, e.0)).collect();
    let reviews: Vec<Json<Review>> =
        sqlx::query_scalar("SELECT row_to_json(r) FROM security_event_reviews r")
            .fetch_all(pool)
            .await
            .unwrap();
    t.reviews = reviews
        .into_iter()
        .map(|r| (r.0.security_event_id, r.0))
        .collect();
    let devices: Vec<Json<TrustedDevice>> =
        sqlx::query_scalar("SELECT row_to_json(d) FROM trusted_devices d")
            .fetch_all(pool)
            .await
            .unwrap();
    t.devices = devices
        .into_iter()
        .map(|d| ((d.0.user_id.clone(), d.0.device_id.clone()), d.0))
        .collect();
    let profiles: Vec<Json<UserProfile>> =
        sqlx::query_scalar("SELECT row_to_json(p) FROM user_profiles p")
            .fetch_all(pool)
            .await
            .unwrap();
    t.profiles = profiles
        .into_iter()
        .map(|p| (p.0.user_id.clone(), p.0))
        .collect();
    let stats: Vec<(chrono::NaiveDate, String, String, i64, i64, i64)> =
        sqlx::query_as("SELECT day, country_code, device_type, successes, failures, suspicious FROM daily_login_stats")
            .fetch_all(pool)
            .await
            .unwrap();
    t.stats = stats
        .into_iter()
        .map(
            |(day, country_code, device_type, successes, failures, suspicious)| {
                (
                    StatKey {
                        day,
                        country_code,
                        device_type,
                    },
                    StatCounts {
                        successes,
                        failures,
                        suspicious,
                    },
                )
            },
        )
        .collect();
    let signals: Vec<Json<authtrail_projections::detect::Signal>> =
        sqlx::query_scalar("SELECT row_to_json(s) FROM alert_signals s")
            .fetch_all(pool)
            .await
            .unwrap();
    t.signals = signals
        .into_iter()
        .map(|s| (authtrail_projections::memory::signal_key(&s.0), s.0))
        .collect();
    let alerts: Vec<Json<authtrail_projections::detect::Alert>> =
        sqlx::query_scalar("SELECT row_to_json(a) FROM alerts a")
            .fetch_all(pool)
            .await
            .unwrap();
    t.alerts = alerts.into_iter().map(|a| (a.0.id, a.0)).collect();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM processed_events")
        .fetch_all(pool)
        .await
        .unwrap();
    t.processed = ids.into_iter().collect();
    t
}

/// Content hash of every table (columns that record wall-clock time excluded).
pub async fn table_hashes(pool: &PgPool) -> BTreeMap<String, (i64, String)> {
    let mut conn = pool.acquire().await.unwrap();
    authtrail::replay::schema::table_hashes(&mut conn, "public")
        .await
        .unwrap()
}

/// An `authtrail project` process, killed when dropped (a failing test must not leave it
/// running). Its log (RUST_LOG=info) goes to a file, the only view of its assignments.
pub struct Worker {
    child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Worker {
    /// Starts `authtrail project` for `cfg` (topic, database, group, instance id, session
    /// timeout, batch size), logging to `log` (appended).
    pub fn spawn(cfg: &Config, log: &std::path::Path) -> Worker {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let p = &cfg.projector;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("project")
            .env(
                "AUTHTRAIL_PROJECTOR_INSTANCE_ID",
                p.instance_id.clone().unwrap_or_default(),
            )
            .env("AUTHTRAIL_KAFKA_BROKERS", &cfg.kafka.brokers)
            .env("AUTHTRAIL_KAFKA_TOPIC", &cfg.kafka.topic)
            .env(
                "AUTHTRAIL_KAFKA_PARTITIONS",
                cfg.kafka.partitions.to_string(),
            )
            .env("AUTHTRAIL_DATABASE_URL", &cfg.database.url)
            .env("AUTHTRAIL_PROJECTOR_GROUP_ID", &p.group_id)
            .env(
                "AUTHTRAIL_PROJECTOR_SESSION_TIMEOUT_MS",
                p.session_timeout_ms.to_string(),
            )
            .env(
                "AUTHTRAIL_PROJECTOR_BATCH_MAX_MESSAGES",
                p.batch_max_messages.to_string(),
            )
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Worker {
            child,
            log: log.to_owned(),
        }
    }

    /// SIGKILL: no shutdown hook, no flush — the crash the transactions must survive.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Panics (with the log) when the worker exited by itself.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "worker exited by itself ({status}); log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    /// The partitions of the last assignment the worker logged, if any.
    pub fn assigned(&self) -> Option<Vec<i32>> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let line = text.lines().rfind(|l| l.contains("partitions assigned"))?;
        let list = line.split("partitions=[").nth(1)?.split(']').next()?;
        Some(
            list.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
        )
    }

    /// The last `n` lines of its log that are not per-batch lines.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("batch applied"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The projection checkpoints of `topic`, partition by partition (for failure messages).
pub async fn checkpoints(pool: &PgPool, topic: &str) -> Vec<(i32, i64)> {
    sqlx::query_as(
        "SELECT partition, next_offset FROM projection_checkpoints WHERE topic = $1 ORDER BY 1",
    )
    .bind(topic)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}
