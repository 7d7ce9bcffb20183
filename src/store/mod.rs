//! All SQL lives here. One [`Db`] handle over sqlx's `Any` driver serves
//! both backends with the same queries (sqlx accepts `$1` placeholders on
//! SQLite too); the few dialect differences are confined to
//! [`Backend`]-matching functions. Times are Unix milliseconds.

pub mod body;
pub mod deliveries;
pub mod inbox;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseSettings;

/// How often the SQLite write-ahead log is checkpointed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

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
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects lazily: the pool opens connections on first use, so a
    /// database that is down at start-up is reported by `migrate`, and one
    /// that goes down later by each query (and `/readyz`).
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(&settings.url).ok_or(StoreError::UnsupportedUrl)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(&settings.url),
            Backend::Postgres => settings.url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = Self::pool_options(backend, settings, settings.max_connections, "")
            .connect_lazy_with(options.clone());
        let writer = match backend {
            // Checkpoints move to a background task (see `spawn_checkpointer`)
            // so the writer's commits do not pay for them.
            Backend::Sqlite => {
                Self::pool_options(backend, settings, 1, "PRAGMA wal_autocheckpoint = 0;")
                    .connect_lazy_with(options)
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    fn pool_options(
        backend: Backend,
        settings: &DatabaseSettings,
        max_connections: u32,
        extra_pragmas: &'static str,
    ) -> AnyPoolOptions {
        let busy_ms = settings.acquire_timeout.as_millis();
        AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A failed query already tells us a connection is dead; a ping
            // before every acquire would cost a round trip each time.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes
                        // every commit durable before the sender hears 2xx.
                        conn.execute(
                            format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {busy_ms}; \
                                 PRAGMA journal_size_limit = 67108864; {extra_pragmas}"
                            )
                            .as_str(),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
    }

    /// Applies pending migrations. On PostgreSQL sqlx holds an advisory lock
    /// meanwhile, so replicas starting together migrate once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// On SQLite, starts the task that copies the write-ahead log into the
    /// database file, every [`CHECKPOINT_INTERVAL`], until `shutdown`.
    /// A passive checkpoint runs beside the writer instead of inside one of
    /// its commits, on the other core. PostgreSQL needs nothing of the kind.
    pub fn spawn_checkpointer(&self, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let pool = self.pool.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %error, "WAL checkpoint failed; will retry");
                }
            }
            // Leave a short log behind for the next start.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await;
        }))
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes (a single connection on SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
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

/// Creates the SQLite file if it is missing, as the default configuration
/// promises (`sqlite://portcall.db` just works).
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
