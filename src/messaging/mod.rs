//! Messaging: REST (CONTRACT §9) and Socket.IO `/messaging` (and `/` on the legacy messaging port).
//!
//! - [`store`]: the queries, and the membership rule (ARCHITECTURE §4);
//! - [`chat`]: the operations shared by socket events and REST routes (check, store, broadcast);
//! - [`socket`]: the Socket.IO events of both vocabularies; [`rest`]: the routes;
//! - [`presence`]: online users and per-socket rate limits, behind traits; [`rooms`]: room names.

pub mod chat;
pub mod model;
pub mod presence;
pub mod rest;
pub mod rooms;
pub mod socket;
pub mod store;

use std::sync::Arc;

use actix_web::web;

use presence::{EventLimiter, LocalPresence, Presence, TokenBuckets};

/// Process-wide messaging machinery, created once per server.
pub struct MessagingServices {
    pub presence: Arc<dyn Presence>,
    pub limiter: Arc<dyn EventLimiter>,
}

impl std::fmt::Debug for MessagingServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingServices").finish_non_exhaustive()
    }
}

impl MessagingServices {
    /// Must be called inside the tokio runtime (a shared presence starts its maintenance task).
    pub fn new(settings: &crate::config::Settings, cluster: &crate::cluster::Cluster) -> Self {
        MessagingServices {
            presence: presence_store(settings, cluster),
            limiter: Arc::new(TokenBuckets::new(
                settings.socketio.event_rate_per_sec,
                settings.socketio.event_burst,
            )),
        }
    }
}

fn presence_store(
    settings: &crate::config::Settings,
    cluster: &crate::cluster::Cluster,
) -> Arc<dyn Presence> {
    #[cfg(feature = "redis")]
    if let Some(link) = cluster.link() {
        return Arc::new(crate::cluster::presence::RedisPresence::new(
            link.clone(),
            &settings.redis,
        ));
    }
    let _ = (settings, cluster);
    Arc::new(LocalPresence::default())
}

/// REST routes of the messaging service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    rest::routes(cfg);
}
