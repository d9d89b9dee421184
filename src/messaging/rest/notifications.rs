//! Stored notifications: list, mark read.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::identity::AuthUser;
use crate::db::Timestamp;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::messaging::model::notification_json;
use crate::messaging::store;
use crate::messaging::MessagingState;
use crate::web::paging::{PageQuery, TOTAL_COUNT};

#[derive(Debug, Deserialize)]
pub(super) struct NotificationsQuery {
    #[serde(flatten)]
    page: PageQuery,
    unread: Option<String>,
}

pub(super) async fn notifications(
    state: web::Data<MessagingState>,
    user: AuthUser,
    query: web::Query<NotificationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.resolve(20);
    let unread_only = matches!(query.unread.as_deref(), Some("true" | "1"));
    let (rows, total) = store::notifications::list(
        &state.messaging.db,
        &user.id,
        unread_only,
        i64::from(page.limit),
        page.offset as i64,
    )
    .await
    .map_err(db_fail("Failed to fetch notifications"))?;
    Ok(HttpResponse::Ok()
        .insert_header((TOTAL_COUNT, total))
        .json(rows.iter().map(notification_json).collect::<Vec<_>>()))
}

pub(super) async fn read_notification(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let failed = db_fail("Failed to mark notification as read");
    if !store::notifications::exists(&state.messaging.db, &user.id, &id)
        .await
        .map_err(failed)?
    {
        return Err(ApiError::not_found("Notification not found"));
    }
    store::notifications::mark_read(&state.messaging.db, &user.id, Some(&id))
        .await
        .map_err(failed)?;
    Ok(HttpResponse::Ok().json(json!({"success": true})))
}

pub(super) async fn read_all_notifications(
    state: web::Data<MessagingState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let n = store::notifications::mark_read(&state.messaging.db, &user.id, None)
        .await
        .map_err(db_fail("Failed to mark notifications as read"))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "updated": n})))
}

/// How far ahead a notification may be snoozed.
const MAX_SNOOZE_DAYS: i64 = 366;

/// `POST /notifications/{id}/snooze {snoozeUntil}` (messagingService.snoozeNotification, an ISO 8601
/// time): the notification leaves `GET /notifications` until then. `snoozeUntil: null` wakes it.
/// A time that is not RFC 3339, already past or more than a year ahead is a 400.
pub(super) async fn snooze_notification(
    state: web::Data<MessagingState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let bad = |t: &str| ApiError::bad_request(ErrorCode::InvalidInput, t.to_owned());
    let raw = body.get("snoozeUntil").or_else(|| body.get("until"));
    let until = match raw {
        Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let t = chrono::DateTime::parse_from_rfc3339(s.trim())
                .map_err(|_| bad("snoozeUntil must be an ISO 8601 date-time"))?
                .with_timezone(&chrono::Utc);
            let now = chrono::Utc::now();
            if t <= now {
                return Err(bad("snoozeUntil must be in the future"));
            }
            if t > now + chrono::Duration::days(MAX_SNOOZE_DAYS) {
                return Err(bad("snoozeUntil must be within a year"));
            }
            Some(Timestamp::from(t))
        }
        _ => return Err(bad("snoozeUntil must be an ISO 8601 date-time")),
    };
    let id = path.into_inner();
    if !crate::messaging::chat::valid_id(&id) {
        return Err(ApiError::not_found("Notification not found"));
    }
    let found = store::notifications::snooze(&state.messaging.db, &user.id, &id, until)
        .await
        .map_err(db_fail("Failed to snooze notification"))?;
    if !found {
        return Err(ApiError::not_found("Notification not found"));
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "snoozedUntil": until.map(|t| t.to_iso_millis()),
    })))
}
