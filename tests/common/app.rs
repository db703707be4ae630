//! An authtrail server in-process on a free port with its own topic: the intake tests' fixture.
//!
//! `spawn_app()` builds the application ([`Application::build`]) on 127.0.0.1:0 with the intake
//! only (no query API, no projector), the MaxMind test GeoIP database, one API key
//! ([`TEST_API_KEY`]) and an HS256 secret ([`TEST_HS256_SECRET`]); the server stops when the
//! [`TestApp`] is dropped. The database is never migrated: intake tests do not touch it.

use super::TestTopic;
use authtrail::app::Application;
use authtrail::auth::Scope;
use authtrail::config::Config;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The API key every test app accepts (configured as its SHA-256 only, named `test`, with
/// every scope: fixtures publish history with fixed past times, and introspect).
pub const TEST_API_KEY: &str = "at_test_key_9d2f5e0c1b7a4e38c6f0a2d1";
/// The HS256 secret every test app accepts.
pub const TEST_HS256_SECRET: &str = "test-only-hs256-secret-at-least-32-bytes-long";
/// The `iss` and `aud` every test app requires (and [`hs256_jwt`] puts in by default).
pub const TEST_ISSUER: &str = "https://auth.test";
pub const TEST_AUDIENCE: &str = "authtrail";

pub fn geoip_test_db() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/geoip/GeoIP2-City-Test.mmdb")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub topic: TestTopic,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The test configuration for `topic` (adjust it in `spawn_app_with`).
pub fn test_config(topic: &TestTopic) -> Config {
    let mut c = Config {
        kafka: topic.config.clone(),
        ..Config::default()
    };
    c.ingest.geoip_databases = vec![geoip_test_db()];
    c.auth.jwt_hs256_secret = TEST_HS256_SECRET.into();
    c.auth.jwt_issuer = Some(TEST_ISSUER.into());
    c.auth.jwt_audience = Some(TEST_AUDIENCE.into());
    c.auth.keys.insert(
        "test".into(),
        authtrail::config::ApiKeyConfig {
            sha256: Some(authtrail::auth::api_key_sha256(TEST_API_KEY)),
            scopes: vec![Scope::Publish, Scope::Backfill, Scope::Introspect],
            ..Default::default()
        },
    );
    c.http.listen = "127.0.0.1:0".into();
    // Each test's alert dispatcher publishes to a topic of its own.
    c.alerts.topic = format!("{}-alerts", topic.name());
    c
}

/// A server with a fresh 3-partition topic and the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with the configuration adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    // Install the process-wide Prometheus recorder before anything records.
    let _ = authtrail::telemetry::metrics();
    let topic = TestTopic::new(3).await;
    let mut config = test_config(&topic);
    config.api.enabled = false;
    config.projector.enabled = false;
    adjust(&mut config);
    let app = Application::build(config.clone())
        .await
        .expect("application");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        topic,
        config,
        stop: Some(stop),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn events_url(&self) -> String {
        self.url("/v1/events")
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// An HS256 JWT with `claims` (exp/iat filled in when absent).
    pub fn jwt(&self, claims: Value) -> String {
        hs256_jwt(TEST_HS256_SECRET, claims)
    }

    /// A valid service token that may publish, also history (fixtures use fixed past times).
    pub fn service_jwt(&self) -> String {
        self.jwt(json!({"sub": "svc-auth-api", "role": "service", "scope": "authtrail:publish authtrail:backfill"}))
    }
}

/// Signs `claims` with HS256; `exp` defaults to in 10 minutes, `iat` to now, `iss` and `aud`
/// to [`TEST_ISSUER`] and [`TEST_AUDIENCE`], and a person's `sid` (roles user, admin,
/// super_admin: `auth.require_sid`) to `fixture-<sub>`, a session the projection does not
/// know and so accepts (`null` leaves a claim out).
pub fn hs256_jwt(secret: &str, mut claims: Value) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let m = claims.as_object_mut().expect("claims object");
    m.entry("exp").or_insert(json!(now + 600));
    m.entry("iat").or_insert(json!(now));
    m.entry("iss").or_insert(json!(TEST_ISSUER));
    m.entry("aud").or_insert(json!(TEST_AUDIENCE));
    let claim = |name: &str| m.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
    if ["user", "admin", "super_admin"].contains(&claim("role").as_str()) {
        let sid = format!("fixture-{}", claim("sub"));
        m.entry("sid").or_insert(json!(sid));
    }
    m.retain(|_, v| !v.is_null());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}
