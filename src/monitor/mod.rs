//! Monitoring: the `/auth` Socket.IO metrics stream (alias `/performance`, CONTRACT §11.5) and the
//! Prometheus `/metrics` exposition, both from the figures in [`metrics::Metrics`].
//!
//! Other modules report into the process-wide counters ([`count_message`]); monitor itself reads
//! only the database and the listeners' Socket.IO servers, never another domain module.
//!
//! State: [`Monitor`] (process-wide, the metrics sockets' state) and, per listener, [`MonitorState`]
//! (what `/metrics` and the request recorder of that listener use).

pub mod history;
pub mod metrics;
pub mod system;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::TokenKeys;
use crate::cluster::{Io, Socket};
use crate::db::Db;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use socketioxide::extract::{State, TryData};
use socketioxide::handler::ConnectHandler;

pub use metrics::{count_message, messages_total, Metrics, SystemMetrics};

/// Process-wide monitoring, created once per server; the metrics sockets' state.
#[derive(Clone)]
pub struct Monitor {
    pub metrics: Arc<Metrics>,
    pub db: Db,
    /// Verifies the admin token of a metrics socket.
    pub tokens: TokenKeys,
    /// `monitor.public`: metrics sockets without a token.
    pub public: bool,
}

impl Monitor {
    pub fn new(db: Db, tokens: TokenKeys, public: bool) -> Self {
        Monitor {
            metrics: Arc::new(Metrics::new()),
            db,
            tokens,
            public,
        }
    }

    /// The state of the listener called `service` (its `/health` name), whose Socket.IO server is
    /// `io`.
    pub fn on_listener(&self, service: &'static str, io: Option<Io>) -> MonitorState {
        MonitorState {
            metrics: self.metrics.clone(),
            db: self.db.clone(),
            service,
            io,
        }
    }
}

/// What `/metrics` and the request recorder of one listener use.
#[derive(Clone)]
pub struct MonitorState {
    pub metrics: Arc<Metrics>,
    pub db: Db,
    /// The listener's service name (a metrics label).
    pub service: &'static str,
    pub io: Option<Io>,
}

/// How often `system_metrics` is pushed to every metrics socket.
pub const PUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The metrics namespaces of a listener, in the order they are registered.
pub const NAMESPACES: [&str; 2] = ["/auth", "/performance"];

#[derive(Debug, thiserror::Error)]
pub enum MonitorHandshakeError {
    #[error("Authentication required")]
    Missing,
    #[error("Invalid token")]
    Invalid,
    #[error("Admin access required")]
    NotAdmin,
}

/// System internals are for admins unless `monitor.public` says otherwise (the original served them
/// to anyone, CONTRACT §14.2).
async fn authorize(
    TryData(auth): TryData<Value>,
    State(state): State<Monitor>,
) -> Result<(), MonitorHandshakeError> {
    if state.public {
        return Ok(());
    }
    let token = auth
        .ok()
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or(MonitorHandshakeError::Missing)?;
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|_| MonitorHandshakeError::Invalid)?;
    if claims.user_type != "admin" {
        return Err(MonitorHandshakeError::NotAdmin);
    }
    Ok(())
}

async fn on_connect(s: Socket, io: Io, State(state): State<Monitor>) {
    let metrics = state.metrics.latest(active_sockets(&io));
    if let Err(e) = s.emit("system_metrics", &metrics) {
        tracing::debug!(error = %e, "system_metrics not delivered");
    }
    s.on(
        "request_metrics",
        async |s: Socket, io: Io, State(state): State<Monitor>| {
            let metrics = state.metrics.latest(active_sockets(&io));
            let _ = s.emit("system_metrics", &metrics);
            match database_metrics(&state.db).await {
                Ok(tables) => {
                    let _ = s.emit("database_metrics", &tables);
                }
                Err(e) => tracing::warn!(error = %e, "database_metrics unavailable"),
            }
        },
    );
}

/// Register the metrics namespaces on a listener's Socket.IO server.
pub async fn register(io: &Io, namespaces: &[&'static str]) {
    for ns in namespaces {
        crate::cluster::add_namespace(io, ns, on_connect.with(authorize)).await;
    }
}

/// The root namespace: accepted, no handlers (as the Node servers did).
pub async fn register_root(io: &Io) {
    crate::cluster::add_namespace(io, "/", async |_s: Socket| {}).await;
}

/// Sockets connected on every namespace of one Socket.IO server.
pub fn active_sockets(io: &Io) -> u64 {
    io.nsps()
        .into_iter()
        .map(|op| op.sockets().len() as u64)
        .sum()
}

/// Row counts of the main tables. The original sent invented constants here; flux sends only what
/// it measures, and `null` for what it cannot.
async fn database_metrics(db: &Db) -> Result<Value, crate::db::DbError> {
    use crate::db::schema;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    let mut conn = db.get_read().await?;
    let mut rows = Vec::new();
    macro_rules! count {
        ($name:literal, $table:path) => {{
            let n: i64 = crate::db!(conn, |c| {
                $table.count().get_result::<i64>(c).await
            })?;
            rows.push(json!({
                "table_name": $name,
                "row_count": n,
                "size_mb": null,
                "query_count": null,
                "avg_query_time": null,
                "index_usage": null,
            }));
        }};
    }
    count!("users", schema::users::table);
    count!("groups", schema::groups::table);
    count!("projects", schema::projects::table);
    count!("files", schema::files::table);
    count!("conversations", schema::conversations::table);
    count!("messages", schema::messages::table);
    Ok(Value::Array(rows))
}

/// Every `PUSH_INTERVAL`: probe the database, close the metrics window, push `system_metrics` to
/// every metrics socket of every listener.
pub async fn run_sampler(monitor: Monitor, ios: Vec<(String, Io)>) {
    let mut tick = tokio::time::interval(PUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        if monitor.db.ping().await.is_ok() {
            monitor.metrics.record_db_probe(started.elapsed());
        }
        let sockets: u64 = ios.iter().map(|(_, io)| active_sockets(io)).sum();
        let summary = monitor.metrics.summarise(sockets, monitor.db.pool_stats());
        for (_, io) in &ios {
            for ns in NAMESPACES {
                if let Some(op) = io.of(ns) {
                    if let Err(e) = op.emit("system_metrics", &summary).await {
                        tracing::debug!(error = %e, ns, "system_metrics broadcast failed");
                    }
                }
            }
        }
    }
}

/// Count and time every HTTP request by its route pattern (never the raw path: ids would explode
/// the label set).
pub async fn record_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<MonitorState>>().cloned();
    let response = next.call(req).await?;
    if let Some(state) = state {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        state.metrics.record_http(
            state.service,
            &method,
            &route,
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(response)
}

/// `/metrics`, with the listener's state (which [`record_http`] also reads).
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<MonitorState>) {
    cfg.app_data(state)
        .route("/metrics", web::get().to(prometheus));
}

/// Prometheus text 0.0.4 unless the scraper's `Accept` asks for OpenMetrics (Prometheus itself
/// does; `curl` and older scrapers do not and could not parse it).
async fn prometheus(req: HttpRequest, state: web::Data<MonitorState>) -> HttpResponse {
    if let Some(io) = &state.io {
        for op in io.nsps() {
            let path = op.ns_path().to_owned();
            let count = op.sockets().len();
            state.metrics.set_sockets(state.service, &path, count);
        }
    }
    state.metrics.set_pool(state.db.pool_stats());
    let openmetrics = req
        .headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.to_ascii_lowercase()
                .contains("application/openmetrics-text")
        });
    let (text, content_type) = if openmetrics {
        (
            state.metrics.export(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            state.metrics.export_prometheus(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    match text {
        Ok(text) => HttpResponse::Ok().content_type(content_type).body(text),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
            "Internal server error",
            e,
        )),
    }
}
