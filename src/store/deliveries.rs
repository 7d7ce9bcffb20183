//! The `deliveries` table: the durable inbox of verified webhooks.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fmt::Write as _;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, FromRow, Row};

use super::body::{self, StoredBody};
use super::{placeholder, values_placeholders, Backend, Db, StoreError};
use crate::ingest::NewDelivery;

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored, waiting for (or between) processing attempts.
    Pending,
    /// Parsed and acted on.
    Processed,
    /// Parsed, and deliberately not acted on; `outcome` says why.
    Ignored,
    /// Could not be processed; `last_error` says why. Replay retries it.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processed => "processed",
            Status::Ignored => "ignored",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Pending,
            Status::Processed,
            Status::Ignored,
            Status::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most rows in one INSERT statement (9 parameters each, well under
/// SQLite's and PostgreSQL's parameter limits).
const INSERT_CHUNK: usize = 500;

/// Inserts deliveries, skipping any whose `(source, delivery_id)` is already
/// stored, atomically: every row is committed, or none. Returns, for each
/// row in order, whether it was written; `false` means a duplicate (also of
/// an earlier row in `rows`).
///
/// Up to [`INSERT_CHUNK`] rows go in one autocommitted statement, which is
/// atomic by itself: with SQLite every statement is a round trip to the
/// connection's thread, and those round trips, not the disk, bound ingest.
pub async fn insert_many(
    db: &Db,
    rows: &[(&str, &NewDelivery, &StoredBody)],
    now_ms: i64,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut written = HashSet::new();
    if rows.len() <= INSERT_CHUNK {
        written.extend(insert_chunk(db.writer(), db.backend(), rows, now_ms).await?);
    } else {
        let mut tx = db.writer().begin().await?;
        for chunk in rows.chunks(INSERT_CHUNK) {
            written.extend(insert_chunk(&mut *tx, db.backend(), chunk, now_ms).await?);
        }
        tx.commit().await?;
    }
    // A key written by this call counts as new once: a repeat later in
    // `rows` is a duplicate of it.
    Ok(rows
        .iter()
        .map(|(source, delivery, _)| {
            written.remove(&(
                (*source).to_owned(),
                delivery.delivery_id.as_str().to_owned(),
            ))
        })
        .collect())
}

/// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` the keys of the
/// rows actually written.
async fn insert_chunk<'c>(
    executor: impl Executor<'c, Database = Any>,
    backend: Backend,
    rows: &[(&str, &NewDelivery, &StoredBody)],
    now_ms: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut sql = String::from(
        "INSERT INTO deliveries \
         (source, delivery_id, event, headers, content_type, body, body_encoding, received_at, \
          next_attempt_at) VALUES ",
    );
    sql.push_str(&values_placeholders(backend, 1, rows.len(), 9));
    sql.push_str(" ON CONFLICT (source, delivery_id) DO NOTHING RETURNING source, delivery_id");
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for (source, delivery, body) in rows {
        query = query
            .bind(*source)
            .bind(delivery.delivery_id.as_str())
            .bind(delivery.event.as_str())
            .bind(headers_json(&delivery.headers))
            .bind(delivery.content_type.as_deref())
            .bind(body.bytes.as_ref())
            .bind(body.encoding.as_str())
            .bind(now_ms)
            .bind(now_ms);
    }
    query.fetch_all(executor).await
}

fn headers_json(headers: &[(&'static str, String)]) -> String {
    let map: BTreeMap<&str, &str> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serde_json::to_string(&map).expect("a map of strings always serializes")
}

/// A delivery claimed by a worker, with what is needed to process it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub content_type: Option<String>,
    /// The body exactly as received; `Err` if the stored copy cannot be
    /// decoded (the worker records that as the delivery's failure).
    pub body: Result<Vec<u8>, String>,
    /// Including this one.
    pub attempts: i64,
}

impl<'r> FromRow<'r, AnyRow> for Claimed {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let encoding: String = row.try_get("body_encoding")?;
        let stored: Vec<u8> = row.try_get("body")?;
        Ok(Self {
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            delivery_id: row.try_get("delivery_id")?,
            event: row.try_get("event")?,
            content_type: row.try_get("content_type")?,
            body: body::decode(&encoding, stored).map_err(|e| e.to_string()),
            attempts: row.try_get("attempts")?,
        })
    }
}

/// Claims up to `limit` deliveries that are due and not leased by a live
/// worker, leasing them to `owner` until `lease_until_ms`. One statement, so
/// two workers never claim the same row: PostgreSQL skips rows another
/// transaction has locked, SQLite serializes writers.
pub async fn claim(
    db: &Db,
    owner: &str,
    now_ms: i64,
    lease_until_ms: i64,
    limit: u32,
) -> Result<Vec<Claimed>, StoreError> {
    let lock = match db.backend() {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE deliveries SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
         WHERE id IN ( \
             SELECT id FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $3 \
               AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
             ORDER BY next_attempt_at, id LIMIT $4 {lock}) \
         RETURNING id"
    );
    let ids: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(db.writer())
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Bodies are read outside the write: on SQLite the single writer
    // connection stays free for incoming webhooks meanwhile.
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT id, source, delivery_id, event, content_type, body, body_encoding, attempts \
         FROM deliveries \
         WHERE lease_owner = $1 AND id IN ({}) ORDER BY id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as(&sql).bind(owner);
    for id in &ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(db.pool()).await?)
}

/// How processing a delivery ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Done {
        status: Status,
        event_kind: Option<&'static str>,
        outcome: String,
    },
    Failed {
        event_kind: Option<&'static str>,
        error: String,
    },
    RetryAt {
        next_attempt_ms: i64,
        error: String,
    },
}

/// Records the end of an attempt and drops the lease. Only the lease owner
/// may do so: a worker whose lease expired and was taken over changes
/// nothing. Returns whether the row was updated.
pub async fn finish(
    db: &Db,
    id: i64,
    owner: &str,
    now_ms: i64,
    finish: &Finish,
) -> Result<bool, StoreError> {
    Ok(finish_many(db, owner, now_ms, &[(id, finish.clone())]).await?[0])
}

/// Most outcomes recorded in one statement (7 parameters each).
const FINISH_CHUNK: usize = 500;

/// Records the outcomes of a batch in one statement (one round trip, one
/// commit) per [`FINISH_CHUNK`]. Returns, per outcome, whether `owner` still
/// held the lease.
pub async fn finish_many(
    db: &Db,
    owner: &str,
    now_ms: i64,
    outcomes: &[(i64, Finish)],
) -> Result<Vec<bool>, StoreError> {
    let mut updated = HashSet::new();
    for chunk in outcomes.chunks(FINISH_CHUNK) {
        // `UPDATE … FROM (VALUES …)`: VALUES columns are named column1… on
        // both SQLite and PostgreSQL. NULL means "leave as it is" for the
        // event kind and the next attempt time.
        let mut sql = String::from(
            "UPDATE deliveries SET status = v.column2, \
                 event_kind = COALESCE(v.column3, deliveries.event_kind), \
                 outcome = v.column4, last_error = v.column5, processed_at = v.column6, \
                 next_attempt_at = COALESCE(v.column7, deliveries.next_attempt_at), \
                 lease_owner = NULL, lease_expires_at = NULL \
             FROM (VALUES ",
        );
        sql.push_str(&values_placeholders(db.backend(), 1, chunk.len(), 7));
        let _ = write!(
            sql,
            ") AS v WHERE deliveries.id = v.column1 AND deliveries.lease_owner = {} \
             RETURNING deliveries.id",
            placeholder(db.backend(), chunk.len() * 7 + 1)
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for (id, finish) in chunk {
            let (status, kind, outcome, error, processed_at, next_attempt) = match finish {
                Finish::Done {
                    status,
                    event_kind,
                    outcome,
                } => (
                    *status,
                    *event_kind,
                    Some(outcome.as_str()),
                    None,
                    Some(now_ms),
                    None,
                ),
                Finish::Failed { event_kind, error } => (
                    Status::Failed,
                    *event_kind,
                    None,
                    Some(error.as_str()),
                    Some(now_ms),
                    None,
                ),
                Finish::RetryAt {
                    next_attempt_ms,
                    error,
                } => (
                    Status::Pending,
                    None,
                    None,
                    Some(error.as_str()),
                    None,
                    Some(*next_attempt_ms),
                ),
            };
            query = query
                .bind(*id)
                .bind(status.as_str())
                .bind(kind)
                .bind(outcome)
                .bind(error)
                .bind(processed_at)
                .bind(next_attempt);
        }
        updated.extend(query.bind(owner).fetch_all(db.writer()).await?);
    }
    Ok(outcomes
        .iter()
        .map(|(id, _)| updated.contains(id))
        .collect())
}

/// Gives back every lease `owner` still holds, without counting the attempt:
/// used at shutdown for claimed deliveries that were not started.
pub async fn release(db: &Db, owner: &str, ids: &[i64]) -> Result<u64, StoreError> {
    let mut released = 0;
    let mut tx = db.writer().begin().await?;
    for id in ids {
        released += sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL, attempts = attempts - 1 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(released)
}

/// A stored delivery, for the admin API and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub source: String,
    pub delivery_id: String,
    pub event: String,
    pub status: Status,
    pub attempts: i64,
    pub event_kind: Option<String>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub lease_owner: Option<String>,
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'r> FromRow<'r, AnyRow> for DeliveryRecord {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            delivery_id: row.try_get("delivery_id")?,
            event: row.try_get("event")?,
            status: Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: format!("unknown status {status:?}").into(),
            })?,
            attempts: row.try_get("attempts")?,
            event_kind: row.try_get("event_kind")?,
            outcome: row.try_get("outcome")?,
            last_error: row.try_get("last_error")?,
            received_at: row.try_get("received_at")?,
            processed_at: row.try_get("processed_at")?,
            lease_owner: row.try_get("lease_owner")?,
        })
    }
}

const RECORD_COLUMNS: &str =
    "id, source, delivery_id, event, status, attempts, event_kind, outcome, \
     last_error, received_at, processed_at, lease_owner";

/// Every delivery, oldest first (`status` narrows the list).
pub async fn list(
    db: &Db,
    status: Option<Status>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows = match status {
        Some(status) => {
            sqlx::query_as(&format!(
                "SELECT {RECORD_COLUMNS} FROM deliveries WHERE status = $1 ORDER BY id LIMIT $2"
            ))
            .bind(status.as_str())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query_as(&format!(
                "SELECT {RECORD_COLUMNS} FROM deliveries ORDER BY id LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    Ok(rows)
}

/// How many deliveries wait to be processed.
pub async fn count_pending(db: &Db) -> Result<i64, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
        .fetch_one(db.pool())
        .await?;
    Ok(count)
}
