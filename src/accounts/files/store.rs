//! Queries of file metadata (the `files` table).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::files;
use crate::db::{Conn, DbError, Json, Timestamp};
use crate::input::usable_id;
use crate::web::paging::Page;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = files)]
pub struct FileRow {
    pub id: String,
    pub owner_id: String,
    pub project_id: Option<String>,
    pub original_name: String,
    pub stored_name: String,
    pub storage_key: String,
    pub size: i64,
    pub mime_type: String,
    pub sniffed_type: Option<String>,
    pub description: Option<String>,
    pub tags: Json<Vec<String>>,
    pub is_public: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub async fn insert_all(conn: &mut Conn<'_>, rows: &[FileRow]) -> Result<(), DbError> {
    // One statement per row: SQLite's batch insert does not go through the async wrapper.
    for row in rows {
        crate::db!(conn, |c| {
            diesel::insert_into(files::table)
                .values(row.clone())
                .execute(c)
                .await
        })?;
    }
    Ok(())
}

/// The caller's file, `None` for a missing one and for anybody else's alike.
pub async fn owned(
    conn: &mut Conn<'_>,
    id: &str,
    owner_id: &str,
) -> Result<Option<FileRow>, DbError> {
    if !usable_id(id) {
        return Ok(None);
    }
    Ok(crate::db!(conn, |c| {
        files::table
            .find(id)
            .filter(files::owner_id.eq(owner_id))
            .select(FileRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn by_stored_name(conn: &mut Conn<'_>, name: &str) -> Result<Option<FileRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        files::table
            .filter(files::stored_name.eq(name))
            .select(FileRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// The owner's files, newest first, optionally of one project.
pub async fn list(
    conn: &mut Conn<'_>,
    owner_id: &str,
    project_id: Option<&str>,
    page: Page,
) -> Result<Vec<FileRow>, DbError> {
    if project_id.is_some_and(|p| !usable_id(p)) {
        return Ok(Vec::new());
    }
    Ok(crate::db!(conn, |c| {
        let mut q = files::table
            .filter(files::owner_id.eq(owner_id))
            .into_boxed();
        if let Some(p) = project_id {
            q = q.filter(files::project_id.eq(p));
        }
        q.order((files::created_at.desc(), files::id.desc()))
            .limit(i64::from(page.limit))
            .offset(page.offset as i64)
            .select(FileRow::as_select())
            .load(c)
            .await
    })?)
}

/// Every file of a project, whoever uploaded it, newest first.
pub async fn of_project(
    conn: &mut Conn<'_>,
    project_id: &str,
    page: Page,
) -> Result<Vec<FileRow>, DbError> {
    if !usable_id(project_id) {
        return Ok(Vec::new());
    }
    Ok(crate::db!(conn, |c| {
        files::table
            .filter(files::project_id.eq(project_id))
            .order((files::created_at.desc(), files::id.desc()))
            .limit(i64::from(page.limit))
            .offset(page.offset as i64)
            .select(FileRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn update_meta(conn: &mut Conn<'_>, row: &FileRow) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(files::table.find(&row.id))
            .set((
                files::description.eq(&row.description),
                files::tags.eq(row.tags.clone()),
                files::is_public.eq(row.is_public),
                files::updated_at.eq(row.updated_at),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn delete(conn: &mut Conn<'_>, id: &str) -> Result<usize, DbError> {
    Ok(crate::db!(conn, |c| {
        diesel::delete(files::table.find(id)).execute(c).await
    })?)
}
