//! `GET /api/v1/integrations`, `POST /api/v1/integrations/{name}/test`,
//! `GET /api/v1/integration-types`: what portcall is connected to, how each
//! connection is doing, and what can be configured.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::Authorized;
use super::openapi::ErrorBody;
use crate::config::catalog::catalog;
use crate::http::{ApiError, AppState};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/integrations", web::get().to(list))
        .route("/integrations/{name}/test", web::post().to(test))
        .route("/integration-types", web::get().to(types));
}

/// Every integration with its last known health (the monitor's, or the
/// last test's).
///
/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/integrations",
    operation_id = "list_integrations",
    tag = "operations",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{"integrations":[{"name","kind","health","checked_at","message"}]}`"#, body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn list(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"integrations": state.integrations.list()})))
}

/// Runs connectivity, authentication and a functional read now.
///
/// Requires the scope `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{name}/test",
    operation_id = "test_integration",
    tag = "operations",
    params(("name" = String, Path, description = "The integration's name")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{…,"connectivity","authentication","functionality"}`"#, body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such integration", body = ErrorBody),
    ),
)]
async fn test(
    _: Authorized,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = state
        .integrations
        .test(&name)
        .await
        .ok_or_else(|| ApiError::not_found(format!("no integration {:?}", name.as_str())))?;
    Ok(HttpResponse::Ok().json(report))
}

/// The catalog of source and provider kinds and their configuration.
///
/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/integration-types",
    operation_id = "integration_types",
    tag = "operations",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{"types":[…]}`: every source and provider kind and its configuration"#, body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn types(_: Authorized) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"types": catalog()})))
}
