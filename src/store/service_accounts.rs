//! `service_accounts`: API tokens, stored only as hashes.

use sqlx::FromRow;

use super::{with_pool, Db, StoreError};

/// A service account to create.
#[derive(Debug, Clone)]
pub struct NewServiceAccount<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    /// Space-separated scopes.
    pub scopes: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

pub async fn insert(db: &Db, account: &NewServiceAccount<'_>) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        sqlx::query(
            "INSERT INTO service_accounts \
             (id, name, description, token_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.id)
        .bind(account.name)
        .bind(account.description)
        .bind(account.token_hash)
        .bind(account.scopes)
        .bind(account.created_at)
        .bind(account.expires_at)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// A service account as stored (without its token, which is not).
#[derive(Debug, Clone, FromRow)]
pub struct ServiceAccount {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, description, scopes, created_at, expires_at, revoked_at";

/// Every service account, newest first.
pub async fn list(db: &Db) -> Result<Vec<ServiceAccount>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM service_accounts ORDER BY created_at DESC, id");
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql).fetch_all(pool).await?
    }))
}

/// The account whose token hashes to `token_hash`, revoked or not.
pub async fn by_token_hash(
    db: &Db,
    token_hash: &str,
) -> Result<Option<ServiceAccount>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM service_accounts WHERE token_hash = $1");
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
    }))
}

/// Revokes an account at once. Returns whether it existed and was active.
pub async fn revoke(db: &Db, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let revoked = with_pool!(db.writer(), |pool| {
        sqlx::query(
            "UPDATE service_accounts SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(revoked == 1)
}

/// Whether an account called `id` exists at all.
pub async fn exists(db: &Db, id: &str) -> Result<bool, StoreError> {
    let found: Option<String> = with_pool!(db.reader(), |pool| {
        sqlx::query_scalar("SELECT id FROM service_accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(found.is_some())
}
