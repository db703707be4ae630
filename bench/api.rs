//! Query API latency, beside the same SQL run directly with `pgbench` in the same run, and
//! event→visible latency at a steady publish rate.
//!
//! 1. A fresh database `authtrail_bench_api` is loaded with synthetic read-table rows
//!    (`BENCH_SESSIONS`, default 1 000 000 sessions of `BENCH_SESSIONS / 10` users, a fifth of
//!    them active; `BENCH_HISTORY`, default 10 000 000 login attempts). Loaded with SQL, not
//!    through the projector: projector throughput is `bench/project.rs`'s subject.
//! 2. The API (release build, in this process) serves it; `wrk` loads `GET /api/v1/auth/sessions`
//!    (a random one of 1 000 users' tokens per request) and `POST /api/v1/sessions/introspect`
//!    (a random session id) — requests/s and p50/p99.
//! 3. `pgbench` runs the handlers' SQL with the same connection count: transactions/s and
//!    p50/p99 from its per-transaction log.
//! 4. Event→visible: `login.succeeded` events are published at a steady `BENCH_RATE` (default
//!    2 000/s) for `BENCH_SECONDS` (default 20) to a fresh topic while a projector (in this
//!    process) folds them, once with the default settings and once with the old ones as the
//!    baseline (`BENCH_LATENCY_VARIANTS`, see [`latency_runs`]); an event is visible when the
//!    checkpoint of its partition has passed its offset (rows and checkpoint commit together).
//!    p50/p99 of publish-start → visible, → broker ack, and ack → visible.
//!
//! Needs `wrk` and `pgbench` on PATH. Run: `./dev with cargo bench --bench api`
//! (`BENCH_ONLY_LATENCY=1`: step 4 only; `BENCH_REUSE=1`: keep the loaded database and use it
//! again on the next run when its row counts match, which saves the ~9-minute load;
//! `BENCH_CONNECTIONS=16,2`: the closed-loop connection counts; `BENCH_HTTP_SECONDS=20`: each
//! load's length; `BENCH_SKIP_LATENCY=1`: skip step 4; `BENCH_WARMUP_SECONDS=5`: traffic at the
//! same rate before each measured latency run, not counted, while the broker's JIT warms up;
//! `BENCH_SHOW_BATCHES=1`: the projector's batch-time histogram after each latency run). Step 4 publishes with the CloudEvents
//! header, as the default configuration does, unless `BENCH_CONTENT_TYPE_HEADER=0`.

use authtrail::config::Config;
use chrono::Utc;
use common::env_usize;
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

const SECRET: &str = "bench-only-hs256-secret-at-least-32-bytes!";
/// The `iss` and `aud` the bench server requires (required whenever a JWT key is configured).
const ISSUER: &str = "https://auth.bench";
const AUDIENCE: &str = "authtrail";
/// Closed-loop load: 16 connections saturate the 2-core host (throughput), 2 show latency
/// under light load.
const CONNECTIONS: usize = 16;
const LIGHT: usize = 2;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|c| c.trim().parse().expect("a comma-separated list of numbers"))
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// A token of `sub`; a person's names a session (`auth.require_sid`) the tables do not hold, so
/// each request pays the server's session check (a primary-key lookup, cached for a second)
/// and passes it.
fn token(sub: &str, role: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({"sub": sub, "role": role, "exp": now + 3600, "iat": now,
                            "iss": ISSUER, "aud": AUDIENCE});
    if role != "service" {
        claims["sid"] = json!(format!("bench-{sub}"));
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn load(pool: &PgPool, sessions: usize, history: usize) {
    let users = (sessions / 10).max(1) as i64;
    let started = Instant::now();
    // Each user has 10 sessions, 2 of them active now (opened in the last 20 minutes); the rest
    // opened over the last 30 days and expired or were revoked.
    sqlx::query(
        "INSERT INTO sessions (session_id, user_id, login_method, identifier, device_id, device_name,
            device_type, browser, os, ip, user_agent, country_code, country, city, latitude, longitude,
            created_at, last_activity_at, expires_at, absolute_expires_at, idle_expires_at,
            refresh_count, revoked_at, revoked_reason, revoked_by, ended_at, trusted_device,
            first_event_id, last_event_id)
         SELECT 's-' || i, 'u-' || (i % $2), 'password', 'u-' || (i % $2) || '@example.com',
            'dev-' || (i % 7), 'Chrome on Windows', 'desktop', 'Chrome', 'Windows',
            '81.2.69.' || (i % 250), 'Mozilla/5.0', 'GB', 'United Kingdom', 'London', 51.5, -0.1,
            t, t, t + interval '12 hours', t + interval '12 hours', t + interval '30 minutes',
            0, r, CASE WHEN r IS NULL THEN NULL ELSE 'user_request' END,
            CASE WHEN r IS NULL THEN NULL ELSE 'u-' || (i % $2) END, r, i % 3 = 0,
            gen_random_uuid(), gen_random_uuid()
         FROM (SELECT i,
                 CASE WHEN (i / $2) % 5 = 0 THEN now() - (i % 1200) * interval '1 second'
                      ELSE now() - interval '1 day' - (i % 2592000) * interval '1 second' END AS t
               FROM generate_series(1, $1::bigint) AS i) g,
              LATERAL (SELECT CASE WHEN (i / $2) % 5 <> 0 AND i % 2 = 0 THEN t + interval '1 hour' END AS r) x",
    )
    .bind(sessions as i64)
    .bind(users)
    .execute(pool)
    .await
    .unwrap();
    eprintln!("loaded {sessions} sessions in {:.0?}", started.elapsed());
    let started = Instant::now();
    let chunk = 1_000_000usize;
    let mut done = 0usize;
    while done < history {
        let n = chunk.min(history - done);
        sqlx::query(
            "INSERT INTO login_history (id, user_id, subject_key, identifier, success, login_method,
                failure_reason, device_id, device_name, device_type, browser, os, ip, user_agent,
                country_code, country, city, latitude, longitude, suspicious, session_id, attempted_at)
             SELECT gen_random_uuid(), 'u-' || (i % $3), 'u-' || (i % $3),
                'u-' || (i % $3) || '@example.com', i % 5 <> 0, 'password',
                CASE WHEN i % 5 = 0 THEN 'bad_password' END, 'dev-' || (i % 7), 'Chrome on Windows',
                'desktop', 'Chrome', 'Windows', '81.2.69.' || (i % 250), 'Mozilla/5.0', 'GB',
                'United Kingdom', 'London', 51.5, -0.1, i % 97 = 0,
                CASE WHEN i % 5 <> 0 THEN 's-' || (i % $4 + 1) END,
                now() - (i % 7776000) * interval '1 second'
             FROM generate_series($1::bigint, $2::bigint) AS i",
        )
        .bind(done as i64 + 1)
        .bind((done + n) as i64)
        .bind(users)
        .bind(sessions as i64)
        .execute(pool)
        .await
        .unwrap();
        done += n;
        eprintln!("  login history {done}/{history}");
    }
    eprintln!(
        "loaded {history} login attempts in {:.0?}",
        started.elapsed()
    );
    sqlx::query("VACUUM ANALYZE sessions")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE login_history")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("VACUUM ANALYZE trusted_devices")
        .execute(pool)
        .await
        .unwrap();
}

/// `(requests/s, p50 ms, p99 ms)` from wrk's `--latency` output.
fn parse_wrk(out: &str) -> (f64, f64, f64) {
    let ms = |s: &str| -> f64 {
        let s = s.trim();
        if let Some(v) = s.strip_suffix("us") {
            v.parse::<f64>().unwrap() / 1000.0
        } else if let Some(v) = s.strip_suffix("ms") {
            v.parse().unwrap()
        } else if let Some(v) = s.strip_suffix('s') {
            v.parse::<f64>().unwrap() * 1000.0
        } else {
            f64::NAN
        }
    };
    let mut rps = f64::NAN;
    let mut p50 = f64::NAN;
    let mut p99 = f64::NAN;
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = ms(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = ms(v);
        }
    }
    (rps, p50, p99)
}

fn wrk(url: &str, script: &std::path::Path, connections: usize, seconds: usize) -> (f64, f64, f64) {
    let out = Command::new("wrk")
        .args([
            &format!("-t{}", connections.min(2)),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert!(!text.contains("Non-2xx"), "wrk saw error answers: {text}");
    parse_wrk(&text)
}

/// `(transactions/s, p50 ms, p99 ms)` of a pgbench script, from its per-transaction log.
fn pgbench(
    url: &str,
    script: &str,
    dir: &std::path::Path,
    name: &str,
    connections: usize,
    seconds: usize,
) -> (f64, f64, f64) {
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, script).unwrap();
    let prefix = dir.join(format!("{name}-log"));
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &connections.to_string(),
            "-j",
            &connections.min(2).to_string(),
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&file)
        .arg("-l")
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(url)
        .current_dir(dir)
        .output()
        .expect("pgbench on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let mut lat: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{name}-log"))
        {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(us) = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    lat.push(us / 1000.0);
                }
            }
            let _ = std::fs::remove_file(p);
        }
    }
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "pgbench {name}, {connections} connections: {tps:.0} tps, p50 {:.2} ms, p99 {:.2} ms",
        pct(&lat, 0.50),
        pct(&lat, 0.99)
    );
    (tps, pct(&lat, 0.50), pct(&lat, 0.99))
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn event_to_visible(config: &Config, pool: &PgPool, rate: usize, seconds: usize) -> Visible {
    authtrail::kafka::ensure_topic(&config.kafka).await.unwrap();
    let projector = authtrail::projector::Projector::new(config.clone(), pool.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    let publisher = Arc::new(authtrail::kafka::Publisher::new(&config.kafka).unwrap());
    // Warm up: the group joins and the first batch lands before measuring.
    let warm = authtrail_events::parse_value(login(0)).unwrap();
    let w = publisher.publish(&warm).await.unwrap();
    wait_offset(pool, &config.kafka.topic, w.partition, w.offset).await;

    let total = rate * seconds;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Instant, i32, i64)>();
    let acks = Arc::new(std::sync::Mutex::new(Vec::<f64>::with_capacity(total)));
    let pacer = {
        let publisher = publisher.clone();
        let acks = acks.clone();
        tokio::spawn(async move {
            // Every 5 ms the events that fell due go out in one `publish_all` (at 2 000/s: 10).
            // One call per event, thousands in flight, made Tansu 0.6's idempotence check panic.
            let tick = Duration::from_millis(5);
            let started = Instant::now();
            let mut inflight = Vec::new();
            let mut next = 0usize;
            let mut k = 1u32;
            while next < total {
                tokio::time::sleep_until((started + tick * k).into()).await;
                let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
                k += 1;
                if due <= next {
                    continue;
                }
                let events: Vec<_> = (next..due)
                    .map(|i| authtrail_events::parse_value(login(i + 1)).unwrap())
                    .collect();
                next = due;
                let publisher = publisher.clone();
                let tx = tx.clone();
                let acks = acks.clone();
                inflight.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let appended = publisher.publish_all(&events).await.unwrap();
                    let acked = Instant::now();
                    let ack = (acked - sent).as_secs_f64() * 1000.0;
                    acks.lock()
                        .unwrap()
                        .extend(std::iter::repeat_n(ack, appended.len()));
                    for a in appended {
                        let _ = tx.send((sent, acked, a.partition, a.offset));
                    }
                }));
            }
            for f in inflight {
                f.await.unwrap();
            }
        })
    };
    // Visibility: after each NOTIFY, read the checkpoints; every event below them is visible.
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener
        .listen(authtrail::projector::NOTIFY_CHANNEL)
        .await
        .unwrap();
    let mut waiting: Vec<(Instant, Instant, i32, i64)> = Vec::new();
    let mut latencies: Vec<f64> = Vec::with_capacity(total);
    let mut after_ack: Vec<f64> = Vec::with_capacity(total);
    let deadline = Instant::now() + Duration::from_secs(seconds as u64 + 120);
    while latencies.len() < total && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(200), listener.recv()).await;
        let now = Instant::now();
        while let Ok(x) = rx.try_recv() {
            waiting.push(x);
        }
        let cps: BTreeMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
            "SELECT partition, next_offset FROM projection_checkpoints WHERE topic = $1",
        )
        .bind(&config.kafka.topic)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        waiting.retain(|(sent, acked, p, o)| {
            if cps.get(p).is_some_and(|next| next > o) {
                latencies.push((now - *sent).as_secs_f64() * 1000.0);
                after_ack.push(now.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
                false
            } else {
                true
            }
        });
    }
    pacer.await.unwrap();
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    latencies.sort_by(f64::total_cmp);
    after_ack.sort_by(f64::total_cmp);
    let mut acks = acks.lock().unwrap().clone();
    acks.sort_by(f64::total_cmp);
    Visible {
        events: latencies.len(),
        p50: pct(&latencies, 0.50),
        p99: pct(&latencies, 0.99),
        ack_p50: pct(&acks, 0.50),
        ack_p99: pct(&acks, 0.99),
        after_ack_p50: pct(&after_ack, 0.50),
        after_ack_p99: pct(&after_ack, 0.99),
    }
}

/// Milliseconds from publishing to visible, to the broker's acknowledgement, and from that
/// acknowledgement to visible (the consumer's and the projector's share).
struct Visible {
    events: usize,
    p50: f64,
    p99: f64,
    ack_p50: f64,
    ack_p99: f64,
    after_ack_p50: f64,
    after_ack_p99: f64,
}

/// Event→visible with each of `BENCH_LATENCY_VARIANTS` (default `defaults,500:50:5`, the old
/// defaults as the baseline): `defaults` (the configured ones) or
/// `FETCH_WAIT_MS:BATCH_WAIT_MS[:LINGER_MS[:LANES]]` (`projector.fetch_wait_ms`, how long the
/// broker may hold a fetch; `projector.batch_max_wait_ms`; `kafka.linger_ms`, how long the
/// publisher gathers events into one batch per partition; `projector.lanes`). Each run on a fresh topic and consumer group.
/// The publisher sets the CloudEvents header unless `BENCH_CONTENT_TYPE_HEADER=0`.
async fn latency_runs(config: &Config, pool: &PgPool, rate: usize, seconds: usize) {
    let variants =
        std::env::var("BENCH_LATENCY_VARIANTS").unwrap_or_else(|_| "defaults,500:50:5".into());
    let variants = variants.split(',').map(|v| {
        if v.trim() == "defaults" {
            return None;
        }
        let mut parts = v
            .trim()
            .split(':')
            .map(|n| n.parse::<u64>().expect("a number of ms"));
        let mut next = || parts.next();
        let (fetch, batch) = (next(), next());
        let (Some(fetch), Some(batch)) = (fetch, batch) else {
            panic!(
                "BENCH_LATENCY_VARIANTS: FETCH_WAIT_MS:BATCH_WAIT_MS[:LINGER_MS[:LANES]], not {v}"
            );
        };
        Some((fetch, batch, next(), next()))
    });
    for variant in variants {
        let mut c = config.clone();
        c.kafka.topic = format!("bench-api-{}", uuid::Uuid::new_v4().simple());
        c.projector.group_id = format!("bench-api-{}", uuid::Uuid::new_v4().simple());
        if let Some((fetch, batch, linger, lanes)) = variant {
            c.projector.fetch_wait_ms = fetch;
            c.projector.batch_max_wait_ms = batch;
            c.kafka.linger_ms = linger.unwrap_or(c.kafka.linger_ms);
            c.projector.lanes = lanes.map_or(c.projector.lanes, |l| l as usize);
        }
        let what = format!(
            "{}: fetch_wait_ms={}, batch_max_wait_ms={}, linger_ms={}, lanes={}, content-type header {}",
            if variant.is_some() { "set" } else { "defaults" },
            c.projector.fetch_wait_ms,
            c.projector.batch_max_wait_ms,
            c.kafka.linger_ms,
            c.projector.lanes,
            if c.kafka.content_type_header {
                "on"
            } else {
                "off"
            }
        );
        // The broker's JIT compiles its hot paths in the first seconds of traffic: a warm-up
        // at the same rate on the same topic goes first, and is not measured.
        let warmup = env_usize("BENCH_WARMUP_SECONDS", 5);
        if warmup > 0 {
            let w = event_to_visible(&c, pool, rate, warmup).await;
            eprintln!(
                "  warm-up ({warmup} s, not counted): p50 {:.1} ms, p99 {:.1} ms",
                w.p50, w.p99
            );
        }
        let v = event_to_visible(&c, pool, rate, seconds).await;
        if std::env::var_os("BENCH_SHOW_BATCHES").is_some() {
            // Where the projector's time went, batch by batch (the warm-up's batches included).
            for line in authtrail::telemetry::metrics().render().lines() {
                if line.starts_with("authtrail_projector_batch_seconds")
                    || line.starts_with("authtrail_projector_phase_seconds_sum")
                    || line.starts_with("authtrail_projector_phase_seconds_count")
                {
                    println!("  {line}");
                }
            }
        }
        println!(
            "\nevent → visible at {rate} events/s for {seconds} s ({what}): {} events, p50 {:.1} ms, p99 {:.1} ms (publish → broker ack: p50 {:.1} ms, p99 {:.1} ms; broker ack → visible: p50 {:.1} ms, p99 {:.1} ms)",
            v.events, v.p50, v.p99, v.ack_p50, v.ack_p99, v.after_ack_p50, v.after_ack_p99
        );
    }
}

async fn wait_offset(pool: &PgPool, topic: &str, partition: i32, offset: i64) {
    loop {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM projection_checkpoints WHERE topic = $1 AND partition = $2",
        )
        .bind(topic)
        .bind(partition)
        .fetch_optional(pool)
        .await
        .unwrap();
        if next.is_some_and(|n| n > offset) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn login(i: usize) -> serde_json::Value {
    let now = Utc::now();
    json!({
        "specversion": "1.0", "id": uuid::Uuid::new_v4(), "source": "/bench", "type": "login.succeeded",
        "time": now.to_rfc3339(), "subject": format!("lat-{}", i % 5000), "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": {"session_id": format!("lat-s-{i}"), "login_method": "password",
                 "expires_at": (now + chrono::Duration::hours(12)).to_rfc3339(), "ip": "81.2.69.142"}
    })
}

#[tokio::main]
async fn main() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench api");
    let brokers = std::env::var("AUTHTRAIL_KAFKA_BROKERS").expect("AUTHTRAIL_KAFKA_BROKERS");
    let sessions = env_usize("BENCH_SESSIONS", 1_000_000);
    let history = env_usize("BENCH_HISTORY", 10_000_000);
    let rate = env_usize("BENCH_RATE", 2_000);
    let seconds = env_usize("BENCH_SECONDS", 20);
    let name = "authtrail_bench_api";
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let reuse = std::env::var_os("BENCH_REUSE").is_some();
    let loaded = reuse && loaded(&url).await == Some((sessions as i64, history as i64));
    if !loaded {
        drop_database(&admin, name).await;
    }
    let config = bench_config(&url, brokers);
    let pool = authtrail::db::migrate(&config.database).await.unwrap();
    let _ = authtrail::telemetry::metrics();
    if std::env::var_os("BENCH_ONLY_LATENCY").is_none() {
        if loaded {
            eprintln!(
                "reusing {name}: {sessions} sessions, {history} login attempts (BENCH_REUSE)"
            );
        } else {
            load_and_mark(&pool, sessions, history).await;
        }
        read_benchmarks(&config, &url, sessions, history).await;
    }
    if std::env::var_os("BENCH_SKIP_LATENCY").is_none() {
        latency_runs(&config, &pool, rate, seconds).await;
    }
    pool.close().await;
    if !reuse {
        drop_database(&admin, name).await;
    }
}

/// The configuration every part of this benchmark starts from.
fn bench_config(url: &str, brokers: String) -> Config {
    let mut config = Config::default();
    config.database.url = url.to_owned();
    config.database.max_connections = CONNECTIONS as u32;
    config.kafka.brokers = brokers;
    config.kafka.topic = format!("bench-api-{}", uuid::Uuid::new_v4().simple());
    config.kafka.partitions = 12;
    config.kafka.content_type_header = common::content_type_header();
    config.projector.group_id = format!("bench-api-{}", uuid::Uuid::new_v4().simple());
    config.auth.jwt_hs256_secret = SECRET.into();
    config.auth.jwt_issuer = Some(ISSUER.into());
    config.auth.jwt_audience = Some(AUDIENCE.into());
    config.api.read_per_minute = 100_000_000;
    config.api.read_burst = 1_000_000;
    config.api.introspect_per_minute = 100_000_000;
    config.api.introspect_burst = 1_000_000;
    config
}

/// Loads the tables and records what was loaded (for `BENCH_REUSE`).
async fn load_and_mark(pool: &PgPool, sessions: usize, history: usize) {
    load(pool, sessions, history).await;
    sqlx::query("CREATE TABLE bench_loaded (sessions bigint NOT NULL, history bigint NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO bench_loaded VALUES ($1, $2)")
        .bind(sessions as i64)
        .bind(history as i64)
        .execute(pool)
        .await
        .unwrap();
}

/// The API in this process, built as `authtrail serve` builds it (the Prometheus recorder
/// installed: every request records its route's metrics), without a projector: the read
/// benchmarks measure the API on loaded tables.
async fn start_api(config: &Config) -> std::net::SocketAddr {
    let mut config = config.clone();
    config.http.listen = "127.0.0.1:0".into();
    config.projector.enabled = false;
    let app = authtrail::app::Application::build(config).await.unwrap();
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    addr
}

/// The wrk scripts: "my sessions" with one of `tokens` per request, and introspection of a
/// random session.
fn wrk_scripts(
    dir: &std::path::Path,
    tokens: &[String],
    sessions: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let lua_tokens = tokens
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(",\n");
    let sessions_lua = dir.join("sessions.lua");
    std::fs::write(
        &sessions_lua,
        format!(
            "tokens = {{\n{lua_tokens}\n}}\nrequest = function()\n  return wrk.format(\"GET\", \"/api/v1/auth/sessions\", {{[\"Authorization\"] = \"Bearer \" .. tokens[math.random(#tokens)]}})\nend\n"
        ),
    )
    .unwrap();
    let introspect_lua = dir.join("introspect.lua");
    std::fs::write(
        &introspect_lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"Bearer {}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nrequest = function()\n  return wrk.format(nil, \"/api/v1/sessions/introspect\", nil, '{{\"session_id\":\"s-' .. math.random({sessions}) .. '\"}}')\nend\n",
            token("svc", "service")
        ),
    )
    .unwrap();
    (sessions_lua, introspect_lua)
}

/// The same two reads as pgbench scripts: the SQL the handlers run, without HTTP.
fn pgbench_scripts(users: usize, sessions: usize) -> (String, String) {
    let sessions_sql = format!(
            "\\set u random(0, {})\n\\set k random(0, 999)\nSELECT s.session_id, s.user_id, session_status(s, now()) AS status, s.login_method, s.identifier, s.device_id, s.device_name, s.device_type, s.browser, s.os, s.ip, s.user_agent, s.country_code, s.country, s.city, s.latitude, s.longitude, s.created_at, s.last_activity_at, s.expires_at, s.absolute_expires_at, s.idle_expires_at, s.refresh_count, s.revoked_at, s.revoked_reason, s.revoked_by, s.logged_out_at, coalesce(td.trusted, s.trusted_device) AS trusted_device, s.otp_required, s.otp_verified, s.suspicious, s.suspicious_reason FROM sessions s LEFT JOIN trusted_devices td ON td.user_id = s.user_id AND td.device_id = s.device_id WHERE true AND s.user_id = 'u-' || ((:k * 7919) % {users}) AND s.ended_at IS NULL AND session_status(s, now()) = 'active' ORDER BY s.created_at DESC, s.session_id ASC LIMIT 51;\n",
            users - 1
        );
    let introspect_sql = format!(
            "\\set i random(1, {sessions})\nSELECT session_id, user_id AS user, least(expires_at, absolute_expires_at, idle_expires_at) AS expires_at, created_at, last_activity_at, login_method, roles, trusted_device, suspicious FROM sessions s WHERE session_id = 's-' || :i AND session_status(s, now()) = 'active';\n"
        );
    (sessions_sql, introspect_sql)
}

/// Steps 1-3: each read over HTTP (wrk), inside the server (its histogram) and as bare SQL
/// (pgbench), at each connection count; prints the table.
async fn read_benchmarks(config: &Config, url: &str, sessions: usize, history: usize) {
    let addr = start_api(config).await;
    let dir = tempfile::tempdir().unwrap();
    let users = (sessions / 10).max(1);
    let tokens: Vec<String> = (0..1000)
        .map(|i| token(&format!("u-{}", (i * 7919) % users), "user"))
        .collect();
    let (sessions_lua, introspect_lua) = wrk_scripts(dir.path(), &tokens, sessions);
    // Sanity: a request answers 200 with data.
    let probe = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/auth/sessions"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    let active = probe.json::<serde_json::Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .len();
    eprintln!("user 0 has {active} active sessions");
    let (sessions_sql, introspect_sql) = pgbench_scripts(users, sessions);
    let mut rows = Vec::new();
    let http_seconds = env_usize("BENCH_HTTP_SECONDS", 20);
    let routes = [
        (
            "GET",
            "/api/v1/auth/sessions",
            &sessions_lua,
            &sessions_sql,
            "sessions",
        ),
        (
            "POST",
            "/api/v1/sessions/introspect",
            &introspect_lua,
            &introspect_sql,
            "introspect",
        ),
    ];
    for c in env_list("BENCH_CONNECTIONS", &[CONNECTIONS, LIGHT]) {
        for (method, route, lua, sql, name) in routes {
            let before = server_histogram(route);
            rows.push((
                format!("`{method} {route}` (HTTP, wrk, {c} connections)"),
                wrk(&format!("http://{addr}"), lua, c, http_seconds),
            ));
            rows.push((
                format!("… inside the server (its histogram; bucket bounds, {c} connections)"),
                server_quantiles(&before, &server_histogram(route), http_seconds),
            ));
            rows.push((
                format!("same SQL (pgbench, prepared, {c} connections)"),
                pgbench(url, sql, dir.path(), name, c, http_seconds),
            ));
        }
    }
    println!("\n{sessions} sessions, {history} login attempts, {users} users\n");
    println!("| what | requests/s | p50 | p99 |\n|---|---|---|---|");
    for (what, (r, p50, p99)) in rows {
        println!("| {what} | {r:.0} | {p50:.2} ms | {p99:.2} ms |");
    }
}

/// The server's own latency histogram of `route` (`authtrail_api_request_seconds`, measured
/// from routing to the built response): cumulative counts by upper bound in seconds.
fn server_histogram(route: &str) -> Vec<(f64, f64)> {
    let text = authtrail::telemetry::metrics().render();
    let needle = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with("authtrail_api_request_seconds_bucket") && l.contains(&needle))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// `(requests/s, p50 ms, p99 ms)` between two histogram readings; the quantiles are the upper
/// bounds of the buckets they fall in.
fn server_quantiles(
    before: &[(f64, f64)],
    after: &[(f64, f64)],
    seconds: usize,
) -> (f64, f64, f64) {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |c| c.1);
    let q = |q: f64| {
        counts
            .iter()
            .find(|c| c.1 >= q * total)
            .map_or(f64::NAN, |c| c.0 * 1000.0)
    };
    (total / seconds as f64, q(0.50), q(0.99))
}

/// The row counts a finished load recorded, if the database exists and the load finished.
async fn loaded(url: &str) -> Option<(i64, i64)> {
    let mut c = PgConnection::connect(url).await.ok()?;
    sqlx::query_as("SELECT sessions, history FROM bench_loaded")
        .fetch_optional(&mut c)
        .await
        .ok()
        .flatten()
}

async fn drop_database(admin: &str, name: &str) {
    let mut c = PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
}
