//! `/api/v1`: JSON for operators and CI. Every route is declared once in
//! [`ROUTES`] with the scope it requires; [`auth::authorize`] enforces it
//! before any handler runs. Handlers call one function and shape the answer.

pub mod auth;
mod ci;
mod deliveries;
mod deployments;
mod integrations;
mod jobs;
pub mod json;
pub mod openapi;
mod releases;
mod service_accounts;

use actix_web::error::JsonPayloadError;
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::web;

use super::ApiError;
use crate::domain::Scope;
use serde::Deserialize;

/// The largest JSON body an `/api/v1` route reads.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// An `/api/v1` route and the scope a caller needs for it (`None`: public).
#[derive(Debug)]
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub scope: Option<Scope>,
}

const fn route(method: Method, path: &'static str, scope: Scope) -> ApiRoute {
    ApiRoute {
        method,
        path,
        scope: Some(scope),
    }
}

/// A route anyone may call, without a token.
const fn public(method: Method, path: &'static str) -> ApiRoute {
    ApiRoute {
        method,
        path,
        scope: None,
    }
}

/// Every `/api/v1` route: the one place that says who may call what.
pub static ROUTES: &[ApiRoute] = &[
    route(Method::GET, "/api/v1/releases", Scope::ReleaseRead),
    route(Method::GET, "/api/v1/releases/{id}", Scope::ReleaseRead),
    route(Method::POST, "/api/v1/releases", Scope::ReleaseCreate),
    route(
        Method::POST,
        "/api/v1/releases/{id}/deployments",
        Scope::DeploymentReport,
    ),
    route(
        Method::POST,
        "/api/v1/ci-events/build-complete",
        Scope::CiEventCreate,
    ),
    route(
        Method::POST,
        "/api/v1/artefact-versions",
        Scope::CiEventCreate,
    ),
    route(Method::GET, "/api/v1/jobs", Scope::Admin),
    route(Method::GET, "/api/v1/jobs/{id}", Scope::Admin),
    route(Method::POST, "/api/v1/jobs/{id}/retry", Scope::Admin),
    route(Method::GET, "/api/v1/service-accounts", Scope::Admin),
    route(Method::POST, "/api/v1/service-accounts", Scope::Admin),
    route(
        Method::DELETE,
        "/api/v1/service-accounts/{id}",
        Scope::Admin,
    ),
    route(Method::GET, "/api/v1/deliveries", Scope::Admin),
    route(Method::GET, "/api/v1/deliveries/{id}", Scope::Admin),
    route(Method::POST, "/api/v1/deliveries/{id}/replay", Scope::Admin),
    route(Method::GET, "/api/v1/integrations", Scope::Admin),
    route(
        Method::POST,
        "/api/v1/integrations/{name}/test",
        Scope::Admin,
    ),
    route(Method::GET, "/api/v1/integration-types", Scope::Admin),
    public(Method::GET, "/api/v1/openapi.json"),
];

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(auth::authorize))
            // Bodies that are not JSON at all answer in the API's error
            // shape; `json::ApiJson` names the field of one that is JSON
            // but not what the route reads (`json::ApiQuery` does the same
            // for query strings).
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
            .configure(ci::config)
            .configure(deployments::config)
            .configure(jobs::config)
            .configure(service_accounts::config)
            .configure(deliveries::config)
            .configure(integrations::config)
            .configure(openapi::config)
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

/// An optional query parameter naming one of a closed set of values
/// (`?state=dead`), refused naming the parameter and the values it takes.
pub fn one_of<T>(
    name: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            parse(v).ok_or_else(|| {
                ApiError::invalid(format!("{name} must be one of {expected}; got {v:?}"))
            })
        })
        .transpose()
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
