//! Admins: `flux user create-admin`, the only way to make one (public signup refuses `admin`), and the
//! one check every admin-only route runs (OPERATOR §0).

use crate::auth::model::{NewUser, UserRow};
use crate::auth::password::{self, Passwords, SCHEME_ARGON2};
use crate::auth::store;
use crate::config::Settings;
use crate::db::{DbError, DbOptions, Schema};
use crate::input::{is_email, normalize_email};

#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user with the e-mail {0} already exists")]
    Exists(String),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Hash(#[from] password::PasswordError),
}

/// Creates an admin account and returns it. The schema must be current (`flux migrate run`, or the
/// embedded SQLite default, which this migrates as a server start would).
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    name: Option<&str>,
    password: &str,
) -> Result<UserRow, CreateAdminError> {
    let email = normalize_email(email);
    if !is_email(&email) {
        return Err(CreateAdminError::Invalid(format!(
            "not an e-mail address: {email:?}"
        )));
    }
    if let Some(text) = password::policy_error(password) {
        return Err(CreateAdminError::Invalid(text.to_owned()));
    }
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("admin"))
        .to_owned();
    let (db, _) = crate::db::open(
        &DbOptions::from(&settings.database),
        Schema::on_start(settings),
    )
    .await?;
    if store::user_by_email(&db, &email).await?.is_some() {
        return Err(CreateAdminError::Exists(email));
    }
    let hash = Passwords::new(&settings.auth)
        .hash(password.to_owned())
        .await?;
    let mut new = NewUser::new(email.clone(), name, "admin");
    new.password_hash = Some(hash);
    new.password_scheme = Some(SCHEME_ARGON2.to_owned());
    new.email_verified = true;
    match store::insert_user(&db, new).await {
        Ok(user) => Ok(user),
        Err(DbError::UniqueViolation { .. }) => Err(CreateAdminError::Exists(email)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `user` is an admin now: a token saying `userType: "admin"` is not enough, the stored
/// account must still be an active admin (a demoted admin's token lives on for minutes).
pub async fn is_active_admin(
    db: &crate::db::Db,
    user: &crate::auth::AuthUser,
) -> Result<bool, DbError> {
    Ok(user.is_admin()
        && store::user_by_id(db, &user.id)
            .await?
            .is_some_and(|u| u.is_active && u.user_type == "admin"))
}

/// The admin gate of the operator surface (admin API, `/monitoring` controls, MCP queries, GitHub
/// auto-sync): no token → 401 `AUTH_REQUIRED`; a refused token or a non-admin → 403
/// `ADMIN_REQUIRED`, recorded as `unauthorized_admin_access`. `caller` is the route's
/// `Result<AuthUser, ApiError>` extraction, so the route decides nothing itself.
pub async fn require_active_admin(
    db: &crate::db::Db,
    req: &actix_web::HttpRequest,
    caller: Result<crate::auth::AuthUser, crate::error::ApiError>,
) -> Result<crate::auth::AuthUser, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorCode};
    use actix_web::http::StatusCode;
    let user = match caller {
        Ok(user) => user,
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            return Err(ApiError::with_body(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MissingToken,
                serde_json::json!({"success": false, "message": "Authentication required", "code": "AUTH_REQUIRED"}),
            ))
        }
        Err(e) if e.status() == StatusCode::FORBIDDEN => return Err(admin_denied(req, None)),
        Err(e) => return Err(e),
    };
    let admin = is_active_admin(db, &user)
        .await
        .map_err(|e| ApiError::storage("Server error", e))?;
    if admin {
        Ok(user)
    } else {
        Err(admin_denied(req, Some(&user.id)))
    }
}

/// 403 `ADMIN_REQUIRED`, and the attempt recorded.
fn admin_denied(req: &actix_web::HttpRequest, user_id: Option<&str>) -> crate::error::ApiError {
    use crate::web::guard::{note, SecurityNote};
    tracing::warn!(
        target: "flux::security",
        event_type = "unauthorized_admin_access",
        user_id,
        path = req.path(),
        "admin route refused"
    );
    note(
        req,
        SecurityNote::new("unauthorized_admin_access", "medium").user(user_id),
    );
    admin_required()
}

/// The body every admin-only route refuses with.
pub fn admin_required() -> crate::error::ApiError {
    crate::error::ApiError::with_body(
        actix_web::http::StatusCode::FORBIDDEN,
        crate::error::ErrorCode::AdminRequired,
        serde_json::json!({"success": false, "message": "Admin access required", "code": "ADMIN_REQUIRED"}),
    )
}
