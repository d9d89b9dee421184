//! Messaging queries. Every function takes the [`Db`] and works unchanged on SQLite and PostgreSQL.
//!
//! Membership (ARCHITECTURE §4) is decided here and only here: a conversation with a `group_id` belongs
//! to that team's members, one with a `project_id` to the project's members, any other (group and
//! direct conversations) to its `conversation_participants`. Participant rows of team and project
//! channels exist only to hold read pointers; they never grant access.

use std::collections::{BTreeSet, HashMap};

use crate::membership::{self, Scope};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use super::model::{
    Author, ConversationRow, ConversationStats, MessageRow, NewConversationRow, NewMessageRow,
    NewNotificationRow, NotificationRow,
};
use crate::db::schema::{
    conversation_participants as cp, conversations, dm_receipts, message_reactions, messages,
    notifications, users,
};
use crate::db::{like_contains, lower, now, Db, DbError, Json, PooledConn, Timestamp, LIKE_ESCAPE};

/// The result of asking whether a user may use a conversation.
#[derive(Debug)]
pub enum Access {
    Allowed(Box<ConversationRow>),
    Denied,
    NotFound,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub async fn conversation(
    conn: &mut PooledConn,
    id: &str,
) -> Result<Option<ConversationRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        conversations::table
            .find(id)
            .select(ConversationRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// May `user` use conversation `id`?
pub async fn access(db: &Db, user: &str, id: &str) -> Result<Access, DbError> {
    let mut conn = db.get_read().await?;
    let Some(conv) = conversation(&mut conn, id).await? else {
        return Ok(Access::NotFound);
    };
    if membership::is_member(&mut conn.as_conn(), conv.scope(), user).await? {
        Ok(Access::Allowed(Box::new(conv)))
    } else {
        Ok(Access::Denied)
    }
}

/// Who may use a conversation (for mention filtering and presence scoping).
pub async fn members(db: &Db, conv: &ConversationRow) -> Result<Vec<String>, DbError> {
    let mut conn = db.get_read().await?;
    membership::members(&mut conn.as_conn(), conv.scope()).await
}

/// Everyone who shares at least one conversation with `user` (presence is scoped to them).
pub async fn co_members(db: &Db, user: &str) -> Result<Vec<String>, DbError> {
    let mut conn = db.get_read().await?;
    membership::co_members(&mut conn.as_conn(), user).await
}

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

/// A message about to be stored; `seq` and `id` are assigned by [`insert_message`].
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
pub async fn insert_message(db: &Db, d: Draft) -> Result<MessageRow, DbError> {
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
pub async fn message(db: &Db, id: &str) -> Result<Option<MessageRow>, DbError> {
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
pub async fn recent_messages(
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

/// Messages after `since`, oldest first (recovery after a reconnect).
pub async fn messages_since(
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

pub async fn count_messages(db: &Db, conv: &str) -> Result<i64, DbError> {
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
pub async fn edit_message(
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
pub async fn delete_message(
    db: &Db,
    id: &str,
    author: &str,
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
        .set(messages::deleted_at.eq(Some(at)))
        .returning(MessageRow::as_returning())
        .get_result(c)
        .await
        .optional()
    })?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionChange {
    Toggle,
    Add,
    Remove,
}

/// Apply a reaction change; returns whether the reaction is now present.
pub async fn change_reaction(
    db: &Db,
    message_id: &str,
    user: &str,
    reaction: &str,
    change: ReactionChange,
) -> Result<bool, DbError> {
    let (message_id, user, reaction) =
        (message_id.to_owned(), user.to_owned(), reaction.to_owned());
    db.transaction(async move |mut conn| {
        let present: i64 = crate::db!(conn, |c| {
            message_reactions::table
                .filter(message_reactions::message_id.eq(&message_id))
                .filter(message_reactions::user_id.eq(&user))
                .filter(message_reactions::reaction.eq(&reaction))
                .count()
                .get_result(c)
                .await
        })?;
        let add = match change {
            ReactionChange::Toggle => present == 0,
            ReactionChange::Add => true,
            ReactionChange::Remove => false,
        };
        if add && present == 0 {
            let at = now();
            crate::db!(conn, |c| {
                diesel::insert_into(message_reactions::table)
                    .values((
                        message_reactions::message_id.eq(&message_id),
                        message_reactions::user_id.eq(&user),
                        message_reactions::reaction.eq(&reaction),
                        message_reactions::created_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
            })?;
        } else if !add && present > 0 {
            crate::db!(conn, |c| {
                diesel::delete(
                    message_reactions::table
                        .filter(message_reactions::message_id.eq(&message_id))
                        .filter(message_reactions::user_id.eq(&user))
                        .filter(message_reactions::reaction.eq(&reaction)),
                )
                .execute(c)
                .await
            })?;
        }
        Ok::<_, DbError>(add)
    })
    .await
}

/// ReactionRow `{id, message_id, user_id, reaction, created_at, user_name}` (snake_case, CONTRACT §11.3).
pub async fn reactions(db: &Db, message_id: &str) -> Result<Vec<Value>, DbError> {
    let mut conn = db.get_read().await?;
    let rows: Vec<(String, String, Timestamp, String)> = crate::db!(conn, |c| {
        message_reactions::table
            .inner_join(users::table)
            .filter(message_reactions::message_id.eq(message_id))
            .order(message_reactions::created_at.asc())
            .select((
                message_reactions::user_id,
                message_reactions::reaction,
                message_reactions::created_at,
                users::name,
            ))
            .load(c)
            .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(user_id, reaction, at, name)| {
            serde_json::json!({
                "id": format!("{message_id}:{user_id}:{reaction}"),
                "message_id": message_id,
                "user_id": user_id,
                "reaction": reaction,
                "created_at": at.to_iso_millis(),
                "user_name": name,
            })
        })
        .collect())
}

/// The `dm_key` of two users' direct conversation: the sorted pair, so either order finds it.
pub(crate) fn dm_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}\u{1f}{b}")
    } else {
        format!("{b}\u{1f}{a}")
    }
}

/// The direct conversation of two users, created on first use (one per pair, by `dm_key`).
pub async fn direct_conversation(db: &Db, a: &str, b: &str) -> Result<ConversationRow, DbError> {
    let key = dm_key(a, b);
    let (a, b) = (a.to_owned(), b.to_owned());
    db.transaction(async move |mut conn| {
        let at = now();
        let row = NewConversationRow {
            id: new_id(),
            kind: "direct".into(),
            name: None,
            description: None,
            group_id: None,
            project_id: None,
            created_by: Some(a.clone()),
            created_at: at,
            updated_at: at,
            dm_key: Some(key.clone()),
        };
        crate::db!(conn, |c| {
            diesel::insert_into(conversations::table)
                .values(&row)
                .on_conflict(conversations::dm_key)
                .do_nothing()
                .execute(c)
                .await
        })?;
        let conv: ConversationRow = crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::dm_key.eq(&key))
                .select(ConversationRow::as_select())
                .first(c)
                .await
        })?;
        for user in [&a, &b] {
            crate::db!(conn, |c| {
                diesel::insert_into(cp::table)
                    .values((
                        cp::conversation_id.eq(&conv.id),
                        cp::user_id.eq(user),
                        cp::role.eq("member"),
                        cp::joined_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
            })?;
        }
        Ok::<_, DbError>(conv)
    })
    .await
}

/// Move the caller's read pointer forward to `seq` (never backwards).
pub async fn mark_read(
    db: &Db,
    conv: &str,
    user: &str,
    seq: i64,
    message_id: Option<String>,
) -> Result<(), DbError> {
    let (conv, user) = (conv.to_owned(), user.to_owned());
    db.transaction(async move |mut conn| {
        let at = now();
        let existing: Option<Option<i64>> = crate::db!(conn, |c| {
            cp::table
                .find((&conv, &user))
                .select(cp::last_read_seq)
                .first(c)
                .await
                .optional()
        })?;
        match existing {
            None => {
                crate::db!(conn, |c| {
                    diesel::insert_into(cp::table)
                        .values((
                            cp::conversation_id.eq(&conv),
                            cp::user_id.eq(&user),
                            cp::role.eq("member"),
                            cp::joined_at.eq(at),
                            cp::last_read_at.eq(Some(at)),
                            cp::last_read_seq.eq(Some(seq)),
                            cp::last_read_message_id.eq(&message_id),
                        ))
                        .on_conflict_do_nothing()
                        .execute(c)
                        .await
                })?;
            }
            Some(prev) if prev.unwrap_or(0) < seq => {
                crate::db!(conn, |c| {
                    diesel::update(cp::table.find((&conv, &user)))
                        .set((
                            cp::last_read_at.eq(Some(at)),
                            cp::last_read_seq.eq(Some(seq)),
                            cp::last_read_message_id.eq(&message_id),
                        ))
                        .execute(c)
                        .await
                })?;
            }
            Some(_) => {}
        }
        Ok::<_, DbError>(())
    })
    .await
}

/// Record that `user` read a direct message; returns the read time, or `None` if already recorded.
pub async fn dm_receipt(
    db: &Db,
    message_id: &str,
    user: &str,
) -> Result<Option<Timestamp>, DbError> {
    let mut conn = db.get_write().await?;
    let at = now();
    let n = crate::db!(conn, |c| {
        diesel::insert_into(dm_receipts::table)
            .values((
                dm_receipts::message_id.eq(message_id),
                dm_receipts::user_id.eq(user),
                dm_receipts::read_at.eq(at),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    Ok((n > 0).then_some(at))
}

/// Computed from the read pointer: live messages of others after it.
async fn unread_count(conn: &mut PooledConn, conv: &str, user: &str) -> Result<i64, DbError> {
    let last_read: Option<Option<i64>> = crate::db!(conn, |c| {
        cp::table
            .find((conv, user))
            .select(cp::last_read_seq)
            .first(c)
            .await
            .optional()
    })?;
    let last_read = last_read.flatten().unwrap_or(0);
    Ok(crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq(conv))
            .filter(messages::deleted_at.is_null())
            .filter(messages::seq.gt(last_read))
            .filter(
                messages::author_id
                    .ne(user)
                    .or(messages::author_id.is_null()),
            )
            .count()
            .get_result(c)
            .await
    })?)
}

/// The caller's conversations, most recently active first, with computed counts.
pub async fn list_conversations(
    db: &Db,
    user: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<(ConversationRow, ConversationStats)>, DbError> {
    let mut conn = db.get_read().await?;
    let ids = membership::conversations_of_user(&mut conn.as_conn(), user).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let convs: Vec<ConversationRow> = crate::db!(conn, |c| {
        conversations::table
            .filter(conversations::id.eq_any(&ids))
            .order((conversations::updated_at.desc(), conversations::id.desc()))
            .limit(limit)
            .offset(offset)
            .select(ConversationRow::as_select())
            .load(c)
            .await
    })?;
    drop(conn);
    let mut out = Vec::with_capacity(convs.len());
    for conv in convs {
        let participant_count = members(db, &conv).await?.len() as i64;
        let mut conn = db.get_read().await?;
        let unread = unread_count(&mut conn, &conv.id, user).await?;
        drop(conn);
        let last = recent_messages(db, &conv.id, 1, 0).await?;
        let last_message = match <[MessageRow]>::first(&last) {
            Some(m) => {
                let names = authors(db, &last).await?;
                let name = m
                    .author_id
                    .as_ref()
                    .and_then(|id| names.get(id))
                    .map(|a| a.name.clone());
                Some((m.content.clone(), name, m.created_at))
            }
            None => None,
        };
        out.push((
            conv,
            ConversationStats {
                participant_count,
                unread_count: unread,
                last_message,
            },
        ));
    }
    Ok(out)
}

/// A plain group conversation with explicit participants (the creator is its owner).
pub async fn create_group_conversation(
    db: &Db,
    creator: &str,
    name: Option<String>,
    description: Option<String>,
    participants: Vec<String>,
) -> Result<ConversationRow, DbError> {
    let creator = creator.to_owned();
    db.transaction(async move |mut conn| {
        let at = now();
        let row = NewConversationRow {
            id: new_id(),
            kind: "group".into(),
            name,
            description,
            group_id: None,
            project_id: None,
            created_by: Some(creator.clone()),
            created_at: at,
            updated_at: at,
            dm_key: None,
        };
        let conv: ConversationRow = crate::db!(conn, |c| {
            diesel::insert_into(conversations::table)
                .values(&row)
                .returning(ConversationRow::as_returning())
                .get_result(c)
                .await
        })?;
        let existing: Vec<String> = crate::db!(conn, |c| {
            users::table
                .filter(users::id.eq_any(&participants))
                .select(users::id)
                .load(c)
                .await
        })?;
        let mut all = vec![(creator.clone(), "owner")];
        all.extend(
            existing
                .into_iter()
                .filter(|u| *u != creator)
                .map(|u| (u, "member")),
        );
        for (user, role) in &all {
            crate::db!(conn, |c| {
                diesel::insert_into(cp::table)
                    .values((
                        cp::conversation_id.eq(&conv.id),
                        cp::user_id.eq(user),
                        cp::role.eq(*role),
                        cp::joined_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
            })?;
        }
        Ok::<_, DbError>(conv)
    })
    .await
}

/// Where a new channel belongs.
#[derive(Debug, Clone)]
pub enum ChannelOwner {
    Team(String),
    Project(String),
}

#[derive(Debug)]
pub enum ChannelCreate {
    Created(Box<ConversationRow>),
    OwnerNotFound,
    NotMember,
}

/// Create a channel of a team or project the creator belongs to.
pub async fn create_channel(
    db: &Db,
    creator: &str,
    name: String,
    description: Option<String>,
    owner: ChannelOwner,
) -> Result<ChannelCreate, DbError> {
    let creator = creator.to_owned();
    db.transaction(async move |mut conn| {
        let scope = match &owner {
            ChannelOwner::Team(g) => Scope::Team(g),
            ChannelOwner::Project(p) => Scope::Project(p),
        };
        if !membership::exists(&mut conn, scope).await? {
            return Ok(ChannelCreate::OwnerNotFound);
        }
        if !membership::is_member(&mut conn, scope, &creator).await? {
            return Ok(ChannelCreate::NotMember);
        }
        let at = now();
        let (group_id, project_id) = match owner {
            ChannelOwner::Team(g) => (Some(g), None),
            ChannelOwner::Project(p) => (None, Some(p)),
        };
        let row = NewConversationRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: "channel".into(),
            name: Some(name),
            description,
            group_id,
            project_id,
            created_by: Some(creator),
            created_at: at,
            updated_at: at,
            dm_key: None,
        };
        let conv: ConversationRow = crate::db!(conn, |c| {
            diesel::insert_into(conversations::table)
                .values(&row)
                .returning(ConversationRow::as_returning())
                .get_result(c)
                .await
        })?;
        Ok::<_, DbError>(ChannelCreate::Created(Box::new(conv)))
    })
    .await
}

/// Channels of a team (the caller must be a member; checked by the route).
pub async fn team_channels(db: &Db, team: &str) -> Result<Vec<ConversationRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        conversations::table
            .filter(conversations::group_id.eq(team))
            .order(conversations::created_at.asc())
            .limit(500)
            .select(ConversationRow::as_select())
            .load(c)
            .await
    })?)
}

/// `None` when the team does not exist, else whether `user` belongs to it.
pub async fn is_team_member(db: &Db, team: &str, user: &str) -> Result<Option<bool>, DbError> {
    let mut conn = db.get_read().await?;
    let mut conn = conn.as_conn();
    if !membership::exists(&mut conn, Scope::Team(team)).await? {
        return Ok(None);
    }
    Ok(Some(
        membership::is_member(&mut conn, Scope::Team(team), user).await?,
    ))
}

/// Full-text-ish search over the conversations the caller may use (newest first).
pub async fn search(
    db: &Db,
    user: &str,
    q: &str,
    only: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<MessageRow>, HashMap<String, Option<String>>), DbError> {
    let mut conn = db.get_read().await?;
    let mut ids = membership::conversations_of_user(&mut conn.as_conn(), user).await?;
    if let Some(only) = only {
        ids.retain(|id| id == only);
    }
    if ids.is_empty() {
        return Ok((Vec::new(), HashMap::new()));
    }
    let pattern = like_contains(q);
    let rows: Vec<MessageRow> = crate::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq_any(&ids))
            .filter(messages::deleted_at.is_null())
            .filter(
                lower(messages::content)
                    .like(lower(&pattern))
                    .escape(LIKE_ESCAPE),
            )
            .order((messages::created_at.desc(), messages::id.desc()))
            .limit(limit)
            .offset(offset)
            .select(MessageRow::as_select())
            .load(c)
            .await
    })?;
    let conv_ids: Vec<String> = rows
        .iter()
        .map(|m| m.conversation_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names: Vec<(String, Option<String>)> = crate::db!(conn, |c| {
        conversations::table
            .filter(conversations::id.eq_any(&conv_ids))
            .select((conversations::id, conversations::name))
            .load(c)
            .await
    })?;
    Ok((rows, names.into_iter().collect()))
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
        if let Some(root) = message(db, &root_id).await? {
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

/// Store one mention notification.
pub async fn insert_notification(
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

pub async fn list_notifications(
    db: &Db,
    user: &str,
    unread_only: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<NotificationRow>, i64), DbError> {
    let mut conn = db.get_read().await?;
    let rows: Vec<NotificationRow> = crate::db!(conn, |c| {
        let mut q = notifications::table
            .filter(notifications::user_id.eq(user))
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
            .into_boxed();
        if unread_only {
            q = q.filter(notifications::is_read.eq(false));
        }
        q.count().get_result(c).await
    })?;
    Ok((rows, total))
}

/// Mark the caller's notifications read: one (by id) or all. Returns how many changed.
pub async fn mark_notifications_read(
    db: &Db,
    user: &str,
    id: Option<&str>,
) -> Result<usize, DbError> {
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
pub async fn notification_exists(db: &Db, user: &str, id: &str) -> Result<bool, DbError> {
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
