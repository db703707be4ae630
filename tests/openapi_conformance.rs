//! The OpenAPI document against the live server: schemathesis (installed by `./dev test`, its
//! `st` named by AUTHTRAIL_DEV_SCHEMATHESIS) generates requests from `/api/v1/openapi.json`
//! and runs all its default checks on the answers (no server errors; status codes, content
//! types, headers and bodies as documented; invalid input rejected, valid input accepted;
//! requests without credentials refused; ...). It must find nothing.
//!
//! Three runs, each against a server of its own with the same few sessions and security events
//! projected (the stateful phase revokes sessions): every operation as an admin, the caller's
//! own routes as a user with a live session, and introspection as the auth service. Generation
//! is seeded, so a run repeats; the SSE stream is left out (its body never ends). On failure the test prints schemathesis' report, which
//! names each failing check with a curl command that reproduces it (the first failure of each
//! operation and check; AUTHTRAIL_DEV_SCHEMATHESIS_ARGS="--continue-on-failure" lists all).

mod common;

use common::api::*;
use common::app::{hs256_jwt, TEST_HS256_SECRET};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where `./dev test` puts schemathesis' `st`.
const ST_VAR: &str = "AUTHTRAIL_DEV_SCHEMATHESIS";
/// More `st run` options, split at whitespace, for digging by hand: e.g.
/// `--continue-on-failure --max-examples 200` to list every failure, not the first of each.
const ARGS_VAR: &str = "AUTHTRAIL_DEV_SCHEMATHESIS_ARGS";
/// Test cases per operation and phase: enough for every documented parameter and status
/// (the coverage phase adds its boundary cases on top), small enough for ~1 minute on 2 cores.
const MAX_EXAMPLES: &str = "50";
/// Fixed, so a failure repeats run after run.
const SEED: &str = "20260101";
/// A run that takes longer than this has hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Its body never ends: schemathesis would wait for it until the request timeout.
const STREAM_PATH: &str = "/api/v1/admin/security-events/stream";

/// A token valid for longer than any run (`hs256_jwt` defaults to 10 minutes).
fn token(mut claims: Value) -> String {
    claims["exp"] = json!(jsonwebtoken::get_current_timestamp() + 3600);
    hs256_jwt(TEST_HS256_SECRET, claims)
}

fn st() -> PathBuf {
    let st = std::env::var_os(ST_VAR).unwrap_or_else(|| {
        panic!(
            "{ST_VAR} is not set: run this test through ./dev test (e.g. \
             `./dev test --test openapi_conformance`), which installs schemathesis and names \
             its `st` there"
        )
    });
    let st = PathBuf::from(st);
    assert!(
        st.is_file(),
        "{ST_VAR}={} is not a file: run this test through ./dev test, which installs schemathesis",
        st.display()
    );
    st
}

/// One `st run` over the operations `filter` selects, as the caller of `bearer`: `None` when
/// schemathesis exits 0, else its output.
async fn schemathesis(app: &ApiApp, who: &str, bearer: &str, filter: &[&str]) -> Option<String> {
    // Its working directory and reports stay out of the repository.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{who}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let extra = std::env::var(ARGS_VAR).unwrap_or_default();
    let mut cmd = tokio::process::Command::new(st());
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    cmd.arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--exclude-path", STREAM_PATH])
        .args(filter)
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "10"])
        // Nothing remembered between runs: the same seed means the same cases.
        .args(["--generation-database", "none"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&dir)
        .args(["--no-color", "--output-truncate", "false"])
        .args(extra.split_whitespace())
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({who}) did not finish within {RUN_TIMEOUT:?}"))
        .expect("start schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis as {who}: {} in {:.0?} (JUnit report in {})",
        out.status,
        started.elapsed(),
        dir.display()
    );
    (!out.status.success()).then(|| {
        format!(
            "=== schemathesis as {who}: {} ===\n{stdout}\n{stderr}",
            out.status
        )
    })
}

/// A server whose lists have items (and security events exist) for the schemas to check: a few
/// users' sessions and attempts, the admin's own included.
async fn seeded_api() -> ApiApp {
    let app = spawn_api().await;
    app.publish(vec![
        login_failed("alice", ago(50), IP_SE),
        login_ok("alice", "s-a1", ago(25), IP_GB, UA_DESKTOP),
        login_ok("alice", "s-a2", ago(20), IP_SE, UA_MOBILE),
        device_trusted("alice", "s-a1", ago(24)),
        login_ok("bob", "s-b1", ago(20), IP_GB, UA_DESKTOP),
        login_ok("bob", "s-b2", ago(10), IP_SE, UA_MOBILE),
        login_failed("carol", ago(5), IP_GB),
        login_ok("carol", "s-c1", ago(4), IP_GB, UA_DESKTOP),
        login_ok("admin-1", "s-admin", ago(3), IP_GB, UA_DESKTOP),
    ])
    .await;
    app.settle().await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM security_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(events > 0, "the fixture made no security event");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_what_the_server_does() {
    // Fail before anything starts when schemathesis is missing.
    st();

    let runs: [(&str, Value, &[&str]); 3] = [
        // Every operation as an admin (who is also a person: the user routes answer too). No
        // `sid`, like the admin of tests/api.rs.
        ("admin", json!({"sub": "admin-1", "role": "admin"}), &[]),
        // The caller's own routes as a user with a live session.
        (
            "user",
            json!({"sub": "alice", "sid": "s-a1", "role": "user"}),
            &["--include-path-regex", "^/api/v1/auth/"],
        ),
        // Introspection as the auth service, the one caller it answers.
        (
            "service",
            json!({"sub": "svc-auth", "role": "service", "scope": "authtrail:publish authtrail:introspect"}),
            &["--include-path", "/api/v1/sessions/introspect"],
        ),
    ];
    // Every run, then every failure: one caller's findings do not hide another's.
    let mut failures = Vec::new();
    for (who, claims, filter) in runs {
        let app = seeded_api().await;
        failures.extend(schemathesis(&app, who, &token(claims), filter).await);
    }
    assert!(
        failures.is_empty(),
        "schemathesis found the OpenAPI document and the server disagreeing:\n{}",
        failures.join("\n")
    );
}
