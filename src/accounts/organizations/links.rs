//! Queries of the organization ↔ team links and of the projects that sit in a set of groups.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::accounts::projects::store::ProjectRow;
use crate::accounts::teams::model::GroupRow;
use crate::db::schema::{groups, organization_teams, projects};
use crate::db::{Conn, DbError};
use crate::input::usable_id;
use crate::web::paging::Page;

pub async fn link(
    conn: &mut Conn<'_>,
    organization_id: &str,
    team_id: &str,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::insert_into(organization_teams::table)
            .values((
                organization_teams::team_id.eq(team_id),
                organization_teams::organization_id.eq(organization_id),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// The teams of an organization, oldest first.
pub async fn teams_of(
    conn: &mut Conn<'_>,
    organization_id: &str,
) -> Result<Vec<GroupRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        groups::table
            .inner_join(organization_teams::table.on(organization_teams::team_id.eq(groups::id)))
            .filter(organization_teams::organization_id.eq(organization_id))
            .order((groups::created_at.asc(), groups::id.asc()))
            .select(GroupRow::as_select())
            .load(c)
            .await
    })?)
}

/// True when `team_id` is one of the organization's teams.
pub async fn is_team_of(
    conn: &mut Conn<'_>,
    organization_id: &str,
    team_id: &str,
) -> Result<bool, DbError> {
    if !usable_id(team_id) {
        return Ok(false);
    }
    let n: i64 = crate::db!(conn, |c| {
        organization_teams::table
            .filter(organization_teams::team_id.eq(team_id))
            .filter(organization_teams::organization_id.eq(organization_id))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(n > 0)
}

/// Projects that sit in any of `group_ids`, newest first.
pub async fn projects_in(
    conn: &mut Conn<'_>,
    group_ids: &[String],
    page: Page,
) -> Result<Vec<ProjectRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        projects::table
            .filter(projects::group_id.eq_any(group_ids))
            .order((projects::created_at.desc(), projects::id.desc()))
            .limit(i64::from(page.limit))
            .offset(page.offset as i64)
            .select(ProjectRow::as_select())
            .load(c)
            .await
    })?)
}
