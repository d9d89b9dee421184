//! `flux user create-admin`: the only way to make an admin (public signup refuses `admin`).

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
