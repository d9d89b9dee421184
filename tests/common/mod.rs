//! Integration harness: start any target in-process on ephemeral ports against a fresh database.
//!
//! Every storage-touching test runs on SQLite, and on PostgreSQL too when `FLUX_TEST_DATABASE_URL`
//! is set (a fresh database per test server, dropped afterwards).
#![allow(dead_code)]

use std::time::Duration;

use flux::cli::Target;
use flux::config::Settings;
use flux::server::Server;
use flux::topology::ListenerKind;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run covers; says plainly when PostgreSQL is not configured.
pub fn backends() -> Vec<Backend> {
    if std::env::var("FLUX_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!("note: FLUX_TEST_DATABASE_URL is not set; PostgreSQL is not tested in this run (SQLite only)");
        vec![Backend::Sqlite]
    }
}

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pg: Option<pg::FreshDatabase>,
}

/// Settings for a test server: ephemeral ports, loopback, one worker, a temp data dir.
pub fn settings(dir: &std::path::Path, database_url: &str) -> Settings {
    let mut s = Settings::load_from(None, &Default::default()).expect("default settings");
    s.data_dir = dir.to_path_buf();
    s.server.host = "127.0.0.1".into();
    s.server.port = 0;
    s.server.messaging_port = 0;
    s.server.collab_port = 0;
    s.server.workers = 1;
    s.server.shutdown_timeout_secs = 2;
    s.database.url = database_url.to_string();
    s.database.migrate_on_start = flux::config::MigrateOnStart::Always;
    s.auth.jwt_secret = SECRET.into();
    s
}

impl TestServer {
    pub async fn start(target: Target, backend: Backend) -> TestServer {
        Self::start_with(target, backend, |_| {}).await
    }

    pub async fn start_with(
        target: Target,
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/flux.db", dir.path().display()), None),
            Backend::Postgres => {
                let fresh = pg::FreshDatabase::create().await;
                (fresh.url.clone(), Some(fresh))
            }
        };
        let mut s = settings(dir.path(), &url);
        tweak(&mut s);
        let server = Server::start(target, s).await.expect("server starts");
        assert!(
            server.wait_ready(Duration::from_secs(20)).await,
            "server not ready within 20 s"
        );
        TestServer {
            server: Some(server),
            dir,
            client: reqwest::Client::new(),
            pg,
        }
    }

    pub fn url(&self, kind: ListenerKind, path: &str) -> String {
        let addr = self
            .server
            .as_ref()
            .and_then(|s| s.addr(kind))
            .expect("listener");
        format!("http://{addr}{path}")
    }

    pub async fn get(&self, kind: ListenerKind, path: &str) -> (u16, serde_json::Value) {
        let res = self
            .client
            .get(self.url(kind, path))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_database().await;
        }
    }
}

pub mod pg {
    /// A database made for one test server on the server named by `FLUX_TEST_DATABASE_URL`.
    pub struct FreshDatabase {
        pub url: String,
        name: String,
        admin_url: String,
    }

    impl FreshDatabase {
        pub async fn create() -> FreshDatabase {
            let admin_url = std::env::var("FLUX_TEST_DATABASE_URL").expect("FLUX_TEST_DATABASE_URL");
            let name = format!("flux_test_{}", uuid::Uuid::new_v4().simple());
            flux::db::testing::create_database(&admin_url, &name)
                .await
                .expect("create test database");
            let url = flux::db::testing::url_with_database(&admin_url, &name);
            FreshDatabase { url, name, admin_url }
        }

        pub async fn drop_database(self) {
            if let Err(e) = flux::db::testing::drop_database(&self.admin_url, &self.name).await {
                eprintln!("warning: could not drop test database {}: {e}", self.name);
            }
        }
    }
}
