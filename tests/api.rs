//! The query API through real HTTP, against the real broker and PostgreSQL, with the projector
//! running: each route's happy path from published fixtures, read-your-writes revocations and
//! introspection, the admin audit trail, the authorisation matrix, the JWT negative suite,
//! cursor pagination under concurrent inserts, rate limits, bad parameters, the SSE stream and
//! the OpenAPI document's coverage. Alerts (issue 19) are in `api/alerts.rs`.

mod common;

#[path = "api/alerts.rs"]
mod alerts;
#[path = "api/erasure.rs"]
mod erasure;

use common::api::*;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn ids(a: &Answer, key: &str) -> Vec<String> {
    a.items()
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(a: &'a Answer, key: &str, value: &str) -> &'a Value {
    a.items()
        .iter()
        .find(|i| i[key] == value)
        .unwrap_or_else(|| panic!("no item with {key} = {value} in {:#}", a.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_sessions_history_revocation_and_introspection() {
    let app = spawn_api().await;
    app.publish(vec![
        login_failed("alice", ago(50), IP_GB),
        // Sessions younger than the 30-minute idle timeout are active.
        login_ok("alice", "s-a1", ago(25), IP_GB, UA_DESKTOP),
        login_ok("alice", "s-a2", ago(20), IP_GB, UA_MOBILE),
        login_ok("alice", "s-a3", ago(10), IP_GB, UA_DESKTOP),
        device_trusted("alice", "s-a1", ago(24)),
        login_ok("bob", "s-b1", ago(15), IP_SE, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let alice = user_token("alice", Some("s-a1"));
    let bob = user_token("bob", Some("s-b1"));

    // My sessions: active ones, newest first, the current one marked, device/geo/trust shown.
    let mine = app.get("/api/v1/auth/sessions", &alice).await;
    assert_eq!(mine.status, StatusCode::OK, "{:#}", mine.body);
    assert_eq!(ids(&mine, "session_id"), ["s-a3", "s-a2", "s-a1"]);
    let a1 = find(&mine, "session_id", "s-a1");
    assert_eq!(a1["current"], true);
    assert_eq!(a1["status"], "active");
    assert_eq!(a1["trusted_device"], true);
    assert_eq!(a1["country_code"], "GB");
    assert_eq!(a1["city"], "London");
    assert_eq!(a1["device_type"], "desktop");
    assert!(a1["last_activity_at"].is_string());
    let a2 = find(&mine, "session_id", "s-a2");
    assert_eq!(a2["current"], false);
    assert_eq!(a2["device_type"], "mobile");
    assert_eq!(a2["trusted_device"], false);
    assert!(mine.body.get("next_cursor").is_none());

    // One session; someone else's is 404 (not 403), as is one that does not exist.
    let one = app.get("/api/v1/auth/sessions/s-a2", &alice).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.header("cache-control"), Some("no-store"));
    assert_eq!(one.body["session_id"], "s-a2");
    for (path, token) in [
        ("/api/v1/auth/sessions/s-b1", &alice),
        ("/api/v1/auth/sessions/s-a1", &bob),
        ("/api/v1/auth/sessions/nope", &alice),
    ] {
        let a = app.get(path, token).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.header("content-type"), Some("application/problem+json"));
        let a = app.delete(path, token).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "DELETE {path}");
    }

    // My login history: every attempt, newest first.
    let h = app.get("/api/v1/auth/login-history", &alice).await;
    assert_eq!(h.status, StatusCode::OK);
    let outcomes: Vec<bool> = h
        .items()
        .iter()
        .map(|i| i["success"].as_bool().unwrap())
        .collect();
    assert_eq!(outcomes, [true, true, true, false]);
    assert_eq!(h.items()[3]["failure_reason"], "bad_password");
    assert_eq!(h.items()[0]["session_id"], "s-a3");

    // Revoke one without waiting: 202 with where the event landed.
    let r = app.delete("/api/v1/auth/sessions/s-a3", &alice).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:#}", r.body);
    assert_eq!(r.body["event_type"], "session.revoked");
    assert_eq!(r.body["projected"], false);
    assert!(r.body["partition"].as_i64().unwrap() >= 0);
    assert!(r.body["offset"].as_i64().unwrap() >= 0);
    assert!(r.body["event_id"].as_str().unwrap().len() == 36);

    // Revoke one waiting: 200 only once projected; GET and introspection agree at once.
    assert_eq!(app.introspect("s-a2").await.body["active"], true);
    let r = app
        .delete("/api/v1/auth/sessions/s-a2?wait=true", &alice)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["projected"], true);
    let g = app.get("/api/v1/auth/sessions/s-a2", &alice).await;
    assert_eq!(g.body["status"], "revoked");
    assert_eq!(g.body["revoked_by"], "alice");
    assert_eq!(g.body["revoked_reason"], "user_request");
    assert_eq!(app.introspect("s-a2").await.body, json!({"active": false}));
    // Revoking it again conflicts.
    let again = app.delete("/api/v1/auth/sessions/s-a2", &alice).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["session_status"], "revoked");
    assert_eq!(again.body["status"], 409);

    // Introspection of an active session: the facts; of unknown ids: exactly inactive.
    let i = app.introspect("s-a1").await;
    assert_eq!(i.status, StatusCode::OK);
    assert_eq!(i.body["active"], true);
    assert_eq!(i.body["user"], "alice");
    assert_eq!(i.body["session_id"], "s-a1");
    assert!(i.body["expires_at"].is_string());
    assert_eq!(
        app.introspect("no-such-session").await.body,
        json!({"active": false})
    );
    assert_eq!(app.introspect("").await.body, json!({"active": false}));

    // Log out everywhere else: the current session stays.
    app.publish(vec![login_ok("alice", "s-a4", ago(5), IP_GB, UA_DESKTOP)])
        .await;
    app.settle().await;
    let r = app.delete("/api/v1/auth/sessions?wait=true", &alice).await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let active = app.get("/api/v1/auth/sessions", &alice).await;
    assert_eq!(ids(&active, "session_id"), ["s-a1"]);
    let all = app.get("/api/v1/auth/sessions?status=all", &alice).await;
    let statuses: BTreeMap<String, String> = all
        .items()
        .iter()
        .map(|i| {
            (
                i["session_id"].as_str().unwrap().into(),
                i["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("s-a1".into(), "active".into()),
            ("s-a2".into(), "revoked".into()),
            ("s-a3".into(), "revoked".into()),
            ("s-a4".into(), "revoked".into()),
        ])
    );
    let revoked = app
        .get("/api/v1/auth/sessions?status=revoked", &alice)
        .await;
    assert_eq!(revoked.items().len(), 3);
    // Bob's session was not touched.
    assert_eq!(app.introspect("s-b1").await.body["active"], true);

    // include_current=true ends the current one too.
    let r = app
        .delete(
            "/api/v1/auth/sessions?include_current=true&wait=true",
            &alice,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.introspect("s-a1").await.body, json!({"active": false}));
    // The token of the ended session is refused from now on (within the session cache's
    // second), and bob's token still works.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let a = app.get("/api/v1/auth/sessions", &alice).await;
        if a.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
        assert!(a.items().is_empty());
        assert!(
            std::time::Instant::now() < deadline,
            "alice's token still works"
        );
    }
    assert_eq!(
        app.get("/api/v1/auth/sessions", &bob).await.status,
        StatusCode::OK
    );

    // A person's token without sid is refused (auth.require_sid, the default).
    let no_sid = common::app::hs256_jwt(
        common::app::TEST_HS256_SECRET,
        json!({"sub": "bob", "role": "user", "sid": null}),
    );
    let r = app.delete("/api/v1/auth/sessions", &no_sid).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_monitoring_revocation_review_stats_and_audit() {
    let app = spawn_api().await;
    let t0 = chrono::Utc::now();
    let t = |minutes: i64| t0 - chrono::Duration::minutes(minutes);
    app.publish(vec![
        login_ok("carol", "s-c1", t(28), IP_GB, UA_DESKTOP),
        // New country: suspicious.
        login_ok("carol", "s-c2", t(25), IP_SE, UA_MOBILE),
        login_ok("dave", "s-d1", t(20), IP_GB, UA_DESKTOP),
        login_failed("dave", t(15), IP_SE),
        login_failed("dave", t(14), IP_SE),
        login_failed("dave", t(13), IP_SE),
        // A fourth failure after three in 15 minutes: suspicious.
        login_failed("dave", t(12), IP_SE),
    ])
    .await;
    app.settle().await;
    let admin = admin_token();

    // Sessions with filters.
    let all = app.get("/api/v1/admin/sessions", &admin).await;
    assert_eq!(all.status, StatusCode::OK, "{:#}", all.body);
    assert_eq!(ids(&all, "session_id"), ["s-d1", "s-c2", "s-c1"]);
    let by_user = app.get("/api/v1/admin/sessions?user=carol", &admin).await;
    assert_eq!(ids(&by_user, "session_id"), ["s-c2", "s-c1"]);
    let by_country = app.get("/api/v1/admin/sessions?country=se", &admin).await;
    assert_eq!(ids(&by_country, "session_id"), ["s-c2"]);
    let by_ip = app
        .get(&format!("/api/v1/admin/sessions?ip={IP_GB}"), &admin)
        .await;
    assert_eq!(ids(&by_ip, "session_id"), ["s-d1", "s-c1"]);
    let by_device = app
        .get("/api/v1/admin/sessions?device_type=mobile", &admin)
        .await;
    assert_eq!(ids(&by_device, "session_id"), ["s-c2"]);
    let since = ts(t(22));
    let recent = app
        .get(
            &format!("/api/v1/admin/sessions?since={}", urlencode(&since)),
            &admin,
        )
        .await;
    assert_eq!(ids(&recent, "session_id"), ["s-d1"]);
    let user_sessions = app.get("/api/v1/admin/users/carol/sessions", &admin).await;
    assert_eq!(ids(&user_sessions, "session_id"), ["s-c2", "s-c1"]);
    assert_eq!(
        find(&user_sessions, "session_id", "s-c2")["suspicious"],
        true
    );

    // Admin revoke one (waited), then force logout everywhere (waited).
    let r = app
        .delete("/api/v1/admin/sessions/s-c1?wait=true", &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let c1 = app
        .get("/api/v1/admin/users/carol/sessions?status=revoked", &admin)
        .await;
    assert_eq!(ids(&c1, "session_id"), ["s-c1"]);
    assert_eq!(c1.items()[0]["revoked_by"], "admin-1");
    assert_eq!(c1.items()[0]["revoked_reason"], "admin_revoke");
    assert_eq!(
        app.delete("/api/v1/admin/sessions/nope", &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .delete("/api/v1/admin/users/carol/sessions?wait=true", &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(app.introspect("s-c2").await.body, json!({"active": false}));
    assert_eq!(app.introspect("s-d1").await.body["active"], true);
    let active = app
        .get("/api/v1/admin/sessions?status=active", &admin)
        .await;
    assert_eq!(ids(&active, "session_id"), ["s-d1"]);

    // Login history with filters, and the suspicious attempts.
    let failed = app
        .get("/api/v1/admin/login-history?success=false", &admin)
        .await;
    assert_eq!(failed.items().len(), 4);
    let by_identifier = app
        .get(
            "/api/v1/admin/login-history?identifier=CAROL@example.com",
            &admin,
        )
        .await;
    assert_eq!(by_identifier.items().len(), 2);
    let by_ip = app
        .get(
            &format!("/api/v1/admin/login-history?ip={IP_SE}&user=dave"),
            &admin,
        )
        .await;
    assert_eq!(by_ip.items().len(), 4);
    let window = app
        .get(
            &format!(
                "/api/v1/admin/login-history?since={}&until={}",
                urlencode(&ts(t(16))),
                urlencode(&ts(t(13)))
            ),
            &admin,
        )
        .await;
    assert_eq!(window.items().len(), 2, "{:#}", window.body);
    let suspicious_history = app
        .get("/api/v1/admin/login-history?suspicious=true", &admin)
        .await;
    let suspicious = app.get("/api/v1/admin/security/suspicious", &admin).await;
    assert_eq!(suspicious.status, StatusCode::OK);
    assert_eq!(suspicious.items(), suspicious_history.items());
    let reasons: BTreeSet<String> = suspicious
        .items()
        .iter()
        .map(|i| i["suspicious_reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(suspicious.items().len(), 2, "{:#}", suspicious.body);
    assert_eq!(reasons.len(), 2, "{reasons:?}");

    // Security events: filters, review (waited), unreviewed_only.
    let events = app
        .get(
            "/api/v1/admin/security-events?type=suspicious_activity",
            &admin,
        )
        .await;
    assert_eq!(events.status, StatusCode::OK);
    // Carol's login from a new country; dave's failures are a brute-force alert, not an event
    // each (tests/api/alerts.rs).
    assert_eq!(events.items().len(), 1, "{:#}", events.body);
    let target = events.items()[0]["id"].as_str().unwrap().to_owned();
    let severity = events.items()[0]["severity"].as_str().unwrap().to_owned();
    let by_severity = app
        .get(
            &format!("/api/v1/admin/security-events?severity={severity}"),
            &admin,
        )
        .await;
    assert!(by_severity
        .items()
        .iter()
        .all(|i| i["severity"] == severity.as_str()));
    assert!(by_severity
        .items()
        .iter()
        .any(|i| i["id"] == target.as_str()));
    let unreviewed_url =
        "/api/v1/admin/security-events?type=suspicious_activity&unreviewed_only=true";
    let before = app.get(unreviewed_url, &admin).await;
    assert!(before.items().iter().any(|i| i["id"] == target.as_str()));
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/security-events/{target}/review?wait=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["event_type"], "security_event.reviewed");
    let unreviewed = app.get(unreviewed_url, &admin).await;
    assert!(unreviewed.items().is_empty(), "{:#}", unreviewed.body);
    let reviewed = app
        .get(
            "/api/v1/admin/security-events?type=suspicious_activity",
            &admin,
        )
        .await;
    let t = find(&reviewed, "id", &target);
    assert_eq!(t["reviewed"], true);
    assert_eq!(t["reviewed_by"], "admin-1");
    let missing = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/admin/security-events/{}/review",
                uuid::Uuid::new_v4()
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Stats: today's counts, by country, by device type, failing addresses.
    let s = app.get("/api/v1/admin/stats/logins?days=7", &admin).await;
    assert_eq!(s.status, StatusCode::OK, "{:#}", s.body);
    assert_eq!(s.body["days"], 7);
    assert_eq!(s.body["per_day"].as_array().unwrap().len(), 7);
    assert_eq!(s.body["successful"], 3);
    assert_eq!(s.body["failed"], 4);
    assert_eq!(s.body["total"], 7);
    assert_eq!(s.body["suspicious"], 2);
    // Two whole UTC days: the fixtures are minutes to hours old, so "today" alone misses them
    // in the first hours after UTC midnight.
    let geo = app.get("/api/v1/admin/stats/geo?days=2", &admin).await;
    assert_eq!(geo.status, StatusCode::OK);
    let by_country: BTreeMap<String, i64> = geo.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("?").to_owned(),
                g["total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_country,
        BTreeMap::from([("GB".into(), 2), ("SE".into(), 5)])
    );
    let devices = app.get("/api/v1/admin/stats/devices", &admin).await;
    let by_device: BTreeMap<String, i64> = devices.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("?").to_owned(),
                g["total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_device,
        BTreeMap::from([("desktop".into(), 6), ("mobile".into(), 1)])
    );
    let top = app
        .get("/api/v1/admin/stats/top-failing-ips?limit=5", &admin)
        .await;
    assert_eq!(top.status, StatusCode::OK);
    assert_eq!(
        top.body["ips"],
        json!([{
            "ip": IP_SE, "failures": 4, "accounts": 1,
            "last_failure_at": top.body["ips"][0]["last_failure_at"],
        }])
    );

    // Every admin read and write above was appended as admin.action and projected as such.
    app.settle().await;
    let actions = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT metadata->>'action' FROM security_events WHERE event_type = 'admin_action'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let actions: BTreeSet<String> = actions.into_iter().collect();
    for a in [
        "sessions.list",
        "sessions.list_user",
        "sessions.revoke",
        "sessions.force_logout",
        "login_history.list",
        "security.suspicious",
        "security_events.list",
        "security_events.review",
        "stats.logins",
        "stats.geo",
        "stats.devices",
        "stats.top_failing_ips",
    ] {
        assert!(actions.contains(a), "no admin.action {a} in {actions:?}");
    }
    let actor: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT metadata->>'actor' FROM security_events WHERE event_type = 'admin_action'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor, ["admin-1"]);
    // The force logout's record names its target user.
    let target: Option<String> = sqlx::query_scalar(
        "SELECT user_id FROM security_events WHERE metadata->>'action' = 'sessions.force_logout'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(target.as_deref(), Some("carol"));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Every operation of the API: (method, path template, concrete path for the matrix).
fn operations(review_id: &str, alert_id: &str) -> Vec<(Method, &'static str, String)> {
    let m = |method: Method, template: &'static str, path: String| (method, template, path);
    vec![
        m(
            Method::POST,
            "/api/v1/admin/users/{id}/forget",
            "/api/v1/admin/users/carol/forget".into(),
        ),
        m(
            Method::GET,
            "/api/v1/auth/sessions",
            "/api/v1/auth/sessions".into(),
        ),
        m(
            Method::GET,
            "/api/v1/auth/sessions/{id}",
            "/api/v1/auth/sessions/s-a1".into(),
        ),
        m(
            Method::GET,
            "/api/v1/auth/login-history",
            "/api/v1/auth/login-history".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/sessions",
            "/api/v1/admin/sessions".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/users/{id}/sessions",
            "/api/v1/admin/users/alice/sessions".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/login-history",
            "/api/v1/admin/login-history".into(),
        ),
        m(
            Method::GET,
            "/api/v1/auth/alerts",
            "/api/v1/auth/alerts".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/alerts",
            "/api/v1/admin/alerts".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/alerts/{id}",
            format!("/api/v1/admin/alerts/{alert_id}"),
        ),
        m(
            Method::GET,
            "/api/v1/admin/security/suspicious",
            "/api/v1/admin/security/suspicious".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/as-of/{time}/users/{id}/sessions",
            "/api/v1/admin/as-of/2026-01-01T00:00:00Z/users/alice/sessions".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/security-events",
            "/api/v1/admin/security-events".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/security-events/stream",
            "/api/v1/admin/security-events/stream".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/stats/logins",
            "/api/v1/admin/stats/logins".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/stats/geo",
            "/api/v1/admin/stats/geo".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/stats/devices",
            "/api/v1/admin/stats/devices".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/stats/top-failing-ips",
            "/api/v1/admin/stats/top-failing-ips".into(),
        ),
        m(
            Method::GET,
            "/api/v1/admin/stats/peak-hours",
            "/api/v1/admin/stats/peak-hours".into(),
        ),
        m(
            Method::POST,
            "/api/v1/sessions/introspect",
            "/api/v1/sessions/introspect".into(),
        ),
        // Commands last: they change what the reads above would see.
        m(
            Method::POST,
            "/api/v1/admin/security-events/{id}/review",
            format!("/api/v1/admin/security-events/{review_id}/review"),
        ),
        m(
            Method::POST,
            "/api/v1/admin/alerts/{id}/review",
            format!("/api/v1/admin/alerts/{alert_id}/review"),
        ),
        m(
            Method::DELETE,
            "/api/v1/auth/sessions/{id}",
            "/api/v1/auth/sessions/s-a2".into(),
        ),
        m(
            Method::DELETE,
            "/api/v1/admin/sessions/{id}",
            "/api/v1/admin/sessions/s-b2".into(),
        ),
        m(
            Method::DELETE,
            "/api/v1/admin/users/{id}/sessions",
            "/api/v1/admin/users/erin/sessions".into(),
        ),
        m(
            Method::PUT,
            "/api/v1/auth/devices/{id}/name",
            "/api/v1/auth/devices/dev_s-a1/name".into(),
        ),
        m(
            Method::PUT,
            "/api/v1/auth/devices/{id}/trust",
            "/api/v1/auth/devices/dev_s-a1/trust".into(),
        ),
        m(
            Method::DELETE,
            "/api/v1/auth/devices/{id}/trust",
            "/api/v1/auth/devices/dev_s-a1/trust".into(),
        ),
        m(
            Method::DELETE,
            "/api/v1/auth/sessions",
            "/api/v1/auth/sessions".into(),
        ),
    ]
}

/// The status each caller gets (anonymous, user A, user B, admin, service).
fn expected(method: &Method, template: &str) -> [u16; 5] {
    match (method.as_str(), template) {
        ("GET", "/api/v1/auth/sessions")
        | ("GET", "/api/v1/auth/login-history")
        | ("GET", "/api/v1/auth/alerts") => [401, 200, 200, 200, 403],
        // A's session: B and the admin (as a person) do not own it.
        ("GET", "/api/v1/auth/sessions/{id}") => [401, 200, 404, 404, 403],
        ("DELETE", "/api/v1/auth/sessions/{id}") => [401, 202, 404, 404, 403],
        ("DELETE", "/api/v1/auth/sessions") => [401, 202, 202, 202, 403],
        // A's device: B and the admin (as a person) do not own it.
        ("PUT", "/api/v1/auth/devices/{id}/name")
        | ("PUT", "/api/v1/auth/devices/{id}/trust")
        | ("DELETE", "/api/v1/auth/devices/{id}/trust") => [401, 202, 404, 404, 403],
        ("POST", "/api/v1/sessions/introspect") => [401, 403, 403, 403, 200],
        // Erasure is a super_admin's (tests/api/erasure.rs runs it).
        ("POST", "/api/v1/admin/users/{id}/forget") => [401, 403, 403, 403, 403],
        ("POST", _) | ("DELETE", _) => [401, 403, 403, 202, 403],
        _ => [401, 403, 403, 200, 403],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorisation_matrix_and_openapi_coverage() {
    let app = spawn_api().await;
    app.publish(vec![
        login_ok("alice", "s-a1", ago(25), IP_GB, UA_DESKTOP),
        login_ok("alice", "s-a2", ago(20), IP_GB, UA_DESKTOP),
        login_ok("bob", "s-b1", ago(20), IP_GB, UA_DESKTOP),
        login_ok("bob", "s-b2", ago(10), IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let review_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM security_events LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let callers: [(&str, Option<String>); 5] = [
        ("anonymous", None),
        ("user A", Some(user_token("alice", Some("s-a1")))),
        ("user B", Some(user_token("bob", Some("s-b1")))),
        ("admin", Some(admin_token())),
        ("service", Some(service_token())),
    ];
    // The destructive user command runs with A last, so B and the admin meet A's live session.
    let order = [0usize, 2, 3, 4, 1];
    // Alice's second device raised a new_device alert.
    let alert_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM alerts WHERE user_id = 'alice' LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let ops = operations(&review_id.to_string(), &alert_id.to_string());
    let mut got = BTreeMap::new();
    let mut want = BTreeMap::new();
    for (method, template, path) in &ops {
        for &c in &order {
            let (who, token) = &callers[c];
            let mut r = app.client.request(method.clone(), app.url(path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if *method == Method::POST && path.ends_with("introspect") {
                r = r.json(&json!({"session_id": "s-a1"}));
            }
            if *method == Method::PUT && path.ends_with("/name") {
                r = r.json(&json!({"name": "Laptop"}));
            }
            // Headers only: the stream's body never ends.
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            if status >= 400 {
                assert_eq!(
                    resp.headers().get("content-type").unwrap(),
                    "application/problem+json",
                    "{method} {path} as {who}"
                );
            }
            drop(resp);
            let key = format!("{method} {template} as {who}");
            got.insert(key.clone(), status);
            want.insert(key, expected(method, template)[c]);
        }
    }
    assert_eq!(got, want);

    // The OpenAPI document lists exactly these operations, and every one is routed.
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "delete", "put", "patch"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                let op = &item[method];
                assert!(
                    op["responses"].as_object().unwrap().len() >= 2,
                    "{method} {path}"
                );
                assert!(
                    op["security"].is_array(),
                    "{method} {path} documents no security"
                );
            }
        }
    }
    let tested: BTreeSet<String> = ops.iter().map(|(m, t, _)| format!("{m} {t}")).collect();
    assert_eq!(documented, tested, "the document and the matrix disagree");
    // The bodies' schemas are components, and every reference resolves.
    let schemas = &doc.body["components"]["schemas"];
    for schema in [
        "Page_SessionView",
        "Page_LoginAttemptView",
        "Page_SecurityEventView",
        "Page_AlertView",
        "Page_NoticeView",
        "AlertDetail",
        "SessionView",
        "CommandAccepted",
        "Problem",
        "LoginStats",
        "GroupStats",
        "TopFailingIps",
        "PeakHours",
        "RenameRequest",
        "IntrospectRequest",
        "Introspection",
    ] {
        assert!(schemas.get(schema).is_some(), "schema {schema} missing");
    }
    let text = doc.body.to_string();
    let refs: BTreeSet<&str> = text
        .split("\"#/components/schemas/")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
        .collect();
    assert!(refs.len() >= 8, "{refs:?}");
    for r in refs {
        assert!(schemas.get(r).is_some(), "dangling reference to {r}");
    }
    // Unknown paths are 404; so is Swagger UI, off by default (tests/security/costs.rs turns
    // it on).
    assert_eq!(
        app.call(Method::GET, "/api/v1/nope", None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let ui = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::NOT_FOUND);

    // Per-route metrics.
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    let m = metrics.body.as_str().unwrap();
    assert!(m.contains("authtrail_api_requests_total"), "no api metrics");
    assert!(
        m.contains("route=\"/api/v1/admin/users/{id}/sessions\""),
        "metrics not per route"
    );
}

fn jwt_config(c: &mut authtrail::config::Config) {
    let keys = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/auth_keys");
    c.auth.jwt_algorithms = vec!["HS256".into(), "RS256".into()];
    c.auth.jwt_rs256_public_key = Some(keys.join("rs256-public.pem"));
    c.auth.jwt_issuer = Some("https://auth.test".into());
    c.auth.jwt_audience = Some("authtrail".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_negative_suite_is_all_401_with_a_generic_body() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let app = spawn_api_with(Options::default(), jwt_config).await;
    let keys = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/auth_keys");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |extra: Value| {
        let mut c = json!({"sub": "alice", "sid": "s-a1", "role": "user", "iss": "https://auth.test",
                           "aud": "authtrail", "exp": now + 600, "iat": now});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let secret = common::app::TEST_HS256_SECRET.as_bytes();
    let hs = |c: Value| {
        encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let rs_private = std::fs::read(keys.join("rs256-private.pem")).unwrap();
    let rs_public = std::fs::read(keys.join("rs256-public.pem")).unwrap();
    let rs = |c: Value| {
        encode(
            &Header::new(Algorithm::RS256),
            &c,
            &EncodingKey::from_rsa_pem(&rs_private).unwrap(),
        )
        .unwrap()
    };
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };

    // Controls: the same claims, correctly signed, pass.
    for good in [hs(claims(json!({}))), rs(claims(json!({})))] {
        let a = app.get("/api/v1/auth/sessions", &good).await;
        assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
    }

    let valid = hs(claims(json!({})));
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut sig_bytes = sig.as_bytes().to_vec();
    sig_bytes[10] = if sig_bytes[10] == b'A' { b'B' } else { b'A' };
    let tampered_sig = format!("{head}.{payload}.{}", String::from_utf8(sig_bytes).unwrap());
    let tampered_payload = format!("{head}.{}.{sig}", b64(&claims(json!({"sub": "mallory"}))));
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(json!({})))
    );
    let hs_with_rsa_public = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(&rs_public),
    )
    .unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        ("HS256 signed with the RSA public key", hs_with_rsa_public),
        (
            "expired beyond leeway",
            hs(claims(json!({"exp": now - 120}))),
        ),
        ("nbf in the future", hs(claims(json!({"nbf": now + 120})))),
        ("iat in the future", hs(claims(json!({"iat": now + 120})))),
        ("wrong iss", hs(claims(json!({"iss": "https://evil.test"})))),
        ("missing iss", hs(claims(json!({"iss": null})))),
        ("wrong aud", hs(claims(json!({"aud": "someone-else"})))),
        ("tampered signature", tampered_sig),
        ("tampered payload", tampered_payload),
        ("missing exp", hs(claims(json!({"exp": null})))),
        ("unknown role", hs(claims(json!({"role": "root"})))),
        (
            "wrong secret",
            encode(
                &Header::new(Algorithm::HS256),
                &claims(json!({})),
                &EncodingKey::from_secret(b"another-secret-that-is-at-least-32-bytes"),
            )
            .unwrap(),
        ),
        ("garbage", "garbage.garbage.garbage".into()),
        ("not base64", "!!!.???.***".into()),
    ];
    let generic = app
        .call(Method::GET, "/api/v1/auth/sessions", None, None)
        .await;
    assert_eq!(generic.status, StatusCode::UNAUTHORIZED);
    for (name, token) in &cases {
        for (method, path) in [
            (Method::GET, "/api/v1/auth/sessions"),
            (Method::GET, "/api/v1/admin/sessions"),
            (Method::POST, "/api/v1/sessions/introspect"),
        ] {
            let a = app
                .call(
                    method.clone(),
                    path,
                    Some(token),
                    Some(json!({"session_id": "s"})),
                )
                .await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {method} {path}"
            );
            assert_eq!(
                a.body, generic.body,
                "{name}: the body is not the generic one"
            );
            assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{name}");
            assert!(
                !a.body.to_string().contains(token.as_str()),
                "{name}: token echoed"
            );
        }
    }
    // Malformed headers too.
    for header in ["Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "bearer  "] {
        let a = app
            .client
            .get(app.url("/api/v1/auth/sessions"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), StatusCode::UNAUTHORIZED, "{header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pagination_returns_every_row_once_under_concurrent_inserts() {
    let app = spawn_api().await;
    // 60 attempts, in groups of 3 sharing one timestamp (ties are broken by id).
    let base = ago(300);
    let mut events = Vec::new();
    for i in 0..60i64 {
        let at = base + chrono::Duration::seconds((i / 3) * 7);
        events.push(login_failed("pat", at, IP_GB));
    }
    app.publish(events).await;
    app.settle().await;
    let before: BTreeSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM login_history WHERE user_id = 'pat'")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
    assert_eq!(before.len(), 60);

    let pat = user_token("pat", None);
    let mut seen: Vec<String> = Vec::new();
    let mut inserted_behind: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut last: Option<(String, String)> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/auth/login-history?limit=7&cursor={c}"),
            None => "/api/v1/auth/login-history?limit=7".to_owned(),
        };
        let page = app.get(&path, &pat).await;
        assert_eq!(page.status, StatusCode::OK, "{:#}", page.body);
        pages += 1;
        for item in page.items() {
            let key = (
                item["attempted_at"].as_str().unwrap().to_owned(),
                item["id"].as_str().unwrap().to_owned(),
            );
            // Stable order: time descending, id ascending within a time.
            if let Some((t, id)) = &last {
                let t0: chrono::DateTime<chrono::Utc> = t.parse().unwrap();
                let t1: chrono::DateTime<chrono::Utc> = key.0.parse().unwrap();
                assert!(
                    t1 < t0 || (t1 == t0 && key.1 > *id),
                    "order broken at {key:?}"
                );
            }
            last = Some(key.clone());
            seen.push(key.1);
        }
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        let Some((t, _)) = &last else { break };
        if cursor.is_none() {
            break;
        }
        // Between pages, rows arrive: newer than everything, at the boundary's very instant, and
        // older than the boundary (which the rest of the walk must still return).
        let boundary: chrono::DateTime<chrono::Utc> = t.parse().unwrap();
        let older = login_failed("pat", boundary - chrono::Duration::milliseconds(1), IP_SE);
        let older_id = older["id"].as_str().unwrap().to_owned();
        app.publish(vec![
            login_failed("pat", ago(1), IP_SE),
            login_failed("pat", boundary, IP_SE),
            older,
        ])
        .await;
        app.settle().await;
        inserted_behind.insert(older_id);
    }
    assert!(pages >= 9, "only {pages} pages");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a row was returned twice");
    let missing: Vec<_> = before.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "rows present before paging were skipped: {missing:?}"
    );
    // Rows inserted behind a boundary while paging lie ahead of the walk: it must reach them
    // (a login-history row's id is its event's id).
    assert!(inserted_behind.len() >= 8);
    let not_reached: Vec<_> = inserted_behind.difference(&unique).collect();
    assert!(
        not_reached.is_empty(),
        "rows inserted ahead of the walk were skipped: {not_reached:?}"
    );
    // Second walk, with a writer publishing (and the projector inserting) all the while.
    let snapshot: BTreeSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM login_history WHERE user_id = 'pat'")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Spread over the whole range the walk covers, before and behind its position.
                let at = base + chrono::Duration::seconds((n * 37) % 400);
                app.publish(vec![
                    login_failed("pat", at, IP_SE),
                    login_failed("pat", ago(0), IP_SE),
                ])
                .await;
                n += 1;
            }
            n
        })
    };
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/auth/login-history?limit=11&cursor={c}"),
            None => "/api/v1/auth/login-history?limit=11".to_owned(),
        };
        let page = app.get(&url, &pat).await;
        assert_eq!(page.status, StatusCode::OK);
        walked.extend(ids(&page, "id"));
        pages += 1;
        let Some(c) = page.body["next_cursor"].as_str() else {
            break;
        };
        cursor = Some(c.to_owned());
        // Let at least one more of the writer's batches land in the table before the next page.
        let done = common::projection::checkpoint_total(&app.pool, app.topic.name()).await;
        common::projection::wait_beyond(&app.pool, app.topic.name(), done, Duration::from_secs(60))
            .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.await.unwrap();
    // The walk spans the whole snapshot, and each wait between its pages saw at least one new
    // event projected (a batch holds two): the pages really were read while rows arrived.
    assert!(
        pages >= snapshot.len().div_ceil(11) && 2 * batches >= pages as i64,
        "{pages} pages for {} rows, {batches} batches written meanwhile",
        snapshot.len()
    );
    let unique: BTreeSet<String> = walked.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        walked.len(),
        "a row was returned twice under concurrent inserts"
    );
    let missing: Vec<_> = snapshot.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "rows present before the walk were skipped: {missing:?}"
    );

    // Bad cursors are refused with a problem, as is a cursor of another list.
    let other = app
        .get("/api/v1/auth/sessions?limit=1&status=all", &pat)
        .await;
    assert_eq!(other.status, StatusCode::OK);
    let bad = app
        .get("/api/v1/auth/login-history?cursor=not-a-cursor", &pat)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["type"], "urn:authtrail:problem:invalid-parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_per_caller() {
    let app = spawn_api_with(Options::default(), |c| {
        c.api.read_per_minute = 1;
        c.api.read_burst = 3;
        c.api.command_per_minute = 1;
        c.api.command_burst = 1;
    })
    .await;
    let alice = user_token("alice", Some("s-a1"));
    for _ in 0..3 {
        assert_eq!(
            app.get("/api/v1/auth/sessions", &alice).await.status,
            StatusCode::OK
        );
    }
    let limited = app.get("/api/v1/auth/login-history", &alice).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.header("content-type"),
        Some("application/problem+json")
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.body["retry_after"], retry);
    // Another caller has a budget of its own.
    let bob = user_token("bob", Some("s-b1"));
    assert_eq!(
        app.get("/api/v1/auth/sessions", &bob).await.status,
        StatusCode::OK
    );
    // Commands have their own budget: one, then 429.
    assert_eq!(
        app.delete("/api/v1/auth/sessions", &bob).await.status,
        StatusCode::ACCEPTED
    );
    let r = app.delete("/api/v1/auth/sessions", &bob).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_problem_details() {
    let app = spawn_api().await;
    let alice = user_token("alice", Some("s-a1"));
    let admin = admin_token();
    let cases: Vec<(&str, &str, u16)> = vec![
        ("/api/v1/auth/sessions?limit=0", "alice", 400),
        ("/api/v1/auth/sessions?limit=501", "alice", 400),
        ("/api/v1/auth/sessions?limit=ten", "alice", 400),
        ("/api/v1/auth/sessions?status=bogus", "alice", 400),
        ("/api/v1/auth/sessions?unknown=1", "alice", 400),
        ("/api/v1/auth/sessions?cursor=%%%", "alice", 400),
        ("/api/v1/auth/login-history?limit=-1", "alice", 400),
        ("/api/v1/admin/sessions?since=yesterday", "admin", 400),
        ("/api/v1/admin/sessions?ip=999.1.1.1", "admin", 400),
        ("/api/v1/admin/sessions?country=Sweden", "admin", 400),
        ("/api/v1/admin/sessions?device_type=toaster", "admin", 400),
        ("/api/v1/admin/login-history?success=maybe", "admin", 400),
        ("/api/v1/admin/security-events?severity=huge", "admin", 400),
        ("/api/v1/admin/security-events?type=nope", "admin", 400),
        ("/api/v1/admin/stats/logins?days=0", "admin", 400),
        ("/api/v1/admin/stats/logins?days=367", "admin", 400),
        ("/api/v1/admin/stats/top-failing-ips?limit=0", "admin", 400),
        (
            "/api/v1/admin/stats/peak-hours?tz=Mars/Olympus",
            "admin",
            400,
        ),
        ("/api/v1/admin/stats/peak-hours?tz=%2B02:00", "admin", 400),
        ("/api/v1/admin/stats/peak-hours?days=0", "admin", 400),
    ];
    for (path, who, status) in cases {
        let token = if who == "admin" { &admin } else { &alice };
        let a = app.get(path, token).await;
        assert_eq!(a.status.as_u16(), status, "{path}: {:#}", a.body);
        assert_eq!(
            a.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        assert_eq!(a.body["status"], status, "{path}");
        assert!(a.body["detail"].as_str().unwrap().len() > 3, "{path}");
    }
    // Values that would make the appended audit event break the contract are the caller's 400.
    let long = "x".repeat(1000);
    for path in [
        format!("/api/v1/admin/users/{long}/sessions"),
        format!("/api/v1/admin/sessions?user={long}"),
    ] {
        let a = app.get(&path, &admin).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:#}", a.body);
    }
    let a = app
        .delete(&format!("/api/v1/admin/users/{long}/sessions"), &admin)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:#}", a.body);
    // A cursor from one list is refused by another.
    let page_cursor = authtrail::api::pagination::Cursor {
        list: "security_events".into(),
        time: chrono::Utc::now(),
        key: uuid::Uuid::new_v4().to_string(),
    }
    .encode();
    let a = app
        .get(
            &format!("/api/v1/auth/sessions?cursor={page_cursor}"),
            &alice,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // A well-formed cursor of the right list with a key the column cannot hold: still a 400.
    let bad_key = authtrail::api::pagination::Cursor {
        list: "login_history".into(),
        time: chrono::Utc::now(),
        key: "not-a-uuid".into(),
    }
    .encode();
    let a = app
        .get(
            &format!("/api/v1/auth/login-history?cursor={bad_key}"),
            &alice,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:#}", a.body);
    // Introspection bodies.
    let svc = service_token();
    let a = app
        .call(
            Method::POST,
            "/api/v1/sessions/introspect",
            Some(&svc),
            Some(json!({"sid": "x"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = app
        .client
        .post(app.url("/api/v1/sessions/introspect"))
        .bearer_auth(&svc)
        .body("session_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = app
        .call(
            Method::POST,
            "/api/v1/admin/security-events/not-a-uuid/review",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_command_the_projection_cannot_reach_answers_504() {
    let app = spawn_api_with(Options { projector: false }, |c| {
        c.api.wait_timeout_ms = 300
    })
    .await;
    let alice = user_token("alice", Some("s-a1"));
    let started = std::time::Instant::now();
    let a = app.delete("/api/v1/auth/sessions?wait=true", &alice).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{:#}", a.body);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(a.body["type"], "urn:authtrail:problem:projection-timeout");
    assert!(a.body["event_id"].is_string());
    assert!(a.body["offset"].is_i64());
    // The event was appended all the same.
    let raw = app.topic.read(1, Duration::from_secs(30)).await;
    let e: Value = serde_json::from_slice(&raw[0].payload).unwrap();
    assert_eq!(e["type"], "session.revoked");
    assert_eq!(e["subject"], "alice");
    assert_eq!(e["data"]["scope"], "all_except");
    assert_eq!(e["data"]["session_id"], "s-a1");
    assert_eq!(e["id"], a.body["event_id"]);
    assert_eq!(raw[0].key, b"alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_security_events_as_they_are_projected() {
    let app = spawn_api().await;
    app.publish(vec![login_failed("before-stream", ago(5), IP_GB)])
        .await;
    app.settle().await;
    let resp = app
        .client
        .get(app.url("/api/v1/admin/security-events/stream"))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    app.publish(vec![
        login_failed("streamed", ago(1), IP_SE),
        login_ok("streamed", "s-st", ago(0), IP_SE, UA_DESKTOP),
    ])
    .await;
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("\"login_success\"") && text.contains("\"login_failure\"") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream so far: {text}");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(text.contains("event: security_event"));
    let users: Vec<&str> = events
        .iter()
        .filter_map(|e| e["user_id"].as_str())
        .collect();
    assert!(
        !users.contains(&"before-stream"),
        "sent an event projected before the stream opened"
    );
    // In log order: the failure was appended before the success (same user, same partition).
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["user_id"] == "streamed")
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    let fail = kinds.iter().position(|k| *k == "login_failure").unwrap();
    let ok = kinds.iter().position(|k| *k == "login_success").unwrap();
    assert!(fail < ok, "{kinds:?}");
    // No event twice.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    // Shutting the server down ends the stream (graceful shutdown does not wait forever).
    drop(app);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the server's shutdown");
}

#[tokio::test]
async fn the_token_command_mints_a_token_the_server_accepts_and_says_dev_only() {
    let secret = common::app::TEST_HS256_SECRET;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args([
            "token", "--sub", "alice", "--role", "admin", "--sid", "s-1", "--ttl", "60",
        ])
        .env("AUTHTRAIL_AUTH_JWT_HS256_SECRET", secret)
        .env("AUTHTRAIL_AUTH_JWT_ISSUER", "https://auth.test")
        .env("AUTHTRAIL_AUTH_JWT_AUDIENCE", "authtrail")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEV/TEST ONLY"));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut c = authtrail::config::Config::default();
    c.auth.jwt_hs256_secret = secret.into();
    c.auth.jwt_issuer = Some("https://auth.test".into());
    c.auth.jwt_audience = Some("authtrail".into());
    let v = authtrail::auth::Verifier::from_config(&c.auth).unwrap();
    let caller = v.verify_jwt(&token).await.unwrap();
    assert_eq!(caller.subject, "alice");
    assert_eq!(caller.session_id.as_deref(), Some("s-1"));
    assert_eq!(caller.role, authtrail::auth::Role::Admin);
    // Without a secret there is nothing to sign with; without iss and aud the server would
    // refuse what it signs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["token", "--sub", "alice"])
        .env_remove("AUTHTRAIL_AUTH_JWT_HS256_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .args(["token", "--sub", "alice"])
        .env("AUTHTRAIL_AUTH_JWT_HS256_SECRET", secret)
        .env_remove("AUTHTRAIL_AUTH_JWT_ISSUER")
        .env("AUTHTRAIL_AUTH_JWT_AUDIENCE", "authtrail")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.jwt_issuer"));
}

/// Walks every page of `path` (which has no query string yet) and returns the `key` of each row.
async fn walk(app: &ApiApp, path: &str, token: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=37&cursor={c}"),
            None => format!("{path}{sep}limit=37"),
        };
        let page = app.get(&url, token).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {:#}", page.body);
        out.extend(ids(&page, key));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

async fn column(app: &ApiApp, sql: &str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_traffic_reads_back_completely_through_every_list() {
    use authtrail_projections::gen::StreamGen;
    let app = spawn_api().await;
    let start = chrono::Utc::now() - chrono::Duration::hours(5);
    let events = StreamGen::new(7, 25, start).take(400);
    app.intake.submit(events, "test").await.unwrap();
    app.settle().await;
    let admin = admin_token();

    // Each admin list, walked page by page, returns exactly the table (once each).
    let sessions = walk(
        &app,
        "/api/v1/admin/sessions?status=all",
        &admin,
        "session_id",
    )
    .await;
    let want = column(&app, "SELECT session_id FROM sessions").await;
    assert!(
        want.len() > 20,
        "the simulation made only {} sessions",
        want.len()
    );
    assert_eq!(
        sessions.len(),
        want.len(),
        "a session was returned twice or not at all"
    );
    assert_eq!(sessions.iter().cloned().collect::<BTreeSet<_>>(), want);
    let history = walk(&app, "/api/v1/admin/login-history", &admin, "id").await;
    let want = column(&app, "SELECT id::text FROM login_history").await;
    assert_eq!(history.len(), want.len());
    assert_eq!(history.iter().cloned().collect::<BTreeSet<_>>(), want);
    // Security events grow while we read (each admin read is recorded): compare the rest.
    let before = column(
        &app,
        "SELECT id::text FROM security_events WHERE event_type <> 'admin_action'",
    )
    .await;
    let events = walk(&app, "/api/v1/admin/security-events", &admin, "id").await;
    let unique: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(unique.len(), events.len());
    assert!(before.is_subset(&unique));
    let suspicious = walk(&app, "/api/v1/admin/security/suspicious", &admin, "id").await;
    let want = column(&app, "SELECT id::text FROM login_history WHERE suspicious").await;
    assert!(!want.is_empty(), "the simulation flagged nothing");
    assert_eq!(suspicious.iter().cloned().collect::<BTreeSet<_>>(), want);

    // A user's own views agree with the admin's view of that user.
    let user: String = sqlx::query_scalar(
        "SELECT user_id FROM sessions GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let token = user_token(&user, None);
    let mine = walk(
        &app,
        "/api/v1/auth/sessions?status=all",
        &token,
        "session_id",
    )
    .await;
    let theirs = walk(
        &app,
        &format!("/api/v1/admin/users/{user}/sessions"),
        &admin,
        "session_id",
    )
    .await;
    assert_eq!(mine, theirs);
    let active_sql = column(
        &app,
        &format!("SELECT session_id FROM sessions s WHERE user_id = '{user}' AND session_status(s, now()) = 'active'"),
    )
    .await;
    let active = walk(&app, "/api/v1/auth/sessions", &token, "session_id").await;
    assert_eq!(active.into_iter().collect::<BTreeSet<_>>(), active_sql);
    let my_history = walk(&app, "/api/v1/auth/login-history", &token, "id").await;
    let want = column(
        &app,
        &format!("SELECT id::text FROM login_history WHERE user_id = '{user}'"),
    )
    .await;
    assert_eq!(my_history.into_iter().collect::<BTreeSet<_>>(), want);

    // Stats agree with the rows they summarise.
    let s = app.get("/api/v1/admin/stats/logins?days=2", &admin).await;
    let (total, failed, suspicious): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT success), count(*) FILTER (WHERE suspicious)
         FROM login_history
         WHERE (attempted_at AT TIME ZONE 'UTC')::date >= (now() AT TIME ZONE 'UTC')::date - 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(total > 0);
    assert_eq!(s.body["total"], total, "{:#}", s.body);
    assert_eq!(s.body["failed"], failed);
    assert_eq!(s.body["suspicious"], suspicious);
    let geo = app.get("/api/v1/admin/stats/geo?days=2", &admin).await;
    let geo_total: i64 = geo.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["total"].as_i64().unwrap())
        .sum();
    assert_eq!(geo_total, total);
    let dev = app.get("/api/v1/admin/stats/devices?days=2", &admin).await;
    let dev_total: i64 = dev.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["total"].as_i64().unwrap())
        .sum();
    assert_eq!(dev_total, total);
    let top = app
        .get("/api/v1/admin/stats/top-failing-ips?days=2&limit=3", &admin)
        .await;
    let want: Vec<(String, i64)> = sqlx::query_as(
        "SELECT ip, count(*) FROM login_history
         WHERE NOT success AND ip IS NOT NULL
           AND (attempted_at AT TIME ZONE 'UTC')::date >= (now() AT TIME ZONE 'UTC')::date - 1
         GROUP BY ip ORDER BY count(*) DESC, ip LIMIT 3",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let got: Vec<(String, i64)> = top.body["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["ip"].as_str().unwrap().to_owned(),
                i["failures"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failures_answer_without_internals() {
    let app = spawn_api().await;
    let admin = admin_token();
    assert_eq!(
        app.get("/api/v1/admin/security-events", &admin)
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query("DROP VIEW security_events_reviewed")
        .execute(&app.pool)
        .await
        .unwrap();
    let a = app.get("/api/v1/admin/security-events", &admin).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.body["type"], "urn:authtrail:problem:internal");
    let text = a.body.to_string();
    for leak in [
        "security_events_reviewed",
        "relation",
        "SELECT",
        "postgres",
        "sqlx",
    ] {
        assert!(!text.contains(leak), "500 body leaks {leak:?}: {text}");
    }
}

/// After PostgreSQL drops the server's connections (a restart, an administrator, a broken
/// network path) requests still answer 200, not 500: the pools replace dead connections. The
/// wait past `db::IDLE_PING_AFTER` makes the next acquisitions take the ping path (a dead
/// connection's ping fails and it is discarded). Note: with sqlx 0.8.6 this test also passed
/// with the ping disabled; it guards the behaviour, not that one mechanism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_the_database_dropped_the_connections_still_answer() {
    let app = spawn_api_with(Options { projector: false }, |_| {}).await;
    let token = user_token("alice", None);
    let burst = || async {
        let answers = futures::future::join_all((0..8).map(|_| {
            app.client
                .get(app.url("/api/v1/auth/sessions"))
                .bearer_auth(&token)
                .send()
        }))
        .await;
        answers
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect::<Vec<_>>()
    };
    assert_eq!(burst().await, vec![200; 8], "before");
    let dropped: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(dropped >= 1, "the API held no connection to drop");
    // Not a synchronisation: the connections must have been idle this long to be pinged.
    tokio::time::sleep(authtrail::db::IDLE_PING_AFTER + Duration::from_millis(200)).await;
    assert_eq!(
        burst().await,
        vec![200; 8],
        "after the connections were dropped"
    );
}

/// Every route is added with its policy; the as-of route, once outside the query API, shows it:
/// rate limited, audited as `admin.action`, `no-store`, per-route metrics and documented with
/// the statuses its policy can answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_as_of_route_is_rate_limited_audited_uncached_measured_and_documented() {
    let app = spawn_api_with(Options::default(), |c| {
        c.api.read_per_minute = 1;
        c.api.read_burst = 2;
    })
    .await;
    let path = "/api/v1/admin/as-of/2026-01-01T00:00:00Z/users/alice/sessions";
    let admin = admin_token();
    let first = app.get(path, &admin).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    assert_eq!(first.body["user_id"], "alice");
    // The read was appended as an admin action about alice, and projected as such.
    app.settle().await;
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT metadata->>'actor', user_id FROM security_events
         WHERE event_type = 'admin_action' AND metadata->>'action' = 'sessions.as_of'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, vec![("admin-1".to_owned(), "alice".to_owned())]);
    // The read budget (burst 2) is spent: the third read is refused.
    assert_eq!(app.get(path, &admin).await.status, StatusCode::OK);
    let limited = app.get(path, &admin).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("cache-control"), Some("no-store"));
    assert!(limited.header("retry-after").is_some());
    // Measured per route.
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert!(metrics
        .body
        .as_str()
        .unwrap()
        .contains("route=\"/api/v1/admin/as-of/{time}/users/{id}/sessions\""));
    // Documented, with the statuses of its policy.
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let op = &doc.body["paths"]["/api/v1/admin/as-of/{time}/users/{id}/sessions"]["get"];
    for status in ["200", "400", "401", "403", "429", "503"] {
        assert!(
            op["responses"].get(status).is_some(),
            "as-of documents no {status}: {op}"
        );
    }
    assert!(doc.body["components"]["responses"]["RateLimited"].is_object());
}

/// Introspection answers the auth service's every request under one credential: it spends no
/// per-caller read budget (here the smallest one: a burst of 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_not_held_to_the_read_budget() {
    let app = spawn_api_with(Options { projector: false }, |c| {
        c.api.read_per_minute = 1;
        c.api.read_burst = 1;
    })
    .await;
    for i in 0..20 {
        let a = app.introspect(&format!("s-{i}")).await;
        assert_eq!(a.status, StatusCode::OK, "call {i}: {:#}", a.body);
        assert_eq!(a.body, json!({"active": false}));
    }
}

fn device_path(device: &str, what: &str) -> String {
    format!("/api/v1/auth/devices/{device}/{what}?wait=true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_name_and_trust_their_own_devices_and_no_one_elses() {
    let app = spawn_api().await;
    app.publish(vec![
        login_ok("alice", "s-a1", ago(25), IP_GB, UA_DESKTOP),
        login_ok("alice", "s-a2", ago(20), IP_GB, UA_MOBILE),
        login_ok("bob", "s-b1", ago(15), IP_SE, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let alice = user_token("alice", Some("s-a1"));
    let bob = user_token("bob", Some("s-b1"));
    let put = |path: String, token: &str, body: Option<Value>| {
        let token = token.to_owned();
        let app = &app;
        async move { app.call(Method::PUT, &path, Some(&token), body).await }
    };

    // Alice names her laptop: `device.renamed` appended, and once projected her session
    // shows the name instead of the parsed one.
    let r = put(
        device_path("dev_s-a1", "name"),
        &alice,
        Some(json!({"name": "  Work laptop "})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["event_type"], "device.renamed");
    assert_eq!(r.body["projected"], true);
    let s = app.get("/api/v1/auth/sessions/s-a1", &alice).await;
    assert_eq!(s.body["custom_name"], "Work laptop");
    assert_eq!(s.body["trusted_device"], false, "naming is not trusting");
    let other = app.get("/api/v1/auth/sessions/s-a2", &alice).await;
    assert!(other.body["custom_name"].is_null(), "{:#}", other.body);

    // Bob cannot rename, trust or untrust Alice's device: 404, as for a device that does not
    // exist, and nothing is appended.
    let before: i64 = app.topic.end_offsets().await.iter().sum();
    for (method, what, body) in [
        (Method::PUT, "name", Some(json!({"name": "Mine now"}))),
        (Method::PUT, "trust", None),
        (Method::DELETE, "trust", None),
    ] {
        for (device, token) in [("dev_s-a1", &bob), ("dev_nope", &alice)] {
            let a = app
                .call(
                    method.clone(),
                    &device_path(device, what),
                    Some(token),
                    body.clone(),
                )
                .await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {device} {what}");
            assert_eq!(a.header("content-type"), Some("application/problem+json"));
        }
    }
    assert_eq!(app.topic.end_offsets().await.iter().sum::<i64>(), before);
    let s = app.get("/api/v1/auth/sessions/s-a1", &alice).await;
    assert_eq!(s.body["custom_name"], "Work laptop");

    // Trust, then untrust: the session shows each once projected; the trust keeps the name.
    let r = put(device_path("dev_s-a1", "trust"), &alice, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["event_type"], "device.trusted");
    let s = app.get("/api/v1/auth/sessions/s-a1", &alice).await;
    assert_eq!(s.body["trusted_device"], true);
    assert_eq!(s.body["custom_name"], "Work laptop");
    let r = app
        .call(
            Method::DELETE,
            &device_path("dev_s-a1", "trust"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(r.body["event_type"], "device.untrusted");
    let s = app.get("/api/v1/auth/sessions/s-a1", &alice).await;
    assert_eq!(s.body["trusted_device"], false);

    // Each trust change is a security event of Alice naming the device by her name for it.
    let trust_events: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_type, coalesce(user_id, ''), description FROM security_events
         WHERE event_type IN ('device_trusted', 'device_revoked') ORDER BY occurred_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(trust_events.len(), 2, "{trust_events:?}");
    assert!(trust_events
        .iter()
        .all(|(_, u, d)| u == "alice" && d.ends_with("Work laptop")));

    // Bad names are problems naming the field; an id no device can have is no device of mine.
    for (body, status) in [
        (json!({"name": "   "}), 422),
        (json!({"name": "x".repeat(65)}), 422),
        (json!({"name": "tab\there"}), 422),
        (json!({"name": "bidi\u{202e}override"}), 422),
        (json!({"nom": "x"}), 422),
    ] {
        let a = put(device_path("dev_s-a1", "name"), &alice, Some(body.clone())).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {:#}", a.body);
        assert_eq!(a.header("content-type"), Some("application/problem+json"));
        let detail = a.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("name"), "the field is named: {detail}");
    }
    let a = put(
        device_path("a%20b", "name"),
        &alice,
        Some(json!({"name": "ok"})),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "no device has that id: {:#}",
        a.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_hours_count_logins_by_weekday_and_hour_in_the_viewers_time_zone() {
    use chrono::{Datelike, FixedOffset, TimeDelta, Timelike};
    let app = spawn_api().await;
    // Two logins in one hour, one in another, a failure (not counted).
    let t1 = ago(26 * 60);
    let t2 = t1 + TimeDelta::minutes(1);
    let t3 = ago(3 * 60);
    app.publish(vec![
        login_ok("alice", "s-1", t1, IP_GB, UA_DESKTOP),
        login_ok("bob", "s-2", t2, IP_GB, UA_DESKTOP),
        login_ok("alice", "s-3", t3, IP_GB, UA_MOBILE),
        login_failed("alice", t3, IP_GB),
    ])
    .await;
    app.settle().await;
    // Asia/Kolkata has no daylight saving: always +05:30, so chrono can compute the truth.
    let kolkata = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let cell = |t: chrono::DateTime<chrono::Utc>| {
        let l = t.with_timezone(&kolkata);
        (l.weekday().number_from_monday() as i64, l.hour() as i64)
    };
    let a = app
        .get(
            "/api/v1/admin/stats/peak-hours?tz=Asia/Kolkata&days=7",
            &admin_token(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
    assert_eq!(a.body["tz"], "Asia/Kolkata");
    assert_eq!(a.body["total"], 3);
    let cells = a.body["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 7 * 24);
    let mut counted = BTreeMap::new();
    for c in cells {
        let n = c["logins"].as_i64().unwrap();
        if n > 0 {
            counted.insert(
                (c["weekday"].as_i64().unwrap(), c["hour"].as_i64().unwrap()),
                n,
            );
        }
    }
    let mut want = BTreeMap::new();
    for t in [t1, t2, t3] {
        *want.entry(cell(t)).or_insert(0) += 1;
    }
    assert_eq!(counted, want);
    // The default zone is UTC; the grid starts on Monday 00h.
    let utc = app
        .get("/api/v1/admin/stats/peak-hours", &admin_token())
        .await;
    assert_eq!(utc.body["tz"], "UTC");
    assert_eq!(utc.body["cells"][0]["weekday"], 1);
    assert_eq!(utc.body["cells"][0]["hour"], 0);
    let (wd, hr) = (t3.weekday().number_from_monday() as i64, t3.hour() as i64);
    let c = &utc.body["cells"][((wd - 1) * 24 + hr) as usize];
    assert!(c["logins"].as_i64().unwrap() >= 1, "{c}");
}
