//! Socket.IO across instances: socketioxide's Redis adapter over the instance's [`RedisLink`].
//!
//! The adapter type is fixed at compile time, so a build with the `redis` feature always runs the
//! Redis adapter; without `REDIS_URL` its driver has no link and every broadcast stays local. The
//! driver is ours rather than socketioxide-redis's own because that one holds a plain multiplexed
//! connection: it neither reconnects nor resubscribes after Redis restarts, and a failed publish
//! would also fail the local half of a broadcast.

use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use super::link::RedisLink;

/// The Socket.IO adapter of every listener.
pub type Adapter = CustomRedisAdapter<socketioxide::adapter::Emitter, FanoutDriver>;

/// Channel prefix, so flux's traffic is told apart from other Socket.IO servers sharing a Redis.
const PREFIX: &str = "flux-socket.io";

/// The pub/sub driver the adapter talks through; `None` = a single instance.
#[derive(Clone, Debug)]
pub struct FanoutDriver {
    link: Option<RedisLink>,
}

/// The driver never fails: an unreachable Redis degrades to local delivery (see [`RedisLink`]).
#[derive(Debug, thiserror::Error)]
#[error("redis link error")]
pub struct NeverFails;

/// The adapter state for `SocketIo::builder().with_adapter::<Adapter>(…)`.
pub fn adapter_state(link: Option<RedisLink>) -> RedisAdapterCtr<FanoutDriver> {
    RedisAdapterCtr::new_with_driver(
        FanoutDriver { link },
        RedisAdapterConfig::new()
            .with_prefix(PREFIX)
            .with_stream_buffer(4096),
    )
}

impl Driver for FanoutDriver {
    type Error = NeverFails;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        if let Some(link) = &self.link {
            link.publish(chan, val).await;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        Ok(match &self.link {
            Some(link) => MessageStream::new(link.subscribe(chan, size).await),
            None => MessageStream::new_empty(),
        })
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        if let Some(link) = &self.link {
            link.unsubscribe(chan).await;
        }
        Ok(())
    }

    /// Servers listening on `chan`, this one included. While Redis is down only this one can be
    /// reached, so requests expecting answers from the others do not wait for them.
    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let n = match &self.link {
            Some(link) => link.subscribers(chan).await.unwrap_or(1),
            None => 1,
        };
        Ok(u16::try_from(n).unwrap_or(u16::MAX).max(1))
    }
}
