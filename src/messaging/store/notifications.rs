//! Stored notifications (mentions).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::schema::notifications;
use crate::db::{new_id, now, Db, DbError, Json, Timestamp};
use crate::messaging::model::{NewNotificationRow, NotificationRow};

/// Store one mention notification.
pub async fn insert(
    db: &Db,
    user: &str,
    kind: &str,
    title: &str,
    message: &str,
    data: Value,
    priority: &str,
) -> Result<NotificationRow, DbError> {
    let row = NewNotificationRow {
        id: new_id(),
        user_id: user.to_owned(),
        kind: kind.to_owned(),
        title: title.to_owned(),
        message: message.to_owned(),
        data: Json(data),
        priority: priority.to_owned(),
        created_at: now(),
    };
    let mut conn = db.get_write().await?;
    Ok(crate::db!(conn, |c| {
        diesel::insert_into(notifications::table)
            .values(&row)
            .returning(NotificationRow::as_returning())
            .get_result(c)
            .await
    })?)
}

pub async fn list(
    db: &Db,
    user: &str,
    unread_only: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<NotificationRow>, i64), DbError> {
    // A snoozed notification stays out of the list until its time comes.
    let at = now();
    let mut conn = db.get_read().await?;
    let rows: Vec<NotificationRow> = crate::db!(conn, |c| {
        let mut q = notifications::table
            .filter(notifications::user_id.eq(user))
            .filter(awake(at))
            .into_boxed();
        if unread_only {
            q = q.filter(notifications::is_read.eq(false));
        }
        q.order((notifications::created_at.desc(), notifications::id.desc()))
            .limit(limit)
            .offset(offset)
            .select(NotificationRow::as_select())
            .load(c)
            .await
    })?;
    let total: i64 = crate::db!(conn, |c| {
        let mut q = notifications::table
            .filter(notifications::user_id.eq(user))
            .filter(awake(at))
            .into_boxed();
        if unread_only {
            q = q.filter(notifications::is_read.eq(false));
        }
        q.count().get_result(c).await
    })?;
    Ok((rows, total))
}

/// Not snoozed, or snoozed until a time that has passed.
fn awake(
    at: Timestamp,
) -> diesel::dsl::Or<
    diesel::dsl::IsNull<notifications::snoozed_until>,
    diesel::dsl::LtEq<notifications::snoozed_until, Option<Timestamp>>,
> {
    notifications::snoozed_until
        .is_null()
        .or(notifications::snoozed_until.le(Some(at)))
}

/// Snooze (or, with `None`, wake) one of `user`'s notifications; false when it is not theirs or
/// unknown.
pub async fn snooze(
    db: &Db,
    user: &str,
    id: &str,
    until: Option<Timestamp>,
) -> Result<bool, DbError> {
    let mut conn = db.get_write().await?;
    let n = crate::db!(conn, |c| {
        diesel::update(notifications::table)
            .filter(notifications::user_id.eq(user))
            .filter(notifications::id.eq(id))
            .set(notifications::snoozed_until.eq(until))
            .execute(c)
            .await
    })?;
    Ok(n > 0)
}

/// Mark the caller's notifications read: one (by id) or all. Returns how many changed.
pub async fn mark_read(db: &Db, user: &str, id: Option<&str>) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let at = now();
    Ok(crate::db!(conn, |c| {
        let mut q = diesel::update(notifications::table)
            .filter(notifications::user_id.eq(user))
            .into_boxed();
        if let Some(id) = id {
            q = q.filter(notifications::id.eq(id));
        }
        q.set((
            notifications::is_read.eq(true),
            notifications::read_at.eq(Some(at)),
        ))
        .execute(c)
        .await
    })?)
}

/// Does a notification of `user` with this id exist?
pub async fn exists(db: &Db, user: &str, id: &str) -> Result<bool, DbError> {
    let mut conn = db.get_read().await?;
    let n: i64 = crate::db!(conn, |c| {
        notifications::table
            .filter(notifications::user_id.eq(user))
            .filter(notifications::id.eq(id))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(n > 0)
}
