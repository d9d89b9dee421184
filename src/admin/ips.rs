//! `/admin/security/blocked-ips…`: list, statistics, one address, block, unblock, allow-list.

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_request, body, fail, ok, query, record_action, storage, Admin, AdminState, Page};
use crate::db::Timestamp;
use crate::error::{ApiError, ErrorCode};
use crate::security::blocks::parse_ip;
use crate::security::store::{self, AllowRow, BlockRow};
use crate::web::guard::IpGate;

/// Longest block or allow-listing accepted: ten years, in seconds.
const MAX_DURATION_SECS: i64 = 10 * 365 * 24 * 3600;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/blocked-ips", web::get().to(list))
        .route("/security/blocked-ips/stats", web::get().to(stats))
        .route("/security/blocked-ips/{ip}", web::get().to(one))
        .route("/security/blocked-ips/{ip}/block", web::post().to(block))
        .route(
            "/security/blocked-ips/{ip}/unblock",
            web::post().to(unblock),
        )
        .route(
            "/security/blocked-ips/{ip}/whitelist",
            web::post().to(allow),
        );
}

fn address(text: &str) -> Result<IpAddr, ApiError> {
    parse_ip(text).ok_or_else(|| bad_request("Invalid IP address"))
}

fn block_json(b: &BlockRow) -> Value {
    json!({
        "ip": b.ip,
        "score": 0,
        "level": "blocked",
        "reason": b.reason.clone().unwrap_or_default(),
        "blockedAt": b.created_at,
        "expiresAt": b.blocked_until,
        "permanent": b.blocked_until.is_none(),
        "blockedBy": b.blocked_by,
        "isWhitelisted": false,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    /// The original's reputation-score filter; flux keeps no scores, so it filters nothing.
    #[allow(dead_code)]
    max_score: Option<f64>,
}

async fn list(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let page = Page::of(q.page, q.per_page, 20)?;
    let all = store::active_blocks(&state.db, Utc::now())
        .await
        .map_err(storage)?;
    let total = all.len() as i64;
    let ips: Vec<Value> = all
        .iter()
        .skip(page.offset() as usize)
        .take(page.per_page as usize)
        .map(block_json)
        .collect();
    Ok(ok(json!({"ips": ips, "pagination": page.json(total)})))
}

async fn stats(_admin: Admin, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let all = store::active_blocks(&state.db, Utc::now())
        .await
        .map_err(storage)?;
    let total = all.len();
    let permanent = all.iter().filter(|b| b.blocked_until.is_none()).count();
    let allowed = store::active_allows(&state.db, Utc::now())
        .await
        .map_err(storage)?
        .len();
    Ok(ok(json!({
        "stats": {
            "totalBlocked": total,
            "permanent": permanent,
            "temporary": total - permanent,
            "whitelisted": allowed,
            "byLevel": {"blocked": total},
        },
        "totalBlocked": total,
        // flux blocks or does not; every block counts as critical, none as merely high.
        "criticalLevel": total,
        "highLevel": 0,
    })))
}

async fn one(
    _admin: Admin,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ip = address(&path)?;
    let text = ip.to_string();
    let block = store::block_of(&state.db, &text)
        .await
        .map_err(storage)?
        .filter(|b| b.blocked_until.is_none_or(|u| u.as_datetime() > Utc::now()));
    let filter = super::events::EventFilter {
        ip_address: Some(text.clone()),
        ..Default::default()
    };
    let events = super::events::store::list(&state.db, &filter, 50, 0, true)
        .await
        .map_err(storage)?;
    let total = super::events::store::count(&state.db, &filter)
        .await
        .map_err(storage)?;
    let by_type = super::events::store::group_by_type(&state.db, &filter)
        .await
        .map_err(storage)?;
    Ok(ok(json!({
        "data": {
            "ip": text,
            "status": {
                "blocked": state.blocks.is_blocked(ip),
                "whitelisted": state.blocks.is_allowed(ip),
            },
            "block": block.as_ref().map(block_json),
            "events": events.iter().map(super::events::event_json).collect::<Vec<_>>(),
            "statistics": {"totalEvents": total, "byType": by_type},
        }
    })))
}

#[derive(Debug, Deserialize)]
struct BlockBody {
    reason: Option<Value>,
    duration: Option<Value>,
}

/// `duration` in seconds: a positive whole number, or absent/null for "until removed".
fn duration_of(value: Option<&Value>) -> Result<Option<Duration>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(s) if (1..=MAX_DURATION_SECS).contains(&s) => Ok(Some(Duration::seconds(s))),
            _ => Err(bad_request(
                "duration must be a positive number of seconds (at most ten years)",
            )),
        },
    }
}

async fn block(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ip = address(&path)?;
    let b: BlockBody = body(&bytes)?;
    let reason = match b.reason {
        Some(Value::String(r)) if !r.trim().is_empty() => r.trim().chars().take(500).collect(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad_request("A reason is required"))
        }
        Some(_) => return Err(bad_request("reason must be a string")),
    };
    let duration = duration_of(b.duration.as_ref())?;
    let own = crate::web::request::client_ip(&req, state.trusted_proxies)
        .map(crate::security::blocks::normalise);
    if own == Some(ip) {
        return Err(bad_request("Cannot block your own address"));
    }
    if state.blocks.is_allowed(ip) {
        return Err(fail(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "IP_WHITELISTED",
            "This address is allow-listed; remove it from the allow-list first",
        ));
    }
    let now = Utc::now();
    let until = duration.map(|d| Timestamp::from(now + d));
    let row = BlockRow {
        ip: ip.to_string(),
        reason: Some(reason),
        blocked_until: until,
        created_at: Timestamp::from(now),
        blocked_by: Some(admin.user.id.clone()),
    };
    store::upsert_block(&state.db, &row)
        .await
        .map_err(storage)?;
    state.blocks.changed().await;
    record_action(
        &req,
        &admin,
        "ip_blocked_manually",
        json!({"targetIp": row.ip, "reason": row.reason, "expiresAt": until}),
    );
    Ok(ok(json!({
        "message": format!("IP {} blocked", row.ip),
        "ip": row.ip,
        "blocked": true,
        "expiresAt": until,
        "permanent": until.is_none(),
    })))
}

async fn unblock(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ip = address(&path)?.to_string();
    let removed = store::delete_block(&state.db, &ip).await.map_err(storage)?;
    state.blocks.changed().await;
    record_action(
        &req,
        &admin,
        "ip_unblocked_manually",
        json!({"targetIp": ip, "wasBlocked": removed > 0}),
    );
    Ok(ok(json!({
        "message": format!("IP {ip} unblocked"),
        "ip": ip,
        "blocked": false,
        "wasBlocked": removed > 0,
    })))
}

#[derive(Debug, Deserialize)]
struct AllowBody {
    duration: Option<Value>,
    reason: Option<Value>,
}

async fn allow(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ip = address(&path)?.to_string();
    let b: AllowBody = body(&bytes)?;
    let duration = duration_of(b.duration.as_ref())?;
    let reason = match b.reason {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.chars().take(500).collect::<String>()),
        Some(_) => return Err(bad_request("reason must be a string")),
    };
    let now = Utc::now();
    let until = duration.map(|d| Timestamp::from(now + d));
    store::upsert_allow(
        &state.db,
        AllowRow {
            ip: ip.clone(),
            reason,
            until,
            created_by: Some(admin.user.id.clone()),
            created_at: Timestamp::from(now),
        },
    )
    .await
    .map_err(storage)?;
    state.blocks.changed().await;
    record_action(
        &req,
        &admin,
        "ip_whitelisted_manually",
        json!({"targetIp": ip, "expiresAt": until}),
    );
    Ok(ok(json!({
        "message": format!("IP {ip} whitelisted"),
        "ip": ip,
        "whitelisted": true,
        "blocked": false,
        "expiresAt": until,
        "permanent": until.is_none(),
    })))
}
