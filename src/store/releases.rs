//! Image pushes (the version map) and releases (with their deployments).

use sqlx::FromRow;

use super::deployments::{self, Deployment};
use super::jobs::{self, NewJob};
use super::{values_placeholders, with_pool, Db, StoreError};

/// A manifest push to record, tied to the delivery it came from.
#[derive(Debug, Clone)]
pub struct NewImagePush<'a> {
    pub delivery_row: i64,
    pub source: &'a str,
    pub component: &'a str,
    pub image: String,
    pub tag: Option<&'a str>,
    /// `None` until resolved, when the payload named no digest.
    pub digest: Option<&'a str>,
    pub pushed_at: i64,
}

/// A recorded push, as the resolver and the API read it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ImagePush {
    pub id: i64,
    pub delivery_row: i64,
    pub source: String,
    pub component: String,
    pub image: String,
    pub tag: Option<String>,
    /// `None` while a push whose payload named no digest is unresolved.
    pub digest: Option<String>,
    pub pushed_at: i64,
    pub commit_sha: Option<String>,
    pub commit_origin: Option<String>,
    pub source_url: Option<String>,
    pub resolved_at: Option<i64>,
}

const PUSH_COLUMNS: &str = "id, delivery_row, source, component, image, tag, digest, pushed_at, \
     commit_sha, commit_origin, source_url, resolved_at";

/// Records a push and enqueues its resolution, atomically. A delivery
/// records one push however often it is processed. Returns the push id.
pub async fn record_push(
    db: &Db,
    push: &NewImagePush<'_>,
    resolve: &NewJob,
) -> Result<i64, StoreError> {
    let id = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO image_pushes \
             (delivery_row, source, component, image, tag, digest, pushed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_row) DO NOTHING",
        )
        .bind(push.delivery_row)
        .bind(push.source)
        .bind(push.component)
        .bind(&push.image)
        .bind(push.tag)
        .bind(push.digest)
        .bind(push.pushed_at)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM image_pushes WHERE delivery_row = $1")
            .bind(push.delivery_row)
            .fetch_one(&mut *tx)
            .await?;
        jobs::insert!(&mut *tx, resolve, push.pushed_at);
        tx.commit().await?;
        id
    });
    Ok(id)
}

/// Stores the digest a push's tag was resolved to (for payloads that named
/// none). Only fills a missing digest: a recorded one is never changed.
pub async fn set_push_digest(db: &Db, push_id: i64, digest: &str) -> Result<(), StoreError> {
    with_pool!(db.writer(), |pool| {
        sqlx::query("UPDATE image_pushes SET digest = $1 WHERE id = $2 AND digest IS NULL")
            .bind(digest)
            .bind(push_id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// The push recorded from inbox row `delivery_row`.
pub async fn push_of_delivery(db: &Db, delivery_row: i64) -> Result<Option<ImagePush>, StoreError> {
    let sql = format!("SELECT {PUSH_COLUMNS} FROM image_pushes WHERE delivery_row = $1");
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(delivery_row)
            .fetch_optional(pool)
            .await?
    }))
}

/// The newest resolved push of each of `components` whose source commit
/// is `sha`, newest first.
pub async fn latest_pushes_for_commit(
    db: &Db,
    sha: &str,
    components: &[&str],
) -> Result<Vec<ImagePush>, StoreError> {
    let mut out = Vec::new();
    for component in components {
        let sql = format!(
            "SELECT {PUSH_COLUMNS} FROM image_pushes \
             WHERE commit_sha = $1 AND component = $2 ORDER BY id DESC LIMIT 1"
        );
        let row: Option<ImagePush> = with_pool!(db.reader(), |pool| {
            sqlx::query_as(&sql)
                .bind(sha)
                .bind(*component)
                .fetch_optional(pool)
                .await?
        });
        out.extend(row);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.id));
    Ok(out)
}

/// What resolving a push decided: its source commit and the release it
/// makes, if any.
#[derive(Debug, Clone)]
pub struct Resolution<'a> {
    pub commit_sha: Option<&'a str>,
    pub commit_origin: Option<&'a str>,
    pub source_url: Option<&'a str>,
    pub release: Option<NewRelease<'a>>,
}

#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub name: &'a str,
    pub component: &'a str,
    pub image: &'a str,
    pub tag: &'a str,
    pub digest: &'a str,
    pub repository: &'a str,
}

/// Records a push's resolution, creates its release (once per component,
/// digest and tag) and enqueues the jobs `jobs` makes for the release id
/// (new or existing), in one transaction. Returns the release id, if any,
/// and whether this call created it.
pub async fn resolve_push(
    db: &Db,
    push_id: i64,
    resolution: &Resolution<'_>,
    jobs: impl FnOnce(Option<i64>) -> Vec<NewJob>,
    now_ms: i64,
) -> Result<(Option<i64>, bool), StoreError> {
    let release_id = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE image_pushes SET commit_sha = $1, commit_origin = $2, source_url = $3, \
             resolved_at = $4 WHERE id = $5",
        )
        .bind(resolution.commit_sha)
        .bind(resolution.commit_origin)
        .bind(resolution.source_url)
        .bind(now_ms)
        .bind(push_id)
        .execute(&mut *tx)
        .await?;
        let mut created = false;
        let release_id: Option<i64> = match &resolution.release {
            Some(r) => {
                created = sqlx::query(
                    "INSERT INTO releases \
                     (name, component, image, tag, digest, repository, commit_sha, source_url, \
                      created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (component, digest, tag) DO NOTHING",
                )
                .bind(r.name)
                .bind(r.component)
                .bind(r.image)
                .bind(r.tag)
                .bind(r.digest)
                .bind(r.repository)
                .bind(resolution.commit_sha)
                .bind(resolution.source_url)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM releases WHERE component = $1 AND digest = $2 AND tag = $3",
                )
                .bind(r.component)
                .bind(r.digest)
                .bind(r.tag)
                .fetch_one(&mut *tx)
                .await?;
                // A release made before its commit was known (CI reported the
                // build later) gets it now.
                sqlx::query(
                    "UPDATE releases SET commit_sha = $1, source_url = COALESCE(source_url, $2) \
                     WHERE id = $3 AND commit_sha IS NULL",
                )
                .bind(resolution.commit_sha)
                .bind(resolution.source_url)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Some(id)
            }
            None => None,
        };
        for job in jobs(release_id) {
            jobs::insert!(&mut *tx, &job, now_ms);
        }
        tx.commit().await?;
        (release_id, created)
    });
    Ok(release_id)
}

/// A release, as the API shows it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct Release {
    pub id: i64,
    pub name: String,
    pub component: String,
    pub image: String,
    pub tag: String,
    pub digest: String,
    pub repository: String,
    #[serde(rename = "commit")]
    pub commit_sha: Option<String>,
    pub source_url: Option<String>,
    /// What the CI pipeline sent along (JSON), for releases made through
    /// the API.
    #[serde(serialize_with = "raw_json", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    pub created_at: i64,
}

fn raw_json<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    value
        .as_deref()
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .serialize(s)
}

const RELEASE_COLUMNS: &str = "id, name, component, image, tag, digest, repository, commit_sha, \
     source_url, metadata, created_at";

/// Releases newest first, optionally of one component, `limit` of them
/// with ids below `before` (keyset pagination).
pub async fn list(
    db: &Db,
    component: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Release>, StoreError> {
    let sql = format!(
        "SELECT {RELEASE_COLUMNS} FROM releases \
         WHERE ($1 IS NULL OR component = $1) AND ($2 IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(component)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Release>, StoreError> {
    let sql = format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1");
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
    }))
}

/// A release an image push made, by the delivery that brought the push.
#[derive(Debug, Clone, FromRow)]
pub struct CausedRelease {
    pub delivery_row: i64,
    pub id: i64,
    pub name: String,
    pub component: String,
}

/// The releases the image pushes of `delivery_rows` made.
pub async fn of_deliveries(
    db: &Db,
    delivery_rows: &[i64],
) -> Result<Vec<CausedRelease>, StoreError> {
    if delivery_rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT p.delivery_row, r.id, r.name, r.component FROM image_pushes p \
         JOIN releases r ON r.component = p.component AND r.digest = p.digest \
             AND r.tag = p.tag \
         WHERE p.delivery_row IN (VALUES {}) ORDER BY r.id",
        values_placeholders(db.backend(), 1, delivery_rows.len(), 1)
    );
    Ok(with_pool!(db.reader(), |pool| {
        let mut query = sqlx::query_as(&sql);
        for row in delivery_rows {
            query = query.bind(*row);
        }
        query.fetch_all(pool).await?
    }))
}

/// A release with its deployment reports, newest first, as
/// `GET /api/v1/releases/{id}` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub release: Release,
    pub deployments: Vec<Deployment>,
}

/// Release `id` with its deployments, if there is one.
pub async fn get_detail(db: &Db, id: i64) -> Result<Option<ReleaseDetail>, StoreError> {
    let Some(release) = get(db, id).await? else {
        return Ok(None);
    };
    let deployments = deployments::of_release(db, id).await?;
    Ok(Some(ReleaseDetail {
        release,
        deployments,
    }))
}

/// The release of `component` for `digest` and `tag`, if there is one.
pub async fn find(
    db: &Db,
    component: &str,
    digest: &str,
    tag: &str,
) -> Result<Option<Release>, StoreError> {
    let sql = format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE component = $1 AND digest = $2 AND tag = $3"
    );
    Ok(with_pool!(db.reader(), |pool| {
        sqlx::query_as(&sql)
            .bind(component)
            .bind(digest)
            .bind(tag)
            .fetch_optional(pool)
            .await?
    }))
}

/// A release a CI pipeline asks for.
#[derive(Debug, Clone)]
pub struct ApiRelease<'a> {
    pub release: NewRelease<'a>,
    pub commit_sha: Option<&'a str>,
    pub source_url: Option<&'a str>,
    pub metadata: Option<&'a str>,
}

/// What creating a release through the API did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new release, with its jobs enqueued.
    New(i64),
    /// The same component, digest and tag were released before.
    Existing(i64),
    /// Another release already has this name.
    NameTaken(i64),
}

/// Creates a release (idempotent on component, digest and tag, like pushes)
/// and enqueues the jobs `jobs` makes for it, in one transaction. A release
/// that existed without a commit gets this one, and its jobs then.
pub async fn create(
    db: &Db,
    new: &ApiRelease<'_>,
    jobs: impl FnOnce(i64) -> Vec<NewJob>,
    now_ms: i64,
) -> Result<Created, StoreError> {
    let r = &new.release;
    let created = with_pool!(db.writer(), |pool| {
        let mut tx = pool.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM releases WHERE name = $1 \
             AND NOT (component = $2 AND digest = $3 AND tag = $4) LIMIT 1",
        )
        .bind(r.name)
        .bind(r.component)
        .bind(r.digest)
        .bind(r.tag)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = taken {
            return Ok(Created::NameTaken(id));
        }
        let inserted = sqlx::query(
            "INSERT INTO releases \
             (name, component, image, tag, digest, repository, commit_sha, source_url, metadata, \
              created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (component, digest, tag) DO NOTHING",
        )
        .bind(r.name)
        .bind(r.component)
        .bind(r.image)
        .bind(r.tag)
        .bind(r.digest)
        .bind(r.repository)
        .bind(new.commit_sha)
        .bind(new.source_url)
        .bind(new.metadata)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM releases WHERE component = $1 AND digest = $2 AND tag = $3",
        )
        .bind(r.component)
        .bind(r.digest)
        .bind(r.tag)
        .fetch_one(&mut *tx)
        .await?;
        let commit_added = !inserted
            && new.commit_sha.is_some()
            && sqlx::query(
                "UPDATE releases SET commit_sha = $1 WHERE id = $2 AND commit_sha IS NULL",
            )
            .bind(new.commit_sha)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        if inserted || commit_added {
            for job in jobs(id) {
                jobs::insert!(&mut *tx, &job, now_ms);
            }
        }
        tx.commit().await?;
        if inserted {
            Created::New(id)
        } else {
            Created::Existing(id)
        }
    });
    Ok(created)
}
