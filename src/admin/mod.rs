//! The operator surface (OPERATOR §8–§9): the admin API under `/admin` (blocked addresses, sessions,
//! security events, maintenance, performance, health) and `/monitoring`.
//!
//! Every admin route goes through [`gate::Admin`] (an active admin account, OPERATOR §0) and every
//! admin write is recorded as an `admin_action` event. Bodies and queries are read after the gate,
//! so a non-admin learns nothing from a bad one.
//!
//! State: [`AdminState`], process-wide, registered with the routes by [`routes`]. The module reads
//! the security module's recorder and block list and the monitor's figures; it asks auth who is
//! calling and accounts whether that account is an admin.

mod events;
pub mod gate;
mod ips;
mod maintenance;
mod monitoring;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::db::Db;
use crate::error::{ApiError, ErrorCode};
use crate::monitor::Metrics;
use crate::security::blocks::BlockList;
use crate::security::Recorder;
use crate::web::guard::{note, SecurityNote};

pub use gate::Admin;

/// What the admin and monitoring routes use, created once per process.
pub struct AdminState {
    pub db: Db,
    pub blocks: Arc<BlockList>,
    pub events: Arc<Recorder>,
    pub metrics: Arc<Metrics>,
    pub cluster: Cluster,
    pub data_dir: PathBuf,
    pub started: Instant,
    /// `monitor.public`: the `/monitoring` reads without a token.
    pub monitor_public: bool,
    pub trusted_proxies: usize,
    pub maintenance: Arc<maintenance::Maintenance>,
    pub monitoring: monitoring::Monitoring,
}

impl AdminState {
    /// Also starts the maintenance schedule. Call inside the runtime that outlives the listeners.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        blocks: Arc<BlockList>,
        events: Arc<Recorder>,
        metrics: Arc<Metrics>,
        cluster: Cluster,
        data_dir: PathBuf,
        monitor_public: bool,
        trusted_proxies: usize,
    ) -> AdminState {
        let maintenance = maintenance::Maintenance::start(db.clone(), events.retention_days);
        AdminState {
            db,
            blocks,
            events,
            metrics,
            cluster,
            data_dir,
            started: Instant::now(),
            monitor_public,
            trusted_proxies,
            maintenance,
            monitoring: monitoring::Monitoring::default(),
        }
    }
}

/// `/admin/…` and `/monitoring/…` with the module's state. Called inside each prefix a listener
/// serves. Literal segments are registered before `{param}` ones (OPERATOR §0).
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<AdminState>) {
    cfg.service(
        web::scope("/admin")
            .app_data(state.clone())
            .configure(ips::routes)
            .configure(events::routes)
            .configure(tokens::routes)
            .configure(maintenance::routes),
    );
    cfg.service(
        web::scope("/monitoring")
            .app_data(state)
            .configure(monitoring::routes),
    );
}

/// `{success:true, …fields}`.
pub(crate) fn ok(fields: Value) -> HttpResponse {
    HttpResponse::Ok().json(success(fields))
}

pub(crate) fn success(fields: Value) -> Value {
    let mut body = json!({"success": true});
    if let (Value::Object(b), Value::Object(f)) = (&mut body, fields) {
        b.extend(f);
    }
    body
}

/// The admin routes' error body: `{success:false, message, code}`.
pub(crate) fn fail(status: StatusCode, code: ErrorCode, wire: &str, message: &str) -> ApiError {
    ApiError::with_body(
        status,
        code,
        json!({"success": false, "message": message, "code": wire}),
    )
}

pub(crate) fn bad_request(message: &str) -> ApiError {
    fail(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidInput,
        "VALIDATION_ERROR",
        message,
    )
}

pub(crate) fn not_found(message: &str) -> ApiError {
    fail(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "NOT_FOUND",
        message,
    )
}

pub(crate) fn storage(e: crate::db::DbError) -> ApiError {
    ApiError::storage_with_body(
        e,
        json!({"success": false, "message": "Server error", "code": "SERVER_ERROR"}),
    )
}

/// A JSON body read after the gate; an empty body counts as `{}`.
pub(crate) fn body<T: DeserializeOwned>(bytes: &web::Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: Value = serde_json::from_slice(text).map_err(|_| {
        fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            "INVALID_JSON",
            "Malformed JSON body",
        )
    })?;
    if !value.is_object() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            "INVALID_BODY",
            "The body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            "INVALID_BODY",
            &format!("Invalid body: {e}"),
        )
    })
}

/// A query string read after the gate.
pub(crate) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                "INVALID_QUERY",
                &format!("Invalid query string: {e}"),
            )
        })
}

/// `page` (from 1) and `perPage` (1–100, default `default`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub page: i64,
    pub per_page: i64,
}

impl Page {
    pub fn of(page: Option<i64>, per_page: Option<i64>, default: i64) -> Result<Page, ApiError> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(default);
        if !(1..=1_000_000).contains(&page) {
            return Err(bad_request("page must be a positive number"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(bad_request("perPage must be between 1 and 100"));
        }
        Ok(Page { page, per_page })
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    pub fn json(&self, total: i64) -> Value {
        json!({
            "page": self.page,
            "perPage": self.per_page,
            "total": total,
            "totalPages": ((total + self.per_page - 1) / self.per_page).max(1),
        })
    }
}

/// Records an admin write (`admin_action`, `details.action`).
pub(crate) fn record_action(req: &HttpRequest, admin: &Admin, action: &str, details: Value) {
    tracing::info!(user_id = %admin.user.id, action, "admin action");
    note(
        req,
        SecurityNote::new("admin_action", "info")
            .user(Some(&admin.user.id))
            .details(json!({"action": action}))
            .details(details),
    );
}

/// An ISO instant from a query (`fromDate`/`toDate`): RFC 3339 or a plain `YYYY-MM-DD`.
pub(crate) fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| {
            bad_request("Dates must be ISO 8601 (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)")
        })
}
