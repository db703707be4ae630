//! Projection workers against the real broker and database: the SQL sink equals the reference
//! model whatever the batching, poison messages are set aside, cleanup keeps what it must, and
//! concurrent lanes never lose a revocation. Crashes and failovers are in `failover.rs`; acting
//! on alerts (the alerts topic, the response policy) in `project/alerts.rs`; detection quality on
//! a labelled simulator stream in `project/detection.rs`.

mod common;

#[path = "project/alerts.rs"]
mod alerts;
#[path = "project/detection.rs"]
mod detection;
#[path = "project/transactions.rs"]
mod transactions;

use authtrail_events::Event;
use authtrail_projections::gen::StreamGen;
use common::projection::{
    checkpoint_total, config, export, migrated, project_all, publish, reference, stream,
    table_hashes,
};
use common::TestTopic;
use rdkafka::producer::{FutureProducer, FutureRecord};

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sink_equals_the_reference_model_whatever_the_batch_size() {
    let topic = TestTopic::new(12).await;
    let events = stream(11, 40, 4000);
    publish(&topic, &events).await;

    let (db_small, small) = migrated().await;
    let mut cfg = config(&topic, &db_small, "sink-small");
    cfg.projector.batch_max_messages = 97;
    project_all(&cfg, &small, events.len() as i64).await;

    let (db_big, big) = migrated().await;
    let mut cfg_big = config(&topic, &db_big, "sink-big");
    cfg_big.projector.batch_max_messages = 5000;
    project_all(&cfg_big, &big, events.len() as i64).await;

    let expected = reference(&events, &cfg.projector.rules());
    let got = export(&small).await;
    assert_eq!(got.sessions.len(), expected.sessions.len());
    assert_eq!(got.sessions, expected.sessions);
    assert_eq!(got.login_history, expected.login_history);
    assert_eq!(got.security_events, expected.security_events);
    assert_eq!(got, expected);

    // The SQL status function agrees with the fold's `status_at` at every instant we ask.
    for instant in [
        "2026-11-01T06:00:00Z",
        "2026-11-02T00:00:00Z",
        "2026-11-03T12:00:00Z",
        "2030-01-01T00:00:00Z",
    ] {
        let t: chrono::DateTime<chrono::Utc> = instant.parse().unwrap();
        let sql: Vec<(String, String)> = sqlx::query_as(
            "SELECT session_id, session_status(s, $1) FROM sessions s ORDER BY session_id",
        )
        .bind(t)
        .fetch_all(&small)
        .await
        .unwrap();
        for (sid, status) in sql {
            assert_eq!(
                status,
                expected.sessions[&sid].status_at(t).as_str(),
                "session {sid} at {instant}"
            );
        }
    }
    assert_eq!(
        table_hashes(&small).await.remove("sessions"),
        table_hashes(&big).await.remove("sessions")
    );
    let (mut a, mut b) = (table_hashes(&small).await, table_hashes(&big).await);
    // The consumer groups differ, not the checkpoints: both passed every message.
    a.remove("projection_checkpoints");
    b.remove("projection_checkpoints");
    assert_eq!(a, b);
}

/// With `batch_max_wait_ms = 0` (the default) a worker applies at once what the consumer holds:
/// a backlog still goes in large batches, not one transaction per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_applied_in_large_batches_without_waiting() {
    let topic = TestTopic::new(12).await;
    let events = stream(5, 200, 3000);
    publish(&topic, &events).await;
    let (db, pool) = migrated().await;
    let cfg = config(&topic, &db, "drain");
    assert_eq!(cfg.projector.batch_max_wait_ms, 0);
    // Each committed lane transaction announces itself once on the channel.
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener
        .listen(authtrail::projector::NOTIFY_CHANNEL)
        .await
        .unwrap();
    project_all(&cfg, &pool, events.len() as i64).await;
    // A marker sent after the last commit arrives after every notification of the worker.
    sqlx::query("SELECT pg_notify($1, 'end of test')")
        .bind(authtrail::projector::NOTIFY_CHANNEL)
        .execute(&pool)
        .await
        .unwrap();
    let mut transactions = 0;
    while listener.recv().await.unwrap().payload() != "end of test" {
        transactions += 1;
    }
    assert!(
        (1..=100).contains(&transactions),
        "{} events took {transactions} transactions",
        events.len()
    );
    assert_eq!(checkpoint_total(&pool, &topic.config.topic).await, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_dead_letters_and_the_partition_keeps_flowing() {
    let topic = TestTopic::new(1).await;
    let events = stream(3, 3, 6);
    let producer: FutureProducer = authtrail::kafka::producer_config(&topic.config)
        .create()
        .unwrap();
    let mut bad_json = b"{\"specversion\":\"1.0\",".to_vec();
    bad_json.extend_from_slice(b"truncated");
    let invalid = serde_json::to_vec(
        &serde_json::json!({"specversion": "1.0", "id": "x", "type": "login.succeeded"}),
    )
    .unwrap();
    let mut payloads: Vec<Vec<u8>> = events[..3].iter().map(Event::to_json_bytes).collect();
    payloads.push(bad_json.clone());
    payloads.push(invalid.clone());
    payloads.extend(events[3..].iter().map(Event::to_json_bytes));
    for p in &payloads {
        producer
            .send(
                FutureRecord::to(topic.name()).key("k").payload(p),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let (db, pool) = migrated().await;
    project_all(&config(&topic, &db, "poison"), &pool, payloads.len() as i64).await;

    let dead: Vec<(i32, i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT partition, \"offset\", payload, error_field FROM dead_letters ORDER BY \"offset\"",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0].0, dead[0].1, &dead[0].2, dead[0].3.as_str()),
        (0, 3, &bad_json, "(event)")
    );
    assert_eq!(
        (dead[1].1, &dead[1].2, dead[1].3.as_str()),
        (4, &invalid, "id")
    );
    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(projected, 6, "the events after the poison were projected");
    assert_eq!(
        export(&pool).await,
        reference(&events, &authtrail_projections::Rules::default())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_database_refuses_is_isolated_and_dead_lettered() {
    // Events that pass the contract but whose rows the database refuses: a constraint added
    // for this test stands in for any such refusal (a limit, a check, a bad value).
    let topic = TestTopic::new(3).await;
    let events = stream(5, 20, 600);
    publish(&topic, &events).await;
    let refused = [&events[17], &events[401]];
    let (db, pool) = migrated().await;
    sqlx::query(&format!(
        "ALTER TABLE processed_events ADD CONSTRAINT test_refuses
         CHECK (event_id NOT IN ('{}', '{}'))",
        refused[0].id, refused[1].id
    ))
    .execute(&pool)
    .await
    .unwrap();
    let mut cfg = config(&topic, &db, "refused");
    cfg.projector.batch_max_messages = 250;
    project_all(&cfg, &pool, events.len() as i64).await;

    let dead: Vec<(Vec<u8>, String, String)> = sqlx::query_as(
        "SELECT payload, error_field, error FROM dead_letters ORDER BY partition, \"offset\"",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 2, "exactly the two refused messages: {dead:?}");
    let mut ids: Vec<uuid::Uuid> = dead
        .iter()
        .map(|(payload, field, error)| {
            assert_eq!(field, "(database)");
            assert!(
                error.contains("23514"),
                "names the check violation: {error}"
            );
            authtrail_events::parse(payload).unwrap().id
        })
        .collect();
    ids.sort();
    let mut want = vec![refused[0].id, refused[1].id];
    want.sort();
    assert_eq!(ids, want);
    // Everything else is projected exactly as if the refused events had never been sent.
    let rest: Vec<Event> = events
        .iter()
        .filter(|e| !want.contains(&e.id))
        .cloned()
        .collect();
    assert_eq!(
        export(&pool).await,
        reference(&rest, &authtrail_projections::Rules::default())
    );
}

#[tokio::test]
async fn cleanup_deletes_old_ended_sessions_and_history_but_keeps_recent_rows() {
    use authtrail::projector::{apply_batch, cleanup, LogMessage};
    let (_db, pool) = migrated().await;
    let old = StreamGen::new(1, 5, "2025-01-01T00:00:00Z".parse().unwrap()).take(300);
    let recent = StreamGen::new(2, 5, chrono::Utc::now() - chrono::TimeDelta::hours(2)).take(50);
    let messages: Vec<LogMessage> = old
        .iter()
        .chain(&recent)
        .enumerate()
        .map(|(i, e)| LogMessage {
            topic: "t".into(),
            partition: 0,
            offset: i as i64,
            key: None,
            payload: Some(e.to_json_bytes()),
        })
        .collect();
    let mut tx = pool.begin().await.unwrap();
    apply_batch(
        &mut tx,
        "p",
        &authtrail_projections::Rules::default(),
        &messages,
        &Default::default(),
        &mut authtrail::projector::Cache::disabled(),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let recent_history =
        count("SELECT count(*) FROM login_history WHERE attempted_at > now() - interval '1 day'")
            .await;
    let recent_sessions =
        count("SELECT count(*) FROM sessions WHERE created_at > now() - interval '1 day'").await;
    assert!(recent_history > 0 && recent_sessions > 0);
    assert!(
        count("SELECT count(*) FROM login_history WHERE attempted_at < now() - interval '90 days'")
            .await
            > 0
    );

    let epoch = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT epoch FROM projection_epochs WHERE projection = 'p'",
            )
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let before = epoch().await;
    let (sessions, history) = cleanup(&pool, &authtrail::config::RetentionConfig::default())
        .await
        .unwrap();
    assert!(sessions > 0 && history > 0);
    // Workers' state caches may hold the deleted rows: cleanup gives the projection a new epoch.
    let after = epoch().await;
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM login_history WHERE attempted_at < now() - interval '90 days'")
            .await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE created_at < now() - interval '31 days'").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM login_history WHERE attempted_at > now() - interval '1 day'")
            .await,
        recent_history
    );
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE created_at > now() - interval '1 day'").await,
        recent_sessions
    );
    // The log is not touched, and neither is what was projected from it elsewhere.
    assert_eq!(count("SELECT count(*) FROM processed_events").await, 350);
}

// ---- lanes: concurrent transactions that meet on a row of another partition ---------------

fn story_event(id: u32, ty: &str, min: i64, subject: &str, data: serde_json::Value) -> Event {
    let time = "2026-11-20T10:00:00Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        + chrono::TimeDelta::minutes(min);
    common::event(0x1a_0000 + id as u128, ty, time, subject, data)
}

fn message(e: &Event, partition: i32, offset: i64) -> authtrail::projector::LogMessage {
    authtrail::projector::LogMessage {
        topic: "lanes".into(),
        partition,
        offset,
        key: Some(e.partition_key().into_bytes()),
        payload: Some(e.to_json_bytes()),
    }
}

/// Waits until some transaction in `pool`'s database waits for a lock.
async fn someone_waits(pool: &sqlx::PgPool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND a.datname = current_database())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transaction waited for the lock"
        );
        tokio::task::yield_now().await;
    }
}

/// Applies `batch` in its own transaction as a worker does: a batch that fails (the epoch guard)
/// is retried afresh.
async fn apply_retrying(
    pool: &sqlx::PgPool,
    rules: &authtrail_projections::Rules,
    batch: &[authtrail::projector::LogMessage],
    cache: &mut authtrail::projector::Cache,
) -> usize {
    let mut failures = 0;
    loop {
        let mut tx = pool.begin().await.unwrap();
        match authtrail::projector::apply_batch(
            &mut tx,
            "p",
            rules,
            batch,
            &Default::default(),
            cache,
            None,
        )
        .await
        {
            Ok(_) => {
                tx.commit().await.unwrap();
                cache.committed(rules);
                return failures;
            }
            Err(e) => {
                assert!(
                    e.to_string()
                        .contains(authtrail::projector::sink::EPOCH_CHANGED),
                    "{e}"
                );
                failures += 1;
                assert!(failures < 5, "the batch kept failing: {e}");
            }
        }
    }
}

/// Lane 1 holds a user's session in its cache; lane 0 projects an admin's revocation of that
/// session (an event of another subject, so another partition). Whichever transaction gets
/// there first, the stored session ends up with both the activity and the revocation: the
/// guard on the projection's epoch makes the one that read too early start over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lanes_never_lose_a_revocation_of_another_partitions_session() {
    use authtrail::projector::{apply_batch, Cache};
    let (_db, pool) = migrated().await;
    let rules = authtrail_projections::Rules::default();
    let user = "u-lanes";
    let login = story_event(
        1,
        "login.succeeded",
        0,
        user,
        serde_json::json!({"session_id": "s_shared", "login_method": "password",
            "expires_at": "2026-11-20T11:00:00Z", "ip": "81.2.69.142"}),
    );
    let activity = |id, min| {
        story_event(
            id,
            "session.activity",
            min,
            user,
            serde_json::json!({"session_id": "s_shared"}),
        )
    };
    let revoke = |id, min| {
        story_event(
            id,
            "session.revoked",
            min,
            "admin-1",
            serde_json::json!({"scope": "one", "session_id": "s_shared",
                "reason": "admin_action", "revoked_by": "admin-1"}),
        )
    };
    let mut lane1 = Cache::new(1000);
    // Lane 1 (partition 1) projects the login and keeps the session in its cache.
    apply_retrying(&pool, &rules, &[message(&login, 1, 0)], &mut lane1).await;

    // 1. Lane 1 first: its activity is written but not committed when lane 0's revocation
    //    arrives; lane 0 waits for it and then reads the session again.
    let mut t1 = pool.begin().await.unwrap();
    apply_batch(
        &mut t1,
        "p",
        &rules,
        &[message(&activity(2, 5), 1, 1)],
        &Default::default(),
        &mut lane1,
        None,
    )
    .await
    .unwrap();
    let revoking = {
        let pool = pool.clone();
        let rules = rules.clone();
        let batch = [message(&revoke(3, 6), 0, 0)];
        tokio::spawn(async move {
            let mut lane0 = Cache::new(1000);
            let n = apply_retrying(&pool, &rules, &batch, &mut lane0).await;
            (n, lane0)
        })
    };
    someone_waits(&pool).await;
    t1.commit().await.unwrap();
    lane1.committed(&rules);
    let (_, mut lane0) = revoking.await.unwrap();
    let s: (
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT revoked_at, last_activity_at FROM sessions WHERE session_id = 's_shared'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(s.0, Some(revoke(3, 6).time), "the revocation stands");
    assert_eq!(s.1, activity(2, 5).time, "the activity stands");

    // 2. Lane 0 first: lane 1 holds a new session in its cache (with the current epoch) when
    //    lane 0's revocation of it is written but not committed; lane 1's next batch must not
    //    write its cached copy over the revocation.
    let login2 = story_event(
        4,
        "login.succeeded",
        10,
        user,
        serde_json::json!({"session_id": "s_second", "login_method": "password",
            "expires_at": "2026-11-20T11:00:00Z", "ip": "81.2.69.142"}),
    );
    apply_retrying(&pool, &rules, &[message(&login2, 1, 2)], &mut lane1).await;
    let revoke2 = story_event(
        5,
        "session.revoked",
        20,
        "admin-1",
        serde_json::json!({"scope": "one", "session_id": "s_second",
            "reason": "admin_action", "revoked_by": "admin-1"}),
    );
    let mut t0 = pool.begin().await.unwrap();
    apply_batch(
        &mut t0,
        "p",
        &rules,
        &[message(&revoke2, 0, 1)],
        &Default::default(),
        &mut lane0,
        None,
    )
    .await
    .unwrap();
    let active = {
        let pool = pool.clone();
        let rules = rules.clone();
        let later = story_event(
            6,
            "session.activity",
            21,
            user,
            serde_json::json!({"session_id": "s_second"}),
        );
        let batch = [message(&later, 1, 3)];
        tokio::spawn(async move { apply_retrying(&pool, &rules, &batch, &mut lane1).await })
    };
    someone_waits(&pool).await;
    t0.commit().await.unwrap();
    active.await.unwrap();
    let revoked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE session_id = 's_second'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(revoked, Some(revoke2.time), "the revocation stands");
}
