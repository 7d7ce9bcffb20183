//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every `/api/v1`
//! route, built from the handlers' `#[utoipa::path]` annotations. Public:
//! it is declared in [`ROUTES`](super::ROUTES) without a scope.

use std::sync::OnceLock;

use actix_web::{http::header::ContentType, web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document));
}

/// Every error answer: `{"error":{"code","message","details?"}}`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents `ApiError`'s JSON; never built
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, …
    code: String,
    message: String,
    details: Option<serde_json::Value>,
}

/// The `bearer` scheme: a service-account token (`pc_sa_…`) or the admin
/// token. Each operation's security requirement names the scope it needs.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "A service-account token (`pc_sa_…`) or the admin token; \
             each operation names the scope it requires."
                .to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The document: every `/api/v1` route (a test checks it against `ROUTES`).
#[derive(OpenApi)]
#[openapi(
    info(title = "portcall API", description = "`/api/v1`: JSON for operators and CI pipelines."),
    paths(
        super::releases::list,
        super::releases::get,
        super::ci::create_release,
        super::ci::build_complete,
        super::ci::artefact_version,
        super::deployments::report,
        super::jobs::list,
        super::jobs::get,
        super::jobs::retry,
        super::service_accounts::list,
        super::service_accounts::create,
        super::service_accounts::revoke,
        super::deliveries::list,
        super::deliveries::get,
        super::deliveries::replay,
        super::integrations::list,
        super::integrations::test,
        super::integrations::types,
        document,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerScheme),
    tags(
        (name = "releases", description = "Releases and what CI reports about builds"),
        (name = "deployments", description = "CD reports deployments of a release"),
        (name = "operations", description = "The outbox, the inbox and integrations, for operators"),
        (name = "service-accounts", description = "Tokens and their scopes"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of `/api/v1`; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
async fn document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let json = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(json.as_str())
}
