//! The collaboration service (`serve collab`): `/health`, `/stats`, and the Yjs WebSocket endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::health::iso_now;

/// Connection and room counters behind `/health` and `/stats`.
#[derive(Debug, Default)]
pub struct CollabStats {
    start_ms: i64,
    inner: Mutex<StatsSnapshot>,
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
    pub fn new() -> Self {
        CollabStats {
            start_ms: chrono::Utc::now().timestamp_millis(),
            inner: Mutex::new(StatsSnapshot::default()),
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        match self.inner.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(stats));
}

/// Anything else on the collab port answers like the original: plain-text 404.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("Not Found")
}

async fn stats(listener: web::Data<crate::state::Listener>) -> HttpResponse {
    let Some(collab) = listener.collab.as_ref() else {
        return not_found().await;
    };
    let snap = collab.snapshot();
    let body = serde_json::json!({
        "startTime": collab.start_ms,
        "connections": snap.connections,
        "totalConnections": snap.total_connections,
        "rooms": snap.rooms,
        "messages": snap.messages,
        "timestamp": iso_now(),
    });
    // The original pretty-printed this one.
    match serde_json::to_string_pretty(&body) {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/json; charset=utf-8")
            .body(text),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
            "Internal server error",
            e,
        )),
    }
}
