//! What hangs off an organization: invites and leaving (the team rules, through
//! [`crate::accounts::teams`]), its teams, and its projects.
//!
//! - Members of the organization read its teams and projects; owners and admins create teams.
//! - A team's projects are readable by the organization's members and by the team's own members.
//! - Projects are created by [`crate::accounts::projects`], in the organization record or the team.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::links;
use crate::accounts::projects::{self, store as project_store, Project};
use crate::accounts::teams::model::{
    GroupRow, MemberRow, TeamInvite, KIND_TEAM, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, ROLE_OWNER,
};
use crate::accounts::teams::{
    group_and_member_as, remove, send_invite, store, GroupBody, InviteBody, Noun,
};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::{now, Conn, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};
use crate::input::{description_field, required_name};
use crate::web::paging::{PageQuery, MAX_LIMIT};

/// Longest personal note on an organization invite.
const MAX_INVITE_MESSAGE_CHARS: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/organizations/{id}/invite", web::post().to(invite))
        .route("/organizations/{id}/leave", web::post().to(leave))
        .route("/organizations/{id}/members", web::get().to(members))
        .route("/organizations/{id}/teams", web::get().to(teams))
        .route("/organizations/{id}/teams", web::post().to(create_team))
        .route(
            "/organizations/{id}/teams/{team_id}/projects",
            web::get().to(team_projects),
        )
        .route("/organizations/{id}/projects", web::get().to(org_projects))
        .route(
            "/organizations/{id}/projects",
            web::post().to(create_org_project),
        )
        .route("/teams/{id}/projects", web::post().to(create_team_project));
}

fn access_denied() -> ApiError {
    ApiError::message(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "Access denied")
}

fn team_not_found() -> ApiError {
    Noun::Team.not_found()
}

/// The organization and the caller's membership: 404 for an unknown id, 403 for a non-member.
async fn org_for_member(
    conn: &mut Conn<'_>,
    id: &str,
    user_id: &str,
) -> Result<(GroupRow, MemberRow), TxError> {
    let (group, member) = group_and_member_as(conn, id, user_id, Noun::Organization).await?;
    let member = member.ok_or_else(access_denied)?;
    Ok((group, member))
}

#[derive(Debug, Deserialize)]
struct OrgInviteBody {
    #[serde(flatten)]
    invite: InviteBody,
    message: Option<String>,
}

async fn invite(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<OrgInviteBody>,
) -> Result<HttpResponse, ApiError> {
    let OrgInviteBody { invite, message } = body.into_inner();
    let message = message.unwrap_or_default();
    if message.chars().count() > MAX_INVITE_MESSAGE_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("Message must be at most {MAX_INVITE_MESSAGE_CHARS} characters"),
        ));
    }
    let id = path.into_inner();
    // Kept with the invite (no mail is sent yet, so storing it is what lets it reach the invitee).
    let note = Some(message).filter(|m| !m.trim().is_empty());
    let row = send_invite(&state, &user, id.clone(), invite, note, Noun::Organization).await?;
    let stored = row.message.clone().unwrap_or_default();
    let mut invite = serde_json::to_value(TeamInvite::from(row))
        .map_err(|e| ApiError::internal("Error sending invitation", e))?;
    invite["organizationId"] = json!(id);
    invite["message"] = json!(stored);
    Ok(HttpResponse::Ok().json(json!({
        "message": "Invitation sent successfully",
        "invite": invite,
    })))
}

async fn members(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    crate::accounts::teams::roster::group_roster(&state, &user, &path, Noun::Organization).await
}

async fn leave(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    remove(
        &state,
        &user.id,
        id.clone(),
        user.id.clone(),
        Noun::Organization,
    )
    .await?;
    tracing::info!(organization = %id, user = %user.id, "left organization");
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "Left organization successfully",
    })))
}

/// An organization's team as OrganizationContext lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgTeam {
    id: String,
    name: String,
    description: String,
    created_at: Timestamp,
    member_count: i64,
    organization_id: String,
}

async fn teams(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving teams";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (org, _) = org_for_member(&mut conn, &path, &user.id)
        .await
        .map_err(|e| e.into_api(fail))?;
    let rows = links::teams_of(&mut conn, &org.id)
        .await
        .map_err(db_fail(fail))?;
    let ids: Vec<String> = rows.iter().map(|g| g.id.clone()).collect();
    let counts: std::collections::HashMap<String, i64> = store::member_counts(&mut conn, &ids)
        .await
        .map_err(db_fail(fail))?
        .into_iter()
        .collect();
    let teams: Vec<OrgTeam> = rows
        .into_iter()
        .map(|g| OrgTeam {
            member_count: counts.get(&g.id).copied().unwrap_or(0),
            id: g.id,
            name: g.name,
            description: g.description.unwrap_or_default(),
            created_at: g.created_at,
            organization_id: org.id.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(teams))
}

/// `POST /organizations/:id/teams {name, description?}`: owners and admins of the organization
/// create a team in it, with themselves as its owner.
async fn create_team(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = required_name(body.name.as_deref(), MAX_NAME_CHARS, "Team")?;
    let description = description_field(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let org_id = path.into_inner();
    let at = now();
    let team = GroupRow {
        id: crate::db::new_id(),
        kind: KIND_TEAM.to_owned(),
        name,
        description,
        created_by: Some(user.id.clone()),
        created_at: at,
        updated_at: at,
    };
    let creator = MemberRow {
        group_id: team.id.clone(),
        user_id: user.id.clone(),
        role: ROLE_OWNER.to_owned(),
        joined_at: at,
    };
    let row = team.clone();
    let user_id = user.id.clone();
    let org = org_id.clone();
    state
        .db
        .transaction(async move |mut conn| {
            let (group, member) = org_for_member(&mut conn, &org, &user_id).await?;
            if !group.can_manage(&member) {
                return Err(ApiError::message(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "Permission denied",
                )
                .into());
            }
            store::insert_group(&mut conn, &row, &creator).await?;
            links::link(&mut conn, &org, &row.id).await?;
            Ok::<_, TxError>(())
        })
        .await
        .map_err(|e| e.into_api("Error creating team"))?;
    tracing::info!(organization = %org_id, team = %team.id, user = %user.id, "organization team created");
    let view = OrgTeam {
        id: team.id,
        name: team.name,
        description: team.description.unwrap_or_default(),
        created_at: team.created_at,
        member_count: 1,
        organization_id: org_id,
    };
    Ok(HttpResponse::Created().json(view))
}

/// Project views of `rows`, with their members.
async fn project_views(
    conn: &mut Conn<'_>,
    rows: Vec<project_store::ProjectRow>,
) -> Result<Vec<Project>, crate::db::DbError> {
    let ids: Vec<String> = rows.iter().map(|p| p.id.clone()).collect();
    let mut members = project_store::members_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                members.drain(..).partition(|m| m.project_id == row.id);
            members = rest;
            projects::view(row, mine)
        })
        .collect())
}

async fn org_projects(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.resolve(MAX_LIMIT);
    let fail = "Error retrieving projects";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (org, _) = org_for_member(&mut conn, &path, &user.id)
        .await
        .map_err(|e| e.into_api(fail))?;
    let mut groups: Vec<String> = links::teams_of(&mut conn, &org.id)
        .await
        .map_err(db_fail(fail))?
        .into_iter()
        .map(|g| g.id)
        .collect();
    groups.push(org.id);
    let rows = links::projects_in(&mut conn, &groups, page)
        .await
        .map_err(db_fail(fail))?;
    let list = project_views(&mut conn, rows)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(list))
}

async fn team_projects(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, team_id) = path.into_inner();
    let page = query.resolve(MAX_LIMIT);
    let fail = "Error retrieving projects";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (_, org_member) = group_and_member_as(&mut conn, &org_id, &user.id, Noun::Organization)
        .await
        .map_err(|e| e.into_api(fail))?;
    if !links::is_team_of(&mut conn, &org_id, &team_id)
        .await
        .map_err(db_fail(fail))?
    {
        return Err(team_not_found());
    }
    if org_member.is_none()
        && crate::accounts::teams::team_member(&mut conn, &team_id, &user.id)
            .await
            .map_err(db_fail(fail))?
            .is_none()
    {
        return Err(access_denied());
    }
    let rows = links::projects_in(&mut conn, std::slice::from_ref(&team_id), page)
        .await
        .map_err(db_fail(fail))?;
    let list = project_views(&mut conn, rows)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(list))
}

/// The frontend's project body with `teamId` set to the group the route names.
fn body_in_group(
    body: Value,
    group_id: &str,
) -> Result<web::Json<projects::ProjectBody>, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "Request body must be a JSON object",
        ));
    };
    fields.insert("teamId".into(), json!(group_id));
    serde_json::from_value(Value::Object(fields))
        .map(web::Json)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidInput, e.to_string()))
}

/// `POST /organizations/:id/projects`: a project in the organization record itself (members only).
async fn create_org_project(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    {
        let fail = "Error creating project";
        let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
        org_for_member(&mut pooled.as_conn(), &id, &user.id)
            .await
            .map_err(|e| e.into_api(fail))?;
    }
    let body = body_in_group(body.into_inner(), &id)?;
    projects::create(state, user, body).await
}

/// `POST /teams/:id/projects`: a project in the team (its members only, checked by `projects`).
async fn create_team_project(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body_in_group(body.into_inner(), &path)?;
    projects::create(state, user, body).await
}
