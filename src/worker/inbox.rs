//! The inbox worker: claims stored deliveries under a lease, parses them
//! into events, hands them to the [`EventHandler`] and records the outcome.
//!
//! Nothing is lost if the process dies: a delivery stays `pending` until its
//! outcome is written, and a claim is only a lease. If the worker dies
//! mid-way the lease expires and any worker (this process after a restart,
//! or another replica) claims the delivery again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::handler::{DeliveryContext, EventHandler, HandlerError, Outcome};
use crate::config::WorkerSettings;
use crate::domain::Event;
use crate::ingest::{self, SourceKind, StoredPayload};
use crate::store::deliveries::{self, Claimed, Finish, Status};
use crate::store::{now_ms, Db, StoreError};
use crate::telemetry::Metrics;

/// Deliveries of one batch processed at once.
const CONCURRENCY: usize = 8;

/// What the worker needs to know about a source to parse its deliveries.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub kind: SourceKind,
    pub registry: Option<String>,
}

/// Processes the inbox. One per process; several processes share the work
/// through leases.
pub struct InboxWorker {
    db: Db,
    sources: HashMap<String, SourceInfo>,
    handler: Arc<dyn EventHandler>,
    settings: WorkerSettings,
    metrics: Metrics,
    /// Identifies this worker's leases; unique per process start.
    owner: String,
    wake: Arc<Notify>,
}

impl InboxWorker {
    pub fn new(
        db: Db,
        sources: HashMap<String, SourceInfo>,
        handler: Arc<dyn EventHandler>,
        settings: WorkerSettings,
        metrics: Metrics,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            sources,
            handler,
            settings,
            metrics,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            wake,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `shutdown` is cancelled. The delivery in hand is finished;
    /// claimed deliveries not yet started are released for others.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker.owner = %self.owner, "inbox worker started");
        loop {
            let idle = match self.run_once(&shutdown).await {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => {
                    tracing::warn!(error = %error, "inbox worker could not claim deliveries; will retry");
                    true
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            if idle {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        }
        tracing::info!(worker.owner = %self.owner, "inbox worker stopped");
    }

    /// Claims one batch and processes it. Returns how many were claimed.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> Result<usize, StoreError> {
        let now = now_ms();
        let lease_until = now + duration_ms(self.settings.lease);
        let claimed = deliveries::claim(
            &self.db,
            &self.owner,
            now,
            lease_until,
            self.settings.batch_size,
        )
        .await?;
        let count = claimed.len();
        // Deliveries of a batch are independent (handlers are idempotent and
        // each commits on its own), so a few run at once: on PostgreSQL one
        // delivery's commits would otherwise pace the whole inbox. A
        // delivery not started when shutdown begins is released.
        let mut outcomes = Vec::with_capacity(count);
        let mut not_started = Vec::new();
        // By index: a closure over `&Claimed` would need a higher-ranked
        // lifetime that spawned futures cannot name.
        let claimed = &claimed;
        let mut running = futures_util::stream::iter(0..count)
            .map(|i| async move {
                let delivery = &claimed[i];
                if shutdown.is_cancelled() {
                    (delivery.id, None)
                } else {
                    (delivery.id, Some(self.process(delivery).await))
                }
            })
            .buffered(CONCURRENCY);
        while let Some((id, finish)) = running.next().await {
            match finish {
                Some(finish) => outcomes.push((id, finish)),
                None => not_started.push(id),
            }
        }
        if !not_started.is_empty() {
            deliveries::release(&self.db, &self.owner, &not_started).await?;
        }
        // One commit for the whole batch. Should it fail, or this process die
        // first, the leases expire and the batch is processed again; handlers
        // are idempotent, so that is safe.
        if !outcomes.is_empty() {
            let recorded =
                deliveries::finish_many(&self.db, &self.owner, now_ms(), &outcomes).await?;
            for ((id, _), recorded) in outcomes.iter().zip(recorded) {
                if !recorded {
                    tracing::warn!(
                        delivery.row = id,
                        "lease was lost before the outcome was recorded; another worker owns it"
                    );
                }
            }
        }
        if count > 0 {
            if let Ok(pending) = deliveries::count_pending(&self.db).await {
                self.metrics.inbox_pending.set(pending);
            }
        }
        Ok(count)
    }

    /// Processes one delivery in a span that names it for every line logged
    /// while it runs: `integration` (the source), `provider` (its kind),
    /// `operation` (the sender's event name), and `commit` / `pr` once the
    /// payload is parsed, where the event has them.
    #[tracing::instrument(
        name = "delivery",
        skip_all,
        fields(
            delivery.row = delivery.id,
            delivery.id = %delivery.delivery_id,
            source.name = %delivery.source,
            integration = %delivery.source,
            provider = self.sources.get(&delivery.source).map_or("unknown", |s| s.kind.as_str()),
            operation = %delivery.event,
            event.kind,
            commit,
            pr,
        )
    )]
    async fn process(&self, delivery: &Claimed) -> Finish {
        let finish = self.outcome(delivery).await;
        let status = match &finish {
            Finish::Done { status, .. } => status.as_str(),
            Finish::Failed { .. } => "failed",
            Finish::RetryAt { .. } => "retry",
        };
        match &finish {
            Finish::Done { outcome, .. } => {
                tracing::info!(outcome = %outcome, status, "delivery done")
            }
            Finish::Failed { error, .. } => tracing::warn!(error = %error, "delivery failed"),
            Finish::RetryAt {
                error,
                next_attempt_ms,
            } => {
                tracing::warn!(error = %error, retry_in_ms = next_attempt_ms - now_ms(), "delivery will be retried");
            }
        }
        self.metrics
            .inbox_processed
            .with_label_values(&[&delivery.source, status])
            .inc();
        finish
    }

    async fn outcome(&self, delivery: &Claimed) -> Finish {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        if attempts > self.settings.max_attempts {
            return failed(None, format!("gave up after {} attempts", attempts - 1));
        }
        let Some(source) = self.sources.get(&delivery.source) else {
            return failed(
                None,
                format!("source {:?} is no longer configured", delivery.source),
            );
        };
        let body = match &delivery.body {
            Ok(body) => body,
            Err(error) => return failed(None, format!("cannot read the stored body: {error}")),
        };
        let payload = StoredPayload {
            kind: source.kind,
            event: &delivery.event,
            content_type: delivery.content_type.as_deref(),
            body,
            registry: source.registry.as_deref(),
            delivery_id: &delivery.delivery_id,
        };
        let event = match ingest::parse(&payload) {
            Ok(event) => event,
            Err(error) => return failed(None, format!("cannot parse payload: {error}")),
        };
        let span = tracing::Span::current();
        span.record("event.kind", event.kind());
        match &event {
            Event::Push(push) => {
                span.record("commit", push.after.as_str());
            }
            Event::TagPush(push) => {
                span.record("commit", push.commit.as_str());
            }
            Event::PullRequest(pr) => {
                span.record("commit", pr.head_sha.as_str());
                span.record("pr", pr.number);
            }
            Event::CheckRunRerequested(check) => {
                span.record("commit", check.head_sha.as_str());
            }
            _ => {}
        }
        let context = DeliveryContext {
            id: delivery.id,
            source: &delivery.source,
            delivery_id: &delivery.delivery_id,
        };
        match self.handler.handle(context, &event).await {
            Ok(Outcome::Processed(what)) => done(Status::Processed, event.kind(), what),
            Ok(Outcome::Ignored(why)) => done(Status::Ignored, event.kind(), why),
            Err(HandlerError::Permanent(error)) => failed(Some(event.kind()), format!("{error:#}")),
            Err(HandlerError::Transient(error)) if attempts >= self.settings.max_attempts => {
                failed(
                    Some(event.kind()),
                    format!("gave up after {attempts} attempts: {error:#}"),
                )
            }
            Err(HandlerError::Transient(error)) => Finish::RetryAt {
                next_attempt_ms: now_ms() + duration_ms(backoff::delay(attempts)),
                error: format!("{error:#}"),
            },
        }
    }
}

fn done(status: Status, kind: &'static str, outcome: String) -> Finish {
    Finish::Done {
        status,
        event_kind: Some(kind),
        outcome,
    }
}

fn failed(kind: Option<&'static str>, error: String) -> Finish {
    Finish::Failed {
        event_kind: kind,
        error,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
