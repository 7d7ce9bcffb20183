//! `posted_statuses`: the last commit status portcall posted per
//! repository, commit and context, so an identical one is not posted again.

use super::{with_pool, Db, StoreError};

/// The status last posted for `(repository, sha, context)`, as
/// `(state, description, target_url)`.
pub async fn posted_status(
    db: &Db,
    repository: &str,
    sha: &str,
    context: &str,
) -> Result<Option<(String, String, Option<String>)>, StoreError> {
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(
            "SELECT state, description, target_url FROM posted_statuses \
             WHERE repository = $1 AND commit_sha = $2 AND context = $3",
        )
        .bind(repository)
        .bind(sha)
        .bind(context)
        .fetch_optional(pool)
        .await?
    }))
}

/// A commit status as posted, keyed by `(repository, sha, context)`.
#[derive(Debug, Clone, Copy)]
pub struct PostedStatus<'a> {
    pub repository: &'a str,
    pub sha: &'a str,
    pub context: &'a str,
    pub state: &'a str,
    pub description: &'a str,
    pub target_url: Option<&'a str>,
}

/// Remembers a posted status (see [`posted_status`]).
pub async fn record_posted_status(
    db: &Db,
    status: &PostedStatus<'_>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let PostedStatus {
        repository,
        sha,
        context,
        state,
        description,
        target_url,
    } = *status;
    with_pool!(db.writer(), |pool| {
        sqlx::query(
            "INSERT INTO posted_statuses \
             (repository, commit_sha, context, state, description, target_url, posted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (repository, commit_sha, context) DO UPDATE SET \
             state = excluded.state, description = excluded.description, \
             target_url = excluded.target_url, posted_at = excluded.posted_at",
        )
        .bind(repository)
        .bind(sha)
        .bind(context)
        .bind(state)
        .bind(description)
        .bind(target_url)
        .bind(now_ms)
        .execute(pool)
        .await?;
    });
    Ok(())
}
