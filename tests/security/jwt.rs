//! Tokens as an identity provider issues them (item 4): `iss` and `aud` required, keys from
//! the provider's key set (JWKS, served here by the test itself) picked by `kid`, rotation,
//! a refetch rate limit, algorithm confusion, and several static keys. Every token is tried
//! where it matters: `POST /v1/events` of a real server (200 = accepted, 401 = refused).

use crate::common::app::{
    spawn_app_with, test_config, TestApp, TEST_AUDIENCE, TEST_HS256_SECRET, TEST_ISSUER,
};
use crate::common::TestTopic;
use authtrail::app::Application;
use authtrail::config::{Config, JwtKeyConfig, Secret};
use base64::Engine;
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/auth_keys")
        .join(name)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The DER SubjectPublicKeyInfo inside a PEM public key.
fn spki(name: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(key_path(name)).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A key pair of the identity provider: signs tokens, and is published as a JWK.
struct IdpKey {
    alg: Algorithm,
    private: EncodingKey,
    jwk: Value,
}

/// The P-256 key pair `tests/auth_keys/<name>-*.pem`, published under `kid`.
fn es256(kid: &str, name: &str) -> IdpKey {
    let der = spki(&format!("{name}-public.pem"));
    // An uncompressed point closes a P-256 SubjectPublicKeyInfo: 0x04, x, y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    IdpKey {
        alg: Algorithm::ES256,
        private: EncodingKey::from_ec_pem(
            &std::fs::read(key_path(&format!("{name}-private.pem"))).unwrap(),
        )
        .unwrap(),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]),
                    "y": b64url(&point[33..]), "kid": kid, "alg": "ES256", "use": "sig"}),
    }
}

/// The Ed25519 key pair of `tests/auth_keys/`, published under `kid`.
fn eddsa(kid: &str) -> IdpKey {
    let der = spki("eddsa-public.pem");
    IdpKey {
        alg: Algorithm::EdDSA,
        private: EncodingKey::from_ed_pem(&std::fs::read(key_path("eddsa-private.pem")).unwrap())
            .unwrap(),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&der[der.len() - 32..]),
                    "kid": kid, "alg": "EdDSA", "use": "sig"}),
    }
}

/// A valid service token's claims for the test server.
fn claims() -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({"sub": "svc-idp", "role": "service", "iss": TEST_ISSUER, "aud": TEST_AUDIENCE,
           "exp": now + 600, "iat": now})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

impl IdpKey {
    fn token(&self, kid: Option<&str>) -> String {
        sign(self.alg, kid, &self.private, &claims())
    }
}

/// The identity provider's key set endpoint, served by the test on 127.0.0.1: what it
/// publishes can change, and it counts how often it was fetched.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn serve(keys: Vec<Value>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let set = json!({"keys": *k.lock().unwrap()});
                async move { axum::Json(set) }
            }),
        );
        tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
            listener, router,
        )));
        Idp { url, keys, fetches }
    }

    fn publish(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// HS256 (the test secret) and ES256 allowed; ES256 keys come from `idp`.
fn with_idp(c: &mut Config, idp: &Idp) {
    c.auth.jwt_algorithms = vec!["HS256".into(), "ES256".into()];
    c.auth.jwks_url = Some(idp.url.clone());
}

/// Appends one fresh event with `token`: 200 when the token is accepted, 401 when not.
async fn publish(app: &TestApp, token: &str) -> StatusCode {
    let (_, bytes) = crate::common::examples()
        .into_iter()
        .find(|(n, _)| n == "login.failed.json")
        .unwrap();
    let mut event: Value = serde_json::from_slice(&bytes).unwrap();
    event["id"] = json!(uuid::Uuid::new_v4().to_string());
    event["time"] = json!(chrono::Utc::now().to_rfc3339());
    let response = app
        .client()
        .post(app.events_url())
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status != StatusCode::OK && status != StatusCode::UNAUTHORIZED {
        panic!(
            "neither accepted nor refused: {status} {}",
            response.text().await.unwrap()
        );
    }
    status
}

/// Repeats `attempt` (a few times a second) until `done` holds of its result or `within` ends.
async fn eventually<F: Future<Output = StatusCode>>(
    within: Duration,
    mut attempt: impl FnMut() -> F,
    done: impl Fn(StatusCode) -> bool,
) -> StatusCode {
    let deadline = Instant::now() + within;
    loop {
        let status = attempt().await;
        if done(status) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_another_issuer_or_audience_are_refused_as_a_server_with_a_key_requires_both() {
    let topic = TestTopic::new(1).await;
    let base = {
        let mut c = test_config(&topic);
        c.api.enabled = false;
        c.projector.enabled = false;
        c
    };
    let jwks_only = |c: &mut Config| {
        c.auth.jwt_hs256_secret = Secret::default();
        c.auth.jwt_algorithms = vec!["ES256".into()];
        c.auth.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
    };
    type Case = (&'static str, fn(&mut Config));
    let cases: Vec<Case> = vec![
        ("auth.jwt_issuer", |c| c.auth.jwt_issuer = None),
        ("auth.jwt_audience", |c| {
            c.auth.jwt_audience = Some(" ".into())
        }),
    ];
    for (field, unset) in cases {
        for key_set in [false, true] {
            let mut c = base.clone();
            if key_set {
                jwks_only(&mut c);
            }
            unset(&mut c);
            match Application::build(c).await {
                Ok(_) => panic!("started without {field} (key set: {key_set})"),
                Err(e) => assert!(format!("{e:#}").contains(field), "{e:#}"),
            }
        }
    }
    // Without any key, neither is needed: no JWT can verify.
    let mut c = base.clone();
    c.auth.jwt_hs256_secret = Secret::default();
    c.auth.jwt_issuer = None;
    c.auth.jwt_audience = None;
    assert!(Application::build(c).await.is_ok());

    let app = spawn_app_with(|_| {}).await;
    let key = EncodingKey::from_secret(TEST_HS256_SECRET.as_bytes());
    let with = |extra: Value| {
        let mut c = claims();
        for (k, v) in extra.as_object().unwrap() {
            match v {
                Value::Null => c.as_object_mut().unwrap().remove(k),
                v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        sign(Algorithm::HS256, None, &key, &c)
    };
    assert_eq!(publish(&app, &with(json!({}))).await, StatusCode::OK);
    for (name, extra) in [
        ("another issuer", json!({"iss": "https://other-idp.test"})),
        ("no issuer", json!({"iss": null})),
        ("another audience", json!({"aud": "another-app"})),
        ("no audience", json!({"aud": null})),
    ] {
        assert_eq!(
            publish(&app, &with(extra)).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_in_key_is_accepted_after_one_refetch_and_a_retired_one_is_refused_after_the_next(
) {
    let (old, new) = (es256("es-1", "es256"), es256("es-2", "es256-b"));
    let idp = Idp::serve(vec![old.jwk.clone()]).await;
    let app = spawn_app_with(|c| {
        with_idp(c, &idp);
        c.auth.jwks_refetch_min_secs = 1;
    })
    .await;
    assert_eq!(
        publish(&app, &old.token(Some("es-1"))).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 1);

    // The provider rotates: the new key is listed next to the old one and signs at once.
    idp.publish(vec![old.jwk.clone(), new.jwk.clone()]);
    let rotated = new.token(Some("es-2"));
    let status = eventually(
        Duration::from_secs(10),
        || publish(&app, &rotated),
        |s| s == StatusCode::OK,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the new key was never accepted");
    assert_eq!(
        idp.fetches(),
        2,
        "one refetch for the new kid, however many of its tokens came within the limit"
    );
    assert_eq!(
        publish(&app, &old.token(Some("es-1"))).await,
        StatusCode::OK,
        "the old key verifies while it is listed"
    );
    assert_eq!(publish(&app, &new.token(None)).await, StatusCode::OK);

    // The provider retires the old key: once the set is fetched again (here: when a token
    // names a kid the server lacks), the old key no longer verifies.
    idp.publish(vec![new.jwk.clone()]);
    let unknown = new.token(Some("es-3"));
    let old_token = old.token(Some("es-1"));
    let status = eventually(
        Duration::from_secs(10),
        || async {
            publish(&app, &unknown).await;
            publish(&app, &old_token).await
        },
        |s| s == StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the retired key still verifies"
    );
    assert_eq!(idp.fetches(), 3);
    assert_eq!(publish(&app, &rotated).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tokens_naming_made_up_kids_cannot_make_authtrail_hammer_the_identity_provider()
{
    let key = es256("es-1", "es256");
    let idp = Idp::serve(vec![key.jwk.clone()]).await;
    // The default limit: at most one fetch per 30 s.
    let app = spawn_app_with(|c| with_idp(c, &idp)).await;
    assert_eq!(
        publish(&app, &key.token(Some("es-1"))).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 1);
    let started = Instant::now();
    let statuses: Vec<StatusCode> = futures::stream::iter(0..300)
        .map(|i| {
            let token = key.token(Some(&format!("made-up-{i}")));
            let app = &app;
            async move { publish(app, &token).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    let windows = 1 + started.elapsed().as_secs() as usize / 30;
    assert!(
        idp.fetches() <= 1 + windows,
        "300 made-up kids made {} fetches in {:?}",
        idp.fetches(),
        started.elapsed()
    );
    assert_eq!(
        publish(&app, &key.token(Some("es-1"))).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_confusion_with_the_keys_of_the_key_set_is_refused() {
    let es = es256("es-1", "es256");
    let ed = eddsa("ed-1");
    let symmetric = b"a-symmetric-key-someone-put-into-the-key-set";
    let idp = Idp::serve(vec![
        es.jwk.clone(),
        ed.jwk.clone(),
        json!({"kty": "oct", "k": b64url(symmetric), "kid": "sym-1", "alg": "HS256"}),
    ])
    .await;
    // HS256 (with the test secret) and ES256 allowed; EdDSA not.
    let app = spawn_app_with(|c| with_idp(c, &idp)).await;
    assert_eq!(publish(&app, &es.token(Some("es-1"))).await, StatusCode::OK);

    let public_pem = std::fs::read(key_path("es256-public.pem")).unwrap();
    let der = spki("es256-public.pem");
    let point = &der[der.len() - 65..];
    let hs = |kid: &str, secret: &[u8]| {
        sign(
            Algorithm::HS256,
            Some(kid),
            &EncodingKey::from_secret(secret),
            &claims(),
        )
    };
    let none = format!(
        "{}.{}.",
        b64url(json!({"alg": "none", "kid": "es-1"}).to_string().as_bytes()),
        b64url(claims().to_string().as_bytes())
    );
    let cases = [
        (
            "HS256 keyed with the ES256 key's public PEM, naming that key",
            hs("es-1", &public_pem),
        ),
        (
            "HS256 keyed with the ES256 key's public point, naming that key",
            hs("es-1", point),
        ),
        (
            "HS256 keyed with a symmetric key from the key set",
            hs("sym-1", symmetric),
        ),
        (
            "EdDSA, outside the allow-list, with its key in the set",
            ed.token(Some("ed-1")),
        ),
        (
            "ES256 naming the kid of the EdDSA key",
            sign(Algorithm::ES256, Some("ed-1"), &es.private, &claims()),
        ),
        ("alg none naming a listed kid", none),
    ];
    for (name, token) in cases {
        assert_eq!(
            publish(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_one_of_several_static_keys_but_signed_by_another_is_refused() {
    let (old, new, ed) = (
        es256("k-old", "es256"),
        es256("k-new", "es256-b"),
        eddsa("unused"),
    );
    let app = spawn_app_with(|c| {
        c.auth.jwt_algorithms = vec!["ES256".into(), "EdDSA".into()];
        c.auth.jwt_keys = vec![
            JwtKeyConfig {
                kid: Some("k-old".into()),
                alg: "ES256".into(),
                pem: key_path("es256-public.pem"),
            },
            JwtKeyConfig {
                kid: Some("k-new".into()),
                alg: "ES256".into(),
                pem: key_path("es256-b-public.pem"),
            },
            JwtKeyConfig {
                kid: None,
                alg: "EdDSA".into(),
                pem: key_path("eddsa-public.pem"),
            },
        ];
    })
    .await;
    for (name, token) in [
        ("the old key, by kid", old.token(Some("k-old"))),
        ("the new key, by kid", new.token(Some("k-new"))),
        ("the old key, without kid", old.token(None)),
        ("the new key, without kid", new.token(None)),
        ("the key without kid", ed.token(None)),
        ("the key without kid, any kid", ed.token(Some("whatever"))),
    ] {
        assert_eq!(publish(&app, &token).await, StatusCode::OK, "{name}");
    }
    for (name, token) in [
        (
            "signed by the new key, naming the old",
            new.token(Some("k-old")),
        ),
        (
            "signed by the old key, naming the new",
            old.token(Some("k-new")),
        ),
        ("naming a kid no ES256 key has", new.token(Some("k-other"))),
        ("EdDSA naming an ES256 key's kid", ed.token(Some("k-old"))),
    ] {
        assert_eq!(
            publish(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
}
