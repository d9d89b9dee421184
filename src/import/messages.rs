//! `messages.json` → `messages` (CONTRACT §15.3). Channel messages keep their `conversationId`;
//! `messageType = dm` rows go to the direct conversation of {author, `metadata.recipientId`}, made
//! here when the pair has none. Each conversation's new messages get the next `seq` numbers in
//! timestamp order (file order breaks ties), and `last_seq` moves to the last one, as
//! `store::insert_message` does one message at a time.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, Admitted, LegacyId};
use super::{required_ts, write_failed, ImportError, Known, Tally};
use crate::db::schema::{conversation_participants as cp, conversations, messages};
use crate::db::{Conn, Json, Timestamp};
use crate::messaging::model::{NewConversationRow, NewMessageRow};
use crate::messaging::store::conversations::dm_key;

/// The column's CHECK (and the API's limit).
const MAX_CONTENT_CHARS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMessage {
    id: LegacyId,
    conversation_id: Option<LegacyId>,
    author_id: Option<LegacyId>,
    content: Option<String>,
    message_type: Option<String>,
    reply_to_id: Option<LegacyId>,
    attachments: Option<Value>,
    metadata: Option<Value>,
    timestamp: Option<Value>,
    /// Database-mode exports call it `createdAt`.
    created_at: Option<Value>,
}

/// Where a message goes.
enum Target {
    Conversation(String),
    Direct {
        key: String,
        author: String,
        recipient: String,
    },
}

/// A checked message, waiting for its conversation and `seq`.
struct Pending {
    index: usize,
    id: String,
    target: Target,
    author_id: Option<String>,
    content: String,
    message_type: String,
    reply_to_id: Option<String>,
    attachments: Value,
    metadata: Value,
    created_at: Timestamp,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    let mut pending = check(records, known, tally);
    pending.sort_by_key(|p| (p.created_at, p.index));

    // Direct conversations, found by pair or made (by the pair's first message).
    let mut directs: HashMap<String, String> = HashMap::new();
    let mut created = 0usize;
    for p in &pending {
        let Target::Direct {
            key,
            author,
            recipient,
        } = &p.target
        else {
            continue;
        };
        if directs.contains_key(key) {
            continue;
        }
        let fail = || write_failed("messages", "the direct conversation of message", &p.id);
        let existing: Option<String> = crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::dm_key.eq(key))
                .select(conversations::id)
                .first(c)
                .await
                .optional()
        })
        .map_err(|e| fail()(e.into()))?;
        let conv_id = match existing {
            Some(id) => id,
            None => {
                let row = NewConversationRow {
                    id: crate::db::new_id(),
                    kind: "direct".into(),
                    name: None,
                    description: None,
                    group_id: None,
                    project_id: None,
                    created_by: Some(author.clone()),
                    created_at: p.created_at,
                    updated_at: p.created_at,
                    dm_key: Some(key.clone()),
                };
                crate::db!(conn, |c| {
                    diesel::insert_into(conversations::table)
                        .values(&row)
                        .execute(c)
                        .await
                })
                .map_err(|e| fail()(e.into()))?;
                created += 1;
                known.conversations.insert(row.id.clone());
                row.id
            }
        };
        for user in [author, recipient] {
            crate::db!(conn, |c| {
                diesel::insert_into(cp::table)
                    .values((
                        cp::conversation_id.eq(&conv_id),
                        cp::user_id.eq(user),
                        cp::role.eq("member"),
                        cp::joined_at.eq(p.created_at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
            })
            .map_err(|e| fail()(e.into()))?;
        }
        directs.insert(key.clone(), conv_id);
    }
    if created > 0 {
        tally
            .notes
            .push(format!("created {created} direct conversation(s)"));
    }

    // Per conversation, in order of first message: the next seq numbers, then the new last_seq.
    let mut order: Vec<String> = Vec::new();
    let mut by_conv: HashMap<String, Vec<Pending>> = HashMap::new();
    for p in pending {
        let conv = match &p.target {
            Target::Conversation(id) => id.clone(),
            Target::Direct { key, .. } => directs.get(key).cloned().unwrap_or_default(),
        };
        if !by_conv.contains_key(&conv) {
            order.push(conv.clone());
        }
        by_conv.entry(conv).or_default().push(p);
    }
    let mut replies: Vec<(String, String)> = Vec::new();
    for conv in order {
        let list = by_conv.remove(&conv).unwrap_or_default();
        if list.is_empty() {
            continue;
        }
        let fail = |id: &str| write_failed("messages", "message", id);
        let conv_fail = || write_failed("messages", "conversation", &conv);
        let (last_seq, last_at): (i64, Option<Timestamp>) = crate::db!(conn, |c| {
            conversations::table
                .find(&conv)
                .select((conversations::last_seq, conversations::last_message_at))
                .first(c)
                .await
        })
        .map_err(|e| conv_fail()(e.into()))?;
        let mut seq = last_seq;
        let mut latest = last_at;
        for p in list {
            seq += 1;
            latest = latest.max(Some(p.created_at));
            let row = NewMessageRow {
                id: p.id.clone(),
                conversation_id: conv.clone(),
                author_id: p.author_id,
                seq,
                content: p.content,
                message_type: p.message_type,
                priority: "normal".into(),
                reply_to_id: None,
                thread_root_id: None,
                mentions: Json(Vec::new()),
                attachments: Json(p.attachments),
                metadata: Json(p.metadata),
                created_at: p.created_at,
            };
            crate::db!(conn, |c| {
                diesel::insert_into(messages::table)
                    .values(&row)
                    .execute(c)
                    .await
            })
            .map_err(|e| fail(&p.id)(e.into()))?;
            known.messages.insert(p.id.clone());
            if let Some(parent) = p.reply_to_id {
                replies.push((p.id, parent));
            }
            tally.imported += 1;
        }
        crate::db!(conn, |c| {
            diesel::update(conversations::table.find(&conv))
                .set((
                    conversations::last_seq.eq(seq),
                    conversations::last_message_at.eq(latest),
                ))
                .execute(c)
                .await
        })
        .map_err(|e| conv_fail()(e.into()))?;
    }

    // Replies last: a reply may come before its parent in the file, and the column is a foreign key.
    for (id, parent) in replies {
        if !known.messages.contains(&parent) {
            tally.anomaly(format!(
                "message {id:?}: replyToId {parent:?} is not a known message; dropped"
            ));
            continue;
        }
        crate::db!(conn, |c| {
            diesel::update(messages::table.find(&id))
                .set(messages::reply_to_id.eq(Some(&parent)))
                .execute(c)
                .await
        })
        .map_err(|e| write_failed("messages", "message", &id)(e.into()))?;
    }
    Ok(())
}

/// Reads and checks every record; those that cannot be stored are counted and reported here.
fn check(records: Vec<Value>, known: &Known, tally: &mut Tally) -> Vec<Pending> {
    let mut out = Vec::new();
    for admitted in admit::<LegacyMessage>(records, "message", |r| &r.id, &known.messages, tally) {
        let Admitted {
            index,
            id,
            label,
            record: m,
        } = admitted;
        let content = m.content.unwrap_or_default();
        if content.chars().count() > MAX_CONTENT_CHARS {
            tally.reject(format!(
                "{label}: content longer than {MAX_CONTENT_CHARS} characters"
            ));
            continue;
        }
        let message_type = m
            .message_type
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| "text".to_owned());
        let metadata = match m.metadata {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                tally.anomaly(format!(
                    "{label}: metadata {other} is not an object; dropped"
                ));
                Value::Object(Default::default())
            }
        };
        let author = m.author_id.map(|a| a.0);
        let target = if message_type == "dm" {
            let recipient = match metadata.get("recipientId") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    tally.reject(format!(
                        "{label}: direct message without metadata.recipientId"
                    ));
                    continue;
                }
            };
            let Some(author) = author.clone().filter(|a| known.users.contains(a)) else {
                tally.reject(format!(
                    "{label}: direct message whose authorId is missing or not a known user"
                ));
                continue;
            };
            if !known.users.contains(&recipient) {
                tally.reject(format!(
                    "{label}: direct message to {recipient:?}, not a known user"
                ));
                continue;
            }
            if recipient == author {
                tally.reject(format!("{label}: direct message to its own author"));
                continue;
            }
            Target::Direct {
                key: dm_key(&author, &recipient),
                author,
                recipient,
            }
        } else {
            match m.conversation_id.map(|c| c.0) {
                Some(conv) if known.conversations.contains(&conv) => Target::Conversation(conv),
                Some(conv) => {
                    tally.reject(format!("{label}: conversation {conv:?} does not exist"));
                    continue;
                }
                None => {
                    tally.reject(format!("{label}: no conversationId"));
                    continue;
                }
            }
        };
        let author_id = match author {
            Some(a) if known.users.contains(&a) => Some(a),
            Some(a) => {
                tally.anomaly(format!(
                    "{label}: authorId {a:?} is not a known user; imported without an author"
                ));
                None
            }
            None => {
                tally.anomaly(format!("{label}: no authorId; imported without an author"));
                None
            }
        };
        let attachments = match m.attachments {
            None | Some(Value::Null) => Value::Array(Vec::new()),
            Some(v @ Value::Array(_)) => v,
            Some(other) => {
                tally.anomaly(format!(
                    "{label}: attachments {other} are not a list; dropped"
                ));
                Value::Array(Vec::new())
            }
        };
        let created_at = required_ts(
            m.timestamp.as_ref().or(m.created_at.as_ref()),
            "timestamp",
            &label,
            tally,
        );
        out.push(Pending {
            index,
            id,
            target,
            author_id,
            content,
            message_type,
            reply_to_id: m.reply_to_id.map(|r| r.0).filter(|r| !r.is_empty()),
            attachments,
            metadata,
            created_at,
        });
    }
    out
}
