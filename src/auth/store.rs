//! Queries of users and refresh tokens.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::auth::model::{NewUser, UserRow};
use crate::db::schema::{refresh_tokens, users};
use crate::db::{Db, DbError, Timestamp};

pub async fn user_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        users::table
            .find(id)
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// `email` must already be normalised.
pub async fn user_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn user_by_google_sub(db: &Db, sub: &str) -> Result<Option<UserRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        users::table
            .filter(users::google_sub.eq(sub))
            .select(UserRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn insert_user(db: &Db, user: NewUser) -> Result<UserRow, DbError> {
    let mut conn = db.get_write().await?;
    let row = crate::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values(&user)
            .returning(UserRow::as_returning())
            .get_result(c)
            .await
    })?;
    Ok(row)
}

pub async fn set_password(db: &Db, id: &str, hash: &str, scheme: &str) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    crate::db!(conn, |c| {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(Some(hash)),
                users::password_scheme.eq(Some(scheme)),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn touch_login(db: &Db, id: &str) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    crate::db!(conn, |c| {
        diesel::update(users::table.find(id))
            .set(users::last_login_at.eq(Some(now)))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Links a Google identity, only while the account has none (never overwrites another `googleId`).
/// Returns false when someone else's identity got there first.
pub async fn link_google(
    db: &Db,
    id: &str,
    sub: &str,
    picture: Option<&str>,
) -> Result<bool, DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    let n = crate::db!(conn, |c| {
        diesel::update(users::table.find(id).filter(users::google_sub.is_null()))
            .set((
                users::google_sub.eq(Some(sub)),
                users::email_verified.eq(true),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    if n == 1 {
        if let Some(picture) = picture {
            crate::db!(conn, |c| {
                diesel::update(users::table.find(id).filter(users::avatar_url.is_null()))
                    .set(users::avatar_url.eq(Some(picture)))
                    .execute(c)
                    .await
            })?;
        }
    }
    Ok(n == 1)
}

/// A refresh-token row as the session routes show it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub family_id: String,
    pub device_name: Option<String>,
    pub device_fingerprint: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub replaced_by: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub family_id: String,
    pub device_name: Option<String>,
    pub device_fingerprint: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
}

pub async fn insert_session(db: &Db, session: NewSession) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::insert_into(refresh_tokens::table)
            .values(&session)
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn session_by_hash(db: &Db, hash: &str) -> Result<Option<SessionRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(SessionRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// What a refresh did with the presented token.
#[derive(Debug)]
pub enum Rotation {
    Rotated,
    /// The token was already rotated or revoked by the time we got to it: treat as reuse.
    Lost,
}

/// Revokes `old` in favour of `new` (same family), atomically: of two concurrent refreshes of one
/// token, exactly one wins.
pub async fn rotate(db: &Db, old_id: String, new: NewSession) -> Result<Rotation, DbError> {
    db.transaction(async move |mut conn| {
        crate::db!(conn, |c| {
            diesel::insert_into(refresh_tokens::table)
                .values(&new)
                .execute(c)
                .await
        })?;
        let now = crate::db::now();
        let n = crate::db!(conn, |c| {
            diesel::update(
                refresh_tokens::table
                    .find(&old_id)
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set((
                refresh_tokens::revoked_at.eq(Some(now)),
                refresh_tokens::replaced_by.eq(Some(&new.id)),
                refresh_tokens::last_used_at.eq(now),
            ))
            .execute(c)
            .await
        })?;
        if n == 1 {
            Ok(Rotation::Rotated)
        } else {
            // Roll the new token back with the transaction.
            Err(DbError::NotFound)
        }
    })
    .await
    .or_else(|e| match e {
        DbError::NotFound => Ok(Rotation::Lost),
        e => Err(e),
    })
}

pub async fn revoke_family(db: &Db, family_id: &str) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    let n = crate::db!(conn, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(now)))
        .execute(c)
        .await
    })?;
    Ok(n)
}

pub async fn revoke_by_hash(db: &Db, hash: &str) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    let n = crate::db!(conn, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(hash))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(now)))
        .execute(c)
        .await
    })?;
    Ok(n)
}

/// Revokes every live token of a user, except the family of `keep_family` if given.
pub async fn revoke_all(
    db: &Db,
    user_id: &str,
    keep_family: Option<&str>,
) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    let keep = keep_family.unwrap_or("");
    let n = crate::db!(conn, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(user_id))
                .filter(refresh_tokens::family_id.ne(keep))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(now)))
        .execute(c)
        .await
    })?;
    Ok(n)
}

pub async fn revoke_session(db: &Db, user_id: &str, id: &str) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let now = crate::db::now();
    let n = crate::db!(conn, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::id.eq(id))
                .filter(refresh_tokens::user_id.eq(user_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(now)))
        .execute(c)
        .await
    })?;
    Ok(n)
}

/// Live sessions, most recently used first.
pub async fn active_sessions(db: &Db, user_id: &str) -> Result<Vec<SessionRow>, DbError> {
    let mut conn = db.get_read().await?;
    let now = crate::db::now();
    let rows = crate::db!(conn, |c| {
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null())
            .filter(refresh_tokens::expires_at.gt(now))
            .order(refresh_tokens::last_used_at.desc())
            .limit(100)
            .select(SessionRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}
