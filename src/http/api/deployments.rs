//! `POST /api/v1/releases/{id}/deployments`: CD reports that a release is
//! being, or was, deployed to an environment.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::Authorized;
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::domain::{Environment, HttpUrl};
use crate::http::{ApiError, AppState};
use crate::scm::DeploymentState;
use crate::store::now_ms;
use crate::worker::deployments::{self, Report, ReportError};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/releases/{id}/deployments", web::post().to(report));
}

/// `{"environment","state","url?","logUrl?"}`; each field is parsed into
/// its domain type, so a bad one is refused by name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReportBody {
    /// 1–255 of `[A-Za-z0-9._/-]`.
    #[schema(value_type = String, example = "production")]
    environment: Environment,
    /// `in_progress`, `success`, `failure` or `inactive`.
    #[schema(value_type = String, example = "success")]
    state: DeploymentState,
    /// An absolute http(s) URL of the deployed environment.
    #[schema(value_type = Option<String>)]
    url: Option<HttpUrl>,
    /// An absolute http(s) URL of the deployment's log.
    #[schema(value_type = Option<String>)]
    log_url: Option<HttpUrl>,
}

/// 202 with the recorded report; the provider hears of it from the outbox.
///
/// Requires the scope `deployment:report`.
#[utoipa::path(
    post,
    path = "/api/v1/releases/{id}/deployments",
    operation_id = "report_deployment",
    tag = "deployments",
    request_body = ReportBody,
    params(("id" = String, Path, description = "The release's id")),
    security(("bearer" = ["deployment:report"])),
    responses(
        (status = 202, description = r#"`{"deployment":{…}}`"#, body = Object),
        (status = 400, description = "A malformed query or body, naming the field", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 404, description = "No such release", body = ErrorBody),
        (status = 409, description = "The release has no source commit or repository", body = ErrorBody),
    ),
)]
async fn report(
    _: Authorized,
    id: web::Path<String>,
    ApiJson(body): ApiJson<ReportBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = super::id(&id, "release")?;
    let report = Report {
        environment: body.environment,
        state: body.state,
        url: body.url,
        log_url: body.log_url,
    };
    let deployment = deployments::report(&state.outbox, id, &report, now_ms())
        .await
        .map_err(|error| match error {
            ReportError::UnknownRelease(_) => ApiError::not_found(error.to_string()),
            ReportError::NoCommit | ReportError::Repository(_) => {
                ApiError::conflict(error.to_string())
            }
            ReportError::Store(error) => error.into(),
        })?;
    state.wake_dispatcher.notify_one();
    Ok(HttpResponse::Accepted().json(json!({ "deployment": deployment })))
}
