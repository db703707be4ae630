//! Caller authentication: the JWT rules (allow-list, keys per algorithm, exp/nbf/iat/iss/aud,
//! leeway), API keys held as hashes, and the axum extractors' 401/403 answers.
//!
//! Keys in `tests/auth_keys/` are throwaway test keys.

use authtrail::auth::{api_key_sha256, AuthError, CredentialKind, JwtError, Role, Verifier};
use authtrail::config::AuthConfig;
use authtrail::server::{AdminUser, AuthUser, Authenticator, ServiceCaller};
use axum::http::{HeaderMap, HeaderValue};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

const SECRET: &str = "unit-test-hs256-secret-of-at-least-32-bytes";

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/auth_keys")
        .join(name)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn config() -> AuthConfig {
    AuthConfig {
        jwt_algorithms: vec![
            "HS256".into(),
            "RS256".into(),
            "ES256".into(),
            "EdDSA".into(),
        ],
        jwt_hs256_secret: SECRET.into(),
        jwt_rs256_public_key: Some(key_path("rs256-public.pem")),
        jwt_es256_public_key: Some(key_path("es256-public.pem")),
        jwt_eddsa_public_key: Some(key_path("eddsa-public.pem")),
        jwt_issuer: Some("https://auth.example.com".into()),
        jwt_audience: Some("authtrail".into()),
        jwt_leeway_secs: 30,
        api_key_sha256: vec![api_key_sha256("hashed-key-0001")],
        api_keys: vec!["raw-key-0002-of-at-least-32-bytes".into()],
        ..AuthConfig::default()
    }
}

fn claims(extra: Value) -> Value {
    let mut c = json!({
        "sub": "user-1",
        "sid": "sess_1",
        "role": "user",
        "iss": "https://auth.example.com",
        "aud": "authtrail",
        "exp": now() + 600,
        "iat": now(),
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(key_path("rs256-private.pem")).unwrap())
                .unwrap()
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(key_path("es256-private.pem")).unwrap())
                .unwrap()
        }
        Algorithm::EdDSA => {
            EncodingKey::from_ed_pem(&std::fs::read(key_path("eddsa-private.pem")).unwrap())
                .unwrap()
        }
        other => panic!("{other:?}"),
    };
    encode(&Header::new(alg), claims, &key).unwrap()
}

fn verifier() -> Verifier {
    Verifier::from_config(&config()).unwrap()
}

#[tokio::test]
async fn every_configured_algorithm_verifies_and_yields_the_claims() {
    let v = verifier();
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let c = v
            .verify_jwt(&sign(alg, &claims(json!({"role": "admin"}))))
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(c.subject, "user-1");
        assert_eq!(c.session_id.as_deref(), Some("sess_1"));
        assert_eq!(c.role, Role::Admin);
        assert_eq!(c.via, CredentialKind::Jwt);
    }
}

#[tokio::test]
async fn the_jwt_negative_suite_is_refused() {
    let v = verifier();
    let t = now();
    let good = sign(Algorithm::HS256, &claims(json!({})));
    let mut tampered = good.clone();
    // Flip one character of the payload.
    let dot = tampered.find('.').unwrap() + 5;
    let c = tampered.as_bytes()[dot];
    tampered.replace_range(dot..dot + 1, if c == b'A' { "B" } else { "A" });
    // HS256 "signed" with the RSA public key as the secret: the classic confusion attack.
    let rsa_pub = std::fs::read(key_path("rs256-public.pem")).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(&rsa_pub),
    )
    .unwrap();
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        good.split('.').nth(1).unwrap()
    );
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims(json!({})),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none),
        ("HS256 signed with the RSA public key", confused),
        ("algorithm outside the allow-list", hs384),
        ("tampered payload", tampered),
        (
            "expired beyond leeway",
            sign(Algorithm::HS256, &claims(json!({"exp": t - 31 - 5}))),
        ),
        (
            "nbf in the future",
            sign(Algorithm::HS256, &claims(json!({"nbf": t + 120}))),
        ),
        (
            "iat in the future",
            sign(Algorithm::HS256, &claims(json!({"iat": t + 120}))),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::RS256,
                &claims(json!({"iss": "https://evil.example"})),
            ),
        ),
        (
            "missing issuer",
            sign(Algorithm::ES256, &claims(json!({"iss": null}))),
        ),
        (
            "wrong audience",
            sign(Algorithm::EdDSA, &claims(json!({"aud": "someone-else"}))),
        ),
        (
            "missing exp",
            sign(Algorithm::HS256, &claims(json!({"exp": null}))),
        ),
        (
            "missing sub",
            sign(Algorithm::HS256, &claims(json!({"sub": null}))),
        ),
        (
            "unknown role",
            sign(Algorithm::HS256, &claims(json!({"role": "root"}))),
        ),
        ("garbage", "garbage.garbage.garbage".into()),
        ("two parts", "eyJhbGciOiJIUzI1NiJ9.e30".into()),
        ("empty", String::new()),
    ];
    for (name, token) in cases {
        assert!(v.verify_jwt(&token).await.is_err(), "{name} was accepted");
    }
}

#[tokio::test]
async fn leeway_forgives_small_clock_skew_only() {
    let v = verifier();
    let t = now();
    assert!(v
        .verify_jwt(&sign(Algorithm::HS256, &claims(json!({"exp": t - 10}))))
        .await
        .is_ok());
    assert!(v
        .verify_jwt(&sign(
            Algorithm::HS256,
            &claims(json!({"nbf": t + 10, "iat": t + 10}))
        ))
        .await
        .is_ok());
    assert!(matches!(
        v.verify_jwt(&sign(Algorithm::HS256, &claims(json!({"iat": t + 300}))))
            .await,
        Err(AuthError::Jwt(JwtError::IssuedInFuture))
    ));
}

#[test]
fn configuration_mistakes_name_the_key() {
    let mut c = config();
    c.jwt_leeway_secs = 31;
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("jwt_leeway_secs"));
    let mut c = config();
    c.jwt_hs256_secret = "short".into();
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("jwt_hs256_secret"));
    let mut c = config();
    c.jwt_rs256_public_key = None;
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("jwt_rs256_public_key"));
    let mut c = config();
    c.jwt_es256_public_key = Some(key_path("rs256-public.pem"));
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("jwt_es256_public_key"));
    let mut c = config();
    c.jwt_issuer = None;
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("auth.jwt_issuer"));
    let mut c = config();
    c.jwt_audience = Some(String::new());
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("auth.jwt_audience"));
    // An https key set is accepted (verified with the built-in Mozilla roots).
    let mut c = config();
    c.jwks_url = Some("https://idp.example.com/.well-known/jwks.json".into());
    Verifier::from_config(&c).expect("an https key set");
    for (url, field) in [
        ("file:///etc/jwks.json", "auth.jwks_url"),
        ("not a url", "auth.jwks_url"),
        ("http://user:pw@127.0.0.1:9/jwks.json", "auth.jwks_url"),
    ] {
        let mut c = config();
        c.jwks_url = Some(url.into());
        let e = Verifier::from_config(&c).unwrap_err().to_string();
        assert!(e.contains(field), "{url}: {e}");
    }
    let mut c = config();
    c.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
    c.jwks_refetch_min_secs = 0;
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("auth.jwks_refetch_min_secs"));
    let mut c = config();
    c.jwt_algorithms = vec!["HS256".into()];
    c.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("auth.jwt_algorithms"));
    for (alg, pem) in [
        ("HS256", "es256-public.pem"),
        ("PS256", "rs256-public.pem"),
        ("RS256", "es256-public.pem"),
    ] {
        let mut c = config();
        c.jwt_keys = vec![authtrail::config::JwtKeyConfig {
            kid: Some("k1".into()),
            alg: alg.into(),
            pem: key_path(pem),
        }];
        let e = Verifier::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("auth.jwt_keys[0]"), "{alg}: {e}");
    }
    let mut c = config();
    c.jwt_algorithms = vec!["none".into()];
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("jwt_algorithms"));
    let mut c = config();
    c.api_key_sha256 = vec!["abc".into()];
    assert!(Verifier::from_config(&c)
        .unwrap_err()
        .to_string()
        .contains("api_key_sha256[0]"));
}

#[tokio::test]
async fn api_keys_are_checked_by_hash_from_either_header() {
    let v = verifier();
    let headers = |name: &str, value: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    };
    let c = v
        .authenticate(&headers("x-api-key", "hashed-key-0001"))
        .await
        .unwrap();
    assert_eq!((c.role, c.via), (Role::Service, CredentialKind::ApiKey));
    assert!(c.subject.starts_with("api-key:") && !c.subject.contains("hashed-key"));
    assert!(v
        .authenticate(&headers(
            "authorization",
            "Bearer raw-key-0002-of-at-least-32-bytes"
        ))
        .await
        .is_ok());
    for (name, value) in [
        ("x-api-key", "hashed-key-0002"),
        ("x-api-key", ""),
        ("authorization", "Bearer "),
        ("authorization", "Basic cmF3LWtleS0wMDAy"),
        ("authorization", "raw-key-0002-of-at-least-32-bytes"),
    ] {
        assert!(
            v.authenticate(&headers(name, value)).await.is_err(),
            "{name}: {value}"
        );
    }
    assert_eq!(
        v.authenticate(&HeaderMap::new()).await,
        Err(AuthError::Missing)
    );
    assert!(!Verifier::disabled().enabled());
}

async fn whoami_service(ServiceCaller(c): ServiceCaller) -> String {
    c.subject
}
async fn whoami_user(AuthUser(c): AuthUser) -> String {
    c.subject
}
async fn whoami_admin(AdminUser(c): AdminUser) -> String {
    c.subject
}

#[tokio::test]
async fn extractors_answer_401_or_403_with_problem_bodies() {
    // Credentials only: this router has no read tables to check sessions against.
    let state = Authenticator::without_session_state(Arc::new(verifier()));
    let app = axum::Router::new()
        .route("/service", axum::routing::get(whoami_service))
        .route("/user", axum::routing::get(whoami_user))
        .route("/admin", axum::routing::get(whoami_admin))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let token = |role: &str| sign(Algorithm::ES256, &claims(json!({"role": role})));
    type Case = (&'static str, Option<(&'static str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            "/service",
            Some(("authorization", format!("Bearer {}", token("service")))),
            200,
        ),
        (
            "/service",
            Some(("x-api-key", "raw-key-0002-of-at-least-32-bytes".into())),
            200,
        ),
        (
            "/service",
            Some(("authorization", format!("Bearer {}", token("admin")))),
            403,
        ),
        ("/service", None, 401),
        (
            "/user",
            Some(("authorization", format!("Bearer {}", token("user")))),
            200,
        ),
        (
            "/user",
            Some(("x-api-key", "raw-key-0002-of-at-least-32-bytes".into())),
            401,
        ),
        (
            "/user",
            Some(("authorization", "Bearer expired.token.value".into())),
            401,
        ),
        (
            "/admin",
            Some(("authorization", format!("Bearer {}", token("user")))),
            403,
        ),
        (
            "/admin",
            Some(("authorization", format!("Bearer {}", token("admin")))),
            200,
        ),
        (
            "/admin",
            Some(("authorization", format!("Bearer {}", token("super_admin")))),
            200,
        ),
        ("/admin", None, 401),
    ];
    for (path, auth, want) in cases {
        let mut req = client.get(format!("http://{addr}{path}"));
        if let Some((k, v)) = &auth {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let www = resp.headers().get("www-authenticate").is_some();
        let body = resp.text().await.unwrap();
        assert_eq!(status, want, "{path} {auth:?}: {body}");
        if want != 200 {
            assert_eq!(ct.as_deref(), Some("application/problem+json"));
            if let Some((_, v)) = &auth {
                assert!(!body.contains(v.trim_start_matches("Bearer ")), "echoed");
            }
            assert_eq!(www, want == 401, "{path}");
        } else {
            assert_eq!(
                body,
                if path == "/service" && auth.as_ref().unwrap().0 == "x-api-key" {
                    format!(
                        "api-key:{}",
                        &api_key_sha256("raw-key-0002-of-at-least-32-bytes")[..12]
                    )
                } else {
                    "user-1".to_owned()
                }
            );
        }
    }
}
