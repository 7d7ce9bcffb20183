//! `GET /api/v1/releases[?component=]`, `GET /api/v1/releases/{id}` (with
//! its deployments).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authorized;
use super::Page;
use crate::http::{ApiError, AppState};
use crate::store::releases;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/releases", web::get().to(list))
        .route("/releases/{id}", web::get().to(get));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    component: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list(
    _: Authorized,
    query: web::Query<Query>,
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
