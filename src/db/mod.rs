//! TEMPORARY stand-in until the storage layer lands (branch db-layer). Not committed.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}
impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        })
    }
}
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub acquire_timeout: Duration,
}
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    #[error("query: {0}")]
    Query(String),
    #[error("unique")]
    UniqueViolation,
}
#[derive(Clone)]
pub struct Db {
    backend: Backend,
}
impl Db {
    pub async fn connect(o: &DbOptions) -> Result<Db, DbError> {
        Ok(Db {
            backend: if o.url.starts_with("sqlite") {
                Backend::Sqlite
            } else {
                Backend::Postgres
            },
        })
    }
    pub fn backend(&self) -> Backend {
        self.backend
    }
    pub async fn ping(&self) -> Result<(), DbError> {
        Ok(())
    }
}
pub mod migrate {
    #[derive(Debug, Clone)]
    pub struct MigrationInfo {
        pub version: String,
        pub applied: bool,
    }
    pub async fn run(_url: &str) -> Result<Vec<String>, super::DbError> {
        Ok(vec![])
    }
    pub async fn status(_url: &str) -> Result<Vec<MigrationInfo>, super::DbError> {
        Ok(vec![])
    }
    pub async fn revert(_url: &str, _steps: u32) -> Result<Vec<String>, super::DbError> {
        Ok(vec![])
    }
}
pub mod testing {
    pub async fn create_database(_admin: &str, _name: &str) -> Result<(), super::DbError> {
        Ok(())
    }
    pub async fn drop_database(_admin: &str, _name: &str) -> Result<(), super::DbError> {
        Ok(())
    }
    pub fn url_with_database(admin: &str, _name: &str) -> String {
        admin.to_string()
    }
}
