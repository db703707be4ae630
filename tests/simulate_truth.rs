//! The simulator as ground truth: its stream (a backfill, then live), published through the real
//! intake with a backfill credential, is never ahead of the wall clock, never leaves a user above
//! the concurrent-session limit, and its labels file names every injected attack's events.

mod common;

use authtrail::simulate::catalog;
use authtrail_events::{parse, Event, EventData};
use common::api::{spawn_api_with, Options};
use common::app::TEST_API_KEY;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;

/// The user agent an event names, if any.
fn user_agent(e: &Event) -> Option<&str> {
    match &e.data {
        EventData::LoginSucceeded(d) => d.user_agent.as_deref(),
        EventData::LoginFailed(d) => d.user_agent.as_deref(),
        EventData::TokenRefreshed(d) => d.user_agent.as_deref(),
        EventData::SessionActivity(d) => d.user_agent.as_deref(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulated_stream_is_never_ahead_of_the_clock_or_the_session_limit_and_is_labelled() {
    let app = spawn_api_with(Options::default(), |_| {}).await;
    let labels = tempfile_path("labels.ndjson");
    let out = tokio::task::spawn_blocking({
        let (url, labels) = (app.url(""), labels.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_authtrail"))
                .args(["simulate", "--http", &url, "--api-key", TEST_API_KEY])
                .args(["--users", "300", "--backfill", "1d", "--rate", "400"])
                .args(["--duration", "4s", "--seed", "18", "--attack-every", "150"])
                .args(["--batch", "500", "--no-progress", "--labels"])
                .arg(&labels)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "simulate failed: {stderr}");
    let total: i64 = app.topic.end_offsets().await.iter().sum();
    assert!(total >= 20_000, "only {total} events: {stderr}");
    let raws = app
        .topic
        .read(total as usize, Duration::from_secs(60))
        .await;

    // 1. No event's time is after the moment the broker stored it (+1 s).
    let mut events = BTreeMap::new();
    for raw in &raws {
        let e = parse(&raw.payload).expect("a contract event");
        let stored = raw.timestamp.expect("a broker timestamp");
        let ahead = e.time.timestamp_millis() - stored;
        assert!(
            ahead <= 1_000,
            "{} {} is {ahead} ms ahead of the broker",
            e.id,
            e.event_type().as_str()
        );
        events.insert(e.id, e);
    }

    // 2. No user above the concurrent-session limit now.
    app.settle().await;
    let over: Vec<(String, i64)> = sqlx::query_as(
        "SELECT user_id, count(*) FROM sessions_now WHERE status = 'active' \
         GROUP BY user_id HAVING count(*) > $1",
    )
    .bind(app.config.projector.rules().max_sessions as i64)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(over.is_empty(), "users above the session limit: {over:?}");

    // 3. The labels name every attack's events, and only published ones.
    let text = std::fs::read_to_string(&labels).unwrap();
    let mut labelled = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id: Uuid = v["event_id"].as_str().unwrap().parse().unwrap();
        assert!(
            events.contains_key(&id),
            "label of an unpublished event {id}"
        );
        assert!(v["attack_id"]
            .as_str()
            .is_some_and(|a| a.parse::<Uuid>().is_ok()));
        kinds.insert(v["attack"].as_str().unwrap().to_owned());
        labelled.insert(id);
    }
    for e in events.values() {
        if user_agent(e).is_some_and(|ua| catalog::ATTACK_USER_AGENTS.contains(&ua)) {
            assert!(
                labelled.contains(&e.id),
                "attack event {} is not labelled",
                e.id
            );
        }
    }
    assert!(kinds.len() >= 6, "attack kinds labelled: {kinds:?}");
    let _ = std::fs::remove_file(&labels);
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("authtrail-{}-{name}", Uuid::new_v4().simple()))
}
