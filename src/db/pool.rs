//! Connection pools for both backends.

use super::tls::PgConnector;
use super::url::{self, Target};
use super::{Backend, Conn, DbError};
use deadpool::Runtime;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as ManagerError, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The SQLite connection type: diesel's sync connection run on tokio's blocking pool.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// How to reach the database and how big the pools are.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite://relative/path.db`, `sqlite:///abs/path.db`, `postgres://…` or `postgresql://…`.
    pub url: String,
    /// PostgreSQL pool size; for SQLite the reader pool size (at least 2; there is one writer).
    pub max_connections: u32,
    /// SQLite `busy_timeout`: how long a statement waits for another process's lock.
    pub busy_timeout: Duration,
    /// Upper bound for getting a connection (wait, connect and health check each).
    pub acquire_timeout: Duration,
}

impl DbOptions {
    /// Options with the defaults flux uses: 10 connections, 5 s busy timeout, 5 s acquire timeout.
    pub fn new(url: impl Into<String>) -> Self {
        DbOptions {
            url: url.into(),
            max_connections: 10,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl From<&crate::config::DatabaseSettings> for DbOptions {
    /// The one conversion from the `[database]` settings, for the server and every CLI command.
    fn from(s: &crate::config::DatabaseSettings) -> Self {
        DbOptions {
            url: s.url.clone(),
            max_connections: s.max_connections,
            busy_timeout: Duration::from_millis(s.busy_timeout_ms),
            acquire_timeout: Duration::from_millis(s.acquire_timeout_ms),
        }
    }
}

/// Occupancy of the pools (SQLite: writer and readers added together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections currently open.
    pub size: usize,
    /// Open connections not in use.
    pub available: usize,
    /// The most connections the pools will open.
    pub max: usize,
}

#[derive(Clone)]
enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    // SQLite allows one writer at a time; a single writer connection makes writers queue in the
    // pool (in order, with acquire_timeout) instead of failing with SQLITE_BUSY, while WAL lets the
    // readers run beside it.
    Sqlite {
        writer: Pool<SqliteConn>,
        reader: Pool<SqliteConn>,
    },
}

/// A handle to the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Db {
    pools: Pools,
    acquire_timeout: Duration,
    /// The URL with the password redacted, for error messages.
    target: Arc<str>,
}

/// A connection checked out of a pool; returns to the pool on drop.
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived, one per request; boxing would allocate on every checkout"
)]
pub enum PooledConn {
    /// A PostgreSQL connection.
    Postgres(Object<AsyncPgConnection>),
    /// A SQLite connection (the writer, or one of the readers).
    Sqlite(Object<SqliteConn>),
}

impl PooledConn {
    /// Borrows the connection for a query; see the [`db!`](crate::db!) macro.
    pub fn as_conn(&mut self) -> Conn<'_> {
        match self {
            PooledConn::Postgres(c) => Conn::Postgres(c),
            PooledConn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            PooledConn::Postgres(_) => Backend::Postgres,
            PooledConn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back on `Err`.
    ///
    /// On SQLite the transaction starts with `BEGIN IMMEDIATE`, so it holds the write lock from the
    /// start and never fails half-way with `SQLITE_BUSY` when another process writes too.
    /// Use it on a connection from [`Db::get_write`] (a reader connection is read-only on SQLite).
    pub async fn transaction<R, E, F>(&mut self, f: F) -> Result<R, E>
    where
        F: for<'r> AsyncFnOnce(Conn<'r>) -> Result<R, E> + for<'r> TxFn<'r, Result<R, E>> + Send,
        E: From<diesel::result::Error> + Send,
        R: Send,
    {
        match self {
            PooledConn::Postgres(c) => {
                let c: &mut AsyncPgConnection = c;
                c.transaction(async move |c| f(Conn::Postgres(c)).await)
                    .await
            }
            PooledConn::Sqlite(c) => {
                let c: &mut SqliteConn = c;
                c.immediate_transaction(async move |c| f(Conn::Sqlite(c)).await)
                    .await
            }
        }
    }
}

/// A transaction body: an async closure taking a [`Conn`] whose future is `Send`.
///
/// Implemented for every such closure; it exists only to spell the `Send` bound (the same device
/// diesel-async uses for its own `transaction`).
pub trait TxFn<'r, R>: FnOnce(Conn<'r>) -> <Self as TxFn<'r, R>>::Fut {
    /// The future the closure returns.
    type Fut: Future<Output = R> + Send;
}

impl<'r, F, Fut, R> TxFn<'r, R> for F
where
    F: FnOnce(Conn<'r>) -> Fut,
    Fut: Future<Output = R> + Send,
{
    type Fut = Fut;
}

impl Db {
    /// Opens the pools and checks that one connection can be made. Does not run migrations.
    ///
    /// For SQLite the parent directory of the file is created when missing, and the file itself on
    /// first connection.
    pub async fn connect(options: &DbOptions) -> Result<Db, DbError> {
        let target = url::parse(&options.url)?;
        let redacted: Arc<str> = crate::config::redact_url(&options.url).into();
        let pools = match &target {
            Target::Postgres(pg_url) => {
                let mut config = ManagerConfig::default();
                // Check each connection with `SELECT 1` when it leaves the pool: a connection the
                // server dropped (restart, failover, idle kill) is discarded and replaced instead
                // of failing the caller's query. One round trip is cheap next to a failed request.
                config.recycling_method = RecyclingMethod::Verified;
                let connector = PgConnector::new(pg_url)
                    .map_err(|e| DbError::Config(format!("database URL {redacted}: {e}")))?;
                tracing::debug!(sslmode = %connector.mode(), "PostgreSQL TLS mode");
                // The manager's URL is unused: every connection comes from the connector, which
                // holds the parsed config and the TLS client built once for the pool.
                config.custom_setup = Box::new(move |_url: &str| {
                    let connector = connector.clone();
                    Box::pin(async move { connector.connect().await })
                });
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
                    pg_url.as_str(),
                    config,
                );
                let pool = build_pool(manager, options.max_connections.max(1), options)?;
                Pools::Postgres(pool)
            }
            Target::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        DbError::Config(format!(
                            "cannot create directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                let path = path.to_str().ok_or_else(|| {
                    DbError::Config(format!("SQLite path is not UTF-8: {}", path.display()))
                })?;
                let writer = build_pool(
                    sqlite_manager(path, options.busy_timeout, false),
                    1,
                    options,
                )?;
                let reader = build_pool(
                    sqlite_manager(path, options.busy_timeout, true),
                    options.max_connections.max(2),
                    options,
                )?;
                Pools::Sqlite { writer, reader }
            }
        };
        let db = Db {
            pools,
            acquire_timeout: options.acquire_timeout,
            target: redacted,
        };
        // Fail at startup with a clear message rather than on the first request. For SQLite this
        // also creates the file and switches it to WAL before any reader opens it.
        db.get_write().await?;
        tracing::debug!(backend = %db.backend(), target = %db.target, "database pools ready");
        Ok(db)
    }

    /// Which backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// A connection for queries that only read (SQLite: a read-only reader connection).
    pub async fn get_read(&self) -> Result<PooledConn, DbError> {
        match &self.pools {
            Pools::Postgres(pool) => Ok(PooledConn::Postgres(self.checkout(pool).await?)),
            Pools::Sqlite { reader, .. } => Ok(PooledConn::Sqlite(self.checkout(reader).await?)),
        }
    }

    /// A connection for queries that write (SQLite: the single writer connection).
    pub async fn get_write(&self) -> Result<PooledConn, DbError> {
        match &self.pools {
            Pools::Postgres(pool) => Ok(PooledConn::Postgres(self.checkout(pool).await?)),
            Pools::Sqlite { writer, .. } => Ok(PooledConn::Sqlite(self.checkout(writer).await?)),
        }
    }

    /// Runs `f` in a transaction on a write connection; see [`PooledConn::transaction`].
    pub async fn transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'r> AsyncFnOnce(Conn<'r>) -> Result<R, E> + for<'r> TxFn<'r, Result<R, E>> + Send,
        E: From<diesel::result::Error> + From<DbError> + Send,
        R: Send,
    {
        let mut conn = self.get_write().await?;
        conn.transaction(f).await
    }

    /// `SELECT 1` on a read connection, bounded by `acquire_timeout` as a whole.
    ///
    /// Broken connections are dropped by the pool, so after the server comes back the next ping
    /// succeeds without restarting the process.
    pub async fn ping(&self) -> Result<(), DbError> {
        use diesel::IntoSql;
        use diesel_async::RunQueryDsl;

        let probe = async {
            let mut conn = self.get_read().await?;
            let one: i32 = crate::db!(conn, |c| {
                diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                    .get_result(c)
                    .await
            })?;
            debug_assert_eq!(one, 1);
            Ok::<(), DbError>(())
        };
        match tokio::time::timeout(self.acquire_timeout, probe).await {
            Ok(result) => result,
            Err(_) => Err(DbError::Unavailable(format!(
                "{}: no answer within {:?}",
                self.target, self.acquire_timeout
            ))),
        }
    }

    /// Current pool occupancy (for `/health` and metrics).
    pub fn pool_stats(&self) -> PoolStats {
        match &self.pools {
            Pools::Postgres(pool) => {
                let s = pool.status();
                PoolStats {
                    size: s.size,
                    available: s.available,
                    max: s.max_size,
                }
            }
            Pools::Sqlite { writer, reader } => {
                let (w, r) = (writer.status(), reader.status());
                PoolStats {
                    size: w.size + r.size,
                    available: w.available + r.available,
                    max: w.max_size + r.max_size,
                }
            }
        }
    }

    async fn checkout<C>(&self, pool: &Pool<C>) -> Result<Object<C>, DbError>
    where
        C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
        AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
    {
        pool.get().await.map_err(|e| self.unavailable(e))
    }

    fn unavailable(&self, error: PoolError) -> DbError {
        let reason = match error {
            PoolError::Timeout(_) => format!(
                "no database connection available within {:?}",
                self.acquire_timeout
            ),
            PoolError::Backend(e) => e.to_string(),
            PoolError::Closed => "the pool is closed".to_owned(),
            PoolError::NoRuntimeSpecified => "the pool has no runtime".to_owned(),
            PoolError::PostCreateHook(e) => e.to_string(),
        };
        DbError::Unavailable(format!("cannot connect to {}: {reason}", self.target))
    }
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    max_size: u32,
    options: &DbOptions,
) -> Result<Pool<C>, DbError>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = ManagerError>,
{
    let timeout = Some(options.acquire_timeout);
    Pool::builder(manager)
        .max_size(usize::try_from(max_size).unwrap_or(usize::MAX))
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Config(format!("cannot build the connection pool: {e}")))
}

/// A SQLite manager whose connections get flux's PRAGMAs (readers are also made read-only, so a
/// write on a reader fails in tests instead of contending with the writer in production).
fn sqlite_manager(
    path: &str,
    busy_timeout: Duration,
    read_only: bool,
) -> AsyncDieselConnectionManager<SqliteConn> {
    let pragmas = sqlite_pragmas(busy_timeout, read_only);
    let mut config = ManagerConfig::<SqliteConn>::default();
    // A local file does not drop connections; skip the per-checkout `SELECT 1`.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |path: &str| {
        let pragmas = pragmas.clone();
        Box::pin(async move {
            let mut conn = SqliteConn::establish(path).await?;
            conn.batch_execute(&pragmas)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    AsyncDieselConnectionManager::new_with_config(path, config)
}

/// PRAGMAs for every SQLite connection (flux's pools and the migration connection).
pub(crate) fn sqlite_pragmas(busy_timeout: Duration, read_only: bool) -> String {
    // busy_timeout first, so switching to WAL waits for a lock instead of failing.
    let mut pragmas = format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON;",
        busy_timeout.as_millis()
    );
    if read_only {
        pragmas.push_str(" PRAGMA query_only = ON;");
    }
    pragmas
}
