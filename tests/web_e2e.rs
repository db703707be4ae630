//! The web dashboard end to end, in real headless Chromium.
//!
//! A server with the query API, the dashboard (`web/dist`) and an in-process projector on its
//! own topic and database; simulated traffic plus a few people with known sessions; then
//! `node web/e2e/run.mjs` drives Debian's Chromium through `playwright-core` against it (see that
//! file for the scenarios) and writes the screenshots to `target/screenshots/` (the README's
//! copies in `docs/screenshots/` are refreshed with
//! `AUTHTRAIL_E2E_SCREENSHOTS=$PWD/docs/screenshots ./dev test --test web_e2e`). The script
//! publishes its brute-force burst through the public intake while the admin page is open.
//!
//! Needs: `/usr/bin/chromium` (or `AUTHTRAIL_E2E_CHROMIUM`), `web/node_modules` and a built
//! `web/dist` — `./dev test` installs and builds all three before running the suite.

mod common;

use authtrail_projections::gen::StreamGen;
use chrono::Duration as TimeDelta;
use common::api::*;
use common::app::spawn_app_with;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const UA_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const UA_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("AUTHTRAIL_E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails with the way out when a prerequisite is missing (never skips silently).
fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): run the suite with ./dev test, which installs Chromium \
         (apt-get install chromium), runs npm ci in web/ and builds the dashboard",
        path.display()
    );
}

fn with(mut v: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    f(v["data"].as_object_mut().unwrap());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let root = root();
    require(&chromium(), "Chromium");
    require(
        &root.join("web/node_modules/playwright-core"),
        "playwright-core (web/node_modules)",
    );
    require(
        &root.join("web/dist/index.html"),
        "the built dashboard (web/dist)",
    );

    let app = spawn_api_with(Options::default(), |c| {
        c.web.dir = root.join("web/dist");
        // The demo sign-in is exercised too (off by default: see the test below).
        c.web.demo = true;
        // The postMessage sign-in: one host may hand over a token, another may frame but not.
        c.web.token_origins = vec!["http://portal.localhost".into()];
        c.web.frame_ancestors = "'self' http://portal.localhost http://evil.localhost".into();
        // Sessions last active hours ago are still active (the default idle timeout is 30 min).
        c.projector.idle_timeout_secs = 24 * 3600;
        c.projector.absolute_timeout_secs = 48 * 3600;
    })
    .await;

    // Background traffic from the simulator's generator (many users, devices, countries).
    let started = Instant::now();
    let events = StreamGen::new(11, 25, chrono::Utc::now() - TimeDelta::hours(6)).take(300);
    app.intake.submit(events, "test").await.unwrap();

    // A person with four sessions on four devices, one of them the current one.
    let u = "e2e-user";
    let t = |m: i64| ago(m);
    let mut fixtures = vec![
        login_ok(u, "e2e-mac", t(240), IP_GB, UA_MAC),
        login_ok(u, "e2e-phone", t(180), IP_GB, UA_MOBILE),
        device_trusted(u, "e2e-phone", t(179)),
        login_ok(u, "e2e-android", t(120), IP_SE, UA_ANDROID),
        login_ok(u, "e2e-current", t(20), IP_GB, UA_DESKTOP),
    ];
    for m in [90, 89, 88, 87] {
        fixtures.push(login_failed(u, t(m), IP_SE));
    }
    // Older attempts, far enough apart not to count as a burst: a second page of history.
    for d in 0..16 {
        fixtures.push(login_failed(u, t(300 + d * 100), IP_GB));
    }
    // A second person, for the admin's drill-down and force-logout.
    let v = "e2e-other";
    fixtures.push(login_ok(v, "e2e-other-1", t(60), IP_SE, UA_DESKTOP));
    fixtures.push(login_ok(v, "e2e-other-2", t(30), IP_GB, UA_MOBILE));
    // A super-admin with OTP, as in the seed's monitoring feed.
    fixtures.push(with(
        login_ok("e2e-root", "e2e-root-1", t(10), IP_GB, UA_DESKTOP),
        |d| {
            d.insert("roles".into(), json!(["super_admin"]));
            d.insert("otp_required".into(), json!(true));
            d.insert("otp_verified".into(), json!(true));
            d.insert("identifier".into(), json!("admin@example.com"));
        },
    ));
    app.publish(fixtures).await;
    app.settle().await;
    eprintln!("fixtures projected in {:.1?}", started.elapsed());

    let user_token = user_token(u, Some("e2e-current"));
    let admin = admin_token();
    let shots = std::env::var_os("AUTHTRAIL_E2E_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/screenshots"));
    let started = Instant::now();
    let status = tokio::process::Command::new("node")
        .arg(root.join("web/e2e/run.mjs"))
        .current_dir(root.join("web"))
        .env("E2E_BASE_URL", app.url(""))
        .env("E2E_USER", u)
        .env("E2E_USER_TOKEN", &user_token)
        .env("E2E_CURRENT_SID", "e2e-current")
        .env("E2E_OTHER_USER", v)
        .env("E2E_ADMIN_TOKEN", &admin)
        .env("E2E_API_KEY", api_key())
        .env("E2E_CHROMIUM", chromium())
        .env("E2E_SCREENSHOTS", &shots)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(170), status)
        .await
        .expect("the browser tests did not finish within 170 s")
        .expect("node runs");
    eprintln!("browser tests took {:.1?}", started.elapsed());
    assert!(status.success(), "web/e2e/run.mjs failed: {status}");

    // What the pages did went through the log: the API agrees with what the browser saw.
    let mine = app.get("/api/v1/auth/sessions", &user_token).await;
    let ids: Vec<&str> = mine
        .items()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["e2e-current"], "only the current session is left");
    let other = app
        .get(
            &format!("/api/v1/admin/users/{v}/sessions?status=active"),
            &admin,
        )
        .await;
    assert!(other.items().is_empty(), "force logout ended every session");
}

/// The front-end's unit tests (`npm test` in web/: names, places, relative times, feed icons).
#[test]
fn front_end_unit_tests() {
    let root = root();
    // English relative times whatever the machine's locale.
    let status = std::process::Command::new("node")
        .args(["--test", "src/"])
        .current_dir(root.join("web"))
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .status()
        .expect("node runs (install Node.js 20+)");
    assert!(
        status.success(),
        "node --test src/ in web/ failed: {status}"
    );
}

/// Without a build the pages answer 503 saying how to build them; the demo sign-in is off unless
/// configured; the API is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbuilt_dashboard_answers_503_and_demo_is_off_by_default() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_owned();
    let app = spawn_app_with(move |c| c.web.dir = dir).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");
    let r = client.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("npm --prefix web run build"), "{body}");

    let r = client.get(app.url("/ui/demo/config")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"demo": false}));
    let r = client
        .post(app.url("/ui/demo/token"))
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no demo tokens unless web.demo is on");

    // A built directory is served, with a 404 for files it does not have.
    std::fs::write(
        empty.path().join("index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    let r = client.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let r = client
        .get(app.url("/ui/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .get(app.url("/ui/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
}

/// The demo sign-in mints tokens only for `user` (with a sub) and `admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sign_in_mints_user_and_admin_tokens_only() {
    let app = spawn_app_with(|c| c.web.demo = true).await;
    let client = reqwest::Client::new();
    let post = |body: Value| client.post(app.url("/ui/demo/token")).json(&body).send();
    let r = post(json!({"role": "admin"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = |t: &str| -> Value {
        use base64::Engine;
        let part = t.split('.').nth(1).unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    let c = claims(&token);
    assert_eq!(c["role"], "admin");
    assert!(c["exp"].as_u64().unwrap() > c["iat"].as_u64().unwrap());
    assert_eq!(
        post(json!({"role": "service"})).await.unwrap().status(),
        400
    );
    assert_eq!(
        post(json!({"role": "super_admin"})).await.unwrap().status(),
        400
    );
    assert_eq!(post(json!({"role": "user"})).await.unwrap().status(), 400);
    let r = post(json!({"role": "user", "sub": "u1", "sid": "s1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = claims(r.json::<Value>().await.unwrap()["token"].as_str().unwrap());
    assert_eq!(
        (c["sub"].as_str(), c["sid"].as_str(), c["role"].as_str()),
        (Some("u1"), Some("s1"), Some("user"))
    );
}
