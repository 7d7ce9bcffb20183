//! `GET /jobs`, `POST /jobs/{id}/retry`: the outbox.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::deliveries::pager;
use super::views::{self, Chrome, Tab};
use super::{choice, html, number, page_size, path_id, see_other, text, CsrfForm, Refusal, Signed};
use crate::http::AppState;
use crate::store::jobs::{self, JobState, RetryError};
use crate::store::now_ms;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    delivery: Option<String>,
    before: Option<String>,
    limit: Option<String>,
    retried: Option<String>,
}

/// Jobs newest first, by state or by the delivery that caused them.
pub async fn list(
    Signed(session): Signed,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    let job_state = choice(
        "state",
        &query.state,
        JobState::parse,
        "pending, done, dead, skipped",
    )?;
    let delivery = number("delivery", query.delivery.as_deref())?;
    let before = number("before", query.before.as_deref())?;
    let limit = page_size(query.limit.as_deref())?;
    let rows = jobs::list(&state.db, job_state, delivery, before, limit).await?;
    let ids: Vec<i64> = rows.iter().map(|j| j.id).collect();
    let delivery_text = delivery.map(|d| d.to_string());
    let keep = [
        ("state", job_state.map(JobState::as_str)),
        ("delivery", delivery_text.as_deref()),
        ("limit", text(&query.limit)),
    ];
    let pages = pager("/jobs", &keep, &ids, limit, before.is_some());
    let retried = number("retried", query.retried.as_deref())?;
    let notice = retried.map(|id| format!("Job {id} is queued again."));
    let chrome = Chrome {
        caller: &session.caller.id,
        csrf: session.csrf(),
        tab: Tab::Jobs,
    };
    Ok(html(views::jobs_page(
        chrome,
        job_state.map(JobState::as_str),
        delivery,
        &rows,
        &pages,
        notice.as_deref(),
    )))
}

/// Puts a finished job back in the queue.
pub async fn retry(
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Refusal> {
    signed.check(&form)?;
    let id = path_id(&id, "job")?;
    jobs::retry(&state.db, id, now_ms())
        .await
        .map_err(|error| match error {
            RetryError::NotFound(_) => Refusal::not_found(error.to_string()),
            RetryError::NotFinished { .. } => {
                Refusal::page(StatusCode::CONFLICT, "Not retried", error.to_string())
            }
            RetryError::Store(error) => error.into(),
        })?;
    tracing::info!(job.id = id, caller = %signed.0.caller.id, "job retried from the dashboard");
    state.wake_dispatcher.notify_one();
    Ok(see_other(&format!("/jobs?retried={id}")))
}
