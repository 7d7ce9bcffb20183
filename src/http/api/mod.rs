//! `/api/v1`: JSON for operators and CI. Every route here requires a bearer
//! token (the [`auth::Admin`] extractor); handlers call one function and
//! shape the answer.

pub mod auth;
mod deployments;
mod jobs;
mod releases;

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::ApiError;

/// The largest JSON body an `/api/v1` route reads.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            // Malformed queries answer in the API's error shape, naming
            // what was wrong.
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::invalid(format!("invalid query string: {error}")).into()
            }))
            // So do bodies that are not JSON at all; [`Body`] names the
            // field of one that is JSON but not what the route reads.
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_JSON_BYTES)
                    // The body must be JSON whatever it is labelled:
                    // `curl -d '{…}'` without `-H 'Content-Type: …'` sends
                    // it as a form, and CI scripts do that.
                    .content_type_required(false)
                    .error_handler(|error, _| json_error(error).into()),
            )
            .configure(releases::config)
            .configure(deployments::config)
            .configure(jobs::config)
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::not_found("no such API route"))
            })),
    );
}

/// Why a body could not be read as JSON, in the API's error shape.
fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::too_large(limit),
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(error) => {
            ApiError::invalid(format!("the body is not valid JSON: {error}"))
        }
        other => ApiError::invalid(format!("could not read the body: {other}")),
    }
}

/// A JSON object request body read as `T`. A body that is JSON but not a
/// `T` is refused with the path of the field it got wrong (`state: unknown
/// variant …`, `components[0].digest: …`), which actix's own `Json` cannot
/// say; a body that is not JSON is refused by the scope's `JsonConfig`.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(request, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            Ok(Body(typed(value)?))
        })
    }
}

/// `value` as a `T`, or the field it got wrong. Only an object will do:
/// serde would also fill a struct from an array, by position.
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let what = error.into_inner();
        if path == "." {
            ApiError::invalid(format!("invalid body: {what}"))
        } else {
            ApiError::invalid(format!("{path}: {what}"))
        }
    })
}

/// A numeric id from the path; anything else names no resource.
pub fn id(segment: &str, what: &str) -> Result<i64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::not_found(format!("no {what} {segment:?}")))
}

/// Keyset pagination shared by the list routes: newest first, `limit` rows
/// (1–500, default 50) with ids below `before`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

impl Page {
    pub const DEFAULT: i64 = 50;
    pub const MAX: i64 = 500;

    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid(format!(
                "limit must be between 1 and {}",
                Self::MAX
            ))),
        }
    }

    /// The cursor of the next page: the last id, if the page was full.
    pub fn next_before(
        &self,
        ids: impl DoubleEndedIterator<Item = i64>,
        count: usize,
    ) -> Option<i64> {
        let limit = usize::try_from(self.limit.unwrap_or(Self::DEFAULT)).unwrap_or(0);
        if count == limit {
            ids.last()
        } else {
            None
        }
    }
}
