//! Posting results back to source control, behind one small trait.
//!
//! Jobs depend on [`ScmClient`] in domain terms, never on octocrab or gitlab
//! types. Each adapter maps the trait's primitives to the nearest thing its
//! provider has: GitLab has no check runs, so its adapter emulates one.
//!
//! Every call returns success or an [`ScmError`] that says whether trying
//! again can help; the dispatcher owns the one retry policy. The adapters
//! never retry by themselves (octocrab's retry layer is not compiled in),
//! except that a GitHub 401 re-mints the installation token once.

pub mod github;
pub mod gitlab;
mod instrumented;

pub use instrumented::Instrumented;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{CommitSha, Environment, HttpUrl, Provider, RepoSlug};
use crate::probe::HealthCheck;

/// The state of a commit status, in GitHub's words; GitLab's adapter maps
/// them (`pending`→`pending`, `in_progress`→`running`, `success`→`success`,
/// `failure`/`error`→`failed`, `inactive`→`canceled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::InProgress => "in_progress",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
            StatusState::Inactive => "inactive",
        }
    }
}

/// A commit status: GitHub `POST /repos/{o}/{r}/statuses/{sha}`, GitLab
/// `POST /projects/{id}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    /// GitHub's `context`, GitLab's `name`, e.g. `portcall/release`.
    pub context: String,
    pub state: StatusState,
    /// At most 140 characters (GitHub's limit); adapters cut longer ones.
    pub description: String,
    pub target_url: Option<String>,
}

/// `body` cut to `limit` characters as [`truncate_comment`] does, with
/// `marker` kept: if the cut dropped it (or it was never there), the marker
/// goes first, so the comment is always found again.
pub fn sticky_body(body: &str, marker: &str, limit: usize) -> String {
    let cut = truncate_comment(body, limit);
    if cut.contains(marker) {
        return cut;
    }
    let room = limit.saturating_sub(marker.chars().count() + 1);
    format!("{marker}\n{}", truncate_comment(body, room))
}

/// A line-level note in a check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    /// `notice`, `warning` or `failure`.
    pub level: String,
    pub message: String,
    pub title: Option<String>,
}

/// How a check run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    Success,
    Failure,
    Neutral,
}

/// A completed check run. GitHub: `POST /repos/{o}/{r}/check-runs`, with
/// annotations beyond the first 50 sent in `PATCH`es of 50. GitLab: a commit
/// status named after the check plus a discussion on each open merge request
/// whose head is the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    /// e.g. `portcall / release`.
    pub name: String,
    pub head_sha: CommitSha,
    pub conclusion: CheckConclusion,
    pub title: String,
    /// Markdown.
    pub summary: String,
    pub details_url: Option<String>,
    /// An id of ours, echoed back by GitHub (`external_id`).
    pub external_id: Option<String>,
    pub annotations: Vec<Annotation>,
}

/// What an upsert of a sticky comment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentAction {
    Created,
    Updated,
    /// The comment already had exactly this body.
    Unchanged,
}

/// The state CD reports for a release in an environment, in GitHub's
/// deployment-status words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    Inactive,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 4] = [
        DeploymentState::InProgress,
        DeploymentState::Success,
        DeploymentState::Failure,
        DeploymentState::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// The commit status that stands for it where a deployment is shown as
    /// one (GitLab: `running`, `success`, `failed`, `canceled`).
    pub fn status_state(self) -> StatusState {
        match self {
            DeploymentState::InProgress => StatusState::InProgress,
            DeploymentState::Success => StatusState::Success,
            DeploymentState::Failure => StatusState::Failure,
            DeploymentState::Inactive => StatusState::Inactive,
        }
    }

    /// In words, for descriptions: `in progress`, `success`, …
    pub fn words(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// The commit status context (GitHub) or name (GitLab) that shows a
/// deployment to `environment` where there are no deployment objects.
pub fn deployment_context(environment: &Environment) -> String {
    format!("portcall/{environment}")
}

/// One report of a release's deployment to an environment. GitHub: a
/// deployment (once per release and environment) and a deployment status;
/// GitLab: the commit status [`deployment_context`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentReport {
    /// The release's source commit: what was deployed.
    pub sha: CommitSha,
    pub environment: Environment,
    pub state: DeploymentState,
    /// Where the environment is reached (GitHub `environment_url`, GitLab
    /// `target_url`).
    pub url: Option<HttpUrl>,
    /// The deployment's log (GitHub `log_url`).
    pub log_url: Option<HttpUrl>,
    /// The release, for the GitHub deployment's `payload`, so workflows
    /// reacting to `deployment` events can tell which release it is.
    pub release_id: i64,
    pub release_name: String,
    /// The GitHub deployment's description, e.g. `Release hello-world-v1.2.0`.
    pub title: String,
    /// This report's description (deployment status, commit status), e.g.
    /// `hello-world-v1.2.0 to production: in progress`.
    pub description: String,
    /// The provider's deployment for this release and environment, created
    /// by an earlier report; `None` creates one. Not part of the stored job:
    /// the dispatcher reads it from the `deployments` table when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<u64>,
}

/// A deployment report that failed, and the provider deployment it had
/// created before failing, if any: GitHub created the deployment but the
/// status did not go through. The dispatcher stores that id, so the retry
/// adds the status to the same deployment instead of creating a second.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct DeploymentError {
    pub error: ScmError,
    pub deployment_id: Option<u64>,
}

impl From<ScmError> for DeploymentError {
    fn from(error: ScmError) -> Self {
        Self {
            error,
            deployment_id: None,
        }
    }
}

/// Why a provider call failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScmError {
    /// 5xx, 429, a rate limit, a timeout, a connection failure: try again,
    /// not before `retry_after` when the provider said when.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 401 (after a fresh token), 403 otherwise, 404, 422, a provider that is
    /// not configured: trying again cannot help.
    #[error("{message}")]
    Permanent {
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        message: String,
    },
}

impl ScmError {
    pub fn transient(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        ScmError::Transient {
            message: message.into(),
            retry_after,
        }
    }

    pub fn permanent(status: Option<u16>, message: impl Into<String>) -> Self {
        ScmError::Permanent {
            status,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, ScmError::Transient { .. })
    }
}

/// The marker that finds a sticky comment again: `<!-- portcall:{component} -->`.
pub fn comment_marker(component: &str) -> String {
    format!("<!-- portcall:{component} -->")
}

/// GitHub's limit on a comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// Cuts `body` to at most `limit` characters, ending with a note that it
/// was cut. Never cuts inside a character.
pub fn truncate_comment(body: &str, limit: usize) -> String {
    const NOTE: &str = "\n\n… (cut: the full text is longer than the provider allows)";
    if body.chars().count() <= limit {
        return body.to_owned();
    }
    let keep = limit.saturating_sub(NOTE.chars().count());
    let mut out: String = body.chars().take(keep).collect();
    out.push_str(NOTE);
    out
}

/// One provider's way of showing results where developers look. All
/// methods act on one repository; `repo` is of this client's provider.
#[async_trait]
pub trait ScmClient: Send + Sync + 'static {
    /// Sets a commit status. A status GitLab refuses because it is already
    /// in that state ("Cannot transition status") counts as done.
    async fn post_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), ScmError>;

    /// Whether the commit already has this status of this context (state,
    /// description, link), among its newest of the context or behind others
    /// posted since: asked, like [`Self::check_run_exists`], before posting
    /// again what an earlier attempt may have posted. A status another job
    /// posted in between does not make the earlier attempt's undone.
    ///
    /// The default never looks, and posts again.
    async fn status_is_current(
        &self,
        _repo: &RepoSlug,
        _sha: &CommitSha,
        _status: &CommitStatus,
    ) -> Result<bool, ScmError> {
        Ok(false)
    }

    /// Creates a completed check run (emulated on GitLab).
    async fn create_check_run(&self, repo: &RepoSlug, check: &CheckRun) -> Result<(), ScmError>;

    /// Whether this check run (its name, and its external id or else its
    /// title and summary) is already on its commit. Asked, through
    /// [`Self::create_check_run_again`], before creating one again when an
    /// earlier attempt may have reached the provider but died before it
    /// was recorded (a killed replica, a lost answer), so that a retry does
    /// not create a second.
    ///
    /// The default never looks.
    async fn check_run_exists(
        &self,
        _repo: &RepoSlug,
        _check: &CheckRun,
    ) -> Result<bool, ScmError> {
        Ok(false)
    }

    /// [`Self::create_check_run`] after an earlier attempt that may have
    /// made it, whole or in part: what is there already is not made again.
    /// Returns whether anything was created. The default creates the check
    /// run unless [`Self::check_run_exists`]; an adapter whose check run is
    /// made of several calls (GitLab's emulation) looks for each part.
    async fn create_check_run_again(
        &self,
        repo: &RepoSlug,
        check: &CheckRun,
    ) -> Result<bool, ScmError> {
        if self.check_run_exists(repo, check).await? {
            return Ok(false);
        }
        self.create_check_run(repo, check).await?;
        Ok(true)
    }

    /// Numbers (GitHub PR number, GitLab MR iid) of the open pull/merge
    /// requests whose head is `sha`.
    async fn open_pull_requests(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<Vec<u64>, ScmError>;

    /// Creates or edits in place the one comment on pull/merge request
    /// `number` that contains `marker`, looking through every page of
    /// comments. If a race left several, the oldest is kept and the others
    /// are deleted. `body` must contain `marker`; it is cut to the
    /// provider's limit.
    async fn upsert_comment(
        &self,
        repo: &RepoSlug,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentAction, ScmError>;

    /// Reports a release's deployment to an environment and returns the
    /// provider's deployment id, if the provider has deployment objects.
    ///
    /// GitHub: creates the deployment of `deployment.sha` to the environment
    /// unless `deployment.deployment_id` names it already, then posts a
    /// deployment status to it. GitLab has no deployment objects here: the
    /// report is the commit status `portcall/{environment}` (running,
    /// success, failed, canceled), and the answer is `None`.
    async fn report_deployment(
        &self,
        repo: &RepoSlug,
        deployment: &DeploymentReport,
    ) -> Result<Option<u64>, DeploymentError>;
}

/// Learns which GitHub App installation covers a repository. The GitHub
/// adapter implements it: webhooks say for free what would otherwise cost
/// an API call per repository.
pub trait InstallationHints: Send + Sync {
    fn remember(&self, repo: &RepoSlug, installation_id: u64);
}

/// The configured provider clients; either may be absent.
#[derive(Clone, Default)]
pub struct Providers {
    pub github: Option<Arc<dyn ScmClient>>,
    pub gitlab: Option<Arc<dyn ScmClient>>,
    /// The same GitHub client, as a live check (`/api/v1/integrations`).
    pub github_check: Option<Arc<dyn HealthCheck>>,
    /// The same GitLab client, as a live check.
    pub gitlab_check: Option<Arc<dyn HealthCheck>>,
}

impl Providers {
    /// Clients for the configured providers, each wrapped in
    /// [`Instrumented`] (metrics and spans), and the GitHub client's
    /// installation hints. The GitHub client reports its rate limit to
    /// `metrics`.
    pub fn from_settings(
        github: Option<&crate::config::GithubSettings>,
        gitlab: Option<&crate::config::GitlabSettings>,
        metrics: &crate::telemetry::Metrics,
    ) -> anyhow::Result<(Self, Option<Arc<dyn InstallationHints>>)> {
        use anyhow::Context as _;
        let github = github
            .map(|s| {
                github::GithubClient::new(s).map(|client| {
                    Arc::new(
                        client.with_ratelimit_gauge(metrics.github_ratelimit_remaining.clone()),
                    )
                })
            })
            .transpose()
            .context("[github]: cannot set up the GitHub App client")?;
        let gitlab = gitlab
            .map(gitlab::GitlabClient::new)
            .transpose()
            .context("[gitlab]: cannot set up the GitLab client")?
            .map(Arc::new);
        let hints = github.clone().map(|g| g as Arc<dyn InstallationHints>);
        Ok((
            Self {
                github_check: github.clone().map(|g| g as Arc<dyn HealthCheck>),
                gitlab_check: gitlab.clone().map(|g| g as Arc<dyn HealthCheck>),
                github: github.map(|g| {
                    Arc::new(Instrumented::new(g, "github", metrics.clone())) as Arc<dyn ScmClient>
                }),
                gitlab: gitlab.map(|g| {
                    Arc::new(Instrumented::new(g, "gitlab", metrics.clone())) as Arc<dyn ScmClient>
                }),
            },
            hints,
        ))
    }

    /// The client for `repo`'s provider, if that provider is configured.
    pub fn for_repo(&self, repo: &RepoSlug) -> Option<&Arc<dyn ScmClient>> {
        match repo.provider() {
            Provider::Github => self.github.as_ref(),
            Provider::Gitlab => self.gitlab.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_states_read_as_their_names_and_map_to_commit_states() {
        for state in DeploymentState::ALL {
            assert_eq!(DeploymentState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(DeploymentState::parse("pending"), None);
        let mapped: Vec<StatusState> = DeploymentState::ALL
            .into_iter()
            .map(DeploymentState::status_state)
            .collect();
        assert_eq!(
            mapped,
            [
                StatusState::InProgress,
                StatusState::Success,
                StatusState::Failure,
                StatusState::Inactive
            ]
        );
        let env = Environment::parse("eu/production").unwrap();
        assert_eq!(deployment_context(&env), "portcall/eu/production");
    }

    #[test]
    fn long_comments_are_cut_with_a_note_within_the_limit() {
        let body = "é".repeat(MAX_COMMENT_CHARS + 10);
        let cut = truncate_comment(&body, MAX_COMMENT_CHARS);
        assert_eq!(cut.chars().count(), MAX_COMMENT_CHARS);
        assert!(cut.ends_with("longer than the provider allows)"));
        assert_eq!(truncate_comment("short", MAX_COMMENT_CHARS), "short");
    }
}
