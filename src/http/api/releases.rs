//! `GET /api/v1/releases[?component=]`, `GET /api/v1/releases/{id}` (with
//! its deployments).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::auth::Authorized;
use super::json::ApiQuery;
use super::openapi::ErrorBody;
use super::Page;
use crate::http::{ApiError, AppState};
use crate::store::releases;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/releases", web::get().to(list))
        .route("/releases/{id}", web::get().to(get));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    component: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

/// Requires the scope `release:read`.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    operation_id = "list_releases",
    tag = "releases",
    params(Query),
    security(("bearer" = ["release:read"])),
    responses(
        (status = 200, description = r#"`{"releases":[…],"next_before":ID}`, newest first"#, body = Object),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn list(
    _: Authorized,
    ApiQuery(query): ApiQuery<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = Page {
        limit: query.limit,
        before: query.before,
    };
    let rows = releases::list(
        &state.db,
        query.component.as_deref(),
        page.before,
        page.limit()?,
    )
    .await?;
    let next = page.next_before(rows.iter().map(|r| r.id), rows.len());
    Ok(HttpResponse::Ok().json(json!({"releases": rows, "next_before": next})))
}

/// Requires the scope `release:read`.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{id}",
    operation_id = "get_release",
    tag = "releases",
    params(("id" = String, Path, description = "The release's id")),
    security(("bearer" = ["release:read"])),
    responses(
        (status = 200, description = "The release with its `deployments`, newest first", body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such release", body = ErrorBody),
    ),
)]
async fn get(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "release")?;
    let release = releases::get_detail(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no release {id}")))?;
    Ok(HttpResponse::Ok().json(release))
}
