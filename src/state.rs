//! What every handler can reach: settings, storage, token keys and the live module states.

use std::sync::Arc;
use std::time::Instant;

use crate::cluster::Io;

use crate::auth::token::TokenKeys;
use crate::config::Settings;
use crate::db::Db;
use crate::topology::{ListenerKind, Modules};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub tokens: TokenKeys,
    pub modules: Arc<Modules>,
    pub target: crate::cli::Target,
    pub started: Instant,
    pub auth: Arc<crate::auth::AuthServices>,
    pub files: Arc<crate::accounts::files::FileServices>,
    pub messaging: Arc<crate::messaging::MessagingServices>,
    pub monitor: crate::monitor::MonitorHandle,
    /// The link to the other instances (Redis), if configured.
    pub cluster: crate::cluster::Cluster,
}

/// One HTTP listener of the target: what its `/health` calls itself, its port, its Socket.IO server.
#[derive(Clone)]
pub struct Listener {
    pub kind: ListenerKind,
    pub port: u16,
    pub io: Option<Io>,
    #[cfg(feature = "collab")]
    pub collab: Option<Arc<crate::collab::CollabStats>>,
}
