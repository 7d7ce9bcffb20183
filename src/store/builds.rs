//! `builds` and `build_artifacts`: CI's word on which commit an image was
//! built from, by digest (or by image and tag).

use super::jobs::{self, NewJob};
use super::{with_pool, Db, StoreError};

/// A build to record.
#[derive(Debug, Clone)]
pub struct NewBuild<'a> {
    pub integration_id: &'a str,
    pub build_id: &'a str,
    pub status: &'a str,
    pub commit_sha: &'a str,
    pub test_results: Option<&'a str>,
}

/// An image a build produced.
#[derive(Debug, Clone)]
pub struct NewArtifact<'a> {
    pub name: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub image: Option<&'a str>,
    pub tag: Option<&'a str>,
}

/// Records a build and its artifacts once per (integration, build id), and
/// enqueues, in the same transaction, what `resolve` makes for each
/// delivery row whose image push matches an artifact and has no commit yet
/// (the image was pushed before the build was reported). Returns the
/// build's row id and whether it was new.
pub async fn record(
    db: &Db,
    build: &NewBuild<'_>,
    artifacts: &[NewArtifact<'_>],
    resolve: impl Fn(i64, i64) -> NewJob,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    Ok(with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        let new = sqlx::query(
            "INSERT INTO builds \
             (integration_id, build_id, status, commit_sha, test_results, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (integration_id, build_id) DO NOTHING",
        )
        .bind(build.integration_id)
        .bind(build.build_id)
        .bind(build.status)
        .bind(build.commit_sha)
        .bind(build.test_results)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM builds WHERE integration_id = $1 AND build_id = $2")
                .bind(build.integration_id)
                .bind(build.build_id)
                .fetch_one(&mut *tx)
                .await?;
        if new {
            for artifact in artifacts {
                sqlx::query(
                    "INSERT INTO build_artifacts \
                     (build_row, name, digest, image, tag, commit_sha, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(artifact.name)
                .bind(artifact.digest)
                .bind(artifact.image)
                .bind(artifact.tag)
                .bind(build.commit_sha)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let rows: Vec<i64> = sqlx::query_scalar(
                    "SELECT delivery_row FROM image_pushes WHERE commit_sha IS NULL \
                     AND (digest = $1 OR (image = $2 AND tag = $3))",
                )
                .bind(artifact.digest)
                .bind(artifact.image)
                .bind(artifact.tag)
                .fetch_all(&mut *tx)
                .await?;
                for row in rows {
                    jobs::insert!(&mut *tx, &resolve(row, id), now_ms);
                }
            }
        }
        tx.commit().await?;
        (id, new)
    }))
}

/// The commit CI reported for an image: by digest, else by image and tag;
/// the latest report wins.
pub async fn commit_for(
    db: &Db,
    digest: &str,
    image: &str,
    tag: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_scalar(
            "SELECT commit_sha FROM build_artifacts \
             WHERE digest = $1 OR (image = $2 AND tag = $3) ORDER BY id DESC LIMIT 1",
        )
        .bind(digest)
        .bind(image)
        .bind(tag)
        .fetch_optional(pool)
        .await?
    }))
}
