//! Replay, rebuild and time travel against the real broker and database: replay slices equal
//! what the published events say, rebuilds equal the live tables (also while events keep
//! coming, twice, and after being killed midway), and a scripted story reads back at four
//! instants through the CLI and the admin API.

mod common;
#[path = "replay/seals.rs"]
mod seals;

use authtrail::config::Config;
use authtrail::projector::Projector;
use authtrail::replay::export::{self, Filter, Format, ReplayArgs};
use authtrail::replay::rebuild::{self, Options};
use authtrail::replay::{log, schema};
use authtrail_events::Event;
use authtrail_projections::memory::Tables;
use chrono::{DateTime, TimeDelta, Utc};
use common::projection::{
    config, export as export_tables, migrated, publish, stream, wait_caught_up,
};
use common::{Buf, Raw, TestTopic};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Waits until the wall clock has passed `t` by at least a millisecond (broker timestamps have
/// millisecond resolution): a condition on the clock, not a guess at how long something takes.
fn after_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    let next = t + TimeDelta::milliseconds(1);
    while Utc::now().timestamp_millis() <= t.timestamp_millis() {
        std::hint::spin_loop();
    }
    next
}

fn args() -> ReplayArgs {
    ReplayArgs {
        from: None,
        to: None,
        after: None,
        before: None,
        user: vec![],
        identifier: vec![],
        event_type: vec![],
        ip: vec![],
        country: vec![],
        format: Format::Ndjson,
        output: None,
        follow: false,
        no_progress: true,
        reorder_window: 10_000,
    }
}

async fn replay(cfg: &Config, a: &ReplayArgs) -> (Vec<u8>, export::Summary) {
    let buf = Buf::default();
    let filter = Filter::from_args(a).unwrap();
    let summary = export::replay(cfg, a, &filter, Box::new(buf.clone()), false)
        .await
        .unwrap();
    let out = buf.0.lock().unwrap().clone();
    (out, summary)
}

/// The stored messages that pass `keep`, merged as replay promises: by event time, then
/// partition, then offset; as NDJSON of the stored bytes.
fn expected(stored: &[Raw], keep: impl Fn(&Raw, &Event, &Value) -> bool) -> (Vec<u8>, usize) {
    let mut picked: Vec<(DateTime<Utc>, i32, i64, &[u8])> = stored
        .iter()
        .filter_map(|r| {
            let e = authtrail_events::parse(&r.payload).unwrap();
            let data = serde_json::to_value(&e.data).unwrap();
            keep(r, &e, &data).then_some((e.time, r.partition, r.offset, r.payload.as_slice()))
        })
        .collect();
    picked.sort();
    let mut out = vec![];
    for (_, _, _, p) in &picked {
        out.extend_from_slice(p);
        out.push(b'\n');
    }
    (out, picked.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_slices_and_filters_equal_the_published_events() {
    let topic = TestTopic::new(4).await;
    let cfg = Config {
        kafka: topic.config.clone(),
        ..Config::default()
    };
    let events = stream(61, 30, 1800);
    // Three phases with a millisecond boundary between them, so times split them exactly.
    let publisher = topic.publisher();
    publisher.publish_all(&events[..600]).await.unwrap();
    let t1 = after_ms(Utc::now());
    publisher.publish_all(&events[600..1200]).await.unwrap();
    let t2 = after_ms(Utc::now());
    publisher.publish_all(&events[1200..]).await.unwrap();
    let stored = topic.read(events.len(), Duration::from_secs(60)).await;
    let phase2: std::collections::BTreeSet<uuid::Uuid> =
        events[600..1200].iter().map(|e| e.id).collect();

    // Everything: byte-equal to the stored messages, merged in event time.
    let (got, summary) = replay(&cfg, &args()).await;
    let (want, n) = expected(&stored, |_, _, _| true);
    assert_eq!(summary.read, 1800);
    assert_eq!(summary.written as usize, n);
    assert!(got == want, "full replay differs from the stored messages");
    assert_eq!(summary.per_type.values().sum::<u64>(), 1800);

    // A time range (broker timestamps): exactly the middle phase.
    let mut a = args();
    a.from = Some(t1.to_rfc3339());
    a.to = Some(t2.to_rfc3339());
    let (got, summary) = replay(&cfg, &a).await;
    let (want, n) = expected(&stored, |_, e, _| phase2.contains(&e.id));
    assert_eq!(n, 600);
    assert_eq!(summary.written, 600);
    assert!(got == want, "time range differs");

    // Offsets per partition, and an event-time window.
    let mut a = args();
    a.from = Some("0:10,1:20,2:0,3:5".into());
    a.to = Some("0:200,1:150,2:300,3:1000".into());
    let after: DateTime<Utc> = events[300].time;
    let before: DateTime<Utc> = events[1500].time;
    a.after = Some(after);
    a.before = Some(before);
    let (got, _) = replay(&cfg, &a).await;
    let bounds: BTreeMap<i32, (i64, i64)> = [
        (0, (10, 200)),
        (1, (20, 150)),
        (2, (0, 300)),
        (3, (5, 1000)),
    ]
    .into();
    let (want, n) = expected(&stored, |r, e, _| {
        let (s, t) = bounds[&r.partition];
        r.offset >= s && r.offset < t && e.time >= after && e.time < before
    });
    assert!(n > 100);
    assert!(got == want, "offset range + event-time window differs");

    // Filters: users and types together; identifiers; IPs; countries.
    let users = ["user-0003", "user-0007"];
    let mut a = args();
    a.user = users.iter().map(|s| s.to_string()).collect();
    a.event_type = vec!["login.succeeded".into(), "token.refreshed".into()];
    let (got, _) = replay(&cfg, &a).await;
    let (want, n) = expected(&stored, |_, e, _| {
        e.subject.as_deref().is_some_and(|s| users.contains(&s))
            && ["login.succeeded", "token.refreshed"].contains(&e.event_type().as_str())
    });
    assert!(n > 0);
    assert!(got == want, "user + type filter differs");

    let pick = |field: &str| {
        stored
            .iter()
            .find_map(|r| {
                let e = authtrail_events::parse(&r.payload).unwrap();
                let d = serde_json::to_value(&e.data).unwrap();
                d.pointer(field).and_then(Value::as_str).map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no event has {field}"))
    };
    let (identifier, ip, country) = (pick("/identifier"), pick("/ip"), pick("/geo/country_code"));
    let mut a = args();
    a.identifier = vec![identifier.to_uppercase()];
    let (got, _) = replay(&cfg, &a).await;
    let (want, n) = expected(&stored, |_, _, d| {
        d.get("identifier")
            .and_then(Value::as_str)
            .is_some_and(|i| i.eq_ignore_ascii_case(&identifier))
    });
    assert!(n > 0);
    assert!(got == want, "identifier filter differs");

    let mut a = args();
    a.ip = vec![ip.clone()];
    let (got, _) = replay(&cfg, &a).await;
    let (want, n) = expected(&stored, |_, _, d| {
        d.get("ip").and_then(Value::as_str) == Some(ip.as_str())
    });
    assert!(n > 0);
    assert!(got == want, "ip filter differs");

    let mut a = args();
    a.country = vec![country.to_lowercase()];
    a.format = Format::Csv;
    let (got, summary) = replay(&cfg, &a).await;
    let mut want: Vec<(DateTime<Utc>, i32, i64, Event)> = stored
        .iter()
        .filter_map(|r| {
            let e = authtrail_events::parse(&r.payload).unwrap();
            let d = serde_json::to_value(&e.data).unwrap();
            (d.pointer("/geo/country_code").and_then(Value::as_str) == Some(country.as_str()))
                .then_some((e.time, r.partition, r.offset, e))
        })
        .collect();
    want.sort_by_key(|w| (w.0, w.1, w.2));
    assert!(!want.is_empty());
    assert_eq!(summary.written as usize, want.len());
    // CSV: a standard reader parses it; the columns say what the events say.
    let mut reader = csv::Reader::from_reader(got.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, export::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), want.len());
    for (row, (_, p, o, e)) in rows.iter().zip(&want) {
        let col = |name: &str| &row[export::CSV_HEADER.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("partition"), p.to_string());
        assert_eq!(col("offset"), o.to_string());
        assert_eq!(col("id"), e.id.to_string());
        assert_eq!(col("type"), e.event_type().as_str());
        assert_eq!(col("subject"), e.subject.clone().unwrap_or_default());
        assert_eq!(col("country_code"), country);
        assert_eq!(col("time").parse::<DateTime<Utc>>().unwrap(), e.time);
        let data: Value = serde_json::from_str(col("data")).unwrap();
        assert_eq!(data, serde_json::to_value(&e.data).unwrap());
    }

    // The CLI: NDJSON to a file, summary on stderr.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slice.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args([
            "replay",
            "--no-progress",
            "--type",
            "login.failed",
            "--output",
        ])
        .arg(&file)
        .env("AUTHTRAIL_KAFKA_BROKERS", &cfg.kafka.brokers)
        .env("AUTHTRAIL_KAFKA_TOPIC", &cfg.kafka.topic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, n) = expected(&stored, |_, e, _| e.event_type().as_str() == "login.failed");
    assert!(std::fs::read(&file).unwrap() == want, "CLI output differs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("wrote {n} event(s)")) && stderr.contains("login.failed"),
        "{stderr}"
    );
}

/// Lines in `path` (0 when it does not exist yet).
fn lines(path: &std::path::Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Waits until `path` holds `n` lines (re-reading it every 50 ms).
async fn wait_lines(path: &std::path::Path, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lines(path).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} holds {} of {n} lines",
            path.display(),
            lines(path).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_keeps_writing_past_the_snapshot_until_interrupted() {
    let topic = TestTopic::new(2).await;
    let events = stream(66, 10, 150);
    publish(&topic, &events[..100]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("follow.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["replay", "--follow", "--no-progress", "--output"])
        .arg(&file)
        .env("AUTHTRAIL_KAFKA_BROKERS", &topic.config.brokers)
        .env("AUTHTRAIL_KAFKA_TOPIC", &topic.config.topic)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_lines(&file, 100).await;
    publish(&topic, &events[100..]).await;
    wait_lines(&file, 150).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(out.0.success(), "{}", out.1);
    assert!(out.1.contains("wrote 150 event(s)"), "{}", out.1);
    let got = lines(&file);
    let mut tail: Vec<Vec<u8>> = got[100..].to_vec();
    let mut want: Vec<Vec<u8>> = events[100..].iter().map(Event::to_json_bytes).collect();
    tail.sort();
    want.sort();
    assert!(
        tail == want,
        "the followed events are the ones published after the snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_past_the_end_resolve_to_the_end() {
    let topic = TestTopic::new(3).await;
    let events = stream(62, 20, 300);
    publish(&topic, &events).await;
    let partitions: Vec<i32> = (0..3).collect();
    let ends = topic.end_offsets().await;
    assert!(
        ends.iter().all(|&e| e > 0),
        "every partition holds messages: {ends:?}"
    );

    let later = Utc::now() + TimeDelta::hours(1);
    let got = log::offsets_for_time(&topic.config, &partitions, later)
        .await
        .unwrap();
    let want: BTreeMap<i32, i64> = partitions.iter().map(|&p| (p, ends[p as usize])).collect();
    assert_eq!(
        got, want,
        "a time after the last message is the end, whatever the broker answers"
    );

    let earlier = Utc::now() - TimeDelta::days(1);
    let got = log::offsets_for_time(&topic.config, &partitions, earlier)
        .await
        .unwrap();
    assert!(got.values().all(|&o| o == 0), "{got:?}");

    // And a replay starting there writes nothing.
    let cfg = Config {
        kafka: topic.config.clone(),
        ..Config::default()
    };
    let mut a = args();
    a.from = Some(later.to_rfc3339());
    let (out, summary) = replay(&cfg, &a).await;
    assert!(out.is_empty());
    assert_eq!(summary.read, 0);
}

/// A live projector in this process, stopped when dropped.
struct Live {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Live {
    fn start(cfg: &Config, pool: &sqlx::PgPool) -> Live {
        // The worker's log in the test's output (shown when it fails).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "authtrail=info".into()),
            )
            .with_test_writer()
            .try_init();
        let p = Projector::new(cfg.clone(), pool.clone()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(p.run(async move {
            let _ = rx.await;
        }));
        Live {
            stop: Some(tx),
            task: Some(task),
        }
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn options(schema: Option<&str>, swap: bool) -> Options {
    Options {
        schema: schema.map(str::to_owned),
        drop_old: false,
        swap,
        batch: 400,
        progress_bar: false,
        lock_distance: 1000,
        fast: true,
        workers: 2,
        cache_sessions: 100_000,
    }
}

fn reference(events: &[Event], cfg: &Config) -> Tables {
    let mut t = Tables::default();
    t.apply_batch(&cfg.projector.rules(), events);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_while_publishing_swaps_in_equal_tables_and_rebuilds_are_identical() {
    let topic = TestTopic::new(4).await;
    let (db, pool) = migrated().await;
    let cfg = config(&topic, &db, "rebuild-live");
    // More events than the run needs: the publisher below stops a little after the swap.
    let events = stream(63, 60, 60_000);
    publish(&topic, &events[..3000]).await;
    let live = Live::start(&cfg, &pool);
    wait_caught_up(&pool, topic.name(), 3000, Duration::from_secs(120)).await;

    // Keep publishing while the rebuild runs, and a little after its swap: a steady 250
    // events/s, as live traffic would come (unpaced, the broker takes all of them before the
    // rebuild has read the first ones; much faster, a debug build's rebuild, detection
    // included, may not catch up before the stream runs out).
    let swapped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let topic_cfg = topic.config.clone();
        let rest = events[3000..].to_vec();
        let swapped = swapped.clone();
        tokio::spawn(async move {
            let p = authtrail::kafka::Publisher::new(&topic_cfg).unwrap();
            let (mut published, mut after) = (0, 0);
            let mut pace = tokio::time::interval(Duration::from_millis(400));
            for chunk in rest.chunks(100) {
                pace.tick().await;
                p.publish_all(chunk).await.unwrap();
                published += chunk.len();
                if swapped.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                    if after == 5 {
                        break;
                    }
                }
            }
            published
        })
    };
    let report = rebuild::rebuild(&cfg, &pool, &options(None, true), None)
        .await
        .unwrap();
    swapped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(report.old_schema.is_some());
    for c in &report.comparison {
        assert!(c.equal(), "{} differs at the swap: {c:?}", c.table);
    }
    let swapped_at: i64 = report.checkpoints.values().sum();
    let published = 3000 + publisher.await.unwrap();
    eprintln!("swapped at {swapped_at}; {published} published in all");
    assert!(
        published < events.len(),
        "the publisher ran out of events before the swap"
    );
    assert!(
        swapped_at >= 3000 && (swapped_at as usize) < published,
        "swapped at {swapped_at} of {published}: events were published before and after the swap"
    );

    // The live workers continue on the swapped-in tables and end where a clean fold ends.
    wait_caught_up(
        &pool,
        topic.name(),
        published as i64,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        export_tables(&pool).await == reference(&events[..published], &cfg),
        "live tables after the swap differ from the fold of the log"
    );
    // Same indexes as the tables they replaced (the deferred ones were built). The alert
    // dispatcher's deliveries, the seals and the data keys are no projection: they stay in
    // `public`, across rebuilds.
    let old = report.old_schema.clone().unwrap();
    let defs = |schema: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT replace(indexdef, schemaname || '.', '') FROM pg_indexes
                 WHERE schemaname = $1
                   AND tablename NOT IN ('_sqlx_migrations', 'alert_deliveries', 'seal_checkpoints', 'seal_heads', 'subject_keys', 'erasures')
                 ORDER BY indexname",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let (new_defs, old_defs) = (defs("public".into()).await, defs(old.clone()).await);
    assert!(new_defs.len() > 20, "{new_defs:?}");
    assert_eq!(new_defs, old_defs);
    let old_sessions: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {old}.sessions"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(old_sessions > 0, "the old tables are kept");

    // Two rebuilds of the same log (no swap) are identical, and equal the live tables.
    let a = rebuild::rebuild(
        &cfg,
        &pool,
        &options(Some("authtrail_rebuild_a"), false),
        None,
    )
    .await
    .unwrap();
    let b = rebuild::rebuild(
        &cfg,
        &pool,
        &options(Some("authtrail_rebuild_b"), false),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.checkpoints, b.checkpoints);
    let ha = schema::table_hashes(&mut pool.acquire().await.unwrap(), "authtrail_rebuild_a")
        .await
        .unwrap();
    let hb = schema::table_hashes(&mut pool.acquire().await.unwrap(), "authtrail_rebuild_b")
        .await
        .unwrap();
    let hl = schema::table_hashes(&mut pool.acquire().await.unwrap(), "public")
        .await
        .unwrap();
    assert_eq!(ha, hb);
    for (t, h) in &hl {
        if t != "dead_letters" {
            assert_eq!(h, &ha[t], "{t}");
        }
    }
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_midway_resumes_to_the_same_tables() {
    let topic = TestTopic::new(4).await;
    let (db, pool) = migrated().await;
    let cfg = config(&topic, &db, "rebuild-kill");
    let events = stream(64, 50, 5000);
    publish(&topic, &events).await;
    let live = Live::start(&cfg, &pool);
    wait_caught_up(&pool, topic.name(), 5000, Duration::from_secs(120)).await;

    // Abort the rebuild once it has applied part of the log.
    let (tx, mut rx) = tokio::sync::watch::channel(0u64);
    let task = {
        let (cfg, pool) = (cfg.clone(), pool.clone());
        tokio::spawn(async move {
            let mut o = options(None, true);
            o.batch = 200;
            rebuild::rebuild(&cfg, &pool, &o, Some(&tx)).await
        })
    };
    tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|n| *n >= 2000))
        .await
        .expect("rebuild progressed")
        .unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let partial: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM authtrail_rebuild_1.projection_checkpoints",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((2000..5000).contains(&partial), "stopped midway: {partial}");

    // Run again: it resumes the same schema and swaps in tables equal to the live ones.
    let report = rebuild::rebuild(&cfg, &pool, &options(None, true), None)
        .await
        .unwrap();
    assert_eq!(report.schema, "authtrail_rebuild_1");
    assert!(
        report.messages <= 5000 - partial as u64 + 400,
        "resumed, not restarted: {report:?}"
    );
    assert!(report.identical(), "{:#?}", report.comparison);
    assert!(export_tables(&pool).await == reference(&events, &cfg));
    let rebuild_left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'authtrail_rebuild_1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rebuild_left, 0);

    // --drop-old drops the replaced tables.
    let mut o = options(None, true);
    o.drop_old = true;
    let again = rebuild::rebuild(&cfg, &pool, &o, None).await.unwrap();
    assert!(again.identical() && again.dropped_old);
    let old_left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(again.old_schema.unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(old_left, 0);
    live.stop().await;
}

// ---- time travel --------------------------------------------------------------------------

const ALICE: &str = "alice-7f3a";

fn at(min: i64) -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(min)
}

fn ev(id: u32, ty: &str, time: DateTime<Utc>, subject: &str, data: Value) -> Event {
    common::event(0x51_0000 + id as u128, ty, time, subject, data)
}

/// Login on a laptop, refresh, revoke, then a new device.
fn story() -> Vec<Event> {
    vec![
        ev(
            1,
            "login.succeeded",
            at(0),
            ALICE,
            json!({
            "session_id": "s_laptop", "login_method": "password",
            "expires_at": at(15).to_rfc3339(), "refresh_token_id": "rt_1",
            "ip": "81.2.69.142", "device_id": "dev_laptop", "device_name": "Laptop"}),
        ),
        ev(
            2,
            "token.refreshed",
            at(10),
            ALICE,
            json!({
            "session_id": "s_laptop", "refresh_token_id": "rt_2",
            "previous_refresh_token_id": "rt_1", "expires_at": at(25).to_rfc3339()}),
        ),
        ev(
            3,
            "session.revoked",
            at(20),
            ALICE,
            json!({
            "scope": "one", "session_id": "s_laptop", "reason": "user_request",
            "revoked_by": ALICE}),
        ),
        ev(
            4,
            "login.succeeded",
            at(30),
            ALICE,
            json!({
            "session_id": "s_phone", "login_method": "password",
            "expires_at": at(60).to_rfc3339(), "refresh_token_id": "rt_9",
            "ip": "81.2.69.142", "device_id": "dev_phone", "device_name": "Phone"}),
        ),
        ev(
            5,
            "device.trusted",
            at(31),
            ALICE,
            json!({
            "device_id": "dev_phone", "device_name": "Phone"}),
        ),
        // Someone else, in whatever partition: must not show up.
        ev(
            6,
            "login.succeeded",
            at(5),
            "bob-11",
            json!({
            "session_id": "s_bob", "login_method": "password",
            "expires_at": at(60).to_rfc3339()}),
        ),
    ]
}

/// An instant, Alice's sessions then as `(session, status, refresh count)`, her trusted devices.
type Instant = (
    DateTime<Utc>,
    Vec<(&'static str, &'static str, i64)>,
    Vec<&'static str>,
);

/// What Alice's sessions were at each instant.
fn expected_story() -> Vec<Instant> {
    vec![
        (at(5), vec![("s_laptop", "active", 0)], vec![]),
        (at(12), vec![("s_laptop", "active", 1)], vec![]),
        (at(25), vec![("s_laptop", "revoked", 1)], vec![]),
        (
            at(35),
            vec![("s_laptop", "revoked", 1), ("s_phone", "active", 0)],
            vec!["dev_phone"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_a_scripted_story_at_four_instants_via_cli_and_api() {
    let (db, pool) = migrated().await;
    // The intake and the query API (whose as-of route is under test) on the test's database.
    let database = db.config.clone();
    let app = common::app::spawn_app_with(move |c| {
        c.api.enabled = true;
        c.database = database;
    })
    .await;
    // Background traffic of other users first, then the story.
    publish(&app.topic, &stream(65, 10, 300)).await;
    publish(&app.topic, &story()).await;

    for (i, (instant, sessions, devices)) in expected_story().into_iter().enumerate() {
        // CLI: build the schema, then read Alice's rows from it.
        let schema_name = format!("asof_story_{i}");
        let out = Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .args(["as-of", &instant.to_rfc3339(), "--schema", &schema_name])
            .env("AUTHTRAIL_KAFKA_BROKERS", &app.config.kafka.brokers)
            .env("AUTHTRAIL_KAFKA_TOPIC", &app.config.kafka.topic)
            .env("AUTHTRAIL_DATABASE_URL", &db.config.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["schema"], schema_name.as_str());
        let rows: Vec<(String, String, i32)> = sqlx::query_as(&format!(
            "SELECT session_id, {schema_name}.session_status(s, $2), refresh_count
             FROM {schema_name}.sessions s WHERE user_id = $1 ORDER BY created_at, session_id"
        ))
        .bind(ALICE)
        .bind(instant)
        .fetch_all(&pool)
        .await
        .unwrap();
        let got: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|(s, st, n)| (s.as_str(), st.as_str(), *n as i64))
            .collect();
        assert_eq!(got, sessions, "CLI at {instant}");
        let trusted: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT device_id FROM {schema_name}.trusted_devices WHERE user_id = $1 AND trusted ORDER BY 1"
        ))
        .bind(ALICE)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(trusted, devices, "CLI devices at {instant}");

        // API: the same answer, from the log alone.
        let url = app.url(&format!(
            "/api/v1/admin/as-of/{}/users/{ALICE}/sessions",
            instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        let admin = app.jwt(json!({"sub": "admin-1", "role": "admin"}));
        for _ in 0..2 {
            // The second call is answered from the cache: same body.
            let res = app
                .client()
                .get(&url)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            let got: Vec<(String, String, i64)> = body["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["session_id"].as_str().unwrap().to_owned(),
                        s["status"].as_str().unwrap().to_owned(),
                        s["refresh_count"].as_i64().unwrap(),
                    )
                })
                .collect();
            let want: Vec<(String, String, i64)> = sessions
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
                .collect();
            assert_eq!(got, want, "API at {instant}");
            let trusted: Vec<&str> = body["devices"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["trusted"] == true)
                .map(|d| d["device_id"].as_str().unwrap())
                .collect();
            assert_eq!(trusted, devices, "API devices at {instant}");
        }
    }

    // Admins only; a bad time is a 400.
    let user = app.jwt(json!({"sub": ALICE, "role": "user"}));
    let url = app.url(&format!(
        "/api/v1/admin/as-of/{}/users/{ALICE}/sessions",
        at(5).to_rfc3339()
    ));
    let res = app
        .client()
        .get(&url)
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app.client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let admin = app.jwt(json!({"sub": "admin-1", "role": "admin"}));
    let res = app
        .client()
        .get(app.url(&format!(
            "/api/v1/admin/as-of/yesterday/users/{ALICE}/sessions"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
