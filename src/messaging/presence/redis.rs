//! Presence across instances: who is online is counted per user over every instance's sockets, so
//! `offline` is announced only when the user's last socket anywhere has closed (after the grace), and
//! exactly once.
//!
//! In Redis, per user:
//! - `<prefix>presence:<user>:sockets`: a sorted set of `<instance>:<sid>` scored by expiry. Each
//!   instance refreshes the scores of its own live sockets, so the sockets of a crashed instance
//!   simply expire;
//! - `<prefix>presence:<user>:meta`: a hash (`email`, `sid` = last socket, `seen` = last seen in ms,
//!   `epoch`) answering `users:online`, present while the user is online or within the grace;
//! - `<prefix>presence:users`: every known user scored by when it is due to be checked (its last
//!   socket's expiry, or the end of the grace). A sweeper on every instance claims the due users whose
//!   sockets all expired without a disconnect (a crashed instance) and announces them offline; the
//!   claim is atomic, so exactly one instance wins.
//!
//! Scores use Redis's clock (`TIME` in the scripts), so instances' clocks need not agree.
//!
//! Every change is mirrored in a [`LocalPresence`] of this instance's sockets. While Redis is down the
//! answers come from it (this instance's sockets only), and when Redis is back (a new link
//! generation) this instance's live sockets are registered again, since Redis may have lost them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::{LiveUser, LocalPresence, OfflineHook, Presence, PresenceEntry, OFFLINE_GRACE};
use crate::cluster::link::RedisLink;
use crate::config::RedisSettings;
use crate::db::Timestamp;

/// Tags an epoch that Redis handed out, so `expire` knows which store decides.
const SHARED_EPOCH: u64 = 1 << 62;
/// How often the maintenance task wakes up.
const TICK: Duration = Duration::from_millis(500);
/// How often every instance looks for users whose sockets all expired.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// A due user is claimed by a sweeper only this long after it is due, so that the instance that is
/// waiting out a regular disconnect's grace normally announces it itself.
const SWEEP_SLACK: Duration = Duration::from_secs(1);
/// Most users one sweep claims.
const SWEEP_BATCH: usize = 100;
/// Users per refresh script call.
const REFRESH_BATCH: usize = 200;
/// How long keys (the users index too) outlive their last refresh, so an abandoned deployment or
/// key prefix leaves no garbage.
const KEEP_EXTRA: Duration = Duration::from_secs(60);

/// The Lua prologue every script shares: Redis's clock in milliseconds.
macro_rules! script {
    ($body:expr) => {
        LazyLock::new(|| {
            redis::Script::new(concat!(
                "local t = redis.call('TIME')\n",
                "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
                $body
            ))
        })
    };
}

/// Registers sockets. KEYS: users index, then (sockets, meta) per user. ARGV: ttl ms, keep ms, mode,
/// then per user: id, email, last sid, n, n members. Modes:
/// - `connect`: a new socket; the user is created (returned) when unknown, and a pending offline is
///   cancelled (epoch bump);
/// - `restore`: after Redis came back; like `connect` without touching the last socket;
/// - `refresh`: the periodic keep-alive; only extends members that are still there.
///
/// Returns the users that were created.
static REGISTER: LazyLock<redis::Script> = script!(
    r"
local ttl, keep, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local expiry = now + ttl
local created = {}
local a, k = 4, 2
while a <= #ARGV do
  local user, email, sid, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local sockets, meta = KEYS[k], KEYS[k + 1]
  if mode == 'refresh' then
    for i = 1, n do
      redis.call('ZADD', sockets, 'XX', expiry, ARGV[a + 3 + i])
    end
  else
    redis.call('ZREMRANGEBYSCORE', sockets, '-inf', now)
    local live = redis.call('ZCARD', sockets)
    for i = 1, n do
      redis.call('ZADD', sockets, expiry, ARGV[a + 3 + i])
    end
    if redis.call('EXISTS', meta) == 0 then
      redis.call('HSET', meta, 'email', email, 'sid', sid, 'seen', now, 'epoch', 0)
      created[#created + 1] = user
    else
      if live == 0 then
        redis.call('HINCRBY', meta, 'epoch', 1)
      end
      if mode == 'connect' then
        redis.call('HSET', meta, 'email', email, 'sid', sid, 'seen', now)
      end
    end
  end
  local top = redis.call('ZRANGE', sockets, -1, -1, 'WITHSCORES')
  if top[2] then
    redis.call('ZADD', KEYS[1], top[2], user)
    redis.call('PEXPIRE', KEYS[1], keep)
    redis.call('PEXPIRE', sockets, keep)
    redis.call('PEXPIRE', meta, keep)
  end
  a = a + 4 + n
  k = k + 2
end
return created
"
);

/// A socket closed. KEYS: sockets, meta, users index. ARGV: member, user, grace ms, keep ms.
/// Returns the new epoch when the user has no live socket left (offline pending), else -1.
static DISCONNECT: LazyLock<redis::Script> = script!(
    r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then
  redis.call('ZADD', KEYS[3], top[2], ARGV[2])
  return -1
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local epoch = redis.call('HINCRBY', KEYS[2], 'epoch', 1)
redis.call('HSET', KEYS[2], 'seen', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return epoch
"
);

/// Claims a user's offline. KEYS: sockets, meta, users index. ARGV: user, epoch ('' = a sweeper's
/// claim, which needs the user due for at least `slack` ms), slack ms. Returns 1 to the one caller
/// that must announce offline: the user has no live socket and nobody reconnected since.
static EXPIRE: LazyLock<redis::Script> = script!(
    r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then
  redis.call('ZADD', KEYS[3], top[2], ARGV[1])
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] then
    return 0
  end
else
  local due = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if due and tonumber(due) > now - tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"
);

/// Users due for a check. KEYS: users index. ARGV: slack ms, limit.
static DUE: LazyLock<redis::Script> = script!(
    r"
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
"
);

/// `users:online` rows. KEYS: (sockets, meta) per user. Returns per user
/// {known, live sockets, email, last sid, last seen ms}.
static SNAPSHOT: LazyLock<redis::Script> = script!(
    r"
local out = {}
for i = 1, #KEYS, 2 do
  local m = redis.call('HMGET', KEYS[i + 1], 'email', 'sid', 'seen')
  if m[1] then
    out[#out + 1] = {1, redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf'), m[1], m[2] or '', tonumber(m[3]) or 0}
  else
    out[#out + 1] = {0, 0, '', '', 0}
  end
end
return out
"
);

/// Presence shared through Redis, with this instance's sockets mirrored locally.
pub struct RedisPresence {
    inner: Arc<Inner>,
}

struct Inner {
    link: RedisLink,
    prefix: String,
    ttl: Duration,
    local: LocalPresence,
    offline_hook: RwLock<Option<OfflineHook>>,
    closed: AtomicBool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisPresence {
    /// Starts the refresher and sweeper (stopped by [`Presence::close`] or when this is dropped).
    /// Must be called inside the tokio runtime.
    pub fn new(link: RedisLink, settings: &RedisSettings) -> RedisPresence {
        let inner = Arc::new(Inner {
            link,
            prefix: settings.key_prefix.clone(),
            ttl: Duration::from_secs(settings.presence_ttl_secs.max(1)),
            local: LocalPresence::default(),
            offline_hook: RwLock::new(None),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(maintain(Arc::downgrade(&inner)));
        RedisPresence { inner }
    }
}

impl Drop for RedisPresence {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
    }
}

impl Inner {
    fn index_key(&self) -> String {
        format!("{}presence:users", self.prefix)
    }

    fn sockets_key(&self, user: &str) -> String {
        format!("{}presence:{user}:sockets", self.prefix)
    }

    fn meta_key(&self, user: &str) -> String {
        format!("{}presence:{user}:meta", self.prefix)
    }

    fn member(&self, sid: &str) -> String {
        format!("{}:{sid}", self.link.instance_id())
    }

    fn keep(&self) -> Duration {
        self.ttl + OFFLINE_GRACE + KEEP_EXTRA
    }

    /// Runs REGISTER over `users` in batches; `None` when Redis failed.
    async fn register(&self, users: &[LiveUser], mode: &'static str) -> Option<Vec<String>> {
        let mut created = Vec::new();
        for batch in users.chunks(REFRESH_BATCH) {
            let mut call = REGISTER.prepare_invoke();
            call.key(self.index_key())
                .arg(millis(self.ttl))
                .arg(millis(self.keep()))
                .arg(mode);
            for u in batch {
                call.key(self.sockets_key(&u.user_id))
                    .key(self.meta_key(&u.user_id))
                    .arg(&u.user_id)
                    .arg(&u.email)
                    .arg(&u.last_socket)
                    .arg(u.sockets.len());
                for sid in &u.sockets {
                    call.arg(self.member(sid));
                }
            }
            let call = &call;
            let batch_created = self
                .link
                .run(|mut c| async move { call.invoke_async::<Vec<String>>(&mut c).await })
                .await?;
            created.extend(batch_created);
        }
        Some(created)
    }

    /// Runs EXPIRE; `None` when Redis failed.
    async fn claim(&self, user: &str, epoch: Option<u64>) -> Option<bool> {
        let mut call = EXPIRE.prepare_invoke();
        call.key(self.sockets_key(user))
            .key(self.meta_key(user))
            .key(self.index_key())
            .arg(user)
            .arg(epoch.map(|e| e.to_string()).unwrap_or_default())
            .arg(millis(SWEEP_SLACK));
        let call = &call;
        self.link
            .run(|mut c| async move { call.invoke_async::<i64>(&mut c).await })
            .await
            .map(|n| n == 1)
    }

    /// Claims the users whose sockets all expired (a crashed instance, or one that stopped during a
    /// grace) and announces them offline.
    async fn sweep(&self) {
        let mut call = DUE.prepare_invoke();
        call.key(self.index_key())
            .arg(millis(SWEEP_SLACK))
            .arg(SWEEP_BATCH);
        let call = &call;
        let Some(due) = self
            .link
            .run(|mut c| async move { call.invoke_async::<Vec<String>>(&mut c).await })
            .await
        else {
            return;
        };
        for user in due {
            if self.claim(&user, None).await != Some(true) {
                continue;
            }
            tracing::info!(user_id = %user, "presence expired without a disconnect: offline");
            let hook = self
                .offline_hook
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(hook) = hook {
                hook(user).await;
            }
        }
    }
}

/// Keeps this instance's sockets alive in Redis, registers them again after an outage, and sweeps.
async fn maintain(inner: Weak<Inner>) {
    let mut registered: Option<u64> = None;
    let mut refreshed = Instant::now();
    let mut swept = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        let Some(p) = inner.upgrade() else { return };
        if p.closed.load(Ordering::Acquire) {
            return;
        }
        if !p.link.is_up() {
            continue;
        }
        let generation = p.link.generation();
        let live = || p.local.live_users();
        if registered != Some(generation) {
            let users = live();
            if p.register(&users, "restore").await.is_some() {
                if registered.is_some() || !users.is_empty() {
                    tracing::info!(
                        users = users.len(),
                        "redis is back: this instance's sockets registered again"
                    );
                }
                registered = Some(generation);
                refreshed = Instant::now();
            }
        } else if refreshed.elapsed() >= p.ttl / 3 && p.register(&live(), "refresh").await.is_some()
        {
            refreshed = Instant::now();
        }
        if swept.elapsed() >= SWEEP_EVERY {
            p.sweep().await;
            swept = Instant::now();
        }
    }
}

impl Presence for RedisPresence {
    fn connect<'a>(&'a self, user: &'a str, sid: &'a str, email: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let p = &self.inner;
            let first_here = p.local.connect(user, sid, email).await;
            let one = [LiveUser {
                user_id: user.to_owned(),
                email: email.to_owned(),
                last_socket: sid.to_owned(),
                sockets: vec![sid.to_owned()],
            }];
            match p.register(&one, "connect").await {
                Some(created) => created.iter().any(|u| u == user),
                None => first_here,
            }
        })
    }

    fn disconnect<'a>(&'a self, user: &'a str, sid: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            let p = &self.inner;
            let here = p.local.disconnect(user, sid).await;
            let mut call = DISCONNECT.prepare_invoke();
            call.key(p.sockets_key(user))
                .key(p.meta_key(user))
                .key(p.index_key())
                .arg(p.member(sid))
                .arg(user)
                .arg(millis(OFFLINE_GRACE))
                .arg(millis(p.keep()));
            let call = &call;
            let shared = p
                .link
                .run(|mut c| async move { call.invoke_async::<i64>(&mut c).await })
                .await;
            match shared {
                Some(epoch) => {
                    // Redis decides; the local mirror keeps only live sockets.
                    if let Some(e) = here {
                        p.local.expire(user, e).await;
                    }
                    u64::try_from(epoch).ok().map(|e| e | SHARED_EPOCH)
                }
                None => here,
            }
        })
    }

    fn expire<'a>(&'a self, user: &'a str, epoch: u64) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let p = &self.inner;
            if epoch & SHARED_EPOCH == 0 {
                return p.local.expire(user, epoch).await;
            }
            match p.claim(user, Some(epoch & !SHARED_EPOCH)).await {
                Some(gone) => gone,
                // Redis went away during the grace: decide from this instance's sockets.
                None => p.local.forget_idle(user),
            }
        })
    }

    fn snapshot<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<PresenceEntry>> {
        Box::pin(async move {
            let p = &self.inner;
            if users.is_empty() {
                return Vec::new();
            }
            let mut call = SNAPSHOT.prepare_invoke();
            for u in users {
                call.key(p.sockets_key(u)).key(p.meta_key(u));
            }
            let call = &call;
            type Row = (i64, i64, String, String, i64);
            let rows = p
                .link
                .run(|mut c| async move { call.invoke_async::<Vec<Row>>(&mut c).await })
                .await;
            let Some(rows) = rows else {
                return p.local.snapshot(users).await;
            };
            users
                .iter()
                .zip(rows)
                .filter(|(_, (known, ..))| *known == 1)
                .map(|(user, (_, live, email, sid, seen))| PresenceEntry {
                    user_id: user.clone(),
                    socket_id: sid,
                    email,
                    online: live > 0,
                    last_seen: chrono::DateTime::from_timestamp_millis(seen)
                        .map_or_else(Timestamp::now, Timestamp::from),
                })
                .collect()
        })
    }

    fn set_offline_hook(&self, hook: OfflineHook) {
        *self
            .inner
            .offline_hook
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .offline_hook
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two instances' presence on the Redis of `FLUX_TEST_REDIS_URL`, under a fresh key prefix.
    async fn instances() -> Option<(RedisPresence, RedisPresence)> {
        let Some(url) = std::env::var("FLUX_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipping: FLUX_TEST_REDIS_URL is not set");
            return None;
        };
        let settings = RedisSettings {
            url: url.clone(),
            key_prefix: format!("flux-unit-{}:", uuid::Uuid::new_v4().simple()),
            presence_ttl_secs: 30,
        };
        let mut out = Vec::new();
        for _ in 0..2 {
            let link = RedisLink::connect(&url, url.clone()).ok()?;
            if !link.wait_up(Duration::from_secs(3)).await {
                eprintln!("skipping: Redis at {url} does not answer");
                return None;
            }
            out.push(RedisPresence::new(link, &settings));
        }
        let b = out.pop()?;
        Some((out.pop()?, b))
    }

    #[tokio::test]
    async fn offline_only_after_the_last_socket_on_any_instance_and_once() {
        let Some((a, b)) = instances().await else {
            return;
        };
        assert!(a.connect("u", "s1", "u@x").await, "first anywhere");
        assert!(!b.connect("u", "s2", "u@x").await, "known from A");
        assert_eq!(a.disconnect("u", "s1").await, None, "B still has one");
        let online = b.snapshot(&["u".into(), "nobody".into()]).await;
        assert_eq!(online.len(), 1);
        assert!(online[0].online);
        assert_eq!(online[0].email, "u@x");

        let epoch = b.disconnect("u", "s2").await.expect("last socket anywhere");
        assert_ne!(epoch & SHARED_EPOCH, 0, "decided by Redis");
        // A reconnect on the other instance within the grace cancels the pending offline.
        assert!(!a.connect("u", "s3", "u@x").await);
        assert!(!b.expire("u", epoch).await);
        let epoch = a.disconnect("u", "s3").await.expect("last socket");
        assert!(
            !b.snapshot(&["u".into()]).await[0].online,
            "within the grace"
        );
        assert!(a.expire("u", epoch).await);
        assert!(!b.expire("u", epoch).await, "claimed exactly once");
        assert!(a.snapshot(&["u".into()]).await.is_empty());
        assert!(
            a.connect("u", "s4", "u@x").await,
            "new arrival after offline"
        );
    }
}
