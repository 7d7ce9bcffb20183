//! All SQL lives here. One [`Db`] handle serves both backends through
//! sqlx's native drivers; each query is written once and compiled for both
//! with [`with_pool!`]. Dialect differences (placeholders, row locking) are
//! confined to a few [`Backend`]-matching functions. Times are Unix
//! milliseconds.

pub mod body;
pub mod builds;
pub mod deliveries;
pub mod deployments;
pub mod inbox;
pub mod installations;
pub mod jobs;
pub mod recoveries;
pub mod releases;
pub mod service_accounts;
pub mod sessions;
pub mod statuses;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::ConnectOptions;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseSettings;

/// How often, at most, the SQLite write-ahead log is checkpointed while
/// commits come in. Often, so that each pass is short: one pinned core
/// shares its time between a pass and the requests, and a pass of half a
/// second of commits (the interval until 2026-12-04) held the writer for
/// 30–60 ms, the benchmark's p99.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(20);

/// How often the log is checkpointed when nothing signals commits (writes
/// other than the inbox's group commits).
const IDLE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The log length, in frames (pages), past which a checkpoint is completed
/// through the write connection so that the log starts over (see
/// [`Db::spawn_checkpointer`]).
const WAL_RESTART_FRAMES: i64 = 1024;

/// What `journal_size_limit` cuts the log file back to when it starts over.
const WAL_KEEP_BYTES: &str = "67108864";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database the URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Failures of the database itself. Callers answer 503 and try again later:
/// nothing here is the sender's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: expected sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("the inbox writer has stopped")]
    WriterGone,
    #[error(transparent)]
    Body(#[from] body::BodyError),
    #[error("could not sync the write-ahead log")]
    Sync(#[source] std::io::Error),
}

/// Connection pools and the backend they talk to.
///
/// SQLite allows one writer at a time, and a second writer waits in a
/// sleeping busy handler: two connections competing for the lock (the inbox
/// writer and the worker) make each other slow. So on SQLite every write
/// goes through a single-connection pool, which queues writers fairly and
/// without sleeping, while reads use the shared pool beside it (WAL).
/// On PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Db {
    pools: Pools,
    /// SQLite's write-ahead log, synced by [`Db::sync_commits`].
    wal: Option<PathBuf>,
    /// Told by [`Db::sync_commits`] that the log has grown, so that the
    /// checkpointer follows the commits instead of polling.
    committed: Arc<Notify>,
}

#[derive(Debug, Clone)]
enum Pools {
    Sqlite {
        reader: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

/// A borrowed pool of either backend. Store functions run the same code on
/// both with [`with_pool!`]: native drivers, not sqlx's `Any`, whose value
/// conversions cost a third of every insert.
#[derive(Debug, Clone, Copy)]
pub enum PoolRef<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// Runs `$body` with `$pool` bound to the native pool behind a [`PoolRef`].
/// The body is compiled once per backend, so it may use anything both
/// drivers accept.
macro_rules! with_pool {
    ($pool_ref:expr, |$pool:ident| $body:expr) => {
        match $pool_ref {
            $crate::store::PoolRef::Sqlite($pool) => $body,
            $crate::store::PoolRef::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Statements cached per connection: the multi-row statements come in one
/// shape per row count.
const STATEMENT_CACHE: usize = 512;

impl Db {
    /// Connects lazily: the pool opens connections on first use, so a
    /// database that is down at start-up is reported by `migrate`, and one
    /// that goes down later by each query (and `/readyz`).
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let backend = Backend::from_url(&settings.url).ok_or(StoreError::UnsupportedUrl)?;
        let mut wal = None;
        let pools = match backend {
            Backend::Sqlite => {
                // WAL lets readers run beside the writer. NORMAL leaves the
                // log's fsync out of the commit: `sync_commits` does it
                // outside the write lock, before anyone is told "stored",
                // which is as durable as FULL and lets the next commit
                // proceed during the fsync.
                let options = SqliteConnectOptions::from_str(&settings.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(settings.acquire_timeout)
                    .pragma("journal_size_limit", WAL_KEEP_BYTES)
                    .statement_cache_capacity(STATEMENT_CACHE)
                    .log_statements(tracing::log::LevelFilter::Trace)
                    .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
                let reader = pool_options(settings, settings.max_connections)
                    .connect_lazy_with(options.clone());
                // Checkpoints move to a background task (`spawn_checkpointer`)
                // so the writer's commits do not pay for them.
                let mut wal_name = options.get_filename().as_os_str().to_owned();
                wal_name.push("-wal");
                wal = Some(PathBuf::from(wal_name));
                // The writer's connection stays open: the log file lives as
                // long as some connection does.
                let writer = pool_options(settings, 1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_lazy_with(options.pragma("wal_autocheckpoint", "0"));
                Pools::Sqlite { reader, writer }
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(&settings.url)?
                    .statement_cache_capacity(STATEMENT_CACHE)
                    .log_statements(tracing::log::LevelFilter::Trace)
                    .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
                Pools::Postgres(
                    pool_options(settings, settings.max_connections).connect_lazy_with(options),
                )
            }
        };
        Ok(Self {
            pools,
            wal,
            committed: Arc::new(Notify::new()),
        })
    }

    /// Makes every commit so far durable. On SQLite, fsyncs the write-ahead
    /// log (commits run with `synchronous = NORMAL`); on PostgreSQL commits
    /// are durable already. A log that no longer exists was checkpointed
    /// into the database file, which SQLite synced.
    pub async fn sync_commits(&self) -> Result<(), StoreError> {
        let Some(wal) = self.wal.clone() else {
            return Ok(());
        };
        self.committed.notify_one();
        let synced = tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
            Ok(file) => file.sync_data(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        })
        .await
        .map_err(|e| StoreError::Sync(std::io::Error::other(e)))?;
        synced.map_err(StoreError::Sync)
    }

    /// Applies pending migrations. On PostgreSQL sqlx holds an advisory lock
    /// meanwhile, so replicas starting together migrate once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => SQLITE_MIGRATIONS.run(writer).await?,
            Pools::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// On SQLite, starts the task that copies the write-ahead log into the
    /// database file as commits come in (at most every
    /// [`CHECKPOINT_INTERVAL`]), until `shutdown`.
    ///
    /// A passive checkpoint on a reader connection runs beside the writer
    /// instead of inside one of its commits. Under steady writes it never
    /// quite catches up (each commit appends more), so the log would never
    /// start over and would grow without bound; once it is longer than
    /// [`WAL_RESTART_FRAMES`] the checkpoint is finished through the write
    /// connection, between two commits, where nothing can append meanwhile.
    /// It has only what came in during the reader's pass left to copy, and
    /// the next commit starts the log from its beginning. PostgreSQL needs
    /// nothing of the kind.
    pub fn spawn_checkpointer(&self, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
        let Pools::Sqlite { reader, writer } = &self.pools else {
            return None;
        };
        let (reader, writer, committed) = (reader.clone(), writer.clone(), self.committed.clone());
        Some(tokio::spawn(async move {
            let checkpoint = "PRAGMA wal_checkpoint(PASSIVE)";
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = committed.notified() => {}
                    () = tokio::time::sleep(IDLE_CHECKPOINT_INTERVAL) => {}
                }
                // (busy, frames in the log, frames checkpointed)
                match sqlx::query_as::<_, (i64, i64, i64)>(checkpoint)
                    .fetch_one(&reader)
                    .await
                {
                    Ok((_, frames, _)) if frames > WAL_RESTART_FRAMES => {
                        let started = std::time::Instant::now();
                        match sqlx::query(checkpoint).execute(&writer).await {
                            Ok(_) => tracing::debug!(
                                frames,
                                writer_held_us = u64::try_from(started.elapsed().as_micros())
                                    .unwrap_or(u64::MAX),
                                "WAL checkpointed; the log starts over"
                            ),
                            Err(error) => {
                                tracing::warn!(error = %error, "WAL checkpoint failed; will retry")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "WAL checkpoint failed; will retry")
                    }
                }
                // Commits that came in meanwhile have left a permit: the
                // next pass follows, after this pause.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
                }
            }
            // Leave a short log behind for the next start.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&writer)
                .await;
        }))
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self.reader(), |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool for reads.
    pub fn reader(&self) -> PoolRef<'_> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => PoolRef::Sqlite(reader),
            Pools::Postgres(pool) => PoolRef::Postgres(pool),
        }
    }

    /// The pool for writes (a single connection on SQLite).
    pub fn writer(&self) -> PoolRef<'_> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => PoolRef::Sqlite(writer),
            Pools::Postgres(pool) => PoolRef::Postgres(pool),
        }
    }

    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { reader, writer } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

fn pool_options<DB: sqlx::Database>(
    settings: &DatabaseSettings,
    max_connections: u32,
) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // A failed query already tells us a connection is dead; a ping
        // before every acquire would cost a round trip each time.
        .test_before_acquire(false)
}

/// Placeholders for a multi-row statement: `rows` tuples of `columns`
/// values, numbered from `first`. SQLite gets anonymous `?` (bound in
/// order): with numbered ones SQLite looks each name up in a list, which is
/// quadratic in the hundreds of parameters a multi-row statement binds.
pub(crate) fn values_placeholders(
    backend: Backend,
    first: usize,
    rows: usize,
    columns: usize,
) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholder(backend, first + row * columns + column));
        }
        sql.push(')');
    }
    sql
}

/// The placeholder for parameter `n` (1-based) in a statement whose
/// parameters all appear in binding order.
pub(crate) fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
