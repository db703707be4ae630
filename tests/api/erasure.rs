//! Proof of erasure, against the real broker and database: a person's events carry canary
//! values in every personal member; after `POST /api/v1/admin/users/{id}/forget` and a rebuild,
//! no canary is anywhere in plaintext — the events topic (keys and values), every table of every
//! schema (dead letters and the rebuild's old tables included), the process's logs, the replay
//! output and the as-of answer — while the log still verifies against its seals and another
//! user's data is untouched.
//!
//! `AUTHTRAIL_TEST_ERASURE_ENCRYPT=false` runs it with encryption off: it then fails, naming
//! where the canaries were found.

use super::common::api::*;
use authtrail::replay::export::{self, Filter, Format, ReplayArgs};
use authtrail::replay::rebuild;
use authtrail::seal::verify::{verify, VerifyArgs};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the process logs, at debug level, from the moment the test starts.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn private_file(path: &std::path::Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Where each canary is found, as text and as PostgreSQL's hex form of bytea.
fn findings(haystack: &[u8], canaries: &[String], place: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(haystack);
    canaries
        .iter()
        .filter(|c| text.contains(c.as_str()) || text.contains(&hex::encode(c.as_bytes())))
        .map(|c| format!("{c} in {place}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forgotten_person_leaves_no_plaintext_anywhere_and_the_log_still_verifies() {
    let logs = Logs::default();
    let captured = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(logs.clone())
        .try_init()
        .is_ok();
    let encrypt = std::env::var("AUTHTRAIL_TEST_ERASURE_ENCRYPT").as_deref() != Ok("false");
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master.key");
    private_file(&master, b"q0J3uY7X1mZ3b2Zr4m9xQw2l8sJ0aHc5ZkRzT1VwWmM=\n");
    let seal_key = dir.path().join("seal.pem");
    {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        private_file(
            &seal_key,
            key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
        );
    }
    let app = spawn_api_with(Options::default(), |c| {
        c.privacy.encrypt = encrypt;
        c.privacy.master_key_file = Some(master.clone());
        c.seal.enabled = true;
        c.seal.topic = format!("{}-seals", c.kafka.topic);
        c.seal.signing_key = Some(seal_key.clone());
        c.seal.every_records = 5;
        c.seal.every_secs = 1;
        // The direct publishers' door too.
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        c.enrich.enabled = true;
        c.enrich.raw_topic = format!("{}-raw", c.kafka.topic);
        c.enrich.rejected_topic = format!("{}-rejected", c.kafka.topic);
        c.enrich.group_id = format!("enrich-{suffix}");
        c.enrich.transactional_id = format!("enrich-{suffix}");
    })
    .await;

    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let person = format!("person-{tag}");
    let identifier = format!("canary.{tag}@example.org");
    let ip = "198.51.100.77";
    let ua = format!("CanaryAgent/{tag} (CanaryOS {tag})");
    let city = format!("Canaryville{tag}");
    let device = format!("Canary phone {tag}");
    let (lat, lon) = (12.3456789, -98.7654321);
    let canaries = vec![
        identifier.clone(),
        ip.to_owned(),
        format!("CanaryAgent/{tag}"),
        city.clone(),
        device.clone(),
        "12.3456789".to_owned(),
        "98.7654321".to_owned(),
        format!("Renamed canary {tag}"),
        format!("Farcanary{tag}"),
        "203.0.113.99".to_owned(),
        "33.8688".to_owned(),
    ];
    let t0 = ago(30);
    let geo = json!({"country_code": "GB", "country": "United Kingdom", "city": city, "latitude": lat, "longitude": lon});
    let sid = format!("s-{tag}");
    let ev = |ty: &str, minutes: i64, data: Value| {
        json!({"specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "/auth",
               "type": ty, "time": ts(t0 + chrono::Duration::minutes(minutes)), "subject": person,
               "schemaversion": 1, "data": data})
    };
    let person_events = vec![
        ev(
            "login.failed",
            0,
            json!({"identifier": identifier, "failure_reason": "bad_password", "ip": ip, "user_agent": ua, "geo": geo}),
        ),
        ev(
            "login.succeeded",
            1,
            json!({"session_id": sid, "login_method": "password", "expires_at": ts(t0 + chrono::Duration::hours(8)),
            "identifier": identifier, "ip": ip, "user_agent": ua, "device_id": format!("d-{tag}"), "device_name": device, "geo": geo}),
        ),
        ev(
            "session.activity",
            2,
            json!({"session_id": sid, "ip": ip, "user_agent": ua, "geo": geo}),
        ),
        ev(
            "token.refreshed",
            3,
            json!({"session_id": sid, "refresh_token_id": format!("r2-{tag}"), "previous_refresh_token_id": format!("r1-{tag}"),
            "expires_at": ts(t0 + chrono::Duration::hours(9)), "ip": ip, "user_agent": ua, "geo": geo}),
        ),
        ev(
            "device.trusted",
            4,
            json!({"device_id": format!("d-{tag}"), "device_name": device}),
        ),
    ];
    // Through the raw topic, as a direct publisher writes: one the stage rejects (its address
    // is not one), then one it appends. Keyed by the person: one raw partition, in order.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &app.config.kafka.brokers)
        .create()
        .unwrap();
    let mut rejected_one = ev(
        "login.failed",
        0,
        json!({"identifier": identifier, "failure_reason": "bad_password", "ip": "999.1.1.1", "user_agent": ua}),
    );
    rejected_one["data"]["geo"] = geo.clone();
    let from_raw = ev(
        "session.activity",
        0,
        json!({"session_id": format!("raw-{tag}"), "ip": ip, "user_agent": ua, "geo": geo}),
    );
    for v in [&rejected_one, &from_raw] {
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&app.config.enrich.raw_topic)
                    .key(&person)
                    .payload(&v.to_string()),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let raw_id: uuid::Uuid = from_raw["id"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)",
    )
    .bind(raw_id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
    {
        assert!(
            Instant::now() < deadline,
            "the raw event was not projected within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw_topic =
        super::common::TestTopic::existing(&app.config.kafka.brokers, &app.config.enrich.raw_topic)
            .await;
    let rejected_topic = super::common::TestTopic::existing(
        &app.config.kafka.brokers,
        &app.config.enrich.rejected_topic,
    )
    .await;
    assert_eq!(raw_topic.read_to_end().await.len(), 2);
    assert_eq!(rejected_topic.read_to_end().await.len(), 1);

    // Through the HTTP intake, as an auth service publishes.
    let answer = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(service_token())
        .header("content-type", "application/cloudevents-batch+json")
        .body(Value::Array(person_events.clone()).to_string())
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    let other = format!("other-{tag}");
    app.publish(vec![login_ok(&other, &format!("o-{tag}"), ago(20), "81.2.69.142", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")])
        .await;
    app.settle().await;

    // Projected in the clear: the projector opened the events.
    let row: (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as("SELECT ip, city, device_name FROM sessions WHERE session_id = $1")
            .bind(&sid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        row,
        (Some(ip.into()), Some(city.clone()), Some(device.clone()))
    );
    // The person renames the device through the query API (a command the API appends).
    let renamed = app
        .call(
            Method::PUT,
            &format!("/api/v1/auth/devices/d-{tag}/name"),
            Some(&user_token(&person, Some(&sid))),
            Some(json!({"name": format!("Renamed canary {tag}")})),
        )
        .await;
    assert!(renamed.status.is_success(), "{renamed:?}");
    app.settle().await;
    let name: Option<String> =
        sqlx::query_scalar("SELECT device_name FROM trusted_devices WHERE user_id = $1")
            .bind(&person)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(name, Some(format!("Renamed canary {tag}")));

    // From the other side of the world minutes later: an impossible-travel alert, whose
    // description and metadata name both places.
    app.publish(vec![ev(
        "login.succeeded",
        9,
        json!({"session_id": format!("far-{tag}"), "login_method": "password",
               "expires_at": ts(t0 + chrono::Duration::hours(8)),
               "identifier": identifier, "ip": "203.0.113.99", "user_agent": ua,
               "geo": {"country_code": "AU", "country": "Australia", "city": format!("Farcanary{tag}"),
                       "latitude": -33.8688, "longitude": 151.2093}}),
    )])
    .await;
    app.settle().await;
    // The alert was raised and published (with its personal details only when encryption is
    // off: a topic cannot be erased).
    let alerts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE user_id = $1 AND rule = 'impossible_travel'",
    )
    .bind(&person)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(alerts, 1, "the impossible-travel alert");

    // Only a super_admin may forget; the admin's attempt changes nothing.
    let path = format!("/api/v1/admin/users/{person}/forget");
    let refused = app
        .call(Method::POST, &path, Some(&admin_token()), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let super_admin = super::common::app::hs256_jwt(
        super::common::app::TEST_HS256_SECRET,
        json!({"sub": "root-1", "role": "super_admin"}),
    );
    let erased = app
        .call(Method::POST, &path, Some(&super_admin), None)
        .await;
    let erased = if encrypt {
        erased
    } else {
        // The route refuses to forget without encryption; erase as it would, to show what
        // encryption is for.
        assert_eq!(erased.status, StatusCode::FORBIDDEN, "{erased:?}");
        let e = authtrail::privacy::forget::forget_everywhere(
            &app.config,
            &app.pool,
            None,
            &person,
            "api:root-1",
        )
        .await
        .unwrap();
        Answer {
            status: StatusCode::OK,
            headers: Default::default(),
            body: serde_json::to_value(e).unwrap(),
        }
    };
    assert_eq!(erased.status, StatusCode::OK, "{erased:?}");
    assert_eq!(
        erased.body["keys_destroyed"],
        json!(if encrypt { 1 } else { 0 })
    );
    // The two HTTP-published sessions and the one the raw event began.
    assert_eq!(erased.body["purged"]["sessions"], json!(3), "{erased:?}");
    assert_eq!(
        erased.body["inputs"]["deleted_below"]
            .as_object()
            .map(|o| o.len()),
        Some(2),
        "the raw record consumed and the rejection are deleted: {erased:?}"
    );
    app.settle().await;

    // The forget is audited in the log and recorded.
    let by: String = sqlx::query_scalar("SELECT requested_by FROM erasures WHERE subject = $1")
        .bind(&person)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(by, "api:root-1");

    // Rebuild every projection from the log, and replay it.
    let report = rebuild::rebuild(
        &app.config,
        &app.pool,
        &rebuild::Options {
            schema: None,
            drop_old: false,
            swap: true,
            batch: 400,
            progress_bar: false,
            lock_distance: 1000,
            fast: true,
            workers: 2,
            cache_sessions: 1000,
        },
        None,
    )
    .await
    .unwrap();
    assert!(report.old_schema.is_some());
    let replay_args = ReplayArgs {
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
    };
    let out = super::common::Buf::default();
    export::replay(
        &app.config,
        &replay_args,
        &Filter::from_args(&replay_args).unwrap(),
        Box::new(out.clone()),
        false,
    )
    .await
    .unwrap();
    let replayed = out.0.lock().unwrap().clone();
    let asof = app
        .get(
            &format!("/api/v1/admin/as-of/{}/users/{person}/sessions", ts(ago(1))),
            &admin_token(),
        )
        .await;
    assert_eq!(asof.status, StatusCode::OK, "{asof:?}");

    // The rebuild and the as-of answer still know the person's session, redacted.
    let rebuilt: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT ip, city FROM sessions WHERE session_id = $1")
            .bind(&sid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    if encrypt {
        assert_eq!(rebuilt, (None, None));
        assert_eq!(
            asof.body["sessions"].as_array().map(Vec::len),
            Some(3),
            "{asof:?}"
        );
    }
    // Another user is untouched and readable.
    let theirs: Option<String> = sqlx::query_scalar("SELECT ip FROM sessions WHERE user_id = $1")
        .bind(&other)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(theirs.as_deref(), Some("81.2.69.142"));
    assert!(String::from_utf8_lossy(&replayed).contains("81.2.69.142"));

    // The canary search.
    let mut found = vec![];
    for r in app.topic.read_to_end().await {
        let bytes = [r.key.as_slice(), &r.payload].concat();
        found.extend(findings(
            &bytes,
            &canaries,
            &format!("topic {}/{}@{}", app.topic.name(), r.partition, r.offset),
        ));
    }
    // What authtrail publishes from the log (alerts, seals), and the direct publishers' input
    // and rejections.
    for topic in [
        &app.config.alerts.topic,
        &app.config.seal.topic,
        &app.config.enrich.raw_topic,
        &app.config.enrich.rejected_topic,
    ] {
        let t = super::common::TestTopic::existing(&app.config.kafka.brokers, topic).await;
        for r in t.read_to_end().await {
            let bytes = [r.key.as_slice(), &r.payload].concat();
            found.extend(findings(&bytes, &canaries, &format!("topic {topic}")));
        }
    }
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|(s, _)| s.starts_with("authtrail_old_")));
    for (schema, table) in &tables {
        let dump: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{schema}\".\"{table}\" t"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        found.extend(findings(
            dump.unwrap_or_default().as_bytes(),
            &canaries,
            &format!("table {schema}.{table}"),
        ));
    }
    found.extend(findings(&replayed, &canaries, "the replay output"));
    found.extend(findings(
        asof.body.to_string().as_bytes(),
        &canaries,
        "the as-of answer",
    ));
    let log_text = logs.0.lock().unwrap().clone();
    found.extend(findings(&log_text, &canaries, "the logs"));
    assert!(found.is_empty(), "canaries found after forget: {found:#?}");
    if captured {
        // The log capture works (so an empty search of it means something).
        assert!(String::from_utf8_lossy(&log_text).contains("subject forgotten"));
    }

    // The log was not touched: it still verifies against its seals.
    let ends = app.topic.end_offsets().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let heads: Vec<(i32, i64)> =
            sqlx::query_as("SELECT partition, last_offset FROM seal_heads WHERE topic = $1")
                .bind(app.topic.name())
                .fetch_all(&app.pool)
                .await
                .unwrap();
        let sealed = ends
            .iter()
            .enumerate()
            .all(|(p, end)| *end == 0 || heads.contains(&(p as i32, end - 1)));
        if sealed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not sealed within 60 s: {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let verified = verify(
        &app.config,
        &app.pool,
        &VerifyArgs {
            topic: None,
            sealed_as: None,
            partitions: vec![],
            from_offset: None,
            to_offset: None,
            since: None,
            until: None,
            json: false,
        },
    )
    .await
    .unwrap();
    assert!(verified.ok(), "{:?}", verified.problems);
    // Every record (a transaction marker of the stage takes an offset but is no record).
    assert_eq!(
        verified.verified as usize,
        app.topic.read_to_end().await.len()
    );
}
