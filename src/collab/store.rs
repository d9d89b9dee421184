//! Persistence of rooms in the flux database: an append-only log (`collab_updates`) plus one
//! compacted snapshot per room (`collab_documents`, `compacted_through` = the last log id folded in).
//!
//! Several instances may hold the same room (see `cluster`). Every change is appended to the log
//! exactly once, by the instance whose peer made it (changes relayed from other instances are not
//! appended by the receiver). A compaction therefore cannot assume its in-memory document contains
//! every row — another instance may have appended one it never received (Redis down) — so the
//! snapshot it writes is the union of the stored snapshot, every log row it deletes, and its own
//! document, computed inside one transaction that other compactions of the room wait for. Nothing
//! stored is ever replaced by a state that lacks it.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{collab_documents, collab_updates};
use crate::db::{Db, DbError};

use super::room::Room;

/// Snapshot first, then the log after it, oldest first.
pub async fn load(db: &Db, room: &str) -> Result<Vec<Vec<u8>>, DbError> {
    let mut conn = db.get_read().await?;
    let snapshot: Option<(Vec<u8>, i64)> = crate::db!(conn, |c| {
        collab_documents::table
            .find(room)
            .select((collab_documents::state, collab_documents::compacted_through))
            .first::<(Vec<u8>, i64)>(c)
            .await
            .optional()
    })?;
    let through = snapshot.as_ref().map_or(0, |s| s.1);
    let log: Vec<Vec<u8>> = crate::db!(conn, |c| {
        collab_updates::table
            .filter(collab_updates::room.eq(room))
            .filter(collab_updates::id.gt(through))
            .order(collab_updates::id.asc())
            .select(collab_updates::data)
            .load::<Vec<u8>>(c)
            .await
    })?;
    let mut all = Vec::with_capacity(log.len() + 1);
    if let Some((state, _)) = snapshot {
        all.push(state);
    }
    all.extend(log);
    Ok(all)
}

/// Appends the room's pending deltas as one row, and compacts when asked or when the log has
/// grown past `threshold` rows. On failure the deltas go back to the queue for the next attempt.
pub async fn persist(db: &Db, room: &Room, compact: bool, threshold: u64) -> Result<(), DbError> {
    let _serial = room.persist.lock().await;
    let pending = std::mem::take(&mut room.lock().pending);
    if !pending.is_empty() {
        let merged = match yrs::merge_updates_v1(&pending) {
            Ok(m) => m,
            Err(e) => {
                // Each delta came out of a yrs transaction; this is not expected. Keep them apart.
                tracing::warn!(room = %room.name, error = %e, "deltas not mergeable; storing each");
                Vec::new()
            }
        };
        let rows: Vec<&[u8]> = if merged.is_empty() {
            pending.iter().map(Vec::as_slice).collect()
        } else {
            vec![merged.as_slice()]
        };
        if let Err(e) = append(db, &room.name, &rows).await {
            let mut inner = room.lock();
            let newer = std::mem::take(&mut inner.pending);
            inner.pending = pending;
            inner.pending.extend(newer);
            return Err(e);
        }
        room.lock().appended_since_compaction += 1;
    }
    let due = {
        let inner = room.lock();
        inner.version != inner.compacted_version
            && (compact || inner.appended_since_compaction >= threshold)
    };
    if due {
        let (state, version) = {
            let inner = room.lock();
            (inner.encode_state(), inner.version)
        };
        let size = snapshot(db, &room.name, state).await?;
        let mut inner = room.lock();
        inner.compacted_version = version;
        inner.appended_since_compaction = 0;
        // Deltas applied since the snapshot still count, so the bound stays an upper bound.
        let since: usize = inner.pending.iter().map(Vec::len).sum();
        inner.approx_size = size + since;
    }
    Ok(())
}

async fn append(db: &Db, room: &str, rows: &[&[u8]]) -> Result<(), DbError> {
    let now = crate::db::now();
    // Usually one merged row; several only if merging failed. SQLite has no multi-row VALUES
    // through diesel's batch insert with defaults, so rows go one by one in one transaction.
    let rows: Vec<Vec<u8>> = rows.iter().map(|r| r.to_vec()).collect();
    let room = room.to_string();
    db.transaction(async move |mut conn| {
        for data in &rows {
            crate::db!(conn, |c| {
                diesel::insert_into(collab_updates::table)
                    .values((
                        collab_updates::room.eq(&room),
                        collab_updates::data.eq(data),
                        collab_updates::created_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })?;
        }
        Ok(())
    })
    .await
}

/// Folds the stored snapshot, the log and `state` into one new snapshot and drops the log rows it
/// now contains, in one transaction; returns the snapshot's size. On PostgreSQL a transaction-level
/// advisory lock on the room serialises concurrent compactions (two instances, or a compaction
/// racing an unload); SQLite transactions here are `IMMEDIATE`, which serialises them already.
async fn snapshot(db: &Db, room: &str, state: Vec<u8>) -> Result<usize, DbError> {
    let room = room.to_string();
    db.transaction(async move |mut conn| {
        if let crate::db::Conn::Postgres(c) = conn.as_conn() {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(format!("flux:collab:{room}"))
                .execute(c)
                .await?;
        }
        let now = crate::db::now();
        let stored: Option<Vec<u8>> = crate::db!(conn, |c| {
            collab_documents::table
                .find(&room)
                .select(collab_documents::state)
                .first::<Vec<u8>>(c)
                .await
                .optional()
        })?;
        let rows: Vec<(i64, Vec<u8>)> = crate::db!(conn, |c| {
            collab_updates::table
                .filter(collab_updates::room.eq(&room))
                .order(collab_updates::id.asc())
                .select((collab_updates::id, collab_updates::data))
                .load::<(i64, Vec<u8>)>(c)
                .await
        })?;
        let through = rows.last().map_or(0, |r| r.0);
        let state = union(
            &room,
            stored.iter().chain(rows.iter().map(|r| &r.1)),
            &state,
        );
        let size = i64::try_from(state.len()).unwrap_or(i64::MAX);
        crate::db!(conn, |c| {
            diesel::insert_into(collab_documents::table)
                .values((
                    collab_documents::room.eq(&room),
                    collab_documents::state.eq(&state),
                    collab_documents::size_bytes.eq(size),
                    collab_documents::compacted_through.eq(through),
                    collab_documents::created_at.eq(now),
                    collab_documents::updated_at.eq(now),
                ))
                .on_conflict(collab_documents::room)
                .do_update()
                .set((
                    collab_documents::state.eq(&state),
                    collab_documents::size_bytes.eq(size),
                    collab_documents::compacted_through.eq(through),
                    collab_documents::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })?;
        crate::db!(conn, |c| {
            diesel::delete(
                collab_updates::table
                    .filter(collab_updates::room.eq(&room))
                    .filter(collab_updates::id.le(through)),
            )
            .execute(c)
            .await
        })?;
        Ok(state.len())
    })
    .await
}

/// One update holding `stored` (oldest first) and `current`. Yjs updates are idempotent and
/// commutative, so applying all to an empty document and encoding it loses and duplicates nothing;
/// the encoding includes structs still waiting for a missing dependency, so those survive too.
fn union<'a>(room: &str, stored: impl Iterator<Item = &'a Vec<u8>>, current: &'a [u8]) -> Vec<u8> {
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, StateVector, Transact, Update};

    let doc = yrs::Doc::new();
    let mut txn = doc.transact_mut();
    for bytes in stored.map(Vec::as_slice).chain(std::iter::once(current)) {
        match Update::decode_v1(bytes).map(|u| txn.apply_update(u)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(room, error = %e, "stored update not applied"),
            Err(e) => tracing::error!(room, error = %e, "stored update undecodable"),
        }
    }
    txn.encode_state_as_update_v1(&StateVector::default())
}
