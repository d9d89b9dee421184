//! The dashboards' numbers (`OrganizationContext.getOrganizationStats|getTeamStats|getProjectStats`,
//! read by OrganizationDashboard, TeamDashboard and ProjectDashboard). Members of the organization,
//! team or project only: an unknown id is 404, a stranger 403. Everything is counted from what is
//! stored; nothing is kept as a counter.
//!
//! A project is "active" unless it is `completed`, `cancelled` or on hold; "completed" is the status
//! `completed`. Storage has no quota in flux, so `storageLimit` is `null`.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::accounts::organizations::links;
use crate::accounts::teams::{group_and_member_as, Noun};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::schema::{
    files, group_members, organization_teams, project_activities, project_tasks, projects,
};
use crate::db::{Conn, DbError, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::membership;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/organizations/{id}/stats", web::get().to(organization))
        .route("/teams/{id}/stats", web::get().to(team))
        .route("/projects/{id}/stats", web::get().to(project));
}

fn access_denied() -> ApiError {
    ApiError::message(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "Access denied")
}

fn is_active(status: &str) -> bool {
    !matches!(status, "completed" | "cancelled" | "on_hold" | "on-hold")
}

/// `(id, status)` of the projects that sit in any of `groups`.
async fn projects_in(
    conn: &mut Conn<'_>,
    groups: &[String],
) -> Result<Vec<(String, String)>, DbError> {
    Ok(crate::db!(conn, |c| {
        projects::table
            .filter(projects::group_id.eq_any(groups))
            .select((projects::id, projects::status))
            .load(c)
            .await
    })?)
}

/// How many files the projects hold, and their bytes. Sizes are summed here: `SUM(bigint)` is
/// `numeric` on PostgreSQL and `integer` on SQLite.
async fn files_of(conn: &mut Conn<'_>, project_ids: &[String]) -> Result<(usize, i64), DbError> {
    if project_ids.is_empty() {
        return Ok((0, 0));
    }
    let sizes: Vec<i64> = crate::db!(conn, |c| {
        files::table
            .filter(files::project_id.eq_any(project_ids))
            .select(files::size)
            .load(c)
            .await
    })?;
    Ok((sizes.len(), sizes.iter().sum()))
}

async fn member_ids(conn: &mut Conn<'_>, groups: &[String]) -> Result<BTreeSet<String>, DbError> {
    let ids: Vec<String> = crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::group_id.eq_any(groups))
            .select(group_members::user_id)
            .load(c)
            .await
    })?;
    Ok(ids.into_iter().collect())
}

fn project_counts(list: &[(String, String)]) -> (Vec<String>, usize, usize) {
    let ids = list.iter().map(|(id, _)| id.clone()).collect();
    let active = list.iter().filter(|(_, s)| is_active(s)).count();
    let completed = list.iter().filter(|(_, s)| s == "completed").count();
    (ids, active, completed)
}

async fn organization(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving organization statistics";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let id = path.into_inner();
    let (_, member) = group_and_member_as(&mut conn, &id, &user.id, Noun::Organization)
        .await
        .map_err(|e| e.into_api(fail))?;
    if member.is_none() {
        return Err(access_denied());
    }
    let body = async {
        let teams = links::teams_of(&mut conn, &id).await?;
        let mut groups: Vec<String> = teams.iter().map(|t| t.id.clone()).collect();
        groups.push(id.clone());
        let members = member_ids(&mut conn, &groups).await?;
        let list = projects_in(&mut conn, &groups).await?;
        let (ids, active, completed) = project_counts(&list);
        let (total_files, bytes) = files_of(&mut conn, &ids).await?;
        Ok::<_, DbError>(json!({
            "totalMembers": members.len(),
            "totalTeams": teams.len(),
            "totalProjects": ids.len(),
            "totalFiles": total_files,
            "storageUsed": bytes,
            "storageLimit": null,
            "activeProjects": active,
            "completedProjects": completed,
        }))
    }
    .await
    .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(body))
}

async fn team(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving team statistics";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let id = path.into_inner();
    let (_, member) = group_and_member_as(&mut conn, &id, &user.id, Noun::Team)
        .await
        .map_err(|e| e.into_api(fail))?;
    if member.is_none() {
        return Err(access_denied());
    }
    let body = async {
        let groups = [id.clone()];
        let members = member_ids(&mut conn, &groups).await?;
        let list = projects_in(&mut conn, &groups).await?;
        let (ids, active, completed) = project_counts(&list);
        let (total_files, _) = files_of(&mut conn, &ids).await?;
        let organizations: i64 = crate::db!(conn, |c| {
            organization_teams::table
                .filter(organization_teams::team_id.eq(&id))
                .count()
                .get_result(c)
                .await
        })?;
        Ok::<_, DbError>(json!({
            "totalMembers": members.len(),
            "totalProjects": ids.len(),
            "totalOrganizations": organizations,
            "totalFiles": total_files,
            "activeProjects": active,
            "completedProjects": completed,
            "crossOrganizationalProjects": 0,
        }))
    }
    .await
    .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(body))
}

async fn project(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving project statistics";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let id = path.into_inner();
    let (row, _) =
        crate::accounts::projects::project_for_member(&mut conn, &id, &user.id, access_denied)
            .await
            .map_err(|e| e.into_api(fail))?;
    let body = async {
        let ids = [id.clone()];
        let members = membership::project_members_of(&mut conn, &ids).await?;
        let (total_files, bytes) = files_of(&mut conn, &ids).await?;
        let statuses: Vec<String> = crate::db!(conn, |c| {
            project_tasks::table
                .filter(project_tasks::project_id.eq(&id))
                .select(project_tasks::status)
                .load(c)
                .await
        })?;
        let done = statuses.iter().filter(|s| *s == "completed").count();
        let completion = if statuses.is_empty() {
            0
        } else {
            (done * 100 + statuses.len() / 2) / statuses.len()
        };
        let last: Option<Timestamp> = crate::db!(conn, |c| {
            project_activities::table
                .filter(project_activities::project_id.eq(&id))
                .order(project_activities::created_at.desc())
                .select(project_activities::created_at)
                .first(c)
                .await
                .optional()
        })?;
        Ok::<_, DbError>(json!({
            "totalMembers": members.len(),
            "totalFiles": total_files,
            "totalFileSize": bytes,
            "totalTasks": statuses.len(),
            "completedTasks": done,
            "completionPercentage": completion,
            "lastActivity": last.unwrap_or(row.updated_at),
        }))
    }
    .await
    .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(body))
}
