//! Deployment reports from CD (`POST /api/v1/releases/{id}/deployments`):
//! each is recorded with its outbox job in one transaction and answered at
//! once; the dispatcher posts it ([`Job::Deployment`]), retrying like every
//! other job, in report order per release and environment.

use super::dispatcher::Outbox;
use super::jobs::Job;
use crate::domain::{CommitSha, Environment, HttpUrl, RepoSlug};
use crate::scm::{DeploymentReport, DeploymentState};
use crate::store::deployments::{self, Deployment, NewDeployment};
use crate::store::{releases, StoreError};

/// What CD reports: the release is (being) deployed to `environment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub environment: Environment,
    pub state: DeploymentState,
    /// Where the environment is reached.
    pub url: Option<HttpUrl>,
    /// The deployment's log.
    pub log_url: Option<HttpUrl>,
}

/// Why a report was refused. Nothing is recorded then.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no release {0}")]
    UnknownRelease(i64),
    /// Without a commit there is nothing to attach a deployment or a
    /// status to.
    #[error("release has no source commit")]
    NoCommit,
    /// The release was recorded with a repository portcall cannot post
    /// to (it was never configured so, or the row was edited).
    #[error("the release's repository {0:?} is not a github: or gitlab: repository")]
    Repository(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records `report` for release `release_id` and enqueues its job, skipped
/// with the reason when the release's component is offline or its
/// provider is not configured (the report is recorded either way).
#[tracing::instrument(skip_all, fields(release.id = release_id, deployment.environment = %report.environment))]
pub async fn report(
    outbox: &Outbox,
    release_id: i64,
    report: &Report,
    now_ms: i64,
) -> Result<Deployment, ReportError> {
    let release = releases::get(&outbox.db, release_id)
        .await?
        .ok_or(ReportError::UnknownRelease(release_id))?;
    let sha = release
        .commit_sha
        .as_deref()
        .and_then(|sha| CommitSha::parse(sha).ok())
        .ok_or(ReportError::NoCommit)?;
    let repo = RepoSlug::parse(&release.repository)
        .map_err(|_| ReportError::Repository(release.repository.clone()))?;
    let skipped = outbox.skip_reason(Some(&release.component), &repo);
    let new = NewDeployment {
        release_id,
        environment: report.environment.as_str(),
        state: report.state.as_str(),
        url: report.url.as_ref().map(HttpUrl::as_str),
        log_url: report.log_url.as_ref().map(HttpUrl::as_str),
        reported_at: now_ms,
    };
    let job = |report_id: i64| {
        Job::Deployment {
            repo: repo.clone(),
            release_id,
            report_id,
            report: DeploymentReport {
                sha: sha.clone(),
                environment: report.environment.clone(),
                state: report.state,
                url: report.url.clone(),
                log_url: report.log_url.clone(),
                release_id,
                release_name: release.name.clone(),
                title: format!("Release {}", release.name),
                description: format!(
                    "{} to {}: {}",
                    release.name,
                    report.environment,
                    report.state.words()
                ),
                deployment_id: None,
            },
        }
        .into_new(
            format!("deployment:{report_id}"),
            Some(release_id),
            skipped.clone(),
        )
    };
    let recorded = deployments::record(&outbox.db, &new, job).await?;
    tracing::info!(
        deployment.report = recorded.id,
        state = recorded.state,
        skipped = skipped.as_deref().unwrap_or(""),
        "deployment report recorded"
    );
    Ok(recorded)
}
