//! `/monitoring/…` (OPERATOR §9): the original's monitoring router, now guarded. `health` is public;
//! the other reads are for admins unless `monitor.public`; `control` and `thresholds` always are.
//! Figures come from the monitor's samples (every few seconds, the last hour, per instance).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::gate::reader;
use super::{record_action, Admin, AdminState};
use crate::error::{ApiError, ErrorCode};
use crate::monitor::SystemMetrics;

const THRESHOLD_KEYS: [&str; 6] = [
    "responseTime",
    "memoryUsage",
    "cpuUsage",
    "errorRate",
    "dbQueryTime",
    "wsConnections",
];

pub struct Monitoring {
    enabled: AtomicBool,
    thresholds: Mutex<BTreeMap<String, f64>>,
}

impl Default for Monitoring {
    fn default() -> Self {
        let defaults = [1000.0, 80.0, 80.0, 5.0, 500.0, 1000.0];
        Monitoring {
            enabled: AtomicBool::new(true),
            thresholds: Mutex::new(
                THRESHOLD_KEYS
                    .iter()
                    .zip(defaults)
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        }
    }
}

impl Monitoring {
    fn thresholds(&self) -> BTreeMap<String, f64> {
        self.thresholds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/performance/summary", web::get().to(summary))
        .route("/performance/service/{name}", web::get().to(service))
        .route("/performance/alerts", web::get().to(alerts))
        .route("/performance/realtime", web::get().to(realtime))
        .route("/performance/export", web::get().to(export))
        .route("/performance/control", web::post().to(control))
        .route("/performance/thresholds", web::put().to(thresholds));
}

/// The original's `{error}` body of this router.
fn error(status: StatusCode, code: ErrorCode, text: &str) -> ApiError {
    ApiError::with_body(status, code, json!({"error": text, "message": text}))
}

fn value_of(s: &SystemMetrics, key: &str) -> f64 {
    match key {
        "responseTime" => s.api_response_time as f64,
        "memoryUsage" => s.memory_usage,
        "cpuUsage" => s.cpu_usage,
        "errorRate" => s.error_rate,
        "dbQueryTime" => s.database_query_time as f64,
        "wsConnections" => s.active_connections as f64,
        _ => 0.0,
    }
}

/// Every threshold a sample crossed.
fn alerts_of(state: &AdminState, samples: &[SystemMetrics]) -> Vec<Value> {
    if !state.monitoring.enabled.load(Ordering::Relaxed) {
        return Vec::new();
    }
    let limits = state.monitoring.thresholds();
    let mut out = Vec::new();
    for s in samples {
        for (key, limit) in &limits {
            let value = value_of(s, key);
            if value > *limit {
                out.push(json!({
                    "service": "flux",
                    "metric": key,
                    "value": value,
                    "threshold": limit,
                    "severity": if value > limit * 1.5 { "critical" } else { "warning" },
                    "timestamp": s.timestamp,
                }));
            }
        }
    }
    out
}

/// healthy | warning | critical: critical when the database does not answer.
async fn health_status(state: &AdminState, alerts: &[Value]) -> &'static str {
    if state.db.ping().await.is_err() {
        "critical"
    } else if alerts.iter().any(|a| a["severity"] == "critical") {
        "warning"
    } else {
        "healthy"
    }
}

fn recent(state: &AdminState, minutes: u64) -> Vec<SystemMetrics> {
    state.metrics.history.samples(minutes)
}

async fn health(state: web::Data<AdminState>) -> HttpResponse {
    let samples = recent(&state, 5);
    let alerts = alerts_of(&state, &samples);
    let health = health_status(&state, &alerts).await;
    let status = if health == "critical" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(json!({
        "status": if health == "critical" { "unhealthy" } else { "healthy" },
        "health": health,
        "timestamp": crate::db::now(),
        "alerts": alerts.len(),
        "uptime": state.started.elapsed().as_secs(),
        "memory": crate::monitor::system::memory_json(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryQuery {
    /// Milliseconds, as the original (default one hour).
    time_range: Option<u64>,
}

async fn summary(state: web::Data<AdminState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let q: SummaryQuery = super::query(&req).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "timeRange must be a number of milliseconds",
        )
    })?;
    let range = q.time_range.unwrap_or(3_600_000);
    if !(1_000..=3_600_000).contains(&range) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "timeRange must be between 1000 and 3600000 ms",
        ));
    }
    let minutes = range.div_ceil(60_000);
    let samples = recent(&state, minutes);
    let alerts = alerts_of(&state, &samples);
    let mut by_service = BTreeMap::new();
    for a in &alerts {
        *by_service
            .entry(a["service"].as_str().unwrap_or("flux").to_owned())
            .or_insert(0u64) += 1;
    }
    let health = health_status(&state, &alerts).await;
    Ok(HttpResponse::Ok().json(json!({
        "timeRange": range,
        "totalMetrics": samples.len(),
        "totalAlerts": alerts.len(),
        "alertsByService": by_service,
        "performance": state.metrics.history.summary(minutes),
        "health": health,
        "enabled": state.monitoring.enabled.load(Ordering::Relaxed),
    })))
}

/// The figures of one part of the system, per sample.
async fn service(
    state: web::Data<AdminState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let name = path.into_inner();
    let keys: &[&str] = match name.as_str() {
        "http" | "api" => &["responseTime", "errorRate"],
        "system" => &["cpuUsage", "memoryUsage"],
        "database" => &["dbQueryTime"],
        "websocket" | "socketio" => &["wsConnections"],
        _ => {
            return Err(error(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "Unknown service (http, system, database, websocket)",
            ))
        }
    };
    let metrics: Vec<Value> = recent(&state, 60)
        .iter()
        .map(|s| {
            let mut m = serde_json::Map::new();
            m.insert("timestamp".into(), json!(s.timestamp));
            for k in keys {
                m.insert((*k).into(), json!(value_of(s, k)));
            }
            Value::Object(m)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"service": name, "metrics": metrics})))
}

async fn alerts(state: web::Data<AdminState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let mut alerts = alerts_of(&state, &recent(&state, 60));
    alerts.reverse();
    alerts.truncate(100);
    Ok(HttpResponse::Ok().json(json!({"alerts": alerts})))
}

async fn realtime(
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let alerts = alerts_of(&state, &recent(&state, 5));
    Ok(HttpResponse::Ok().json(json!({
        "timestamp": crate::db::now(),
        "metrics": state.metrics.latest(0),
        "alertCount": alerts.len(),
    })))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export(state: web::Data<AdminState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    reader(&req, &state).await?;
    let q: ExportQuery = super::query(&req).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "Invalid query",
        )
    })?;
    if !matches!(q.format.as_deref(), None | Some("json")) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "format must be json",
        ));
    }
    let samples = recent(&state, 60);
    let alerts = alerts_of(&state, &samples);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    Ok(HttpResponse::Ok()
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!(
                "performance-metrics-{stamp}.json"
            ))],
        })
        .json(json!({
            "metrics": samples,
            "alerts": alerts,
            "summary": state.metrics.history.summary(60),
            "exportedAt": crate::db::now(),
        })))
}

#[derive(Debug, Deserialize)]
struct ControlBody {
    action: Option<Value>,
}

async fn control(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let invalid = || {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            "Invalid action. Use: enable, disable, or clear",
        )
    };
    let b: ControlBody = super::body(&bytes).map_err(|_| invalid())?;
    let action = b
        .action
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(invalid)?;
    let message = match action {
        "enable" => {
            state.monitoring.enabled.store(true, Ordering::Relaxed);
            "Performance monitoring enabled"
        }
        "disable" => {
            state.monitoring.enabled.store(false, Ordering::Relaxed);
            "Performance monitoring disabled"
        }
        "clear" => {
            state.metrics.history.clear();
            "Performance data cleared"
        }
        _ => return Err(invalid()),
    };
    record_action(
        &req,
        &admin,
        "monitoring_control",
        json!({"control": action}),
    );
    Ok(HttpResponse::Ok().json(json!({"message": message})))
}

#[derive(Debug, Deserialize)]
struct ThresholdsBody {
    thresholds: Option<Value>,
}

async fn thresholds(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let invalid = |text: &str| error(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, text);
    let b: ThresholdsBody =
        super::body(&bytes).map_err(|_| invalid("Invalid thresholds format"))?;
    let Some(Value::Object(given)) = b.thresholds else {
        return Err(invalid("Invalid thresholds format"));
    };
    let mut next = state.monitoring.thresholds();
    for (k, v) in &given {
        if !THRESHOLD_KEYS.contains(&k.as_str()) {
            return Err(invalid(&format!("Unknown threshold: {k}")));
        }
        match v.as_f64() {
            Some(n) if n.is_finite() && n > 0.0 && n <= 1e9 => {
                next.insert(k.clone(), n);
            }
            _ => return Err(invalid(&format!("{k} must be a positive number"))),
        }
    }
    *state
        .monitoring
        .thresholds
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = next.clone();
    record_action(
        &req,
        &admin,
        "thresholds_updated",
        json!({"thresholds": next}),
    );
    Ok(HttpResponse::Ok().json(json!({
        "message": "Thresholds updated successfully",
        "thresholds": next,
    })))
}
