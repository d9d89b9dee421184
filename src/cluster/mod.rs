//! Running several instances as one (ARCHITECTURE §3, scale-out): with `redis.url` set, Socket.IO
//! broadcasts, presence, rate-limit counters and collaboration rooms are shared through Redis.
//! Without it, or while Redis is unreachable, each instance works alone with in-process state.
//!
//! This module is infrastructure: the Redis link, the Socket.IO adapter and its types, the shared
//! rate-limit store. It knows no domain module; those that share state (messaging's presence,
//! collab's rooms) build on [`link::RedisLink`] themselves.

#[cfg(feature = "redis")]
pub mod limits;
#[cfg(feature = "redis")]
pub mod link;
#[cfg(feature = "redis")]
pub mod socketio;

use serde_json::{json, Value};
use socketioxide::extract::SocketRef;
use socketioxide::{SocketIo, SocketIoBuilder};

use std::sync::Arc;

use crate::config::Settings;
use crate::web::rate_limit::{LimitStore, MemoryStore};

/// The Socket.IO adapter every listener runs: Redis-backed in a build with the `redis` feature (local
/// delivery only when no Redis is configured), in-process otherwise.
#[cfg(feature = "redis")]
pub type Adapter = socketio::Adapter;
#[cfg(not(feature = "redis"))]
pub type Adapter = socketioxide::adapter::LocalAdapter;

/// A listener's Socket.IO server.
pub type Io = SocketIo<Adapter>;
/// One connected Socket.IO client.
pub type Socket = SocketRef<Adapter>;

/// This instance's connection to its peers, if it has any.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    #[cfg(feature = "redis")]
    link: Option<link::RedisLink>,
}

impl Cluster {
    /// Sets up the Redis link when `redis.url` is set. Does not wait for Redis: an instance started
    /// while Redis is down serves its own clients and joins the cluster once Redis answers.
    pub fn connect(settings: &Settings) -> anyhow::Result<Cluster> {
        let url = settings.redis.url.trim();
        if url.is_empty() {
            return Ok(Cluster::default());
        }
        #[cfg(feature = "redis")]
        {
            let redacted = crate::config::redact_url(url);
            let link = link::RedisLink::connect(url, redacted)?;
            Ok(Cluster { link: Some(link) })
        }
        #[cfg(not(feature = "redis"))]
        anyhow::bail!("redis.url is set, but this flux was built without the `redis` feature")
    }

    /// The Redis link, when one is configured.
    #[cfg(feature = "redis")]
    pub fn link(&self) -> Option<&link::RedisLink> {
        self.link.as_ref()
    }

    /// `None` when no Redis is configured, else whether it answers.
    pub fn redis_up(&self) -> Option<bool> {
        #[cfg(feature = "redis")]
        {
            self.link.as_ref().map(link::RedisLink::is_up)
        }
        #[cfg(not(feature = "redis"))]
        None
    }

    /// What `/health/ready` and `/services` say about Redis.
    pub fn report(&self) -> Value {
        match self.redis_up() {
            None => json!({ "redis": "not configured", "mode": "single instance" }),
            Some(true) => json!({ "redis": "ok", "mode": "cluster" }),
            Some(false) => json!({ "redis": "degraded", "mode": "local only until redis is back" }),
        }
    }

    /// Where rate-limit counters and login locks live: in Redis (keys under `key_prefix`) when the
    /// instance has it, else in process.
    pub fn limit_store(&self, key_prefix: &str) -> Arc<dyn LimitStore> {
        #[cfg(feature = "redis")]
        if let Some(link) = &self.link {
            return Arc::new(limits::RedisLimitStore::new(link.clone(), key_prefix));
        }
        let _ = key_prefix;
        Arc::new(MemoryStore::new())
    }

    /// A Socket.IO builder with this instance's adapter.
    pub fn socketio_builder(&self) -> SocketIoBuilder<Adapter> {
        #[cfg(feature = "redis")]
        {
            SocketIo::builder().with_adapter::<Adapter>(socketio::adapter_state(self.link.clone()))
        }
        #[cfg(not(feature = "redis"))]
        SocketIo::builder()
    }
}

/// Adds a namespace and waits until its adapter is subscribed (Redis), so no client is refused for a
/// namespace that is still being set up.
pub async fn add_namespace<C, T>(io: &Io, path: &'static str, handler: C)
where
    C: socketioxide::handler::ConnectHandler<Adapter, T>,
    T: Send + Sync + 'static,
{
    #[cfg(feature = "redis")]
    if let Err(e) = io.ns(path, handler).await {
        tracing::error!(ns = path, error = %e, "Socket.IO namespace could not be set up");
    }
    #[cfg(not(feature = "redis"))]
    io.ns(path, handler);
}
