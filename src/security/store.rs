//! Queries of `security_events`, `ip_blocks` and `ip_allowlist`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{ip_allowlist, ip_blocks, security_events as se};
use crate::db::{Db, DbError, Json, Timestamp};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = se)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub severity: String,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Json,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ip_blocks)]
pub struct BlockRow {
    pub ip: String,
    pub reason: Option<String>,
    pub blocked_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub blocked_by: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ip_allowlist)]
pub struct AllowRow {
    pub ip: String,
    pub reason: Option<String>,
    pub until: Option<Timestamp>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
}

pub async fn insert_event(db: &Db, row: &EventRow) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::insert_into(se::table).values(row).execute(c).await
    })?;
    Ok(())
}

/// Deletes events older than `before`; returns how many.
pub async fn delete_events_before(db: &Db, before: DateTime<Utc>) -> Result<usize, DbError> {
    let before = Timestamp::from(before);
    let mut conn = db.get_write().await?;
    let n = crate::db!(conn, |c| {
        diesel::delete(se::table.filter(se::created_at.lt(before)))
            .execute(c)
            .await
    })?;
    Ok(n)
}

pub async fn count_events_before(db: &Db, before: DateTime<Utc>) -> Result<i64, DbError> {
    let before = Timestamp::from(before);
    let mut conn = db.get_read().await?;
    let n = crate::db!(conn, |c| {
        se::table
            .filter(se::created_at.lt(before))
            .count()
            .get_result(c)
            .await
    })?;
    Ok(n)
}

/// The blocks that still hold at `now` (permanent or expiring later).
pub async fn active_blocks(db: &Db, now: DateTime<Utc>) -> Result<Vec<BlockRow>, DbError> {
    let now = Timestamp::from(now);
    let mut conn = db.get_read().await?;
    let rows = crate::db!(conn, |c| {
        ip_blocks::table
            .filter(
                ip_blocks::blocked_until
                    .is_null()
                    .or(ip_blocks::blocked_until.gt(now)),
            )
            .order(ip_blocks::created_at.desc())
            .select(BlockRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn block_of(db: &Db, ip: &str) -> Result<Option<BlockRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        ip_blocks::table
            .find(ip)
            .select(BlockRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

pub async fn active_allows(db: &Db, now: DateTime<Utc>) -> Result<Vec<AllowRow>, DbError> {
    let now = Timestamp::from(now);
    let mut conn = db.get_read().await?;
    let rows = crate::db!(conn, |c| {
        ip_allowlist::table
            .filter(
                ip_allowlist::until
                    .is_null()
                    .or(ip_allowlist::until.gt(now)),
            )
            .select(AllowRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

/// Blocks `row.ip` (replacing an earlier block of it).
pub async fn upsert_block(db: &Db, row: &BlockRow) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::insert_into(ip_blocks::table)
            .values(row)
            .on_conflict(ip_blocks::ip)
            .do_update()
            .set((
                ip_blocks::reason.eq(row.reason.clone()),
                ip_blocks::blocked_until.eq(row.blocked_until),
                ip_blocks::created_at.eq(row.created_at),
                ip_blocks::blocked_by.eq(row.blocked_by.clone()),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn delete_block(db: &Db, ip: &str) -> Result<usize, DbError> {
    let mut conn = db.get_write().await?;
    let n = crate::db!(conn, |c| {
        diesel::delete(ip_blocks::table.find(ip)).execute(c).await
    })?;
    Ok(n)
}

/// Allow-lists `row.ip` and lifts any block of it, in one transaction.
pub async fn upsert_allow(db: &Db, row: AllowRow) -> Result<(), DbError> {
    db.transaction(async move |mut conn| {
        crate::db!(conn, |c| {
            diesel::delete(ip_blocks::table.find(&row.ip))
                .execute(c)
                .await
        })?;
        crate::db!(conn, |c| {
            diesel::insert_into(ip_allowlist::table)
                .values(&row)
                .on_conflict(ip_allowlist::ip)
                .do_update()
                .set((
                    ip_allowlist::reason.eq(row.reason.clone()),
                    ip_allowlist::until.eq(row.until),
                    ip_allowlist::created_by.eq(row.created_by.clone()),
                    ip_allowlist::created_at.eq(row.created_at),
                ))
                .execute(c)
                .await
        })?;
        Ok::<(), DbError>(())
    })
    .await
}
