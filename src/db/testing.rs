//! Fresh databases for tests (not part of the public API).
//!
//! Every storage test runs on SQLite (a file in a new temporary directory) and, when
//! `FLUX_TEST_DATABASE_URL` names a PostgreSQL server, also on a new database created on that
//! server for the test and dropped afterwards:
//!
//! ```no_run
//! # async fn t() -> Result<(), flux::db::DbError> {
//! use flux::db::testing::TestDatabase;
//! for test_db in TestDatabase::all().await? {
//!     let db = test_db.connect_migrated().await?;
//!     // … the same assertions on every backend …
//!     test_db.close().await;
//! }
//! # Ok(()) }
//! ```

use super::{migrate, url, Backend, Db, DbError, DbOptions};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Names the PostgreSQL server used by tests (any database on it; used as maintenance connection).
pub const PG_ENV: &str = "FLUX_TEST_DATABASE_URL";

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
    Done,
}

/// A database that exists for one test; removed by [`close`](Self::close) or on drop.
pub struct TestDatabase {
    /// URL of the fresh database.
    pub url: String,
    /// Its backend.
    pub backend: Backend,
    cleanup: Cleanup,
}

/// Writes straight to stderr: the test harness captures `eprintln!`, and a skipped backend should
/// be visible in every run.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

impl TestDatabase {
    /// A SQLite database file in a new temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = std::env::temp_dir().join(format!("flux-test-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("flux.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A new, empty PostgreSQL database on the server named by `FLUX_TEST_DATABASE_URL`, or `None`
    /// (after printing `skipping PostgreSQL: …`) when the variable is not set.
    pub async fn postgres() -> Result<Option<TestDatabase>, DbError> {
        let admin_url = match std::env::var(PG_ENV) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => {
                note(&format!("skipping PostgreSQL: {PG_ENV} is not set"));
                return Ok(None);
            }
        };
        let name = format!("flux_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection(&admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| {
                DbError::Unavailable(format!("cannot create test database {name}: {e}"))
            })?;
        Ok(Some(TestDatabase {
            url: url::with_database(&admin_url, &name)?,
            backend: Backend::Postgres,
            cleanup: Cleanup::Postgres { admin_url, name },
        }))
    }

    /// SQLite, then PostgreSQL when `FLUX_TEST_DATABASE_URL` is set.
    pub async fn all() -> Result<Vec<TestDatabase>, DbError> {
        let mut dbs = vec![TestDatabase::sqlite()];
        dbs.extend(TestDatabase::postgres().await?);
        Ok(dbs)
    }

    /// Pool options for tests: small pools, short timeouts.
    pub fn options(&self) -> DbOptions {
        DbOptions {
            url: self.url.clone(),
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// Runs the migrations, then connects.
    pub async fn connect_migrated(&self) -> Result<Db, DbError> {
        migrate::run(&self.url).await?;
        Db::connect(&self.options()).await
    }

    /// Removes the database now (preferred over drop: no helper thread).
    pub async fn close(mut self) {
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        match cleanup {
            Cleanup::Dir(dir) => remove_dir(&dir),
            Cleanup::Postgres { admin_url, name } => drop_database(&admin_url, &name).await,
            Cleanup::Done => {}
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Dir(dir) => remove_dir(&dir),
            Cleanup::Postgres { admin_url, name } => {
                // Reached when a test panics before `close`. Drop cannot await, and may run inside a
                // runtime, so use a thread with its own small runtime.
                let handle =
                    std::thread::spawn(move || match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(drop_database(&admin_url, &name)),
                        Err(e) => note(&format!("cannot drop test database {name}: {e}")),
                    });
                let _ = handle.join();
            }
            Cleanup::Done => {}
        }
    }
}

fn remove_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            note(&format!("cannot remove {}: {e}", dir.display()));
        }
    }
}

async fn admin_connection(admin_url: &str) -> Result<AsyncPgConnection, DbError> {
    let connector = super::tls::PgConnector::new(admin_url).map_err(|e| {
        DbError::Config(format!(
            "{PG_ENV} {}: {e}",
            crate::config::redact_url(admin_url)
        ))
    })?;
    match tokio::time::timeout(Duration::from_secs(10), connector.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(DbError::Unavailable(format!(
            "cannot connect to {}: {e}",
            crate::config::redact_url(admin_url)
        ))),
        Err(_) => Err(DbError::Unavailable(format!(
            "cannot connect to {}: timed out",
            crate::config::redact_url(admin_url)
        ))),
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    let result = async {
        let mut admin = admin_connection(admin_url).await?;
        // FORCE (PostgreSQL 13+) ends sessions still open from pools of the test.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .map_err(DbError::from)
    }
    .await;
    if let Err(e) = result {
        note(&format!("cannot drop test database {name}: {e:?}"));
    }
}
