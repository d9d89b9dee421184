//! Who is online, and how fast a socket may talk: both behind traits so a Redis-backed store can
//! replace the in-process one for multi-instance deployments (ARCHITECTURE §3).
//!
//! Presence is counted per user across sockets (tabs, devices): a user comes online with the first
//! socket and goes offline only when the last one has been closed for the grace period
//! (CONTRACT §11.4: 5 s), so a page reload never flickers `offline`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

#[cfg(feature = "redis")]
pub mod redis;

use crate::db::Timestamp;

/// How long a user with no sockets left stays "online" before `offline` is announced.
pub const OFFLINE_GRACE: Duration = Duration::from_secs(5);

/// One line of `users:online`.
#[derive(Debug, Clone)]
pub struct PresenceEntry {
    pub user_id: String,
    pub socket_id: String,
    pub email: String,
    pub online: bool,
    pub last_seen: Timestamp,
}

/// Announces a user offline when the store itself finds them gone (a crashed instance's sockets
/// expired), rather than through a disconnect on this instance.
pub type OfflineHook = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// A user with live sockets on this instance.
#[derive(Debug, Clone)]
pub struct LiveUser {
    pub user_id: String,
    pub email: String,
    pub last_socket: String,
    pub sockets: Vec<String>,
}

/// Presence store. Async so a networked store fits; the in-process one never waits.
pub trait Presence: Send + Sync + 'static {
    /// A socket of `user` connected. True when the user was not online before (announce it).
    fn connect<'a>(&'a self, user: &'a str, sid: &'a str, email: &'a str) -> BoxFuture<'a, bool>;
    /// A socket closed. `Some(epoch)` when it was the user's last one: offline is pending, and
    /// [`expire`](Self::expire) decides after the grace period.
    fn disconnect<'a>(&'a self, user: &'a str, sid: &'a str) -> BoxFuture<'a, Option<u64>>;
    /// After the grace: true (and the entry is gone) when the user stayed offline since `epoch`.
    fn expire<'a>(&'a self, user: &'a str, epoch: u64) -> BoxFuture<'a, bool>;
    /// The entries of those of `users` that are known (online or within the grace).
    fn snapshot<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<PresenceEntry>>;
    /// Where to announce users the store finds offline by itself. The in-process store never does
    /// (every offline follows a disconnect here).
    fn set_offline_hook(&self, _hook: OfflineHook) {}
    /// Stops background work (the server is shutting down).
    fn close(&self) {}
}

struct Entry {
    sockets: HashSet<String>,
    last_socket: String,
    email: String,
    last_seen: Timestamp,
    epoch: u64,
}

/// In-process presence (one instance).
#[derive(Default)]
pub struct LocalPresence {
    users: Mutex<HashMap<String, Entry>>,
}

impl LocalPresence {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        // A poisoned lock only means another handler panicked mid-update; the map stays usable.
        let mut guard = self.users.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl LocalPresence {
    /// The users with live sockets (re-registered with a shared store after it lost them).
    pub fn live_users(&self) -> Vec<LiveUser> {
        self.with(|m| {
            m.iter()
                .filter(|(_, e)| !e.sockets.is_empty())
                .map(|(u, e)| LiveUser {
                    user_id: u.clone(),
                    email: e.email.clone(),
                    last_socket: e.last_socket.clone(),
                    sockets: e.sockets.iter().cloned().collect(),
                })
                .collect()
        })
    }

    /// Drops `user` if they have no socket here; true when they had none (offline as far as this
    /// instance can tell).
    pub fn forget_idle(&self, user: &str) -> bool {
        self.with(|m| match m.get(user) {
            Some(e) if !e.sockets.is_empty() => false,
            _ => {
                m.remove(user);
                true
            }
        })
    }
}

impl Presence for LocalPresence {
    fn connect<'a>(&'a self, user: &'a str, sid: &'a str, email: &'a str) -> BoxFuture<'a, bool> {
        let first = self.with(|m| match m.get_mut(user) {
            Some(e) => {
                // Reconnect within the grace: the pending offline is cancelled by the new epoch.
                let was_empty = e.sockets.is_empty();
                e.sockets.insert(sid.to_owned());
                e.last_socket = sid.to_owned();
                e.last_seen = Timestamp::now();
                if was_empty {
                    e.epoch += 1;
                }
                false
            }
            None => {
                m.insert(
                    user.to_owned(),
                    Entry {
                        sockets: HashSet::from([sid.to_owned()]),
                        last_socket: sid.to_owned(),
                        email: email.to_owned(),
                        last_seen: Timestamp::now(),
                        epoch: 0,
                    },
                );
                true
            }
        });
        Box::pin(std::future::ready(first))
    }

    fn disconnect<'a>(&'a self, user: &'a str, sid: &'a str) -> BoxFuture<'a, Option<u64>> {
        let pending = self.with(|m| {
            let e = m.get_mut(user)?;
            if !e.sockets.remove(sid) || !e.sockets.is_empty() {
                return None;
            }
            e.last_seen = Timestamp::now();
            e.epoch += 1;
            Some(e.epoch)
        });
        Box::pin(std::future::ready(pending))
    }

    fn expire<'a>(&'a self, user: &'a str, epoch: u64) -> BoxFuture<'a, bool> {
        let gone = self.with(|m| match m.get(user) {
            Some(e) if e.sockets.is_empty() && e.epoch == epoch => {
                m.remove(user);
                true
            }
            _ => false,
        });
        Box::pin(std::future::ready(gone))
    }

    fn snapshot<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<PresenceEntry>> {
        let out = self.with(|m| {
            users
                .iter()
                .filter_map(|u| {
                    m.get(u).map(|e| PresenceEntry {
                        user_id: u.clone(),
                        socket_id: e.last_socket.clone(),
                        email: e.email.clone(),
                        online: !e.sockets.is_empty(),
                        last_seen: e.last_seen,
                    })
                })
                .collect()
        });
        Box::pin(std::future::ready(out))
    }
}

/// Per-socket event budget. Synchronous on purpose: a socket lives on exactly one instance, so its
/// budget never needs to be shared, and the check runs on every event.
pub trait EventLimiter: Send + Sync + 'static {
    /// Spend one event of `key`'s budget; false when it is exhausted.
    fn allow(&self, key: &str) -> bool;
    /// Drop `key`'s state (the socket closed).
    fn forget(&self, key: &str);
}

/// Token bucket per key, in process.
pub struct TokenBuckets {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenBuckets {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        TokenBuckets {
            rate: rate_per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl EventLimiter for TokenBuckets {
    fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = m.entry(key.to_owned()).or_insert((self.burst, now));
        let refill = now.duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn forget(&self, key: &str) {
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offline_only_after_the_last_socket_and_the_grace() {
        let p = LocalPresence::default();
        assert!(p.connect("u", "s1", "u@x").await);
        assert!(!p.connect("u", "s2", "u@x").await);
        assert_eq!(p.disconnect("u", "s1").await, None);
        let epoch = p.disconnect("u", "s2").await.expect("last socket");
        // A reload within the grace cancels the pending offline.
        assert!(!p.connect("u", "s3", "u@x").await);
        assert!(!p.expire("u", epoch).await);
        let epoch = p.disconnect("u", "s3").await.expect("last socket");
        assert!(p.expire("u", epoch).await);
        assert!(p.snapshot(&["u".into()]).await.is_empty());
    }

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let b = TokenBuckets::new(0.0, 3);
        assert!(b.allow("s") && b.allow("s") && b.allow("s"));
        assert!(!b.allow("s"));
        assert!(b.allow("other"));
        b.forget("s");
        assert!(b.allow("s"));
    }
}
