//! What CI pipelines post: `POST /api/v1/releases`,
//! `POST /api/v1/ci-events/build-complete`, `POST /api/v1/artefact-versions`.
//! Bodies are checked field by field here (each error names its path);
//! deciding and storing is `crate::ci`'s.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Authorized;
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::ci::{self, Artifact, BuildEvent, BuildStatus, ReleaseRequest, ReleasedComponent};
use crate::domain::{CommitSha, Digest, Tag};
use crate::http::{ApiError, AppState};
use crate::store::releases::{self, Created};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/releases", web::post().to(create_release))
        .route("/ci-events/build-complete", web::post().to(build_complete))
        .route("/artefact-versions", web::post().to(artefact_version));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReleaseBody {
    name: Option<String>,
    components: Vec<ComponentBody>,
    source_ref: Option<SourceRef>,
    metadata: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ComponentBody {
    component: String,
    digest: String,
    tag: String,
}

#[derive(Debug, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SourceRef {
    #[serde(rename = "type")]
    kind: Option<String>,
    repository: Option<String>,
    commit: Option<String>,
    tag: Option<String>,
    branch: Option<String>,
}

fn field<T, E: std::fmt::Display>(path: &str, parsed: Result<T, E>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::invalid(format!("{path}: {e}")))
}

fn http_url(path: &str, url: &str) -> Result<String, ApiError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace);
    if ok {
        Ok(url.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{path}: expected an http:// or https:// URL"
        )))
    }
}

/// 201 with the release (200 when the same component, digest and tag were
/// released before; 409 when another release has the name). Several
/// components answer `{"releases":[…]}`.
///
/// Requires the scope `release:create`.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    operation_id = "create_release",
    tag = "releases",
    request_body = ReleaseBody,
    security(("bearer" = ["release:create"])),
    responses(
        (status = 200, description = "The same component, digest and tag were released before: the existing release", body = Object),
        (status = 201, description = r#"The release (several components: `{"releases":[…]}`)"#, body = Object),
        (status = 400, description = "A malformed query or body, naming the field", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 409, description = "Another release has the name", body = ErrorBody),
    ),
)]
async fn create_release(
    _: Authorized,
    ApiJson(body): ApiJson<ReleaseBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let outbox = &state.outbox;
    if let Some(name) = &body.name {
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(ApiError::invalid("name: expected 1 to 200 characters"));
        }
    }
    if body.components.is_empty() {
        return Err(ApiError::invalid(
            "components: at least one component is required",
        ));
    }
    let mut components = Vec::with_capacity(body.components.len());
    for (i, c) in body.components.iter().enumerate() {
        let component = outbox.components.get(&c.component).ok_or_else(|| {
            ApiError::invalid(format!(
                "components[{i}].component: unknown component {:?}",
                c.component.chars().take(100).collect::<String>()
            ))
        })?;
        components.push(ReleasedComponent {
            component,
            digest: field(&format!("components[{i}].digest"), Digest::parse(&c.digest))?,
            tag: field(&format!("components[{i}].tag"), Tag::parse(&c.tag))?,
        });
    }
    let source = body.source_ref.as_ref();
    let commit = source
        .and_then(|s| s.commit.as_deref())
        .map(|c| field("sourceRef.commit", CommitSha::parse(c)))
        .transpose()?;
    let source_url = source
        .and_then(|s| s.repository.as_deref())
        .map(|url| http_url("sourceRef.repository", url))
        .transpose()?;
    let metadata = json!({"sourceRef": body.source_ref, "metadata": body.metadata});
    let request = ReleaseRequest {
        name: body.name.clone(),
        components,
        commit,
        source_url,
        metadata: Some(metadata.to_string()),
    };
    let results = ci::create_release(outbox, &request).await?;
    state.wake_dispatcher.notify_one();

    let mut any_new = false;
    let mut shown = Vec::with_capacity(results.len());
    for result in &results {
        let id = match *result {
            Created::NameTaken(id) => {
                return Err(ApiError::conflict(format!(
                    "release {id} already has this name, for another component, digest or tag"
                )))
            }
            Created::New(id) => {
                any_new = true;
                id
            }
            Created::Existing(id) => id,
        };
        let release = releases::get(&state.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no release {id}")))?;
        shown.push(serde_json::to_value(release).expect("releases serialize"));
    }
    let answer = if shown.len() == 1 {
        shown.remove(0)
    } else {
        json!({ "releases": shown })
    };
    Ok(if any_new {
        HttpResponse::Created().json(answer)
    } else {
        HttpResponse::Ok().json(answer)
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BuildBody {
    integration_id: Option<String>,
    build_id: String,
    status: String,
    commit: String,
    build_url: Option<String>,
    artifacts: Vec<ArtifactBody>,
    test_results: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct ArtifactBody {
    name: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
}

fn bounded(path: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let ok = !value.trim().is_empty()
        && value.chars().count() <= max
        && !value.chars().any(char::is_control);
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{path}: expected 1 to {max} printable characters"
        )))
    }
}

/// An image name `registry/repository[:tag]` as CI writes it.
fn image_ref(path: &str, image: &str) -> Result<(String, Option<Tag>), ApiError> {
    let image = image.trim().to_ascii_lowercase();
    let (name, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), Some(tag.to_owned())),
        _ => (image.clone(), None),
    };
    let (registry, repository) = name
        .split_once('/')
        .ok_or_else(|| ApiError::invalid(format!("{path}: expected registry/repository")))?;
    field(path, crate::domain::ImageName::new(registry, repository))?;
    let tag = tag.map(|t| field(path, Tag::parse(&t))).transpose()?;
    Ok((name, tag))
}

/// 202: the build is recorded and its artifacts linked to its commit.
///
/// Requires the scope `ci-event:create`.
#[utoipa::path(
    post,
    path = "/api/v1/ci-events/build-complete",
    operation_id = "build_complete",
    tag = "releases",
    request_body = BuildBody,
    security(("bearer" = ["ci-event:create"])),
    responses(
        (status = 202, description = r#"`{"status":"accepted"|"duplicate","build","failure_statuses"}`"#, body = Object),
        (status = 400, description = "A malformed query or body, naming the field", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn build_complete(
    _: Authorized,
    ApiJson(body): ApiJson<BuildBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let status = BuildStatus::parse(&body.status)
        .ok_or_else(|| ApiError::invalid("status: expected success, failure or canceled"))?;
    let mut artifacts = Vec::with_capacity(body.artifacts.len());
    for (i, a) in body.artifacts.iter().enumerate() {
        let digest = a
            .digest
            .as_deref()
            .map(|d| field(&format!("artifacts[{i}].digest"), Digest::parse(d)))
            .transpose()?;
        let (image, tag_in_ref) = match a.repository.as_deref() {
            Some(r) => {
                let (image, tag) = image_ref(&format!("artifacts[{i}].repository"), r)?;
                (Some(image), tag)
            }
            None => (None, None),
        };
        let tag = match a.tag.as_deref() {
            Some(t) => Some(field(&format!("artifacts[{i}].tag"), Tag::parse(t))?),
            None => tag_in_ref,
        };
        if digest.is_none() && (image.is_none() || tag.is_none()) {
            return Err(ApiError::invalid(format!(
                "artifacts[{i}]: a digest, or a repository with a tag, is required"
            )));
        }
        let name = a
            .name
            .as_deref()
            .map(|n| bounded(&format!("artifacts[{i}].name"), n, 200))
            .transpose()?;
        artifacts.push(Artifact {
            name,
            digest,
            image,
            tag,
        });
    }
    let event = BuildEvent {
        integration_id: body
            .integration_id
            .as_deref()
            .map(|i| bounded("integrationId", i, 200))
            .transpose()?
            .unwrap_or_default(),
        build_id: bounded("buildId", &body.build_id, 200)?,
        status,
        commit: field("commit", CommitSha::parse(&body.commit))?,
        build_url: body
            .build_url
            .as_deref()
            .map(|u| http_url("buildUrl", u))
            .transpose()?,
        artifacts,
        test_results: body.test_results.as_ref().map(Value::to_string),
    };
    let recorded = ci::build_complete(&state.outbox, &event).await?;
    state.wake_dispatcher.notify_one();
    Ok(HttpResponse::Accepted().json(json!({
        "status": if recorded.new { "accepted" } else { "duplicate" },
        "build": recorded.id,
        "failure_statuses": recorded.failure_statuses,
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
struct ArtefactVersionBody {
    name: String,
    version: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    commit: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    digest: Option<String>,
}

/// 202: a Humanitec-style notice that image `name` at tag `version` was
/// built from `commit`; the same as a successful build with one artifact.
///
/// Requires the scope `ci-event:create`.
#[utoipa::path(
    post,
    path = "/api/v1/artefact-versions",
    operation_id = "artefact_version",
    tag = "releases",
    request_body = ArtefactVersionBody,
    security(("bearer" = ["ci-event:create"])),
    responses(
        (status = 202, description = r#"`{"status":"accepted"|"duplicate","build"}`"#, body = Object),
        (status = 400, description = "A malformed query or body, naming the field", body = ErrorBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
    ),
)]
async fn artefact_version(
    _: Authorized,
    ApiJson(body): ApiJson<ArtefactVersionBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if body.kind.as_deref().is_some_and(|k| k != "container") {
        return Err(ApiError::invalid(
            "type: only \"container\" artefacts are supported",
        ));
    }
    let (image, _) = image_ref("name", &body.name)?;
    let tag = field("version", Tag::parse(&body.version))?;
    let digest = body
        .digest
        .as_deref()
        .map(|d| field("digest", Digest::parse(d)))
        .transpose()?;
    let commit = field("commit", CommitSha::parse(&body.commit))?;
    if let Some(git_ref) = &body.git_ref {
        bounded("ref", git_ref, 500)?;
    }
    let event = BuildEvent {
        integration_id: "artefact-versions".to_owned(),
        build_id: format!(
            "{image}:{tag}@{}",
            digest.as_ref().map_or("-", Digest::as_str)
        ),
        status: BuildStatus::Success,
        commit,
        build_url: None,
        artifacts: vec![Artifact {
            name: None,
            digest,
            image: Some(image),
            tag: Some(tag),
        }],
        test_results: None,
    };
    let recorded = ci::build_complete(&state.outbox, &event).await?;
    state.wake_dispatcher.notify_one();
    Ok(HttpResponse::Accepted().json(json!({
        "status": if recorded.new { "accepted" } else { "duplicate" },
        "build": recorded.id,
    })))
}
