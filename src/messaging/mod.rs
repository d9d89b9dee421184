//! Messaging: REST (CONTRACT §9) and Socket.IO `/messaging` (and `/` on the legacy messaging port).
//!
//! - [`store`]: the queries, by subject; who may use a conversation is [`crate::membership`]'s call;
//! - [`chat`]: the operations shared by socket events and REST routes (check, store, broadcast);
//! - [`socket`]: the Socket.IO events of both vocabularies; [`rest`]: the routes;
//! - [`projects`]: the live task events of project pages (`join:project`, `task:*`) on `/`;
//! - [`presence`]: online users and per-socket rate limits, behind traits (shared through Redis with
//!   the `redis` feature); [`rooms`]: room names, broadcasts and evictions.
//!
//! State: [`Messaging`] (process-wide, also the sockets' state) and, per listener, [`MessagingState`]
//! (that plus the listener's Socket.IO server for REST-triggered emits).

pub mod attachments;
pub mod chat;
pub mod model;
pub mod presence;
pub mod projects;
pub mod rest;
pub mod rooms;
pub mod socket;
pub mod store;

use std::sync::Arc;

use actix_web::web;

use crate::auth::TokenKeys;
use crate::cluster::{Cluster, Io};
use crate::config::Settings;
use crate::db::Db;
use presence::{EventLimiter, LocalPresence, Presence, TokenBuckets};

/// Process-wide messaging machinery, created once per server; the Socket.IO handlers' state.
#[derive(Clone)]
pub struct Messaging {
    pub db: Db,
    /// Verifies the handshake's `auth.token`.
    pub tokens: TokenKeys,
    pub presence: Arc<dyn Presence>,
    pub limiter: Arc<dyn EventLimiter>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

impl Messaging {
    /// Must be called inside the tokio runtime (a shared presence starts its maintenance task).
    pub fn new(settings: &Settings, db: Db, tokens: TokenKeys, cluster: &Cluster) -> Self {
        Messaging {
            db,
            tokens,
            presence: presence_store(settings, cluster),
            limiter: Arc::new(TokenBuckets::new(
                settings.socketio.event_rate_per_sec,
                settings.socketio.event_burst,
            )),
        }
    }

    /// The state of the REST routes on a listener whose Socket.IO server is `io`.
    pub fn on_listener(&self, io: Option<Io>) -> MessagingState {
        MessagingState {
            messaging: self.clone(),
            io,
        }
    }
}

fn presence_store(settings: &Settings, cluster: &Cluster) -> Arc<dyn Presence> {
    #[cfg(feature = "redis")]
    if let Some(link) = cluster.link() {
        return Arc::new(presence::redis::RedisPresence::new(
            link.clone(),
            &settings.redis,
        ));
    }
    let _ = (settings, cluster);
    Arc::new(LocalPresence::default())
}

/// What messaging's REST routes of one listener use.
#[derive(Clone, Debug)]
pub struct MessagingState {
    pub messaging: Messaging,
    /// The listener's Socket.IO server: messages created over REST reach the rooms through it.
    pub io: Option<Io>,
}

/// REST routes of the messaging service, with their state.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<MessagingState>) {
    cfg.app_data(state);
    rest::routes(cfg);
}
