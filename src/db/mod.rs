//! Storage: one query code over SQLite and PostgreSQL (diesel 2.3 + diesel-async 0.9).
//!
//! - [`Db`] holds the pools: PostgreSQL is a deadpool of pure-Rust `AsyncPgConnection`s; SQLite is
//!   one writer connection plus a few read-only readers (WAL), run on tokio's blocking pool.
//! - [`Conn`] borrows a connection of either backend, and the [`db!`](crate::db!) macro expands
//!   one query body once per backend, so the compiler checks every query against both.
//! - [`schema`] is the one table definition for both; [`types`] maps `DateTime<Utc>` and
//!   `serde_json::Value` onto both; [`migrate`] runs the embedded migrations.
//!
//! # Usage
//!
//! ```no_run
//! use diesel::prelude::*;
//! use diesel_async::RunQueryDsl; // explicitly: a glob import next to diesel's prelude is ambiguous
//! use flux::db::{schema::users, Db, DbError, DbOptions};
//!
//! async fn user_name(db: &Db, id: &str) -> Result<String, DbError> {
//!     let mut conn = db.get_read().await?;
//!     let name = flux::db!(conn, |c| {
//!         users::table
//!             .filter(users::id.eq(id))
//!             .select(users::name)
//!             .first::<String>(c)
//!             .await
//!     })?;
//!     Ok(name)
//! }
//!
//! async fn rename(db: &Db, id: &str, new_name: &str) -> Result<(), DbError> {
//!     // Writes go through `get_write` or `transaction` (SQLite has one writer connection).
//!     db.transaction(async move |mut conn| {
//!         let now = flux::db::now();
//!         let n = flux::db!(conn, |c| {
//!             diesel::update(users::table.find(id))
//!                 .set((users::name.eq(new_name), users::updated_at.eq(now)))
//!                 .execute(c)
//!                 .await
//!         })?;
//!         if n == 0 { Err(DbError::NotFound) } else { Ok(()) }
//!     })
//!     .await
//! }
//!
//! # async fn run() -> Result<(), DbError> {
//! let db = Db::connect(&DbOptions::new("sqlite://data/flux.db")).await?;
//! rename(&db, "u1", "Ada").await?;
//! assert_eq!(user_name(&db, "u1").await?, "Ada");
//! # Ok(()) }
//! ```
//!
//! # Portable SQL
//!
//! - Case-insensitive matching: `lower(col).like(lower(pattern))` with [`lower()`] and
//!   [`like_contains`] (`LIKE` alone is case-sensitive on PostgreSQL only; SQLite's `lower` folds
//!   ASCII only).
//! - Timestamps come from the application ([`now`]), never from SQL defaults.
//! - Message sequence numbers: `UPDATE conversations SET last_seq = last_seq + 1 … RETURNING
//!   last_seq`, then insert the message, in one transaction (the update locks the row on
//!   PostgreSQL and takes the write lock first on SQLite).
//! - A nullable `Ts`/`Json` column compares with `Some(value)` (see [`types`]).

pub mod error;
pub mod migrate;
mod pool;
pub mod schema;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod types;
pub mod url;

pub use error::DbError;
pub use migrate::Schema;
pub use pool::{Db, DbOptions, PoolStats, PooledConn, SqliteConn, TxFn};
pub use types::{now, sql_types, Json, Timestamp};

use diesel_async::AsyncPgConnection;
use std::fmt;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (the zero-setup default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        })
    }
}

/// A borrowed connection of either backend; match it with [`db!`](crate::db!).
pub enum Conn<'a> {
    /// PostgreSQL.
    Postgres(&'a mut AsyncPgConnection),
    /// SQLite.
    Sqlite(&'a mut SqliteConn),
}

impl Conn<'_> {
    /// Reborrows, so one `Conn` serves several queries (used by [`db!`](crate::db!)).
    pub fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Conn::Postgres(c) => Conn::Postgres(c),
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Postgres(_) => Backend::Postgres,
            Conn::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Runs one diesel-async expression on whichever backend a connection uses.
///
/// `db!(conn, |c| body)`: `conn` is a [`PooledConn`] or a (mutable) [`Conn`]; `body` is compiled
/// once with `c: &mut AsyncPgConnection` and once with `c: &mut SqliteConn`, and both arms must have
/// the same type (usually `QueryResult<T>`; `?` converts it into [`DbError`]).
#[macro_export]
macro_rules! db {
    ($conn:expr, |$c:ident| $body:expr $(,)?) => {
        match $conn.as_conn() {
            $crate::db::Conn::Postgres($c) => $body,
            $crate::db::Conn::Sqlite($c) => $body,
        }
    };
}

/// The one way to open the database: connect (failing fast with a clear message), then prepare the
/// schema as `schema` says. Returns the handle and the migrations applied.
///
/// `flux migrate import-json` and `flux user create-admin` call this. A server does the same two
/// steps, [`Db::connect`] then [`migrate::prepare`], but prepares in the background and retries, so
/// it answers `/health/live` meanwhile and becomes ready by itself once the schema is current.
pub async fn open(options: &DbOptions, schema: Schema) -> Result<(Db, Vec<String>), DbError> {
    let db = Db::connect(options).await?;
    let applied = migrate::prepare(&options.url, schema).await?;
    Ok((db, applied))
}

/// A new row id: a UUIDv7, so ids sort by creation time (ARCHITECTURE §4). Legacy ids are imported
/// unchanged.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

diesel::define_sql_function! {
    /// SQL `lower(text)`: both backends have it (SQLite's folds ASCII letters only).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The escape character that [`like_contains`] uses; pass it to `.escape(LIKE_ESCAPE)`.
pub const LIKE_ESCAPE: char = '\\';

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` in it escaped.
///
/// Use with `.like(..).escape(LIKE_ESCAPE)`: SQLite has no default escape character.
pub fn like_contains(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}
