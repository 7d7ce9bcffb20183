//! `GET /api/v1/jobs[?state=&delivery=]`, `GET /api/v1/jobs/{id}`,
//! `POST /api/v1/jobs/{id}/retry`: the outbox, for operators.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::auth::Authorized;
use super::json::ApiQuery;
use super::openapi::ErrorBody;
use super::Page;
use crate::http::{ApiError, AppState};
use crate::store::jobs::{self, JobState, RetryError};
use crate::store::now_ms;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::get().to(list))
        .route("/jobs/{id}", web::get().to(get))
        .route("/jobs/{id}/retry", web::post().to(retry));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    state: Option<String>,
    /// Only the jobs that processing this delivery (its row id) enqueued.
    delivery: Option<i64>,
    limit: Option<i64>,
    before: Option<i64>,
}

/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    operation_id = "list_jobs",
    tag = "operations",
    params(Query),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{"jobs":[…],"next_before":ID}`, newest first"#, body = Object),
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
    let job_state = super::one_of(
        "state",
        query.state.as_deref(),
        JobState::parse,
        "pending, done, dead, skipped",
    )?;
    let page = Page {
        limit: query.limit,
        before: query.before,
    };
    let rows = jobs::list(
        &state.db,
        job_state,
        query.delivery,
        page.before,
        page.limit()?,
    )
    .await?;
    let next = page.next_before(rows.iter().map(|j| j.id), rows.len());
    Ok(HttpResponse::Ok().json(json!({"jobs": rows, "next_before": next})))
}

/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "operations",
    params(("id" = String, Path, description = "The job's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The job", body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ),
)]
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
///
/// Requires the scope `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/retry",
    operation_id = "retry_job",
    tag = "operations",
    params(("id" = String, Path, description = "The job's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "The job, pending again", body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is pending", body = ErrorBody),
    ),
)]
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
    // Read back before waking the dispatcher, which could otherwise run the
    // job first and make the answer say "skipped" or "done".
    let job = jobs::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    state.wake_dispatcher.notify_one();
    Ok(HttpResponse::Accepted().json(job))
}
