//! `github_recoveries`: the GitHub deliveries portcall asked GitHub to
//! redeliver, one row per GUID. The row is inserted before the request and
//! the unique GUID makes the insert the "once" of "once each": whoever
//! inserts it (this replica or another, before or after a restart) asks;
//! everyone else skips.

use super::{with_pool, Db, StoreError};

/// Why a delivery is being recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryReason {
    /// GitHub delivered it, but portcall holds no row for its GUID.
    Missing,
    /// GitHub's attempt failed (portcall unreachable or answered non-2xx).
    Failed,
}

impl RecoveryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Failed => "failed",
        }
    }
}

/// What came of a redelivery request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryResult {
    /// GitHub accepted the request; the delivery arrives again by webhook.
    Requested,
    /// GitHub refused (e.g. 422, too old) or the request failed; not retried.
    Failed,
}

impl RecoveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Failed => "failed",
        }
    }
}

/// Whether a delivery with GUID `guid` is stored for any of `sources`
/// (the `github`-kind sources).
pub async fn is_stored(db: &Db, sources: &[String], guid: &str) -> Result<bool, StoreError> {
    if sources.is_empty() {
        return Ok(false);
    }
    let placeholders: Vec<String> = (0..sources.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT COUNT(*) FROM deliveries WHERE delivery_id = $1 AND source IN ({})",
        placeholders.join(", ")
    );
    let count: i64 = with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_scalar(&sql).bind(guid);
        for source in sources {
            query = query.bind(source);
        }
        query.fetch_one(pool).await?
    });
    Ok(count > 0)
}

/// Claims the right to ask for `guid`'s redelivery: `true` if this call
/// inserted the row, `false` if it was asked for before.
pub async fn claim(
    db: &Db,
    guid: &str,
    hook_delivery_id: i64,
    reason: RecoveryReason,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let rows = with_pool!(db.writer(), |pool| {
        sqlx::query(
            "INSERT INTO github_recoveries (guid, hook_delivery_id, reason, requested_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (guid) DO NOTHING",
        )
        .bind(guid)
        .bind(hook_delivery_id)
        .bind(reason.as_str())
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(rows == 1)
}

/// Records what came of the request for `guid`.
pub async fn record(
    db: &Db,
    guid: &str,
    result: RecoveryResult,
    error: Option<&str>,
) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        sqlx::query("UPDATE github_recoveries SET result = $1, last_error = $2 WHERE guid = $3")
            .bind(result.as_str())
            .bind(error)
            .bind(guid)
            .execute(pool)
            .await?;
    });
    Ok(())
}
