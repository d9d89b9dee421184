//! Row types of the messaging tables and the wire shapes built from them (CONTRACT §9, §11).
//!
//! One canonical Message is emitted everywhere (REST and sockets): the DB-mode keys of the original
//! plus the aliases each client reads (`channelId`, `text`, `type`, `userId`, `userEmail`, `author`,
//! `isEdited`, `timestamp`) and `seq`, the per-conversation sequence number used for recovery.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::db::schema::{conversations, messages, notifications};
use crate::db::{Json, Timestamp};

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = messages)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub author_id: Option<String>,
    pub seq: i64,
    pub content: String,
    pub message_type: String,
    pub priority: String,
    pub reply_to_id: Option<String>,
    pub thread_root_id: Option<String>,
    pub mentions: Json<Vec<String>>,
    pub attachments: Json,
    pub metadata: Json,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = messages)]
pub struct NewMessageRow {
    pub id: String,
    pub conversation_id: String,
    pub author_id: Option<String>,
    pub seq: i64,
    pub content: String,
    pub message_type: String,
    pub priority: String,
    pub reply_to_id: Option<String>,
    pub thread_root_id: Option<String>,
    pub mentions: Json<Vec<String>>,
    pub attachments: Json,
    pub metadata: Json,
    pub created_at: Timestamp,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = conversations)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ConversationRow {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_id: Option<String>,
    pub project_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_message_at: Option<Timestamp>,
    pub is_archived: bool,
    pub dm_key: Option<String>,
    pub metadata: Json,
    pub last_seq: i64,
}

impl ConversationRow {
    /// Whose membership decides who may use this conversation.
    pub fn scope(&self) -> crate::membership::Scope<'_> {
        crate::membership::Scope::of_conversation(
            &self.id,
            self.group_id.as_deref(),
            self.project_id.as_deref(),
        )
    }
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = conversations)]
pub struct NewConversationRow {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_id: Option<String>,
    pub project_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub dm_key: Option<String>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = notifications)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct NotificationRow {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub data: Json,
    pub priority: String,
    pub is_read: bool,
    pub read_at: Option<Timestamp>,
    pub action_url: Option<String>,
    pub snoozed_until: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = notifications)]
pub struct NewNotificationRow {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub data: Json,
    pub priority: String,
    pub created_at: Timestamp,
}

/// What a message shows about its author.
#[derive(Debug, Clone)]
pub struct Author {
    pub id: String,
    pub name: String,
    pub email: String,
    pub user_type: String,
    pub avatar: Option<String>,
}

fn iso(t: &Option<Timestamp>) -> Value {
    t.as_ref()
        .map_or(Value::Null, |t| Value::String(t.to_iso_millis()))
}

/// The canonical Message (CONTRACT §9 "Recommended canonical Message").
pub fn message_json(m: &MessageRow, author: Option<&Author>) -> Value {
    let created = m.created_at.to_iso_millis();
    let author_obj = author.map_or(
        Value::Null,
        |a| json!({"id": a.id, "name": a.name, "userType": a.user_type, "avatar": a.avatar}),
    );
    json!({
        "id": m.id,
        "seq": m.seq,
        "conversationId": m.conversation_id,
        "channelId": m.conversation_id,
        "authorId": m.author_id,
        "userId": m.author_id,
        "userEmail": author.map(|a| a.email.as_str()),
        "authorName": author.map(|a| a.name.as_str()),
        "authorAvatar": author.and_then(|a| a.avatar.as_deref()),
        "author": author_obj,
        "content": m.content,
        "text": m.content,
        "messageType": m.message_type,
        "type": m.message_type,
        "priority": m.priority,
        "status": "sent",
        "replyToId": m.reply_to_id,
        "threadId": m.thread_root_id,
        "mentions": m.mentions.0,
        "attachments": m.attachments.0,
        "metadata": m.metadata.0,
        "editedAt": iso(&m.edited_at),
        "isEdited": m.edited_at.is_some(),
        "deletedAt": Value::Null,
        "createdAt": created,
        "timestamp": created,
        "isThreadRoot": false,
        "threadCount": 0,
    })
}

/// The REST Channel: `{id, name, teamId, description, createdAt, createdBy}` (+ `projectId`, `type`).
pub fn channel_json(c: &ConversationRow) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "teamId": c.group_id,
        "projectId": c.project_id,
        "type": c.kind,
        "description": c.description,
        "createdAt": c.created_at.to_iso_millis(),
        "createdBy": c.created_by,
    })
}

/// Facts about a conversation that depend on the caller.
#[derive(Debug, Clone, Default)]
pub struct ConversationStats {
    pub participant_count: i64,
    pub unread_count: i64,
    pub last_message: Option<(String, Option<String>, Timestamp)>,
}

/// The DB-mode Conversation of `GET /conversations`, plus `lastSeq`.
pub fn conversation_json(c: &ConversationRow, stats: &ConversationStats) -> Value {
    let last_message = stats
        .last_message
        .as_ref()
        .map_or(Value::Null, |(content, author_name, at)| {
            json!({"content": content, "authorName": author_name, "createdAt": at.to_iso_millis()})
        });
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "type": c.kind,
        "organizationId": Value::Null,
        "projectId": c.project_id,
        "teamId": c.group_id,
        "createdBy": c.created_by,
        "creatorName": Value::Null,
        "lastMessageAt": iso(&c.last_message_at),
        "metadata": c.metadata.0,
        "settings": {},
        "isArchived": c.is_archived,
        "createdAt": c.created_at.to_iso_millis(),
        "updatedAt": c.updated_at.to_iso_millis(),
        "participantCount": stats.participant_count,
        "unreadCount": stats.unread_count,
        "lastMessage": last_message,
        "lastSeq": c.last_seq,
    })
}

/// The recommended camelCase Notification.
pub fn notification_json(n: &NotificationRow) -> Value {
    json!({
        "id": n.id,
        "userId": n.user_id,
        "type": n.kind,
        "title": n.title,
        "message": n.message,
        "data": n.data.0,
        "priority": n.priority,
        "isRead": n.is_read,
        "readAt": iso(&n.read_at),
        "actionUrl": n.action_url,
        "snoozedUntil": iso(&n.snoozed_until),
        "expiresAt": iso(&n.expires_at),
        "createdAt": n.created_at.to_iso_millis(),
    })
}
