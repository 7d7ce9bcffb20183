//! What portcall does about each event: the [`EventHandler`] behind the
//! inbox. Everything here writes to the database only; provider calls and
//! registry reads are enqueued as jobs for the dispatcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use super::dispatcher::Outbox;
use super::handler::{DeliveryContext, EventHandler, HandlerError, Outcome};
use super::jobs::{Job, Published, CHECK_NAME};
use crate::domain::{
    CheckRunRerequested, CommitSha, Event, ImagePushed, Provider, PullRequest, PullRequestAction,
    Repo,
};
use crate::scm::InstallationHints;
use crate::store::installations;
use crate::store::jobs::{self, NewJob};
use crate::store::releases::{self, ImagePush, NewImagePush};
use crate::store::{now_ms, StoreError};

/// Acts on events: records image pushes and enqueues their resolution,
/// comments on pull requests whose head already has an image, re-posts
/// checks on request.
pub struct Reactor {
    outbox: Arc<Outbox>,
    hints: Option<Arc<dyn InstallationHints>>,
    /// Wakes this process's dispatcher when jobs are enqueued.
    wake_dispatcher: Arc<Notify>,
    /// Installations written lately, by repository: nearly every GitHub
    /// delivery names its installation, and writing the same one again for
    /// each would put a transaction per delivery on the one SQLite writer.
    remembered: Mutex<HashMap<String, (u64, Instant)>>,
}

/// How long a written installation is taken as stored. Another replica
/// may record a newer one meanwhile; the next write after this long puts
/// back what this replica's deliveries say.
const REMEMBER_AGAIN_AFTER: Duration = Duration::from_secs(60);

impl Reactor {
    pub fn new(
        outbox: Arc<Outbox>,
        hints: Option<Arc<dyn InstallationHints>>,
        wake_dispatcher: Arc<Notify>,
    ) -> Self {
        Self {
            outbox,
            hints,
            wake_dispatcher,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    async fn react(
        &self,
        delivery: DeliveryContext<'_>,
        event: &Event,
    ) -> Result<Outcome, StoreError> {
        if let Some(repo) = event_repo(event) {
            self.remember_installation(repo).await?;
        }
        match event {
            Event::ImagePushed(image) => self.image_pushed(delivery, image).await,
            Event::PullRequest(pr) => self.pull_request(delivery, pr).await,
            Event::CheckRunRerequested(check) => self.check_rerequested(delivery, check).await,
            Event::Unknown { what } => Ok(Outcome::Ignored(format!("{what}: not acted on"))),
            other => Ok(Outcome::Processed(format!("recorded {other}"))),
        }
    }

    async fn remember_installation(&self, repo: &Repo) -> Result<(), StoreError> {
        let (Some(id), Provider::Github) = (repo.installation_id, repo.slug.provider()) else {
            return Ok(());
        };
        let fresh =
            |(known, at): &(u64, Instant)| *known == id && at.elapsed() < REMEMBER_AGAIN_AFTER;
        if self.remembered().get(repo.slug.path()).is_some_and(fresh) {
            return Ok(());
        }
        installations::remember_installation(
            &self.outbox.db,
            repo.slug.path(),
            i64::try_from(id).unwrap_or(i64::MAX),
            now_ms(),
        )
        .await?;
        self.remembered()
            .insert(repo.slug.path().to_owned(), (id, Instant::now()));
        if let Some(hints) = &self.hints {
            hints.remember(&repo.slug, id);
        }
        Ok(())
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        // A panic while holding the lock left a map that is still valid.
        self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn image_pushed(
        &self,
        delivery: DeliveryContext<'_>,
        image: &ImagePushed,
    ) -> Result<Outcome, StoreError> {
        let reference = match (&image.tag, &image.digest) {
            (Some(tag), Some(digest)) => format!("{}:{tag} {digest}", image.image),
            (Some(tag), None) => format!("{}:{tag}", image.image),
            (None, Some(digest)) => format!("{}@{digest}", image.image),
            (None, None) => image.image.to_string(),
        };
        if image.tag.is_none() && image.digest.is_none() {
            return Ok(Outcome::Ignored(format!(
                "image {reference}: neither a tag nor a digest was pushed"
            )));
        }
        let Some(component) = self.outbox.components.for_image(&image.image) else {
            return Ok(Outcome::Ignored(format!(
                "image {reference} matches no component"
            )));
        };
        let resolve = Job::ResolveImage {
            delivery_row: delivery.id,
        }
        .into_new(format!("resolve:{}", delivery.id), None, None)
        .caused_by(delivery.id);
        releases::record_push(
            &self.outbox.db,
            &NewImagePush {
                delivery_row: delivery.id,
                source: delivery.source,
                component: &component.name,
                image: image.image.to_string(),
                tag: image.tag.as_ref().map(|t| t.as_str()),
                digest: image.digest.as_ref().map(|d| d.as_str()),
                pushed_at: now_ms(),
            },
            &resolve,
        )
        .await?;
        self.wake_dispatcher.notify_one();
        Ok(Outcome::Processed(format!(
            "image {reference} recorded for component {}; resolving its source commit",
            component.name
        )))
    }

    /// A pull request opened, reopened or updated whose head already has
    /// images gets each component's sticky comment.
    async fn pull_request(
        &self,
        delivery: DeliveryContext<'_>,
        pr: &PullRequest,
    ) -> Result<Outcome, StoreError> {
        if matches!(pr.action, PullRequestAction::Closed { .. }) {
            return Ok(Outcome::Ignored(format!(
                "pull request {}#{} closed",
                pr.repo.slug, pr.number
            )));
        }
        let pushes = self.pushes_of(&pr.repo, &pr.head_sha).await?;
        if pushes.is_empty() {
            return Ok(Outcome::Processed(format!(
                "pull request {}#{}: no image built from {} yet",
                pr.repo.slug, pr.number, pr.head_sha
            )));
        }
        let mut new_jobs = Vec::new();
        for push in &pushes {
            let release = self.release_of(push).await?;
            let published = self.describe(push, &pr.head_sha, release.as_ref());
            let skip = self
                .outbox
                .skip_reason(Some(&push.component), &pr.repo.slug);
            new_jobs.push(
                Job::PrComment {
                    repo: pr.repo.slug.clone(),
                    sha: pr.head_sha.clone(),
                    component: push.component.clone(),
                    pull_request: Some(pr.number),
                    body: published.comment(),
                }
                .into_new(
                    format!(
                        "comment:{}#{}:{}:push:{}",
                        pr.repo.slug, pr.number, push.component, push.id
                    ),
                    None,
                    skip,
                )
                .caused_by(delivery.id),
            );
        }
        self.enqueue(&new_jobs).await?;
        Ok(Outcome::Processed(format!(
            "pull request {}#{}: {} comment(s) queued",
            pr.repo.slug,
            pr.number,
            new_jobs.len()
        )))
    }

    /// "Re-run" on portcall's check (or the whole suite) posts it again.
    async fn check_rerequested(
        &self,
        delivery: DeliveryContext<'_>,
        check: &CheckRunRerequested,
    ) -> Result<Outcome, StoreError> {
        if !check.name.is_empty() && check.name != CHECK_NAME {
            return Ok(Outcome::Ignored(format!(
                "check run {:?} is not portcall's",
                check.name
            )));
        }
        let pushes = self.pushes_of(&check.repo, &check.head_sha).await?;
        let mut new_jobs = Vec::new();
        for push in &pushes {
            let release = self.release_of(push).await?;
            let published = self.describe(push, &check.head_sha, release.as_ref());
            let skip = self
                .outbox
                .skip_reason(Some(&push.component), &check.repo.slug);
            new_jobs.push(
                Job::CheckRun {
                    repo: check.repo.slug.clone(),
                    check: published.check_run(),
                }
                .into_new(
                    format!("check:rerequested:{}:{}", delivery.id, push.component),
                    None,
                    skip,
                )
                .caused_by(delivery.id),
            );
        }
        if new_jobs.is_empty() {
            return Ok(Outcome::Ignored(format!(
                "no image built from {} to report",
                check.head_sha
            )));
        }
        self.enqueue(&new_jobs).await?;
        Ok(Outcome::Processed(format!(
            "check run re-posted for {} component(s) on {}",
            new_jobs.len(),
            check.head_sha
        )))
    }

    /// The newest push of each of the repository's components whose source
    /// commit is `sha`.
    async fn pushes_of(&self, repo: &Repo, sha: &CommitSha) -> Result<Vec<ImagePush>, StoreError> {
        let components: Vec<&str> = self
            .outbox
            .components
            .of_repository(&repo.slug)
            .map(|c| c.name.as_str())
            .collect();
        releases::latest_pushes_for_commit(&self.outbox.db, sha.as_str(), &components).await
    }

    /// The release `push` made, as `(id, name)`.
    async fn release_of(&self, push: &ImagePush) -> Result<Option<(i64, String)>, StoreError> {
        let (Some(tag), Some(digest)) = (&push.tag, &push.digest) else {
            return Ok(None);
        };
        let release = releases::find(&self.outbox.db, &push.component, digest, tag).await?;
        Ok(release.map(|r| (r.id, r.name)))
    }

    /// How `push` is described on `sha`.
    fn describe<'a>(
        &'a self,
        push: &'a ImagePush,
        sha: &'a CommitSha,
        release: Option<&'a (i64, String)>,
    ) -> Published<'a> {
        Published {
            component: &push.component,
            image: &push.image,
            tag: push.tag.as_deref(),
            // Pushes with a source commit were resolved, digest included.
            digest: push.digest.as_deref().unwrap_or_default(),
            commit: sha,
            release: release.map(|(id, name)| (*id, name.as_str())),
            public_url: self.outbox.public_url.as_deref(),
        }
    }

    async fn enqueue(&self, new_jobs: &[NewJob]) -> Result<(), StoreError> {
        if new_jobs.is_empty() {
            return Ok(());
        }
        jobs::enqueue(&self.outbox.db, new_jobs, now_ms()).await?;
        self.wake_dispatcher.notify_one();
        Ok(())
    }
}

fn event_repo(event: &Event) -> Option<&Repo> {
    match event {
        Event::Push(p) => Some(&p.repo),
        Event::TagPush(t) => Some(&t.repo),
        Event::PullRequest(pr) => Some(&pr.repo),
        Event::CheckRunRerequested(c) => Some(&c.repo),
        _ => None,
    }
}

impl EventHandler for Reactor {
    fn handle<'a>(
        &'a self,
        delivery: DeliveryContext<'a>,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(async move {
            self.react(delivery, event)
                .await
                .map_err(|error| HandlerError::Transient(anyhow::Error::new(error)))
        })
    }
}
