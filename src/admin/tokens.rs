//! `/admin/tokens…`: the refresh-token sessions, for admins. A row is a session's current token
//! (`replaced_by IS NULL`): rotated predecessors are bookkeeping, not sessions. No token and no hash
//! is ever selected, let alone returned.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, DurationRound, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_request, body, not_found, ok, parse_instant, query, record_action, storage};
use super::{Admin, AdminState, Page};
use crate::db::schema::{refresh_tokens as rt, users};
use crate::db::{Db, DbError, Timestamp};
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens/stats", web::get().to(stats))
        .route("/tokens/search", web::get().to(search))
        .route("/tokens/analytics", web::get().to(analytics))
        .route("/tokens/{id}", web::get().to(one))
        .route("/tokens/{id}/revoke", web::post().to(revoke));
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rt)]
struct SessionRow {
    id: String,
    user_id: String,
    family_id: String,
    device_name: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: Timestamp,
    last_used_at: Timestamp,
    expires_at: Timestamp,
    revoked_at: Option<Timestamp>,
    revoked_by: Option<String>,
    revocation_reason: Option<String>,
}

impl SessionRow {
    fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.as_datetime() <= now {
            "expired"
        } else {
            "active"
        }
    }

    fn json(&self, email: Option<&String>) -> Value {
        json!({
            "id": self.id,
            "userId": self.user_id,
            "email": email,
            "userEmail": email,
            "sessionId": self.id,
            "deviceName": self.device_name,
            "ipAddress": self.ip_address,
            "userAgent": self.user_agent,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "lastUsedAt": self.last_used_at,
            "lastUsed": self.last_used_at,
            "revoked": self.revoked_at.is_some(),
            "revokedAt": self.revoked_at,
            "revokedBy": self.revoked_by,
            "revocationReason": self.revocation_reason,
            "status": self.status(Utc::now()),
        })
    }
}

/// Filters of `tokens/search`.
#[derive(Debug, Default, Clone)]
struct Filter {
    user_id: Option<String>,
    email_like: Option<String>,
    status: Option<String>,
    ip: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    changed_since: Option<DateTime<Utc>>,
}

macro_rules! sessions {
    ($f:expr, $now:expr) => {{
        let f: &Filter = $f;
        let now = Timestamp::from($now);
        let mut q = rt::table
            .inner_join(users::table)
            .filter(rt::replaced_by.is_null())
            .into_boxed();
        if let Some(u) = &f.user_id {
            q = q.filter(rt::user_id.eq(u.clone()));
        }
        if let Some(e) = &f.email_like {
            q = q.filter(users::email.like(e.clone()).escape(crate::db::LIKE_ESCAPE));
        }
        match f.status.as_deref() {
            Some("active") => {
                q = q
                    .filter(rt::revoked_at.is_null())
                    .filter(rt::expires_at.gt(now))
            }
            Some("expired") => {
                q = q
                    .filter(rt::revoked_at.is_null())
                    .filter(rt::expires_at.le(now))
            }
            Some("revoked") => q = q.filter(rt::revoked_at.is_not_null()),
            _ => {}
        }
        if let Some(ip) = &f.ip {
            q = q.filter(rt::ip_address.eq(ip.clone()));
        }
        if let Some(from) = f.from {
            q = q.filter(rt::created_at.ge(Timestamp::from(from)));
        }
        if let Some(to) = f.to {
            q = q.filter(rt::created_at.le(Timestamp::from(to)));
        }
        if let Some(since) = f.changed_since {
            let since = Timestamp::from(since);
            q = q.filter(
                rt::created_at
                    .ge(since)
                    .or(rt::revoked_at.ge(since))
                    .or(rt::expires_at.ge(since)),
            );
        }
        q
    }};
}

async fn load(
    db: &Db,
    f: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Vec<(SessionRow, String)>, DbError> {
    let now = Utc::now();
    let mut conn = db.get_read().await?;
    let rows = crate::db!(conn, |c| {
        sessions!(f, now)
            .order((rt::created_at.desc(), rt::id.desc()))
            .limit(limit)
            .offset(offset)
            .select((SessionRow::as_select(), users::email))
            .load(c)
            .await
    })?;
    Ok(rows)
}

async fn count(db: &Db, f: &Filter) -> Result<i64, DbError> {
    let now = Utc::now();
    let mut conn = db.get_read().await?;
    let n = crate::db!(conn, |c| { sessions!(f, now).count().get_result(c).await })?;
    Ok(n)
}

async fn status_count(db: &Db, status: &str) -> Result<i64, ApiError> {
    count(
        db,
        &Filter {
            status: Some(status.to_owned()),
            ..Default::default()
        },
    )
    .await
    .map_err(storage)
}

async fn stats(_admin: Admin, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let db = &state.db;
    let total = count(db, &Filter::default()).await.map_err(storage)?;
    let active = status_count(db, "active").await?;
    let expired = status_count(db, "expired").await?;
    let revoked = status_count(db, "revoked").await?;
    let day_ago = Utc::now() - Duration::hours(24);
    let recent = load(
        db,
        &Filter {
            changed_since: Some(day_ago),
            ..Default::default()
        },
        10_000,
        0,
    )
    .await
    .map_err(storage)?;
    let created = recent
        .iter()
        .filter(|(s, _)| s.created_at.as_datetime() >= day_ago)
        .count();
    let revoked_24h = recent
        .iter()
        .filter(|(s, _)| s.revoked_at.is_some_and(|r| r.as_datetime() >= day_ago))
        .count();
    let active_rows = load(
        db,
        &Filter {
            status: Some("active".into()),
            ..Default::default()
        },
        10_000,
        0,
    )
    .await
    .map_err(storage)?;
    let mut per_user: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (s, email) in &active_rows {
        *per_user
            .entry((s.user_id.clone(), email.clone()))
            .or_default() += 1;
    }
    let mut top: Vec<_> = per_user.into_iter().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    let top_users: Vec<Value> = top
        .into_iter()
        .take(10)
        .map(|((user_id, email), n)| json!({"userId": user_id, "email": email, "tokenCount": n}))
        .collect();
    Ok(ok(json!({
        "overview": {"total": total, "active": active, "expired": expired, "revoked": revoked},
        "recentActivity": {"created24h": created, "revoked24h": revoked_24h},
        "topUsers": top_users,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    user_id: Option<String>,
    email: Option<String>,
    search: Option<String>,
    status: Option<String>,
    ip_address: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn search(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: SearchQuery = query(&req)?;
    let page = Page::of(q.page, q.per_page, 20)?;
    let status = nonempty(q.status).map(|s| s.to_lowercase());
    if let Some(s) = &status {
        if !["active", "expired", "revoked"].contains(&s.as_str()) {
            return Err(bad_request("status must be active, expired or revoked"));
        }
    }
    let email = nonempty(q.email).or(nonempty(q.search));
    let ip = match nonempty(q.ip_address) {
        Some(ip) => Some(
            crate::security::blocks::parse_ip(&ip)
                .ok_or_else(|| bad_request("Invalid IP address"))?
                .to_string(),
        ),
        None => None,
    };
    let f = Filter {
        user_id: nonempty(q.user_id),
        email_like: email.map(|e| crate::db::like_contains(&e.to_lowercase())),
        status,
        ip,
        from: nonempty(q.from_date)
            .map(|d| parse_instant(&d))
            .transpose()?,
        to: nonempty(q.to_date).map(|d| parse_instant(&d)).transpose()?,
        changed_since: None,
    };
    let total = count(&state.db, &f).await.map_err(storage)?;
    let rows = load(&state.db, &f, page.per_page, page.offset())
        .await
        .map_err(storage)?;
    let tokens: Vec<Value> = rows.iter().map(|(s, e)| s.json(Some(e))).collect();
    Ok(ok(
        json!({"tokens": tokens, "pagination": page.json(total)}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyticsQuery {
    period: Option<String>,
    group_by: Option<String>,
}

async fn analytics(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: AnalyticsQuery = query(&req)?;
    let period = q.period.unwrap_or_else(|| "7d".into());
    let span = match period.as_str() {
        "1h" => Duration::hours(1),
        "24h" | "1d" => Duration::hours(24),
        "7d" => Duration::days(7),
        "30d" => Duration::days(30),
        _ => return Err(bad_request("period must be 1h, 24h, 7d or 30d")),
    };
    let group_by = q.group_by.unwrap_or_else(|| {
        if span <= Duration::hours(24) {
            "hour"
        } else {
            "day"
        }
        .into()
    });
    let step = match group_by.as_str() {
        "hour" => Duration::hours(1),
        "day" => Duration::days(1),
        _ => return Err(bad_request("groupBy must be hour or day")),
    };
    let now = Utc::now();
    let start = (now - span)
        .duration_trunc(step)
        .map_err(|e| ApiError::internal("Server error", e))?;
    let rows = load(
        &state.db,
        &Filter {
            changed_since: Some(start),
            ..Default::default()
        },
        50_000,
        0,
    )
    .await
    .map_err(storage)?;
    let in_slot = |t: DateTime<Utc>, a: DateTime<Utc>, b: DateTime<Utc>| t >= a && t < b;
    let mut out = Vec::new();
    let mut at = start;
    while at <= now {
        let end = at + step;
        let mut slot = (0, 0, 0, 0);
        for (s, _) in &rows {
            let created = s.created_at.as_datetime();
            let revoked = s.revoked_at.map(|r| r.as_datetime());
            let expires = s.expires_at.as_datetime();
            if in_slot(created, at, end) {
                slot.0 += 1;
            }
            if revoked.is_some_and(|r| in_slot(r, at, end)) {
                slot.1 += 1;
            }
            if revoked.is_none_or(|r| r > expires) && in_slot(expires, at, end) {
                slot.2 += 1;
            }
            let edge = end.min(now);
            if created <= edge && revoked.is_none_or(|r| r > edge) && expires > edge {
                slot.3 += 1;
            }
        }
        out.push(json!({
            "timestamp": Timestamp::from(at),
            "created": slot.0, "revoked": slot.1, "expired": slot.2, "active": slot.3,
        }));
        at = end;
    }
    Ok(ok(
        json!({"analytics": out, "period": period, "groupBy": group_by}),
    ))
}

async fn by_id(db: &Db, id: &str) -> Result<Option<(SessionRow, String)>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        rt::table
            .inner_join(users::table)
            .filter(rt::id.eq(id))
            .select((SessionRow::as_select(), users::email))
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

async fn one(
    _admin: Admin,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = by_id(&state.db, &path).await.map_err(storage)?;
    let (s, email) = row.ok_or_else(|| not_found("Token not found"))?;
    Ok(ok(json!({"data": s.json(Some(&email))})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokeBody {
    reason: Option<Value>,
    revoke_all: Option<Value>,
}

async fn revoke(
    admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (s, _) = by_id(&state.db, &path)
        .await
        .map_err(storage)?
        .ok_or_else(|| not_found("Token not found"))?;
    let b: RevokeBody = body(&bytes)?;
    let reason: String = match b.reason {
        Some(Value::String(r)) if !r.trim().is_empty() => r.trim().chars().take(500).collect(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad_request("A reason is required"))
        }
        Some(_) => return Err(bad_request("reason must be a string")),
    };
    let all = match b.revoke_all {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad_request("revokeAll must be true or false")),
    };
    if !all && s.revoked_at.is_some() {
        return Err(bad_request("Token already revoked"));
    }
    let now = crate::db::now();
    let by = admin.user.id.clone();
    let mut conn = state.db.get_write().await.map_err(storage)?;
    let set = || {
        (
            rt::revoked_at.eq(Some(now)),
            rt::revoked_by.eq(Some(by.clone())),
            rt::revocation_reason.eq(Some(reason.clone())),
        )
    };
    let n = crate::db!(conn, |c| {
        if all {
            diesel::update(
                rt::table
                    .filter(rt::revoked_at.is_null())
                    .filter(rt::user_id.eq(&s.user_id)),
            )
            .set(set())
            .execute(c)
            .await
        } else {
            diesel::update(
                rt::table
                    .filter(rt::revoked_at.is_null())
                    .filter(rt::family_id.eq(&s.family_id)),
            )
            .set(set())
            .execute(c)
            .await
        }
    })
    .map_err(|e| storage(e.into()))?;
    record_action(
        &req,
        &admin,
        "token_revoked_manually",
        json!({"tokenId": s.id, "targetUserId": s.user_id, "revokeAll": all, "reason": reason, "revokedCount": n}),
    );
    Ok(ok(json!({
        "message": "Token revoked successfully",
        "revokedCount": n,
    })))
}
