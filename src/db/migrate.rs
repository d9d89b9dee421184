//! Embedded schema migrations (`migrations/sqlite` and `migrations/postgres`, same version names).
//!
//! For the CLI (`flux migrate …`) and for startup. Each function opens its own connection from the
//! URL, so it can run before the pools exist.
//!
//! The work runs on tokio's blocking pool: diesel's migration harness is synchronous, and for
//! PostgreSQL diesel-async bridges it with `block_in_place`, which panics on a current-thread
//! runtime's own thread but is fine on a blocking-pool thread. So these functions work from any
//! tokio runtime (the tests use both kinds); the CLI calls them from `#[tokio::main]`, before the
//! HTTP workers start.

use super::pool::sqlite_pragmas;
use super::tls::PgConnector;
use super::url::{self, Target};
use super::DbError;
use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::{Connection, SqliteConnection};
use diesel_async::AsyncMigrationHarness;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// SQLite migrations, compiled into the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// PostgreSQL migrations, compiled into the binary.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long to wait for the migration connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a migration waits for another SQLite writer's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Full name, e.g. `2026-11-25-000000_init`.
    pub name: String,
    /// Version part of the name, e.g. `2026-11-25-000000`.
    pub version: String,
    /// Whether it is applied.
    pub applied: bool,
}

enum Action {
    Run,
    Status,
    Revert(usize),
}

enum Outcome {
    Names(Vec<String>),
    States(Vec<MigrationState>),
}

/// Applies every pending migration; returns their names in the order applied (empty when the
/// schema is up to date).
pub async fn run(url: &str) -> Result<Vec<String>, DbError> {
    match execute(url, Action::Run).await? {
        Outcome::Names(names) => Ok(names),
        Outcome::States(_) => Err(DbError::Migration("unexpected outcome".to_owned())),
    }
}

/// Lists every migration this build knows, oldest first, with whether it is applied. Versions
/// applied to the database but unknown to this build are listed last as
/// `<version> (unknown to this build)`.
pub async fn status(url: &str) -> Result<Vec<MigrationState>, DbError> {
    match execute(url, Action::Status).await? {
        Outcome::States(states) => Ok(states),
        Outcome::Names(_) => Err(DbError::Migration("unexpected outcome".to_owned())),
    }
}

/// Reverts the last `steps` applied migrations (fewer if fewer are applied); returns their names
/// in the order reverted.
pub async fn revert(url: &str, steps: usize) -> Result<Vec<String>, DbError> {
    match execute(url, Action::Revert(steps)).await? {
        Outcome::Names(names) => Ok(names),
        Outcome::States(_) => Err(DbError::Migration("unexpected outcome".to_owned())),
    }
}

/// What opening the database does about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply whatever is pending (the embedded SQLite default outside production).
    Migrate,
    /// Leave the schema alone and refuse to go on while migrations are pending: they are their
    /// own phase (`flux migrate run`), so several processes never race on them.
    RequireCurrent,
}

impl Schema {
    /// What a process started with `settings` may do: migrate only where `flux serve` would by
    /// itself (see [`Settings::migrates_on_start`](crate::config::Settings::migrates_on_start)).
    pub fn on_start(settings: &crate::config::Settings) -> Schema {
        if settings.migrates_on_start() {
            Schema::Migrate
        } else {
            Schema::RequireCurrent
        }
    }
}

/// Brings the schema up to date ([`Schema::Migrate`]) or checks that it is
/// ([`Schema::RequireCurrent`]: [`DbError::SchemaBehind`] names what is pending). Returns the
/// migrations applied.
pub async fn prepare(url: &str, schema: Schema) -> Result<Vec<String>, DbError> {
    match schema {
        Schema::Migrate => run(url).await,
        Schema::RequireCurrent => {
            let pending: Vec<String> = status(url)
                .await?
                .into_iter()
                .filter(|m| !m.applied)
                .map(|m| m.name)
                .collect();
            if pending.is_empty() {
                Ok(Vec::new())
            } else {
                Err(DbError::SchemaBehind { pending })
            }
        }
    }
}

async fn execute(url: &str, action: Action) -> Result<Outcome, DbError> {
    let redacted = crate::config::redact_url(url);
    match url::parse(url)? {
        Target::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    DbError::Config(format!("cannot create directory {}: {e}", parent.display()))
                })?;
            }
            blocking(move || {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)
                    .map_err(|e| DbError::Unavailable(format!("cannot open {redacted}: {e}")))?;
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    &sqlite_pragmas(SQLITE_BUSY_TIMEOUT, false),
                )
                .map_err(|e| DbError::Unavailable(format!("cannot set up {redacted}: {e}")))?;
                apply(&mut conn, &SQLITE_MIGRATIONS, action)
            })
            .await
        }
        Target::Postgres(pg_url) => {
            let connector = PgConnector::new(&pg_url)
                .map_err(|e| DbError::Config(format!("database URL {redacted}: {e}")))?;
            let conn = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect())
                .await
                .map_err(|_| {
                    DbError::Unavailable(format!(
                        "cannot connect to {redacted}: no answer within {CONNECT_TIMEOUT:?}"
                    ))
                })?
                .map_err(|e| DbError::Unavailable(format!("cannot connect to {redacted}: {e}")))?;
            blocking(move || {
                // Built here: the harness captures the runtime handle of the thread it is made on.
                let mut harness = AsyncMigrationHarness::new(conn);
                apply(&mut harness, &POSTGRES_MIGRATIONS, action)
            })
            .await
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
}

fn apply<DB, H>(
    harness: &mut H,
    source: &EmbeddedMigrations,
    action: Action,
) -> Result<Outcome, DbError>
where
    DB: Backend,
    H: MigrationHarness<DB>,
{
    let failed = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
        DbError::Migration(format!("{what}: {e}"))
    };
    let mut known: Vec<Box<dyn Migration<DB>>> = MigrationSource::<DB>::migrations(source)
        .map_err(|e| failed("cannot read the embedded migrations", e))?;
    known.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    let applied: Vec<String> = harness
        .applied_migrations()
        .map_err(|e| failed("cannot read the applied migrations", e))?
        .iter()
        .map(ToString::to_string)
        .collect();
    let is_applied = |m: &dyn Migration<DB>| applied.contains(&m.name().version().to_string());

    match action {
        Action::Run => {
            let mut done = Vec::new();
            for migration in known.iter().filter(|m| !is_applied(m.as_ref())) {
                let name = migration.name().to_string();
                harness
                    .run_migration(migration.as_ref())
                    .map_err(|e| failed(&format!("{name} did not apply"), e))?;
                tracing::info!(migration = %name, "applied migration");
                done.push(name);
            }
            Ok(Outcome::Names(done))
        }
        Action::Status => {
            let mut states: Vec<MigrationState> = known
                .iter()
                .map(|m| MigrationState {
                    name: m.name().to_string(),
                    version: m.name().version().to_string(),
                    applied: is_applied(m.as_ref()),
                })
                .collect();
            let mut unknown: Vec<&String> = applied
                .iter()
                .filter(|v| !states.iter().any(|s| &s.version == *v))
                .collect();
            unknown.sort();
            states.extend(unknown.into_iter().map(|v| MigrationState {
                name: format!("{v} (unknown to this build)"),
                version: v.clone(),
                applied: true,
            }));
            Ok(Outcome::States(states))
        }
        Action::Revert(steps) => {
            let mut done = Vec::new();
            // `applied` is newest first.
            for version in applied.iter().take(steps) {
                let migration = known
                    .iter()
                    .find(|m| &m.name().version().to_string() == version)
                    .ok_or_else(|| {
                        DbError::Migration(format!(
                            "cannot revert {version}: this build does not know that migration"
                        ))
                    })?;
                let name = migration.name().to_string();
                harness
                    .revert_migration(migration.as_ref())
                    .map_err(|e| failed(&format!("{name} did not revert"), e))?;
                tracing::info!(migration = %name, "reverted migration");
                done.push(name);
            }
            Ok(Outcome::Names(done))
        }
    }
}
