//! A project's tasks (issue 12): any member lists, reads, creates, updates and deletes them.
//!
//! The original's unmounted routes required a title on every PUT and lacked `in-progress`, `review`
//! and `critical`; here a PUT takes any subset (the Kanban board sends only `{status}`) and the
//! statuses are kept as the client sent them. Each change records an activity in its transaction
//! and is then told to the project's live room.

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
use crate::db::schema::{project_tasks as pt, users};
use crate::db::{now, Conn, DbError, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};

pub const STATUSES: &[&str] = &["todo", "in-progress", "in_progress", "review", "completed"];
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "critical"];

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = pt, treat_none_as_null = true)]
pub struct TaskRow {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assigned_to: Option<String>,
    pub due_date: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assigned_to: Option<String>,
    pub due_date: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl From<TaskRow> for Task {
    fn from(r: TaskRow) -> Task {
        Task {
            id: r.id,
            project_id: r.project_id,
            title: r.title,
            description: r.description,
            status: r.status,
            priority: r.priority,
            assigned_to: r.assigned_to,
            due_date: r.due_date,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{pid}/tasks", web::get().to(list))
        .route("/projects/{pid}/tasks", web::post().to(create))
        .route("/projects/{pid}/tasks/{tid}", web::get().to(get))
        .route("/projects/{pid}/tasks/{tid}", web::put().to(update))
        .route("/projects/{pid}/tasks/{tid}", web::delete().to(delete));
}

/// Tells the project's live room about a REST change, with the caller as its author.
async fn tell(
    state: &AccountsState,
    user: &AuthUser,
    project_id: &str,
    event: &'static str,
    mut data: Value,
) {
    let Some(events) = &state.project_events else {
        return;
    };
    let name: Option<String> = match state.db.get_read().await {
        Ok(mut pooled) => {
            let mut conn = pooled.as_conn();
            crate::db!(conn, |c| {
                users::table
                    .find(&user.id)
                    .select(users::name)
                    .first(c)
                    .await
                    .optional()
            })
            .unwrap_or_default()
        }
        Err(_) => None,
    };
    data["userId"] = json!(user.id);
    data["userName"] = json!(name);
    events.task(project_id, event, data).await;
}

fn task_not_found() -> ApiError {
    ApiError::message(StatusCode::NOT_FOUND, ErrorCode::NotFound, "Task not found")
}

async fn find(conn: &mut Conn<'_>, project: &str, id: &str) -> Result<Option<TaskRow>, DbError> {
    if !crate::input::usable_id(id) {
        return Ok(None);
    }
    Ok(crate::db!(conn, |c| {
        pt::table
            .filter(pt::id.eq(id))
            .filter(pt::project_id.eq(project))
            .select(TaskRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving tasks";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (project, _) = project_for_member(&mut conn, &path, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let rows: Vec<TaskRow> = crate::db!(conn, |c| {
        pt::table
            .filter(pt::project_id.eq(&project.id))
            .order((pt::created_at.asc(), pt::id.asc()))
            .select(TaskRow::as_select())
            .load(c)
            .await
    })
    .map_err(|e| db_fail(fail)(e.into()))?;
    let tasks: Vec<Task> = rows.into_iter().map(Task::from).collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "tasks": tasks})))
}

async fn get(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (pid, tid) = path.into_inner();
    let fail = "Error retrieving task";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    project_for_member(&mut conn, &pid, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let task = find(&mut conn, &pid, &tid)
        .await
        .map_err(db_fail(fail))?
        .ok_or_else(task_not_found)?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "task": Task::from(task)})))
}

async fn create(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let map = fields::object(body.into_inner())?;
    let title = fields::title(&map, true, "Task")?.unwrap_or_default();
    let description = fields::description(&map)?.unwrap_or_default();
    let status = fields::choice(&map, "status", STATUSES)?.unwrap_or_else(|| "todo".into());
    let priority = fields::choice(&map, "priority", PRIORITIES)?.unwrap_or_else(|| "medium".into());
    let assigned_to = fields::user_ref(&map, "assignedTo")?.set();
    let due_date = fields::due_date(&map)?.set();
    let pid = path.into_inner();
    let user_id = user.id.clone();
    let at = now();
    let task = state
        .db
        .transaction(async move |mut conn| {
            let (project, _) = project_for_member(&mut conn, &pid, &user_id, access_denied).await?;
            let row = TaskRow {
                id: crate::db::new_id(),
                project_id: project.id.clone(),
                title,
                description,
                completed_at: (status == "completed").then_some(at),
                status,
                priority,
                assigned_to,
                due_date,
                created_by: Some(user_id.clone()),
                created_at: at,
                updated_at: at,
            };
            crate::db!(conn, |c| {
                diesel::insert_into(pt::table)
                    .values(row.clone())
                    .execute(c)
                    .await
            })?;
            activities::record(
                &mut conn,
                Change {
                    project_id: &project.id,
                    user_id: &user_id,
                    entity_type: "task",
                    entity_id: &row.id,
                    entity_title: &row.title,
                    action: "created",
                    metadata: json!({"status": row.status, "priority": row.priority}),
                },
            )
            .await?;
            Ok::<_, TxError>(Task::from(row))
        })
        .await
        .map_err(|e| e.into_api("Error creating task"))?;
    tracing::info!(task = %task.id, project = %task.project_id, user = %user.id, "task created");
    tell(
        &state,
        &user,
        &task.project_id,
        "task:created",
        json!({"task": task}),
    )
    .await;
    Ok(HttpResponse::Created().json(json!({"success": true, "task": task})))
}

async fn update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let map = fields::object(body.into_inner())?;
    let title = fields::title(&map, false, "Task")?;
    let description = fields::description(&map)?;
    let status = fields::choice(&map, "status", STATUSES)?;
    let priority = fields::choice(&map, "priority", PRIORITIES)?;
    let assigned_to = fields::user_ref(&map, "assignedTo")?;
    let due_date = fields::due_date(&map)?;
    let (pid, tid) = path.into_inner();
    let user_id = user.id.clone();
    let task = state
        .db
        .transaction(async move |mut conn| {
            project_for_member(&mut conn, &pid, &user_id, access_denied).await?;
            let mut row = find(&mut conn, &pid, &tid)
                .await?
                .ok_or_else(task_not_found)?;
            let before = row.status.clone();
            let mut changed: Vec<&str> = Vec::new();
            if let Some(t) = title {
                row.title = t;
                changed.push("title");
            }
            if let Some(d) = description {
                row.description = d;
                changed.push("description");
            }
            if let Some(p) = priority {
                row.priority = p;
                changed.push("priority");
            }
            match assigned_to {
                Field::Absent => {}
                a => {
                    row.assigned_to = a.set();
                    changed.push("assignedTo");
                }
            }
            match due_date {
                Field::Absent => {}
                d => {
                    row.due_date = d.set();
                    changed.push("dueDate");
                }
            }
            let at = now();
            if status.is_some() {
                changed.push("status");
            }
            let action =
                activities::move_status(status, &mut row.status, &mut row.completed_at, at);
            row.updated_at = at;
            crate::db!(conn, |c| {
                diesel::update(pt::table.find(&row.id))
                    .set(row.clone())
                    .execute(c)
                    .await
            })?;
            activities::record(
                &mut conn,
                Change {
                    project_id: &row.project_id,
                    user_id: &user_id,
                    entity_type: "task",
                    entity_id: &row.id,
                    entity_title: &row.title,
                    action,
                    metadata: json!({
                        "changes": changed,
                        "previousStatus": before,
                        "status": row.status,
                    }),
                },
            )
            .await?;
            Ok::<_, TxError>(Task::from(row))
        })
        .await
        .map_err(|e| e.into_api("Error updating task"))?;
    tell(
        &state,
        &user,
        &task.project_id,
        "task:updated",
        json!({"task": task}),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({"success": true, "task": task})))
}

async fn delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (pid, tid) = path.into_inner();
    let user_id = user.id.clone();
    let deleted = state
        .db
        .transaction(async move |mut conn| {
            project_for_member(&mut conn, &pid, &user_id, access_denied).await?;
            let row = find(&mut conn, &pid, &tid)
                .await?
                .ok_or_else(task_not_found)?;
            crate::db!(conn, |c| {
                diesel::delete(pt::table.find(&row.id)).execute(c).await
            })?;
            activities::record(
                &mut conn,
                Change {
                    project_id: &row.project_id,
                    user_id: &user_id,
                    entity_type: "task",
                    entity_id: &row.id,
                    entity_title: &row.title,
                    action: "deleted",
                    metadata: json!({"status": row.status}),
                },
            )
            .await?;
            Ok::<_, TxError>((row.project_id, row.id))
        })
        .await
        .map_err(|e| e.into_api("Error deleting task"))?;
    let (project_id, task_id) = deleted;
    tracing::info!(project = %project_id, task = %task_id, user = %user.id, "task deleted");
    tell(
        &state,
        &user,
        &project_id,
        "task:deleted",
        json!({"taskId": task_id}),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({"success": true, "message": "Task deleted successfully"})))
}
