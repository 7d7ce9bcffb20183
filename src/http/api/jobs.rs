//! `GET /api/v1/jobs[?state=]`, `GET /api/v1/jobs/{id}`,
//! `POST /api/v1/jobs/{id}/retry`: the outbox, for operators.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authorized;
use super::Page;
use crate::http::{ApiError, AppState};
use crate::store::jobs::{self, JobState, RetryError};
use crate::store::now_ms;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::get().to(list))
        .route("/jobs/{id}", web::get().to(get))
        .route("/jobs/{id}/retry", web::post().to(retry));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    state: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list(
    _: Authorized,
    query: web::Query<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let job_state = query
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "state must be one of pending, done, dead, skipped; got {s:?}"
                ))
            })
        })
        .transpose()?;
    let page = Page {
        limit: query.limit,
        before: query.before,
    };
    let rows = jobs::list(&state.db, job_state, page.before, page.limit()?).await?;
    let next = page.next_before(rows.iter().map(|j| j.id), rows.len());
    Ok(HttpResponse::Ok().json(json!({"jobs": rows, "next_before": next})))
}

async fn get(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "job")?;
    let job = jobs::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(HttpResponse::Ok().json(job))
}

/// Puts a finished job (dead, skipped or done) back in the queue.
async fn retry(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "job")?;
    jobs::retry(&state.db, id, now_ms())
        .await
        .map_err(|error| match error {
            RetryError::NotFound(_) => ApiError::not_found(error.to_string()),
            RetryError::NotFinished { .. } => ApiError::conflict(error.to_string()),
            RetryError::Store(error) => error.into(),
        })?;
    state.wake_dispatcher.notify_one();
    let job = jobs::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(HttpResponse::Accepted().json(job))
}
