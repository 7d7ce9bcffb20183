//! What CI pipelines tell portcall through `/api/v1`: releases they made,
//! builds that finished (which image digest came from which commit), and
//! Humanitec-style artefact versions. Requests arrive validated in domain
//! types; this module decides and stores, in one transaction each, and
//! leaves provider calls to the outbox.

use crate::domain::release::release_name;
use crate::domain::{CommitSha, Component, Digest, Tag};
use crate::scm::{CommitStatus, StatusState};
use crate::store::builds::{self, NewArtifact, NewBuild};
use crate::store::releases::{self, ApiRelease, Created, NewRelease};
use crate::store::{now_ms, StoreError};
use crate::worker::jobs::{Job, Published};
use crate::worker::Outbox;

/// One component of a release a pipeline reports.
#[derive(Debug, Clone)]
pub struct ReleasedComponent<'a> {
    pub component: &'a Component,
    pub digest: Digest,
    pub tag: Tag,
}

/// A release as a pipeline reports it, validated.
#[derive(Debug, Clone)]
pub struct ReleaseRequest<'a> {
    /// The release's name; `None` names it `{component}-{tag}`.
    pub name: Option<String>,
    pub components: Vec<ReleasedComponent<'a>>,
    pub commit: Option<CommitSha>,
    /// The source repository's URL, kept as the release's source.
    pub source_url: Option<String>,
    /// The body's `metadata` and `sourceRef`, kept as JSON.
    pub metadata: Option<String>,
}

/// Creates the release of each component (idempotent on component, digest
/// and tag) and enqueues its status, check run and comments.
pub async fn create_release(
    outbox: &Outbox,
    request: &ReleaseRequest<'_>,
) -> Result<Vec<Created>, StoreError> {
    let mut results = Vec::with_capacity(request.components.len());
    for part in &request.components {
        let component = part.component;
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| release_name(&component.name, &part.tag));
        let repository = component.repository.to_string();
        let new = ApiRelease {
            release: NewRelease {
                name: &name,
                component: &component.name,
                image: &component.image,
                tag: part.tag.as_str(),
                digest: part.digest.as_str(),
                repository: &repository,
            },
            commit_sha: request.commit.as_ref().map(CommitSha::as_str),
            source_url: request.source_url.as_deref(),
            metadata: request.metadata.as_deref(),
        };
        let skip = outbox.skip_reason(Some(&component.name), &component.repository);
        let jobs = |id: i64| {
            let Some(commit) = &request.commit else {
                return Vec::new();
            };
            Published {
                component: &component.name,
                image: &component.image,
                tag: Some(part.tag.as_str()),
                digest: part.digest.as_str(),
                commit,
                release: Some((id, &name)),
                public_url: outbox.public_url.as_deref(),
            }
            .jobs(&component.repository, skip.as_deref())
        };
        let created = releases::create(&outbox.db, &new, jobs, now_ms()).await?;
        if matches!(created, releases::Created::New(_)) {
            outbox
                .metrics
                .releases_created
                .with_label_values(&[component.name.as_str()])
                .inc();
        }
        results.push(created);
    }
    Ok(results)
}

/// How a build ended, as CI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    Success,
    Failure,
    Canceled,
}

impl BuildStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "success" | "succeeded" | "passed" => Some(Self::Success),
            "failure" | "failed" | "error" => Some(Self::Failure),
            "canceled" | "cancelled" | "aborted" => Some(Self::Canceled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Canceled => "canceled",
        }
    }
}

/// An image a build produced: by digest, or by image and tag.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: Option<String>,
    pub digest: Option<Digest>,
    /// `registry/repository`, lower case.
    pub image: Option<String>,
    pub tag: Option<Tag>,
}

/// A finished build, validated.
#[derive(Debug, Clone)]
pub struct BuildEvent {
    pub integration_id: String,
    pub build_id: String,
    pub status: BuildStatus,
    pub commit: CommitSha,
    pub build_url: Option<String>,
    pub artifacts: Vec<Artifact>,
    pub test_results: Option<String>,
}

/// What recording a build did.
#[derive(Debug, Clone)]
pub struct BuildRecorded {
    pub id: i64,
    /// `false` for a build reported before (nothing was done again).
    pub new: bool,
    /// Failure statuses enqueued, one per component the build names.
    pub failure_statuses: usize,
}

/// Records a build and links its artifacts to its commit, so an image
/// pushed before or after resolves to it. A failed build that names a
/// known component posts a failure status on the commit.
pub async fn build_complete(
    outbox: &Outbox,
    build: &BuildEvent,
) -> Result<BuildRecorded, StoreError> {
    let artifacts: Vec<NewArtifact<'_>> = build
        .artifacts
        .iter()
        .map(|a| NewArtifact {
            name: a.name.as_deref(),
            digest: a.digest.as_ref().map(Digest::as_str),
            image: a.image.as_deref(),
            tag: a.tag.as_ref().map(Tag::as_str),
        })
        .collect();
    let resolve = |delivery_row: i64, build_row: i64| {
        Job::ResolveImage { delivery_row }
            .into_new(
                format!("resolve:{delivery_row}:build:{build_row}"),
                None,
                None,
            )
            .caused_by(delivery_row)
    };
    let (id, new) = builds::record(
        &outbox.db,
        &NewBuild {
            integration_id: &build.integration_id,
            build_id: &build.build_id,
            status: build.status.as_str(),
            commit_sha: build.commit.as_str(),
            test_results: build.test_results.as_deref(),
        },
        &artifacts,
        resolve,
        now_ms(),
    )
    .await?;
    let mut failure_statuses = 0;
    if new && build.status == BuildStatus::Failure {
        let jobs: Vec<_> = failed_components(outbox, build)
            .map(|component| {
                let status = CommitStatus {
                    context: "portcall/build".to_owned(),
                    state: StatusState::Failure,
                    description: format!("Build {} failed", build.build_id)
                        .chars()
                        .take(140)
                        .collect(),
                    target_url: build.build_url.clone(),
                };
                Job::CommitStatus {
                    repo: component.repository.clone(),
                    sha: build.commit.clone(),
                    status,
                }
                .into_new(
                    format!("build-failed:{id}:{}", component.name),
                    None,
                    outbox.skip_reason(Some(&component.name), &component.repository),
                )
            })
            .collect();
        failure_statuses = jobs.len();
        crate::store::jobs::enqueue(&outbox.db, &jobs, now_ms()).await?;
    }
    Ok(BuildRecorded {
        id,
        new,
        failure_statuses,
    })
}

/// The components a build's artifacts name: by component name, or by an
/// image under the component's prefix.
fn failed_components<'a>(
    outbox: &'a Outbox,
    build: &'a BuildEvent,
) -> impl Iterator<Item = &'a Component> {
    let mut seen = Vec::new();
    build.artifacts.iter().filter_map(move |a| {
        let by_name = a.name.as_deref().and_then(|n| outbox.components.get(n));
        let by_image = a.image.as_deref().and_then(|image| {
            let (registry, repository) = image.split_once('/')?;
            let name = crate::domain::ImageName::new(registry, repository).ok()?;
            outbox.components.for_image(&name)
        });
        let component = by_name.or(by_image)?;
        if seen.contains(&component.name) {
            return None;
        }
        seen.push(component.name.clone());
        Some(component)
    })
}
