//! The inbox worker: deliveries are parsed and their outcome recorded;
//! a delivery claimed by a worker that died is processed after its lease.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use portcall::domain::Event;
use portcall::worker::{DeliveryContext, EventHandler, HandlerError, Outcome};

use portcall::store::deliveries::{self, Status};
use portcall::store::now_ms;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn stored_deliveries_are_parsed_and_their_outcome_recorded(db: TestDb) {
        let app = TestApp::spawn(db).await;
        app.post_github("push", "push-1", &fixture("github/push.json")).await;
        app.post_github("ping", "ping-1", br#"{"zen":"Half measures are as bad as nothing at all."}"#).await;
        app.post_github("star", "star-1", br#"{"action":"created"}"#).await;
        app.post_github("pull_request", "pr-broken", br#"{"action":"opened"}"#).await;

        let rows = app.wait_until_processed().await;
        let by_id = |id: &str| rows.iter().find(|r| r.delivery_id == id).unwrap();
        assert_eq!(by_id("push-1").status, Status::Processed);
        assert_eq!(by_id("push-1").event_kind.as_deref(), Some("push"));
        assert_eq!(by_id("ping-1").event_kind.as_deref(), Some("ping"));
        assert_eq!(by_id("star-1").status, Status::Ignored);
        assert!(by_id("star-1").outcome.as_deref().unwrap().contains("star"), "{:?}", by_id("star-1"));
        let broken = by_id("pr-broken");
        assert_eq!(broken.status, Status::Failed);
        assert!(broken.last_error.as_deref().unwrap().contains("cannot parse"), "{broken:?}");
        assert!(rows.iter().all(|r| r.lease_owner.is_none()));
        app.finish().await;
    }

    async fn a_claim_by_a_dead_worker_is_taken_over_once_its_lease_expires(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        assert_eq!(app.post_github("push", "orphan", &fixture("github/push.json")).await.status().as_u16(), 202);

        // A worker claims it, then dies before recording anything.
        let now = now_ms();
        let claimed = deliveries::claim(&app.store, "dead-worker", now, now + 700, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);

        // While the lease holds, nobody else takes the delivery.
        let survivor = app.manual_worker();
        let running = CancellationToken::new();
        assert_eq!(survivor.run_once(&running).await.unwrap(), 0);
        let row = &app.deliveries().await[0];
        assert_eq!((row.status, row.lease_owner.as_deref()), (Status::Pending, Some("dead-worker")));

        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(survivor.run_once(&running).await.unwrap(), 1);
        let row = &app.deliveries().await[0];
        assert_eq!(row.status, Status::Processed);
        assert_eq!(row.attempts, 2);
        assert_eq!(row.lease_owner, None);
        app.finish().await;
    }

    async fn a_worker_that_lost_its_lease_cannot_overwrite_the_new_owners_outcome(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("push", "contended", &fixture("github/push.json")).await;
        let now = now_ms();
        let first = deliveries::claim(&app.store, "slow-worker", now, now - 1, 10).await.unwrap();
        let second = deliveries::claim(&app.store, "new-owner", now, now + 60_000, 10).await.unwrap();
        assert_eq!((first.len(), second.len()), (1, 1));
        let stale = deliveries::Finish::Failed { event_kind: None, error: "stale".into() };
        assert!(!deliveries::finish(&app.store, first[0].id, "slow-worker", now, &stale).await.unwrap());
        assert_eq!(app.deliveries().await[0].lease_owner.as_deref(), Some("new-owner"));
        app.finish().await;
    }

    async fn an_ingest_only_replica_stores_without_processing(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("push", "stored-only", &fixture("github/push.json")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.deliveries().await[0].status, Status::Pending);
        let worker = app.manual_worker();
        assert_eq!(worker.run_once(&CancellationToken::new()).await.unwrap(), 1);
        assert_eq!(app.deliveries().await[0].status, Status::Processed);
        app.finish().await;
    }

    async fn claimed_but_unstarted_deliveries_are_released_at_shutdown(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        for i in 0..3 {
            app.post_github("push", &format!("queued-{i}"), &fixture("github/push.json")).await;
        }
        let worker = app.manual_worker();
        let stopped = CancellationToken::new();
        stopped.cancel();
        // Shutdown already requested: the batch is claimed, none is started,
        // all are given back without spending an attempt.
        assert_eq!(worker.run_once(&stopped).await.unwrap(), 3);
        let rows = app.deliveries().await;
        assert!(rows.iter().all(|r| r.status == Status::Pending && r.lease_owner.is_none() && r.attempts == 0), "{rows:?}");
        app.finish().await;
    }
}

/// A handler that fails in a chosen way for its first `failures` calls.
struct Failing {
    failures: u32,
    permanent: bool,
    calls: AtomicU32,
}

impl Failing {
    fn new(failures: u32, permanent: bool) -> Arc<Self> {
        Arc::new(Self {
            failures,
            permanent,
            calls: AtomicU32::new(0),
        })
    }
}

impl EventHandler for Failing {
    fn handle<'a>(
        &'a self,
        _: DeliveryContext<'a>,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if call > self.failures {
                Ok(Outcome::Processed(format!("handled {}", event.kind())))
            } else if self.permanent {
                Err(HandlerError::Permanent(anyhow::anyhow!(
                    "repository was deleted"
                )))
            } else {
                Err(HandlerError::Transient(anyhow::anyhow!(
                    "provider answered 503 (call {call})"
                )))
            }
        })
    }
}

/// Makes every pending delivery due now, as if its backoff had passed.
async fn make_due(app: &TestApp) {
    let sql = app.sql().await;
    sqlx::query("UPDATE deliveries SET next_attempt_at = 0")
        .execute(&sql)
        .await
        .unwrap();
    sql.close().await;
}

on_both_backends! {
    async fn a_transient_failure_is_retried_after_a_backoff_and_then_succeeds(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("push", "flaky", &fixture("github/push.json")).await;
        let worker = app.manual_worker_with(Failing::new(1, false));
        let running = CancellationToken::new();

        let before = now_ms();
        assert_eq!(worker.run_once(&running).await.unwrap(), 1);
        let row = &app.deliveries().await[0];
        assert_eq!(row.status, Status::Pending);
        assert!(row.last_error.as_deref().unwrap().contains("503"), "{row:?}");
        // Not due again before the backoff (at least half a second).
        assert_eq!(worker.run_once(&running).await.unwrap(), 0);
        let next: i64 = sqlx::query_scalar("SELECT next_attempt_at FROM deliveries").fetch_one(&app.sql().await).await.unwrap();
        assert!(next >= before + 500 && next <= now_ms() + 1000, "next attempt in {} ms", next - before);

        make_due(&app).await;
        assert_eq!(worker.run_once(&running).await.unwrap(), 1);
        let row = &app.deliveries().await[0];
        assert_eq!((row.status, row.attempts, row.last_error.as_deref()), (Status::Processed, 2, None));
        app.finish().await;
    }

    async fn a_permanent_failure_is_not_retried(db: TestDb) {
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("push", "doomed", &fixture("github/push.json")).await;
        let handler = Failing::new(u32::MAX, true);
        let worker = app.manual_worker_with(handler.clone());
        worker.run_once(&CancellationToken::new()).await.unwrap();
        make_due(&app).await;
        assert_eq!(worker.run_once(&CancellationToken::new()).await.unwrap(), 0);
        let row = &app.deliveries().await[0];
        assert_eq!(row.status, Status::Failed);
        assert_eq!(row.event_kind.as_deref(), Some("push"));
        assert!(row.last_error.as_deref().unwrap().contains("deleted"), "{row:?}");
        assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
        app.finish().await;
    }

    async fn a_delivery_that_keeps_failing_is_given_up_after_max_attempts(db: TestDb) {
        // The test configuration allows 3 attempts.
        let app = TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await;
        app.post_github("push", "hopeless", &fixture("github/push.json")).await;
        let handler = Failing::new(u32::MAX, false);
        let worker = app.manual_worker_with(handler.clone());
        for _ in 0..5 {
            worker.run_once(&CancellationToken::new()).await.unwrap();
            make_due(&app).await;
        }
        let row = &app.deliveries().await[0];
        assert_eq!((row.status, row.attempts), (Status::Failed, 3));
        assert!(row.last_error.as_deref().unwrap().starts_with("gave up after 3 attempts"), "{row:?}");
        assert_eq!(handler.calls.load(Ordering::SeqCst), 3);
        app.finish().await;
    }
}
