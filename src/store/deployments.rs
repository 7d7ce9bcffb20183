//! The `deployments` table: what CD reported about a release in an
//! environment, and GitHub's deployment once a report created it.

use std::collections::HashMap;

use sqlx::FromRow;

use super::jobs::{self, NewJob};
use super::{values_placeholders, with_pool, Db, StoreError};

/// A report to record.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub release_id: i64,
    pub environment: &'a str,
    /// `in_progress`, `success`, `failure` or `inactive`.
    pub state: &'a str,
    pub url: Option<&'a str>,
    pub log_url: Option<&'a str>,
    pub reported_at: i64,
}

/// A recorded report, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct Deployment {
    pub id: i64,
    pub release_id: i64,
    pub environment: String,
    pub state: String,
    pub url: Option<String>,
    pub log_url: Option<String>,
    pub reported_at: i64,
    /// GitHub's deployment this report was posted to, once known.
    pub provider_deployment_id: Option<i64>,
}

const COLUMNS: &str =
    "id, release_id, environment, state, url, log_url, reported_at, provider_deployment_id";

/// Records a report and enqueues the job `job` makes for its row id, in one
/// transaction: a report is never stored without its job, nor the reverse.
pub async fn record(
    db: &Db,
    new: &NewDeployment<'_>,
    job: impl FnOnce(i64) -> NewJob,
) -> Result<Deployment, StoreError> {
    let id: i64 = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deployments \
             (release_id, environment, state, url, log_url, reported_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(new.release_id)
        .bind(new.environment)
        .bind(new.state)
        .bind(new.url)
        .bind(new.log_url)
        .bind(new.reported_at)
        .fetch_one(&mut *tx)
        .await?;
        jobs::insert!(&mut *tx, &job(id), new.reported_at);
        tx.commit().await?;
        id
    });
    Ok(Deployment {
        id,
        release_id: new.release_id,
        environment: new.environment.to_owned(),
        state: new.state.to_owned(),
        url: new.url.map(str::to_owned),
        log_url: new.log_url.map(str::to_owned),
        reported_at: new.reported_at,
        provider_deployment_id: None,
    })
}

/// A release's reports, newest first.
pub async fn of_release(db: &Db, release_id: i64) -> Result<Vec<Deployment>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM deployments WHERE release_id = $1 ORDER BY id DESC");
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(release_id)
            .fetch_all(pool)
            .await?
    }))
}

/// The reports of each of `release_ids`, newest first.
pub async fn of_releases(
    db: &Db,
    release_ids: &[i64],
) -> Result<HashMap<i64, Vec<Deployment>>, StoreError> {
    if release_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM deployments WHERE release_id IN (VALUES {}) ORDER BY id DESC",
        values_placeholders(db.backend(), 1, release_ids.len(), 1)
    );
    let rows: Vec<Deployment> = with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_as(&sql);
        for id in release_ids {
            query = query.bind(*id);
        }
        query.fetch_all(pool).await?
    });
    let mut by_release: HashMap<i64, Vec<Deployment>> = HashMap::new();
    for row in rows {
        by_release.entry(row.release_id).or_default().push(row);
    }
    Ok(by_release)
}

/// The provider deployment an earlier report of `release_id` in
/// `environment` created, if any. Read from the writer: the report that
/// stored it may have committed a moment ago.
pub async fn provider_deployment(
    db: &Db,
    release_id: i64,
    environment: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(with_pool!(db.writer(), |pool| {
        sqlx::query_scalar(
            "SELECT provider_deployment_id FROM deployments \
             WHERE release_id = $1 AND environment = $2 AND provider_deployment_id IS NOT NULL \
             ORDER BY id LIMIT 1",
        )
        .bind(release_id)
        .bind(environment)
        .fetch_optional(pool)
        .await?
    }))
}

/// Remembers that report `id` was posted to the provider's deployment
/// `provider_id`.
pub async fn set_provider_deployment(db: &Db, id: i64, provider_id: i64) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        sqlx::query("UPDATE deployments SET provider_deployment_id = $1 WHERE id = $2")
            .bind(provider_id)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}
