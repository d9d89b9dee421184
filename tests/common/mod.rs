//! Integration harness: start any target in-process on ephemeral ports against a fresh database.
//!
//! Every storage-touching test runs on SQLite, and on PostgreSQL too when `FLUX_TEST_DATABASE_URL`
//! is set (a fresh database per test server, dropped afterwards).
#![allow(dead_code)]
// Test helpers, outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use flux::config::Settings;
use flux::db::testing::TestDatabase;
use flux::server::Server;
use flux::topology::ListenerKind;
use flux::topology::Target;

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

/// Pass the CSRF double-submit (cookie + matching header) the way a browser tab does, so a test of
/// an unauthenticated write sees the authentication answer rather than the CSRF one.
pub fn with_csrf(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let csrf = "ab".repeat(32);
    req.header("X-CSRF-Token", &csrf)
        .header("Cookie", format!("_csrf={csrf}"))
}

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    database: Option<TestDatabase>,
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
    // Most tests make many requests from one address; the rate-limit tests lower these again.
    s.rate_limit.max_requests = 1_000_000;
    s.rate_limit.auth_max = 1_000_000;
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
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres()
                .await
                .expect("create a PostgreSQL test database")
                .expect("FLUX_TEST_DATABASE_URL is set"),
        };
        Self::launch(target, &database.url.clone(), Some(database), tweak).await
    }

    /// A second server of `target` on `first`'s database (cluster tests). It does not own the
    /// database: stop it before `first`, whose `stop` removes the database.
    pub async fn start_sharing(
        target: Target,
        first: &TestServer,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let url = first
            .database
            .as_ref()
            .expect("the first server owns its database")
            .url
            .clone();
        Self::launch(target, &url, None, tweak).await
    }

    /// Starts a server on `url` and waits until it is ready; `owned` is dropped with it in `stop`.
    async fn launch(
        target: Target,
        url: &str,
        owned: Option<TestDatabase>,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path(), url);
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
            database: owned,
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
        if let Some(database) = self.database.take() {
            database.close().await;
        }
    }
}

impl TestServer {
    /// Starts `target` on a database the test already prepared (e.g. filled through the CLI). The
    /// server takes the database over and removes it in [`stop`](Self::stop).
    pub async fn start_on(target: Target, database: TestDatabase) -> TestServer {
        Self::launch(target, &database.url.clone(), Some(database), |_| {}).await
    }

    /// Two instances of `target` sharing ONE database, as behind a load balancer. Stop the second
    /// before the first: the first owns the database.
    pub async fn start_pair_with(
        target: Target,
        backend: Backend,
        tweak: impl Fn(&mut Settings),
    ) -> (TestServer, TestServer) {
        let first = Self::start_with(target, backend, &tweak).await;
        let second = Self::start_sharing(target, &first, &tweak).await;
        (first, second)
    }
}
