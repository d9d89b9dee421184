//! The collaboration service (`serve collab`, CONTRACT §12): Yjs documents shared over WebSocket.
//!
//! - [`connection`]: the actix-ws endpoint on any path: auth, limits, heartbeat, the frame loop.
//! - [`protocol`]: the y-websocket binary protocol and the original JSON protocol, decoded into one
//!   frame type.
//! - `checked_update`: Yjs updates decoded with their client ids range-checked.
//! - [`room`]: a room's document, awareness and peers.
//! - [`registry`]: the loaded rooms, refcounted by their peers.
//! - [`store`]: the update log and snapshots in the flux database.
//! - `cluster` (feature `redis`): the same room on several instances, kept in sync over Redis.
//!
//! Persistence runs in one background task on the runtime that started the server (not on an
//! actix worker, so a graceful shutdown can still flush after the workers stopped): every
//! `batch_interval_ms` it appends each room's new updates, compacts rooms past the threshold, and
//! unloads rooms whose last peer left.

mod checked_update;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod connection;
#[cfg(test)]
mod frame_props;
pub mod protocol;
pub mod registry;
pub mod room;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::auth::identity::AccessUser;
use crate::auth::TokenKeys;
use crate::cluster::Cluster;
use crate::config::CollabSettings;
use crate::db::Db;
use crate::error::ApiError;

use self::registry::Registry;

/// The live collaboration service of a listener: its rooms and the counters behind `/health` and
/// `/stats`.
pub struct CollabStats {
    start_ms: i64,
    pub(crate) registry: Registry,
    pub(crate) db: Db,
    pub(crate) settings: CollabSettings,
    /// Verifies `?token=` (or the bearer header) of each socket.
    pub(crate) tokens: TokenKeys,
    /// The runtime every database call runs on (see the module docs).
    pub(crate) runtime: tokio::runtime::Handle,
    /// The other instances, when `redis.url` is set.
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<Arc<cluster::Cluster>>,
    total_connections: AtomicU64,
    messages: AtomicU64,
    next_conn: AtomicU64,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CollabStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollabStats")
            .field("rooms", &self.registry.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomStats {
    pub connections: usize,
    pub users: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct StatsSnapshot {
    pub connections: usize,
    pub total_connections: u64,
    pub messages: u64,
    pub rooms: BTreeMap<String, RoomStats>,
}

impl CollabStats {
    /// Must be called inside the tokio runtime that outlives the listener; starts the persister.
    pub fn new(
        db: Db,
        settings: CollabSettings,
        tokens: TokenKeys,
        cluster: &Cluster,
    ) -> Arc<Self> {
        #[cfg(not(feature = "redis"))]
        let _ = cluster;
        let collab = Arc::new(CollabStats {
            start_ms: chrono::Utc::now().timestamp_millis(),
            registry: Registry::default(),
            db,
            settings,
            tokens,
            runtime: tokio::runtime::Handle::current(),
            #[cfg(feature = "redis")]
            cluster: cluster
                .link()
                .cloned()
                .map(|link| Arc::new(cluster::Cluster::new(link))),
            total_connections: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(persister(Arc::downgrade(&collab)));
        collab
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut snap = StatsSnapshot {
            total_connections: self.total_connections.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            ..Default::default()
        };
        for room in self.registry.rooms() {
            let users = room.users();
            snap.connections += users.len();
            snap.rooms.insert(
                room.name.clone(),
                RoomStats {
                    connections: users.len(),
                    users,
                },
            );
        }
        snap
    }

    /// Rooms currently loaded (tests assert it drops to zero).
    pub fn loaded_rooms(&self) -> usize {
        self.registry.len()
    }

    fn next_connection(&self) -> u64 {
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn count_message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Graceful shutdown: close every socket with 1000 `Server shutting down`, give the
    /// connections a moment to leave, then store and compact every room.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for room in self.registry.rooms() {
            room.close_all(1000, "Server shutting down");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while self.registry.rooms().iter().any(|r| r.peer_count() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.persist_all(true).await;
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            cluster.leave_all().await;
        }
    }

    /// One persister pass: store every room; compact and unload the idle ones.
    async fn persist_all(&self, compact_all: bool) {
        for room in self.registry.rooms() {
            let idle = room.peer_count() == 0;
            let result = if room.loaded.get().is_some() {
                store::persist(
                    &self.db,
                    &room,
                    compact_all || idle,
                    self.settings.compaction_threshold,
                )
                .await
            } else {
                Ok(())
            };
            if let Err(e) = &result {
                tracing::error!(room = %room.name, error = %e, "storing a collaboration room failed");
            }
            if idle && self.registry.unload_if_idle(&room, result.is_err()) {
                tracing::debug!(room = %room.name, "room unloaded");
                #[cfg(feature = "redis")]
                if let Some(cluster) = &self.cluster {
                    cluster.leave(&room).await;
                }
            }
        }
    }
}

async fn persister(collab: std::sync::Weak<CollabStats>) {
    let interval = match collab.upgrade() {
        Some(c) => Duration::from_millis(c.settings.batch_interval_ms.clamp(10, 1000)),
        None => return,
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(collab) = collab.upgrade() else {
            return;
        };
        if collab.is_shutting_down() {
            return;
        }
        collab.persist_all(false).await;
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats));
}

/// WebSocket upgrades on any path of the collab listener, with the service's state; register before
/// the other routes.
pub fn websocket_routes(cfg: &mut web::ServiceConfig, collab: web::Data<CollabStats>) {
    cfg.app_data(collab).route(
        "/{tail:.*}",
        web::get()
            .guard(actix_web::guard::fn_guard(connection::is_websocket_upgrade))
            .to(connection::upgrade),
    );
}

/// Anything else on the collab port answers like the original: plain-text 404.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("Not Found")
}

/// The original's `/stats`. Anyone gets the counts; room names and who is in them only an
/// admin: a valid access token of an account that is an active admin now (as the admin routes of
/// accounts decide it).
async fn stats(
    collab: web::Data<CollabStats>,
    caller: Option<AccessUser>,
) -> Result<HttpResponse, ApiError> {
    let admin = match &caller {
        Some(AccessUser(user)) => crate::auth::admin::is_active_admin(&collab.db, user)
            .await
            .map_err(|e| ApiError::storage("Server error", e))?,
        None => false,
    };
    let snap = collab.snapshot();
    let mut body = serde_json::json!({
        "startTime": collab.start_ms,
        "connections": snap.connections,
        "totalConnections": snap.total_connections,
        "activeRooms": snap.rooms.len(),
        "messages": snap.messages,
        "timestamp": crate::db::now().to_iso_millis(),
    });
    if admin {
        body["rooms"] = serde_json::json!(snap.rooms);
    }
    // The original pretty-printed this one.
    let text = serde_json::to_string_pretty(&body)
        .map_err(|e| ApiError::internal("Internal server error", e))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(text))
}
