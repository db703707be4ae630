//! The web dashboard under `/ui/`: static assets built from `web/` (Vite), served
//! from `web.dir`, plus the demo sign-in.
//!
//! The pages talk to the public query API only (`/api/v1/...`) with a bearer token that the host
//! page provides (`#token=...`, or `postMessage` from an origin listed in `web.token_origins`);
//! the page keeps it in memory and `sessionStorage`, never `localStorage`. This module adds no
//! data route: the only thing it serves besides files and its own configuration is the **demo
//! sign-in**, which mints dev tokens (`POST /ui/demo/token`) and exists only when `web.demo` is
//! set — `./dev run` sets it; nothing else does.
//!
//! Every answer under `/ui` carries the page's `Content-Security-Policy`, whose
//! `frame-ancestors` is `web.frame_ancestors` (default `'none'`: no framing), the matching
//! `X-Frame-Options` (`DENY` for `'none'`, `SAMEORIGIN` for `'self'`, none for a list of
//! origins, which it cannot express) and `Referrer-Policy: no-referrer`.
//!
//! - `GET /ui` → redirect to `/ui/`
//! - `GET /ui/`, `GET /ui/{*path}` → the built files (`index.html` for directories); 503 with a
//!   plain explanation while `web.dir` holds no build, 404 for a file that is not there.
//! - `GET /ui/config` → `{"demo": bool, "token_origins": [...]}`: what the page needs before it
//!   accepts a token by `postMessage` (always 200)
//! - `GET /ui/demo/config` → `{"demo": bool}` (always 200, so the page can ask without noise)
//! - `POST /ui/demo/token` `{"role": "user"|"admin", "sub": "...", "sid": "..."}` → `{"token"}`;
//!   404 unless `web.demo`.

use crate::auth::dev_token::{self, DevToken};
use crate::config::WebConfig;
use crate::server::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tower_http::services::ServeDir;

/// The dashboard's routes (none when `web.enabled` is off).
pub(crate) fn router(web: &WebConfig) -> Router<AppState> {
    if !web.enabled {
        return Router::new();
    }
    if web.demo {
        tracing::warn!(
            "web.demo is on: /ui/demo/token mints tokens for any user or admin to anyone who asks (DEMO ONLY)"
        );
    }
    let headers = Arc::new(page_headers(web));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/config", get(page_config))
        .route("/ui/demo/config", get(demo_config))
        .route("/ui/demo/token", post(demo_token))
        .route("/ui/", get(assets))
        .route("/ui/{*path}", get(assets))
        .layer(axum::middleware::map_response(move |mut r: Response| {
            let headers = headers.clone();
            async move {
                for (name, value) in headers.iter() {
                    r.headers_mut().insert(name, value.clone());
                }
                r
            }
        }))
}

/// The page's policy up to its `frame-ancestors` sources: its own scripts, styles and API only.
macro_rules! policy_before_ancestors {
    () => {
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
         style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors "
    };
}

/// The security headers of every dashboard answer (see the module docs).
fn page_headers(web: &WebConfig) -> Vec<(HeaderName, HeaderValue)> {
    let mut ancestors = web
        .frame_ancestors
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let policy = format!("{}{ancestors}", policy_before_ancestors!());
    let csp = HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        // Configuration is checked at load; a hand-built one with bytes no header can carry
        // gets the default.
        tracing::warn!(frame_ancestors = ?web.frame_ancestors, "web.frame_ancestors unusable; using 'none'");
        ancestors = "'none'".into();
        HeaderValue::from_static(concat!(policy_before_ancestors!(), "'none'"))
    });
    let mut headers = vec![
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    let frame_options = match ancestors.as_str() {
        "'none'" => Some("DENY"),
        "'self'" => Some("SAMEORIGIN"),
        _ => None,
    };
    if let Some(v) = frame_options {
        headers.push((header::X_FRAME_OPTIONS, HeaderValue::from_static(v)));
    }
    headers
}

async fn assets(State(state): State<AppState>, request: Request) -> Response {
    let dir = state.config().web.dir.clone();
    if !dir.join("index.html").is_file() {
        let body = format!(
            "The authtrail dashboard is not built.\n\n\
             Build it with `npm --prefix web ci && npm --prefix web run build` (./dev run and \
             ./dev test do this), or point web.dir (AUTHTRAIL_WEB_DIR) at a built copy.\n\
             web.dir is now {:?}.\n",
            dir
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response();
    }
    let (mut parts, body) = request.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix("/ui")
        .unwrap_or("/")
        .to_owned();
    let hashed = rest.starts_with("/assets/");
    parts.uri = match Uri::builder().path_and_query(rest.as_str()).build() {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let request = Request::from_parts(parts, body);
    let mut response = match ServeDir::new(&dir).try_call(request).await {
        Ok(r) => r.map(Body::new),
        Err(e) => {
            tracing::warn!(error = %e, "web: serving a file failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // Vite names assets by content hash: cache them for good; always revalidate the page.
    let cache = if hashed && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    // Security headers: the router's layer (every answer under /ui), and nosniff the server's.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `GET /ui/config`: the demo flag and the origins whose `postMessage` may sign the page in
/// (lower-case, as a browser names an origin).
async fn page_config(State(state): State<AppState>) -> Response {
    let web = &state.config().web;
    let origins: Vec<String> = web
        .token_origins
        .iter()
        .map(|o| o.to_ascii_lowercase())
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "demo": web.demo, "token_origins": origins })),
    )
        .into_response()
}

async fn demo_config(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "demo": state.config().web.demo })),
    )
        .into_response()
}

/// What the demo sign-in asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoRequest {
    /// `user` or `admin`.
    role: String,
    /// The user to act as (role `user`).
    sub: Option<String>,
    /// The session to treat as current (role `user`).
    sid: Option<String>,
}

async fn demo_token(
    State(state): State<AppState>,
    Json(req): Json<DemoRequest>,
) -> Result<Response, ApiError> {
    let config = state.config();
    if !config.web.demo {
        return Err(ApiError::DemoDisabled);
    }
    let bad = |detail: &str| ApiError::InvalidQuery(detail.to_owned());
    let args = match req.role.as_str() {
        "admin" => DevToken {
            sub: "demo-admin".into(),
            role: "admin".into(),
            sid: None,
            ttl: 8 * 3600,
            scope: None,
        },
        "user" => {
            let sub = req
                .sub
                .filter(|s| crate::server::extract::user_id("sub", s).is_ok())
                .ok_or_else(|| bad("role user needs sub (the user id)"))?;
            DevToken {
                sub,
                role: "user".into(),
                sid: req
                    .sid
                    .filter(|s| crate::server::extract::user_id("sub", s).is_ok()),
                ttl: 8 * 3600,
                scope: None,
            }
        }
        _ => return Err(bad("role: use user or admin")),
    };
    let token = dev_token::mint(&config.auth, &args)
        .map_err(|e| ApiError::DemoUnavailable(e.to_string()))?;
    tracing::info!(role = %args.role, sub = ?args.sub, "web: demo token minted");
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "token": token, "role": args.role, "sub": args.sub, "sid": args.sid })),
    )
        .into_response())
}
