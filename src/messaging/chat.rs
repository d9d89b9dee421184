//! What a message operation does, whoever asked (socket event or REST route): check membership,
//! store, count, notify mentions, and broadcast to the conversation's room. Identity is always the
//! verified caller, never a payload field.

use crate::cluster::Io;
use serde_json::{json, Value};

use super::model::{message_json, ConversationRow, MessageRow};
use super::rooms;
use super::store;
use super::store::conversations::Access;
use super::store::messages::Draft;
use super::store::reactions::ReactionChange;
use crate::db::{now, Db, DbError};

/// Longest message text, in characters (CONTRACT §15.2).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest reaction (the column's bound).
pub const MAX_REACTION_CHARS: usize = 50;
/// Ids are opaque strings; anything longer than this cannot be one of ours.
pub const MAX_ID_CHARS: usize = 200;
/// At most this many users are notified per message.
pub const MAX_MENTIONS: usize = 50;

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub email: String,
}

/// Why an operation was refused; sockets and REST word these differently.
#[derive(Debug)]
pub enum Fail {
    /// Malformed input; the text is what the client sees.
    Invalid(String),
    NoConversation,
    NotMember,
    /// The message is unknown, deleted, elsewhere or not the caller's; the text is the event's.
    NoMessage(&'static str),
    /// Storage failed: the operation's client text, and the cause (mapped by [`crate::error`] on
    /// REST, logged on sockets).
    Storage(&'static str, DbError),
}

impl Fail {
    pub fn invalid(text: impl Into<String>) -> Fail {
        Fail::Invalid(text.into())
    }

    /// A storage error of the operation whose generic client text is `client`.
    pub fn db(client: &'static str) -> impl FnOnce(DbError) -> Fail {
        move |e| Fail::Storage(client, e)
    }
}

/// Text bound, in characters (not bytes), as the schema's CHECK counts.
pub fn check_text(text: &str) -> Result<(), Fail> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(Fail::invalid(format!(
            "Message text must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

/// The ids accounts accepts ([`crate::input::usable_id`]: no NUL, which PostgreSQL refuses), at
/// most [`MAX_ID_CHARS`] long.
pub fn valid_id(id: &str) -> bool {
    crate::input::usable_id(id) && id.len() <= MAX_ID_CHARS
}

/// The conversation, if the caller may use it.
pub async fn require(db: &Db, caller: &Caller, id: &str) -> Result<ConversationRow, Fail> {
    if !valid_id(id) {
        return Err(Fail::NoConversation);
    }
    match store::conversations::access(db, &caller.id, id)
        .await
        .map_err(Fail::db("Failed to load conversation"))?
    {
        Access::Allowed(c) => Ok(*c),
        Access::Denied => Err(Fail::NotMember),
        Access::NotFound => Err(Fail::NoConversation),
    }
}

/// A live message in a conversation the caller may use; otherwise `NoMessage(text)`.
pub async fn require_message(
    db: &Db,
    caller: &Caller,
    id: &str,
    text: &'static str,
) -> Result<(MessageRow, ConversationRow), Fail> {
    if !valid_id(id) {
        return Err(Fail::NoMessage(text));
    }
    let Some(m) = store::messages::live(db, id)
        .await
        .map_err(Fail::db("Failed to load message"))?
    else {
        return Err(Fail::NoMessage(text));
    };
    match require(db, caller, &m.conversation_id).await {
        Ok(conv) => Ok((m, conv)),
        // Someone else's conversation looks exactly like an unknown id.
        Err(Fail::NotMember | Fail::NoConversation) => Err(Fail::NoMessage(text)),
        Err(e) => Err(e),
    }
}

/// Messages as the canonical wire shape, with their authors.
pub async fn wire(db: &Db, rows: &[MessageRow]) -> Result<Vec<Value>, DbError> {
    let authors = store::messages::authors(db, rows).await?;
    Ok(rows
        .iter()
        .map(|m| message_json(m, m.author_id.as_ref().and_then(|a| authors.get(a))))
        .collect())
}

pub async fn wire_one(db: &Db, m: &MessageRow) -> Result<Value, DbError> {
    Ok(wire(db, std::slice::from_ref(m))
        .await?
        .pop()
        .unwrap_or(Value::Null))
}

/// A new message, from either vocabulary.
#[derive(Debug, Default)]
pub struct SendInput {
    pub conversation_id: String,
    pub text: String,
    pub file: Option<Value>,
    pub attachments: Vec<Value>,
    pub reply_to: Option<String>,
    pub mentions: Vec<String>,
    pub priority: Option<String>,
}

fn priority(p: Option<&str>) -> String {
    match p {
        Some(p @ ("low" | "normal" | "high" | "urgent")) => p.to_owned(),
        _ => "normal".to_owned(),
    }
}

/// Store a message and deliver it to the conversation's room (`message:new` and the frontend's
/// `message:received`), then notify mentioned members.
pub async fn send(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    input: SendInput,
) -> Result<Value, Fail> {
    const FAILED: &str = "Failed to send message";
    check_text(&input.text)?;
    let conv = require(db, caller, &input.conversation_id).await?;
    let reply_to = match input.reply_to.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let (parent, _) = require_message(db, caller, r, "Reply target not found").await?;
            if parent.conversation_id != conv.id {
                return Err(Fail::NoMessage("Reply target not found"));
            }
            Some((parent.id, parent.thread_root_id.or(Some(r.to_owned()))))
        }
        None => None,
    };
    let mut attachments = input.attachments;
    if let Some(file) = input.file.clone() {
        attachments.insert(0, file);
    }
    let attachments =
        super::attachments::sanitize(attachments, &caller.id).map_err(Fail::invalid)?;
    let message_type = if input.file.is_some() { "file" } else { "text" };
    let members = if input.mentions.is_empty() {
        Vec::new()
    } else {
        store::conversations::members(db, &conv)
            .await
            .map_err(Fail::db(FAILED))?
    };
    let mut mentions: Vec<String> = Vec::new();
    for m in input.mentions {
        if m != caller.id && members.contains(&m) && !mentions.contains(&m) {
            mentions.push(m);
        }
        if mentions.len() >= MAX_MENTIONS {
            break;
        }
    }
    let priority = priority(input.priority.as_deref());
    let row = store::messages::insert(
        db,
        Draft {
            conversation_id: conv.id.clone(),
            author_id: caller.id.clone(),
            content: input.text,
            message_type: message_type.into(),
            priority: priority.clone(),
            reply_to_id: reply_to.as_ref().map(|r| r.0.clone()),
            thread_root_id: reply_to.and_then(|r| r.1),
            mentions: mentions.clone(),
            attachments: Value::Array(attachments),
            metadata: json!({"userEmail": caller.email}),
        },
    )
    .await
    .map_err(Fail::db(FAILED))?;
    crate::monitor::count_message();
    let msg = wire_one(db, &row).await.map_err(Fail::db(FAILED))?;
    if let Some(io) = io {
        let room = vec![rooms::channel(&conv.id)];
        rooms::emit(io, room.clone(), "message:new", &msg).await;
        rooms::emit(io, room, "message:received", &msg).await;
    }
    notify_mentions(db, io, caller, &row, &mentions, &priority).await;
    Ok(msg)
}

async fn notify_mentions(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    m: &MessageRow,
    mentioned: &[String],
    priority: &str,
) {
    let preview: String = m.content.chars().take(200).collect();
    let level = match priority {
        "urgent" => "urgent",
        "high" => "high",
        "low" => "low",
        _ => "medium",
    };
    for user in mentioned {
        let data = json!({
            "messageId": m.id,
            "conversationId": m.conversation_id,
            "mentionedBy": caller.id,
        });
        if let Err(e) = store::notifications::insert(
            db,
            user,
            "mention",
            "You were mentioned",
            &preview,
            data,
            level,
        )
        .await
        {
            tracing::warn!(error = %e, "mention notification not stored");
        }
        if let Some(io) = io {
            let payload = json!({
                "messageId": m.id,
                "conversationId": m.conversation_id,
                "mentionedBy": caller.id,
                "content": m.content,
                "priority": m.priority,
                "timestamp": m.created_at.to_iso_millis(),
            });
            rooms::emit(
                io,
                vec![rooms::user(user)],
                "notification:mention",
                &payload,
            )
            .await;
        }
    }
}

const EDIT_MISSING: &str = "Message not found or unauthorized";

/// Author-only edit; broadcasts `message:updated`.
pub async fn edit(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    message_id: &str,
    text: &str,
) -> Result<Value, Fail> {
    check_text(text)?;
    let (_, conv) = require_message(db, caller, message_id, EDIT_MISSING).await?;
    let row = store::messages::edit(db, message_id, &caller.id, text)
        .await
        .map_err(Fail::db("Failed to edit message"))?
        .ok_or(Fail::NoMessage(EDIT_MISSING))?;
    let msg = wire_one(db, &row)
        .await
        .map_err(Fail::db("Failed to edit message"))?;
    if let Some(io) = io {
        rooms::emit(io, vec![rooms::channel(&conv.id)], "message:updated", &msg).await;
    }
    Ok(msg)
}

/// Author-only soft delete; broadcasts `message:deleted` with the bare id.
pub async fn delete(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    message_id: &str,
) -> Result<String, Fail> {
    let (_, conv) = require_message(db, caller, message_id, EDIT_MISSING).await?;
    let row = store::messages::delete(db, message_id, &caller.id)
        .await
        .map_err(Fail::db("Failed to delete message"))?
        .ok_or(Fail::NoMessage(EDIT_MISSING))?;
    if let Some(io) = io {
        rooms::emit(
            io,
            vec![rooms::channel(&conv.id)],
            "message:deleted",
            &row.id,
        )
        .await;
    }
    Ok(row.id)
}

/// Add, remove or toggle the caller's reaction; broadcasts `message:reactions-updated` (and the
/// frontend's `message:reaction-added` when one was added).
pub async fn react(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    message_id: &str,
    reaction: &str,
    change: ReactionChange,
) -> Result<Value, Fail> {
    const FAILED: &str = "Failed to update reaction";
    if reaction.is_empty() || reaction.chars().count() > MAX_REACTION_CHARS {
        return Err(Fail::invalid(format!(
            "Reaction must be 1 to {MAX_REACTION_CHARS} characters"
        )));
    }
    let (m, conv) = require_message(db, caller, message_id, "Message not found").await?;
    let added = store::reactions::change(db, &m.id, &caller.id, reaction, change)
        .await
        .map_err(Fail::db(FAILED))?;
    let reactions = store::reactions::list(db, &m.id)
        .await
        .map_err(Fail::db(FAILED))?;
    let payload = json!({"messageId": m.id, "reactions": reactions});
    if let Some(io) = io {
        let room = vec![rooms::channel(&conv.id)];
        rooms::emit(io, room.clone(), "message:reactions-updated", &payload).await;
        if added {
            let added = json!({
                "messageId": m.id,
                "reaction": reaction,
                "userId": caller.id,
                "timestamp": now().to_iso_millis(),
            });
            rooms::emit(io, room, "message:reaction-added", &added).await;
        }
    }
    Ok(payload)
}

/// Move the caller's read pointer to a message; for a direct message from the other user, record a
/// receipt and tell its author (`dm:read` and the frontend's `message:status-updated`).
pub async fn read(db: &Db, io: Option<&Io>, caller: &Caller, message_id: &str) -> Result<(), Fail> {
    const FAILED: &str = "Failed to mark as read";
    let (m, conv) = require_message(db, caller, message_id, "Message not found").await?;
    store::reads::mark_read(db, &conv.id, &caller.id, m.seq, Some(m.id.clone()))
        .await
        .map_err(Fail::db(FAILED))?;
    let Some(author) = m.author_id.as_deref().filter(|a| *a != caller.id) else {
        return Ok(());
    };
    if conv.kind != "direct" {
        return Ok(());
    }
    let Some(at) = store::reads::dm_receipt(db, &m.id, &caller.id)
        .await
        .map_err(Fail::db(FAILED))?
    else {
        return Ok(());
    };
    if let Some(io) = io {
        let room = vec![rooms::user(author)];
        let read_at = at.to_iso_millis();
        rooms::emit(
            io,
            room.clone(),
            "dm:read",
            &json!({"messageId": m.id, "readAt": read_at}),
        )
        .await;
        rooms::emit(
            io,
            room,
            "message:status-updated",
            &json!({"messageId": m.id, "status": "read", "readBy": caller.id, "timestamp": read_at}),
        )
        .await;
    }
    Ok(())
}

/// A direct message: stored in the pair's direct conversation, `dm:new` to the recipient,
/// `dm:sent` back to the sender, and `message:new`/`message:received` to the conversation's room.
pub async fn direct(
    db: &Db,
    io: Option<&Io>,
    caller: &Caller,
    recipient: &str,
    text: String,
) -> Result<Value, Fail> {
    const FAILED: &str = "Failed to send direct message";
    check_text(&text)?;
    if !valid_id(recipient) {
        return Err(Fail::invalid("Recipient not found"));
    }
    if recipient == caller.id {
        return Err(Fail::invalid("Cannot send a direct message to yourself"));
    }
    if store::messages::active_user(db, recipient)
        .await
        .map_err(Fail::db(FAILED))?
        .is_none()
    {
        return Err(Fail::invalid("Recipient not found"));
    }
    let conv = store::conversations::direct(db, &caller.id, recipient)
        .await
        .map_err(Fail::db(FAILED))?;
    let row = store::messages::insert(
        db,
        Draft {
            conversation_id: conv.id.clone(),
            author_id: caller.id.clone(),
            content: text,
            message_type: "dm".into(),
            priority: "normal".into(),
            reply_to_id: None,
            thread_root_id: None,
            mentions: Vec::new(),
            attachments: Value::Array(Vec::new()),
            metadata: json!({"recipientId": recipient, "senderEmail": caller.email, "read": false}),
        },
    )
    .await
    .map_err(Fail::db(FAILED))?;
    crate::monitor::count_message();
    let msg = wire_one(db, &row).await.map_err(Fail::db(FAILED))?;
    if let Some(io) = io {
        rooms::emit(io, vec![rooms::user(recipient)], "dm:new", &msg).await;
        let room = vec![rooms::channel(&conv.id)];
        rooms::emit(io, room.clone(), "message:new", &msg).await;
        rooms::emit(io, room, "message:received", &msg).await;
    }
    Ok(msg)
}
