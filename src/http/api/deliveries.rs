//! `GET /api/v1/deliveries[?source=&status=&event=&recovered=]`,
//! `GET /api/v1/deliveries/{id}`, `POST /api/v1/deliveries/{id}/replay`:
//! the inbox, for operators.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use super::auth::Authorized;
use super::json::ApiQuery;
use super::openapi::ErrorBody;
use super::Page;
use crate::http::{ApiError, AppState};
use crate::ingest::is_credential_header;
use crate::store::deliveries::{self, DeliveryDetail, Filter, ReplayError, Status};
use crate::store::now_ms;

/// What a credential header's value is shown as.
const REDACTED: &str = "[redacted]";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries", web::get().to(list))
        .route("/deliveries/{id}", web::get().to(get))
        .route("/deliveries/{id}/replay", web::post().to(replay));
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    source: Option<String>,
    status: Option<String>,
    event: Option<String>,
    /// `true`: only deliveries that missed-delivery recovery asked GitHub
    /// to redeliver; `false`: only the others.
    recovered: Option<bool>,
    limit: Option<i64>,
    before: Option<i64>,
}

/// Newest first, without headers or bodies.
///
/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    operation_id = "list_deliveries",
    tag = "operations",
    params(Query),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = r#"`{"deliveries":[…],"next_before":ID}`, newest first, without headers or bodies"#, body = Object),
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
    let status = super::one_of(
        "status",
        query.status.as_deref(),
        Status::parse,
        "pending, processed, ignored, failed",
    )?;
    let filter = Filter {
        source: query.source.as_deref(),
        status,
        event: query.event.as_deref(),
        recovered: query.recovered,
        since: None,
    };
    let page = Page {
        limit: query.limit,
        before: query.before,
    };
    let rows = deliveries::list(&state.db, filter, page.before, page.limit()?).await?;
    let next = page.next_before(rows.iter().map(|d| d.id), rows.len());
    Ok(HttpResponse::Ok().json(json!({"deliveries": rows, "next_before": next})))
}

/// One delivery with its stored headers (credentials redacted) and body.
///
/// Requires the scope `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "operations",
    params(("id" = String, Path, description = "The delivery's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The delivery with its headers (credentials redacted) and body", body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
)]
async fn get(
    _: Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "delivery")?;
    let delivery = deliveries::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    Ok(HttpResponse::Ok().json(detail(delivery)))
}

/// Processes a delivery again from its stored body. Every effect is
/// idempotent, so a replay never duplicates a release, a job or a comment.
///
/// Requires the scope `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/replay",
    operation_id = "replay_delivery",
    tag = "operations",
    params(("id" = String, Path, description = "The delivery's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 202, description = "The delivery, pending again", body = Object),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "A worker holds the delivery", body = ErrorBody),
    ),
)]
async fn replay(
    Authorized(caller): Authorized,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "delivery")?;
    deliveries::replay(&state.db, id, now_ms(), &caller.id)
        .await
        .map_err(|error| match error {
            ReplayError::NotFound(_) => ApiError::not_found(error.to_string()),
            ReplayError::InProgress(_) => ApiError::conflict(error.to_string()),
            ReplayError::Store(error) => error.into(),
        })?;
    state.wake_worker.notify_one();
    let delivery = deliveries::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    Ok(HttpResponse::Accepted().json(delivery.record))
}

/// The record, its headers with credentials redacted, and the body: the
/// JSON itself when it is JSON (`"body_format": "json"`), else base64
/// (`"body_format": "base64"`).
fn detail(delivery: DeliveryDetail) -> Value {
    let mut answer = serde_json::to_value(&delivery.record).unwrap_or_default();
    answer["headers"] = json!(redact(delivery.headers));
    let (body, format) = match &delivery.body {
        Ok(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => (value, "json"),
            Err(_) => (
                json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                "base64",
            ),
        },
        Err(error) => {
            answer["body_error"] = json!(error);
            (Value::Null, "unreadable")
        }
    };
    answer["body"] = body;
    answer["body_format"] = json!(format);
    answer
}

fn redact(headers: BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(name, value)| {
            if is_credential_header(&name) {
                (name, REDACTED.to_owned())
            } else {
                (name, value)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::deliveries::DeliveryRecord;

    fn record() -> DeliveryRecord {
        DeliveryRecord {
            id: 7,
            source: "github".into(),
            delivery_id: "d-1".into(),
            event: "push".into(),
            status: Status::Processed,
            attempts: 1,
            event_kind: Some("push".into()),
            outcome: Some("ok".into()),
            last_error: None,
            content_type: Some("application/json".into()),
            received_at: 1,
            next_attempt_at: 1,
            processed_at: Some(2),
            lease_owner: None,
        }
    }

    #[test]
    fn credential_headers_are_redacted_and_others_kept() {
        let headers = BTreeMap::from([
            ("x-hub-signature-256".to_owned(), "sha256=abc".to_owned()),
            ("authorization".to_owned(), "Bearer s3cret".to_owned()),
            ("x-custom-token".to_owned(), "t0ken".to_owned()),
            ("x-github-event".to_owned(), "push".to_owned()),
        ]);
        let answer = detail(DeliveryDetail {
            record: record(),
            headers,
            body: Ok(br#"{"zen":"x"}"#.to_vec()),
        });
        assert_eq!(
            answer["headers"],
            json!({
                "authorization": "[redacted]",
                "x-custom-token": "[redacted]",
                "x-github-event": "push",
                "x-hub-signature-256": "[redacted]",
            })
        );
        assert_eq!(answer["body"], json!({"zen": "x"}));
        assert_eq!(answer["body_format"], "json");
        assert_eq!(answer["id"], 7);
    }

    #[test]
    fn bodies_that_are_not_json_come_as_base64() {
        let answer = detail(DeliveryDetail {
            record: record(),
            headers: BTreeMap::new(),
            body: Ok(b"payload=%7B%7D".to_vec()),
        });
        assert_eq!(answer["body"], "cGF5bG9hZD0lN0IlN0Q=");
        assert_eq!(answer["body_format"], "base64");
        let unreadable = detail(DeliveryDetail {
            record: record(),
            headers: BTreeMap::new(),
            body: Err("stored body is not valid LZ4".into()),
        });
        assert_eq!(unreadable["body_format"], "unreadable");
        assert_eq!(unreadable["body"], Value::Null);
    }
}
