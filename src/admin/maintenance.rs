//! `/admin/maintenance/…` (also `/admin/health` and `/admin/performance/…`, which the SPA calls):
//! cleanup now or on a schedule, health of the database, Redis and the file system, and per-route
//! performance from the counters behind `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{bad_request, body, ok, query, record_action, storage, Admin, AdminState};
use crate::db::schema::{refresh_tokens as rt, users};
use crate::db::{Db, DbError, Timestamp};
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/maintenance/cleanup", web::post().to(cleanup))
        .route("/maintenance/cleanup/status", web::get().to(status))
        .route("/maintenance/cleanup/schedule", web::post().to(schedule));
    for prefix in ["/maintenance", ""] {
        cfg.route(&format!("{prefix}/health"), web::get().to(health))
            .route(
                &format!("{prefix}/performance/metrics"),
                web::get().to(perf_metrics),
            )
            .route(
                &format!("{prefix}/performance/summary"),
                web::get().to(perf_summary),
            )
            .route(
                &format!("{prefix}/performance/endpoints"),
                web::get().to(perf_endpoints),
            );
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Schedule {
    enabled: bool,
    /// daily | weekly | monthly
    interval: String,
    /// HH:MM, UTC
    time: String,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            enabled: true,
            interval: "daily".into(),
            time: "03:00".into(),
        }
    }
}

impl Schedule {
    /// The next run after `now`: at `time` UTC, every day, every Monday, or on the 1st.
    fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.enabled {
            return None;
        }
        let time = NaiveTime::parse_from_str(&self.time, "%H:%M").ok()?;
        let mut day = now.date_naive();
        for _ in 0..400 {
            let at = day.and_time(time).and_utc();
            let fits = match self.interval.as_str() {
                "weekly" => day.weekday() == chrono::Weekday::Mon,
                "monthly" => day.day() == 1,
                _ => true,
            };
            if fits && at > now {
                return Some(at);
            }
            day = day.succ_opt()?;
        }
        None
    }
}

/// The cleanup schedule and the last run, process-wide.
pub struct Maintenance {
    db: Db,
    retention_days: u64,
    schedule: Mutex<Schedule>,
    last: Mutex<Option<Value>>,
    changed: Notify,
}

impl Maintenance {
    /// Starts the scheduled runs (every instance runs them; the cleanup is idempotent).
    pub fn start(db: Db, retention_days: u64) -> Arc<Maintenance> {
        let m = Arc::new(Maintenance {
            db,
            retention_days,
            schedule: Mutex::new(Schedule::default()),
            last: Mutex::new(None),
            changed: Notify::new(),
        });
        let runner = Arc::downgrade(&m);
        tokio::spawn(async move {
            loop {
                let (next, changed) = {
                    let Some(m) = runner.upgrade() else { return };
                    let next = m.schedule().next_after(Utc::now());
                    // Register for a change before sleeping, so none is missed.
                    let m2 = m.clone();
                    (next, async move { m2.changed.notified().await })
                };
                let wait = next.map(|n| (n - Utc::now()).to_std().unwrap_or_default());
                tokio::select! {
                    () = changed => continue,
                    () = async {
                        match wait {
                            Some(w) => tokio::time::sleep(w).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                let Some(m) = runner.upgrade() else { return };
                match m.run(&CleanupTypes::all(), false).await {
                    Ok(report) => tracing::info!(%report, "scheduled cleanup done"),
                    Err(e) => tracing::warn!(error = %e, "scheduled cleanup failed"),
                }
            }
        });
        m
    }

    fn schedule(&self) -> Schedule {
        self.schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn run(&self, types: &CleanupTypes, dry_run: bool) -> Result<Value, DbError> {
        let started = Instant::now();
        let now = Timestamp::now();
        let db = &self.db;
        let mut conn = db.get_write().await?;
        let expired = if types.expired {
            crate::db!(conn, |c| {
                let q = rt::table
                    .filter(rt::revoked_at.is_null())
                    .filter(rt::expires_at.lt(now));
                if dry_run {
                    q.count().get_result::<i64>(c).await.map(|n| n as usize)
                } else {
                    diesel::delete(q).execute(c).await
                }
            })?
        } else {
            0
        };
        // A revoked token can go once it would have expired anyway: reuse detection no longer
        // needs it.
        let revoked = if types.revoked {
            crate::db!(conn, |c| {
                let q = rt::table
                    .filter(rt::revoked_at.is_not_null())
                    .filter(rt::expires_at.lt(now));
                if dry_run {
                    q.count().get_result::<i64>(c).await.map(|n| n as usize)
                } else {
                    diesel::delete(q).execute(c).await
                }
            })?
        } else {
            0
        };
        // Sessions of deactivated accounts: they can never be refreshed again.
        let orphaned = if types.orphaned {
            crate::db!(conn, |c| {
                let inactive = users::table
                    .filter(users::is_active.eq(false))
                    .select(users::id);
                let q = rt::table.filter(rt::user_id.eq_any(inactive));
                if dry_run {
                    q.count().get_result::<i64>(c).await.map(|n| n as usize)
                } else {
                    diesel::delete(q).execute(c).await
                }
            })?
        } else {
            0
        };
        drop(conn);
        let archived = if types.events && self.retention_days > 0 {
            let before = Utc::now() - Duration::days(self.retention_days.min(36_500) as i64);
            if dry_run {
                crate::security::store::count_events_before(db, before).await? as usize
            } else {
                crate::security::store::delete_events_before(db, before).await?
            }
        } else {
            0
        };
        let report = json!({
            "status": "completed",
            "dryRun": dry_run,
            "duration": started.elapsed().as_millis() as u64,
            "completedAt": crate::db::now(),
            "results": {
                "expiredTokens": expired,
                "revokedTokens": revoked,
                "orphanedSessions": orphaned,
                "archivedEvents": archived,
            },
        });
        if !dry_run {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        }
        Ok(report)
    }
}

#[derive(Debug, Clone)]
struct CleanupTypes {
    expired: bool,
    revoked: bool,
    orphaned: bool,
    events: bool,
}

impl CleanupTypes {
    fn all() -> Self {
        CleanupTypes {
            expired: true,
            revoked: true,
            orphaned: true,
            events: true,
        }
    }

    fn of(names: &[String]) -> Result<Self, ApiError> {
        if names.is_empty() || names.iter().any(|n| n == "all") {
            return Ok(Self::all());
        }
        let mut t = CleanupTypes {
            expired: false,
            revoked: false,
            orphaned: false,
            events: false,
        };
        for n in names {
            match n.as_str() {
                "expired_tokens" => t.expired = true,
                "revoked_tokens" => t.revoked = true,
                "orphaned_sessions" => t.orphaned = true,
                "old_events" => t.events = true,
                _ => return Err(bad_request(
                    "types may hold all, expired_tokens, revoked_tokens, orphaned_sessions, old_events",
                )),
            }
        }
        Ok(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CleanupBody {
    types: Option<Vec<String>>,
    dry_run: Option<bool>,
}

async fn cleanup(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: CleanupBody = body(&bytes)?;
    let names = b.types.unwrap_or_default();
    let types = CleanupTypes::of(&names)?;
    let dry_run = b.dry_run.unwrap_or(false);
    let report = state
        .maintenance
        .run(&types, dry_run)
        .await
        .map_err(storage)?;
    if !dry_run {
        record_action(
            &req,
            &admin,
            "manual_cleanup",
            json!({"types": names, "results": report["results"]}),
        );
    }
    Ok(ok(report))
}

async fn status(_admin: Admin, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let m = &state.maintenance;
    let schedule = m.schedule();
    let last = m.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(ok(json!({
        "lastCleanup": last,
        "nextCleanup": schedule.next_after(Utc::now()).map(Timestamp::from),
        "schedule": schedule,
    })))
}

#[derive(Debug, Deserialize)]
struct ScheduleBody {
    enabled: Option<Value>,
    interval: Option<Value>,
    time: Option<Value>,
}

async fn schedule(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: ScheduleBody = body(&bytes)?;
    let mut next = state.maintenance.schedule();
    match b.enabled {
        None | Some(Value::Null) => {}
        Some(Value::Bool(e)) => next.enabled = e,
        Some(_) => return Err(bad_request("enabled must be true or false")),
    }
    match b.interval {
        None | Some(Value::Null) => {}
        Some(Value::String(i)) if ["daily", "weekly", "monthly"].contains(&i.as_str()) => {
            next.interval = i
        }
        Some(_) => return Err(bad_request("interval must be daily, weekly or monthly")),
    }
    match b.time {
        None | Some(Value::Null) => {}
        Some(Value::String(t))
            if t.len() == 5 && NaiveTime::parse_from_str(&t, "%H:%M").is_ok() =>
        {
            next.time = t
        }
        Some(_) => return Err(bad_request("time must be HH:MM (UTC)")),
    }
    *state
        .maintenance
        .schedule
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = next.clone();
    state.maintenance.changed.notify_waiters();
    record_action(
        &req,
        &admin,
        "cleanup_schedule_updated",
        json!({"schedule": next}),
    );
    Ok(ok(json!({
        "message": "Cleanup schedule updated",
        "schedule": next,
        "nextCleanup": next.next_after(Utc::now()).map(Timestamp::from),
    })))
}

/// Database, Redis and file system, with the process figures.
pub async fn health_report(state: &AdminState) -> Value {
    let started = Instant::now();
    let db_ok = state.db.ping().await.is_ok();
    let db_ms = started.elapsed().as_millis() as u64;
    let (redis_status, redis_latency) = match state.cluster.redis_up() {
        None => ("not_configured", Value::Null),
        Some(true) => ("healthy", json!(0)),
        Some(false) => ("unhealthy", Value::Null),
    };
    let probe = state.data_dir.join(".flux-health-probe");
    let fs_ok = std::fs::write(&probe, b"ok").is_ok() && std::fs::remove_file(&probe).is_ok();
    let status = if !db_ok {
        "degraded"
    } else if redis_status == "unhealthy" || !fs_ok {
        "warning"
    } else {
        "healthy"
    };
    let memory = crate::monitor::system::read_proc_status();
    let latest = state.metrics.latest(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    json!({
        "status": status,
        "timestamp": crate::db::now(),
        "components": {
            "database": {"status": if db_ok { "healthy" } else { "unhealthy" }, "latency": db_ms},
            "redis": {"status": redis_status, "latency": redis_latency},
            "fileSystem": {"status": if fs_ok { "healthy" } else { "unhealthy" }, "writable": fs_ok},
        },
        "system": {
            "memory": {"heapUsed": memory.rss, "heapTotal": memory.rss, "rss": memory.rss},
            "cpu": {"cores": cores, "loadAvg1m": Value::Null, "usage": latest.cpu_usage},
            "uptime": state.started.elapsed().as_secs(),
        },
        "services": {
            "securityEvents": {"recorded": state.events.recorded(), "dropped": state.events.dropped()},
            "blockedAddresses": state.blocks.blocked_count(),
            "cluster": state.cluster.report(),
        },
    })
}

async fn health(_admin: Admin, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    Ok(ok(json!({"health": health_report(&state).await})))
}

#[derive(Debug, Deserialize)]
struct PeriodQuery {
    period: Option<String>,
}

/// `period` as minutes within the hour kept: 5m, 15m, 30m, 1h (default).
fn minutes_of(req: &HttpRequest) -> Result<u64, ApiError> {
    let q: PeriodQuery = query(req)?;
    match q.period.as_deref() {
        None | Some("1h" | "60m") => Ok(60),
        Some("5m") => Ok(5),
        Some("15m") => Ok(15),
        Some("30m") => Ok(30),
        Some(_) => Err(bad_request("period must be 5m, 15m, 30m or 1h")),
    }
}

async fn perf_metrics(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let minutes = minutes_of(&req)?;
    let samples = state.metrics.history.samples(minutes);
    Ok(ok(json!({
        "metrics": {
            "current": state.metrics.latest(0),
            "samples": samples,
            "summary": state.metrics.history.summary(minutes),
        }
    })))
}

async fn perf_summary(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let minutes = minutes_of(&req)?;
    let mut summary = state.metrics.history.summary(minutes);
    if let Some(s) = summary.as_mut() {
        s["endpoints"] = json!(state.metrics.history.endpoints(minutes));
    }
    Ok(ok(json!({"summary": summary})))
}

async fn perf_endpoints(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let minutes = minutes_of(&req)?;
    Ok(ok(
        json!({"endpoints": state.metrics.history.endpoints(minutes)}),
    ))
}
