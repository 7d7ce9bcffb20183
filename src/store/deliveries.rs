//! The `deliveries` table: the durable inbox of verified webhooks.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::Arguments as _;
use sqlx::{Encode, FromRow, Type};

use super::body::{self, StoredBody};
use super::{placeholder, values_placeholders, with_pool, Backend, Db, PoolRef, StoreError};
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

/// A delivery ready to be written: its body encoded and its kept headers
/// serialized. Built by the request handler, so the single writer that
/// commits groups only binds values.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub source: Arc<str>,
    pub delivery_id: String,
    pub event: String,
    /// JSON object of the kept headers.
    pub headers: String,
    pub content_type: Option<String>,
    pub body: StoredBody,
}

impl InboxRow {
    pub fn new(source: Arc<str>, delivery: &NewDelivery) -> Self {
        Self {
            source,
            delivery_id: delivery.delivery_id.as_str().to_owned(),
            event: delivery.event.clone(),
            headers: headers_json(&delivery.headers),
            content_type: delivery.content_type.clone(),
            body: body::encode(&delivery.body),
        }
    }
}

/// Inserts deliveries, skipping any whose `(source, delivery_id)` is already
/// stored, atomically: every row is committed, or none. Returns, for each
/// row in order, whether it was written; `false` means a duplicate (also of
/// an earlier row in `rows`).
///
/// Up to [`INSERT_CHUNK`] rows go in one autocommitted statement, which is
/// atomic by itself.
pub async fn insert_many(
    db: &Db,
    rows: &[&InboxRow],
    now_ms: i64,
) -> Result<Vec<bool>, sqlx::Error> {
    let keys = match db.writer() {
        PoolRef::Sqlite(pool) => insert_sqlite(pool, rows, now_ms).await?,
        PoolRef::Postgres(pool) => {
            let returning = |chunk: &[&InboxRow]| -> Result<_, sqlx::Error> {
                let sql = insert_sql(Backend::Postgres, chunk.len(), true);
                Ok((sql, insert_arguments::<sqlx::Postgres>(chunk, now_ms)?))
            };
            if rows.len() <= INSERT_CHUNK {
                let (sql, arguments) = returning(rows)?;
                sqlx::query_as_with(&sql, arguments).fetch_all(pool).await?
            } else {
                let mut keys: Vec<(String, String)> = Vec::with_capacity(rows.len());
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let (sql, arguments) = returning(chunk)?;
                    keys.extend(
                        sqlx::query_as_with::<_, (String, String), _>(&sql, arguments)
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                tx.commit().await?;
                keys
            }
        }
    };
    // A key written by this call counts as new once: a repeat later in
    // `rows` is a duplicate of it.
    let mut written: HashSet<(&str, &str)> =
        keys.iter().map(|(s, d)| (s.as_str(), d.as_str())).collect();
    Ok(rows
        .iter()
        .map(|row| written.remove(&(&*row.source, row.delivery_id.as_str())))
        .collect())
}

/// SQLite's half of [`insert_many`]: the keys of the rows it wrote.
///
/// Without `RETURNING`: the driver hands each returned row from its own
/// thread to the caller's separately, and on one core those hand-offs cost
/// more than the insert (14% of the CPU per request, measured). Instead the
/// keys already stored are read first, usually none, and then the rows
/// inserted. Exact: every insert goes through the one write connection, so
/// nothing can come between the two.
async fn insert_sqlite(
    pool: &sqlx::SqlitePool,
    rows: &[&InboxRow],
    now_ms: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let several = rows.len() > INSERT_CHUNK;
    if several {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    }
    let written = async {
        let mut keys = Vec::new();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let sources: Vec<&str> = unique(chunk.iter().map(|row| &*row.source));
            let ids: Vec<&str> = unique(chunk.iter().map(|row| row.delivery_id.as_str()));
            let sql = stored_keys_sql(sources.len(), ids.len());
            let mut stored = sqlx::query_as::<_, (String, String)>(&sql);
            for value in sources.iter().chain(&ids) {
                stored = stored.bind(*value);
            }
            // Pairs of one row's source and another's id may come back too;
            // only the rows' own keys are looked up in the set.
            let stored: HashSet<(String, String)> =
                stored.fetch_all(&mut *conn).await?.into_iter().collect();
            let sql = insert_sql(Backend::Sqlite, chunk.len(), false);
            sqlx::query_with(&sql, insert_arguments::<sqlx::Sqlite>(chunk, now_ms)?)
                .execute(&mut *conn)
                .await?;
            keys.extend(
                chunk
                    .iter()
                    .map(|row| (row.source.to_string(), row.delivery_id.clone()))
                    .filter(|key| !stored.contains(key)),
            );
        }
        Ok(keys)
    }
    .await;
    if several {
        let end = if written.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        sqlx::query(end).execute(&mut *conn).await?;
    }
    written
}

/// The stored keys among `sources` × `ids`. Two `IN` lists, not a row-value
/// `IN (VALUES …)`, which SQLite answers by scanning the whole index.
fn stored_keys_sql(sources: usize, ids: usize) -> String {
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| placeholder(Backend::Sqlite, i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT source, delivery_id FROM deliveries WHERE source IN ({}) AND delivery_id IN ({})",
        list(1, sources),
        list(1 + sources, ids)
    )
}

/// The distinct values, in their first order.
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(*v)).collect()
}

/// A multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` the keys of the
/// rows actually written.
fn insert_sql(backend: Backend, rows: usize, returning: bool) -> String {
    format!(
        "INSERT INTO deliveries \
         (source, delivery_id, event, headers, content_type, body, body_encoding, received_at, \
          next_attempt_at) VALUES {} \
         ON CONFLICT (source, delivery_id) DO NOTHING{}",
        values_placeholders(backend, 1, rows, 9),
        if returning {
            " RETURNING source, delivery_id"
        } else {
            ""
        }
    )
}

/// [`insert_sql`]'s parameters; generic so both drivers share it.
fn insert_arguments<'q, DB>(
    rows: &[&'q InboxRow],
    now_ms: i64,
) -> Result<<DB as sqlx::Database>::Arguments<'q>, sqlx::Error>
where
    DB: sqlx::Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut arguments = <DB as sqlx::Database>::Arguments::<'q>::default();
    let add = |result: Result<(), sqlx::error::BoxDynError>| result.map_err(sqlx::Error::Encode);
    for row in rows {
        add(arguments.add(&*row.source))?;
        add(arguments.add(row.delivery_id.as_str()))?;
        add(arguments.add(row.event.as_str()))?;
        add(arguments.add(row.headers.as_str()))?;
        add(arguments.add(row.content_type.as_deref()))?;
        add(arguments.add(row.body.bytes.as_ref()))?;
        add(arguments.add(row.body.encoding.as_str()))?;
        add(arguments.add(now_ms))?;
        add(arguments.add(now_ms))?;
    }
    Ok(arguments)
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

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    source: String,
    delivery_id: String,
    event: String,
    content_type: Option<String>,
    body: Vec<u8>,
    body_encoding: String,
    attempts: i64,
}

impl From<ClaimedRow> for Claimed {
    fn from(row: ClaimedRow) -> Self {
        Self {
            id: row.id,
            source: row.source,
            delivery_id: row.delivery_id,
            event: row.event,
            content_type: row.content_type,
            body: body::decode(&row.body_encoding, row.body).map_err(|e| e.to_string()),
            attempts: row.attempts,
        }
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
    let ids: Vec<i64> = with_pool!(db.writer(), |pool| {
        sqlx::query_scalar(&sql)
            .bind(owner)
            .bind(lease_until_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    });
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
    let rows: Vec<ClaimedRow> = with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_as(&sql).bind(owner);
        for id in &ids {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows.into_iter().map(Claimed::from).collect())
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

impl Finish {
    /// The history line of the attempt: its action and detail.
    fn history(&self) -> (&'static str, &str) {
        match self {
            Finish::Done {
                status, outcome, ..
            } => (status.as_str(), outcome),
            Finish::Failed { error, .. } => ("failed", error),
            Finish::RetryAt { error, .. } => ("retry", error),
        }
    }
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
        let values: Vec<_> = chunk
            .iter()
            .map(|(id, finish)| {
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
                (
                    *id,
                    status.as_str(),
                    kind,
                    outcome,
                    error,
                    processed_at,
                    next_attempt,
                )
            })
            .collect();
        let ids: Vec<i64> = with_pool!(db.writer(), |pool| {
            let mut tx = pool.begin().await?;
            let mut query = sqlx::query_scalar(&sql);
            for (id, status, kind, outcome, error, processed_at, next_attempt) in &values {
                query = query
                    .bind(*id)
                    .bind(*status)
                    .bind(*kind)
                    .bind(*outcome)
                    .bind(*error)
                    .bind(*processed_at)
                    .bind(*next_attempt);
            }
            let ids: Vec<i64> = query.bind(owner).fetch_all(&mut *tx).await?;
            // The attempt's line in the history, only where the lease held
            // (a worker that lost it recorded nothing).
            let recorded: HashSet<i64> = ids.iter().copied().collect();
            let history: Vec<_> = chunk
                .iter()
                .filter(|(id, _)| recorded.contains(id))
                .map(|(id, finish)| (*id, finish.history()))
                .collect();
            if !history.is_empty() {
                let sql = format!(
                    "INSERT INTO delivery_history (delivery_row, at, action, detail, actor) \
                     VALUES {}",
                    values_placeholders(db.backend(), 1, history.len(), 5)
                );
                let mut insert = sqlx::query(&sql);
                for (id, (action, detail)) in &history {
                    insert = insert
                        .bind(*id)
                        .bind(now_ms)
                        .bind(*action)
                        .bind(*detail)
                        .bind(owner);
                }
                insert.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            ids
        });
        updated.extend(ids);
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
    with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        for id in ids {
            released += sqlx::query(
                "UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL, \
                     attempts = attempts - 1 \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
    });
    Ok(released)
}

/// A stored delivery without its headers and body: what the admin API
/// lists, and what tests inspect.
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
    pub content_type: Option<String>,
    pub received_at: i64,
    pub next_attempt_at: i64,
    pub processed_at: Option<i64>,
    pub lease_owner: Option<String>,
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(FromRow)]
struct RecordRow {
    id: i64,
    source: String,
    delivery_id: String,
    event: String,
    status: String,
    attempts: i64,
    event_kind: Option<String>,
    outcome: Option<String>,
    last_error: Option<String>,
    content_type: Option<String>,
    received_at: i64,
    next_attempt_at: i64,
    processed_at: Option<i64>,
    lease_owner: Option<String>,
}

impl TryFrom<RecordRow> for DeliveryRecord {
    type Error = sqlx::Error;

    fn try_from(row: RecordRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            status: Status::parse(&row.status).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: format!("unknown status {:?}", row.status).into(),
            })?,
            id: row.id,
            source: row.source,
            delivery_id: row.delivery_id,
            event: row.event,
            attempts: row.attempts,
            event_kind: row.event_kind,
            outcome: row.outcome,
            last_error: row.last_error,
            content_type: row.content_type,
            received_at: row.received_at,
            next_attempt_at: row.next_attempt_at,
            processed_at: row.processed_at,
            lease_owner: row.lease_owner,
        })
    }
}

const RECORD_COLUMNS: &str =
    "id, source, delivery_id, event, status, attempts, event_kind, outcome, \
     last_error, content_type, received_at, next_attempt_at, processed_at, lease_owner";

fn records(rows: Vec<RecordRow>) -> Result<Vec<DeliveryRecord>, StoreError> {
    Ok(rows
        .into_iter()
        .map(DeliveryRecord::try_from)
        .collect::<Result<_, _>>()?)
}

/// What [`list`] narrows the inbox to; `None` leaves a field open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// The `[[sources]]` name.
    pub source: Option<&'a str>,
    pub status: Option<Status>,
    /// The sender's event name (`push`, `Push Hook`) or the normalized
    /// event kind (`image_pushed`, `pull_request`).
    pub event: Option<&'a str>,
    /// `Some(true)`: only deliveries whose GUID missed-delivery recovery
    /// asked GitHub to redeliver (`github_recoveries`); `Some(false)`: only
    /// the others.
    pub recovered: Option<bool>,
    /// Only deliveries received at or after this time (Unix ms).
    pub since: Option<i64>,
}

/// Deliveries matching `filter`, newest first: `limit` rows with ids below
/// `before` (keyset pagination, like releases and jobs).
pub async fn list(
    db: &Db,
    filter: Filter<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries \
         WHERE ($1 IS NULL OR source = $1) AND ($2 IS NULL OR status = $2) \
           AND ($3 IS NULL OR event = $3 OR event_kind = $3) AND ($4 IS NULL OR id < $4) \
           AND ($6 IS NULL OR $6 = EXISTS (SELECT 1 FROM github_recoveries r \
                WHERE r.guid = deliveries.delivery_id AND r.result = 'requested')) \
           AND ($7 IS NULL OR received_at >= $7) \
         ORDER BY id DESC LIMIT $5"
    );
    let rows: Vec<RecordRow> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(filter.source)
            .bind(filter.status.map(Status::as_str))
            .bind(filter.event)
            .bind(before)
            .bind(limit)
            .bind(filter.recovered)
            .bind(filter.since)
            .fetch_all(pool)
            .await?
    });
    records(rows)
}

/// Every delivery, oldest first: for tests, which look at a whole (small)
/// inbox in arrival order.
pub async fn all(db: &Db) -> Result<Vec<DeliveryRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries ORDER BY id");
    let rows: Vec<RecordRow> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql).fetch_all(pool).await?
    });
    records(rows)
}

/// One stored delivery in full: the record, the headers kept at ingest and
/// the body as received.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub record: DeliveryRecord,
    /// Header name (lower case) to value, as stored.
    pub headers: BTreeMap<String, String>,
    /// The exact bytes received; `Err` if the stored copy cannot be decoded.
    pub body: Result<Vec<u8>, String>,
}

#[derive(FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    record: RecordRow,
    headers: String,
    body: Vec<u8>,
    body_encoding: String,
}

/// The delivery with row id `id`, headers and body included.
pub async fn get(db: &Db, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, headers, body, body_encoding FROM deliveries WHERE id = $1"
    );
    let row: Option<DetailRow> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let headers = serde_json::from_str(&row.headers).map_err(|e| sqlx::Error::ColumnDecode {
        index: "headers".into(),
        source: Box::new(e),
    })?;
    Ok(Some(DeliveryDetail {
        record: row.record.try_into()?,
        headers,
        body: body::decode(&row.body_encoding, row.body).map_err(|e| e.to_string()),
    }))
}

/// Why a delivery could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no delivery {0}")]
    NotFound(i64),
    #[error("delivery {0} is being processed right now; replay it once it is done")]
    InProgress(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Puts a delivery back in the inbox: `pending`, due at `now_ms`, attempts
/// reset, outcome cleared, so the worker processes it again from its stored
/// body; `by` (who asked) goes in its history. A delivery leased by a live
/// worker is left alone (its outcome is about to be written); one whose
/// lease expired is taken back.
pub async fn replay(db: &Db, id: i64, now_ms: i64, by: &str) -> Result<(), ReplayError> {
    let updated = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        let updated = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
                 lease_owner = NULL, lease_expires_at = NULL, outcome = NULL, \
                 last_error = NULL, processed_at = NULL \
             WHERE id = $2 AND (lease_expires_at IS NULL OR lease_expires_at <= $1)",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        if updated == 1 {
            sqlx::query(
                "INSERT INTO delivery_history (delivery_row, at, action, detail, actor) \
                 VALUES ($1, $2, 'replayed', NULL, $3)",
            )
            .bind(id)
            .bind(now_ms)
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        updated
    });
    if updated == 1 {
        return Ok(());
    }
    let exists: Option<i64> = with_pool!(db.reader(), |pool| {
        sqlx::query_scalar("SELECT id FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::from)?
    });
    Err(match exists {
        Some(_) => ReplayError::InProgress(id),
        None => ReplayError::NotFound(id),
    })
}

/// One line of a delivery's processing history.
#[derive(Debug, Clone, serde::Serialize, FromRow)]
pub struct HistoryEntry {
    /// Unix ms.
    pub at: i64,
    /// `processed`, `ignored`, `failed`, `retry` (failed, tried again
    /// later) or `replayed`.
    pub action: String,
    /// The outcome or the error.
    pub detail: Option<String>,
    /// The worker that made the attempt, or who asked for the replay.
    pub actor: Option<String>,
}

/// The history of delivery `id`, oldest first.
pub async fn history(db: &Db, id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows: Vec<HistoryEntry> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(
            "SELECT at, action, detail, actor FROM delivery_history \
             WHERE delivery_row = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// The names of the stored headers of each of `ids`: what the dashboard
/// tells verification by (the values stay in the database).
pub async fn header_names(
    db: &Db,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<String>>, StoreError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let sql = format!(
        "SELECT id, headers FROM deliveries WHERE id IN (VALUES {})",
        values_placeholders(db.backend(), 1, ids.len(), 1)
    );
    let rows: Vec<(i64, String)> = with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_as(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|(id, headers)| {
            let headers: BTreeMap<String, serde_json::Value> = serde_json::from_str(&headers)
                .map_err(|e| sqlx::Error::ColumnDecode {
                    index: "headers".into(),
                    source: Box::new(e),
                })?;
            Ok((id, headers.into_keys().collect()))
        })
        .collect()
}

/// When the newest delivery from `source` was received (Unix ms), if any.
/// Every stored delivery passed verification.
pub async fn last_received(db: &Db, source: &str) -> Result<Option<i64>, StoreError> {
    let at: Option<i64> = with_pool!(db.reader(), |pool| {
        sqlx::query_scalar(
            "SELECT received_at FROM deliveries WHERE source = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(source)
        .fetch_optional(pool)
        .await?
    });
    Ok(at)
}

/// The body of a stored delivery exactly as it was received.
pub async fn received_body(
    db: &Db,
    source: &str,
    delivery_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row: Option<(Vec<u8>, String)> = with_pool!(db.reader(), |pool| {
        sqlx::query_as(
            "SELECT body, body_encoding FROM deliveries WHERE source = $1 AND delivery_id = $2",
        )
        .bind(source)
        .bind(delivery_id)
        .fetch_optional(pool)
        .await?
    });
    Ok(row
        .map(|(stored, encoding)| body::decode(&encoding, stored))
        .transpose()?)
}

/// How many deliveries wait to be processed.
pub async fn count_pending(db: &Db) -> Result<i64, StoreError> {
    let count: i64 = with_pool!(db.reader(), |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(pool)
            .await?
    });
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::DatabaseSettings;
    use crate::domain::DeliveryId;

    async fn connect(url: String) -> Db {
        let db = Db::connect(&DatabaseSettings {
            url,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            group_commit_max: 128,
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn row(id: &str) -> InboxRow {
        let delivery = NewDelivery {
            delivery_id: DeliveryId::parse(id).unwrap(),
            event: "push".into(),
            headers: vec![("x-github-event", "push".into())],
            content_type: Some("application/json".into()),
            body: Bytes::from_static(b"{}"),
        };
        InboxRow::new(Arc::from("github"), &delivery)
    }

    /// New rows, rows stored earlier and a repeat within the same call:
    /// each is told apart, and only the new ones are written.
    async fn tells_new_rows_from_duplicates(db: &Db) {
        let stored = [row("stored-1"), row("stored-2")];
        let first: Vec<&InboxRow> = stored.iter().collect();
        assert_eq!(insert_many(db, &first, 1).await.unwrap(), [true, true]);

        let (a, b, c) = (row("new-a"), row("new-b"), row("new-c"));
        let mixed = [&a, &stored[0], &b, &a, &stored[1], &c];
        assert_eq!(
            insert_many(db, &mixed, 2).await.unwrap(),
            [true, false, true, false, false, true]
        );
        // All duplicates: nothing written, nothing new.
        assert_eq!(insert_many(db, &[&b, &c], 3).await.unwrap(), [false, false]);
        // More rows than one statement takes, some already stored.
        let many: Vec<InboxRow> = (0..INSERT_CHUNK + 7)
            .map(|n| row(&format!("many-{n}")))
            .collect();
        let mut refs: Vec<&InboxRow> = many.iter().collect();
        refs.insert(3, &a);
        let written = insert_many(db, &refs, 4).await.unwrap();
        assert_eq!(written.iter().filter(|new| **new).count(), INSERT_CHUNK + 7);
        assert!(!written[3]);

        let count: i64 = with_pool!(db.reader(), |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(count, 5 + INSERT_CHUNK as i64 + 7);
    }

    #[tokio::test]
    async fn sqlite_insert_tells_new_rows_from_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(format!("sqlite://{}", dir.path().join("p.db").display())).await;
        tells_new_rows_from_duplicates(&db).await;
    }

    /// The look-up of stored keys before each insert seeks the unique index:
    /// a scan costs the whole table per group commit (a soak at 2,000
    /// requests/s fell behind by 1,000 deliveries a second with one).
    #[tokio::test]
    async fn sqlite_looks_up_stored_keys_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(format!("sqlite://{}", dir.path().join("p.db").display())).await;
        let sql = format!("EXPLAIN QUERY PLAN {}", stored_keys_sql(2, 3));
        let PoolRef::Sqlite(pool) = db.reader() else {
            unreachable!("a SQLite URL")
        };
        let mut plan = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql);
        for value in ["github", "gitlab", "a", "b", "c"] {
            plan = plan.bind(value);
        }
        let plan: Vec<String> = plan
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.3)
            .collect();
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN"))
                && plan.iter().any(|step| step.starts_with("SEARCH")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn postgres_insert_tells_new_rows_from_duplicates() {
        let Ok(admin) = std::env::var("PORTCALL_TEST_POSTGRES_URL") else {
            eprintln!("PORTCALL_TEST_POSTGRES_URL is not set: PostgreSQL test skipped");
            return;
        };
        let name = format!("portcall_unit_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => unreachable!("a PostgreSQL URL names its database"),
        };
        let db = connect(url).await;
        tells_new_rows_from_duplicates(&db).await;
        db.close().await;
        sqlx::query(&format!("DROP DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
    }
}
