//! `/admin/security/events…` and `/admin/security/timeline`: the stored security events.

pub mod store;

use std::collections::BTreeMap;

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad_request, not_found, ok, parse_instant, query, storage, Admin, AdminState, Page};
use crate::error::ApiError;
use crate::security::store::EventRow;
pub use store::EventFilter;

/// Most rows one export holds.
const EXPORT_MAX: i64 = 10_000;
const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/security/events", web::get().to(list))
        .route("/security/events/stats", web::get().to(stats))
        .route("/security/events/export", web::get().to(export))
        .route("/security/events/{id}", web::get().to(one))
        .route("/security/timeline", web::get().to(timeline));
}

pub fn event_json(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "type": e.event_type,
        "eventType": e.event_type,
        "severity": e.severity,
        "timestamp": e.created_at,
        "userId": e.user_id,
        "ipAddress": e.ip,
        "userAgent": e.user_agent,
        "details": e.details.0,
    })
}

/// Events as JSON, with the e-mail of their user where it is known.
async fn with_emails(state: &AdminState, rows: &[EventRow]) -> Result<Vec<Value>, ApiError> {
    let mut ids: Vec<String> = rows.iter().filter_map(|e| e.user_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let emails = store::emails(&state.db, &ids).await.map_err(storage)?;
    Ok(rows
        .iter()
        .map(|e| {
            let mut v = event_json(e);
            let email = e.user_id.as_ref().and_then(|u| emails.get(u)).cloned();
            v["email"] = json!(email);
            v["userEmail"] = json!(email);
            v
        })
        .collect())
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventsQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    #[serde(alias = "eventType")]
    r#type: Option<String>,
    severity: Option<String>,
    user_id: Option<String>,
    ip_address: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    format: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl EventsQuery {
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let severity = nonempty(&self.severity).map(|s| s.to_lowercase());
        if let Some(s) = &severity {
            if !SEVERITIES.contains(&s.as_str()) {
                return Err(bad_request(
                    "severity must be one of info, low, medium, high, critical",
                ));
            }
        }
        let ip_address = match nonempty(&self.ip_address) {
            Some(ip) => Some(
                crate::security::blocks::parse_ip(&ip)
                    .ok_or_else(|| bad_request("Invalid IP address"))?
                    .to_string(),
            ),
            None => None,
        };
        Ok(EventFilter {
            event_type: nonempty(&self.r#type),
            severity,
            user_id: nonempty(&self.user_id),
            ip_address,
            from: nonempty(&self.from_date)
                .map(|d| parse_instant(&d))
                .transpose()?,
            to: nonempty(&self.to_date)
                .map(|d| parse_instant(&d))
                .transpose()?,
        })
    }

    /// Only the time order is offered (`sort=timestamp`); `order` asc|desc.
    fn descending(&self) -> Result<bool, ApiError> {
        match nonempty(&self.sort).as_deref() {
            None | Some("timestamp" | "createdAt" | "created_at") => {}
            Some(_) => return Err(bad_request("sort must be timestamp")),
        }
        match nonempty(&self.order).map(|o| o.to_lowercase()).as_deref() {
            None | Some("desc") => Ok(true),
            Some("asc") => Ok(false),
            Some(_) => Err(bad_request("order must be asc or desc")),
        }
    }
}

async fn summary(state: &AdminState, f: &EventFilter) -> Result<Value, ApiError> {
    let total = store::count(&state.db, f).await.map_err(storage)?;
    let mut by_severity: BTreeMap<String, i64> =
        SEVERITIES.iter().map(|s| (s.to_string(), 0)).collect();
    by_severity.extend(
        store::group_by_severity(&state.db, f)
            .await
            .map_err(storage)?,
    );
    let by_type = store::group_by_type(&state.db, f).await.map_err(storage)?;
    Ok(json!({"totalEvents": total, "bySeverity": by_severity, "byType": by_type}))
}

async fn list(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: EventsQuery = query(&req)?;
    let page = Page::of(q.page, q.per_page, 50)?;
    let f = q.filter()?;
    let rows = store::list(&state.db, &f, page.per_page, page.offset(), q.descending()?)
        .await
        .map_err(storage)?;
    let summary = summary(&state, &f).await?;
    let total = summary["totalEvents"].as_i64().unwrap_or(0);
    Ok(ok(json!({
        "events": with_emails(&state, &rows).await?,
        "pagination": page.json(total),
        "summary": summary,
    })))
}

async fn stats(_admin: Admin, state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let all = EventFilter::default();
    let day = EventFilter {
        from: Some(Utc::now() - Duration::hours(24)),
        ..Default::default()
    };
    let by_type = store::group_by_type(&state.db, &all)
        .await
        .map_err(storage)?;
    let by_type_24h = store::group_by_type(&state.db, &day)
        .await
        .map_err(storage)?;
    let stats: Vec<Value> = by_type
        .iter()
        .map(|(t, n)| json!({"type": t, "count": n, "last24h": by_type_24h.get(t).copied().unwrap_or(0)}))
        .collect();
    Ok(ok(json!({
        "stats": stats,
        "summary": summary(&state, &all).await?,
        "last24h": summary(&state, &day).await?,
        "recorder": {"recorded": state.events.recorded(), "dropped": state.events.dropped()},
    })))
}

async fn export(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: EventsQuery = query(&req)?;
    let f = q.filter()?;
    let csv = match nonempty(&q.format).map(|f| f.to_lowercase()).as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(bad_request("format must be json or csv")),
    };
    let rows = store::list(&state.db, &f, EXPORT_MAX, 0, true)
        .await
        .map_err(storage)?;
    let events = with_emails(&state, &rows).await?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let attachment = |name: String| ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name)],
    };
    if csv {
        let mut out =
            String::from("id,type,severity,timestamp,userId,email,ipAddress,userAgent,details\n");
        for e in &events {
            let cells: Vec<String> = [
                "id",
                "type",
                "severity",
                "timestamp",
                "userId",
                "email",
                "ipAddress",
                "userAgent",
            ]
            .iter()
            .map(|k| csv_cell(&e[*k]))
            .chain(std::iter::once(csv_cell(&Value::String(
                e["details"].to_string(),
            ))))
            .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(attachment(format!("security-events-{stamp}.csv")))
            .body(out));
    }
    Ok(HttpResponse::Ok()
        .insert_header(attachment(format!("security-events-{stamp}.json")))
        .json(json!({
            "success": true,
            "exportedAt": crate::db::now(),
            "count": events.len(),
            "events": events,
        })))
}

/// One CSV cell: quoted, quotes doubled, and a leading `= + - @` defused for spreadsheets.
fn csv_cell(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

async fn one(
    _admin: Admin,
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.len() > 100 {
        return Err(not_found("Event not found"));
    }
    let Some(event) = store::by_id(&state.db, &id).await.map_err(storage)? else {
        return Err(not_found("Event not found"));
    };
    let at = event.created_at.as_datetime();
    let window = |f: EventFilter| EventFilter {
        from: Some(at - Duration::hours(1)),
        to: Some(at + Duration::hours(1)),
        ..f
    };
    let mut related = Vec::new();
    if let Some(ip) = &event.ip {
        let f = window(EventFilter {
            ip_address: Some(ip.clone()),
            ..Default::default()
        });
        related.extend(
            store::list(&state.db, &f, 20, 0, true)
                .await
                .map_err(storage)?,
        );
    }
    if let Some(user) = &event.user_id {
        let f = window(EventFilter {
            user_id: Some(user.clone()),
            ..Default::default()
        });
        related.extend(
            store::list(&state.db, &f, 20, 0, true)
                .await
                .map_err(storage)?,
        );
    }
    related.retain(|e| e.id != event.id);
    related.sort_by(|a, b| b.id.cmp(&a.id));
    related.dedup_by(|a, b| a.id == b.id);
    related.truncate(20);
    let mut body = with_emails(&state, std::slice::from_ref(&event))
        .await?
        .pop()
        .unwrap_or(Value::Null);
    body["relatedEvents"] = Value::Array(with_emails(&state, &related).await?);
    Ok(ok(json!({"event": body})))
}

#[derive(Debug, Deserialize)]
struct TimelineQuery {
    hours: Option<i64>,
}

async fn timeline(
    _admin: Admin,
    state: web::Data<AdminState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: TimelineQuery = query(&req)?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(bad_request("hours must be between 1 and 720"));
    }
    let f = EventFilter {
        from: Some(Utc::now() - Duration::hours(hours)),
        ..Default::default()
    };
    let rows = store::list(&state.db, &f, EXPORT_MAX, 0, false)
        .await
        .map_err(storage)?;
    let mut hourly: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for e in &rows {
        let hour = e
            .created_at
            .as_datetime()
            .format("%Y-%m-%dT%H:00:00.000Z")
            .to_string();
        let slot = hourly.entry(hour).or_default();
        slot.0 += 1;
        *slot.1.entry(e.severity.clone()).or_default() += 1;
    }
    let hourly_stats: Vec<Value> = hourly
        .into_iter()
        .map(|(hour, (count, by))| json!({"hour": hour, "count": count, "bySeverity": by}))
        .collect();
    let timeline: Vec<Value> = rows.iter().rev().take(500).map(event_json).collect();
    Ok(ok(json!({
        "timeline": timeline,
        "hourlyStats": hourly_stats,
        "summary": summary(&state, &f).await?,
        "hours": hours,
    })))
}
