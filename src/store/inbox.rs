//! Group commit for incoming webhooks.
//!
//! A 2xx promises the delivery is committed, and a commit costs an fsync.
//! Instead of one transaction per request, request handlers hand their rows
//! to one writer task and wait; the writer takes everything that queued up
//! while the previous commit was in flight and commits it in one
//! statement. Under load many requests share one commit and one fsync; when
//! idle a request commits alone, with no added delay. Each handler still
//! hears back only after *its* rows are durable: on SQLite after the fsync of
//! the write-ahead log that follows the commit (see `run`), on PostgreSQL
//! at the commit itself.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::deliveries::{self, InboxRow};
use super::{now_ms, Db, StoreError};
use crate::ingest::NewDelivery;

/// Queue depth before handlers wait for room; bounds memory under overload.
const QUEUE: usize = 1024;

/// Whether each delivery of a request was new or already stored.
pub type Inserted = Vec<bool>;

type Reply = oneshot::Sender<Result<Inserted, Arc<StoreError>>>;

struct Request {
    rows: Vec<InboxRow>,
    reply: Reply,
}

/// The handle request handlers commit through. Cheap to clone.
#[derive(Clone)]
pub struct InboxWriter {
    queue: mpsc::Sender<Request>,
}

impl InboxWriter {
    /// Starts the writer task, committing up to `max_group` requests at
    /// once. It ends when every handle is dropped.
    pub fn spawn(db: Db, max_group: usize) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(db, rx, max_group.max(1)));
        (Self { queue }, task)
    }

    /// Commits the deliveries of one request atomically, alongside whatever
    /// else is being committed, and says which were new.
    pub async fn commit(
        &self,
        source: Arc<str>,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Inserted, Arc<StoreError>> {
        // Encoded here, in the caller's task, so the work is spread over the
        // request handlers instead of queueing in the single writer.
        let rows = deliveries
            .iter()
            .map(|d| InboxRow::new(source.clone(), d))
            .collect();
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { rows, reply })
            .await
            .map_err(|_| Arc::new(StoreError::WriterGone))?;
        answer.await.map_err(|_| Arc::new(StoreError::WriterGone))?
    }
}

/// Answers for one committed group, held until its commit is durable.
type Answers = Vec<(Reply, Result<Inserted, Arc<StoreError>>)>;

/// The commit loop: commit everything queued, make it durable, answer,
/// repeat. While one group is committed and synced, the next one queues,
/// so under load each cycle's commit and fsync are shared by everyone who
/// arrived during the previous cycle.
///
/// The stages are deliberately not overlapped. Committing the next group
/// during the previous fsync (measured with `scripts/bench-ingest.sh`)
/// made groups smaller and woke this task for nearly every request: 15%
/// more CPU per request and 9% fewer deliveries per second than waiting
/// for the fsync and taking everything that queued meanwhile. Measured
/// again on 2026-12-03: the same throughput (12.3k/s against 12.3–12.7k/s),
/// with groups of 17 instead of 28 requests.
async fn run(db: Db, mut rx: mpsc::Receiver<Request>, max_group: usize) {
    let mut group = Vec::with_capacity(max_group);
    while rx.recv_many(&mut group, max_group).await > 0 {
        let started = std::time::Instant::now();
        let answers = commit(&db, &mut group).await;
        let committed = started.elapsed();
        let synced = db.sync_commits().await;
        tracing::debug!(
            requests = answers.len(),
            commit_us = u64::try_from(committed.as_micros()).unwrap_or(u64::MAX),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "inbox group committed"
        );
        answer(answers, synced);
    }
}

/// Answers a committed group once its sync has finished: a failed sync
/// fails every request that had been committed.
fn answer(answers: Answers, synced: Result<(), StoreError>) {
    let synced = synced.map_err(Arc::new);
    if let Err(error) = &synced {
        tracing::error!(error = %error, "could not make committed deliveries durable");
    }
    for (reply, result) in answers {
        let result = match (&synced, result) {
            (Err(error), Ok(_)) => Err(error.clone()),
            (_, result) => result,
        };
        let _ = reply.send(result);
    }
}

/// Commits a group and says what to answer each request, once durable.
async fn commit(db: &Db, group: &mut Vec<Request>) -> Answers {
    match commit_group(db, group).await {
        Ok(results) => group
            .drain(..)
            .zip(results)
            .map(|(request, inserted)| (request.reply, Ok(inserted)))
            .collect(),
        // A constraint or data error in one request must not fail the
        // others: retry each alone. A database that is down fails them all
        // at once instead of waiting out a timeout per request.
        Err(sqlx::Error::Database(_)) if group.len() > 1 => {
            let mut answers = Vec::with_capacity(group.len());
            for request in group.drain(..) {
                let result = commit_group(db, std::slice::from_ref(&request))
                    .await
                    .map(|mut r| r.remove(0))
                    .map_err(|e| Arc::new(StoreError::from(e)));
                answers.push((request.reply, result));
            }
            answers
        }
        Err(error) => {
            tracing::error!(error = %error, requests = group.len(), "inbox commit failed");
            let error = Arc::new(StoreError::from(error));
            group
                .drain(..)
                .map(|request| (request.reply, Err(error.clone())))
                .collect()
        }
    }
}

async fn commit_group(db: &Db, group: &[Request]) -> Result<Vec<Inserted>, sqlx::Error> {
    let rows: Vec<&InboxRow> = group.iter().flat_map(|r| &r.rows).collect();
    let mut written = deliveries::insert_many(db, &rows, now_ms())
        .await?
        .into_iter();
    Ok(group
        .iter()
        .map(|r| written.by_ref().take(r.rows.len()).collect())
        .collect())
}
