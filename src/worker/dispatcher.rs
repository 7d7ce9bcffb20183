//! The outbox dispatcher: claims due jobs under a lease, runs them with
//! bounded concurrency (in all, and per GitHub installation or GitLab
//! project), and records each outcome: done, retry at backoff (transient),
//! dead (permanent, or too many attempts) or skipped (no provider).
//!
//! Like the inbox, nothing is lost if the process dies: a claimed job that
//! is never finished is claimed again once its lease expires, and every job
//! is idempotent (statuses are compared with what was last posted, a retry
//! looks for what an earlier attempt may have posted, comments are found
//! again by their marker and upserted one job at a time per pull request,
//! releases and follow-up jobs are unique, a GitHub deployment's id is
//! stored as soon as it exists). A job in hand keeps its lease however long
//! it waits (see [`super::leases`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::backoff;
use super::jobs::{Job, Published};
use super::leases::Leases;
use crate::config::DispatcherSettings;
use crate::domain::release::{release_name, source_commit};
use crate::domain::{CommitSha, Components, Provider, RepoSlug, Tag};
use crate::registry::{RegistryError, RegistryReader};
use crate::scm::{DeploymentError, DeploymentReport, Providers, ScmClient, ScmError};
use crate::store::jobs::{self, ClaimedJob, JobFinish, NewJob};
use crate::store::releases::{self, NewRelease, Resolution};
use crate::store::statuses;
use crate::store::{builds, deployments};
use crate::store::{now_ms, Db, StoreError};
use crate::telemetry::Metrics;

/// What jobs need to run: the database, the providers, the registries and
/// the rules.
pub struct Outbox {
    pub db: Db,
    pub providers: Providers,
    /// Registry readers by `[[sources]]` name (sources with an `api_url`).
    pub registries: HashMap<String, Arc<RegistryReader>>,
    pub components: Components,
    /// `server.public_url`, for links.
    pub public_url: Option<String>,
    pub metrics: Metrics,
    /// Wakes this process's dispatcher when jobs are enqueued.
    pub wake: Arc<Notify>,
}

impl Outbox {
    /// Why effects on `repo` for `component` are not posted, if they are
    /// not: the component is offline, or its provider is not configured.
    /// They are then recorded as `skipped`, payload kept.
    pub fn skip_reason(&self, component: Option<&str>, repo: &RepoSlug) -> Option<String> {
        if let Some(component) = component.and_then(|c| self.components.get(c)) {
            if component.offline {
                return Some(format!("component {} is offline", component.name));
            }
        }
        self.providers
            .for_repo(repo)
            .is_none()
            .then(|| format!("no [{}] provider is configured", repo.provider()))
    }
}

/// How one attempt at a job ended, and what it enqueues next.
struct Execution {
    finish: JobFinish,
    follow_ups: Vec<NewJob>,
}

/// Why an attempt failed.
enum Failure {
    /// Try again later, not before `not_before` if given.
    Transient {
        error: String,
        not_before: Option<Duration>,
    },
    Permanent(String),
}

impl From<ScmError> for Failure {
    fn from(error: ScmError) -> Self {
        match error {
            ScmError::Transient {
                message,
                retry_after,
            } => Failure::Transient {
                error: message,
                not_before: retry_after,
            },
            ScmError::Permanent { message, .. } => Failure::Permanent(message),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Transient {
            error: format!("database: {error}"),
            not_before: None,
        }
    }
}

/// Runs the outbox. One per process; several processes share the work
/// through leases.
pub struct Dispatcher {
    outbox: Arc<Outbox>,
    settings: DispatcherSettings,
    owner: Arc<str>,
    wake: Arc<Notify>,
    all: Arc<Semaphore>,
    /// One semaphore per installation or project, created on first use.
    per_target: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    /// The jobs claimed and not yet recorded, their leases renewed.
    leases: Arc<Leases>,
}

impl Dispatcher {
    pub fn new(outbox: Arc<Outbox>, settings: DispatcherSettings, wake: Arc<Notify>) -> Self {
        Self {
            all: Arc::new(Semaphore::new(settings.concurrency)),
            outbox,
            settings,
            owner: format!("dispatcher-{}", uuid::Uuid::new_v4()).into(),
            wake,
            per_target: Arc::default(),
            leases: Arc::default(),
        }
    }

    /// Runs until `shutdown`; jobs in hand are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(dispatcher.owner = %self.owner, "outbox dispatcher started");
        let renewing = CancellationToken::new();
        let renewal = tokio::spawn(self.renew_leases(renewing.clone()));
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = self.all.available_permits();
            let claimed = if free == 0 {
                0
            } else {
                match self.claim(free).await {
                    Ok(jobs) => {
                        let count = jobs.len();
                        for job in jobs {
                            let permit = self
                                .all
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("the semaphore is never closed");
                            running.spawn(self.run_job(job, permit));
                        }
                        count
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "dispatcher could not claim jobs; will retry");
                        0
                    }
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            if claimed == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
            }
        }
        while running.join_next().await.is_some() {}
        renewing.cancel();
        let _ = renewal.await;
        tracing::info!(dispatcher.owner = %self.owner, "outbox dispatcher stopped");
    }

    /// Every third of a lease, extends the leases of the jobs in hand; a
    /// job whose lease was lost gives up before posting.
    fn renew_leases(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let db = self.outbox.db.clone();
        let owner = self.owner.clone();
        let leases = self.leases.clone();
        let lease = self.settings.lease;
        async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(lease / 3) => {}
                }
                let ids = leases.ids();
                if ids.is_empty() {
                    continue;
                }
                let until = now_ms() + duration_ms(lease);
                match jobs::extend_leases(&db, &owner, &ids, until).await {
                    Ok(kept) => {
                        let lost = leases.renewed(&ids, &kept, until);
                        if lost > 0 {
                            tracing::warn!(
                                lost,
                                "leases expired before they were renewed; those jobs are left to whoever claimed them"
                            );
                        }
                    }
                    // The next round tries again; a lease that runs out
                    // meanwhile is lost, and its job gives up before posting.
                    Err(error) => {
                        tracing::warn!(error = %error, held = ids.len(), "could not renew leases")
                    }
                }
            }
        }
    }

    async fn claim(&self, free: usize) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = now_ms();
        let limit = u32::try_from(free)
            .unwrap_or(u32::MAX)
            .min(self.settings.batch_size);
        let until = now + duration_ms(self.settings.lease);
        let claimed = jobs::claim(&self.outbox.db, &self.owner, now, until, limit).await?;
        for job in &claimed {
            self.leases.hold(job.id, until);
        }
        Ok(claimed)
    }

    /// Claims and runs every due job, waiting for each; for tests that
    /// drain the queue deterministically. Returns how many ran.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let jobs = self.claim(self.settings.batch_size as usize).await?;
        let count = jobs.len();
        for job in jobs {
            let permit = self
                .all
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            self.run_job(job, permit).await;
        }
        Ok(count)
    }

    fn run_job(
        &self,
        job: ClaimedJob,
        permit: OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let outbox = self.outbox.clone();
        let owner = self.owner.clone();
        let settings = self.settings.clone();
        let per_target = self.per_target.clone();
        let leases = self.leases.clone();
        let provider = job_provider(&job);
        // `integration` and `provider` name what the job talks to; `commit`
        // and `pr` are recorded once the payload is read (in `execute`).
        let span = tracing::info_span!(
            "job",
            job.id = job.id,
            job.kind = %job.kind,
            operation = %job.kind,
            provider,
            integration = %job_integration(provider),
            repo.slug = job.repository.as_deref().unwrap_or(""),
            release.id = job.release_id,
            commit = tracing::field::Empty,
            pr = tracing::field::Empty,
        );
        async move {
            let _permit = permit;
            let Some(execution) = execute(&outbox, &settings, &per_target, &leases, &job).await
            else {
                leases.release(job.id);
                tracing::warn!(
                    "the lease ran out while the job waited; left to whoever claims it next"
                );
                return;
            };
            let outcome = match &execution.finish {
                JobFinish::Done { .. } => "done",
                JobFinish::Skipped { .. } => "skipped",
                JobFinish::Dead { .. } => "dead",
                JobFinish::RetryAt { .. } => "retry",
            };
            match &execution.finish {
                JobFinish::Done { result } => {
                    tracing::info!(result = %result, "job done")
                }
                JobFinish::Skipped { reason } => {
                    tracing::info!(reason = %reason, "job skipped")
                }
                JobFinish::Dead { error } => {
                    tracing::warn!(error = %error, "job dead")
                }
                JobFinish::RetryAt {
                    error,
                    next_attempt_ms,
                } => {
                    tracing::warn!(error = %error, retry_in_ms = next_attempt_ms - now_ms(), "job will be retried")
                }
            }
            outbox
                .metrics
                .job_attempts
                .with_label_values(&[provider, &job.kind, outcome])
                .inc();
            match jobs::finish(
                &outbox.db,
                job.id,
                &owner,
                &execution.finish,
                &execution.follow_ups,
                now_ms(),
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "lease was lost before the outcome was recorded; another dispatcher owns the job"
                ),
                // The lease expires and the job runs again; jobs are idempotent.
                Err(error) => {
                    tracing::warn!(error = %error, "could not record the job's outcome")
                }
            }
            leases.release(job.id);
        }
        .instrument(span)
    }
}

/// What a job talks to, for the `provider` label and log field: the
/// repository's provider, or `registry` for reading an image.
fn job_provider(job: &ClaimedJob) -> &'static str {
    match job.repository.as_deref().and_then(|r| r.split_once(':')) {
        Some(("github", _)) => "github",
        Some(("gitlab", _)) => "gitlab",
        _ if job.kind == "resolve_image" => "registry",
        _ => "unknown",
    }
}

/// The integration (as `/api/v1/integrations` names it) a job's provider
/// is: `provider:github`, `provider:gitlab`, or the registries.
fn job_integration(provider: &str) -> String {
    match provider {
        "github" | "gitlab" => format!("provider:{provider}"),
        other => other.to_owned(),
    }
}

/// Records the commit and pull request a job acts on in the current (job)
/// span, so every line logged while it runs carries them.
fn record_targets(job: &Job) {
    let span = tracing::Span::current();
    match job {
        Job::ResolveImage { .. } => {}
        Job::CommitStatus { sha, .. } => {
            span.record("commit", sha.as_str());
        }
        Job::CheckRun { check, .. } => {
            span.record("commit", check.head_sha.as_str());
        }
        Job::PrComment {
            sha, pull_request, ..
        } => {
            span.record("commit", sha.as_str());
            if let Some(number) = pull_request {
                span.record("pr", number);
            }
        }
        Job::Deployment { report, .. } => {
            span.record("commit", report.sha.as_str());
        }
    }
}

/// Runs one attempt and decides what happens next; `None` when the lease
/// ran out before the job's turn came, so it must not post.
async fn execute(
    outbox: &Outbox,
    settings: &DispatcherSettings,
    per_target: &Mutex<HashMap<String, Arc<Semaphore>>>,
    leases: &Leases,
    claimed: &ClaimedJob,
) -> Option<Execution> {
    let attempts = u32::try_from(claimed.attempts).unwrap_or(u32::MAX);
    let job: Job = match serde_json::from_str(&claimed.payload) {
        Ok(job) => job,
        Err(error) => {
            return Some(Execution {
                finish: JobFinish::Dead {
                    error: format!("unreadable job payload: {error}"),
                },
                follow_ups: Vec::new(),
            })
        }
    };
    record_targets(&job);
    let mut follow_ups = Vec::new();
    let result = match &job {
        Job::ResolveImage { delivery_row } => resolve_image(outbox, *delivery_row).await,
        Job::CommitStatus { repo, .. }
        | Job::CheckRun { repo, .. }
        | Job::PrComment { repo, .. }
        | Job::Deployment { repo, .. } => match outbox.providers.for_repo(repo) {
            None => {
                return Some(Execution {
                    finish: JobFinish::Skipped {
                        reason: format!("no [{}] provider is configured", repo.provider()),
                    },
                    follow_ups,
                })
            }
            Some(client) => {
                let limit = target_semaphore(per_target, repo, settings.per_installation);
                let _permit = limit.acquire_owned().await.expect("never closed");
                if !leases.holds(claimed.id, now_ms()) {
                    return None;
                }
                post(outbox, client.as_ref(), claimed, &job, &mut follow_ups).await
            }
        },
    };
    let finish = match result {
        Ok(result) => JobFinish::Done { result },
        Err(Failure::Permanent(error)) => JobFinish::Dead { error },
        Err(Failure::Transient { error, .. }) if attempts >= settings.max_attempts => {
            JobFinish::Dead {
                error: format!("gave up after {attempts} attempts: {error}"),
            }
        }
        Err(Failure::Transient { error, not_before }) => {
            let delay =
                backoff::delay_between(attempts, settings.backoff_base, settings.backoff_max)
                    .max(not_before.unwrap_or_default());
            JobFinish::RetryAt {
                next_attempt_ms: now_ms() + duration_ms(delay),
                error,
            }
        }
    };
    Some(Execution { finish, follow_ups })
}

/// The concurrency limit for the GitHub account (an App installation
/// belongs to one) or GitLab project a job acts on.
fn target_semaphore(
    per_target: &Mutex<HashMap<String, Arc<Semaphore>>>,
    repo: &RepoSlug,
    limit: usize,
) -> Arc<Semaphore> {
    let key = match repo.provider() {
        Provider::Github => format!(
            "github:{}",
            repo.path().split('/').next().unwrap_or(repo.path())
        ),
        Provider::Gitlab => repo.to_string(),
    };
    per_target
        .lock()
        .expect("the map is never poisoned: no code panics while holding it")
        .entry(key)
        .or_insert_with(|| Arc::new(Semaphore::new(limit)))
        .clone()
}

/// One provider call (or a few: a lookup first, a check run's
/// annotations). When `claimed` was attempted before, that attempt may
/// have reached the provider before it failed or its process died.
async fn post(
    outbox: &Outbox,
    client: &dyn ScmClient,
    claimed: &ClaimedJob,
    job: &Job,
    follow_ups: &mut Vec<NewJob>,
) -> Result<String, Failure> {
    let retried = claimed.attempts > 1;
    match job {
        Job::CommitStatus { repo, sha, status } => {
            let key = repo.to_string();
            let last =
                statuses::posted_status(&outbox.db, &key, sha.as_str(), &status.context).await?;
            let same = last.is_some_and(|(state, description, url)| {
                state == status.state.as_str()
                    && description == status.description
                    && url == status.target_url
            });
            if same {
                return Ok(format!(
                    "status {} already {} on {sha}",
                    status.context,
                    status.state.as_str()
                ));
            }
            // An earlier attempt may have posted it and died before
            // recording it: then it is recorded now, not posted twice.
            let posted_before = retried && client.status_is_current(repo, sha, status).await?;
            if !posted_before {
                client.post_status(repo, sha, status).await?;
            }
            let posted = statuses::PostedStatus {
                repository: &key,
                sha: sha.as_str(),
                context: &status.context,
                state: status.state.as_str(),
                description: &status.description,
                target_url: status.target_url.as_deref(),
            };
            statuses::record_posted_status(&outbox.db, &posted, now_ms()).await?;
            Ok(format!(
                "status {} {} on {sha}{}",
                status.context,
                status.state.as_str(),
                if posted_before {
                    " (an earlier attempt posted it)"
                } else {
                    ""
                }
            ))
        }
        Job::CheckRun { repo, check } => {
            // After an attempt that may have made it, or some of it (GitLab's
            // emulation takes several calls), what is there is not made again.
            if !retried {
                client.create_check_run(repo, check).await?;
            } else if !client.create_check_run_again(repo, check).await? {
                return Ok(format!(
                    "check run {:?} already on {} (an earlier attempt created it)",
                    check.name, check.head_sha
                ));
            }
            Ok(format!("check run {:?} on {}", check.name, check.head_sha))
        }
        Job::PrComment {
            repo,
            sha,
            component,
            pull_request: None,
            body,
        } => {
            let numbers = client.open_pull_requests(repo, sha).await?;
            if numbers.is_empty() {
                return Ok(format!("no open pull request has head {sha}"));
            }
            // One job per pull request, run in turn with every other upsert
            // of that comment: two replicas (or two jobs in one) upserting
            // it at once would both find none and both create one.
            for number in &numbers {
                follow_ups.push(
                    Job::PrComment {
                        repo: repo.clone(),
                        sha: sha.clone(),
                        component: component.clone(),
                        pull_request: Some(*number),
                        body: body.clone(),
                    }
                    .into_new(
                        format!("comment:{repo}#{number}:{component}:job:{}", claimed.id),
                        claimed.release_id,
                        None,
                    ),
                );
            }
            let numbers: Vec<String> = numbers.iter().map(|n| format!("#{n}")).collect();
            Ok(format!("comment queued for {}", numbers.join(", ")))
        }
        Job::PrComment {
            component,
            pull_request: Some(number),
            body,
            repo,
            ..
        } => {
            let marker = crate::scm::comment_marker(component);
            let action = client.upsert_comment(repo, *number, &marker, body).await?;
            Ok(format!("comment {action:?} on #{number}").to_lowercase())
        }
        Job::Deployment {
            repo,
            release_id,
            report_id,
            report,
        } => post_deployment(outbox, client, repo, *release_id, *report_id, report).await,
        Job::ResolveImage { .. } => Err(Failure::Permanent(
            "a registry job was sent to a provider".to_owned(),
        )),
    }
}

/// Posts one deployment report, to the provider deployment an earlier
/// report of the release and environment created if there is one. A
/// deployment the provider creates is stored at once, even when the status
/// after it failed, so the retry (or the next report) adds to it instead
/// of creating another.
async fn post_deployment(
    outbox: &Outbox,
    client: &dyn ScmClient,
    repo: &RepoSlug,
    release_id: i64,
    report_id: i64,
    report: &DeploymentReport,
) -> Result<String, Failure> {
    let known =
        deployments::provider_deployment(&outbox.db, release_id, report.environment.as_str())
            .await?
            .and_then(|id| u64::try_from(id).ok());
    let report = DeploymentReport {
        deployment_id: known,
        ..report.clone()
    };
    let (reached, result) = match client.report_deployment(repo, &report).await {
        Ok(id) => (id, Ok(())),
        Err(DeploymentError {
            error,
            deployment_id,
        }) => (deployment_id, Err(error)),
    };
    if let Some(id) = reached.and_then(|id| i64::try_from(id).ok()) {
        deployments::set_provider_deployment(&outbox.db, report_id, id).await?;
    }
    result?;
    let target = match reached {
        Some(id) if known.is_none() => format!("new deployment {id}"),
        Some(id) => format!("deployment {id}"),
        None => format!(
            "status {}",
            crate::scm::deployment_context(&report.environment)
        ),
    };
    Ok(format!(
        "{} in {} on {target}",
        report.state.as_str(),
        report.environment
    ))
}

/// Finds a pushed image's source commit, creates its release when a
/// release tag matches, and enqueues the status, check run and comment.
async fn resolve_image(outbox: &Outbox, delivery_row: i64) -> Result<String, Failure> {
    let Some(push) = releases::push_of_delivery(&outbox.db, delivery_row).await? else {
        return Err(Failure::Permanent(format!(
            "no image push recorded for delivery row {delivery_row}"
        )));
    };
    let Some(component) = outbox.components.get(&push.component) else {
        return Ok(format!(
            "component {} is no longer configured; nothing to do",
            push.component
        ));
    };
    let tag = push.tag.as_deref().and_then(|t| Tag::parse(t).ok());
    let reader = outbox.registries.get(&push.source);
    let repository = push
        .image
        .split_once('/')
        .map_or(push.image.as_str(), |(_, r)| r);
    let digest = match push.digest.as_deref() {
        Some(digest) => crate::domain::Digest::parse(digest)
            .map_err(|e| Failure::Permanent(format!("stored digest: {e}")))?,
        None => {
            let digest =
                resolve_tag(reader.map(|r| r.as_ref()), &push, repository, tag.as_ref()).await?;
            releases::set_push_digest(&outbox.db, push.id, digest.as_str()).await?;
            digest
        }
    };
    let labels = match reader {
        Some(reader) => {
            match reader.image_source(repository, &digest).await {
                Ok(source) => Some(source),
                Err(RegistryError::Transient(error)) => {
                    return Err(Failure::Transient {
                        error: format!("registry: {error}"),
                        not_before: None,
                    })
                }
                // Without labels the tag may still name the commit.
                Err(RegistryError::Permanent(error)) => {
                    tracing::warn!(error = %error, "cannot read the image's labels");
                    None
                }
            }
        }
        None => None,
    };
    let revision = labels.as_ref().and_then(|l| l.revision.as_deref());
    let source_url = labels.as_ref().and_then(|l| l.source.as_deref());
    let from_build = match builds::commit_for(
        &outbox.db,
        digest.as_str(),
        &push.image,
        push.tag.as_deref(),
    )
    .await?
    {
        Some(sha) => CommitSha::parse(&sha).ok(),
        None => None,
    };
    let commit = source_commit(revision, tag.as_ref(), from_build);

    let name = tag.as_ref().map(|t| release_name(&component.name, t));
    let repository = component.repository.to_string();
    let release = match (&tag, &name) {
        (Some(tag), Some(name)) if component.is_release_tag(tag) => Some(NewRelease {
            name,
            component: &component.name,
            image: &push.image,
            tag: tag.as_str(),
            digest: digest.as_str(),
            repository: &repository,
        }),
        _ => None,
    };
    let resolution = Resolution {
        commit_sha: commit.as_ref().map(|(sha, _)| sha.as_str()),
        commit_origin: commit.as_ref().map(|(_, origin)| origin.as_str()),
        source_url,
        release,
    };
    let skip = outbox.skip_reason(Some(&component.name), &component.repository);
    let make_jobs = |release_id: Option<i64>| -> Vec<NewJob> {
        let Some((sha, _)) = &commit else {
            return Vec::new();
        };
        Published {
            component: &component.name,
            image: &push.image,
            tag: push.tag.as_deref(),
            digest: digest.as_str(),
            commit: sha,
            release: release_id.zip(name.as_deref()),
            public_url: outbox.public_url.as_deref(),
        }
        .jobs(&component.repository, skip.as_deref())
        .into_iter()
        .map(|job| job.caused_by(delivery_row))
        .collect()
    };
    let (release_id, created) =
        releases::resolve_push(&outbox.db, push.id, &resolution, make_jobs, now_ms()).await?;
    if created {
        outbox
            .metrics
            .releases_created
            .with_label_values(&[component.name.as_str()])
            .inc();
    }
    // Its jobs are committed: run them now, not after this job's own finish.
    outbox.wake.notify_one();
    Ok(describe_resolution(
        &push.image,
        push.tag.as_deref(),
        commit.as_ref().map(|(s, o)| (s, o.as_str())),
        release_id,
        name.as_deref(),
    ))
}

/// The digest a push's tag names now, for payloads that named none (Quay,
/// Docker Hub, Nexus): asked of the source's registry with its read
/// credentials. An unreachable registry retries with backoff; an unknown
/// tag, or a source that cannot be asked, ends the job with the reason.
async fn resolve_tag(
    reader: Option<&crate::registry::RegistryReader>,
    push: &releases::ImagePush,
    repository: &str,
    tag: Option<&Tag>,
) -> Result<crate::domain::Digest, Failure> {
    let Some(tag) = tag else {
        return Err(Failure::Permanent(format!(
            "{}: the push names neither a digest nor a tag",
            push.image
        )));
    };
    let Some(reader) = reader else {
        return Err(Failure::Permanent(format!(
            "{}:{tag}: the payload names no digest and source {:?} has no api_url to resolve the tag with",
            push.image, push.source
        )));
    };
    match reader.resolve_tag(repository, tag).await {
        Ok(digest) => Ok(digest),
        Err(RegistryError::Transient(error)) => Err(Failure::Transient {
            error: format!("resolving {}:{tag}: {error}", push.image),
            not_before: None,
        }),
        Err(RegistryError::Permanent(error)) => Err(Failure::Permanent(format!(
            "resolving {}:{tag}: {error}",
            push.image
        ))),
    }
}

fn describe_resolution(
    image: &str,
    tag: Option<&str>,
    commit: Option<(&CommitSha, &str)>,
    release_id: Option<i64>,
    name: Option<&str>,
) -> String {
    let reference = match tag {
        Some(tag) => format!("{image}:{tag}"),
        None => image.to_owned(),
    };
    let commit = match commit {
        Some((sha, origin)) => format!("commit {sha} (from {origin})"),
        None => "no known source commit".to_owned(),
    };
    match (release_id, name) {
        (Some(id), Some(name)) => format!("{reference}: {commit}; release {name} (id {id})"),
        _ => format!("{reference}: {commit}; no release tag matched"),
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
