//! See `main.rs`. What a browser is told: never sniff a type, never frame the dashboard unless
//! configured; and whose `postMessage` may hand the dashboard a token.

use crate::common::api::{spawn_api_with, Options};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// A dashboard build of one page (the real one needs npm; the headers do not).
fn built_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>authtrail</title>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "export {};").unwrap();
    dir
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

/// MIME sniffing: a browser that guesses a type can run a JSON answer or an error page that
/// echoes a parameter as HTML or script. Every answer of the server — operations, intake, query
/// API, dashboard, problems, 404s and 405s — says `nosniff`; every dashboard answer forbids
/// framing (clickjacking: a hostile page overlays the "revoke all sessions" button).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_forbids_sniffing_and_the_dashboard_forbids_framing() {
    let web = built_dir();
    let dir = web.path().to_owned();
    let app = spawn_api_with(Options { projector: false }, move |c| c.web.dir = dir).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cases: Vec<(Method, &str, u16)> = vec![
        (Method::GET, "/healthz", 200),
        (Method::GET, "/metrics", 0),
        (Method::POST, "/v1/events", 401),
        (Method::GET, "/api/v1/auth/sessions", 401),
        (Method::GET, "/api/v1/admin/sessions?limit=0", 401),
        (Method::GET, "/api/v1/openapi.json", 200),
        (Method::GET, "/no/such/route", 404),
        (Method::PUT, "/healthz", 405),
        (Method::GET, "/ui", 308),
        (Method::GET, "/ui/", 200),
        (Method::GET, "/ui/assets/app.js", 200),
        (Method::GET, "/ui/assets/missing.js", 404),
        (Method::GET, "/ui/config", 200),
        (Method::GET, "/ui/demo/config", 200),
        (Method::POST, "/ui/demo/token", 0),
    ];
    for (method, path, status) in cases {
        let r = client
            .request(method.clone(), app.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let what = format!("{method} {path} ({})", r.status());
        if status != 0 {
            assert_eq!(r.status().as_u16(), status, "{what}");
        }
        let h = r.headers();
        assert_eq!(
            header(h, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        if path.starts_with("/ui") {
            let csp = header(h, "content-security-policy").unwrap_or_default();
            assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
            assert!(csp.contains("default-src 'self'"), "{what}: {csp:?}");
            assert_eq!(header(h, "x-frame-options"), Some("DENY"), "{what}");
        }
    }
}

/// `web.frame_ancestors` decides who may frame the dashboard, and `X-Frame-Options` follows
/// where it can say the same (`SAMEORIGIN` for `'self'`; nothing for a list of origins, which
/// it cannot express and would otherwise forbid). A value that would add CSP directives is
/// refused at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_follows_web_frame_ancestors_and_nothing_else() {
    for (ancestors, frame_options) in [
        ("'self'", Some("SAMEORIGIN")),
        ("'self' https://portal.example.com", None),
    ] {
        let web = built_dir();
        let dir = web.path().to_owned();
        let app = spawn_api_with(Options { projector: false }, move |c| {
            c.web.dir = dir;
            c.web.frame_ancestors = ancestors.into();
        })
        .await;
        for path in ["/ui/", "/ui/config"] {
            let r = reqwest::get(app.url(path)).await.unwrap();
            let h = r.headers();
            let csp = header(h, "content-security-policy").unwrap();
            assert!(
                csp.ends_with(&format!("frame-ancestors {ancestors}")),
                "{path}: {csp}"
            );
            assert_eq!(header(h, "x-frame-options"), frame_options, "{path}");
        }
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    let ancestors = [
        "'none'; script-src *",
        "https://a.example, https://b.example",
        "'none' https://a.example",
        "",
        "'unsafe-inline'",
    ]
    .map(|bad| ("frame_ancestors", toml_string(bad)));
    let origins = [
        "*",
        "https://portal.example.com/",
        "portal.example.com",
        "null",
    ]
    .map(|bad| ("token_origins", format!("[{}]", toml_string(bad))));
    for (key, value) in ancestors.into_iter().chain(origins) {
        std::fs::write(file.path(), format!("[web]\n{key} = {value}\n")).unwrap();
        let err = authtrail::Config::load(Some(file.path()))
            .expect_err(&format!("{key} = {value} accepted"));
        assert!(err.to_string().contains(&format!("web.{key}")), "{err}");
    }
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Token injection by `postMessage`: any page that frames or opens the dashboard could post
/// `{type: "authtrail:token", token}` and sign it in as someone of its choosing (an attacker's
/// account, so the victim's actions land there). The page takes a posted token only from the
/// origins in `web.token_origins` (none by default), which `/ui/config` serves it; the page's
/// handler (`web/src/inbox.js`) is checked by its unit tests, run here with Node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_posted_from_an_unlisted_origin_does_not_sign_the_dashboard_in() {
    let web = built_dir();
    let dir = web.path().to_owned();
    let app = spawn_api_with(Options { projector: false }, move |c| {
        c.web.dir = dir;
        c.web.token_origins = vec!["https://Portal.example.com:8443".into()];
    })
    .await;
    let cfg: Value = reqwest::get(app.url("/ui/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cfg,
        json!({"demo": false, "token_origins": ["https://portal.example.com:8443"]})
    );
    let web = built_dir();
    let dir = web.path().to_owned();
    let default = spawn_api_with(Options { projector: false }, move |c| c.web.dir = dir).await;
    let cfg: Value = reqwest::get(default.url("/ui/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cfg["token_origins"],
        json!([]),
        "postMessage sign-in is off by default"
    );

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = tokio::process::Command::new("node")
        .args(["--test", "src/inbox.test.js"])
        .current_dir(&root)
        .env("LC_ALL", "C")
        .output()
        .await
        .expect("node runs (install Node.js 20+)");
    assert!(
        out.status.success(),
        "web/src/inbox.test.js failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
