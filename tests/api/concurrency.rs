//! Many concurrent senders, each delivery sent twice at once.

use std::sync::Arc;

use futures_util::future::join_all;

use crate::helpers::*;
use crate::on_both_backends;

on_both_backends! {
    async fn two_hundred_deliveries_posted_twice_concurrently_leave_two_hundred_rows(db: TestDb) {
        let app = Arc::new(TestApp::spawn_with(db, Spawn { worker: false, ..Spawn::default() }).await);
        let body = Arc::new(fixture("github/push.json"));
        let requests = (0..400).map(|i| {
            let (app, body) = (app.clone(), body.clone());
            async move {
                let id = format!("concurrent-{}", i % 200);
                app.post_github("push", &id, &body).await.status().as_u16()
            }
        });
        let statuses = join_all(requests).await;
        let accepted = statuses.iter().filter(|s| **s == 202).count();
        let duplicates = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!((accepted, duplicates), (200, 200), "{statuses:?}");
        let rows = app.deliveries().await;
        assert_eq!(rows.len(), 200);
        let mut ids: Vec<_> = rows.iter().map(|r| r.delivery_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        Arc::into_inner(app).expect("all requests done").finish().await;
    }
}
