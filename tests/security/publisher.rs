//! What an intake credential may append: its grant's types and sources, within the time window,
//! stamped with who it is. Through the real intake (`POST /v1/events`) and broker.

use crate::common::api::{admin_token, login_failed, spawn_api, spawn_api_with, Options, IP_GB};
use crate::common::app::{spawn_app_with, TestApp, TEST_API_KEY};
use authtrail::auth::Scope;
use authtrail::config::{ApiKeyConfig, Config, Span};
use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// A plain auth-service key: the default grant (`auth.api_keys`).
const PLAIN_KEY: &str = "plain-auth-service-key-0123456789abcdef";
/// A named key limited to failed logins from `/services/django*`.
const DJANGO_KEY: &str = "django-key-0123456789abcdef0123456789";

fn keys(c: &mut Config) {
    c.auth.api_keys = vec![PLAIN_KEY.into()];
    c.auth.keys.insert(
        "django".into(),
        ApiKeyConfig {
            key: DJANGO_KEY.into(),
            scopes: vec![Scope::Publish],
            types: Some(vec![authtrail::events::EventType::LoginFailed]),
            sources: vec!["/services/django*".into()],
            ..Default::default()
        },
    );
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn event(ty: &str, source: &str, time: DateTime<Utc>, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4(),
        "source": source,
        "type": ty,
        "time": ts(time),
        "subject": "victim-1",
        "schemaversion": 1,
        "data": data,
    })
}

fn failed_login(source: &str, time: DateTime<Utc>) -> Value {
    event(
        "login.failed",
        source,
        time,
        json!({"identifier": "victim@example.com", "failure_reason": "bad_password"}),
    )
}

fn admin_action() -> Value {
    event(
        "admin.action",
        "/services/auth",
        Utc::now(),
        json!({"action": "sessions.revoke_all", "actor": "admin-1", "target_user": "victim-1"}),
    )
}

fn review() -> Value {
    event(
        "security_event.reviewed",
        "/services/auth",
        Utc::now(),
        json!({"security_event_id": Uuid::new_v4(), "reviewer": "attacker"}),
    )
}

/// POSTs one event with `key`; the status and problem body.
async fn post(app: &TestApp, key: &str, event: &Value) -> (StatusCode, Value) {
    let r = app
        .client()
        .post(app.events_url())
        .header("x-api-key", key)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The first refused event's field.
fn field(problem: &Value) -> &str {
    problem["errors"][0]["field"].as_str().unwrap_or_default()
}

/// POSTs `event` with `key` and checks it is refused with `status`, naming `field` in the
/// first listed error with a reason containing `because`.
async fn assert_refused(
    app: &TestApp,
    key: &str,
    event: &Value,
    (status, field_name, because): (StatusCode, &str, &str),
) {
    let (got, problem) = post(app, key, event).await;
    assert_eq!((got, field(&problem)), (status, field_name), "{problem}");
    let reason = problem["errors"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(because), "{problem}");
}

async fn appended(app: &TestApp) -> i64 {
    app.topic.end_offsets().await.iter().sum()
}

#[tokio::test]
async fn an_auth_service_key_cannot_forge_admin_actions_or_reviews() {
    let app = spawn_app_with(keys).await;
    for forged in [admin_action(), review()] {
        let refusal = (StatusCode::FORBIDDEN, "type", "authtrail's own API");
        assert_refused(&app, PLAIN_KEY, &forged, refusal).await;
    }
    // Not even the most privileged configured key can.
    let (status, _) = post(&app, TEST_API_KEY, &admin_action()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(appended(&app).await, 0, "nothing was appended");
}

#[tokio::test]
async fn a_publisher_cannot_claim_authtrails_own_source() {
    let app = spawn_app_with(keys).await;
    for source in ["/authtrail/api", "/AuthTrail/api", "/authtrail"] {
        let forged = failed_login(source, Utc::now());
        let refusal = (StatusCode::FORBIDDEN, "source", "authtrail's own");
        assert_refused(&app, PLAIN_KEY, &forged, refusal).await;
    }
    assert_eq!(appended(&app).await, 0);
}

#[tokio::test]
async fn a_key_publishes_only_its_configured_types_and_sources() {
    let app = spawn_app_with(keys).await;
    let ok = failed_login("/services/django-auth", Utc::now());
    assert_eq!(post(&app, DJANGO_KEY, &ok).await.0, StatusCode::OK);
    let elsewhere = failed_login("/services/other", Utc::now());
    let refusal = (StatusCode::FORBIDDEN, "source", "only as /services/django*");
    assert_refused(&app, DJANGO_KEY, &elsewhere, refusal).await;
    let login = event(
        "password.changed",
        "/services/django-auth",
        Utc::now(),
        json!({}),
    );
    let refusal = (
        StatusCode::FORBIDDEN,
        "type",
        "may not publish password.changed",
    );
    assert_refused(&app, DJANGO_KEY, &login, refusal).await;
    assert_eq!(appended(&app).await, 1);
}

#[tokio::test]
async fn every_appended_event_names_the_credential_that_appended_it() {
    let app = spawn_app_with(keys).await;
    // A publisher cannot name someone else.
    let mut claimed = failed_login("/services/django-auth", Utc::now());
    claimed["publisher"] = json!("api-key:someone-else");
    let refusal = (StatusCode::BAD_REQUEST, "publisher", "stamped by authtrail");
    assert_refused(&app, DJANGO_KEY, &claimed, refusal).await;

    let sent = failed_login("/services/django-auth", Utc::now());
    assert_eq!(post(&app, DJANGO_KEY, &sent).await.0, StatusCode::OK);
    let stored = app.topic.read(1, Duration::from_secs(30)).await;
    let stored: Value = serde_json::from_slice(&stored[0].payload).unwrap();
    assert_eq!(stored["id"], sent["id"]);
    assert_eq!(stored["publisher"], "api-key:django");
}

#[tokio::test]
async fn events_dated_beyond_the_clock_skew_are_refused() {
    let app = spawn_app_with(keys).await;
    // What the demo used to do all day: a login 45 minutes ahead of the clock.
    let ahead = failed_login("/services/auth", Utc::now() + TimeDelta::minutes(45));
    let refusal = (StatusCode::BAD_REQUEST, "time", "45m ahead");
    assert_refused(&app, PLAIN_KEY, &ahead, refusal).await;
    let within = failed_login("/services/auth", Utc::now() + TimeDelta::seconds(60));
    assert_eq!(post(&app, PLAIN_KEY, &within).await.0, StatusCode::OK);
    assert_eq!(appended(&app).await, 1);
}

#[tokio::test]
async fn backdating_beyond_the_age_limit_needs_the_backfill_scope() {
    let app = spawn_app_with(|c| {
        keys(c);
        c.ingest.max_age = Span::from_secs(3_600);
    })
    .await;
    let old = failed_login("/services/auth", Utc::now() - TimeDelta::hours(2));
    let refusal = (StatusCode::BAD_REQUEST, "time", "backfill scope");
    assert_refused(&app, PLAIN_KEY, &old, refusal).await;
    assert_eq!(appended(&app).await, 0);
    // The fixtures' key holds the backfill scope.
    assert_eq!(post(&app, TEST_API_KEY, &old).await.0, StatusCode::OK);
}

#[tokio::test]
async fn introspection_needs_its_own_scope() {
    let app = spawn_api_with(Options { projector: false }, keys).await;
    let ask = |key: &'static str| {
        app.client
            .post(app.url("/api/v1/sessions/introspect"))
            .header("x-api-key", key)
            .json(&json!({"session_id": "s-1"}))
            .send()
    };
    assert_eq!(
        ask(PLAIN_KEY).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_ne!(
        ask(TEST_API_KEY).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

/// Reviews take effect in log order: a review backdated to 1970 does not replace the one the
/// log already holds, and the security event shows who published what it was derived from.
#[tokio::test]
async fn a_backdated_review_cannot_overrule_the_first_review() {
    let app = spawn_api().await;
    let t = Utc::now() - TimeDelta::minutes(5);
    app.publish(
        (0..3)
            .map(|i| login_failed("ursula", t + TimeDelta::seconds(i), IP_GB))
            .collect(),
    )
    .await;
    app.settle().await;
    let list = app
        .get("/api/v1/admin/security-events?user=ursula", &admin_token())
        .await;
    let item = list.items()[0].clone();
    assert_eq!(item["metadata"]["publisher"], "test", "{item}");
    let id: Uuid = item["id"].as_str().unwrap().parse().unwrap();

    let review = |time: DateTime<Utc>, reviewer: &str| {
        let mut e = event(
            "security_event.reviewed",
            "/authtrail/api",
            time,
            json!({"security_event_id": id, "reviewer": reviewer}),
        );
        e["subject"] = json!("ursula");
        e
    };
    app.publish(vec![review(Utc::now(), "first-admin")]).await;
    app.publish(vec![review(DateTime::UNIX_EPOCH, "backdating-admin")])
        .await;
    app.settle().await;
    let (reviewer,): (String,) =
        sqlx::query_as("SELECT reviewer FROM security_event_reviews WHERE security_event_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(reviewer, "first-admin");
}
