//! Several instances sharing Redis and one database (ARCHITECTURE §3): rate limits, login lockout
//! and presence are counted cluster-wide; a crashed instance's sockets expire and are announced
//! offline once; an instance that loses Redis keeps serving on its own and rejoins by itself.
//!
//! Needs `FLUX_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/?protocol=resp3`); each test says
//! `skipping: …` when it is unset or unreachable. Every test uses its own key prefix, so parallel
//! tests (and earlier runs) on the shared Redis never see each other's counters or users. The
//! outage test starts its own `redis-server` on a free port and never touches the shared one.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

mod auth_support;
mod common;
mod messaging_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_support::{Api, PASSWORD};
use common::{backends, Backend, TestServer};
use flux::cluster::link::RedisLink;
use flux::config::Settings;
use flux::messaging::presence::redis::RedisPresence;
use flux::messaging::presence::Presence;
use flux::topology::ListenerKind;
use flux::topology::Target;
use messaging_support::{add_team, add_user, channel, sio, Sio, User};
use serde_json::{json, Value};

/// The shared Redis of this run, if configured and answering.
async fn shared_redis(test: &str) -> Option<String> {
    let Some(url) = std::env::var("FLUX_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eprintln!("skipping: {test}: FLUX_TEST_REDIS_URL is not set");
        return None;
    };
    if !reachable(&url, Duration::from_secs(3)).await {
        eprintln!("skipping: {test}: Redis at {url} does not answer");
        return None;
    }
    Some(url)
}

async fn reachable(url: &str, within: Duration) -> bool {
    let Ok(link) = RedisLink::connect(url, url.to_owned()) else {
        return false;
    };
    link.wait_up(within).await
}

/// A fresh key prefix, so this test's keys are its own.
fn prefix() -> String {
    format!("flux-test-{}:", uuid::Uuid::new_v4().simple())
}

/// A unique id (users, e-mails, client addresses must not collide across runs).
fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A documentation-range client address no other test uses.
fn client_ip() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("10.{}.{}.{}", b[0], b[1], b[2].max(1))
}

fn clustered(redis: &str, prefix: &str) -> impl Fn(&mut Settings) {
    let (redis, prefix) = (redis.to_owned(), prefix.to_owned());
    move |s: &mut Settings| {
        s.redis.url = redis.clone();
        s.redis.key_prefix = prefix.clone();
    }
}

async fn pair(
    backend: Backend,
    redis: &str,
    prefix: &str,
    more: impl Fn(&mut Settings),
) -> (TestServer, TestServer) {
    let base = clustered(redis, prefix);
    let (a, b) = TestServer::start_pair_with(Target::Unified, backend, |s| {
        base(s);
        more(s);
    })
    .await;
    for t in [&a, &b] {
        wait_ready_status(t, "ready", Duration::from_secs(10)).await;
    }
    (a, b)
}

async fn stop_pair(a: TestServer, b: TestServer) {
    b.stop().await;
    a.stop().await;
}

/// Polls `/health/ready` until its `status` is `want`; returns the body.
async fn wait_ready_status(t: &TestServer, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = t.get(ListenerKind::Unified, "/health/ready").await;
        if code == 200 && body["status"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/health/ready never said {want} within {within:?}: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Online user ids as `users:online` answers them to `s`.
async fn online_ids(s: &mut Sio) -> Vec<String> {
    s.emit("users:get-online", &[]).await;
    let list = s.expect("users:online").await;
    let mut ids: Vec<String> = list
        .as_array()
        .expect("users:online is a list")
        .iter()
        .map(|u| u["userId"].as_str().expect("userId").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Waits up to `within` for `event` about `user`; takes it out of the inbox (events of that name
/// about other users are dropped).
async fn wait_for(s: &mut Sio, event: &str, user: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let about = |a: &Vec<Value>| a.first().is_some_and(|v| v["userId"] == user);
    loop {
        if let Some(i) = s.inbox.iter().position(|(n, a)| n == event && about(a)) {
            return s.inbox.remove(i).1.remove(0);
        }
        s.inbox.retain(|(n, _)| n != event);
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {event} for {user} within {within:?}; inbox: {:?}",
            s.inbox
        );
        s.quiet(event, left).await;
    }
}

fn offline_events(s: &Sio, user: &str) -> usize {
    s.inbox
        .iter()
        .filter(|(n, a)| n == "user:offline" && a.first().is_some_and(|v| v["userId"] == user))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rate_limit_is_shared_across_instances() {
    let Some(redis) = shared_redis("auth_rate_limit_is_shared_across_instances").await else {
        return;
    };
    for backend in backends() {
        let (a, b) = pair(backend, &redis, &prefix(), |s| s.rate_limit.auth_max = 3).await;
        let ip = client_ip();
        let mut on_a = Api::new(&a).await;
        let mut on_b = Api::new(&b).await;
        on_a.extra = vec![("X-Forwarded-For".into(), ip.clone())];
        on_b.extra = on_a.extra.clone();
        let email = format!("{}@example.com", unique("rl"));
        for i in 0..2 {
            let res = on_a.login(&email, PASSWORD).await;
            assert_eq!(res.status, 401, "{backend:?}: attempt {i} on A");
        }
        let third = on_b.login(&email, PASSWORD).await;
        assert_eq!(third.status, 401, "{backend:?}: third attempt, on B");
        assert_eq!(
            third.header("ratelimit-remaining").as_deref(),
            Some("0"),
            "{backend:?}: B counts A's attempts"
        );
        let limited = on_b.login(&email, PASSWORD).await;
        assert_eq!(limited.status, 429, "{backend:?}: {}", limited.body);
        assert_eq!(
            limited.body["message"],
            "Too many authentication attempts, please try again in 15 minutes."
        );
        assert_eq!(on_a.login(&email, PASSWORD).await.status, 429);
        // Another client address still has its whole budget on either instance.
        on_a.extra = vec![("X-Forwarded-For".into(), client_ip())];
        assert_eq!(on_a.login(&email, PASSWORD).await.status, 401);
        stop_pair(a, b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_is_shared_across_instances() {
    let Some(redis) = shared_redis("login_lockout_is_shared_across_instances").await else {
        return;
    };
    for backend in backends() {
        let (a, b) = pair(backend, &redis, &prefix(), |s| {
            s.rate_limit.lockout_failures = 3;
            s.rate_limit.lockout_window_secs = 60;
            s.rate_limit.lockout_secs = 30;
        })
        .await;
        let mut on_a = Api::new(&a).await;
        let mut on_b = Api::new(&b).await;
        let email = format!("{}@example.com", unique("lock"));
        let bystander = format!("{}@example.com", unique("by"));
        on_a.signup(&email, "Lock").await;
        on_b.signup(&bystander, "By").await;
        // Failures split over both instances, each from another address.
        for i in 0..3 {
            let api = if i == 1 { &mut on_b } else { &mut on_a };
            api.extra = vec![("X-Forwarded-For".into(), client_ip())];
            let res = api.login(&email, "Wrong1password").await;
            assert_eq!(res.status, 401, "{backend:?}: failure {i}");
        }
        for (name, api) in [("A", &on_a), ("B", &on_b)] {
            let locked = api.login(&email, PASSWORD).await;
            assert_eq!(
                locked.status, 429,
                "{backend:?}: locked on {name}: {}",
                locked.body
            );
            assert_eq!(
                locked.body["message"],
                "Too many failed attempts. Please try again later."
            );
            let retry: u64 = locked
                .header("retry-after")
                .expect("retry-after")
                .parse()
                .expect("seconds");
            assert!((1..=30).contains(&retry), "{retry}");
        }
        assert_eq!(on_a.login(&bystander, PASSWORD).await.status, 200);
        stop_pair(a, b).await;
    }
}

/// Two users sharing a team (so each sees the other's presence), seeded in the shared database.
async fn teammates(t: &TestServer) -> (User, User) {
    let x = add_user(t, &unique("x")).await;
    let w = add_user(t, &unique("w")).await;
    let team = unique("team");
    add_team(t, &team, &[&x, &w]).await;
    channel(t, &x, &team).await;
    (x, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_counted_across_instances() {
    let Some(redis) = shared_redis("presence_is_counted_across_instances").await else {
        return;
    };
    for backend in backends() {
        let (a, b) = pair(backend, &redis, &prefix(), |_| {}).await;
        let (x, w) = teammates(&a).await;
        let mut watcher = sio(&b, &w).await;
        watcher.expect("user:status").await;

        let mut x_on_a = sio(&a, &x).await;
        let online = wait_for(&mut watcher, "user:online", &x.id, Duration::from_secs(5)).await;
        assert_eq!(online["status"], "online", "{backend:?}");
        let mut ids = vec![x.id.clone(), w.id.clone()];
        ids.sort();
        assert_eq!(
            online_ids(&mut watcher).await,
            ids,
            "{backend:?}: B sees A's user"
        );
        // And A answers for B's socket too.
        assert_eq!(online_ids(&mut x_on_a).await, ids, "{backend:?}");

        // A second socket on B: not a new arrival, no second `user:online`.
        let x_on_b = sio(&b, &x).await;
        assert!(
            watcher
                .quiet("user:online", Duration::from_millis(500))
                .await
        );

        // Closing A's socket leaves B's: no offline, even after the grace.
        x_on_a.close().await;
        assert!(
            watcher.quiet("user:offline", Duration::from_secs(7)).await,
            "{backend:?}: offline announced while X still has a socket on B"
        );
        assert_eq!(online_ids(&mut watcher).await, ids, "{backend:?}");

        // Closing the last socket anywhere: offline after the grace, once.
        let closed = Instant::now();
        x_on_b.close().await;
        wait_for(&mut watcher, "user:offline", &x.id, Duration::from_secs(10)).await;
        assert!(
            closed.elapsed() >= Duration::from_millis(4500),
            "{backend:?}: offline before the grace ({:?})",
            closed.elapsed()
        );
        assert!(
            watcher.quiet("user:offline", Duration::from_secs(4)).await,
            "{backend:?}: offline announced twice: {:?}",
            watcher.inbox
        );
        assert_eq!(
            online_ids(&mut watcher).await,
            vec![w.id.clone()],
            "{backend:?}"
        );
        watcher.close().await;
        stop_pair(a, b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_instance_sockets_expire_and_go_offline_once() {
    let Some(redis) = shared_redis("crashed_instance_sockets_expire_and_go_offline_once").await
    else {
        return;
    };
    for backend in backends() {
        let prefix = prefix();
        let ttl = 3;
        let (a, b) = pair(backend, &redis, &prefix, |s| {
            s.redis.presence_ttl_secs = ttl
        })
        .await;
        let (x, w) = teammates(&a).await;
        let mut watch_a = sio(&a, &w).await;
        let mut watch_b = sio(&b, &w).await;

        // A third instance registers X's socket, then dies without a disconnect: its presence
        // refresher stops with it.
        let link = RedisLink::connect(&redis, "crashed".into()).expect("link");
        assert!(link.wait_up(Duration::from_secs(3)).await);
        let mut settings = a
            .server
            .as_ref()
            .expect("server")
            .state()
            .settings
            .redis
            .clone();
        settings.presence_ttl_secs = ttl;
        settings.key_prefix = prefix.clone();
        let crashed = RedisPresence::new(link.clone(), &settings);
        assert!(
            crashed.connect(&x.id, "ghost", &x.email).await,
            "first socket"
        );
        let mut ids = vec![x.id.clone(), w.id.clone()];
        ids.sort();
        assert_eq!(online_ids(&mut watch_b).await, ids, "{backend:?}");
        assert_eq!(online_ids(&mut watch_a).await, ids, "{backend:?}");
        let died = Instant::now();
        drop(crashed);
        drop(link);

        // No disconnect ever comes; the sweepers of A and B find the expired socket, one claims it.
        wait_for(&mut watch_b, "user:offline", &x.id, Duration::from_secs(15)).await;
        assert!(
            died.elapsed() >= Duration::from_secs(ttl - 1),
            "{backend:?}: offline before the socket could expire ({:?})",
            died.elapsed()
        );
        wait_for(&mut watch_a, "user:offline", &x.id, Duration::from_secs(3)).await;
        // Both sweepers keep running: still exactly one announcement per watcher.
        for watcher in [&mut watch_a, &mut watch_b] {
            watcher.quiet("user:offline", Duration::from_secs(5)).await;
            assert_eq!(
                offline_events(watcher, &x.id),
                0,
                "{backend:?}: announced twice"
            );
        }
        assert_eq!(online_ids(&mut watch_b).await, vec![w.id.clone()]);
        watch_a.close().await;
        watch_b.close().await;
        stop_pair(a, b).await;
    }
}

/// A private `redis-server` on a free port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Option<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let mut r = PrivateRedis { port, child: None };
        r.spawn().then_some(r)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                self.child = Some(c);
                true
            }
            Err(e) => {
                eprintln!("skipping: redis-server cannot be started: {e}");
                false
            }
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/?protocol=resp3", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `f` and fails if it takes longer than 2 s (an outage must never make a request hang).
async fn quick<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(2), f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than 2 s while Redis was down"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_degrades_to_local_state_and_recovers() {
    let backend = backends()[0];
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    if !reachable(&redis.url(), Duration::from_secs(5)).await {
        eprintln!("skipping: the private redis-server did not answer");
        return;
    }
    let (a, b) = pair(backend, &redis.url(), &prefix(), |s| {
        s.rate_limit.auth_max = 4;
        // Only the rate limiter counts failures here; the lockout has its own test.
        s.rate_limit.lockout_failures = 0;
    })
    .await;
    let on_a = Api::new(&a).await;
    let email = format!("{}@example.com", unique("outage"));
    on_a.signup(&email, "Outage").await;
    let (x, w) = teammates(&a).await;

    redis.kill();
    let body = wait_ready_status(&a, "degraded", Duration::from_secs(5)).await;
    assert_eq!(body["dependencies"]["redis"], "degraded", "{body}");
    wait_ready_status(&b, "degraded", Duration::from_secs(5)).await;

    // Logins work, locally.
    let mut on_a = Api::new(&a).await;
    on_a.extra = vec![("X-Forwarded-For".into(), client_ip())];
    let res = quick("a login", on_a.login(&email, PASSWORD)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Rate limits still apply, per instance (this address has spent 1 of 4 on A).
    for i in 0..3 {
        let res = quick("a failed login", on_a.login(&email, "Wrong1password")).await;
        assert_eq!(res.status, 401, "attempt {i}: {}", res.body);
    }
    let limited = quick("a limited login", on_a.login(&email, PASSWORD)).await;
    assert_eq!(limited.status, 429, "{}", limited.body);

    // Socket presence works for this instance's sockets.
    let mut watcher = quick("a socket connect", sio(&a, &w)).await;
    watcher.expect("user:status").await;
    let mut x_on_a = quick("a socket connect", sio(&a, &x)).await;
    assert_eq!(x_on_a.expect("user:status").await["status"], "online");
    let online = wait_for(&mut watcher, "user:online", &x.id, Duration::from_secs(2)).await;
    assert_eq!(online["status"], "online");
    let mut ids = vec![x.id.clone(), w.id.clone()];
    ids.sort();
    assert_eq!(quick("users:online", online_ids(&mut watcher)).await, ids);
    // The dependency is reported all along.
    let (code, body) = a.get(ListenerKind::Unified, "/health/ready").await;
    assert_eq!((code, &body["status"]), (200, &json!("degraded")), "{body}");

    // Redis comes back on the same address: both instances reconnect by themselves.
    assert!(redis.spawn(), "redis-server restarts");
    wait_ready_status(&a, "ready", Duration::from_secs(15)).await;
    wait_ready_status(&b, "ready", Duration::from_secs(15)).await;
    let (_, services) = a.get(ListenerKind::Unified, "/services").await;
    assert_eq!(services["cluster"]["redis"], "ok", "{services}");

    // X's socket, opened during the outage, is registered again: B now sees X online.
    let mut watcher_b = sio(&b, &w).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while online_ids(&mut watcher_b).await != ids {
        assert!(
            Instant::now() < deadline,
            "B never saw X's socket re-registered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Limits are counted in Redis again: a fresh address spends one budget across both.
    let ip = client_ip();
    let mut on_b = Api::new(&b).await;
    on_a.extra = vec![("X-Forwarded-For".into(), ip.clone())];
    on_b.extra = on_a.extra.clone();
    for (i, api) in [&on_a, &on_b, &on_a, &on_b].into_iter().enumerate() {
        assert_eq!(api.login(&email, "Wrong1password").await.status, 401, "{i}");
    }
    let res = on_b.login(&email, PASSWORD).await;
    assert_eq!(
        res.status, 429,
        "shared again after the outage: {}",
        res.body
    );

    x_on_a.close().await;
    watcher.close().await;
    watcher_b.close().await;
    stop_pair(a, b).await;
}
