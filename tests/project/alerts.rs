//! Acting on alerts, against the real broker and database: every alert appears on the alerts
//! topic once (however often the projection is rebuilt, the dispatcher restarted or stopped
//! between publishing and recording), and the response policy revokes a compromised session
//! within a second of its alert.

use crate::common::api::{
    login_failed, login_ok, spawn_api_with, Options, IP_GB, UA_DESKTOP, UA_MOBILE,
};
use crate::common::app::test_config;
use crate::common::{TestDb, TestTopic};
use authtrail::app::Application;
use authtrail::config::{Config, KafkaConfig, PolicyAction};
use authtrail::ingest::Intake;
use authtrail::projector::NOTIFY_CHANNEL;
use authtrail::replay::rebuild;
use chrono::{TimeDelta, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// An authtrail server (intake, query API, projector, alert dispatcher) that a test can stop
/// and start again on the same topic and database.
struct Server {
    intake: Arc<Intake>,
    pool: PgPool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start(config: &Config) -> Server {
        let _ = authtrail::telemetry::metrics();
        let app = Application::build(config.clone())
            .await
            .expect("application");
        let (intake, pool) = (app.intake().clone(), app.pool().clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Server {
            intake,
            pool,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Stops it and waits until it has (the dispatcher's lock is released then).
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap().unwrap();
    }

    async fn publish(&self, events: Vec<Value>) {
        let events = events
            .into_iter()
            .map(|v| authtrail_events::parse_value(v).expect("a valid fixture event"))
            .collect();
        self.intake.submit(events, "test").await.expect("published");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The test configuration with a database, a consumer group and an alerts topic of its own.
fn configure(topic: &TestTopic, db: &TestDb) -> Config {
    let mut c = test_config(topic);
    c.database = db.config.clone();
    c.projector.group_id = format!("alerts-test-{}", Uuid::new_v4().simple());
    c.projector.batch_max_wait_ms = 10;
    c.alerts.topic = format!("{}-alerts", topic.name());
    c
}

/// Six failed sign-ins on `user` a minute apart, ending a minute ago: a brute-force alert.
fn brute_force(user: &str) -> Vec<Value> {
    let start = Utc::now() - TimeDelta::minutes(7);
    (0..6)
        .map(|i| login_failed(user, start + TimeDelta::minutes(i), IP_GB))
        .collect()
}

/// Waits (woken by the projector's NOTIFY) until `alerts` holds a row that `sql_filter` (a
/// condition on `a`, with `$1` bound to `arg`) selects; returns it.
async fn wait_alert(pool: &PgPool, sql_filter: &str, arg: &str) -> Value {
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let row: Option<sqlx::types::Json<Value>> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(a) FROM alerts a WHERE {sql_filter} LIMIT 1"
        ))
        .bind(arg)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(row) = row {
            return row.0;
        }
        assert!(
            Instant::now() < deadline,
            "no alert where {sql_filter} ({arg})"
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    }
}

async fn brute_force_alert(pool: &PgPool, user: &str) -> Uuid {
    let row = wait_alert(pool, "a.rule = 'brute_force' AND a.user_id = $1", user).await;
    row["id"].as_str().unwrap().parse().unwrap()
}

fn reader(alerts: &KafkaConfig) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &alerts.brokers)
        .set(
            "group.id",
            format!("test-alerts-{}", Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap()
}

fn assign_from_start(c: &BaseConsumer, alerts: &KafkaConfig) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..alerts.partitions {
        tpl.add_partition_offset(&alerts.topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
}

/// The CloudEvent of one message, checked against the contract of the alerts topic.
fn alert_event(m: &rdkafka::message::BorrowedMessage<'_>) -> Value {
    let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
    assert_eq!(v["type"], "authtrail.alert");
    assert_eq!(v["source"], "/authtrail/detection");
    assert_eq!(v["id"], v["data"]["id"]);
    assert_eq!(
        m.key().unwrap(),
        v["data"]["subject"].as_str().unwrap().as_bytes()
    );
    v
}

/// Waits until alert `id` is on the alerts topic.
async fn wait_on_topic(alerts: &KafkaConfig, id: Uuid) {
    let alerts = alerts.clone();
    tokio::task::spawn_blocking(move || {
        let c = reader(&alerts);
        assign_from_start(&c, &alerts);
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "alert {id} not on the topic");
            if let Some(m) = c.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                if alert_event(&m)["id"] == id.to_string() {
                    return;
                }
            }
        }
    })
    .await
    .unwrap()
}

/// Every alert id on the alerts topic (read to its end), with how often it appears.
async fn on_topic(alerts: &KafkaConfig) -> BTreeMap<Uuid, usize> {
    let alerts = alerts.clone();
    tokio::task::spawn_blocking(move || {
        let c = reader(&alerts);
        let ends: BTreeMap<i32, i64> = (0..alerts.partitions)
            .map(|p| {
                let (_, high) = c
                    .fetch_watermarks(&alerts.topic, p, Duration::from_secs(10))
                    .unwrap();
                (p, high)
            })
            .collect();
        assign_from_start(&c, &alerts);
        let mut at: BTreeMap<i32, i64> = ends.keys().map(|&p| (p, 0)).collect();
        let mut out = BTreeMap::new();
        let deadline = Instant::now() + WAIT;
        while at.iter().any(|(p, o)| *o < ends[p]) {
            assert!(Instant::now() < deadline, "reading the alerts topic");
            if let Some(m) = c.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                at.insert(m.partition(), m.offset() + 1);
                let id: Uuid = alert_event(&m)["id"].as_str().unwrap().parse().unwrap();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    })
    .await
    .unwrap()
}

fn rebuild_options() -> rebuild::Options {
    rebuild::Options {
        schema: None,
        drop_old: true,
        swap: true,
        batch: 400,
        progress_bar: false,
        lock_distance: 1000,
        fast: true,
        workers: 2,
        cache_sessions: 100_000,
    }
}

async fn deliveries(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM alert_deliveries")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_is_published_once_however_often_the_projection_is_rebuilt() {
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let config = configure(&topic, &db);
    let alerts = authtrail::alerts::topic_config(&config);
    let server = Server::start(&config).await;
    server.publish(brute_force("rebuild-a")).await;
    let x = brute_force_alert(&server.pool, "rebuild-a").await;
    wait_on_topic(&alerts, x).await;

    // Rebuilt twice: the alerts table is replaced by an equal one while the dispatcher runs.
    for _ in 0..2 {
        let report = rebuild::rebuild(&config, &server.pool, &rebuild_options(), None)
            .await
            .unwrap();
        assert!(report.identical(), "{:?}", report.comparison);
        assert_eq!(brute_force_alert(&server.pool, "rebuild-a").await, x);
    }
    // A newer alert published by the same dispatcher: it has passed over the rebuilt tables
    // (it publishes the oldest undelivered alerts first).
    server.publish(brute_force("rebuild-b")).await;
    let y = brute_force_alert(&server.pool, "rebuild-b").await;
    wait_on_topic(&alerts, y).await;

    // Restarted, after one more rebuild.
    server.stop().await;
    let server = Server::start(&config).await;
    rebuild::rebuild(&config, &server.pool, &rebuild_options(), None)
        .await
        .unwrap();
    server.publish(brute_force("rebuild-c")).await;
    let z = brute_force_alert(&server.pool, "rebuild-c").await;
    wait_on_topic(&alerts, z).await;

    let seen = on_topic(&alerts).await;
    assert_eq!(
        seen,
        BTreeMap::from([(x, 1), (y, 1), (z, 1)]),
        "each alert exactly once on the topic"
    );
    assert_eq!(deliveries(&server.pool).await, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_published_but_not_recorded_before_a_crash_is_not_published_again() {
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let config = configure(&topic, &db);
    let alerts = authtrail::alerts::topic_config(&config);
    let server = Server::start(&config).await;
    server.publish(brute_force("crash-a")).await;
    let x = brute_force_alert(&server.pool, "crash-a").await;
    wait_on_topic(&alerts, x).await;
    server.publish(brute_force("crash-b")).await;
    let y = brute_force_alert(&server.pool, "crash-b").await;
    wait_on_topic(&alerts, y).await;
    let pool = server.pool.clone();
    server.stop().await;

    // The crash: the broker acknowledged y, the dispatcher died before recording it.
    let (partition, offset): (i32, i64) = sqlx::query_as(
        "DELETE FROM alert_deliveries WHERE alert_id = $1 RETURNING partition, \"offset\"",
    )
    .bind(y)
    .fetch_one(&pool)
    .await
    .unwrap();

    let server = Server::start(&config).await;
    server.publish(brute_force("crash-c")).await;
    let z = brute_force_alert(&server.pool, "crash-c").await;
    wait_on_topic(&alerts, z).await;

    let seen = on_topic(&alerts).await;
    assert_eq!(
        seen,
        BTreeMap::from([(x, 1), (y, 1), (z, 1)]),
        "each alert exactly once on the topic"
    );
    let recorded: (i32, i64) =
        sqlx::query_as("SELECT partition, \"offset\" FROM alert_deliveries WHERE alert_id = $1")
            .bind(y)
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert_eq!(
        recorded,
        (partition, offset),
        "reconciliation recorded where y is"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_publish_each_alert_once() {
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let config = configure(&topic, &db);
    let alerts = authtrail::alerts::topic_config(&config);
    let (a, b) = (Server::start(&config).await, Server::start(&config).await);
    let users = ["pair-a", "pair-b", "pair-c", "pair-d"];
    let mut ids = BTreeMap::new();
    for (i, user) in users.iter().enumerate() {
        // Both servers take events; both are woken by every projected batch.
        let server = if i % 2 == 0 { &a } else { &b };
        server.publish(brute_force(user)).await;
        let id = brute_force_alert(&server.pool, user).await;
        wait_on_topic(&alerts, id).await;
        ids.insert(id, 1);
    }
    // Stopped, neither publishes any more: what is on the topic is all there will be.
    a.stop().await;
    b.stop().await;
    assert_eq!(on_topic(&alerts).await, ids, "each alert exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_policy_revokes_a_compromised_session_within_a_second() {
    let app = spawn_api_with(Options::default(), |c| {
        c.alerts.topic = format!("{}-alerts", c.kafka.topic);
        c.alerts
            .policy
            .insert("credential_stuffing".into(), PolicyAction::RevokeSession);
    })
    .await;
    // The victims' history: a sign-in ten minutes ago at home.
    let home = Utc::now() - TimeDelta::minutes(10);
    app.publish(vec![
        login_ok("victim", "sid-home", home, IP_GB, UA_DESKTOP),
        login_ok("victim-2", "sid-home-2", home, IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;

    // A stuffing campaign: 12 accounts from 12 networks within seconds, and in the middle of it
    // the victim signs in from an address and a device never seen.
    let start = Utc::now() - TimeDelta::seconds(20);
    let mut campaign: Vec<Value> = (0..12)
        .map(|i| {
            login_failed(
                &format!("stuffed-{i}"),
                start + TimeDelta::milliseconds(500 * i),
                &format!("198.51.{}.7", 10 + i),
            )
        })
        .collect();
    campaign.insert(
        6,
        login_ok(
            "victim",
            "sid-stolen",
            start + TimeDelta::seconds(3),
            "203.0.113.50",
            UA_MOBILE,
        ),
    );
    app.publish(campaign).await;

    let alert = wait_alert(
        &app.pool,
        "a.rule = 'credential_stuffing' AND a.metadata->'compromised' @> jsonb_build_array(jsonb_build_object('session_id', $1::text))",
        "sid-stolen",
    )
    .await;
    let alerted = Instant::now();
    assert_eq!(alert["severity"], "critical");

    // Introspect after every projector commit until the session is inactive.
    let mut listener = PgListener::connect_with(&app.pool).await.unwrap();
    listener.listen(NOTIFY_CHANNEL).await.unwrap();
    loop {
        let answer = app.introspect("sid-stolen").await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        if answer.body["active"] == false {
            break;
        }
        assert!(
            alerted.elapsed() < Duration::from_secs(10),
            "the compromised session is still active 10 s after the alert"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), listener.recv()).await;
    }
    let took = alerted.elapsed();
    println!(
        "compromised session inactive {:.0} ms after its alert appeared",
        took.as_secs_f64() * 1000.0
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // Revoked by the policy, which is audited; the victim's other session stays.
    let (by, reason): (String, String) = sqlx::query_as(
        "SELECT revoked_by, revoked_reason FROM sessions WHERE session_id = 'sid-stolen'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(by, "system:policy");
    assert!(
        reason.contains("credential_stuffing") && reason.contains(alert["id"].as_str().unwrap()),
        "{reason}"
    );
    assert_eq!(app.introspect("sid-home").await.body["active"], true);
    app.settle().await;
    let total: i64 = app.topic.end_offsets().await.iter().sum();
    let log = app.topic.read(total as usize, WAIT).await;
    let by_policy: Vec<Value> = log
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap())
        .filter(|e| e["source"] == "/authtrail/policy")
        .collect();
    let types: Vec<&str> = by_policy
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["session.revoked", "admin.action"]);
    assert_eq!(by_policy[1]["data"]["actor"], "system:policy");
    assert_eq!(by_policy[1]["data"]["target_user"], "victim");
    assert_eq!(by_policy[1]["data"]["details"]["alert_id"], alert["id"]);

    // The campaign goes on and compromises another account: the alert grows, and the policy
    // acts on the new session too (and not again on the first).
    app.publish(vec![
        login_failed("stuffed-12", Utc::now(), "198.51.30.7"),
        login_ok(
            "victim-2",
            "sid-stolen-2",
            Utc::now(),
            "203.0.113.51",
            UA_MOBILE,
        ),
    ])
    .await;
    let grown = wait_alert(
        &app.pool,
        "a.rule = 'credential_stuffing' AND a.metadata->'compromised' @> jsonb_build_array(jsonb_build_object('session_id', $1::text))",
        "sid-stolen-2",
    )
    .await;
    assert_eq!(grown["id"], alert["id"], "the same alert, grown");
    let deadline = Instant::now() + WAIT;
    while app.introspect("sid-stolen-2").await.body["active"] != false {
        assert!(Instant::now() < deadline, "sid-stolen-2 still active");
        let _ = tokio::time::timeout(Duration::from_millis(200), listener.recv()).await;
    }
    app.settle().await;
    let total: i64 = app.topic.end_offsets().await.iter().sum();
    let mut revoked: Vec<String> = app
        .topic
        .read(total as usize, WAIT)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap())
        .filter(|e| e["source"] == "/authtrail/policy" && e["type"] == "session.revoked")
        .map(|e| e["data"]["session_id"].as_str().unwrap().to_owned())
        .collect();
    revoked.sort();
    assert_eq!(revoked, ["sid-stolen", "sid-stolen-2"], "once each");
}
