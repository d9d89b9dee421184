//! A project's milestones (issue 12): members create them and update any subset of their fields;
//! each change records an activity.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde_json::{json, Value};

use super::activities::{self, Change};
use super::fields::{self, Field};
use super::{access_denied, project_for_member};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::schema::project_milestones as pm;
use crate::db::{now, Timestamp};
use crate::error::{ApiError, ErrorCode, TxError};

pub const STATUSES: &[&str] = &["pending", "in_progress", "in-progress", "completed"];

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = pm, treat_none_as_null = true)]
pub struct MilestoneRow {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub due_date: Option<String>,
    pub status: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Milestone {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub due_date: Option<String>,
    pub status: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl From<MilestoneRow> for Milestone {
    fn from(r: MilestoneRow) -> Milestone {
        Milestone {
            id: r.id,
            project_id: r.project_id,
            title: r.title,
            description: r.description,
            due_date: r.due_date,
            status: r.status,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{pid}/milestones", web::post().to(create))
        .route("/projects/{pid}/milestones/{mid}", web::put().to(update));
}

async fn create(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let map = fields::object(body.into_inner())?;
    let title = fields::title(&map, true, "Milestone")?.unwrap_or_default();
    let description = fields::description(&map)?.unwrap_or_default();
    let due_date = fields::due_date(&map)?.set();
    let pid = path.into_inner();
    let user_id = user.id.clone();
    let at = now();
    let milestone = state
        .db
        .transaction(async move |mut conn| {
            let (project, _) = project_for_member(&mut conn, &pid, &user_id, access_denied).await?;
            let row = MilestoneRow {
                id: crate::db::new_id(),
                project_id: project.id.clone(),
                title,
                description,
                due_date,
                status: "pending".into(),
                created_by: Some(user_id.clone()),
                created_at: at,
                updated_at: at,
                completed_at: None,
            };
            crate::db!(conn, |c| {
                diesel::insert_into(pm::table)
                    .values(row.clone())
                    .execute(c)
                    .await
            })?;
            activities::record(
                &mut conn,
                Change {
                    project_id: &project.id,
                    user_id: &user_id,
                    entity_type: "milestone",
                    entity_id: &row.id,
                    entity_title: &row.title,
                    action: "created",
                    metadata: json!({"dueDate": row.due_date}),
                },
            )
            .await?;
            Ok::<_, TxError>(Milestone::from(row))
        })
        .await
        .map_err(|e| e.into_api("Error creating milestone"))?;
    Ok(HttpResponse::Created().json(json!({"success": true, "milestone": milestone})))
}

async fn update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let map = fields::object(body.into_inner())?;
    let title = fields::title(&map, false, "Milestone")?;
    let description = fields::description(&map)?;
    let due_date = fields::due_date(&map)?;
    let status = fields::choice(&map, "status", STATUSES)?;
    // `completed: true|false` is the original's shorthand for the status.
    let completed = match map.get("completed") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(fields::invalid("completed must be a boolean")),
    };
    let (pid, mid) = path.into_inner();
    let user_id = user.id.clone();
    let milestone = state
        .db
        .transaction(async move |mut conn| {
            project_for_member(&mut conn, &pid, &user_id, access_denied).await?;
            let found: Option<MilestoneRow> = if crate::input::usable_id(&mid) {
                crate::db!(conn, |c| {
                    pm::table
                        .filter(pm::id.eq(&mid))
                        .filter(pm::project_id.eq(&pid))
                        .select(MilestoneRow::as_select())
                        .first(c)
                        .await
                        .optional()
                })?
            } else {
                None
            };
            let mut row = found.ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "Milestone not found",
                )
            })?;
            let before = row.status.clone();
            if let Some(t) = title {
                row.title = t;
            }
            if let Some(d) = description {
                row.description = d;
            }
            if !matches!(due_date, Field::Absent) {
                row.due_date = due_date.set();
            }
            let status = status.or(match completed {
                Some(true) => Some("completed".to_owned()),
                Some(false) if before == "completed" => Some("pending".to_owned()),
                _ => None,
            });
            let at = now();
            let action =
                activities::move_status(status, &mut row.status, &mut row.completed_at, at);
            row.updated_at = at;
            crate::db!(conn, |c| {
                diesel::update(pm::table.find(&row.id))
                    .set(row.clone())
                    .execute(c)
                    .await
            })?;
            activities::record(
                &mut conn,
                Change {
                    project_id: &row.project_id,
                    user_id: &user_id,
                    entity_type: "milestone",
                    entity_id: &row.id,
                    entity_title: &row.title,
                    action,
                    metadata: json!({"previousStatus": before, "status": row.status}),
                },
            )
            .await?;
            Ok::<_, TxError>(Milestone::from(row))
        })
        .await
        .map_err(|e| e.into_api("Error updating milestone"))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "milestone": milestone})))
}
