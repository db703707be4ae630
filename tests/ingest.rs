//! The HTTP intake against the real broker: round trips of a single event, a JSON batch and an
//! NDJSON batch (read back raw from Kafka), enrichment recorded in the stored event, and every
//! refusal answered with the right status and a problem-details body, with nothing appended.

mod common;

use authtrail_events::{parse, Event, EventData};
use common::app::{spawn_app, spawn_app_with, TestApp, TEST_API_KEY};
use common::{examples, murmur2_partition, Raw};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const READ_TIMEOUT: Duration = Duration::from_secs(60);

fn example(name: &str) -> Value {
    let (_, bytes) = examples().into_iter().find(|(n, _)| n == name).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn compact(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

async fn post(
    app: &TestApp,
    content_type: Option<&str>,
    auth: Option<(&str, String)>,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.client().post(app.events_url()).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ct, body)
}

fn api_key() -> Option<(&'static str, String)> {
    Some(("x-api-key", TEST_API_KEY.to_owned()))
}

fn bearer(token: String) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

/// Checks the 200 answer against what the log holds: same ids, in order, at the reported
/// positions, keyed by user and in the partition Kafka's partitioner picks.
async fn check_stored(app: &TestApp, body: &Value, sent: &[Event]) -> Vec<(Raw, Event)> {
    assert_eq!(body["accepted"], sent.len(), "{body}");
    let reported = body["events"].as_array().unwrap();
    assert_eq!(reported.len(), sent.len());
    let stored = app.topic.read(sent.len(), READ_TIMEOUT).await;
    let by_pos: HashMap<(i32, i64), &Raw> = stored
        .iter()
        .map(|m| ((m.partition, m.offset), m))
        .collect();
    let mut out = vec![];
    for (sent, at) in sent.iter().zip(reported) {
        assert_eq!(at["id"], sent.id.to_string());
        let pos = (
            at["partition"].as_i64().unwrap() as i32,
            at["offset"].as_i64().unwrap(),
        );
        let raw = by_pos[&pos];
        let stored_event = parse(&raw.payload).expect("stored bytes parse");
        assert_eq!(stored_event.id, sent.id);
        assert_eq!(raw.key, sent.partition_key().as_bytes());
        assert_eq!(raw.partition, murmur2_partition(&raw.key, 3));
        assert_eq!(
            raw.content_type.as_deref(),
            Some(authtrail::kafka::CONTENT_TYPE)
        );
        // The stored bytes are the canonical serialisation of the stored event.
        assert_eq!(raw.payload, stored_event.to_json_bytes());
        out.push(((*raw).clone(), stored_event));
    }
    let total: i64 = app.topic.end_offsets().await.iter().sum();
    assert_eq!(
        total as usize,
        sent.len(),
        "exactly the sent events are in the log"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_event_round_trips_enriched_with_geo_and_device() {
    let app = spawn_app().await;
    let v = example("login.succeeded.json");
    let sent = parse(&compact(&v)).unwrap();
    let (status, ct, body) = post(
        &app,
        Some("application/cloudevents+json; charset=utf-8"),
        api_key(),
        compact(&v),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ct.as_deref(), Some("application/json"));
    let stored = check_stored(&app, &body, std::slice::from_ref(&sent)).await;
    let EventData::LoginSucceeded(d) = &stored[0].1.data else {
        panic!("type changed")
    };
    // 81.2.69.142 in MaxMind's test database.
    let geo = d.geo.as_ref().expect("geo added");
    assert_eq!(geo.country_code.as_deref(), Some("GB"));
    assert_eq!(geo.country.as_deref(), Some("United Kingdom"));
    assert_eq!(geo.city.as_deref(), Some("London"));
    assert_eq!(
        (geo.latitude, geo.longitude),
        (Some(51.5142), Some(-0.0931))
    );
    let device = d.device.as_ref().expect("device added");
    assert_eq!(device.device_type.as_str(), "mobile");
    assert_eq!(device.browser.as_deref(), Some("Mobile Safari"));
    assert_eq!(device.os.as_deref(), Some("iOS"));
    assert_eq!(device.os_version.as_deref(), Some("17.4"));
    assert_eq!(device.name.as_deref(), Some("Mobile Safari on iOS"));
    // The publisher's device id is kept; provenance is recorded.
    assert_eq!(
        d.device_id.as_ref().map(|i| i.as_str()),
        Some("dev_iphone13pro_john")
    );
    let e = d.enrichment.as_ref().expect("enrichment recorded");
    assert_eq!(e.geoip_database.as_deref(), Some("GeoIP2-City-Test"));
    assert!(e.geoip_build.is_some());
    assert_eq!(e.user_agent_parser.as_deref(), Some("uap-core 0.18.0"));
    assert_eq!(e.device_id_derived, None);
    // The credential that appended it is stamped; everything else is as sent.
    let mut unenriched = stored[0].1.clone();
    assert_eq!(unenriched.publisher.take().as_deref(), Some("api-key:test"));
    if let EventData::LoginSucceeded(d) = &mut unenriched.data {
        d.geo = None;
        d.device = None;
        d.enrichment = None;
    }
    assert_eq!(unenriched, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_batch_of_every_example_round_trips_in_order() {
    let app = spawn_app().await;
    // Every example a publisher may send: `admin.action` and `security_event.reviewed` are
    // appended only by authtrail's API (tests/security/publisher.rs).
    let values: Vec<Value> = examples()
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
        .filter(|v| {
            !["admin.action", "security_event.reviewed"].contains(&v["type"].as_str().unwrap())
        })
        .collect();
    let sent: Vec<Event> = values.iter().map(|v| parse(&compact(v)).unwrap()).collect();
    let (status, _, body) = post(
        &app,
        Some("application/cloudevents-batch+json"),
        bearer(app.service_jwt()),
        compact(&Value::Array(values)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = check_stored(&app, &body, &sent).await;
    for ((_, got), want) in stored.iter().zip(&sent) {
        assert_eq!(got.event_type(), want.event_type());
        assert_eq!((got.time, &got.subject), (want.time, &want.subject));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_batch_round_trips_and_derives_device_ids() {
    let app = spawn_app().await;
    let mut body = Vec::new();
    let mut sent = vec![];
    for i in 0..40 {
        let mut v = example("login.failed.json");
        v["id"] = json!(uuid::Uuid::new_v4());
        v["subject"] = json!(format!("user-{}", i % 7));
        v["data"].as_object_mut().unwrap().remove("device_id");
        v["data"]["ip"] = json!("89.160.20.112");
        sent.push(parse(&compact(&v)).unwrap());
        body.extend_from_slice(&compact(&v));
        body.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n\n" });
    }
    let (status, _, resp) = post(&app, Some("application/x-ndjson"), api_key(), body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let stored = check_stored(&app, &resp, &sent).await;
    let mut ids_by_user: HashMap<String, String> = HashMap::new();
    for (_, e) in &stored {
        let EventData::LoginFailed(d) = &e.data else {
            panic!()
        };
        assert_eq!(d.geo.as_ref().unwrap().country_code.as_deref(), Some("SE"));
        let id = d.device_id.as_ref().expect("derived").as_str().to_owned();
        assert!(id.starts_with("fp1-") && id.len() == 36, "{id}");
        assert_eq!(d.enrichment.as_ref().unwrap().device_id_derived, Some(true));
        // Stable per account and user agent, different across accounts.
        let prev = ids_by_user
            .entry(e.subject.clone().unwrap())
            .or_insert(id.clone());
        assert_eq!(*prev, id);
    }
    let distinct: std::collections::HashSet<_> = ids_by_user.values().collect();
    assert_eq!(distinct.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_an_accepted_id_is_accepted_and_gives_the_same_bytes() {
    let app = spawn_app().await;
    let v = example("token.refreshed.json");
    let sent = parse(&compact(&v)).unwrap();
    for _ in 0..2 {
        let (status, _, body) = post(&app, Some("application/json"), api_key(), compact(&v)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["events"][0]["id"], sent.id.to_string());
    }
    let stored = app.topic.read(2, READ_TIMEOUT).await;
    assert_eq!(stored[0].payload, stored[1].payload);
    assert_eq!(stored[0].partition, stored[1].partition);
}

/// One refused request: what to send and what must come back.
struct Bad {
    name: &'static str,
    content_type: Option<&'static str>,
    auth: Option<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    /// Substrings the problem's `detail` (or `errors`) must contain.
    mentions: Vec<&'static str>,
    /// `errors[0]` as `(index, field)` for invalid events.
    first_error: Option<(u64, &'static str)>,
    /// Must not appear anywhere in the answer (credentials, secrets).
    never_echo: Option<String>,
}

fn bad(name: &'static str, status: StatusCode) -> Bad {
    Bad {
        name,
        content_type: Some("application/cloudevents+json"),
        auth: api_key(),
        body: compact(&example("login.succeeded.json")),
        status,
        mentions: vec![],
        first_error: None,
        never_echo: None,
    }
}

const RAW_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn bad_requests(app: &TestApp) -> Vec<Bad> {
    let now = jsonwebtoken::get_current_timestamp();
    let ok = example("login.succeeded.json");
    let batch = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| {
                let mut v = ok.clone();
                v["id"] = json!(uuid::Uuid::new_v4());
                v
            })
            .collect()
    };
    let ndjson = |items: &[Value]| -> Vec<u8> {
        let mut out = vec![];
        for v in items {
            out.extend_from_slice(&compact(v));
            out.push(b'\n');
        }
        out
    };
    let user_jwt = app.jwt(json!({"sub": "u1", "sid": "s1", "role": "user"}));
    let expired =
        app.jwt(json!({"sub": "svc", "role": "service", "exp": now - 120, "iat": now - 700}));
    let future_nbf = app.jwt(json!({"sub": "svc", "role": "service", "nbf": now + 600}));
    let no_exp = app.jwt(json!({"sub": "svc", "role": "service", "exp": null}));
    let wrong_secret = common::app::hs256_jwt(
        "another-secret-that-is-at-least-32-bytes!!",
        json!({"sub": "svc", "role": "service"}),
    );
    let alg_none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64url(&format!(
            r#"{{"sub":"svc","role":"service","exp":{}}}"#,
            now + 600
        ))
    );
    let unknown_role = app.jwt(json!({"sub": "svc", "role": "root"}));

    let mut cases = vec![];
    let mut c = bad("no credentials", StatusCode::UNAUTHORIZED);
    c.auth = None;
    c.mentions = vec!["credentials"];
    cases.push(c);
    let mut c = bad("unknown API key", StatusCode::UNAUTHORIZED);
    c.auth = Some(("x-api-key", "at_guessed_key_123456".into()));
    c.never_echo = Some("at_guessed_key_123456".into());
    cases.push(c);
    let mut c = bad("bearer garbage", StatusCode::UNAUTHORIZED);
    c.auth = bearer("not.a.jwt".into());
    cases.push(c);
    let mut c = bad("JWT signed with another secret", StatusCode::UNAUTHORIZED);
    c.never_echo = Some(wrong_secret.clone());
    c.auth = bearer(wrong_secret);
    cases.push(c);
    let mut c = bad("expired JWT", StatusCode::UNAUTHORIZED);
    c.never_echo = Some(expired.clone());
    c.auth = bearer(expired);
    cases.push(c);
    let mut c = bad("JWT not yet valid", StatusCode::UNAUTHORIZED);
    c.auth = bearer(future_nbf);
    cases.push(c);
    let mut c = bad("JWT without exp", StatusCode::UNAUTHORIZED);
    c.auth = bearer(no_exp);
    cases.push(c);
    let mut c = bad("alg none", StatusCode::UNAUTHORIZED);
    c.auth = bearer(alg_none);
    cases.push(c);
    let mut c = bad("unknown role", StatusCode::UNAUTHORIZED);
    c.auth = bearer(unknown_role);
    cases.push(c);
    let mut c = bad("user role", StatusCode::FORBIDDEN);
    c.auth = bearer(user_jwt);
    c.mentions = vec!["service"];
    cases.push(c);
    let mut c = bad("Basic auth scheme", StatusCode::UNAUTHORIZED);
    c.auth = Some(("authorization", "Basic c3ZjOnB3".into()));
    cases.push(c);
    let mut c = bad("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE);
    c.content_type = Some("text/plain");
    c.mentions = vec!["text/plain", "application/cloudevents-batch+json"];
    cases.push(c);
    let mut c = bad("no content type", StatusCode::UNSUPPORTED_MEDIA_TYPE);
    c.content_type = None;
    c.mentions = vec!["missing"];
    cases.push(c);
    let mut c = bad("latin-1 charset", StatusCode::UNSUPPORTED_MEDIA_TYPE);
    c.content_type = Some("application/json; charset=iso-8859-1");
    c.mentions = vec!["iso-8859-1"];
    cases.push(c);
    let mut c = bad("not JSON", StatusCode::BAD_REQUEST);
    c.body = b"{\"specversion\": \"1.0\",".to_vec();
    c.first_error = Some((0, "(event)"));
    c.mentions = vec!["not valid JSON"];
    cases.push(c);
    let mut c = bad("unknown type", StatusCode::BAD_REQUEST);
    let mut v = ok.clone();
    v["type"] = json!("login.perhaps");
    c.body = compact(&v);
    c.first_error = Some((0, "type"));
    cases.push(c);
    let mut c = bad("raw token inside an event", StatusCode::BAD_REQUEST);
    let mut v = ok.clone();
    v["data"]["refresh_token_id"] = json!(RAW_JWT);
    c.body = compact(&v);
    c.first_error = Some((0, "data.refresh_token_id"));
    c.never_echo = Some(RAW_JWT.into());
    cases.push(c);
    let mut c = bad("a password member", StatusCode::BAD_REQUEST);
    let mut v = ok.clone();
    v["data"]["password"] = json!("hunter2");
    c.body = compact(&v);
    c.first_error = Some((0, "data.password"));
    c.never_echo = Some("hunter2".into());
    cases.push(c);
    let mut c = bad("array sent as one event", StatusCode::BAD_REQUEST);
    c.body = compact(&Value::Array(batch(2)));
    c.mentions = vec!["application/cloudevents-batch+json"];
    cases.push(c);
    let mut c = bad(
        "invalid event at index 2 of a JSON batch",
        StatusCode::BAD_REQUEST,
    );
    let mut items = batch(4);
    items[2]["data"]
        .as_object_mut()
        .unwrap()
        .remove("session_id");
    items[3]["time"] = json!("yesterday");
    c.content_type = Some("application/cloudevents-batch+json");
    c.body = compact(&Value::Array(items));
    c.first_error = Some((2, "data"));
    c.mentions = vec!["2 of 4 events invalid", "session_id", "time"];
    cases.push(c);
    let mut c = bad("invalid line of an NDJSON batch", StatusCode::BAD_REQUEST);
    let mut items = batch(3);
    items[1]["data"]["ip"] = json!("300.1.2.3");
    c.content_type = Some("application/x-ndjson");
    c.body = ndjson(&items);
    c.first_error = Some((1, "data.ip"));
    c.mentions = vec!["line 2"];
    cases.push(c);
    let mut c = bad("batch that is not an array", StatusCode::BAD_REQUEST);
    c.content_type = Some("application/cloudevents-batch+json");
    c.mentions = vec!["JSON array"];
    cases.push(c);
    let mut c = bad("empty batch", StatusCode::BAD_REQUEST);
    c.content_type = Some("application/cloudevents-batch+json");
    c.body = b"[]".to_vec();
    c.mentions = vec!["no events"];
    cases.push(c);
    let mut c = bad(
        "too many events in a JSON batch",
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    c.content_type = Some("application/cloudevents-batch+json");
    c.body = compact(&Value::Array(batch(6)));
    c.mentions = vec!["limit of 5 events"];
    cases.push(c);
    let mut c = bad(
        "too many lines in an NDJSON batch",
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    c.content_type = Some("application/x-ndjson");
    c.body = ndjson(&batch(6));
    c.mentions = vec!["limit of 5 events"];
    cases.push(c);
    let mut c = bad("body too large", StatusCode::PAYLOAD_TOO_LARGE);
    let mut v = ok.clone();
    v["data"]["device_name"] = json!("x".repeat(20_000));
    c.body = compact(&v);
    c.mentions = vec!["limit of 16384 bytes"];
    cases.push(c);
    cases
}

fn base64url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_and_a_problem_naming_it_and_appends_nothing() {
    let app = spawn_app_with(|c| {
        c.ingest.max_batch_events = 5;
        c.ingest.max_body_bytes = 16 * 1024;
    })
    .await;
    let cases = bad_requests(&app);
    assert!(cases.len() >= 15);
    for case in cases {
        let (status, ct, body) = post(&app, case.content_type, case.auth, case.body).await;
        let name = case.name;
        assert_eq!(status, case.status, "{name}: {body}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{name}");
        assert_eq!(body["status"], case.status.as_u16(), "{name}: {body}");
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:authtrail:problem:"),
            "{name}: {body}"
        );
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{name}"
        );
        let text = body.to_string();
        for m in &case.mentions {
            assert!(text.contains(m), "{name}: {m:?} missing in {body}");
        }
        if let Some((index, field)) = case.first_error {
            assert_eq!(body["errors"][0]["index"], index, "{name}: {body}");
            assert_eq!(body["errors"][0]["field"], field, "{name}: {body}");
            assert!(body["errors"][0]["reason"].is_string(), "{name}");
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            assert!(body["limit"].is_u64(), "{name}: {body}");
        }
        if let Some(secret) = &case.never_echo {
            assert!(!text.contains(secret.as_str()), "{name}: echoed a secret");
        }
        if status == StatusCode::UNAUTHORIZED {
            // One generic body for every authentication failure.
            assert_eq!(body["type"], "urn:authtrail:problem:unauthorized", "{name}");
        }
    }
    assert_eq!(
        app.topic.end_offsets().await,
        vec![0, 0, 0],
        "a refused request appended something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_accepted_and_rejected_events() {
    let app = spawn_app().await;
    let v = example("session.activity.json");
    let (s, _, _) = post(&app, Some("application/json"), api_key(), compact(&v)).await;
    assert_eq!(s, StatusCode::OK);
    let mut bad = v.clone();
    bad["data"]["session_id"] = json!("");
    let (s, _, _) = post(&app, Some("application/json"), api_key(), compact(&bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let text = app
        .client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("authtrail_ingest_events_accepted_total{type=\"session.activity\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "authtrail_ingest_events_rejected_total{type=\"session.activity\",reason=\"invalid\"}"
        ),
        "{text}"
    );
    assert!(text.contains("authtrail_publish_seconds"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_command_enriches_like_the_intake() {
    let app = spawn_app().await;
    let v = example("login.succeeded.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("publish")
        .env("AUTHTRAIL_KAFKA_BROKERS", &app.topic.config.brokers)
        .env("AUTHTRAIL_KAFKA_TOPIC", app.topic.name())
        .env("AUTHTRAIL_KAFKA_PARTITIONS", "3")
        .env(
            "AUTHTRAIL_INGEST_GEOIP_DATABASES",
            format!("[\"{}\"]", common::app::geoip_test_db().display()),
        )
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&compact(&v)).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = app.topic.read(1, READ_TIMEOUT).await;
    let e = parse(&stored[0].payload).unwrap();
    let EventData::LoginSucceeded(d) = e.data else {
        panic!()
    };
    assert_eq!(d.geo.unwrap().city.as_deref(), Some("London"));
    assert_eq!(d.device.unwrap().os.as_deref(), Some("iOS"));
}

/// A server without GeoIP data still takes events and is ready: `/readyz` answers only ok or
/// not ok (the degraded enrichment goes to the log with every check), so probes learn nothing
/// about the deployment.
#[tokio::test]
async fn readyz_is_ok_without_a_geoip_database_and_tells_no_details() {
    let admin_db = std::env::var("AUTHTRAIL_TEST_DATABASE_URL").unwrap();
    let ready = |app: &TestApp| {
        let url = app.url("/readyz");
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let db = admin_db.clone();
    let with_geo = spawn_app_with(move |c| c.database.url = db).await;
    assert_eq!(ready(&with_geo).await, (200, json!({"status": "ok"})));

    let without = spawn_app_with(move |c| {
        c.database.url = admin_db;
        c.ingest.geoip_databases = vec![];
    })
    .await;
    assert_eq!(ready(&without).await, (200, json!({"status": "ok"})));
}

/// The raw-topic door: a direct publisher's event (default librdkafka partitioner, any key)
/// is appended by the enrichment stage with its id, enriched exactly as over HTTP and stamped
/// `kafka:<raw topic>`; invalid and API-only events go to the rejected topic naming field and
/// reason, and never to the events topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_topic_appends_enriched_events_and_rejects_bad_ones_with_their_reason() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let app = spawn_app_with(|c| {
        c.enrich.enabled = true;
        c.enrich.raw_topic = format!("{}-raw", c.kafka.topic);
        c.enrich.rejected_topic = format!("{}-rejected", c.kafka.topic);
        c.enrich.group_id = format!("enrich-{suffix}");
        c.enrich.transactional_id = format!("enrich-{suffix}");
    })
    .await;
    let raw_topic = app.config.enrich.raw_topic.clone();
    let now = chrono::Utc::now();
    let with = |id: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = example("login.succeeded.json");
        v["id"] = id.into();
        v["time"] = now.to_rfc3339().into();
        v["data"]["expires_at"] = (now + chrono::TimeDelta::hours(12)).to_rfc3339().into();
        edit(&mut v);
        compact(&v)
    };
    let (http_id, raw_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let bad_ip = uuid::Uuid::new_v4().to_string();
    let api_only = {
        let mut v = example("security_event.reviewed.json");
        v["time"] = now.to_rfc3339().into();
        v
    };
    // Over HTTP, for comparison.
    let (status, _, body) = post(
        &app,
        Some("application/cloudevents+json"),
        api_key(),
        with(&http_id.to_string(), &|_| {}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Straight to the raw topic, as any librdkafka client would (consistent_random partitioner).
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.config.kafka.brokers)
        .create()
        .unwrap();
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (
            with(&bad_ip, &|v| v["data"]["ip"] = "999.1.1.1".into()),
            "data.ip",
        ),
        (compact(&api_only), "type"),
        (b"{\"specversion\": \"1.0\", ".to_vec(), "(event)"),
    ];
    for (bytes, _) in &bad {
        producer
            .send(
                FutureRecord::to(&raw_topic).key("anything").payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    producer
        .send(
            FutureRecord::to(&raw_topic)
                .key("anything")
                .payload(&with(&raw_id.to_string(), &|_| {})),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // The raw event comes after the bad ones in one raw partition: once it is appended, the
    // rejections are committed too.
    let stored = app.topic.read(2, READ_TIMEOUT).await;
    let all = app.topic.read_to_end().await;
    assert_eq!(
        all.len(),
        2,
        "only the two valid events are in the events topic"
    );
    let by_id: HashMap<String, (Raw, Event)> = stored
        .into_iter()
        .map(|r| {
            let e = parse(&r.payload).unwrap();
            (e.id.to_string(), (r, e))
        })
        .collect();
    let (raw_msg, from_raw) = &by_id[&raw_id.to_string()];
    let (_, from_http) = &by_id[&http_id.to_string()];
    assert_eq!(
        from_raw.publisher.as_deref(),
        Some(format!("kafka:{raw_topic}").as_str())
    );
    // Keyed by subject, in the partition the intake uses, whatever the raw partitioner did.
    assert_eq!(raw_msg.key, from_raw.partition_key().as_bytes());
    assert_eq!(
        raw_msg.partition,
        murmur2_partition(&raw_msg.key, app.topic.config.partitions)
    );
    // Enriched exactly as over HTTP: equal but for id and publisher.
    let (EventData::LoginSucceeded(a), EventData::LoginSucceeded(b)) =
        (&from_raw.data, &from_http.data)
    else {
        panic!("type changed")
    };
    assert_eq!(a, b);
    assert_eq!(
        a.geo.as_ref().and_then(|g| g.city.as_deref()),
        Some("London")
    );
    assert_eq!(
        a.device.as_ref().map(|d| d.device_type.as_str()),
        Some("mobile")
    );

    let rejected = common::TestTopic {
        config: authtrail::config::KafkaConfig {
            topic: app.config.enrich.rejected_topic.clone(),
            ..app.config.kafka.clone()
        },
    }
    .read_to_end()
    .await;
    let got: Vec<authtrail::ingest::stage::Rejection> = rejected
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(got.len(), bad.len(), "{got:?}");
    for (r, (bytes, field)) in got.iter().zip(&bad) {
        assert_eq!(&r.field, field, "{r:?}");
        assert!(!r.reason.is_empty());
        assert_eq!(r.topic, raw_topic);
        assert_eq!(r.value.as_deref().map(str::as_bytes), Some(&bytes[..]));
        assert_eq!(r.size, bytes.len());
    }
    assert_eq!(got[0].id.as_deref(), Some(bad_ip.as_str()));
}
