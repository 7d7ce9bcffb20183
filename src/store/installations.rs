//! `github_installations`: which GitHub App installation covers a
//! repository, learnt from webhook payloads and read back at start-up.

use super::{with_pool, Db, StoreError};

/// Remembers which GitHub App installation covers `repository`.
pub async fn remember_installation(
    db: &Db,
    repository: &str,
    installation_id: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        sqlx::query(
            "INSERT INTO github_installations (repository, installation_id, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (repository) DO UPDATE SET \
             installation_id = excluded.installation_id, updated_at = excluded.updated_at \
             WHERE github_installations.installation_id <> excluded.installation_id",
        )
        .bind(repository)
        .bind(installation_id)
        .bind(now_ms)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Every remembered installation, `(owner/repo, installation id)`.
pub async fn installations(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as("SELECT repository, installation_id FROM github_installations")
            .fetch_all(pool)
            .await?
    }))
}
