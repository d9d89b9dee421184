//! Member lists as the frontend's dashboards read them (`OrganizationContext.getTeamMembers`,
//! `getOrganizationMembers`, `getProjectMembers`): a bare array of
//! `{id, userId, <scope>Id, name, email, role, joinedAt, invitedBy, isActive}`. Members only; the list
//! itself comes from [`crate::membership`], this file adds who each user is.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use super::{group_and_member_as, Noun};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::schema::users;
use crate::db::{Conn, DbError, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::membership::{self, Member};

/// One row of a member list. `id` is the user's id too: a membership has no id of its own.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RosterEntry {
    pub id: String,
    pub user_id: String,
    #[serde(flatten)]
    pub scope: HashMap<&'static str, String>,
    pub name: String,
    pub email: String,
    pub role: String,
    pub joined_at: Timestamp,
    pub invited_by: Option<String>,
    pub is_active: bool,
}

/// `members` of the scope named `key` (`teamId`, `organizationId`, `projectId`) = `scope_id`, with
/// each user's name and e-mail.
pub(crate) async fn roster(
    conn: &mut Conn<'_>,
    key: &'static str,
    scope_id: &str,
    members: Vec<Member>,
) -> Result<Vec<RosterEntry>, DbError> {
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    let people: Vec<(String, String, String)> = if ids.is_empty() {
        Vec::new()
    } else {
        crate::db!(conn, |c| {
            users::table
                .filter(users::id.eq_any(&ids))
                .select((users::id, users::name, users::email))
                .load(c)
                .await
        })?
    };
    let people: HashMap<String, (String, String)> = people
        .into_iter()
        .map(|(id, name, email)| (id, (name, email)))
        .collect();
    Ok(members
        .into_iter()
        .map(|m| {
            let (name, email) = people.get(&m.user_id).cloned().unwrap_or_default();
            RosterEntry {
                id: m.user_id.clone(),
                user_id: m.user_id,
                scope: HashMap::from([(key, scope_id.to_owned())]),
                name,
                email,
                role: m.role,
                joined_at: m.joined_at,
                invited_by: None,
                is_active: true,
            }
        })
        .collect())
}

/// `GET /teams/{id}/members` and `GET /organizations/{id}/members`: members only (403 otherwise).
pub(crate) async fn group_roster(
    state: &AccountsState,
    user: &AuthUser,
    id: &str,
    noun: Noun,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving members";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (_, member) = group_and_member_as(&mut conn, id, &user.id, noun)
        .await
        .map_err(|e| e.into_api(fail))?;
    if member.is_none() {
        return Err(ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Access denied",
        ));
    }
    let rows = super::store::members_of(&mut conn, &[id.to_owned()])
        .await
        .map_err(db_fail(fail))?;
    let members = rows
        .into_iter()
        .map(|m| Member {
            user_id: m.user_id,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect();
    let key = match noun {
        Noun::Team => "teamId",
        Noun::Organization => "organizationId",
    };
    let list = roster(&mut conn, key, id, members)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(list))
}

pub(super) async fn team_members(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    group_roster(&state, &user, &path, Noun::Team).await
}

/// The members of project `id` (explicit and through its team), for a member of it.
pub(crate) async fn project_roster(
    conn: &mut Conn<'_>,
    id: &str,
) -> Result<Vec<RosterEntry>, DbError> {
    let members = membership::project_members_of(conn, &[id.to_owned()])
        .await?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    roster(conn, "projectId", id, members).await
}
