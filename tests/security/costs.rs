//! Per-caller bounds on what a caller can make authtrail do: requests to the intake and to
//! introspection, open event streams (fed by one poller), as-of folds, readiness checks, and
//! what `/metrics` and Swagger UI show to whom.

use crate::common::api::{
    admin_token, ago, api_key, login_failed, service_token, spawn_api_with, Answer, Options, IP_GB,
};
use crate::common::app::{hs256_jwt, spawn_app_with, TEST_HS256_SECRET};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const STREAM: &str = "/api/v1/admin/security-events/stream";

fn assert_429(a: &Answer, budget: &str) {
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{:#}", a.body);
    assert!(a.header("retry-after").is_some(), "no Retry-After");
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let detail = a.body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(budget), "{detail}");
}

/// One credential (a leaked key, a runaway service) could otherwise flood the log through the
/// intake, or the database through introspection: each has a per-caller budget of its own
/// (introspection's apart from the read budget, and generous by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_cannot_flood_the_intake_or_introspection() {
    let intake = spawn_app_with(|c| {
        c.ingest.requests_per_minute = 1;
        c.ingest.requests_burst = 2;
    })
    .await;
    let post = |key: Option<&'static str>, bearer: Option<String>| {
        let mut r = intake
            .client()
            .post(intake.events_url())
            .header("content-type", "application/cloudevents+json")
            .body(login_failed("victim", ago(0), IP_GB).to_string());
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.json::<Value>().await.unwrap_or(Value::Null);
            Answer {
                status,
                headers,
                body,
            }
        }
    };
    for i in 0..2 {
        let a = post(Some(api_key()), None).await;
        assert!(a.status.is_success(), "request {i}: {:#}", a.body);
    }
    assert_429(&post(Some(api_key()), None).await, "intake");
    // Another credential has its own budget.
    let other = post(None, Some(intake.service_jwt())).await;
    assert!(other.status.is_success(), "{:#}", other.body);

    let api = spawn_api_with(Options { projector: false }, |c| {
        c.api.read_per_minute = 1;
        c.api.read_burst = 1;
        c.api.introspect_per_minute = 1;
        c.api.introspect_burst = 3;
    })
    .await;
    // More than the read budget's burst: introspection does not spend it ...
    for i in 0..3 {
        let a = api.introspect(&format!("s-{i}")).await;
        assert_eq!(a.status, StatusCode::OK, "call {i}: {:#}", a.body);
    }
    // ... but it has a budget of its own.
    assert_429(&api.introspect("s-3").await, "introspect");
}

/// Reads an SSE response until `done` holds for the text so far (within `limit`).
async fn read_until(
    resp: reqwest::Response,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let found = tokio::time::timeout(limit, async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if done(&text) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "stream so far: {text}");
    text
}

/// The value of the counter `name` with label `topic` in the Prometheus text.
fn counter(metrics: &str, name: &str, topic: &str) -> u64 {
    let label = format!("topic=\"{topic}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Each open stream held a connection's worth of polling: one caller opening streams without
/// end would multiply the database's work. Streams are capped per caller, and one poller reads
/// each projected advance once for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_open_unbounded_streams_and_streams_share_one_poller() {
    const PER_CALLER: usize = 3;
    let app = spawn_api_with(Options::default(), |c| {
        c.api.streams_per_caller = PER_CALLER
    })
    .await;
    let open = |token: String| app.client.get(app.url(STREAM)).bearer_auth(token).send();
    let mut streams = Vec::new();
    for _ in 0..PER_CALLER {
        let resp = open(admin_token()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        streams.push(resp);
    }
    let over = open(admin_token()).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().get("retry-after").is_some());
    assert_eq!(over.json::<Value>().await.unwrap()["limit"], PER_CALLER);
    // The cap is per caller: another admin opens one.
    let other = hs256_jwt(
        TEST_HS256_SECRET,
        json!({"sub": "admin-2", "role": "admin"}),
    );
    let resp = open(other).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    streams.push(resp);

    // Every stream gets the next security event.
    app.publish(vec![login_failed("marker", ago(0), IP_GB)])
        .await;
    let texts = futures::future::join_all(
        streams
            .into_iter()
            .map(|s| read_until(s, Duration::from_secs(60), |t| t.contains("\"marker\""))),
    )
    .await;
    assert!(texts.iter().all(|t| t.matches("\"marker\"").count() == 1));
    // The reads since the first stream opened: at most one per projected batch (each stream
    // open's audit record, and the marker), never one per stream per batch.
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    let reads = counter(
        metrics.body.as_str().unwrap(),
        "authtrail_api_stream_feed_reads_total",
        app.topic.name(),
    );
    let streams = PER_CALLER as u64 + 1;
    assert!(
        (1..=streams + 1).contains(&reads),
        "{reads} reads of security events for {streams} streams"
    );
}

/// Each uncached as-of answer folds a whole log partition: a caller varying the instant by a
/// microsecond, or asking many at once, could keep the server folding. Folds run at most
/// `api.asof_concurrency` at once (the rest get 503 with Retry-After, not a queue), and the
/// instant is taken in whole seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_folds_are_bounded_in_number_and_cached_per_second() {
    let app = spawn_api_with(Options { projector: false }, |c| c.api.asof_concurrency = 1).await;
    let admin = admin_token();
    let path = |time: &str, user: &str| format!("/api/v1/admin/as-of/{time}/users/{user}/sessions");
    let a = app
        .get(&path("2026-01-01T00:00:00.250Z", "alice"), &admin)
        .await;
    let b = app
        .get(&path("2026-01-01T00:00:00.750Z", "alice"), &admin)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:#}", a.body);
    assert_eq!(b.status, StatusCode::OK, "{:#}", b.body);
    // One instant, so one cache key (each answer's end offset may differ: every as-of read
    // appends its audit record to the user's partition).
    assert_eq!(a.body["as_of"], "2026-01-01T00:00:00Z");
    assert_eq!(b.body["as_of"], "2026-01-01T00:00:00Z");

    let answers = futures::future::join_all((0..16).map(|i| {
        let (path, app, admin) = (
            path("2026-01-01T00:00:00Z", &format!("u-{i}")),
            &app,
            &admin,
        );
        async move { app.get(&path, admin).await }
    }))
    .await;
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let busy: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(ok + busy.len(), answers.len(), "{answers:#?}");
    assert!(ok >= 1, "no fold ran");
    assert!(!busy.is_empty(), "16 folds at once, none refused");
    for a in busy {
        assert!(a.header("retry-after").is_some());
        assert!(a.body["detail"]
            .as_str()
            .unwrap()
            .contains("asof_concurrency"));
    }
}

/// Probes are unauthenticated: `/readyz` must not tell them how the deployment is wired, nor
/// let a burst of them hammer the broker and the database. It answers ok or not ok only, from
/// a check a few seconds old at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_only_ok_or_not_ok_from_a_cached_check() {
    let app = spawn_api_with(Options { projector: false }, |_| {}).await;
    let probe = || async {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(probe().await, (200, json!({"status": "ok"})));
    let checked = Instant::now();

    // The database goes away (connections cut, new ones refused) ...
    let name = app.db.config.url.rsplit('/').next().unwrap().to_owned();
    let admin_url = std::env::var("AUTHTRAIL_TEST_DATABASE_URL").unwrap();
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let cut = |allow: bool| {
        let (admin, name) = (admin.clone(), name.clone());
        async move {
            sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
                .execute(&admin)
                .await
                .unwrap();
            if !allow {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&admin)
                .await
                .unwrap();
            }
        }
    };
    cut(false).await;
    // ... but probes within the check's lifetime, even many at once, get its answer: none of
    // them checks again.
    let answers = futures::future::join_all((0..10).map(|_| probe())).await;
    assert!(
        checked.elapsed() < Duration::from_millis(1_800),
        "too slow to observe the cached check ({:?})",
        checked.elapsed()
    );
    assert!(answers.iter().all(|a| *a == (200, json!({"status": "ok"}))));
    // Once it is stale, a new check finds the database gone, and says no more than that.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let a = probe().await;
        if a.0 == 503 {
            break a;
        }
        assert!(Instant::now() < deadline, "still ready without a database");
    };
    cut(true).await;
    assert_eq!(refused, (503, json!({"status": "not ok"})));
}

/// This machine's address on a non-loopback interface, if it has one.
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route's source address.
    socket.connect("203.0.113.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// `/metrics` shows the server's internals (routes, rates, failures by reason) and Swagger UI
/// an interactive console: neither is open to the world by default. `/metrics` answers
/// loopback peers not forwarded by a proxy, or a bearer of `http.metrics_token`; Swagger UI is
/// off unless `api.swagger_ui`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_swagger_ui_are_closed_by_default() {
    let app = spawn_api_with(Options { projector: false }, |c| {
        c.http.listen = "0.0.0.0:0".into();
    })
    .await;
    let port = app.addr.port();
    let local = format!("http://127.0.0.1:{port}");
    let client = &app.client;
    let status = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status() };
    assert_eq!(status(client.get(format!("{local}/metrics"))).await, 200);
    // A local proxy forwarding a remote client's request.
    let forwarded = client
        .get(format!("{local}/metrics"))
        .header("x-forwarded-for", "198.51.100.7");
    assert_eq!(status(forwarded).await, StatusCode::FORBIDDEN);
    if let Some(ip) = non_loopback_ip() {
        let remote = SocketAddr::new(ip, port);
        assert_eq!(
            status(client.get(format!("http://{remote}/metrics"))).await,
            StatusCode::FORBIDDEN,
            "a peer at {ip}"
        );
    }
    assert_eq!(
        status(client.get(format!("{local}/api/v1/docs/"))).await,
        StatusCode::NOT_FOUND
    );
    // The OpenAPI document itself stays public (it holds no data).
    assert_eq!(
        status(client.get(format!("{local}/api/v1/openapi.json"))).await,
        200
    );

    const TOKEN: &str = "metrics-scrape-token-0123456789abcdef";
    let opened = spawn_api_with(Options { projector: false }, |c| {
        c.http.metrics_token = TOKEN.into();
        c.api.swagger_ui = true;
    })
    .await;
    let metrics = |bearer: &str| {
        opened
            .client
            .get(opened.url("/metrics"))
            .header("x-forwarded-for", "198.51.100.7")
            .bearer_auth(bearer)
    };
    assert_eq!(status(metrics(TOKEN)).await, 200);
    assert_eq!(status(metrics("wrong")).await, StatusCode::UNAUTHORIZED);
    // A credential of the API is not the metrics token.
    assert_eq!(
        status(metrics(&service_token())).await,
        StatusCode::UNAUTHORIZED
    );
    let ui = opened
        .client
        .get(opened.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}
