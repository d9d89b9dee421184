//! Teams (CONTRACT §6): create, list, read, update, invite, accept an invite, remove a member, change a
//! role. Organizations (§5) are the same stored record; see `accounts::organizations`.
//!
//! Hardening over the original (CONTRACT §14.2): invites carry `admin` or `member` only, a team never
//! loses its last owner, an organization creator's `admin` counts as owner, and only owners and admins
//! see pending invite e-mails.

pub mod model;
pub mod roster;
pub mod store;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use self::model::{
    team_view, GroupRow, InviteRow, MemberRow, Team, TeamMember, KIND_TEAM, MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS, ROLE_ADMIN, ROLE_MEMBER, ROLE_OWNER,
};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::{now, Conn};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};
use crate::input::{
    description_field, description_update, name_too_long, plausible_email, required_name,
    text_field,
};
use crate::membership::{self, Scope};
use crate::web::paging::{PageQuery, MAX_LIMIT};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/teams", web::post().to(create))
        .route("/teams", web::get().to(list))
        .route("/teams/{id}", web::get().to(get))
        .route("/teams/{id}", web::put().to(update))
        .route("/teams/{id}", web::delete().to(delete))
        .route("/teams/{id}/invite", web::post().to(invite))
        .route("/teams/{id}/accept-invite", web::post().to(accept_invite))
        .route("/teams/{id}/members", web::get().to(roster::team_members))
        .route(
            "/teams/{id}/members/{user_id}",
            web::delete().to(remove_member),
        )
        .route("/teams/{id}/members/{user_id}", web::put().to(change_role));
}

fn team_not_found() -> ApiError {
    ApiError::message(StatusCode::NOT_FOUND, ErrorCode::NotFound, "Team not found")
}

/// What a route calls the group in its answers: teams and organizations share the record and the
/// rules (invites, leaving, the last owner), only the words differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Noun {
    Team,
    Organization,
}

impl Noun {
    fn word(self) -> &'static str {
        match self {
            Noun::Team => "team",
            Noun::Organization => "organization",
        }
    }

    pub(crate) fn not_found(self) -> ApiError {
        match self {
            Noun::Team => team_not_found(),
            Noun::Organization => ApiError::message(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "Organization not found",
            ),
        }
    }

    fn last_owner(self) -> ApiError {
        match self {
            Noun::Team => last_owner(),
            Noun::Organization => ApiError::message(
                StatusCode::BAD_REQUEST,
                ErrorCode::Protected,
                "An organization must keep at least one owner",
            ),
        }
    }
}

fn permission_denied() -> ApiError {
    ApiError::message(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "Permission denied",
    )
}

fn last_owner() -> ApiError {
    ApiError::message(
        StatusCode::BAD_REQUEST,
        ErrorCode::Protected,
        "A team must keep at least one owner",
    )
}

/// A team with its members and invites, as `viewer` may see it.
pub(crate) async fn load_team(
    conn: &mut Conn<'_>,
    group: GroupRow,
    viewer: &str,
) -> Result<Team, crate::db::DbError> {
    let ids = [group.id.clone()];
    let members = store::members_of(conn, &ids).await?;
    let invites = store::invites_of(conn, &ids).await?;
    Ok(team_view(group, members, invites, viewer))
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupBody {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Creates a team or an organization with its creator as the only member.
pub(crate) async fn create_group(
    state: &AccountsState,
    user: &AuthUser,
    kind: &str,
    name: String,
    description: Option<String>,
    creator_role: &str,
) -> Result<GroupRow, TxError> {
    let at = now();
    let group = GroupRow {
        id: crate::db::new_id(),
        kind: kind.to_owned(),
        name,
        description,
        created_by: Some(user.id.clone()),
        created_at: at,
        updated_at: at,
    };
    let creator = MemberRow {
        group_id: group.id.clone(),
        user_id: user.id.clone(),
        role: creator_role.to_owned(),
        joined_at: at,
    };
    let row = group.clone();
    state
        .db
        .transaction(async move |mut conn| {
            store::insert_group(&mut conn, &row, &creator).await?;
            Ok::<_, TxError>(())
        })
        .await?;
    Ok(group)
}

async fn create(
    state: web::Data<AccountsState>,
    user: AuthUser,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = required_name(body.name.as_deref(), MAX_NAME_CHARS, "Team")?;
    let description = description_field(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let group = create_group(&state, &user, KIND_TEAM, name, description, ROLE_OWNER)
        .await
        .map_err(|e| e.into_api("Error creating team"))?;
    let mut conn = state
        .db
        .get_read()
        .await
        .map_err(db_fail("Error creating team"))?;
    let team = load_team(&mut conn.as_conn(), group, &user.id)
        .await
        .map_err(db_fail("Error creating team"))?;
    tracing::info!(team = %team.id, user = %user.id, "team created");
    Ok(HttpResponse::Ok().json(json!({"message": "Team created successfully", "team": team})))
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.resolve(MAX_LIMIT);
    let fail = "Error retrieving teams";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let groups = store::groups_of(&mut conn, &user.id, page)
        .await
        .map_err(db_fail(fail))?;
    let ids: Vec<String> = groups.iter().map(|(g, _)| g.id.clone()).collect();
    let mut members = store::members_of(&mut conn, &ids)
        .await
        .map_err(db_fail(fail))?;
    let mut invites = store::invites_of(&mut conn, &ids)
        .await
        .map_err(db_fail(fail))?;
    let teams: Vec<Team> = groups
        .into_iter()
        .map(|(g, _)| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                members.drain(..).partition(|m| m.group_id == g.id);
            members = rest;
            let (inv, rest): (Vec<_>, Vec<_>) = invites.drain(..).partition(|i| i.group_id == g.id);
            invites = rest;
            team_view(g, mine, inv, &user.id)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "teams": teams })))
}

/// `user_id`'s membership of team `id` (decided by [`crate::membership`]).
pub(crate) async fn team_member(
    conn: &mut Conn<'_>,
    id: &str,
    user_id: &str,
) -> Result<Option<MemberRow>, crate::db::DbError> {
    Ok(membership::member(conn, Scope::Team(id), user_id)
        .await?
        .map(|m| MemberRow::of(id, m)))
}

/// The group and the caller's membership, or the route's 404.
async fn group_and_member(
    conn: &mut Conn<'_>,
    id: &str,
    user_id: &str,
) -> Result<(GroupRow, Option<MemberRow>), TxError> {
    group_and_member_as(conn, id, user_id, Noun::Team).await
}

pub(crate) async fn group_and_member_as(
    conn: &mut Conn<'_>,
    id: &str,
    user_id: &str,
    noun: Noun,
) -> Result<(GroupRow, Option<MemberRow>), TxError> {
    let group = store::group(conn, id)
        .await?
        .ok_or_else(|| noun.not_found())?;
    let member = team_member(conn, id, user_id).await?;
    Ok((group, member))
}

async fn get(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving team";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let (group, member) = group_and_member(&mut conn, &path, &user.id)
        .await
        .map_err(|e| e.into_api(fail))?;
    if member.is_none() {
        return Err(ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Access denied",
        ));
    }
    let team = load_team(&mut conn, group, &user.id)
        .await
        .map_err(db_fail(fail))?;
    Ok(HttpResponse::Ok().json(team))
}

async fn update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = text_field(
        body.name.as_deref(),
        MAX_NAME_CHARS,
        &name_too_long("Team", MAX_NAME_CHARS),
    )?;
    // An empty name keeps the old one; an empty description clears it (CONTRACT §6).
    let description = description_update(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let id = path.into_inner();
    let user_id = user.id.clone();
    let fail = "Error updating team";
    let team = state
        .db
        .transaction(async move |mut conn| {
            let (group, member) = group_and_member(&mut conn, &id, &user_id).await?;
            if !member.is_some_and(|m| group.can_manage(&m)) {
                return Err(permission_denied().into());
            }
            let name = name.unwrap_or_else(|| group.name.clone());
            let description = match description {
                Some(d) if d.is_empty() => None,
                Some(d) => Some(d),
                None => group.description.clone(),
            };
            store::update_group(&mut conn, &id, &name, description.as_deref(), now()).await?;
            let group = store::group(&mut conn, &id)
                .await?
                .ok_or_else(team_not_found)?;
            Ok::<_, TxError>(load_team(&mut conn, group, &user_id).await?)
        })
        .await
        .map_err(|e| e.into_api(fail))?;
    Ok(HttpResponse::Ok().json(team))
}

#[derive(Debug, Deserialize)]
pub(crate) struct InviteBody {
    pub email: Option<String>,
    pub role: Option<String>,
}

async fn invite(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let invite = send_invite(
        &state,
        &user,
        path.into_inner(),
        body.into_inner(),
        None,
        Noun::Team,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Invitation sent successfully",
        "invite": model::TeamInvite::from(invite),
    })))
}

/// Invites `body.email` to group `id` (owners and admins only), or refreshes the pending invite.
pub(crate) async fn send_invite(
    state: &AccountsState,
    user: &AuthUser,
    id: String,
    body: InviteBody,
    message: Option<String>,
    noun: Noun,
) -> Result<InviteRow, ApiError> {
    let raw = body.email.as_deref().map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingField,
            "Email is required",
        ));
    }
    let email = plausible_email(raw).ok_or_else(|| {
        ApiError::message(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            "Valid email is required",
        )
    })?;
    // Invites never mint owners (CONTRACT §14.2); ownership is handed over by a role change.
    let role = match body.role.as_deref().map(str::trim) {
        None | Some("") => ROLE_MEMBER.to_owned(),
        Some(r @ (ROLE_ADMIN | ROLE_MEMBER)) => r.to_owned(),
        Some(_) => {
            return Err(ApiError::message(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "Role must be admin or member",
            ))
        }
    };
    let user_id = user.id.clone();
    let invite = state
        .db
        .transaction(async move |mut conn| {
            let (group, member) = group_and_member_as(&mut conn, &id, &user_id, noun).await?;
            if !member.is_some_and(|m| group.can_manage(&m)) {
                return Err(permission_denied().into());
            }
            if let Some(invitee) = store::user_id_by_email(&mut conn, &email).await? {
                if team_member(&mut conn, &id, &invitee).await?.is_some() {
                    return Err(ApiError::message(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::AlreadyMember,
                        match noun {
                            Noun::Team => "User is already a team member",
                            Noun::Organization => "User is already an organization member",
                        },
                    )
                    .into());
                }
            }
            let at = now();
            if let Some(mut pending) = store::pending_invite(&mut conn, &id, &email).await? {
                store::refresh_invite(
                    &mut conn,
                    &pending.id,
                    &role,
                    &user_id,
                    at,
                    message.as_deref(),
                )
                .await?;
                pending.role = role;
                pending.message = message;
                pending.invited_by = Some(user_id);
                pending.invited_at = at;
                return Ok(pending);
            }
            let row = InviteRow {
                id: crate::db::new_id(),
                group_id: id,
                email,
                role,
                invited_by: Some(user_id),
                invited_at: at,
                status: "pending".into(),
                responded_at: None,
                message,
            };
            store::insert_invite(&mut conn, &row).await?;
            Ok::<_, TxError>(row)
        })
        .await
        .map_err(|e| e.into_api("Error sending invitation"))?;
    tracing::info!(group = %invite.group_id, invite = %invite.id, kind = noun.word(), "invite created");
    Ok(invite)
}

async fn accept_invite(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let user_id = user.id.clone();
    let token_email = user.email.to_lowercase();
    let team = state
        .db
        .transaction(async move |mut conn| {
            let group = store::group(&mut conn, &id)
                .await?
                .ok_or_else(team_not_found)?;
            // The stored address wins over the token's, which may predate an e-mail change.
            let email = store::user_email(&mut conn, &user_id)
                .await?
                .unwrap_or(token_email);
            let invite = store::pending_invite(&mut conn, &id, &email)
                .await?
                .ok_or_else(|| {
                    ApiError::message(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "Invitation not found",
                    )
                })?;
            let at = now();
            store::add_member(
                &mut conn,
                &MemberRow {
                    group_id: id.clone(),
                    user_id: user_id.clone(),
                    role: invite.role.clone(),
                    joined_at: at,
                },
            )
            .await?;
            store::mark_invite_accepted(&mut conn, &invite.id, at).await?;
            Ok::<_, TxError>(load_team(&mut conn, group, &user_id).await?)
        })
        .await
        .map_err(|e| e.into_api("Error accepting invitation"))?;
    tracing::info!(team = %team.id, user = %user.id, "team invite accepted");
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully joined the team", "team": team})))
}

/// `DELETE /teams/{id}`: owners only. Members, invites and team channels go with the team; its
/// projects stay with their explicit members (`projects.group_id` becomes NULL).
async fn delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let (team_id, user_id) = (id.clone(), user.id.clone());
    let former = state
        .db
        .transaction(async move |mut conn| {
            let (group, member) = group_and_member_as(&mut conn, &id, &user_id, Noun::Team).await?;
            if group.kind != KIND_TEAM {
                return Err(team_not_found().into());
            }
            if !member.is_some_and(|m| group.is_owner_equivalent(&m)) {
                return Err(permission_denied().into());
            }
            let former = store::members_of(&mut conn, std::slice::from_ref(&id)).await?;
            store::delete_group(&mut conn, &id).await?;
            Ok::<_, TxError>(former)
        })
        .await
        .map_err(|e| e.into_api("Error deleting team"))?;
    // The team's channels are gone: sockets still in their rooms leave them now.
    if let Some(departures) = &state.departures {
        for m in &former {
            departures.left(&m.user_id, Scope::Team(&team_id)).await;
        }
    }
    tracing::info!(team = %team_id, user = %user.id, "team deleted");
    Ok(HttpResponse::Ok().json(json!({"success": true, "message": "Team deleted successfully"})))
}

async fn remove_member(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, target) = path.into_inner();
    remove(&state, &user.id, id, target, Noun::Team).await?;
    Ok(HttpResponse::Ok().json(json!({"message": "Member removed successfully"})))
}

/// Removes `target` from group `id`: anyone may leave, owners and admins may remove others, owners
/// are removed only by leaving themselves, and the last owner never leaves.
pub(crate) async fn remove(
    state: &AccountsState,
    user_id: &str,
    id: String,
    target: String,
    noun: Noun,
) -> Result<(), ApiError> {
    let (group_id, removed) = (id.clone(), target.clone());
    let user_id = user_id.to_owned();
    state
        .db
        .transaction(async move |mut conn| {
            store::lock_group(&mut conn, &id).await?;
            let (group, member) = group_and_member_as(&mut conn, &id, &user_id, noun).await?;
            let is_self = target == user_id;
            let allowed = is_self || member.as_ref().is_some_and(|m| group.can_manage(m));
            if member.is_none() || !allowed {
                return Err(permission_denied().into());
            }
            let target_member = team_member(&mut conn, &id, &target).await?.ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "Member not found",
                )
            })?;
            if group.is_owner_equivalent(&target_member) {
                if !is_self {
                    return Err(ApiError::message(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::Protected,
                        "Cannot remove team owner",
                    )
                    .into());
                }
                if store::owner_count(&mut conn, &group).await? <= 1 {
                    return Err(noun.last_owner().into());
                }
            }
            store::remove_member(&mut conn, &id, &target).await?;
            Ok::<_, TxError>(())
        })
        .await
        .map_err(|e| e.into_api("Error removing member"))?;
    // Losing the team revokes its channels: sockets already in their rooms leave them now.
    if let Some(departures) = &state.departures {
        departures.left(&removed, Scope::Team(&group_id)).await;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct RoleBody {
    role: Option<String>,
}

async fn change_role(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
    body: web::Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let role = match body.into_inner().role.as_deref() {
        Some(r @ (ROLE_OWNER | ROLE_ADMIN | ROLE_MEMBER)) => r.to_owned(),
        _ => {
            return Err(ApiError::message(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "Valid role is required",
            ))
        }
    };
    let (id, target) = path.into_inner();
    let user_id = user.id.clone();
    let member = state
        .db
        .transaction(async move |mut conn| {
            store::lock_group(&mut conn, &id).await?;
            let (group, member) = group_and_member(&mut conn, &id, &user_id).await?;
            if !member.is_some_and(|m| group.is_owner_equivalent(&m)) {
                return Err(ApiError::message(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "Only team owner can change roles",
                )
                .into());
            }
            let mut target_member =
                team_member(&mut conn, &id, &target).await?.ok_or_else(|| {
                    ApiError::message(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "Member not found",
                    )
                })?;
            let was_owner = group.is_owner_equivalent(&target_member);
            target_member.role = role.clone();
            let stays_owner = group.is_owner_equivalent(&target_member);
            if was_owner && !stays_owner && store::owner_count(&mut conn, &group).await? <= 1 {
                return Err(last_owner().into());
            }
            store::set_role(&mut conn, &id, &target, &role).await?;
            Ok::<_, TxError>(target_member)
        })
        .await
        .map_err(|e| e.into_api("Error updating member role"))?;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Member role updated successfully",
        "member": TeamMember::from(member),
    })))
}
