//! Routes with their policy: a feature adds a route only by saying who may call it, which rate
//! limit it spends and whether it is audited ([`Policy`]); one route layer enforces that, records
//! per-route metrics, marks every answer `Cache-Control: no-store`, and the route's OpenAPI
//! operation gains the statuses the policy can answer (shared responses in the components).

use super::audit::{admin_action, check_contract, Audited};
use super::caller::{authenticate, Admits};
use super::extract::{user_id, MAX_USER_ID_CHARS, USER_ID_PATTERN};
use super::limit::Budget;
use super::problem::ProblemDoc;
use super::{ApiError, AppState, ProblemKind};
use crate::auth::Caller;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{Map, Value};
use std::time::Instant;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// What a route demands and records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    admits: Admits,
    budget: Budget,
    audit: Audit,
}

/// Whether a route is audited, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audit {
    /// Not an admin route.
    No,
    /// An admin read: the route layer appends `admin.action` `action` (about the user the
    /// [`Target`] names) with the request's path and query parameters, while the handler runs.
    Read(&'static str, Target),
    /// An admin command: the handler appends the [`Audited`] record with its own events.
    Command(&'static str),
}

/// Which parameter names the user an audited read concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// No single user.
    None,
    /// The path parameter `id` is a user id.
    PathId,
    /// The query parameter `user`, when given.
    QueryUser,
}

impl Policy {
    pub(crate) const fn new(admits: Admits, budget: Budget, audit: Audit) -> Policy {
        Policy {
            admits,
            budget,
            audit,
        }
    }
}

/// A feature's routes, each added with its policy.
pub(crate) struct Routes {
    router: OpenApiRouter<AppState>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes {
            router: OpenApiRouter::new(),
        }
    }

    /// Adds the operations `routes` (from `utoipa_axum::routes!`) under `policy`.
    ///
    /// Panics (when the router is built, so at start-up and in every test) for an admin route
    /// that is not audited: every admin read and write is on the record.
    pub(crate) fn add(self, policy: Policy, routes: UtoipaMethodRouter<AppState>) -> Self {
        let (schemas, mut paths, method_router) = routes;
        assert!(
            policy.admits != Admits::Admin || policy.audit != Audit::No,
            "admin routes are audited: {:?} declares Audit::No",
            paths.paths.keys().collect::<Vec<_>>()
        );
        for (path, item) in paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                document(op, path, &policy);
            }
        }
        let method_router =
            method_router.route_layer(axum::middleware::from_fn_with_state(policy, guard));
        Routes {
            router: self.router.routes((schemas, paths, method_router)),
        }
    }

    pub(crate) fn merge(self, other: Routes) -> Self {
        Routes {
            router: self.router.merge(other.router),
        }
    }

    /// The routes, and their OpenAPI paths inside `base` (the shared responses added).
    pub(crate) fn split(self, base: OpenApi) -> (Router<AppState>, OpenApi) {
        let (router, mut doc) = OpenApiRouter::with_openapi(base)
            .merge(self.router)
            .split_for_parts();
        add_components(&mut doc);
        (router, doc)
    }
}

/// The statuses a policy can answer, as references to the shared responses; user-id
/// parameters (`{id}` of a `/users/{id}` path, query `user`) as the server checks them.
fn document(op: &mut Operation, path: &str, policy: &Policy) {
    for p in op.parameters.iter_mut().flatten() {
        let is_user = match p.parameter_in {
            ParameterIn::Path => p.name == "id" && path.contains("/users/{id}"),
            ParameterIn::Query => p.name == "user",
            _ => false,
        };
        if is_user {
            p.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_USER_ID_CHARS))
                    .pattern(Some(USER_ID_PATTERN))
                    .into(),
            );
        }
    }
    // Every route spends a per-caller budget (429).
    let mut kinds = vec![
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::RateLimited,
        ProblemKind::Busy,
        ProblemKind::Internal,
    ];
    // Commands append events and may wait for their projection (`?wait=true`).
    if policy.budget == Budget::Command {
        kinds.push(ProblemKind::ProjectionTimeout);
    }
    let has_input =
        op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
    if has_input && !op.responses.responses.contains_key("400") {
        kinds.push(ProblemKind::InvalidParameter);
    }
    for kind in kinds {
        op.responses
            .responses
            .entry(kind.status().as_u16().to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response_name(kind))));
    }
}

/// The shared responses: the kind of problem, the components' name, the description. Every
/// status a policy adds refers to one of these.
const SHARED: [(ProblemKind, &str, &str); 7] = [
    (
        ProblemKind::Unauthorized,
        "Unauthorized",
        "Missing or invalid credentials",
    ),
    (
        ProblemKind::Forbidden,
        "Forbidden",
        "The caller's role may not use this route",
    ),
    (
        ProblemKind::RateLimited,
        "RateLimited",
        "The caller's rate limit is exhausted (`Retry-After`)",
    ),
    (
        ProblemKind::InvalidParameter,
        "BadParameter",
        "A parameter or the body is invalid (a parameter is named in `parameter`)",
    ),
    (
        ProblemKind::ProjectionTimeout,
        "ProjectionTimeout",
        "Appended, but not projected within the wait (`wait=true`); it will be",
    ),
    (
        ProblemKind::Internal,
        "Internal",
        "An unexpected failure; the body holds no internals (the cause is logged)",
    ),
    (
        ProblemKind::Busy,
        "Unavailable",
        "The database or the event log is unavailable or busy; retry (`Retry-After`)",
    ),
];

/// The components' name of the shared response of `kind`.
fn response_name(kind: ProblemKind) -> &'static str {
    SHARED
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, name, _)| *name)
        .expect("every kind a policy adds has a shared response")
}

/// The shared responses, and the problem schema they carry.
fn add_components(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(ProblemDoc::name().into_owned(), ProblemDoc::schema());
    for (_, name, description) in SHARED {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                crate::server::problem::CONTENT_TYPE,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
}

/// The route layer: authenticate, admit, spend the budget, audit; then metrics and no-store.
async fn guard(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let mut response = match enforce(policy, request, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    // Sessions, addresses and audit data: never kept by shared caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = response.status().as_u16().to_string();
    metrics::histogram!("authtrail_api_request_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("authtrail_api_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

async fn enforce(policy: Policy, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(server) = request.extensions().get::<AppState>().cloned() else {
        tracing::error!("route layer without the server state (AppState::finish not applied)");
        return Err(ApiError::Internal);
    };
    let (mut parts, body) = request.into_parts();
    let caller = authenticate(&parts, server.authenticator()).await?;
    policy.admits.check(&caller)?;
    server.limits().check(policy.budget, &caller)?;
    parts.extensions.insert(caller.clone());
    match policy.audit {
        Audit::No => Ok(next.run(Request::from_parts(parts, body)).await),
        Audit::Command(action) => {
            parts.extensions.insert(Audited { caller, action });
            Ok(next.run(Request::from_parts(parts, body)).await)
        }
        Audit::Read(action, target) => {
            let record = read_record(&mut parts, &caller, action, target).await?;
            let request = Request::from_parts(parts, body);
            let (appended, response) = tokio::join!(server.append_audit(record), next.run(request));
            appended?;
            Ok(response)
        }
    }
}

/// The most characters of one parameter an audit record keeps.
const RECORDED_CHARS: usize = 256;

/// A request value as an audit record can hold it: control and format characters escaped
/// (`\u{1b}`, `\u{202e}`: the contract refuses them), at most [`RECORDED_CHARS`] characters
/// (then `…`). The record never refuses the request.
fn recordable(value: &str) -> String {
    authtrail_events::parse::printable(value, RECORDED_CHARS)
}

/// The `admin.action` of an audited read: the path and query parameters are its details; the
/// target user, when the route names one, must be a valid user id (else a 400 naming it).
async fn read_record(
    parts: &mut axum::http::request::Parts,
    caller: &Caller,
    action: &'static str,
    target: Target,
) -> Result<authtrail_events::Event, ApiError> {
    use axum::extract::FromRequestParts;
    let path: Vec<(String, String)> = match RawPathParams::from_request_parts(parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let named = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| user_id(name, v).map(str::to_owned))
            .transpose()
    };
    let user = match target {
        Target::None => None,
        Target::PathId => named(&path, "id")?,
        Target::QueryUser => named(&query, "user")?,
    };
    let mut details = Map::new();
    for (section, pairs) in [("path", path), ("query", query)] {
        if !pairs.is_empty() {
            let recorded: Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| {
                    // An address or identifier searched for is personal data about someone
                    // else, which the audit record would keep in the clear for good: it records
                    // that the admin searched by it, not the value.
                    let value = if PERSONAL_PARAMETERS.contains(&k.as_str()) {
                        authtrail_events::personal::REDACTED.to_owned()
                    } else {
                        recordable(v)
                    };
                    (recordable(k), Value::from(value))
                })
                .collect();
            details.insert(section.into(), Value::Object(recorded));
        }
    }
    let event = admin_action(caller, action, user.as_deref(), Value::Object(details));
    check_contract(&event)?;
    Ok(event)
}

/// Query parameters whose values are personal data (see [`authtrail_events::personal`]).
const PERSONAL_PARAMETERS: &[&str] = &["ip", "identifier"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::dev_token::{mint, DevToken};
    use crate::config::Config;
    use std::sync::Arc;
    use utoipa_axum::routes;

    /// Declared as an audited command.
    #[utoipa::path(post, path = "/declared", responses((status = 200, description = "ok")))]
    async fn declared(audited: Audited) -> String {
        audited.action.to_owned()
    }

    /// Asks for an audit record its route does not declare.
    #[utoipa::path(post, path = "/undeclared", responses((status = 200, description = "ok")))]
    async fn undeclared(audited: Audited) -> String {
        audited.action.to_owned()
    }

    #[test]
    #[should_panic(expected = "admin routes are audited")]
    fn an_admin_route_cannot_be_added_unaudited() {
        let _ = Routes::new().add(
            Policy::new(Admits::Admin, Budget::Read, Audit::No),
            routes!(declared),
        );
    }

    #[tokio::test]
    async fn an_audit_record_exists_only_where_the_route_declares_one() {
        let mut config = Config::default();
        config.auth.jwt_hs256_secret = "unit-test-secret-of-at-least-32-bytes!!".into();
        config.auth.jwt_issuer = Some("https://auth.test".into());
        config.auth.jwt_audience = Some("authtrail".into());
        // No query API, so no read tables: the admin's session is not looked up (the pool
        // below reaches no database).
        config.api.enabled = false;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let state = AppState::new(
            config.clone(),
            pool,
            Arc::new(crate::auth::Verifier::from_config(&config.auth).unwrap()),
            Arc::new(crate::kafka::Publisher::new(&config.kafka).unwrap()),
            super::super::ops::Enrichment::NoGeoip,
        );
        let (router, doc) = Routes::new()
            .add(
                Policy::new(Admits::Admin, Budget::Command, Audit::Command("x.do")),
                routes!(declared),
            )
            .add(
                Policy::new(Admits::Person, Budget::Command, Audit::No),
                routes!(undeclared),
            )
            .split(OpenApi::default());
        let responses = &doc.paths.paths["/declared"]
            .post
            .as_ref()
            .unwrap()
            .responses;
        for status in ["401", "403", "429", "503"] {
            assert!(responses.responses.contains_key(status), "{status}");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
            listener,
            state.finish(router),
        )));
        let token = mint(
            &config.auth,
            &DevToken {
                sub: "admin-1".into(),
                role: "admin".into(),
                sid: None,
                ttl: 60,
                scope: None,
            },
        )
        .unwrap();
        let client = reqwest::Client::new();
        let call = |path: &'static str| {
            client
                .post(format!("http://{addr}{path}"))
                .bearer_auth(&token)
                .send()
        };
        let ok = call("/declared").await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["cache-control"], "no-store");
        assert_eq!(ok.text().await.unwrap(), "x.do");
        assert_eq!(call("/undeclared").await.unwrap().status(), 500);
        let anonymous = client
            .post(format!("http://{addr}/declared"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
    }
}
