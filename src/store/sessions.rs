//! `dashboard_sessions`: signed-in browsers, stored by the SHA-256 of their
//! cookie.

use sqlx::FromRow;

use super::{with_pool, Db, StoreError};

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    /// `admin` or a service account id.
    pub caller: &'a str,
    /// For an admin session, the SHA-256 of the admin token it signed in with.
    pub admin_token_hash: Option<&'a str>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored session with what is needed to check its caller again: the
/// service account's state, when the caller is one.
#[derive(Debug, Clone, FromRow)]
pub struct StoredSession {
    pub caller: String,
    pub admin_token_hash: Option<String>,
    pub expires_at: i64,
    /// `None` for an admin session, or an account that no longer exists.
    pub account_scopes: Option<String>,
    pub account_expires_at: Option<i64>,
    pub account_revoked_at: Option<i64>,
}

/// Stores a session, and drops the sessions that expired before `now_ms`
/// (signing in is rare, so this is where the table is kept small).
pub async fn insert(db: &Db, session: &NewSession<'_>) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions \
             (token_hash, caller, admin_token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.token_hash)
        .bind(session.caller)
        .bind(session.admin_token_hash)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The session whose cookie hashes to `token_hash`, if stored.
pub async fn find(db: &Db, token_hash: &str) -> Result<Option<StoredSession>, StoreError> {
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(
            "SELECT s.caller, s.admin_token_hash, s.expires_at, a.scopes AS account_scopes, \
                    a.expires_at AS account_expires_at, a.revoked_at AS account_revoked_at \
             FROM dashboard_sessions s LEFT JOIN service_accounts a ON a.id = s.caller \
             WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await?
    }))
}

/// Ends a session (sign-out). Returns whether there was one.
pub async fn delete(db: &Db, token_hash: &str) -> Result<bool, StoreError> {
    Ok(with_pool!(db.writer(), |pool| {
        sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(pool)
            .await?
            .rows_affected()
            == 1
    }))
}
