//! Storage errors.
//!
//! `Display` never carries SQL text or row values: the API layer may log it and maps the variant to a
//! status (`Unavailable` → 503, `NotFound` → 404, `UniqueViolation` → 409, the rest → 500). The
//! underlying driver error stays reachable through `source()` / `Debug` for the logs.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind};

/// Error of every `flux::db` operation.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached in time: pool timeout, connect failure, lost connection,
    /// or SQLite still locked after `busy_timeout`. Retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query that expects one row found none.
    #[error("record not found")]
    NotFound,
    /// An insert or update collided with a unique constraint. `constraint` is for logs only and
    /// differs per backend: PostgreSQL gives the constraint name (`users_email_key`), SQLite the
    /// columns (`users.email`).
    #[error("unique constraint violated")]
    UniqueViolation {
        /// Which constraint, when the backend says (see above).
        constraint: Option<String>,
    },
    /// A row referenced a missing parent, or a parent still has children.
    #[error("foreign key constraint violated")]
    ForeignKeyViolation {
        /// Which constraint, when the backend says (PostgreSQL only).
        constraint: Option<String>,
    },
    /// Any other query failure (including CHECK violations and bad data).
    #[error("database query failed")]
    Query(#[source] diesel::result::Error),
    /// The database URL or pool settings are unusable.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// Running, reverting or listing migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Migrations are pending and this process may not apply them.
    #[error(
        "the database schema is behind ({} pending: {}); run `flux migrate run`",
        pending.len(),
        pending.join(", ")
    )]
    SchemaBehind {
        /// The pending migrations, oldest first.
        pending: Vec<String>,
    },
}

impl DbError {
    /// True when retrying later may help (the API answers 503 rather than 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}

/// SQLite reports a lock that outlived `busy_timeout` as a plain error with these texts.
fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// PostgreSQL names the constraint; SQLite puts the columns into the message
/// (`UNIQUE constraint failed: users.email`).
fn constraint_of(info: &(dyn DatabaseErrorInformation + Send + Sync)) -> Option<String> {
    if let Some(name) = info.constraint_name() {
        return Some(name.to_owned());
    }
    info.message()
        .split_once("constraint failed: ")
        .map(|(_, cols)| cols.trim().to_owned())
}

impl From<diesel::result::Error> for DbError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::Error;
        match error {
            Error::NotFound => DbError::NotFound,
            Error::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation => DbError::UniqueViolation {
                    constraint: constraint_of(info.as_ref()),
                },
                DatabaseErrorKind::ForeignKeyViolation => DbError::ForeignKeyViolation {
                    constraint: constraint_of(info.as_ref()),
                },
                // Messages of these kinds describe the transport, not the query.
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    DbError::Unavailable(info.message().to_owned())
                }
                _ if is_sqlite_busy(info.message()) => {
                    DbError::Unavailable("database is locked".to_owned())
                }
                kind => DbError::Query(Error::DatabaseError(kind, info)),
            },
            other => DbError::Query(other),
        }
    }
}
