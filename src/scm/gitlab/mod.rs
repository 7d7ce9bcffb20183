//! GitLab adapter: the [`ScmClient`] primitives on GitLab's REST API v4,
//! through the `gitlab` crate.
//!
//! Every request is one of the crate's endpoint builders
//! (`gitlab::api::projects::…`) sent by its async client, which adds the
//! `PRIVATE-TOKEN` header, percent-encodes the project path
//! (`group%2Fsub%2Fproject`) and sends parameters as an
//! `application/x-www-form-urlencoded` body. The answer is read here rather
//! than by the crate's `query_async` and its `ignore`/`raw`/`paged` wrappers:
//! those drop the response headers of a 429 (its `Retry-After`) and have no
//! timeout, and [`classify`] needs both. Lists are read page by page to the
//! end (`page`/`per_page`, GitLab's `X-Next-Page`).
//!
//! GitLab has no check runs: [`GitlabClient`] emulates one with a commit
//! status named after the check and a discussion on each open merge request
//! whose head is the commit. A retry looks for each part before making it
//! again: GitLab takes a repeated finished status as a new one (it refuses
//! only a repeated running or pending one), and a repeated discussion is a
//! second discussion. Nor does this adapter create GitLab deployment
//! objects: a deployment report is the commit status
//! `portcall/{environment}` (DESIGN.md §5).
//!
//! Building the crate's client asks GitLab `GET /user` to check the token, so
//! the client is built on first use and kept: portcall starts while GitLab is
//! down, and a failed build is an error of the call that needed it (tried
//! again on the next call).

mod classify;
mod probe;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use gitlab::api::common::{NameOrId, SortOrder};
use gitlab::api::endpoint_prelude::Method;
use gitlab::api::projects::merge_requests::discussions::CreateMergeRequestDiscussion;
use gitlab::api::projects::merge_requests::notes::{
    CreateMergeRequestNote, EditMergeRequestNote, MergeRequestNotes, NoteOrderBy,
};
use gitlab::api::projects::repository::commits::{
    CommitStatusState, CommitStatuses, CreateCommitStatus, MergeRequests,
};
use gitlab::api::{AsyncClient, Endpoint, Pageable, ParamValue};
use gitlab::{AsyncGitlab, GitlabBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::OnceCell;

use self::classify::{classify, Failure};
use crate::config::GitlabSettings;
use crate::domain::{CommitSha, RepoSlug};
use crate::scm::{
    deployment_context, sticky_body, truncate_comment, CheckConclusion, CheckRun, CommentAction,
    CommitStatus, DeploymentError, DeploymentReport, ScmClient, ScmError, StatusState,
};

/// GitLab's limit on a note (comment or discussion) body, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000_000;

/// GitLab's (and the crate's) limit on a commit status's `description`,
/// `target_url` and `ref`. The crate counts bytes.
const MAX_STATUS_FIELD_BYTES: usize = 255;

/// The most GitLab gives per page.
const PER_PAGE: u32 = 100;

/// A list longer than this many pages is refused rather than read forever
/// (100,000 notes on one merge request).
const MAX_PAGES: u32 = 1_000;

const USER_AGENT: &str = concat!("portcall/", env!("CARGO_PKG_VERSION"));

/// Posts results to one GitLab instance (gitlab.com or self-managed) with
/// one token: commit statuses, emulated check runs, sticky merge request
/// notes.
///
/// ```ignore
/// let gitlab: Arc<dyn ScmClient> = Arc::new(GitlabClient::new(&settings.gitlab)?);
/// gitlab.post_status(&repo, &sha, &status).await?;
/// ```
#[derive(Debug)]
pub struct GitlabClient {
    /// What the crate puts between the scheme and `/api/v4/`: host, port and
    /// any path prefix (`gitlab.example.com`, `127.0.0.1:8080`,
    /// `example.com/gitlab`).
    host: String,
    /// An `http://` URL: the crate's "insecure" (plain HTTP) mode.
    plain_http: bool,
    token: SecretString,
    request_timeout: Duration,
    /// Built on first use; see the module documentation.
    api: OnceCell<AsyncGitlab>,
}

impl GitlabClient {
    /// A client for `settings.url` (`https://gitlab.com`,
    /// `https://gitlab.example.com`, or `http://…` for plain HTTP) with
    /// `settings.token`. Makes no request: the connection is made, and the
    /// token checked, on first use.
    pub fn new(settings: &GitlabSettings) -> Result<Self, ScmError> {
        let url = settings.url.trim_end_matches('/');
        let (plain_http, host) = if let Some(host) = url.strip_prefix("https://") {
            (false, host)
        } else if let Some(host) = url.strip_prefix("http://") {
            (true, host)
        } else {
            return Err(ScmError::permanent(
                None,
                "gitlab.url must start with https:// or http://",
            ));
        };
        let host_ok = !host.is_empty()
            && !host.starts_with('/')
            && !host.contains(|c: char| c.is_whitespace() || matches!(c, '?' | '#' | '@'));
        if !host_ok {
            return Err(ScmError::permanent(
                None,
                "gitlab.url must be a base URL: scheme, host, optional port and path",
            ));
        }
        Ok(Self {
            host: host.to_owned(),
            plain_http,
            token: settings.token.clone(),
            request_timeout: settings.request_timeout,
            api: OnceCell::new(),
        })
    }

    /// The crate's client, built (and the token checked) on first use.
    async fn api(&self) -> Result<&AsyncGitlab, ScmError> {
        self.connect().await.map_err(|failure| {
            in_context(
                "connecting to GitLab (GET /user)",
                classify(failure, SystemTime::now()),
            )
        })
    }

    /// [`Self::api`] before classification, so a health check can tell a
    /// refused token from an unreachable GitLab.
    async fn connect(&self) -> Result<&AsyncGitlab, Failure<'static>> {
        self.api
            .get_or_try_init(|| async {
                let mut builder =
                    GitlabBuilder::new(self.host.as_str(), self.token.expose_secret());
                if self.plain_http {
                    builder.insecure();
                }
                builder.user_agent(USER_AGENT);
                match tokio::time::timeout(self.request_timeout, builder.build_async()).await {
                    Ok(Ok(api)) => Ok(api),
                    Ok(Err(error)) => Err(Failure::Build(error)),
                    Err(_elapsed) => Err(Failure::TimedOut(self.request_timeout)),
                }
            })
            .await
    }

    /// Sends `endpoint` (with `page` of [`PER_PAGE`] for a list) and returns
    /// GitLab's 2xx answer, or the classified failure.
    async fn send<E>(
        &self,
        endpoint: &E,
        page: Option<u32>,
    ) -> Result<http::Response<Bytes>, ScmError>
    where
        E: Endpoint + Sync,
    {
        let answer = self.send_any(endpoint, page).await?;
        if answer.status().is_success() {
            Ok(answer)
        } else {
            Err(classify(
                Failure::Answer {
                    status: answer.status(),
                    headers: answer.headers(),
                    body: answer.body(),
                },
                SystemTime::now(),
            ))
        }
    }

    /// Sends `endpoint` and returns whatever GitLab answered, 2xx or not;
    /// an error means there was no answer (or no request).
    async fn send_any<E>(
        &self,
        endpoint: &E,
        page: Option<u32>,
    ) -> Result<http::Response<Bytes>, ScmError>
    where
        E: Endpoint + Sync,
    {
        let api = self.api().await?;
        let mut url = endpoint
            .url_base()
            .endpoint_for(api, &endpoint.endpoint())
            .map_err(|error| classify(Failure::Api(error), SystemTime::now()))?;
        endpoint.parameters().add_to_url(&mut url);
        if let Some(page) = page {
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &PER_PAGE.to_string());
        }
        let method = endpoint.method();
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        let body = match endpoint.body() {
            Ok(Some((content_type, body))) => {
                request = request.header(http::header::CONTENT_TYPE, content_type);
                body
            }
            Ok(None) => Vec::new(),
            Err(error) => return Err(invalid_request(error)),
        };

        let answer = tokio::time::timeout(self.request_timeout, api.rest_async(request, body))
            .await
            .map_err(|_elapsed| {
                classify(Failure::TimedOut(self.request_timeout), SystemTime::now())
            })?
            .map_err(|error| classify(Failure::Api(error), SystemTime::now()))?;
        tracing::debug!(
            http.method = %method,
            http.path = url.path(),
            http.status = answer.status().as_u16(),
            "GitLab answered"
        );
        Ok(answer)
    }

    /// Every item of a list, page after page: on while GitLab's
    /// `X-Next-Page` names a next page (or, without that header, while
    /// pages come full).
    async fn get_all<E, T>(&self, endpoint: &E) -> Result<Vec<T>, ScmError>
    where
        E: Endpoint + Pageable + Sync,
        T: DeserializeOwned,
    {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let answer = self.send(endpoint, Some(page)).await?;
            let batch: Vec<T> = decode(&answer)?;
            let full = batch.len() >= PER_PAGE as usize;
            let empty = batch.is_empty();
            items.extend(batch);
            let next_page = answer
                .headers()
                .get("x-next-page")
                .and_then(|value| value.to_str().ok())
                .map(str::trim);
            let more = match next_page {
                Some(next) => !next.is_empty(),
                None => full,
            };
            if !more || empty {
                return Ok(items);
            }
        }
        Err(ScmError::permanent(
            None,
            format!("GitLab's list has more than {MAX_PAGES} pages"),
        ))
    }

    /// `POST /projects/:id/statuses/:sha`.
    async fn create_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), ScmError> {
        let mut endpoint = CreateCommitStatus::builder();
        endpoint
            .project(repo.path())
            .commit(sha.as_str())
            .state(gitlab_state(status.state))
            .name(status.context.as_str());
        let description = cut_bytes(&status.description, MAX_STATUS_FIELD_BYTES);
        if !description.is_empty() {
            endpoint.description(description);
        }
        match status.target_url.as_deref() {
            Some(url) if url.len() <= MAX_STATUS_FIELD_BYTES => {
                endpoint.target_url(url);
            }
            Some(url) => tracing::warn!(
                target_url.bytes = url.len(),
                "target_url is longer than GitLab allows: the status is posted without it"
            ),
            None => {}
        }
        let endpoint = endpoint.build().map_err(invalid_request)?;
        match self.send(&endpoint, None).await {
            Ok(_) => Ok(()),
            // GitLab refuses to move a status to the state it is already
            // in, e.g. "Cannot transition status via :run from :running";
            // GitHub accepts the repeat. Either way it is in that state now.
            Err(ScmError::Permanent {
                status: Some(400),
                message,
            }) if message.contains("Cannot transition status") => {
                tracing::debug!(%message, "the status is already in this state");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// `POST /projects/:id/merge_requests/:iid/discussions`.
    async fn create_discussion(
        &self,
        repo: &RepoSlug,
        iid: u64,
        body: &str,
    ) -> Result<(), ScmError> {
        let endpoint = CreateMergeRequestDiscussion::builder()
            .project(repo.path())
            .merge_request(iid)
            .body(body)
            .build()
            .map_err(invalid_request)?;
        self.send(&endpoint, None).await.map(drop)
    }
}

#[async_trait]
impl ScmClient for GitlabClient {
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %sha, status.context = %status.context)
    )]
    async fn post_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), ScmError> {
        self.create_status(repo, sha, status).await
    }

    /// GitLab has no check runs. The nearest it has: a commit status named
    /// after the check (`check.name`; success, failed, or success for a
    /// neutral conclusion, which GitHub also lets pass), described by the
    /// title and linking to `details_url`; and, on each open merge request
    /// whose head is `check.head_sha`, a discussion with the title, the
    /// summary and the annotations as a Markdown list.
    ///
    /// Each call posts the status and opens the discussions anew; after an
    /// attempt that may have made some of them, the dispatcher calls
    /// [`ScmClient::create_check_run_again`] instead.
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %check.head_sha, check.name = %check.name)
    )]
    async fn create_check_run(&self, repo: &RepoSlug, check: &CheckRun) -> Result<(), ScmError> {
        self.create_status(repo, &check.head_sha, &check_status(check))
            .await?;

        let merge_requests = self.open_merge_requests(repo, &check.head_sha).await?;
        if merge_requests.is_empty() {
            return Ok(());
        }
        let body = check_run_body(check);
        for iid in merge_requests {
            self.create_discussion(repo, iid, &body).await?;
            tracing::debug!(mr.iid = iid, "check run discussion opened");
        }
        Ok(())
    }

    /// The emulated check run after an attempt that may have made some of
    /// it: the status unless the commit has it already, and the discussion
    /// on each open merge request whose head is the commit unless one of
    /// the merge request's notes already is that discussion.
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %check.head_sha, check.name = %check.name)
    )]
    async fn create_check_run_again(
        &self,
        repo: &RepoSlug,
        check: &CheckRun,
    ) -> Result<bool, ScmError> {
        let mut created = false;
        let status = check_status(check);
        if !self.has_status(repo, &check.head_sha, &status).await? {
            self.create_status(repo, &check.head_sha, &status).await?;
            created = true;
        }
        let body = check_run_body(check);
        for iid in self.open_merge_requests(repo, &check.head_sha).await? {
            if self.has_note(repo, iid, &body).await? {
                tracing::debug!(mr.iid = iid, "check run discussion already there");
                continue;
            }
            self.create_discussion(repo, iid, &body).await?;
            created = true;
        }
        Ok(created)
    }

    /// Any status of the context on the commit saying the same, not only
    /// the newest: a status another job posted since leaves the earlier
    /// attempt's in place, and GitLab would take this one again as a new
    /// status (only a running or pending one is refused as a repeat).
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %sha, status.context = %status.context)
    )]
    async fn status_is_current(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<bool, ScmError> {
        self.has_status(repo, sha, status).await
    }

    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %sha))]
    async fn open_pull_requests(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<Vec<u64>, ScmError> {
        self.open_merge_requests(repo, sha).await
    }

    /// Reads every note of the merge request (oldest first), ignoring
    /// GitLab's system notes. `body` is cut to [`MAX_NOTE_CHARS`], keeping
    /// `marker` in it.
    #[tracing::instrument(skip_all, fields(repo.slug = %repo, mr.iid = number))]
    async fn upsert_comment(
        &self,
        repo: &RepoSlug,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentAction, ScmError> {
        let body = sticky_body(body, marker, MAX_NOTE_CHARS);
        let list = MergeRequestNotes::builder()
            .project(repo.path())
            .merge_request(number)
            // Oldest first: notes written while the pages are read land
            // on the last page instead of shifting the others.
            .order_by(NoteOrderBy::CreatedAt)
            .sort(SortOrder::Ascending)
            .build()
            .map_err(invalid_request)?;
        let notes: Vec<Note> = self.get_all(&list).await?;
        let mut ours: Vec<Note> = notes
            .into_iter()
            .filter(|note| !note.system && note.body.contains(marker))
            .collect();
        ours.sort_by_key(|note| note.id);

        let mut ours = ours.into_iter();
        let Some(kept) = ours.next() else {
            let create = CreateMergeRequestNote::builder()
                .project(repo.path())
                .merge_request(number)
                .body(body.as_str())
                .build()
                .map_err(invalid_request)?;
            self.send(&create, None).await?;
            tracing::debug!("comment created");
            return Ok(CommentAction::Created);
        };

        // GitLab may trim what it stores; ends alone do not change how
        // the Markdown renders.
        let action = if kept.body.trim() == body.trim() {
            CommentAction::Unchanged
        } else {
            let edit = EditMergeRequestNote::builder()
                .project(repo.path())
                .merge_request(number)
                .note(kept.id)
                .body(body.as_str())
                .build()
                .map_err(invalid_request)?;
            self.send(&edit, None).await?;
            CommentAction::Updated
        };
        tracing::debug!(note.id = kept.id, ?action, "comment found");

        // A race between two upserts left more than one: keep the oldest.
        for duplicate in ours {
            let delete = DeleteMergeRequestNote {
                project: repo.path().into(),
                merge_request: number,
                note: duplicate.id,
            };
            match self.send(&delete, None).await {
                Ok(_) => tracing::info!(note.id = duplicate.id, "duplicate comment deleted"),
                // Deleted meanwhile, by the other upsert of the race.
                Err(ScmError::Permanent {
                    status: Some(404), ..
                }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(action)
    }

    /// GitLab has no deployment objects here: the report is the commit
    /// status `portcall/{environment}` on the release's commit, `running`,
    /// `success`, `failed` or `canceled`, linking to the environment's URL.
    /// A repeated state GitLab refuses ("Cannot transition status") is done.
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %deployment.sha, deployment.environment = %deployment.environment)
    )]
    async fn report_deployment(
        &self,
        repo: &RepoSlug,
        deployment: &DeploymentReport,
    ) -> Result<Option<u64>, DeploymentError> {
        let status = CommitStatus {
            context: deployment_context(&deployment.environment),
            state: deployment.state.status_state(),
            description: deployment.description.clone(),
            target_url: deployment.url.as_ref().map(ToString::to_string),
        };
        self.create_status(repo, &deployment.sha, &status).await?;
        Ok(None)
    }
}

impl GitlabClient {
    /// `GET /projects/:id/repository/commits/:sha/statuses?name=…&all=true`,
    /// every page: whether one of them is `status` as [`Self::create_status`]
    /// would post it (state, description cut as posted, link if it fits).
    async fn has_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<bool, ScmError> {
        let list = CommitStatuses::builder()
            .project(repo.path())
            .commit(sha.as_str())
            .name(status.context.as_str())
            .all(true)
            .build()
            .map_err(invalid_request)?;
        let listed: Vec<ListedStatus> = self.get_all(&list).await?;
        let state = gitlab_state(status.state).as_value();
        let description = cut_bytes(&status.description, MAX_STATUS_FIELD_BYTES);
        let target_url = status
            .target_url
            .as_deref()
            .filter(|url| url.len() <= MAX_STATUS_FIELD_BYTES);
        Ok(listed.iter().any(|s| {
            s.name == status.context
                && s.status == state
                && s.description.as_deref().unwrap_or_default() == description
                && s.target_url.as_deref() == target_url
        }))
    }

    /// Whether a note on merge request `iid` (its own or a discussion's,
    /// not GitLab's system notes) says `body`, ends aside.
    async fn has_note(&self, repo: &RepoSlug, iid: u64, body: &str) -> Result<bool, ScmError> {
        let list = MergeRequestNotes::builder()
            .project(repo.path())
            .merge_request(iid)
            .order_by(NoteOrderBy::CreatedAt)
            .sort(SortOrder::Ascending)
            .build()
            .map_err(invalid_request)?;
        let notes: Vec<Note> = self.get_all(&list).await?;
        Ok(notes
            .iter()
            .any(|note| !note.system && note.body.trim() == body.trim()))
    }

    /// `GET /projects/:id/repository/commits/:sha/merge_requests`, every
    /// page: the iids of those still open whose head is `sha` (the commit
    /// may also be in closed ones, or in open ones with newer commits).
    async fn open_merge_requests(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<Vec<u64>, ScmError> {
        let list = MergeRequests::builder()
            .project(repo.path())
            .sha(sha.as_str())
            .build()
            .map_err(invalid_request)?;
        let merge_requests: Vec<MergeRequestHead> = self.get_all(&list).await?;
        Ok(merge_requests
            .into_iter()
            .filter(|mr| {
                mr.state == "opened"
                    && mr
                        .sha
                        .as_deref()
                        .is_some_and(|head| head.eq_ignore_ascii_case(sha.as_str()))
            })
            .map(|mr| mr.iid)
            .collect())
    }
}

/// `DELETE /projects/:id/merge_requests/:iid/notes/:note_id`: the crate has
/// this endpoint for issue notes only, so it is written here the crate's way.
struct DeleteMergeRequestNote<'a> {
    project: NameOrId<'a>,
    merge_request: u64,
    note: u64,
}

impl Endpoint for DeleteMergeRequestNote<'_> {
    fn method(&self) -> Method {
        Method::DELETE
    }

    fn endpoint(&self) -> Cow<'static, str> {
        // `NameOrId` displays a path percent-encoded, as the crate's own endpoints do.
        format!(
            "projects/{}/merge_requests/{}/notes/{}",
            self.project, self.merge_request, self.note
        )
        .into()
    }
}

/// What is read of a merge request in a list.
#[derive(Debug, Deserialize)]
struct MergeRequestHead {
    iid: u64,
    /// `opened`, `closed`, `locked` or `merged`.
    state: String,
    /// The head commit.
    sha: Option<String>,
}

/// What is read of a listed commit status.
#[derive(Debug, Deserialize)]
struct ListedStatus {
    name: String,
    /// `pending`, `running`, `success`, `failed`, `canceled`, …
    status: String,
    description: Option<String>,
    target_url: Option<String>,
}

/// What is read of a note.
#[derive(Debug, Deserialize)]
struct Note {
    id: u64,
    body: String,
    /// Notes GitLab writes itself ("added 1 commit").
    #[serde(default)]
    system: bool,
}

/// GitHub's state words to GitLab's.
fn gitlab_state(state: StatusState) -> CommitStatusState {
    match state {
        StatusState::Pending => CommitStatusState::Pending,
        StatusState::InProgress => CommitStatusState::Running,
        StatusState::Success => CommitStatusState::Success,
        StatusState::Failure | StatusState::Error => CommitStatusState::Failed,
        StatusState::Inactive => CommitStatusState::Canceled,
    }
}

/// The commit status that stands for a check run: named after it, success
/// (also for a neutral conclusion, which GitHub lets pass too) or failed,
/// described by its title, linking to its details.
fn check_status(check: &CheckRun) -> CommitStatus {
    CommitStatus {
        context: check.name.clone(),
        state: match check.conclusion {
            CheckConclusion::Success | CheckConclusion::Neutral => StatusState::Success,
            CheckConclusion::Failure => StatusState::Failure,
        },
        description: check.title.clone(),
        target_url: check.details_url.clone(),
    }
}

/// The discussion that stands for a check run on a merge request.
fn check_run_body(check: &CheckRun) -> String {
    let mut body = format!("### {}\n\n{}\n", check.title.trim(), check.summary.trim());
    if !check.annotations.is_empty() {
        body.push('\n');
        for annotation in &check.annotations {
            let lines = if annotation.end_line > annotation.start_line {
                format!("{}-{}", annotation.start_line, annotation.end_line)
            } else {
                annotation.start_line.to_string()
            };
            // Writing to a String cannot fail.
            let _ = write!(
                body,
                "- **{}** `{}:{}`",
                annotation.level, annotation.path, lines
            );
            if let Some(title) = &annotation.title {
                let _ = write!(body, " {}:", title.trim());
            }
            // One list item per annotation: line breaks would end it.
            let message = annotation
                .message
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(body, " {message}");
        }
    }
    truncate_comment(&body, MAX_NOTE_CHARS)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The JSON of a 2xx answer.
fn decode<T: DeserializeOwned>(answer: &http::Response<Bytes>) -> Result<T, ScmError> {
    serde_json::from_slice(answer.body()).map_err(|error| {
        ScmError::permanent(
            Some(answer.status().as_u16()),
            format!("unexpected answer from GitLab: {error}"),
        )
    })
}

/// A request the crate's builder refused: a bug here, not GitLab's doing.
fn invalid_request(error: impl Display) -> ScmError {
    ScmError::permanent(None, format!("invalid GitLab request: {error}"))
}

/// `error` with what was being done put before its message.
fn in_context(context: &str, error: ScmError) -> ScmError {
    match error {
        ScmError::Transient {
            message,
            retry_after,
        } => ScmError::transient(format!("{context}: {message}"), retry_after),
        ScmError::Permanent { status, message } => {
            ScmError::permanent(status, format!("{context}: {message}"))
        }
    }
}
