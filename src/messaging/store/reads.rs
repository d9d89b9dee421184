//! Read state: read pointers (unread counts are computed from them) and direct-message receipts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{conversation_participants as cp, dm_receipts, messages};
use crate::db::{now, Db, DbError, PooledConn, Timestamp};

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
pub(super) async fn unread_count(
    conn: &mut PooledConn,
    conv: &str,
    user: &str,
) -> Result<i64, DbError> {
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
