//! Organizations (CONTRACT §5): the same stored record as a team (`groups`, kind `organization`), so
//! `GET /organizations` and `GET /teams` list each other's records, as in the original.
//!
//! An organization's teams are team records linked to it (`organization_teams`); its projects are
//! the projects of the organization record itself and of its teams. See [`nested`].

pub(crate) mod links;
mod nested;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::teams::model::{
    GroupRow, OrgSummary, KIND_ORGANIZATION, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, ROLE_ADMIN,
};
use super::teams::{create_group, store, team_member, GroupBody};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::{now, Conn, DbError};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};
use crate::input::{
    description_field, description_update, name_too_long, required_name, text_field,
};
use crate::web::paging::{PageQuery, MAX_LIMIT};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/organizations", web::get().to(list))
        .route("/organizations", web::post().to(create))
        .route("/organizations/{id}", web::put().to(update))
        .route("/organizations/{id}", web::delete().to(delete));
    nested::routes(cfg);
}

fn org_not_found() -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "Organization not found",
    )
}

async fn summary(
    conn: &mut Conn<'_>,
    group: GroupRow,
    role: String,
) -> Result<OrgSummary, DbError> {
    let member_count = store::member_count(conn, &group.id).await?;
    Ok(OrgSummary {
        id: group.id,
        name: group.name,
        description: group.description.unwrap_or_default(),
        role,
        created_at: group.created_at,
        member_count,
    })
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.resolve(MAX_LIMIT);
    let fail = "Failed to fetch organizations";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let groups = store::groups_of(&mut conn, &user.id, page)
        .await
        .map_err(db_fail(fail))?;
    let ids: Vec<String> = groups.iter().map(|(g, _)| g.id.clone()).collect();
    let counts: std::collections::HashMap<String, i64> = store::member_counts(&mut conn, &ids)
        .await
        .map_err(db_fail(fail))?
        .into_iter()
        .collect();
    let organizations: Vec<OrgSummary> = groups
        .into_iter()
        .map(|(group, role)| OrgSummary {
            member_count: counts.get(&group.id).copied().unwrap_or(0),
            id: group.id,
            name: group.name,
            description: group.description.unwrap_or_default(),
            role,
            created_at: group.created_at,
        })
        .collect();
    // Bare: OrganizationContext stores the body itself as the list (useOrganizations takes either).
    Ok(HttpResponse::Ok().json(organizations))
}

async fn create(
    state: web::Data<AccountsState>,
    user: AuthUser,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = required_name(body.name.as_deref(), MAX_NAME_CHARS, "Organization")?;
    let description = description_field(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    // The creator is `admin` as in the original; it counts as owner (see `GroupRow::is_owner_equivalent`).
    let group = create_group(
        &state,
        &user,
        KIND_ORGANIZATION,
        name,
        description,
        ROLE_ADMIN,
    )
    .await
    .map_err(|e| e.into_api("Failed to create organization"))?;
    tracing::info!(organization = %group.id, user = %user.id, "organization created");
    let organization = OrgSummary {
        id: group.id,
        name: group.name,
        description: group.description.unwrap_or_default(),
        role: ROLE_ADMIN.into(),
        created_at: group.created_at,
        member_count: 1,
    };
    Ok(HttpResponse::Created().json(json!({ "organization": organization })))
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
        &name_too_long("Organization", MAX_NAME_CHARS),
    )?;
    let description = description_update(body.description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let id = path.into_inner();
    let user_id = user.id.clone();
    let organization = state
        .db
        .transaction(async move |mut conn| {
            let group = store::group(&mut conn, &id)
                .await?
                .ok_or_else(org_not_found)?;
            let member = team_member(&mut conn, &id, &user_id).await?;
            let Some(member) = member.filter(|m| group.can_manage(m)) else {
                return Err(ApiError::message(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "Permission denied",
                )
                .into());
            };
            let name = name.unwrap_or_else(|| group.name.clone());
            let description = match description {
                Some(d) if d.is_empty() => None,
                Some(d) => Some(d),
                None => group.description.clone(),
            };
            store::update_group(&mut conn, &id, &name, description.as_deref(), now()).await?;
            let group = store::group(&mut conn, &id)
                .await?
                .ok_or_else(org_not_found)?;
            Ok::<_, TxError>(summary(&mut conn, group, member.role).await?)
        })
        .await
        .map_err(|e| e.into_api("Failed to update organization"))?;
    // Bare: useOrganizations stores the body itself as the organization (CONTRACT §5).
    Ok(HttpResponse::Ok().json(organization))
}

async fn delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let org_id = id.clone();
    let user_id = user.id.clone();
    state
        .db
        .transaction(async move |mut conn| {
            let group = store::group(&mut conn, &id)
                .await?
                .ok_or_else(org_not_found)?;
            let member = team_member(&mut conn, &id, &user_id).await?;
            if !member.is_some_and(|m| group.is_owner_equivalent(&m)) {
                return Err(ApiError::message(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "Permission denied",
                )
                .into());
            }
            store::delete_group(&mut conn, &id).await?;
            Ok::<_, TxError>(())
        })
        .await
        .map_err(|e| e.into_api("Failed to delete organization"))?;
    tracing::info!(organization = %org_id, user = %user.id, "organization deleted");
    Ok(HttpResponse::Ok().json(json!({"message": "Organization deleted successfully"})))
}
