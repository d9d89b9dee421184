//! A block made on one instance is enforced on another within 5 s, over Redis (OPERATOR §8).
//!
//! Needs `FLUX_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/?protocol=resp3`); says `skipping: …`
//! when it is unset or unreachable. The periodic reload is set to an hour here, so only the Redis
//! invalidation can make the second instance see the block in time.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

mod auth_support;
mod common;

use std::time::{Duration, Instant};

use auth_support::{Api, PASSWORD};
use common::{backends, TestServer};
use flux::cluster::link::RedisLink;
use flux::topology::{ListenerKind, Target};
use serde_json::json;

async fn shared_redis(test: &str) -> Option<String> {
    let Some(url) = std::env::var("FLUX_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eprintln!("skipping: {test}: FLUX_TEST_REDIS_URL is not set");
        return None;
    };
    let up = match RedisLink::connect(&url, url.clone()) {
        Ok(link) => link.wait_up(Duration::from_secs(3)).await,
        Err(_) => false,
    };
    if !up {
        eprintln!("skipping: {test}: Redis at {url} does not answer");
        return None;
    }
    Some(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_one_instance_is_enforced_on_the_other() {
    let Some(redis) = shared_redis("a_block_on_one_instance_is_enforced_on_the_other").await else {
        return;
    };
    for backend in backends() {
        let prefix = format!("flux-test-{}:", uuid::Uuid::new_v4().simple());
        let (a, b) = TestServer::start_pair_with(Target::Unified, backend, |s| {
            s.redis.url = redis.clone();
            s.redis.key_prefix = prefix.clone();
            s.server.trusted_proxies = 1;
            s.security.block_refresh_secs = 3600;
            s.auth.argon2_memory_kib = 1024;
            s.auth.argon2_iterations = 1;
        })
        .await;
        for t in [&a, &b] {
            let link = t
                .server
                .as_ref()
                .unwrap()
                .state()
                .cluster
                .link()
                .unwrap()
                .clone();
            assert!(link.wait_up(Duration::from_secs(10)).await, "redis link up");
        }
        let api_a = Api::new(&a).await;
        let settings = a.server.as_ref().unwrap().state().settings.as_ref().clone();
        flux::auth::admin::create_admin(&settings, "root@example.com", None, PASSWORD)
            .await
            .unwrap();
        let admin = api_a.login("root@example.com", PASSWORD).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let ip = {
            let b = uuid::Uuid::new_v4().into_bytes();
            format!("10.{}.{}.{}", b[0], b[1], b[2].max(1))
        };
        let mut on_b = Api::with(&b, ListenerKind::Unified, "/api").await;
        on_b.extra = vec![("X-Forwarded-For".into(), ip.clone())];
        assert_eq!(on_b.get("/csrf-token", None).await.status, 200);
        // Let B's subscription settle before the change is announced.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let res = api_a
            .post(
                &format!("/admin/security/blocked-ips/{ip}/block"),
                json!({"reason": "cluster test"}),
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let started = Instant::now();
        loop {
            let res = on_b.get("/csrf-token", None).await;
            if res.status == 403 {
                assert_eq!(res.body["code"], "IP_BLOCKED");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{backend:?}: the block did not reach the other instance within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let res = api_a
            .call(
                reqwest::Method::POST,
                &format!("/admin/security/blocked-ips/{ip}/unblock"),
                None,
                Some(&admin),
            )
            .await;
        assert_eq!(res.status, 200);
        let started = Instant::now();
        while on_b.get("/csrf-token", None).await.status != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "unblock did not propagate"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.stop().await;
        a.stop().await;
    }
}
