//! Projects (CONTRACT §7): create, list, read, update, and the link to a messaging channel.
//!
//! Access follows [`crate::membership`] (the creator is `owner`, the project's team members join it):
//! members read, link a channel and work on tasks, milestones and activities; owners and admins
//! update and delete. The validation rules the original shipped but never mounted are applied here
//! (name ≤ 200, description ≤ 2000, status and priority whitelists, with the legacy `active` status
//! still accepted), and a linked channel must exist and be usable by the caller.

pub mod activities;
pub mod fields;
pub mod milestones;
pub mod store;
pub mod tasks;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::store::{ProjectMemberRow, ProjectRow};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::{now, Conn, DbError, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};
use crate::input::{
    description_field, description_update, name_too_long, required_name, text_field,
};
use crate::membership::{self, Scope};
use crate::web::paging::{PageQuery, MAX_LIMIT};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The frontend's statuses, plus the original's default `active`.
pub const STATUSES: &[&str] = &[
    "active",
    "planning",
    "in_progress",
    "in-progress",
    "on_hold",
    "on-hold",
    "completed",
    "cancelled",
];
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects", web::post().to(create))
        .route("/projects", web::get().to(list))
        .route("/projects/{id}", web::get().to(get))
        .route("/projects/{id}", web::put().to(update))
        .route("/projects/{id}", web::delete().to(delete))
        .route("/projects/{id}/channel", web::post().to(link_channel))
        .route("/projects/{id}/channel", web::get().to(channel))
        .route("/projects/{id}/members", web::get().to(members))
        .route("/projects/{id}/activities", web::get().to(activities::list));
    tasks::routes(cfg);
    milestones::routes(cfg);
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMember {
    pub user_id: String,
    pub role: String,
    pub joined_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMetadata {
    pub channel_id: String,
    pub channel_type: &'static str,
    pub linked_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub team_id: Option<String>,
    pub status: String,
    pub priority: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub members: Vec<ProjectMember>,
    pub channel_metadata: Option<ChannelMetadata>,
}

fn channel_metadata(row: &ProjectRow) -> Option<ChannelMetadata> {
    row.channel_id.as_ref().map(|id| ChannelMetadata {
        channel_id: id.clone(),
        channel_type: "project",
        linked_at: row.channel_linked_at,
    })
}

pub(crate) fn view(row: ProjectRow, members: Vec<ProjectMemberRow>) -> Project {
    Project {
        channel_metadata: channel_metadata(&row),
        id: row.id,
        name: row.name,
        description: row.description.unwrap_or_default(),
        team_id: row.group_id,
        status: row.status,
        priority: row.priority,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
        members: members
            .into_iter()
            .map(|m| ProjectMember {
                user_id: m.user_id,
                role: m.role,
                joined_at: m.joined_at,
            })
            .collect(),
    }
}

async fn load(conn: &mut Conn<'_>, row: ProjectRow) -> Result<Project, DbError> {
    let members = store::members_of(conn, std::slice::from_ref(&row.id)).await?;
    Ok(view(row, members))
}

fn project_not_found() -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "Project not found",
    )
}

fn access_denied() -> ApiError {
    ApiError::message(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "Access denied")
}

fn pick(value: Option<&str>, allowed: &[&str], what: &str) -> Result<Option<String>, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(_) => Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            format!("Invalid project {what}. Allowed: {}", allowed.join(", ")),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectBody {
    name: Option<String>,
    description: Option<String>,
    team_id: Option<String>,
    status: Option<String>,
    priority: Option<String>,
}

pub(crate) async fn create(
    state: web::Data<AccountsState>,
    user: AuthUser,
    body: web::Json<ProjectBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = required_name(body.name.as_deref(), MAX_NAME_CHARS, "Project")?;
    let description = description_field(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let status =
        pick(body.status.as_deref(), STATUSES, "status")?.unwrap_or_else(|| "active".into());
    let priority =
        pick(body.priority.as_deref(), PRIORITIES, "priority")?.unwrap_or_else(|| "medium".into());
    let team_id = body
        .team_id
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let at = now();
    let row = ProjectRow {
        id: crate::db::new_id(),
        name,
        description,
        group_id: team_id,
        status,
        priority,
        created_by: Some(user.id.clone()),
        created_at: at,
        updated_at: at,
        channel_id: None,
        channel_linked_at: None,
    };
    let owner = ProjectMemberRow {
        project_id: row.id.clone(),
        user_id: user.id.clone(),
        role: "owner".into(),
        joined_at: at,
    };
    let project = state
        .db
        .transaction(async move |mut conn| {
            // A project may sit in a team only if its creator belongs to that team.
            if let Some(team) = &row.group_id {
                if !membership::exists(&mut conn, Scope::Team(team)).await? {
                    return Err(ApiError::message(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "Team not found",
                    )
                    .into());
                }
                if !membership::is_member(&mut conn, Scope::Team(team), &owner.user_id).await? {
                    return Err(access_denied().into());
                }
            }
            store::insert(&mut conn, &row, &owner).await?;
            Ok::<_, TxError>(view(row, vec![owner]))
        })
        .await
        .map_err(|e| e.into_api("Error creating project"))?;
    tracing::info!(project = %project.id, user = %user.id, "project created");
    Ok(HttpResponse::Ok()
        .json(json!({"message": "Project created successfully", "project": project})))
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.resolve(MAX_LIMIT);
    let fail = "Error retrieving projects";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let rows = store::projects_of(&mut conn, &user.id, page)
        .await
        .map_err(db_fail(fail))?;
    let ids: Vec<String> = rows.iter().map(|p| p.id.clone()).collect();
    let mut members = store::members_of(&mut conn, &ids)
        .await
        .map_err(db_fail(fail))?;
    let projects: Vec<Project> = rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                members.drain(..).partition(|m| m.project_id == row.id);
            members = rest;
            view(row, mine)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "projects": projects })))
}

/// The project and the caller's membership, or 404 / 403 `Access denied`.
pub(crate) async fn project_for_member(
    conn: &mut Conn<'_>,
    id: &str,
    user_id: &str,
    denied: fn() -> ApiError,
) -> Result<(ProjectRow, ProjectMemberRow), TxError> {
    let row = store::project(conn, id)
        .await?
        .ok_or_else(project_not_found)?;
    let member = membership::member(conn, Scope::Project(id), user_id)
        .await?
        .map(|m| ProjectMemberRow::of(id, m))
        .ok_or_else(denied)?;
    Ok((row, member))
}

async fn get(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving project";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (row, _) = project_for_member(&mut conn, &path, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let project = load(&mut conn, row).await.map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(project))
}

/// `GET /projects/{id}/members`: a bare array, as `OrganizationContext.getProjectMembers` reads it.
async fn members(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving project members";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    project_for_member(&mut conn, &path, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let list = crate::accounts::teams::roster::project_roster(&mut conn, &path)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(list))
}

fn permission_denied() -> ApiError {
    ApiError::message(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "Permission denied",
    )
}

async fn update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<ProjectBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = text_field(
        body.name.as_deref(),
        MAX_NAME_CHARS,
        &name_too_long("Project", MAX_NAME_CHARS),
    )?;
    let description = description_update(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let status = pick(body.status.as_deref(), STATUSES, "status")?;
    let priority = pick(body.priority.as_deref(), PRIORITIES, "priority")?;
    let id = path.into_inner();
    let user_id = user.id.clone();
    let project = state
        .db
        .transaction(async move |mut conn| {
            let (mut row, member) =
                project_for_member(&mut conn, &id, &user_id, permission_denied).await?;
            if !matches!(member.role.as_str(), "owner" | "admin") {
                return Err(permission_denied().into());
            }
            if let Some(name) = name {
                row.name = name;
            }
            match description {
                Some(d) if d.is_empty() => row.description = None,
                Some(d) => row.description = Some(d),
                None => {}
            }
            if let Some(status) = status {
                row.status = status;
            }
            if let Some(priority) = priority {
                row.priority = priority;
            }
            row.updated_at = now();
            store::update(&mut conn, &row).await?;
            Ok::<_, TxError>(load(&mut conn, row).await?)
        })
        .await
        .map_err(|e| e.into_api("Error updating project"))?;
    // useProjects reads `result.project`; older callers read the bare fields.
    let mut body = serde_json::to_value(&project).map_err(|e| {
        tracing::error!(error = %e, "project does not serialize");
        ApiError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Error updating project",
        )
    })?;
    if let Some(map) = body.as_object_mut() {
        map.insert("project".into(), json!(project));
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let user_id = user.id.clone();
    let deleted = id.clone();
    state
        .db
        .transaction(async move |mut conn| {
            let (_, member) =
                project_for_member(&mut conn, &id, &user_id, permission_denied).await?;
            if !matches!(member.role.as_str(), "owner" | "admin") {
                return Err(permission_denied().into());
            }
            store::delete(&mut conn, &id).await?;
            Ok::<_, TxError>(())
        })
        .await
        .map_err(|e| e.into_api("Error deleting project"))?;
    tracing::info!(project = %deleted, user = %user.id, "project deleted");
    Ok(
        HttpResponse::Ok()
            .json(json!({"success": true, "message": "Project deleted successfully"})),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelBody {
    channel_id: Option<String>,
}

async fn link_channel(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<ChannelBody>,
) -> Result<HttpResponse, ApiError> {
    let channel_id = body
        .into_inner()
        .channel_id
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::BAD_REQUEST,
                ErrorCode::MissingField,
                "Channel ID is required",
            )
        })?;
    let id = path.into_inner();
    let user_id = user.id.clone();
    let project = state
        .db
        .transaction(async move |mut conn| {
            let (mut row, _) = project_for_member(&mut conn, &id, &user_id, access_denied).await?;
            // The original linked any id (CONTRACT §14.2): the channel must exist and be the caller's.
            match membership::conversation_access(&mut conn, &channel_id, &user_id).await? {
                membership::Access::Allowed(_) => {}
                membership::Access::Denied => return Err(access_denied().into()),
                membership::Access::NotFound => {
                    return Err(ApiError::message(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "Channel not found",
                    )
                    .into())
                }
            }
            let at = now();
            row.channel_id = Some(channel_id);
            row.channel_linked_at = Some(at);
            row.updated_at = at;
            store::update(&mut conn, &row).await?;
            Ok::<_, TxError>(load(&mut conn, row).await?)
        })
        .await
        .map_err(|e| e.into_api("Error linking channel"))?;
    Ok(HttpResponse::Ok()
        .json(json!({"message": "Channel linked successfully", "project": project})))
}

async fn channel(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving channel";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (row, _) = project_for_member(&mut conn, &path, &user.id, access_denied)
        .await
        .map_err(|e| e.into_api(fail))?;
    let metadata = channel_metadata(&row);
    // `channel` is additive: useProjectChannel reads `data.channel` (CONTRACT §13 #5).
    let channel = match &metadata {
        Some(m) => {
            let name = membership::conversation(&mut conn, &m.channel_id)
                .await
                .map_err(db_fail(fail))?
                .and_then(|c| c.name);
            json!({
                "id": m.channel_id,
                "name": name,
                "channelId": m.channel_id,
                "channelType": m.channel_type,
                "linkedAt": m.linked_at,
            })
        }
        None => serde_json::Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "channelMetadata": metadata,
        "hasChannel": metadata.is_some(),
        "channel": channel,
    })))
}
