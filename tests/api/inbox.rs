//! The inbox worker: deliveries are parsed and their outcome recorded;
//! a delivery claimed by a worker that died is processed after its lease.

use std::time::Duration;

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
