//! Reactions on messages.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::schema::{message_reactions, users};
use crate::db::{now, Db, DbError, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionChange {
    Toggle,
    Add,
    Remove,
}

/// Apply a reaction change; returns whether the reaction is now present.
pub async fn change(
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
pub async fn list(db: &Db, message_id: &str) -> Result<Vec<Value>, DbError> {
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
