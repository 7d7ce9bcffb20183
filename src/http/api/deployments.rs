//! `POST /api/v1/releases/{id}/deployments`: CD reports that a release is
//! being, or was, deployed to an environment.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authorized;
use super::json::ApiJson;
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReportBody {
    environment: Environment,
    state: DeploymentState,
    url: Option<HttpUrl>,
    log_url: Option<HttpUrl>,
}

/// 202 with the recorded report; the provider hears of it from the outbox.
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
