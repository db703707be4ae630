//! A person's token checked against the session state authtrail holds: a token keeps working
//! only while the session it names (`sid`) is active, through the real API and projector.

use crate::common::api::{
    ago, login_ok, spawn_api, spawn_api_with, ApiApp, Options, IP_GB, UA_DESKTOP,
};
use crate::common::app::{hs256_jwt, TEST_HS256_SECRET};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MINE: &str = "/api/v1/auth/sessions";
const STREAM: &str = "/api/v1/admin/security-events/stream";

fn token(claims: Value) -> String {
    hs256_jwt(TEST_HS256_SECRET, claims)
}

/// Calls `path` with `token` until it answers 401, up to `limit`; the time that took.
async fn until_refused(app: &ApiApp, path: &str, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let a = app.get(path, token).await;
        if a.status == StatusCode::UNAUTHORIZED {
            // The generic 401: nothing about the session.
            assert!(!a.body.to_string().contains("revoked"), "{}", a.body);
            return started.elapsed();
        }
        assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
        assert!(
            started.elapsed() < limit,
            "{path}: the token still works {limit:?} after its session ended"
        );
    }
}

/// Reads `body` (an SSE stream) until it ends, up to `limit`; everything it sent.
async fn read_to_end(resp: reqwest::Response, limit: Duration) -> String {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let ended = tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream did not end within {limit:?}: {text}"
    );
    text
}

/// "Sign out everywhere" holds across the API within a second: the token of a session revoked
/// from another device is refused (401) within a second of the revocation's projection, while
/// the device that signed out keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_sessions_token_is_refused_within_a_second() {
    let app = spawn_api().await;
    app.publish(vec![
        login_ok("alice", "s-laptop", ago(20), IP_GB, UA_DESKTOP),
        login_ok("alice", "s-phone", ago(10), IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let stolen = token(json!({"sub": "alice", "sid": "s-laptop", "role": "user"}));
    let phone = token(json!({"sub": "alice", "sid": "s-phone", "role": "user"}));
    // The laptop's token works, and its session state is now in the server's cache.
    assert_eq!(app.get(MINE, &stolen).await.status, StatusCode::OK);

    // From the phone: sign out everywhere else, answered once projected.
    let r = app.delete(&format!("{MINE}?wait=true"), &phone).await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let took = until_refused(&app, MINE, &stolen, Duration::from_secs(10)).await;
    // A second of cache, and the time of one request on a busy machine.
    assert!(
        took <= Duration::from_millis(1_500),
        "refused only {took:?} after the revocation was projected"
    );
    // Everywhere: the admin routes take the same check.
    let admin_of_laptop = token(json!({"sub": "alice", "sid": "s-laptop", "role": "admin"}));
    let a = app.get("/api/v1/admin/sessions", &admin_of_laptop).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(MINE, &phone).await.status, StatusCode::OK);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("reason=\"session_ended\""),
        "no session_ended failures counted"
    );
}

/// A token that names no session cannot be checked against any: refused unless
/// `auth.require_sid = false`; and a token whose `sid` is another user's session is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_its_own_session_is_refused() {
    let app = spawn_api().await;
    app.publish(vec![login_ok("alice", "s-a", ago(5), IP_GB, UA_DESKTOP)])
        .await;
    app.settle().await;
    let no_sid = token(json!({"sub": "bob", "role": "user", "sid": null}));
    assert_eq!(
        app.get(MINE, &no_sid).await.status,
        StatusCode::UNAUTHORIZED
    );
    let borrowed = token(json!({"sub": "bob", "sid": "s-a", "role": "user"}));
    assert_eq!(
        app.get(MINE, &borrowed).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A login not projected yet is accepted; service tokens have no session.
    let fresh = token(json!({"sub": "bob", "sid": "s-not-yet-projected", "role": "user"}));
    assert_eq!(app.get(MINE, &fresh).await.status, StatusCode::OK);
    assert_eq!(app.introspect("s-a").await.status, StatusCode::OK);

    // Where sid is not required, such a token is a person without a current session.
    let lax = spawn_api_with(Options { projector: false }, |c| c.auth.require_sid = false).await;
    assert_eq!(lax.get(MINE, &no_sid).await.status, StatusCode::OK);
    let keep_current = lax.delete(MINE, &no_sid).await;
    assert_eq!(keep_current.status, StatusCode::CONFLICT);
    assert_eq!(keep_current.body["parameter"], "include_current");
}

/// An open event stream is no way around the check: it ends when its session ends, and when
/// its token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_with_its_session_or_its_token() {
    let app = spawn_api().await;
    app.publish(vec![
        login_ok("ann", "s-ann-1", ago(10), IP_GB, UA_DESKTOP),
        login_ok("ann", "s-ann-2", ago(5), IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let open = |t: String| {
        let request = app.client.get(app.url(STREAM)).bearer_auth(t).send();
        async move {
            let resp = request.await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp
        }
    };

    // Its session ends: revoked from ann's other session.
    let first = token(json!({"sub": "ann", "sid": "s-ann-1", "role": "admin"}));
    let second = token(json!({"sub": "ann", "sid": "s-ann-2", "role": "admin"}));
    let stream = open(first).await;
    let r = app
        .delete("/api/v1/auth/sessions/s-ann-1?wait=true", &second)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
    let text = read_to_end(stream, Duration::from_secs(10)).await;
    assert!(
        text.contains("event: end") && text.contains("session_ended"),
        "{text}"
    );

    // Its token expires (in two seconds; the server's leeway does not extend a stream).
    let exp = jsonwebtoken::get_current_timestamp() + 2;
    let short = token(json!({"sub": "ann", "sid": "s-ann-2", "role": "admin", "exp": exp}));
    let text = read_to_end(open(short).await, Duration::from_secs(10)).await;
    assert!(text.contains("token_expired"), "{text}");
}
