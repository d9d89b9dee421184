//! Message search over the conversations the caller may use.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{conversations, messages};
use crate::db::{like_contains, lower, Db, DbError, LIKE_ESCAPE};
use crate::membership::{self};
use crate::messaging::model::MessageRow;

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
