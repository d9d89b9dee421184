//! One Redis connection per instance, shared by everything that crosses instances: the Socket.IO
//! adapter's pub/sub, collaboration rooms, presence and rate-limit counters.
//!
//! Built on redis-rs's `ConnectionManager` (RESP3), which reconnects by itself and carries pub/sub
//! messages as push frames on the same connection. On top of it this keeps:
//! - a channel → handler map, so subscriptions made while Redis is unreachable (at start or during an
//!   outage) are (re)issued as soon as it answers again;
//! - an `up` flag fed by a ping loop and by disconnect pushes, so callers skip Redis at once while it
//!   is down instead of each waiting for a timeout, and fall back to their in-process state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch, Notify};

/// A message received on a subscribed channel: (channel, payload).
pub type ChannelMessage = (String, Vec<u8>);

/// How often the link checks Redis; also bounds how long an outage goes unnoticed when idle.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A command that takes longer than this counts as Redis being unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Handle to the instance's Redis link; cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    handlers: RwLock<HashMap<String, mpsc::Sender<ChannelMessage>>>,
    up: AtomicBool,
    /// Bumped on every down → up transition, so stores can tell that Redis may have lost their keys.
    generation: AtomicU64,
    /// The same count, for tasks that wait for a recovery instead of polling for it.
    recoveries: watch::Sender<u64>,
    changed: Notify,
    instance_id: String,
    redacted_url: String,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.inner.redacted_url)
            .field("up", &self.is_up())
            .finish()
    }
}

/// RESP3 is required for pub/sub on a multiplexed connection (PITFALLS: socketioxide-redis); add it
/// when the operator's URL does not say, rather than failing on a detail of the wire protocol.
///
/// Works for `redis://` and `rediss://` alike, and keeps redis-rs's `#insecure` fragment (TLS
/// without certificate check) after the query, where a URL parser looks for it.
pub fn with_resp3(url: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let mut out = base.to_owned();
    let query = base.split_once('?').map(|(_, q)| q);
    let has_protocol = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("protocol=")));
    if !has_protocol {
        // redis://host:port needs a path before the query for the URL parser to keep the port.
        let has_path = base
            .split_once("://")
            .is_some_and(|(_, rest)| rest.contains('/'));
        if query.is_none() && !has_path {
            out.push('/');
        }
        match query {
            None => out.push('?'),
            Some("") => {}
            Some(_) => out.push('&'),
        }
        out.push_str("protocol=resp3");
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

impl RedisLink {
    /// Creates the link without waiting for Redis: an unreachable Redis at start is an outage like any
    /// other, not a reason to refuse to serve. Must be called inside the tokio runtime.
    pub fn connect(url: &str, redacted_url: String) -> anyhow::Result<RedisLink> {
        let client = redis::Client::open(with_resp3(url))
            .map_err(|e| anyhow::anyhow!("redis.url {redacted_url}: {e}"))?;
        let weak: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Arc::default();
        let dispatch_to = weak.clone();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1))
            .set_automatic_resubscription()
            .set_push_sender(move |msg: PushInfo| {
                if let Some(inner) = dispatch_to.get().and_then(std::sync::Weak::upgrade) {
                    inner.on_push(msg);
                }
                Ok::<(), std::convert::Infallible>(())
            });
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("redis.url {redacted_url}: {e}"))?;
        let inner = Arc::new(Inner {
            conn,
            handlers: RwLock::default(),
            up: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            recoveries: watch::Sender::new(0),
            changed: Notify::new(),
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            redacted_url,
        });
        let _ = weak.set(Arc::downgrade(&inner));
        tokio::spawn(watch(Arc::downgrade(&inner)));
        Ok(RedisLink { inner })
    }

    /// Whether the last exchange with Redis succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Counts the recoveries from an outage (0 until the first connection).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Wakes on every (re)connection to Redis; the value is [`generation`](Self::generation).
    pub fn recoveries(&self) -> watch::Receiver<u64> {
        self.inner.recoveries.subscribe()
    }

    /// This process's id in shared keys and messages (random per start).
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Waits until Redis answers (or `timeout` passes); true when it is up.
    pub async fn wait_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            if self.is_up() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_up();
            }
        }
    }

    /// The connection for commands, or `None` while Redis is known to be down: callers then use their
    /// in-process fallback immediately.
    pub fn conn(&self) -> Option<ConnectionManager> {
        self.is_up().then(|| self.inner.conn.clone())
    }

    /// Runs one command against Redis with the link's timeout. A failure marks Redis down (the ping
    /// loop marks it up again) and is returned for the caller's fallback.
    pub async fn run<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn()?;
        match tokio::time::timeout(COMMAND_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.inner.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.inner.mark_down("command timed out");
                None
            }
        }
    }

    /// Publishes `payload` on `channel`. While Redis is down the message is dropped: other instances
    /// cannot be reached anyway, and local delivery must not wait for them.
    pub async fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        self.run(|mut c| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<Value>(&mut c)
                .await
        })
        .await
        .is_some()
    }

    /// Subscribes to `channel`; messages arrive on the returned receiver. Never fails: while Redis is
    /// unreachable the subscription is remembered and issued when it comes back.
    pub async fn subscribe(
        &self,
        channel: String,
        buffer: usize,
    ) -> mpsc::Receiver<ChannelMessage> {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.clone(), tx);
        if self.is_up() {
            let _ = self
                .run(|mut c| async move { c.subscribe(&channel).await })
                .await;
        }
        rx
    }

    /// Drops the subscription to `channel`.
    pub async fn unsubscribe(&self, channel: String) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&channel);
        let _ = self
            .run(|mut c| async move { c.unsubscribe(&channel).await })
            .await;
    }

    /// Subscribers of `channel` across the cluster (`PUBSUB NUMSUB`), or `None` while Redis is down.
    pub async fn subscribers(&self, channel: &str) -> Option<u64> {
        let channel = channel.to_owned();
        self.run(|mut c| async move {
            let (_, n): (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async(&mut c)
                .await?;
            Ok(n)
        })
        .await
    }
}

impl Inner {
    fn on_push(&self, msg: PushInfo) {
        match msg.kind {
            PushKind::Message | PushKind::SMessage => {
                let mut data = msg.data.into_iter();
                let (Some(chan), Some(payload)) = (data.next(), data.next()) else {
                    return;
                };
                let (Ok(chan), Ok(payload)) = (
                    String::from_redis_value(chan),
                    Vec::<u8>::from_redis_value(payload),
                ) else {
                    tracing::warn!("redis: unreadable pub/sub message");
                    return;
                };
                let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
                if let Some(tx) = handlers.get(&chan) {
                    // Never block the connection's reader: a consumer that cannot keep up loses
                    // messages (logged) rather than stalling every other channel.
                    if tx.try_send((chan.clone(), payload)).is_err() {
                        tracing::warn!(channel = %chan, "redis: subscriber lagging, message dropped");
                    }
                }
            }
            PushKind::Disconnection => self.mark_down("connection closed"),
            _ => {}
        }
    }

    fn mark_down(&self, why: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::error!(
                redis = %self.redacted_url,
                reason = why,
                "redis unreachable: serving local sockets only until it is back"
            );
            self.changed.notify_waiters();
        }
    }

    fn channels(&self) -> Vec<String> {
        self.handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// Pings Redis forever (until the link is dropped); on each down → up transition re-issues every
/// subscription, since one made during the outage never reached Redis.
async fn watch(inner: std::sync::Weak<Inner>) {
    let mut first = true;
    loop {
        let Some(link) = inner.upgrade() else { return };
        let mut conn = link.conn.clone();
        let pong = tokio::time::timeout(
            COMMAND_TIMEOUT,
            redis::cmd("PING").query_async::<Value>(&mut conn),
        )
        .await;
        match pong {
            Ok(Ok(_)) if !link.up.load(Ordering::Acquire) => {
                let channels = link.channels();
                let subscribed = if channels.is_empty() {
                    Ok(())
                } else {
                    conn.subscribe(&channels).await
                };
                match subscribed {
                    Ok(()) => {
                        let generation = link.generation.fetch_add(1, Ordering::AcqRel) + 1;
                        link.recoveries.send_replace(generation);
                        link.up.store(true, Ordering::Release);
                        link.changed.notify_waiters();
                        if first {
                            tracing::info!(redis = %link.redacted_url, "redis connected");
                        } else {
                            tracing::warn!(redis = %link.redacted_url, "redis is back: cluster fan-out restored");
                        }
                        first = false;
                    }
                    Err(e) => link.mark_down(&e.to_string()),
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if first {
                    tracing::error!(redis = %link.redacted_url, error = %e, "redis unreachable at start: serving local sockets only, retrying");
                    first = false;
                }
                link.mark_down(&e.to_string());
            }
            Err(_) => link.mark_down("ping timed out"),
        }
        drop(link);
        tokio::time::sleep(PING_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::with_resp3;

    #[test]
    fn resp3_is_added_when_missing() {
        assert_eq!(
            with_resp3("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379/?protocol=resp3"
        );
        assert_eq!(with_resp3("redis://h:1/0"), "redis://h:1/0?protocol=resp3");
        assert_eq!(
            with_resp3("redis://h:1/?db=1"),
            "redis://h:1/?db=1&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h/?protocol=resp3"),
            "redis://h/?protocol=resp3"
        );
        assert_eq!(with_resp3("redis://h/?"), "redis://h/?protocol=resp3");
    }

    #[test]
    fn tls_urls_keep_the_fragment_after_the_query() {
        assert_eq!(
            with_resp3("rediss://default:pw@db.example:25061"),
            "rediss://default:pw@db.example:25061/?protocol=resp3"
        );
        assert_eq!(
            with_resp3("rediss://h:25061/#insecure"),
            "rediss://h:25061/?protocol=resp3#insecure"
        );
        assert_eq!(
            with_resp3("rediss://h:25061#insecure"),
            "rediss://h:25061/?protocol=resp3#insecure"
        );
        assert_eq!(
            with_resp3("rediss://h:1/0?db=2#insecure"),
            "rediss://h:1/0?db=2&protocol=resp3#insecure"
        );
        assert_eq!(
            with_resp3("rediss://h:1/?protocol=resp3#insecure"),
            "rediss://h:1/?protocol=resp3#insecure"
        );
    }

    #[test]
    fn redis_rs_reads_tls_and_insecure_from_the_result() {
        use redis::{ConnectionAddr, IntoConnectionInfo};
        let info = with_resp3("rediss://h:25061#insecure").into_connection_info();
        let addr = info.map(|i| i.addr().clone()).map_err(|e| e.to_string());
        assert!(
            matches!(
                &addr,
                Ok(ConnectionAddr::TcpTls { host, port: 25061, insecure: true, .. }) if host == "h"
            ),
            "{addr:?}"
        );
        let info = with_resp3("rediss://h:25061").into_connection_info();
        let addr = info.map(|i| i.addr().clone()).map_err(|e| e.to_string());
        assert!(
            matches!(
                &addr,
                Ok(ConnectionAddr::TcpTls {
                    insecure: false,
                    ..
                })
            ),
            "{addr:?}"
        );
    }
}
