//! Rate-limit counters and login locks in Redis, so every instance spends the same budget.
//!
//! One round trip per counted hit (a script increments and starts the window atomically). While
//! Redis is down the counters fall back to this instance's [`MemoryStore`]: limits keep applying per
//! instance, and no request ever fails or waits because Redis is gone.

use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::link::RedisLink;
use crate::web::rate_limit::{Hit, LimitStore, MemoryStore};

/// INCR, and start the window on the first hit (or when a key somehow lost its expiry); returns the
/// count and the milliseconds left in the window.
static HIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
",
    )
});

/// Counters shared through Redis, with an in-process fallback.
#[derive(Debug)]
pub struct RedisLimitStore {
    link: RedisLink,
    prefix: String,
    local: MemoryStore,
}

impl RedisLimitStore {
    /// `prefix` starts every key (`<prefix>rl:<key>`, `<prefix>lock:<key>`).
    pub fn new(link: RedisLink, prefix: &str) -> RedisLimitStore {
        RedisLimitStore {
            link,
            prefix: prefix.to_owned(),
            local: MemoryStore::new(),
        }
    }

    fn counter(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl LimitStore for RedisLimitStore {
    fn hit<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Hit> {
        Box::pin(async move {
            let redis_key = self.counter(key);
            let shared = self
                .link
                .run(|mut c| async move {
                    HIT.key(redis_key)
                        .arg(millis(window))
                        .invoke_async::<(i64, i64)>(&mut c)
                        .await
                })
                .await;
            match shared {
                Some((count, ttl)) => Hit {
                    count: u32::try_from(count.max(0)).unwrap_or(u32::MAX),
                    reset_in: Duration::from_millis(u64::try_from(ttl.max(0)).unwrap_or(0)),
                },
                None => self.local.hit(key, window).await,
            }
        })
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let redis_key = self.counter(key);
            let _ = self
                .link
                .run(|mut c| async move {
                    redis::cmd("DEL")
                        .arg(redis_key)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            // The local counter may hold hits counted during an outage.
            self.local.reset(key).await;
        })
    }

    fn lock<'a>(&'a self, key: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let redis_key = self.lock_key(key);
            let stored = self
                .link
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(redis_key)
                        .arg(1)
                        .arg("PX")
                        .arg(millis(duration))
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if stored.is_none() {
                self.local.lock(key, duration).await;
            }
        })
    }

    fn locked_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let redis_key = self.lock_key(key);
            let shared = self
                .link
                .run(|mut c| async move {
                    redis::cmd("PTTL")
                        .arg(redis_key)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            // A lock set locally during an outage still holds after Redis is back.
            let local = self.local.locked_for(key).await;
            let shared = shared
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms.unsigned_abs()));
            shared.max(local)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_and_locks_are_shared() {
        let Some(url) = std::env::var("FLUX_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipping: FLUX_TEST_REDIS_URL is not set");
            return;
        };
        let prefix = format!("flux-unit-{}:", uuid::Uuid::new_v4().simple());
        let mut stores = Vec::new();
        for _ in 0..2 {
            let link = RedisLink::connect(&url, url.clone()).expect("link");
            if !link.wait_up(Duration::from_secs(3)).await {
                eprintln!("skipping: Redis at {url} does not answer");
                return;
            }
            stores.push(RedisLimitStore::new(link, &prefix));
        }
        let (a, b) = (&stores[0], &stores[1]);
        let w = Duration::from_secs(60);
        assert_eq!(a.hit("k", w).await.count, 1);
        let hit = b.hit("k", w).await;
        assert_eq!(hit.count, 2);
        assert!(hit.reset_in > Duration::from_secs(58) && hit.reset_in <= w);
        b.reset("k").await;
        assert_eq!(a.hit("k", w).await.count, 1, "reset on B clears A's view");

        let short = Duration::from_millis(300);
        assert_eq!(a.hit("short", short).await.count, 1);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(b.hit("short", short).await.count, 1, "a new window");

        assert_eq!(b.locked_for("l").await, None);
        a.lock("l", Duration::from_secs(5)).await;
        let left = b.locked_for("l").await.expect("locked on B");
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
    }
}
