//! The OpenAPI 3.1 document (generated from the handlers' `#[utoipa::path]` and their routes'
//! policies, [`super::routes`]) at `/api/v1/openapi.json`, and Swagger UI (vendored assets, no
//! network) at `/api/v1/docs`.

use crate::server::AppState;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Where the document is served.
const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI is served.
const UI_PATH: &str = "/api/v1/docs";

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "JWT with claims sub, sid, role (user, admin, super_admin, service); exp required",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authtrail query API",
        description = "Users' sessions and login history, admin monitoring, revocation through the event log, session introspection. Errors are RFC 9457 problem details; lists use opaque keyset cursors.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "me", description = "The caller's own sessions and login history"),
        (name = "admin", description = "Monitoring and revocation for admin and super_admin"),
        (name = "stats", description = "Dashboards for admin and super_admin"),
        (name = "service", description = "For the auth service's middleware (role service)"),
    )
)]
struct ApiDoc;

/// The document's frame; the paths come from the routers.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The complete document (built once).
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| super::routes().split(base()).1)
}

/// `GET /api/v1/openapi.json`, and Swagger UI when enabled.
pub(crate) fn router(swagger_ui: bool) -> Router<AppState> {
    if swagger_ui {
        Router::new().merge(
            utoipa_swagger_ui::SwaggerUi::new(UI_PATH).url(DOCUMENT_PATH, document().clone()),
        )
    } else {
        Router::new().route(DOCUMENT_PATH, get(|| async { Json(document().clone()) }))
    }
}
