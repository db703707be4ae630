//! Powers reserved to super_admin, and nobody reviewing themselves: through the real API and
//! projector. Who is an admin is what authtrail holds: the roles the user's sessions were opened
//! with (`data.roles` of their logins).

use crate::common::api::{
    ago, login_failed, login_ok, spawn_api, ApiApp, IP_GB, IP_SE, UA_DESKTOP,
};
use crate::common::app::{hs256_jwt, TEST_HS256_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn token(sub: &str, role: &str) -> String {
    hs256_jwt(TEST_HS256_SECRET, json!({"sub": sub, "role": role}))
}

/// A login of `user` opening `sid` with `roles`.
fn login_as(user: &str, sid: &str, roles: &[&str]) -> Value {
    let mut e = login_ok(user, sid, ago(10), IP_GB, UA_DESKTOP);
    e["data"]["roles"] = json!(roles);
    e
}

fn assert_refused(a: &crate::common::api::Answer, what: &str) {
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {:#}", a.body);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert!(
        a.body["detail"].as_str().unwrap_or("").len() > 10,
        "{what}: {:#}",
        a.body
    );
}

/// The id of the security event of `kind` about `user` (and, for admin actions, by `actor`).
async fn security_event(app: &ApiApp, kind: &str, user: &str, actor: Option<&str>) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM security_events WHERE event_type = $1 AND user_id = $2
           AND ($3::text IS NULL OR metadata->>'actor' = $3) ORDER BY occurred_at LIMIT 1",
    )
    .bind(kind)
    .bind(user)
    .bind(actor)
    .fetch_one(&app.pool)
    .await
    .unwrap_or_else(|e| panic!("no {kind} about {user}: {e}"))
    .to_string()
}

/// An admin who could end a super_admin's (or another admin's) sessions could lock out the
/// people who oversee them: those sessions are a super_admin's to revoke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_act_on_a_super_admins_sessions() {
    let app = spawn_api().await;
    app.publish(vec![
        login_as("root", "s-root", &["user", "super_admin"]),
        login_as("ann", "s-ann", &["admin"]),
        login_as("carl", "s-carl", &["user"]),
        login_ok("dora", "s-dora", ago(10), IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let admin = token("zed", "admin");
    let root = token("rob", "super_admin");

    for target in ["root", "ann"] {
        let one = app
            .delete(&format!("/api/v1/admin/sessions/s-{target}"), &admin)
            .await;
        assert_refused(&one, &format!("admin revoking {target}'s session"));
        let all = app
            .delete(&format!("/api/v1/admin/users/{target}/sessions"), &admin)
            .await;
        assert_refused(&all, &format!("admin logging {target} out everywhere"));
    }
    assert_eq!(app.introspect("s-root").await.body["active"], true);
    assert_eq!(app.introspect("s-ann").await.body["active"], true);

    // Users remain the admin's to act on; admins the super_admin's.
    let r = app
        .delete("/api/v1/admin/sessions/s-carl?wait=true", &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let r = app
        .delete("/api/v1/admin/users/dora/sessions", &admin)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:#}", r.body);
    let r = app
        .delete("/api/v1/admin/sessions/s-ann?wait=true", &root)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let r = app
        .delete("/api/v1/admin/users/root/sessions?wait=true", &root)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    assert_eq!(app.introspect("s-root").await.body["active"], false);
}

/// Reviews clear alerts: an admin could otherwise clear the alerts about their own account or
/// their own admin actions. Reviewing `admin_action` events takes a super_admin, and nobody
/// reviews an event about themselves or about their own action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reviews_their_own_alerts_and_only_a_super_admin_reviews_admin_actions() {
    let app = spawn_api().await;
    app.publish(vec![
        login_failed("zed", ago(5), IP_SE),
        login_failed("rob", ago(5), IP_SE),
    ])
    .await;
    let (zed, ann, rob) = (
        token("zed", "admin"),
        token("ann", "admin"),
        token("rob", "super_admin"),
    );
    // Audited reads: zed's and rob's admin actions about bob.
    for t in [&zed, &rob] {
        let r = app.get("/api/v1/admin/users/bob/sessions", t).await;
        assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    }
    app.settle().await;
    let review = |id: &str, t: &str| {
        let (path, t) = (
            format!("/api/v1/admin/security-events/{id}/review"),
            t.to_owned(),
        );
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&t), None).await }
    };

    let zeds_failure = security_event(&app, "login_failure", "zed", None).await;
    assert_refused(
        &review(&zeds_failure, &zed).await,
        "zed reviewing his own failure",
    );
    let robs_failure = security_event(&app, "login_failure", "rob", None).await;
    assert_refused(
        &review(&robs_failure, &rob).await,
        "rob reviewing his own failure",
    );
    let zeds_action = security_event(&app, "admin_action", "bob", Some("zed")).await;
    assert_refused(
        &review(&zeds_action, &zed).await,
        "zed reviewing his own action",
    );
    assert_refused(
        &review(&zeds_action, &ann).await,
        "an admin reviewing an admin action",
    );
    let robs_action = security_event(&app, "admin_action", "bob", Some("rob")).await;
    assert_refused(
        &review(&robs_action, &rob).await,
        "rob reviewing his own action",
    );

    // What remains allowed: someone else's alert, and a super_admin on another's action.
    assert_eq!(
        review(&zeds_failure, &ann).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        review(&zeds_action, &rob).await.status,
        StatusCode::ACCEPTED
    );
}

/// The id of the alert of `rule` about `user`.
async fn alert_about(app: &ApiApp, rule: &str, user: &str) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM alerts WHERE rule = $1 AND user_id = $2")
        .bind(rule)
        .bind(user)
        .fetch_one(&app.pool)
        .await
        .unwrap_or_else(|e| panic!("no {rule} alert about {user}: {e}"))
        .to_string()
}

/// Reviewing an alert clears it from the open queue: an admin could otherwise clear the alerts
/// about their own account (a new device: perhaps not theirs), about a fellow admin, or about
/// risky admin sign-ins. Nobody reviews an alert about themselves; alerts about an admin or
/// super_admin, and `privileged_login` alerts, take a super_admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reviews_alerts_about_themselves_and_only_a_super_admin_reviews_admins_alerts() {
    let app = spawn_api().await;
    let second = |user: &str, roles: &[&str]| {
        let mut e = login_as(user, &format!("s-{user}-2"), roles);
        e["time"] = json!(crate::common::api::ts(ago(5)));
        e
    };
    // Admins sign in without OTP (privileged_login) and each person from a second device
    // (new_device).
    app.publish(vec![
        login_as("zed", "s-zed-1", &["admin"]),
        second("zed", &["admin"]),
        login_as("root", "s-root-1", &["super_admin"]),
        second("root", &["super_admin"]),
        login_as("carl", "s-carl-1", &["user"]),
        second("carl", &["user"]),
    ])
    .await;
    app.settle().await;
    let (zed, ann, rob) = (
        token("zed", "admin"),
        token("ann", "admin"),
        token("root", "super_admin"),
    );
    let review = |id: &str, t: &str| {
        let (path, t) = (format!("/api/v1/admin/alerts/{id}/review"), t.to_owned());
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&t), None).await }
    };
    let zeds_device = alert_about(&app, "new_device", "zed").await;
    let zeds_login = alert_about(&app, "privileged_login", "zed").await;
    let roots_device = alert_about(&app, "new_device", "root").await;
    let carls_device = alert_about(&app, "new_device", "carl").await;

    assert_refused(
        &review(&zeds_device, &zed).await,
        "zed reviewing his own alert",
    );
    assert_refused(
        &review(&zeds_login, &zed).await,
        "zed reviewing his own sign-in",
    );
    assert_refused(
        &review(&roots_device, &rob).await,
        "root reviewing his own alert",
    );
    assert_refused(
        &review(&zeds_device, &ann).await,
        "an admin reviewing an alert about an admin",
    );
    assert_refused(
        &review(&zeds_login, &ann).await,
        "an admin reviewing a privileged login",
    );
    let reviewed: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts_reviewed WHERE reviewed")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reviewed, 0, "a refused review was recorded");

    // What remains allowed: an admin on a user's alert, a super_admin on an admin's.
    assert_eq!(
        review(&carls_device, &ann).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        review(&zeds_device, &rob).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(review(&zeds_login, &rob).await.status, StatusCode::ACCEPTED);
}
