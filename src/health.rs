//! `/health`, `/health/live`, `/health/ready` and `/services` on every listener (CONTRACT §10).
//!
//! Part of the assembly, like `server` and `topology`: it reports on the target as a whole (its
//! modules, listeners, storage and cluster link), so it may know them all.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::cluster::{Cluster, Io};
use crate::config::RunEnvironment;
use crate::db::Db;
use crate::monitor::system::memory_json;
use crate::topology::{ListenerKind, Module, ModuleState, Modules, Target};

/// What the health routes of one listener report on.
#[derive(Clone)]
pub struct HealthState {
    pub target: Target,
    pub kind: ListenerKind,
    pub port: u16,
    pub started: Instant,
    pub modules: Arc<Modules>,
    pub db: Db,
    pub cluster: Cluster,
    pub environment: RunEnvironment,
    /// Whether Google sign-in is configured (`/health` of the auth service says so).
    pub google_configured: bool,
    /// The listener's Socket.IO server (socket counts).
    pub io: Option<Io>,
    /// The collaboration service of a collab listener (rooms and counts).
    #[cfg(feature = "collab")]
    pub collab: Option<Arc<crate::collab::CollabStats>>,
}

pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<HealthState>) {
    cfg.app_data(state)
        .route("/health", web::get().to(health))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/services", web::get().to(services));
}

fn iso_now() -> String {
    crate::db::now().to_iso_millis()
}

async fn health(state: web::Data<HealthState>) -> HttpResponse {
    let listener = &state;
    let uptime = state.started.elapsed();
    let memory = memory_json();
    match listener.kind {
        ListenerKind::Unified => HttpResponse::Ok().json(json!({
            "status": "healthy",
            "service": "unified-backend",
            "timestamp": iso_now(),
            "services": ["auth", "messaging"],
            "port": listener.port,
            "uptime": uptime.as_secs_f64(),
            "memory": memory,
        })),
        ListenerKind::Auth => {
            let db_ok = state.db.ping().await.is_ok();
            let mut checks = json!({
                "database": if db_ok { "ok" } else { "error" },
                "oauth": if state.google_configured { "configured" } else { "not_configured" },
                "storageType": state.db.backend().to_string(),
            });
            let mut body = json!({
                "status": if db_ok { "ok" } else { "error" },
                "service": "auth-service",
                "port": listener.port,
                "uptime": uptime.as_millis() as u64,
                "timestamp": iso_now(),
                "memory": memory,
                "pid": std::process::id(),
                "checks": checks.take(),
            });
            if db_ok {
                HttpResponse::Ok().json(body)
            } else {
                body["error"] = json!("database unreachable");
                HttpResponse::ServiceUnavailable().json(body)
            }
        }
        ListenerKind::Messaging => HttpResponse::Ok().json(json!({
            "status": "UP",
            "service": "messaging-service",
            "port": listener.port,
            "uptime": uptime.as_secs_f64() * 1000.0,
            "memory": memory,
            "activeUsers": socket_count(listener, "/"),
            "timestamp": iso_now(),
            "environment": state.environment.as_str(),
            "features": { "websocket": true, "fileUpload": cfg!(feature = "auth") },
        })),
        ListenerKind::Collab => collab_health(listener, uptime),
    }
}

/// A build without the `collab` feature never starts a collab listener.
#[cfg(not(feature = "collab"))]
fn collab_health(_listener: &HealthState, _uptime: std::time::Duration) -> HttpResponse {
    HttpResponse::NotFound().finish()
}

#[cfg(feature = "collab")]
fn collab_health(listener: &HealthState, uptime: std::time::Duration) -> HttpResponse {
    let stats = listener
        .collab
        .as_ref()
        .map(|c| c.snapshot())
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "service": "collaboration-server",
        "port": listener.port,
        "uptime": uptime.as_secs(),
        "connections": stats.connections,
        "totalConnections": stats.total_connections,
        "activeRooms": stats.rooms.len(),
        "rooms": stats.rooms.keys().collect::<Vec<_>>(),
        "messagesProcessed": stats.messages,
        "timestamp": iso_now(),
    }))
}

async fn live(listener: web::Data<HealthState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive", "service": listener.kind.service_name() }))
}

/// Ready only when every module is; the database is probed live, so a store that comes back after an
/// outage turns the answer to 200 again without a restart.
async fn ready(state: web::Data<HealthState>) -> HttpResponse {
    let service = state.kind.service_name();
    let db = state.db.ping().await;
    let db_state = state.modules.state(Module::Database);
    // A module still starting (migrations under way) stays as it is; otherwise the probe decides.
    if db_state != Some(ModuleState::Starting) && db_state != Some(ModuleState::Stopping) {
        state.modules.set(
            Module::Database,
            if db.is_ok() {
                ModuleState::Ready
            } else {
                ModuleState::Degraded
            },
        );
    }
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready", "service": service, "error": "database unreachable",
        }));
    }
    if !state.modules.all_ready() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready", "service": service, "error": "modules starting",
            "modules": state.modules.report(),
        }));
    }
    // Redis is shared state, not storage: without it the instance still serves its own clients, so
    // it stays in rotation (200) and says it is degraded.
    let status = if state.cluster.redis_up() == Some(false) {
        "degraded"
    } else {
        "ready"
    };
    HttpResponse::Ok().json(json!({
        "status": status,
        "service": service,
        "dependencies": {
            "database": "ok",
            "storageType": state.db.backend().to_string(),
            "redis": redis_dependency(&state),
        },
    }))
}

async fn services(state: web::Data<HealthState>) -> HttpResponse {
    let listener = &state;
    let namespaces: serde_json::Map<String, Value> = listener
        .io
        .as_ref()
        .map(|io| {
            io.nsps()
                .into_iter()
                .map(|op| {
                    let path = op.ns_path().to_string();
                    (path, json!({ "sockets": op.sockets().len() }))
                })
                .collect()
        })
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({
        "target": state.target,
        "service": listener.kind.service_name(),
        "ready": state.modules.all_ready(),
        "modules": state.modules.report(),
        "cluster": state.cluster.report(),
        "socketio": { "namespaces": namespaces },
    }))
}

fn redis_dependency(state: &HealthState) -> &'static str {
    match state.cluster.redis_up() {
        None => "not configured",
        Some(true) => "ok",
        Some(false) => "degraded",
    }
}

fn socket_count(listener: &HealthState, ns: &str) -> usize {
    listener
        .io
        .as_ref()
        .and_then(|io| io.of(ns))
        .map(|op| op.sockets().len())
        .unwrap_or(0)
}
