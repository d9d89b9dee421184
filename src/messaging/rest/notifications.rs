//! Stored notifications: list, mark read.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError};
use crate::messaging::model::notification_json;
use crate::messaging::store;
use crate::messaging::MessagingState;
use crate::web::paging::PageQuery;

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
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "notifications": rows.iter().map(notification_json).collect::<Vec<_>>(),
        "total": total,
    })))
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
