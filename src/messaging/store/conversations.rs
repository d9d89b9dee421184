//! Conversations: lookup and access, direct and group conversations, channels, the caller's list.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{conversation_participants as cp, conversations, users};
use crate::db::{new_id, now, Db, DbError, PooledConn};
use crate::membership::{self, Scope};
use crate::messaging::model::{ConversationRow, ConversationStats, MessageRow, NewConversationRow};

/// The result of asking whether a user may use a conversation.
#[derive(Debug)]
pub enum Access {
    Allowed(Box<ConversationRow>),
    Denied,
    NotFound,
}

pub async fn get(conn: &mut PooledConn, id: &str) -> Result<Option<ConversationRow>, DbError> {
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
    let Some(conv) = get(&mut conn, id).await? else {
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

/// The `dm_key` of two users' direct conversation: the sorted pair, so either order finds it.
pub fn dm_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}\u{1f}{b}")
    } else {
        format!("{b}\u{1f}{a}")
    }
}

/// The direct conversation of two users, created on first use (one per pair, by `dm_key`).
pub async fn direct(db: &Db, a: &str, b: &str) -> Result<ConversationRow, DbError> {
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

/// The caller's conversations, most recently active first, with computed counts.
pub async fn list(
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
        let stats = stats(db, &conv, user).await?;
        out.push((conv, stats));
    }
    Ok(out)
}

/// What `user` sees of a conversation in lists: participants, unread count, last message.
pub async fn stats(
    db: &Db,
    conv: &ConversationRow,
    user: &str,
) -> Result<ConversationStats, DbError> {
    let participant_count = members(db, conv).await?.len() as i64;
    let mut conn = db.get_read().await?;
    let unread = super::reads::unread_count(&mut conn, &conv.id, user).await?;
    drop(conn);
    let last = super::messages::recent(db, &conv.id, 1, 0).await?;
    let last_message = match <[MessageRow]>::first(&last) {
        Some(m) => {
            let names = super::messages::authors(db, &last).await?;
            let name = m
                .author_id
                .as_ref()
                .and_then(|id| names.get(id))
                .map(|a| a.name.clone());
            Some((m.content.clone(), name, m.created_at))
        }
        None => None,
    };
    Ok(ConversationStats {
        participant_count,
        unread_count: unread,
        last_message,
    })
}

/// A plain group conversation with explicit participants (the creator is its owner).
pub async fn create_group(
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
            id: new_id(),
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

/// `user`'s role among the explicit participants of `conversation` (`None`: not one).
pub async fn participant_role(
    db: &Db,
    conversation: &str,
    user: &str,
) -> Result<Option<String>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        cp::table
            .find((conversation, user))
            .select(cp::role)
            .first(c)
            .await
            .optional()
    })?)
}

/// Adds the existing, active users among `users` as `member` participants; returns who was added
/// (people already in stay as they are).
pub async fn add_participants(
    db: &Db,
    conversation: &str,
    users: Vec<String>,
) -> Result<Vec<String>, DbError> {
    let conversation = conversation.to_owned();
    db.transaction(async move |mut conn| {
        let existing: Vec<String> = crate::db!(conn, |c| {
            users::table
                .filter(users::id.eq_any(&users))
                .filter(users::is_active.eq(true))
                .select(users::id)
                .load(c)
                .await
        })?;
        let at = now();
        let mut added = Vec::new();
        for user in existing {
            let n = crate::db!(conn, |c| {
                diesel::insert_into(cp::table)
                    .values((
                        cp::conversation_id.eq(&conversation),
                        cp::user_id.eq(&user),
                        cp::role.eq("member"),
                        cp::joined_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
            })?;
            if n > 0 {
                added.push(user);
            }
        }
        Ok::<_, DbError>(added)
    })
    .await
}

/// Removes `users` from the explicit participants of `conversation`; returns who was removed.
pub async fn remove_participants(
    db: &Db,
    conversation: &str,
    users: Vec<String>,
) -> Result<Vec<String>, DbError> {
    let conversation = conversation.to_owned();
    db.transaction(async move |mut conn| {
        let present: Vec<String> = crate::db!(conn, |c| {
            cp::table
                .filter(cp::conversation_id.eq(&conversation))
                .filter(cp::user_id.eq_any(&users))
                .select(cp::user_id)
                .load(c)
                .await
        })?;
        crate::db!(conn, |c| {
            diesel::delete(
                cp::table
                    .filter(cp::conversation_id.eq(&conversation))
                    .filter(cp::user_id.eq_any(&present)),
            )
            .execute(c)
            .await
        })?;
        Ok::<_, DbError>(present)
    })
    .await
}

/// A conversation's new name, description and metadata; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub metadata: Option<serde_json::Value>,
}

/// Apply `changes` to conversation `id`; returns the updated row.
pub async fn update(db: &Db, id: &str, changes: Changes) -> Result<ConversationRow, DbError> {
    let at = now();
    let mut conn = db.get_write().await?;
    Ok(crate::db!(conn, |c| {
        diesel::update(conversations::table.find(id))
            .set((
                changes
                    .name
                    .clone()
                    .map(|n| conversations::name.eq(Some(n))),
                changes
                    .description
                    .clone()
                    .map(|d| conversations::description.eq(d)),
                changes
                    .metadata
                    .clone()
                    .map(|m| conversations::metadata.eq(crate::db::Json(m))),
                conversations::updated_at.eq(at),
            ))
            .returning(ConversationRow::as_returning())
            .get_result(c)
            .await
    })?)
}

/// Archive or unarchive conversation `id` (for everyone who may use it); returns the updated row.
pub async fn set_archived(db: &Db, id: &str, archived: bool) -> Result<ConversationRow, DbError> {
    let mut conn = db.get_write().await?;
    Ok(crate::db!(conn, |c| {
        diesel::update(conversations::table.find(id))
            .set(conversations::is_archived.eq(archived))
            .returning(ConversationRow::as_returning())
            .get_result(c)
            .await
    })?)
}
