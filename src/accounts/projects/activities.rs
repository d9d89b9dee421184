//! A project's activity feed: one row per task or milestone change, written in the same transaction
//! as the change, read newest first with the frontend's filters.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::fields::is_date;
use super::{access_denied, project_for_member};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::schema::{project_activities as pa, users};
use crate::db::{now, Conn, DbError, Json, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pa)]
pub struct ActivityRow {
    pub id: String,
    pub project_id: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub entity_type: String,
    pub entity_id: String,
    pub entity_title: String,
    pub action: String,
    pub metadata: Json,
    pub created_at: Timestamp,
}

/// Moves a task or milestone to `status` (when one was sent): `completedAt` is stamped when it
/// becomes completed, kept while it stays so and cleared when it leaves. Returns the action its
/// activity records: `completed` when this change completed it, `updated` otherwise.
pub fn move_status(
    status: Option<String>,
    current: &mut String,
    completed_at: &mut Option<Timestamp>,
    at: Timestamp,
) -> &'static str {
    let Some(status) = status else {
        return "updated";
    };
    let was_completed = current == "completed";
    let completes = status == "completed" && !was_completed;
    if completes {
        *completed_at = Some(at);
    } else if status != "completed" {
        *completed_at = None;
    }
    *current = status;
    if completes {
        "completed"
    } else {
        "updated"
    }
}

/// What changed, for [`record`].
pub struct Change<'a> {
    pub project_id: &'a str,
    pub user_id: &'a str,
    pub entity_type: &'static str,
    pub entity_id: &'a str,
    pub entity_title: &'a str,
    /// `created`, `updated`, `completed` or `deleted`; the type is `<entity_type>.<action>`.
    pub action: &'static str,
    pub metadata: Value,
}

/// Stores one activity (inside the caller's transaction).
pub async fn record(conn: &mut Conn<'_>, change: Change<'_>) -> Result<(), DbError> {
    let row = ActivityRow {
        id: crate::db::new_id(),
        project_id: change.project_id.to_owned(),
        kind: format!("{}.{}", change.entity_type, change.action),
        user_id: Some(change.user_id.to_owned()),
        entity_type: change.entity_type.to_owned(),
        entity_id: change.entity_id.to_owned(),
        entity_title: change.entity_title.to_owned(),
        action: change.action.to_owned(),
        metadata: Json(change.metadata),
        created_at: now(),
    };
    crate::db!(conn, |c| {
        diesel::insert_into(pa::table)
            .values(row.clone())
            .execute(c)
            .await
    })?;
    Ok(())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: String,
    pub project_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub user_email: Option<String>,
    pub entity_type: String,
    pub entity_id: String,
    pub entity_title: String,
    pub action: String,
    pub metadata: Value,
    pub timestamp: Timestamp,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityQuery {
    limit: Option<String>,
    offset: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    user_id: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
}

fn bad_query(message: &str) -> ApiError {
    ApiError::message(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, message)
}

fn number(value: Option<&str>, default: i64, max: i64, what: &str) -> Result<i64, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(max)),
            _ => Err(bad_query(&format!("Invalid {what}"))),
        },
    }
}

/// A `dateFrom`/`dateTo` bound: a calendar date means its whole day.
fn bound(value: Option<&str>, end_of_day: bool, what: &str) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !is_date(v) {
        return Err(bad_query(&format!("Invalid {what}")));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&chrono::Utc).into()));
    }
    let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| bad_query(&format!("Invalid {what}")))?;
    let time = if end_of_day {
        day.and_hms_micro_opt(23, 59, 59, 999_999)
    } else {
        day.and_hms_opt(0, 0, 0)
    }
    .ok_or_else(|| bad_query(&format!("Invalid {what}")))?;
    Ok(Some(time.and_utc().into()))
}

pub async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = number(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT, "limit")?;
    let offset = number(q.offset.as_deref(), 0, i64::MAX, "offset")?;
    let from = bound(q.date_from.as_deref(), false, "dateFrom")?;
    let to = bound(q.date_to.as_deref(), true, "dateTo")?;
    let kind = q.kind.filter(|k| !k.trim().is_empty());
    let user_filter = q.user_id.filter(|u| !u.trim().is_empty());
    let fail = "Error retrieving activities";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (project, _) = project_for_member(&mut conn, &path, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let project_id = project.id;
    // A macro, not a closure: each backend arm of `db!` boxes the query for its own backend.
    macro_rules! filtered {
        () => {{
            let mut q = pa::table
                .left_join(users::table)
                .filter(pa::project_id.eq(&project_id))
                .into_boxed();
            if let Some(k) = &kind {
                // `task` matches every `task.*` type; a full type matches itself.
                q = if k.contains('.') {
                    q.filter(pa::kind.eq(k))
                } else {
                    q.filter(pa::entity_type.eq(k))
                };
            }
            if let Some(u) = &user_filter {
                q = q.filter(pa::user_id.eq(u));
            }
            if let Some(f) = from {
                q = q.filter(pa::created_at.ge(f));
            }
            if let Some(t) = to {
                q = q.filter(pa::created_at.le(t));
            }
            q
        }};
    }
    let total: i64 = crate::db!(conn, |c| filtered!().count().get_result(c).await)
        .map_err(|e| db_fail(fail)(e.into()))?;
    let rows: Vec<(ActivityRow, Option<(String, String)>)> = crate::db!(conn, |c| {
        filtered!()
            .order((pa::created_at.desc(), pa::id.desc()))
            .limit(limit)
            .offset(offset)
            .select((
                ActivityRow::as_select(),
                (users::name, users::email).nullable(),
            ))
            .load(c)
            .await
    })
    .map_err(|e| db_fail(fail)(e.into()))?;
    let activities: Vec<Activity> = rows
        .into_iter()
        .map(|(row, who)| {
            let (user_name, user_email) = who.map_or((None, None), |(n, e)| (Some(n), Some(e)));
            Activity {
                id: row.id,
                project_id: row.project_id,
                kind: row.kind,
                user_id: row.user_id,
                user_name,
                user_email,
                entity_type: row.entity_type,
                entity_id: row.entity_id,
                entity_title: row.entity_title,
                action: row.action,
                metadata: row.metadata.0,
                timestamp: row.created_at,
            }
        })
        .collect();
    let has_more = offset.saturating_add(activities.len() as i64) < total;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "activities": activities,
        "total": total,
        "hasMore": has_more,
    })))
}

#[cfg(test)]
mod move_status_tests {
    use super::move_status;
    use crate::db::now;

    #[test]
    fn completing_stamps_staying_keeps_leaving_clears() {
        let (t0, t1) = (now(), now());
        let mut status = "todo".to_owned();
        let mut done = None;
        assert_eq!(move_status(None, &mut status, &mut done, t0), "updated");
        assert_eq!((status.as_str(), done), ("todo", None));

        let completed = Some("completed".to_owned());
        assert_eq!(
            move_status(completed.clone(), &mut status, &mut done, t0),
            "completed"
        );
        assert_eq!((status.as_str(), done), ("completed", Some(t0)));
        assert_eq!(
            move_status(completed, &mut status, &mut done, t1),
            "updated"
        );
        assert_eq!(done, Some(t0), "staying completed keeps the first stamp");

        let review = Some("review".to_owned());
        assert_eq!(move_status(review, &mut status, &mut done, t1), "updated");
        assert_eq!((status.as_str(), done), ("review", None));
    }
}
