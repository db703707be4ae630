//! What configuration output and start-up checks do with credentials (item 9): `authtrail
//! config` and every `Debug` of the configuration mask them; the demo token mint serves only
//! a server listening on loopback.

use crate::common::app::{spawn_app_with, test_config};
use crate::common::TestTopic;
use authtrail::app::Application;
use authtrail::config::Config;
use reqwest::StatusCode;
use serde_json::json;

/// Credential values planted in the configuration; none may appear in any output.
const KAFKA_SECRETS: &[(&str, &str)] = &[
    (
        "sasl.jaas.config",
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"jaas-pw-8c1f\";",
    ),
    ("sasl.password", "sasl-pw-3e9a"),
    ("sasl.oauthbearer.client.secret", "oauth-secret-77b2"),
    (
        "ssl.key.pem",
        "-----BEGIN PRIVATE KEY-----pem-body-51d0-----END PRIVATE KEY-----",
    ),
    ("ssl.key.password", "key-pw-0c4d"),
    ("ssl.keystore.password", "keystore-pw-9f3e"),
    ("ssl.truststore.password", "truststore-pw-2a6b"),
];
const JWT_SECRET: &str = "jwt-hs256-secret-6d1c-at-least-32-bytes-long";
const DB_PASSWORD: &str = "db-pw-4b8e";
const API_KEY: &str = "raw-api-key-e5a7-at-least-thirty-two-bytes";

/// A configuration holding one of each kind of credential.
fn config_with_secrets() -> Config {
    let mut c = Config::default();
    for (k, v) in KAFKA_SECRETS {
        c.kafka.properties.insert((*k).into(), (*v).into());
    }
    c.kafka
        .properties
        .insert("security.protocol".into(), "SASL_SSL".into());
    c.database.url = format!("postgres://app:{DB_PASSWORD}@db:5432/authtrail");
    c.auth.jwt_hs256_secret = JWT_SECRET.into();
    c.auth.api_keys = vec![API_KEY.into()];
    c
}

fn planted() -> Vec<&'static str> {
    let mut all: Vec<&str> = KAFKA_SECRETS.iter().map(|(_, v)| *v).collect();
    // The distinctive part of each value: a masked value must not leak even partially.
    all.extend([
        "jaas-pw-8c1f",
        "pem-body-51d0",
        JWT_SECRET,
        DB_PASSWORD,
        API_KEY,
    ]);
    all
}

#[test]
fn authtrail_config_prints_no_kafka_credential_property_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authtrail.toml");
    let mut toml = String::from("[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n");
    for (k, v) in KAFKA_SECRETS {
        toml.push_str(&format!("{} = {}\n", json!(k), json!(v)));
    }
    std::fs::write(&file, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env("AUTHTRAIL_AUTH_JWT_HS256_SECRET", JWT_SECRET)
        .env(
            "AUTHTRAIL_DATABASE_URL",
            format!("postgres://app:{DB_PASSWORD}@db:5432/authtrail"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    for secret in planted().into_iter().filter(|s| *s != API_KEY) {
        assert!(
            !printed.contains(secret),
            "`authtrail config` printed {secret:?}:\n{printed}"
        );
    }
    // Masked, not dropped: an operator still sees which properties are set.
    let shown: toml::Value = toml::from_str(&printed).unwrap();
    for (k, _) in KAFKA_SECRETS {
        assert_eq!(
            shown["kafka"]["properties"][*k].as_str(),
            Some("***"),
            "{k}"
        );
    }
    assert_eq!(
        shown["kafka"]["properties"]["security.protocol"].as_str(),
        Some("SASL_SSL")
    );
    assert_eq!(shown["auth"]["jwt_hs256_secret"].as_str(), Some("***"));
}

#[test]
fn the_debug_of_a_whole_configuration_with_secrets_shows_none_of_them() {
    let c = config_with_secrets();
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        for secret in planted() {
            assert!(
                !shown.contains(secret),
                "Debug printed {secret:?}:\n{shown}"
            );
        }
        assert!(shown.contains("SASL_SSL"), "ordinary values still show");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_token_mint_does_not_start_on_an_address_others_can_reach() {
    let topic = TestTopic::new(1).await;
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let mut c = test_config(&topic);
        c.api.enabled = false;
        c.projector.enabled = false;
        c.web.demo = true;
        c.http.listen = listen.into();
        let error = match Application::build(c).await {
            Ok(_) => panic!("a demo token mint started on {listen}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains("web.demo")
                && error.contains("http.listen")
                && error.contains("loopback"),
            "{listen}: {error}"
        );
    }
    // On loopback the demo starts and mints.
    let app = spawn_app_with(|c| c.web.demo = true).await;
    let minted = app
        .client()
        .post(app.url("/ui/demo/token"))
        .json(&json!({"role": "user", "sub": "demo-user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), StatusCode::OK);
}
