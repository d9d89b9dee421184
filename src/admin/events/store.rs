//! Reading `security_events` with the admin filters (writing is the security module's).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{security_events as se, users};
use crate::db::{Db, DbError, Timestamp};
use crate::security::store::EventRow;

/// The filters of `GET events` (all optional).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub severity: Option<String>,
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The boxed query of `se::table` with `$f`'s filters; expanded inside `db!` so each backend gets
/// its own boxed type.
macro_rules! filtered {
    ($f:expr) => {{
        let f: &EventFilter = $f;
        let mut q = se::table.into_boxed();
        if let Some(t) = &f.event_type {
            q = q.filter(se::event_type.eq(t.clone()));
        }
        if let Some(s) = &f.severity {
            q = q.filter(se::severity.eq(s.clone()));
        }
        if let Some(u) = &f.user_id {
            q = q.filter(se::user_id.eq(u.clone()));
        }
        if let Some(ip) = &f.ip_address {
            q = q.filter(se::ip.eq(ip.clone()));
        }
        if let Some(from) = f.from {
            q = q.filter(se::created_at.ge(Timestamp::from(from)));
        }
        if let Some(to) = f.to {
            q = q.filter(se::created_at.le(Timestamp::from(to)));
        }
        q
    }};
}

/// Newest first unless `desc` is false; ties by id.
pub async fn list(
    db: &Db,
    f: &EventFilter,
    limit: i64,
    offset: i64,
    desc: bool,
) -> Result<Vec<EventRow>, DbError> {
    let mut conn = db.get_read().await?;
    let rows = crate::db!(conn, |c| {
        let q = filtered!(f);
        let q = if desc {
            q.order((se::created_at.desc(), se::id.desc()))
        } else {
            q.order((se::created_at.asc(), se::id.asc()))
        };
        q.limit(limit)
            .offset(offset)
            .select(EventRow::as_select())
            .load(c)
            .await
    })?;
    Ok(rows)
}

pub async fn count(db: &Db, f: &EventFilter) -> Result<i64, DbError> {
    let mut conn = db.get_read().await?;
    let n = crate::db!(conn, |c| { filtered!(f).count().get_result(c).await })?;
    Ok(n)
}

/// Most rows a count by type or severity reads (a summary, not an audit).
const GROUP_SCAN: i64 = 200_000;

async fn group(db: &Db, f: &EventFilter, by_type: bool) -> Result<BTreeMap<String, i64>, DbError> {
    let mut conn = db.get_read().await?;
    let keys: Vec<String> = crate::db!(conn, |c| {
        if by_type {
            filtered!(f)
                .select(se::event_type)
                .limit(GROUP_SCAN)
                .load(c)
                .await
        } else {
            filtered!(f)
                .select(se::severity)
                .limit(GROUP_SCAN)
                .load(c)
                .await
        }
    })?;
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k).or_insert(0) += 1;
    }
    Ok(out)
}

pub async fn group_by_type(db: &Db, f: &EventFilter) -> Result<BTreeMap<String, i64>, DbError> {
    group(db, f, true).await
}

pub async fn group_by_severity(db: &Db, f: &EventFilter) -> Result<BTreeMap<String, i64>, DbError> {
    group(db, f, false).await
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<EventRow>, DbError> {
    let mut conn = db.get_read().await?;
    let row = crate::db!(conn, |c| {
        se::table
            .find(id)
            .select(EventRow::as_select())
            .first(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// E-mails of the given users.
pub async fn emails(db: &Db, ids: &[String]) -> Result<BTreeMap<String, String>, DbError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut conn = db.get_read().await?;
    let rows: Vec<(String, String)> = crate::db!(conn, |c| {
        users::table
            .filter(users::id.eq_any(ids))
            .select((users::id, users::email))
            .load(c)
            .await
    })?;
    Ok(rows.into_iter().collect())
}
