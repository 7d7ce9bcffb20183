//! `POST /webhooks/{source}`: read the body within limits, verify it over
//! its raw bytes, commit it, answer. Nothing slow happens before the answer.

use std::time::Instant;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use serde_json::json;

use super::{ApiError, AppState};
use crate::ingest::{self, Headers};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/{source}", web::post().to(receive));
}

/// Adapts actix's header map to the verifiers' [`Headers`].
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0.get_all(name).map(|v| v.as_bytes()).collect()
    }
}

// `integration` is the source's name, `provider` its kind; `delivery.id`
// is the first delivery's id, recorded once verification has passed.
#[tracing::instrument(
    name = "webhook",
    skip_all,
    fields(
        source.name = %path.as_str(),
        integration = %path.as_str(),
        provider = tracing::field::Empty,
        operation = "receive",
        delivery.id = tracing::field::Empty,
        deliveries,
    )
)]
async fn receive(
    path: web::Path<String>,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let entry = state
        .sources
        .get(path.as_str())
        .ok_or_else(|| ApiError::not_found("no webhook source has that name"))?;
    let (name, kind) = (&*entry.name, entry.source.kind.as_str());
    tracing::Span::current().record("provider", kind);
    let count = |outcome: &str| {
        state
            .metrics
            .webhook_deliveries
            .with_label_values(&[name, kind, outcome])
            .inc();
    };

    let body = read_body(&request, payload, &state)
        .await
        .inspect_err(|_| count("rejected"))?;
    let now = state.clock.now_unix();
    // The query string may hold a `?token=` secret: it goes to the verifier
    // only, and the `webhook` span records the source name, never the URI.
    let query = request.query_string();
    let deliveries = ingest::verify(
        &entry.source,
        &ActixHeaders(request.headers()),
        query,
        body,
        now,
    )
    .map_err(|rejection| {
        count("rejected");
        if rejection.is_authentication_failure() {
            state
                .metrics
                .verify_failures
                .with_label_values(&[name, rejection.reason()])
                .inc();
        }
        // The reason names the header; the credential itself is never logged.
        tracing::info!(reason = rejection.reason(), "webhook refused: {rejection}");
        ApiError::from(&rejection)
    })?;

    let ids: Vec<String> = deliveries
        .iter()
        .map(|d| d.delivery_id.as_str().to_owned())
        .collect();
    let span = tracing::Span::current();
    span.record("deliveries", ids.len());
    if let Some(first) = ids.first() {
        span.record("delivery.id", first.as_str());
    }
    let inserted = state
        .inbox
        .commit(entry.name.clone(), deliveries)
        .await
        .map_err(|error| {
            count("unavailable");
            tracing::error!(error = ?error, "webhook could not be committed");
            ApiError::unavailable()
        })?;

    let any_new = inserted.iter().any(|new| *new);
    if any_new {
        state.wake_worker.notify_one();
    }
    let all_new_or_empty = inserted.iter().all(|new| *new);
    let (status, label) = if any_new || inserted.is_empty() {
        (StatusCode::ACCEPTED, "accepted")
    } else {
        (StatusCode::OK, "duplicate")
    };
    count(label);
    state
        .metrics
        .ingest_duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(status = label, all_new = all_new_or_empty, "webhook stored");

    let mut answer = json!({"status": label});
    if let Some(first) = ids.first() {
        answer["delivery"] = json!(first);
    }
    // An envelope of several events says what happened to each.
    if entry.source.kind == ingest::SourceKind::Distribution {
        answer["deliveries"] = ids
            .iter()
            .zip(&inserted)
            .map(|(id, new)| json!({"delivery": id, "status": if *new { "accepted" } else { "duplicate" }}))
            .collect();
    }
    Ok(HttpResponse::build(status).json(answer))
}

/// Reads the body, refusing it with 413 as soon as it is known to exceed the
/// limit (from `Content-Length`, or while streaming) rather than after
/// buffering it all, and with 408 if the client sends too slowly.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    let limit = state.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(limit));
    }
    let read = async {
        let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(state.read_timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body was not received in time",
            )
        })?
}
