//! The closed set of things portcall reacts to. Every source's payload is
//! normalized into one [`Event`] by `ingest`; the worker dispatches on the
//! variant and never looks at provider JSON again.

use std::fmt;

use super::ids::{CommitSha, Digest, ImageName, RepoSlug, Tag};

/// A normalized webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sender checking that the endpoint works (GitHub `ping`).
    Ping,
    /// Commits pushed to a branch.
    Push(Push),
    /// A tag created or moved.
    TagPush(TagPush),
    /// A pull request (GitHub) or merge request (GitLab) changed.
    PullRequest(PullRequest),
    /// An image manifest was pushed to a registry.
    ImagePushed(ImagePushed),
    /// Someone pressed "Re-run" on a check run, or on a whole check suite
    /// (then `name` is empty).
    CheckRunRerequested(CheckRunRerequested),
    /// The GitHub App was installed, removed or changed.
    Installation(Installation),
    /// Stored and recorded, but nothing to act on. `what` says what it was
    /// (e.g. `github issues`, `distribution blob push`), for the record.
    Unknown { what: String },
}

impl Event {
    /// An event not acted on, described as `{provider} {name}[ {detail}]`.
    /// Names come from the sender, so each is cut to 100 printable ASCII
    /// characters before it reaches the deliveries table and the logs.
    pub fn unknown(provider: &str, name: &str, detail: Option<&str>) -> Self {
        let mut what = format!("{provider} {}", printable(name));
        if let Some(detail) = detail {
            what.push(' ');
            what.push_str(&printable(detail));
        }
        Event::Unknown { what }
    }

    /// A stable, short name for logs, metrics and the deliveries table.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Ping => "ping",
            Event::Push(_) => "push",
            Event::TagPush(_) => "tag_push",
            Event::PullRequest(_) => "pull_request",
            Event::ImagePushed(_) => "image_pushed",
            Event::CheckRunRerequested(_) => "check_run_rerequested",
            Event::Installation(_) => "installation",
            Event::Unknown { .. } => "unknown",
        }
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Where a source-control event happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub slug: RepoSlug,
    /// The provider's numeric id (GitHub repository id, GitLab project id).
    pub id: Option<u64>,
    /// The GitHub App installation the event came through; `None` on GitLab
    /// and for GitHub repository webhooks outside an App.
    pub installation_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub repo: Repo,
    pub branch: String,
    /// `None` when the branch is new.
    pub before: Option<CommitSha>,
    pub after: CommitSha,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPush {
    pub repo: Repo,
    pub tag: String,
    pub commit: CommitSha,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Reopened,
    /// New commits on the head branch (GitHub `synchronize`, GitLab `update`
    /// with `oldrev`).
    Synchronized,
    Closed {
        merged: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repo: Repo,
    pub action: PullRequestAction,
    /// GitHub's pull request number, GitLab's merge request `iid`.
    pub number: u64,
    pub head_sha: CommitSha,
    pub head_ref: String,
    pub base_ref: String,
    pub title: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePushed {
    pub image: ImageName,
    /// `None` for a push by digest.
    pub tag: Option<Tag>,
    /// `None` when the payload names no digest (Quay, Docker Hub, Nexus):
    /// the worker resolves the tag against the registry.
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunRerequested {
    pub repo: Repo,
    pub check_run_id: u64,
    pub name: String,
    pub head_sha: CommitSha,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspended,
    Unsuspended,
    NewPermissionsAccepted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub action: InstallationAction,
    pub installation_id: u64,
    /// The user or organisation login the App is installed on.
    pub account: String,
}

impl fmt::Display for Event {
    /// One line for logs and the deliveries table; never includes a body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Ping => f.write_str("ping"),
            Event::Push(p) => write!(f, "push {} {} -> {}", p.repo.slug, p.branch, p.after),
            Event::TagPush(t) => write!(f, "tag {} {} at {}", t.repo.slug, t.tag, t.commit),
            Event::PullRequest(pr) => write!(
                f,
                "pull request {}#{} {:?} head {}",
                pr.repo.slug, pr.number, pr.action, pr.head_sha
            ),
            Event::ImagePushed(i) => match (&i.tag, &i.digest) {
                (Some(tag), Some(digest)) => write!(f, "image {}:{} {}", i.image, tag, digest),
                (Some(tag), None) => write!(f, "image {}:{}", i.image, tag),
                (None, Some(digest)) => write!(f, "image {}@{}", i.image, digest),
                (None, None) => write!(f, "image {}", i.image),
            },
            Event::CheckRunRerequested(c) => write!(
                f,
                "check run {} rerequested on {} {}",
                c.check_run_id, c.repo.slug, c.head_sha
            ),
            Event::Installation(i) => write!(
                f,
                "installation {} {:?} on {}",
                i.installation_id, i.action, i.account
            ),
            Event::Unknown { what } => write!(f, "{what}"),
        }
    }
}
