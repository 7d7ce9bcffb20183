//! `GET /api/v1/integrations`, `POST /api/v1/integrations/{name}/test`,
//! `GET /api/v1/integration-types`: what portcall is connected to, how each
//! connection is doing, and what can be configured.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::Authorized;
use crate::config::catalog::catalog;
use crate::http::{ApiError, AppState};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/integrations", web::get().to(list))
        .route("/integrations/{name}/test", web::post().to(test))
        .route("/integration-types", web::get().to(types));
}

/// Every integration with its last known health (the monitor's, or the
/// last test's).
async fn list(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"integrations": state.integrations.list()})))
}

/// Runs connectivity, authentication and a functional read now.
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
async fn types(_: Authorized) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"types": catalog()})))
}
