//! Database URL parsing (redaction is `config::redact_url`).

use super::{Backend, DbError};
use std::path::PathBuf;

/// What a database URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file (relative to the working directory unless absolute).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (its TLS options are read by [`tls::PgConnector`](super::tls::PgConnector)).
    Postgres(String),
}

impl Target {
    /// Which backend this target uses.
    pub fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Parses `sqlite://relative/path.db`, `sqlite:///abs/path.db`, `postgres://…` or `postgresql://…`.
pub fn parse(url: &str) -> Result<Target, DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(DbError::Config(format!(
            "unsupported database URL {}: expected sqlite://path or postgres://…",
            crate::config::redact_url(url)
        )));
    };
    // `sqlite://a/b.db` is relative, `sqlite:///a/b.db` absolute, `sqlite:a/b.db` relative too.
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = match path.split_once('?') {
        Some((path, query)) => {
            // sqlx-style options such as `?mode=rwc`; the file is always created when missing.
            tracing::warn!(query, "ignoring query string of the SQLite database URL");
            path
        }
        None => path,
    };
    if path.is_empty() || path == ":memory:" || path.starts_with("file:") {
        return Err(DbError::Config(format!(
            "unsupported SQLite URL {url:?}: give a file path, e.g. sqlite://data/flux.db"
        )));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// Byte range of the authority (`user:pass@host:port`) in a `scheme://authority/path?query` URL.
fn authority_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let len = url[start..].find(['/', '?']).unwrap_or(url.len() - start);
    Some((start, start + len))
}

/// The same PostgreSQL server URL pointing at database `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> Result<String, DbError> {
    let (_, end) = authority_range(url)
        .ok_or_else(|| DbError::Config(format!("not a URL: {}", crate::config::redact_url(url))))?;
    let query = url[end..].find('?').map_or("", |i| &url[end + i..]);
    Ok(format!("{}/{}{}", &url[..end], name, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_and_postgres_urls() {
        assert_eq!(
            parse("sqlite://data/flux.db").ok(),
            Some(Target::Sqlite("data/flux.db".into()))
        );
        assert_eq!(
            parse("sqlite:///var/lib/flux.db").ok(),
            Some(Target::Sqlite("/var/lib/flux.db".into()))
        );
        assert!(matches!(
            parse("postgresql://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(parse("sqlite::memory:").is_err());
        assert!(parse("mysql://x").is_err());
    }

    #[test]
    fn swaps_database_name() {
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "t1").ok(),
            Some("postgres://u:p@h:1/t1?sslmode=disable".to_owned())
        );
        assert_eq!(
            with_database("postgres://h", "t2").ok(),
            Some("postgres://h/t2".to_owned())
        );
    }
}
