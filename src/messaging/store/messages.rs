//! Messages: authors, storing with the next `seq`, reading back (recent, since, threads), edits and
//! soft deletes.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::schema::{conversations, messages, users};
use crate::db::{new_id, now, Db, DbError, Json, Timestamp};
use crate::messaging::model::{Author, MessageRow, NewMessageRow};

/// An active user, as a message author.
pub async fn active_user(db: &Db, id: &str) -> Result<Option<Author>, DbError> {
    let mut conn = db.get_read().await?;
    let row: Option<(String, String, String, String, Option<String>)> = crate::db!(conn, |c| {
        users::table
            .filter(users::id.eq(id))
            .filter(users::is_active.eq(true))
            .select((
                users::id,
                users::name,
                users::email,
                users::user_type,
                users::avatar_url,
            ))
            .first(c)
            .await
            .optional()
    })?;
    Ok(row.map(|(id, name, email, user_type, avatar)| Author {
        id,
        name,
        email,
        user_type,
        avatar,
    }))
}

/// The authors of `rows`, by id.
pub async fn authors(db: &Db, rows: &[MessageRow]) -> Result<HashMap<String, Author>, DbError> {
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|m| m.author_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conn = db.get_read().await?;
    let found: Vec<(String, String, String, String, Option<String>)> = crate::db!(conn, |c| {
        users::table
            .filter(users::id.eq_any(&ids))
            .select((
                users::id,
                users::name,
                users::email,
                users::user_type,
                users::avatar_url,
            ))
            .load(c)
            .await
    })?;
    Ok(found
        .into_iter()
        .map(|(id, name, email, user_type, avatar)| {
            (
                id.clone(),
                Author {
                    id,
                    name,
                    email,
                    user_type,
                    avatar,
                },
            )
        })
        .collect())
}

/// A message about to be stored; `seq` and `id` are assigned by [`insert`].
#[derive(Debug, Clone)]
pub struct Draft {
    pub conversation_id: String,
    pub author_id: String,
    pub content: String,
    pub message_type: String,
    pub priority: String,
    pub reply_to_id: Option<String>,
    pub thread_root_id: Option<String>,
    pub mentions: Vec<String>,
    pub attachments: Value,
    pub metadata: Value,
}

/// Store a message with the conversation's next `seq`, in one transaction.
pub async fn insert(db: &Db, d: Draft) -> Result<MessageRow, DbError> {
    db.transaction(async move |mut conn| {
        let at = now();
        let seq: i64 = crate::db!(conn, |c| {
            diesel::update(conversations::table.find(&d.conversation_id))
                .set((
                    conversations::last_seq.eq(conversations::last_seq + 1),
                    conversations::last_message_at.eq(Some(at)),
                    conversations::updated_at.eq(at),
                ))
                .returning(conversations::last_seq)
                .get_result(c)
                .await
        })?;
        let row = NewMessageRow {
            id: new_id(),
            conversation_id: d.conversation_id,
            author_id: Some(d.author_id),
            seq,
            content: d.content,
            message_type: d.message_type,
            priority: d.priority,
            reply_to_id: d.reply_to_id,
            thread_root_id: d.thread_root_id,
            mentions: Json(d.mentions),
            attachments: Json(d.attachments),
            metadata: Json(d.metadata),
            created_at: at,
        };
        let stored: MessageRow = crate::db!(conn, |c| {
            diesel::insert_into(messages::table)
                .values(&row)
                .returning(MessageRow::as_returning())
                .get_result(c)
                .await
        })?;
        Ok::<_, DbError>(stored)
    })
    .await
}

/// A live (not deleted) message.
pub async fn live(db: &Db, id: &str) -> Result<Option<MessageRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        messages::table
            .find(id)
            .filter(messages::deleted_at.is_null())
            .select(MessageRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Newest first.
pub async fn recent(
    db: &Db,
    conv: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<MessageRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq(conv))
            .filter(messages::deleted_at.is_null())
            .order(messages::seq.desc())
            .limit(limit)
            .offset(offset)
            .select(MessageRow::as_select())
            .load(c)
            .await
    })?)
}

/// Newest first, across every conversation `user` may use (`GET /messages` without a conversation).
pub async fn recent_for_user(
    db: &Db,
    user: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<MessageRow>, DbError> {
    let mut conn = db.get_read().await?;
    let ids = crate::membership::conversations_of_user(&mut conn.as_conn(), user).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq_any(&ids))
            .filter(messages::deleted_at.is_null())
            .order((messages::created_at.desc(), messages::id.desc()))
            .limit(limit)
            .offset(offset)
            .select(MessageRow::as_select())
            .load(c)
            .await
    })?)
}

/// Messages after `since`, oldest first (recovery after a reconnect).
pub async fn since(
    db: &Db,
    conv: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq(conv))
            .filter(messages::deleted_at.is_null())
            .filter(messages::seq.gt(since))
            .order(messages::seq.asc())
            .limit(limit)
            .select(MessageRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn count(db: &Db, conv: &str) -> Result<i64, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq(conv))
            .filter(messages::deleted_at.is_null())
            .count()
            .get_result(c)
            .await
    })?)
}

/// Set new text on the author's own live message; `None` when it is not theirs or does not exist.
pub async fn edit(
    db: &Db,
    id: &str,
    author: &str,
    text: &str,
) -> Result<Option<MessageRow>, DbError> {
    let mut conn = db.get_write().await?;
    let at = now();
    Ok(crate::db!(conn, |c| {
        diesel::update(
            messages::table
                .filter(messages::id.eq(id))
                .filter(messages::author_id.eq(author))
                .filter(messages::deleted_at.is_null()),
        )
        .set((messages::content.eq(text), messages::edited_at.eq(Some(at))))
        .returning(MessageRow::as_returning())
        .get_result(c)
        .await
        .optional()
    })?)
}

/// Soft-delete the author's own live message.
pub async fn delete(db: &Db, id: &str, author: &str) -> Result<Option<MessageRow>, DbError> {
    let mut conn = db.get_write().await?;
    let at = now();
    Ok(crate::db!(conn, |c| {
        diesel::update(
            messages::table
                .filter(messages::id.eq(id))
                .filter(messages::author_id.eq(author))
                .filter(messages::deleted_at.is_null()),
        )
        .set(messages::deleted_at.eq(Some(at)))
        .returning(MessageRow::as_returning())
        .get_result(c)
        .await
        .optional()
    })?)
}

/// Thread roots of a conversation: `(root, reply count, distinct participants, last activity)`.
pub async fn threads(
    db: &Db,
    conv: &str,
    limit: usize,
) -> Result<Vec<(MessageRow, i64, i64, Timestamp)>, DbError> {
    let mut conn = db.get_read().await?;
    let replies: Vec<(Option<String>, Option<String>, Timestamp)> = crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq(conv))
            .filter(messages::deleted_at.is_null())
            .filter(messages::reply_to_id.is_not_null())
            .order(messages::seq.desc())
            .limit(10_000)
            .select((
                messages::reply_to_id,
                messages::author_id,
                messages::created_at,
            ))
            .load(c)
            .await
    })?;
    drop(conn);
    let mut by_root: HashMap<String, (i64, BTreeSet<String>, Timestamp)> = HashMap::new();
    for (root, author, at) in replies {
        let Some(root) = root else { continue };
        let e = by_root
            .entry(root)
            .or_insert_with(|| (0, BTreeSet::new(), at));
        e.0 += 1;
        if let Some(a) = author {
            e.1.insert(a);
        }
        if at > e.2 {
            e.2 = at;
        }
    }
    let mut out = Vec::new();
    for (root_id, (count, people, last)) in by_root {
        if let Some(root) = live(db, &root_id).await? {
            if root.conversation_id == conv {
                let mut people = people;
                if let Some(a) = &root.author_id {
                    people.insert(a.clone());
                }
                out.push((root, count, people.len() as i64, last));
            }
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.3));
    out.truncate(limit);
    Ok(out)
}

/// A root message and its replies (via `reply_to_id`, depth ≤ 10), oldest first.
pub async fn thread(db: &Db, root: MessageRow, limit: usize) -> Result<Vec<MessageRow>, DbError> {
    let mut conn = db.get_read().await?;
    let conv = root.conversation_id.clone();
    let mut frontier = vec![root.id.clone()];
    let mut out = vec![root];
    for _depth in 0..10 {
        if frontier.is_empty() || out.len() >= limit {
            break;
        }
        let next: Vec<MessageRow> = crate::db!(conn, |c| {
            messages::table
                .filter(messages::conversation_id.eq(&conv))
                .filter(messages::deleted_at.is_null())
                .filter(messages::reply_to_id.eq_any(&frontier))
                .order(messages::seq.asc())
                .limit(limit as i64)
                .select(MessageRow::as_select())
                .load(c)
                .await
        })?;
        frontier = next.iter().map(|m| m.id.clone()).collect();
        out.extend(next);
    }
    out.sort_by_key(|m| m.seq);
    out.truncate(limit);
    Ok(out)
}
