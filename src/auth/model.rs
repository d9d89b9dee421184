//! User rows and the wire shapes built from them (CONTRACT §3 "Shared shapes").

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::users;
use crate::db::{Json, Timestamp};

/// Everything the API needs of a user; the lockout columns stay out.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub password_scheme: Option<String>,
    pub user_type: String,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub preferences: Json,
    pub google_sub: Option<String>,
    pub email_verified: bool,
    pub is_active: bool,
    pub last_login_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub password_scheme: Option<String>,
    pub user_type: String,
    pub avatar_url: Option<String>,
    pub preferences: Json,
    pub google_sub: Option<String>,
    pub email_verified: bool,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl NewUser {
    pub fn new(email: String, name: String, user_type: &str) -> NewUser {
        let now = crate::db::now();
        NewUser {
            id: crate::db::new_id(),
            email,
            name,
            password_hash: None,
            password_scheme: None,
            user_type: user_type.to_owned(),
            avatar_url: None,
            preferences: Json(serde_json::json!({})),
            google_sub: None,
            email_verified: false,
            is_active: true,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The canonical user object: the legacy DB-mode keys minus `googleId`, plus `avatar` (CONTRACT §3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub user_type: String,
    pub avatar: Option<String>,
    #[serde(rename = "avatar_url")]
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub timezone: Option<String>,
    pub preferences: serde_json::Value,
    pub email_verified: bool,
    pub is_active: bool,
    pub last_login: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<&UserRow> for PublicUser {
    fn from(u: &UserRow) -> Self {
        PublicUser {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            user_type: u.user_type.clone(),
            avatar: u.avatar_url.clone(),
            avatar_url: u.avatar_url.clone(),
            phone: u.phone.clone(),
            timezone: u.timezone.clone(),
            preferences: u.preferences.0.clone(),
            email_verified: u.email_verified,
            is_active: u.is_active,
            last_login: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What search and lookup show of other users (CONTRACT §4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub id: String,
    pub name: String,
    pub email: String,
    pub avatar: Option<String>,
    pub user_type: String,
}

impl From<&UserRow> for UserSummary {
    fn from(u: &UserRow) -> Self {
        UserSummary {
            id: u.id.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            avatar: u.avatar_url.clone(),
            user_type: u.user_type.clone(),
        }
    }
}
