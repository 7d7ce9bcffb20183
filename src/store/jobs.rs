//! The `jobs` table: the outbox of provider calls and registry reads.
//!
//! Jobs are enqueued in the transaction that decided them, deduplicated by
//! a key (`ON CONFLICT (dedupe_key) DO NOTHING`), claimed under leases like
//! the inbox, and end `done`, `dead` (with the last error) or `skipped`
//! (offline or no provider configured; the payload is kept for an operator).

use std::collections::HashMap;
use std::fmt;

use sqlx::FromRow;

use super::{values_placeholders, with_pool, Backend, Db, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Done,
    Dead,
    Skipped,
}

impl JobState {
    pub const ALL: [JobState; 4] = [
        JobState::Pending,
        JobState::Done,
        JobState::Dead,
        JobState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for JobState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    /// Enqueuing a second job with the same key does nothing.
    pub dedupe_key: String,
    /// The job's JSON.
    pub payload: String,
    /// The provider repository it acts on (`github:owner/repo`), if any.
    pub repository: Option<String>,
    pub release_id: Option<i64>,
    /// `Some(reason)` records the job as `skipped` instead of pending.
    pub skipped: Option<String>,
    /// Pending jobs with the same key run one at a time, in the order they
    /// were enqueued (see [`claim`]); `None` for jobs that may run in any
    /// order.
    pub sequence_key: Option<String>,
    /// The delivery whose processing enqueued it, shown with the delivery.
    pub delivery_row: Option<i64>,
}

impl NewJob {
    /// Records `delivery_row` as the delivery that caused the job.
    #[must_use]
    pub fn caused_by(mut self, delivery_row: i64) -> Self {
        self.delivery_row = Some(delivery_row);
        self
    }
}

/// The statement behind [`insert!`].
pub(crate) const INSERT: &str = "INSERT INTO jobs \
     (kind, dedupe_key, payload, repository, release_id, state, result, sequence_key, \
      next_attempt_at, created_at, updated_at, delivery_row) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9, $10) \
     ON CONFLICT (dedupe_key) DO NOTHING";

/// Inserts a [`NewJob`] on a connection or transaction of either backend
/// (a macro because the executor's type differs per backend). Evaluates to
/// whether a row was written.
macro_rules! insert {
    ($conn:expr, $job:expr, $now_ms:expr) => {{
        let job: &$crate::store::jobs::NewJob = $job;
        let (state, result) = match &job.skipped {
            Some(reason) => ("skipped", Some(reason.as_str())),
            None => ("pending", None),
        };
        let written = sqlx::query($crate::store::jobs::INSERT)
            .bind(job.kind)
            .bind(job.dedupe_key.as_str())
            .bind(job.payload.as_str())
            .bind(job.repository.as_deref())
            .bind(job.release_id)
            .bind(state)
            .bind(result)
            .bind(job.sequence_key.as_deref())
            .bind($now_ms)
            .bind(job.delivery_row)
            .execute($conn)
            .await?
            .rows_affected()
            == 1;
        written
    }};
}
pub(crate) use insert;

/// Enqueues jobs in one transaction. Returns how many were new.
pub async fn enqueue(db: &Db, jobs: &[NewJob], now_ms: i64) -> Result<usize, StoreError> {
    let mut added = 0;
    with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        for job in jobs {
            if insert!(&mut *tx, job, now_ms) {
                added += 1;
            }
        }
        tx.commit().await?;
    });
    Ok(added)
}

/// A job claimed by a dispatcher.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub repository: Option<String>,
    pub release_id: Option<i64>,
    /// Including this one.
    pub attempts: i64,
}

/// Claims up to `limit` due jobs not leased by a live dispatcher (see
/// `deliveries::claim` for why this is one statement). A job with a
/// `sequence_key` waits while an older job with the same key is pending
/// (queued, leased or waiting for a retry), whichever replica holds it: the
/// state is in the row, so no lock has to outlive the statement.
pub async fn claim(
    db: &Db,
    owner: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
         WHERE id IN ( \
             SELECT candidate.id FROM jobs AS candidate \
             WHERE candidate.state = 'pending' AND candidate.next_attempt_at <= $3 \
               AND (candidate.lease_expires_at IS NULL OR candidate.lease_expires_at <= $3) \
               AND (candidate.sequence_key IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM jobs AS earlier \
                   WHERE earlier.sequence_key = candidate.sequence_key \
                     AND earlier.id < candidate.id AND earlier.state = 'pending')) \
             ORDER BY candidate.next_attempt_at, candidate.id LIMIT $4 {lock}) \
         RETURNING id, kind, payload, repository, release_id, attempts"
    );
    let mut jobs: Vec<ClaimedJob> = with_pool!(db.writer(), |pool| {
        sqlx::query_as(&sql)
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    });
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// How an attempt at a job ended.
#[derive(Debug, Clone)]
pub enum JobFinish {
    Done { result: String },
    Skipped { reason: String },
    Dead { error: String },
    RetryAt { next_attempt_ms: i64, error: String },
}

/// Records the end of an attempt and drops the lease; only the lease owner
/// may. Follow-up jobs are enqueued in the same transaction. Returns
/// whether `owner` still held the lease.
pub async fn finish(
    db: &Db,
    id: i64,
    owner: &str,
    finish: &JobFinish,
    follow_ups: &[NewJob],
    now_ms: i64,
) -> Result<bool, StoreError> {
    let (state, result, error, next) = match finish {
        JobFinish::Done { result } => (JobState::Done, Some(result.as_str()), None, None),
        JobFinish::Skipped { reason } => (JobState::Skipped, Some(reason.as_str()), None, None),
        JobFinish::Dead { error } => (JobState::Dead, None, Some(error.as_str()), None),
        JobFinish::RetryAt {
            next_attempt_ms,
            error,
        } => (
            JobState::Pending,
            None,
            Some(error.as_str()),
            Some(*next_attempt_ms),
        ),
    };
    let updated = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = $1, result = COALESCE($2, result), last_error = $3, \
                 next_attempt_at = COALESCE($4, next_attempt_at), updated_at = $5, \
                 lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(error)
        .bind(next)
        .bind(now_ms)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            for job in follow_ups {
                insert!(&mut *tx, job, now_ms);
            }
            tx.commit().await?;
        }
        updated
    });
    Ok(updated)
}

/// Extends the leases `owner` still holds on `ids` to `until_ms`, for jobs
/// that run (or wait for their installation's turn) longer than a lease.
/// Returns the ids whose lease was extended; any other was finished, or
/// lost: it expired and another dispatcher claimed it.
pub async fn extend_leases(
    db: &Db,
    owner: &str,
    ids: &[i64],
    until_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    // One statement for any number of ids: the list goes in as JSON.
    let ids_of = match db.backend() {
        Backend::Postgres => "SELECT value::bigint FROM json_array_elements_text($3::json)",
        Backend::Sqlite => "SELECT value FROM json_each($3)",
    };
    let sql = format!(
        "UPDATE jobs SET lease_expires_at = $1 \
         WHERE lease_owner = $2 AND state = 'pending' AND id IN ({ids_of}) \
         RETURNING id"
    );
    let list = serde_json::to_string(ids).expect("a list of integers serializes");
    let kept: Vec<(i64,)> = with_pool!(db.writer(), |pool| {
        sqlx::query_as(&sql)
            .bind(until_ms)
            .bind(owner)
            .bind(&list)
            .fetch_all(pool)
            .await?
    });
    Ok(kept.into_iter().map(|(id,)| id).collect())
}

/// A job as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub state: JobState,
    pub repository: Option<String>,
    pub release_id: Option<i64>,
    /// The delivery whose processing enqueued it.
    pub delivery_row: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    state: String,
    repository: Option<String>,
    release_id: Option<i64>,
    delivery_row: Option<i64>,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    result: Option<String>,
    payload: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = sqlx::Error;

    fn try_from(row: JobRow) -> Result<Self, sqlx::Error> {
        let decode = |index: &str, source: String| sqlx::Error::ColumnDecode {
            index: index.into(),
            source: source.into(),
        };
        Ok(Self {
            state: JobState::parse(&row.state)
                .ok_or_else(|| decode("state", format!("unknown job state {:?}", row.state)))?,
            payload: serde_json::from_str(&row.payload)
                .map_err(|e| decode("payload", e.to_string()))?,
            id: row.id,
            kind: row.kind,
            repository: row.repository,
            release_id: row.release_id,
            delivery_row: row.delivery_row,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            result: row.result,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const RECORD_COLUMNS: &str = "id, kind, state, repository, release_id, delivery_row, attempts, \
     next_attempt_at, \
     last_error, result, payload, created_at, updated_at";

/// Jobs newest first, optionally in one state or caused by one delivery,
/// with ids below `before`.
pub async fn list(
    db: &Db,
    state: Option<JobState>,
    delivery_row: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM jobs \
         WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR id < $2) \
           AND ($4 IS NULL OR delivery_row = $4) \
         ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<JobRow> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(state.map(JobState::as_str))
            .bind(before)
            .bind(limit)
            .bind(delivery_row)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(JobRecord::try_from)
        .collect::<Result<_, _>>()?)
}

/// How many jobs each of `delivery_rows` caused.
pub async fn count_by_delivery(
    db: &Db,
    delivery_rows: &[i64],
) -> Result<HashMap<i64, i64>, StoreError> {
    if delivery_rows.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT delivery_row, COUNT(*) FROM jobs WHERE delivery_row IN (VALUES {}) \
         GROUP BY delivery_row",
        values_placeholders(db.backend(), 1, delivery_rows.len(), 1)
    );
    let rows: Vec<(i64, i64)> = with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_as(&sql);
        for row in delivery_rows {
            query = query.bind(*row);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows.into_iter().collect())
}

pub async fn get(db: &Db, id: i64) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1");
    let row: Option<JobRow> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
    });
    Ok(row.map(JobRecord::try_from).transpose()?)
}

/// Why a job could not be re-queued.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no job {0}")]
    NotFound(i64),
    #[error("job {id} is {state}; only dead, skipped or done jobs can be retried")]
    NotFinished { id: i64, state: JobState },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts a finished job back in the queue, due now, with its attempts reset.
pub async fn retry(db: &Db, id: i64, now_ms: i64) -> Result<(), RetryError> {
    let updated = with_pool!(db.writer(), |pool| {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = $1, \
                 updated_at = $1, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $2 AND state <> 'pending'",
        )
        .bind(now_ms)
        .bind(id)
        .execute(pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected()
    });
    if updated == 1 {
        return Ok(());
    }
    match get(db, id).await? {
        None => Err(RetryError::NotFound(id)),
        Some(job) => Err(RetryError::NotFinished {
            id,
            state: job.state,
        }),
    }
}

/// How many jobs are in each state, every state listed (zero included).
pub async fn count_by_state(db: &Db) -> Result<Vec<(JobState, i64)>, StoreError> {
    let rows: Vec<(String, i64)> = with_pool!(db.reader(), |pool| {
        sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(pool)
            .await?
    });
    Ok(JobState::ALL
        .into_iter()
        .map(|state| {
            let count = rows
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            (state, count)
        })
        .collect())
}

/// How many jobs wait to run.
pub async fn count_pending(db: &Db) -> Result<i64, StoreError> {
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'pending'")
            .fetch_one(pool)
            .await?
    }))
}
