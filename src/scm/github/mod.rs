//! The GitHub adapter: commit statuses, check runs, sticky pull-request
//! comments and deployments, posted as a GitHub App through octocrab.
//!
//! Why it is built this way:
//!
//! - **One HTTP client, our own credentials.** octocrab provides the
//!   transport (base URL for GitHub Enterprise's `/api/v3`, timeouts,
//!   `X-GitHub-Api-Version`, error bodies) and the response models; the
//!   `Authorization` header is set here per request. octocrab's own
//!   installation auth keeps a token per `Octocrab` value without
//!   single-flight minting and with a 30-second margin; portcall needs one
//!   token per installation shared by every job, replaced five minutes
//!   before expiry, minted once however many jobs ask ([`auth`]).
//! - **No retries here.** octocrab's retry layer is not compiled in; the
//!   dispatcher owns the one retry policy. The one exception: a 401 drops
//!   the cached token, mints a fresh one and repeats the call once, since
//!   a token revoked early is not the job's fault. Every failure is
//!   classified once, in [`errors`].
//! - **Strict answers.** Every JSON answer is read into octocrab's model
//!   for it (`InstallationToken`, `Installation`, `Status`, `CheckRun`,
//!   `PullRequest`, `Comment`, `Deployment`, `DeploymentStatus`), so a
//!   changed or mocked-wrong shape fails loudly instead of being half-read.
//! - **Secrets stay out.** The private key is parsed once and never
//!   printed; the JWT and tokens travel only in a sensitive header and never
//!   reach an error message or a log line.

mod auth;
pub mod deliveries;
mod errors;
mod probe;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{ACCEPT, AUTHORIZATION, LINK};
use http::{HeaderMap, HeaderValue, Method, Uri};
use octocrab::models::{self, IssueState};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::auth::{AppKey, InstallationIds, InstallationToken, Minted, TokenCache};
use crate::clock::Clock;
use crate::config::GithubSettings;
use crate::domain::{CommitSha, Provider, RepoSlug};
use crate::scm::{
    sticky_body, truncate_comment, CheckRun, CommentAction, CommitStatus, DeploymentError,
    DeploymentReport, InstallationHints, ScmClient, ScmError, MAX_COMMENT_CHARS,
};

/// How long establishing a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read or write on an open connection may stall.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of 100 comments read before giving up on finding a sticky comment.
const MAX_COMMENT_PAGES: usize = 100;

/// Posts results to GitHub as a GitHub App. Cheap to share behind an `Arc`;
/// all caches are internal and safe for concurrent jobs.
pub struct GithubClient {
    crab: Octocrab,
    /// `github.api_url`, without a trailing slash.
    api_url: Uri,
    /// `github.request_timeout_secs`: one whole call, answer body included.
    request_timeout: Duration,
    app: AppKey,
    installations: InstallationIds,
    tokens: TokenCache,
    clock: Clock,
    /// `portcall_github_ratelimit_remaining{installation}`, set from each
    /// installation call's `x-ratelimit-remaining`.
    ratelimit: Option<prometheus::IntGaugeVec>,
}

/// Why a [`GithubClient`] could not be built. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum GithubSetupError {
    /// `github.private_key` did not parse, or could not sign.
    #[error("github.private_key is not a usable RSA private key in PEM form (PKCS#1 or PKCS#8)")]
    InvalidKey,
    /// `github.api_url` is not an absolute http(s) URL.
    #[error("github.api_url {0:?} is not an http(s) URL with a host")]
    InvalidApiUrl(String),
    /// The HTTP client could not be set up (e.g. no TLS root certificates).
    #[error("could not build the GitHub HTTP client: {0}")]
    Client(String),
}

/// A whole successful answer.
struct Answer {
    status: http::StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Why [`GithubClient::send`] got no 2xx answer.
enum Failure {
    /// octocrab's error: GitHub's non-2xx answer, or a transport failure.
    Octocrab(octocrab::Error),
    /// No whole answer within `github.request_timeout_secs` (already classified).
    TimedOut(ScmError),
    /// The request could not be built (already classified).
    Unsendable(ScmError),
}

impl GithubClient {
    /// Builds the client: parses the app's private key (once, here), and
    /// sets up one HTTP client for `settings.api_url` with connect, I/O
    /// and whole-request timeouts. Must be called inside a Tokio runtime
    /// (octocrab's client spawns its request buffer).
    pub fn new(settings: &GithubSettings) -> Result<Self, GithubSetupError> {
        let app = AppKey::from_pem(settings.app_id, &settings.private_key)
            .map_err(|_| GithubSetupError::InvalidKey)?;
        let invalid_url = || GithubSetupError::InvalidApiUrl(settings.api_url.clone());
        let api_url: Uri = settings
            .api_url
            .trim_end_matches('/')
            .parse()
            .map_err(|_| invalid_url())?;
        let http_scheme = matches!(api_url.scheme_str(), Some("https" | "http"));
        if !http_scheme || api_url.authority().is_none() {
            return Err(invalid_url());
        }
        let crab = Octocrab::builder()
            .base_uri(api_url.clone())
            .map_err(|_| invalid_url())?
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(IO_TIMEOUT))
            .set_write_timeout(Some(IO_TIMEOUT))
            .add_header(ACCEPT, "application/vnd.github+json".to_owned())
            .build()
            .map_err(|e| GithubSetupError::Client(e.to_string()))?;
        Ok(Self {
            crab,
            api_url,
            request_timeout: settings.request_timeout,
            app,
            installations: InstallationIds::default(),
            tokens: TokenCache::default(),
            clock: Clock::system(),
            ratelimit: None,
        })
    }

    /// Reports GitHub's `x-ratelimit-remaining` of each installation call
    /// to `gauge`, labelled by installation id.
    pub fn with_ratelimit_gauge(mut self, gauge: prometheus::IntGaugeVec) -> Self {
        self.ratelimit = Some(gauge);
        self
    }

    /// Uses `clock` for JWT times, token expiry and check-run timestamps.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Records that the app's installation `installation_id` serves `repo`,
    /// as webhook payloads (`installation.id`) and the database tell. Saves
    /// the `GET /repos/{o}/{r}/installation` lookup.
    pub fn remember_installation(&self, repo: &RepoSlug, installation_id: u64) {
        self.installations.insert(repo, installation_id);
    }

    /// The installation known to serve `repo`, if one was remembered or
    /// looked up already; lets callers bound concurrency per installation.
    pub fn installation_of(&self, repo: &RepoSlug) -> Option<u64> {
        self.installations.get(repo)
    }

    // -- authentication ----------------------------------------------------

    fn jwt(&self) -> Result<SecretString, ScmError> {
        self.app
            .jwt(self.clock.now_unix())
            .map_err(|_| ScmError::permanent(None, "could not sign the GitHub App JWT"))
    }

    /// The installation serving `repo`: remembered, else looked up with the
    /// app JWT and remembered.
    async fn installation_for(&self, repo: &RepoSlug) -> Result<u64, ScmError> {
        if let Some(id) = self.installations.get(repo) {
            return Ok(id);
        }
        let path = github_path(repo)?;
        let target = uri(format!("/repos/{path}/installation"))?;
        let answer = self
            .exchange(&Method::GET, &target, &self.jwt()?, None::<&()>)
            .await?;
        let installation: models::Installation = parse(&answer, "repository installation")?;
        let id = installation.id.into_inner();
        tracing::debug!(
            installation.id = id,
            "looked up the repository's installation"
        );
        self.installations.insert(repo, id);
        Ok(id)
    }

    async fn installation_token(
        &self,
        installation_id: u64,
    ) -> Result<InstallationToken, ScmError> {
        self.tokens
            .get_or_mint(installation_id, &self.clock, || self.mint(installation_id))
            .await
    }

    /// `POST /app/installations/{id}/access_tokens` with the app JWT.
    async fn mint(&self, installation_id: u64) -> Result<Minted, ScmError> {
        let target = uri(format!(
            "/app/installations/{installation_id}/access_tokens"
        ))?;
        let answer = match self
            .exchange(&Method::POST, &target, &self.jwt()?, None::<&()>)
            .await
        {
            // The installation was deleted (the app reinstalled, say): look
            // the repository up again on the next attempt, which answers
            // 404 for good if the app is no longer installed at all.
            Err(ScmError::Permanent {
                status: Some(404), ..
            }) => {
                self.installations.forget_installation(installation_id);
                return Err(ScmError::transient(
                    format!("GitHub App installation {installation_id} no longer exists; the repository's installation will be looked up again"),
                    None,
                ));
            }
            other => other?,
        };
        // No serde detail in the message: it could quote the token.
        let token: models::InstallationToken = serde_json::from_str(&answer.body).map_err(|e| {
            ScmError::permanent(
                None,
                format!(
                    "GitHub's installation token answer did not have the expected shape (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let expires_at = match token.expires_at.as_deref() {
            None => None,
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| {
                        ScmError::permanent(
                            None,
                            "GitHub's installation token has an unreadable expires_at",
                        )
                    })?
                    .timestamp(),
            ),
        };
        tracing::debug!(
            installation.id = installation_id,
            "minted an installation token"
        );
        Ok(Minted {
            secret: SecretString::from(token.token),
            expires_at,
        })
    }

    // -- requests ----------------------------------------------------------

    /// Sends one request carrying `credential` and reads the whole answer;
    /// a non-2xx answer or a transport failure comes back classified.
    async fn exchange<B: Serialize + ?Sized>(
        &self,
        method: &Method,
        target: &Uri,
        credential: &SecretString,
        body: Option<&B>,
    ) -> Result<Answer, ScmError> {
        self.send(method, target, credential, body)
            .await
            .map_err(|failure| match failure {
                Failure::Octocrab(err) => errors::classify(&err, self.clock.now_unix()),
                Failure::TimedOut(error) | Failure::Unsendable(error) => error,
            })
    }

    /// [`Self::exchange`] before classification, so a health check can tell
    /// "GitHub answered with an error" from "GitHub did not answer".
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: &Method,
        target: &Uri,
        credential: &SecretString,
        body: Option<&B>,
    ) -> Result<Answer, Failure> {
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret())).map_err(
                |_| {
                    Failure::Unsendable(ScmError::permanent(
                        None,
                        "a GitHub credential is not a valid header value",
                    ))
                },
            )?;
        authorization.set_sensitive(true);
        let builder = http::Request::builder()
            .method(method.clone())
            .uri(target.clone())
            .header(AUTHORIZATION, authorization);
        let request = self
            .crab
            .build_request(builder, body)
            .map_err(|e| Failure::Unsendable(errors::classify(&e, self.clock.now_unix())))?;
        let exchange = async {
            let response = self.crab.execute(request).await?;
            let response = octocrab::map_github_error(response).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = self.crab.body_to_string(response).await?;
            Ok::<_, octocrab::Error>(Answer {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => Err(Failure::Octocrab(err)),
            Err(_) => Err(Failure::TimedOut(ScmError::transient(
                format!(
                    "GitHub did not answer {method} {} within {}s",
                    target.path(),
                    self.request_timeout.as_secs()
                ),
                None,
            ))),
        }
    }

    /// One API call as the installation serving `repo`. A 401 drops the
    /// token, mints a new one and repeats the call once; a second 401 is
    /// returned as it is (permanent).
    async fn call<B: Serialize + ?Sized>(
        &self,
        repo: &RepoSlug,
        method: Method,
        target: Uri,
        body: Option<&B>,
    ) -> Result<Answer, ScmError> {
        let installation = self.installation_for(repo).await?;
        let token = self.installation_token(installation).await?;
        let answer = self.exchange(&method, &target, &token.secret, body).await;
        self.note_ratelimit(installation, &answer);
        match answer {
            Err(ScmError::Permanent {
                status: Some(401), ..
            }) => {
                tracing::info!(
                    installation.id = installation,
                    "GitHub refused the installation token; minting a new one"
                );
                self.tokens.invalidate(installation, &token).await;
                let token = self.installation_token(installation).await?;
                let answer = self.exchange(&method, &target, &token.secret, body).await;
                self.note_ratelimit(installation, &answer);
                answer
            }
            other => other,
        }
    }

    /// Sets the rate-limit gauge from a successful answer's
    /// `x-ratelimit-remaining` (error answers are classified by octocrab
    /// without their headers; the last success is what the gauge shows).
    fn note_ratelimit(&self, installation: u64, answer: &Result<Answer, ScmError>) {
        let (Some(gauge), Ok(answer)) = (&self.ratelimit, answer) else {
            return;
        };
        if let Some(remaining) = answer
            .headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
        {
            gauge
                .with_label_values(&[installation.to_string().as_str()])
                .set(remaining);
        }
    }

    /// A pagination link, accepted only on the API's own scheme and host
    /// (the request carries a token), reduced to its path and query.
    fn same_origin(&self, link: &str) -> Result<Uri, ScmError> {
        let refuse =
            || ScmError::permanent(None, "GitHub's pagination link points outside the API");
        let next: Uri = link.parse().map_err(|_| refuse())?;
        if next.scheme() != self.api_url.scheme() || next.authority() != self.api_url.authority() {
            return Err(refuse());
        }
        let path = next.path_and_query().ok_or_else(refuse)?;
        uri(path.as_str().to_owned())
    }

    /// Every comment on issue/PR `number` whose body contains `marker`, as
    /// (id, body), across all pages.
    async fn marked_comments(
        &self,
        repo: &RepoSlug,
        number: u64,
        marker: &str,
    ) -> Result<Vec<(u64, String)>, ScmError> {
        let path = github_path(repo)?;
        let mut target = uri(format!(
            "/repos/{path}/issues/{number}/comments?per_page=100"
        ))?;
        let mut found = Vec::new();
        for _ in 0..MAX_COMMENT_PAGES {
            let answer = self.call(repo, Method::GET, target, None::<&()>).await?;
            let page: Vec<models::issues::Comment> = parse(&answer, "issue comments")?;
            found.extend(page.into_iter().filter_map(|c| {
                let body = c.body?;
                body.contains(marker).then(|| (c.id.into_inner(), body))
            }));
            let next = answer
                .headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(wire::next_link);
            match next {
                Some(link) => target = self.same_origin(link)?,
                None => return Ok(found),
            }
        }
        Err(ScmError::permanent(
            None,
            format!("#{number} has more than {MAX_COMMENT_PAGES} pages of comments"),
        ))
    }

    /// `POST /repos/{o}/{r}/deployments` for the report's commit and
    /// environment; the new deployment's id.
    async fn create_deployment(
        &self,
        repo: &RepoSlug,
        report: &DeploymentReport,
    ) -> Result<u64, ScmError> {
        let path = github_path(repo)?;
        let body = wire::NewDeployment {
            git_ref: report.sha.as_str(),
            environment: report.environment.as_str(),
            auto_merge: false,
            required_contexts: [],
            description: wire::description(&report.title),
            payload: wire::DeploymentPayload {
                release_id: report.release_id,
                release: &report.release_name,
            },
        };
        let target = uri(format!("/repos/{path}/deployments"))?;
        let answer = self.call(repo, Method::POST, target, Some(&body)).await?;
        // 202: GitHub accepted the request but made no deployment (it
        // answers so for a merge it performed or could not perform). Asking
        // again would get the same answer.
        if answer.status == http::StatusCode::ACCEPTED {
            let message = serde_json::from_str::<wire::Message>(&answer.body)
                .map_or_else(|_| "no message".to_owned(), |m| m.message);
            return Err(ScmError::permanent(
                Some(answer.status.as_u16()),
                format!("GitHub answered 202 and created no deployment: {message}"),
            ));
        }
        let created: models::repos::Deployment = parse(&answer, "deployment")?;
        let id = created.id.into_inner();
        tracing::debug!(deployment.id = id, "created a deployment");
        Ok(id)
    }
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("api_url", &self.api_url)
            .field("app_id", &self.app.app_id())
            .finish_non_exhaustive()
    }
}

/// Webhook payloads name the installation; see
/// [`GithubClient::remember_installation`].
impl InstallationHints for GithubClient {
    fn remember(&self, repo: &RepoSlug, installation_id: u64) {
        self.remember_installation(repo, installation_id);
    }
}

#[async_trait]
impl ScmClient for GithubClient {
    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %sha))]
    async fn post_status(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), ScmError> {
        let path = github_path(repo)?;
        let body = wire::NewStatus {
            state: wire::status_state(status.state),
            target_url: status.target_url.as_deref(),
            description: wire::description(&status.description),
            context: &status.context,
        };
        let target = uri(format!("/repos/{path}/statuses/{sha}"))?;
        let answer = self.call(repo, Method::POST, target, Some(&body)).await?;
        let _: models::Status = parse(&answer, "commit status")?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %check.head_sha))]
    async fn create_check_run(&self, repo: &RepoSlug, check: &CheckRun) -> Result<(), ScmError> {
        let path = github_path(repo)?;
        let summary = truncate_comment(&check.summary, wire::MAX_SUMMARY_CHARS);
        let output = |batch| wire::Output::new(&check.title, &summary, batch);
        let mut batches = check.annotations.chunks(wire::ANNOTATIONS_PER_REQUEST);
        let completed_at = chrono::DateTime::from_timestamp(self.clock.now_unix(), 0)
            .ok_or_else(|| ScmError::permanent(None, "the clock is out of range"))?
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = wire::NewCheckRun {
            name: &check.name,
            head_sha: check.head_sha.as_str(),
            status: "completed",
            conclusion: wire::conclusion(check.conclusion),
            completed_at,
            details_url: check.details_url.as_deref(),
            external_id: check.external_id.as_deref(),
            output: output(batches.next().unwrap_or_default()),
        };
        let target = uri(format!("/repos/{path}/check-runs"))?;
        let answer = self.call(repo, Method::POST, target, Some(&body)).await?;
        let created: models::checks::CheckRun = parse(&answer, "check run")?;
        // GitHub takes 50 annotations per request; the rest are appended.
        for batch in batches {
            let target = uri(format!("/repos/{path}/check-runs/{}", created.id))?;
            let update = wire::CheckRunUpdate {
                output: output(batch),
            };
            let answer = self
                .call(repo, Method::PATCH, target, Some(&update))
                .await?;
            let _: models::checks::CheckRun = parse(&answer, "check run update")?;
        }
        tracing::debug!(check_run.id = %created.id, annotations = check.annotations.len(), "created a check run");
        Ok(())
    }

    /// `GET /repos/{repo}/commits/{sha}/statuses` (the newest 100): one of
    /// this context is this status, the newest or one posted before another
    /// job's since.
    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %sha))]
    async fn status_is_current(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<bool, ScmError> {
        let path = github_path(repo)?;
        let target = uri(format!("/repos/{path}/commits/{sha}/statuses?per_page=100"))?;
        let answer = self.call(repo, Method::GET, target, None::<&()>).await?;
        let listed: Vec<wire::ListedStatus> = parse(&answer, "commit statuses")?;
        let description = wire::description(&status.description);
        Ok(listed.iter().any(|s| {
            s.context.as_deref() == Some(status.context.as_str())
                && s.state == wire::status_state(status.state)
                && s.description.as_deref().unwrap_or_default() == description
                && s.target_url.as_deref() == status.target_url.as_deref()
        }))
    }

    /// `GET /repos/{repo}/commits/{sha}/check-runs?check_name=…`: this one
    /// is there already: same name and external id, or, for a check run
    /// without one, another without one of the same title and summary (not
    /// merely any of the name: another image of the same commit has one).
    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %check.head_sha))]
    async fn check_run_exists(&self, repo: &RepoSlug, check: &CheckRun) -> Result<bool, ScmError> {
        let path = github_path(repo)?;
        let name: String = form_urlencoded::byte_serialize(check.name.as_bytes()).collect();
        let target = uri(format!(
            "/repos/{path}/commits/{}/check-runs?check_name={name}&filter=all&per_page=100",
            check.head_sha
        ))?;
        let answer = self.call(repo, Method::GET, target, None::<&()>).await?;
        let listed: wire::ListedCheckRuns = parse(&answer, "check runs")?;
        let unset = |id: Option<&str>| id.is_none_or(str::is_empty);
        let summary = truncate_comment(&check.summary, wire::MAX_SUMMARY_CHARS);
        Ok(listed.check_runs.iter().any(|run| {
            let same = if unset(check.external_id.as_deref()) {
                unset(run.external_id.as_deref())
                    && run.output.title.as_deref() == Some(check.title.as_str())
                    && run.output.summary.as_deref() == Some(summary.as_str())
            } else {
                run.external_id == check.external_id
            };
            same && run.name == check.name
                && run.head_sha.eq_ignore_ascii_case(check.head_sha.as_str())
        }))
    }

    #[tracing::instrument(skip_all, fields(repo.slug = %repo, commit.sha = %sha))]
    async fn open_pull_requests(
        &self,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<Vec<u64>, ScmError> {
        let path = github_path(repo)?;
        let target = uri(format!("/repos/{path}/commits/{sha}/pulls?per_page=100"))?;
        let answer = self.call(repo, Method::GET, target, None::<&()>).await?;
        let pulls: Vec<models::pulls::PullRequest> = parse(&answer, "pull requests")?;
        Ok(pulls
            .into_iter()
            .filter(|pr| {
                pr.state == Some(IssueState::Open) && pr.head.sha.eq_ignore_ascii_case(sha.as_str())
            })
            .map(|pr| pr.number)
            .collect())
    }

    #[tracing::instrument(skip_all, fields(repo.slug = %repo, pull.number = number))]
    async fn upsert_comment(
        &self,
        repo: &RepoSlug,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentAction, ScmError> {
        let path = github_path(repo)?;
        let text = sticky_body(body, marker, MAX_COMMENT_CHARS);
        let mut marked = self.marked_comments(repo, number, marker).await?;
        marked.sort_unstable_by_key(|(id, _)| *id);
        let mut marked = marked.into_iter();

        let Some((keep, current)) = marked.next() else {
            let target = uri(format!("/repos/{path}/issues/{number}/comments"))?;
            let body = wire::CommentBody { body: &text };
            let answer = self.call(repo, Method::POST, target, Some(&body)).await?;
            let created: models::issues::Comment = parse(&answer, "new comment")?;
            tracing::debug!(comment.id = %created.id, "created the sticky comment");
            return Ok(CommentAction::Created);
        };

        let action = if same_text(&current, &text) {
            CommentAction::Unchanged
        } else {
            let target = uri(format!("/repos/{path}/issues/comments/{keep}"))?;
            let body = wire::CommentBody { body: &text };
            let answer = self.call(repo, Method::PATCH, target, Some(&body)).await?;
            let _: models::issues::Comment = parse(&answer, "edited comment")?;
            tracing::debug!(comment.id = keep, "edited the sticky comment");
            CommentAction::Updated
        };

        // A race (two replicas, a redelivery) left copies: keep the oldest.
        for (duplicate, _) in marked {
            let target = uri(format!("/repos/{path}/issues/comments/{duplicate}"))?;
            match self.call(repo, Method::DELETE, target, None::<&()>).await {
                // Someone else deleted it first: the goal is reached.
                Ok(_)
                | Err(ScmError::Permanent {
                    status: Some(404), ..
                }) => {
                    tracing::info!(
                        comment.id = duplicate,
                        kept = keep,
                        "deleted a duplicate sticky comment"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(action)
    }

    /// The deployment is created once per release and environment (the
    /// first report, or a retry of one that failed before GitHub made it);
    /// every report adds one status to it.
    #[tracing::instrument(
        skip_all,
        fields(repo.slug = %repo, commit.sha = %deployment.sha, deployment.environment = %deployment.environment)
    )]
    async fn report_deployment(
        &self,
        repo: &RepoSlug,
        deployment: &DeploymentReport,
    ) -> Result<Option<u64>, DeploymentError> {
        let path = github_path(repo)?;
        let id = match deployment.deployment_id {
            Some(id) => id,
            None => self.create_deployment(repo, deployment).await?,
        };
        let body = wire::NewDeploymentStatus {
            state: wire::deployment_state(deployment.state),
            environment_url: deployment.url.as_ref().map(|u| u.as_str()),
            log_url: deployment.log_url.as_ref().map(|u| u.as_str()),
            description: wire::description(&deployment.description),
        };
        let posted = async {
            let target = uri(format!("/repos/{path}/deployments/{id}/statuses"))?;
            let answer = self.call(repo, Method::POST, target, Some(&body)).await?;
            let _: models::repos::DeploymentStatus = parse(&answer, "deployment status")?;
            Ok::<_, ScmError>(())
        };
        posted.await.map_err(|error| DeploymentError {
            error,
            deployment_id: Some(id),
        })?;
        tracing::debug!(
            deployment.id = id,
            state = deployment.state.as_str(),
            "posted a deployment status"
        );
        Ok(Some(id))
    }
}

/// `owner/repo` of a GitHub repository; another provider's is a
/// configuration mistake no retry fixes.
fn github_path(repo: &RepoSlug) -> Result<&str, ScmError> {
    match repo.provider() {
        Provider::Github => Ok(repo.path()),
        other => Err(ScmError::permanent(
            None,
            format!("{repo} is a {other} repository, not a GitHub one"),
        )),
    }
}

fn uri(path: String) -> Result<Uri, ScmError> {
    path.parse()
        .map_err(|_| ScmError::permanent(None, "could not form a GitHub API path"))
}

/// Reads a JSON answer into its model; a mismatch is a bug, not bad luck.
fn parse<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, ScmError> {
    serde_json::from_str(&answer.body).map_err(|e| {
        ScmError::permanent(
            None,
            format!("GitHub's answer ({what}) did not have the expected shape: {e}"),
        )
    })
}

/// GitHub may hand a body back with `\r\n` line ends; that is no change.
fn same_text(a: &str, b: &str) -> bool {
    a == b || a.replace("\r\n", "\n") == b.replace("\r\n", "\n")
}
