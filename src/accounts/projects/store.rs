//! Queries of projects, their members and the conversation a project links to.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{project_members, projects};
use crate::db::{Conn, DbError, Timestamp};
use crate::input::usable_id;
use crate::web::paging::Page;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub group_id: Option<String>,
    pub status: String,
    pub priority: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub channel_id: Option<String>,
    pub channel_linked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = project_members)]
pub struct ProjectMemberRow {
    pub project_id: String,
    pub user_id: String,
    pub role: String,
    pub joined_at: Timestamp,
}

impl ProjectMemberRow {
    /// A project membership as [`crate::membership`] found it.
    pub fn of(project_id: &str, m: crate::membership::Member) -> ProjectMemberRow {
        ProjectMemberRow {
            project_id: project_id.to_owned(),
            user_id: m.user_id,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

pub async fn project(conn: &mut Conn<'_>, id: &str) -> Result<Option<ProjectRow>, DbError> {
    if !usable_id(id) {
        return Ok(None);
    }
    Ok(crate::db!(conn, |c| {
        projects::table
            .find(id)
            .select(ProjectRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Every member of each project, explicit and through the project's team (see [`crate::membership`]).
pub async fn members_of(
    conn: &mut Conn<'_>,
    project_ids: &[String],
) -> Result<Vec<ProjectMemberRow>, DbError> {
    Ok(crate::membership::project_members_of(conn, project_ids)
        .await?
        .into_iter()
        .map(|(id, m)| ProjectMemberRow::of(&id, m))
        .collect())
}

/// Projects `user_id` is a member of (explicitly or through a team), newest first.
pub async fn projects_of(
    conn: &mut Conn<'_>,
    user_id: &str,
    page: Page,
) -> Result<Vec<ProjectRow>, DbError> {
    let ids = crate::membership::projects_of_user(conn, user_id).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(crate::db!(conn, |c| {
        projects::table
            .filter(projects::id.eq_any(&ids))
            .order((projects::created_at.desc(), projects::id.desc()))
            .limit(i64::from(page.limit))
            .offset(page.offset as i64)
            .select(ProjectRow::as_select())
            .load(c)
            .await
    })?)
}

/// Removes the project; its members, tasks, milestones, activities and channels go with it
/// (`ON DELETE CASCADE`), its files stay with their owners.
pub async fn delete(conn: &mut Conn<'_>, id: &str) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::delete(projects::table.find(id)).execute(c).await
    })?;
    Ok(())
}

pub async fn insert(
    conn: &mut Conn<'_>,
    project: &ProjectRow,
    owner: &ProjectMemberRow,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::insert_into(projects::table)
            .values(project.clone())
            .execute(c)
            .await
    })?;
    crate::db!(conn, |c| {
        diesel::insert_into(project_members::table)
            .values(owner.clone())
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn update(conn: &mut Conn<'_>, project: &ProjectRow) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(projects::table.find(&project.id))
            .set((
                projects::name.eq(&project.name),
                projects::description.eq(&project.description),
                projects::status.eq(&project.status),
                projects::priority.eq(&project.priority),
                projects::updated_at.eq(project.updated_at),
                projects::channel_id.eq(&project.channel_id),
                projects::channel_linked_at.eq(project.channel_linked_at),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}
