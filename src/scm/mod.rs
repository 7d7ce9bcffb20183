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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{CommitSha, Provider, RepoSlug};
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

    /// Creates a completed check run (emulated on GitLab).
    async fn create_check_run(&self, repo: &RepoSlug, check: &CheckRun) -> Result<(), ScmError>;

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
    /// Clients for the configured providers, and the GitHub client's
    /// installation hints.
    pub fn from_settings(
        github: Option<&crate::config::GithubSettings>,
        gitlab: Option<&crate::config::GitlabSettings>,
    ) -> anyhow::Result<(Self, Option<Arc<dyn InstallationHints>>)> {
        use anyhow::Context as _;
        let github = github
            .map(|s| github::GithubClient::new(s).map(Arc::new))
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
                github: github.map(|g| g as Arc<dyn ScmClient>),
                gitlab: gitlab.map(|g| g as Arc<dyn ScmClient>),
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
    fn long_comments_are_cut_with_a_note_within_the_limit() {
        let body = "é".repeat(MAX_COMMENT_CHARS + 10);
        let cut = truncate_comment(&body, MAX_COMMENT_CHARS);
        assert_eq!(cut.chars().count(), MAX_COMMENT_CHARS);
        assert!(cut.ends_with("longer than the provider allows)"));
        assert_eq!(truncate_comment("short", MAX_COMMENT_CHARS), "short");
    }
}
