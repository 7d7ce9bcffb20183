//! The request bodies portcall sends to GitHub and the small translations
//! from domain values into GitHub's words. Optional fields that are unset
//! are left out rather than sent as `null`, which some endpoints refuse.

use serde::Serialize;

use crate::scm::{Annotation, CheckConclusion, DeploymentState, StatusState};

/// GitHub's limit on a commit status description, in characters.
pub(super) const MAX_DESCRIPTION_CHARS: usize = 140;

/// A status, deployment or deployment-status description as GitHub keeps
/// it: cut to [`MAX_DESCRIPTION_CHARS`] characters.
pub(super) fn description(text: &str) -> String {
    text.chars().take(MAX_DESCRIPTION_CHARS).collect()
}
/// GitHub's limit on a check run's `output.summary`, in characters.
pub(super) const MAX_SUMMARY_CHARS: usize = 65_535;
/// Annotations GitHub accepts per create or update request.
pub(super) const ANNOTATIONS_PER_REQUEST: usize = 50;

/// `POST /repos/{o}/{r}/statuses/{sha}`.
#[derive(Debug, Serialize)]
pub(super) struct NewStatus<'a> {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<&'a str>,
    pub description: String,
    pub context: &'a str,
}

/// GitHub has four commit states; the in-between ones fold into them.
pub(super) fn status_state(state: StatusState) -> &'static str {
    match state {
        StatusState::Pending | StatusState::InProgress => "pending",
        StatusState::Success => "success",
        StatusState::Failure => "failure",
        StatusState::Error | StatusState::Inactive => "error",
    }
}

/// `POST /repos/{o}/{r}/deployments`.
#[derive(Debug, Serialize)]
pub(super) struct NewDeployment<'a> {
    /// The commit sha: a deployment of exactly what was released.
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    pub environment: &'a str,
    /// Off: GitHub would otherwise merge the default branch into the ref
    /// first, which a commit sha cannot take.
    pub auto_merge: bool,
    /// Empty: the release already happened; GitHub would otherwise refuse
    /// the deployment (409) until every status on the commit is green.
    pub required_contexts: [&'a str; 0],
    pub description: String,
    pub payload: DeploymentPayload<'a>,
}

/// What portcall puts in a deployment's `payload`: which release it is.
#[derive(Debug, Serialize)]
pub(super) struct DeploymentPayload<'a> {
    pub release_id: i64,
    pub release: &'a str,
}

/// `POST /repos/{o}/{r}/deployments/{id}/statuses`.
#[derive(Debug, Serialize)]
pub(super) struct NewDeploymentStatus<'a> {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<&'a str>,
    pub description: String,
}

/// GitHub's deployment states include portcall's four by name.
pub(super) fn deployment_state(state: DeploymentState) -> &'static str {
    state.as_str()
}

/// `GET …/statuses`: what a status says (octocrab's model types the state
/// as an enum, compared here as GitHub's word).
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListedStatus {
    pub context: Option<String>,
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
}

/// `GET …/check-runs`: only what tells one of ours from the others
/// (octocrab's model has no `external_id`).
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListedCheckRuns {
    pub check_runs: Vec<ListedCheckRun>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct ListedCheckRun {
    pub name: String,
    pub head_sha: String,
    pub external_id: Option<String>,
    pub output: ListedOutput,
}

/// What a listed check run says, to tell ours without an external id apart.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListedOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
}

/// The answer to a deployment request GitHub accepted without creating
/// one (202).
#[derive(Debug, serde::Deserialize)]
pub(super) struct Message {
    pub message: String,
}

/// `POST /repos/{o}/{r}/check-runs`, always for a completed run.
#[derive(Debug, Serialize)]
pub(super) struct NewCheckRun<'a> {
    pub name: &'a str,
    pub head_sha: &'a str,
    pub status: &'static str,
    pub conclusion: &'static str,
    /// ISO 8601, `YYYY-MM-DDTHH:MM:SSZ`.
    pub completed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    pub output: Output<'a>,
}

/// `PATCH /repos/{o}/{r}/check-runs/{id}` carrying the next annotations.
#[derive(Debug, Serialize)]
pub(super) struct CheckRunUpdate<'a> {
    pub output: Output<'a>,
}

/// A check run's `output`. GitHub requires `title` and `summary` on every
/// update that carries annotations, and appends the annotations to the
/// ones it already has.
#[derive(Debug, Serialize)]
pub(super) struct Output<'a> {
    pub title: &'a str,
    pub summary: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub annotations: Vec<OutputAnnotation<'a>>,
}

impl<'a> Output<'a> {
    pub(super) fn new(title: &'a str, summary: &'a str, batch: &'a [Annotation]) -> Self {
        Self {
            title,
            summary,
            annotations: batch.iter().map(OutputAnnotation::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct OutputAnnotation<'a> {
    pub path: &'a str,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: &'static str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
}

impl<'a> From<&'a Annotation> for OutputAnnotation<'a> {
    fn from(a: &'a Annotation) -> Self {
        Self {
            path: &a.path,
            start_line: a.start_line,
            end_line: a.end_line,
            annotation_level: annotation_level(&a.level),
            message: &a.message,
            title: a.title.as_deref(),
        }
    }
}

/// GitHub knows `notice`, `warning` and `failure`; anything else would be
/// refused with a 422 for the whole check run, so it becomes the nearest.
fn annotation_level(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "failure" | "error" => "failure",
        "warning" | "warn" => "warning",
        _ => "notice",
    }
}

pub(super) fn conclusion(c: CheckConclusion) -> &'static str {
    match c {
        CheckConclusion::Success => "success",
        CheckConclusion::Failure => "failure",
        CheckConclusion::Neutral => "neutral",
    }
}

/// `POST /repos/{o}/{r}/issues/{n}/comments` and
/// `PATCH /repos/{o}/{r}/issues/comments/{id}`.
#[derive(Debug, Serialize)]
pub(super) struct CommentBody<'a> {
    pub body: &'a str,
}

/// The `rel="next"` target of a `Link` header, as GitHub paginates:
/// `<https://api.github.com/…?page=2>; rel="next", <…>; rel="last"`.
pub(super) fn next_link(link: &str) -> Option<&str> {
    link.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|param| {
            param.trim().split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_found_among_the_link_relations() {
        let link = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=9>; rel="last", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=1>; rel="first""#;
        assert_eq!(
            next_link(link),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3")
        );
        let last_page = r#"<https://x/c?page=1>; rel="first", <https://x/c?page=2>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link(""), None);
        assert_eq!(
            next_link("<https://x/c?page=2>; rel=next"),
            Some("https://x/c?page=2")
        );
    }

    #[test]
    fn every_status_state_maps_to_one_of_githubs_four() {
        use StatusState::*;
        let mapped: Vec<_> = [Pending, InProgress, Success, Failure, Error, Inactive]
            .into_iter()
            .map(status_state)
            .collect();
        assert_eq!(
            mapped,
            ["pending", "pending", "success", "failure", "error", "error"]
        );
    }
}
