//! User management (CONTRACT §4): own profile and password, search and lookup, admin update/delete.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::auth::model::{PublicUser, UserRow, UserSummary};
use crate::auth::password::{self, SCHEME_ARGON2};
use crate::auth::session::hash_token;
use crate::auth::store;
use crate::db::schema::users;
use crate::db::{like_contains, lower, Json, LIKE_ESCAPE};
use crate::error::{ApiError, ErrorCode};
use crate::input::{field_error, MAX_USER_NAME_CHARS};
use crate::web::paging::PageQuery;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/me")
            .route(web::get().to(get_me))
            .route(web::patch().to(update_me)),
    )
    .route("/auth/profile", web::put().to(update_me))
    .route("/auth/change-password", web::post().to(change_password))
    .route("/users", web::get().to(search))
    .service(
        web::resource("/users/{userId}")
            .route(web::get().to(lookup))
            .route(web::patch().to(admin_update))
            .route(web::delete().to(admin_delete)),
    );
}

fn user_not_found() -> ApiError {
    ApiError::with_body(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        json!({"success": false, "error": "User not found", "code": "USER_NOT_FOUND"}),
    )
}

async fn load_active(state: &AccountsState, id: &str) -> Result<UserRow, ApiError> {
    store::user_by_id(&state.db, id)
        .await
        .map_err(|e| ApiError::storage("Server error", e))?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::not_found("User not found"))
}

async fn get_me(state: web::Data<AccountsState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let row = load_active(&state, &user.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": PublicUser::from(&row) })))
}

/// `email`, `userType` and `password` are named so that they can be refused explicitly.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBody {
    name: Option<String>,
    #[serde(rename = "avatar_url", alias = "avatarUrl", alias = "avatar")]
    avatar_url: Option<String>,
    phone: Option<String>,
    timezone: Option<String>,
    preferences: Option<serde_json::Value>,
    email: Option<serde_json::Value>,
    user_type: Option<serde_json::Value>,
    password: Option<serde_json::Value>,
}

const MAX_PREFERENCES_BYTES: usize = 16 * 1024;

#[derive(Debug, AsChangeset, Default)]
#[diesel(table_name = users)]
struct ProfileChanges {
    name: Option<String>,
    avatar_url: Option<String>,
    phone: Option<String>,
    timezone: Option<String>,
    preferences: Option<Json>,
}

fn validate_profile(body: ProfileBody) -> Result<ProfileChanges, ApiError> {
    for (present, field) in [
        (body.email.is_some(), "email"),
        (body.user_type.is_some(), "userType"),
        (body.password.is_some(), "password"),
    ] {
        if present {
            return Err(field_error("This field cannot be changed here", field));
        }
    }
    let mut changes = ProfileChanges::default();
    if let Some(name) = body.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_USER_NAME_CHARS {
            return Err(field_error("Name must be 1 to 255 characters long", "name"));
        }
        changes.name = Some(name.to_owned());
    }
    if let Some(url) = body.avatar_url {
        let url = url.trim();
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.len() > 2048 || url.chars().any(char::is_whitespace) {
            return Err(field_error(
                "Avatar must be an http(s) URL of at most 2048 characters",
                "avatar_url",
            ));
        }
        changes.avatar_url = Some(url.to_owned());
    }
    if let Some(phone) = body.phone {
        let phone = phone.trim();
        let ok = phone.chars().count() <= 20
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !ok {
            return Err(field_error(
                "Phone must be at most 20 digits, spaces or + - ( ) .",
                "phone",
            ));
        }
        changes.phone = Some(phone.to_owned());
    }
    if let Some(tz) = body.timezone {
        let tz = tz.trim();
        let ok = !tz.is_empty()
            && tz.len() <= 50
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
        if !ok {
            return Err(field_error(
                "Timezone must be an IANA name such as Europe/Paris",
                "timezone",
            ));
        }
        changes.timezone = Some(tz.to_owned());
    }
    if let Some(prefs) = body.preferences {
        if !prefs.is_object() {
            return Err(field_error("Preferences must be an object", "preferences"));
        }
        if serde_json::to_vec(&prefs).map_or(usize::MAX, |v| v.len()) > MAX_PREFERENCES_BYTES {
            return Err(field_error(
                "Preferences must be at most 16 KB",
                "preferences",
            ));
        }
        changes.preferences = Some(Json(prefs));
    }
    let empty = changes.name.is_none()
        && changes.avatar_url.is_none()
        && changes.phone.is_none()
        && changes.timezone.is_none()
        && changes.preferences.is_none();
    if empty {
        return Err(ApiError::bad_request(
            ErrorCode::MissingField,
            "No valid fields to update",
        ));
    }
    Ok(changes)
}

async fn update_me(
    state: web::Data<AccountsState>,
    user: AuthUser,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    let changes = validate_profile(body.into_inner())?;
    load_active(&state, &user.id).await?;
    let mut conn = state
        .db
        .get_write()
        .await
        .map_err(|e| ApiError::storage("Failed to update profile", e))?;
    let now = crate::db::now();
    let row = crate::db!(conn, |c| {
        diesel::update(users::table.find(&user.id))
            .set((&changes, users::updated_at.eq(now)))
            .returning(UserRow::as_returning())
            .get_result(c)
            .await
    })
    .map_err(|e| ApiError::storage("Failed to update profile", e.into()))?;
    tracing::info!(user_id = %user.id, "profile updated");
    Ok(HttpResponse::Ok().json(json!({ "user": PublicUser::from(&row) })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
    /// The caller's own refresh token, kept alive while every other session is revoked.
    refresh_token: Option<String>,
}

/// `legacy` is the `code` the frontend reads; `code` the stable one.
fn change_error(status: StatusCode, code: ErrorCode, error: &str, legacy: &str) -> ApiError {
    ApiError::with_body(
        status,
        code,
        json!({"success": false, "error": error, "message": error, "code": legacy}),
    )
}

async fn change_password(
    state: web::Data<AccountsState>,
    user: AuthUser,
    body: web::Json<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Failed to change password";
    let body = body.into_inner();
    let (Some(current), Some(new)) = (
        body.current_password.filter(|p| !p.is_empty()),
        body.new_password.filter(|p| !p.is_empty()),
    ) else {
        return Err(change_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingField,
            "Current password and new password are required",
            "AUTH_MISSING_FIELDS",
        ));
    };
    if let Some(text) = password::policy_error(&new) {
        return Err(change_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            text,
            "AUTH_WEAK_PASSWORD",
        ));
    }
    let row = load_active(&state, &user.id).await?;
    let Some(stored) = row.password_hash.clone() else {
        return Err(change_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            "This account signs in with Google and has no password",
            "AUTH_NO_PASSWORD",
        ));
    };
    if current.chars().count() > password::MAX_PASSWORD_CHARS {
        return Err(change_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "Current password is incorrect",
            "AUTH_INVALID_PASSWORD",
        ));
    }
    let passwords = &state.passwords;
    let verdict = passwords
        .verify(current, stored, row.password_scheme.clone())
        .await
        .map_err(|e| ApiError::internal(FAILED, e))?;
    if !verdict.is_match() {
        tracing::info!(user_id = %user.id, "password change refused: wrong current password");
        return Err(change_error(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "Current password is incorrect",
            "AUTH_INVALID_PASSWORD",
        ));
    }
    let hash = passwords
        .hash(new)
        .await
        .map_err(|e| ApiError::internal(FAILED, e))?;
    store::set_password(&state.db, &user.id, &hash, SCHEME_ARGON2)
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?;
    let keep = match body
        .refresh_token
        .filter(|t| !t.is_empty() && t.len() <= 256)
    {
        Some(token) => store::session_by_hash(&state.db, &hash_token(&token))
            .await
            .map_err(|e| ApiError::storage(FAILED, e))?
            .filter(|s| s.user_id == user.id && s.revoked_at.is_none())
            .map(|s| s.family_id),
        None => None,
    };
    let revoked = store::revoke_all(&state.db, &user.id, keep.as_deref())
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?;
    tracing::info!(user_id = %user.id, revoked, "password changed; other sessions revoked");
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "message": "Password changed successfully"})))
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    search: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn search(
    state: web::Data<AccountsState>,
    _user: AuthUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Failed to search users";
    let query = query.into_inner();
    let page = query.page.resolve(50);
    let needle: String = query
        .search
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect::<String>()
        .to_lowercase();
    let pattern = like_contains(&needle);
    let mut conn = state
        .db
        .get_read()
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?;
    let matches = || {
        users::is_active.eq(true).and(
            lower(users::name)
                .like(pattern.clone())
                .escape(LIKE_ESCAPE)
                .or(users::email.like(pattern.clone()).escape(LIKE_ESCAPE)),
        )
    };
    let limit = i64::from(page.limit);
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    let rows = crate::db!(conn, |c| {
        users::table
            .filter(matches())
            .order((users::name.asc(), users::id.asc()))
            .limit(limit)
            .offset(offset)
            .select(UserRow::as_select())
            .load(c)
            .await
    })
    .map_err(|e| ApiError::storage(FAILED, e.into()))?;
    let total: i64 = crate::db!(conn, |c| {
        users::table.filter(matches()).count().get_result(c).await
    })
    .map_err(|e| ApiError::storage(FAILED, e.into()))?;
    let users: Vec<UserSummary> = rows.iter().map(UserSummary::from).collect();
    Ok(HttpResponse::Ok().json(json!({
        "users": users,
        "total": total,
        "page": page.page,
        "limit": page.limit,
    })))
}

async fn lookup(
    state: web::Data<AccountsState>,
    _user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let row = store::user_by_id(&state.db, &id)
        .await
        .map_err(|e| ApiError::storage("Failed to get user", e))?
        .filter(|u| u.is_active)
        .ok_or_else(user_not_found)?;
    Ok(HttpResponse::Ok().json(json!({ "user": UserSummary::from(&row) })))
}

async fn require_admin(state: &AccountsState, user: &AuthUser) -> Result<(), ApiError> {
    let admin = crate::auth::admin::is_active_admin(&state.db, user)
        .await
        .map_err(|e| ApiError::storage("Server error", e))?;
    if admin {
        Ok(())
    } else {
        Err(ApiError::with_body(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            json!({"success": false, "error": "Admin access required", "code": "USER_ADMIN_REQUIRED"}),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUpdateBody {
    name: Option<String>,
    user_type: Option<String>,
    is_active: Option<bool>,
}

#[derive(Debug, AsChangeset, Default)]
#[diesel(table_name = users)]
struct AdminChanges {
    name: Option<String>,
    user_type: Option<String>,
    is_active: Option<bool>,
}

async fn admin_update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<AdminUpdateBody>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Failed to update user";
    require_admin(&state, &user).await?;
    let id = path.into_inner();
    let body = body.into_inner();
    let mut changes = AdminChanges::default();
    if let Some(name) = body.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_USER_NAME_CHARS {
            return Err(field_error("Name must be 1 to 255 characters long", "name"));
        }
        changes.name = Some(name.to_owned());
    }
    if let Some(t) = body.user_type {
        if !matches!(t.as_str(), "client" | "designer" | "admin") {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "Invalid user type",
            ));
        }
        changes.user_type = Some(t);
    }
    changes.is_active = body.is_active;
    if changes.name.is_none() && changes.user_type.is_none() && changes.is_active.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::MissingField,
            "No valid fields to update",
        ));
    }
    // An admin cannot lock themselves out by accident.
    let demotes_self = id == user.id
        && (changes.is_active == Some(false)
            || changes.user_type.as_deref().is_some_and(|t| t != "admin"));
    if demotes_self {
        return Err(ApiError::bad_request(
            ErrorCode::Protected,
            "Admins cannot demote or deactivate themselves",
        ));
    }
    let deactivate = changes.is_active == Some(false);
    let mut conn = state
        .db
        .get_write()
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?;
    let now = crate::db::now();
    let row = crate::db!(conn, |c| {
        diesel::update(users::table.find(&id))
            .set((&changes, users::updated_at.eq(now)))
            .returning(UserRow::as_returning())
            .get_result(c)
            .await
            .optional()
    })
    .map_err(|e| ApiError::storage(FAILED, e.into()))?
    .ok_or_else(user_not_found)?;
    drop(conn);
    if deactivate {
        let revoked = store::revoke_all(&state.db, &id, None)
            .await
            .map_err(|e| ApiError::storage(FAILED, e))?;
        tracing::info!(target_user = %id, revoked, "user deactivated; sessions revoked");
    }
    tracing::info!(admin = %user.id, target_user = %id, path = %req.path(), "user updated by admin");
    Ok(HttpResponse::Ok().json(json!({ "user": PublicUser::from(&row) })))
}

async fn admin_delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    const FAILED: &str = "Failed to delete user";
    require_admin(&state, &user).await?;
    let id = path.into_inner();
    if id == user.id {
        return Err(ApiError::bad_request(
            ErrorCode::Protected,
            "Admins cannot delete themselves",
        ));
    }
    let mut conn = state
        .db
        .get_write()
        .await
        .map_err(|e| ApiError::storage(FAILED, e))?;
    let n = crate::db!(conn, |c| {
        diesel::delete(users::table.find(&id)).execute(c).await
    })
    .map_err(|e| ApiError::storage(FAILED, e.into()))?;
    if n == 0 {
        return Err(user_not_found());
    }
    tracing::info!(admin = %user.id, target_user = %id, "user deleted by admin");
    Ok(HttpResponse::Ok().json(json!({"success": true, "message": "User deleted successfully"})))
}
