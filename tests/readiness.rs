//! Readiness follows storage: 503 while the database is unreachable or the schema is behind, 200
//! again once it is back — without restarting flux.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{settings, SECRET};
use flux::db::testing::TestDatabase;
use flux::server::Server;
use flux::topology::ListenerKind;
use flux::topology::Target;
use tokio::net::{TcpListener, TcpStream};

async fn ready_status(client: &reqwest::Client, url: &str) -> u16 {
    match client.get(url).timeout(Duration::from_secs(5)).send().await {
        Ok(res) => res.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_for_status(client: &reqwest::Client, url: &str, want: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready_status(client, url).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_schema_is_migrated() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), &db.url);
    s.database.migrate_on_start = flux::config::MigrateOnStart::Never;
    let server = Server::start(Target::Unified, s).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/health/ready",
        server.addr(ListenerKind::Unified).unwrap()
    );

    assert!(wait_for_status(&client, &url, 503, Duration::from_secs(5)).await);
    let body: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    // Live even while not ready.
    let live = url.replace("/health/ready", "/health/live");
    assert_eq!(ready_status(&client, &live).await, 200);

    let applied = flux::db::migrate::run(&db.url).await.unwrap();
    assert!(!applied.is_empty());
    assert!(
        wait_for_status(&client, &url, 200, Duration::from_secs(10)).await,
        "ready once `flux migrate run` has applied the schema"
    );
    server.shutdown().await;
    db.close().await;
}

/// A TCP relay in front of the real PostgreSQL that can be cut and restored, so the outage is real
/// for flux without stopping the PostgreSQL server other tests share.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_goes_503_then_200_when_postgres_drops_and_returns() {
    let Some(db) = TestDatabase::postgres().await.unwrap() else {
        return;
    };
    flux::db::migrate::run(&db.url).await.unwrap();
    let parsed = url_host_port(&db.url);
    let relay = Relay::start(parsed.clone()).await;
    let relayed_url = db
        .url
        .replacen(&parsed, &format!("127.0.0.1:{}", relay.port), 1);

    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), &relayed_url);
    s.database.acquire_timeout_ms = 1000;
    s.auth.jwt_secret = SECRET.into();
    let server = Server::start(Target::Unified, s).await.unwrap();
    assert!(server.wait_ready(Duration::from_secs(20)).await);
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/health/ready",
        server.addr(ListenerKind::Unified).unwrap()
    );
    assert_eq!(ready_status(&client, &url).await, 200);

    relay.cut();
    assert!(
        wait_for_status(&client, &url, 503, Duration::from_secs(15)).await,
        "503 while PostgreSQL is unreachable"
    );
    let services: serde_json::Value = client
        .get(url.replace("/health/ready", "/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["modules"][0]["name"], "database");
    assert_eq!(services["modules"][0]["state"], "degraded");

    relay.restore();
    assert!(
        wait_for_status(&client, &url, 200, Duration::from_secs(20)).await,
        "200 again once PostgreSQL is back, without a restart"
    );
    server.shutdown().await;
    db.close().await;
}

fn url_host_port(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = after_user.split('/').next().unwrap();
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    }
}
