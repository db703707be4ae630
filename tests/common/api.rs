//! The query API's fixture: a server on a free port with its own topic and database, the query
//! API, and (unless disabled) an in-process projector; fixtures publish through the intake
//! (enriched like production traffic) and wait for the projection — woken by its NOTIFY, never
//! by sleeping.

use super::app::{hs256_jwt, test_config, TEST_API_KEY, TEST_HS256_SECRET};
use super::projection::wait_caught_up;
use super::{TestDb, TestTopic};
use authtrail::app::Application;
use authtrail::config::Config;
use authtrail::ingest::Intake;
use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub struct ApiApp {
    pub addr: SocketAddr,
    pub topic: TestTopic,
    pub db: TestDb,
    pub pool: PgPool,
    pub config: Config,
    pub intake: Arc<Intake>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for ApiApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Options of [`spawn_api_with`].
pub struct Options {
    /// Run an in-process projector (off: commands can never be projected).
    pub projector: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { projector: true }
    }
}

pub async fn spawn_api() -> ApiApp {
    spawn_api_with(Options::default(), |_| {}).await
}

pub async fn spawn_api_with(options: Options, adjust: impl FnOnce(&mut Config)) -> ApiApp {
    let _ = authtrail::telemetry::metrics();
    let topic = TestTopic::new(3).await;
    let db = TestDb::new().await;
    let mut config = test_config(&topic);
    config.database = db.config.clone();
    config.projector.group_id = format!("api-test-{}", Uuid::new_v4().simple());
    config.projector.batch_max_wait_ms = 10;
    // Generous budgets: the rate-limit test sets its own.
    config.api.read_per_minute = 100_000;
    config.api.read_burst = 10_000;
    config.api.command_per_minute = 100_000;
    config.api.command_burst = 10_000;
    config.projector.enabled = options.projector;
    adjust(&mut config);
    let app = Application::build(config.clone())
        .await
        .expect("application");
    let addr = app.local_addr();
    let pool = app.pool().clone();
    let intake = app.intake().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    ApiApp {
        addr,
        topic,
        db,
        pool,
        config,
        intake,
        client: reqwest::Client::new(),
        stop: Some(stop),
    }
}

/// The answer of a request: status, headers and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn items(&self) -> &Vec<Value> {
        self.body["items"].as_array().expect("a page")
    }
}

impl ApiApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional bearer token (and JSON body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn introspect(&self, session_id: &str) -> Answer {
        self.call(
            Method::POST,
            "/api/v1/sessions/introspect",
            Some(&service_token()),
            Some(json!({ "session_id": session_id })),
        )
        .await
    }

    /// Publishes events (JSON, validated by the contract) through the intake's enrichment.
    pub async fn publish(&self, events: Vec<Value>) {
        let events = events
            .into_iter()
            .map(|v| authtrail_events::parse_value(v).expect("a valid fixture event"))
            .collect();
        self.intake.submit(events, "test").await.expect("published");
    }

    /// Waits until the projection has applied everything in the topic (including the
    /// `admin.action` records the API appended).
    pub async fn settle(&self) {
        let total: i64 = self.topic.end_offsets().await.iter().sum();
        wait_caught_up(
            &self.pool,
            self.topic.name(),
            total,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// A user's token with current session `sid`; `None`: a session the projection does not know
/// (`fixture-<sub>`, see [`hs256_jwt`]), which the API accepts.
pub fn user_token(sub: &str, sid: Option<&str>) -> String {
    let mut claims = json!({"sub": sub, "role": "user"});
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    hs256_jwt(TEST_HS256_SECRET, claims)
}

pub fn admin_token() -> String {
    hs256_jwt(
        TEST_HS256_SECRET,
        json!({"sub": "admin-1", "role": "admin"}),
    )
}

/// The auth service's token: it publishes and introspects.
pub fn service_token() -> String {
    hs256_jwt(
        TEST_HS256_SECRET,
        json!({"sub": "svc-auth", "role": "service", "scope": "authtrail:publish authtrail:introspect"}),
    )
}

pub fn api_key() -> &'static str {
    TEST_API_KEY
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now minus `minutes`.
pub fn ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - TimeDelta::minutes(minutes)
}

/// Addresses of the MaxMind test database: London (GB) and Linköping (SE).
pub const IP_GB: &str = "81.2.69.142";
pub const IP_SE: &str = "89.160.20.112";

pub const UA_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
pub const UA_MOBILE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/// `login.succeeded` of `user` opening `sid` at `at` (expires in 12 h).
pub fn login_ok(user: &str, sid: &str, at: DateTime<Utc>, ip: &str, ua: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4(),
        "source": "/test/fixtures",
        "type": "login.succeeded",
        "time": ts(at),
        "subject": user,
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": {
            "session_id": sid,
            "login_method": "password",
            "expires_at": ts(at + TimeDelta::hours(12)),
            "identifier": format!("{user}@example.com"),
            "refresh_token_id": format!("rt_{sid}"),
            "ip": ip,
            "user_agent": ua,
            "device_id": format!("dev_{sid}"),
        }
    })
}

/// `login.failed` of `user`'s identifier at `at`.
pub fn login_failed(user: &str, at: DateTime<Utc>, ip: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4(),
        "source": "/test/fixtures",
        "type": "login.failed",
        "time": ts(at),
        "subject": user,
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": {
            "identifier": format!("{user}@example.com"),
            "failure_reason": "bad_password",
            "login_method": "password",
            "ip": ip,
            "user_agent": UA_DESKTOP,
        }
    })
}

/// `device.trusted` for the device of session `sid`.
pub fn device_trusted(user: &str, sid: &str, at: DateTime<Utc>) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::new_v4(),
        "source": "/test/fixtures",
        "type": "device.trusted",
        "time": ts(at),
        "subject": user,
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "data": { "device_id": format!("dev_{sid}"), "device_name": "My laptop" }
    })
}
