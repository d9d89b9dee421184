//! Security hooks of the HTTP layer, domain-free: a sink for security notes (CSRF failures, rate-limit
//! hits, blocked requests) and the blocked-address gate every listener runs first.
//!
//! The domain provides both as trait objects (the security module's recorder and block list); this
//! module only knows addresses, paths and headers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// One security-relevant fact, as the HTTP layer or a domain module saw it. Never a password, token,
/// hash or cookie in `details` (the recorder strips such keys anyway).
#[derive(Debug, Clone)]
pub struct SecurityNote {
    pub kind: &'static str,
    /// info | low | medium | high | critical
    pub severity: &'static str,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
}

impl SecurityNote {
    pub fn new(kind: &'static str, severity: &'static str) -> Self {
        SecurityNote {
            kind,
            severity,
            user_id: None,
            ip: None,
            user_agent: None,
            details: json!({}),
        }
    }

    /// Address (per `trusted_proxies`), user agent and path of `req`.
    pub fn from_request(mut self, req: &HttpRequest, trusted_proxies: usize) -> Self {
        self.ip = crate::web::request::client_ip(req, trusted_proxies).map(|ip| ip.to_string());
        self.user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect());
        if let Value::Object(map) = &mut self.details {
            map.entry("path")
                .or_insert_with(|| Value::String(req.path().chars().take(300).collect()));
            map.entry("method")
                .or_insert_with(|| Value::String(req.method().to_string()));
        }
        self
    }

    pub fn user(mut self, user_id: Option<&str>) -> Self {
        self.user_id = user_id.map(str::to_owned);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        if let (Value::Object(into), Value::Object(from)) = (&mut self.details, details) {
            into.extend(from);
        }
        self
    }
}

/// Where security notes go. Recording never fails and never waits.
pub trait SecuritySink: Send + Sync {
    fn record(&self, note: SecurityNote);
}

/// A sink that drops everything (tools and tests that record nothing).
pub struct NoSink;

impl SecuritySink for NoSink {
    fn record(&self, _note: SecurityNote) {}
}

/// Whether an address is blocked now (allow-list and expiry already applied).
pub trait IpGate: Send + Sync {
    fn is_blocked(&self, ip: IpAddr) -> bool;
}

/// Notes the same key at most once per `every` (rate-limit hits, blocked requests).
pub struct Throttle {
    every: Duration,
    seen: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// True when `key` was not let through within the last `every`.
    pub fn first(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            let every = self.every;
            seen.retain(|_, at| now.duration_since(*at) < every);
        }
        match seen.get(key) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                seen.insert(key.to_owned(), now);
                true
            }
        }
    }
}

/// The security hooks of a listener: app data for the middleware below and for CSRF and rate limits.
pub struct Guard {
    pub gate: Arc<dyn IpGate>,
    pub sink: Arc<dyn SecuritySink>,
    pub trusted_proxies: usize,
    blocked_notes: Throttle,
}

impl Guard {
    pub fn new(gate: Arc<dyn IpGate>, sink: Arc<dyn SecuritySink>, trusted_proxies: usize) -> Self {
        Guard {
            gate,
            sink,
            trusted_proxies,
            blocked_notes: Throttle::new(Duration::from_secs(60)),
        }
    }

    /// Records `note` with the request's address and user agent.
    pub fn note(&self, req: &HttpRequest, note: SecurityNote) {
        self.sink
            .record(note.from_request(req, self.trusted_proxies));
    }
}

/// Records a note through the listener's guard, if it has one.
pub fn note(req: &HttpRequest, note: SecurityNote) {
    if let Some(guard) = req.app_data::<web::Data<Guard>>() {
        guard.note(req, note);
    }
}

/// Paths a blocked address may still reach: the orchestrator's probes.
const OPEN_PATHS: &[&str] = &["/health", "/health/live", "/health/ready"];

/// Runs before CORS, rate limits and CSRF on every listener: a request from a blocked address gets
/// 403 `IP_BLOCKED`, whatever it asks for (REST, Socket.IO handshakes, collab upgrades).
pub async fn middleware(
    guard: web::Data<Guard>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let path = req.path().trim_end_matches('/');
    let open = OPEN_PATHS.contains(&path);
    let ip = crate::web::request::client_ip(req.request(), guard.trusted_proxies);
    if let (false, Some(ip)) = (open, ip) {
        if guard.gate.is_blocked(ip) {
            if guard.blocked_notes.first(&ip.to_string()) {
                guard.note(
                    req.request(),
                    SecurityNote::new("blocked_ip_request", "medium"),
                );
            }
            let res = HttpResponse::build(StatusCode::FORBIDDEN)
                .insert_header((
                    crate::error::CODE_HEADER,
                    crate::error::ErrorCode::IpBlocked.as_str(),
                ))
                .json(json!({"success": false, "message": "Access denied", "code": "IP_BLOCKED"}));
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
